//! OpenAI's Responses API with the `computer_use_preview` tool: the conversation lives on
//! OpenAI's side and each request names the previous response; a call's result is a
//! `computer_call_output` holding the new screenshot and the checks a person acknowledged.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Button, ComputerAction, ComputerCall, ComputerSetup, ProviderSafetyCheck, Reply, TurnInput, data_url};
use crate::TokenUsage;
use crate::error::LlmError;

/// The endpoint, joined to the base URL (`…/v1`).
pub(super) const PATH: &str = "/responses";

/// How long the model's `wait` lasts (it names no duration).
const WAIT_MS: u64 = 1_000;

#[derive(Clone, Debug, Default)]
pub(super) struct Conversation {
    pub(super) previous_response_id: Option<String>,
}

pub(super) fn request_body(state: &Conversation, setup: &ComputerSetup, model: &str, input: &TurnInput) -> Value {
    let mut items: Vec<Value> = input
        .results
        .iter()
        .map(|result| {
            let mut output = json!({ "type": "input_image", "image_url": data_url(&result.screenshot) });
            if let Some(url) = &result.url {
                output["current_url"] = json!(url);
            }
            let checks: Vec<Value> =
                result.acknowledged.iter().map(|c| json!({ "id": c.id, "code": c.code, "message": c.message })).collect();
            json!({ "type": "computer_call_output", "call_id": result.call_id, "acknowledged_safety_checks": checks, "output": output })
        })
        .collect();
    // An action's failure has no field of its own: it is said in a user message after the results.
    let errors: Vec<String> = input.results.iter().filter_map(|r| r.error.clone()).collect();
    let mut content: Vec<Value> = Vec::new();
    if !errors.is_empty() {
        content.push(json!({ "type": "input_text", "text": errors.join("\n") }));
    }
    if let Some(text) = &input.text {
        content.push(json!({ "type": "input_text", "text": text }));
    }
    if let Some(image) = &input.screenshot {
        content.push(json!({ "type": "input_image", "image_url": data_url(image) }));
    }
    if !content.is_empty() {
        items.push(json!({ "role": "user", "content": content }));
    }
    let mut body = json!({
        "model": model,
        "instructions": setup.instructions,
        "tools": [{
            "type": "computer_use_preview",
            "display_width": setup.screen.width,
            "display_height": setup.screen.height,
            "environment": "browser",
        }],
        "input": items,
        "reasoning": { "summary": "concise" },
        "truncation": "auto",
    });
    if let Some(id) = &state.previous_response_id {
        body["previous_response_id"] = json!(id);
    }
    body
}

#[derive(Deserialize)]
struct Response {
    id: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    output: Vec<Item>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item {
    Reasoning {
        #[serde(default)]
        summary: Vec<Value>,
    },
    ComputerCall {
        call_id: String,
        action: Value,
        #[serde(default)]
        pending_safety_checks: Vec<Check>,
    },
    Message {
        #[serde(default)]
        content: Vec<Value>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Check {
    id: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The reply and the response's id (the next request names it).
pub(super) fn parse_response(body: &[u8]) -> Result<(Reply, String), LlmError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| LlmError::BadResponse(format!("not a Responses API response: {e}")))?;
    if let Some(error) = response.error.filter(|e| !e.is_null()) {
        let message = error["message"].as_str().unwrap_or("the response failed").to_owned();
        return Err(LlmError::Provider { kind: error["code"].as_str().unwrap_or("error").to_owned(), message });
    }
    let mut reply = Reply { model: response.model.filter(|m| !m.is_empty()), ..Reply::default() };
    for item in response.output {
        match item {
            Item::Reasoning { summary } => {
                reply.reasoning.extend(summary.iter().filter_map(|s| s["text"].as_str()).filter(|t| !t.is_empty()).map(str::to_owned));
            }
            Item::ComputerCall { call_id, action, pending_safety_checks } => reply.calls.push(ComputerCall {
                id: call_id,
                action: action_of(&action),
                safety_checks: pending_safety_checks
                    .into_iter()
                    .map(|c| ProviderSafetyCheck {
                        id: c.id,
                        code: c.code.unwrap_or_else(|| "safety_check".into()),
                        message: c.message.unwrap_or_default(),
                    })
                    .collect(),
            }),
            Item::Message { content } => {
                for part in content {
                    if let Some(text) = part["text"].as_str() {
                        reply.text.push_str(text);
                    }
                }
            }
            Item::Other => {}
        }
    }
    let usage = response.usage.unwrap_or_default();
    reply.usage = TokenUsage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens };
    Ok((reply, response.id))
}

fn action_of(action: &Value) -> ComputerAction {
    let point = || Some((action["x"].as_f64()?.round() as i64, action["y"].as_f64()?.round() as i64));
    let kind = action["type"].as_str().unwrap_or_default();
    match kind {
        "click" => {
            let button = match action["button"].as_str().unwrap_or("left") {
                "right" => Button::Right,
                "wheel" | "middle" => Button::Middle,
                "back" => Button::Back,
                "forward" => Button::Forward,
                _ => Button::Left,
            };
            ComputerAction::Click { at: point(), button }
        }
        "double_click" => ComputerAction::DoubleClick { at: point() },
        "move" => match point() {
            Some(to) => ComputerAction::Move { to },
            None => ComputerAction::Unsupported { name: "move without x and y".into() },
        },
        "drag" => ComputerAction::Drag {
            path: action["path"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .filter_map(|p| Some((p["x"].as_f64()?.round() as i64, p["y"].as_f64()?.round() as i64)))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "scroll" => ComputerAction::Scroll {
            at: point(),
            dx: action["scroll_x"].as_f64().unwrap_or(0.0).round() as i64,
            dy: action["scroll_y"].as_f64().unwrap_or(0.0).round() as i64,
        },
        "type" => ComputerAction::Type { text: action["text"].as_str().unwrap_or_default().to_owned() },
        "keypress" => {
            let keys: Vec<&str> = action["keys"].as_array().map(|k| k.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            // One keypress is one combination: ["CTRL", "L"] is Control+L.
            ComputerAction::Keys { combos: vec![keys.join("+")] }
        }
        "wait" => ComputerAction::Wait { ms: action["ms"].as_u64().unwrap_or(WAIT_MS) },
        "screenshot" => ComputerAction::Screenshot,
        other => ComputerAction::Unsupported { name: other.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_of_the_tool_is_read() {
        let a = |v: Value| action_of(&v);
        assert_eq!(a(json!({"type": "click", "button": "right", "x": 3, "y": 4})), ComputerAction::Click { at: Some((3, 4)), button: Button::Right });
        assert_eq!(a(json!({"type": "double_click", "x": 1.6, "y": 2})), ComputerAction::DoubleClick { at: Some((2, 2)) });
        assert_eq!(a(json!({"type": "scroll", "x": 5, "y": 6, "scroll_x": 0, "scroll_y": 300})), ComputerAction::Scroll { at: Some((5, 6)), dx: 0, dy: 300 });
        assert_eq!(a(json!({"type": "keypress", "keys": ["CTRL", "A"]})), ComputerAction::Keys { combos: vec!["CTRL+A".into()] });
        assert_eq!(a(json!({"type": "drag", "path": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]})), ComputerAction::Drag { path: vec![(1, 2), (3, 4)] });
        assert_eq!(a(json!({"type": "wait"})), ComputerAction::Wait { ms: WAIT_MS });
        assert_eq!(a(json!({"type": "fly"})), ComputerAction::Unsupported { name: "fly".into() });
    }
}
