//! The Computer Use Agent app's API at `/api` (seed 004; SPECS §4): its documented routes
//! and the original app's aliases, in its envelope, as a thin adapter over the engine. It
//! translates requests and events; every rule lives in the engine.
//!
//! Choices where the document and the original app differ, or are silent: the documented
//! routes, messages and envelope come first; `api_key` in a JSON body (where the document
//! puts it) is an agentd key, like `Authorization: Bearer` — never in the query string, which
//! the document does not name and which lands in logs (this API has no stream that would need
//! it, see [`auth::QUERY_KEY_ROUTES`]); `/api/health` answers only its status without a key,
//! and with one the counts of the caller's project; a `task_id` is derived from the session id
//! (see [`crate::links`]) and must match on every call that takes one (403 otherwise); the
//! only environment is `browser` (a real Chromium).

mod envelope;
mod views;

use std::collections::HashMap;

use agentd_domain::{Session, SessionId, SessionStatus};
use agentd_store::{SessionQuery, SessionSortField};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::auth::{self, Caller};
use crate::sessions::{parse_create, parse_patch};
use crate::state::AppState;
use crate::wire::{CreateSessionRequest, PatchSessionRequest};

use envelope::{CuaError, CuaResult, ok};
use views::{Digest, digests};

/// Where a task starts when it names no URL (the original app's default).
const DEFAULT_STARTING_URL: &str = "https://www.google.com";
/// Sessions a list returns when it names no `limit`.
const DEFAULT_LIMIT: usize = 50;
/// The most a list returns.
const MAX_LIMIT: usize = 1000;
/// The most sessions a list sorts or filters in memory (by a field the store does not
/// index, or a filter on any summary field).
const IN_MEMORY_CAP: u32 = 2000;
/// How long a denied safety check leaves the agent to stop by itself.
const DENIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// The version this API reports (the original app's).
const API_VERSION: &str = "1.0.0";

/// Native field names → this API's, for error messages.
const CREATE_RENAMES: &[(&str, &str)] = &[("goal", "task"), ("start_url", "starting_url"), ("name", "session_name")];

/// CORS for the `/api` routes, to wrap the whole application (outside the router, so that
/// preflights are answered before routing): any origin may call them, as the original app
/// allowed (its document's example polls from a web page); keys are headers or body fields,
/// never cookies. Other paths get no CORS headers.
pub(crate) fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|_, request| request.uri.path().starts_with("/api/")))
        .allow_methods(Any)
        .allow_headers(Any)
}

/// The `/api` routes.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .route("/tasks", post(create_task))
        .route("/status/{session_id}/{task_id}", get(status))
        .route("/sessions/{session_id}/status", get(status_by_query))
        .route("/sessions", get(list))
        .route("/sessions/batch", post(batch))
        .route("/sessions/active", get(active))
        .route("/sessions/cleanup", post(cleanup_old))
        .route("/sessions/{session_id}", put(update))
        .route("/sessions/{session_id}/details", get(details))
        .route("/sessions/{session_id}/replay", get(replay))
        .route("/sessions/{session_id}/{action}", post(control_alias))
        .route("/{action}/{session_id}", post(control))
        .route_layer(from_fn_with_state(state, authenticate));
    let api = Router::new()
        .route("/health", get(health))
        .merge(authenticated)
        .fallback(|| async { CuaError::new(StatusCode::NOT_FOUND, "Not found", "no such route under /api").into_response() });
    Router::new().nest("/api", api)
}

/// A query string as name → value (never refused: bad escapes read as they are).
fn query_map(query: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// Admits the caller by `Authorization: Bearer`, `X-API-Key` or the body's `api_key`;
/// refusals come in the envelope.
async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return CuaError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large", "the body is larger than the server accepts")
                .into_response();
        }
    };
    let secret = auth::presented_key(&parts.headers).map(str::to_owned).or_else(|| body_key(&bytes));
    match auth::admit(&state, secret).await {
        Ok((caller, usage)) => {
            parts.extensions.insert(caller);
            let mut response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            usage.write_headers(response.headers_mut());
            response
        }
        Err(refusal) => {
            let mut response = CuaError::from(refusal.error.clone()).into_response();
            refusal.write_headers(&mut response);
            response
        }
    }
}

