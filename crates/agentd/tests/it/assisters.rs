//! The Assisters agent API (seed 001, SPECS §2 and the §5.2 checklist): `POST /v1/agent/run`
//! and `GET /v1/agent/stream` — parameters at N and N+1, keys and tiers, rate limits, the
//! error shape, the stream's framing, continuation, the headers on every answer — and the
//! vendor's own Python SDK against the server. Sessions run the scripted agent of
//! `support.rs` (its goal is its script), registered for research, chat and coding.

use std::collections::HashSet;
use std::time::Duration;

use agentd::keys::{self, KeyRequest};
use serde_json::{Value, json};

use crate::support::*;

/// A key of `tier` in the default project.
async fn key_of_tier(app: &TestApp, tier: &str, per_minute: Option<u64>) -> String {
    let req = KeyRequest { project: "default".into(), name: format!("{tier} key"), tier: tier.into(), per_minute, per_day: None };
    keys::create(app.store().as_ref(), &req).await.expect("key").0
}

async fn run_as(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url("/v1/agent/run")).bearer_auth(key).json(&body).send().await.expect("request")
}

async fn run(app: &TestApp, body: Value) -> reqwest::Response {
    run_as(app, &app.key, body).await
}

async fn stream_as(app: &TestApp, key: &str, query: &[(&str, &str)]) -> reqwest::Response {
    let request = app.http.get(app.url("/v1/agent/stream")).query(query).header("accept", "text/event-stream");
    request.bearer_auth(key).send().await.expect("request")
}

/// A 200 run's body.
async fn answer(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body
}

/// An error answer: (status, `error`), checking the documented shape exactly.
async fn refusal(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "errors are JSON, not a stream: {content_type}");
    let body: Value = response.json().await.expect("error body is JSON");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error"], "{body}");
    let error = body["error"].clone();
    let mut fields: Vec<&String> = error.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "message", "param", "type"], "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, error)
}

/// A stream read to its end: the payload of each `data:` line, after checking the framing
/// (one line per block: `data: ...` or a `:` keep-alive comment; nothing else).
async fn stream_payloads(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let text = tokio::time::timeout(Duration::from_secs(20), response.text()).await.expect("the stream ends").unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "the stream ends with [DONE]: {text:?}");
    let mut payloads = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        assert!(!block.contains('\n'), "one line per event: {block:?} in {text:?}");
        if block.starts_with(':') {
            continue;
        }
        let payload = block.strip_prefix("data: ").unwrap_or_else(|| panic!("only data: lines: {block:?} in {text:?}"));
        payloads.push(payload.to_owned());
    }
    assert_eq!(payloads.iter().filter(|p| *p == "[DONE]").count(), 1);
    payloads
}

/// The JSON events of a stream (everything before `[DONE]`).
fn events_of(payloads: &[String]) -> Vec<Value> {
    let (done, events) = payloads.split_last().unwrap();
    assert_eq!(done, "[DONE]");
    events.iter().map(|p| serde_json::from_str(p).expect("each event is JSON")).collect()
}

#[tokio::test]
async fn run_answers_with_the_answer_steps_and_sources_in_each_mode() {
    let app = spawn_app().await;
    let body = answer(run(&app, json!({"query": "emit:2;done:Recent RAG advances include..."})).await).await;
    assert_eq!(body["answer"], "Recent RAG advances include...");
    assert_eq!(body["steps"], json!([{"type": "step", "message": "step 0"}, {"type": "step", "message": "step 1"}]));
    assert_eq!((body["sources"].clone(), body["mode"].clone(), body["cycles"].clone()), (json!([]), json!("research"), json!(1)));
    // The session is an ordinary one: research by default, 5 cycles unless told.
    let session = app.session(body["sessionId"].as_str().unwrap()).await;
    assert_eq!((session["status"].as_str(), session["mode"].as_str(), session["max_cycles"].as_u64()), (Some("completed"), Some("research"), Some(5)));
    assert_eq!(session["goal"], "emit:2;done:Recent RAG advances include...");

    let body = answer(run(&app, json!({"query": "done:Hello", "mode": "chat"})).await).await;
    assert_eq!((body["answer"].as_str(), body["mode"].as_str(), body["steps"].clone()), (Some("Hello"), Some("chat"), json!([])));
    assert_eq!(app.session(body["sessionId"].as_str().unwrap()).await["max_cycles"], 1, "chat defaults to one cycle");
    // maxCycles at both ends of 1..8 (N) is accepted, as a number or as text.
    for (mode, cycles) in [("coding", json!(8)), ("research", json!(1)), ("chat", json!("8"))] {
        let body = answer(run(&app, json!({"query": "done:ok", "mode": mode, "maxCycles": cycles})).await).await;
        let session = app.session(body["sessionId"].as_str().unwrap()).await;
        assert_eq!((session["mode"].as_str(), session["max_cycles"].to_string()), (Some(mode), cycles.as_str().map_or(cycles.to_string(), str::to_owned)));
    }
}

