//! The Computer Use Agent API at `/api` (seed 004, SPECS §4): each documented request, the
//! original app's aliases, every error path, the batch filters against hand-computed
//! expectations and the inactivity timeout on a paused clock. Sessions run the scripted
//! agent of `support.rs` (its goal is its script).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// `POST /api/tasks` with `body`; returns `data`.
async fn task(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/tasks", body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Task started successfully");
    body["data"].clone()
}

fn ids(data: &Value) -> (String, String) {
    (data["session_id"].as_str().unwrap().to_owned(), data["task_id"].as_str().unwrap().to_owned())
}

/// The envelope of a response, with its status.
async fn envelope(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    envelope(app.get(path).await).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    envelope(app.post(path, body).await).await
}

/// Polls the status route until `status`.
async fn wait_word(app: &TestApp, sid: &str, tid: &str, word: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = get(app, &format!("/api/status/{sid}/{tid}")).await;
        assert_eq!(code, 200, "{body}");
        if body["data"]["status"] == word {
            return body["data"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never {word}: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_documented_create_request_starts_a_task_with_the_documented_defaults() {
    let app = spawn_app().await;
    // The seed's example, the key in the body as the document says (no header).
    let body = json!({
        "task": "emit:2; done:pizza", "environment": "browser", "display_width": 1024, "display_height": 768,
        "headless": true, "starting_url": "https://www.google.com", "api_key": ADMIN_KEY, "user_id": "user123",
        "session_name": "Pizza Search", "tags": ["food", "search"], "priority": "normal",
        "timeout_seconds": 300, "max_actions": 50
    });
    let r = app.http.post(app.url("/api/tasks")).json(&body).send().await.unwrap();
    let (code, body) = envelope(r).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Task started successfully");
    let data = &body["data"];
    let (sid, tid) = ids(data);
    assert_eq!(data["status"], "running");
    assert!(uuid::Uuid::parse_str(&sid).is_ok() && uuid::Uuid::parse_str(&tid).is_ok());
    let url = data["session_url"].as_str().unwrap();
    assert_eq!(url, format!("{}/sessions/{sid}?task_id={tid}", app.base));
    let native = app.session(&sid).await;
    assert_eq!((native["name"].as_str(), native["user_id"].as_str()), (Some("Pizza Search"), Some("user123")));
    assert_eq!((native["max_actions"].as_u64(), native["timeout_seconds"].as_u64()), (Some(50), Some(300)));
    assert_eq!(native["tags"], json!(["food", "search"]));

    // Only the task given: every default of the document.
    let data = task(&app, json!({"task": "done:ok"})).await;
    let native = app.session(data["session_id"].as_str().unwrap()).await;
    assert_eq!(native["start_url"], "https://www.google.com/");
    assert_eq!((native["display_width"].as_u64(), native["display_height"].as_u64()), (Some(1024), Some(768)));
    assert_eq!((native["headless"].as_bool(), native["priority"].as_str()), (Some(true), Some("normal")));
    let (_, details) = get(&app, &format!("/api/sessions/{}/details", data["session_id"].as_str().unwrap())).await;
    let record = &details["data"]["session"];
    assert_eq!(record["environment"], "browser");
    assert_eq!(record["name"], format!("Session {}", &data["session_id"].as_str().unwrap()[..8]));
    assert_eq!(record["browser_config"]["starting_url"], "https://www.google.com", "as the document writes it");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_create_requests_are_refused_in_the_envelope_naming_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({}), "task"),
        (json!({"task": "  "}), "task"),
        (json!({"task": "x", "environment": "windows"}), "environment"),
        (json!({"task": "x", "display_width": "wide"}), "display_width"),
        (json!({"task": "x", "display_width": 50}), "display_width"),
        (json!({"task": "x", "priority": "urgent"}), "priority"),
        (json!({"task": "x", "starting_url": "ftp://x.org"}), "starting_url"),
        (json!({"task": "x", "tags": "food"}), "tags"),
        (json!({"task": "x", "max_actions": 0}), "max_actions"),
    ] {
        let (code, e) = post(&app, "/api/tasks", body.clone()).await;
        assert_eq!(code, 400, "{body} → {e}");
        assert_eq!(e["success"], false);
        assert_eq!(e["data"]["field"], field, "{body} → {e}");
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }
    let r = app.http.post(app.url("/api/tasks")).bearer_auth(ADMIN_KEY).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    app.shutdown().await;
}

#[tokio::test]
async fn keys_come_in_a_header_or_the_body_and_health_counts_only_for_a_key() {
    let app = spawn_app().await;
    // Without a key, the status only: nothing about anyone's sessions.
    let (code, body) = envelope(app.http.get(app.url("/api/health")).send().await.unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(body["message"], "API is healthy");
    assert_eq!(body["data"], json!({"status": "ok"}));

    // With a key, the counts of the caller's own project.
    let other = app.other_project_key().await;
    let mine = app.create("wait").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&mine, "running").await;
    for _ in 0..2 {
        assert_eq!(app.post_as(&other, "/v1/sessions", json!({"goal": "wait"})).await.status(), 201);
    }
    let health_as = |key: String| {
        let request = app.http.get(app.url("/api/health")).bearer_auth(key);
        async move { envelope(request.send().await.unwrap()).await }
    };
    let (code, body) = health_as(app.key.clone()).await;
    let data = &body["data"];
    assert_eq!(code, 200);
    assert_eq!((data["status"].as_str(), data["version"].as_str(), data["browser_environment"].as_str()), (Some("ok"), Some("1.0.0"), Some("real")));
    assert_eq!(data["active_sessions"], 1, "the caller's project only: {body}");
    let (_, body) = health_as(other.clone()).await;
    assert_eq!(body["data"]["active_sessions"], 2, "never the server's 3: {body}");
    let (code, body) = health_as("wrong-key".into()).await;
    assert_eq!((code, body["success"].as_bool()), (401, Some(false)));

    let anonymous = envelope(app.http.get(app.url("/api/sessions")).send().await.unwrap()).await;
    assert_eq!(anonymous.0, 401);
    assert_eq!(anonymous.1["success"], false);
    assert!(anonymous.1["data"]["error"].as_str().unwrap().contains("API key"));
    let (code, _) = envelope(app.get_as("wrong-key", "/api/sessions").await).await;
    assert_eq!(code, 401);
    let (code, _) = envelope(app.http.post(app.url("/api/tasks")).json(&json!({"task": "x", "api_key": "nope"})).send().await.unwrap()).await;
    assert_eq!(code, 401);
    // The document puts the key in the body; a key in the URL is not taken (it lands in logs).
    let by_query = app.http.get(app.url(&format!("/api/sessions?api_key={ADMIN_KEY}"))).send().await.unwrap();
    assert_eq!(by_query.status(), 401);
    let by_body = app.http.post(app.url("/api/sessions/batch")).json(&json!({"api_key": ADMIN_KEY})).send().await.unwrap();
    assert_eq!(by_body.status(), 200);
    let by_header = app.http.get(app.url("/api/sessions")).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(by_header.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_answer_in_the_envelope_and_any_origin_may_call() {
    let app = spawn_app().await;
    let (code, body) = get(&app, "/api/nothing/here/at/all").await;
    assert_eq!((code, body["success"].as_bool()), (404, Some(false)));
    let (code, _) = get(&app, "/api/sessions?limit=%ZZ").await;
    assert_eq!(code, 400, "a bad escape is a bad limit, not a crash");
    let preflight = app.http.request(reqwest::Method::OPTIONS, app.url("/api/tasks"))
        .header("origin", "http://example.test").header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization").send().await.unwrap();
    assert!(preflight.status().is_success(), "{:?}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://example.test");
    let r = app.http.get(app.url("/api/health")).header("origin", "http://example.test").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://example.test");
    let r = app.http.get(app.url("/healthz")).header("origin", "http://example.test").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none(), "the native API is not opened to other origins");
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limits_answer_429_in_the_envelope() {
    let app = spawn_app().await;
    let key = app.key_in("limited", Some(2)).await;
    for _ in 0..2 {
        assert_eq!(app.get_as(&key, "/api/sessions").await.status(), 200);
    }
    let r = app.get_as(&key, "/api/sessions").await;
    assert!(r.headers().get("retry-after").is_some());
    let (code, body) = envelope(r).await;
    assert_eq!(code, 429);
    assert_eq!(body["success"], false);
    assert!(body["message"].as_str().unwrap().contains("rate limit"));
    app.shutdown().await;
}

#[tokio::test]
async fn status_shows_logs_and_reasoning_and_checks_the_task_id() {
    let app = spawn_app().await;
    let (sid, tid) = ids(&task(&app, json!({"task": "emit:2; done:found it"})).await);
    let data = wait_word(&app, &sid, &tid, "completed").await;
    assert_eq!((data["session_id"].as_str(), data["task_id"].as_str()), (Some(sid.as_str()), Some(tid.as_str())));
    let logs: Vec<&str> = data["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(logs.len() >= 4, "{logs:?}");
    for line in &logs {
        let (stamp, _) = line.split_at(10);
        assert!(stamp.starts_with('[') && stamp.ends_with(']') && stamp.as_bytes()[3] == b':', "{line}");
    }
    assert!(logs.first().unwrap().ends_with("Session started"), "{logs:?}");
    assert!(logs.last().unwrap().ends_with("Task completed"), "{logs:?}");
    assert_eq!(data["reasoning"][0], json!({"id": "reason_1", "timestamp": data["reasoning"][0]["timestamp"], "content": [{"type": "text", "text": "step 0"}]}));
    assert_eq!(data["reasoning"].as_array().unwrap().len(), 2);
    assert_eq!(data["pending_safety_checks"], Value::Null);
    assert_eq!(data["response"], "found it");

    // The original app's route, with the task id in the query.
    let (code, alias) = get(&app, &format!("/api/sessions/{sid}/status?task_id={tid}")).await;
    assert_eq!((code, alias["data"]["status"].as_str()), (200, Some("completed")));

    let (code, e) = get(&app, &format!("/api/status/{sid}/not-the-task")).await;
    assert_eq!((code, e["message"].as_str()), (403, Some("Invalid task ID")));
    let (code, e) = get(&app, &format!("/api/sessions/{sid}/status")).await;
    assert_eq!((code, e["data"]["field"].as_str()), (400, Some("task_id")));
    let unknown = uuid::Uuid::now_v7();
    let (code, e) = get(&app, &format!("/api/status/{unknown}/{tid}")).await;
    assert_eq!(code, 404);
    assert_eq!(e, json!({"success": false, "message": "Session not found", "detail": "Session not found",
        "data": {"error": format!("Session with ID {unknown} does not exist")}}));
    let (code, _) = get(&app, &format!("/api/status/not-a-uuid/{tid}")).await;
    assert_eq!(code, 404);
    // Another project's session is not found either.
    let other = app.other_project_key().await;
    let (code, _) = envelope(app.get_as(&other, &format!("/api/status/{sid}/{tid}")).await).await;
    assert_eq!(code, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn a_pending_safety_check_is_shown_and_confirmed_or_rejected() {
    let app = spawn_app().await;
    let (sid, tid) = ids(&task(&app, json!({"task": "safety:sensitive_domain; done:paid"})).await);
    let control = |route: &str, body: Value| {
        let path = format!("/api/{route}/{sid}");
        let app = &app;
        async move { post(app, &path, body).await }
    };
    let data = wait_word(&app, &sid, &tid, "awaiting_safety_confirmation").await;
    let checks = data["pending_safety_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!((checks[0]["code"].as_str(), checks[0]["message"].as_str()), (Some("sensitive_domain"), Some("a risky step")));
    assert!(checks[0]["id"].as_str().unwrap().len() > 3);
    let (code, e) = control("confirm_safety_check", json!({"session_id": sid, "task_id": "wrong"})).await;
    assert_eq!((code, e["message"].as_str()), (403, Some("Invalid task ID")));
    let (code, e) = control("confirm_safety_check", json!({"session_id": "other", "task_id": tid})).await;
    assert_eq!((code, e["data"]["field"].as_str()), (400, Some("session_id")));
    let (code, ok) = control("confirm_safety_check", json!({"session_id": sid, "task_id": tid, "confirm": true})).await;
    assert_eq!(code, 200, "{ok}");
    assert_eq!(ok, json!({"success": true, "message": "Safety checks confirmed", "data": {"session_id": sid, "status": "running"}}));
    wait_word(&app, &sid, &tid, "completed").await;
    let (code, e) = control("confirm_safety_check", json!({"session_id": sid, "task_id": tid})).await;
    assert_eq!((code, e["message"].as_str()), (400, Some("No pending safety checks to confirm")));

    // Paused while a check is pending: the check still shows, and may be confirmed.
    let (sid, tid) = ids(&task(&app, json!({"task": "safety:sensitive_form; done:held"})).await);
    wait_word(&app, &sid, &tid, "awaiting_safety_confirmation").await;
    let upper = json!({"session_id": sid.to_uppercase(), "task_id": tid});
    assert_eq!(post(&app, &format!("/api/pause/{sid}"), upper.clone()).await.0, 200, "ids compare as ids, whatever their case");
    let paused = wait_word(&app, &sid, &tid, "paused").await;
    assert_eq!(paused["pending_safety_checks"][0]["code"], "sensitive_form");
    assert_eq!(post(&app, &format!("/api/confirm_safety_check/{sid}"), upper.clone()).await.0, 200);
    assert_eq!(post(&app, &format!("/api/resume/{sid}"), upper).await.0, 200);
    wait_word(&app, &sid, &tid, "completed").await;

    // Rejected (through the original app's route): the session stops.
    let (sid, tid) = ids(&task(&app, json!({"task": "safety:irrelevant_domain; done:never"})).await);
    wait_word(&app, &sid, &tid, "awaiting_safety_confirmation").await;
    let (code, body) = post(&app, &format!("/api/sessions/{sid}/confirm-safety-check"), json!({"session_id": sid, "task_id": tid, "confirm": false})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Safety checks rejected, agent stopped");
    assert_eq!(body["data"]["status"], "stopped");
    let data = wait_word(&app, &sid, &tid, "stopped").await;
    assert!(data["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().ends_with("Safety check denied")), "{data}");
    app.shutdown().await;
}

#[tokio::test]
async fn pause_resume_and_stop_follow_the_document() {
    let app = spawn_app().await;
    let (sid, tid) = ids(&task(&app, json!({"task": "wait"})).await);
    let body = json!({"session_id": sid, "task_id": tid});
    wait_word(&app, &sid, &tid, "running").await;
    let (code, e) = post(&app, &format!("/api/resume/{sid}"), body.clone()).await;
    assert_eq!((code, e["message"].as_str()), (400, Some("Session is not paused")));
    let (code, paused) = post(&app, &format!("/api/pause/{sid}"), body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(paused, json!({"success": true, "message": "Session paused", "data": {"session_id": sid, "status": "paused"}}));
    assert_eq!(wait_word(&app, &sid, &tid, "paused").await["status"], "paused");
    let (code, resumed) = post(&app, &format!("/api/resume/{sid}"), body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(resumed, json!({"success": true, "message": "Session resumed", "data": {"session_id": sid, "status": "running"}}));
    // The original app's routes do the same.
    assert_eq!(post(&app, &format!("/api/sessions/{sid}/pause"), body.clone()).await.0, 200);
    assert_eq!(post(&app, &format!("/api/sessions/{sid}/resume"), body.clone()).await.0, 200);
    let (code, e) = post(&app, &format!("/api/pause/{sid}"), json!({"task_id": "nope"})).await;
    assert_eq!((code, e["message"].as_str()), (403, Some("Invalid task ID")));
    let (code, stopped) = post(&app, &format!("/api/stop/{sid}"), body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(stopped, json!({"success": true, "message": "Session stopped", "data": {"session_id": sid, "status": "stopped"}}));
    assert_eq!(wait_word(&app, &sid, &tid, "stopped").await["status"], "stopped");
    let (code, e) = post(&app, &format!("/api/sessions/{sid}/stop"), body.clone()).await;
    assert_eq!(code, 400, "a stopped session cannot be stopped again: {e}");
    let (code, _) = post(&app, &format!("/api/nonsense/{sid}"), body.clone()).await;
    assert_eq!(code, 404);
    let unknown = uuid::Uuid::now_v7();
    let (code, e) = post(&app, &format!("/api/stop/{unknown}"), json!({"task_id": tid})).await;
    assert_eq!((code, e["message"].as_str()), (404, Some("Session not found")));
    app.shutdown().await;
}

#[tokio::test]
async fn cleanup_session_releases_a_session_once() {
    let app = spawn_app().await;
    let (sid, tid) = ids(&task(&app, json!({"task": "wait"})).await);
    let body = json!({"session_id": sid, "task_id": tid});
    wait_word(&app, &sid, &tid, "running").await;
    let (code, cleaned) = post(&app, &format!("/api/cleanup_session/{sid}"), body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(cleaned, json!({"success": true, "message": "Session cleaned up", "data": {"session_id": sid, "status": "cleaned"}}));
    let native = app.wait_status(&sid, "stopped").await;
    assert!(native["cleaned_at"].is_string());
    assert_eq!(native["error"], Value::Null, "cleaning up is not an error");
    assert_eq!(get(&app, &format!("/api/status/{sid}/{tid}")).await.1["data"]["status"], "cleaned");
    let (_, by_word) = get(&app, "/api/sessions?status=cleaned").await;
    assert_eq!(by_word["data"]["sessions"].as_array().unwrap().len(), 1);
    let (code, e) = post(&app, &format!("/api/cleanup_session/{sid}"), body.clone()).await;
    assert_eq!((code, e["message"].as_str()), (404, Some("Session not found or already cleaned up")));
    let (_, details) = get(&app, &format!("/api/sessions/{sid}/details")).await;
    assert_eq!(details["data"]["is_active"], false);

    // A finished session, through the original app's route.
    let (done, tid) = ids(&task(&app, json!({"task": "done:ok"})).await);
    wait_word(&app, &done, &tid, "completed").await;
    let body = json!({"session_id": done, "task_id": tid});
    assert_eq!(post(&app, &format!("/api/sessions/{done}/cleanup"), body.clone()).await.0, 200);
    assert_eq!(post(&app, &format!("/api/sessions/{done}/cleanup"), body).await.0, 404);
    let unknown = uuid::Uuid::now_v7();
    let (code, e) = post(&app, &format!("/api/cleanup_session/{unknown}"), json!({"task_id": tid})).await;
    assert_eq!((code, e["message"].as_str()), (404, Some("Session not found or already cleaned up")));
    app.shutdown().await;
}

/// Creates a finished session through `/api/tasks` and returns its id.
async fn finished(app: &TestApp, body: Value) -> String {
    let (sid, tid) = ids(&task(app, body).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = get(app, &format!("/api/status/{sid}/{tid}")).await;
        if ["completed", "failed"].contains(&status["data"]["status"].as_str().unwrap()) {
            return sid;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn listed(body: &Value) -> Vec<String> {
    body["data"]["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn lists_filter_sort_and_limit() {
    let app = spawn_app().await;
    let a = finished(&app, json!({"task": "done:a", "user_id": "u1", "tags": ["food"], "session_name": "Beta"})).await;
    let b = finished(&app, json!({"task": "fail:boom", "user_id": "u2", "tags": ["search", "food"], "session_name": "Alpha"})).await;
    let c = finished(&app, json!({"task": "done:c", "user_id": "u1", "tags": ["other"], "session_name": "Gamma"})).await;

    let (code, all) = get(&app, "/api/sessions").await;
    assert_eq!(code, 200);
    assert_eq!(all["message"], "Retrieved 3 sessions");
    assert_eq!(listed(&all), [c.as_str(), b.as_str(), a.as_str()], "newest first by default");
    let summary = &all["data"]["sessions"][2];
    for field in ["id", "task_id", "name", "task", "status", "created_at", "completed_at", "user_id", "tags", "priority",
                  "is_paused", "is_completed", "logs_count", "screenshots_count", "reasoning_data_count", "current_url",
                  "has_error", "has_reasoning_data", "duration", "environment", "updated_at"] {
        assert!(summary.get(field).is_some(), "summary lacks {field}: {summary}");
    }
    assert_eq!((summary["name"].as_str(), summary["status"].as_str()), (Some("Beta"), Some("completed")));
    assert_eq!(summary["logs_count"], app.session(&a).await["last_seq"]);

    assert_eq!(listed(&get(&app, "/api/sessions?limit=2").await.1), [c.as_str(), b.as_str()]);
    assert_eq!(listed(&get(&app, "/api/sessions?sort_direction=asc").await.1), [a.as_str(), b.as_str(), c.as_str()]);
    assert_eq!(listed(&get(&app, "/api/sessions?sort_field=name&sort_direction=asc").await.1), [b.as_str(), a.as_str(), c.as_str()]);
    assert_eq!(listed(&get(&app, "/api/sessions?user_id=u1").await.1), [c.as_str(), a.as_str()]);
    assert_eq!(listed(&get(&app, "/api/sessions?status=failed").await.1), [b.as_str()]);
    assert_eq!(listed(&get(&app, "/api/sessions?tag=food").await.1), [b.as_str(), a.as_str()]);
    // Any summary field sorts, in memory.
    assert_eq!(listed(&get(&app, "/api/sessions?sort_field=has_error&sort_direction=desc&limit=1").await.1), [b.as_str()]);
    for (query, field) in [("limit=0", "limit"), ("limit=x", "limit"), ("sort_direction=up", "sort_direction"),
                           ("sort_field=colour", "sort_field"), ("status=exploded", "status")] {
        let (code, e) = get(&app, &format!("/api/sessions?{query}")).await;
        assert_eq!((code, e["data"]["field"].as_str()), (400, Some(field)), "{query}: {e}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn batch_filters_match_hand_computed_expectations() {
    let app = spawn_app().await;
    let quick = finished(&app, json!({"task": "done:q", "user_id": "u1", "tags": ["search"]})).await;
    let slow = finished(&app, json!({"task": "sleep:400; done:s", "user_id": "u1", "tags": ["search", "food"]})).await;
    let broken = finished(&app, json!({"task": "fail:boom", "user_id": "u1", "tags": ["food"]})).await;
    let elsewhere = finished(&app, json!({"task": "done:e", "user_id": "u2", "tags": ["search"]})).await;
    let created = |id: &str| {
        let app = &app;
        let id = id.to_owned();
        async move { app.session(&id).await["created_at"].as_str().unwrap().to_owned() }
    };
    let batch = |body: Value| {
        let app = &app;
        async move {
            let (code, body) = post(app, "/api/sessions/batch", body).await;
            assert_eq!(code, 200, "{body}");
            listed(&body)
        }
    };
    // The document's example: u1, tagged search, completed, under 300 s, no errors, by duration.
    let doc = json!({
        "limit": 100,
        "filter_by": {"created_after": "2025-03-01T00:00:00Z", "created_before": "2099-03-10T23:59:59Z",
                      "duration_less_than": 300, "has_errors": false},
        "sort_field": "duration", "sort_direction": "asc", "user_id": "u1", "tags": ["search"], "status": "completed"
    });
    assert_eq!(batch(doc).await, [quick.as_str(), slow.as_str()]);
    assert_eq!(batch(json!({"sort_field": "duration", "sort_direction": "desc", "limit": 1})).await, [slow.as_str()]);
    assert_eq!(batch(json!({"filter_by": {"duration_less_than": 0.3}, "user_id": "u1", "sort_direction": "asc"})).await, [quick.as_str(), broken.as_str()]);
    assert_eq!(batch(json!({"filter_by": {"has_errors": true}})).await, [broken.as_str()]);
    assert_eq!(batch(json!({"tags": ["food"], "sort_direction": "asc"})).await, [slow.as_str(), broken.as_str()]);
    let (after_slow, at_broken) = (created(&slow).await, created(&broken).await);
    assert_eq!(
        batch(json!({"filter_by": {"created_after": after_slow, "created_before": at_broken}})).await,
        [slow.as_str()],
        "created_after is inclusive, created_before exclusive"
    );
    assert_eq!(batch(json!({"filter_by": {"created_after": at_broken}, "sort_direction": "asc"})).await, [broken.as_str(), elsewhere.as_str()]);
    // filter_by on any other summary field is exact equality, as in the original app.
    assert_eq!(batch(json!({"filter_by": {"user_id": "u2"}})).await, [elsewhere.as_str()]);
    assert_eq!(batch(json!({"filter_by": {"has_reasoning_data": false, "status": "failed"}})).await, [broken.as_str()]);
    assert_eq!(batch(json!({"filter_by": {"created_after": null, "has_errors": null, "duration_less_than": null}, "user_id": "u2"})).await, [elsewhere.as_str()], "null filters are no filters");
    for (body, field) in [
        (json!({"filter_by": {"colour": "red"}, "user_id": "nobody"}), "filter_by.colour"),
        (json!({"sort_field": "colour", "user_id": "nobody"}), "sort_field"),
        (json!({"filter_by": {"created_after": "yesterday"}}), "filter_by.created_after"),
        (json!({"filter_by": {"duration_less_than": "long"}}), "filter_by.duration_less_than"),
        (json!({"filter_by": {"has_errors": "no"}}), "filter_by.has_errors"),
        (json!({"filter_by": {"colour": "red"}}), "filter_by.colour"),
        (json!({"limit": 5000}), "limit"),
        (json!({"tags": [1]}), "tags"),
    ] {
        let (code, e) = post(&app, "/api/sessions/batch", body.clone()).await;
        assert_eq!((code, e["data"]["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn active_sessions_details_and_updates() {
    let app = spawn_app().await;
    let (running, tid) = ids(&task(&app, json!({"task": "emit:1; wait", "session_name": "Runner"})).await);
    wait_word(&app, &running, &tid, "running").await;
    let done = finished(&app, json!({"task": "emit:3; done:ok"})).await;
    let (code, active) = get(&app, "/api/sessions/active").await;
    assert_eq!(code, 200);
    assert_eq!(active["message"], "Found 1 active sessions");
    let entry = &active["data"]["active_sessions"][0];
    assert_eq!((entry["id"].as_str(), entry["task_id"].as_str()), (Some(running.as_str()), Some(tid.as_str())));
    assert_eq!((entry["status"].as_str(), entry["name"].as_str(), entry["task"].as_str()), (Some("running"), Some("Runner"), Some("emit:1; wait")));
    assert!(entry["started_at"].as_str().unwrap().ends_with('Z'));

    let (code, details) = get(&app, &format!("/api/sessions/{done}/details")).await;
    assert_eq!(code, 200);
    assert_eq!(details["message"], format!("Retrieved details for session {done}"));
    let data = &details["data"];
    assert_eq!(data["is_active"], false);
    let session = &data["session"];
    assert_eq!(session["reasoning_data"].as_array().unwrap().len(), 3);
    assert_eq!(session["reasoning_data"][2]["content"][0]["text"], "step 2");
    assert_eq!(session["logs"].as_array().unwrap().len() as u64, data["logs_count"].as_u64().unwrap());
    assert_eq!(session["browser_config"]["display_width"], 1024);
    assert!(session["completed_at"].is_string() && session["actions"].is_array());
    assert_eq!(data["screenshots_count"], 0);
    assert_eq!(data["latest_screenshot"], Value::Null, "the scripted agent has no browser");
    let unknown = uuid::Uuid::now_v7();
    let (code, e) = get(&app, &format!("/api/sessions/{unknown}/details")).await;
    assert_eq!((code, e["message"].as_str()), (404, Some(format!("Session {unknown} not found").as_str())));

    // The document's example changes all four fields; a later call changes only what it names.
    let example = json!({"name": "Updated Session Name", "tags": ["new-tag", "updated"], "priority": "high", "user_id": "user456"});
    let r = app.http.put(app.url(&format!("/api/sessions/{done}"))).bearer_auth(ADMIN_KEY).json(&example).send().await.unwrap();
    let (code, updated) = envelope(r).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated, json!({"success": true, "message": format!("Session {done} updated successfully"),
        "data": {"session_id": done, "updates": example}}));
    let r = app.http.put(app.url(&format!("/api/sessions/{done}"))).bearer_auth(ADMIN_KEY).json(&json!({"priority": "low"})).send().await.unwrap();
    assert_eq!(envelope(r).await.1["data"]["updates"], json!({"priority": "low"}));
    let native = app.session(&done).await;
    assert_eq!((native["name"].as_str(), native["priority"].as_str()), (Some("Updated Session Name"), Some("low")));
    assert_eq!((native["tags"].clone(), native["user_id"].as_str()), (json!(["new-tag", "updated"]), Some("user456")));
    let put = |id: String, body: Value| {
        let app = &app;
        async move { envelope(app.http.put(app.url(&format!("/api/sessions/{id}"))).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap()).await }
    };
    let (code, e) = put(done.clone(), json!({"priority": "urgent"})).await;
    assert_eq!((code, e["data"]["field"].as_str()), (400, Some("priority")));
    let (code, _) = put(done.clone(), json!({})).await;
    assert_eq!(code, 400);
    let (code, e) = put(unknown.to_string(), json!({"name": "x"})).await;
    assert_eq!((code, e["message"].as_str()), (404, Some(format!("Session {unknown} not found").as_str())));

    let (code, replay) = get(&app, &format!("/api/sessions/{done}/replay")).await;
    assert_eq!(code, 200);
    assert_eq!(replay["metadata"]["status"], "completed");
    assert_eq!(replay["reasoning_data"].as_array().unwrap().len(), 3);
    app.shutdown().await;
}

#[tokio::test]
async fn cleanup_of_old_sessions_takes_at_least_one_day() {
    let app = spawn_app().await;
    finished(&app, json!({"task": "done:ok"})).await;
    for days in ["0", "-3"] {
        let (code, e) = post(&app, &format!("/api/sessions/cleanup?days_old={days}"), json!({})).await;
        assert_eq!((code, e["message"].as_str()), (400, Some("Days parameter must be at least 1")));
    }
    let (code, e) = post(&app, "/api/sessions/cleanup?days_old=soon", json!({})).await;
    assert_eq!((code, e["data"]["field"].as_str()), (400, Some("days_old")));
    let (code, body) = post(&app, "/api/sessions/cleanup?days_old=1", json!({})).await;
    assert_eq!(code, 200);
    assert_eq!(body, json!({"success": true, "message": "Cleaned up 0 sessions older than 1 days", "data": {"cleaned_count": 0}}));
    let (_, body) = post(&app, "/api/sessions/cleanup", json!({})).await;
    assert_eq!(body["message"], "Cleaned up 0 sessions older than 7 days", "7 days by default");
    assert_eq!(get(&app, "/api/sessions").await.1["data"]["sessions"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_times_out_after_five_minutes_unless_paused() {
    let app = spawn_app().await;
    let (idle, tid) = ids(&task(&app, json!({"task": "wait"})).await);
    let (held, held_tid) = ids(&task(&app, json!({"task": "wait"})).await);
    wait_word(&app, &idle, &tid, "running").await;
    wait_word(&app, &held, &held_tid, "running").await;
    assert_eq!(post(&app, &format!("/api/pause/{held}"), json!({"session_id": held, "task_id": held_tid})).await.0, 200);
    app.clock.advance(Duration::from_secs(299));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&app, &format!("/api/status/{idle}/{tid}")).await.1["data"]["status"], "running");
    app.clock.advance(Duration::from_secs(1));
    let data = wait_word(&app, &idle, &tid, "timeout").await;
    let last = data["logs"].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned();
    assert!(last.ends_with("Session timed out after 300 s of inactivity; its browser was closed"), "{last}");
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&app, &format!("/api/status/{held}/{held_tid}")).await.1["data"]["status"], "paused", "paused sessions do not time out");
    app.shutdown().await;
}

/// The document's flow with the real browser agent: real Chromium on the fixture site, the
/// scripted LLM. The form holds a password, so submitting it waits for a safety check.
#[tokio::test]
async fn a_real_browser_task_runs_through_the_api_with_screenshots_and_a_safety_check() {
    use agentd_testllm::ScriptedLlm;
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    llm.push_with(|r| {
        reasoned(
            "the form needs a size",
            vec![call("check", json!({"index": index_of(r, "radio \"Small\""), "checked": true})), call("click", json!({"index": index_of(r, "\"Submit form\"")}))],
        )
    });
    llm.push_with(|r| if r.text().contains("size=s") { done("submitted with size s") } else { done("not submitted") });
    let data = task(&app, json!({"task": "Submit the form with the small size", "starting_url": format!("{site}form"), "api_key": ADMIN_KEY})).await;
    let (sid, tid) = ids(&data);

    let waiting = wait_word(&app, &sid, &tid, "awaiting_safety_confirmation").await;
    let check = &waiting["pending_safety_checks"][0];
    assert_eq!(check["code"], "sensitive_form");
    assert!(check["message"].as_str().unwrap().contains("password"), "{check}");
    let shot = waiting["current_screenshot"].as_str().expect("a live screenshot while the session runs");
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(waiting["reasoning"][0]["content"][0]["text"], "the form needs a size");
    assert!(waiting["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("Safety check sensitive_form")));

    let (code, ok) = post(&app, &format!("/api/confirm_safety_check/{sid}"), json!({"session_id": sid, "task_id": tid, "confirm": true})).await;
    assert_eq!((code, ok["data"]["status"].as_str()), (200, Some("running")));
    let data = wait_word(&app, &sid, &tid, "completed").await;
    assert_eq!(data["response"], "submitted with size s");
    assert!(data["current_screenshot"].is_string(), "the last screenshot stays after the end");

    let (_, details) = get(&app, &format!("/api/sessions/{sid}/details")).await;
    let details = &details["data"];
    assert_eq!(details["screenshots_count"], 1);
    assert!(details["latest_screenshot"].is_string());
    let actions: Vec<&str> = details["session"]["actions"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
    assert_eq!(actions, ["navigate", "check", "click"]);
    assert_eq!(details["session"]["safety_checks"], json!(["sensitive_form"]));
    assert!(details["session"]["current_url"].as_str().unwrap().contains("/form"), "{}", details["session"]);
    let (_, list) = get(&app, "/api/sessions").await;
    let summary = &list["data"]["sessions"][0];
    assert_eq!((summary["reasoning_data_count"].as_u64(), summary["screenshots_count"].as_u64()), (Some(2), Some(1)));
    // The live page's screenshot is the same PNG.
    let screen = app.http.get(format!("{}/sessions/{sid}/screen.png?task_id={tid}", app.base)).send().await.unwrap();
    assert_eq!(screen.headers()["content-type"], "image/png");
    app.shutdown().await;
}
