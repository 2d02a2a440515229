//! What every handler shares: the engine, the API settings, the rate limiter, metrics and the
//! speech client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentd_engine::Engine;
use agentd_llm::SpeechClient;
use agentd_store::SharedStore;
use serde::{Deserialize, Serialize};

use crate::auth::{RateLimiter, RateLimits};
use crate::metrics::Metrics;

/// Bounds and defaults for session fields, applied when a session is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionLimits {
    /// `max_actions` when the request gives none (lowered to the cap if above it).
    pub default_max_actions: u32,
    /// The largest `max_actions` accepted.
    pub max_actions_cap: u32,
    /// `timeout_seconds` when the request gives none.
    pub default_timeout_seconds: u64,
    /// The largest `timeout_seconds` accepted.
    pub max_timeout_seconds: u64,
    /// `inactivity_timeout_seconds` when the request gives none.
    pub default_inactivity_timeout_seconds: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            default_max_actions: 100,
            max_actions_cap: 500,
            default_timeout_seconds: 1_800,
            max_timeout_seconds: 86_400,
            default_inactivity_timeout_seconds: 300,
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (413 beyond).
    pub body_limit_bytes: usize,
    /// Interval of SSE comments and WebSocket pings on idle streams.
    pub heartbeat: Duration,
    /// Rate limits per tier name.
    pub tiers: HashMap<String, RateLimits>,
    /// Session field bounds.
    pub sessions: SessionLimits,
    /// The key of session links (task ids, live pages).
    pub link_key: crate::links::LinkKey,
    /// Key tiers that may use the Assisters agent endpoints (`/v1/agent/*`); others get 403.
    pub assisters_agent_tiers: Vec<String>,
    /// An Autessa WebSocket with no message from its client this long closes (30 minutes,
    /// the vendor's figure, by default).
    pub autessa_ws_idle: Duration,
}

/// Shared state of all handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The session engine.
    pub engine: Engine,
    /// HTTP settings.
    pub config: Arc<ApiConfig>,
    /// Per-key request counters.
    pub limiter: Arc<RateLimiter>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The speech server for audio in and out; None when none is configured (requests for
    /// audio are refused: [`crate::speech`]).
    pub speech: Option<SpeechClient>,
}

impl AppState {
    /// State over `engine` with `config`.
    pub fn new(engine: Engine, config: ApiConfig) -> Self {
        Self::with_metrics(engine, config, Metrics::new())
    }

    /// State whose `/metrics` also shows what other parts registered in `metrics`.
    pub fn with_metrics(engine: Engine, config: ApiConfig, metrics: Metrics) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            limiter: Arc::default(),
            metrics: Arc::new(metrics),
            speech: None,
        }
    }

    /// The same state with `speech` as its speech server.
    pub fn with_speech(mut self, speech: Option<SpeechClient>) -> Self {
        self.speech = speech;
        self
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        self.engine.store()
    }
}
