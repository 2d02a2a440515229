//! kill -9 the server with sessions in every live state, restart it, and check that no
//! session is left running and no committed event is lost; kill -9 it with a browser session
//! open and check that no process of its Chromium lives on.


use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::*;

const CHILD_ENV: &str = "AGENTD_TEST_CRASH_DIR";

/// Not a test of its own: the server process the crash test starts (this test binary, run
/// again with this one test selected) and kills.
#[tokio::test]
#[ignore = "run by crash::kill_9_loses_nothing as a child process"]
async fn crash_child() {
    run_child_server(CHILD_ENV, |config| config.max_concurrent_sessions = 4).await;
}

#[tokio::test]
async fn kill_9_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, remote) = spawn_child_server("crash::crash_child", CHILD_ENV, dir.path()).await;
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let waiting = id(remote.create("emit:3; input:x").await);
    let running = id(remote.create("wait").await);
    let paused = id(remote.create("wait").await);
    let busy = id(remote.create("emit:100000000").await);
    let queued = id(remote.create("done:after restart").await);
    remote.wait_status(&waiting, "waiting").await;
    remote.wait_status(&paused, "running").await;
    remote.post(&format!("/v1/sessions/{paused}/pause"), json!({})).await;
    remote.wait_status(&running, "running").await;
    assert_eq!(remote.session(&queued).await["status"], "queued");
    // Read a stretch of the busy session's live stream: everything seen was committed.
    let sse = remote.http.get(remote.url(&format!("/v1/sessions/{busy}/events"))).bearer_auth(ADMIN_KEY).header("accept", "text/event-stream").send().await.unwrap();
    let mut stream = sse.bytes_stream().eventsource();
    let mut seen = Vec::new();
    while seen.len() < 300 {
        let e = stream.next().await.unwrap().unwrap();
        seen.push(serde_json::from_str::<Value>(&e.data).unwrap());
    }
    let before: Vec<(String, Vec<Value>)> = futures::future::join_all(
        [&waiting, &running, &paused].map(|s| async { (s.clone(), remote.events(s).await) }),
    )
    .await;

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let app = spawn_at(dir.path(), |_| {}).await;
    for (s, old) in before {
        let session = app.session(&s).await;
        assert_eq!(session["status"], "failed", "{s}");
        let events = app.events(&s).await;
        assert_eq!(&events[..old.len()], &old[..], "history intact");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "failed");
        assert_eq!(last["data"]["reason"], "interrupted");
        assert_eq!(last["seq"].as_u64().unwrap(), old.len() as u64 + 1, "no gap");
    }
    let busy_events = app.events(&busy).await;
    assert_eq!(&busy_events[..seen.len()], &seen[..], "every event a subscriber saw survived");
    let busy_all = {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page: Value = app.get(&format!("/v1/sessions/{busy}/events?after={after}&limit=1000")).await.json().await.unwrap();
            let data = page["data"].as_array().unwrap().clone();
            after = page["next_after"].as_u64().unwrap();
            all.extend(data);
            if page["has_more"] == false {
                break;
            }
        }
        all
    };
    let seqs: Vec<u64> = busy_all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gap-free");
    assert_eq!(busy_all.last().unwrap()["type"], "failed");
    assert_eq!(app.session(&busy).await["status"], "failed");
    assert_eq!(app.wait_status(&queued, "completed").await["response"], "after restart");
    let page: Value = app.get("/v1/sessions?status=queued,running,paused,waiting").await.json().await.unwrap();
    assert_eq!(page["data"], json!([]), "nothing is left hanging");
    app.shutdown().await;
}

const BROWSER_CHILD_ENV: &str = "AGENTD_TEST_BROWSER_CRASH_DIR";

