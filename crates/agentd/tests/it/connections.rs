//! Connections: the cap (N open; the next answered 503 and closed), the timeouts for
//! idle connections, half-sent heads and bodies shorter than their Content-Length, the head
//! size limit, a session socket's message limit, and streams (SSE, WebSocket) that outlive
//! the idle timeout. Raw sockets, so the
//! test controls every byte; each timeout is short and the only check on time is that the
//! server closes within a generous bound that the other (long) timeouts exceed.

use std::time::Duration;

use agentd::connections::MAX_HEAD_BYTES;
use eventsource_stream::Eventsource;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

/// How long a test waits for the server to close a connection: far above the short timeout
/// under test, far below the long ones it leaves configured.
const BOUND: Duration = Duration::from_secs(30);
/// The timeouts a test does not exercise.
const LONG: u64 = 3600;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connects")
}

/// Reads until the server closes the connection; returns what it sent before.
async fn read_until_closed(socket: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        // A reset is a close too.
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection within {BOUND:?}");
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `head` (and nothing else) and reads one whole response: its status line and body.
async fn exchange(socket: &mut TcpStream, head: &str) -> (String, String) {
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(BOUND, socket.read(&mut buf)).await.expect("a response").unwrap();
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        if body.len() >= length {
            return (head.lines().next().unwrap().to_owned(), body.to_owned());
        }
    }
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: agentd\r\n\r\n";

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_with(|c| {
        c.idle_timeout_seconds = 1;
        c.header_timeout_seconds = 300;
        c.body_timeout_seconds = LONG;
    })
    .await;
    // One that never says anything.
    let mut silent = connect(&app).await;
    assert_eq!(read_until_closed(&mut silent).await, "", "closed without an answer");
    // One kept alive after a response.
    let mut kept = connect(&app).await;
    let (status, _) = exchange(&mut kept, HEALTHZ).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(read_until_closed(&mut kept).await, "");
    app.shutdown().await;
}

#[tokio::test]
async fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let app = spawn_with(|c| {
        c.header_timeout_seconds = 1;
        c.idle_timeout_seconds = LONG;
        c.body_timeout_seconds = LONG;
    })
    .await;
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: agentd\r\n").await.unwrap();
    assert_eq!(read_until_closed(&mut socket).await, "");
    // The same after a first request on a kept-alive connection.
    let mut kept = connect(&app).await;
    assert_eq!(exchange(&mut kept, HEALTHZ).await.0, "HTTP/1.1 200 OK");
    kept.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    assert_eq!(read_until_closed(&mut kept).await, "");
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_closed_after_the_body_timeout() {
    let app = spawn_with(|c| {
        c.body_timeout_seconds = 1;
        c.header_timeout_seconds = 300;
        c.idle_timeout_seconds = LONG;
    })
    .await;
    let mut socket = connect(&app).await;
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: agentd\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(br#"{"goal": "emit:1"#).await.unwrap();
    assert_eq!(read_until_closed(&mut socket).await, "", "closed, no session created from half a body");
    let page: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 0, "{page}");
    // A whole body in the same shape is served.
    let mut whole = connect(&app).await;
    let body = json!({"goal": "emit:1"}).to_string();
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: agentd\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(exchange(&mut whole, &head).await.0, "HTTP/1.1 201 Created");
    app.shutdown().await;
}

#[tokio::test]
async fn the_cap_admits_n_connections_and_answers_the_next_503() {
    const N: usize = 3;
    let app = spawn_with(|c| c.max_connections = N).await;
    let mut open = Vec::new();
    for _ in 0..N {
        let mut socket = connect(&app).await;
        assert_eq!(exchange(&mut socket, HEALTHZ).await.0, "HTTP/1.1 200 OK");
        open.push(socket);
    }
    // The N+1th is answered 503 and closed: its request is not read (here it sends none, and
    // the answer comes all the same).
    let mut refused = connect(&app).await;
    let answer = read_until_closed(&mut refused).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole response");
    assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_connections"), "{body}");
    // An HTTP client reads the same answer to its request.
    let response = app.http.get(app.url("/healthz")).send().await.expect("an answer, not a reset");
    assert_eq!(response.status(), 503);
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].as_str()), (503, Some("unavailable")));
    // The cap counts open connections: one closes, and a new one is admitted.
    drop(open.pop());
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let mut socket = connect(&app).await;
        socket.write_all(HEALTHZ.as_bytes()).await.unwrap();
        let answer = read_some(&mut socket).await;
        if answer.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(std::time::Instant::now() < deadline, "no connection admitted after one closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.shutdown().await;
}

