//! The node's browser: launched (or attached) once, relaunched when it dies, shared by the
//! sessions' contexts, with a cap on contexts, an optional warm reserve and an idle reaper.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use agentd_egress::{EgressProxy, Lane};

use crate::dialogs::{DialogGuard, DialogPolicy};
use crate::guard::{ContextRules, NavigationGuard};
use crate::metrics::BrowserMetrics;
use crate::process::{ChromiumProcess, PROFILE_PREFIX};
use crate::session::{SessionBrowser, SessionOptions, Viewport};
use crate::{BrowserError, find_chrome};

/// Flags every launched Chromium gets, as (name without dashes, values): no network chatter of
/// its own, no GPU, runs as root. Cross-origin iframes stay in their page's renderer (no
/// site-per-process): their documents are then reachable through the page's own CDP session
/// for the page state, and a session costs one renderer instead of one per site. Headless
/// Chromium gives every browser context a window with a WebUI omnibox popup preloaded in a
/// renderer of its own (~35 MB PSS per session, never used here): the two features are off.
/// No startup window either: its new-tab page would hold a renderer (~80 MB) no session uses.
/// WebRTC may use no UDP that does not go through the proxy (an HTTP proxy carries none), and
/// QUIC is off, so nothing leaves around the egress proxy.
const LAUNCH_FLAGS: [(&str, &[&str]); 12] = [
    ("disable-gpu", &[]),
    ("disable-quic", &[]),
    ("no-first-run", &[]),
    ("disable-background-networking", &[]),
    ("disable-component-update", &[]),
    ("disable-sync", &[]),
    ("disable-dev-shm-usage", &[]),
    ("mute-audio", &[]),
    ("no-startup-window", &[]),
    ("disable-site-isolation-trials", &[]),
    ("disable-features", &["IsolateOrigins", "site-per-process", "WebUIOmniboxPopup", "WebUIOmniboxAimPopup"]),
    ("force-webrtc-ip-handling-policy", &["disable_non_proxied_udp"]),
];

/// Chromium sends loopback requests straight to their address unless told otherwise; with this
/// bypass list (the implicit loopback rule removed, nothing added) every request goes through
/// the context's proxy.
const PROXY_BYPASS_NONE: &str = "<-loopback>";

/// Where the browser comes from and how many sessions it may carry.
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// Executable to launch (`AGENTD_CHROME`); found on `PATH` when None.
    pub executable: Option<PathBuf>,
    /// Attach to this running browser instead (`AGENTD_CDP_URL`, `ws://` or `http://`).
    pub cdp_url: Option<String>,
    /// Launch with a window (needs a display).
    pub headed: bool,
    /// Most concurrent session contexts.
    pub max_contexts: usize,
    /// Bound on launching or attaching.
    pub launch_timeout: Duration,
    /// How JavaScript dialogs are answered.
    pub dialogs: DialogPolicy,
    /// Contexts kept ready (a context and its first page take ~0.17 s to make), so a new
    /// session starts on one at once; they do not count against `max_contexts`. The
    /// reserve is refilled once the session that took one has finished its first action
    /// and no page has been used for a moment, so the refill does not compete with the
    /// sessions' pages. Off here (each costs
    /// a renderer, ~25 MB); the server keeps two.
    pub warm_contexts: usize,
    /// A session's context unused for this long is disposed of (its memory freed); the
    /// session continues on a fresh page at its last URL when it next acts
    /// ([`SessionBrowser::recover`]). None keeps contexts for as long as their sessions.
    pub idle_timeout: Option<Duration>,
    /// Most renderer processes the browser starts (`--renderer-process-limit`). Chromium
    /// never shares a renderer between browser contexts, so this does not pack sessions
    /// closer (measured: no change per session); it bounds the renderers of one session's
    /// tabs. None leaves Chromium's own limit.
    pub renderer_process_limit: Option<usize>,
    /// How long one CDP command may take before it fails (chromiumoxide's request timeout); a
    /// tab whose commands time out is replaced at the next recovery.
    pub command_timeout: Duration,
    /// Where timings are recorded.
    pub metrics: BrowserMetrics,
    /// The egress proxy every context's requests go through (its policy is the node's egress
    /// policy); the browser's DevTools endpoint is protected on it once known.
    pub egress: EgressProxy,
    /// Where a launched browser is recorded (`browser.pid`: its PID, start time and profile
    /// folder) for [`crate::kill_leftover_browser`] at the next start: the server's data
    /// directory. None records nothing.
    pub record_dir: Option<PathBuf>,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            executable: None,
            cdp_url: None,
            headed: false,
            max_contexts: 20,
            launch_timeout: Duration::from_secs(30),
            dialogs: DialogPolicy::default(),
            warm_contexts: 0,
            idle_timeout: Some(Duration::from_secs(600)),
            renderer_process_limit: None,
            command_timeout: Duration::from_secs(30),
            metrics: BrowserMetrics::default(),
            egress: EgressProxy::new(agentd_egress::ProxySettings::default()),
            record_dir: None,
        }
    }
}

