//! The browser agent inside the egress boundary, end to end: the real server with its default
//! policy and `egress_allow` naming exactly the fixture site, real Chromium, a scripted model that
//! makes the calls an attacker would. A recorder on every loopback address counts connections;
//! the model is told why each request was refused. (The runtime's own tables, every target ×
//! every path, are in agentd-browser's tests.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentd_testllm::{Reply, ScriptedLlm};
use serde_json::json;

use crate::support::{TestApp, done, spawn_agents};

/// Counts connections to its port on every loopback address (a dual-stack listener on [::]).
async fn recorder() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

struct World {
    app: TestApp,
    llm: ScriptedLlm,
    site: String,
    recorder: u16,
    reached: Arc<AtomicUsize>,
}

/// The server with the default egress policy (private networks refused) plus exactly the
/// fixture site's address.
async fn world() -> World {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let (recorder, reached) = recorder().await;
    let site_addr = site.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let app = spawn_agents(&llm.openai_base_url(), move |c| {
        c.allow_private_networks = false;
        c.egress_allow = vec![site_addr];
    })
    .await;
    World { app, llm, site, recorder, reached }
}

impl World {
    async fn run(&self, body: serde_json::Value) -> (String, serde_json::Value) {
        let id = self.app.create_with(body).await["id"].as_str().unwrap().to_owned();
        let session = self.app.finish(&id).await;
        (id, session)
    }
}

#[tokio::test]
async fn a_start_url_on_loopback_is_refused_and_the_model_told_why() {
    let w = world().await;
    w.llm.push_with(|r| {
        done(if r.text().contains("refused by the egress policy: 127.0.0.1 is a loopback address") { "told" } else { "not told" })
    });
    let start = format!("http://127.0.0.1:{}/admin?reset_token=abc", w.recorder);
    let (id, session) = w.run(json!({"goal": "Open the admin page", "start_url": start})).await;
    assert_eq!(session["response"], "told", "{session}");
    let actions = w.app.events_of(&id, "action").await;
    assert_eq!(actions[0]["ok"], false, "{actions:?}");
    assert!(!actions[0]["error"].as_str().unwrap().contains("reset_token"), "errors name the host, not the URL");
    assert_eq!(w.reached.load(Ordering::SeqCst), 0, "nothing reached the internal server");
    // The screen never showed it either: the session's page stayed blank.
    let state = w.app.get(&format!("/v1/sessions/{id}")).await.json::<serde_json::Value>().await.unwrap();
    assert_ne!(state["status"], "failed", "{state}");
}

#[tokio::test]
async fn the_models_navigations_to_internal_addresses_are_refused() {
    let w = world().await;
    let targets = [
        format!("http://[::ffff:127.0.0.1]:{}/", w.recorder),
        format!("http://2130706433:{}/", w.recorder),
        format!("http://localhost:{}/", w.recorder),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ];
    // A refused action is a failure, and three in a row end a session: each is followed by one
    // that works.
    for target in &targets {
        w.llm.push(Reply::tool_call("navigate", json!({"url": target})));
        w.llm.push(Reply::tool_call("scroll", json!({"pages": 1})));
    }
    w.llm.push(Reply::tool_call("tab", json!({"do": "open", "url": format!("http://0.0.0.0:{}/", w.recorder)})));
    w.llm.push_with(|r| done(if r.text().contains("refused by the egress policy") { "refused" } else { "went" }));
    let (id, session) = w.run(json!({"goal": "Look around", "start_url": format!("{}products", w.site), "max_actions": 20})).await;
    assert_eq!(session["response"], "refused", "{session}");
    let actions = w.app.events_of(&id, "action").await;
    let refused = actions.iter().filter(|a| a["error"].as_str().is_some_and(|e| e.contains("refused by the egress policy"))).count();
    assert_eq!(refused, targets.len() + 1, "{actions:?}");
    let metadata = actions.iter().find(|a| a["error"].as_str().is_some_and(|e| e.contains("169.254.169.254"))).unwrap();
    assert!(metadata["error"].as_str().unwrap().contains("cloud metadata address, which agentd never connects to"));
    assert_eq!(w.reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_page_reaching_for_an_internal_address_is_blocked_and_the_model_hears_of_it() {
    let w = world().await;
    let to = format!("http://127.0.0.1:{}/pixel.png", w.recorder);
    let page = format!("{}reach?to={}", w.site, url_escape(&to));
    // The image is refused while the first page loads or just after: the model hears of it in
    // its first or second request.
    w.llm.push(Reply::tool_call("wait_for_network_idle", json!({})));
    w.llm.push(done("read"));
    let (id, session) = w.run(json!({"goal": "Read the page", "start_url": page})).await;
    assert_eq!(session["status"], "completed", "{session}");
    let heard = "The browser blocked a request: refused by the egress policy: 127.0.0.1 is a loopback address";
    assert!(w.llm.requests().iter().any(|r| r.text().contains(heard)), "the model was told");
    let logs = w.app.events_of(&id, "log").await;
    assert!(logs.iter().any(|l| l["code"] == "egress_refused"), "{logs:?}");
    assert_eq!(w.reached.load(Ordering::SeqCst), 0);
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
