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

/// A request refused before its body was read (a bad key, a refused tier) leaves its connection
/// usable: the small body is read first, so the client's next request on the same connection is
/// answered instead of finding the connection closed under it.
#[tokio::test]
async fn a_refused_request_keeps_its_connection_for_the_next_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"goal":"done:x"}"#;
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-key\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body follows a moment later, as from a client on a slow or busy machine.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let second = read_response(&mut stream).await;
    assert!(second.starts_with("HTTP/1.1 200"), "the connection was kept: {second:?}");

    async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                    .unwrap_or(0);
                if rest.len() >= length {
                    return text;
                }
            }
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap_or(0);
            if n == 0 {
                return text;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
}
