//! `agentd-bench fetch`: `fetch_url` (agentd-fetch) on its fixture web on loopback. Figures:
//! fetch + extract throughput in pages/s, one at a time and 8 at once, per page kind (with the
//! sequential latency); the endless page cut at the 5 MiB limit; and extraction quality per
//! fixture page — the share of its known main-text sentences kept and of its known boilerplate
//! strings dropped.

use std::time::{Duration, Instant};

use agentd_egress::EgressPolicy;
use agentd_fetch::fixtures::{self, FixtureWeb};
use agentd_fetch::{FetchLimits, Fetcher};
use anyhow::Context;
use futures::StreamExt;

use crate::ms_summary;

/// The pages timed: the article, the other HTML shapes, a sniffed legacy encoding, and the
/// non-HTML kinds.
const TIMED: [&str; 8] =
    ["/article", "/long-article", "/docs", "/blog", "/sjis-undeclared", "/report.pdf", "/data.json", "/notes.txt"];

/// Fetches per figure, after a warm-up.
const SEQUENTIAL_FETCHES: usize = 300;
const CONCURRENT_FETCHES: usize = 800;
const CONCURRENCY: usize = 8;

pub async fn figures() -> anyhow::Result<()> {
    let web = fixtures::serve().await;
    let fetcher = Fetcher::new(EgressPolicy::with_private_networks(true), FetchLimits::default())?;

    println!(
        "fetch: page                 bytes   sequential                                   {CONCURRENCY} concurrent"
    );
    for path in TIMED {
        let url = web.url(path);
        let page = fetcher.fetch(&url).await.with_context(|| format!("fetching {path}"))?;
        let (per_second, latencies) = sequential(&fetcher, &url).await?;
        let concurrent = concurrent(&fetcher, &url).await?;
        println!(
            "fetch: {path:<18} {:>8}   {per_second:>7.0} pages/s ({})   {concurrent:>7.0} pages/s",
            page.bytes,
            ms_summary(latencies)
        );
    }
    huge_page(&web).await?;

    println!("fetch: extraction quality   main text kept        boilerplate dropped   text chars");
    let (mut kept, mut main, mut dropped, mut boilerplate) = (0, 0, 0, 0);
    for fixture in fixtures::pages() {
        let page = fetcher.fetch(&web.url(fixture.path)).await.with_context(|| format!("fetching {}", fixture.path))?;
        let quality = fixture.quality(&page.text);
        kept += quality.kept;
        main += quality.main;
        dropped += quality.dropped;
        boilerplate += quality.boilerplate;
        let dropped_figure = if quality.boilerplate == 0 {
            "—".to_owned()
        } else {
            format!("{:>3.0} % ({}/{})", quality.dropped_share() * 100.0, quality.dropped, quality.boilerplate)
        };
        println!(
            "fetch: {:<18} {:>9.0} % ({}/{})   {dropped_figure:<20}  {:>6}{}",
            fixture.name,
            quality.kept_share() * 100.0,
            quality.kept,
            quality.main,
            page.text.chars().count(),
            leaks(&fixture.leaked(&page.text))
        );
    }
    println!(
        "fetch: all pages          {:>9.0} % ({kept}/{main})   {:>3.0} % ({dropped}/{boilerplate})",
        share(kept, main) * 100.0,
        share(dropped, boilerplate) * 100.0
    );
    let app = fetcher.fetch(&web.url(fixtures::app_page().path)).await?;
    println!("fetch: JavaScript-only page flagged needs_browser: {}", app.needs_browser);
    Ok(())
}

/// Pages per second fetching `url` one after another, and each fetch's latency in ms.
async fn sequential(fetcher: &Fetcher, url: &str) -> anyhow::Result<(f64, Vec<f64>)> {
    for _ in 0..10 {
        fetcher.fetch(url).await?;
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL_FETCHES);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL_FETCHES {
        let t = Instant::now();
        fetcher.fetch(url).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((SEQUENTIAL_FETCHES as f64 / started.elapsed().as_secs_f64(), latencies))
}

/// Pages per second fetching `url` with [`CONCURRENCY`] fetches in flight.
async fn concurrent(fetcher: &Fetcher, url: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..CONCURRENT_FETCHES)
        .map(|_| {
            let (fetcher, url) = (fetcher.clone(), url.to_owned());
            // Spawned, so that the fetches run on every worker thread as the agent's would.
            tokio::spawn(async move { fetcher.fetch(&url).await })
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for result in results {
        result??;
    }
    Ok(CONCURRENT_FETCHES as f64 / started.elapsed().as_secs_f64())
}

/// The endless page read to the default 5 MiB limit: time, bytes, and what the server handed out.
async fn huge_page(web: &FixtureWeb) -> anyhow::Result<()> {
    let fetcher = Fetcher::new(EgressPolicy::with_private_networks(true), FetchLimits::default())?;
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        last = Some(fetcher.fetch(&web.url("/huge")).await?);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let page = last.context("no fetch")?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!(
        "fetch: endless page cut at the limit: {} ({} bytes read, truncated {}, {} chars of text; server handed out {:.1} MiB over 5 fetches)",
        ms_summary(times),
        page.bytes,
        page.truncated,
        page.text.chars().count(),
        web.huge_bytes_served() as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

fn leaks(leaked: &[&str]) -> String {
    if leaked.is_empty() { String::new() } else { format!("   kept: {leaked:?}") }
}
