//! `{{name}}` templates: URLs, header values, JSON bodies, and an MCP server's command line,
//! environment, URL and headers. Names are looked up in a [`Scope`] (see [`crate::Variables`] for
//! the precedence); an unknown name is an error, never an empty string.
//!
//! A URL's origin (scheme, host, port) is the tool's own: [`Scope::render_url`] is the one place
//! that enforces it, for every way a tool runs (the native and Autessa execute endpoints, agents'
//! tool calls). [`authority_placeholders`] is the same rule read off a template, for checking a
//! definition before it is stored.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use url::Url;

use crate::error::{CallerInput, ToolError};
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

/// What a name stands for, and who set it.
enum Found<'a> {
    /// The tool's own variable (plain or private).
    Own(&'a str),
    /// The call's argument.
    Argument(&'a Value),
    /// The caller's environment variable.
    Environment(&'a str),
}

impl Found<'_> {
    /// The value as text: a string as is, `null` as nothing, anything else as compact JSON.
    fn text(&self) -> String {
        match self {
            Found::Argument(Value::String(text)) => text.clone(),
            Found::Argument(Value::Null) => String::new(),
            Found::Argument(other) => other.to_string(),
            Found::Own(text) | Found::Environment(text) => (*text).to_owned(),
        }
    }

    /// Who gave a value the caller chose: `None` for the tool's own.
    fn caller_input(&self) -> Option<CallerInput> {
        match self {
            Found::Own(_) => None,
            Found::Argument(_) => Some(CallerInput::Argument),
            Found::Environment(_) => Some(CallerInput::Environment),
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
            return Ok(Found::Own(value));
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
            return Ok(Found::Environment(value));
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
    /// placeholder that begins the template, which is the base URL (`{{base_url}}/items`),
    /// inserted as is.
    ///
    /// Where the request goes is the tool's own to say. A caller's value (an argument or an
    /// environment variable) is refused, naming it, when it would fill a placeholder of the
    /// URL's authority (see [`authority_placeholders`]) or, unless empty, land where the
    /// authority is still open — right after the host, before any `/`, `?` or `#`. Then the
    /// URL's origin (scheme, host, port) must be the one the tool's own values alone give. The
    /// egress policy checks the result after.
    pub(crate) fn render_url(&self, template: &str) -> Result<String, ToolError> {
        let place = "the URL template";
        let pieces = parse(template.trim());
        let authority = authority_flags(&pieces);
        let mut out = String::with_capacity(template.len());
        // The template filled with the tool's own values only (the caller's as nothing).
        let mut own_out = String::with_capacity(template.len());
        let mut first_caller = None;
        for (index, piece) in pieces.iter().enumerate() {
            match *piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    own_out.push_str(text);
                }
                Piece::Placeholder(name) => {
                    let found = self.lookup(name, place)?;
                    let text = found.text();
                    if let Some(input) = found.caller_input() {
                        if authority[index] || (!text.is_empty() && authority_open(&out)) {
                            let reason = moved_by(&out, &text);
                            return Err(ToolError::ChangesDestination { input, name: name.to_owned(), reason });
                        }
                        first_caller.get_or_insert((input, name));
                    }
                    let value: String =
                        if index == 0 { text } else { utf8_percent_encode(&text, URL_COMPONENT).collect() };
                    if found.caller_input().is_none() {
                        own_out.push_str(&value);
                    }
                    out.push_str(&value);
                }
            }
        }
        // The rule itself, whatever the encoding above: a caller's values never move the origin.
        // (A URL that does not parse is left to the egress policy, which refuses it.)
        if let (Some((input, name)), Ok(url)) = (first_caller, Url::parse(&out))
            && Url::parse(&own_out).ok().map(|own| origin(&own)) != Some(origin(&url))
        {
            return Err(ToolError::ChangesDestination {
                input,
                name: name.to_owned(),
                reason: "it would change the scheme, host or port the request goes to".into(),
            });
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
                    Found::Own(value) | Found::Environment(value) => Value::String(value.to_owned()),
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

/// The placeholders of a URL template that decide where the request goes — its scheme,
/// userinfo, host or port, everything before the path — so must name the tool's own
/// variables. A placeholder that directly follows another one (`{{base}}{{path}}`) is not
/// counted: the first one's value may end in a path; what a caller puts there is checked when
/// the URL is filled ([`Scope::render_url`]).
pub(crate) fn authority_placeholders(template: &str) -> Vec<&str> {
    let pieces = parse(template.trim());
    let flags = authority_flags(&pieces);
    pieces
        .iter()
        .zip(flags)
        .filter_map(|(piece, authority)| match piece {
            Piece::Placeholder(name) if authority => Some(*name),
            _ => None,
        })
        .collect()
}

/// Every placeholder's name in `template`, in order.
pub(crate) fn placeholder_names(template: &str) -> Vec<&str> {
    parse(template)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// For each piece: whether it is a placeholder in the URL's authority. The authority ends at
/// the first literal `/`, `?`, `#` or `\` that is not part of `://`.
fn authority_flags(pieces: &[Piece<'_>]) -> Vec<bool> {
    let mut open = true;
    let mut flags = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => {
                if open {
                    let rest = text.replacen("://", "", 1);
                    open = !rest.contains(['/', '?', '#', '\\']);
                }
                flags.push(false);
            }
            Piece::Placeholder(_) => {
                let after_placeholder = index > 0 && matches!(pieces[index - 1], Piece::Placeholder(_));
                flags.push(open && !after_placeholder);
            }
        }
    }
    flags
}

/// Whether text appended to `prefix` would still be part of the URL's authority: no `/`,
/// `?`, `#` or `\` after the scheme's `://` yet (or no `://` at all).
fn authority_open(prefix: &str) -> bool {
    match prefix.find("://") {
        Some(separator) => !prefix[separator + 3..].contains(['/', '?', '#', '\\']),
        None => true,
    }
}

/// Why a caller's value placed after `prefix` (still in the URL's authority) would move the
/// request. The value is never quoted (it may be a secret); only a leading separator is named.
fn moved_by(prefix: &str, value: &str) -> String {
    let after_host = prefix
        .find("://")
        .is_some_and(|separator| prefix[separator + 3..].ends_with(|c: char| c.is_ascii_alphanumeric() || c == ']'));
    if !after_host || value.is_empty() {
        return "it would fill the URL's scheme, host or port, which only the tool's own variables may".into();
    }
    let effect = match value.chars().next().unwrap_or_default() {
        '.' => "its leading `.` would name another host",
        '@' => "its leading `@` would turn the host into a user name before another host",
        ':' => "its leading `:` would choose the port",
        '/' => "its leading `/` would split the URL there",
        '\\' => "its leading `\\` would split the URL there",
        '?' => "its leading `?` would split the URL there",
        '#' => "its leading `#` would split the URL there",
        '%' => "its leading `%` starts an encoded character, which may read as a dot or a separator",
        _ => "it would become part of the host's name",
    };
    format!("placed right after the URL's host, {effect} (the tool's URL should put a `/` before it)")
}

/// A parsed URL's scheme, host and port (the default port when none is written).
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_owned(), url.host_str().map(str::to_owned), url.port_or_known_default())
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
    use crate::error::CallerInput;
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

    #[test]
    fn the_authority_is_everything_before_the_path() {
        let cases: [(&str, &[&str]); 9] = [
            ("http://{{host}}/x/{{p}}", &["host"]),
            ("{{base}}/items/{{id}}", &["base"]),
            ("{{base}}{{path}}?q={{q}}", &["base"]),
            ("https://{{user}}@api.example.com:{{port}}/v1?q={{q}}#{{f}}", &["user", "port"]),
            ("http://api.partner.test{{path}}", &["path"]),
            ("http://api.example.com?{{q}}", &[]),
            ("http://api.example.com\\{{p}}", &[]),
            ("{{base}}?next=https://{{x}}", &["base"]),
            ("{{scheme}}://{{host}}/", &["scheme", "host"]),
        ];
        for (template, expected) in cases {
            assert_eq!(authority_placeholders(template), expected, "{template}");
        }
    }

    fn arguments(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()
    }

    #[test]
    fn a_callers_value_right_after_the_host_is_refused_whatever_it_starts_with() {
        let vars = variables();
        for value in [".attacker.test", "@attacker.test", "/x", "\\x", "%2e", "%2Eattacker.test", "#x", "?x", ":8443", "x"] {
            let args = arguments(&[("path", value)]);
            let error = Scope::new(Some(&args), &vars).render_url("http://api.partner.test{{path}}").unwrap_err();
            let ToolError::ChangesDestination { input, name, reason } = &error else { panic!("{value}: {error:?}") };
            assert_eq!((*input, name.as_str()), (CallerInput::Argument, "path"), "{value}");
            assert!(reason.starts_with("placed right after the URL's host"), "{reason}");
            assert!(!error.to_string().contains("attacker"), "the value is not quoted: {error}");
        }
        let error = Scope::new(Some(&arguments(&[("path", ".attacker.test")])), &vars)
            .render_url("http://api.partner.test{{path}}")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "argument `path` would change where the request goes: placed right after the URL's host, its leading `.` \
             would name another host (the tool's URL should put a `/` before it)"
        );
        // After a base whose value is only an origin, the same; an environment value too.
        let args = arguments(&[("path", ".attacker.test")]);
        assert!(matches!(
            Scope::new(Some(&args), &vars).render_url("{{origin}}{{path}}"),
            Err(ToolError::UnknownPlaceholder { .. })
        ));
        let mut vars = vars;
        vars.variables.insert("origin".into(), "https://api.example.com".into());
        vars.environment_variables.insert("tail".into(), "evil.test".into());
        let error = Scope::new(Some(&args), &vars).render_url("{{origin}}{{path}}").unwrap_err();
        assert!(matches!(&error, ToolError::ChangesDestination { input: CallerInput::Argument, .. }), "{error:?}");
        let error = Scope::new(None, &vars).render_url("{{origin}}{{tail}}").unwrap_err();
        assert!(matches!(&error, ToolError::ChangesDestination { input: CallerInput::Environment, name, .. } if name == "tail"));
        // Nothing there moves nothing.
        let empty = arguments(&[("path", "")]);
        assert_eq!(Scope::new(Some(&empty), &vars).render_url("{{origin}}{{path}}").unwrap(), "https://api.example.com");
    }

    #[test]
    fn callers_values_in_the_path_and_query_stay_there() {
        let mut vars = variables();
        vars.variables.insert("root".into(), "https://api.example.com/v1/".into());
        let args = arguments(&[("path", ".attacker.test@x:1/#?\\"), ("q", "a@b.c:1/d#e")]);
        let scope = Scope::new(Some(&args), &vars);
        assert_eq!(
            scope.render_url("https://api.example.com/{{path}}?q={{q}}").unwrap(),
            "https://api.example.com/.attacker.test%40x%3A1%2F%23%3F%5C?q=a%40b.c%3A1%2Fd%23e"
        );
        // A base whose value ends in a path: what follows it is in the path.
        let item = arguments(&[("path", "items.json")]);
        assert_eq!(Scope::new(Some(&item), &vars).render_url("{{root}}{{path}}").unwrap(), "https://api.example.com/v1/items.json");
    }

    #[test]
    fn a_callers_value_cannot_fill_the_authority() {
        let vars = variables();
        let args = arguments(&[("host", "attacker.test"), ("port", "8443")]);
        for (template, name) in [("http://{{host}}/x", "host"), ("https://api.example.com:{{port}}/", "port"), ("{{host}}/x", "host")] {
            let error = Scope::new(Some(&args), &vars).render_url(template).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("argument `{name}` would change where the request goes: it would fill the URL's scheme, host or port, which only the tool's own variables may"),
                "{template}"
            );
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let parse = |u: &str| origin(&Url::parse(u).unwrap());
        assert_eq!(parse("https://a.test/x"), parse("https://a.test:443/y?z"));
        assert_ne!(parse("https://a.test/"), parse("http://a.test/"));
        assert_ne!(parse("https://a.test/"), parse("https://a.test.b.test/"));
        assert_ne!(parse("https://a.test/"), parse("https://a.test:8443/"));
    }
}
