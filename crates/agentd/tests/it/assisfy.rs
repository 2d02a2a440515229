//! The Assisfy API (seeds 000 and 002, SPECS §1 and the §5.1 checklist): create and read
//! over REST with either header, the WebSocket at `/v1/connect` and the SSE stream at
//! `/events/v1/connect` with the SDK's exact messages, answers by socket and by egress, the
//! refusals, and the auto-trigger's validation. Sessions run the scripted agent of
//! `support.rs` (its goal is its script).

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `POST /api/v1/sessions` with the SDK's header; returns (status, body).
async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url("/api/v1/sessions")).header("x-api-key", &app.key).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Creates a session running `script` the SDK's way; returns its id.
async fn start(app: &TestApp, script: &str) -> String {
    let (status, body) = create(app, json!({"goal": script, "url": "https://example.com", "auto_trigger": null, "connectStrategy": "websocket"})).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["sessionId"].as_str().unwrap().to_owned()
}

async fn connect(app: &TestApp, query: &str) -> Socket {
    let url = format!("{}/v1/connect{query}", app.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("ws connects").0
}

/// What the server sent next: a frame, or its close (code, reason).
#[derive(Debug, PartialEq)]
enum Received {
    Frame(Value),
    Closed(u16, String),
}

async fn receive(ws: &mut Socket) -> Received {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("ws stalled");
        match message {
            Some(Ok(Message::Text(text))) => return Received::Frame(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                return Received::Closed(code, reason);
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Received::Closed(1006, String::new()),
        }
    }
}

/// The next frame as (event, data).
async fn frame(ws: &mut Socket) -> (String, Value) {
    match receive(ws).await {
        Received::Frame(f) => {
            let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["data", "event"], "frames are {{event, data}}: {f}");
            (f["event"].as_str().unwrap().to_owned(), f["data"].clone())
        }
        closed => panic!("expected a frame, got {closed:?}"),
    }
}

/// Frames until the server closes: ((event, data)..., (code, reason)).
async fn rest(ws: &mut Socket) -> (Vec<(String, Value)>, (u16, String)) {
    let mut frames = Vec::new();
    loop {
        match receive(ws).await {
            Received::Frame(f) => frames.push((f["event"].as_str().unwrap().to_owned(), f["data"].clone())),
            Received::Closed(code, reason) => return (frames, (code, reason)),
        }
    }
}

