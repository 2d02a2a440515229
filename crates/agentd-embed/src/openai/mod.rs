//! [`OpenAiEmbeddings`]: any OpenAI-compatible `/embeddings` endpoint (OpenAI, Azure-style
//! proxies, Ollama, vLLM, llama.cpp, text-embeddings-inference...).
//!
//! `POST {base_url}/embeddings` with `{"model", "input": [...], "encoding_format": "float"}` and
//! `Authorization: Bearer {key}`; the answer's `data[i].embedding` is put back in input order by
//! `data[i].index`. Inputs go in batches; each batch is retried on 408/429/5xx and on connection
//! failures, waiting what `Retry-After` says (else exponential backoff) — read, backed off and
//! described by `agentd_egress`, whose operator client carries the requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use agentd_egress::{Backoff, OperatorClient, OperatorConfig, RETRYABLE_STATUSES, error_chain};
use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use crate::embedder::normalize;
use crate::{EmbedError, Embedder, RemoteSettings};

/// The largest answer read from the endpoint (96 inputs × 3,072 dimensions as JSON is ~6 MB).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The longest provider message kept in an error.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// The longest the endpoint's `Retry-After` makes a batch wait before its next attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Embeddings from an OpenAI-compatible endpoint. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct OpenAiEmbeddings {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RemoteSettings,
    endpoint: String,
    client: OperatorClient,
    /// The vectors' length: configured, or learned from the first answer (0 until then).
    dimensions: AtomicUsize,
}

impl std::fmt::Debug for OpenAiEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbeddings")
            .field("endpoint", &self.inner.endpoint)
            .field("model", &self.inner.settings.model)
            .field("dimensions", &self.dimensions())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbeddings {
    /// A client for the endpoint `settings` name; no request is made until the first `embed`.
    pub fn new(settings: RemoteSettings) -> Result<Self, EmbedError> {
        let base = reqwest::Url::parse(settings.base_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| EmbedError::Config(format!("the embeddings URL `{}` is not an http(s) URL", settings.base_url)))?;
        if settings.model.trim().is_empty() {
            return Err(EmbedError::Config("the embeddings model name is empty".into()));
        }
        if let Some(key) = &settings.api_key
            && HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(EmbedError::Config("the embeddings API key holds characters a header cannot carry".into()));
        }
        let base = base.as_str().trim_end_matches('/');
        // Accept the base (`…/v1`) or the whole endpoint (`…/v1/embeddings`).
        let endpoint = if base.ends_with("/embeddings") { base.to_owned() } else { format!("{base}/embeddings") };
        // Each request carries the whole timeout (`attempt`); connecting gets at most 30 s of it.
        let client = OperatorClient::new(OperatorConfig {
            connect_timeout: settings.timeout.min(Duration::from_secs(30)),
            ..OperatorConfig::default()
        })
        .map_err(|e| EmbedError::Config(e.to_string()))?;
        let dimensions = AtomicUsize::new(settings.dimensions.unwrap_or(0));
        Ok(OpenAiEmbeddings { inner: Arc::new(Inner { settings, endpoint, client, dimensions }) })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }
}

#[async_trait]
impl Embedder for OpenAiEmbeddings {
    fn model_name(&self) -> &str {
        &self.inner.settings.model
    }

    fn dimensions(&self) -> Option<usize> {
        Some(self.inner.dimensions.load(Ordering::Relaxed)).filter(|&d| d > 0)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.inner.settings.batch_size.max(1)) {
            vectors.extend(self.inner.embed_batch(batch).await?);
        }
        Ok(vectors)
    }
}

