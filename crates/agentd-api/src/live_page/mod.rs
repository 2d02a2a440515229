//! A session's live page, at the `session_url` the Computer Use Agent API hands out
//! (`/sessions/{id}?task_id=...`): the goal, the status, the latest screenshot, the timeline
//! of thoughts and actions, and buttons to pause, resume, stop, confirm or deny a safety
//! check and answer the agent's questions. Server-rendered HTML; a little JavaScript follows
//! the session's events (`/feed`, Server-Sent Events) and refreshes the state and the
//! screenshot when something happens. The link's `task_id` (see [`crate::links`]) is the
//! key to this one session: no API key is needed, nor accepted in its place.

use std::collections::HashMap;

use agentd_domain::{Event, EventKind, ProjectId, Session, SessionId, SessionStatus};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sessions::to_answer;
use crate::state::AppState;
use crate::wire::InputRequest;

/// Timeline lines rendered into the page; the feed brings the rest as they come.
const RENDERED_LINES: u32 = 300;

const PAGE: &str = include_str!("page.html");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/sessions/{id}", get(page))
        .route("/sessions/{id}/state", get(state_json))
        .route("/sessions/{id}/feed", get(feed))
        .route("/sessions/{id}/screen.png", get(screen))
        .route("/sessions/{id}/control", post(control))
}

type Params = Query<HashMap<String, String>>;

/// A page-side failure: a status and a sentence.
struct PageError(StatusCode, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<agentd_engine::EngineError> for PageError {
    fn from(e: agentd_engine::EngineError) -> Self {
        let api = crate::error::ApiError::from(e);
        PageError(api.code.status(), api.message)
    }
}

/// The session a link opens: its id, and its project once the `task_id` is verified.
async fn unlock(state: &AppState, raw: &str, params: &HashMap<String, String>) -> Result<(ProjectId, SessionId), PageError> {
    let not_found = || PageError(StatusCode::NOT_FOUND, "no such session".into());
    let id: SessionId = raw.parse().map_err(|_| not_found())?;
    let Some(task_id) = params.get("task_id") else {
        return Err(PageError(StatusCode::FORBIDDEN, "this link lacks its task_id: open the session_url as it was given".into()));
    };
    if !state.config.link_key.verify(id, task_id) {
        return Err(PageError(StatusCode::FORBIDDEN, "this link's task_id does not open this session".into()));
    }
    let project = state
        .store()
        .project_of_session(id)
        .await
        .map_err(|e| PageError(StatusCode::INTERNAL_SERVER_ERROR, crate::error::ApiError::internal(e).message))?
        .ok_or_else(not_found)?;
    Ok((project, id))
}

/// `/?session=<id>[&task_id=...]` (the original app's link form) → the session's page (which
/// explains itself when the task id is missing); `/` alone → the API reference.
async fn root(Query(params): Params) -> Response {
    let encode = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    match (params.get("session"), params.get("task_id")) {
        (Some(id), Some(task)) => Redirect::to(&format!("/sessions/{}?task_id={}", encode(id), encode(task))).into_response(),
        (Some(id), None) => Redirect::to(&format!("/sessions/{}", encode(id))).into_response(),
        _ => Redirect::to("/docs").into_response(),
    }
}

/// What a person is being asked right now.
async fn pending(state: &AppState, session: &Session) -> Result<Value, PageError> {
    if session.status.is_terminal() {
        return Ok(Value::Null);
    }
    let kinds = [EventKind::InputRequested, EventKind::InputReceived, EventKind::SafetyCheckPending, EventKind::SafetyCheckResolved];
    let last = state
        .store()
        .last_event_of(session.id, &kinds)
        .await
        .map_err(|e| PageError(StatusCode::INTERNAL_SERVER_ERROR, crate::error::ApiError::internal(e).message))?;
    Ok(match last {
        Some(e) if e.kind == EventKind::SafetyCheckPending => json!({
            "type": "safety_check", "id": e.data["check_id"], "code": e.data["code"], "message": e.data["message"],
        }),
        Some(e) if e.kind == EventKind::InputRequested => json!({
            "type": if e.data["kind"] == "permission" { "permission" } else { "input" },
            "id": e.data["request_id"], "field_name": e.data["field_name"], "reason": e.data["reason"],
        }),
        _ => Value::Null,
    })
}

/// How the page names a status.
fn label(status: SessionStatus, pending: &Value) -> &'static str {
    match (status, pending["type"].as_str()) {
        (SessionStatus::Queued, _) => "starting",
        (SessionStatus::Running, _) => "running",
        (SessionStatus::Paused, _) => "paused",
        (SessionStatus::Waiting, Some("safety_check")) => "awaiting safety confirmation",
        (SessionStatus::Waiting, Some("permission")) => "awaiting permission",
        (SessionStatus::Waiting, _) => "awaiting input",
        (SessionStatus::Completed, _) => "completed",
        (SessionStatus::Failed, _) => "failed",
        (SessionStatus::Stopped, _) => "stopped",
        (SessionStatus::TimedOut, _) => "timed out",
    }
}