/// The `api_key` of a JSON object body.
fn body_key(bytes: &Bytes) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value.get("api_key")?.as_str().map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned)
}

/// The body as a JSON object (an empty body reads as `{}`).
fn object(bytes: &Bytes) -> CuaResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CuaError::bad_request("The request body must be a JSON object")),
        Err(e) => Err(CuaError::bad_request(format!("The request body is not valid JSON: {e}"))),
    }
}

/// Reads `field` of `body` as `T`, naming the field when it has the wrong type.
fn field<T: serde::de::DeserializeOwned>(body: &Map<String, Value>, name: &str) -> CuaResult<Option<T>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| CuaError::invalid(name, format!("{name} has the wrong type: {e}"))),
    }
}

/// A session of the caller's project, by the id in a path (404 in the envelope otherwise).
async fn session_of(state: &AppState, caller: Caller, raw: &str) -> CuaResult<Session> {
    let Ok(id) = raw.parse::<SessionId>() else {
        return Err(CuaError::session_not_found(raw));
    };
    match state.engine.get_session(caller.project_id, id).await {
        Ok(session) => Ok(session),
        Err(agentd_engine::EngineError::NotFound) => Err(CuaError::session_not_found(raw)),
        Err(e) => Err(e.into()),
    }
}

/// The session, once `task_id` is shown to be its own (403 otherwise).
async fn owned_session(state: &AppState, caller: Caller, raw: &str, task_id: Option<&str>) -> CuaResult<Session> {
    let session = session_of(state, caller, raw).await?;
    let Some(task_id) = task_id.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(CuaError::invalid("task_id", "task_id is required"));
    };
    if !state.config.link_key.verify(session.id, task_id) {
        return Err(CuaError::invalid_task_id());
    }
    Ok(session)
}

fn task_id(state: &AppState, session: &Session) -> String {
    state.config.link_key.task_id(session.id)
}

/// `http(s)://<Host>/sessions/<id>?task_id=<task id>`: the session's live page.
fn session_url(state: &AppState, headers: &HeaderMap, session: &Session) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}/sessions/{}?task_id={}", session.id, task_id(state, session))
}

/// `POST /api/tasks`: start a task.
async fn create_task(State(state): State<AppState>, caller: Caller, headers: HeaderMap, bytes: Bytes) -> CuaResult {
    let body = object(&bytes)?;
    let environment = field::<String>(&body, "environment")?;
    if let Some(env) = environment.as_deref().filter(|e| *e != views::ENVIRONMENT) {
        return Err(CuaError::invalid(
            "environment",
            format!("environment `{env}` is not available: agentd drives a real Chromium, environment `browser`"),
        ));
    }
    let request = CreateSessionRequest {
        goal: field(&body, "task")?,
        start_url: Some(field(&body, "starting_url")?.unwrap_or_else(|| DEFAULT_STARTING_URL.to_owned())),
        max_actions: field(&body, "max_actions")?,
        timeout_seconds: field(&body, "timeout_seconds")?,
        display_width: field(&body, "display_width")?,
        display_height: field(&body, "display_height")?,
        headless: field(&body, "headless")?,
        name: field(&body, "session_name")?,
        tags: field(&body, "tags")?,
        priority: field(&body, "priority")?,
        user_id: field(&body, "user_id")?,
        model: field(&body, "model")?,
        driver: field(&body, "driver")?,
        allowed_domains: field(&body, "allowed_domains")?,
        ..CreateSessionRequest::default()
    };
    let new = parse_create(request, &state.config.sessions).map_err(|e| CuaError::from(e).renaming(CREATE_RENAMES))?;
    let session = state.engine.create_session(caller.project_id, new).await?;
    Ok(ok(
        "Task started successfully",
        json!({
            "session_id": session.id.to_string(),
            "task_id": task_id(&state, &session),
            // The session is accepted and on its way; the documented word for that.
            "status": "running",
            "session_url": session_url(&state, &headers, &session),
            "name": views::name_of(&session),
            "created_at": views::time(session.created_at),
        }),
    ))
}

/// `GET /api/status/{session_id}/{task_id}`.
async fn status(State(state): State<AppState>, caller: Caller, Path((sid, tid)): Path<(String, String)>) -> CuaResult {
    status_view(&state, caller, &sid, Some(&tid)).await
}

