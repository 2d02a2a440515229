//! The event log as JSON pages, SSE (resume, heartbeats, closing) and WebSocket (replay,
//! live, commands).

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn sse(app: &TestApp, session: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .get(app.url(&format!("/v1/sessions/{session}/events")))
        .bearer_auth(&app.key)
        .header("accept", "text/event-stream");
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    req.send().await.unwrap()
}

/// Reads SSE events until the stream closes; returns (id, event name, data).
async fn read_sse(response: reqwest::Response, max: usize) -> Vec<(u64, String, Value)> {
    let mut stream = response.bytes_stream().eventsource();
    let mut out = Vec::new();
    while out.len() < max {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("SSE stalled");
        let Some(event) = next else { break };
        let event = event.expect("valid SSE");
        out.push((event.id.parse().unwrap(), event.event, serde_json::from_str(&event.data).unwrap()));
    }
    out
}

#[tokio::test]
async fn json_pages_follow_after_and_limit() {
    let app = spawn_app().await;
    let s = id(&app.create("emit:7; done").await);
    app.wait_status(&s, "completed").await;
    let page: Value = app.get(&format!("/v1/sessions/{s}/events?after=2&limit=3")).await.json().await.unwrap();
    let seqs: Vec<u64> = page["data"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_after"], 5);
    let rest: Value = app.get(&format!("/v1/sessions/{s}/events?after=5")).await.json().await.unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 4);
    assert_eq!(rest["has_more"], false);
    let first = &page["data"][0];
    assert_eq!(first["session_id"], s.as_str());
    assert!(first["created_at"].is_string());
    for q in ["after=-1", "after=x", "limit=0", "limit=1001"] {
        let (status, _) = error_of(app.get(&format!("/v1/sessions/{s}/events?{q}")).await).await;
        assert_eq!(status, 400, "{q}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn sse_resumes_with_last_event_id_without_loss_or_duplicates() {
    let app = spawn_app().await;
    let s = id(&app.create("emit:5; input:go; emit:20; done:end").await);
    let first = sse(&app, &s, None).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let head = read_sse(first, 3).await;
    assert_eq!(head.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(head[0].1, "started");
    assert_eq!(head[0].2["type"], "started");
    // Disconnected; the session goes on while nobody listens.
    app.wait_status(&s, "waiting").await;
    app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "go"})).await;
    let rest = read_sse(sse(&app, &s, Some("3")).await, usize::MAX).await;
    let seqs: Vec<u64> = rest.iter().map(|e| e.0).collect();
    let expected: Vec<u64> = (4..=seqs.len() as u64 + 3).collect();
    assert_eq!(seqs, expected, "contiguous after 3");
    assert_eq!(rest.last().unwrap().1, "completed", "the stream closes after the terminal event");
    assert_eq!(rest.last().unwrap().2["data"]["response"], "end");
    let all = app.events(&s).await;
    assert_eq!(all.len() as u64, *seqs.last().unwrap());

    // A finished session replays its whole history, then closes.
    let replay = read_sse(sse(&app, &s, None).await, usize::MAX).await;
    assert_eq!(replay.len(), all.len());
    let tail = read_sse(sse(&app, &s, Some(&(all.len() as u64 - 1).to_string())).await, usize::MAX).await;
    assert_eq!(tail.len(), 1);
    // Resuming past the end of a finished session returns nothing and closes.
    let past = read_sse(sse(&app, &s, Some("9999")).await, usize::MAX).await;
    assert!(past.is_empty());

    for bad in ["x", "-1", "1.5"] {
        let (status, e) = error_of(sse(&app, &s, Some(bad)).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some("Last-Event-ID")), "{bad}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn sse_live_subscribers_see_every_event_once_in_order() {
    let app = spawn_app().await;
    let s = id(&app.create("input:start; emit:300; done").await);
    app.wait_status(&s, "waiting").await;
    let streams: Vec<_> = futures::future::join_all((0..5).map(|_| sse(&app, &s, None))).await;
    let readers: Vec<_> = streams.into_iter().map(|r| tokio::spawn(read_sse(r, usize::MAX))).collect();
    app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "go"})).await;
    for reader in readers {
        let events = reader.await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(events.len(), 1 + 1 + 1 + 300 + 1 + 1, "started, input_requested, input_received, 300 thoughts, thought, completed");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn sse_sends_heartbeats_on_quiet_streams() {
    let app = spawn_app().await;
    let s = id(&app.create("wait").await);
    let response = sse(&app, &s, Some("1")).await;
    let mut body = response.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("a heartbeat within 5 s").unwrap().unwrap();
    assert!(chunk.starts_with(b":"), "a comment line: {chunk:?}");
    app.shutdown().await;
}

async fn ws_connect(
    app: &TestApp,
    path: &str,
    header: bool,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}{}", app.base.replace("http://", "ws://"), path);
    let mut req = url.into_client_request().unwrap();
    if header {
        req.headers_mut().insert("authorization", format!("Bearer {}", app.key).parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.expect("ws connects").0
}

async fn next_json(ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin)) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("ws stalled")?;
        match msg.expect("ws frame") {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn websocket_streams_live_and_takes_commands() {
    let app = spawn_app().await;
    let s = id(&app.create("emit:2; input:name; done:fin").await);
    let mut ws = ws_connect(&app, &format!("/v1/sessions/{s}/ws"), true).await;
    let mut seen = Vec::new();
    while seen.last().map(|e: &Value| e["type"] != "input_requested").unwrap_or(true) {
        let frame = next_json(&mut ws).await.unwrap();
        assert_eq!(frame["type"], "event");
        seen.push(frame["data"].clone());
    }
    assert_eq!(seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // Bad commands get an error frame and change nothing.
    ws.send(Message::Text(r#"{"type":"fly"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "error");
    ws.send(Message::Text(r#"{"type":"resume"}"#.into())).await.unwrap();
    let err = next_json(&mut ws).await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_state");
    ws.send(Message::Text(r#"{"type":"input","text":"bob"}"#.into())).await.unwrap();
    let mut rest = Vec::new();
    let mut acked = false;
    while let Some(frame) = next_json(&mut ws).await {
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["command"], "input");
                acked = true;
            }
            Some("event") => rest.push(frame["data"].clone()),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(acked);
    let kinds: Vec<&str> = rest.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["input_received", "thought", "completed"]);
    assert_eq!(rest[1]["data"]["got"], "bob");

    // Replay from ?after=N on a finished session, authenticated by query parameter.
    let mut replay = ws_connect(&app, &format!("/v1/sessions/{s}/ws?after=5&api_key={ADMIN_KEY}"), false).await;
    let mut seqs = Vec::new();
    while let Some(frame) = next_json(&mut replay).await {
        seqs.push(frame["data"]["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [6, 7]);
    app.shutdown().await;
}

#[tokio::test]
async fn websocket_pause_resume_stop() {
    let app = spawn_app().await;
    let s = id(&app.create("wait").await);
    app.wait_status(&s, "running").await;
    let mut ws = ws_connect(&app, &format!("/v1/sessions/{s}/ws?after=1"), true).await;
    for (command, status) in [("pause", "paused"), ("resume", "running"), ("stop", "stopped")] {
        ws.send(Message::Text(json!({"type": command}).to_string().into())).await.unwrap();
        let mut acked = false;
        let mut event = None;
        while !(acked && event.is_some()) {
            let frame = next_json(&mut ws).await.expect("frame");
            match frame["type"].as_str() {
                Some("ack") => acked = true,
                Some("event") => event = Some(frame["data"]["type"].clone()),
                _ => panic!("{frame}"),
            }
        }
        assert_eq!(app.session(&s).await["status"], status);
    }
    assert!(next_json(&mut ws).await.is_none(), "closed after the terminal event");
    // Unknown session: refused before the upgrade.
    let url = format!("{}/v1/sessions/{}/ws", app.base.replace("http://", "ws://"), uuid::Uuid::now_v7());
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", app.key).parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    app.shutdown().await;
}
