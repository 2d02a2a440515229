//! Anthropic's computer tool (a beta of the Messages API): the whole conversation is sent each
//! turn, so screenshots older than the last few are replaced by a line of text; a call's result
//! is a `tool_result` holding the new screenshot.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Button, ComputerAction, ComputerCall, ComputerSetup, Reply, TurnInput, pair};
use crate::TokenUsage;
use crate::anthropic::DEFAULT_MAX_TOKENS;
use crate::error::LlmError;

/// The endpoint, joined to the base URL without its `/v1`.
pub(super) const PATH: &str = "/v1/messages";

/// Screenshots kept in the history sent each turn (Anthropic's own agents keep three).
const KEPT_SCREENSHOTS: usize = 3;

/// Pixels per wheel click of `scroll_amount`.
const SCROLL_STEP_PX: i64 = 100;

/// The version of the computer tool a model takes, and the beta header it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ComputerTool {
    pub(super) kind: &'static str,
    pub(super) beta: &'static str,
}

impl ComputerTool {
    /// Claude 3.5 Sonnet takes the first version; Claude 3.7, the Claude 4 and 4.1 models and
    /// Sonnet/Haiku 4.5 the January 2025 one; newer models (Opus 4.5 on) the November 2025 one.
    pub(super) fn for_model(model: &str) -> ComputerTool {
        let m = model.to_ascii_lowercase();
        if m.contains("3-5-sonnet") || m.contains("3.5-sonnet") {
            return ComputerTool { kind: "computer_20241022", beta: "computer-use-2024-10-22" };
        }
        let january = ["3-7", "sonnet-4-0", "opus-4-0", "sonnet-4-2025", "opus-4-2025", "opus-4-1", "sonnet-4-5", "haiku-4-5"];
        if january.iter().any(|v| m.contains(v)) || m.ends_with("sonnet-4") || m.ends_with("opus-4") {
            return ComputerTool { kind: "computer_20250124", beta: "computer-use-2025-01-24" };
        }
        ComputerTool { kind: "computer_20251124", beta: "computer-use-2025-11-24" }
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct Conversation {
    messages: Vec<Value>,
}

impl Conversation {
    /// Appends the user's turn: the call results (one `tool_result` each), then text and image.
    pub(super) fn push_user(&mut self, input: &TurnInput) {
        let mut content: Vec<Value> = input
            .results
            .iter()
            .map(|result| {
                let mut parts = Vec::new();
                if let Some(error) = &result.error {
                    parts.push(json!({ "type": "text", "text": error }));
                }
                if let Some(url) = &result.url {
                    parts.push(json!({ "type": "text", "text": format!("The page is now {url}") }));
                }
                parts.push(image_block(&result.screenshot));
                json!({ "type": "tool_result", "tool_use_id": result.call_id, "content": parts, "is_error": result.error.is_some() })
            })
            .collect();
        if let Some(text) = &input.text {
            content.push(json!({ "type": "text", "text": text }));
        }
        if let Some(image) = &input.screenshot {
            content.push(image_block(image));
        }
        self.messages.push(json!({ "role": "user", "content": content }));
        self.drop_old_screenshots();
    }

    /// Appends the model's turn as it was sent (thinking blocks and all: the API wants them back).
    pub(super) fn push_assistant(&mut self, content: Vec<Value>) {
        self.messages.push(json!({ "role": "assistant", "content": content }));
    }

    pub(super) fn request_body(&self, setup: &ComputerSetup, model: &str, tool: ComputerTool) -> Value {
        json!({
            "model": model,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": setup.instructions,
            "tools": [{
                "type": tool.kind,
                "name": "computer",
                "display_width_px": setup.screen.width,
                "display_height_px": setup.screen.height,
            }],
            "messages": self.messages,
        })
    }

    /// Keeps the last [`KEPT_SCREENSHOTS`] images; older ones become a line of text.
    fn drop_old_screenshots(&mut self) {
        let mut seen = 0;
        for message in self.messages.iter_mut().rev() {
            let Some(blocks) = message["content"].as_array_mut() else { continue };
            for block in blocks.iter_mut().rev() {
                let nested = block["type"] == "tool_result";
                let images: Vec<&mut Value> = if nested {
                    block["content"].as_array_mut().map(|c| c.iter_mut().rev().collect()).unwrap_or_default()
                } else {
                    vec![block]
                };
                for image in images.into_iter().filter(|b| b["type"] == "image") {
                    seen += 1;
                    if seen > KEPT_SCREENSHOTS {
                        *image = json!({ "type": "text", "text": "(an earlier screenshot, left out)" });
                    }
                }
            }
        }
    }
}

fn image_block(image: &super::Image) -> Value {
    json!({ "type": "image", "source": { "type": "base64", "media_type": image.media_type, "data": image.data_base64 } })
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

/// The reply, and the content blocks to keep in the history.
pub(super) fn parse_response(body: &[u8]) -> Result<(Reply, Vec<Value>), LlmError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| LlmError::BadResponse(format!("not a Messages response: {e}")))?;
    let mut reply = Reply { model: response.model.filter(|m| !m.is_empty()), ..Reply::default() };
    let mut texts = Vec::new();
    for block in &response.content {
        match block["type"].as_str() {
            Some("text") => texts.extend(block["text"].as_str().map(str::to_owned)),
            Some("thinking") => reply.reasoning.extend(block["thinking"].as_str().map(str::to_owned)),
            Some("tool_use") => {
                let id = block["id"].as_str().unwrap_or_default().to_owned();
                let action = match block["name"].as_str() {
                    Some("computer") => action_of(&block["input"]),
                    other => ComputerAction::Unsupported { name: format!("tool {}", other.unwrap_or("?")) },
                };
                reply.calls.push(ComputerCall { id, action, safety_checks: Vec::new() });
            }
            _ => {}
        }
    }
    // Text beside calls is the model thinking aloud; without calls it is the answer.
    if reply.calls.is_empty() {
        reply.text = texts.join("\n");
    } else {
        reply.reasoning.extend(texts);
    }
    let usage = response.usage.unwrap_or_default();
    reply.usage = TokenUsage {
        input_tokens: usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
    };
    Ok((reply, response.content))
}

fn action_of(input: &Value) -> ComputerAction {
    let at = pair(&input["coordinate"]);
    let name = input["action"].as_str().unwrap_or_default();
    match name {
        "left_click" => ComputerAction::Click { at, button: Button::Left },
        "right_click" => ComputerAction::Click { at, button: Button::Right },
        "middle_click" => ComputerAction::Click { at, button: Button::Middle },
        "double_click" => ComputerAction::DoubleClick { at },
        "triple_click" => ComputerAction::TripleClick { at },
        "mouse_move" => match at {
            Some(to) => ComputerAction::Move { to },
            None => ComputerAction::Unsupported { name: "mouse_move without a coordinate".into() },
        },
        "left_click_drag" => match (pair(&input["start_coordinate"]), at) {
            (Some(from), Some(to)) => ComputerAction::Drag { path: vec![from, to] },
            _ => ComputerAction::Unsupported { name: "left_click_drag without start_coordinate and coordinate".into() },
        },
        "type" => ComputerAction::Type { text: input["text"].as_str().unwrap_or_default().to_owned() },
        // xdotool syntax: `ctrl+a`, several separated by spaces.
        "key" => ComputerAction::Keys { combos: input["text"].as_str().unwrap_or_default().split_whitespace().map(str::to_owned).collect() },
        "scroll" => {
            let amount = input["scroll_amount"].as_i64().unwrap_or(3) * SCROLL_STEP_PX;
            let (dx, dy) = match input["scroll_direction"].as_str() {
                Some("up") => (0, -amount),
                Some("left") => (-amount, 0),
                Some("right") => (amount, 0),
                _ => (0, amount),
            };
            ComputerAction::Scroll { at, dx, dy }
        }
        "wait" => ComputerAction::Wait { ms: (input["duration"].as_f64().unwrap_or(1.0).max(0.0) * 1000.0) as u64 },
        "screenshot" => ComputerAction::Screenshot,
        other => ComputerAction::Unsupported { name: other.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::computer::{CallResult, Image};

    #[test]
    fn every_action_of_the_tool_is_read() {
        let a = |v: Value| action_of(&v);
        assert_eq!(a(json!({"action": "left_click", "coordinate": [10, 20]})), ComputerAction::Click { at: Some((10, 20)), button: Button::Left });
        assert_eq!(a(json!({"action": "left_click"})), ComputerAction::Click { at: None, button: Button::Left });
        assert_eq!(a(json!({"action": "key", "text": "ctrl+a Delete"})), ComputerAction::Keys { combos: vec!["ctrl+a".into(), "Delete".into()] });
        assert_eq!(a(json!({"action": "scroll", "coordinate": [1, 2], "scroll_direction": "up", "scroll_amount": 2})), ComputerAction::Scroll { at: Some((1, 2)), dx: 0, dy: -200 });
        assert_eq!(a(json!({"action": "left_click_drag", "start_coordinate": [1, 2], "coordinate": [3, 4]})), ComputerAction::Drag { path: vec![(1, 2), (3, 4)] });
        assert_eq!(a(json!({"action": "wait", "duration": 0.5})), ComputerAction::Wait { ms: 500 });
        assert_eq!(a(json!({"action": "hold_key"})), ComputerAction::Unsupported { name: "hold_key".into() });
    }

    #[test]
    fn tool_versions_follow_the_model() {
        assert_eq!(ComputerTool::for_model("claude-sonnet-4-5").kind, "computer_20250124");
        assert_eq!(ComputerTool::for_model("claude-3-7-sonnet-20250219").kind, "computer_20250124");
        assert_eq!(ComputerTool::for_model("claude-sonnet-4-20250514").kind, "computer_20250124");
        assert_eq!(ComputerTool::for_model("claude-3-5-sonnet-20241022").beta, "computer-use-2024-10-22");
        assert_eq!(ComputerTool::for_model("claude-opus-4-5").kind, "computer_20251124");
    }

    #[test]
    fn only_the_last_screenshots_are_kept() {
        let shot = |n: u32| Image { media_type: "image/png".into(), data_base64: format!("IMG{n}") };
        let mut c = Conversation::default();
        c.push_user(&TurnInput { text: Some("task".into()), screenshot: Some(shot(0)), ..TurnInput::default() });
        for n in 1..=4 {
            c.push_assistant(vec![json!({"type": "tool_use", "id": format!("t{n}"), "name": "computer", "input": {}})]);
            let result = CallResult { call_id: format!("t{n}"), screenshot: shot(n), url: None, acknowledged: vec![], error: None };
            c.push_user(&TurnInput { results: vec![result], ..TurnInput::default() });
        }
        let sent = Value::Array(c.messages.clone()).to_string();
        assert!(!sent.contains("IMG0") && !sent.contains("IMG1"), "{sent}");
        assert!(sent.contains("IMG2") && sent.contains("IMG3") && sent.contains("IMG4"));
        assert_eq!(sent.matches("left out").count(), 2);
    }
}
