//! Authentication, per-key rate limits and Idempotency-Key.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn keys_are_required_and_checked() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/v1/sessions")).send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!((status, error["type"].as_str()), (401, Some("authentication_error")));
    assert_eq!(app.get_as("agd_wrong", "/v1/sessions").await.status(), 401);
    let r = app.http.get(app.url("/v1/sessions")).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A key in the URL is accepted only where headers cannot be sent (WebSocket routes).
    let r = app.http.get(app.url(&format!("/v1/sessions?api_key={ADMIN_KEY}"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let key = app.key_in("default", None).await;
    assert_eq!(app.get_as(&key, "/v1/sessions").await.status(), 200);
    let record = app
        .store()
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.key_hash == agentd_api::auth::hash_key(&key))
        .unwrap();
    assert_ne!(record.key_hash, key, "stored hashed");
    app.store().revoke_api_key(record.id, chrono::Utc::now()).await.unwrap();
    assert_eq!(app.get_as(&key, "/v1/sessions").await.status(), 401);
    // Health and the API description need no key (metrics do: see ops.rs).
    for path in ["/healthz", "/openapi.json", "/docs"] {
        assert_eq!(app.http.get(app.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn per_minute_limit_allows_n_and_refuses_n_plus_one() {
    let app = spawn_app().await;
    let limited = app.key_in("default", Some(3)).await;
    for remaining in [2, 1, 0] {
        let r = app.get_as(&limited, "/v1/sessions").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit-minute"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining-minute"], remaining.to_string().as_str());
    }
    let r = app.get_as(&limited, "/v1/sessions").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.headers()["x-ratelimit-remaining-minute"], "0");
    let (_, error) = error_of(r).await;
    assert_eq!((error["code"].as_str(), error["type"].as_str()), (Some("rate_limited"), Some("rate_limit_error")));
    // Other keys are not affected; the admin key is unlimited and gets no limit headers.
    let r = app.get("/v1/sessions").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-ratelimit-limit-minute").is_none());
}

#[tokio::test]
async fn per_day_limits_come_from_the_tier_unless_the_key_overrides_them() {
    let app = spawn_with(|c| {
        c.tiers.insert("tiny".into(), agentd_api::auth::RateLimits { per_minute: Some(100), per_day: Some(2) });
    })
    .await;
    let req = agentd::keys::KeyRequest { project: "default".into(), name: "t".into(), tier: "tiny".into(), per_minute: None, per_day: None };
    let (key, _) = agentd::keys::create(app.store().as_ref(), &req).await.unwrap();
    let r = app.get_as(&key, "/v1/sessions").await;
    assert_eq!((r.headers()["x-ratelimit-limit-day"].to_str().unwrap(), r.headers()["x-ratelimit-remaining-day"].to_str().unwrap()), ("2", "1"));
    assert_eq!(r.headers()["x-ratelimit-limit-minute"], "100");
    assert_eq!(app.get_as(&key, "/v1/sessions").await.status(), 200);
    assert_eq!(app.get_as(&key, "/v1/sessions").await.status(), 429);
    let req = agentd::keys::KeyRequest { per_day: Some(5), ..req };
    let (wider, _) = agentd::keys::create(app.store().as_ref(), &req).await.unwrap();
    assert_eq!(app.get_as(&wider, "/v1/sessions").await.headers()["x-ratelimit-limit-day"], "5");
}

#[tokio::test]
async fn idempotency_key_replays_and_refuses_reuse() {
    let app = spawn_app().await;
    let post = |key: &'static str, body: Value| {
        app.http.post(app.url("/v1/sessions")).bearer_auth(&app.key).header("idempotency-key", key).json(&body).send()
    };
    let first = post("k-1", json!({"goal": "done"})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post("k-1", json!({"goal": "done"})).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the same resource");
    let page: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "one resource");
    let (status, error) = error_of(post("k-1", json!({"goal": "other"})).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (422, Some("idempotency_key_reused")));
    // Errors are final answers too: the same bad request replays its 400.
    let bad = post("k-2", json!({"goal": ""})).await.unwrap();
    assert_eq!(bad.status(), 400);
    let replay = post("k-2", json!({"goal": ""})).await.unwrap();
    assert_eq!((replay.status().as_u16(), replay.headers().contains_key("idempotent-replayed")), (400, true));
    // Keys are per project.
    let other = app.other_project_key().await;
    let r = app.http.post(app.url("/v1/sessions")).bearer_auth(&other).header("idempotency-key", "k-1").json(&json!({"goal": "done"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let theirs: Value = r.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);
    // Control commands are idempotent the same way.
    let s = app.create("wait").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "running").await;
    let stop = || app.http.post(app.url(&format!("/v1/sessions/{s}/stop"))).bearer_auth(&app.key).header("idempotency-key", "stop-1").send();
    assert_eq!(stop().await.unwrap().status(), 200);
    assert_eq!(stop().await.unwrap().status(), 200, "a retried stop replays success instead of 409");
    let (status, error) = error_of(app.http.post(app.url("/v1/sessions")).bearer_auth(&app.key).header("idempotency-key", "x".repeat(256)).json(&json!({"goal": "done"})).send().await.unwrap()).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("Idempotency-Key")));
    app.shutdown().await;
}
