//! Every legal and illegal transition, the person in the loop, and the queue.

use serde_json::{Value, json};

use crate::support::*;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn command(app: &TestApp, id: &str, verb: &str) -> (u16, Value) {
    let r = app.post(&format!("/v1/sessions/{id}/{verb}"), json!({})).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn pause_resume_stop_and_the_409s() {
    let app = spawn_app().await;
    let s = id(&app.create("wait").await);
    app.wait_status(&s, "running").await;
    let (status, body) = command(&app, &s, "resume").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_state")));
    assert_eq!(body["error"]["message"], "cannot resume a session that is running");
    let (status, body) = command(&app, &s, "pause").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("paused")));
    assert_eq!(command(&app, &s, "pause").await.0, 409);
    let (status, body) = command(&app, &s, "resume").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("running")));
    let (status, body) = command(&app, &s, "stop").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("stopped")));
    assert!(body["ended_at"].is_string());
    for verb in ["stop", "pause", "resume"] {
        let (status, body) = command(&app, &s, verb).await;
        assert_eq!(status, 409, "{verb}");
        assert_eq!(body["error"]["message"], format!("cannot {verb} a session that is stopped"));
    }
    let (status, body) = {
        let r = app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "x"})).await;
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_state")));
    let kinds: Vec<String> = app.events(&s).await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["started", "paused", "resumed", "stopped"]);
    // Completed and failed sessions refuse everything too.
    let done = id(&app.create("done").await);
    app.wait_status(&done, "completed").await;
    assert_eq!(command(&app, &done, "resume").await.0, 409);
    assert_eq!(command(&app, &done, "stop").await.0, 409);
    app.shutdown().await;
}

#[tokio::test]
async fn input_requests_wait_for_a_person() {
    let app = spawn_app().await;
    let s = id(&app.create("input:email; done:ok").await);
    let waiting = app.wait_status(&s, "waiting").await;
    assert_eq!(waiting["status"], "waiting");
    let asked = app.wait_event(&s, "input_requested").await;
    assert_eq!(asked["data"]["field_name"], "email");
    assert_eq!(asked["data"]["kind"], "input");
    let request_id = asked["data"]["request_id"].as_str().unwrap().to_owned();
    let answer = |body: Value| app.post(format!("/v1/sessions/{s}/input"), body);
    let (status, e) = error_of(answer(json!({})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("text")));
    let (status, e) = error_of(answer(json!({"granted": true})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("text")), "a permission answer to a text request");
    let (status, e) = error_of(answer(json!({"text": "x", "request_id": "req_other"})).await).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")));
    let (status, e) = error_of(answer(json!({"text": 5})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("text")));
    let r = answer(json!({"text": "a@b.c", "request_id": request_id})).await;
    assert_eq!(r.status(), 200);
    let done = app.wait_status(&s, "completed").await;
    assert_eq!(done["response"], "ok");
    let events = app.events(&s).await;
    let got = events.iter().find(|e| e["type"] == "thought").unwrap();
    assert_eq!(got["data"]["got"], "a@b.c");
    let received = events.iter().find(|e| e["type"] == "input_received").unwrap();
    assert_eq!(received["data"]["request_id"], request_id.as_str());
    assert!(received["data"].get("text").is_none(), "answers are not copied into the log");
    let (status, e) = error_of(answer(json!({"text": "late"})).await).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("invalid_state")));
    app.shutdown().await;
}

#[tokio::test]
async fn permission_denied_is_handed_to_the_agent() {
    let app = spawn_app().await;
    let s = id(&app.create("permission; done:after").await);
    app.wait_status(&s, "waiting").await;
    let asked = app.wait_event(&s, "input_requested").await;
    assert_eq!(asked["data"]["kind"], "permission");
    let (status, e) = error_of(app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "yes"})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("granted")));
    let r = app.post(&format!("/v1/sessions/{s}/input"), json!({"granted": false})).await;
    assert_eq!(r.status(), 200);
    app.wait_status(&s, "completed").await;
    let events = app.events(&s).await;
    assert!(events.iter().any(|e| e["type"] == "thought" && e["data"]["granted"] == false));
    assert!(events.iter().any(|e| e["type"] == "input_received" && e["data"]["granted"] == false));
    app.shutdown().await;
}

