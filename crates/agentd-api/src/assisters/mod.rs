//! The Assisters agent API (seed 001; SPECS §2) as a thin adapter over the engine:
//! `POST /v1/agent/run` waits for a research, chat or coding session and answers
//! `{answer, steps, sources, sessionId, mode, cycles}`; `GET /v1/agent/stream` follows one as
//! Server-Sent Events (`data:` lines only, ending with `done` or `error`, then
//! `data: [DONE]`). Parameters become a native `CreateSessionRequest` checked by
//! `parse_create` (defaults and ranges are the engine's: `maxCycles` 1..8, 1 for chat and 5
//! otherwise); events are read through [`events::Transcript`]. Every rule lives in the engine.
//!
//! Choices where the documents are silent:
//! - Keys: `Authorization: Bearer` (or `X-API-Key`) through `auth::admit`, its rate limits
//!   included; then the key's tier must be one of `assisters_agent_tiers` (default `max`,
//!   `unlimited`), else 403 `permission_error`/`tier_required` — after admission, so a refused
//!   request counts against the key's limits and carries its headers.
//! - Headers on every answer of these routes: a fresh `X-Request-ID` (`req_<32 hex>`),
//!   `X-Processing-Time-Ms` (until the head is sent; for a stream, until it opens), and for a
//!   key with a per-minute limit `X-RateLimit-Limit-RPM` / `-Remaining-RPM` beside agentd's
//!   own `X-RateLimit-*-Minute` / `-Day`; `X-RateLimit-Reset-RPM` (unix seconds) on a 429 of
//!   the minute window, the one time agentd's limiter says when its window ends. A limit
//!   agentd does not set — an unlimited key's requests, and tokens (not limited per key) —
//!   reads as 4294967295 with a reset a minute ahead, so the headers are always there.
//! - Parameters: `query` missing or blank → 400 `missing_parameter`; `mode` (any case) other
//!   than chat/research/coding, or `maxCycles` not a whole number in 1..8 (a number, or a
//!   string of one: the SDK sends a string on the stream) → 400 `invalid_parameter`. An
//!   empty `mode`, `sessionId` or `maxCycles` counts as absent. `mode` defaults to `research`
//!   even on a follow-up (the documented default). A `sessionId` the project does not have
//!   → 404 `not_found_error`; one still running → 409 (a follow-up continues a finished one).
//!   A server that cannot run the agent (no LLM configured, no agent for the mode) answers
//!   503 `server_error`/`agent_unavailable` with the reason: the request itself is fine.
//! - A run ends as its session does: completed → 200; failed → 500 `server_error`/
//!   `agent_failed` with the session's error (503 when the server was stopping); timed out →
//!   504 `agent_timeout`; stopped by a person → 409 `session_stopped` (not a 5xx, so the SDK,
//!   which retries 429/5xx at once, does not start the work again). A client that goes away
//!   leaves the session running.

mod error;
mod events;
mod stream;

use std::time::Instant;

use agentd_domain::{Mode, Session};
use agentd_engine::EventStream;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Map, Number, Value};
use tracing::Instrument;

use crate::auth::{self, Caller};
use crate::sessions::parse_create;
use crate::state::AppState;
use crate::wire::CreateSessionRequest;

use error::{AssistersError, AssistersResult};
use events::{Transcript, Update};

/// The agent routes.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let refuse_method = || async { AssistersError::method_not_allowed().into_response() };
    Router::new()
        .route("/v1/agent/run", post(run).fallback(refuse_method))
        // HEAD would run the agent for nothing (axum answers it with the GET handler).
        .route("/v1/agent/stream", get(stream::stream).head(refuse_method).fallback(refuse_method))
        .route_layer(from_fn_with_state(state, admit))
        .layer(from_fn(stamp))
}

/// Adds `X-Request-ID` and `X-Processing-Time-Ms` to every answer; the request's log lines
/// carry the same id.
async fn stamp(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = format!("req_{}", uuid::Uuid::new_v4().simple());
    let span = tracing::info_span!("assisters", request_id = %id);
    let mut response = next.run(req).instrument(span).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", value);
    }
    headers.insert("x-processing-time-ms", HeaderValue::from(started.elapsed().as_millis() as u64));
    response
}

/// Admits the caller (key, rate limits, then tier) and adds the rate-limit headers to the
/// answer, refusals included.
async fn admit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secret = auth::presented_key(req.headers()).map(str::to_owned);
    let (caller, usage) = match auth::admit(&state, secret.clone()).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let error = match refusal.error.code {
                crate::ErrorCode::Unauthorized if secret.is_none() => {
                    AssistersError::unauthorized("Missing API key: send Authorization: Bearer <key>")
                }
                crate::ErrorCode::Unauthorized => AssistersError::unauthorized("Invalid API key"),
                _ => AssistersError::from(refusal.error.clone()),
            };
            let retry_after = error.retry_after;
            let mut response = error.into_response();
            refusal.write_headers(&mut response);
            per_minute_headers(response.headers_mut(), retry_after);
            return auth::answer_unread(req, response).await;
        }
    };
    let mut response = match tier_allowed(&state, secret.as_deref().unwrap_or_default()).await {
        Ok(()) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refused) => auth::answer_unread(req, refused.into_response()).await,
    };
    usage.write_headers(response.headers_mut());
    per_minute_headers(response.headers_mut(), None);
    response
}

