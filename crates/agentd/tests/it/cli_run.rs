//! `agentd run` end to end: the real binary, real Chromium on the fixture site, the scripted
//! LLM, against a server the test started or one the command starts in-process; the person
//! in the loop answers through piped stdin.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_store::{SqliteStore, Store};
use agentd_testllm::{Reply, ScriptedLlm};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::support::{ADMIN_KEY, TestApp, call, done, index_of, reasoned, spawn_agents, spawn_app};

/// `agentd run ...` as a child process, its stderr collected as it comes.
struct Run {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: tokio::task::JoinHandle<String>,
}

/// What a finished run left.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Starts `agentd run ARGS` with `env` (and no other `AGENTD_*` variable but the
    /// Chromium to use); `stdin` is written then closed (None: no stdin at all).
    async fn start(args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentd"));
        command.arg("run").args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("AGENTD_") && name != "AGENTD_CHROME" {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        command
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the agentd binary starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
        }
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = tokio::spawn(async move {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text).await;
            text
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Run { child, stderr, stdout }
    }

    /// Waits (bounded) until stderr holds `needle`.
    async fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr.lock().unwrap().contains(needle) {
            assert!(Instant::now() < deadline, "stderr never said `{needle}`:\n{}", self.stderr.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) for the process to exit.
    async fn finish(mut self) -> Finished {
        let status = tokio::time::timeout(Duration::from_secs(90), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("agentd run did not finish; stderr:\n{}", self.stderr.lock().unwrap()))
            .expect("wait");
        let stdout = self.stdout.await.expect("stdout reader");
        // The reader may still hold the last bytes of stderr for a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stderr = self.stderr.lock().unwrap().clone();
        Finished {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

/// The fixture site, the scripted LLM and a server with the real agents.
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
    /// The environment that points `agentd run` at the test's server.
    fn env(&self) -> Vec<(&'static str, String)> {
        let data_dir = self.app.dir.as_ref().expect("data dir").path().join("unused-by-the-cli");
        vec![
            ("AGENTD_URL", self.app.base.clone()),
            ("AGENTD_API_KEY", ADMIN_KEY.to_owned()),
            ("AGENTD_DATA_DIR", data_dir.display().to_string()),
        ]
    }

    fn page(&self, name: &str) -> String {
        format!("{}{name}", self.site)
    }

    /// The only session on the server.
    async fn the_session(&self) -> Value {
        let list: Value = self.app.get("/v1/sessions").await.json().await.unwrap();
        let sessions = list["data"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "{list}");
        sessions[0].clone()
    }
}

#[tokio::test]
async fn fills_a_form_on_a_running_server_and_prints_the_response() {
    let w = world().await;
    w.llm.push_with(|r| {
        reasoned(
            "the form needs a size",
            vec![call("check", json!({"index": index_of(r, "radio \"Small\""), "checked": true})), call("click", json!({"index": index_of(r, "\"Submit form\"")}))],
        )
    });
    w.llm.push_with(|r| if r.text().contains("size=s") { done("submitted with size s") } else { done("not submitted") });
    let url = w.page("form");
    // The form holds a password: its submission asks for a confirmation, given on stdin.
    let run = Run::start(&["Submit the form with the small size", "--url", &url], &w.env(), Some("y\n")).await;
    let out = run.finish().await;

    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "submitted with size s\n", "only the response goes to stdout");
    let err = &out.stderr;
    assert!(err.contains(&format!("using the server at {}", w.app.base)), "{err}");
    assert!(err.contains("step 1 · the form needs a size"), "{err}");
    assert!(err.contains("  → navigate: "), "{err}");
    assert!(err.contains("  → check: ") && err.contains("  → click: "), "{err}");
    assert!(err.contains("Safety check [sensitive_form]"), "{err}");
    assert!(!err.contains('\u{1b}'), "no spinner when stderr is not a terminal: {err:?}");
    let session = w.the_session().await;
    assert_eq!((session["status"].as_str(), session["start_url"].as_str()), (Some("completed"), Some(url.as_str())), "{session}");
}

#[tokio::test]
async fn starts_a_server_in_process_and_takes_input_and_permission_from_stdin() {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here, so the command starts its own server.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = [
        ("AGENTD_URL", format!("http://{free}")),
        ("AGENTD_DATA_DIR", dir.path().display().to_string()),
        ("AGENTD_LLM_BASE_URL", llm.openai_base_url()),
        ("AGENTD_LLM_MODEL", "scripted-model".to_owned()),
    ];
    llm.push(reasoned("I need the email", vec![call("request_user_input", json!({"field_name": "email", "reason": "to fill the form"}))]));
    // The answer is a note in the next prompt only.
    llm.push_with(|r| {
        if r.text().contains("The user's answer for email: ada@example.org") {
            reasoned("ask before sending", vec![call("request_permission", json!({"reason": "send the form"}))])
        } else {
            done("the email never arrived")
        }
    });
    llm.push_with(|r| {
        let granted = r.text().contains("asked permission: send the form: granted");
        done(&format!("email given, permission granted: {granted}"))
    });
    let url = format!("{site}form");
    // A first answer that is not y/n is asked again.
    let run = Run::start(&["Fill in my email", "--url", &url, "--json"], &env, Some("ada@example.org\nperhaps\ny\n")).await;
    let out = run.finish().await;

    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "\"email given, permission granted: true\"\n", "--json prints the response as JSON");
    let err = &out.stderr;
    assert!(err.contains("starting one in-process"), "{err}");
    assert!(err.contains("? The agent asks for email (to fill the form):"), "{err}");
    assert!(err.contains("? The agent asks permission: send the form [y/N]"), "{err}");
    assert!(err.contains("please answer y or n"), "{err}");
    assert!(!err.contains("ada@example.org"), "a piped answer is not echoed: {err}");
    assert_eq!(llm.requests()[0].body["model"], "scripted-model");

    // The session is in the data dir, and the run's key (and the unseen first key the fresh
    // server made) no longer open it.
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let keys = store.list_api_keys().await.unwrap();
    assert!(keys.iter().any(|k| k.name.starts_with("agentd run")), "{keys:?}");
    assert!(keys.iter().all(|k| k.revoked_at.is_some()), "every key the run made is revoked: {keys:?}");
    let completed = store.sessions_in_status(&[agentd_domain::SessionStatus::Completed]).await.unwrap();
    assert_eq!(completed.len(), 1);
}

#[tokio::test]
async fn a_denied_safety_check_stops_the_session_and_fails_the_command() {
    let w = world().await;
    w.llm.push_with(|r| Reply::tool_call("click", json!({"index": index_of(r, "\"Submit form\""), "sensitive": "it sends the user's data"})));
    let url = w.page("form");
    let run = Run::start(&["Send the form", "--url", &url], &w.env(), Some("n\n")).await;
    let out = run.finish().await;

    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("Safety check [model_flagged]") && out.stderr.contains("it sends the user's data"), "{}", out.stderr);
    assert!(out.stderr.contains("stopped: a person denied the safety check"), "{}", out.stderr);
    let session = w.the_session().await;
    assert_eq!(session["status"], "stopped");
    let clicks = w.app.events(session["id"].as_str().unwrap()).await.into_iter().filter(|e| e["data"]["name"] == "click").count();
    assert_eq!(clicks, 0, "the denied click never ran");
}

