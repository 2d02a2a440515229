//! `agentd-bench connections`: what open connections cost the release `agentd serve`, run as
//! a child process so that its RSS is the server's alone. Figures, at 1,000 and 10,000:
//! 1. RSS per idle connection: connections that never send a byte, and connections kept alive
//!    after one request (`GET /healthz`);
//! 2. RSS per SSE subscriber on one running session (its agent waits on a scripted LLM that
//!    does not answer, so the streams are open and quiet apart from heartbeats);
//! 3. RSS once they have all closed, against the idle server's.
//!
//! `BENCH_AGENTD=/path/to/agentd` measures another build (an older one: the settings it may
//! not know, the connection cap and timeouts, are then not passed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentd_testllm::{Reply, ScriptedLlm};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::{KEY, rss_kib};

/// Connections being opened at once (the server's listen backlog is 1,024).
const CONNECTING: usize = 256;

struct Server {
    /// Killed when dropped.
    _child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(llm: &ScriptedLlm, connections: usize) -> anyhow::Result<Server> {
        let (exe, current) = match std::env::var_os("BENCH_AGENTD") {
            Some(exe) => (std::path::PathBuf::from(exe), false),
            None => (std::env::current_exe()?.with_file_name("agentd"), true),
        };
        if !exe.exists() {
            bail!("{} not built; run `cargo build --release -p agentd`", exe.display());
        }
        let dir = tempfile::tempdir()?;
        let mut command = crate::serve_command(&exe, dir.path(), llm);
        command
            .env("AGENTD_LLM_TIMEOUT_SECONDS", "3600")
            .env("AGENTD_LLM_MAX_RETRIES", "0")
            // No browser: the research agent waits on the LLM first, and the figure is agentd's.
            .env("AGENTD_CHROME", "/nonexistent/chromium")
            .kill_on_drop(true);
        if current {
            command
                .env("AGENTD_MAX_CONNECTIONS", (connections + 100).to_string())
                // Idle connections are what is measured: they must stay open meanwhile.
                .env("AGENTD_IDLE_TIMEOUT_SECONDS", "3600");
        }
        let mut child = command.spawn().with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id().context("the server's pid")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = crate::listening_address(&mut lines).await?.context("agentd serve did not say where it listens")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = base.trim_start_matches("http://").parse()?;
        Ok(Server { _child: child, pid, addr, base, _dir: dir })
    }