/// Whether the key's tier may use the agent endpoints.
async fn tier_allowed(state: &AppState, secret: &str) -> AssistersResult<()> {
    let key = match state.store().api_key_by_hash(&auth::hash_key(secret)).await {
        Ok(Some(key)) => key,
        // Revoked between admission and now.
        Ok(None) => return Err(AssistersError::unauthorized("Invalid API key")),
        Err(error) => return Err(AssistersError::internal(error)),
    };
    if state.config.assisters_agent_tiers.contains(&key.tier) {
        Ok(())
    } else {
        Err(AssistersError::tier_required())
    }
}

/// What the rate-limit headers say for a limit agentd does not set (an unlimited key's
/// requests; tokens, which agentd does not limit per key).
const NO_LIMIT: u32 = auth::NO_LIMIT;

/// The Assisters names of the per-minute limit, from agentd's own headers already written;
/// `retry_after` (a 429) dates the reset when the minute window is the one exhausted. A
/// limit agentd does not set reads as [`NO_LIMIT`]; tokens are not limited.
fn per_minute_headers(headers: &mut HeaderMap, retry_after: Option<u64>) {
    let next_minute = chrono::Utc::now().timestamp().max(0) as u64 + 60;
    for name in ["x-ratelimit-limit-tpm", "x-ratelimit-remaining-tpm"] {
        headers.insert(name, HeaderValue::from(NO_LIMIT));
    }
    headers.insert("x-ratelimit-reset-tpm", HeaderValue::from(next_minute));
    if headers.get("x-ratelimit-limit-minute").is_none() {
        headers.insert("x-ratelimit-limit-rpm", HeaderValue::from(NO_LIMIT));
        headers.insert("x-ratelimit-remaining-rpm", HeaderValue::from(NO_LIMIT));
        headers.insert("x-ratelimit-reset-rpm", HeaderValue::from(next_minute));
        return;
    }
    let limit = headers.get("x-ratelimit-limit-minute").cloned();
    let remaining = headers.get("x-ratelimit-remaining-minute").cloned();
    if let Some(limit) = limit {
        headers.insert("x-ratelimit-limit-rpm", limit);
    }
    if let Some(remaining) = remaining {
        let exhausted = remaining.to_str().is_ok_and(|r| r == "0");
        headers.insert("x-ratelimit-remaining-rpm", remaining);
        if let (true, Some(seconds)) = (exhausted, retry_after) {
            let reset = chrono::Utc::now().timestamp().max(0) as u64 + seconds;
            headers.insert("x-ratelimit-reset-rpm", HeaderValue::from(reset));
        }
    }
}

/// The parameters of a run or a stream, typed; the session rules check them next.
#[derive(Debug, PartialEq)]
struct AgentParams {
    query: String,
    mode: Mode,
    session_id: Option<String>,
    max_cycles: Option<i64>,
}

impl AgentParams {
    fn new(query: Option<String>, mode: Option<String>, session_id: Option<String>, max_cycles: Option<i64>) -> AssistersResult<Self> {
        let present = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let query = present(query).ok_or_else(|| AssistersError::missing("query"))?;
        let mode = match present(mode).map(|m| m.to_ascii_lowercase()) {
            None => Mode::Research,
            Some(m) => match m.parse::<Mode>() {
                Ok(mode @ (Mode::Research | Mode::Chat | Mode::Coding)) => mode,
                _ => return Err(AssistersError::invalid("mode", format!("mode must be one of chat, research, coding; got `{m}`"))),
            },
        };
        Ok(Self { query, mode, session_id: present(session_id), max_cycles })
    }

    /// From a run's JSON body (an empty body reads as `{}`).
    fn from_body(bytes: Result<Bytes, BytesRejection>) -> AssistersResult<Self> {
        let bytes = bytes.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AssistersError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                "the request body is larger than the server accepts",
            ),
            _ => AssistersError::invalid_request(format!("could not read the request body: {rejection}")),
        })?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(AssistersError::invalid_request("the body must be a JSON object such as {\"query\": \"...\"}")),
                Err(e) => return Err(AssistersError::invalid_request(format!("the body is not valid JSON: {e}"))),
            }
        };
        let text = |name: &str| match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AssistersError::invalid(name, format!("{name} must be a string"))),
        };
        let max_cycles = match body.get("maxCycles") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(whole_number(n)?),
            Some(Value::String(s)) => cycles_text(s)?,
            Some(_) => return Err(bad_cycles()),
        };
        Self::new(text("query")?, text("mode")?, text("sessionId")?, max_cycles)
    }

    /// From a stream's query string (the first of repeated names counts).
    fn from_query(query: Option<&str>) -> AssistersResult<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (query, mode, session_id, max_cycles) = (get("query"), get("mode"), get("sessionId"), get("maxCycles"));
        Self::new(query, mode, session_id, max_cycles.as_deref().map(cycles_text).transpose()?.flatten())
    }

    fn into_request(self) -> CreateSessionRequest {
        CreateSessionRequest {
            goal: Some(self.query),
            mode: Some(self.mode.as_str().to_owned()),
            max_cycles: self.max_cycles,
            continues: self.session_id,
            ..CreateSessionRequest::default()
        }
    }
}