fn keys(data: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The SDK's `handleInput(input)` message.
fn sdk_input(input: &str) -> Value {
    json!({"type": "external_resource_granted", "data": {"input": input, "resource_type": "request_user_input", "granted": true}})
}

/// The SDK's `handlePermissionRequest(granted)` message.
fn sdk_permission(granted: bool) -> Value {
    json!({"type": "external_resource_granted", "data": {"granted": granted, "resource_type": "admin_permission_request"}})
}

async fn say(ws: &mut Socket, message: &Value) {
    ws.send(Message::Text(message.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn create_takes_either_header_and_the_documented_or_the_sdk_body() {
    let app = spawn_with(|c| c.sessions.default_max_actions = 42).await;
    // The document's request: Bearer, {goal, start_url, max_actions}.
    let r = app
        .http
        .post(app.url("/api/v1/sessions"))
        .bearer_auth(&app.key)
        .json(&json!({"goal": "wait", "start_url": "https://example.com/start", "max_actions": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    for field in ["session_id", "status", "start_time", "end_time", "error"] {
        assert!(body.as_object().unwrap().contains_key(field), "{field} in {body}");
    }
    let id = body["session_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(body["status"], "started");
    assert!(chrono::DateTime::parse_from_rfc3339(body["start_time"].as_str().unwrap()).is_ok());
    assert_eq!((&body["end_time"], &body["error"]), (&Value::Null, &Value::Null));
    assert_eq!(body["data"]["sessionId"], id.as_str());
    assert_eq!(body["data"]["session_id"], id.as_str());
    assert_eq!(body["data"]["status"], "started");
    let native = app.session(&id).await;
    assert_eq!(native["max_actions"], 7, "max_actions honoured");
    assert_eq!(native["start_url"], "https://example.com/start");

    // The SDK's request: x-api-key only, `url`, `auto_trigger: null`, `connectStrategy`.
    let (status, body) = create(&app, json!({"goal": "wait", "url": "https://example.com", "auto_trigger": null, "connectStrategy": "sse"})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["sessionId"].as_str().unwrap();
    assert_eq!(body["session_id"], id);
    let native = app.session(id).await;
    assert_eq!(native["max_actions"], 42, "the server's default");
    assert_eq!(native["start_url"], "https://example.com/");
    // `withAutoTrigger: null` is a normal session too.
    let (status, _) = create(&app, json!({"goal": "done:ok", "withAutoTrigger": null})).await;
    assert_eq!(status, 201);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_keys_are_401_bad_bodies_400_naming_the_field_and_limits_429() {
    let app = spawn_app().await;
    let anonymous = app.http.post(app.url("/api/v1/sessions")).json(&json!({"goal": "x"})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap(), json!({"error": "Invalid API key"}));
    for wrong in [("x-api-key", "nope"), ("authorization", "Bearer nope")] {
        let r = app.http.post(app.url("/api/v1/sessions")).header(wrong.0, wrong.1).json(&json!({"goal": "x"})).send().await.unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "Invalid API key"}));
    }
    let r = app.http.get(app.url(&format!("/api/v1/sessions/{}", uuid::Uuid::now_v7()))).send().await.unwrap();
    assert_eq!(r.status(), 401);

    for (body, field) in [
        (json!({}), "goal"),
        (json!({"goal": "  ", "url": "https://example.com"}), "goal"),
        (json!({"goal": 5}), "goal"),
        (json!({"goal": "x", "url": "ftp://example.com"}), "url"),
        (json!({"goal": "x", "start_url": "not a url"}), "start_url"),
        (json!({"goal": "x", "max_actions": 0}), "max_actions"),
        (json!({"goal": "x", "max_actions": "ten"}), "max_actions"),
    ] {
        let (status, e) = create(&app, body.clone()).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert_eq!(keys(&e), ["error"], "{e}");
        assert!(e["error"].as_str().unwrap().contains(field), "{body} → {e}");
    }
    let r = app.http.post(app.url("/api/v1/sessions")).header("x-api-key", &app.key).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());

    let limited = app.key_in("limited", Some(1)).await;
    let post = || app.http.post(app.url("/api/v1/sessions")).header("x-api-key", &limited).json(&json!({"goal": "done:ok"})).send();
    assert_eq!(post().await.unwrap().status(), 201);
    let r = post().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after") && r.headers().contains_key("x-ratelimit-limit-minute"));
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("rate limit"));
    app.shutdown().await;
}

#[tokio::test]
async fn read_shows_the_session_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let (_, created) = create(&app, json!({"goal": "done:all good", "start_url": "https://example.com/a", "max_actions": 9})).await;
    let id = created["session_id"].as_str().unwrap();
    app.wait_status(id, "completed").await;
    let r = app.http.get(app.url(&format!("/api/v1/sessions/{id}"))).header("x-api-key", &app.key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["session_id"], id);
    assert_eq!(body["status"], "complete");
    assert_eq!(body["goal"], "done:all good");
    assert_eq!(body["start_url"], "https://example.com/a");
    assert_eq!(body["max_actions"], 9);
    assert_eq!(body["total_cost"], 0.0);
    assert_eq!(body["response"], "all good");
    assert_eq!(body["error"], Value::Null);
    assert!(chrono::DateTime::parse_from_rfc3339(body["end_time"].as_str().unwrap()).is_ok());
    assert_eq!(body["data"]["sessionId"], id);
    assert_eq!(body["data"]["goal"], "done:all good");

    let failed = start(&app, "fail:it broke").await;
    app.wait_status(&failed, "failed").await;
    let body: Value = app.get(&format!("/api/v1/sessions/{failed}")).await.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["error"].as_str()), (Some("error"), Some("it broke")));

    let other = app.other_project_key().await;
    for (key, path) in [
        (app.key.clone(), format!("/api/v1/sessions/{}", uuid::Uuid::now_v7())),
        (app.key.clone(), "/api/v1/sessions/nonsense".to_owned()),
        (other, format!("/api/v1/sessions/{id}")),
    ] {
        let r = app.http.get(app.url(&path)).header("x-api-key", key).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "Session not found"}));
    }
    app.shutdown().await;
}

