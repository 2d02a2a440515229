//! One server per data directory: a second `agentd serve` over a directory in use refuses to
//! start and names the holder, and the first server's sessions carry on; `agentd run` refuses
//! rather than start a second server; a lock file a killed server left does not block a
//! restart; the key commands work beside a running server.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::*;

/// `agentd ARGS` over `dir` with `env` (and no other `AGENTD_*` variable but the Chromium to
/// use): whether it succeeded, its exit code, stdout and stderr.
async fn agentd(dir: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentd"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("AGENTD_") && name != "AGENTD_CHROME" {
            command.env_remove(name);
        }
    }
    command.env("AGENTD_DATA_DIR", dir).env("AGENTD_LOG", "warn").envs(env.iter().map(|(k, v)| (*k, v.as_str()))).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("agentd {args:?} did not exit"))
        .expect("agentd runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn id(v: Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_refuses_and_the_first_carries_on() {
    let mut app = spawn_app().await;
    // Kept past the first server's shutdown, for the next one.
    let kept = app.dir.take().unwrap();
    let dir = kept.path().to_owned();
    let running = id(app.create("wait").await);
    let waiting = id(app.create("emit:1; input:x; done:answered").await);
    app.wait_status(&running, "running").await;
    app.wait_status(&waiting, "waiting").await;

    let (code, stdout, stderr) = agentd(&dir, &["serve", "--addr", "127.0.0.1:0"], &[]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let holder = format!("PID {}, listening on {}", std::process::id(), app.base.trim_start_matches("http://"));
    assert!(stderr.contains("is in use by another agentd server") && stderr.contains(&holder), "{stderr}");
    assert!(stderr.contains(&dir.display().to_string()), "the message names the directory: {stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    // The same from within a process (the lock is per opening, not per process).
    let error = agentd::server::start(&test_config(&dir), registry()).await.err().expect("refused").to_string();
    assert!(error.contains(&holder), "{error}");

    // Nothing of the first server's work was touched: both sessions are live and go on.
    assert_eq!(app.session(&running).await["status"], "running");
    assert_eq!(app.session(&waiting).await["status"], "waiting");
    let request = app.wait_event(&waiting, "input_requested").await["data"]["request_id"].as_str().unwrap().to_owned();
    let r = app.post(format!("/v1/sessions/{waiting}/input"), json!({"request_id": request, "text": "here"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_status(&waiting, "completed").await["response"], "answered");
    assert!(app.events(&running).await.iter().all(|e| e["type"] != "failed"), "never settled");
    let r = app.post(format!("/v1/sessions/{running}/stop"), json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_status(&running, "stopped").await["status"], "stopped");
    app.shutdown().await;

    // Stopped, the server lets the next one have the directory.
    let app = spawn_at(&dir, |_| {}).await;
    assert_eq!(app.session(&running).await["status"], "stopped");
    app.shutdown().await;
}

#[tokio::test]
async fn a_lock_file_left_by_a_killed_server_does_not_block_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, remote) = spawn_child_server("crash::crash_child", "AGENTD_TEST_CRASH_DIR", dir.path()).await;
    let running = id(remote.create("wait").await);
    remote.wait_status(&running, "running").await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = std::fs::read_to_string(dir.path().join(agentd::data_dir_lock::LOCK_FILE)).unwrap();
    assert_eq!(left.lines().next(), Some(child.id().to_string().as_str()), "the dead server's PID is still written: {left}");

    let (code, stdout, stderr) = {
        // The binary starts over it; it is stopped (SIGTERM) once it listens.
        let mut serve = Command::new(env!("CARGO_BIN_EXE_agentd"));
        serve
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("AGENTD_DATA_DIR", dir.path())
            .env("AGENTD_ADMIN_KEY", ADMIN_KEY)
            .env("AGENTD_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut serve = serve.spawn().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(serve.stdout.take().unwrap()));
        let mut stdout = String::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.expect("it starts").unwrap() {
            stdout.push_str(&line);
            if line.contains("listening on") {
                break;
            }
        }
        let pid = serve.id().unwrap();
        let held = std::fs::read_to_string(dir.path().join(agentd::data_dir_lock::LOCK_FILE)).unwrap();
        assert_eq!(held.lines().next(), Some(pid.to_string().as_str()), "the new server's PID replaced it: {held}");
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), serve.wait_with_output()).await.expect("it stops").unwrap();
        (out.status.code(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("listening on"), "{stdout}\n{stderr}");

    let app = spawn_at(dir.path(), |_| {}).await;
    assert_eq!(app.session(&running).await["status"], "failed", "settled by the first restart");
    assert_eq!(app.events(&running).await.last().unwrap()["data"]["reason"], "interrupted");
    app.shutdown().await;
}

#[tokio::test]
async fn keys_are_listed_made_and_revoked_beside_a_running_server() {
    let app = spawn_app().await;
    let dir = app.dir.as_ref().unwrap().path().to_owned();
    let (code, list, stderr) = agentd(&dir, &["keys", "list"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(list.contains("AGENTD_ADMIN_KEY"), "the running server's keys are listed: {list}");
    let (code, secret, stderr) = agentd(&dir, &["keys", "create", "--name", "beside"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let secret = secret.trim().to_owned();
    assert_eq!(app.get_as(&secret, "/v1/sessions").await.status(), 200, "the running server takes the new key");
    let (_, list, _) = agentd(&dir, &["keys", "list"], &[]).await;
    let key_id = list.lines().find(|l| l.ends_with("beside")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (code, _, stderr) = agentd(&dir, &["keys", "revoke", &key_id], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(app.get_as(&secret, "/v1/sessions").await.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn agentd_run_refuses_to_start_a_server_over_a_directory_a_server_it_cannot_reach_holds() {
    let app = spawn_app().await;
    let dir = app.dir.as_ref().unwrap().path().to_owned();
    let running = id(app.create("wait").await);
    app.wait_status(&running, "running").await;
    // Nothing listens at the server it is pointed at; an LLM is configured, so only the data
    // directory stands in the way of an in-process server.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = [
        ("AGENTD_URL", format!("http://{free}")),
        ("AGENTD_LLM_BASE_URL", "http://127.0.0.1:9/v1".to_owned()),
        ("AGENTD_LLM_MODEL", "scripted-model".to_owned()),
    ];
    let (code, stdout, stderr) = agentd(&dir, &["run", "Anything", "--url", "http://127.0.0.1:9/"], &env).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let holder = format!("PID {}, listening on {}", std::process::id(), app.base.trim_start_matches("http://"));
    assert!(stderr.contains(&format!("no server answers at http://{free}")) && stderr.contains(&holder), "{stderr}");
    assert!(stderr.contains(&format!("--server {}", app.base)), "it says how to use that server: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(app.session(&running).await["status"], "running", "the server's session was not settled");
    let list: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "nothing was created: {list}");
    app.shutdown().await;
}
