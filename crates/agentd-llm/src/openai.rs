//! The OpenAI chat-completions wire format (also spoken by Ollama, vLLM, LiteLLM...): the request
//! body, the answer, and the reassembly of a streamed answer.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Message, TokenUsage, ToolCall, ToolChoice, parse_arguments};
use crate::error::LlmError;

/// The request body for `POST {base}/chat/completions`. `max_tokens_field` is
/// `max_completion_tokens` for OpenAI itself (its newer models refuse `max_tokens`) and
/// `max_tokens` for compatible servers (not all of them know the newer name).
pub(crate) fn request_body(request: &ChatRequest, model: &str, stream: bool, max_tokens_field: &str) -> Value {
    let mut body = json!({ "model": model, "messages": messages(request) });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({ "include_usage": true });
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
            .collect();
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!(match request.tool_choice {
            ToolChoice::Auto => "auto",
            ToolChoice::Required => "required",
            ToolChoice::None => "none",
        });
    }
    if let Some(schema) = &request.output_schema {
        body["response_format"] =
            json!({ "type": "json_schema", "json_schema": { "name": schema.name, "schema": schema.schema, "strict": false } });
    }
    if let Some(max) = request.max_output_tokens {
        body[max_tokens_field] = json!(max);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

fn messages(request: &ChatRequest) -> Vec<Value> {
    let mut out = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        out.push(json!({ "role": "system", "content": system }));
    }
    // Tool messages take text only, and must all follow the assistant message that made the
    // calls: images from a run of tool results go into one user message after the run.
    let mut images: Vec<Value> = Vec::new();
    for message in &request.messages {
        if !matches!(message, Message::ToolResult { .. }) {
            flush_images(&mut out, &mut images);
        }
        match message {
            Message::User(content) => out.push(json!({ "role": "user", "content": user_content(content) })),
            Message::Assistant { text, tool_calls } => {
                let content = if text.is_empty() { Value::Null } else { json!(text) };
                let mut m = json!({ "role": "assistant", "content": content });
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": arguments_text(&c.arguments) } }))
                        .collect();
                    m["tool_calls"] = Value::Array(calls);
                }
                out.push(m);
            }
            Message::ToolResult { call_id, content, is_error } => {
                let mut text = texts(content);
                let call_images: Vec<Value> = content.iter().filter_map(image_part).collect();
                if !call_images.is_empty() {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("({} image(s) in the next user message)", call_images.len()));
                    images.push(json!({ "type": "text", "text": format!("Image(s) returned by tool call {call_id}:") }));
                    images.extend(call_images);
                }
                if *is_error && !text.to_ascii_lowercase().starts_with("error") {
                    text.insert_str(0, "Error: ");
                }
                out.push(json!({ "role": "tool", "tool_call_id": call_id, "content": text }));
            }
        }
    }
    flush_images(&mut out, &mut images);
    out
}

fn flush_images(out: &mut Vec<Value>, images: &mut Vec<Value>) {
    if !images.is_empty() {
        out.push(json!({ "role": "user", "content": std::mem::take(images) }));
    }
}

/// A single text as a plain string (what every compatible server understands), else parts.
fn user_content(content: &[Content]) -> Value {
    match content {
        [] => json!(""),
        [Content::Text(text)] => json!(text),
        parts => Value::Array(
            parts
                .iter()
                .map(|part| match part {
                    Content::Text(text) => json!({ "type": "text", "text": text }),
                    Content::Image { .. } => image_part(part).unwrap_or(Value::Null),
                })
                .collect(),
        ),
    }
}

fn image_part(content: &Content) -> Option<Value> {
    match content {
        Content::Image { media_type, data_base64 } => {
            Some(json!({ "type": "image_url", "image_url": { "url": format!("data:{media_type};base64,{data_base64}") } }))
        }
        Content::Text(_) => None,
    }
}

fn texts(content: &[Content]) -> String {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            Content::Image { .. } => None,
        })
        .collect();
    texts.join("\n")
}

/// Arguments as the JSON text OpenAI expects; a raw (unparsable) text is sent back as it came.
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<AssistantMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    /// A JSON text per the specification; some servers (Ollama) send the object itself.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl Usage {
    fn tokens(&self) -> TokenUsage {
        TokenUsage { input_tokens: self.prompt_tokens.unwrap_or(0), output_tokens: self.completion_tokens.unwrap_or(0) }
    }
}

/// The answer in a (non-streamed) chat completion.
pub(crate) fn parse_response(body: &[u8]) -> Result<Answer, LlmError> {
    let completion: Completion =
        serde_json::from_slice(body).map_err(|e| LlmError::BadResponse(format!("not a chat completion: {e}")))?;
    let choice = completion
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| LlmError::BadResponse("a chat completion without choices".into()))?;
    let message = choice.message.unwrap_or(AssistantMessage { content: None, refusal: None, tool_calls: None });
    let mut text = match message.content {
        Some(Value::String(text)) => text,
        // Some servers answer with content parts.
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    if text.is_empty()
        && let Some(refusal) = message.refusal
    {
        text = refusal;
    }
    let tool_calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| ToolCall {
            id: call.id.filter(|id| !id.is_empty()).unwrap_or_else(generated_call_id),
            name: call.function.name,
            arguments: arguments_value(call.function.arguments),
        })
        .collect();
    Ok(Answer {
        text,
        tool_calls,
        usage: completion.usage.unwrap_or_default().tokens(),
        model: completion.model.filter(|m| !m.is_empty()),
        finish_reason: choice.finish_reason,
    })
}