/// The browser currently running, one per launch.
pub(crate) struct Live {
    pub browser: Arc<Browser>,
    /// Counts launches; a session on an older one has lost its browser.
    pub generation: u64,
    /// Set when the connection to the browser ends (it crashed, or was closed).
    pub lost: Arc<AtomicBool>,
    handler: JoinHandle<()>,
    /// The launched browser's process (None when attached), killed when dropped: before the
    /// profile folder goes.
    process: Option<ChromiumProcess>,
    /// The launched browser's profile folder (None when attached), removed with it.
    profile: Option<tempfile::TempDir>,
    /// The lane the launched browser's own traffic goes to (it refuses everything); None when
    /// attached.
    _own_traffic: Option<Lane>,
}

/// A leased context as the reaper sees it.
pub(crate) struct LeaseEntry {
    pub context: BrowserContextId,
    pub browser: Arc<Browser>,
    pub last_used: Instant,
    /// An observe or action is running: never idle, however long it takes.
    pub busy: bool,
    pub reaped: Arc<AtomicBool>,
}

/// What the pool and its sessions share.
pub(crate) struct Shared {
    pub settings: BrowserSettings,
    live: tokio::sync::RwLock<Live>,
    pub slots: Arc<Semaphore>,
    warm: Mutex<VecDeque<Warm>>,
    refilling: AtomicBool,
    pub leases: Mutex<HashMap<u64, LeaseEntry>>,
    next_lease: AtomicU64,
}

/// One browser process (launched or attached), shared by the sessions of this node.
pub struct BrowserPool {
    shared: Arc<Shared>,
    reaper: Option<JoinHandle<()>>,
}