#[tokio::test]
async fn running_out_of_actions_fails_the_command_with_the_reason() {
    let w = world().await;
    w.llm.set_fallback(Reply::tool_call("scroll", json!({"pages": 1})));
    let url = w.page("article");
    let out = Run::start(&["Read everything", "--url", &url, "--max-actions", "2"], &w.env(), None).await.finish().await;

    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.matches("  → scroll: ").count(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("failed: ") && out.stderr.contains("(max_actions)"), "{}", out.stderr);
    assert_eq!(w.the_session().await["max_actions"], 2);
}

#[tokio::test]
async fn closed_stdin_stops_a_session_that_waits_for_input() {
    let w = world().await;
    w.llm.push(reasoned("I need the email", vec![call("request_user_input", json!({"field_name": "email", "reason": "to sign up"}))]));
    let url = w.page("form");
    let out = Run::start(&["Sign up", "--url", &url], &w.env(), None).await.finish().await;

    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no answer (stdin is closed): stopping the session"), "{}", out.stderr);
    assert_eq!(w.the_session().await["status"], "stopped");
}

#[tokio::test]
async fn ctrl_c_stops_the_session_before_exiting() {
    let w = world().await;
    // The model takes its time: the run is waiting on it when the person presses Ctrl-C.
    w.llm.push(Reply::Delayed(Duration::from_secs(60), Box::new(done("too late"))));
    let url = w.page("form");
    let run = Run::start(&["Wait", "--url", &url], &w.env(), None).await;
    run.wait_stderr("  → navigate: ").await;
    let pid = run.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let out = run.finish().await;

    assert_eq!(out.code, Some(130), "{out:?}");
    assert!(out.stderr.contains("interrupted: stopping the session"), "{}", out.stderr);
    assert!(out.stderr.contains("stopped"), "{}", out.stderr);
    assert_eq!(w.the_session().await["status"], "stopped");
}

#[tokio::test]
async fn a_running_server_needs_a_key() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("AGENTD_URL", app.base.clone()), ("AGENTD_DATA_DIR", dir.path().display().to_string())];
    let out = Run::start(&["Anything", "--url", "http://127.0.0.1:9/"], &env, None).await.finish().await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("needs an API key: set AGENTD_API_KEY or pass --api-key"), "{}", out.stderr);
    let list: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "nothing was created");
}
