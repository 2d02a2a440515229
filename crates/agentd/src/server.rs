//! `agentd serve`: opens the store, makes sure keys exist, starts the engine and the HTTP
//! server, and shuts both down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentd_agents::{BrowserAgent, BrowserAgentSettings, Browsers};
use agentd_api::{ApiConfig, AppState, Metrics};
use agentd_domain::Mode;
use agentd_llm::Llm;
use agentd_engine::{AgentRegistry, Clock, Engine, EngineConfig, SealingKey, SystemClock, ToolSettings};
use agentd_tools::ToolRunner;
use agentd_store::SqliteStore;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::connections;
use crate::data_dir_lock::DataDirLock;
use crate::keys;

/// A started server.
pub struct RunningServer {
    /// Where it listens (the real port when the config said 0).
    pub addr: SocketAddr,
    /// The engine behind it.
    pub engine: Engine,
    /// The secret of a key made at first start, to print once.
    pub first_key: Option<String>,
    /// Where `/metrics` is served on its own (`metrics_addr`; the real port when it said 0).
    pub metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    metrics: Option<JoinHandle<std::io::Result<()>>>,
    browsers: Option<Arc<Browsers>>,
    /// This server's hold on its data directory, released last.
    data_dir_lock: DataDirLock,
}

impl RunningServer {
    /// Graceful shutdown: stop accepting, settle running sessions, end streams, flush.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        // Stop accepting connections first, then settle sessions (which also ends the
        // streams that keep connections open), then let in-flight requests drain.
        self.stop.cancel();
        self.engine.shutdown().await;
        if let Some(browsers) = &self.browsers {
            browsers.shutdown().await;
        }
        match tokio::time::timeout(Duration::from_secs(10), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::error!(%error, "HTTP server failed"),
            Ok(Err(error)) => tracing::error!(%error, "HTTP server task failed"),
            Err(_) => tracing::warn!("open connections did not close within 10 s"),
        }
        if let Some(metrics) = self.metrics {
            match tokio::time::timeout(Duration::from_secs(10), metrics).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::error!(%error, "metrics listener failed"),
                Ok(Err(error)) => tracing::error!(%error, "metrics listener task failed"),
                Err(_) => tracing::warn!("metrics connections did not close within 10 s"),
            }
        }
        // Only now may another server take the data directory: everything is settled and
        // flushed, and the browser is closed.
        drop(self.data_dir_lock);
    }
}

/// Starts everything with the agents in `registry`, on real time.
pub async fn start(config: &Config, registry: AgentRegistry) -> anyhow::Result<RunningServer> {
    start_with_clock(config, registry, Arc::new(SystemClock)).await
}

/// Starts everything with the agents in `registry`, timing sessions with `clock`.
pub async fn start_with_clock(
    config: &Config,
    registry: AgentRegistry,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningServer> {
    launch(config, registry, clock, None).await
}

/// Starts everything with the agents this build ships ([`builtin_agents`]); when an LLM is
/// configured, the browser starts in the background so the first session finds it ready.
pub async fn start_builtin(config: &Config) -> anyhow::Result<RunningServer> {
    let mut settings = config.browser_settings();
    // The launched browser is recorded in the data directory, so that the next start kills
    // it should it outlive this process.
    settings.record_dir = Some(config.data_dir.clone());
    let browsers = Arc::new(Browsers::new(settings));
    let (registry, llm_configured) = builtin_agents(config, browsers.clone())?;
    let server = launch(config, registry, Arc::new(SystemClock), Some(browsers.clone())).await?;
    if llm_configured {
        browsers.start_in_background();
    } else {
        tracing::warn!("{}", agentd_agents::NO_PROVIDER);
    }
    Ok(server)
}

/// A 32-byte key kept in `<data_dir>/<name>` (made on first start, readable by the owner
/// only), so what it protects outlives restarts: `link.key` for session links (task ids and
/// live pages), `secrets.key` for tools' private variables sealed in the store. `lost` says
/// what stops working when the file is replaced.
fn key_file(data_dir: &std::path::Path, name: &str, lost: &str) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(name);
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(bytes);
        }
        anyhow::bail!("{} is not a key (32 bytes); delete it to make a new one ({lost})", path.display());
    }
    // Written whole under a temporary name, then renamed: a crash leaves no half-written key.
    let bytes: [u8; 32] = rand::random();
    let temp = data_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
    std::io::Write::write_all(&mut file, &bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(bytes)
}