/// Not a test of its own: the server the browser crash test starts and kills — the agents
/// this build ships, real Chromium, the LLM whose URL the parent left in `llm_url`.
#[tokio::test]
#[ignore = "run by crash::kill_9_leaves_no_browser_behind as a child process"]
async fn browser_crash_child() {
    let Ok(dir) = std::env::var(BROWSER_CHILD_ENV) else { return };
    let dir = std::path::Path::new(&dir);
    let mut config = test_config(dir);
    config.llm_base_url = Some(std::fs::read_to_string(dir.join("llm_url")).unwrap());
    config.llm_api_key = Some(agentd::config::Secret::new("sk-test-key"));
    config.llm_model = Some("scripted-model".into());
    config.browser_warm_contexts = 0;
    let server = agentd::server::start_builtin(&config).await.unwrap();
    std::fs::write(dir.join("addr.tmp"), server.addr.to_string()).unwrap();
    std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn kill_9_leaves_no_browser_behind() {
    let llm = agentd_testllm::ScriptedLlm::start().await;
    // The model takes its time: the session is running, its page open, when the server dies.
    llm.push(agentd_testllm::Reply::Delayed(std::time::Duration::from_secs(120), Box::new(done("too late"))));
    let site = agentd_testsite::serve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("llm_url"), llm.openai_base_url()).unwrap();
    let (mut child, remote) = spawn_child_server("crash::browser_crash_child", BROWSER_CHILD_ENV, dir.path()).await;
    let session = remote.create_with(json!({"goal": "Look at the form", "start_url": format!("{site}form")})).await;
    let id = session["id"].as_str().unwrap().to_owned();
    remote.wait_event(&id, "browser_started").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while llm.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the agent never asked the model: {:?}", remote.events(&id).await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(remote.session(&id).await["status"], "running");

    let browser = processes::descendants(child.id());
    assert!(browser.iter().any(|p| p.cmdline.contains("--remote-debugging-port=0")), "the browser runs under the server: {browser:#?}");
    assert!(browser.iter().any(|p| p.cmdline.contains("--type=renderer")), "and the session's page has a renderer: {browser:#?}");
    let record = std::fs::read_to_string(dir.path().join("browser.pid")).expect("the browser is recorded in the data directory");
    let profile = record.lines().find_map(|l| l.strip_prefix("profile ")).expect("with its profile folder").to_owned();
    assert!(std::path::Path::new(&profile).is_dir(), "{record}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Death by signal takes a moment to spread (the parent-death signal, then the browser's
    // children noticing it is gone); bounded, not timed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let alive: Vec<_> = browser.iter().filter(|p| p.alive()).collect();
        if alive.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the killed server's browser lives on: {alive:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The next start clears what the browser left: its record and its profile folder.
    let app = spawn_at(dir.path(), |_| {}).await;
    assert!(!dir.path().join("browser.pid").exists());
    assert!(!std::path::Path::new(&profile).exists(), "the leftover profile folder {profile} is removed");
    let settled = app.session(&id).await;
    assert_eq!((settled["status"].as_str(), app.events(&id).await.last().unwrap()["data"]["reason"].as_str()), (Some("failed"), Some("interrupted")));
    app.shutdown().await;
}

/// Processes as `/proc` shows them (Linux).
mod processes {
    /// A process, told apart from a later one with the same PID by its start time.
    #[derive(Debug)]
    pub struct Process {
        pub pid: u32,
        pub start: u64,
        pub cmdline: String,
    }

    impl Process {
        /// Still running (a zombie has ended; nobody may reap it in a container).
        pub fn alive(&self) -> bool {
            stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z')
        }
    }

    struct Stat {
        state: char,
        parent: u32,
        start: u64,
    }

    fn stat(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
        Some(Stat { state: fields.first()?.chars().next()?, parent: fields.get(1)?.parse().ok()?, start: fields.get(19)?.parse().ok()? })
    }

    /// Every live process below `root`.
    pub fn descendants(root: u32) -> Vec<Process> {
        let all: Vec<(u32, Stat)> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| Some((pid, stat(pid)?)))
            .collect();
        let mut found = vec![root];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(all.iter().filter(|(_, s)| s.parent == parent && s.state != 'Z').map(|(pid, _)| *pid));
            i += 1;
        }
        all.into_iter()
            .filter(|(pid, _)| *pid != root && found.contains(pid))
            .map(|(pid, s)| Process {
                pid,
                start: s.start,
                cmdline: std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default(),
            })
            .collect()
    }
}
