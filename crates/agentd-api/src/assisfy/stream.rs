//! A session's Assisfy events, live: the WebSocket at `/v1/connect`, the SSE stream at
//! `/events/v1/connect`, and `POST /events/v1/egress` for answers sent beside an SSE stream.
//! Both streams replay the session from its first event (or, on SSE, after `Last-Event-ID`)
//! and follow it live from `Engine::subscribe`, each event read through
//! [`socket_event`]; both end after the session's terminal event.
//!
//! WebSocket: frames are `{"event": <name>, "data": {...}}`. Credentials come from the query
//! (`?sessionId=&apiKey=`, the SDK's way) or, when the query has no key, from a first text
//! message `{"apiKey", "sessionId"}` (the document's way; within [`FIRST_MESSAGE_WAIT`]). A
//! refused connection is closed after the upgrade, as the SDK reports close codes: 1008 with
//! the reason for a bad key, a missing or unknown session (`Session not found`), 1013 when
//! the key's rate limit is reached, 1011 on a server fault. After `complete` (or a terminal
//! `error`) the server closes with 1000; a client closing first is normal. An answer
//! (`{"type" | "event": "external_resource_granted", "data": {...}}`) is echoed at once to
//! the connection that sent it as `external_resource_granted` `{granted, input}` — the input
//! is not in the event log, so only that connection can show it — and the same event from
//! the log is then not sent again there; other connections get it from the log, without
//! `input`. A refused answer comes back as an `error` frame (the session goes on; the
//! socket stays open). Pings go out every heartbeat interval.
//!
//! SSE: named events (`event: started`, `data: {payload}`, `id: <seq>`), `connected` first,
//! `hearbeat` and `heartbeat` (both spellings the SDK knows) every heartbeat interval.
//! Reconnecting with `Last-Event-ID` resumes after that event; reconnecting to a finished
//! session after its last event gets 204, which tells an EventSource to stop retrying.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use agentd_domain::Session;
use agentd_engine::EventStream;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::auth::{self, Caller, LimitUsage, QueryKey};
use crate::state::AppState;

use super::error::{AssisfyError, AssisfyResult};
use super::events::{GRANTED, Grant, answer, socket_event};

/// How long a WebSocket without credentials in its query may take to send them.
pub(crate) const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// Close codes (RFC 6455 §7.4.1).
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const POLICY: u16 = 1008;
const SERVER_ERROR: u16 = 1011;
const TRY_AGAIN_LATER: u16 = 1013;

/// The session and key a stream names (query or first message; either spelling).
#[derive(Debug, Default, Clone, PartialEq)]
struct Credentials {
    session_id: Option<String>,
    api_key: Option<String>,
}

impl Credentials {
    /// The session named in the query, and the key the query may carry on this route
    /// ([`auth::QUERY_KEY_ROUTES`]).
    fn from_query(query: Option<&str>, key: QueryKey) -> Self {
        let mut out = Self { session_id: None, api_key: key.0 };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
            if matches!(&*key, "sessionId" | "session_id") {
                out.session_id = out.session_id.or(value);
            }
        }
        out
    }

    /// Fills what is missing from a first message `{"apiKey", "sessionId"}`.
    fn fill_from(&mut self, message: &Value) {
        let text = |keys: [&str; 2]| keys.iter().find_map(|k| message[*k].as_str()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        self.api_key = self.api_key.take().or_else(|| text(["apiKey", "api_key"]));
        self.session_id = self.session_id.take().or_else(|| text(["sessionId", "session_id"]));
    }
}

/// The session the credentials name, for the key they carry (headers as a fallback).
async fn admit_to_session(
    state: &AppState,
    given: &Credentials,
    headers: Option<&HeaderMap>,
) -> AssisfyResult<(Caller, Session, LimitUsage)> {
    let secret = given.api_key.clone().or_else(|| headers.and_then(auth::presented_key).map(str::to_owned));
    let (caller, usage) = super::admit(state, secret).await?;
    let Some(id) = given.session_id.as_deref() else {
        return Err(AssisfyError::bad_request("sessionId is required"));
    };
    let session = super::session_of(state, caller, id).await?;
    Ok((caller, session, usage))
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// `GET /v1/connect`.
pub(super) async fn websocket(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    key: QueryKey,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return AssisfyError::bad_request("this route speaks WebSocket only: connect with ?sessionId=&apiKey=").into_response();
    };
    let given = Credentials::from_query(query.as_deref(), key);
    let limit = state.config.body_limit_bytes;
    let upgrade = upgrade.read_buffer_size(crate::events::SOCKET_READ_BUFFER).max_message_size(limit).max_frame_size(limit);
    upgrade.on_upgrade(move |socket| serve(socket, state, given))
}