#[tokio::test]
async fn auto_trigger_is_validated_with_the_sdk_messages() {
    let app = spawn_app().await;
    let trigger = json!({"interval": 30, "end_at": "2030-01-20T00:00:00Z", "start_now": false, "web_hook_url": "https://example.com/webhook"});
    for (body, says) in [
        (json!({"goal": "x", "auto_trigger": "daily"}), "Auto trigger must be an object"),
        (json!({"goal": "x", "auto_trigger": {"interval": 30}}), "Auto trigger must have a interval, end_at and web_hook_url"),
        (json!({"goal": "x", "withAutoTrigger": {"interval": 0, "end_at": "2030-01-20T00:00:00Z", "web_hook_url": "https://x.org"}}),
            "Auto trigger must have a interval, end_at and web_hook_url"),
        (json!({"goal": "x", "auto_trigger": {"interval": 30, "end_at": "soon", "web_hook_url": "https://x.org"}}), "auto_trigger.end_at"),
        (json!({"auto_trigger": trigger.clone()}), "goal"),
        (json!({"goal": "x", "auto_trigger": trigger.clone(), "max_session_per_day": 0}), "max_session_per_day"),
        (json!({"goal": "x", "auto_trigger": {"interval": 30, "end_at": "2030-01-20T00:00:00Z", "web_hook_url": "http://169.254.169.254/x"}}),
            "auto_trigger.web_hook_url is refused"),
    ] {
        let (status, e) = create(&app, body.clone()).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{body} → {e}");
    }
    for key in ["auto_trigger", "withAutoTrigger"] {
        let (status, e) = create(&app, json!({"goal": "done:ok", key: trigger.clone()})).await;
        assert_eq!(status, 201, "{e}");
        assert_eq!(e["data"]["sessionId"], Value::Null, "start_now false: no session yet");
    }
    app.shutdown().await;
}

/// A webhook receiver on loopback keeping `(headers, body)` of each POST.
async fn receiver() -> (std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, serde_json::from_str::<Value>(&body).unwrap()));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (got, url)
}

