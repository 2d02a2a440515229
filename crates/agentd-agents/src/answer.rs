//! The end of a task: the model's `done` answer checked against what the session asked for
//! (its type, and its JSON schema when it gave one) before it becomes the session's response.

use agentd_domain::ResponseType;
use agentd_engine::Completion;
use serde_json::Value;

/// Turns the model's answer into the session's completion, or says (for the model) why it
/// cannot be accepted.
pub fn accept(response: String, kind: ResponseType, schema: Option<&Value>) -> Result<Completion, String> {
    if kind == ResponseType::Json || schema.is_some() {
        let value: Value = serde_json::from_str(unfenced(&response))
            .map_err(|e| format!("the response must be JSON{}: {e}", if schema.is_some() { " matching the schema" } else { "" }))?;
        if let Some(schema) = schema {
            let validator = jsonschema::validator_for(schema).map_err(|e| format!("the session's schema is unusable: {e}"))?;
            let errors: Vec<String> = validator.iter_errors(&value).take(5).map(|e| format!("{} at `{}`", e, e.instance_path())).collect();
            if !errors.is_empty() {
                return Err(format!("the response does not match the schema: {}", errors.join("; ")));
            }
        }
        return Ok(Completion { response: value, response_type: ResponseType::Json });
    }
    if response.trim().is_empty() {
        return Err("the response is empty: say what was found or why the task could not be done".into());
    }
    Ok(Completion { response: Value::String(response), response_type: kind })
}

/// JSON without the Markdown code fence models like to wrap it in.
fn unfenced(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
        .map(|inner| inner.trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_checked_against_type_and_schema() {
        let schema = json!({"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]});
        let ok = accept(r#"{"price": 12.5}"#.into(), ResponseType::Json, Some(&schema)).unwrap();
        assert_eq!(ok.response, json!({"price": 12.5}));
        // A schema makes the answer JSON whatever type the model named.
        assert_eq!(accept(r#"{"price": 1}"#.into(), ResponseType::String, Some(&schema)).unwrap().response_type, ResponseType::Json);
        let wrong = accept(r#"{"price": "cheap"}"#.into(), ResponseType::Json, Some(&schema)).unwrap_err();
        assert!(wrong.contains("does not match") && wrong.contains("/price"), "{wrong}");
        assert!(accept("not json".into(), ResponseType::Json, None).unwrap_err().contains("must be JSON"));
        let fenced = "```json\n{\"price\": 2}\n```";
        assert_eq!(accept(fenced.into(), ResponseType::Json, Some(&schema)).unwrap().response, json!({"price": 2}));
        assert_eq!(accept("# Title".into(), ResponseType::Markdown, None).unwrap().response, json!("# Title"));
        assert!(accept("  ".into(), ResponseType::String, None).is_err());
    }
}