/// `GET /api/sessions/{session_id}/status?task_id=` (the original app's route).
async fn status_by_query(State(state): State<AppState>, caller: Caller, Path(sid): Path<String>, RawQuery(query): RawQuery) -> CuaResult {
    let query = query_map(query);
    status_view(&state, caller, &sid, query.get("task_id").map(String::as_str)).await
}

async fn status_view(state: &AppState, caller: Caller, sid: &str, tid: Option<&str>) -> CuaResult {
    let session = owned_session(state, caller, sid, tid).await?;
    let events = views::all_events(state, caller.project_id, session.id).await?;
    let check = views::check_of(state, &session).await?;
    let screenshot = state.engine.screenshot(caller.project_id, session.id).await?;
    Ok(ok(
        "Session status retrieved",
        json!({
            "session_id": session.id.to_string(),
            "task_id": task_id(state, &session),
            "status": views::word(&session, check.is_some() && session.status == SessionStatus::Waiting),
            "logs": views::logs(&events),
            "current_screenshot": screenshot.map(|s| s.png_base64),
            "pending_safety_checks": check.map(|c| json!([c])),
            "reasoning": views::reasoning(&events),
            "response": session.response,
            "error": session.error,
        }),
    ))
}

/// What a list asks for, in this API's terms.
#[derive(Debug, Default)]
struct Selection {
    limit: Option<Value>,
    sort_field: Option<String>,
    sort_direction: Option<String>,
    user_id: Option<String>,
    status: Option<String>,
    tags: Vec<String>,
    filter_by: Map<String, Value>,
}

/// `GET /api/sessions`.
async fn list(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> CuaResult {
    let query = query_map(query);
    let selection = Selection {
        limit: query.get("limit").map(|l| json!(l)),
        sort_field: query.get("sort_field").cloned(),
        sort_direction: query.get("sort_direction").cloned(),
        user_id: query.get("user_id").cloned(),
        status: query.get("status").cloned(),
        tags: query.get("tag").cloned().into_iter().collect(),
        filter_by: Map::new(),
    };
    let sessions = select(&state, caller, selection).await?;
    Ok(ok(format!("Retrieved {} sessions", sessions.len()), json!({"sessions": sessions})))
}

/// `POST /api/sessions/batch`.
async fn batch(State(state): State<AppState>, caller: Caller, bytes: Bytes) -> CuaResult {
    let body = object(&bytes)?;
    let tags = match body.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(tag)) => vec![tag.clone()],
        Some(_) => field::<Vec<String>>(&body, "tags")?.unwrap_or_default(),
    };
    let selection = Selection {
        limit: body.get("limit").cloned().filter(|l| !l.is_null()),
        sort_field: field(&body, "sort_field")?,
        sort_direction: field(&body, "sort_direction")?,
        user_id: field(&body, "user_id")?,
        status: field(&body, "status")?,
        tags,
        filter_by: field(&body, "filter_by")?.unwrap_or_default(),
    };
    let sessions = select(&state, caller, selection).await?;
    Ok(ok(format!("Retrieved {} sessions", sessions.len()), json!({"sessions": sessions})))
}

/// The store's sort for a field of this API, when it has one.
fn indexed_sort(name: &str) -> Option<SessionSortField> {
    Some(match name {
        "created_at" => SessionSortField::CreatedAt,
        "updated_at" => SessionSortField::UpdatedAt,
        "completed_at" | "completion_time" | "ended_at" => SessionSortField::EndedAt,
        "name" => SessionSortField::Name,
        "priority" => SessionSortField::Priority,
        "duration" => SessionSortField::Duration,
        _ => return None,
    })
}

