//! The Anthropic Messages wire format: the request body (strictly alternating turns, structured
//! output as a forced tool), the answer, and the reassembly of a streamed answer.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::chat::{Answer, ChatRequest, Content, Message, TokenUsage, ToolCall, ToolChoice, parse_arguments};
use crate::error::LlmError;

/// The `max_tokens` sent when the request sets none (Anthropic requires one).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The value of the `anthropic-version` header.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// The request body for `POST {base}/v1/messages`.
///
/// Structured output has no native form here: the schema becomes a tool named after it that the
/// model is made to call (alone: forced by name; beside other tools: "call any tool"), and its
/// input comes back as the answer's text.
pub(crate) fn request_body(request: &ChatRequest, model: &str, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages(&request.messages),
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
        .collect();
    let tool_choice = match &request.output_schema {
        Some(schema) => {
            tools.push(json!({
                "name": schema.name,
                "description": "Give your final answer by calling this tool; its input is the answer.",
                "input_schema": schema.schema,
            }));
            if request.tools.is_empty() || request.tool_choice == ToolChoice::None {
                json!({ "type": "tool", "name": schema.name })
            } else {
                json!({ "type": "any" })
            }
        }
        None => match request.tool_choice {
            ToolChoice::Auto => json!({ "type": "auto" }),
            ToolChoice::Required => json!({ "type": "any" }),
            ToolChoice::None => json!({ "type": "none" }),
        },
    };
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = tool_choice;
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// The conversation as strictly alternating user and assistant turns: consecutive messages of
/// one role (tool results, then a user message) merge into one turn; empty ones are left out.
fn messages(messages: &[Message]) -> Vec<Value> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message {
            Message::User(content) => ("user", content_blocks(content)),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::with_capacity(tool_calls.len() + 1);
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                blocks.extend(
                    tool_calls
                        .iter()
                        .map(|c| json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments) })),
                );
                ("assistant", blocks)
            }
            Message::ToolResult { call_id, content, is_error } => {
                let mut block = json!({ "type": "tool_result", "tool_use_id": call_id });
                let content = content_blocks(content);
                if !content.is_empty() {
                    block["content"] = Value::Array(content);
                }
                block["is_error"] = json!(is_error);
                ("user", vec![block])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect()
}

/// Text and image blocks; empty texts are left out (Anthropic refuses them).
fn content_blocks(content: &[Content]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|c| match c {
            Content::Text(text) if text.is_empty() => None,
            Content::Text(text) => Some(json!({ "type": "text", "text": text })),
            Content::Image { media_type, data_base64 } => {
                Some(json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data_base64 } }))
            }
        })
        .collect()
}

/// A tool call's input must be an object: other arguments (the raw text of unparsable ones) are
/// wrapped as `{"input": ...}`, none as `{}`.
fn tool_input(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::Null => Value::Object(Map::new()),
        other => json!({ "input": other }),
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Input tokens including cache writes and reads, or `None` when the server did not count them.
    fn input(&self) -> Option<u64> {
        let parts = [self.input_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens];
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    }
}

/// The answer in a (non-streamed) Messages response. `schema_tool` is the structured-output
/// tool's name: its input becomes the text.
pub(crate) fn parse_response(body: &[u8], schema_tool: Option<&str>) -> Result<Answer, LlmError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| LlmError::BadResponse(format!("not a Messages response: {e}")))?;
    let mut answer = Answer {
        model: response.model.filter(|m| !m.is_empty()),
        finish_reason: response.stop_reason,
        ..Answer::default()
    };
    for block in response.content {
        match block {
            Block::Text { text } => answer.text.push_str(&text),
            Block::ToolUse { name, input, .. } if Some(name.as_str()) == schema_tool => answer.text.push_str(&input.to_string()),
            Block::ToolUse { id, name, input } => answer.tool_calls.push(ToolCall { id, name, arguments: input }),
            Block::Other => {}
        }
    }
    let usage = response.usage.unwrap_or_default();
    answer.usage = TokenUsage { input_tokens: usage.input().unwrap_or(0), output_tokens: usage.output_tokens.unwrap_or(0) };
    Ok(answer)
}

