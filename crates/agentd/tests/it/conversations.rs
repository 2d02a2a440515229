//! Conversations: messages become follow-up sessions of the same agent version; a
//! conversation closes when asked or after being idle (on a paused clock), and a message to
//! a closed one is refused.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

async fn message(app: &TestApp, session: &str, text: &str) -> (u16, Value) {
    let r = app.post(format!("/v1/sessions/{session}/messages"), json!({"text": text})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn messages_continue_the_conversation_on_its_pinned_version() {
    let app = spawn_app().await;
    let agent: Value = app.post("/v1/agents", json!({"name": "Talker", "kind": "chat", "publish": true})).await.json().await.unwrap();
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let first = app.create_with(json!({"goal": "done:hello", "agent_id": agent_id})).await["id"].as_str().unwrap().to_owned();
    app.finish(&first).await;
    // A new version is published meanwhile: the conversation stays on the one it began with.
    app.http.put(app.url(&format!("/v1/agents/{agent_id}/draft"))).bearer_auth(&app.key).json(&json!({"instructions": "v2"})).send().await.unwrap();
    app.post(format!("/v1/agents/{agent_id}/publish"), json!({})).await;

    let (status, second) = message(&app, &first, "done:second answer").await;
    assert_eq!(status, 201, "{second}");
    assert_eq!((second["status"].as_str(), second["response"].as_str()), (Some("completed"), Some("second answer")));
    assert_eq!(second["conversation_id"], first);
    assert_eq!(second["agent"]["version"], 1, "pinned to the version the conversation began with");
    assert_eq!(second["mode"], "chat");
    // Any session of the conversation takes the next message.
    let (status, third) = message(&app, second["id"].as_str().unwrap(), "done:third").await;
    assert_eq!((status, third["conversation_id"].as_str()), (201, Some(first.as_str())));
    let conversation: Value = app.get(&format!("/v1/sessions/{first}/conversation")).await.json().await.unwrap();
    assert_eq!((conversation["id"].as_str(), conversation["status"].as_str()), (Some(first.as_str()), Some("open")));

    let closed: Value = app.post(format!("/v1/sessions/{}/close", third["id"].as_str().unwrap()), json!({})).await.json().await.unwrap();
    assert_eq!((closed["status"].as_str(), closed["close_reason"].as_str()), (Some("closed"), Some("closed by user")));
    let (status, e) = message(&app, &first, "done:too late").await;
    assert_eq!(status, 409);
    assert!(e["error"]["message"].as_str().unwrap().contains("was closed"), "{e}");
    let (status, _) = error_of(app.post(format!("/v1/sessions/{first}/close"), json!({})).await).await;
    assert_eq!(status, 409, "already closed");
    assert_eq!(app.session(&first).await["status"], "completed", "closing deletes nothing");
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_conversation_closes_after_twelve_hours() {
    let app = spawn_app().await;
    let first = app.create_with(json!({"goal": "done:hi", "mode": "chat"})).await["id"].as_str().unwrap().to_owned();
    app.finish(&first).await;
    app.clock.advance(Duration::from_secs(12 * 3600 - 60));
    let (status, _) = message(&app, &first, "done:still here").await;
    assert_eq!(status, 201, "under twelve hours idle");
    app.clock.advance(Duration::from_secs(12 * 3600));
    let conversation: Value = app.get(&format!("/v1/sessions/{first}/conversation")).await.json().await.unwrap();
    assert_eq!(conversation["status"], "open", "exactly twelve hours idle is still open");
    app.clock.advance(Duration::from_secs(1));
    let (status, e) = message(&app, &first, "done:gone").await;
    assert_eq!(status, 409);
    assert!(e["error"]["message"].as_str().unwrap().contains("idle for more than 12 hours"), "{e}");
    let conversation: Value = app.get(&format!("/v1/sessions/{first}/conversation")).await.json().await.unwrap();
    assert_eq!((conversation["status"].as_str(), conversation["close_reason"].as_str()), (Some("closed"), Some("idle for more than 12 hours")));
    app.shutdown().await;
}

#[tokio::test]
async fn bad_messages_are_refused() {
    let app = spawn_app().await;
    let browser = app.create("done:x").await["id"].as_str().unwrap().to_owned();
    app.finish(&browser).await;
    let (status, _) = message(&app, &browser, "done:more").await;
    assert_eq!(status, 409, "browser sessions take no messages");
    let chat = app.create_with(json!({"goal": "wait", "mode": "chat"})).await["id"].as_str().unwrap().to_owned();
    let (status, e) = error_of(app.post(format!("/v1/sessions/{chat}/messages"), json!({"text": "  "})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("text")));
    let (status, e) = message(&app, &chat, "done:while running").await;
    assert_eq!(status, 409, "the conversation's latest session has not finished: {e}");
    let (status, _) = error_of(app.post(format!("/v1/sessions/{}/messages", uuid::Uuid::now_v7()), json!({"text": "x"})).await).await;
    assert_eq!(status, 404);
    app.post(format!("/v1/sessions/{chat}/stop"), json!({})).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_conversation_opened_before_its_first_message_is_pinned_then() {
    let app = spawn_app().await;
    let agent: Value = app.post("/v1/agents", json!({"name": "Talker", "kind": "chat", "publish": true})).await.json().await.unwrap();
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let r = app.post("/v1/conversations", json!({"agent_id": agent_id})).await;
    assert_eq!(r.status(), 201);
    let opened: Value = r.json().await.unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["status"], "open");
    app.http.put(app.url(&format!("/v1/agents/{agent_id}/draft"))).bearer_auth(&app.key).json(&json!({"instructions": "v2"})).send().await.unwrap();
    app.post(format!("/v1/agents/{agent_id}/publish"), json!({})).await;
    let (status, first) = message(&app, &id, "done:first turn").await;
    assert_eq!((status, first["response"].as_str()), (201, Some("first turn")), "{first}");
    assert_eq!((first["id"].as_str(), first["agent"]["version"].as_u64()), (Some(id.as_str()), Some(1)), "pinned when opened: {first}");
    let (status, e) = error_of(app.post("/v1/conversations", json!({})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("agent_id")));
    let browser: Value = app.post("/v1/agents", json!({"name": "Clicker", "kind": "browser", "publish": true})).await.json().await.unwrap();
    let (status, _) = error_of(app.post("/v1/conversations", json!({"agent_id": browser["id"]})).await).await;
    assert_eq!(status, 409, "browser agents hold no conversations");
    app.shutdown().await;
}
