//! The node's browser and the sessions' contexts in it.

use std::path::PathBuf;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::dialogs::{DialogGuard, DialogPolicy, DialogRecord};
use crate::{BrowserError, find_chrome};

/// Flags every launched Chromium gets (no network chatter of its own, no GPU, as root).
const LAUNCH_FLAGS: [&str; 8] = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
];

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
    /// Contexts kept ready (a context and its first page cost ~0.3 s to make), so a new
    /// session starts on one at once; they do not count against `max_contexts`. Off by
    /// default: measured on two cores, the background refill competes with the session's
    /// first navigation and the total time to a loaded page did not improve.
    pub warm_contexts: usize,
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
        }
    }
}

/// A session's viewport in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// One browser process (launched or attached), shared by the sessions of this node.
pub struct BrowserPool {
    browser: Arc<Browser>,
    handler: JoinHandle<()>,
    slots: Arc<Semaphore>,
    max_contexts: usize,
    dialogs: DialogPolicy,
    warm: Arc<Mutex<VecDeque<Warm>>>,
    warm_target: usize,
    refilling: Arc<AtomicBool>,
    _profile: Option<tempfile::TempDir>,
}

impl BrowserPool {
    /// Launches (or attaches to) the browser.
    pub async fn start(settings: &BrowserSettings) -> Result<Self, BrowserError> {
        let (browser, mut handler, profile) = match &settings.cdp_url {
            Some(url) => {
                let connected = tokio::time::timeout(settings.launch_timeout, Browser::connect(url.clone()))
                    .await
                    .map_err(|_| BrowserError::Launch(format!("no answer from {url} within {:?}", settings.launch_timeout)))?
                    .map_err(|e| BrowserError::Launch(format!("{url}: {e}")))?;
                (connected.0, connected.1, None)
            }
            None => {
                if settings.headed && std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
                    return Err(BrowserError::Unsupported(
                        "headless: false needs a display (DISPLAY is not set); run headless or start agentd under a display".into(),
                    ));
                }
                let path = std::env::var("PATH").ok();
                let executable = find_chrome(settings.executable.as_deref(), path.as_deref())?;
                // A fresh profile per browser: never a shared default (profile-lock clashes).
                let profile = tempfile::Builder::new()
                    .prefix("agentd-chromium-")
                    .tempdir()
                    .map_err(|e| BrowserError::Launch(format!("cannot create a profile directory: {e}")))?;
                let mut builder = BrowserConfig::builder()
                    .chrome_executable(&executable)
                    .no_sandbox()
                    .user_data_dir(profile.path())
                    .viewport(None)
                    .launch_timeout(settings.launch_timeout)
                    .args(LAUNCH_FLAGS);
                if settings.headed {
                    builder = builder.with_head();
                }
                let config = builder.build().map_err(BrowserError::Launch)?;
                let (browser, handler) = Browser::launch(config)
                    .await
                    .map_err(|e| BrowserError::Launch(format!("{}: {e}", executable.display())))?;
                (browser, handler, Some(profile))
            }
        };
        // The handler drives the CDP connection; it must be polled for as long as the browser
        // lives, and one bad message must not stop it.
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    tracing::debug!(%error, "CDP handler reported an error");
                }
            }
        });
        let pool = Self {
            browser: Arc::new(browser),
            handler,
            slots: Arc::new(Semaphore::new(settings.max_contexts)),
            max_contexts: settings.max_contexts,
            dialogs: settings.dialogs.clone(),
            warm: Arc::default(),
            warm_target: settings.warm_contexts,
            refilling: Arc::default(),
            _profile: profile,
        };
        pool.refill();
        Ok(pool)
    }

    /// Opens an isolated context with one blank page at `viewport` for a session.
    pub async fn lease(&self, viewport: Viewport) -> Result<SessionBrowser, BrowserError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| BrowserError::AtCapacity(self.max_contexts))?;
        let warm = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        self.refill();
        let (context, tab) = match warm {
            Some(ready) => {
                // Ready-made: only the viewport is the session's own.
                ready
                    .tab
                    .page
                    .execute(SetDeviceMetricsOverrideParams::new(viewport.width, viewport.height, 1.0, false))
                    .await?;
                (ready.context, ready.tab)
            }
            None => new_context(&self.browser, viewport, &self.dialogs).await?,
        };
        Ok(SessionBrowser {
            browser: self.browser.clone(),
            context: Some(context),
            tab,
            policy: self.dialogs.clone(),
            viewport,
            _slot: permit,
        })
    }

    /// Tops the warm reserve up in the background (one refill at a time).
    fn refill(&self) {
        if self.warm_target == 0 || self.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let (browser, warm, policy, target, refilling) = (
            self.browser.clone(),
            self.warm.clone(),
            self.dialogs.clone(),
            self.warm_target,
            self.refilling.clone(),
        );
        tokio::spawn(async move {
            while warm.lock().unwrap_or_else(|e| e.into_inner()).len() < target {
                match new_context(&browser, WARM_VIEWPORT, &policy).await {
                    Ok((context, tab)) => warm.lock().unwrap_or_else(|e| e.into_inner()).push_back(Warm { context, tab }),
                    Err(error) => {
                        tracing::warn!(%error, "could not prepare a warm browser context");
                        break;
                    }
                }
            }
            refilling.store(false, Ordering::SeqCst);
        });
    }

    /// Contexts in use.
    pub fn contexts_in_use(&self) -> usize {
        self.max_contexts - self.slots.available_permits()
    }

    /// The browser's contexts as Chromium reports them (for checks and tests).
    pub async fn browser_context_ids(&self) -> Result<Vec<BrowserContextId>, BrowserError> {
        use chromiumoxide::cdp::browser_protocol::target::GetBrowserContextsParams;
        Ok(self.browser.execute(GetBrowserContextsParams::default()).await?.result.browser_context_ids)
    }

    /// Contexts prepared and waiting for a session.
    pub fn warm_contexts(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes the browser (a launched one exits; an attached one is left running).
    pub async fn shutdown(self) {
        // Warm contexts hold clones of the browser handle through their pages.
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).clear();
        match Arc::into_inner(self.browser) {
            Some(mut browser) => {
                if browser.get_mut_child().is_some() {
                    let _ = browser.close().await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
                }
            }
            None => tracing::warn!("browser still in use at shutdown; it is killed with the process"),
        }
        self.handler.abort();
    }
}

