//! `{{name}}` templates: URLs, header values, JSON bodies, and an MCP server's command line,
//! environment, URL and headers. Names are looked up in a [`Scope`] (see [`crate::Variables`] for
//! the precedence); an unknown name is an error, never an empty string.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::error::ToolError;
use crate::variables::Variables;

/// What is percent-encoded when a value goes into a URL: everything but RFC 3986's unreserved
/// characters, so a value stays one component (`a/b` cannot add a path segment, `x&y=1` cannot
/// add a query parameter).
pub(crate) const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The longest name a placeholder may have.
const MAX_NAME: usize = 128;

/// Where template names are looked up: the tool's own variables, then the call's arguments
/// (when the template may use them), then the caller's environment — or, in an [`Scope::own`]
/// scope, the tool's own variables only.
pub(crate) struct Scope<'a> {
    arguments: Option<&'a Map<String, Value>>,
    variables: &'a Variables,
    /// Only the tool's own values (places that decide where a request goes or what runs).
    own_only: bool,
}

/// What a name stands for.
enum Found<'a> {
    Argument(&'a Value),
    Variable(&'a str),
}

impl Found<'_> {
    /// The value as text: a string as is, `null` as nothing, anything else as compact JSON.
    fn text(&self) -> String {
        match self {
            Found::Argument(Value::String(text)) => text.clone(),
            Found::Argument(Value::Null) => String::new(),
            Found::Argument(other) => other.to_string(),
            Found::Variable(text) => (*text).to_owned(),
        }
    }
}