/// Waits until the receiver has a `trigger.*` message named `event`; returns every message.
async fn until_hook(got: &std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>, event: &str) -> Vec<(axum::http::HeaderMap, Value)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = got.lock().unwrap().clone();
        if all.iter().any(|(_, body)| body["event"] == event) {
            return all;
        }
        assert!(std::time::Instant::now() < deadline, "no {event} webhook: {:?}", all.iter().map(|(_, b)| b).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_auto_trigger_runs_on_its_interval_and_reports_signed_trigger_webhooks() {
    let app = spawn_app().await;
    let (got, url) = receiver().await;
    let end = (agentd_engine::Clock::wall(app.clock.as_ref()) + chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = create(&app, json!({
        "goal": "emit:1; done:ran", "url": "https://example.com", "connectStrategy": "sse", "max_session_per_day": 2,
        "withAutoTrigger": {"interval": 30, "end_at": end, "start_now": false, "web_hook_url": url},
    })).await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    for field in ["goal", "email", "config", "max_session_per_day", "today_sessions", "sessions_left", "auto_trigger_tracking_id",
                  "auto_trigger_web_hook_url", "auto_trigger_web_hook_signature"] {
        assert!(data.get(field).is_some(), "data lacks {field}: {data}");
    }
    assert_eq!((data["goal"].as_str(), data["auto_trigger_web_hook_url"].as_str()), (Some("emit:1; done:ran"), Some(url.as_str())));
    assert_eq!((data["today_sessions"].as_u64(), data["sessions_left"].as_u64(), data["max_session_per_day"].as_u64()), (Some(0), Some(2), Some(2)));
    let tracking = data["auto_trigger_tracking_id"].as_str().unwrap().to_owned();
    let secret = data["auto_trigger_web_hook_signature"].as_str().unwrap().to_owned();

    // Nothing before the first interval; then a run, reported by webhooks only.
    app.clock.advance(Duration::from_secs(29 * 60));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(got.lock().unwrap().is_empty());
    app.clock.advance(Duration::from_secs(60));
    let all = until_hook(&got, "trigger.complete").await;
    let events: Vec<&str> = all.iter().map(|(_, b)| b["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["trigger.session.started", "trigger.thoughts.and.memories", "trigger.complete"]);
    let session = all[0].1["data"]["sessionId"].as_str().unwrap().to_owned();
    for (headers, body) in &all {
        assert_eq!((body["data"]["sessionId"].as_str(), body["data"]["tracking_id"].as_str()), (Some(session.as_str()), Some(tracking.as_str())));
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        let signed = agentd_engine::webhooks::sign::verify(&secret, &header("webhook-id"), header("webhook-timestamp").parse().unwrap(),
            &body.to_string(), &header("webhook-signature"));
        assert!(signed, "the signature verifies with auto_trigger_web_hook_signature: {body}");
        assert!(headers.get("x-assisfy-signature").is_none(), "the key itself is never sent");
        assert_eq!(header("x-assisfy-event"), body["event"].as_str().unwrap());
        let expected = agentd_engine::webhooks::sign::hex_hmac(&secret, &body.to_string());
        assert_eq!(header("x-assisfy-signature-256"), format!("sha256={expected}"));
    }
    assert_eq!(all[2].1["data"]["response"], "ran");
    let schedule: Value = app.get(&format!("/v1/schedules/{tracking}")).await.json().await.unwrap();
    assert_eq!((schedule["today_sessions"].as_u64(), schedule["sessions_left"].as_u64()), (Some(1), Some(1)));
    app.shutdown().await;
}

#[tokio::test]
async fn an_auto_trigger_started_now_gives_its_session_to_connect_to() {
    let app = spawn_app().await;
    let (got, url) = receiver().await;
    let end = (agentd_engine::Clock::wall(app.clock.as_ref()) + chrono::Duration::days(1)).to_rfc3339();
    let (status, body) = create(&app, json!({
        "goal": "input:email; done:thanks", "url": "https://example.com",
        "auto_trigger": {"interval": 1440, "end_at": end, "start_now": true, "web_hook_url": url},
    })).await;
    assert_eq!(status, 201, "{body}");
    let session = body["data"]["sessionId"].as_str().expect("started now: data.sessionId").to_owned();
    let requested = until_hook(&got, "trigger.external.resource.requested").await;
    let asked = &requested.iter().find(|(_, b)| b["event"] == "trigger.external.resource.requested").unwrap().1;
    assert_eq!((asked["data"]["resource_type"].as_str(), asked["data"]["field_name"].as_str()), (Some("request_user_input"), Some("email")));
    // As the SDK does after trigger.session.started: connect to the session and answer.
    let mut ws = connect(&app, &format!("?sessionId={session}&apiKey={}", app.key)).await;
    loop {
        let (name, _) = frame(&mut ws).await;
        if name == "external_resource_requested" {
            break;
        }
    }
    say(&mut ws, &sdk_input("me@example.org")).await;
    until_hook(&got, "trigger.complete").await;
    assert_eq!(app.session(&session).await["response"], "thanks");
    app.shutdown().await;
}

#[tokio::test]
async fn a_run_over_the_websocket_shows_the_documented_frames_and_takes_the_sdk_answers() {
    let app = spawn_app().await;
    let id = start(&app, "emit:1; input:email; permission; done:ok").await;
    let query = format!("?sessionId={id}&apiKey={}", app.key);
    let mut ws = connect(&app, &query).await;
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "started");
    assert_eq!(data, json!({"sessionId": id, "start_url": "https://example.com/"}));
    assert_eq!(frame(&mut ws).await, ("thoughts_and_memories".into(), json!({"thought": "step 0", "memory": ""})));
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "external_resource_requested");
    assert_eq!(
        data,
        json!({"resource_type": "request_user_input", "reason": "the script asks", "action_session_id": id, "field_name": "email"})
    );

    // A permission answer to an input request is refused; the socket and the session go on.
    say(&mut ws, &sdk_permission(true)).await;
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "error");
    assert!(data["error"].as_str().unwrap().contains("request_user_input"), "{data}");
    assert_eq!(app.session(&id).await["status"], "waiting");

    // A second client follows from the start.
    let mut watcher = connect(&app, &query).await;
    say(&mut ws, &sdk_input("me@example.com")).await;
    assert_eq!(frame(&mut ws).await, ("external_resource_granted".into(), json!({"granted": true, "input": "me@example.com"})));
    assert_eq!(frame(&mut ws).await.0, "thoughts_and_memories", "the log's grant is not sent twice");
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "external_resource_requested");
    assert_eq!(data, json!({"resource_type": "admin_permission_request", "reason": "may I?", "action_session_id": id}));
    say(&mut ws, &sdk_permission(false)).await;
    assert_eq!(frame(&mut ws).await, ("external_resource_granted".into(), json!({"granted": false})));
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "thoughts_and_memories");
    assert_eq!(keys(&data), ["memory", "thought"]);
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "complete");
    assert_eq!(keys(&data), ["cost_summary", "response", "session_id", "total_cost", "type"]);
    assert_eq!((data["response"].as_str(), data["type"].as_str()), (Some("ok"), Some("STRING")));
    assert_eq!((data["session_id"].as_str(), data["total_cost"].as_f64()), (Some(id.as_str()), Some(0.0)));
    // The SDK closes on `complete` itself, as the server does.
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "Session completed".into() }))).await.ok();
    assert!(matches!(receive(&mut ws).await, Received::Closed(1000, _)));
    assert_eq!(app.events_of(&id, "thought").await[1]["got"], "me@example.com", "the agent got the input");

    // The other client saw the same run from the log: the grant without its input.
    let (frames, close) = rest(&mut watcher).await;
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "started", "thoughts_and_memories", "external_resource_requested", "external_resource_granted",
            "thoughts_and_memories", "external_resource_requested", "external_resource_granted",
            "thoughts_and_memories", "complete",
        ]
    );
    assert_eq!(frames[3].1, json!({"granted": true}));
    assert_eq!(frames[6].1, json!({"granted": false}));
    assert_eq!(close, (1000, "Session completed".to_owned()));
    app.shutdown().await;
}

