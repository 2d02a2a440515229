//! `agentd-bench browser`: the browser runtime on the fixture site (`agentd-testsite`), in a
//! real headless Chromium. Figures: session start → first page loaded; observe p50/p95 and
//! page-state tokens (chars / 4) per fixture page; click, type and navigate p50/p95; one
//! single-action step (observe + click); RSS and PSS added per session at 1, 5, 10 and 20
//! concurrent sessions, with Chromium's default process model and with a renderer limit.

use std::time::{Duration, Instant};

use agentd_browser::*;
use anyhow::Context;

use crate::ms_summary;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn index_of(state: &PageState, name: &str) -> anyhow::Result<u64> {
    state.elements.iter().find(|e| e.name == name).map(|e| e.index).with_context(|| format!("no element {name}"))
}

/// The `egress_allow` entries (as `AGENTD_EGRESS_ALLOW` reads them) that let the browser reach the
/// fixture site at `base` and nothing else on loopback: its port, by address and by name.
pub fn fixture_allow(base: &str) -> String {
    let port = base.trim_end_matches('/').rsplit(':').next().unwrap_or_default();
    format!("[127.0.0.1:{port},localhost:{port}]")
}

/// The pool's settings for the fixture site at `base`: the egress policy allows exactly it.
fn settings(base: &str) -> BrowserSettings {
    let port = base.trim_end_matches('/').rsplit(':').next().unwrap_or_default();
    let allow = agentd_egress::EgressAllow::parse(&[format!("127.0.0.1:{port}"), format!("localhost:{port}")]).expect("entries");
    let policy = agentd_egress::EgressPolicy { allow, ..Default::default() };
    BrowserSettings {
        egress: agentd_egress::EgressProxy::new(agentd_egress::ProxySettings { policy, ..Default::default() }),
        ..BrowserSettings::default()
    }
}

pub async fn figures() -> anyhow::Result<()> {
    let base = agentd_testsite::serve().await;
    proxy_overhead(&base).await?;
    let viewport = Viewport { width: 1280, height: 800 };

    // Session start → first page loaded (context, page, navigation, load event), without and
    // with a warm reserve; sessions arriving on an idle node (the previous one closed a
    // second before) and back to back (right after the previous one closed).
    for (warm, pause) in [(0, Duration::from_secs(1)), (2, Duration::from_secs(1)), (2, Duration::ZERO)] {
        let pool = BrowserPool::start(&BrowserSettings { warm_contexts: warm, ..settings(&base) }).await?;
        let (mut starts, mut leases) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            tokio::time::sleep(pause).await;
            while pool.warm_contexts() < warm {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let t = Instant::now();
            let mut s = pool.lease(viewport).await?;
            leases.push(ms(t));
            s.act(&Action::Navigate { url: format!("{base}products") }).await?;
            starts.push(ms(t));
            s.close().await?;
        }
        let arrival = if pause.is_zero() { "back to back" } else { "on an idle node" };
        println!(
            "browser: session start → first page loaded (products, {warm} warm contexts, {arrival}): {}; of which taking a context: {}",
            ms_summary(starts),
            ms_summary(leases)
        );
        pool.shutdown().await;
    }
    let pool = BrowserPool::start(&settings(&base)).await?;

    // Observe and page-state size per fixture page.
    let mut session = pool.lease(viewport).await?;
    println!("browser: page            elements  tokens  observe");
    for page in agentd_testsite::MAIN_PAGES {
        session.act(&Action::Navigate { url: format!("{base}{page}") }).await?;
        // Pages that assemble themselves (frames, lists) get a moment to do so.
        let _ = session.wait_for_network_idle(Duration::from_millis(200), Duration::from_secs(5)).await;
        let mut times = Vec::new();
        let mut state = session.observe().await?;
        for _ in 0..30 {
            let t = Instant::now();
            state = session.observe().await?;
            times.push(ms(t));
        }
        let tokens = PageState::tokens(&state.render());
        println!("browser: {page:<16} {:>8}  {tokens:>6}  {}", state.elements.len(), ms_summary(times));
    }

    // Actions on the product list: click, type (the list re-renders), navigate.
    session.act(&Action::Navigate { url: format!("{base}products") }).await?;
    let state = session.observe().await?;
    let search = index_of(&state, "Search products")?;
    let (mut clicks, mut types, mut steps, mut navigations) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..40 {
        // A single-action step: read the page, act on it.
        let t = Instant::now();
        let state = session.observe().await?;
        let add = index_of(&state, "Add Red Kettle to cart")?;
        session.act(&Action::Click { index: add, button: ClickKind::Single }).await?;
        steps.push(ms(t));
        let t = Instant::now();
        session.act(&Action::Click { index: add, button: ClickKind::Single }).await?;
        clicks.push(ms(t));
        // Typing re-renders the list (so the next step observes again).
        let t = Instant::now();
        let text = if i % 2 == 0 { "red" } else { "" };
        session.act(&Action::Type { index: search, text: text.into(), append: false, enter: false }).await?;
        types.push(ms(t));
    }
    for i in 0..20 {
        let page = if i % 2 == 0 { "article" } else { "products" };
        let t = Instant::now();
        session.act(&Action::Navigate { url: format!("{base}{page}") }).await?;
        navigations.push(ms(t));
    }
    println!("browser: click: {}", ms_summary(clicks));
    println!("browser: type: {}", ms_summary(types));
    println!("browser: navigate (loopback page): {}", ms_summary(navigations));
    println!("browser: one single-action step (observe + click): {}", ms_summary(steps));
    session.close().await?;
    pool.shutdown().await;

    if std::env::var_os("BENCH_SKIP_MEMORY").is_none() {
        for limit in [None, Some(4)] {
            memory_per_session(&base, limit).await?;
        }
    }
    Ok(())
}