type Sink = SplitSink<WebSocket, Message>;

async fn serve(socket: WebSocket, state: AppState, given: Credentials) {
    let (mut tx, mut rx) = socket.split();
    let (caller, session, mut events) = match open(&state, &mut rx, given).await {
        Ok(opened) => opened,
        Err(Some((code, reason))) => return close(&mut tx, &mut rx, code, &reason).await,
        Err(None) => return,
    };
    // Seqs of answers this connection echoed itself: the log's copy is not sent again.
    let mut echoed = BTreeSet::new();
    let mut heartbeat = tokio::time::interval(state.config.heartbeat);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            event = events.next() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        tracing::warn!(session_id = %session.id, %error, "assisfy socket: the event stream failed");
                        return close(&mut tx, &mut rx, SERVER_ERROR, "event stream failed").await;
                    }
                    None => return close(&mut tx, &mut rx, GOING_AWAY, "server shutting down").await,
                };
                if echoed.remove(&event.seq) {
                    continue;
                }
                let Some((name, payload)) = socket_event(&session, &event) else { continue };
                if send(&mut tx, name, payload).await.is_err() {
                    return;
                }
                if event.kind.is_terminal() {
                    let reason = if name == "complete" { "Session completed" } else { "Session ended" };
                    return close(&mut tx, &mut rx, NORMAL, reason).await;
                }
            }
            message = rx.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let (name, payload) = match take_answer(&state, caller, &session, &text).await {
                    Ok(None) => continue,
                    Ok(Some(answered)) => {
                        echoed.insert(answered.seq);
                        (GRANTED, answered.echo)
                    }
                    Err(refused) => ("error", json!({"error": refused.error})),
                };
                if send(&mut tx, name, payload).await.is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if tx.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Authenticates the connection and follows its session, or says how to close it (None:
/// the client went away).
async fn open(
    state: &AppState,
    rx: &mut SplitStream<WebSocket>,
    mut given: Credentials,
) -> Result<(Caller, Session, EventStream), Option<(u16, String)>> {
    if given.api_key.is_none() {
        let first = tokio::time::timeout(FIRST_MESSAGE_WAIT, async {
            loop {
                match rx.next().await {
                    Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                    Some(Ok(Message::Binary(bytes))) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                }
            }
        })
        .await;
        let expected = || Some((POLICY, "send {\"apiKey\", \"sessionId\"} first, or connect with ?sessionId=&apiKey=".to_owned()));
        match first {
            Err(_) => return Err(expected()),
            Ok(None) => return Err(None),
            Ok(Some(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(message) if message.is_object() => given.fill_from(&message),
                _ => return Err(expected()),
            },
        }
    }
    let refused = |e: AssisfyError| {
        let code = match e.status {
            StatusCode::TOO_MANY_REQUESTS => TRY_AGAIN_LATER,
            status if status.is_server_error() => SERVER_ERROR,
            _ => POLICY,
        };
        Some((code, e.error))
    };
    let (caller, session, _) = admit_to_session(state, &given, None).await.map_err(refused)?;
    let events = state.engine.subscribe(caller.project_id, session.id, 0).await.map_err(|e| refused(e.into()))?;
    Ok((caller, session, events))
}

/// Reads a client message and answers the session's open request with it. None: a message
/// that asks nothing (the credentials sent again).
async fn take_answer(state: &AppState, caller: Caller, session: &Session, text: &str) -> AssisfyResult<Option<super::events::Answered>> {
    let message: Value = serde_json::from_str(text).map_err(|e| AssisfyError::bad_request(format!("the message is not valid JSON: {e}")))?;
    let names_event = ["type", "event"].iter().any(|k| message.get(*k).is_some());
    if !names_event && (message.get("apiKey").is_some() || message.get("sessionId").is_some()) {
        return Ok(None);
    }
    let grant = Grant::parse(&message)?;
    answer(state, caller, session, grant).await.map(Some)
}

async fn send(tx: &mut Sink, name: &str, payload: Value) -> Result<(), axum::Error> {
    let frame = json!({"event": name, "data": payload}).to_string();
    tx.send(Message::Text(frame.into())).await
}

/// Closes with `code` and `reason`, then waits (briefly) for the client's close.
async fn close(tx: &mut Sink, rx: &mut SplitStream<WebSocket>, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame { code, reason: reason[..cut].into() };
    if tx.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(message)) = rx.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// SSE

/// `GET /events/v1/connect?sessionId=&apiKey=`.
pub(super) async fn sse(State(state): State<AppState>, RawQuery(query): RawQuery, key: QueryKey, headers: HeaderMap) -> AssisfyResult {
    let given = Credentials::from_query(query.as_deref(), key);
    let (caller, session, usage) = admit_to_session(&state, &given, Some(&headers)).await?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(raw) => {
            let raw = raw.to_str().unwrap_or_default().trim();
            raw.parse::<u64>()
                .map_err(|_| AssisfyError::bad_request(format!("Last-Event-ID must be the id of an event (a whole number), got `{raw}`")))?
        }
    };
    if after > 0 && session.status.is_terminal() && after >= session.last_seq {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let events = state.engine.subscribe(caller.project_id, session.id, after).await?;
    let mut heartbeat = tokio::time::interval(state.config.heartbeat);
    heartbeat.reset();
    let connected = SseEvent::default().event("connected").data(json!({"sessionId": session.id.to_string()}).to_string());
    let feed = Feed { events, heartbeat, session, ready: VecDeque::from([connected]), done: false };
    let stream = futures::stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (Ok::<_, Infallible>(event), feed)) });
    let mut response = Sse::new(stream).into_response();
    usage.write_headers(response.headers_mut());
    Ok(response)
}

