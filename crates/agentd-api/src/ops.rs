//! Operations endpoints: `/healthz` (open to anyone), `/metrics` (an API key or the metrics
//! token, or no key on a listener of its own: [`MetricsAccess`]), and the API's own
//! description (`/openapi.json`, rendered for people at `/docs`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use agentd_store::WriteHealth;
use axum::{Extension, Json};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth;
use crate::state::AppState;
use crate::wire::Health;

/// Where `/metrics` is served and who may read it. The counts it shows span every project, so
/// they are not for anyone who can reach the API's port.
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// On the API's port, to any valid API key (`Authorization: Bearer` or `X-API-Key`), or to
    /// `Authorization: Bearer <token>` when a metrics token is set; otherwise 401.
    Keyed(Option<MetricsToken>),
    /// Not on the API's port (404 there): [`crate::metrics_router`] serves it without a key on
    /// a listener the operator chose, and whoever can reach that listener may read it.
    SeparateListener,
}

/// The token that reads `/metrics` besides API keys: kept as its SHA-256 and compared in
/// constant time; `Debug` never shows it.
#[derive(Clone)]
pub struct MetricsToken([u8; 32]);

impl MetricsToken {
    /// The token `secret`.
    pub fn new(secret: &str) -> Self {
        Self(digest(secret))
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ.
    fn matches(&self, presented: &str) -> bool {
        self.0.iter().zip(digest(presented)).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

fn digest(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(text.as_bytes()));
    out
}

/// Who the `/metrics` route in front of a request lets in (an extension on that route).
#[derive(Debug, Clone)]
pub(crate) enum MetricsGate {
    /// Anyone (the separate listener).
    Open,
    /// A valid API key, or the token when there is one.
    Keyed(Option<MetricsToken>),
}

/// `Authorization: Bearer <token>`'s token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The server's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Liveness, and whether the store takes writes (no authentication): 503 with the reason
/// while it does not (a full or read-only disk, a failing one), 200 once it does again.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let reason = match state.store().write_health().await {
        WriteHealth::Writable => None,
        WriteHealth::Unavailable(fault) => Some(fault.reason()),
        WriteHealth::Failing => Some("the database does not take writes; the server log has the details"),
    };
    let store = reason.is_none();
    let health = Health {
        status: if store { "ok" } else { "degraded" }.to_owned(),
        store,
        reason: reason.map(str::to_owned),
        version: VERSION.to_owned(),
    };
    let status = if store { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(health)).into_response()
}

/// Prometheus metrics in the text exposition format, for any valid API key or the metrics
/// token (`Authorization: Bearer <token>`); 401 without. When the server serves metrics on a
/// listener of their own (`metrics_addr`), this route is there, without a key, and 404 here.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text"), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn metrics(State(state): State<AppState>, Extension(gate): Extension<MetricsGate>, headers: HeaderMap) -> Response {
    let mut usage = None;
    if let MetricsGate::Keyed(token) = &gate {
        let by_token = token.as_ref().is_some_and(|token| bearer(&headers).is_some_and(|b| token.matches(b)));
        if !by_token {
            match auth::admit(&state, auth::presented_key(&headers).map(str::to_owned)).await {
                Ok((_, counted)) => usage = Some(counted),
                Err(refusal) => return refusal.into_response(),
            }
        }
    }
    let by_status = match state.store().count_sessions_by_status().await {
        Ok(counts) => counts,
        Err(error) => return crate::error::ApiError::from(error).into_response(),
    };
    let body = state.metrics.render(&by_status, state.engine.events_appended());
    let mut response = (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        body,
    )
        .into_response();
    if let Some(usage) = usage {
        usage.write_headers(response.headers_mut());
    }
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    v.get("type").and_then(Value::as_str).unwrap_or("object").to_owned()
}

