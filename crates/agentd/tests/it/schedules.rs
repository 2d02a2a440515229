//! Schedules on a paused clock: intervals, start and end, the daily quota, pause and resume,
//! a restart mid-schedule (missed slots counted, nothing fired twice), validation at N and
//! N+1, and webhooks from scheduled sessions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

async fn create(app: &TestApp, body: Value) -> Value {
    let r = app.post("/v1/schedules", body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn schedule(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/schedules/{id}")).await.json().await.unwrap()
}

/// Waits until the schedule's `field` reaches `n` (the scheduler acts on its own task).
async fn until(app: &TestApp, id: &str, field: &str, n: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = schedule(app, id).await;
        if s[field].as_u64() == Some(n) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "{field} never reached {n}: {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets the scheduler look at the clock after a move (real time, not an assertion on it).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_interval_fires_each_slot_once() {
    let app = spawn_app().await;
    let s = create(&app, json!({"goal": "done:scheduled", "every_minutes": 5, "start_now": true, "tags": ["nightly"]})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!((s["status"].as_str(), s["every_minutes"].as_u64()), (Some("active"), Some(5)));
    let fired = until(&app, &id, "fired", 1).await;
    let session = fired["last_session_id"].as_str().unwrap().to_owned();
    let made = app.wait_status(&session, "completed").await;
    assert_eq!((made["goal"].as_str(), made["tags"].clone()), (Some("done:scheduled"), json!(["nightly"])));
    assert_eq!(fired["runs"][0]["outcome"], "fired");
    let next: chrono::DateTime<chrono::Utc> = fired["next_fire_at"].as_str().unwrap().parse().unwrap();
    let first: chrono::DateTime<chrono::Utc> = fired["runs"][0]["slot_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((next - first).num_minutes(), 5);

    app.clock.advance(4 * MIN);
    settle().await;
    assert_eq!(schedule(&app, &id).await["fired"], 1, "not before its slot");
    app.clock.advance(MIN);
    until(&app, &id, "fired", 2).await;
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(10));
        settle().await;
    }
    let s = schedule(&app, &id).await;
    assert_eq!((s["fired"].as_u64(), s["skipped_missed"].as_u64()), (Some(2), Some(0)), "no slot fires twice: {s}");
    let listed: Value = app.get("/v1/schedules").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn start_at_end_at_and_the_daily_quota_hold() {
    let app = spawn_app().await;
    // The quota is per UTC day: keep the test's quarter hour inside one day, whenever it runs.
    let wall = agentd_engine::Clock::wall(app.clock.as_ref());
    let midnight = (wall.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).unwrap().and_utc();
    if midnight - wall < chrono::Duration::minutes(20) {
        let past = (midnight - wall + chrono::Duration::minutes(1)).to_std().unwrap();
        app.clock.advance(past);
        settle().await;
    }
    let now = agentd_engine::Clock::wall(app.clock.as_ref());
    let start = (now + chrono::Duration::minutes(10)).to_rfc3339();
    let end = (now + chrono::Duration::minutes(13)).to_rfc3339();
    let s = create(&app, json!({"goal": "done:x", "every_minutes": 1, "start_at": start, "end_at": end, "max_sessions_per_day": 2})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!((s["today_sessions"].as_u64(), s["sessions_left"].as_u64()), (Some(0), Some(2)));
    app.clock.advance(9 * MIN);
    settle().await;
    assert_eq!(schedule(&app, &id).await["fired"], 0, "nothing before start_at");
    app.clock.advance(MIN);
    until(&app, &id, "fired", 1).await;
    app.clock.advance(MIN);
    until(&app, &id, "fired", 2).await;
    app.clock.advance(MIN);
    let s = until(&app, &id, "skipped_quota", 1).await;
    assert_eq!((s["today_sessions"].as_u64(), s["sessions_left"].as_u64()), (Some(2), Some(0)));
    assert_eq!(s["runs"][0]["outcome"], "skipped_quota");
    assert_eq!(s["runs"][0]["reason"], "max_sessions_per_day (2) reached");
    app.clock.advance(MIN);
    let s = until(&app, &id, "skipped_quota", 2).await;
    assert_eq!(s["status"], "ended", "the slot at end_at was the last: {s}");
    assert_eq!(s["next_fire_at"], Value::Null);
    app.clock.advance(60 * MIN);
    settle().await;
    let s = schedule(&app, &id).await;
    assert_eq!((s["fired"].as_u64(), s["skipped_quota"].as_u64()), (Some(2), Some(2)));
    app.shutdown().await;
}

#[tokio::test]
async fn paused_schedules_skip_nothing_and_resume_at_the_next_slot() {
    let app = spawn_app().await;
    let s = create(&app, json!({"goal": "done:x", "every_minutes": 1})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let r = app.post(format!("/v1/schedules/{id}/pause"), json!({})).await;
    assert_eq!(r.status(), 200);
    app.clock.advance(10 * MIN);
    settle().await;
    let s = schedule(&app, &id).await;
    assert_eq!((s["status"].as_str(), s["fired"].as_u64(), s["skipped_missed"].as_u64()), (Some("paused"), Some(0), Some(0)));
    let (status, _) = error_of(app.post(format!("/v1/schedules/{id}/pause"), json!({})).await).await;
    assert_eq!(status, 409);
    let resumed: Value = app.post(format!("/v1/schedules/{id}/resume"), json!({})).await.json().await.unwrap();
    assert_eq!(resumed["status"], "active");
    until(&app, &id, "fired", 1).await;
    let s = schedule(&app, &id).await;
    assert_eq!(s["skipped_missed"], 0);
    assert_eq!(app.http.delete(app.url(&format!("/v1/schedules/{id}"))).bearer_auth(ADMIN_KEY).send().await.unwrap().status(), 204);
    let (status, _) = error_of(app.get(&format!("/v1/schedules/{id}")).await).await;
    assert_eq!(status, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn a_restart_skips_and_counts_missed_slots_and_fires_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_at(dir.path(), |_| {}).await;
    let s = create(&app, json!({"goal": "done:x", "every_minutes": 1, "start_now": true})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    until(&app, &id, "fired", 1).await;
    app.shutdown().await;

    // Back five and a half minutes later: the slots at +1 … +4 were missed; +5 is within
    // the grace minute and fires; the slot fired before the restart does not fire again.
    let app = spawn_at(dir.path(), |_| {}).await;
    app.clock.advance(5 * MIN + Duration::from_secs(30));
    let s = until(&app, &id, "fired", 2).await;
    assert_eq!(s["skipped_missed"], 4, "{s}");
    let outcomes: Vec<&str> = s["runs"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["fired", "skipped_missed", "skipped_missed", "skipped_missed", "skipped_missed", "fired"]);
    settle().await;
    assert_eq!(schedule(&app, &id).await["fired"], 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_start_in_the_past_starts_at_the_next_slot_and_missed_nothing() {
    let app = spawn_app().await;
    let long_ago = (agentd_engine::Clock::wall(app.clock.as_ref()) - chrono::Duration::minutes(90)).to_rfc3339();
    let s = create(&app, json!({"goal": "done:x", "every_minutes": 60, "start_at": long_ago})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let next: chrono::DateTime<chrono::Utc> = s["next_fire_at"].as_str().unwrap().parse().unwrap();
    let wait = next - agentd_engine::Clock::wall(app.clock.as_ref());
    assert!(wait > chrono::Duration::minutes(29) && wait <= chrono::Duration::minutes(30), "on the start's grid: {s}");
    settle().await;
    let s = schedule(&app, &id).await;
    assert_eq!((s["fired"].as_u64(), s["skipped_missed"].as_u64()), (Some(0), Some(0)));
    // Started now with an end already past (seed 002's example dates): it runs once.
    let s = create(&app, json!({"goal": "done:x", "every_minutes": 30, "start_now": true, "end_at": "2025-01-20T00:00:00Z"})).await;
    assert_eq!((s["fired"].as_u64(), s["status"].as_str()), (Some(1), Some("ended")), "{s}");
    app.shutdown().await;
}

#[tokio::test]
async fn cron_schedules_read_their_time_zone() {
    let app = spawn_app().await;
    let s = create(&app, json!({"goal": "done:x", "cron": "30 9 * * *", "timezone": "Asia/Tokyo"})).await;
    let next: chrono::DateTime<chrono::Utc> = s["next_fire_at"].as_str().unwrap().parse().unwrap();
    use chrono::Timelike;
    assert_eq!((next.hour(), next.minute()), (0, 30), "09:30 in Tokyo is 00:30 UTC");
    assert_eq!((s["cron"].as_str(), s["timezone"].as_str()), (Some("30 9 * * *"), Some("Asia/Tokyo")));
    app.shutdown().await;
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let soon = (agentd_engine::Clock::wall(app.clock.as_ref()) + chrono::Duration::minutes(5)).to_rfc3339();
    for (body, field) in [
        (json!({"goal": "x"}), "every_minutes"),
        (json!({"goal": "x", "every_minutes": 5, "cron": "* * * * *"}), "cron"),
        (json!({"goal": "x", "every_minutes": 0}), "every_minutes"),
        (json!({"goal": "x", "every_minutes": 525_601}), "every_minutes"),
        (json!({"goal": "x", "every_minutes": "often"}), "every_minutes"),
        (json!({"goal": "x", "cron": "every day"}), "cron"),
        (json!({"goal": "x", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}), "timezone"),
        (json!({"goal": "x", "every_minutes": 5, "timezone": "UTC"}), "timezone"),
        (json!({"goal": "x", "every_minutes": 5, "max_sessions_per_day": 0}), "max_sessions_per_day"),
        (json!({"goal": "x", "every_minutes": 5, "max_sessions_per_day": 10_001}), "max_sessions_per_day"),
        (json!({"goal": "x", "every_minutes": 5, "start_at": soon, "start_now": true}), "start_at"),
        (json!({"goal": "x", "every_minutes": 5, "start_at": "tomorrow"}), "start_at"),
        (json!({"goal": "x", "every_minutes": 5, "end_at": "2001-01-01T00:00:00Z"}), "end_at"),
        (json!({"goal": "x", "every_minutes": 5, "sensitive_data": {"pin": "1234"}}), "sensitive_data"),
        (json!({"goal": "x", "every_minutes": 5, "colour": "red"}), "colour"),
        (json!({"every_minutes": 5}), "goal"),
    ] {
        let (status, e) = error_of(app.post("/v1/schedules", body.clone()).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    for ok in [json!({"goal": "x", "every_minutes": 525_600}), json!({"goal": "x", "every_minutes": 1, "max_sessions_per_day": 10_000}),
               json!({"goal": "x", "every_minutes": 1, "max_sessions_per_day": 1})] {
        create(&app, ok).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn scheduled_sessions_report_to_the_schedules_webhook() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = got.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let s = create(&app, json!({"goal": "done:hooked", "every_minutes": 60, "start_now": true, "webhook_url": url})).await;
    assert!(s["webhook"]["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = s["id"].as_str().unwrap().to_owned();
    let session = until(&app, &id, "fired", 1).await["last_session_id"].as_str().unwrap().to_owned();
    app.finish(&session).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !got.lock().unwrap().iter().any(|m| m["type"] == "session.completed") {
        assert!(std::time::Instant::now() < deadline, "no completed webhook: {:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(got.lock().unwrap().iter().all(|m| m["data"]["session_id"] == session));
    app.shutdown().await;
}