async fn view(state: &AppState, project: ProjectId, id: SessionId) -> Result<(Session, Value), PageError> {
    let session = state.engine.get_session(project, id).await?;
    let pending = pending(state, &session).await?;
    let view = json!({
        "id": session.id.to_string(),
        "status": session.status.as_str(),
        "label": label(session.status, &pending),
        "ended": session.status.is_terminal(),
        "pending": pending,
        "response": session.response,
        "error": session.error,
        "last_seq": session.last_seq,
    });
    Ok((session, view))
}

/// `GET /sessions/{id}/state`: the status and what is pending, as JSON.
async fn state_json(State(state): State<AppState>, Path(raw): Path<String>, Query(params): Params) -> Result<Response, PageError> {
    let (project, id) = unlock(&state, &raw, &params).await?;
    let (_, view) = view(&state, project, id).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// One timeline entry.
fn entry(event: &Event) -> Value {
    json!({"seq": event.seq, "kind": event.kind.as_str(), "time": event.created_at.format("%H:%M:%S").to_string(), "line": event.line()})
}

/// `GET /sessions/{id}`: the page.
async fn page(State(state): State<AppState>, Path(raw): Path<String>, Query(params): Params) -> Response {
    let (project, id) = match unlock(&state, &raw, &params).await {
        Ok(unlocked) => unlocked,
        Err(PageError(status, message)) => return (status, Html(message_page(&message))).into_response(),
    };
    let result = async {
        let (session, view) = view(&state, project, id).await?;
        let after = session.last_seq.saturating_sub(u64::from(RENDERED_LINES));
        let events = state.engine.events(project, id, after, RENDERED_LINES).await?;
        Ok::<_, PageError>((session, view, events))
    }
    .await;
    let (session, view, events) = match result {
        Ok(loaded) => loaded,
        Err(PageError(status, message)) => return (status, Html(message_page(&message))).into_response(),
    };
    let timeline: String = events
        .iter()
        .map(|e| {
            format!(
                "<li class=\"k-{}\"><time>{}</time> {}</li>",
                e.kind.as_str(),
                e.created_at.format("%H:%M:%S"),
                escape(&e.line())
            )
        })
        .collect();
    let task_id = params.get("task_id").cloned().unwrap_or_default();
    let boot = json!({"view": view, "task_id": task_id, "after": events.last().map_or(0, |e| e.seq)});
    let html = fill(PAGE, |slot| match slot {
        "goal" => escape(&session.spec.goal),
        "label" => escape(view["label"].as_str().unwrap_or_default()),
        "status" => escape(session.status.as_str()),
        "start_url" => escape(session.spec.start_url.as_deref().unwrap_or("")),
        "timeline" => timeline.clone(),
        "screen" => format!("/sessions/{}/screen.png?task_id={}", session.id, escape(&task_id)),
        // JSON inside a script element: `<` escaped so no text can close the element.
        "boot" => boot.to_string().replace('<', "\\u003c"),
        _ => String::new(),
    });
    // The link is the session's key: it must not leak to the pages it shows or links to.
    ([(header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], Html(html)).into_response()
}

/// `GET /sessions/{id}/feed`: the timeline as it grows, as Server-Sent Events
/// (`{seq, kind, time, line}`), from `?after=` (or `Last-Event-ID`).
async fn feed(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Params,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let (project, id) = unlock(&state, &raw, &params).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(params.get("after").map(String::as_str))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let events = state.engine.subscribe(project, id, after).await?;
    let stream = events.map(|item| {
        item.map(|event| SseEvent::default().id(event.seq.to_string()).event("entry").data(entry(&event).to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.config.heartbeat)).into_response())
}

/// `GET /sessions/{id}/screen.png`: the live screen while the session runs, else the last
/// one kept; 404 when there is none.
async fn screen(State(state): State<AppState>, Path(raw): Path<String>, Query(params): Params) -> Result<Response, PageError> {
    use base64::Engine as _;
    let (project, id) = unlock(&state, &raw, &params).await?;
    let Some(shot) = state.engine.screenshot(project, id).await? else {
        return Err(PageError(StatusCode::NOT_FOUND, "no screenshot yet".into()));
    };
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.png_base64)
        .map_err(|e| PageError(StatusCode::INTERNAL_SERVER_ERROR, crate::error::ApiError::internal(e).message))?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}

/// What the page's buttons send.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Command {
    Pause,
    Resume,
    Stop,
    Confirm { id: String },
    Deny { id: String },
    Answer { id: Option<String>, text: String },
    Grant { id: Option<String> },
    Refuse { id: Option<String> },
}

/// `POST /sessions/{id}/control`: a button.
async fn control(State(state): State<AppState>, Path(raw): Path<String>, Query(params): Params, bytes: Bytes) -> Result<Response, PageError> {
    let (project, id) = unlock(&state, &raw, &params).await?;
    let command: Command = crate::extract::parse_json(&bytes).map_err(|e| PageError(StatusCode::BAD_REQUEST, e.message))?;
    let engine = &state.engine;
    let answer = |request_id: Option<String>, text: Option<String>, granted: Option<bool>| {
        to_answer(InputRequest { request_id, text, granted }).map_err(|e| PageError(StatusCode::BAD_REQUEST, e.message))
    };
    match command {
        Command::Pause => drop(engine.pause(project, id).await?),
        Command::Resume => drop(engine.resume(project, id).await?),
        Command::Stop => drop(engine.stop(project, id).await?),
        Command::Confirm { id: check } => drop(engine.resolve_safety_check(project, id, &check, true).await?),
        Command::Deny { id: check } => drop(engine.resolve_safety_check(project, id, &check, false).await?),
        Command::Answer { id: request, text } => drop(engine.answer_input(project, id, answer(request, Some(text), None)?).await?),
        Command::Grant { id: request } => drop(engine.answer_input(project, id, answer(request, None, Some(true))?).await?),
        Command::Refuse { id: request } => drop(engine.answer_input(project, id, answer(request, None, Some(false))?).await?),
    }
    let (_, view) = view(&state, project, id).await?;
    Ok(Json(view).into_response())
}

/// `template` with each `{{slot}}` replaced by `value(slot)`, in one pass (a value that
/// contains `{{...}}` stays as it is).
fn fill(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 2..start + len]));
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A small page that only says `message`.
fn message_page(message: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>agentd</title><body style=\"font:16px system-ui;margin:2rem\"><h1>agentd</h1><p>{}</p>",
        escape(message)
    )
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_are_filled_once() {
        let page = super::fill("<h1>{{goal}}</h1>{{boot}}", |slot| if slot == "goal" { "{{boot}}".into() } else { "B".into() });
        assert_eq!(page, "<h1>{{boot}}</h1>B");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(super::escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
