//! Overall and inactivity timeouts, driven by a manual clock: no test waits for real time.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const S: Duration = Duration::from_secs(1);

async fn started(app: &TestApp, body: Value) -> String {
    let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
    app.wait_status(&id, "running").await;
    id
}

/// Gives the engine a moment to react to a clock change (real time, not an assertion on it).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn inactivity_ends_an_idle_session() {
    let app = spawn_app().await;
    let s = started(&app, json!({"goal": "wait", "inactivity_timeout_seconds": 300})).await;
    app.clock.advance(299 * S);
    settle().await;
    assert_eq!(app.session(&s).await["status"], "running");
    app.clock.advance(S);
    let done = app.wait_status(&s, "timed_out").await;
    assert_eq!(done["error"], "the session exceeded its inactivity limit of 300 s");
    let event = app.wait_event(&s, "timed_out").await;
    assert_eq!(event["data"], json!({"reason": "inactivity", "seconds": 300}));
    app.shutdown().await;
}

#[tokio::test]
async fn the_overall_timeout_counts_active_time_only() {
    let app = spawn_app().await;
    let s = started(&app, json!({"goal": "wait", "timeout_seconds": 60, "inactivity_timeout_seconds": 86400})).await;
    app.clock.advance(30 * S);
    app.post(&format!("/v1/sessions/{s}/pause"), json!({})).await;
    app.clock.advance(10_000 * S);
    settle().await;
    assert_eq!(app.session(&s).await["status"], "paused", "paused sessions do not time out");
    app.post(&format!("/v1/sessions/{s}/resume"), json!({})).await;
    app.clock.advance(29 * S);
    settle().await;
    assert_eq!(app.session(&s).await["status"], "running");
    app.clock.advance(S);
    app.wait_status(&s, "timed_out").await;
    assert_eq!(app.wait_event(&s, "timed_out").await["data"]["reason"], "timeout");
    app.shutdown().await;
}

#[tokio::test]
async fn waiting_on_a_person_counts_as_idle_unless_paused() {
    let app = spawn_app().await;
    let s = app.create_with(json!({"goal": "input:x", "inactivity_timeout_seconds": 100})).await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "waiting").await;
    app.post(&format!("/v1/sessions/{s}/pause"), json!({})).await;
    app.clock.advance(1000 * S);
    settle().await;
    assert_eq!(app.session(&s).await["status"], "paused");
    app.post(&format!("/v1/sessions/{s}/resume"), json!({})).await;
    app.clock.advance(99 * S);
    settle().await;
    assert_eq!(app.session(&s).await["status"], "waiting", "resume counts as activity");
    app.clock.advance(S);
    app.wait_status(&s, "timed_out").await;
    app.shutdown().await;
}

#[tokio::test]
async fn events_keep_a_session_active() {
    let app = spawn_app().await;
    let s = app.create_with(json!({"goal": "input:a; input:b; wait", "inactivity_timeout_seconds": 100})).await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "waiting").await;
    app.clock.advance(90 * S);
    app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "1"})).await;
    app.wait_event(&s, "thought").await;
    app.clock.advance(90 * S);
    settle().await;
    assert_ne!(app.session(&s).await["status"], "timed_out", "the answer reset the inactivity clock");
    app.clock.advance(20 * S);
    app.wait_status(&s, "timed_out").await;
    app.shutdown().await;
}