#[tokio::test]
async fn bad_parameters_are_refused_with_the_parameter_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "missing_parameter", "query"),
        (json!({"query": ""}), "missing_parameter", "query"),
        (json!({"query": "   ", "mode": "chat"}), "missing_parameter", "query"),
        (json!({"query": 42}), "invalid_parameter", "query"),
        (json!({"query": "q", "mode": "robot"}), "invalid_parameter", "mode"),
        (json!({"query": "q", "mode": "browser"}), "invalid_parameter", "mode"),
        (json!({"query": "q", "maxCycles": 0}), "invalid_parameter", "maxCycles"),
        (json!({"query": "q", "maxCycles": 9}), "invalid_parameter", "maxCycles"),
        (json!({"query": "q", "mode": "chat", "maxCycles": -1}), "invalid_parameter", "maxCycles"),
        (json!({"query": "q", "maxCycles": "many"}), "invalid_parameter", "maxCycles"),
        (json!({"query": "q", "maxCycles": 2.5}), "invalid_parameter", "maxCycles"),
        (json!({"query": "x".repeat(20_001)}), "invalid_parameter", "query"),
    ];
    for (body, code, param) in cases {
        let (status, error) = refusal(run(&app, body.clone()).await).await;
        assert_eq!((status, error["type"].as_str(), error["code"].as_str(), error["param"].as_str()), (400, Some("invalid_request_error"), Some(code), Some(param)), "{body}: {error}");
    }
    let (status, error) = refusal(run(&app, json!({"query": "q", "maxCycles": 9})).await).await;
    assert_eq!((status, error["message"].as_str()), (400, Some("maxCycles must be between 1 and 8, got 9")));
    // Not JSON, or not an object.
    for raw in ["{", "[1, 2]"] {
        let r = app.http.post(app.url("/v1/agent/run")).bearer_auth(&app.key).header("content-type", "application/json").body(raw).send().await.unwrap();
        let (status, error) = refusal(r).await;
        assert_eq!((status, error["code"].as_str(), error["param"].clone()), (400, Some("invalid_request"), Value::Null), "{raw}");
    }
    // The stream refuses the same way, before it starts.
    type Query<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Query, &str, &str); 5] = [
        (&[], "missing_parameter", "query"),
        (&[("query", "")], "missing_parameter", "query"),
        (&[("query", "q"), ("mode", "robot")], "invalid_parameter", "mode"),
        (&[("query", "q"), ("maxCycles", "0")], "invalid_parameter", "maxCycles"),
        (&[("query", "q"), ("maxCycles", "9")], "invalid_parameter", "maxCycles"),
    ];
    for (query, code, param) in cases {
        let (status, error) = refusal(stream_as(&app, &app.key, query).await).await;
        assert_eq!((status, error["code"].as_str(), error["param"].as_str()), (400, Some(code), Some(param)), "{query:?}");
    }
    // Nothing was created by a refused request.
    let page: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"], json!([]));
}

#[tokio::test]
async fn keys_are_checked_and_tiers_below_max_get_403() {
    let app = spawn_app().await;
    let (status, error) = refusal(app.http.post(app.url("/v1/agent/run")).json(&json!({"query": "done:x"})).send().await.unwrap()).await;
    assert_eq!((status, error["type"].as_str(), error["code"].as_str()), (401, Some("authentication_error"), Some("invalid_api_key")));
    let (status, error) = refusal(run_as(&app, "agd_wrong", json!({"query": "done:x"})).await).await;
    assert_eq!((status, error["type"].as_str(), error["code"].as_str()), (401, Some("authentication_error"), Some("invalid_api_key")));
    let (status, _) = refusal(stream_as(&app, "agd_wrong", &[("query", "done:x")]).await).await;
    assert_eq!(status, 401);
    // A key below the Max tier: the documented 403, on both routes, before the parameters.
    for tier in ["free", "standard"] {
        let key = key_of_tier(&app, tier, None).await;
        let expected = json!({"message": "Agent endpoints require the Max tier", "type": "permission_error", "code": "tier_required", "param": null});
        let (status, error) = refusal(run_as(&app, &key, json!({"query": "done:x"})).await).await;
        assert_eq!((status, error), (403, expected.clone()));
        let (status, error) = refusal(stream_as(&app, &key, &[("query", "done:x")]).await).await;
        assert_eq!((status, error), (403, expected.clone()));
        let (status, error) = refusal(run_as(&app, &key, json!({})).await).await;
        assert_eq!((status, error), (403, expected));
        // The native API still serves that key.
        assert_eq!(app.get_as(&key, "/v1/sessions").await.status(), 200);
    }
    let max = key_of_tier(&app, "max", None).await;
    assert_eq!(answer(run_as(&app, &max, json!({"query": "done:x"})).await).await["answer"], "x");
}