fn bad_cycles() -> AssistersError {
    AssistersError::invalid("maxCycles", "maxCycles must be a whole number from 1 to 8")
}

/// A JSON number that is whole (5 or 5.0).
fn whole_number(n: &Number) -> AssistersResult<i64> {
    if let Some(v) = n.as_i64() {
        return Ok(v);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        _ => Err(bad_cycles()),
    }
}

/// `maxCycles` written as text (the SDK's stream sends `"5"`); blank is absent.
fn cycles_text(text: &str) -> AssistersResult<Option<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>().map(Some).map_err(|_| bad_cycles())
}

/// Creates the session the parameters ask for and follows its events from the first.
async fn start(state: &AppState, caller: Caller, params: AgentParams) -> AssistersResult<(Session, EventStream)> {
    let new = parse_create(params.into_request(), &state.config.sessions)?;
    let session = state.engine.create_session(caller.project_id, new).await?;
    tracing::debug!(session_id = %session.id, project_id = %caller.project_id, mode = %session.spec.mode, "assisters agent session created");
    let events = state.engine.subscribe(caller.project_id, session.id, 0).await?;
    Ok((session, events))
}

/// `POST /v1/agent/run`: runs the agent and answers once its session ends.
async fn run(State(state): State<AppState>, caller: Caller, bytes: Result<Bytes, BytesRejection>) -> AssistersResult {
    let params = AgentParams::from_body(bytes)?;
    let (session, mut events) = start(&state, caller, params).await?;
    let mut transcript = Transcript::default();
    while let Some(event) = events.next().await {
        let event = event.map_err(AssistersError::internal)?;
        if let Some(Update::Finished(outcome)) = transcript.read(&event) {
            // `sessionId` names the conversation: the same on every follow-up.
            return Ok(Json(outcome?.run_body(session.conversation(), session.spec.mode.as_str())).into_response());
        }
    }
    // The stream ends before the session only when the server stops.
    Err(AssistersError::shutting_down())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> AssistersResult<AgentParams> {
        AgentParams::from_body(Ok(Bytes::from(json.to_owned())))
    }

    #[test]
    fn parameters_are_typed_with_the_documented_defaults() {
        let p = body(r#"{"query": " Summarize RAG "}"#).unwrap();
        assert_eq!(p, AgentParams { query: "Summarize RAG".into(), mode: Mode::Research, session_id: None, max_cycles: None });
        let p = body(r#"{"query": "q", "mode": "Chat", "maxCycles": 3.0, "sessionId": "abc"}"#).unwrap();
        assert_eq!((p.mode, p.max_cycles, p.session_id.as_deref()), (Mode::Chat, Some(3), Some("abc")));
        let p = AgentParams::from_query(Some("query=a%20b&mode=coding&maxCycles=8&sessionId=")).unwrap();
        assert_eq!((p.query.as_str(), p.mode, p.max_cycles, p.session_id), ("a b", Mode::Coding, Some(8), None));
        let p = AgentParams::from_query(Some("maxCycles=&query=x&query=y")).unwrap();
        assert_eq!((p.query.as_str(), p.max_cycles), ("x", None));
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let refused = |r: AssistersResult<AgentParams>| {
            let e = r.unwrap_err();
            (e.code, e.param)
        };
        let param = |p: &str| Some(p.to_owned());
        assert_eq!(refused(body("")), ("missing_parameter", param("query")));
        assert_eq!(refused(body(r#"{"query": "  "}"#)), ("missing_parameter", param("query")));
        assert_eq!(refused(body(r#"{"query": 5}"#)), ("invalid_parameter", param("query")));
        assert_eq!(refused(body(r#"{"query": "q", "mode": "browser"}"#)), ("invalid_parameter", param("mode")));
        assert_eq!(refused(body(r#"{"query": "q", "maxCycles": 2.5}"#)), ("invalid_parameter", param("maxCycles")));
        assert_eq!(refused(body(r#"{"query": "q", "maxCycles": [1]}"#)), ("invalid_parameter", param("maxCycles")));
        assert_eq!(refused(body("[1]")), ("invalid_request", None));
        assert_eq!(refused(body("{")), ("invalid_request", None));
        assert_eq!(refused(AgentParams::from_query(Some("query=q&maxCycles=five"))), ("invalid_parameter", param("maxCycles")));
        assert_eq!(refused(AgentParams::from_query(None)), ("missing_parameter", param("query")));
    }
}
