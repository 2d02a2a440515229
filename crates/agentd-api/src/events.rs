//! Following a session: `GET /v1/sessions/{id}/events` as JSON pages or Server-Sent Events,
//! and `GET /v1/sessions/{id}/ws`, a WebSocket that streams the same events and takes
//! commands (answer input, resolve a safety check, pause, resume, stop).

use agentd_domain::{ProjectId, SessionId};
use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{QueryParams, parse_id};
use crate::sessions::{number, to_answer};
use crate::state::AppState;
use crate::wire::{EventPage, EventView, EventsQuery, InputRequest, SocketQuery};

const DEFAULT_EVENT_PAGE: u64 = 100;
const MAX_EVENT_PAGE: u64 = 1_000;

/// Every WebSocket's read buffer, made when it opens: client messages are small, and
/// tungstenite's default (128 KiB) made each subscriber by WebSocket cost ~140 KB.
pub(crate) const SOCKET_READ_BUFFER: usize = 4 * 1024;

/// The event as the native API shows it, rendered once however many subscribers it has.
fn wire_json(event: &agentd_engine::LoggedEvent) -> std::sync::Arc<str> {
    event.rendered(|e| serde_json::to_string(&EventView::from(e)).unwrap_or_default())
}

pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Where a stream resumes: `Last-Event-ID` wins over `?after=`.
fn resume_point(headers: &HeaderMap, after: Option<String>) -> ApiResult<u64> {
    if let Some(raw) = headers.get("last-event-id") {
        let raw = raw.to_str().unwrap_or_default().trim();
        return raw.parse().map_err(|_| {
            ApiError::invalid("Last-Event-ID", format!("Last-Event-ID must be the seq of an event (a whole number), got `{raw}`"))
        });
    }
    number("after", after, 0, 0, i64::MAX as u64)
}

/// A session's events: JSON pages, or with `Accept: text/event-stream` a live SSE stream
/// (`id:` is the seq; resume with `Last-Event-ID`; closes after the terminal event).
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Session id"), EventsQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "SSE: resume after this seq")),
    responses((status = 200, description = "JSON page, or text/event-stream", body = EventPage),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn session_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> ApiResult<Response> {
    let id: SessionId = parse_id("id", &id)?;
    if wants_sse(&headers) {
        let after = resume_point(&headers, q.after)?;
        let events = state.engine.subscribe(caller.project_id, id, after).await?;
        let stream = events.map(|item| {
            item.map(|event| {
                SseEvent::default()
                    .id(event.seq.to_string())
                    .event(event.kind.as_str())
                    .data(&*wire_json(&event))
            })
        });
        let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(state.config.heartbeat));
        return Ok(sse.into_response());
    }
    let after = number("after", q.after, 0, 0, i64::MAX as u64)?;
    let limit = number("limit", q.limit, DEFAULT_EVENT_PAGE, 1, MAX_EVENT_PAGE)?;
    let mut events = state.engine.events(caller.project_id, id, after, limit as u32 + 1).await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage {
        data: events.iter().map(EventView::from).collect(),
        has_more,
        next_after,
    })
    .into_response())
}

/// A message from a WebSocket client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientCommand {
    Input {
        request_id: Option<String>,
        text: Option<String>,
        granted: Option<bool>,
    },
    SafetyCheck {
        check_id: String,
        confirm: bool,
    },
    Pause,
    Resume,
    Stop,
}

/// A WebSocket on a session: `{"type":"event","data":{...}}` frames (history from `?after=`,
/// then live), and commands `{"type":"input"|"safety_check"|"pause"|"resume"|"stop", ...}`
/// answered with `{"type":"ack","command":...}` or `{"type":"error","error":{...}}`.
#[utoipa::path(get, path = "/v1/sessions/{id}/ws", tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Session id"), SocketQuery),
    responses((status = 101, description = "WebSocket"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn session_ws(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<SocketQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let id: SessionId = parse_id("id", &id)?;
    let after = number("after", q.after, 0, 0, i64::MAX as u64)?;
    // Subscribe before upgrading so a bad id answers 404, not a closed socket.
    let events = state.engine.subscribe(caller.project_id, id, after).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(crate::error::ErrorCode::InvalidRequest, format!("this route speaks WebSocket only: {rejection}"))
    })?;
    // A command is no larger than a request body may be.
    let limit = state.config.body_limit_bytes;
    let upgrade = upgrade.read_buffer_size(SOCKET_READ_BUFFER).max_message_size(limit).max_frame_size(limit);
    Ok(upgrade.on_upgrade(move |socket| serve_socket(socket, state, caller.project_id, id, events)))
}

async fn serve_socket(
    socket: WebSocket,
    state: AppState,
    project: ProjectId,
    id: SessionId,
    mut events: agentd_engine::EventStream,
) {
    let (mut tx, mut rx) = socket.split();
    let mut heartbeat = tokio::time::interval(state.config.heartbeat);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(Ok(event)) = event else {
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1011, reason: "event stream ended".into() }))).await;
                    return;
                };
                let frame = format!(r#"{{"type":"event","data":{}}}"#, wire_json(&event));
                if tx.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
                if event.kind.is_terminal() {
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "session ended".into() }))).await;
                    return;
                }
            }
            message = rx.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let reply = handle_command(&state, project, id, text.as_str()).await;
                if tx.send(Message::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if tx.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn handle_command(state: &AppState, project: ProjectId, id: SessionId, text: &str) -> serde_json::Value {
    let result: ApiResult<&'static str> = async {
        let command: ClientCommand = crate::extract::parse_json(text.as_bytes())?;
        let engine = &state.engine;
        Ok(match command {
            ClientCommand::Input { request_id, text, granted } => {
                let answer = to_answer(InputRequest { request_id, text, granted })?;
                engine.answer_input(project, id, answer).await?;
                "input"
            }
            ClientCommand::SafetyCheck { check_id, confirm } => {
                engine.resolve_safety_check(project, id, &check_id, confirm).await?;
                "safety_check"
            }
            ClientCommand::Pause => {
                engine.pause(project, id).await?;
                "pause"
            }
            ClientCommand::Resume => {
                engine.resume(project, id).await?;
                "resume"
            }
            ClientCommand::Stop => {
                engine.stop(project, id).await?;
                "stop"
            }
        })
    }
    .await;
    match result {
        Ok(command) => json!({"type": "ack", "command": command}),
        Err(error) => json!({"type": "error", "error": error.body().error}),
    }
}