fn arguments_value(arguments: Value) -> Value {
    match arguments {
        Value::String(raw) => parse_arguments(&raw),
        Value::Null => Value::Object(Default::default()),
        other => other,
    }
}

/// An id for a tool call the server sent without one; random so that ids stay unique across the
/// turns of a conversation.
fn generated_call_id() -> String {
    format!("call_{:016x}", rand::random::<u64>())
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<DeltaCall>>,
}

#[derive(Deserialize)]
struct DeltaCall {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<DeltaFunction>,
}

#[derive(Deserialize)]
struct DeltaFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// A tool call being reassembled from deltas.
#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: Option<String>,
    name: String,
    arguments: String,
    /// Arguments a server sent as an object rather than as text.
    arguments_object: Option<Value>,
}

/// Reassembles a streamed chat completion from its `data:` payloads.
#[derive(Debug, Default)]
pub(crate) struct StreamDecoder {
    text: String,
    calls: Vec<PartialCall>,
    usage: TokenUsage,
    model: Option<String>,
    finish_reason: Option<String>,
    done: bool,
    emitted: bool,
}

impl StreamDecoder {
    /// Takes one event's data; text deltas go to `on_text`.
    pub(crate) fn on_data(&mut self, data: &str, on_text: &mut (dyn FnMut(&str) + Send)) -> Result<(), LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| LlmError::BadResponse(format!("not a chat completion chunk: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Provider {
                kind: error["type"].as_str().or(error["code"].as_str()).unwrap_or("error").to_owned(),
                message: error["message"].as_str().map_or_else(|| error.to_string(), str::to_owned),
            });
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.model = Some(model);
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.tokens();
        }
        for choice in chunk.choices.unwrap_or_default().into_iter().filter(|c| c.index == 0) {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
            let Some(delta) = choice.delta else { continue };
            for piece in [delta.content, delta.refusal].into_iter().flatten().filter(|t| !t.is_empty()) {
                self.text.push_str(&piece);
                self.emitted = true;
                on_text(&piece);
            }
            for call in delta.tool_calls.unwrap_or_default() {
                self.on_call_delta(call);
            }
        }
        Ok(())
    }

    fn on_call_delta(&mut self, delta: DeltaCall) {
        // Calls are matched by index; a server that sends none starts a call with each new id.
        let existing = match delta.index {
            Some(index) => self.calls.iter().position(|c| c.index == Some(index)),
            None => match (&delta.id, self.calls.last()) {
                (Some(id), Some(last)) if last.id.as_ref() != Some(id) => None,
                (_, Some(_)) => Some(self.calls.len() - 1),
                (_, None) => None,
            },
        };
        let position = existing.unwrap_or_else(|| {
            self.calls.push(PartialCall { index: delta.index, ..PartialCall::default() });
            self.calls.len() - 1
        });
        let call = &mut self.calls[position];
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = Some(id);
        }
        if let Some(function) = delta.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty())
                && call.name.is_empty()
            {
                call.name = name;
            }
            match function.arguments {
                Some(Value::String(piece)) => call.arguments.push_str(&piece),
                Some(Value::Null) | None => {}
                Some(object) => call.arguments_object = Some(object),
            }
        }
    }

    /// Whether the server said the stream is over.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any text went to `on_text` (after which the call cannot be retried).
    pub(crate) fn emitted(&self) -> bool {
        self.emitted
    }

    /// The whole answer, once the stream has ended.
    pub(crate) fn finish(self) -> Result<Answer, LlmError> {
        if !self.done && self.finish_reason.is_none() {
            return Err(LlmError::Transport("the stream ended before the answer was complete".into()));
        }
        let tool_calls = self
            .calls
            .into_iter()
            .map(|call| ToolCall {
                id: call.id.unwrap_or_else(generated_call_id),
                name: call.name,
                arguments: call.arguments_object.unwrap_or_else(|| parse_arguments(&call.arguments)),
            })
            .collect();
        Ok(Answer { text: self.text, tool_calls, usage: self.usage, model: self.model, finish_reason: self.finish_reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{OutputSchema, ToolSpec};

    fn decode(events: &[&str]) -> (Result<Answer, LlmError>, Vec<String>) {
        let mut deltas = Vec::new();
        let mut decoder = StreamDecoder::default();
        for event in events {
            if let Err(e) = decoder.on_data(event, &mut |t| deltas.push(t.to_owned())) {
                return (Err(e), deltas);
            }
        }
        (decoder.finish(), deltas)
    }

    #[test]
    fn a_request_with_everything() {
        let request = ChatRequest {
            system: Some("be brief".into()),
            messages: vec![Message::user_text("hi")],
            tools: vec![ToolSpec { name: "click".into(), description: "Clicks".into(), parameters: json!({"type": "object"}) }],
            tool_choice: ToolChoice::Required,
            output_schema: Some(OutputSchema { name: "answer".into(), schema: json!({"type": "object"}) }),
            max_output_tokens: Some(100),
            temperature: Some(0.5),
            ..ChatRequest::default()
        };
        let body = request_body(&request, "gpt-4o", true, "max_completion_tokens");
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {"name": "click", "description": "Clicks", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": false}},
                "max_completion_tokens": 100,
                "temperature": 0.5,
            })
        );
        let plain = request_body(&ChatRequest { messages: vec![Message::user_text("hi")], ..ChatRequest::default() }, "m", false, "max_tokens");
        assert_eq!(plain, json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    }

    #[test]
    fn images_of_tool_results_follow_the_run_of_tool_messages() {
        let image = Content::Image { media_type: "image/png".into(), data_base64: "AAA".into() };
        let request = ChatRequest {
            messages: vec![
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![
                        ToolCall { id: "a".into(), name: "shot".into(), arguments: json!({}) },
                        ToolCall { id: "b".into(), name: "bad".into(), arguments: json!("{oops") },
                    ],
                },
                Message::ToolResult { call_id: "a".into(), content: vec![Content::Text("page".into()), image], is_error: false },
                Message::ToolResult { call_id: "b".into(), content: vec![Content::Text("no such tool".into())], is_error: true },
                Message::user_text("go on"),
            ],
            ..ChatRequest::default()
        };
        assert_eq!(
            messages(&request),
            vec![
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "shot", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "bad", "arguments": "{oops"}},
                ]}),
                json!({"role": "tool", "tool_call_id": "a", "content": "page\n(1 image(s) in the next user message)"}),
                json!({"role": "tool", "tool_call_id": "b", "content": "Error: no such tool"}),
                json!({"role": "user", "content": [
                    {"type": "text", "text": "Image(s) returned by tool call a:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                ]}),
                json!({"role": "user", "content": "go on"}),
            ]
        );
    }

    #[test]
    fn a_completion_from_a_lenient_server() {
        // No usage, no tool-call id, arguments as an object (Ollama) or not JSON at all.
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}},
                {"id": "c2", "function": {"name": "b", "arguments": "{\"y\":"}},
            ]}, "finish_reason": "tool_calls"}]
        });
        let answer = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(answer.usage, TokenUsage::default());
        assert_eq!(answer.model, None);
        assert!(answer.tool_calls[0].id.starts_with("call_"));
        assert_eq!(answer.tool_calls[0].arguments, json!({"x": 1}));
        assert_eq!(answer.tool_calls[1].id, "c2");
        assert_eq!(answer.tool_calls[1].arguments, json!("{\"y\":"));
        assert!(matches!(parse_response(b"{\"choices\": []}"), Err(LlmError::BadResponse(_))));
        assert!(matches!(parse_response(b"<html>"), Err(LlmError::BadResponse(_))));
    }

    #[test]
    fn a_stream_is_reassembled() {
        let (answer, deltas) = decode(&[
            r#"{"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"click","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"type","arguments":"{\"t\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"i\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"3}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"x\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5}}"#,
            "[DONE]",
        ]);
        let answer = answer.unwrap();
        assert_eq!(deltas, ["Hel", "lo"]);
        assert_eq!(answer.text, "Hello");
        assert_eq!(answer.model.as_deref(), Some("gpt-x"));
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(answer.usage, TokenUsage { input_tokens: 7, output_tokens: 5 });
        let calls: Vec<_> = answer.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone())).collect();
        assert_eq!(calls, [("c1", "click", json!({"i": 3})), ("c2", "type", json!({"t": "x"}))]);
    }

    #[test]
    fn a_stream_without_indexes_ids_or_usage() {
        let (answer, _) = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","arguments":"{\"k\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        let answer = answer.unwrap();
        assert_eq!(answer.tool_calls.len(), 1);
        assert_eq!(answer.tool_calls[0].arguments, json!({"k": 1}));
        assert!(answer.tool_calls[0].id.starts_with("call_"));
        assert_eq!(answer.usage, TokenUsage::default());
    }

    #[test]
    fn a_stream_cut_short_or_failing_is_an_error() {
        let (answer, deltas) = decode(&[r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#]);
        assert!(matches!(answer, Err(LlmError::Transport(_))), "{answer:?}");
        assert_eq!(deltas, ["Hi"]);
        let (answer, _) = decode(&[r#"{"error":{"message":"overloaded","type":"server_error"}}"#]);
        assert_eq!(answer, Err(LlmError::Provider { kind: "server_error".into(), message: "overloaded".into() }));
    }
}
