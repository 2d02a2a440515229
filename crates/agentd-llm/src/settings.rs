//! How to reach a provider: its kind, endpoint, key, default model, time limits and prices.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chat::TokenUsage;
use crate::error::LlmError;

/// Which wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI chat completions, and every server compatible with it (Ollama, vLLM, LiteLLM...).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    /// The name used in configuration: `"openai"` or `"anthropic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

impl FromStr for ProviderKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            _ => Err(LlmError::Config(format!("unknown LLM provider {s:?}: expected \"openai\" or \"anthropic\""))),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a model costs, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Dollars per million input (prompt) tokens.
    pub input_per_million: f64,
    /// Dollars per million output (completion) tokens.
    pub output_per_million: f64,
}

/// Everything [`crate::Llm::new`] needs. `Debug` never prints the API key.
#[derive(Clone)]
pub struct LlmSettings {
    /// The wire protocol.
    pub provider: ProviderKind,
    /// OpenAI-compatible: up to and including `/v1` (requests go to `{base_url}/chat/completions`);
    /// Anthropic: the host (requests go to `{base_url}/v1/messages`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic); `None` sends no key
    /// (a local Ollama needs none).
    pub api_key: Option<String>,
    /// The model a request without its own uses.
    pub model: String,
    /// The limit on one HTTP attempt. A streamed attempt must start within it, and then no gap
    /// between two chunks may exceed it (a long stream is not cut off).
    pub timeout: Duration,
    /// How many times a failed attempt is retried (0: one attempt only).
    pub max_retries: u32,
    /// Model name, or a prefix of model names, to its price; the longest matching prefix wins.
    /// A model matching none costs 0.
    pub prices: HashMap<String, Price>,
    /// The first retry waits about this long, each further one twice as long, up to 16 times it
    /// (0.5 s to 8 s by default). Only a server's `Retry-After` overrides it. Tests shorten it.
    pub backoff_base: Duration,
}

impl LlmSettings {
    /// The public endpoint of a provider.
    pub fn default_base_url(kind: ProviderKind) -> &'static str {
        match kind {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }

    /// Settings for `provider` at its public endpoint with `model`, and every other field at its
    /// default.
    pub fn new(provider: ProviderKind, model: impl Into<String>) -> LlmSettings {
        LlmSettings {
            provider,
            base_url: Self::default_base_url(provider).to_owned(),
            model: model.into(),
            ..LlmSettings::default()
        }
    }
}

/// OpenAI at its public endpoint, no key, no model (one must be set), 120 s per attempt,
/// 2 retries, no prices, 500 ms backoff base.
impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            provider: ProviderKind::OpenAi,
            base_url: Self::default_base_url(ProviderKind::OpenAi).to_owned(),
            api_key: None,
            model: String::new(),
            timeout: Duration::from_secs(120),
            max_retries: 2,
            prices: HashMap::new(),
            backoff_base: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("prices", &self.prices)
            .field("backoff_base", &self.backoff_base)
            .finish()
    }
}

/// The price table, longest prefix first so the first match is the longest.
#[derive(Clone, Debug, Default)]
pub(crate) struct PriceTable {
    entries: Vec<(String, Price)>,
}

impl PriceTable {
    pub(crate) fn new(prices: &HashMap<String, Price>) -> PriceTable {
        let mut entries: Vec<(String, Price)> = prices.iter().map(|(k, v)| (k.clone(), *v)).collect();
        // Ties cannot happen (keys are unique); sorting by name too keeps the order deterministic.
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { entries }
    }

    /// The price of `model`: the entry that is the longest prefix of it.
    pub(crate) fn lookup(&self, model: &str) -> Option<Price> {
        self.entries.iter().find(|(prefix, _)| model.starts_with(prefix.as_str())).map(|(_, price)| *price)
    }

    /// The cost in dollars of `usage` on `model`; 0 for a model without a price.
    pub(crate) fn cost(&self, model: &str, usage: &TokenUsage) -> f64 {
        self.lookup(model).map_or(0.0, |price| price_of(price, usage))
    }
}

fn price_of(price: Price, usage: &TokenUsage) -> f64 {
    usage.input_tokens as f64 * price.input_per_million / 1e6 + usage.output_tokens as f64 * price.output_per_million / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, f64, f64)]) -> PriceTable {
        let map = entries
            .iter()
            .map(|(k, i, o)| (k.to_string(), Price { input_per_million: *i, output_per_million: *o }))
            .collect();
        PriceTable::new(&map)
    }

    #[test]
    fn the_longest_prefix_prices_a_model() {
        let prices = table(&[("gpt-4o", 2.5, 10.0), ("gpt-4o-mini", 0.15, 0.6), ("gpt", 1.0, 1.0)]);
        let usage = TokenUsage { input_tokens: 1_000_000, output_tokens: 2_000_000 };
        assert_eq!(prices.cost("gpt-4o-2024-08-06", &usage), 2.5 + 20.0);
        assert_eq!(prices.cost("gpt-4o-mini-2024-07-18", &usage), 0.15 + 1.2);
        assert_eq!(prices.cost("gpt-3.5-turbo", &usage), 3.0);
        assert_eq!(prices.cost("gpt-4o", &usage), 22.5);
        assert_eq!(prices.cost("claude-sonnet-4", &usage), 0.0);
    }

    #[test]
    fn provider_names_parse_and_print() {
        assert_eq!("openai".parse::<ProviderKind>().unwrap(), ProviderKind::OpenAi);
        assert_eq!(" Anthropic ".parse::<ProviderKind>().unwrap(), ProviderKind::Anthropic);
        assert!("gemini".parse::<ProviderKind>().unwrap_err().to_string().contains("gemini"));
        assert_eq!(ProviderKind::Anthropic.as_str(), "anthropic");
        assert_eq!(serde_json::to_string(&ProviderKind::OpenAi).unwrap(), "\"openai\"");
    }

    #[test]
    fn debug_hides_the_key() {
        let settings = LlmSettings { api_key: Some("sk-secret-123".into()), ..LlmSettings::new(ProviderKind::OpenAi, "m") };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("sk-secret-123"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