/// The first bytes the server sends.
async fn read_some(socket: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(BOUND, socket.read(&mut buf)).await.expect("an answer").unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_request_head_is_accepted_up_to_its_limit() {
    let app = spawn_app().await;
    let head_of = |size: usize| {
        let start = "GET /healthz HTTP/1.1\r\nHost: agentd\r\nX-Pad: ";
        let end = "\r\n\r\n";
        format!("{start}{}{end}", "a".repeat(size - start.len() - end.len()))
    };
    assert_eq!(head_of(MAX_HEAD_BYTES).len(), MAX_HEAD_BYTES);
    let mut at_limit = connect(&app).await;
    assert_eq!(exchange(&mut at_limit, &head_of(MAX_HEAD_BYTES)).await.0, "HTTP/1.1 200 OK");
    let mut over = connect(&app).await;
    assert_eq!(exchange(&mut over, &head_of(MAX_HEAD_BYTES + 1)).await.0, "HTTP/1.1 431 Request Header Fields Too Large");
    app.shutdown().await;
}

#[tokio::test]
async fn streams_stay_open_past_the_idle_timeout() {
    let app = spawn_with(|c| {
        c.idle_timeout_seconds = 1;
        c.header_timeout_seconds = 1;
        c.body_timeout_seconds = 1;
        // No heartbeat within the wait: the streams are quiet, not kept busy.
        c.heartbeat_seconds = 60;
    })
    .await;
    let by_sse = app.create("input:name; done:sse").await["id"].as_str().unwrap().to_owned();
    let by_ws = app.create("input:name; done:ws").await["id"].as_str().unwrap().to_owned();
    let response = app
        .http
        .get(app.url(&format!("/v1/sessions/{by_sse}/events")))
        .bearer_auth(&app.key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut sse = response.bytes_stream().eventsource();
    let mut next_sse = async || {
        let event = tokio::time::timeout(BOUND, sse.next()).await.expect("SSE stalled").expect("SSE open").expect("valid SSE");
        event.event
    };
    while next_sse().await != "input_requested" {}
    let url = app.url(&format!("/v1/sessions/{by_ws}/ws")).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", app.key).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("ws connects");
    loop {
        let message = tokio::time::timeout(BOUND, ws.next()).await.expect("WebSocket stalled").expect("WebSocket open");
        let Ok(Message::Text(text)) = message else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["data"]["type"] == "input_requested" {
            break;
        }
    }
    // Quiet for several idle timeouts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = app.post(format!("/v1/sessions/{by_sse}/input"), json!({"text": "ada"})).await;
    assert_eq!(r.status(), 200);
    let mut rest = Vec::new();
    while rest.last().is_none_or(|kind| kind != "completed") {
        rest.push(next_sse().await);
    }
    assert_eq!(rest, ["input_received", "thought", "completed"]);
    ws.send(Message::Text(json!({"type": "input", "text": "bob"}).to_string().into())).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(message) = tokio::time::timeout(BOUND, ws.next()).await.expect("WebSocket stalled") {
        let Ok(Message::Text(text)) = message else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        kinds.push(frame["data"]["type"].as_str().unwrap_or(frame["type"].as_str().unwrap()).to_owned());
    }
    assert!(kinds.contains(&"ack".to_owned()) && kinds.last().is_some_and(|k| k == "completed"), "{kinds:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_session_socket_takes_messages_up_to_the_body_limit() {
    const N: usize = 1024;
    let app = spawn_with(|c| c.body_limit_bytes = N).await;
    let session = app.create("wait").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&session, "running").await;
    let open = async || {
        let url = app.url(&format!("/v1/sessions/{session}/ws?after=1000")).replace("http://", "ws://");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {}", app.key).parse().unwrap());
        tokio_tungstenite::connect_async(request).await.expect("ws connects").0
    };
    // A command padded to exactly `size` bytes; any answer (ack or error) proves it was read.
    let padded = |size: usize| {
        let start = r#"{"type":"pause","pad":""#;
        let end = r#""}"#;
        format!("{start}{}{end}", "a".repeat(size - start.len() - end.len()))
    };
    let mut at_limit = open().await;
    at_limit.send(Message::Text(padded(N).into())).await.unwrap();
    let reply = tokio::time::timeout(BOUND, at_limit.next()).await.expect("a reply").expect("open").expect("a frame");
    let Message::Text(text) = reply else { panic!("{reply:?}") };
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert!(frame["type"] == "ack" || frame["type"] == "error", "{frame}");
    let mut over = open().await;
    over.send(Message::Text(padded(N + 1).into())).await.unwrap();
    match tokio::time::timeout(BOUND, over.next()).await.expect("the socket ends") {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
        Some(Ok(other)) => panic!("a message over the limit was answered: {other:?}"),
    }
    app.shutdown().await;
}