/// The summaries a list selects: filters the store can apply go to the store; sorting by
/// another summary field, status words finer than the store's statuses and `filter_by` on
/// other summary fields (exact equality, as the original app does) are applied in memory
/// over at most [`IN_MEMORY_CAP`] matching sessions.
async fn select(state: &AppState, caller: Caller, s: Selection) -> CuaResult<Vec<Value>> {
    let limit = match &s.limit {
        None => DEFAULT_LIMIT,
        Some(raw) => {
            let n = raw.as_u64().or_else(|| raw.as_str().and_then(|t| t.trim().parse().ok()));
            match n {
                Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
                _ => return Err(CuaError::invalid("limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {raw}"))),
            }
        }
    };
    let descending = match s.sort_direction.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(CuaError::invalid("sort_direction", format!("sort_direction must be asc or desc, got `{other}`"))),
    };
    let sort_name = s.sort_field.clone().unwrap_or_else(|| "created_at".to_owned());
    let mut query = SessionQuery::newest_first(caller.project_id, limit as u32);
    query.user_id = s.user_id.clone();
    query.any_tag = s.tags.clone();
    let mut word = None;
    if let Some(status) = s.status.as_deref().filter(|w| !w.is_empty()) {
        let statuses = views::statuses_for(status).ok_or_else(|| {
            CuaError::invalid("status", format!("unknown status `{status}`; expected one of {}", views::STATUS_WORDS))
        })?;
        query.statuses = statuses.to_vec();
        word = views::FINE_WORDS.contains(&status).then(|| status.to_owned());
    }
    let mut equal = Map::new();
    if indexed_sort(&sort_name).is_none() && !views::SUMMARY_FIELDS.contains(&sort_name.as_str()) {
        return Err(CuaError::invalid(
            "sort_field",
            format!("unknown sort_field `{sort_name}`; any summary field sorts: {}", views::SUMMARY_FIELDS.join(", ")),
        ));
    }
    for (key, value) in &s.filter_by {
        let name = format!("filter_by.{key}");
        if value.is_null() {
            continue;
        }
        let text = || value.as_str().map(str::to_owned).ok_or_else(|| CuaError::invalid(&name, format!("{name} must be a string")));
        match key.as_str() {
            "created_after" => query.created_after = time_filter(&name, value)?,
            "created_before" => query.created_before = time_filter(&name, value)?,
            "duration_less_than" => {
                let seconds = value.as_f64().or_else(|| value.as_str().and_then(|t| t.trim().parse().ok()));
                match seconds {
                    Some(v) if v.is_finite() && v >= 0.0 => {
                        query.duration_less_than = Some(chrono::Duration::milliseconds((v * 1000.0).round() as i64));
                    }
                    _ => return Err(CuaError::invalid(&name, format!("{name} must be a number of seconds, got {value}"))),
                }
            }
            "has_errors" | "has_error" => {
                query.has_error = Some(value.as_bool().ok_or_else(|| CuaError::invalid(&name, format!("{name} must be true or false")))?);
            }
            "user_id" => query.user_id = Some(text()?),
            "tag" => query.tag = Some(text()?),
            _ if views::SUMMARY_FIELDS.contains(&key.as_str()) => {
                equal.insert(key.clone(), value.clone());
            }
            _ => {
                return Err(CuaError::invalid(
                    &name,
                    format!("unknown filter `{key}`; filter by created_after, created_before, duration_less_than, has_errors or a summary field: {}", views::SUMMARY_FIELDS.join(", ")),
                ));
            }
        }
    }
    let sort = indexed_sort(&sort_name);
    let in_memory = sort.is_none() || word.is_some() || !equal.is_empty();
    if in_memory {
        query.limit = IN_MEMORY_CAP;
    } else if let Some(sort) = sort {
        query.sort = sort;
        query.descending = descending;
    }
    let mut sessions = state.engine.list_sessions(&query).await?;
    if in_memory && sessions.len() > IN_MEMORY_CAP as usize {
        return Err(CuaError::bad_request(format!(
            "More than {IN_MEMORY_CAP} sessions match: narrow the filter (created_after, status, user_id, tags) to sort or filter by `{sort_name}`"
        )));
    }
    if !in_memory {
        sessions.truncate(limit);
    }
    let digests = digests(state, &sessions).await?;
    let mut summaries: Vec<Value> = sessions
        .iter()
        .map(|session| views::summary(session, &task_id(state, session), digests.get(&session.id).unwrap_or(&Digest::default())))
        .collect();
    if in_memory {
        summaries.retain(|s| {
            word.as_deref().is_none_or(|w| s["status"] == w) && equal.iter().all(|(k, v)| &s[k] == v)
        });
        let key = |s: &Value| match sort_name.as_str() {
            // Priorities sort by rank, as the store sorts them.
            "priority" => s["priority"].as_str().and_then(|p| p.parse::<agentd_domain::Priority>().ok()).map_or(Value::Null, |p| json!(p.rank())),
            _ => s[&sort_name].clone(),
        };
        summaries.sort_by(|a, b| {
            let order = compare(&key(a), &key(b));
            if descending { order.reverse() } else { order }
        });
        summaries.truncate(limit);
    }
    Ok(summaries)
}

