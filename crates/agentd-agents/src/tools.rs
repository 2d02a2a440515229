//! The browser agent's tools as the LLM sees them (terse schemas: every token here is paid
//! on every step), and the parsing of a tool call into a [`Step`]: a browser [`Action`] or
//! one of the agent's own moves (read the page, finish, ask a person).

use agentd_browser::Action;
use agentd_domain::ResponseType;
use agentd_llm::{ToolCall, ToolSpec};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What one tool call asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A browser action; `flagged` is the model's reason when it asked for a person's
    /// confirmation first.
    Browser {
        /// The action.
        action: Action,
        /// Why the model wants it confirmed, if it does.
        flagged: Option<String>,
    },
    /// Read the page's main content as Markdown.
    Extract,
    /// Finish with an answer.
    Done {
        /// The answer as the model wrote it.
        response: String,
        /// How to read it.
        kind: ResponseType,
    },
    /// Ask a person for a value.
    RequestInput {
        /// What is asked for.
        field_name: String,
        /// Why, shown to the person.
        reason: String,
    },
    /// Ask a person for permission.
    RequestPermission {
        /// What for, shown to the person.
        reason: String,
    },
}

impl Step {
    /// True when this step ends or pauses the turn: nothing after it in the same reply runs.
    pub fn ends_turn(&self) -> bool {
        !matches!(self, Step::Browser { .. })
    }
}

/// Tools whose action may do something a person should confirm; they take a `sensitive`
/// reason by which the model asks for that confirmation itself.
const FLAGGABLE: [&str; 7] = ["click", "type", "select", "check", "press_keys", "navigate", "upload"];

fn tool(name: &str, description: &str, mut properties: Value, required: &[&str]) -> ToolSpec {
    if FLAGGABLE.contains(&name) {
        // Explained once in the system prompt rather than in every tool.
        properties["sensitive"] = json!({"type": "string"});
    }
    let mut parameters = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        parameters["required"] = json!(required);
    }
    ToolSpec { name: name.to_owned(), description: description.to_owned(), parameters }
}

/// The tools of the DOM driver. Descriptions say only what the name and the arguments do not;
/// when to ask a person, and what `sensitive` does, is said once in the system prompt.
pub fn specs() -> Vec<ToolSpec> {
    let int = json!({"type": "integer"});
    let num = json!({"type": "number"});
    let text = json!({"type": "string"});
    let flag = json!({"type": "boolean"});
    let texts = json!({"type": "array", "items": text});
    vec![
        tool("click", "Click [index].", json!({"index": int, "button": {"enum": ["single", "double", "right"]}}), &["index"]),
        tool("click_at", "Click a viewport point (CSS px), for what has no index.", json!({"x": num, "y": num}), &["x", "y"]),
        tool(
            "type",
            "Type into [index], replacing its value unless append.",
            json!({"index": int, "text": text, "append": flag, "enter": flag}),
            &["index", "text"],
        ),
        tool("select", "Choose an option of select [index] by label or value.", json!({"index": int, "option": text}), &["index", "option"]),
        tool("check", "Check or uncheck [index].", json!({"index": int, "checked": flag}), &["index", "checked"]),
        tool("hover", "Hover over [index].", json!({"index": int}), &["index"]),
        tool(
            "scroll",
            "Scroll by pages (negative: up), inside [index], or until to_text shows.",
            json!({"pages": num, "index": int, "to_text": text}),
            &[],
        ),
        tool("press_keys", "Press keys in order, e.g. [\"Enter\"], [\"Control+a\"].", json!({"keys": texts}), &["keys"]),
        tool("navigate", "Open url.", json!({"url": text}), &["url"]),
        tool("history", "Go back, forward or reload.", json!({"go": {"enum": ["back", "forward", "reload"]}}), &["go"]),
        tool("tab", "Open (at url), switch to or close tab id.", json!({"do": {"enum": ["open", "switch", "close"]}, "id": text, "url": text}), &["do"]),
        tool(
            "wait",
            "Wait for text, a CSS selector, a navigation or network quiet.",
            json!({"for": {"enum": ["text", "selector", "navigation", "network_idle"]}, "value": text, "timeout_ms": int}),
            &["for"],
        ),
        tool("upload", "Put files from the session's folder into file input [index].", json!({"index": int, "files": texts}), &["index", "files"]),
        tool("extract", "Read the page's main content as Markdown.", json!({}), &[]),
        tool("done", "Finish with the answer.", json!({"response": text, "type": {"enum": ["STRING", "JSON", "MARKDOWN"]}}), &["response"]),
        tool("request_user_input", "Ask the user for a value.", json!({"field_name": text, "reason": text}), &["field_name", "reason"]),
        tool("request_permission", "Ask the user's permission.", json!({"reason": text}), &["reason"]),
    ]
}