/// The viewport of a context prepared before its session is known (replaced at lease).
const WARM_VIEWPORT: Viewport = Viewport { width: 1024, height: 768 };

/// A context with a blank page, prepared ahead of a session.
struct Warm {
    context: BrowserContextId,
    tab: Tab,
}

/// A fresh context with one blank page.
async fn new_context(
    browser: &Browser,
    viewport: Viewport,
    policy: &DialogPolicy,
) -> Result<(BrowserContextId, Tab), BrowserError> {
    let context = browser.create_browser_context(CreateBrowserContextParams::default()).await?;
    match open_page(browser, &context, viewport, policy).await {
        Ok(tab) => Ok((context, tab)),
        Err(error) => {
            let _ = browser.dispose_browser_context(context).await;
            Err(error)
        }
    }
}

/// A page with the watchers that belong to it.
struct Tab {
    page: Page,
    dialogs: DialogGuard,
    crashed: Arc<AtomicBool>,
    _crash_watch: JoinHandle<()>,
}

/// Opens a blank page in `context` at `viewport`, with its dialog and crash watchers.
async fn open_page(
    browser: &Browser,
    context: &BrowserContextId,
    viewport: Viewport,
    policy: &DialogPolicy,
) -> Result<Tab, BrowserError> {
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(context.clone())
        .build()
        .map_err(BrowserError::Launch)?;
    let page = browser.new_page(target).await?;
    watch_tab(page, viewport, policy).await
}

/// Gives an open page the session's viewport and its dialog and crash watchers.
async fn watch_tab(page: Page, viewport: Viewport, policy: &DialogPolicy) -> Result<Tab, BrowserError> {
    use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
    page.execute(SetDeviceMetricsOverrideParams::new(viewport.width, viewport.height, 1.0, false))
        .await?;
    let dialogs = DialogGuard::watch(&page, policy.clone()).await?;
    let crashed = Arc::new(AtomicBool::new(false));
    let mut crashes = page.event_listener::<EventTargetCrashed>().await?;
    let flag = crashed.clone();
    let crash_watch = tokio::spawn(async move {
        if crashes.next().await.is_some() {
            flag.store(true, Ordering::SeqCst);
            tracing::warn!("a session's page crashed");
        }
    });
    Ok(Tab { page, dialogs, crashed, _crash_watch: crash_watch })
}

impl Drop for Tab {
    fn drop(&mut self) {
        self._crash_watch.abort();
    }
}

/// An open tab of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabInfo {
    /// Its id (a CDP target id).
    pub id: String,
    /// Current URL.
    pub url: String,
    /// Document title.
    pub title: String,
    /// The tab actions go to.
    pub active: bool,
}

