//! Health, metrics, the API description, graceful shutdown and the CLI.

use tokio::process::Command;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn healthz_metrics_openapi_and_docs() {
    let app = spawn_app().await;
    let s = app.create("emit:2; done").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "completed").await;
    let health: Value = app.http.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok", "store": true, "version": env!("CARGO_PKG_VERSION")}));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("agentd_sessions{status=\"completed\"} 1"), "{metrics}");
    assert!(metrics.contains("agentd_sessions{status=\"running\"} 0"));
    assert!(metrics.contains("agentd_events_appended_total 4"), "{metrics}");
    assert!(metrics.contains("agentd_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/sessions\",status=\"201\"} 1"), "{metrics}");
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/sessions", "/v1/sessions/{id}", "/v1/sessions/{id}/events", "/v1/sessions/{id}/ws", "/v1/sessions/{id}/input", "/v1/sessions/{id}/safety_checks/{check_id}", "/v1/sessions/cleanup", "/healthz", "/metrics"] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(spec["components"]["schemas"]["CreateSessionRequest"]["properties"]["goal"].is_object());
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("/v1/sessions/{id}/stop") && html.contains("CreateSessionRequest"));
    let (status, error) = error_of(app.http.put(app.url("/v1/sessions")).bearer_auth(&app.key).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (405, Some("method_not_allowed")));
    app.shutdown().await;
}

const METRICS_TOKEN: &str = "metrics-token-for-the-scraper-01";

#[tokio::test]
async fn metrics_need_an_api_key_or_the_metrics_token() {
    let app = spawn_with(|c| c.metrics_token = Some(agentd::config::Secret::new(METRICS_TOKEN))).await;
    let (status, error) = error_of(app.http.get(app.url("/metrics")).send().await.unwrap()).await;
    assert_eq!((status, error["type"].as_str()), (401, Some("authentication_error")), "{error}");
    let metrics = |auth: &'static str| {
        let request = app.http.get(app.url("/metrics"));
        async move { request.header("authorization", auth).send().await.unwrap() }
    };
    let by_token = metrics("Bearer metrics-token-for-the-scraper-01").await;
    assert_eq!(by_token.status(), 200);
    assert!(by_token.text().await.unwrap().contains("agentd_sessions{status=\"completed\"}"));
    for wrong in ["Bearer metrics-token-for-the-scraper-0", "Bearer metrics-token-for-the-scraper-012", "Basic bWV0cmljcw=="] {
        let (status, error) = error_of(metrics(wrong).await).await;
        assert_eq!(status, 401, "{wrong}");
        assert!(!error.to_string().contains(METRICS_TOKEN), "{error}");
    }
    assert_eq!(app.get("/metrics").await.status(), 200, "any valid API key reads them too");
    let other = app.other_project_key().await;
    assert_eq!(app.get_as(&other, "/metrics").await.status(), 200);
    assert_eq!(app.http.get(app.url("/metrics")).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 200);
    // Health stays open.
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.shutdown().await;

    // Without a token configured, a bearer that is no key is refused.
    let app = spawn_app().await;
    assert_eq!(app.get_as(METRICS_TOKEN, "/metrics").await.status(), 401);
    assert_eq!(app.get("/metrics").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_on_their_own_listener_are_not_on_the_api_port() {
    let app = spawn_with(|c| c.metrics_addr = Some("127.0.0.1:0".into())).await;
    let (status, error) = error_of(app.get("/metrics").await).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "{error}");
    let at = app.server.as_ref().unwrap().metrics_addr.expect("a metrics listener");
    assert_ne!(at.to_string(), app.base.trim_start_matches("http://"));
    let r = app.http.get(format!("http://{at}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "no key on the operator's own listener");
    assert!(r.text().await.unwrap().contains("agentd_events_appended_total"));
    assert_eq!(app.http.get(format!("http://{at}/v1/sessions")).bearer_auth(&app.key).send().await.unwrap().status(), 404, "only metrics there");
    assert_eq!(app.get("/v1/sessions").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_key_in_the_url_counts_only_on_streaming_routes() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let s = app.create("emit:1; done").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "completed").await;
    let r = app.post("/v1/tables", json!({"name": "ws", "columns": [{"name": "a", "type": "string"}]})).await;
    let table = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // Paths that merely end in /ws, another method on the WebSocket route, plain routes.
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/tables/ws".to_owned()),
        (reqwest::Method::DELETE, format!("/v1/tables/{table}")),
        (reqwest::Method::GET, "/v1/sessions".to_owned()),
        (reqwest::Method::GET, format!("/v1/sessions/{s}/events")),
    ] {
        let r = app.http.request(method.clone(), app.url(&format!("{path}?api_key={ADMIN_KEY}"))).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    assert_eq!(app.get(&format!("/v1/tables/{table}")).await.status(), 200, "the table is still there");
    // Another method on the WebSocket's route is not served at all.
    let r = app.http.delete(app.url(&format!("/v1/sessions/{s}/ws?api_key={ADMIN_KEY}"))).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(app.session(&s).await["id"], s.as_str(), "the session is still there");
    // The session's WebSocket takes it: the browser's WebSocket cannot send headers.
    let url = format!("{}/v1/sessions/{s}/ws?api_key={ADMIN_KEY}", app.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.into_client_request().unwrap()).await.expect("the WebSocket opens");
    let first = futures::StreamExt::next(&mut ws).await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"type\":\"event\""), "{first:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_settles_running_sessions_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_at(dir.path(), |c| c.max_concurrent_sessions = 1).await;
    let running = app.create("wait").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&running, "running").await;
    let queued = app.create("done:later").await["id"].as_str().unwrap().to_owned();
    assert_eq!(app.session(&queued).await["status"], "queued");
    // A live SSE subscriber is closed by the shutdown rather than holding it open.
    let sse = app.http.get(app.url(&format!("/v1/sessions/{running}/events"))).bearer_auth(&app.key).header("accept", "text/event-stream").send().await.unwrap();
    app.shutdown().await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), sse.text()).await.expect("stream closed").unwrap_or_default();
    assert!(body.contains("event: failed"), "{body}");

    let app = spawn_at(dir.path(), |_| {}).await;
    let settled = app.session(&running).await;
    assert_eq!(settled["status"], "failed");
    assert_eq!(app.wait_event(&running, "failed").await["data"]["reason"], "shutdown");
    assert_eq!(app.wait_status(&queued, "completed").await["response"], "later");
    app.shutdown().await;
}