async fn launch(
    config: &Config,
    registry: AgentRegistry,
    clock: Arc<dyn Clock>,
    browsers: Option<Arc<Browsers>>,
) -> anyhow::Result<RunningServer> {
    crate::install_tls();
    let addr = config.socket_addr()?;
    let speech = match config.speech_settings() {
        Some(settings) => Some(agentd_llm::SpeechClient::new(settings).context("cannot set up the speech provider")?),
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    // One server per data directory, taken before the store opens: recovery below settles
    // the sessions it finds live as ones a dead process left, which they are only once
    // nobody else holds the directory. Then a browser a killed predecessor left behind is
    // killed, now that it cannot be a running server's.
    let mut data_dir_lock = DataDirLock::acquire(&config.data_dir)?;
    agentd_browser::kill_leftover_browser(&config.data_dir);
    let store = SqliteStore::open(&config.data_dir)
        .await
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    let store: agentd_store::SharedStore = Arc::new(store);
    let admin = config.admin_key.as_ref().map(|k| k.expose());
    let first_key = keys::bootstrap(store.as_ref(), admin, &config.admin_key_tier).await?;
    let engine = Engine::start(
        store,
        registry,
        EngineConfig {
            max_concurrent_sessions: config.max_concurrent_sessions,
            clock,
            webhooks: agentd_api::with_webhook_formats(config.webhook_settings()),
            conversation_idle: Duration::from_secs(config.conversation_idle_hours * 3600),
            tools: ToolSettings {
                runner: ToolRunner::new(config.egress_policy(), config.tool_limits()).context("cannot set up the tool runner")?,
                sealing: SealingKey::new(key_file(&config.data_dir, "secrets.key", "stored private variables of tools can no longer be read")?),
            },
            embedder: match config.embed_settings().context("embeddings (embed_model_dir / embed_url)")? {
                Some(settings) => Some(settings.embedder().context("cannot set up the embedding model")?),
                None => None,
            },
        },
    )
    .await?;
    let api = ApiConfig {
        body_limit_bytes: config.body_limit_bytes,
        heartbeat: Duration::from_secs(config.heartbeat_seconds),
        tiers: config.tiers.clone(),
        sessions: config.sessions.clone(),
        link_key: agentd_api::links::LinkKey::new(key_file(&config.data_dir, "link.key", "open session links stop working")?),
        assisters_agent_tiers: config.assisters_agent_tiers.clone(),
        autessa_ws_idle: Duration::from_secs(config.autessa_ws_idle_seconds),
    };
    let mut metrics = Metrics::new();
    if let Some(browsers) = &browsers {
        browsers.settings().metrics.register(metrics.registry_mut());
    }
    let state = AppState::with_metrics(engine.clone(), api, metrics).with_speech(speech);
    let app = agentd_api::router(state.clone(), config.metrics_access());
    // `/metrics` on a listener of its own, when the operator chose one.
    let metrics_listener = match config.metrics_socket_addr()? {
        Some(at) => Some(TcpListener::bind(at).await.with_context(|| format!("cannot listen on metrics_addr {at}"))?),
        None => None,
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let limits = config.connection_limits();
    let stop = CancellationToken::new();
    let http = tokio::spawn(connections::serve(listener, app, limits, stop.clone()));
    tracing::info!(%addr, "agentd listening");
    let (metrics_addr, metrics) = match metrics_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            let served = connections::serve(listener, agentd_api::metrics_router(state), limits, stop.clone());
            tracing::info!(addr = %at, "metrics listening");
            (Some(at), Some(tokio::spawn(served)))
        }
        None => (None, None),
    };
    data_dir_lock.record_address(addr);
    Ok(RunningServer {
        addr,
        engine,
        first_key,
        metrics_addr,
        stop,
        http,
        metrics,
        browsers,
        data_dir_lock,
    })
}

/// The agents this build ships, over the node's `browsers` and the configured LLM; also
/// whether an LLM is configured. A mode without an implementation yet is refused at create
/// time with an error that says so.
pub fn builtin_agents(config: &Config, browsers: Arc<Browsers>) -> anyhow::Result<(AgentRegistry, bool)> {
    let llm = match config.llm_settings(|name| std::env::var(name).ok()) {
        Some(settings) => Some(Llm::new(settings).context("cannot set up the LLM provider")?),
        None => None,
    };
    let configured = llm.is_some();
    let mut registry = AgentRegistry::new();
    let fetcher = agentd_fetch::Fetcher::new(
        config.egress_policy(),
        agentd_fetch::FetchLimits::default(),
    )
    .context("cannot set up page fetching")?;
    let reader = Arc::new(agentd_agents::WebReader::new(fetcher, browsers.clone()));
    let search = config.search_settings().provider(browsers.clone());
    let research = Arc::new(agentd_agents::ResearchAgent::new(llm.clone(), search, reader, agentd_agents::ResearchSettings::default()));
    for mode in [Mode::Research, Mode::Chat, Mode::Coding] {
        registry.register(mode, research.clone());
    }
    registry.register(Mode::Browser, Arc::new(BrowserAgent::new(browsers, llm, BrowserAgentSettings::default())));
    Ok((registry, configured))
}
