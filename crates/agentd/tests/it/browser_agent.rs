//! The browser agent end to end: `POST /v1/sessions` on the real server, real Chromium on the
//! fixture site, and a scripted OpenAI-compatible LLM on loopback that answers by reading the
//! prompt (as a model would) and records every request.

use std::time::Duration;

use agentd_testllm::{Reply, ScriptedLlm};
use serde_json::{Value, json};

use crate::support::{TestApp, call, done, error_of, index_of, reasoned, spawn_agents};

struct World {
    app: TestApp,
    llm: ScriptedLlm,
    site: String,
}

async fn world() -> World {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    World { app, llm, site }
}

impl World {
    async fn start(&self, body: Value) -> String {
        self.app.create_with(body).await["id"].as_str().unwrap().to_owned()
    }

    async fn finish(&self, id: &str) -> Value {
        self.app.finish(id).await
    }

    async fn resolve_check(&self, id: &str, confirm: bool) -> Value {
        self.app.resolve_check(id, confirm).await
    }

    async fn of_type(&self, id: &str, kind: &str) -> Vec<Value> {
        self.app.events_of(id, kind).await
    }
}

#[tokio::test]
async fn fills_and_submits_a_form() {
    let w = world().await;
    // One step chains two actions on the same page: choose a size, then submit.
    w.llm.push_with(|r| {
        reasoned(
            "the form needs a size",
            vec![call("check", json!({"index": index_of(r, "radio \"Small\""), "checked": true})), call("click", json!({"index": index_of(r, "\"Submit form\"")}))],
        )
    });
    w.llm.push_with(|r| if r.text().contains("size=s") { done("submitted with size s") } else { done("not submitted") });
    let id = w.start(json!({"goal": "Submit the form with the small size", "start_url": format!("{}form", w.site)})).await;
    // The form holds a password: submitting it waits for a person's confirmation.
    let check = w.resolve_check(&id, true).await;
    assert_eq!(check["code"], "sensitive_form");
    assert!(check["message"].as_str().unwrap().contains("password"), "{check}");
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response"], "submitted with size s");
    assert_eq!(session["response_type"], "STRING");

    let thoughts = w.of_type(&id, "thought").await;
    assert_eq!(thoughts.len(), 2);
    assert_eq!(thoughts[0]["thought"], "the form needs a size");
    assert_eq!(thoughts[0]["memory"], "working on it");
    assert!(thoughts[0]["observe_ms"].as_f64().unwrap() > 0.0);
    let actions = w.of_type(&id, "action").await;
    let names: Vec<&str> = actions.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["navigate", "check", "click"], "{actions:?}");
    assert!(actions.iter().all(|a| a["ok"] == true && a["elapsed_ms"].as_f64().is_some() && a["description"].as_str().is_some()));

    // The model was asked with the tools, the goal and the page, and told the step's outcome.
    let requests = w.llm.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert_eq!(first["model"], "scripted-model");
    let tools: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    for tool in ["click", "type", "navigate", "done", "request_user_input", "request_permission"] {
        assert!(tools.contains(&tool), "{tool} missing from {tools:?}");
    }
    assert!(requests[0].text().contains("Goal: Submit the form with the small size"));
    assert!(requests[1].text().contains("check: "), "{}", requests[1].text());

    // Usage and cost reached the session and its terminal event.
    assert!(session["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let completed = w.of_type(&id, "completed").await;
    assert!(completed[0]["usage"]["input_tokens"].as_u64().unwrap() > 0, "{completed:?}");

    // Every observe and action was timed into /metrics too.
    let metrics = w.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("agentd_browser_observe_seconds_count"), "{metrics}");
    assert!(metrics.contains("agentd_browser_action_seconds_count{action=\"click\",outcome=\"ok\"} 1"), "{metrics}");
}