/// An RFC 3339 time (or a date, read as its midnight UTC) in a filter.
fn time_filter(name: &str, value: &Value) -> CuaResult<Option<DateTime<Utc>>> {
    let Some(raw) = value.as_str() else {
        return Err(CuaError::invalid(name, format!("{name} must be an ISO 8601 time such as 2025-03-01T00:00:00Z")));
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    crate::sessions::timestamp(name, Some(raw.to_owned())).map_err(CuaError::from)
}

/// Orders JSON values of one summary field: nulls last, then numbers, strings, booleans.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `GET /api/sessions/active`.
async fn active(State(state): State<AppState>, caller: Caller) -> CuaResult {
    let mut active = Vec::new();
    for session in &active_sessions(&state, caller).await? {
        let check = session.status == SessionStatus::Waiting && views::check_of(&state, session).await?.is_some();
        active.push(json!({
            "id": session.id.to_string(),
            "task_id": task_id(&state, session),
            "started_at": views::time(session.started_at.unwrap_or(session.created_at)),
            "status": views::word(session, check),
            "name": views::name_of(session),
            "task": session.spec.goal,
        }));
    }
    Ok(ok(format!("Found {} active sessions", active.len()), json!({"active_sessions": active})))
}

/// The caller's active sessions, newest first (at most [`MAX_LIMIT`]).
async fn active_sessions(state: &AppState, caller: Caller) -> CuaResult<Vec<Session>> {
    let mut query = SessionQuery::newest_first(caller.project_id, MAX_LIMIT as u32);
    query.statuses = SessionStatus::ALL.iter().copied().filter(|s| !s.is_terminal()).collect();
    let mut sessions = state.engine.list_sessions(&query).await?;
    sessions.truncate(MAX_LIMIT);
    sessions.retain(views::is_active);
    Ok(sessions)
}

/// `GET /api/sessions/{id}/details`.
async fn details(State(state): State<AppState>, caller: Caller, Path(sid): Path<String>) -> CuaResult {
    let session = session_of(&state, caller, &sid).await.map_err(|e| details_not_found(e, &sid))?;
    let events = views::all_events(&state, caller.project_id, session.id).await?;
    let check = views::check_of(&state, &session).await?;
    let screenshot = state.engine.screenshot(caller.project_id, session.id).await?;
    let digest = digests(&state, std::slice::from_ref(&session)).await?.remove(&session.id).unwrap_or_default();
    let record = views::record(&session, &task_id(&state, &session), &events, check.as_ref());
    Ok(ok(
        format!("Retrieved details for session {}", session.id),
        json!({
            "session": record,
            "is_active": views::is_active(&session),
            "latest_screenshot": screenshot.map(|s| s.png_base64),
            "logs_count": events.len(),
            "screenshots_count": digest.screenshots,
        }),
    ))
}

/// The documented 404 of the details and update routes: `Session <id> not found`.
fn details_not_found(error: CuaError, sid: &str) -> CuaError {
    if error.status == StatusCode::NOT_FOUND {
        CuaError::new(StatusCode::NOT_FOUND, format!("Session {sid} not found"), format!("Session with ID {sid} does not exist"))
    } else {
        error
    }
}

/// `GET /api/sessions/{id}/replay` (the original app's, undocumented): everything recorded,
/// bare (no envelope), as the original sends it.
async fn replay(State(state): State<AppState>, caller: Caller, Path(sid): Path<String>) -> CuaResult {
    let session = session_of(&state, caller, &sid).await?;
    let events = views::all_events(&state, caller.project_id, session.id).await?;
    let screenshot = state.engine.screenshot(caller.project_id, session.id).await?;
    let record = views::record(&session, &task_id(&state, &session), &events, None);
    Ok(axum::Json(json!({
        "session_id": session.id.to_string(),
        "screenshots": screenshot.map(|s| vec![json!({"timestamp": views::time(s.taken_at), "data": s.png_base64})]).unwrap_or_default(),
        "actions": record["actions"],
        "reasoning_data": record["reasoning_data"],
        "logs": record["logs"],
        "metadata": {
            "task": session.spec.goal,
            "environment": views::ENVIRONMENT,
            "status": record["status"],
            "created_at": record["created_at"],
            "completed_at": record["completed_at"],
            "duration_seconds": views::duration_seconds(&session),
        },
    }))
    .into_response())
}

/// `PUT /api/sessions/{id}`: change any of `name`, `tags`, `priority`, `user_id`.
async fn update(State(state): State<AppState>, caller: Caller, Path(sid): Path<String>, bytes: Bytes) -> CuaResult {
    let session = session_of(&state, caller, &sid).await.map_err(|e| details_not_found(e, &sid))?;
    let body = object(&bytes)?;
    let mut updates = Map::new();
    for key in ["name", "tags", "priority", "user_id"] {
        if let Some(value) = body.get(key) {
            updates.insert(key.to_owned(), value.clone());
        }
    }
    if updates.is_empty() {
        return Err(CuaError::bad_request("Nothing to update: give any of name, tags, priority, user_id"));
    }
    let request: PatchSessionRequest = crate::extract::parse_json(Value::Object(updates.clone()).to_string().as_bytes())?;
    let patch = parse_patch(request)?;
    state.engine.patch_session(caller.project_id, session.id, &patch).await?;
    Ok(ok(
        format!("Session {} updated successfully", session.id),
        json!({"session_id": session.id.to_string(), "updates": updates}),
    ))
}

/// `POST /api/sessions/cleanup?days_old=N`: deletes the sessions that ended more than N days
/// ago (N ≥ 1, default 7).
async fn cleanup_old(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> CuaResult {
    let query = query_map(query);
    let days = match query.get("days_old") {
        None => 7,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| CuaError::invalid("days_old", format!("days_old must be a whole number of days, got `{raw}`")))?,
    };
    if days < 1 {
        return Err(CuaError { field: Some("days_old".into()), ..CuaError::bad_request("Days parameter must be at least 1") });
    }
    let before = Utc::now() - chrono::Duration::days(days.min(100_000));
    let cleaned = state.engine.cleanup_sessions(caller.project_id, before).await?;
    Ok(ok(format!("Cleaned up {cleaned} sessions older than {days} days"), json!({"cleaned_count": cleaned})))
}

/// What a control route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Stop,
    Pause,
    Resume,
    ConfirmSafetyCheck,
    Cleanup,
}

