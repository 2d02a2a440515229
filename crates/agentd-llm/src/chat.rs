//! A chat request and its response, the same for every provider.

use serde_json::Value;

/// One call to the model: the conversation so far, the tools it may call and the shape of its
/// answer.
#[derive(Clone, Debug, Default)]
pub struct ChatRequest {
    /// The model to use; `None` uses the settings' model.
    pub model: Option<String>,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Whether the model may, must or must not call a tool.
    pub tool_choice: ToolChoice,
    /// A JSON schema the answer's text must follow.
    pub output_schema: Option<OutputSchema>,
    /// The limit on generated tokens (Anthropic requires one: 4096 when `None`).
    pub max_output_tokens: Option<u32>,
    /// The sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// A JSON schema (an object schema) of its arguments.
    pub parameters: Value,
}

/// Whether the model may call tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must call at least one tool.
    Required,
    /// The model must not call a tool (the tools are still described to it).
    None,
}

/// Structured output: the answer's text is JSON following `schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSchema {
    /// A name for the schema (letters, digits, `_` and `-`).
    pub name: String,
    /// A JSON schema; Anthropic needs an object schema (it becomes a tool's input).
    pub schema: Value,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// What the user (or the agent runtime on its behalf) says.
    User(Vec<Content>),
    /// What the model answered earlier.
    Assistant {
        /// Its text (may be empty).
        text: String,
        /// The tools it called.
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    ToolResult {
        /// The [`ToolCall::id`] this answers.
        call_id: String,
        /// Text and images.
        content: Vec<Content>,
        /// Whether the tool failed.
        is_error: bool,
    },
}

impl Message {
    /// A user message of one text.
    pub fn user_text(text: impl Into<String>) -> Message {
        Message::User(vec![Content::Text(text.into())])
    }
}

/// A piece of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Text.
    Text(String),
    /// An image, base64-encoded.
    Image {
        /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        media_type: String,
        /// The image's bytes in standard base64.
        data_base64: String,
    },
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The provider's id of the call (generated when the provider sent none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments; ones that are not valid JSON arrive as `Value::String` of the raw text.
    pub arguments: Value,
}

/// Tokens read and written by one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens (Anthropic: including cache reads and writes).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// The model's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    /// Its text (with structured output: the JSON).
    pub text: String,
    /// The tools it called, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens used (0 when the server did not say).
    pub usage: TokenUsage,
    /// What the call cost in US dollars, from the price table.
    pub cost_usd: f64,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// Why generation stopped, in the provider's words (`stop`, `tool_calls`, `length`;
    /// `end_turn`, `tool_use`, `max_tokens`).
    pub finish_reason: Option<String>,
    /// HTTP attempts made (1 without retries).
    pub attempts: u32,
}

/// What a provider adapter reads from a response: the [`ChatResponse`] before cost and attempts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: TokenUsage,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
}

/// Tool-call arguments as the model wrote them: JSON when they parse, else the raw text.
/// An empty text (a tool without parameters, on some servers) is an empty object.
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_parse_or_stay_raw() {
        assert_eq!(parse_arguments(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_arguments(""), json!({}));
        assert_eq!(parse_arguments(r#"{"a":"#), json!(r#"{"a":"#));
    }
}