fn args<T: DeserializeOwned>(call: &ToolCall) -> Result<T, String> {
    let value = match &call.arguments {
        Value::Null => json!({}),
        Value::String(raw) if raw.trim().is_empty() => json!({}),
        Value::String(raw) => return Err(format!("the arguments of `{}` are not valid JSON: {raw}", call.name)),
        other => other.clone(),
    };
    serde_json::from_value(value).map_err(|e| format!("bad arguments for `{}`: {e}", call.name))
}

/// Turns a tool call into a step, or says what is wrong with it (for the model).
pub fn parse(call: &ToolCall) -> Result<Step, String> {
    #[derive(Deserialize)]
    struct History {
        go: String,
    }
    #[derive(Deserialize)]
    struct Tab {
        #[serde(rename = "do")]
        what: String,
        id: Option<String>,
        url: Option<String>,
    }
    #[derive(Deserialize)]
    struct Wait {
        #[serde(rename = "for")]
        what: String,
        value: Option<String>,
        timeout_ms: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Done {
        response: Value,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    #[derive(Deserialize)]
    struct Input {
        field_name: String,
        reason: String,
    }
    #[derive(Deserialize)]
    struct Permission {
        reason: String,
    }
    let browser = |action: Action| Ok(Step::Browser { action, flagged: None });
    match call.name.as_str() {
        "history" => match args::<History>(call)?.go.as_str() {
            "back" => browser(Action::Back),
            "forward" => browser(Action::Forward),
            "reload" => browser(Action::Reload),
            other => Err(format!("history: `go` must be back, forward or reload, not `{other}`")),
        },
        "tab" => {
            let tab = args::<Tab>(call)?;
            let id = || tab.id.clone().ok_or_else(|| format!("tab: `{}` needs the tab's `id`", tab.what));
            match tab.what.as_str() {
                "open" => browser(Action::OpenTab { url: tab.url.clone() }),
                "switch" => browser(Action::SwitchTab { id: id()? }),
                "close" => browser(Action::CloseTab { id: id()? }),
                other => Err(format!("tab: `do` must be open, switch or close, not `{other}`")),
            }
        }
        "wait" => {
            let wait = args::<Wait>(call)?;
            let value = || wait.value.clone().ok_or_else(|| format!("wait: waiting for a {} needs `value`", wait.what));
            let timeout_ms = wait.timeout_ms;
            match wait.what.as_str() {
                "text" => browser(Action::WaitForText { text: value()?, timeout_ms }),
                "selector" => browser(Action::WaitForSelector { selector: value()?, timeout_ms }),
                "navigation" => browser(Action::WaitForNavigation { timeout_ms }),
                "network_idle" => browser(Action::WaitForNetworkIdle { quiet_ms: None, timeout_ms }),
                other => Err(format!("wait: `for` must be text, selector, navigation or network_idle, not `{other}`")),
            }
        }
        "extract" => Ok(Step::Extract),
        "done" => {
            let done = args::<Done>(call)?;
            let kind = match done.kind.as_deref() {
                None => None,
                Some(kind) => Some(kind.to_ascii_uppercase().parse::<ResponseType>().map_err(|e| format!("done: {e}"))?),
            };
            // A model may hand JSON over as a value rather than a string.
            let (response, kind) = match done.response {
                Value::String(text) => (text, kind.unwrap_or(ResponseType::String)),
                other => (other.to_string(), kind.unwrap_or(ResponseType::Json)),
            };
            Ok(Step::Done { response, kind })
        }
        "request_user_input" => {
            let input = args::<Input>(call)?;
            Ok(Step::RequestInput { field_name: input.field_name, reason: input.reason })
        }
        "request_permission" => Ok(Step::RequestPermission { reason: args::<Permission>(call)?.reason }),
        "click" | "click_at" | "type" | "select" | "check" | "hover" | "scroll" | "press_keys" | "navigate" | "upload" => {
            let mut tagged = match &call.arguments {
                Value::Object(map) => map.clone(),
                Value::Null => Default::default(),
                _ => return Err(format!("the arguments of `{}` must be a JSON object", call.name)),
            };
            let flagged = match tagged.remove("sensitive") {
                Some(Value::String(reason)) if !reason.trim().is_empty() => Some(reason),
                _ => None,
            };
            tagged.insert("action".into(), json!(call.name));
            serde_json::from_value::<Action>(Value::Object(tagged))
                .map(|action| Step::Browser { action, flagged })
                .map_err(|e| format!("bad arguments for `{}`: {e}", call.name))
        }
        other => Err(format!("there is no tool `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_browser::ClickKind;

    fn browser(action: Action) -> Step {
        Step::Browser { action, flagged: None }
    }

    fn call(name: &str, arguments: Value) -> ToolCall {
        ToolCall { id: "c1".into(), name: name.into(), arguments }
    }

    #[test]
    fn every_tool_parses_from_its_own_schema_names() {
        let cases = [
            (call("click", json!({"index": 3, "button": "double"})), browser(Action::Click { index: 3, button: ClickKind::Double })),
            (call("click", json!({"index": 3})), browser(Action::Click { index: 3, button: ClickKind::Single })),
            (call("type", json!({"index": 1, "text": "x", "enter": true})), browser(Action::Type { index: 1, text: "x".into(), append: false, enter: true })),
            (call("history", json!({"go": "back"})), browser(Action::Back)),
            (call("tab", json!({"do": "switch", "id": "T1"})), browser(Action::SwitchTab { id: "T1".into() })),
            (call("wait", json!({"for": "text", "value": "Saved"})), browser(Action::WaitForText { text: "Saved".into(), timeout_ms: None })),
            (call("extract", Value::Null), Step::Extract),
            (call("done", json!({"response": "ok"})), Step::Done { response: "ok".into(), kind: ResponseType::String }),
            (call("done", json!({"response": {"a": 1}})), Step::Done { response: "{\"a\":1}".into(), kind: ResponseType::Json }),
            (call("done", json!({"response": "# Hi", "type": "markdown"})), Step::Done { response: "# Hi".into(), kind: ResponseType::Markdown }),
            (call("request_permission", json!({"reason": "buy"})), Step::RequestPermission { reason: "buy".into() }),
            (
                call("click", json!({"index": 4, "sensitive": "it places the order"})),
                Step::Browser { action: Action::Click { index: 4, button: ClickKind::Single }, flagged: Some("it places the order".into()) },
            ),
        ];
        for (call, step) in cases {
            assert_eq!(parse(&call).unwrap(), step, "{}", call.name);
        }
        let names: Vec<String> = specs().into_iter().map(|t| t.name).collect();
        assert!(names.iter().all(|n| parse(&call(n, json!({}))).map_or_else(|e| !e.contains("there is no tool"), |_| true)));
    }

    #[test]
    fn every_browser_tool_is_a_reserved_name() {
        for spec in specs() {
            assert!(agentd_domain::BUILT_IN_TOOLS.contains(&spec.name.as_str()), "{} is missing from BUILT_IN_TOOLS", spec.name);
        }
    }

    #[test]
    fn the_schemas_stay_small_and_complete() {
        let specs = specs();
        assert_eq!(specs.len(), 17);
        // As an OpenAI-compatible request carries them: every character is paid on every step.
        let sent: Vec<Value> = specs
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        let chars = Value::Array(sent).to_string().chars().count();
        assert!(chars <= 4_200, "the tool schemas grew to {chars} characters (~{} tokens)", chars / 4);
        for spec in &specs {
            assert!(!spec.description.is_empty(), "{} has no description", spec.name);
            let sensitive = spec.parameters["properties"].get("sensitive").is_some();
            assert_eq!(sensitive, FLAGGABLE.contains(&spec.name.as_str()), "{}: `sensitive` where it is flaggable", spec.name);
            if let Some(required) = spec.parameters["required"].as_array() {
                assert!(required.iter().all(|r| spec.parameters["properties"].get(r.as_str().unwrap()).is_some()), "{}", spec.name);
            }
        }
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        assert!(parse(&call("click", json!({"index": "x"}))).unwrap_err().contains("click"));
        assert!(parse(&call("fly", json!({}))).unwrap_err().contains("no tool `fly`"));
        assert!(parse(&call("tab", json!({"do": "close"}))).unwrap_err().contains("id"));
        assert!(parse(&call("type", Value::String("{oops".into()))).unwrap_err().contains("JSON object"));
        assert!(parse(&call("done", json!({"response": "x", "type": "XML"}))).unwrap_err().contains("response type"));
    }
}