    /// RSS once it has stopped moving (two readings 500 ms apart within 1 %, or 10 s), in KiB.
    async fn settled_rss(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = rss_kib(self.pid);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = rss_kib(self.pid);
            if now.abs_diff(last) * 100 <= last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

/// How long RSS is watched after the connections close.
const RETURN_WATCH: Duration = Duration::from_secs(30);

/// RSS after the connections have closed: the first reading within 10 % of `idle` (the
/// allocator returns memory after a delay), or the last one after [`RETURN_WATCH`]; with the
/// time it took.
async fn rss_after_close(server: &Server, idle: u64) -> (u64, Duration) {
    let closed = Instant::now();
    loop {
        let now = rss_kib(server.pid);
        if now * 10 <= idle * 11 || closed.elapsed() >= RETURN_WATCH {
            return (now, closed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Opens `n` connections (each made ready by `prepare`) and keeps them open until dropped.
async fn open_many<F, Fut>(n: usize, addr: SocketAddr, prepare: F) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>>
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(tokio::spawn({
            let (prepare, ready, failed, connecting) = (prepare.clone(), ready.clone(), failed.clone(), connecting.clone());
            async move {
                let permit = connecting.acquire_owned().await;
                let result = async move {
                    let socket = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await??;
                    drop(permit);
                    prepare(socket, ready).await
                }
                .await;
                if result.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!("only {} of {n} connections ready after 120 s", ready.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {n} connections failed");
    }
    Ok(held)
}

/// A connection that never sends anything.
async fn silent(socket: TcpStream, ready: Arc<AtomicUsize>) -> anyhow::Result<()> {
    ready.fetch_add(1, Ordering::Relaxed);
    hold(socket).await
}

/// A connection kept alive after one request.
async fn after_one_request(mut socket: TcpStream, ready: Arc<AtomicUsize>) -> anyhow::Result<()> {
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: agentd\r\n\r\n").await?;
    read_head(&mut socket).await?;
    ready.fetch_add(1, Ordering::Relaxed);
    hold(socket).await
}

/// An SSE subscriber on session `id`, counted ready at its response's head.
async fn subscriber(id: Arc<str>, mut socket: TcpStream, ready: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let request = format!("GET /v1/sessions/{id}/events HTTP/1.1\r\nHost: agentd\r\nAuthorization: Bearer {KEY}\r\nAccept: text/event-stream\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let head = read_head(&mut socket).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("subscription refused: {head}");
    }
    ready.fetch_add(1, Ordering::Relaxed);
    hold(socket).await
}

async fn read_head(socket: &mut TcpStream) -> anyhow::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            bail!("closed before a response");
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Reads (and drops) whatever comes until the server closes or the task is aborted.
async fn hold(mut socket: TcpStream) -> anyhow::Result<()> {
    let mut buf = [0u8; 256];
    while socket.read(&mut buf).await? > 0 {}
    Ok(())
}

/// Closes every connection (aborting its task drops its socket).
async fn close_all(held: Vec<tokio::task::JoinHandle<()>>) {
    for task in &held {
        task.abort();
    }
    for task in held {
        let _ = task.await;
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(what: &str, n: usize, idle: u64, held: u64, (after, took): (u64, Duration)) {
    let per = held.saturating_sub(idle) as f64 * 1024.0 / n as f64 / 1000.0;
    let back = (after as f64 / idle as f64 - 1.0) * 100.0;
    println!(
        "{n:>6} {what}: RSS {:.1} MB idle → {:.1} MB held ({per:.1} KB each) → {:.1} MB {:.0} s after they closed ({back:+.0} % of idle)",
        mb(idle),
        mb(held),
        mb(after),
        took.as_secs_f64()
    );
}

async fn idle_connections(llm: &ScriptedLlm, n: usize, one_request: bool) -> anyhow::Result<()> {
    let server = Server::start(llm, n).await?;
    let http = reqwest::Client::new();
    http.get(format!("{}/healthz", server.base)).send().await?.error_for_status()?;
    let idle = server.settled_rss().await;
    let held = if one_request { open_many(n, server.addr, after_one_request).await? } else { open_many(n, server.addr, silent).await? };
    let held_rss = server.settled_rss().await;
    close_all(held).await;
    let after = rss_after_close(&server, idle).await;
    let what = if one_request { "idle connections (after one request each)" } else { "idle connections (silent)" };
    report(what, n, idle, held_rss, after);
    Ok(())
}

async fn subscribers(llm: &ScriptedLlm, n: usize) -> anyhow::Result<()> {
    let server = Server::start(llm, n).await?;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/sessions", server.base))
        .bearer_auth(KEY)
        .json(&json!({"goal": "What is the tallest mountain?", "mode": "research", "timeout_seconds": 3600}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    // Running, its agent waiting on the LLM.
    let deadline = Instant::now() + Duration::from_secs(20);
    while llm.requests().is_empty() {
        if Instant::now() > deadline {
            let session: Value = http.get(format!("{}/v1/sessions/{id}", server.base)).bearer_auth(KEY).send().await?.json().await?;
            bail!("the session never called the LLM: {session}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id: Arc<str> = id.into();
    let idle = server.settled_rss().await;
    let held = open_many(n, server.addr, move |socket, ready| subscriber(id.clone(), socket, ready)).await?;
    let held_rss = server.settled_rss().await;
    close_all(held).await;
    let after = rss_after_close(&server, idle).await;
    report("SSE subscribers on one running session", n, idle, held_rss, after);
    Ok(())
}

/// Prints the figures.
pub async fn figures() -> anyhow::Result<()> {
    let llm = ScriptedLlm::start().await;
    // The agent's first LLM call waits: the session stays running, its streams quiet.
    llm.set_fallback(Reply::Delayed(Duration::from_secs(3600), Box::new(Reply::Text("late".into()))));
    for n in [1_000, 10_000] {
        idle_connections(&llm, n, false).await?;
        idle_connections(&llm, n, true).await?;
    }
    for n in [1_000, 10_000] {
        subscribers(&llm, n).await?;
    }
    Ok(())
}