#[tokio::test]
async fn the_tiers_allowed_are_configurable() {
    let app = spawn_with(|c| c.assisters_agent_tiers = vec!["standard".into()]).await;
    let standard = key_of_tier(&app, "standard", None).await;
    assert_eq!(answer(run_as(&app, &standard, json!({"query": "done:x"})).await).await["answer"], "x");
    let (status, error) = refusal(run(&app, json!({"query": "done:x"})).await).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("tier_required")), "the admin key's tier is no longer listed");
}

#[tokio::test]
async fn rate_limits_give_rpm_headers_and_429_with_retry_after() {
    let app = spawn_app().await;
    let key = key_of_tier(&app, "max", Some(2)).await;
    let first = run_as(&app, &key, json!({"query": "done:x"})).await;
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!((header(&first, "x-ratelimit-limit-rpm"), header(&first, "x-ratelimit-remaining-rpm")), (Some("2".into()), Some("1".into())));
    assert_eq!((header(&first, "x-ratelimit-limit-minute"), header(&first, "x-ratelimit-limit-day")), (Some("2".into()), Some("200000".into())), "agentd's own headers too");
    answer(first).await;
    // A refusal after admission carries them too.
    let second = stream_as(&app, &key, &[("query", "q"), ("mode", "robot")]).await;
    assert_eq!(header(&second, "x-ratelimit-remaining-rpm").as_deref(), Some("0"));
    refusal(second).await;
    let limited = run_as(&app, &key, json!({"query": "done:x"})).await;
    let retry: u64 = header(&limited, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&limited, "x-ratelimit-remaining-rpm").as_deref(), Some("0"));
    let reset: i64 = header(&limited, "x-ratelimit-reset-rpm").expect("reset").parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now..=now + 61).contains(&reset), "reset {reset} is a unix time within the minute (now {now})");
    let (status, error) = refusal(limited).await;
    assert_eq!((status, error["type"].as_str(), error["code"].as_str()), (429, Some("rate_limit_error"), Some("rate_limit_exceeded")));
    assert_eq!(error["message"], format!("Rate limit exceeded. Please retry after {retry} seconds."));
    let (status, _) = refusal(stream_as(&app, &key, &[("query", "done:x")]).await).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn every_answer_has_a_fresh_request_id() {
    let app = spawn_app().await;
    let free = key_of_tier(&app, "free", None).await;
    let responses = vec![
        run(&app, json!({"query": "done:x"})).await,
        stream_as(&app, &app.key, &[("query", "done:x")]).await,
        run(&app, json!({})).await,
        run_as(&app, "agd_wrong", json!({"query": "done:x"})).await,
        run_as(&app, &free, json!({"query": "done:x"})).await,
        run(&app, json!({"query": "done:x", "sessionId": "nope"})).await,
        app.http.get(app.url("/v1/agent/run")).bearer_auth(&app.key).send().await.unwrap(),
        app.http.head(app.url("/v1/agent/stream?query=done:x")).bearer_auth(&app.key).send().await.unwrap(),
    ];
    // The admin key is unlimited: its limits read as the largest value, never as missing.
    for (i, r) in responses[..2].iter().enumerate() {
        for name in ["x-ratelimit-limit-rpm", "x-ratelimit-remaining-rpm", "x-ratelimit-reset-rpm", "x-ratelimit-limit-tpm", "x-ratelimit-remaining-tpm"] {
            assert!(r.headers().get(name).is_some(), "response {i} lacks {name}");
        }
        assert_eq!(r.headers()["x-ratelimit-limit-rpm"], "4294967295");
    }
    let mut ids = HashSet::new();
    let mut statuses = Vec::new();
    for r in &responses {
        let id = r.headers().get("x-request-id").expect("X-Request-ID").to_str().unwrap().to_owned();
        assert!(id.starts_with("req_") && id.len() == 36, "{id}");
        assert!(ids.insert(id), "request ids are fresh");
        let ms: u64 = r.headers()["x-processing-time-ms"].to_str().unwrap().parse().unwrap();
        assert!(ms < 60_000);
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 400, 401, 403, 404, 405, 405]);
    let (_, error) = refusal(responses.into_iter().nth(6).unwrap()).await;
    assert_eq!(error["code"], "method_not_allowed");
}

