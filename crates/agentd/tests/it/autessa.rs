//! The Autessa agents API (seed 003, SPECS §3 and §5.3), tested as a client that read only
//! those: raw-key auth, the `{errors}` envelope and rate-limit headers on every answer,
//! `resourceId`, conversations pinned to a version, single-shot and multi-turn execution,
//! closing, and the WebSocket catalogue.

use std::time::Duration;

use agentd_testllm::{Reply, ScriptedLlm};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LIMIT_HEADERS: [&str; 4] = ["x-ratelimit-limit-minute", "x-ratelimit-remaining-minute", "x-ratelimit-limit-day", "x-ratelimit-remaining-day"];

/// A native agent of `kind`, optionally published; its Autessa resource id.
async fn agent(app: &TestApp, kind: &str, instructions: &str, publish: bool) -> (String, u64) {
    let r = app.post("/v1/agents", json!({"name": "Helper", "kind": kind, "instructions": instructions, "publish": publish})).await;
    let agent: Value = r.json().await.unwrap();
    (agent["id"].as_str().unwrap().to_owned(), agent["resource_id"].as_u64().expect("resource_id"))
}

async fn new_draft(app: &TestApp, agent: &str, instructions: &str) {
    let r = app.http.put(app.url(&format!("/v1/agents/{agent}/draft"))).bearer_auth(&app.key).json(&json!({"instructions": instructions})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

async fn publish(app: &TestApp, agent: &str) {
    assert_eq!(app.post(format!("/v1/agents/{agent}/publish"), json!({})).await.status(), 200);
}

/// A POST the vendor's way: `Authorization: <key>`. (status, headers, body)
async fn call(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = app.http.post(app.url(path)).header("Authorization", key).json(&body).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.expect("every answer is JSON"))
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = call(app, &app.key, path, body).await;
    (status, body)
}

fn text(content: &str) -> Value {
    json!([{"inputType": "TEXT", "content": content}])
}

/// The native session behind a single-shot `conversationId` (`conv_<hex>`).
async fn session_of(app: &TestApp, conversation: &str) -> Value {
    let uuid = uuid::Uuid::parse_str(conversation.strip_prefix("conv_").expect("conv_ id")).unwrap();
    app.session(&uuid.to_string()).await
}

fn assert_limit_headers(headers: &reqwest::header::HeaderMap, what: &str) {
    for name in LIMIT_HEADERS {
        let value = headers.get(name).unwrap_or_else(|| panic!("{what}: no {name}"));
        assert!(value.to_str().unwrap().parse::<u64>().is_ok(), "{what}: {name} is an integer");
    }
}

#[tokio::test]
async fn autessa_auth_resource_ids_and_the_envelope() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let create = format!("/clients/agents/execute-create?resourceId={id}");

    let (status, headers, body) = call(&app, &app.key, &create, json!({"agentId": id})).await;
    assert_eq!(status, 200, "raw key: {body}");
    assert!(body["conversationId"].as_str().unwrap().starts_with("conv_"));
    assert_eq!(body["errors"], json!([]));
    assert_limit_headers(&headers, "success");
    let (status, _, body) = call(&app, &format!("Bearer {}", app.key), &create, json!({"agentId": id})).await;
    assert_eq!(status, 200, "a Bearer prefix is tolerated: {body}");

    let (status, headers, body) = call(&app, "wrong-key", &create, json!({"agentId": id})).await;
    assert_eq!((status, body), (401, json!({"errors": ["Invalid API key"]})));
    assert_limit_headers(&headers, "401");
    let r = app.http.post(app.url(&create)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401, "no key");

    let (status, headers, body) = call(&app, &app.key, "/clients/agents/execute-create", json!({"agentId": id})).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().starts_with("resourceId is required"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "an error body holds only errors: {body}");
    assert_limit_headers(&headers, "400");
    let (status, body) = post(&app, "/clients/agents/execute?resourceId=abc", json!({"input": text("hi")})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0].as_str().unwrap().starts_with("resourceId is required"));

    let (status, headers, body) = call(&app, &app.key, "/clients/agents/execute-create?resourceId=999999", json!({})).await;
    assert_eq!((status, body), (404, json!({"errors": ["Resource with ID 999999 not found"]})));
    assert_limit_headers(&headers, "404");
    let stranger = app.other_project_key().await;
    let (status, _, body) = call(&app, &stranger, &create, json!({})).await;
    assert_eq!((status, body), (404, json!({"errors": [format!("Resource with ID {id} not found")]})), "another project's agent");

    let r = app.http.post(app.url(&create)).header("Authorization", &app.key).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"][0].as_str().unwrap().contains("not valid JSON"), "{body}");
    let (status, body) = post(&app, &create, json!({"agentId": id + 1})).await;
    assert_eq!((status, body), (400, json!({"errors": [format!("agentId {} does not match resourceId {id}", id + 1)]})));
    let (status, body) = post(&app, &create, json!({"unknownField": true})).await;
    assert_eq!(status, 200, "unknown fields and a missing agentId are tolerated: {body}");

    // A key allowed one request a minute.
    let limited = app.key_in("default", Some(1)).await;
    let (status, headers, _) = call(&app, &limited, &create, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-ratelimit-limit-minute"], "1");
    assert_eq!(headers["x-ratelimit-remaining-minute"], "0");
    assert_eq!(headers["x-ratelimit-limit-day"], u32::MAX.to_string().as_str(), "no day limit reads as the largest value");
    let (status, headers, body) = call(&app, &limited, &create, json!({})).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(body["errors"][0].as_str().unwrap().contains("retry after"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_limit_headers(&headers, "429");
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_single_shot_execute_and_its_errors() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let execute = format!("/clients/agents/execute?resourceId={id}");

    let (status, body) = post(&app, &execute, json!({"agentId": id, "input": text("done:Hello! How can I help you?")})).await;
    assert_eq!(status, 200, "{body}");
    let conversation = body["conversationId"].as_str().unwrap().to_owned();
    assert_eq!(body, json!({"errors": [], "conversationId": conversation, "output": [{"outputType": "TEXT", "content": "Hello! How can I help you?"}]}));
    let session = session_of(&app, &conversation).await;
    assert_eq!((session["mode"].as_str(), session["agent"]["version"].as_u64()), (Some("chat"), Some(1)));

    let (status, body) = post(&app, &execute, json!({"input": [{"inputType": "TEXT", "content": "done:one"}, {"inputType": "TEXT", "content": "two"}]})).await;
    assert_eq!((status, body["output"][0]["content"].as_str()), (200, Some("one\ntwo")), "text inputs are joined with newlines: {body}");

    for bad in [json!({}), json!({"input": []}), json!({"input": [{"inputType": "TEXT", "content": "  "}]}), json!({"input": [{"inputType": "VIDEO", "content": "x"}]})] {
        let (status, body) = post(&app, &execute, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["errors"][0].is_string() && body.as_object().unwrap().len() == 1, "{body}");
    }
    let (status, body) = post(&app, &execute, json!({"input": [{"inputType": "AUDIO", "content": "UklGRg==", "mimeType": "audio/wav"}]})).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().starts_with("Audio input needs a speech provider"), "{body}");
    let (status, body) = post(&app, &execute, json!({"input": text("done:x"), "outputTypes": ["TEXT", "AUDIO"]})).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().starts_with("Audio output needs a speech provider"), "{body}");

    let (status, body) = post(&app, &execute, json!({"input": text("fail:the model refused")})).await;
    assert_eq!(status, 500);
    assert!(body["errors"][0].as_str().unwrap().contains("the model refused"), "{body}");

    // A browser agent answers with its result; its sessions take no follow-ups.
    let (_, browser) = agent(&app, "browser", "", true).await;
    let (status, body) = post(&app, &format!("/clients/agents/execute?resourceId={browser}"), json!({"input": text("done:the price is 3")})).await;
    assert_eq!((status, body["output"][0]["content"].as_str()), (200, Some("the price is 3")), "{body}");
    assert!(body.get("conversationId").is_none(), "{body}");
    let (status, body) = post(&app, &format!("/clients/agents/execute-create?resourceId={browser}"), json!({})).await;
    assert_eq!(status, 409);
    assert!(body["errors"][0].as_str().unwrap().contains("browser agent"), "{body}");
    app.shutdown().await;
}

