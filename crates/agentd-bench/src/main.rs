//! agentd-bench: measures the step-1 figures against a real agentd server and prints them.
//!
//! `cargo run --release -p agentd-bench` (build `-p agentd` in release first for the
//! start-up and memory figures). The driver starts this same binary as a child server
//! (`agentd-bench server ...`) whose agents take no time, and talks to it over loopback HTTP
//! and SSE like any client, so the child's memory is the server's alone. Figures:
//! 1. POST /v1/sessions → the session's first event (agent start), p50/p99, idle server;
//! 2. sustained sessions/s with 16 concurrent clients;
//! 3. event append → SSE subscriber latency p50/p99 at 1,000 and 20,000 events/s;
//! 4. 1,000 concurrent SSE subscribers: delivery p99 and memory added;
//! 5. cold start of `target/release/agentd` to its first `/healthz`, and its idle RSS;
//! 6. (`agentd-bench browser`) the browser runtime on the fixture site (see `browser.rs`);
//! 7. (`agentd-bench agent`) the browser agent end to end with a scripted LLM (see `agent.rs`);
//! 8. (`agentd-bench fetch`) `fetch_url` throughput and extraction quality (see `fetch.rs`);
//! 9. (`agentd-bench embed`) the local embedding model's throughput and `VectorIndex` search
//!    latency at 10k and 100k rows (see `embed.rs`).
//! 10. (`agentd-bench tables`) table inserts with and without vectorization, background
//!    vectorization, and search end to end (see `tables.rs`).
//! 11. (`agentd-bench connections`) memory per idle connection and per SSE subscriber at
//!     1,000 and 10,000, and after they close, of the release `agentd serve` (see
//!     `connections.rs`).

mod agent;
mod browser;
mod connections;
mod embed;
mod fetch;
mod tables;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentd::config::{Config, Secret};
use agentd_domain::{EventKind, Mode, ResponseType};
use agentd_engine::{Agent, AgentError, AgentRegistry, Completion, SessionContext};
use anyhow::{Context, bail};
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The allocator of `agentd serve` (see its main.rs), so that the child server's figures are
/// the product's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const KEY: &str = "bench-admin-key-0001";

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The bench's agent; its goal says what to do:
/// `noop` completes at once; `mark` records when it started; `emit:RATE:SECONDS:DELAY_MS`
/// waits DELAY_MS, then emits RATE events per second for SECONDS, each stamped with the
/// wall-clock time of its append.
struct BenchAgent;

#[async_trait]
impl Agent for BenchAgent {
    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError> {
        let goal = ctx.spec().goal.clone();
        let parts: Vec<&str> = goal.split(':').collect();
        match parts.as_slice() {
            ["mark"] => {
                ctx.emit(EventKind::Log, json!({"t": wall_ns()})).await?;
            }
            ["emit", rate, secs, delay] => {
                let rate: f64 = rate.parse().unwrap_or(1000.0);
                let total = (rate * secs.parse::<f64>().unwrap_or(1.0)) as u64;
                tokio::time::sleep(Duration::from_millis(delay.parse().unwrap_or(0))).await;
                let start = tokio::time::Instant::now();
                for i in 0..total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due).await;
                    ctx.emit(EventKind::Log, json!({"t": wall_ns(), "i": i})).await?;
                }
            }
            _ => {}
        }
        Ok(Completion {
            response: json!("ok"),
            response_type: ResponseType::String,
        })
    }
}

fn raise_fd_limit() {
    // SAFETY: plain libc calls on a stack value.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64, usize) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (percentile(&v, 0.5), percentile(&v, 0.99), v.last().copied().unwrap_or(f64::NAN), v.len())
}

async fn run_server(dir: PathBuf, concurrency: usize) -> anyhow::Result<()> {
    let config = Config {
        addr: "127.0.0.1:0".into(),
        data_dir: dir,
        admin_key: Some(Secret::new(KEY)),
        max_concurrent_sessions: concurrency,
        log: "error".into(),
        ..Config::default()
    };
    let mut registry = AgentRegistry::new();
    registry.register(Mode::Browser, Arc::new(BenchAgent));
    let server = agentd::server::start(&config, registry).await?;
    println!("ADDR {}", server.addr);
    std::future::pending::<()>().await;
    Ok(())
}

