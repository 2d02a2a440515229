//! Checking a call's arguments against the tool's JSON schema before anything is sent.

use serde_json::{Map, Value};

use crate::error::ToolError;

/// How many problems an error lists at most.
const MAX_PROBLEMS: usize = 10;

/// The arguments as a JSON object, checked against `schema` (`null` counts as `{}`). Each problem
/// names the argument it is about.
pub(crate) fn validate<'a>(schema: &Value, arguments: &'a Value) -> Result<Option<&'a Map<String, Value>>, ToolError> {
    let object = match arguments {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => {
            return Err(ToolError::InvalidArguments {
                problems: vec![format!("the arguments must be a JSON object, not {}", json_type(other))],
            });
        }
    };
    let validator =
        jsonschema::validator_for(schema).map_err(|e| ToolError::InvalidSchema { reason: e.to_string() })?;
    let empty = Value::Object(Map::new());
    let instance = if object.is_some() { arguments } else { &empty };
    let problems: Vec<String> = validator
        .iter_errors(instance)
        .take(MAX_PROBLEMS)
        .map(|error| {
            let path = error.instance_path().to_string();
            let argument = path.trim_start_matches('/');
            if argument.is_empty() { error.to_string() } else { format!("`{argument}`: {error}") }
        })
        .collect();
    if problems.is_empty() { Ok(object) } else { Err(ToolError::InvalidArguments { problems }) }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problems_name_the_argument() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "opts": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            "required": ["a", "b"],
        });
        let error = validate(&schema, &json!({"a": "x", "opts": {"n": 1.5}})).unwrap_err();
        let ToolError::InvalidArguments { problems } = &error else { panic!("{error:?}") };
        assert!(problems.iter().any(|p| p.starts_with("`a`:") && p.contains("number")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("`opts/n`:")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("\"b\" is a required property")), "{problems:?}");
        assert!(validate(&schema, &json!({"a": 1, "b": 2})).is_ok());
        assert_eq!(
            validate(&schema, &json!([1])).unwrap_err().to_string(),
            "invalid arguments: the arguments must be a JSON object, not an array"
        );
        assert!(matches!(validate(&json!({"type": 12}), &json!({})), Err(ToolError::InvalidSchema { .. })));
    }
}
