//! The plumbing every Autessa WebSocket shares (agents now; tools next): admission from the
//! query, the opening `CONNECTION_STATUS`, requests read by `requestType` and served by a
//! [`SocketHandler`], heartbeats, the idle timeout and closing.
//!
//! - Admission: `?authorization=<key>` (or the `Authorization` header) through `auth::admit`,
//!   then the route's own checks (`resourceId`, …). Every request on the socket is admitted
//!   again (it counts against the key's limits; a revoked key stops working), and at most
//!   four run at once (more: an `ERROR` frame). A refusal is sent as an `ERROR` frame
//!   after the upgrade, then the socket closes: 1008 (policy) for a bad key or request, 1013
//!   (try again later) when rate limited, 1011 on a server fault.
//! - On open: `{"responseType":"CONNECTION_STATUS","status":"CONNECTED","errors":[]}`.
//! - Each text frame is a JSON object. `{"type":"ping"}` is answered `{"type":"pong"}` at once;
//!   anything else names a `requestType` and is served by the handler in a task of its own
//!   (so heartbeats are answered while an agent runs; requests may overlap). A frame that is
//!   not JSON, names no `requestType`, or is refused gets an `ERROR` frame; the socket stays
//!   open.
//! - Heartbeats: protocol pings from the client are answered with pongs (tungstenite does it
//!   as it reads), and the server pings every `heartbeat` (the server's setting, 15 s by
//!   default) to keep proxies from closing a quiet socket.
//! - Idle: no message from the client (a data frame or a protocol ping; pongs answering the
//!   server's pings do not count) for `autessa_ws_idle` (30 minutes by default) while no
//!   request is being served → close 1000 with the reason `idle timeout`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::auth::{self, Caller, LimitUsage, QueryKey};
use crate::state::AppState;

use super::error::{AutessaError, AutessaResult};

/// Close codes (RFC 6455 §7.4.1).
const NORMAL: u16 = 1000;
const POLICY: u16 = 1008;
const SERVER_ERROR: u16 = 1011;
const TRY_AGAIN_LATER: u16 = 1013;

/// Serves the requests of one socket. Cloned into the task of each request.
pub(crate) trait SocketHandler: Clone + Send + Sync + 'static {
    /// Serves one request (its `requestType` and the whole message); its frames go out
    /// through `out`. An error becomes an `ERROR` frame.
    fn handle(&self, request_type: String, message: Map<String, Value>, out: Outbox) -> impl Future<Output = AutessaResult<()>> + Send;

    /// Runs first, in the order messages arrive (not in a task of its own: keep it quick):
    /// the request to serve, or None when the message was taken in whole (a voice chunk
    /// buffered). By default every message is served as it is.
    fn prepare(&self, request_type: String, message: Map<String, Value>) -> AutessaResult<Option<(String, Map<String, Value>)>> {
        Ok(Some((request_type, message)))
    }
}

/// Where a request's frames go (to the socket, in order).
#[derive(Clone)]
pub(crate) struct Outbox(mpsc::UnboundedSender<Value>);

impl Outbox {
    /// Sends a frame (dropped when the socket has closed).
    pub fn send(&self, frame: Value) {
        let _ = self.0.send(frame);
    }
}

/// A socket's admission: its caller, where its key's limits stood, and the key (kept in
/// memory for the socket's life) by which every request on it is admitted again — counted
/// against the key's limits like a REST call, and refused once the key is revoked.
pub(crate) struct Admission {
    pub caller: Caller,
    pub usage: LimitUsage,
    secret: String,
}

impl Admission {
    async fn again(&self, state: &AppState) -> AutessaResult<()> {
        super::admit_key(state, Some(self.secret.clone())).await.map(|_| ()).map_err(|(error, _)| error)
    }
}

/// The key a socket presents: `?authorization=` (the vendor's way; `key`, read by the rule of
/// [`auth::QUERY_KEY_ROUTES`]), else the headers.
pub(crate) async fn admit(state: &AppState, key: QueryKey, headers: &HeaderMap) -> AutessaResult<Admission> {
    let secret = key.0.or_else(|| auth::presented_key(headers).map(str::to_owned));
    let (caller, usage) = super::admit_key(state, secret.clone()).await.map_err(|(error, _)| error)?;
    Ok(Admission { caller, usage, secret: secret.unwrap_or_default() })
}

/// Requests one socket may have running at once.
const MAX_IN_FLIGHT: usize = 4;

/// Upgrades: serves `opened`'s handler, or sends its refusal and closes.
pub(crate) fn accept<H: SocketHandler>(upgrade: WebSocketUpgrade, state: &AppState, opened: AutessaResult<(H, Admission)>) -> Response {
    let (heartbeat, idle) = (state.config.heartbeat, state.config.autessa_ws_idle);
    let usage = opened.as_ref().ok().map(|(_, admission)| admission.usage);
    let state = state.clone();
    // A message holds at most what a REST body may (spoken input included).
    let limit = crate::speech::body_limit(&state);
    let upgrade = upgrade.read_buffer_size(crate::events::SOCKET_READ_BUFFER).max_message_size(limit).max_frame_size(limit);
    let mut response = upgrade.on_upgrade(move |socket| async move {
        match opened {
            Ok((handler, admission)) => serve(socket, handler, Arc::new((state, admission)), heartbeat, idle).await,
            Err(refused) => refuse(socket, refused).await,
        }
    });
    LimitUsage::write_all_headers(usage.as_ref(), response.headers_mut());
    response
}

