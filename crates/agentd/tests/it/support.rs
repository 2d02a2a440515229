//! The test harness: the real server on port 0 with a fresh data dir, a scripted agent,
//! and small HTTP helpers.

use std::sync::Arc;
use std::time::Duration;

use agentd::config::{Config, Secret};
use agentd::keys::{self, KeyRequest};
use agentd::server::{self, RunningServer};
use agentd_domain::{EventKind, Mode, ResponseType};
use agentd_engine::{Agent, AgentError, AgentRegistry, Completion, ManualClock, SessionContext};
use agentd_testllm::{Recorded, Reply};
use async_trait::async_trait;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "test-admin-key-0001";

/// An agent whose behaviour is written in the session's goal: steps separated by `;`.
///
/// `emit:N` N thought events · `input:FIELD` ask for text · `permission` ask for permission ·
/// `safety:CODE` raise a safety check (denied → stopped, as the browser agents do) · `fail:MSG` fail · `panic` panic ·
/// `wait` block until stopped or timed out · `sleep:MS` real sleep · `done:TEXT` complete.
/// With no `done`, it completes with "done" after the last step.
pub struct ScriptedAgent;

#[async_trait]
impl Agent for ScriptedAgent {
    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError> {
        let goal = ctx.spec().goal.clone();
        for step in goal.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            ctx.checkpoint().await?;
            let (verb, arg) = step.split_once(':').unwrap_or((step, ""));
            match verb {
                "emit" => {
                    for i in 0..arg.parse::<usize>().unwrap_or(1) {
                        ctx.emit(EventKind::Thought, json!({"thought": format!("step {i}")})).await?;
                    }
                }
                "input" => {
                    let text = ctx.request_input(arg, "the script asks").await?;
                    ctx.emit(EventKind::Thought, json!({"got": text})).await?;
                }
                "permission" => {
                    let granted = ctx.request_permission("may I?").await?;
                    ctx.emit(EventKind::Thought, json!({"granted": granted})).await?;
                }
                "safety" => {
                    if !ctx.safety_check(arg, "a risky step").await? {
                        return Err(AgentError::Stopped { reason: "a person denied the safety check".into() });
                    }
                }
                "fail" => return Err(AgentError::failed("scripted", arg)),
                "panic" => panic!("scripted panic"),
                "wait" => loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                },
                "sleep" => tokio::time::sleep(Duration::from_millis(arg.parse().unwrap_or(10))).await,
                "done" => {
                    return Ok(Completion {
                        response: json!(arg),
                        response_type: ResponseType::String,
                    });
                }
                other => return Err(AgentError::failed("bad_script", format!("unknown step {other}"))),
            }
        }
        Ok(Completion {
            response: json!("done"),
            response_type: ResponseType::String,
        })
    }
}

/// The agents of the test server: the scripted agent in every mode (the compatible APIs'
/// tests run scripted research, chat and coding sessions).
pub fn registry() -> AgentRegistry {
    let mut registry = AgentRegistry::new();
    for mode in [Mode::Browser, Mode::Research, Mode::Chat, Mode::Coding] {
        registry.register(mode, Arc::new(ScriptedAgent));
    }
    registry
}

/// A test configuration over `dir`.
pub fn test_config(dir: &std::path::Path) -> Config {
    agentd::install_tls();
    Config {
        addr: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        admin_key: Some(Secret::new(ADMIN_KEY)),
        log: "warn".into(),
        heartbeat_seconds: 1,
        // Webhook receivers and fixture sites are on loopback.
        allow_private_networks: true,
        ..Config::default()
    }
}

/// A running test server.
pub struct TestApp {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
    pub server: Option<RunningServer>,
    pub clock: Arc<ManualClock>,
    /// The data dir, owned when the test made it.
    pub dir: Option<TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_at(dir.path(), tweak).await;
    app.dir = Some(dir);
    app
}

/// A server over an existing data dir (to restart on the same data).
pub async fn spawn_at(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(dir);
    tweak(&mut config);
    let clock = Arc::new(ManualClock::new());
    let server = server::start_with_clock(&config, registry(), clock.clone())
        .await
        .expect("server starts");
    TestApp {
        base: format!("http://{}", server.addr),
        key: ADMIN_KEY.into(),
        http: http_client(),
        server: Some(server),
        clock,
        dir: None,
    }
}