#[tokio::test]
async fn searches_a_list_and_answers_json_matching_the_schema() {
    let w = world().await;
    w.llm.push_with(|r| reasoned("search the list", vec![call("type", json!({"index": index_of(r, "Search products"), "text": "kettle"}))]));
    // A first answer that does not match the schema is refused and the model is told why.
    w.llm.push(Reply::tool_call("done", json!({"response": "{\"name\": \"Red Kettle\"}", "type": "JSON"})));
    w.llm.push_with(|r| {
        let text = r.text();
        assert!(text.contains("does not match the schema"), "the refusal reached the model: {text}");
        // The price is the first `$` after the product's link in the page state.
        let after = &text[text.find("\"Red Kettle\"").unwrap_or_else(|| panic!("no Red Kettle in the prompt:\n{text}"))..];
        let price: f64 = after
            .split('$')
            .nth(1)
            .and_then(|p| p.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no price after the Red Kettle in the prompt:\n{text}"));
        Reply::tool_call("done", json!({"response": {"name": "Red Kettle", "price": price}}))
    });
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "price": {"type": "number"}}, "required": ["name", "price"]});
    let id = w
        .start(json!({"goal": "Find the price of the red kettle", "start_url": format!("{}products", w.site), "output_schema": schema}))
        .await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response_type"], "JSON");
    assert_eq!(session["response"]["name"], "Red Kettle");
    assert!(session["response"]["price"].as_f64().unwrap() > 0.0);
    assert!(w.llm.requests()[0].text().contains("matching this JSON schema"));
}

#[tokio::test]
async fn asks_the_user_for_input_and_continues_with_it() {
    let w = world().await;
    w.llm.push(reasoned("I need the email", vec![call("request_user_input", json!({"field_name": "email", "reason": "to fill the form"}))]));
    w.llm.push_with(|r| {
        assert!(r.text().contains("The user's answer for email: ada@example.org"), "{}", r.text());
        reasoned("fill it in", vec![call("type", json!({"index": index_of(r, "Email address"), "text": "ada@example.org"}))])
    });
    w.llm.push_with(|r| {
        let line = r.text().lines().find(|l| l.contains("Email address")).unwrap_or_default().to_owned();
        done(&format!("email field: {line}"))
    });
    let id = w.start(json!({"goal": "Fill in my email", "start_url": format!("{}form", w.site)})).await;
    let asked = w.app.wait_event(&id, "input_requested").await;
    assert_eq!(asked["data"]["field_name"], "email");
    assert_eq!(w.app.session(&id).await["status"], "waiting");
    let r = w.app.post(format!("/v1/sessions/{id}/input"), json!({"text": "ada@example.org"})).await;
    assert!(r.status().is_success());
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    // Read back from the page: the field holds what the user gave.
    assert!(session["response"].as_str().unwrap().contains("ada@example.org"), "{session}");
}

#[tokio::test]
async fn a_denied_permission_is_handed_to_the_model() {
    let w = world().await;
    w.llm.push(reasoned("buying needs consent", vec![call("request_permission", json!({"reason": "place the order"}))]));
    w.llm.push_with(|r| {
        assert!(r.text().contains("DENIED permission for: place the order"), "{}", r.text());
        done("the user declined the order")
    });
    let id = w.start(json!({"goal": "Order a kettle", "start_url": format!("{}products", w.site)})).await;
    w.app.wait_event(&id, "input_requested").await;
    let r = w.app.post(format!("/v1/sessions/{id}/input"), json!({"granted": false})).await;
    assert!(r.status().is_success());
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed");
    assert_eq!(session["response"], "the user declined the order");
}

#[tokio::test]
async fn max_actions_ends_the_session() {
    let w = world().await;
    w.llm.set_fallback(Reply::tool_call("scroll", json!({"pages": 1})));
    let id = w.start(json!({"goal": "Read everything", "start_url": format!("{}article", w.site), "max_actions": 2})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "failed");
    assert!(session["error"].as_str().unwrap().contains("2 actions"), "{session}");
    let scrolls = w.of_type(&id, "action").await.into_iter().filter(|a| a["name"] == "scroll").count();
    assert_eq!(scrolls, 2, "exactly max_actions actions ran");
    let failed = w.of_type(&id, "failed").await;
    assert_eq!(failed[0]["reason"], "max_actions", "{failed:?}");
}

