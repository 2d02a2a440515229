//! [`HashingEmbedder`]: a deterministic stand-in embedder for the tests of callers. It is no
//! model: texts sharing words get similar vectors, paraphrases do not. Never used by the product
//! ([`crate::EmbedSettings`] cannot make one); only the `testing` feature exposes it.

use async_trait::async_trait;

use crate::embedder::normalize;
use crate::{EmbedError, Embedder};

/// Bag of hashed lower-cased words and word pairs, signed into `dimensions` buckets, unit length.
/// The same text gives the same vector on every machine and every run.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimensions: usize,
}

impl HashingEmbedder {
    /// An embedder of `dimensions`-long vectors (at least 1).
    pub fn new(dimensions: usize) -> Self {
        HashingEmbedder { dimensions: dimensions.max(1) }
    }

    /// The vector of one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        let mut vector = vec![0.0f32; self.dimensions];
        let mut add = |feature: &[&str]| {
            let hash = fnv1a(feature);
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[(hash % self.dimensions as u64) as usize] += sign;
        };
        for word in &words {
            add(&[word]);
        }
        for pair in words.windows(2) {
            add(pair);
        }
        if words.is_empty() {
            add(&[]);
        }
        if !normalize(&mut vector) {
            // Features that cancelled out: any fixed direction will do.
            vector[0] = 1.0;
        }
        vector
    }
}

/// FNV-1a over the words, a separator between them: stable, unlike std's hasher.
fn fnv1a(words: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, word) in words.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b" " };
        for &byte in sep.iter().chain(word.as_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn model_name(&self) -> &str {
        "hashing-test-embedder"
    }

    fn dimensions(&self) -> Option<usize> {
        Some(self.dimensions)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| self.embed_one(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::VectorIndex;

    #[tokio::test]
    async fn deterministic_unit_vectors_that_rank_shared_words_first() {
        let embedder = HashingEmbedder::new(256);
        let texts: Vec<String> = ["The cat sat on the mat", "Stock prices fell sharply", "", "the CAT sat on the mat!"]
            .map(String::from)
            .to_vec();
        let vectors = embedder.embed(&texts).await.unwrap();
        for v in &vectors {
            assert_eq!(v.len(), 256);
            assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // Case and punctuation do not matter; the same text is the same vector.
        assert_eq!(vectors[0], vectors[3]);
        assert_eq!(embedder.embed_one("x y"), HashingEmbedder::new(256).embed_one("x y"));
        let mut index = VectorIndex::new(256);
        for (id, v) in vectors[..3].iter().enumerate() {
            index.insert(id as u64, v).unwrap();
        }
        let hits = index.search(&embedder.embed_one("a cat on a mat"), 1, None).unwrap();
        assert_eq!(hits[0].0, 0);
    }
}
