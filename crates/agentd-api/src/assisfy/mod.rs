//! The Assisfy API (seeds 000 and 002; SPECS §1) as a thin adapter over the engine:
//! `POST /api/v1/sessions` and `GET /api/v1/sessions/{id}`, the session's events over a
//! WebSocket at `/v1/connect` and over SSE at `/events/v1/connect`, answers to
//! `external_resource_requested` by socket or `POST /events/v1/egress`, and the `assisfy`
//! webhook format of auto-triggered sessions. It translates requests and events; every rule
//! lives in the engine.
//!
//! Choices where the documents and the SDK differ, or are silent:
//! - Keys: `Authorization: Bearer` (the document) or `x-api-key` (the SDK) on REST;
//!   `?apiKey=` on the streams (the SDK), or the WebSocket's first message (the document).
//!   A missing or wrong key is `401 {"error": "Invalid API key"}`; errors are
//!   `{"error": "<message naming the field>"}`.
//! - Create answers 201 with the documented fields at the top and the same under `data`
//!   (with `data.sessionId`, which the SDK reads); `url` is the SDK's name for `start_url`;
//!   `max_actions` defaults to the server's default; `connectStrategy` is ignored.
//! - Status words: `started` (queued), `in_progress` (running), `awaiting_external_resource`
//!   (waiting on a person), `paused`, `complete`, `error` (failed), `stopped`, `timed_out`.
//! - `start_time` is when the session started running, or its creation time while queued.

mod auto_trigger;
mod error;
mod events;
mod stream;

use agentd_domain::{Session, SessionId, SessionStatus};
use agentd_engine::NewSession;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::auth::{self, Caller, LimitUsage};
use crate::sessions::parse_create;
use crate::state::AppState;
use crate::wire::CreateSessionRequest;

use error::{AssisfyError, AssisfyResult};

pub(crate) use events::{TriggerWebhooks, WEBHOOK_FORMAT};

/// The Assisfy routes.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let rest = Router::new()
        .route("/api/v1/sessions", post(create))
        .route("/api/v1/sessions/{id}", get(read))
        .route_layer(from_fn_with_state(state, authenticate));
    Router::new()
        .merge(rest)
        .route("/v1/connect", get(stream::websocket))
        .route("/events/v1/connect", get(stream::sse))
        .route("/events/v1/egress", post(stream::egress))
}

/// Admits the holder of `secret` through `auth::admit` (its rate limits included).
async fn admit(state: &AppState, secret: Option<String>) -> AssisfyResult<(Caller, LimitUsage)> {
    auth::admit(state, secret).await.map_err(AssisfyError::refused)
}

/// Admits the caller of a REST route by `Authorization: Bearer` or `x-api-key`.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secret = auth::presented_key(req.headers()).map(str::to_owned);
    match admit(&state, secret).await {
        Ok((caller, usage)) => {
            req.extensions_mut().insert(caller);
            let mut response = next.run(req).await;
            usage.write_headers(response.headers_mut());
            response
        }
        Err(refused) => auth::answer_unread(req, refused.into_response()).await,
    }
}

/// A session of the caller's project by its id as written (404 for anything else).
async fn session_of(state: &AppState, caller: Caller, raw: &str) -> AssisfyResult<Session> {
    let id: SessionId = raw.trim().parse().map_err(|_| AssisfyError::session_not_found())?;
    Ok(state.engine.get_session(caller.project_id, id).await?)
}

/// The body as a JSON object.
fn object(bytes: Result<Bytes, BytesRejection>) -> AssisfyResult<Map<String, Value>> {
    let bytes = bytes.map_err(|rejection| AssisfyError::new(rejection.status(), format!("could not read the body: {rejection}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AssisfyError::bad_request("the body must be a JSON object such as {\"goal\": \"...\"}")),
        Err(e) => Err(AssisfyError::bad_request(format!("the body is not valid JSON: {e}"))),
    }
}

/// `name` of `body` as `T` (absent or null: None), naming the field when it has the wrong type.
fn field<T: serde::de::DeserializeOwned>(body: &Map<String, Value>, name: &str, expected: &str) -> AssisfyResult<Option<T>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|_| AssisfyError::bad_request(format!("{name} must be {expected}"))),
    }
}

/// The session a create body asks for, checked as the native API checks it; errors name the
/// field as the caller wrote it (`url` when the start URL came under that name).
fn new_session(state: &AppState, body: &Map<String, Value>) -> AssisfyResult<NewSession> {
    let url_key = if body.get("start_url").is_some_and(|v| !v.is_null()) { "start_url" } else { "url" };
    let max_actions = match body.get("max_actions") {
        // A whole number written as 10.0 is still a whole number.
        Some(Value::Number(n)) if n.as_i64().is_none() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) => {
            n.as_f64().map(|f| f as i64)
        }
        _ => field(body, "max_actions", "a whole number")?,
    };
    let request = CreateSessionRequest {
        goal: field(body, "goal", "a string")?,
        start_url: field(body, url_key, "a string (an http or https URL)")?,
        max_actions,
        ..CreateSessionRequest::default()
    };
    parse_create(request, &state.config.sessions).map_err(|mut e| {
        if e.field.as_deref() == Some("start_url") && url_key == "url" {
            e.field = Some("url".into());
            e.message = e.message.replace("start_url", "url");
        }
        e.into()
    })
}

/// `POST /api/v1/sessions`: creates a session (or, with `auto_trigger`, hands over to
/// [`auto_trigger::create`]).
async fn create(State(state): State<AppState>, caller: Caller, bytes: Result<Bytes, BytesRejection>) -> AssisfyResult {
    let body = object(bytes)?;
    let new = new_session(&state, &body)?;
    if auto_trigger::requested(&body).is_some() {
        return auto_trigger::create(&state, caller, &body, new).await;
    }
    let session = state.engine.create_session(caller.project_id, new).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&session, false))).into_response())
}

/// `GET /api/v1/sessions/{id}`.
async fn read(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> AssisfyResult {
    let session = session_of(&state, caller, &id).await?;
    Ok(axum::Json(view(&session, true)).into_response())
}

/// This API's word for a session's status (see the module's doc).
fn status_word(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Queued => "started",
        SessionStatus::Running => "in_progress",
        SessionStatus::Waiting => "awaiting_external_resource",
        SessionStatus::Paused => "paused",
        SessionStatus::Completed => "complete",
        SessionStatus::Failed => "error",
        SessionStatus::Stopped => "stopped",
        SessionStatus::TimedOut => "timed_out",
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A session as create and read answer it: the documented fields at the top, and the same
/// under `data` with `sessionId` (what the SDK reads). `detailed` adds the task, its bounds,
/// the cost and the response.
fn view(session: &Session, detailed: bool) -> Value {
    let id = session.id.to_string();
    let mut fields = json!({
        "session_id": id,
        "status": status_word(session.status),
        "start_time": time(session.started_at.unwrap_or(session.created_at)),
        "end_time": session.ended_at.map(time),
        "error": session.error,
    });
    if detailed {
        let extra = json!({
            "goal": session.spec.goal,
            "start_url": session.spec.start_url,
            "max_actions": session.spec.max_actions,
            "total_cost": session.usage.cost_usd,
            "response": session.response.as_ref().map(|r| match r {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            "type": session.response_type.map(|t| t.as_str()),
        });
        if let (Some(fields), Some(extra)) = (fields.as_object_mut(), extra.as_object()) {
            fields.extend(extra.clone());
        }
    }
    let mut data = fields.clone();
    data["sessionId"] = json!(id);
    fields["data"] = data;
    fields
}