/// The answer of a route that only speaks WebSocket to a plain request.
pub(crate) fn not_a_websocket() -> AutessaError {
    AutessaError::bad_request("This endpoint speaks WebSocket only: connect with ?authorization=<key>&resourceId=<id>")
}

type Sink = SplitSink<WebSocket, Message>;

async fn refuse(socket: WebSocket, refused: AutessaError) {
    let (mut tx, mut rx) = socket.split();
    let code = match refused.status {
        StatusCode::TOO_MANY_REQUESTS => TRY_AGAIN_LATER,
        status if status.is_server_error() => SERVER_ERROR,
        _ => POLICY,
    };
    if send(&mut tx, &refused.frame()).await.is_ok() {
        let reason = refused.errors.first().cloned().unwrap_or_default();
        close(&mut tx, &mut rx, code, &reason).await;
    }
}

async fn serve<H: SocketHandler>(socket: WebSocket, handler: H, admitted: Arc<(AppState, Admission)>, heartbeat: Duration, idle: Duration) {
    let (mut tx, mut rx) = socket.split();
    if send(&mut tx, &json!({"responseType": "CONNECTION_STATUS", "status": "CONNECTED", "errors": []})).await.is_err() {
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let outbox = Outbox(out_tx);
    // Dropped with the socket: requests still being served are aborted (their sessions go on).
    let mut requests = JoinSet::new();
    let mut pings = tokio::time::interval(heartbeat);
    pings.tick().await;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        tokio::select! {
            message = rx.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        outbox.send(AutessaError::bad_request("Send JSON text frames").frame());
                        continue;
                    }
                    Some(Ok(Message::Ping(_))) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        continue;
                    }
                    Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                };
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                match read_request(&text) {
                    Ok(Request::Ping) => outbox.send(json!({"type": "pong"})),
                    Ok(Request::Serve(request_type, message)) => {
                        let (request_type, message) = match handler.prepare(request_type, message) {
                            Ok(Some(request)) => request,
                            Ok(None) => continue,
                            Err(refused) => {
                                outbox.send(refused.frame());
                                continue;
                            }
                        };
                        if requests.len() >= MAX_IN_FLIGHT {
                            let busy = format!("This socket already runs {MAX_IN_FLIGHT} requests: wait for an answer first");
                            outbox.send(AutessaError::new(StatusCode::TOO_MANY_REQUESTS, busy).frame());
                            continue;
                        }
                        let (handler, out, admitted) = (handler.clone(), outbox.clone(), admitted.clone());
                        requests.spawn(async move {
                            let (state, admission) = &*admitted;
                            let served = match admission.again(state).await {
                                Ok(()) => handler.handle(request_type, message, out.clone()).await,
                                Err(refused) => Err(refused),
                            };
                            if let Err(refused) = served {
                                out.send(refused.frame());
                            }
                        });
                    }
                    Err(refused) => outbox.send(refused.frame()),
                }
            }
            Some(frame) = out_rx.recv() => {
                if send(&mut tx, &frame).await.is_err() {
                    return;
                }
            }
            Some(_) = requests.join_next(), if !requests.is_empty() => {
                // Idle time counts from the end of the last request.
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
            }
            _ = pings.tick() => {
                if tx.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = &mut idle_timer, if requests.is_empty() => {
                // Frames still queued go out first.
                while let Ok(frame) = out_rx.try_recv() {
                    if send(&mut tx, &frame).await.is_err() {
                        return;
                    }
                }
                let reason = format!("idle timeout: no message for {} seconds", idle.as_secs());
                return close(&mut tx, &mut rx, NORMAL, &reason).await;
            }
        }
    }
}

/// A client frame.
#[derive(Debug, PartialEq)]
enum Request {
    /// `{"type": "ping"}`.
    Ping,
    /// A request by its `requestType` (upper-cased).
    Serve(String, Map<String, Value>),
}

fn read_request(text: &str) -> AutessaResult<Request> {
    let message = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(message)) => message,
        Ok(_) => return Err(AutessaError::bad_request("A message must be a JSON object with a requestType")),
        Err(e) => return Err(AutessaError::bad_request(format!("The message is not valid JSON: {e}"))),
    };
    if message.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("ping")) {
        return Ok(Request::Ping);
    }
    match message.get("requestType").and_then(Value::as_str).map(str::trim) {
        Some(request_type) if !request_type.is_empty() => Ok(Request::Serve(request_type.to_ascii_uppercase(), message)),
        _ => Err(AutessaError::bad_request("requestType is required")),
    }
}

async fn send(tx: &mut Sink, frame: &Value) -> Result<(), axum::Error> {
    tx.send(Message::Text(frame.to_string().into())).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_pings_or_requests() {
        assert_eq!(read_request(r#"{"type":"ping"}"#).unwrap(), Request::Ping);
        match read_request(r#"{"requestType":"execute_agent","input":[]}"#).unwrap() {
            Request::Serve(name, message) => assert_eq!((name.as_str(), message.len()), ("EXECUTE_AGENT", 2)),
            other => panic!("{other:?}"),
        }
        for bad in ["nope", "[1]", r#"{"agentId": 1}"#, r#"{"requestType": " "}"#] {
            assert_eq!(read_request(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