#[tokio::test]
async fn stream_is_data_lines_with_steps_then_done_then_the_end_marker() {
    let app = spawn_app().await;
    let response = stream_as(&app, &app.key, &[("query", "emit:3;done:Recent RAG advances include..."), ("mode", "research")]).await;
    assert!(response.headers().contains_key("x-request-id"));
    let events = events_of(&stream_payloads(response).await);
    let steps: Vec<Value> = (0..3).map(|i| json!({"type": "step", "message": format!("step {i}")})).collect();
    assert_eq!(events[..3], steps[..]);
    assert_eq!(events.len(), 4, "{events:?}");
    let done = &events[3];
    assert_eq!((done["type"].as_str(), done["answer"].as_str()), (Some("done"), Some("Recent RAG advances include...")));
    assert_eq!((done["sources"].clone(), done["steps"].clone()), (json!([]), json!(steps)));
    let session = app.session(done["sessionId"].as_str().unwrap()).await;
    assert_eq!((session["status"].as_str(), session["max_cycles"].as_u64()), (Some("completed"), Some(5)));
    // The SDK sends maxCycles as text.
    let response = stream_as(&app, &app.key, &[("query", "done:hi"), ("mode", "chat"), ("maxCycles", "1")]).await;
    let events = events_of(&stream_payloads(response).await);
    assert_eq!((events.len(), events[0]["answer"].as_str()), (1, Some("hi")));
}

#[tokio::test]
async fn a_failing_session_ends_the_run_and_the_stream_with_an_error() {
    let app = spawn_app().await;
    let (status, error) = refusal(run(&app, json!({"query": "emit:1;fail:the model refused"})).await).await;
    assert_eq!((status, error["type"].as_str(), error["code"].as_str(), error["message"].as_str()), (500, Some("server_error"), Some("agent_failed"), Some("the model refused")));
    let events = events_of(&stream_payloads(stream_as(&app, &app.key, &[("query", "emit:1;fail:boom")]).await).await);
    assert_eq!(events[0], json!({"type": "step", "message": "step 0"}));
    let error = &events[1];
    assert_eq!(events.len(), 2);
    assert_eq!((error["type"].as_str(), error["message"].as_str()), (Some("error"), Some("boom")));
    assert_eq!(error["error"], json!({"message": "boom", "type": "server_error", "code": "agent_failed"}));
    // Stopped by a person (native API) while the run waits: 409, not a 5xx the SDK would retry.
    let waiting = tokio::spawn({
        let (http, url, key) = (app.http.clone(), app.url("/v1/agent/run"), app.key.clone());
        async move { http.post(url).bearer_auth(key).json(&json!({"query": "wait"})).send().await.unwrap() }
    });
    let id = newest_session(&app, "wait").await;
    app.wait_status(&id, "running").await;
    assert_eq!(app.post(format!("/v1/sessions/{id}/stop"), json!({})).await.status(), 200);
    let (status, error) = refusal(waiting.await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("session_stopped")));
}

