//! The [`Embedder`] trait every source of embeddings implements, and unit normalisation.

use async_trait::async_trait;

use crate::EmbedError;

/// Turns texts into vectors whose cosine similarity says how close their meanings are.
///
/// `embed` is async: a local model runs its forward pass on a blocking thread
/// (`tokio::task::spawn_blocking`) and a remote one waits on the network, so neither ever blocks
/// the async runtime. It is an `async_trait` so that callers can hold an `Arc<dyn Embedder>`
/// without knowing which source is configured.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The model's name as configured (`all-MiniLM-L6-v2`, `text-embedding-3-small`...): stored
    /// beside vectors so that vectors of different models are never compared.
    fn model_name(&self) -> &str;

    /// The length of every vector this embedder returns; `None` for a remote model whose
    /// dimensions were not configured and that has not answered yet.
    fn dimensions(&self) -> Option<usize>;

    /// One unit-length vector per text, in the order of `texts` (so cosine similarity is the dot
    /// product). An empty slice gives an empty list without any work.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Scales `vector` to unit length in place; `false` (and `vector` unchanged) when it has no length
/// to scale or holds a value that is not finite.
pub(crate) fn normalize(vector: &mut [f32]) -> bool {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    // Already unit length (to f32 precision): kept bit for bit, so what is stored is what was given.
    if (norm - 1.0).abs() < 1e-6 {
        return true;
    }
    let scale = (1.0 / norm) as f32;
    vector.iter_mut().for_each(|x| *x *= scale);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_to_unit_length_and_refuses_zero_and_nan() {
        let mut v = vec![3.0, 4.0];
        assert!(normalize(&mut v));
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        assert!(!normalize(&mut zero));
        let mut nan = vec![1.0, f32::NAN];
        assert!(!normalize(&mut nan));
    }
}