impl BrowserPool {
    /// Launches (or attaches to) the browser.
    pub async fn start(settings: &BrowserSettings) -> Result<Self, BrowserError> {
        let live = launch(settings, 1).await?;
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            live: tokio::sync::RwLock::new(live),
            slots: Arc::new(Semaphore::new(settings.max_contexts)),
            warm: Mutex::default(),
            refilling: AtomicBool::new(false),
            leases: Mutex::default(),
            next_lease: AtomicU64::new(1),
        });
        let reaper = settings.idle_timeout.map(|idle| {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval((idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)));
                loop {
                    tick.tick().await;
                    let Some(shared) = weak.upgrade() else { return };
                    shared.reap_idle(idle).await;
                }
            })
        });
        let pool = Self { shared, reaper };
        pool.shared.clone().refill(std::future::ready(()));
        Ok(pool)
    }

    /// Opens an isolated context with one blank page for a session.
    pub async fn lease(&self, options: impl Into<SessionOptions>) -> Result<SessionBrowser, BrowserError> {
        let options = options.into();
        let permit = self
            .shared
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| BrowserError::AtCapacity(self.shared.settings.max_contexts))?;
        let (browser, generation) = self.shared.current().await?;
        let warm = self.shared.take_warm(generation);
        let (first_action_done, first_action) = tokio::sync::oneshot::channel();
        self.shared.clone().refill(first_action);
        let (context, tab) = match warm {
            Some(ready) => {
                // Ready-made: the viewport and the rules are the session's own.
                let (width, height) = (options.viewport.width, options.viewport.height);
                ready.tab.page.execute(SetDeviceMetricsOverrideParams::new(width, height, 1.0, false)).await?;
                *ready.context.rules.urls.write().unwrap_or_else(|e| e.into_inner()) = options.urls.clone();
                (ready.context, ready.tab)
            }
            None => {
                let rules = Arc::new(ContextRules::new(options.urls.clone()));
                new_context(&self.shared, &browser, options.viewport, rules).await?
            }
        };
        let session = SessionBrowser::new(self.shared.clone(), browser, generation, context, tab, options, permit)
            .await?
            .signalling_first_action(first_action_done);
        self.shared.settings.metrics.contexts(self.contexts_in_use());
        Ok(session)
    }

    /// Contexts in use.
    pub fn contexts_in_use(&self) -> usize {
        self.shared.in_use()
    }

    /// The browser's contexts as Chromium reports them (for checks and tests).
    pub async fn browser_context_ids(&self) -> Result<Vec<BrowserContextId>, BrowserError> {
        use chromiumoxide::cdp::browser_protocol::target::GetBrowserContextsParams;
        let (browser, _) = self.shared.current().await?;
        Ok(browser.execute(GetBrowserContextsParams::default()).await?.result.browser_context_ids)
    }

    /// The launched browser's DevTools endpoint (None when attached: the operator's).
    pub async fn devtools_endpoint(&self) -> Option<std::net::SocketAddr> {
        let live = self.shared.live.read().await;
        if !live.owned() {
            return None;
        }
        let url = url::Url::parse(live.browser.websocket_address()).ok()?;
        let ip: std::net::IpAddr = url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        Some(std::net::SocketAddr::new(ip, url.port()?))
    }

    /// Contexts prepared and waiting for a session.
    pub fn warm_contexts(&self) -> usize {
        self.shared.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes the browser (a launched one exits; an attached one is left running).
    pub async fn shutdown(self) {
        if let Some(reaper) = &self.reaper {
            reaper.abort();
        }
        self.shared.warm.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let mut live = self.shared.live.write().await;
        live.close().await;
    }
}

impl Drop for BrowserPool {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.take() {
            reaper.abort();
        }
    }
}

impl Shared {
    pub(crate) fn in_use(&self) -> usize {
        self.settings.max_contexts - self.slots.available_permits()
    }

    /// The running browser, relaunched (or re-attached) first if the last one was lost.
    pub(crate) async fn current(&self) -> Result<(Arc<Browser>, u64), BrowserError> {
        {
            let live = self.live.read().await;
            if !live.lost.load(Ordering::SeqCst) {
                return Ok((live.browser.clone(), live.generation));
            }
        }
        let mut live = self.live.write().await;
        if live.lost.load(Ordering::SeqCst) {
            tracing::warn!(generation = live.generation, "the browser was lost; starting a new one");
            self.warm.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let generation = live.generation + 1;
            live.close().await;
            *live = launch(&self.settings, generation).await?;
        }
        Ok((live.browser.clone(), live.generation))
    }

    /// Whether the browser of `generation` is gone.
    pub(crate) async fn lost(&self, generation: u64) -> bool {
        let live = self.live.read().await;
        live.generation != generation || live.lost.load(Ordering::SeqCst)
    }

