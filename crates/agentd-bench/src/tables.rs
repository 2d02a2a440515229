//! `agentd-bench tables`: the database on a real in-process server, over loopback HTTP.
//! Figures:
//! 1. insert throughput (rows/s) of 10,000 rows (`BENCH_TABLE_ROWS=100000` for more) in
//!    batches of 1,000, without a vectorized column, and with one
//!    (the HTTP answer comes before the embeddings);
//! 2. vectorization throughput: rows embedded per second by the background vectorizer with the
//!    local all-MiniLM-L6-v2 (`AGENTD_EMBED_MODEL_DIR`, or where `scripts/install-model.sh`
//!    puts it), from the insert to the last row `DONE`;
//! 3. `POST /v1/tables/{t}/search` end to end (HTTP, embedding the query, the index, reading the
//!    rows): p50/p99 for full-text, semantic and hybrid over the embedded rows.

use std::time::{Duration, Instant};

use agentd::config::{Config, Secret};
use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::KEY;

/// Rows inserted per figure: 10,000, or `BENCH_TABLE_ROWS` (a multiple of the batch).
fn rows() -> usize {
    std::env::var("BENCH_TABLE_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000).max(BATCH) / BATCH * BATCH
}
/// Rows per request.
const BATCH: usize = 1_000;
/// Searches timed per mode.
const SEARCHES: usize = 200;

const WORDS: [&str; 24] = [
    "garden", "river", "engine", "violin", "market", "forest", "battery", "recipe", "glacier", "harbor", "planet", "lantern",
    "meadow", "signal", "canyon", "orchard", "thunder", "library", "compass", "bakery", "satellite", "festival", "island", "workshop",
];

fn sentence(i: usize) -> String {
    let w = |k: usize| WORDS[(i * 7 + k * 13 + i / 24) % WORDS.len()];
    format!("The {} near the {} keeps a {} for every {} in town {i}.", w(0), w(1), w(2), w(3))
}

pub async fn figures() -> anyhow::Result<()> {
    let total = rows();
    let model_dir = std::env::var_os(agentd_embed::MODEL_DIR_ENV)
        .map(std::path::PathBuf::from)
        .or_else(agentd_embed::installed_model_dir)
        .filter(|d| agentd_embed::is_model_dir(d))
        .context("the embedding model is missing: run scripts/install-model.sh (or set AGENTD_EMBED_MODEL_DIR)")?;
    let dir = tempfile::tempdir()?;
    let config = Config {
        addr: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(Secret::new(KEY)),
        log: "warn".into(),
        embed_model_dir: Some(model_dir),
        ..Config::default()
    };
    let server = agentd::server::start(&config, agentd_engine::AgentRegistry::new()).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.post(url).bearer_auth(KEY).json(&body).send().await?;
            let status = r.status();
            let body: Value = r.json().await?;
            if !status.is_success() {
                bail!("{status}: {body}");
            }
            anyhow::Ok(body)
        }
    };

    for (name, vectorized) in [("plain", false), ("vectorized", true)] {
        post("/v1/tables".into(), json!({"name": name, "columns": [{"name": "title", "type": "string"}, {"name": "body", "type": "long_text", "vectorized": vectorized}]})).await?;
        let started = Instant::now();
        for chunk in 0..total / BATCH {
            let rows: Vec<Value> = (chunk * BATCH..(chunk + 1) * BATCH).map(|i| json!({"title": format!("row {i}"), "body": sentence(i)})).collect();
            post(format!("/v1/tables/{name}/rows"), json!({"rows": rows})).await?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!("tables: insert {total} rows ({name}, batches of {BATCH}): {:.0} rows/s ({secs:.2} s)", total as f64 / secs);
        if vectorized {
            let embedded = wait_embedded(&http, &base, name, started).await?;
            println!("tables: vectorize {total} rows (local all-MiniLM-L6-v2, background): {:.0} rows/s ({embedded:.1} s from the first insert)", total as f64 / embedded);
        }
    }

    for mode in ["fulltext", "semantic", "hybrid"] {
        let mut latencies: Vec<f64> = Vec::with_capacity(SEARCHES);
        for i in 0..SEARCHES {
            let query = format!("a {} by the {}", WORDS[i % WORDS.len()], WORDS[(i * 5 + 3) % WORDS.len()]);
            let started = Instant::now();
            let found = post("/v1/tables/vectorized/search".into(), json!({"query": query, "mode": mode, "limit": 10})).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            if found["data"].as_array().is_none_or(|d| d.is_empty()) {
                bail!("{mode} search found nothing: {found}");
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!("tables: search {mode:<8} over {total} rows, end to end (HTTP, query embedding, rows): p50 {:.2} ms, p99 {:.2} ms", at(0.5), at(0.99));
    }
    server.shutdown().await;
    Ok(())
}

/// Seconds from `started` until no row of the table is PENDING.
async fn wait_embedded(http: &reqwest::Client, base: &str, table: &str, started: Instant) -> anyhow::Result<f64> {
    loop {
        let r: Value = http
            .post(format!("{base}/v1/tables/{table}/query"))
            .bearer_auth(KEY)
            .json(&json!({"filter": {"column": "vector_status", "op": "eq", "value": "PENDING"}, "per_page": 1}))
            .send()
            .await?
            .json()
            .await?;
        if r["total"].as_u64() == Some(0) {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("rows still pending after an hour: {r}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