async fn version_of(app: &TestApp, body: Value) -> Option<u64> {
    session_of(app, body["conversationId"].as_str().unwrap()).await["agent"]["version"].as_u64()
}

#[tokio::test]
async fn autessa_versions_draft_number_and_archived() {
    let app = spawn_app().await;
    let (agent_id, id) = agent(&app, "chat", "v1", false).await;
    let execute = format!("/clients/agents/execute?resourceId={id}");
    let (status, body) = post(&app, &execute, json!({"input": text("done:x")})).await;
    assert_eq!(status, 400, "nothing published yet");
    assert!(body["errors"][0].as_str().unwrap().contains("has no published version"), "{body}");
    let (status, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionState": "DRAFT"}})).await;
    assert_eq!(status, 200, "the draft by name: {body}");
    assert_eq!(session_of(&app, body["conversationId"].as_str().unwrap()).await["agent"]["version"], 1);

    publish(&app, &agent_id).await;
    new_draft(&app, &agent_id, "v2").await;
    publish(&app, &agent_id).await;
    new_draft(&app, &agent_id, "v3").await;
    let (_, body) = post(&app, &execute, json!({"input": text("done:x")})).await;
    assert_eq!(version_of(&app, body).await, Some(2), "PUBLISHED by default");
    let (_, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionState": "DRAFT"}})).await;
    assert_eq!(version_of(&app, body).await, Some(3));
    let (_, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionState": "ARCHIVED"}})).await;
    assert_eq!(version_of(&app, body).await, Some(1), "ARCHIVED: the latest archived");
    let (_, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionNumber": 1}})).await;
    assert_eq!(version_of(&app, body).await, Some(1), "versionNumber");
    let (status, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionState": "DRAFT", "versionNumber": 1}})).await;
    assert_eq!((status, body), (400, json!({"errors": [format!("Version 1 of agent {id} is ARCHIVED, not DRAFT")]})));
    let (status, body) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionNumber": 9}})).await;
    assert_eq!((status, body), (400, json!({"errors": [format!("Agent {id} has no version 9")]})));
    let (status, _) = post(&app, &execute, json!({"input": text("done:x"), "version": {"versionState": "LATEST"}})).await;
    assert_eq!(status, 400);
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_conversations_turns_close_and_ownership() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let (_, other) = agent(&app, "chat", "", true).await;
    let (_, created) = post(&app, &format!("/clients/agents/execute-create?resourceId={id}"), json!({"agentId": id})).await;
    let conversation = created["conversationId"].as_str().unwrap().to_owned();
    let execute = format!("/clients/agents/execute?resourceId={id}");
    for (i, script) in ["done:first", "done:second"].iter().enumerate() {
        let (status, body) = post(&app, &execute, json!({"agentId": id, "conversationId": conversation, "input": text(script)})).await;
        assert_eq!(status, 200, "turn {i}: {body}");
        assert_eq!(body["conversationId"], conversation.as_str());
    }
    // The conversation is the engine's: its first message is the session named as it.
    let first = session_of(&app, &conversation).await;
    assert_eq!(first["response"], "first");

    let (status, body) = post(&app, &format!("/clients/agents/execute?resourceId={other}"), json!({"conversationId": conversation, "input": text("done:x")})).await;
    assert_eq!((status, body), (404, json!({"errors": [format!("Conversation {conversation} not found")]})), "another agent's conversation");
    let (status, _) = post(&app, &execute, json!({"conversationId": "conv_abc123", "input": text("done:x")})).await;
    assert_eq!(status, 404);

    let (status, body) = post(&app, &format!("/clients/agents/execute-close?resourceId={id}"), json!({"agentId": id, "conversationId": conversation})).await;
    assert_eq!((status, body), (200, json!({"errors": []})));
    let (status, body) = post(&app, &execute, json!({"conversationId": conversation, "input": text("done:late")})).await;
    assert_eq!((status, body), (409, json!({"errors": [format!("Conversation {conversation} is closed")]})));
    let (status, body) = post(&app, &format!("/clients/agents/close-conversation?resourceId={id}"), json!({"conversationId": conversation})).await;
    assert_eq!((status, body), (200, json!({"errors": []})), "closing again is fine");

    // A single-shot execution's conversationId continues it; an idle conversation closes.
    let (_, single) = post(&app, &execute, json!({"input": text("done:alone")})).await;
    let single = single["conversationId"].as_str().unwrap().to_owned();
    let (status, body) = post(&app, &execute, json!({"conversationId": single, "input": text("done:again")})).await;
    assert_eq!((status, body["output"][0]["content"].as_str()), (200, Some("again")), "{body}");
    app.clock.advance(Duration::from_secs(12 * 3600 + 1));
    let (status, body) = post(&app, &execute, json!({"conversationId": single, "input": text("done:too late")})).await;
    assert_eq!((status, body), (409, json!({"errors": [format!("Conversation {single} is closed")]})), "12 hours idle");
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_conversation_is_pinned_and_keeps_context() {
    let llm = ScriptedLlm::start().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let (agent_id, id) = agent(&app, "chat", "Answer as VERSION-ONE.", true).await;
    let (_, created) = post(&app, &format!("/clients/agents/execute-create?resourceId={id}"), json!({"agentId": id})).await;
    let conversation = created["conversationId"].as_str().unwrap().to_owned();
    new_draft(&app, &agent_id, "Answer as VERSION-TWO.").await;
    publish(&app, &agent_id).await;

    let execute = format!("/clients/agents/execute?resourceId={id}");
    llm.push(Reply::Text("Four.".into()));
    let (status, body) = post(&app, &execute, json!({"agentId": id, "conversationId": conversation, "input": text("What is two plus two?")})).await;
    assert_eq!((status, body["output"].clone()), (200, json!([{"outputType": "TEXT", "content": "Four."}])), "{body}");
    llm.push(Reply::Text("Twelve.".into()));
    let (status, body) = post(&app, &execute, json!({"agentId": id, "conversationId": conversation, "input": text("And that times three?")})).await;
    assert_eq!((status, body["output"][0]["content"].as_str()), (200, Some("Twelve.")), "{body}");
    llm.push(Reply::Text("Fresh.".into()));
    let (status, _) = post(&app, &execute, json!({"agentId": id, "input": text("Hello")})).await;
    assert_eq!(status, 200);

    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    for turn in &requests[..2] {
        let prompt = turn.text();
        assert!(prompt.contains("VERSION-ONE") && !prompt.contains("VERSION-TWO"), "pinned to v1 at creation:\n{prompt}");
    }
    let second = requests[1].text();
    assert!(second.contains("What is two plus two?") && second.contains("Four."), "the earlier turn is in context:\n{second}");
    assert!(requests[2].text().contains("VERSION-TWO"), "a new execution runs the published version");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// WebSocket

async fn connect(app: &TestApp, query: &str) -> Socket {
    connect_at(app, "/ws/clients/agents/execute", query).await
}

async fn connect_at(app: &TestApp, path: &str, query: &str) -> Socket {
    let url = format!("{}{path}?{query}", app.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("ws connects").0
}

#[derive(Debug, PartialEq)]
enum Received {
    Frame(Value),
    Pong(Vec<u8>),
    Closed(u16, String),
}

async fn receive(ws: &mut Socket) -> Received {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("ws stalled");
        match message {
            Some(Ok(Message::Text(text))) => return Received::Frame(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(Message::Pong(payload))) => return Received::Pong(payload.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                return Received::Closed(code, reason);
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Received::Closed(1006, String::new()),
        }
    }
}

async fn frame(ws: &mut Socket) -> Value {
    match receive(ws).await {
        Received::Frame(f) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn autessa_socket_refuses_a_bad_key_then_closes_1008() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let mut ws = connect(&app, &format!("authorization=wrong&resourceId={id}")).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "ERROR", "errors": ["Invalid API key"]}));
    assert!(matches!(receive(&mut ws).await, Received::Closed(1008, _)));
    let mut ws = connect(&app, &format!("authorization={}&resourceId=999999", app.key)).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "ERROR", "errors": ["Resource with ID 999999 not found"]}));
    assert!(matches!(receive(&mut ws).await, Received::Closed(1008, _)));
    let mut ws = connect(&app, &format!("authorization={}", app.key)).await;
    assert!(frame(&mut ws).await["errors"][0].as_str().unwrap().starts_with("resourceId is required"));
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_socket_executes_streams_and_keeps_a_conversation() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let mut ws = connect(&app, &format!("authorization={}&resourceId={id}", app.key)).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "CONNECTION_STATUS", "status": "CONNECTED", "errors": []}));

    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(frame(&mut ws).await, json!({"type": "pong"}));
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    assert_eq!(receive(&mut ws).await, Received::Pong(b"are you there".to_vec()), "protocol ping → pong");

    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "agentId": id, "input": text("done:Hi there")})).await;
    let delta = frame(&mut ws).await;
    let conversation = delta["conversationId"].as_str().expect("conversationId").to_owned();
    assert_eq!(
        delta,
        json!({"responseType": "EXECUTE_AGENT", "conversationId": conversation, "output": [{"outputType": "TEXT", "content": "Hi there"}], "done": false, "errors": []})
    );
    assert_eq!(
        frame(&mut ws).await,
        json!({"responseType": "EXECUTE_AGENT", "done": true, "conversationId": conversation, "output": [{"outputType": "TEXT", "content": "Hi there"}], "errors": []})
    );
    // The socket holds the conversation: the next message continues it.
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": text("done:again")})).await;
    assert_eq!(frame(&mut ws).await["conversationId"], conversation.as_str());
    let done = frame(&mut ws).await;
    assert_eq!((done["done"].as_bool(), done["conversationId"].as_str()), (Some(true), Some(conversation.as_str())));
    let uuid = uuid::Uuid::parse_str(conversation.strip_prefix("conv_").unwrap()).unwrap();
    let sessions: Value = app.get(&format!("/v1/sessions?tag=conversation:{uuid}")).await.json().await.unwrap();
    assert_eq!(sessions["data"].as_array().unwrap().len(), 1, "the second turn is a follow-up of the first");

    // Bad requests get an ERROR frame; the socket stays open.
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": []})).await;
    assert_eq!(frame(&mut ws).await["responseType"], "ERROR");
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(frame(&mut ws).await["responseType"], "ERROR");
    send(&mut ws, json!({"requestType": "DANCE"})).await;
    assert!(frame(&mut ws).await["errors"][0].as_str().unwrap().contains("Unknown requestType"));

    send(&mut ws, json!({"requestType": "CLOSE_CONVERSATION", "conversationId": conversation})).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "CLOSE_CONVERSATION", "conversationId": conversation, "errors": []}));
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "conversationId": conversation, "input": text("done:late")})).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "ERROR", "errors": [format!("Conversation {conversation} is closed")]}));
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(frame(&mut ws).await, json!({"type": "pong"}), "still open");
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_socket_honours_the_version_in_its_query() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", false).await;
    let mut ws = connect(&app, &format!("authorization={}&resourceId={id}", app.key)).await;
    frame(&mut ws).await;
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": text("done:x")})).await;
    let error = frame(&mut ws).await;
    assert!(error["errors"][0].as_str().unwrap().contains("has no published version"), "{error}");

    let mut ws = connect(&app, &format!("authorization={}&resourceId={id}&versionState=DRAFT", app.key)).await;
    frame(&mut ws).await;
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": text("done:from the draft")})).await;
    let delta = frame(&mut ws).await;
    assert_eq!(delta["output"][0]["content"], "from the draft", "{delta}");
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_socket_closes_when_idle() {
    let app = spawn_with(|c| c.autessa_ws_idle_seconds = 1).await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let mut ws = connect(&app, &format!("authorization={}&resourceId={id}", app.key)).await;
    frame(&mut ws).await;
    let started = std::time::Instant::now();
    match receive(&mut ws).await {
        Received::Closed(code, reason) => {
            assert_eq!(code, 1000);
            assert!(reason.starts_with("idle timeout"), "{reason}");
        }
        other => panic!("expected the idle close, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    app.shutdown().await;
}

// Tools

#[tokio::test]
async fn autessa_tool_execute_masks_secrets_and_reports_failures() {
    use crate::tools::{ENV_SECRET, SECRET, assert_no_secret, created, echo_service, http_tool};
    let app = spawn_app().await;
    let base = echo_service().await;
    let tool = created(&app, http_tool("lookup", &base)).await;
    let (tool_id, n) = (tool["id"].as_str().unwrap().to_owned(), tool["resource_id"].as_u64().unwrap());
    let path = format!("/clients/tool/execute?resourceId={n}");

    let (status, headers, body) = call(&app, &app.key, &path, json!({
        "toolId": n, "variables": {"q": "autessa"},
        "privateVariables": {"token": ENV_SECRET}, "environmentVariables": {"extra": "x"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_limit_headers(&headers, "tool execute");
    assert_eq!((body["responseType"].as_str(), body["toolName"].as_str(), body["errors"].clone()), (Some("EXECUTE_TOOL"), Some("lookup"), json!([])));
    let result: Value = serde_json::from_str(body["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["query"]["q"], "autessa");
    assert_eq!(result["authorization"], "Bearer [redacted:token]", "the call's private variable is used and masked");
    assert!(body["debugOutput"][0].as_str().unwrap().starts_with("GET "), "{body}");
    assert!(body["executionTimeMs"].is_u64());
    assert_no_secret(&body.to_string());
    let stored: String = ["agentd.db", "agentd.db-wal"].iter()
        .filter_map(|f| std::fs::read(app.dir.as_ref().unwrap().path().join(f)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
    assert!(!stored.contains(SECRET) && !stored.contains(ENV_SECRET), "nothing stored in the clear");

    // A failing tool is an execution with its reason in errors; bad input is the envelope.
    let r = app.http.put(app.url(&format!("/v1/tools/{tool_id}/draft"))).bearer_auth(&app.key)
        .json(&json!({"variables": {"base": format!("{base}/missing")}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = call(&app, &app.key, &path, json!({"variables": {"q": "a"}, "version": {"versionState": "DRAFT"}})).await;
    assert_eq!((status, body["result"].clone(), body["version"].as_u64()), (200, Value::Null, Some(2)), "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("answered 404"), "{body}");
    let (status, _, body) = call(&app, &app.key, &path, json!({"variables": {"q": "a"}, "version": {"versionNumber": 1}})).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)));
    let (status, _, body) = call(&app, &app.key, &path, json!({"variables": {"q": 5}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "an error body holds only errors: {body}");
    let (status, _, body) = call(&app, &app.key, &path, json!({"toolId": n + 1000})).await;
    assert_eq!((status, body["errors"][0].as_str().unwrap().contains("does not match")), (400, true));
    let (_, agent_n) = agent(&app, "chat", "", true).await;
    let (status, _, body) = call(&app, &app.key, &format!("/clients/tool/execute?resourceId={agent_n}"), json!({})).await;
    assert_eq!((status, body), (404, json!({"errors": [format!("Resource with ID {agent_n} not found")]})));
    let (status, _, body) = call(&app, &app.key, "/clients/tool/execute", json!({})).await;
    assert!(status == 400 && body["errors"][0].as_str().unwrap().starts_with("resourceId is required"));
    let (status, _, body) = call(&app, "nope", &path, json!({})).await;
    assert_eq!((status, body), (401, json!({"errors": ["Invalid API key"]})));
    // REST takes the key in the header only; `?authorization=` is the sockets' way.
    let r = app.http.post(app.url(&format!("{path}&authorization={}", app.key))).json(&json!({"variables": {"q": "a"}})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_tool_execute_refuses_a_value_that_would_move_the_request() {
    use crate::tools::{created, partner_service, partner_tool};
    let app = spawn_app().await;
    let (partner, seen) = partner_service().await;
    let n = created(&app, partner_tool("partner", "{{partner}}{{path}}", &partner)).await["resource_id"].as_u64().unwrap();
    let path = format!("/clients/tool/execute?resourceId={n}");
    let (status, body) = post(&app, &path, json!({"variables": {"path": ".attacker.test"}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0].as_str().unwrap().starts_with("variables.path: argument `path` would change where the request goes"), "{body}");
    let (status, body) = post(&app, &path, json!({"environmentVariables": {"path": "@attacker.test"}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0].as_str().unwrap().starts_with("environmentVariables.path: "), "{body}");
    assert!(seen.lock().unwrap().is_empty(), "the partner received nothing");
    let (status, body) = post(&app, &path, json!({"variables": {"path": ""}})).await;
    assert_eq!((status, body["errors"].clone()), (200, json!([])), "{body}");
    assert_eq!(*seen.lock().unwrap(), ["/"]);
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_tool_socket_streams_debug_lines_then_the_result() {
    use crate::tools::{SECRET, assert_no_secret, created, mcp_fixture};
    let allowed = mcp_fixture().to_str().unwrap().to_owned();
    let app = spawn_with(|c| c.mcp_stdio_commands = vec![allowed]).await;
    let tool = created(&app, json!({
        "name": "fixture", "description": "MCP fixture",
        "definition": {"type": "mcp", "server": {"transport": "stdio", "command": mcp_fixture().to_str().unwrap(), "env": {"FIXTURE_SECRET": "{{secret}}"}}},
        "private_variables": {"secret": SECRET}, "publish": true})).await;
    let n = tool["resource_id"].as_u64().unwrap();
    let mut ws = connect_at(&app, "/ws/clients/tools/execute", &format!("authorization={}&resourceId={n}", app.key)).await;
    assert_eq!(frame(&mut ws).await, json!({"responseType": "CONNECTION_STATUS", "status": "CONNECTED", "errors": []}));
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(frame(&mut ws).await, json!({"type": "pong"}));
    send(&mut ws, json!({"requestType": "EXECUTE_TOOL", "toolId": n, "mcpTool": "env", "variables": {"name": "FIXTURE_SECRET"}})).await;
    let mut debug = Vec::new();
    let last = loop {
        let f = frame(&mut ws).await;
        assert_no_secret(&f.to_string());
        match f["responseType"].as_str() {
            Some("DEBUG_OUTPUT") => debug.push(f["content"].as_str().unwrap().to_owned()),
            _ => break f,
        }
    };
    assert!(!debug.is_empty(), "debug lines come first");
    assert_eq!((last["responseType"].as_str(), last["done"].as_bool(), last["result"].as_str()), (Some("EXECUTE_TOOL"), Some(true), Some("[redacted:secret]")), "{last}");
    assert_eq!(last["debugOutput"].as_array().unwrap().len(), debug.len());
    send(&mut ws, json!({"requestType": "EXECUTE_TOOL", "variables": {"a": 1}})).await;
    let refused = frame(&mut ws).await;
    assert_eq!(refused["responseType"], "ERROR", "no mcpTool for an MCP server: {refused}");
    send(&mut ws, json!({"requestType": "EXECUTE_TOOL", "mcpTool": "add", "variables": {"a": 1, "b": 2}})).await;
    let done = loop {
        let f = frame(&mut ws).await;
        if f["responseType"] != "DEBUG_OUTPUT" { break f; }
    };
    assert_eq!(done["result"], "3", "the socket stays open after an error: {done}");
    app.shutdown().await;
}

// Audio

#[tokio::test]
async fn autessa_audio_in_and_out_through_a_speech_provider() {
    use agentd_testllm::speech::FakeSpeech;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    let (app, _speech) = crate::audio::spawn_speaking().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let execute = format!("/clients/agents/execute?resourceId={id}");
    let (status, body) = post(&app, &execute, json!({
        "agentId": id,
        "input": [{"inputType": "AUDIO", "content": BASE64.encode("done:it is sunny"), "mimeType": "audio/wav"}],
        "outputTypes": ["TEXT", "AUDIO"]})).await;
    assert_eq!(status, 200, "{body}");
    let output = body["output"].as_array().unwrap();
    let part = |kind: &str| output.iter().find(|p| p["outputType"] == kind).map(|p| p["content"].as_str().unwrap().to_owned());
    assert_eq!(part("TEXT").as_deref(), Some("it is sunny"));
    assert_eq!(part("TRANSCRIPTION").as_deref(), Some("done:it is sunny"));
    assert_eq!(BASE64.decode(part("AUDIO").unwrap()).unwrap(), FakeSpeech::spoken("alloy", "it is sunny"));
    // Audio without a type is recognised by its first bytes; unknown bytes ask for the type.
    let (status, body) = post(&app, &execute, json!({"input": [{"inputType": "AUDIO", "content": BASE64.encode("done:no type")}]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("mimeType"), "{body}");

    // Voice mode on the socket: chunks, then the final one.
    let mut ws = connect(&app, &format!("authorization={}&resourceId={id}", app.key)).await;
    assert_eq!(frame(&mut ws).await["responseType"], "CONNECTION_STATUS");
    send(&mut ws, json!({"requestType": "AUDIO_CHUNK", "content": BASE64.encode("done:"), "mimeType": "audio/webm", "final": false})).await;
    send(&mut ws, json!({"requestType": "AUDIO_CHUNK", "content": BASE64.encode("spoken back"), "final": true, "audioOutput": true})).await;
    let heard = frame(&mut ws).await;
    assert_eq!((heard["responseType"].as_str(), heard["content"].as_str()), (Some("TRANSCRIPTION"), Some("done:spoken back")), "{heard}");
    let text = frame(&mut ws).await;
    assert_eq!((text["done"].as_bool(), text["output"][0]["outputType"].as_str(), text["output"][0]["content"].as_str()), (Some(false), Some("TEXT"), Some("spoken back")));
    let audio = frame(&mut ws).await;
    assert_eq!((audio["done"].as_bool(), audio["output"][0]["outputType"].as_str()), (Some(false), Some("AUDIO")), "{audio}");
    let done = frame(&mut ws).await;
    assert_eq!((done["done"].as_bool(), done["conversationId"].clone()), (Some(true), text["conversationId"].clone()));
    send(&mut ws, json!({"requestType": "AUDIO_CHUNK", "content": "not base64!", "final": true})).await;
    assert_eq!(frame(&mut ws).await["responseType"], "ERROR");
    app.shutdown().await;
}

#[tokio::test]
async fn autessa_socket_requests_count_against_the_key_and_are_bounded() {
    let app = spawn_app().await;
    let (_, id) = agent(&app, "chat", "", true).await;
    let limited = app.key_in("default", Some(2)).await;
    let mut ws = connect(&app, &format!("authorization={limited}&resourceId={id}")).await;
    assert_eq!(frame(&mut ws).await["responseType"], "CONNECTION_STATUS", "the connection is request 1");
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": text("done:one")})).await;
    let first = loop {
        let f = frame(&mut ws).await;
        if f["done"] == true || f["responseType"] == "ERROR" { break f; }
    };
    assert_eq!(first["done"], true, "request 2 runs: {first}");
    send(&mut ws, json!({"requestType": "EXECUTE_AGENT", "input": text("done:two")})).await;
    let refused = frame(&mut ws).await;
    assert_eq!(refused["responseType"], "ERROR", "request 3 is over the key's limit: {refused}");
    assert!(refused["errors"][0].as_str().unwrap().contains("Rate limit exceeded"), "{refused}");
    app.shutdown().await;
}