impl Inner {
    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "model": self.settings.model,
            "input": batch,
            "encoding_format": "float",
        }))
        .map_err(|e| EmbedError::Config(format!("cannot encode the request: {e}")))?;
        let mut retry = 0;
        loop {
            let wait = match self.attempt(&body).await {
                Ok(bytes) => return self.read_embeddings(&bytes, batch.len()),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Retryable { error, wait }) => {
                    if retry >= self.settings.max_retries {
                        return Err(error);
                    }
                    retry += 1;
                    let wait = wait.unwrap_or_else(|| Backoff::new(self.settings.backoff_base).wait(retry));
                    tracing::warn!(retry, wait_ms = wait.as_millis() as u64, error = %error, "embeddings request failed; retrying");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One request: the answer's body on success.
    async fn attempt(&self, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut request = self
            .client
            .post(&self.endpoint)
            .timeout(self.settings.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &self.settings.api_key {
            // Sensitive: never printed by a `Debug` of the request.
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                Failure::Final(EmbedError::Config("the embeddings API key holds characters a header cannot carry".into()))
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let unreachable = |e: reqwest::Error| {
            let text = if e.is_timeout() { "no answer in time".to_owned() } else { self.redact(error_chain(&e)) };
            Failure::Retryable { error: EmbedError::Unreachable(text), wait: None }
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let wait = agentd_egress::retry_after(response.headers(), SystemTime::now(), MAX_RETRY_AFTER);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::Final(EmbedError::BadResponse(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"))));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(bytes);
        }
        let message = self.redact(error_message(&bytes).unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned()));
        let error = EmbedError::Provider { status: status.as_u16(), message };
        if RETRYABLE_STATUSES.contains(&status.as_u16()) {
            Err(Failure::Retryable { error, wait })
        } else {
            Err(Failure::Final(error))
        }
    }

    fn read_embeddings(&self, body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let bad = EmbedError::BadResponse;
        let answer: EmbeddingsResponse = serde_json::from_slice(body).map_err(|e| bad(format!("{e}")))?;
        if answer.data.len() != expected {
            return Err(bad(format!("{} embeddings for {expected} inputs", answer.data.len())));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in answer.data {
            let slot = vectors.get_mut(item.index).ok_or_else(|| bad(format!("index {} for {expected} inputs", item.index)))?;
            if slot.replace(item.embedding).is_some() {
                return Err(bad(format!("index {} twice", item.index)));
            }
        }
        let mut vectors: Vec<Vec<f32>> = vectors.into_iter().map(|v| v.unwrap_or_default()).collect();
        for (i, vector) in vectors.iter_mut().enumerate() {
            self.check_dimensions(vector.len())?;
            if !normalize(vector) {
                return Err(bad(format!("embedding {i} is all zeros or not finite")));
            }
        }
        Ok(vectors)
    }

    /// Learns the dimensions from the first vector, then holds every vector to them.
    fn check_dimensions(&self, len: usize) -> Result<(), EmbedError> {
        if len == 0 {
            return Err(EmbedError::BadResponse("an empty embedding".into()));
        }
        match self.dimensions.compare_exchange(0, len, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(known) if known == len => Ok(()),
            Err(known) => Err(EmbedError::BadResponse(format!("an embedding of {len} dimensions where {known} were expected"))),
        }
    }

    /// `text` without the API key (some servers quote part of a wrong key back).
    fn redact(&self, text: String) -> String {
        agentd_egress::redact(text, self.settings.api_key.as_deref())
    }
}

/// A failed attempt, and whether another may succeed.
enum Failure {
    Retryable { error: EmbedError, wait: Option<Duration> },
    Final(EmbedError),
}

/// The message in an error body: `error.message` (OpenAI), or the shapes of compatible servers
/// (`error` as a string, `message`, `detail`), else the start of the body.
fn error_message(body: &[u8]) -> Option<String> {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(json) => [&json["error"]["message"], &json["error"], &json["message"], &json["detail"]]
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_owned))
            .or_else(|| json.get("error").map(Value::to_string)),
        Err(_) => Some(String::from_utf8_lossy(body).into_owned()),
    }?;
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(match message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_every_shape() {
        assert_eq!(error_message(br#"{"error":{"message":"Invalid model","type":"x"}}"#).as_deref(), Some("Invalid model"));
        assert_eq!(error_message(br#"{"error":"model 'x' not found"}"#).as_deref(), Some("model 'x' not found"));
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#).as_deref(), Some("Not Found"));
        assert_eq!(error_message(b"<html>Bad gateway</html>\n").as_deref(), Some("<html>Bad gateway</html>"));
        assert_eq!(error_message(b"  "), None);
        assert_eq!(error_message("x".repeat(900).as_bytes()).unwrap().chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn endpoint_from_base_or_full_url_and_bad_settings_refused() {
        let make = |url: &str| OpenAiEmbeddings::new(RemoteSettings::new(url, "m"));
        assert_eq!(make("http://127.0.0.1:11434/v1/").unwrap().endpoint(), "http://127.0.0.1:11434/v1/embeddings");
        assert_eq!(make("https://api.openai.com/v1/embeddings").unwrap().endpoint(), "https://api.openai.com/v1/embeddings");
        assert!(matches!(make("ftp://x/v1"), Err(EmbedError::Config(_))));
        assert!(matches!(make("not a url"), Err(EmbedError::Config(_))));
        assert!(matches!(OpenAiEmbeddings::new(RemoteSettings::new("http://x/v1", " ")), Err(EmbedError::Config(_))));
        let debug = format!("{:?}", OpenAiEmbeddings::new(RemoteSettings { api_key: Some("sk-secret".into()), ..RemoteSettings::new("http://x/v1", "m") }).unwrap());
        assert!(!debug.contains("sk-secret"), "{debug}");
    }
}