    fn take_warm(&self, generation: u64) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        warm.retain(|w| w.generation == generation);
        warm.pop_front()
    }

    /// Tops the warm reserve up in the background (one refill at a time), once `after` is
    /// done and the pool is quiet (at most [`REFILL_DEFERRAL`] later): making a context takes
    /// a CPU core for ~0.2 s, which the sessions' pages need more. With a real model a
    /// session's pages are quiet for most of a step (the LLM's turn), so the refill fits in.
    fn refill<F: Future + Send + 'static>(self: Arc<Self>, after: F) {
        if self.settings.warm_contexts == 0 || self.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + REFILL_DEFERRAL;
            let _ = tokio::time::timeout_at(deadline, after).await;
            while !self.quiet() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(QUIET / 4).await;
            }
            while self.warm.lock().unwrap_or_else(|e| e.into_inner()).len() < self.settings.warm_contexts {
                let made = match self.current().await {
                    Ok((browser, generation)) => new_context(&self, &browser, WARM_VIEWPORT, Arc::default())
                        .await
                        .map(|(context, tab)| Warm { context, tab, generation }),
                    Err(error) => Err(error),
                };
                match made {
                    Ok(ready) => self.warm.lock().unwrap_or_else(|e| e.into_inner()).push_back(ready),
                    Err(error) => {
                        tracing::warn!(%error, "could not prepare a warm browser context");
                        break;
                    }
                }
            }
            self.refilling.store(false, Ordering::SeqCst);
        });
    }

    /// No session's page has been observed or acted on for [`QUIET`].
    fn quiet(&self) -> bool {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.values().all(|l| !l.busy && l.last_used.elapsed() >= QUIET)
    }

    /// Disposes of the contexts of sessions idle for longer than `idle`.
    async fn reap_idle(&self, idle: Duration) {
        let idle_ones: Vec<(BrowserContextId, Arc<Browser>)> = {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            leases
                .values_mut()
                .filter(|l| !l.busy && !l.reaped.load(Ordering::SeqCst) && l.last_used.elapsed() > idle)
                .map(|l| {
                    l.reaped.store(true, Ordering::SeqCst);
                    (l.context.clone(), l.browser.clone())
                })
                .collect()
        };
        for (context, browser) in idle_ones {
            tracing::info!(context = ?context, "reaping an idle browser context");
            let _ = browser.dispose_browser_context(context).await;
        }
    }

    /// A lane of the egress proxy for a new context.
    pub(crate) async fn lane(&self) -> Result<Arc<Lane>, BrowserError> {
        self.settings
            .egress
            .lane()
            .await
            .map(Arc::new)
            .map_err(|e| BrowserError::Launch(e.to_string()))
    }

    pub(crate) fn new_lease_id(&self) -> u64 {
        self.next_lease.fetch_add(1, Ordering::Relaxed)
    }
}

impl Live {
    /// Closes a launched browser (an attached one is left running).
    async fn close(&mut self) {
        self.lost.store(true, Ordering::SeqCst);
        if self.owned() {
            use chromiumoxide::cdp::browser_protocol::browser::CloseParams;
            let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.execute(CloseParams::default())).await;
            if let Some(process) = &mut self.process {
                process.stop(Duration::from_secs(5)).await;
            }
        }
        self.handler.abort();
    }

    fn owned(&self) -> bool {
        self.profile.is_some()
    }
}

