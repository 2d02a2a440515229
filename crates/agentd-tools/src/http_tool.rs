//! HTTP tools: a request built from templates, sent through the egress policy, its answer read
//! within the limits and returned masked.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use agentd_egress::{EgressClient, EgressError};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arguments;
use crate::debug::Reporter;
use crate::error::{ToolError, seconds};
use crate::headers;
use crate::limits::ToolLimits;
use crate::mask::Masker;
use crate::template::Scope;
use crate::variables::Variables;

/// The most of a failed answer's body an [`ToolError::HttpStatus`] quotes, in characters.
const ERROR_BODY_EXCERPT: usize = 500;

/// The response headers an [`HttpToolOutput`] keeps (the rest are rarely useful to a model).
const KEPT_HEADERS: [&str; 7] =
    ["content-type", "content-length", "content-language", "location", "retry-after", "etag", "last-modified"];

/// A user-defined HTTP tool.
///
/// Templates use `{{name}}` (see [`Variables`] for where names are looked up):
/// - `url_template`: values are percent-encoded as one URL component, except a placeholder that
///   begins the template (a base URL such as `{{base_url}}/items`), inserted as is. Everything
///   before the path (scheme, host, port) is the tool's own: placeholders there name its own
///   variables, and a caller's value that would land there is refused
///   ([`ToolError::ChangesDestination`]);
/// - `headers`: values as text (header names are literal);
/// - `body_template`: any JSON; a string that is exactly one placeholder becomes the value with its
///   JSON type (`"{{count}}"` → `3`), other strings and keys are rendered as text. It is sent as
///   JSON (`Content-Type: application/json` unless a header sets one) — except a template that
///   renders to a string while a header sets a non-JSON `Content-Type`: then the string is the body
///   as is (a form, XML). No template, no body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpTool {
    /// The request method.
    pub method: HttpMethod,
    /// The URL, with placeholders.
    pub url_template: String,
    /// Request headers (name → value template).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body, with placeholders.
    #[serde(default)]
    pub body_template: Option<Value>,
    /// The JSON schema the arguments must match (`{}` accepts any object).
    #[serde(default = "any_object")]
    pub parameters: Value,
}

fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// The methods an HTTP tool may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl HttpMethod {
    /// The method's name, as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }

    /// The method named `raw` (any case).
    pub fn parse(raw: &str) -> Option<HttpMethod> {
        use HttpMethod::*;
        [Get, Post, Put, Patch, Delete, Head, Options].into_iter().find(|m| m.as_str().eq_ignore_ascii_case(raw.trim()))
    }

    fn to_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Options => reqwest::Method::OPTIONS,
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an HTTP tool's successful (2xx) request returned, masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpToolOutput {
    /// The status code.
    pub status: u16,
    /// A few response headers (lower-case names): content type and length, location, retry-after,
    /// etag, last-modified.
    pub headers: BTreeMap<String, String>,
    /// The body: JSON when it is JSON, else text.
    pub body: ResponseBody,
    /// Whether the body was cut at [`ToolLimits::max_response_bytes`] (a cut JSON body is text).
    pub truncated: bool,
    /// From sending the request to the end of the body.
    pub elapsed_ms: u64,
}

/// An answer's body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseBody {
    /// A JSON body (declared JSON, or undeclared and parsing as JSON).
    Json(Value),
    /// Any other body, as UTF-8 (invalid sequences replaced).
    Text(String),
}

/// What came back, before it is interpreted.
struct Received {
    status: reqwest::StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    truncated: bool,
}