#[tokio::test]
async fn a_failed_action_is_reported_and_the_agent_recovers() {
    let w = world().await;
    w.llm.push(reasoned("click something", vec![call("click", json!({"index": 9999}))]));
    w.llm.push_with(|r| {
        assert!(r.text().contains("FAILED"), "{}", r.text());
        done("recovered")
    });
    let id = w.start(json!({"goal": "Try", "start_url": format!("{}form", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    let failed: Vec<Value> = w.of_type(&id, "action").await.into_iter().filter(|a| a["ok"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains("9999"), "{failed:?}");
}

#[tokio::test]
async fn repeated_failures_end_the_session() {
    let w = world().await;
    w.llm.set_fallback(Reply::tool_call("click", json!({"index": 9999})));
    let id = w.start(json!({"goal": "Try", "start_url": format!("{}form", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "failed");
    assert_eq!(w.of_type(&id, "failed").await[0]["reason"], "repeated_failures");
}

#[tokio::test]
async fn a_looping_agent_is_nudged_then_stopped() {
    let w = world().await;
    for _ in 0..6 {
        w.llm.push_with(|r| Reply::tool_call("hover", json!({"index": index_of(r, "\"Add one\"")})));
    }
    let id = w.start(json!({"goal": "Loop", "start_url": format!("{}actions", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(w.of_type(&id, "failed").await[0]["reason"], "loop");
    assert!(w.llm.requests().iter().any(|r| r.text().contains("Do something else")), "the model was nudged first");
}

#[tokio::test]
async fn leaving_the_allowed_domains_waits_for_a_person() {
    let w = world().await;
    let elsewhere = w.site.replace("127.0.0.1", "localhost");
    let body = json!({"goal": "Go elsewhere", "start_url": format!("{}form", w.site), "allowed_domains": ["127.0.0.1"]});

    // Confirmed: the navigation runs, after the confirmation and not before.
    w.llm.push(Reply::tool_call("navigate", json!({"url": format!("{elsewhere}article")})));
    w.llm.push_with(|r| done(if r.text().contains("URL: http://localhost") { "arrived" } else { "not there" }));
    let id = w.start(body.clone()).await;
    let check = w.resolve_check(&id, true).await;
    assert_eq!(check["code"], "domain_not_allowed");
    assert!(check["message"].as_str().unwrap().contains("localhost"), "{check}");
    let session = w.finish(&id).await;
    assert_eq!(session["response"], "arrived", "{session}");

    // Denied: the session stops, and the page never left.
    w.llm.push(Reply::tool_call("navigate", json!({"url": format!("{elsewhere}article")})));
    let id = w.start(body).await;
    let pending = w.app.wait_event(&id, "safety_check_pending").await;
    let navigations = w.of_type(&id, "action").await.into_iter().filter(|a| a["name"] == "navigate").count();
    assert_eq!(navigations, 1, "only the start page was opened while the check is pending");
    let check = pending["data"]["check_id"].as_str().unwrap();
    w.app.post(format!("/v1/sessions/{id}/safety_checks/{check}"), json!({"confirm": false})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "stopped", "{session}");
    let navigations = w.of_type(&id, "action").await.into_iter().filter(|a| a["name"] == "navigate").count();
    assert_eq!(navigations, 1);
}

#[tokio::test]
async fn downloads_and_flagged_steps_are_confirmed_first() {
    let w = world().await;
    w.llm.push_with(|r| Reply::tool_call("click", json!({"index": index_of(r, "Save the notes")})));
    w.llm.push_with(|r| Reply::tool_call("click", json!({"index": index_of(r, "Download the report"), "sensitive": "the user should agree to files"})));
    // Then it waits until it is told that the files arrived (downloads finish on their own time).
    for i in 1..=8 {
        let llm = w.llm.clone();
        w.llm.push_with(move |_| {
            let told = |r: &agentd_testllm::Recorded| r.text().contains("The file meeting-notes.txt (21 bytes) was downloaded");
            if llm.requests().iter().any(told) {
                done("both")
            } else {
                Reply::tool_call("wait", json!({"for": "text", "value": "Download", "timeout_ms": 100 * i}))
            }
        });
    }
    let id = w.start(json!({"goal": "Get the files", "start_url": format!("{}download", w.site)})).await;
    let first = w.resolve_check(&id, true).await;
    assert_eq!(first["code"], "download");
    // The second check comes after the first download ran.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let second = loop {
        let checks = w.of_type(&id, "safety_check_pending").await;
        if checks.len() == 2 {
            break checks[1].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no second safety check");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(second["code"], "model_flagged");
    assert!(second["message"].as_str().unwrap().contains("the user should agree to files"));
    let check = second["check_id"].as_str().unwrap();
    w.app.post(format!("/v1/sessions/{id}/safety_checks/{check}"), json!({"confirm": true})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response"], "both", "the model was told the files arrived");
}

#[tokio::test]
async fn a_script_that_leaves_the_allowed_domains_is_undone() {
    let w = world().await;
    w.llm.push_with(|r| Reply::tool_call("click", json!({"index": index_of(r, "Elsewhere")})));
    w.llm.push_with(|r| done(if r.text().contains("URL: http://127.0.0.1") { "back home" } else { "away" }));
    let id = w.start(json!({"goal": "Stay", "start_url": format!("{}desk", w.site), "allowed_domains": ["127.0.0.1"]})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["response"], "back home", "{session}");
    let actions = w.of_type(&id, "action").await;
    assert_eq!(actions[1]["ok"], false, "{actions:?}");
    assert!(actions[1]["error"].as_str().unwrap().contains("localhost, outside the allowed domains; went back"), "{actions:?}");
    assert!(w.llm.requests()[1].text().contains("outside the allowed domains"));
}

#[tokio::test]
async fn the_model_hears_of_the_dialogs_the_page_opened() {
    let w = world().await;
    w.llm.push_with(|r| Reply::tool_call("click", json!({"index": index_of(r, "Alert")})));
    w.llm.push_with(|r| done(if r.text().contains("alert dialog saying \"Saved!\"; it was accepted") { "heard" } else { "missed" }));
    let id = w.start(json!({"goal": "Save", "start_url": format!("{}dialogs", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["response"], "heard", "{session}");
    let logs = w.of_type(&id, "log").await;
    assert!(logs.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("Saved!"))), "{logs:?}");
}

#[tokio::test]
async fn a_rate_limited_llm_is_ridden_out() {
    let w = world().await;
    w.llm.push(Reply::Error { status: 429, retry_after: Some("1".into()), message: "slow down".into() });
    w.llm.push(done("after the wait"));
    let id = w.start(json!({"goal": "Wait", "start_url": format!("{}form", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    let requests = w.llm.requests();
    assert_eq!(requests.len(), 2, "one retry");
}

#[tokio::test]
async fn sessions_are_refused_without_a_provider() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(dir.path());
    config.browser_warm_contexts = 0;
    let server = agentd::server::start_builtin(&config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let response = crate::support::http_client()
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({"goal": "anything", "start_url": "http://127.0.0.1:9/"}))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("AGENTD_LLM_BASE_URL") && message.contains("ANTHROPIC_API_KEY"), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_anthropic_model_drives_the_same_agent() {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let app = spawn_agents(&llm.anthropic_base_url(), |config| config.llm_provider = "anthropic".into()).await;
    let w = World { app, llm, site };
    w.llm.push_with(|r| reasoned("search the list", vec![call("type", json!({"index": index_of(r, "Search products"), "text": "kettle", "enter": true}))]));
    w.llm.push_with(|r| {
        let found = r.text().contains("Red Kettle");
        Reply::tool_call("done", json!({"response": if found { "Red Kettle" } else { "nothing" }}))
    });
    let id = w.start(json!({"goal": "Find the kettle", "start_url": format!("{}products", w.site)})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response"], "Red Kettle");
    let requests = w.llm.requests();
    assert!(requests.iter().all(|r| r.path == "/v1/messages"));
    let first = &requests[0].body;
    assert_eq!(first["tool_choice"], json!({"type": "any"}));
    assert!(first["tools"].as_array().unwrap().iter().any(|t| t["name"] == "click" && t["input_schema"].is_object()));
    assert!(first["system"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(requests[0].header("x-api-key"), Some("sk-test-key"));
    // The tool result of the first step is in the second request's page history.
    assert!(requests[1].text().contains("type"), "{}", requests[1].text());
    assert!(session["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_secret_never_leaves_the_page() {
    const CANARY: &str = "canary-7f3a9c-do-not-leak";
    let w = world().await;
    w.llm.push_with(|r| {
        assert!(r.text().contains("<secret>note</secret>"), "the model is told the placeholder: {}", r.text());
        reasoned("type the secret note", vec![call("type", json!({"index": index_of(r, "Your message"), "text": "<secret>note</secret>"}))])
    });
    // The page now holds the value; the model sees only the placeholder in its place.
    w.llm.push_with(|r| {
        let line = r.text().lines().find(|l| l.trim_start().starts_with('[') && l.contains("Your message")).unwrap_or_default().to_owned();
        assert!(line.contains("<secret>note</secret>"), "the typed value shows as its placeholder: {line}");
        done("typed")
    });
    let id = w
        .start(json!({"goal": "Leave the note", "start_url": format!("{}form", w.site), "sensitive_data": {"note": CANARY}}))
        .await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["secret_names"], json!(["note"]));
    assert!(!session.to_string().contains(CANARY));
    for request in w.llm.requests() {
        assert!(!request.raw().contains(CANARY), "an LLM request carried the secret");
    }
    let events = serde_json::to_string(&w.app.events(&id).await).unwrap();
    assert!(!events.contains(CANARY), "an event carried the secret");
    assert!(events.contains("<secret>note</secret>"), "the action event names the placeholder");
    // Nothing in the data directory (database, WAL) holds the value in clear.
    let dir = w.app.dir.as_ref().unwrap().path().to_path_buf();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        assert!(!bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()), "{} holds the secret", entry.path().display());
    }
}

#[tokio::test]
async fn bad_sensitive_data_is_refused_without_echoing_it() {
    let w = world().await;
    let too_many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let fifty: serde_json::Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"goal": "x", "sensitive_data": too_many}), "sensitive_data"),
        (json!({"goal": "x", "sensitive_data": {"bad name": "v"}}), "sensitive_data"),
        (json!({"goal": "x", "sensitive_data": {"pin": 1234}}), "sensitive_data.pin"),
        (json!({"goal": "x", "sensitive_data": {"pin": "x".repeat(4097)}}), "sensitive_data.pin"),
    ];
    for (body, field) in cases {
        let (status, error) = error_of(w.app.post("/v1/sessions", body).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{error}");
        assert!(!error.to_string().contains("1234"));
    }
    let ok = w.app.post("/v1/sessions", json!({"goal": "x", "start_url": format!("{}form", w.site), "sensitive_data": fifty, "max_actions": 1})).await;
    assert_eq!(ok.status(), 201);
    let ok = w.app.post("/v1/sessions", json!({"goal": "x", "start_url": format!("{}form", w.site), "sensitive_data": {"pin": "x".repeat(4096)}})).await;
    assert_eq!(ok.status(), 201);
}