/// Starts (or attaches to) a browser and the task that drives its CDP connection.
async fn launch(settings: &BrowserSettings, generation: u64) -> Result<Live, BrowserError> {
    let (browser, mut handler, process, profile, own_traffic) = match &settings.cdp_url {
        Some(url) => {
            // chromiumoxide asks an http:// endpoint for its WebSocket URL with reqwest, which
            // is built without a TLS provider of its own.
            agentd_egress::install_tls();
            let connected = tokio::time::timeout(settings.launch_timeout, Browser::connect_with_config(url.clone(), handler_config(settings)))
                .await
                .map_err(|_| BrowserError::Launch(format!("no answer from {url} within {:?}", settings.launch_timeout)))?
                .map_err(|e| BrowserError::Launch(format!("{url}: {e}")))?;
            protect_endpoint(&settings.egress, url).await;
            (connected.0, connected.1, None, None, None)
        }
        None => {
            if settings.headed && std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
                return Err(BrowserError::Unsupported(
                    "headless: false needs a display (DISPLAY is not set); run headless or start agentd under a display".into(),
                ));
            }
            let path = std::env::var("PATH").ok();
            let executable = find_chrome(settings.executable.as_deref(), path.as_deref())?;
            let executable = crate::process::executable_path(&executable).map_err(|e| BrowserError::Launch(format!("{}: {e}", executable.display())))?;
            // A fresh profile per browser: never a shared default (profile-lock clashes).
            let profile = tempfile::Builder::new()
                .prefix(PROFILE_PREFIX)
                .tempdir()
                .map_err(|e| BrowserError::Launch(format!("cannot create a profile directory: {e}")))?;
            // The browser's own requests (outside every session's context) go to a lane that
            // refuses them all; each context gets a lane of its own.
            let own_traffic = settings.egress.closed_lane().await.map_err(|e| BrowserError::Launch(e.to_string()))?;
            let mut switches: Vec<(&str, Vec<String>)> =
                LAUNCH_FLAGS.iter().map(|(name, values)| (*name, values.iter().map(|v| (*v).to_owned()).collect())).collect();
            switches.push(("proxy-server", vec![own_traffic.proxy_server().to_owned()]));
            switches.push(("proxy-bypass-list", vec![PROXY_BYPASS_NONE.to_owned()]));
            if let Some(limit) = settings.renderer_process_limit {
                switches.push(("renderer-process-limit", vec![limit.to_string()]));
            }
            let args = crate::process::command_line(profile.path(), settings.headed, &switches);
            // Started here rather than by chromiumoxide, so that it dies with agentd (process.rs).
            let process = ChromiumProcess::spawn(&executable, args, settings.launch_timeout, settings.record_dir.as_deref(), profile.path()).await?;
            let connect = Browser::connect_with_config(process.devtools_url.clone(), handler_config(settings));
            // On failure the process is dropped, which kills it.
            let (browser, handler) = tokio::time::timeout(settings.launch_timeout, connect)
                .await
                .map_err(|_| BrowserError::Launch(format!("{}: no DevTools connection within {:?}", executable.display(), settings.launch_timeout)))?
                .map_err(|e| BrowserError::Launch(format!("{}: {e}", executable.display())))?;
            protect_endpoint(&settings.egress, browser.websocket_address()).await;
            (browser, handler, Some(process), Some(profile), Some(own_traffic))
        }
    };
    // The handler drives the CDP connection; it must be polled for as long as the browser
    // lives, and one bad message must not stop it. When it ends, the browser is gone.
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let handler = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if let Err(error) = event {
                // Only the connection's own failures are described: a message the handler could
                // not read may quote that message (typed text included).
                if let chromiumoxide::error::CdpError::Ws(ws) = &error {
                    tracing::debug!(error = %ws, "the CDP connection failed");
                    break;
                }
                tracing::debug!("CDP handler reported an error (a message it could not use)");
            }
        }
        flag.store(true, Ordering::SeqCst);
    });
    Ok(Live { browser: Arc::new(browser), generation, lost, handler, process, profile, _own_traffic: own_traffic })
}

/// How chromiumoxide drives the connection: certificate errors are errors (its default would
/// have every page ignore them, which would let anyone on the path read what a session types),
/// no viewport of its own (each context sets the session's), commands bounded by
/// `command_timeout`.
fn handler_config(settings: &BrowserSettings) -> chromiumoxide::handler::HandlerConfig {
    chromiumoxide::handler::HandlerConfig {
        ignore_https_errors: false,
        viewport: None,
        request_timeout: settings.command_timeout,
        ..Default::default()
    }
}

/// Makes the browser's DevTools endpoint (`ws://host:port/...` or `http://host:port`)
/// unreachable through the egress proxy: a page that reached it could list, script and close
/// every session's tabs.
async fn protect_endpoint(egress: &EgressProxy, endpoint: &str) {
    let Ok(url) = url::Url::parse(endpoint) else { return };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => addresses.for_each(|address| egress.protect(address)),
        Err(error) => tracing::warn!(%error, host, "cannot resolve the browser's DevTools host to protect it"),
    }
}