/// Executes `tool`. Errors are returned unmasked (the caller masks them); outputs are masked here.
pub(crate) async fn execute(
    client: &EgressClient,
    limits: &ToolLimits,
    tool: &HttpTool,
    arguments: &Value,
    variables: &Variables,
    masker: &Masker,
    reporter: &Reporter,
) -> Result<HttpToolOutput, ToolError> {
    let arguments = arguments::validate(&tool.parameters, arguments)?;
    let scope = Scope::new(arguments, variables);
    let url = scope.render_url(&tool.url_template)?;
    let parsed = client.policy().check_url(&url).map_err(ToolError::Egress)?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let method = tool.method;

    let mut headers = HeaderMap::new();
    for (name, value) in headers::render(&tool.headers, &scope, masker)? {
        headers.append(name, value);
    }
    let body = match &tool.body_template {
        Some(template) => Some(scope.render_json(template, "the body template")?),
        None => None,
    };
    let declared_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = body.map(|body| match body {
        Value::String(text) if declared_type.as_deref().is_some_and(|t| !is_json_type(t)) => text.into_bytes(),
        other => {
            if declared_type.is_none() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            serde_json::to_vec(&other).unwrap_or_default()
        }
    });

    let mut request = client
        .request(method.to_reqwest(), parsed.as_str())
        .map_err(ToolError::Egress)?
        .headers(headers)
        .timeout(limits.http_timeout);
    if let Some(body) = body {
        request = request.body(body);
    }

    reporter.line(format!("{method} {url}"));
    let started = Instant::now();
    let outcome = tokio::time::timeout(limits.http_timeout, send(request, limits.max_response_bytes)).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let timeout = || ToolError::Timeout { operation: format!("{method} {host}"), limit: limits.http_timeout };
    let received = match outcome {
        Ok(Ok(received)) => received,
        Ok(Err(error)) => {
            let error = transport_error(error, method, &host, timeout);
            match &error {
                ToolError::Timeout { .. } => {
                    reporter.line(format!("{method} {url} gave no answer within {}", seconds(limits.http_timeout)));
                }
                other => reporter.line(format!("{method} {url} failed after {elapsed_ms} ms: {other}")),
            }
            return Err(error);
        }
        Err(_elapsed) => {
            reporter.line(format!("{method} {url} gave no answer within {}", seconds(limits.http_timeout)));
            return Err(timeout());
        }
    };

    let cut = if received.truncated { format!(" (cut at {} bytes)", limits.max_response_bytes) } else { String::new() };
    reporter.line(format!(
        "{method} {url} → {} in {elapsed_ms} ms, {} bytes{cut}",
        received.status,
        received.body.len()
    ));
    if !received.status.is_success() {
        let text = String::from_utf8_lossy(&received.body);
        let excerpt: String = text.chars().take(ERROR_BODY_EXCERPT).collect();
        return Err(ToolError::HttpStatus {
            method: method.to_string(),
            host,
            status: received.status.as_u16(),
            body: masker.mask(&excerpt),
        });
    }
    let content_type = received.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let body = interpret(&received.body, content_type, received.truncated);
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = received.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), masker.mask(value)))
        })
        .collect();
    let body = match body {
        ResponseBody::Json(value) => ResponseBody::Json(masker.mask_value(value)),
        ResponseBody::Text(text) => ResponseBody::Text(masker.mask(&text)),
    };
    Ok(HttpToolOutput { status: received.status.as_u16(), headers, body, truncated: received.truncated, elapsed_ms })
}

/// Sends the request and reads at most `max` bytes of the answer (reading stops there).
async fn send(request: reqwest::RequestBuilder, max: usize) -> Result<Received, reqwest::Error> {
    let mut response = request.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    let mut body = Vec::with_capacity(response.content_length().map_or(16 * 1024, |n| n.min(max as u64) as usize));
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Received { status, headers, body, truncated })
}

/// JSON when the body says it is (or says nothing and parses), else text.
fn interpret(body: &[u8], content_type: Option<&str>, truncated: bool) -> ResponseBody {
    let may_be_json = content_type.is_none_or(is_json_type) && !truncated;
    if may_be_json && let Ok(value) = serde_json::from_slice::<Value>(body) {
        return ResponseBody::Json(value);
    }
    ResponseBody::Text(String::from_utf8_lossy(body).into_owned())
}

/// `application/json`, `application/problem+json`, `text/json`...
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.ends_with("/json") || essence.ends_with("+json")
}

/// A reqwest error as a tool error: the policy's refusal if that is what it carries, a timeout,
/// or the innermost cause (never the URL).
fn transport_error(
    error: reqwest::Error,
    method: HttpMethod,
    host: &str,
    timeout: impl Fn() -> ToolError,
) -> ToolError {
    if let Some(egress) = EgressError::find_in(&error) {
        return ToolError::Egress(egress.clone());
    }
    if error.is_timeout() {
        return timeout();
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    ToolError::Http { method: method.to_string(), host: host.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_json_when_they_say_so_or_say_nothing() {
        assert_eq!(
            interpret(br#"{"a":1}"#, Some("application/json; charset=utf-8"), false),
            ResponseBody::Json(json!({"a": 1}))
        );
        assert_eq!(interpret(br#"[1]"#, None, false), ResponseBody::Json(json!([1])));
        assert_eq!(interpret(br#"{"a":1}"#, Some("text/plain"), false), ResponseBody::Text(r#"{"a":1}"#.into()));
        assert_eq!(interpret(br#"{"a":"#, Some("application/json"), false), ResponseBody::Text(r#"{"a":"#.into()));
        assert_eq!(
            interpret(br#"{"a":1}"#, Some("application/problem+json"), true),
            ResponseBody::Text(r#"{"a":1}"#.into())
        );
    }

    #[test]
    fn methods_parse_in_any_case_and_definitions_read_from_json() {
        assert_eq!(HttpMethod::parse(" post "), Some(HttpMethod::Post));
        assert_eq!(HttpMethod::parse("TRACE"), None);
        let tool: HttpTool =
            serde_json::from_value(json!({"method": "GET", "url_template": "https://x.example/{{q}}"})).unwrap();
        assert_eq!(tool.parameters, json!({"type": "object"}));
        assert!(tool.headers.is_empty() && tool.body_template.is_none());
    }
}
