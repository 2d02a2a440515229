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

pub async fn figures() -> anyhow::Result<()> {
    let base = agentd_testsite::serve().await;
    let viewport = Viewport { width: 1280, height: 800 };

    // Session start → first page loaded (context, page, navigation, load event), without and
    // with a warm reserve; sessions arriving on an idle node (the previous one closed a
    // second before) and back to back (right after the previous one closed).
    for (warm, pause) in [(0, Duration::from_secs(1)), (2, Duration::from_secs(1)), (2, Duration::ZERO)] {
        let pool = BrowserPool::start(&BrowserSettings { warm_contexts: warm, ..BrowserSettings::default() }).await?;
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await?;

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
    let settings = BrowserSettings { renderer_process_limit: renderer_limit, ..BrowserSettings::default() };
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