impl<'a> Scope<'a> {
    /// A scope with arguments (HTTP tools) or without (an MCP server's definition).
    pub(crate) fn new(arguments: Option<&'a Map<String, Value>>, variables: &'a Variables) -> Scope<'a> {
        Scope { arguments, variables, own_only: false }
    }

    /// A scope of the tool's own variables only: what decides where a request goes (a URL's
    /// origin, an MCP server's URL) or what runs (a stdio server's command and arguments) is
    /// never the caller's to choose.
    pub(crate) fn own(variables: &'a Variables) -> Scope<'a> {
        Scope { arguments: None, variables, own_only: true }
    }

    fn lookup(&self, name: &str, place: &str) -> Result<Found<'a>, ToolError> {
        if let Some(value) = self.variables.own(name) {
            return Ok(Found::Variable(value));
        }
        let callers = self.variables.environment(name).is_some() || self.arguments.is_some_and(|a| a.contains_key(name));
        if self.own_only && callers {
            return Err(ToolError::InvalidTemplate {
                place: place.to_owned(),
                reason: format!("{{{{{name}}}}} must be one of the tool's own variables: a caller's arguments or environment cannot set it"),
            });
        }
        if let Some(value) = self.arguments.filter(|_| !self.own_only).and_then(|arguments| arguments.get(name)) {
            return Ok(Found::Argument(value));
        }
        if let Some(value) = self.variables.environment(name).filter(|_| !self.own_only) {
            return Ok(Found::Variable(value));
        }
        let mut known: Vec<String> = self.arguments.map(|a| a.keys().cloned().collect()).unwrap_or_default();
        known.extend(self.variables.names());
        known.sort();
        known.dedup();
        Err(ToolError::UnknownPlaceholder { name: name.to_owned(), place: place.to_owned(), known })
    }

    /// `template` with every placeholder replaced by its value as text.
    pub(crate) fn render_text(&self, template: &str, place: &str) -> Result<String, ToolError> {
        let mut out = String::with_capacity(template.len());
        for piece in parse(template) {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) => out.push_str(&self.lookup(name, place)?.text()),
            }
        }
        Ok(out)
    }

    /// A URL template rendered: values are percent-encoded as one URL component, except a
    /// placeholder that begins the template, which is the base URL (`{{base_url}}/items`): it
    /// is inserted as is, and must be one of the tool's own variables (the egress policy checks
    /// the result either way).
    pub(crate) fn render_url(&self, template: &str) -> Result<String, ToolError> {
        let place = "the URL template";
        let mut out = String::with_capacity(template.len());
        for (index, piece) in parse(template.trim()).into_iter().enumerate() {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) if index == 0 => {
                    let origin = Scope { own_only: true, ..*self };
                    out.push_str(&origin.lookup(name, place)?.text());
                }
                Piece::Placeholder(name) => {
                    out.extend(utf8_percent_encode(&self.lookup(name, place)?.text(), URL_COMPONENT));
                }
            }
        }
        Ok(out)
    }

    /// A JSON template rendered: a string that is exactly one placeholder becomes the value
    /// itself (an argument keeps its JSON type: `"{{count}}"` → `3`); other strings and object
    /// keys are rendered as text; numbers, booleans and null stay as they are.
    pub(crate) fn render_json(&self, template: &Value, place: &str) -> Result<Value, ToolError> {
        Ok(match template {
            Value::String(text) => match parse(text).as_slice() {
                [Piece::Placeholder(name)] => match self.lookup(name, place)? {
                    Found::Argument(value) => value.clone(),
                    Found::Variable(value) => Value::String(value.to_owned()),
                },
                _ => Value::String(self.render_text(text, place)?),
            },
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| self.render_json(item, place)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, item)| Ok((self.render_text(key, place)?, self.render_json(item, place)?)))
                    .collect::<Result<_, ToolError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// A part of a template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'t> {
    Text(&'t str),
    Placeholder(&'t str),
}

/// Splits a template into text and placeholders. `{{ name }}` is a placeholder when the name is
/// letters, digits, `_`, `-` or `.`; any other `{{` is text (JSON or code in a body stays as is).
fn parse(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        if is_name(name) {
            if open > 0 {
                pieces.push(Piece::Text(&rest[..open]));
            }
            pieces.push(Piece::Placeholder(name));
            rest = &after[close + 2..];
        } else {
            pieces.push(Piece::Text(&rest[..open + 2]));
            rest = after;
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn variables() -> Variables {
        Variables {
            variables: [("base".to_owned(), "https://api.example.com/v1".to_owned())].into(),
            private_variables: [("token".to_owned(), "t0k/en".to_owned())].into(),
            environment_variables: Default::default(),
        }
    }

    #[test]
    fn placeholders_are_found_and_other_braces_are_text() {
        assert_eq!(
            parse("a{{ x }}b{{y}}"),
            [Piece::Text("a"), Piece::Placeholder("x"), Piece::Text("b"), Piece::Placeholder("y")]
        );
        assert_eq!(parse("{{{x}}}"), [Piece::Text("{{"), Piece::Text("{x}}}")]);
        assert_eq!(parse("{{not a name}} {{open"), [Piece::Text("{{"), Piece::Text("not a name}} {{open")]);
        assert_eq!(parse(""), []);
    }

    #[test]
    fn urls_encode_values_except_a_leading_base() {
        let vars = variables();
        let args = json!({"q": "a b&c=d/e", "n": 5}).as_object().cloned().unwrap();
        let scope = Scope::new(Some(&args), &vars);
        assert_eq!(
            scope.render_url("{{base}}/search?q={{q}}&n={{n}}&k={{token}}").unwrap(),
            "https://api.example.com/v1/search?q=a%20b%26c%3Dd%2Fe&n=5&k=t0k%2Fen"
        );
    }

    #[test]
    fn json_keeps_argument_types_and_unknown_names_are_errors() {
        let vars = variables();
        let args = json!({"count": 3, "tags": ["a"], "name": "Ada"}).as_object().cloned().unwrap();
        let scope = Scope::new(Some(&args), &vars);
        let body = json!({"count": "{{count}}", "tags": "{{ tags }}", "greeting": "hi {{name}}", "{{name}}": true, "auth": "{{token}}"});
        assert_eq!(
            scope.render_json(&body, "the body template").unwrap(),
            json!({"count": 3, "tags": ["a"], "greeting": "hi Ada", "Ada": true, "auth": "t0k/en"})
        );
        let error = scope.render_text("x {{nope}}", "header X-Test").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown placeholder {{nope}} in header X-Test: no argument or variable has that name (known: base, count, name, tags, token)"
        );
    }

    #[test]
    fn values_are_not_expanded_again() {
        let vars = variables();
        let args = json!({"q": "{{token}}"}).as_object().cloned().unwrap();
        assert_eq!(Scope::new(Some(&args), &vars).render_text("{{q}}", "x").unwrap(), "{{token}}");
        // Without arguments (an MCP server's definition) only variables are seen.
        assert!(Scope::new(None, &vars).render_text("{{q}}", "x").is_err());
    }
}