impl Control {
    /// The documented route word (`/api/{word}/{id}`).
    fn documented(word: &str) -> Option<Self> {
        Some(match word {
            "stop" => Control::Stop,
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "confirm_safety_check" => Control::ConfirmSafetyCheck,
            "cleanup_session" => Control::Cleanup,
            _ => return None,
        })
    }

    /// The original app's route word (`/api/sessions/{id}/{word}`).
    fn alias(word: &str) -> Option<Self> {
        Some(match word {
            "stop" => Control::Stop,
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "confirm-safety-check" | "confirm_safety_check" => Control::ConfirmSafetyCheck,
            "cleanup" => Control::Cleanup,
            _ => return None,
        })
    }
}

/// `POST /api/{stop|pause|resume|confirm_safety_check|cleanup_session}/{id}`.
async fn control(State(state): State<AppState>, caller: Caller, Path((word, sid)): Path<(String, String)>, bytes: Bytes) -> CuaResult {
    let Some(control) = Control::documented(&word) else {
        return Err(CuaError::new(StatusCode::NOT_FOUND, "Not found", format!("no route /api/{word}/{{session_id}}")));
    };
    run_control(&state, caller, control, &sid, &bytes).await
}

/// `POST /api/sessions/{id}/{stop|pause|resume|confirm-safety-check|cleanup}`.
async fn control_alias(State(state): State<AppState>, caller: Caller, Path((sid, word)): Path<(String, String)>, bytes: Bytes) -> CuaResult {
    let Some(control) = Control::alias(&word) else {
        return Err(CuaError::new(StatusCode::NOT_FOUND, "Not found", format!("no route /api/sessions/{{session_id}}/{word}")));
    };
    run_control(&state, caller, control, &sid, &bytes).await
}