#[tokio::test]
async fn safety_checks_confirm_and_deny() {
    let app = spawn_app().await;
    let s = id(&app.create("safety:payment_form; done:paid").await);
    app.wait_status(&s, "waiting").await;
    let pending = app.wait_event(&s, "safety_check_pending").await;
    assert_eq!(pending["data"]["code"], "payment_form");
    let check = pending["data"]["check_id"].as_str().unwrap().to_owned();
    let resolve = |check: String, body: Value| app.post(format!("/v1/sessions/{s}/safety_checks/{check}"), body);
    let (status, e) = error_of(resolve("sc_nope".into(), json!({"confirm": true})).await).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")));
    let (status, e) = error_of(resolve(check.clone(), json!({})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("confirm")));
    let (status, e) = error_of(app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "x"})).await).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")), "a safety check is not answered with input");
    assert_eq!(resolve(check.clone(), json!({"confirm": true})).await.status(), 200);
    assert_eq!(app.wait_status(&s, "completed").await["response"], "paid");
    let resolved = app.wait_event(&s, "safety_check_resolved").await;
    assert_eq!(resolved["data"], json!({"check_id": check, "confirmed": true}));

    let d = id(&app.create("safety:leave_domain; done:never").await);
    app.wait_status(&d, "waiting").await;
    let check = app.wait_event(&d, "safety_check_pending").await["data"]["check_id"].as_str().unwrap().to_owned();
    let r = app.post(&format!("/v1/sessions/{d}/safety_checks/{check}"), json!({"confirm": false})).await;
    assert_eq!(r.status(), 200);
    let stopped = app.wait_status(&d, "stopped").await;
    assert_eq!(stopped["error"], "a person denied the safety check");
    let (status, _) = error_of(app.post(&format!("/v1/sessions/{d}/safety_checks/{check}"), json!({"confirm": true})).await).await;
    assert_eq!(status, 409);
    app.shutdown().await;
}

#[tokio::test]
async fn pausing_while_waiting_holds_the_answer_until_resume() {
    let app = spawn_app().await;
    let s = id(&app.create("input:code; done:ok").await);
    app.wait_status(&s, "waiting").await;
    assert_eq!(command(&app, &s, "pause").await.1["status"], "paused");
    // Resuming with the question still open goes back to waiting.
    assert_eq!(command(&app, &s, "resume").await.1["status"], "waiting");
    assert_eq!(command(&app, &s, "pause").await.1["status"], "paused");
    let r: Value = app.post(&format!("/v1/sessions/{s}/input"), json!({"text": "123"})).await.json().await.unwrap();
    assert_eq!(r["status"], "paused", "an answer does not unpause");
    assert_eq!(app.session(&s).await["status"], "paused");
    // Resumed: the agent goes on at once and may already have finished when the answer is read.
    let resumed = command(&app, &s, "resume").await.1["status"].clone();
    assert!(resumed == "running" || resumed == "completed", "{resumed}");
    app.wait_status(&s, "completed").await;
    app.shutdown().await;
}

#[tokio::test]
async fn agent_failures_and_crashes_end_the_session() {
    let app = spawn_app().await;
    let f = id(&app.create("emit:1; fail:boom").await);
    let failed = app.wait_status(&f, "failed").await;
    assert_eq!(failed["error"], "boom");
    let event = app.wait_event(&f, "failed").await;
    assert_eq!(event["data"], json!({"error": "boom", "reason": "scripted"}));
    let p = id(&app.create("panic").await);
    let crashed = app.wait_status(&p, "failed").await;
    assert_eq!(crashed["error"], "the agent crashed");
    app.shutdown().await;
}

#[tokio::test]
async fn the_queue_honours_the_limit_and_priority() {
    let app = spawn_with(|c| c.max_concurrent_sessions = 1).await;
    let blocker = id(&app.create("wait").await);
    app.wait_status(&blocker, "running").await;
    let low = id(&app.create_with(json!({"goal": "done", "priority": "low"})).await);
    let normal = id(&app.create_with(json!({"goal": "done"})).await);
    let high = id(&app.create_with(json!({"goal": "done", "priority": "high"})).await);
    let doomed = id(&app.create("done").await);
    for q in [&low, &normal, &high, &doomed] {
        assert_eq!(app.session(q).await["status"], "queued");
    }
    assert_eq!(command(&app, &doomed, "pause").await.0, 409, "a queued session cannot be paused");
    assert_eq!(command(&app, &doomed, "stop").await.1["status"], "stopped");
    // Raising a queued session's priority moves it up.
    let r = app.http.patch(app.url(&format!("/v1/sessions/{low}"))).bearer_auth(&app.key).json(&json!({"priority": "high"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    command(&app, &blocker, "stop").await;
    // One slot: each starts only after the previous one ended, so the times must chain up.
    let mut times = Vec::new();
    // `low` was raised to high and queued before `high`: equal priority runs first come first served.
    for s in [&low, &high, &normal] {
        let done = app.wait_status(s, "completed").await;
        let at = |k: &str| chrono::DateTime::parse_from_rfc3339(done[k].as_str().unwrap()).unwrap();
        times.push((at("started_at"), at("ended_at")));
    }
    assert!(times[0].1 <= times[1].0 && times[1].1 <= times[2].0, "order was not low (raised), high, normal: {times:?}");
    assert_eq!(app.events(&doomed).await.len(), 1, "a session stopped in the queue never starts");
    app.shutdown().await;
}