/// A content block being streamed.
#[derive(Debug)]
enum OpenBlock {
    Text,
    Tool { id: String, name: String, json: String, start_input: Value },
    /// The structured-output tool: its JSON streams as text.
    Answer { json: String, start_input: Value },
    Other,
}

/// Reassembles a streamed Messages response from its server-sent events.
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    schema_tool: Option<String>,
    answer: Answer,
    open: Vec<(u64, OpenBlock)>,
    done: bool,
    emitted: bool,
}

impl StreamDecoder {
    /// A decoder for a request whose structured-output tool (if any) is `schema_tool`.
    pub(crate) fn new(schema_tool: Option<&str>) -> StreamDecoder {
        StreamDecoder { schema_tool: schema_tool.map(str::to_owned), answer: Answer::default(), open: Vec::new(), done: false, emitted: false }
    }

    /// Takes one event's data (its `type` field names the event); text deltas go to `on_text`.
    pub(crate) fn on_data(&mut self, data: &str, on_text: &mut (dyn FnMut(&str) + Send)) -> Result<(), LlmError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let event: Value =
            serde_json::from_str(data).map_err(|e| LlmError::BadResponse(format!("not a Messages event: {e}")))?;
        match event["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let message = &event["message"];
                if let Some(model) = message["model"].as_str().filter(|m| !m.is_empty()) {
                    self.answer.model = Some(model.to_owned());
                }
                self.on_usage(&message["usage"]);
            }
            "content_block_start" => {
                let index = event["index"].as_u64().unwrap_or(self.open.len() as u64);
                let block = &event["content_block"];
                let open = match block["type"].as_str() {
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            self.on_text(text, on_text);
                        }
                        OpenBlock::Text
                    }
                    Some("tool_use") => {
                        let name = block["name"].as_str().unwrap_or_default().to_owned();
                        let start_input = block["input"].clone();
                        if self.schema_tool.as_deref() == Some(name.as_str()) {
                            OpenBlock::Answer { json: String::new(), start_input }
                        } else {
                            let id = block["id"].as_str().unwrap_or_default().to_owned();
                            OpenBlock::Tool { id, name, json: String::new(), start_input }
                        }
                    }
                    _ => OpenBlock::Other,
                };
                self.open.push((index, open));
            }
            "content_block_delta" => {
                let index = event["index"].as_u64();
                let delta = &event["delta"];
                let position = self.open.iter().rposition(|(i, _)| Some(*i) == index).or(self.open.len().checked_sub(1));
                let Some(position) = position else {
                    return Err(LlmError::BadResponse("a content_block_delta outside any block".into()));
                };
                match (&mut self.open[position].1, delta["type"].as_str()) {
                    (OpenBlock::Text, Some("text_delta")) => {
                        let text = delta["text"].as_str().unwrap_or_default().to_owned();
                        self.on_text(&text, on_text);
                    }
                    (OpenBlock::Tool { json, .. }, Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    (OpenBlock::Answer { json, .. }, Some("input_json_delta")) => {
                        let piece = delta["partial_json"].as_str().unwrap_or_default().to_owned();
                        json.push_str(&piece);
                        self.on_text(&piece, on_text);
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = event["index"].as_u64();
                let position = self.open.iter().rposition(|(i, _)| Some(*i) == index).or(self.open.len().checked_sub(1));
                if let Some(position) = position {
                    let (_, block) = self.open.remove(position);
                    self.close(block);
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.answer.finish_reason = Some(reason.to_owned());
                }
                self.on_usage(&event["usage"]);
            }
            "message_stop" => self.done = true,
            "error" => {
                let error = &event["error"];
                return Err(LlmError::Provider {
                    kind: error["type"].as_str().unwrap_or("error").to_owned(),
                    message: error["message"].as_str().map_or_else(|| error.to_string(), str::to_owned),
                });
            }
            // ping, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }

    fn on_text(&mut self, text: &str, on_text: &mut (dyn FnMut(&str) + Send)) {
        if !text.is_empty() {
            // The structured-output JSON is streamed raw, but the answer keeps its compact form
            // (added when its block closes), the same as without streaming.
            if !self.open.iter().any(|(_, b)| matches!(b, OpenBlock::Answer { .. })) {
                self.answer.text.push_str(text);
            }
            self.emitted = true;
            on_text(text);
        }
    }

    fn on_usage(&mut self, usage: &Value) {
        let Ok(usage) = serde_json::from_value::<Usage>(usage.clone()) else { return };
        if let Some(input) = usage.input() {
            self.answer.usage.input_tokens = input;
        }
        if let Some(output) = usage.output_tokens {
            self.answer.usage.output_tokens = output;
        }
    }

    fn close(&mut self, block: OpenBlock) {
        let input = |json: &str, start_input: Value| {
            if json.trim().is_empty() {
                if start_input.is_null() { Value::Object(Map::new()) } else { start_input }
            } else {
                parse_arguments(json)
            }
        };
        match block {
            OpenBlock::Tool { id, name, json, start_input } => {
                self.answer.tool_calls.push(ToolCall { id, name, arguments: input(&json, start_input) });
            }
            OpenBlock::Answer { json, start_input } => {
                let value = input(&json, start_input);
                let text = match value {
                    Value::String(raw) => raw,
                    value => value.to_string(),
                };
                self.answer.text.push_str(&text);
            }
            OpenBlock::Text | OpenBlock::Other => {}
        }
    }

    /// Whether the server said the message is over.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any text went to `on_text` (after which the call cannot be retried).
    pub(crate) fn emitted(&self) -> bool {
        self.emitted
    }

    /// The whole answer, once the stream has ended.
    pub(crate) fn finish(mut self) -> Result<Answer, LlmError> {
        if !self.done {
            return Err(LlmError::Transport("the stream ended before the answer was complete".into()));
        }
        for (_, block) in std::mem::take(&mut self.open) {
            self.close(block);
        }
        Ok(self.answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{OutputSchema, ToolSpec};

    fn decode(schema_tool: Option<&str>, events: &[Value]) -> (Result<Answer, LlmError>, Vec<String>) {
        let mut deltas = Vec::new();
        let mut decoder = StreamDecoder::new(schema_tool);
        for event in events {
            if let Err(e) = decoder.on_data(&event.to_string(), &mut |t| deltas.push(t.to_owned())) {
                return (Err(e), deltas);
            }
        }
        (decoder.finish(), deltas)
    }

    fn tool(name: &str) -> ToolSpec {
        ToolSpec { name: name.into(), description: format!("{name}s"), parameters: json!({"type": "object"}) }
    }

    #[test]
    fn turns_alternate_and_tool_results_merge_into_one_user_turn() {
        let call = |id: &str| ToolCall { id: id.into(), name: "click".into(), arguments: json!({"i": 1}) };
        let body = request_body(
            &ChatRequest {
                system: Some("sys".into()),
                messages: vec![
                    Message::user_text("start"),
                    Message::Assistant { text: "Clicking.".into(), tool_calls: vec![call("t1"), call("t2")] },
                    Message::ToolResult { call_id: "t1".into(), content: vec![Content::Text("ok".into())], is_error: false },
                    Message::ToolResult { call_id: "t2".into(), content: vec![], is_error: true },
                    Message::User(vec![Content::Text("now".into()), Content::Text(String::new())]),
                    Message::Assistant { text: String::new(), tool_calls: vec![] },
                    Message::user_text("again"),
                ],
                ..ChatRequest::default()
            },
            "claude",
            false,
        );
        assert_eq!(
            body,
            json!({
                "model": "claude",
                "max_tokens": 4096,
                "system": "sys",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "start"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Clicking."},
                        {"type": "tool_use", "id": "t1", "name": "click", "input": {"i": 1}},
                        {"type": "tool_use", "id": "t2", "name": "click", "input": {"i": 1}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok"}], "is_error": false},
                        {"type": "tool_result", "tool_use_id": "t2", "is_error": true},
                        {"type": "text", "text": "now"},
                        {"type": "text", "text": "again"},
                    ]},
                ],
            })
        );
    }

    #[test]
    fn tool_choices_and_structured_output() {
        let schema = OutputSchema { name: "verdict".into(), schema: json!({"type": "object"}) };
        let choice = |tools: Vec<ToolSpec>, tool_choice, output_schema: Option<OutputSchema>| {
            let body = request_body(&ChatRequest { tools, tool_choice, output_schema, ..ChatRequest::default() }, "m", true);
            assert_eq!(body["stream"], json!(true));
            let names: Vec<String> =
                body["tools"].as_array().map(|t| t.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default();
            (body["tool_choice"].clone(), names)
        };
        assert_eq!(choice(vec![], ToolChoice::Auto, None), (Value::Null, vec![]));
        assert_eq!(choice(vec![tool("a")], ToolChoice::Auto, None), (json!({"type": "auto"}), vec!["a".into()]));
        assert_eq!(choice(vec![tool("a")], ToolChoice::Required, None), (json!({"type": "any"}), vec!["a".into()]));
        assert_eq!(choice(vec![tool("a")], ToolChoice::None, None), (json!({"type": "none"}), vec!["a".into()]));
        assert_eq!(
            choice(vec![], ToolChoice::Auto, Some(schema.clone())),
            (json!({"type": "tool", "name": "verdict"}), vec!["verdict".into()])
        );
        assert_eq!(
            choice(vec![tool("a")], ToolChoice::Auto, Some(schema.clone())),
            (json!({"type": "any"}), vec!["a".into(), "verdict".into()])
        );
        assert_eq!(
            choice(vec![tool("a")], ToolChoice::None, Some(schema)),
            (json!({"type": "tool", "name": "verdict"}), vec!["a".into(), "verdict".into()])
        );
    }

    #[test]
    fn unparsable_arguments_are_wrapped_in_an_object() {
        assert_eq!(tool_input(&json!("{oops")), json!({"input": "{oops"}));
        assert_eq!(tool_input(&Value::Null), json!({}));
        assert_eq!(tool_input(&json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn a_response_with_text_tools_and_the_schema_tool() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hm"},
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "toolu_1", "name": "click", "input": {"i": 2}},
                {"type": "tool_use", "id": "toolu_2", "name": "verdict", "input": {"ok": true}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3},
        });
        let answer = parse_response(body.to_string().as_bytes(), Some("verdict")).unwrap();
        assert_eq!(answer.text, "Sure.{\"ok\":true}");
        assert_eq!(answer.tool_calls, vec![ToolCall { id: "toolu_1".into(), name: "click".into(), arguments: json!({"i": 2}) }]);
        assert_eq!(answer.usage, TokenUsage { input_tokens: 15, output_tokens: 3 });
        assert_eq!(answer.model.as_deref(), Some("claude-x"));
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn a_stream_is_reassembled() {
        let (answer, deltas) = decode(
            None,
            &[
                json!({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "ping"}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "click", "input": {}}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"i\""}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 4}"}}),
                json!({"type": "content_block_stop", "index": 1}),
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_10", "name": "noargs", "input": {}}}),
                json!({"type": "content_block_stop", "index": 2}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
                json!({"type": "message_stop"}),
            ],
        );
        let answer = answer.unwrap();
        assert_eq!(deltas, ["Hel", "lo"]);
        assert_eq!(answer.text, "Hello");
        assert_eq!(
            answer.tool_calls,
            vec![
                ToolCall { id: "toolu_9".into(), name: "click".into(), arguments: json!({"i": 4}) },
                ToolCall { id: "toolu_10".into(), name: "noargs".into(), arguments: json!({}) },
            ]
        );
        assert_eq!(answer.usage, TokenUsage { input_tokens: 12, output_tokens: 9 });
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn the_schema_tool_streams_as_text() {
        let (answer, deltas) = decode(
            Some("verdict"),
            &[
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 1}}}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "verdict", "input": {}}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"ok\": "}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "true}"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_stop"}),
            ],
        );
        let answer = answer.unwrap();
        assert_eq!(deltas, ["{\"ok\": ", "true}"]);
        assert_eq!(answer.text, "{\"ok\":true}");
        assert!(answer.tool_calls.is_empty());
    }

    #[test]
    fn an_error_event_or_a_cut_stream_fails() {
        let (answer, _) = decode(
            None,
            &[json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})],
        );
        assert_eq!(answer, Err(LlmError::Provider { kind: "overloaded_error".into(), message: "Overloaded".into() }));
        let (answer, _) = decode(None, &[json!({"type": "message_start", "message": {}})]);
        assert!(matches!(answer, Err(LlmError::Transport(_))));
    }
}