/// A server with the agents this build ships (the real browser agent, real Chromium), its
/// LLM at `llm_base_url` (an OpenAI-compatible scripted server). Sessions run on real time.
pub async fn spawn_agents(llm_base_url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    config.llm_base_url = Some(llm_base_url.to_owned());
    config.llm_api_key = Some(Secret::new("sk-test-key"));
    config.llm_model = Some("scripted-model".into());
    config.browser_warm_contexts = 0;
    tweak(&mut config);
    let server = server::start_builtin(&config).await.expect("server starts");
    TestApp {
        base: format!("http://{}", server.addr),
        key: ADMIN_KEY.into(),
        http: http_client(),
        server: Some(server),
        clock: Arc::new(ManualClock::new()),
        dir: Some(dir),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn store(&self) -> &agentd_store::SharedStore {
        self.server.as_ref().expect("running").engine.store()
    }

    /// A key of another project.
    pub async fn other_project_key(&self) -> String {
        self.key_in("other", None).await
    }

    /// A key in `project` with a per-minute limit.
    pub async fn key_in(&self, project: &str, per_minute: Option<u64>) -> String {
        let req = KeyRequest {
            project: project.into(),
            name: "test".into(),
            tier: "unlimited".into(),
            per_minute,
            per_day: None,
        };
        keys::create(self.store().as_ref(), &req).await.expect("key").0
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(key).send().await.expect("request")
    }

    pub async fn post(&self, path: impl AsRef<str>, body: Value) -> reqwest::Response {
        self.post_as(&self.key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: impl AsRef<str>, body: Value) -> reqwest::Response {
        self.http.post(self.url(path.as_ref())).bearer_auth(key).json(&body).send().await.expect("request")
    }

    /// Creates a session running `script`; returns its JSON.
    pub async fn create(&self, script: &str) -> Value {
        self.create_with(json!({"goal": script})).await
    }

    pub async fn create_with(&self, body: Value) -> Value {
        let response = self.post("/v1/sessions", body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "create failed: {body}");
        body
    }

    pub async fn session(&self, id: &str) -> Value {
        self.get(&format!("/v1/sessions/{id}")).await.json().await.expect("json")
    }

    /// Waits (up to 10 s of real time) until the session has `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let session = self.session(id).await;
            if session["status"] == status {
                return session;
            }
            assert!(std::time::Instant::now() < deadline, "session never became {status}: {session}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// All events of a session so far.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let page: Value = self
            .get(&format!("/v1/sessions/{id}/events?limit=1000"))
            .await
            .json()
            .await
            .expect("json");
        page["data"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the session has an event of `kind`; returns it.
    pub async fn wait_event(&self, id: &str, kind: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.events(id).await.into_iter().find(|e| e["type"] == kind) {
                return e;
            }
            assert!(std::time::Instant::now() < deadline, "no {kind} event in session {id}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (real time, bounded) for a terminal status; returns the session.
    pub async fn finish(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let session = self.session(id).await;
            if ["completed", "failed", "stopped", "timed_out"].contains(&session["status"].as_str().unwrap_or("")) {
                return session;
            }
            assert!(std::time::Instant::now() < deadline, "session never ended: {session}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the session's pending safety check and answers it; returns its event data.
    pub async fn resolve_check(&self, id: &str, confirm: bool) -> Value {
        let pending = self.wait_event(id, "safety_check_pending").await["data"].clone();
        let check = pending["check_id"].as_str().unwrap();
        let r = self.post(format!("/v1/sessions/{id}/safety_checks/{check}"), json!({"confirm": confirm})).await;
        assert_eq!(r.status(), 200);
        pending
    }

    /// The data of the session's events of `kind`, in order.
    pub async fn events_of(&self, id: &str, kind: &str) -> Vec<Value> {
        self.events(id).await.into_iter().filter(|e| e["type"] == kind).map(|e| e["data"].clone()).collect()
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// The index of the element whose line in the prompt's page state contains `needle` (what a
/// scripted model reads to choose its action).
pub fn index_of(request: &Recorded, needle: &str) -> u64 {
    let text = request.text();
    text.lines()
        .filter(|l| l.trim_start().starts_with('['))
        .find(|l| l.contains(needle))
        .and_then(|l| l.trim_start()[1..].split(']').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no element `{needle}` in the prompt:\n{text}"))
}

/// A tool call for a scripted reply.
pub fn call(name: &str, arguments: Value) -> (String, Value) {
    (name.to_owned(), arguments)
}

/// A reply with the browser agent's reasoning lines and tool calls.
pub fn reasoned(thought: &str, calls: Vec<(String, Value)>) -> Reply {
    Reply::TextAndToolCalls(format!("Thought: {thought}\nMemory: working on it\nNext: {thought}"), calls)
}

/// A reply calling `done` with `response`.
pub fn done(response: &str) -> Reply {
    Reply::tool_call("done", json!({"response": response}))
}

/// The error body's parts.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    (status, body["error"].clone())
}

/// An HTTP client for the tests (the process's TLS provider installed first).
pub fn http_client() -> reqwest::Client {
    agentd::install_tls();
    reqwest::Client::new()
}

/// The body of a child-server test (`#[ignore]`d, run only by [`spawn_child_server`]): the
/// server over the directory named by `env`, until the parent kills it.
pub async fn run_child_server(env: &str, tweak: impl FnOnce(&mut Config)) {
    let Ok(dir) = std::env::var(env) else { return };
    let dir = std::path::Path::new(&dir);
    let mut config = test_config(dir);
    tweak(&mut config);
    let server = server::start(&config, registry()).await.unwrap();
    std::fs::write(dir.join("addr.tmp"), server.addr.to_string()).unwrap();
    std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).unwrap();
    std::future::pending::<()>().await;
}

/// Runs this test binary again with only `test` (a [`run_child_server`] test) selected, as a
/// server over `dir` in a process of its own (to kill -9); returns it and a client of it.
pub async fn spawn_child_server(test: &str, env: &str, dir: &std::path::Path) -> (std::process::Child, TestApp) {
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(env, dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr_file = dir.join("addr");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !addr_file.exists() {
        assert!(std::time::Instant::now() < deadline, "child server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let remote = TestApp {
        base: format!("http://{}", std::fs::read_to_string(&addr_file).unwrap()),
        key: ADMIN_KEY.into(),
        http: http_client(),
        server: None,
        clock: Default::default(),
        dir: None,
    };
    (child, remote)
}