/// One session's isolated context and its page.
pub struct SessionBrowser {
    browser: Arc<Browser>,
    context: Option<BrowserContextId>,
    tab: Tab,
    policy: DialogPolicy,
    viewport: Viewport,
    _slot: OwnedSemaphorePermit,
}

impl SessionBrowser {
    /// The session's current page.
    pub fn page(&self) -> &Page {
        &self.tab.page
    }

    /// The dialogs the page opened (and how they were answered) since the last call.
    pub fn take_dialogs(&self) -> Vec<DialogRecord> {
        self.tab.dialogs.drain()
    }

    /// The session's open tabs (its own pages and the popups they opened), active one marked.
    pub async fn tabs(&self) -> Result<Vec<TabInfo>, BrowserError> {
        use chromiumoxide::cdp::browser_protocol::target::GetTargetsParams;
        let targets = self.browser.execute(GetTargetsParams::default()).await?.result.target_infos;
        let active = self.tab.page.target_id().clone();
        Ok(targets
            .into_iter()
            .filter(|t| t.r#type == "page" && t.browser_context_id.as_ref() == self.context.as_ref())
            .map(|t| TabInfo {
                active: t.target_id == active,
                id: t.target_id.as_ref().to_owned(),
                url: t.url,
                title: t.title,
            })
            .collect())
    }

    /// Opens a blank tab in the session and makes it the active one; returns its id.
    pub async fn open_tab(&mut self) -> Result<String, BrowserError> {
        let context = self.context.clone().ok_or_else(|| BrowserError::Unsupported("the session's context is closed".into()))?;
        self.tab = open_page(&self.browser, &context, self.viewport, &self.policy).await?;
        Ok(self.tab.page.target_id().as_ref().to_owned())
    }

    /// Makes tab `id` (from [`SessionBrowser::tabs`]) the active one.
    pub async fn switch_tab(&mut self, id: &str) -> Result<(), BrowserError> {
        self.own_tab(id).await?;
        let page = self.browser.get_page(id.to_owned().into()).await?;
        self.tab = watch_tab(page, self.viewport, &self.policy).await?;
        Ok(())
    }

    /// Closes tab `id`; closing the active one makes another tab active (a blank one when
    /// it was the last).
    pub async fn close_tab(&mut self, id: &str) -> Result<(), BrowserError> {
        self.own_tab(id).await?;
        let page = self.browser.get_page(id.to_owned().into()).await?;
        page.close().await?;
        if self.tab.page.target_id().as_ref() == id {
            match self.tabs().await?.into_iter().find(|t| t.id != id) {
                Some(next) => self.switch_tab(&next.id).await?,
                None => {
                    self.open_tab().await?;
                }
            }
        }
        Ok(())
    }

    async fn own_tab(&self, id: &str) -> Result<(), BrowserError> {
        if self.tabs().await?.iter().any(|t| t.id == id) {
            Ok(())
        } else {
            Err(BrowserError::Unsupported(format!("no tab `{id}` in this session")))
        }
    }

    /// True once the page's renderer has crashed.
    pub fn page_crashed(&self) -> bool {
        self.tab.crashed.load(Ordering::SeqCst)
    }

    /// Replaces a crashed page with a fresh one in the same context (cookies and storage
    /// kept), so the session can go on; returns whether a replacement was needed.
    pub async fn replace_crashed_page(&mut self) -> Result<bool, BrowserError> {
        if !self.page_crashed() {
            return Ok(false);
        }
        let context = self.context.clone().ok_or_else(|| BrowserError::Unsupported("the session's context is closed".into()))?;
        let fresh = open_page(&self.browser, &context, self.viewport, &self.policy).await?;
        let old = std::mem::replace(&mut self.tab, fresh);
        let _ = tokio::time::timeout(Duration::from_secs(2), old.page.clone().close()).await;
        Ok(true)
    }

    /// The viewport the session asked for.
    pub fn viewport(&self) -> Viewport {
        self.viewport
    }

    /// Tears the context down: its pages, cookies, storage and cache are gone.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        if let Some(context) = self.context.take() {
            self.browser.dispose_browser_context(context).await?;
        }
        Ok(())
    }
}

impl Drop for SessionBrowser {
    fn drop(&mut self) {
        // Dropped without close(): dispose in the background so no context leaks.
        if let Some(context) = self.context.take() {
            let browser = self.browser.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = browser.dispose_browser_context(context).await;
                });
            }
        }
    }
}