async fn agentd(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(args)
        .env("AGENTD_DATA_DIR", dir)
        .env_remove("AGENTD_ADMIN_KEY")
        .output()
        .await
        .expect("agentd runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn cli_manages_keys_and_reads_sessions() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"], &["keys", "--help"], &["keys", "create", "--help"], &["sessions", "list", "--help"]] {
        let (ok, out, _) = agentd(dir.path(), args).await;
        assert!(ok && out.contains("Usage"), "{args:?}");
    }
    let (ok, secret, _) = agentd(dir.path(), &["keys", "create", "--name", "ci", "--tier", "free"]).await;
    assert!(ok);
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("agd_") && secret.len() == 44);
    let (ok, list, _) = agentd(dir.path(), &["keys", "list"]).await;
    assert!(ok && list.contains("ci") && list.contains(&secret[..8]) && !list.contains(&secret));
    let (ok, _, err) = agentd(dir.path(), &["keys", "create", "--tier", "gold"]).await;
    assert!(!ok && err.contains("--tier"), "{err}");
    let (ok, _, err) = agentd(dir.path(), &["keys", "revoke", "nope"]).await;
    assert!(!ok && err.contains("key id"), "{err}");
    let (ok, _, err) = agentd(dir.path(), &["serve", "--addr", "nowhere"]).await;
    assert!(!ok && err.contains("addr"), "{err}");
    let (ok, _, err) = agentd(dir.path(), &["serve", "--config", "/nonexistent.toml"]).await;
    assert!(!ok && err.contains("does not exist"), "{err}");

    let app = spawn_at(dir.path(), |_| {}).await;
    let s = app.create("done:cli").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "completed").await;
    let client = async |args: &[&str]| {
        let mut full = vec!["sessions", "--url", &app.base, "--api-key", &secret];
        full.extend_from_slice(args);
        agentd(dir.path(), &full).await
    };
    let (ok, out, err) = client(&["list"]).await;
    assert!(ok && out.contains(&s) && out.contains("completed"), "{out} {err}");
    let (ok, out, _) = client(&["show", &s]).await;
    assert!(ok && serde_json::from_str::<Value>(&out).unwrap()["response"] == "cli");
    let (ok, _, err) = client(&["stop", &s]).await;
    assert!(!ok && err.contains("409"), "{err}");

    let id = list.lines().find(|l| l.contains(" ci")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (ok, out, _) = agentd(dir.path(), &["keys", "revoke", &id]).await;
    assert!(ok && out.contains("revoked"));
    assert_eq!(app.get_as(&secret, "/v1/sessions").await.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn a_fresh_server_prints_its_first_key_once_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_agentd"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("AGENTD_DATA_DIR", dir)
            .env("AGENTD_LOG", "warn")
            .env_remove("AGENTD_ADMIN_KEY")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let read_until_listening = async |child: &mut tokio::process::Child| {
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("listening on");
            out.push(line);
            if done {
                break;
            }
        }
        out
    };
    let mut first = start(dir.path());
    let out = read_until_listening(&mut first).await;
    let key = out.iter().map(|l| l.trim()).find(|l| l.starts_with("agd_")).expect("the first key is printed").to_owned();
    let base = out.last().unwrap().split("listening on ").nth(1).unwrap().trim().to_owned();
    let http = crate::support::http_client();
    let r = http.get(format!("{base}/v1/sessions")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // SIGTERM: a graceful exit with status 0.
    let pid = first.id().unwrap().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), first.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    // The second start finds the key and prints none.
    let mut second = start(dir.path());
    let out = read_until_listening(&mut second).await;
    assert!(!out.iter().any(|l| l.contains("agd_")), "{out:?}");
    second.kill().await.unwrap();
}

#[tokio::test]
async fn a_revoked_admin_key_is_not_brought_back_and_chosen_keys_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_at(dir.path(), |_| {}).await;
    let keys = app.store().list_api_keys().await.unwrap();
    let admin = keys.iter().find(|k| k.name.contains("AGENTD_ADMIN_KEY")).unwrap().clone();
    assert!(admin.key_prefix.starts_with("sha:"), "a chosen key is shown by a hash fragment: {}", admin.key_prefix);
    assert!(!ADMIN_KEY.contains(&admin.key_prefix[4..]));
    app.store().revoke_api_key(admin.id, chrono::Utc::now()).await.unwrap();
    app.shutdown().await;
    let config = test_config(dir.path());
    let error = agentd::server::start(&config, registry()).await.err().expect("refused").to_string();
    assert!(error.contains("AGENTD_ADMIN_KEY") && error.contains("revoked"), "{error}");
}