#[tokio::test]
async fn the_websocket_takes_credentials_in_a_first_message_and_closes_1008_on_refusal() {
    let app = spawn_app().await;
    let id = start(&app, "emit:1; done:ok").await;
    // The document's way: no query, a connection payload first.
    let mut ws = connect(&app, "").await;
    say(&mut ws, &json!({"apiKey": app.key, "sessionId": id})).await;
    let (frames, close) = rest(&mut ws).await;
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["started", "thoughts_and_memories", "complete"]);
    assert_eq!(close, (1000, "Session completed".to_owned()));

    let unknown = uuid::Uuid::now_v7();
    for (query, first, reason) in [
        (format!("?sessionId={id}&apiKey=wrong"), None, "Invalid API key"),
        (format!("?sessionId={unknown}&apiKey={}", app.key), None, "Session not found"),
        (format!("?apiKey={}", app.key), None, "sessionId is required"),
        (String::new(), Some(json!({"apiKey": "wrong", "sessionId": id})), "Invalid API key"),
        (format!("?sessionId={id}"), Some(json!({"hello": true})), "Invalid API key"),
        (String::new(), Some(json!("not an object")), "apiKey"),
    ] {
        let mut ws = connect(&app, &query).await;
        if let Some(first) = &first {
            say(&mut ws, first).await;
        }
        match receive(&mut ws).await {
            Received::Closed(code, said) => {
                assert_eq!(code, 1008, "{query} {first:?}");
                assert!(said.contains(reason), "{query} {first:?} → {said}");
            }
            other => panic!("{query} {first:?}: expected a close, got {other:?}"),
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_safety_check_is_an_admin_permission_request_and_a_grant_resumes_the_run() {
    let app = spawn_app().await;
    let id = start(&app, "safety:sensitive_form; done:went through").await;
    let mut ws = connect(&app, &format!("?sessionId={id}&apiKey={}", app.key)).await;
    assert_eq!(frame(&mut ws).await.0, "started");
    let (name, data) = frame(&mut ws).await;
    assert_eq!(name, "external_resource_requested");
    assert_eq!(data, json!({"resource_type": "admin_permission_request", "reason": "a risky step", "action_session_id": id}));
    say(&mut ws, &sdk_permission(true)).await;
    assert_eq!(frame(&mut ws).await, ("external_resource_granted".into(), json!({"granted": true})));
    let (frames, close) = rest(&mut ws).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, "complete");
    assert_eq!(frames[0].1["response"], "went through");
    assert_eq!(close.0, 1000);
    let resolved = app.events_of(&id, "safety_check_resolved").await;
    assert_eq!(resolved[0]["confirmed"], true);

    // Denied, the run ends as stopped: an `error`, then a normal close.
    let denied = start(&app, "safety:download; done:never").await;
    let mut ws = connect(&app, &format!("?sessionId={denied}&apiKey={}", app.key)).await;
    assert_eq!(frame(&mut ws).await.0, "started");
    assert_eq!(frame(&mut ws).await.0, "external_resource_requested");
    // `event` (the egress route's key) is accepted on the socket too.
    say(&mut ws, &json!({"event": "external_resource_granted", "data": {"granted": false}})).await;
    assert_eq!(frame(&mut ws).await, ("external_resource_granted".into(), json!({"granted": false})));
    let (frames, close) = rest(&mut ws).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, "error");
    assert_eq!(frames[0].1, json!({"error": "Session stopped: a person denied the safety check"}));
    assert_eq!(close, (1000, "Session ended".to_owned()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_run_ends_with_an_error_frame() {
    let app = spawn_app().await;
    let id = start(&app, "fail:the site is down").await;
    let mut ws = connect(&app, &format!("?sessionId={id}&apiKey={}", app.key)).await;
    let (frames, close) = rest(&mut ws).await;
    assert_eq!(frames.last().unwrap(), &("error".to_owned(), json!({"error": "the site is down"})));
    assert_eq!(close.0, 1000);
    app.shutdown().await;
}

/// Reads an SSE stream until it ends; (event, data, id), heartbeats left out.
async fn read_sse(response: reqwest::Response, answer: impl Fn(&str, &Value) -> Option<Value>, app: &TestApp, egress: &str) -> Vec<(String, Value, String)> {
    let mut stream = response.bytes_stream().eventsource();
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("SSE stalled");
        let Some(event) = next else { return out };
        let event = event.expect("valid SSE");
        if event.event == "hearbeat" || event.event == "heartbeat" {
            continue;
        }
        let data: Value = serde_json::from_str(&event.data).unwrap();
        if let Some(body) = answer(&event.event, &data) {
            let r = app.http.post(app.url(egress)).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<Value>().await.unwrap(), json!({"ok": true}));
        }
        out.push((event.event, data, event.id));
    }
}

#[tokio::test]
async fn a_run_over_sse_takes_its_answers_at_the_egress_route() {
    let app = spawn_app().await;
    let id = start(&app, "emit:1; input:email; permission; done:ok").await;
    let query = format!("?sessionId={id}&apiKey={}", app.key);
    let r = app.http.get(app.url(&format!("/events/v1/connect{query}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // The SDK's egress messages: `event`, not `type`.
    let answer = |name: &str, data: &Value| {
        (name == "external_resource_requested").then(|| match data["resource_type"].as_str() {
            Some("request_user_input") => json!({"event": "external_resource_granted", "data": {"input": "me@example.com", "resource_type": "request_user_input", "granted": true}}),
            _ => json!({"event": "external_resource_granted", "data": {"granted": false, "resource_type": "admin_permission_request"}}),
        })
    };
    let events = read_sse(r, answer, &app, &format!("/events/v1/egress{query}")).await;
    let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "connected", "started", "thoughts_and_memories", "external_resource_requested", "external_resource_granted",
            "thoughts_and_memories", "external_resource_requested", "external_resource_granted",
            "thoughts_and_memories", "complete",
        ]
    );
    assert_eq!(events[0].1, json!({"sessionId": id}));
    assert_eq!(events[1].1, json!({"sessionId": id, "start_url": "https://example.com/"}));
    assert_eq!(events[3].1["field_name"], "email");
    assert_eq!(events[6].1["resource_type"], "admin_permission_request");
    assert_eq!(events[7].1, json!({"granted": false}));
    assert_eq!(events[9].1["response"], "ok");
    assert_eq!(app.events_of(&id, "thought").await[1]["got"], "me@example.com");

    // Resuming after an event gives what followed; after the last, 204 (EventSource stops).
    let after = &events[6].2;
    let resumed = app.http.get(app.url(&format!("/events/v1/connect{query}"))).header("last-event-id", after).send().await.unwrap();
    let resumed = read_sse(resumed, |_, _| None, &app, "").await;
    let names: Vec<&str> = resumed.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["connected", "external_resource_granted", "thoughts_and_memories", "complete"]);
    let last = &events[9].2;
    let over = app.http.get(app.url(&format!("/events/v1/connect{query}"))).header("last-event-id", last).send().await.unwrap();
    assert_eq!(over.status(), 204);
    app.shutdown().await;
}

#[tokio::test]
async fn sse_says_connected_then_beats_under_both_spellings_and_refuses_as_json() {
    let app = spawn_app().await;
    let id = start(&app, "wait").await;
    let r = app.http.get(app.url(&format!("/events/v1/connect?sessionId={id}&apiKey={}", app.key))).send().await.unwrap();
    let mut stream = r.bytes_stream().eventsource();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.event, "connected");
    let mut beats = std::collections::HashSet::new();
    while beats.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("a heartbeat").unwrap().unwrap();
        if event.event == "hearbeat" || event.event == "heartbeat" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(data["sessionId"], id.as_str());
            beats.insert(event.event);
        }
    }
    drop(stream);

    let unknown = uuid::Uuid::now_v7();
    for (path, status) in [
        (format!("/events/v1/connect?sessionId={id}&apiKey=wrong"), 401),
        (format!("/events/v1/connect?sessionId={id}"), 401),
        (format!("/events/v1/connect?sessionId={unknown}&apiKey={}", app.key), 404),
        (format!("/events/v1/connect?apiKey={}", app.key), 400),
    ] {
        let r = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string(), "{path}");
    }
    let egress = format!("/events/v1/egress?sessionId={id}&apiKey={}", app.key);
    for (path, body, status) in [
        (egress.clone(), sdk_input("x"), 409),
        (egress.clone(), json!({"event": "started", "data": {}}), 400),
        (egress.clone(), json!({"data": {"granted": true}}), 400),
        (format!("/events/v1/egress?sessionId={id}&apiKey=wrong"), sdk_input("x"), 401),
        (format!("/events/v1/egress?sessionId={unknown}&apiKey={}", app.key), sdk_input("x"), 404),
    ] {
        let r = app.http.post(app.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), status, "{path} {body}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    app.post(format!("/v1/sessions/{id}/stop"), json!({})).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_key_in_the_url_counts_on_the_streams_only() {
    let app = spawn_app().await;
    let id = start(&app, "wait").await;
    // REST routes take the key in a header only.
    let r = app.http.post(app.url(&format!("/api/v1/sessions?apiKey={}", app.key))).json(&json!({"goal": "x", "url": "https://example.com"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.http.get(app.url(&format!("/api/v1/sessions/{id}?apiKey={}&api_key={}", app.key, app.key))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The SSE stream (and its answers) and the WebSocket take it in the query, both spellings.
    for key in ["apiKey", "api_key"] {
        let r = app.http.get(app.url(&format!("/events/v1/connect?sessionId={id}&{key}={}", app.key))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{key}");
    }
    let r = app.http.post(app.url(&format!("/events/v1/egress?sessionId={id}&apiKey={}", app.key))).json(&sdk_input("x")).send().await.unwrap();
    assert_eq!(r.status(), 409, "admitted; the session asks nothing");
    let mut ws = connect(&app, &format!("?sessionId={id}&apiKey={}", app.key)).await;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"event\""), "{first:?}");
    app.shutdown().await;
}