/// An SSE stream's state: the session's events, the heartbeat, what is ready to send.
struct Feed {
    events: EventStream,
    heartbeat: tokio::time::Interval,
    session: Session,
    ready: VecDeque<SseEvent>,
    done: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                event = self.events.next() => match event {
                    Some(Ok(event)) => {
                        if let Some((name, payload)) = socket_event(&self.session, &event) {
                            self.ready.push_back(SseEvent::default().id(event.seq.to_string()).event(name).data(payload.to_string()));
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(session_id = %self.session.id, %error, "assisfy SSE: the event stream failed");
                        self.done = true;
                    }
                    None => self.done = true,
                },
                _ = self.heartbeat.tick() => {
                    let beat = json!({"sessionId": self.session.id.to_string(), "timestamp": super::time(chrono::Utc::now())}).to_string();
                    // `hearbeat` is the SDK's spelling; `heartbeat` its README's.
                    self.ready.push_back(SseEvent::default().event("hearbeat").data(&beat));
                    self.ready.push_back(SseEvent::default().event("heartbeat").data(beat));
                }
            }
        }
    }
}

/// `POST /events/v1/egress?sessionId=&apiKey=` with `{"event" | "type":
/// "external_resource_granted", "data": {...}}`: answers the open request; `{"ok": true}`.
pub(super) async fn egress(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    key: QueryKey,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> AssisfyResult {
    let given = Credentials::from_query(query.as_deref(), key);
    let (caller, session, usage) = admit_to_session(&state, &given, Some(&headers)).await?;
    let message = Value::Object(super::object(bytes)?);
    answer(&state, caller, &session, Grant::parse(&message)?).await?;
    let mut response = axum::Json(json!({"ok": true})).into_response();
    usage.write_headers(response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_query_then_a_first_message() {
        let mut given = Credentials::from_query(Some("sessionId=abc&apiKey=k%201"), QueryKey(Some("k 1".into())));
        assert_eq!(given, Credentials { session_id: Some("abc".into()), api_key: Some("k 1".into()) });
        given.fill_from(&json!({"apiKey": "other", "sessionId": "other"}));
        assert_eq!(given.api_key.as_deref(), Some("k 1"), "the query wins");
        let mut bare = Credentials::from_query(Some("apiKey="), QueryKey(None));
        assert_eq!(bare, Credentials::default());
        bare.fill_from(&json!({"apiKey": "key", "sessionId": "sid"}));
        assert_eq!(bare, Credentials { session_id: Some("sid".into()), api_key: Some("key".into()) });
    }
}
