//! The live session page, driven in a real headless Chromium as a person would use it.

use std::time::Duration;

use agentd_browser::{Action, BrowserPool, BrowserSettings, SessionBrowser, Viewport};
use serde_json::{Value, json};

use crate::support::*;

/// The page's rendered text and its elements' names.
async fn read(page: &mut SessionBrowser) -> (String, Vec<(u64, String)>) {
    let state = page.observe().await.expect("the page reads");
    let names = state.elements.iter().map(|e| (e.index, e.name.clone())).collect();
    (state.render_within(20_000), names)
}

/// Waits (real time, bounded) until the page's text contains `needle`.
async fn until_shown(page: &mut SessionBrowser, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (text, _) = read(page).await;
        if text.contains(needle) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "the page never showed `{needle}`:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page's script has run (it disables Resume on a session that is not paused).
async fn until_ready(page: &mut SessionBrowser) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let state = page.observe().await.expect("the page reads");
        if state.elements.iter().any(|e| e.name == "Resume" && e.disabled == Some(true)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the page's script never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(page: &mut SessionBrowser, name: &str) {
    let (text, names) = read(page).await;
    let index = names.iter().find(|(_, n)| n == name).map(|(i, _)| *i).unwrap_or_else(|| panic!("no `{name}` button:\n{text}"));
    page.act(&Action::Click { index, button: Default::default() }).await.expect("click");
}

#[tokio::test]
async fn confirming_a_safety_check_on_the_live_page_resumes_the_session_and_updates_the_page() {
    let app = spawn_app().await;
    let r = app.post("/api/tasks", json!({"task": "emit:1; safety:payment_form; emit:1; done:paid"})).await;
    let data: Value = r.json::<Value>().await.unwrap()["data"].clone();
    let (sid, url) = (data["session_id"].as_str().unwrap().to_owned(), data["session_url"].as_str().unwrap().to_owned());
    app.wait_status(&sid, "waiting").await;

    // A person's browser on this machine: the egress policy lets it reach exactly agentd.
    let policy = agentd_egress::EgressPolicy {
        allow: agentd_egress::EgressAllow::parse(&[app.base.trim_start_matches("http://")]).unwrap(),
        ..Default::default()
    };
    let egress = agentd_egress::EgressProxy::new(agentd_egress::ProxySettings { policy, ..Default::default() });
    let settings = BrowserSettings { max_contexts: 1, warm_contexts: 0, egress, ..BrowserSettings::default() };
    let pool = BrowserPool::start(&settings).await.expect("Chromium starts (apt-get install -y chromium)");
    let mut page = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    page.act(&Action::Navigate { url: url.clone() }).await.expect("the live page opens");
    until_ready(&mut page).await;
    let text = until_shown(&mut page, "awaiting safety confirmation").await;
    assert!(text.contains("emit:1; safety:payment_form"), "the goal is shown:\n{text}");
    // The question box is drawn by the page's script once it runs.
    let text = until_shown(&mut page, "Safety check: payment_form").await;
    assert!(text.contains("a risky step"), "{text}");

    click(&mut page, "Confirm").await;
    let text = until_shown(&mut page, "Task completed").await;
    assert!(text.contains("Safety check confirmed"), "the timeline grew live:\n{text}");
    until_shown(&mut page, "paid").await;
    assert_eq!(app.session(&sid).await["status"], "completed");
    let resolved = app.wait_event(&sid, "safety_check_resolved").await;
    assert_eq!(resolved["data"]["confirmed"], true);

    // A second session: paused and resumed, then stopped, from the page's buttons.
    let r = app.post("/api/tasks", json!({"task": "wait"})).await;
    let data: Value = r.json::<Value>().await.unwrap()["data"].clone();
    let (sid, url) = (data["session_id"].as_str().unwrap().to_owned(), data["session_url"].as_str().unwrap().to_owned());
    app.wait_status(&sid, "running").await;
    page.act(&Action::Navigate { url: url.clone() }).await.unwrap();
    until_ready(&mut page).await;
    until_shown(&mut page, "running").await;
    click(&mut page, "Pause").await;
    until_shown(&mut page, "Session paused").await;
    assert_eq!(app.session(&sid).await["status"], "paused");
    click(&mut page, "Resume").await;
    until_shown(&mut page, "Session resumed").await;
    click(&mut page, "Stop").await;
    until_shown(&mut page, "Session stopped").await;
    assert_eq!(app.session(&sid).await["status"], "stopped");

    // The link is the key: without its task_id, or with another's, the page does not open.
    let bare = url.split('?').next().unwrap().to_owned();
    assert_eq!(app.http.get(&bare).send().await.unwrap().status(), 403);
    assert_eq!(app.http.get(format!("{bare}?task_id=00000000-0000-4000-8000-000000000000")).send().await.unwrap().status(), 403);
    let r = app.http.post(format!("{bare}/control?task_id=nope")).json(&json!({"action": "stop"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The original app's link form leads to the page.
    let task_id = url.split("task_id=").nth(1).unwrap();
    let root = app.http.get(app.url(&format!("/?session={sid}&task_id={task_id}"))).send().await.unwrap();
    assert_eq!(root.url().path(), format!("/sessions/{sid}"));
    drop(page);
    app.shutdown().await;
}
