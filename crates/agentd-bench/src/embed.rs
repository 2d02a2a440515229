//! `agentd-bench embed`: agentd-embed's figures. The local all-MiniLM-L6-v2's throughput in
//! texts/s (~20-word sentences and ~130-token chunks, batches of 16 and 32), from the files
//! `scripts/install-model.sh` installs (or `AGENTD_EMBED_MODEL_DIR`); and `VectorIndex` at 10k
//! and 100k random unit vectors of 384 dimensions: insert time, search p50/p99 (k = 10), also with
//! a filter that accepts half the ids, with the CPU time per search (the wall time on a
//! shared host includes waiting for a core).

use std::path::PathBuf;
use std::time::Instant;

use agentd_embed::{LocalMiniLm, MODEL_DIR_ENV, VectorIndex, installed_model_dir, is_model_dir};
use anyhow::Context;

use crate::{percentile, summary};

const DIMS: usize = 384;
const SEARCHES: usize = 1_000;
const K: usize = 10;

pub async fn figures() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| {
        model_figures()?;
        index_figures()
    })
    .await?
}

fn model_figures() -> anyhow::Result<()> {
    let dir = std::env::var_os(MODEL_DIR_ENV).map(PathBuf::from).or_else(installed_model_dir);
    let Some(dir) = dir.filter(|d| is_model_dir(d)) else {
        println!("embed: no model files (run scripts/install-model.sh or set {MODEL_DIR_ENV}): model figures skipped");
        return Ok(());
    };
    let started = Instant::now();
    let model = LocalMiniLm::load(&dir).context("loading the model")?;
    println!("embed: model load {:.0} ms ({})", started.elapsed().as_secs_f64() * 1000.0, dir.display());
    let pair = model.embed_blocking(&["A man is eating food.".to_owned(), "A man is eating a piece of bread.".to_owned()])?;
    let cosine: f32 = pair[0].iter().zip(&pair[1]).map(|(a, b)| a * b).sum();
    println!("embed: reference pair cosine {cosine:.4} (sentence-transformers: 0.7553)");

    let mut words = Words(0x9e37_79b9_7f4a_7c15);
    let sentences: Vec<String> = (0..256).map(|_| words.text(20)).collect();
    let chunks: Vec<String> = (0..96).map(|_| words.text(100)).collect();
    for (kind, texts) in [("~20-word sentences", &sentences), ("~130-token chunks", &chunks)] {
        for batch in [16, 32] {
            let model = LocalMiniLm::load_with_batch_size(&dir, batch)?;
            model.embed_blocking(&texts[..batch])?; // warm-up
            let started = Instant::now();
            model.embed_blocking(texts)?;
            let seconds = started.elapsed().as_secs_f64();
            println!("embed: {kind:<20} batch {batch:>2}: {:>6.1} texts/s ({} texts in {seconds:.2} s)", texts.len() as f64 / seconds, texts.len());
        }
    }
    // One short query, as a search embeds it: the latency a person waits for.
    let query = vec!["how do I reset my password".to_owned()];
    let latencies: Vec<f64> = (0..30)
        .map(|_| {
            let started = Instant::now();
            model.embed_blocking(&query).map(|_| started.elapsed().as_secs_f64() * 1000.0)
        })
        .collect::<Result<_, _>>()?;
    let (p50, p99, _, _) = summary(latencies);
    println!("embed: one query embedded: p50 {p50:.1} ms, p99 {p99:.1} ms");
    Ok(())
}

fn index_figures() -> anyhow::Result<()> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for rows in [10_000usize, 100_000] {
        let vectors: Vec<Vec<f32>> = (0..rows).map(|_| rng.unit(DIMS)).collect();
        let started = Instant::now();
        let mut index = VectorIndex::with_capacity(DIMS, rows);
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v)?;
        }
        let insert = started.elapsed().as_secs_f64();
        println!(
            "index: {rows:>6} × {DIMS}: insert {:.0} ms ({:.2} µs/row), {:.0} MB of vectors",
            insert * 1000.0,
            insert * 1e6 / rows as f64,
            (rows * DIMS * 4) as f64 / 1e6
        );
        drop(vectors);
        let queries: Vec<Vec<f32>> = (0..SEARCHES).map(|_| rng.unit(DIMS)).collect();
        let even = |id: u64| id % 2 == 0;
        for (label, filter) in [("search k=10", None), ("search k=10, half filtered", Some(&even as agentd_embed::IdFilter))] {
            let mut latencies = Vec::with_capacity(SEARCHES);
            let cpu_before = process_cpu_ms();
            for query in &queries {
                let started = Instant::now();
                let hits = index.search(query, K, filter)?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(hits.len(), K);
            }
            let cpu_per_search = (process_cpu_ms() - cpu_before) / SEARCHES as f64;
            print_latencies(rows, label, latencies);
            // On a shared host the wall time includes waiting for a core; the CPU time does not.
            println!("index: {rows:>6}: {label:<28} CPU {cpu_per_search:.2} ms per search (all threads)");
        }
    }
    Ok(())
}

fn print_latencies(rows: usize, label: &str, latencies: Vec<f64>) {
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    println!(
        "index: {rows:>6}: {label:<28} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
}

/// CPU time (user + system) the process has used so far, in milliseconds.
fn process_cpu_ms() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// A small deterministic generator (the bench needs no statistical quality).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random direction: uniform coordinates in [-1, 1), scaled to unit length.
    fn unit(&mut self, dims: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dims).map(|_| (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

/// English-looking text of a given number of words (common words, so about 1.3 tokens a word).
struct Words(u64);

impl Words {
    const VOCABULARY: [&'static str; 48] = [
        "the", "agent", "opened", "a", "page", "and", "read", "its", "table", "of", "prices", "before", "writing", "summary",
        "for", "user", "who", "asked", "about", "flights", "to", "Lisbon", "next", "week", "database", "stores", "every",
        "row", "with", "vector", "search", "finds", "similar", "documents", "quickly", "when", "question", "is", "vague",
        "browser", "clicked", "button", "form", "was", "submitted", "error", "message", "appeared",
    ];

    fn text(&mut self, words: usize) -> String {
        let mut rng = XorShift(self.0);
        let text: Vec<&str> = (0..words).map(|_| Self::VOCABULARY[(rng.next() % 48) as usize]).collect();
        self.0 = rng.0;
        let mut text = text.join(" ");
        text.push('.');
        text
    }
}
