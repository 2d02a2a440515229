//! The errors of embedding texts ([`EmbedError`]) and of the vector index ([`IndexError`]).

use std::path::PathBuf;

/// Why texts could not be embedded, or an embedder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The settings are contradictory or incomplete (both a model directory and a URL, a
    /// directory given to a build without the `local-model` feature, a bad URL...).
    #[error("invalid embedding settings: {0}")]
    Config(String),
    /// The local model's files are missing or unreadable.
    #[error("cannot load the embedding model from {}: {reason}", dir.display())]
    Model {
        /// The directory the files were looked for in.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The local model failed while running (tokenizing or the forward pass).
    #[error("the embedding model failed: {0}")]
    Inference(String),
    /// The embeddings endpoint could not be reached, or did not answer in time (after retries).
    #[error("the embeddings endpoint could not be reached: {0}")]
    Unreachable(String),
    /// The embeddings endpoint refused the request; `message` is the provider's own words.
    #[error("the embeddings endpoint answered {status}: {message}")]
    Provider {
        /// The HTTP status.
        status: u16,
        /// The provider's error message (the API key redacted), or the start of its body.
        message: String,
    },
    /// The embeddings endpoint answered something that is not a usable list of embeddings.
    #[error("the embeddings endpoint's answer is not usable: {0}")]
    BadResponse(String),
}

/// Why a vector could not be put into, or searched for in, a [`crate::VectorIndex`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The vector's length is not the index's number of dimensions.
    #[error("the vector has {got} dimensions, the index {expected}")]
    Dimensions {
        /// The index's dimensions.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// The vector holds a NaN or an infinity.
    #[error("the vector holds a value that is not a finite number")]
    NotFinite,
    /// The vector is all zeros: it has no direction, so no cosine.
    #[error("the vector is all zeros")]
    Zero,
}
