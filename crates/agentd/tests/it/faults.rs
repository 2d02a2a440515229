//! Storage faults: the data directory on a small file system that the test fills and frees
//! under a running server (sessions, events, a subscriber), and a start on a read-only one.
//! Nothing is acknowledged or shown to a subscriber unless it is stored; writes work again
//! once space returns, without a restart; `/healthz` says what is wrong meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::*;

/// A small file system mounted for one test at a fresh directory, unmounted on drop: a
/// tmpfs when the test runs as root, else an ext4 loop file mounted with `sudo -n`.
struct SmallDisk {
    mount_point: tempfile::TempDir,
    /// The loop file's directory (the non-root way).
    _image: Option<tempfile::TempDir>,
    sudo: bool,
}

const DISK_MIB: u64 = 32;
const TERMINAL: [&str; 4] = ["completed", "failed", "stopped", "timed_out"];

fn run(sudo: bool, program: &str, args: &[&str]) -> Result<(), String> {
    let mut command = if sudo {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(program);
        c
    } else {
        Command::new(program)
    };
    let output = command.args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl SmallDisk {
    /// A `DISK_MIB` MiB file system (read-only and empty when `read_only`), or None, with
    /// the reason printed, where this machine allows neither way.
    fn mount(read_only: bool) -> Option<SmallDisk> {
        let mount_point = tempfile::tempdir().expect("mount point");
        let at = mount_point.path().to_str().expect("utf-8 path").to_owned();
        let mode = if read_only { "ro" } else { "rw" };
        if is_root() {
            let options = format!("{mode},size={DISK_MIB}m,mode=0755");
            match run(false, "mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &at]) {
                Ok(()) => return Some(SmallDisk { mount_point, _image: None, sudo: false }),
                Err(error) => {
                    eprintln!("SKIPPED: cannot mount a tmpfs as root here: {error}");
                    return None;
                }
            }
        }
        if run(false, "sudo", &["-n", "true"]).is_err() {
            eprintln!("SKIPPED: not root, and no passwordless sudo to mount a loop file");
            return None;
        }
        let image_dir = tempfile::tempdir().expect("image dir");
        let image = image_dir.path().join("disk.img");
        let file = std::fs::File::create(&image).expect("image file");
        file.set_len(DISK_MIB << 20).expect("image size");
        let image = image.to_str().expect("utf-8 path").to_owned();
        let made = run(false, "mkfs.ext4", &["-q", "-F", "-m", "0", &image])
            .and_then(|()| run(true, "mount", &["-o", &format!("loop,{mode}"), &image, &at]));
        if let Err(error) = made {
            eprintln!("SKIPPED: cannot mount a loop file with sudo here: {error}");
            return None;
        }
        let disk = SmallDisk { mount_point, _image: Some(image_dir), sudo: true };
        if !read_only {
            let owner = format!("{}:{}", id("-u"), id("-g"));
            run(true, "chown", &[&owner, &at]).expect("own the loop file system");
        }
        Some(disk)
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Fills the file system with one file, to the last byte it takes; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("ballast");
        let mut file = std::fs::File::create(&path).expect("ballast");
        for chunk in [vec![0xa5u8; 1 << 20], vec![0xa5u8; 4096], vec![0xa5u8; 64]] {
            loop {
                match file.write(&chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        path
    }
}

fn id(flag: &str) -> String {
    let output = Command::new("id").arg(flag).output().expect("id");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let at = self.mount_point.path().to_str().unwrap_or_default().to_owned();
        // Lazily when a server of a failed test still holds files there.
        if run(self.sudo, "umount", &[&at]).is_err()
            && let Err(error) = run(self.sudo, "umount", &["-l", &at])
        {
            eprintln!("could not unmount {at}: {error}");
        }
    }
}

/// Polls `check` (real time, bounded) until it holds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, within: Duration, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health(app: &TestApp) -> (u16, Value) {
    let r = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    (r.status().as_u16(), r.json().await.expect("health json"))
}

/// Reads a session's SSE stream to its end in the background, keeping every event.
fn subscribe(app: &TestApp, session: &str) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let request = app
        .http
        .get(app.url(&format!("/v1/sessions/{session}/events")))
        .bearer_auth(&app.key)
        .header("accept", "text/event-stream");
    let kept = seen.clone();
    let reader = tokio::spawn(async move {
        let response = request.send().await.expect("subscribe");
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream().eventsource();
        while let Some(Ok(e)) = stream.next().await {
            let Ok(event) = serde_json::from_str::<Value>(&e.data) else { continue };
            let end = TERMINAL.contains(&event["type"].as_str().unwrap_or(""));
            kept.lock().unwrap().push(event);
            if end {
                break;
            }
        }
    });
    (seen, reader)
}

/// A script that emits an event every 10 ms for about 12 s.
fn steady_emitter() -> String {
    "emit:1;sleep:10;".repeat(1200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing_acknowledged_and_writes_recover_without_a_restart() {
    let Some(disk) = SmallDisk::mount(false) else { return };
    let app = spawn_at(disk.path(), |_| {}).await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    assert_eq!(health(&app).await.0, 200);

    // Work before the fault: finished sessions, one that emits all along (watched live),
    // one waiting on a person.
    let mut acknowledged = Vec::new();
    for _ in 0..3 {
        let s = id(&app.create("emit:3; done").await);
        app.wait_status(&s, "completed").await;
        acknowledged.push(s);
    }
    let emitter = id(&app.create(&steady_emitter()).await);
    acknowledged.push(emitter.clone());
    let (seen, reader) = subscribe(&app, &emitter);
    let waiting = id(&app.create("input:x").await);
    acknowledged.push(waiting.clone());
    app.wait_status(&waiting, "waiting").await;
    eventually("the subscriber sees events", Duration::from_secs(10), || {
        let n = seen.lock().unwrap().len();
        async move { n >= 5 }
    })
    .await;

    // The disk fills up. Creating work goes on being answered 201 only while the write is
    // stored; the first refusal is a 503 storage_unavailable with Retry-After.
    let ballast = disk.fill();
    let mut refusal = None;
    for _ in 0..5000 {
        let r = app.post("/v1/sessions", json!({"goal": "emit:2; done"})).await;
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.expect("json");
        if status == 201 {
            acknowledged.push(id(&body));
            continue;
        }
        refusal = Some((status, body["error"].clone(), retry_after));
        break;
    }
    let (status, error, retry_after) = refusal.expect("a full disk refuses new sessions");
    assert_eq!((status, error["code"].as_str()), (503, Some("storage_unavailable")), "{error}");
    assert_eq!(error["type"], "api_error");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() > 0), "Retry-After");
    eventually("/healthz reports the full disk", Duration::from_secs(10), || async {
        let (status, body) = health(&app).await;
        status == 503 && body["store"] == false && body["reason"].as_str().is_some_and(|r| r.contains("full"))
    })
    .await;
    // A command whose event cannot be stored is not acknowledged either.
    // The agent acts on an answer only once it is stored: a refused one fails the session
    // (checked after space returns) rather than letting it go on from an unrecorded answer.
    let answer = app.post(&format!("/v1/sessions/{waiting}/input"), json!({"text": "hello"})).await;
    let answer_refused = answer.status() != 200;
    if answer_refused {
        let (status, error) = error_of(answer).await;
        assert_eq!((status, error["code"].as_str()), (503, Some("storage_unavailable")), "{error}");
    }

    // Space returns: writes work again within seconds, on every pooled connection.
    std::fs::remove_file(&ballast).expect("free the disk");
    eventually("/healthz recovers", Duration::from_secs(20), || async { health(&app).await.0 == 200 }).await;
    let (_, body) = health(&app).await;
    assert_eq!(body, json!({"status": "ok", "store": true, "version": env!("CARGO_PKG_VERSION")}));
    let after: Vec<String> = futures::future::join_all((0..8).map(|_| app.create("emit:2; done")))
        .await
        .iter()
        .map(id)
        .collect();
    for s in &after {
        assert_eq!(app.finish(s).await["status"], "completed");
    }
    acknowledged.extend(after);

    // Every session settles without a restart: those created during the fault run, the
    // emitter's end (refused by the full disk) is stored, and its subscriber sees it.
    for s in &acknowledged {
        app.finish(s).await;
    }
    if answer_refused {
        let session = app.session(&waiting).await;
        assert_eq!(session["status"], "failed", "{session}");
        let kinds: Vec<Value> = app.events(&waiting).await.iter().map(|e| e["type"].clone()).collect();
        assert!(!kinds.contains(&json!("input_received")), "{kinds:?}");
    }
    tokio::time::timeout(Duration::from_secs(30), reader).await.expect("the stream ends").unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(TERMINAL.contains(&seen.last().unwrap()["type"].as_str().unwrap()), "{:?}", seen.last());
    let live: Value = app.get("/v1/sessions?status=queued,running,paused,waiting&limit=100").await.json().await.unwrap();
    assert_eq!(live["data"], json!([]), "no session is left live");

    // Restart on the same disk: everything acknowledged and everything a subscriber saw is
    // there, with gap-free seqs.
    app.shutdown().await;
    let app = spawn_at(disk.path(), |_| {}).await;
    for s in &acknowledged {
        let session = app.session(s).await;
        assert!(TERMINAL.contains(&session["status"].as_str().unwrap_or("")), "{s}: {session}");
        let events = app.events(s).await;
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{s}: gap-free");
    }
    let stored = app.events(&emitter).await;
    assert_eq!(&stored[..seen.len()], &seen[..], "every event the subscriber saw is stored");
    let live: Value = app.get("/v1/sessions?status=queued,running,paused,waiting&limit=100").await.json().await.unwrap();
    assert_eq!(live["data"], json!([]), "nothing is left live after the restart");
    app.shutdown().await;

    // A start on the full disk either works (the database's own files have room) or says why not.
    let ballast = disk.fill();
    match agentd::server::start(&test_config(disk.path()), registry()).await {
        Err(error) => assert!(format!("{error:#}").contains("full"), "{error:#}"),
        Ok(server) => server.shutdown().await,
    }
    std::fs::remove_file(&ballast).unwrap();
}

#[tokio::test]
async fn starting_on_a_read_only_disk_names_the_cause() {
    let Some(disk) = SmallDisk::mount(true) else { return };
    let Err(error) = agentd::server::start(&test_config(disk.path()), registry()).await else {
        panic!("a server started on a read-only data directory");
    };
    let message = format!("{error:#}");
    assert!(message.contains("read-only"), "{message}");
}