/// RSS and PSS of this process's Chromium processes (the browser and its helpers), in MB.
fn chromium_memory() -> (f64, f64) {
    process_tree_memory(std::process::id(), false)
}

/// RSS and PSS of the processes below `root` (and of `root` itself when `include_root`), in MB.
pub(crate) fn process_tree_memory(root: u32, include_root: bool) -> (f64, f64) {
    let mut family = vec![root];
    let mut total = (0u64, 0u64);
    let mut add = |path: &std::path::Path| {
        let rollup = std::fs::read_to_string(path.join("smaps_rollup")).unwrap_or_default();
        let field = |name: &str| {
            rollup
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.0 += field("Rss:");
        total.1 += field("Pss:");
    };
    if include_root {
        add(std::path::Path::new(&format!("/proc/{root}")));
    }
    // Walk the process tree below `root` (Chromium's zygotes re-parent helpers).
    let mut changed = true;
    let mut seen = std::collections::HashSet::new();
    while changed {
        changed = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if seen.contains(&pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat.rsplit_once(") ").and_then(|(_, r)| r.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
            if ppid.is_some_and(|p| family.contains(&p)) {
                family.push(pid);
                seen.insert(pid);
                changed = true;
                add(&entry.path());
            }
        }
    }
    (total.0 as f64 / 1024.0, total.1 as f64 / 1024.0)
}

async fn memory_per_session(base: &str, renderer_limit: Option<usize>) -> anyhow::Result<()> {
    let settings = BrowserSettings { renderer_process_limit: renderer_limit, ..settings(base) };
    let pool = BrowserPool::start(&settings).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss0, pss0) = chromium_memory();
    let model = renderer_limit.map_or("default process model".to_string(), |n| format!("--renderer-process-limit={n}"));
    println!("browser: memory, {model}: browser alone RSS {rss0:.0} MB, PSS {pss0:.0} MB");
    let mut sessions = Vec::new();
    let mut first = 0.0;
    for n in [1usize, 5, 10, 20] {
        while sessions.len() < n {
            let mut s = pool.lease(Viewport { width: 1280, height: 800 }).await?;
            let page = ["products", "article", "form", "app/home"][sessions.len() % 4];
            s.act(&Action::Navigate { url: format!("{base}{page}") }).await?;
            s.observe().await?;
            sessions.push(s);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, pss) = chromium_memory();
        // The first renderer carries alone the code pages later ones share (PSS splits
        // shared pages among the processes mapping them): what each further session adds
        // is the marginal figure.
        let marginal = if n == 1 {
            first = pss;
            String::new()
        } else {
            format!(", {:.0} MB per session beyond the first", (pss - first) / (n - 1) as f64)
        };
        println!(
            "browser:   {n:>2} sessions: RSS +{:.0} MB ({:.0} MB/session), PSS +{:.0} MB ({:.0} MB/session{marginal})",
            rss - rss0,
            (rss - rss0) / n as f64,
            pss - pss0,
            (pss - pss0) / n as f64
        );
    }
    for s in sessions {
        s.close().await?;
    }
    pool.shutdown().await;
    Ok(())
}

/// What the egress proxy adds: the same small GET of the fixture site, directly and through a
/// lane (keep-alive on both legs to the proxy, as Chromium does; the proxy opens an upstream
/// connection per request), and the memory of lanes and of idle connections through them.
async fn proxy_overhead(base: &str) -> anyhow::Result<()> {
    let BrowserSettings { egress, .. } = settings(base);
    let lane = egress.lane().await?;
    let direct = reqwest::Client::builder().no_proxy().build()?;
    let proxied = reqwest::Client::builder().proxy(reqwest::Proxy::http(lane.proxy_server())?).build()?;
    let url = format!("{base}files/notes.txt");
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..4_000 {
        let which = round % 2;
        let client = if which == 0 { &direct } else { &proxied };
        let t = Instant::now();
        let body = client.get(&url).send().await?.error_for_status()?.bytes().await?;
        anyhow::ensure!(!body.is_empty(), "an empty answer");
        if round >= 200 {
            times[which].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let [mut direct_ms, mut proxied_ms] = times;
    for v in [&mut direct_ms, &mut proxied_ms] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    }
    let (d50, d99) = (crate::percentile(&direct_ms, 0.5), crate::percentile(&direct_ms, 0.99));
    let (p50, p99) = (crate::percentile(&proxied_ms, 0.5), crate::percentile(&proxied_ms, 0.99));
    println!(
        "browser: egress proxy, one GET on loopback: direct p50 {d50:.3} ms p99 {d99:.3} ms; through the proxy p50 {p50:.3} ms p99 {p99:.3} ms; added p50 {:.3} ms, p99 {:.3} ms",
        p50 - d50,
        p99 - d99
    );
    let refused_url = "http://10.0.0.1/";
    let mut refusals = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let status = proxied.get(refused_url).send().await?.status();
        anyhow::ensure!(status == reqwest::StatusCode::FORBIDDEN, "the proxy let {refused_url} through: {status}");
        refusals.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("browser: egress proxy, a refused request answered in {}", crate::ms_summary(refusals));
    drop(proxied);
    // Memory: 200 lanes (one per context), then 1,000 idle keep-alive connections through them.
    let me = std::process::id();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = crate::rss_kib(me);
    let mut lanes = Vec::new();
    for _ in 0..200 {
        lanes.push(egress.lane().await?);
    }
    let with_lanes = crate::rss_kib(me);
    let mut connections = Vec::new();
    for i in 0..1_000 {
        let mut stream = tokio::net::TcpStream::connect(lanes[i % lanes.len()].addr()).await?;
        use tokio::io::AsyncWriteExt;
        stream.write_all(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await?;
        connections.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_connections = crate::rss_kib(me);
    println!(
        "browser: egress proxy memory: {:.1} KB per lane (200 lanes), {:.1} KB per open keep-alive connection (1,000, after one request each)",
        (with_lanes.saturating_sub(before)) as f64 / 200.0,
        (with_connections.saturating_sub(with_lanes)) as f64 / 1000.0
    );
    drop(connections);
    drop(lanes);
    Ok(())
}