async fn run_control(state: &AppState, caller: Caller, control: Control, sid: &str, bytes: &Bytes) -> CuaResult {
    let body = object(bytes)?;
    if let Some(named) = field::<String>(&body, "session_id")?
        && named.parse::<SessionId>().ok() != sid.parse::<SessionId>().ok()
    {
        return Err(CuaError::invalid("session_id", "session_id in the body does not match the one in the URL"));
    }
    let task = field::<String>(&body, "task_id")?;
    let session = match owned_session(state, caller, sid, task.as_deref()).await {
        Err(e) if control == Control::Cleanup && e.status == StatusCode::NOT_FOUND => {
            return Err(CuaError::new(StatusCode::NOT_FOUND, "Session not found or already cleaned up", e.error));
        }
        other => other?,
    };
    let (project, id) = (caller.project_id, session.id);
    let done = |message: &str, status: &str| ok(message, json!({"session_id": id.to_string(), "status": status}));
    match control {
        Control::Stop => {
            state.engine.stop(project, id).await?;
            Ok(done("Session stopped", "stopped"))
        }
        Control::Pause => {
            state.engine.pause(project, id).await?;
            Ok(done("Session paused", "paused"))
        }
        Control::Resume => {
            if session.status != SessionStatus::Paused {
                return Err(CuaError::bad_request("Session is not paused"));
            }
            let resumed = state.engine.resume(project, id).await?;
            let check = resumed.status == SessionStatus::Waiting && views::check_of(state, &resumed).await?.is_some();
            Ok(done("Session resumed", views::word(&resumed, check)))
        }
        Control::ConfirmSafetyCheck => {
            let confirm = field::<bool>(&body, "confirm")?.unwrap_or(true);
            let Some(check) = views::check_of(state, &session).await? else {
                return Err(CuaError::bad_request("No pending safety checks to confirm"));
            };
            let check_id = check["id"].as_str().unwrap_or_default().to_owned();
            state.engine.resolve_safety_check(project, id, &check_id, confirm).await?;
            if confirm {
                return Ok(done("Safety checks confirmed", "running"));
            }
            // Denied: the session ends as stopped. The browser agents stop on their own, with
            // their reason; an agent that would carry on is stopped here.
            if !state.engine.wait_ended(project, id, DENIAL_GRACE).await? {
                match state.engine.stop_because(project, id, "a person denied the safety check").await {
                    Ok(_) | Err(agentd_engine::EngineError::Illegal(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(done("Safety checks rejected, agent stopped", "stopped"))
        }
        Control::Cleanup => match state.engine.cleanup_session(project, id).await {
            Ok(_) => Ok(done("Session cleaned up", "cleaned")),
            Err(agentd_engine::EngineError::Conflict(_)) => Err(CuaError::new(
                StatusCode::NOT_FOUND,
                "Session not found or already cleaned up",
                format!("Session {id} was already cleaned up"),
            )),
            Err(e) => Err(e.into()),
        },
    }
}

/// `GET /api/health`: without a key, only the status (anyone may probe it); with a valid key
/// (`Authorization: Bearer` or `X-API-Key`), also the number of the caller's project's active
/// sessions (the count of `/api/sessions/active`), never the whole server's. A key that is
/// presented and refused is the usual 401 or 429.
async fn health(State(state): State<AppState>, headers: HeaderMap) -> CuaResult {
    let Some(secret) = auth::presented_key(&headers).map(str::to_owned) else {
        return Ok(ok("API is healthy", json!({"status": "ok"})));
    };
    let (caller, usage) = match auth::admit(&state, Some(secret)).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let mut response = CuaError::from(refusal.error.clone()).into_response();
            refusal.write_headers(&mut response);
            return Ok(response);
        }
    };
    let active = active_sessions(&state, caller).await?.len();
    let mut response = ok(
        "API is healthy",
        json!({
            "status": "ok",
            "active_sessions": active,
            "version": API_VERSION,
            "agentd_version": crate::VERSION,
            "browser_environment": "real",
        }),
    );
    usage.write_headers(response.headers_mut());
    Ok(response)
}