/// Renders the OpenAPI document as one self-contained HTML page (no scripts, no CDN), so the
/// reference works on an offline machine.
pub fn render_docs(spec: &Value) -> String {
    let title = spec.pointer("/info/title").and_then(Value::as_str).unwrap_or("API");
    let version = spec.pointer("/info/version").and_then(Value::as_str).unwrap_or("");
    let description = spec.pointer("/info/description").and_then(Value::as_str).unwrap_or("");
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} reference</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         .op{{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}}\
         .m{{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}}\
         code{{background:#f4f4f4;padding:0 .25rem}} table{{border-collapse:collapse}} td,th{{padding:.15rem .6rem;text-align:left;vertical-align:top}}\
         </style></head><body><h1>{t} <small>{v}</small></h1><p>{d}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a></p>",
        t = escape(title),
        v = escape(version),
        d = escape(description)
    );
    let empty = serde_json::Map::new();
    let paths = spec.get("paths").and_then(Value::as_object).unwrap_or(&empty);
    for (path, item) in paths {
        let Some(item) = item.as_object() else { continue };
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let summary = op.get("summary").or_else(|| op.get("description")).and_then(Value::as_str).unwrap_or("");
            html.push_str(&format!(
                "<div class=\"op\"><span class=\"m\">{method}</span> <code>{}</code><p>{}</p>",
                escape(path),
                escape(summary)
            ));
            if let Some(params) = op.get("parameters").and_then(Value::as_array).filter(|p| !p.is_empty()) {
                html.push_str("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>");
                for p in params {
                    let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
                    html.push_str(&format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        escape(get("name")),
                        escape(get("in")),
                        escape(get("description"))
                    ));
                }
                html.push_str("</table>");
            }
            if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                html.push_str(&format!("<p>Body: <a href=\"#{0}\">{0}</a></p>", escape(&schema_name(body))));
            }
            if let Some(responses) = op.get("responses").and_then(Value::as_object) {
                let list: Vec<String> = responses
                    .iter()
                    .map(|(code, r)| match r.pointer("/content/application~1json/schema") {
                        Some(s) => format!("{code} <a href=\"#{0}\">{0}</a>", escape(&schema_name(s))),
                        None => code.clone(),
                    })
                    .collect();
                html.push_str(&format!("<p>Responses: {}</p>", list.join(", ")));
            }
            html.push_str("</div>");
        }
    }
    html.push_str("<h2>Schemas</h2>");
    let schemas = spec.pointer("/components/schemas").and_then(Value::as_object).unwrap_or(&empty);
    for (name, schema) in schemas {
        html.push_str(&format!("<div class=\"op\" id=\"{0}\"><b>{0}</b>", escape(name)));
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            html.push_str("<table>");
            for (field, p) in props {
                let doc = p.get("description").and_then(Value::as_str).unwrap_or("");
                let mark = if required.contains(&field.as_str()) { " (required)" } else { "" };
                html.push_str(&format!(
                    "<tr><td><code>{}</code>{mark}</td><td>{}</td></tr>",
                    escape(field),
                    escape(doc)
                ));
            }
            html.push_str("</table>");
        } else if let Some(doc) = schema.get("description").and_then(Value::as_str) {
            html.push_str(&format!("<p>{}</p>", escape(doc)));
        }
        html.push_str("</div>");
    }
    html.push_str("</body></html>");
    html
}

/// The pre-rendered description documents.
#[derive(Clone)]
pub struct ApiDescription {
    /// `/openapi.json`.
    pub json: std::sync::Arc<String>,
    /// `/docs`.
    pub html: std::sync::Arc<String>,
}

impl ApiDescription {
    /// Serves the JSON.
    pub fn json_response(&self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.json.as_str().to_owned()).into_response()
    }

    /// Serves the HTML.
    pub fn html_response(&self) -> Response {
        Html(self.html.as_str().to_owned()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_itself_only_and_never_prints() {
        let token = MetricsToken::new("metrics-token-0123456789");
        assert!(token.matches("metrics-token-0123456789"));
        assert!(!token.matches("metrics-token-012345678") && !token.matches("") && !token.matches("metrics-token-0123456789 "));
        assert_eq!(format!("{token:?}"), "MetricsToken(..)");
        let headers = |value: &str| HeaderMap::from_iter([(header::AUTHORIZATION, value.parse().unwrap())]);
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("abc")), None);
        assert_eq!(bearer(&headers("Basic abc")), None);
    }
}