/// Longest a warm-reserve refill waits for the session that emptied it to finish its first
/// action and for a quiet moment.
const REFILL_DEFERRAL: Duration = Duration::from_secs(3);

/// How long no page must have been used for the pool to count as quiet.
const QUIET: Duration = Duration::from_millis(150);

/// The viewport of a context prepared before its session is known (replaced at lease).
const WARM_VIEWPORT: Viewport = Viewport { width: 1024, height: 768 };

/// A context with a blank page, prepared ahead of a session.
struct Warm {
    context: Context,
    tab: Tab,
    generation: u64,
}

/// A browser context with its way out (a lane of the egress proxy) and the rules its documents
/// meet.
pub(crate) struct Context {
    pub id: BrowserContextId,
    pub lane: Arc<Lane>,
    pub rules: Arc<ContextRules>,
}

/// A fresh context behind its own proxy lane, with one blank page.
pub(crate) async fn new_context(
    shared: &Shared,
    browser: &Browser,
    viewport: Viewport,
    rules: Arc<ContextRules>,
) -> Result<(Context, Tab), BrowserError> {
    let lane = shared.lane().await?;
    let params = CreateBrowserContextParams::builder()
        .proxy_server(lane.proxy_server())
        .proxy_bypass_list(PROXY_BYPASS_NONE)
        .build();
    let id = browser.create_browser_context(params).await?;
    let context = Context { id, lane, rules };
    match open_page(browser, &context, viewport, &shared.settings.dialogs).await {
        Ok(tab) => Ok((context, tab)),
        Err(error) => {
            let _ = browser.dispose_browser_context(context.id).await;
            Err(error)
        }
    }
}

/// A page with the watchers that belong to it.
pub(crate) struct Tab {
    pub page: Page,
    pub dialogs: DialogGuard,
    pub crashed: Arc<AtomicBool>,
    pub network: crate::network::NetworkTracker,
    pub navigation: NavigationGuard,
    _crash_watch: JoinHandle<()>,
}

/// Opens a blank page in `context` at `viewport`, with its watchers.
pub(crate) async fn open_page(
    browser: &Browser,
    context: &Context,
    viewport: Viewport,
    policy: &DialogPolicy,
) -> Result<Tab, BrowserError> {
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(context.id.clone())
        .build()
        .map_err(BrowserError::Launch)?;
    let page = browser.new_page(target).await?;
    watch_tab(page, viewport, policy, context).await
}

/// Gives an open page the session's viewport and its watchers: dialogs, crashes, its network
/// traffic, and the guard its documents pass before they are requested.
pub(crate) async fn watch_tab(page: Page, viewport: Viewport, policy: &DialogPolicy, context: &Context) -> Result<Tab, BrowserError> {
    use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
    let navigation = NavigationGuard::watch(&page, context.rules.clone(), context.lane.clone()).await?;
    page.execute(SetDeviceMetricsOverrideParams::new(viewport.width, viewport.height, 1.0, false))
        .await?;
    let dialogs = DialogGuard::watch(&page, policy.clone()).await?;
    let network = crate::network::NetworkTracker::watch(&page).await?;
    let crashed = Arc::new(AtomicBool::new(false));
    let mut crashes = page.event_listener::<EventTargetCrashed>().await?;
    let flag = crashed.clone();
    let crash_watch = tokio::spawn(async move {
        if crashes.next().await.is_some() {
            flag.store(true, Ordering::SeqCst);
            tracing::warn!("a session's page crashed");
        }
    });
    Ok(Tab { page, dialogs, crashed, network, navigation, _crash_watch: crash_watch })
}

impl Drop for Tab {
    fn drop(&mut self) {
        self._crash_watch.abort();
    }
}

