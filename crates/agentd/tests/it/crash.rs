//! kill -9 the server with sessions in every live state, restart it, and check that no
//! session is left running and no committed event is lost.


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