struct Child {
    process: tokio::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

async fn spawn_child(concurrency: usize) -> anyhow::Result<Child> {
    let dir = tempfile::tempdir()?;
    let mut process = tokio::process::Command::new(std::env::current_exe()?)
        .args(["server", &dir.path().display().to_string(), &concurrency.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = process.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix("ADDR ") {
            return Ok(Child { process, base: format!("http://{addr}"), _dir: dir });
        }
    }
    bail!("bench server did not start")
}

async fn create(http: &reqwest::Client, base: &str, goal: &str) -> anyhow::Result<String> {
    let r: Value = http
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(KEY)
        .json(&json!({"goal": goal, "timeout_seconds": 3600}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(r["id"].as_str().context("id")?.to_owned())
}

async fn wait_done(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<()> {
    loop {
        let s: Value = http.get(format!("{base}/v1/sessions/{id}")).bearer_auth(KEY).send().await?.json().await?;
        if s["status"] == "completed" {
            return Ok(());
        }
        if s["ended_at"].is_string() {
            bail!("session {id} ended as {}", s["status"]);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn first_event_latency(child: &Child, http: &reqwest::Client) -> anyhow::Result<()> {
    // One session at a time, each on an idle server: the previous one has long finished.
    let mut started = Vec::new();
    for _ in 0..320 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let t0 = wall_ns();
        let id = create(http, &child.base, "mark").await?;
        started.push((t0, id));
    }
    let mut lat = Vec::new();
    for (i, (t0, id)) in started.iter().enumerate() {
        wait_done(http, &child.base, id).await?;
        let page: Value = http.get(format!("{}/v1/sessions/{id}/events", child.base)).bearer_auth(KEY).send().await?.json().await?;
        let t = page["data"].as_array().and_then(|d| d.iter().find(|e| e["type"] == "log")).and_then(|e| e["data"]["t"].as_u64()).context("mark")?;
        if i >= 20 {
            lat.push((t.saturating_sub(*t0)) as f64 / 1e6);
        }
    }
    let (p50, p99, max, n) = summary(lat);
    println!("POST /v1/sessions → first event (idle server, n={n}): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    Ok(())
}

async fn sessions_per_second(child: &Child, http: &reqwest::Client) -> anyhow::Result<()> {
    let window = Duration::from_secs(5);
    let start = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let http = http.clone();
            let base = child.base.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while start.elapsed() < window {
                    if let Ok(id) = create(&http, &base, "noop").await {
                        ids.push(id);
                    }
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await?);
    }
    let created_in = start.elapsed();
    loop {
        let page: Value = http
            .get(format!("{}/v1/sessions?status=queued,running&limit=1", child.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if page["data"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_done = start.elapsed();
    println!(
        "sustained sessions with 16 clients: {} created in {:.2} s = {:.0} sessions/s created, {:.0} sessions/s created and completed",
        ids.len(),
        created_in.as_secs_f64(),
        ids.len() as f64 / created_in.as_secs_f64(),
        ids.len() as f64 / all_done.as_secs_f64()
    );
    Ok(())
}

/// The `"t":<ns>` stamp of a bench event, without parsing the whole JSON.
fn stamp(data: &str) -> Option<u64> {
    let rest = &data[data.find("\"t\":")? + 4..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Opens an SSE stream and records (receive time − append time) for every event stamped `t`,
/// until the `completed` event. A deliberately lean client (a raw socket, a byte scan), so
/// that on a two-core machine shared with the server the figure is the server's, not the
/// client's parsing.
async fn subscribe(_http: reqwest::Client, base: String, id: String) -> anyhow::Result<Vec<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /v1/sessions/{id}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut lat = Vec::new();
    let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("stream closed before the session completed");
        }
        let now = wall_ns();
        pending.extend_from_slice(&chunk[..n]);
        // Only whole events (ending in a blank line) are read; the rest waits for more bytes.
        let Some(end) = pending.windows(2).rposition(|w| w == b"\n\n") else { continue };
        let complete = std::str::from_utf8(&pending[..end]).unwrap_or_default();
        let mut rest = complete;
        while let Some(t) = stamp(rest) {
            lat.push(now.saturating_sub(t) as f64 / 1e6);
            rest = &rest[rest.find("\"t\":").map_or(rest.len(), |i| i + 4)..];
        }
        let finished = complete.contains("event: completed");
        pending.drain(..end + 2);
        if finished {
            return Ok(lat);
        }
    }
}

async fn append_to_subscriber(child: &Child, http: &reqwest::Client, rate: u32) -> anyhow::Result<()> {
    let per_session = 1000u32;
    let sessions = (rate / per_session).max(1);
    let secs = 5;
    let mut subs = Vec::new();
    for _ in 0..sessions {
        let id = create(http, &child.base, &format!("emit:{per_session}:{secs}:1500")).await?;
        subs.push(tokio::spawn(subscribe(http.clone(), child.base.clone(), id)));
    }
    let mut lat = Vec::new();
    for s in subs {
        lat.extend(s.await??);
    }
    let (p50, p99, max, n) = summary(lat);
    println!(
        "append → SSE subscriber at {rate} events/s ({sessions} session(s) × {per_session}/s, {n} events): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    Ok(())
}

async fn many_subscribers(child: &Child, http: &reqwest::Client, rate: u32) -> anyhow::Result<()> {
    let pid = child.process.id().context("pid")?;
    let secs = 5;
    let expected = (rate * secs) as usize;
    let id = create(http, &child.base, &format!("emit:{rate}:{secs}:4000")).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(pid);
    let subs: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(subscribe(http.clone(), child.base.clone(), id.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let held = rss_kib(pid);
    let mut lat = Vec::new();
    let mut complete = 0;
    for s in subs {
        if let Ok(Ok(l)) = s.await {
            if l.len() == expected {
                complete += 1;
            }
            lat.extend(l);
        }
    }
    let (p50, p99, max, n) = summary(lat);
    println!(
        "1,000 SSE subscribers on one session ({rate} events/s for {secs} s): {complete}/1000 got all {expected} events; delivery p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms over {n} deliveries; server RSS {:.1} MB → {:.1} MB (+{:.1} MB)",
        before as f64 / 1024.0,
        held as f64 / 1024.0,
        held.saturating_sub(before) as f64 / 1024.0
    );
    Ok(())
}

async fn cold_start(http: &reqwest::Client) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?.with_file_name("agentd");
    if !exe.exists() {
        println!("cold start: skipped ({} not built; run `cargo build --release -p agentd`)", exe.display());
        return Ok(());
    }
    let mut starts = Vec::new();
    let mut idle_rss = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir()?;
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(&exe)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", &dir.path().display().to_string()])
            .env("AGENTD_ADMIN_KEY", KEY)
            .env("AGENTD_LOG", "error")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = listening_address(&mut lines).await?.context("agentd did not print its address")?;
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        starts.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle_rss.push(rss_kib(child.id().context("pid")?) as f64 / 1024.0);
        child.kill().await?;
    }
    let (p50, _, max, _) = summary(starts);
    let (rss50, _, rss_max, _) = summary(idle_rss);
    println!("cold start to first /healthz (5 runs, fresh data dir): median {p50:.0} ms, max {max:.0} ms");
    println!("idle RSS after start: median {rss50:.1} MB, max {rss_max:.1} MB");
    Ok(())
}

fn ms_summary(v: Vec<f64>) -> String {
    let (p50, _, _, _) = summary(v.clone());
    let mut sorted = v;
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    format!("p50 {p50:.1} ms, p95 {:.1} ms", percentile(&sorted, 0.95))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    agentd::install_tls();
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        let dir = PathBuf::from(args.get(2).context("data dir")?);
        let concurrency = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(64);
        return run_server(dir, concurrency).await;
    }
    let only = args.get(1).cloned().unwrap_or_default();
    let wants = |name: &str| only.is_empty() || only == name;
    let http = reqwest::Client::builder().pool_max_idle_per_host(2048).build()?;
    println!("agentd bench — {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if wants("first") {
        let child = spawn_child(64).await?;
        first_event_latency(&child, &http).await?;
    }
    if wants("throughput") {
        let child = spawn_child(64).await?;
        sessions_per_second(&child, &http).await?;
    }
    if wants("append") {
        for rate in [1_000, 20_000] {
            let child = spawn_child(64).await?;
            append_to_subscriber(&child, &http, rate).await?;
        }
    }
    if wants("fanout") {
        for rate in [10, 100] {
            let child = spawn_child(64).await?;
            many_subscribers(&child, &http, rate).await?;
        }
    }
    if wants("cold") {
        cold_start(&http).await?;
    }
    if only == "browser" {
        browser::figures().await?;
    }
    if only == "agent" {
        agent::figures().await?;
    }
    if only == "connections" {
        connections::figures().await?;
    }
    if only == "fetch" {
        fetch::figures().await?;
    }
    if only == "tables" {
        tables::figures().await?;
    }
    if only == "embed" {
        embed::figures().await?;
    }
    Ok(())
}

/// `agentd serve` from `exe` on a loopback port over `data_dir`, with the bench's admin key and
/// the scripted LLM, its stdout piped (the listening address is read from it); callers add
/// what their figure needs.
pub(crate) fn serve_command(exe: &std::path::Path, data_dir: &std::path::Path, llm: &agentd_testllm::ScriptedLlm) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", &data_dir.display().to_string()])
        .env("AGENTD_ADMIN_KEY", KEY)
        // chromiumoxide reports the browser's connection closing at shutdown as an error.
        .env("AGENTD_LOG", "error,chromiumoxide=off")
        .env("AGENTD_LLM_PROVIDER", "openai")
        .env("AGENTD_LLM_BASE_URL", llm.openai_base_url())
        .env("AGENTD_LLM_API_KEY", "sk-bench")
        .env("AGENTD_LLM_MODEL", "scripted-model")
        .stdout(Stdio::piped());
    command
}

/// The address a starting `agentd serve` prints (`listening on ...`), read from its stdout.
pub(crate) async fn listening_address(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> std::io::Result<Option<String>> {
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.split("listening on ").nth(1) {
            return Ok(Some(rest.trim().to_owned()));
        }
    }
    Ok(None)
}