/// The id of the newest session whose goal is `goal` (waits for it to exist).
async fn newest_session(app: &TestApp, goal: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page: Value = app.get("/v1/sessions?limit=100").await.json().await.unwrap();
        if let Some(s) = page["data"].as_array().unwrap().iter().find(|s| s["goal"] == goal) {
            return s["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no session `{goal}`");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_the_session_running() {
    let app = spawn_app().await;
    let impatient = app.http.post(app.url("/v1/agent/run")).bearer_auth(&app.key).json(&json!({"query": "sleep:400;done:late"}));
    assert!(impatient.timeout(Duration::from_millis(100)).send().await.is_err(), "the client gives up first");
    let id = newest_session(&app, "sleep:400;done:late").await;
    assert_eq!(app.finish(&id).await["response"], "late");
    let mut stream = stream_as(&app, &app.key, &[("query", "emit:1;sleep:400;done:later")]).await;
    assert!(stream.chunk().await.unwrap().is_some());
    drop(stream);
    let id = newest_session(&app, "emit:1;sleep:400;done:later").await;
    assert_eq!(app.finish(&id).await["response"], "later");
}

#[tokio::test]
async fn a_follow_up_names_the_earlier_session_and_unknown_ones_are_404() {
    let app = spawn_app().await;
    let first = answer(run(&app, json!({"query": "done:Paris is the capital"})).await).await;
    let earlier = first["sessionId"].as_str().unwrap();
    let second = answer(run(&app, json!({"query": "done:About 2 million people", "sessionId": earlier})).await).await;
    assert_eq!(second["sessionId"], first["sessionId"], "sessionId names the conversation: it round-trips");
    assert_eq!(second["answer"], "About 2 million people");
    // The stream takes it too, and its done event names the same conversation.
    let events = events_of(&stream_payloads(stream_as(&app, &app.key, &[("query", "done:more"), ("sessionId", earlier)]).await).await);
    assert_eq!(events[0]["type"], "done");
    assert_eq!(events[0]["sessionId"].as_str(), Some(earlier));
    let other_project = app.other_project_key().await;
    let foreign = answer(run_as(&app, &other_project, json!({"query": "done:theirs"})).await).await;
    for unknown in ["0190b0d0-0000-7000-8000-000000000000", "not-an-id", foreign["sessionId"].as_str().unwrap()] {
        let (status, error) = refusal(run(&app, json!({"query": "done:x", "sessionId": unknown})).await).await;
        assert_eq!((status, error["type"].as_str(), error["param"].as_str()), (404, Some("not_found_error"), Some("sessionId")), "{unknown}");
        let (status, _) = refusal(stream_as(&app, &app.key, &[("query", "done:x"), ("sessionId", unknown)]).await).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn the_official_python_sdk_runs_and_streams_against_agentd() {
    let app = spawn_app().await;
    let free = key_of_tier(&app, "free", None).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/assisters_sdk.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &app.base, &app.key, &free])
        .output()
        .await
        .expect("python3 runs (scripts/test.sh installs what the tests need)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'assisters'"),
        "the Assisters Python SDK is not installed: run scripts/test.sh, or `python3 -m pip install assisters==0.1.0`\n{stderr}"
    );
    assert!(output.status.success(), "the SDK script failed:\n{stderr}");
    let out: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(out["sdk_version"], "0.1.0");
    let run = &out["run"];
    assert_eq!((run["answer"].as_str(), run["mode"].as_str(), run["sources"].clone()), (Some("The answer from the SDK"), Some("research"), json!([])));
    assert_eq!(run["steps"].as_array().unwrap().len(), 2);
    assert_eq!(app.session(run["sessionId"].as_str().unwrap()).await["max_cycles"], 3);
    assert_eq!(out["follow_up"]["answer"], "A follow-up");
    assert_eq!((out["chat"]["answer"].as_str(), out["chat"]["mode"].as_str()), (Some("Hi"), Some("chat")));
    let stream = out["stream"].as_array().unwrap();
    assert_eq!(stream.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(), ["step", "step", "step", "done"]);
    assert_eq!(stream[3]["answer"], "Streamed answer");
    assert_eq!(app.session(stream[3]["sessionId"].as_str().unwrap()).await["max_cycles"], 8, "maxCycles sent as text");
    let failure = out["stream_failure"].as_array().unwrap();
    assert_eq!((failure.len(), failure[1]["type"].as_str(), failure[1]["message"].as_str()), (2, Some("error"), Some("boom")));
    let error = |name: &str| (out[name]["class"].as_str().unwrap().to_owned(), out[name]["status"].as_u64().unwrap(), out[name]["type"].as_str().unwrap().to_owned());
    assert_eq!(error("bad_key"), ("AuthError".into(), 401, "authentication_error".into()));
    assert_eq!(error("free_run"), ("AuthError".into(), 403, "permission_error".into()));
    assert_eq!(error("free_stream"), ("AuthError".into(), 403, "permission_error".into()));
    assert_eq!(error("empty_query"), ("AssistersAPIError".into(), 400, "invalid_request_error".into()));
    assert_eq!(error("bad_cycles"), ("AssistersAPIError".into(), 400, "invalid_request_error".into()));
    assert_eq!(error("unknown_session"), ("NotFoundError".into(), 404, "not_found_error".into()));
    assert_eq!(error("failed_run"), ("AssistersAPIError".into(), 500, "server_error".into()));
    assert_eq!(out["failed_run"]["message"], "the agent broke");
    assert_eq!(out["free_run"]["message"], "Agent endpoints require the Max tier");
}
