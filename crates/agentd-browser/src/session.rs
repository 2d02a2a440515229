//! One session's browser: its own context (cookies, storage, cache, downloads), its tabs,
//! and the way back to a working page when the page, the browser or the reaper took it away.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

use crate::actions::{ActionError, ActionOutcome};
use crate::dialogs::DialogRecord;
use crate::page_state::PageState;
use crate::guard::OutgoingCheck;
use crate::pool::{Context, LeaseEntry, Shared, Tab, new_context, open_page, watch_tab};
use crate::{BrowserError, UrlPolicy};

/// A session's viewport in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What a session's context is set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// The viewport.
    pub viewport: Viewport,
    /// Where the session's downloads are saved (created if missing); a temporary folder,
    /// removed with the context, when None.
    pub download_dir: Option<PathBuf>,
    /// Which URLs the session may open (its top-level documents are held to it before they are
    /// requested, redirect hops included).
    pub urls: UrlPolicy,
}

impl From<Viewport> for SessionOptions {
    fn from(viewport: Viewport) -> Self {
        Self { viewport, download_dir: None, urls: UrlPolicy::default() }
    }
}

/// Saves the context's downloads into `dir` under their own names, with progress events.
pub(crate) async fn allow_downloads(browser: &Browser, context: &BrowserContextId, dir: &Path) -> Result<(), BrowserError> {
    use chromiumoxide::cdp::browser_protocol::browser::{SetDownloadBehaviorBehavior, SetDownloadBehaviorParams};
    std::fs::create_dir_all(dir)
        .map_err(|e| BrowserError::Unsupported(format!("cannot create the download folder {}: {e}", dir.display())))?;
    let mut params = SetDownloadBehaviorParams::new(SetDownloadBehaviorBehavior::Allow);
    params.browser_context_id = Some(context.clone());
    params.download_path = Some(dir.display().to_string());
    params.events_enabled = Some(true);
    browser.execute(params).await?;
    Ok(())
}

/// A file the session downloaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Download {
    /// File name.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
}

/// An open tab of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Why a session was moved to a fresh page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryCause {
    /// The page's renderer crashed; the context (cookies, storage) is kept.
    PageCrashed,
    /// The page stopped answering the browser's commands (Chromium can wedge a tab for good,
    /// e.g. a page of a proxied context embedding an iframe whose URL carries credentials); a
    /// fresh blank page replaces it, the context is kept.
    PageUnresponsive,
    /// The browser process died and was started again; the context is new.
    BrowserCrashed,
    /// The context was disposed of after being idle; the context is new.
    Reaped,
}

impl RecoveryCause {
    /// A short name (`page_crashed`, `browser_crashed`, `reaped`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryCause::PageCrashed => "page_crashed",
            RecoveryCause::PageUnresponsive => "page_unresponsive",
            RecoveryCause::BrowserCrashed => "browser_crashed",
            RecoveryCause::Reaped => "reaped",
        }
    }
}

/// What [`SessionBrowser::recover`] did, for the session's error event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// What happened.
    pub cause: RecoveryCause,
    /// The URL the fresh page was sent back to, if any.
    pub reopened: Option<String>,
    /// A sentence for the event log and the agent.
    pub message: String,
}

/// One session's isolated context and its page.
pub struct SessionBrowser {
    shared: Arc<Shared>,
    browser: Arc<Browser>,
    generation: u64,
    lease: u64,
    reaped: Arc<AtomicBool>,
    context: Option<Context>,
    tab: Tab,
    /// The active tab's page, for [`SessionBrowser::screen`] (kept in step with `tab`).
    shown: Arc<std::sync::Mutex<Page>>,
    options: SessionOptions,
    download_dir: PathBuf,
    _download_temp: Option<tempfile::TempDir>,
    last_url: Option<String>,
    /// Set when a command to the active tab timed out: the next recovery replaces the tab.
    unresponsive: bool,
    first_action_done: Option<tokio::sync::oneshot::Sender<()>>,
    /// What every capture of this session hides (see `mask.rs`).
    pub(crate) screen_mask: crate::ScreenMask,
    _slot: OwnedSemaphorePermit,
}

impl SessionBrowser {
    pub(crate) async fn new(
        shared: Arc<Shared>,
        browser: Arc<Browser>,
        generation: u64,
        context: Context,
        tab: Tab,
        options: SessionOptions,
        slot: OwnedSemaphorePermit,
    ) -> Result<Self, BrowserError> {
        // The context is already made: whatever fails from here disposes of it.
        let prepared = async {
            let (dir, temp) = match &options.download_dir {
                Some(dir) => (dir.clone(), None),
                None => {
                    let temp = tempfile::Builder::new()
                        .prefix("agentd-downloads-")
                        .tempdir()
                        .map_err(|e| BrowserError::Launch(format!("cannot create a download folder: {e}")))?;
                    (temp.path().to_path_buf(), Some(temp))
                }
            };
            allow_downloads(&browser, &context.id, &dir).await?;
            Ok::<_, BrowserError>((dir, temp))
        };
        let (download_dir, _download_temp) = match prepared.await {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = browser.dispose_browser_context(context.id).await;
                return Err(error);
            }
        };
        let lease = shared.new_lease_id();
        let reaped = Arc::new(AtomicBool::new(false));
        shared.leases.lock().unwrap_or_else(|e| e.into_inner()).insert(
            lease,
            LeaseEntry {
                context: context.id.clone(),
                browser: browser.clone(),
                last_used: Instant::now(),
                busy: false,
                reaped: reaped.clone(),
            },
        );
        Ok(Self {
            shared,
            browser,
            generation,
            lease,
            reaped,
            context: Some(context),
            shown: Arc::new(std::sync::Mutex::new(tab.page.clone())),
            tab,
            options,
            download_dir,
            _download_temp,
            last_url: None,
            unresponsive: false,
            first_action_done: None,
            screen_mask: crate::ScreenMask::default(),
            _slot: slot,
        })
    }

    /// Signals `done` when the session's first action (usually opening its first page) has
    /// finished, or when the session ends before one.
    pub(crate) fn signalling_first_action(mut self, done: tokio::sync::oneshot::Sender<()>) -> Self {
        self.first_action_done = Some(done);
        self
    }

    /// The session's current page.
    pub fn page(&self) -> &Page {
        &self.tab.page
    }

    /// Makes `tab` the active one; returns the one it replaces.
    fn set_tab(&mut self, tab: Tab) -> Tab {
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = tab.page.clone();
        std::mem::replace(&mut self.tab, tab)
    }

    /// A PNG of what the active tab shows, at its viewport's size, taken from anywhere (the
    /// session's own work need not pause; a tab switched to later is followed).
    pub fn screen(&self) -> impl Fn() -> futures::future::BoxFuture<'static, Option<Vec<u8>>> + Send + Sync + 'static {
        let shown = self.shown.clone();
        let width = self.options.viewport.width;
        let mask = self.screen_mask.clone();
        move || {
            let page = shown.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mask = mask.clone();
            Box::pin(async move { crate::pointer::screen_png(&page, width, &mask).await.ok() })
        }
    }

    /// Marks the session as busy (`true`, while it observes or acts) or just used, for the
    /// idle reaper.
    fn touch(&self, busy: bool) {
        if let Some(entry) = self.shared.leases.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.lease) {
            entry.last_used = Instant::now();
            entry.busy = busy;
        }
    }

    /// Reads the page's state, tabs included; timed into the metrics.
    pub async fn observe(&mut self) -> Result<PageState, BrowserError> {
        self.touch(true);
        let started = Instant::now();
        let read = async {
            self.tab.navigation.ensure().await?;
            let mut state = crate::observe(&self.tab.page).await?;
            state.tabs = self.tabs().await?;
            state.refused = self.take_refusals();
            Ok::<_, BrowserError>(state)
        };
        let read = read.await;
        self.touch(false);
        if matches!(read, Err(BrowserError::Cdp(chromiumoxide::error::CdpError::Timeout))) {
            self.unresponsive = true;
        }
        let mut state = read?;
        state.elapsed = started.elapsed();
        self.last_url = Some(state.url.clone());
        self.shared.settings.metrics.observed(state.elapsed);
        Ok(state)
    }

    /// Performs `action`; timed into the metrics whether it worked or not.
    pub async fn act(&mut self, action: &crate::Action) -> Result<ActionOutcome, ActionError> {
        self.touch(true);
        let started = Instant::now();
        let result = match self.tab.navigation.ensure().await {
            Ok(()) => crate::act::perform(self, action).await,
            Err(error) => Err(error.into()),
        };
        if matches!(result, Err(ActionError::Browser(BrowserError::Cdp(chromiumoxide::error::CdpError::Timeout)))) {
            self.unresponsive = true;
        }
        let took = started.elapsed();
        self.shared.settings.metrics.acted(action.name(), result.is_ok(), took);
        self.touch(false);
        if let Some(done) = self.first_action_done.take() {
            let _ = done.send(());
        }
        result.map(|outcome| ActionOutcome { elapsed: took, ..outcome })
    }

    /// Waits (at most `timeout`) until the active tab has had no request in flight for
    /// `quiet` (requests that started before the call count too).
    pub async fn wait_for_network_idle(&self, quiet: Duration, timeout: Duration) -> Result<ActionOutcome, ActionError> {
        self.tab.network.wait_idle(quiet, timeout).await
    }

    /// The session's URL policy as it stands (hosts a person allowed included).
    pub fn url_policy(&self) -> UrlPolicy {
        self.rules().urls()
    }

    /// Lets the session open `host` (and its subdomains) although it is outside its allowed
    /// domains: a person confirmed it. No effect when every host is allowed anyway.
    pub fn allow_host(&mut self, host: &str) {
        let mut urls = self.rules().urls.write().unwrap_or_else(|e| e.into_inner());
        let allowed = &mut urls.allowed_domains;
        if !allowed.is_empty() && !allowed.iter().any(|d| d == host) {
            allowed.push(host.to_owned());
        }
    }

    /// Adds the session's own check to every document request its pages make (see
    /// [`OutgoingCheck`]); it stays for the session's life, across recoveries.
    pub fn check_outgoing_with(&mut self, check: Arc<dyn OutgoingCheck>) {
        *self.rules().outgoing.write().unwrap_or_else(|e| e.into_inner()) = Some(check);
    }

    /// Whether the egress policy lets the session's pages reach `url` (checked before the
    /// model's navigations, so the action fails with the reason instead of loading an error
    /// page). Ok for URLs that are not http(s): the URL policy judges those.
    pub async fn check_egress(&self, url: &str) -> Result<(), ActionError> {
        let Some(parsed) = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https")) else {
            return Ok(());
        };
        let (host, port) = (parsed.host_str().unwrap_or_default(), parsed.port_or_known_default().unwrap_or(80));
        match self.lane().check(host, port).await {
            // A name that does not resolve is not a refusal: the page will say so.
            Ok(()) | Err(agentd_egress::EgressError::Resolve { .. }) => Ok(()),
            Err(refusal) => Err(ActionError::EgressRefused(refusal.to_string())),
        }
    }

    /// What was refused on the session's way out since the last call (requests its pages made
    /// that the egress policy, the allowed domains or the session's own check refused), a
    /// sentence each, for the agent's next observation.
    pub fn take_refusals(&self) -> Vec<String> {
        self.lane().take_refusals()
    }

    fn live_context(&self) -> &Context {
        self.context.as_ref().expect("a session's context is set until it is closed")
    }

    fn rules(&self) -> &crate::guard::ContextRules {
        &self.live_context().rules
    }

    fn lane(&self) -> &agentd_egress::Lane {
        &self.live_context().lane
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
            .filter(|t| t.r#type == "page" && t.browser_context_id.as_ref() == self.context.as_ref().map(|c| &c.id))
            .map(|t| TabInfo { active: t.target_id == active, id: t.target_id.as_ref().to_owned(), url: t.url, title: t.title })
            .collect())
    }

    fn context(&self) -> Result<&Context, BrowserError> {
        self.context.as_ref().ok_or_else(|| BrowserError::Unsupported("the session's context is closed".into()))
    }

    /// Opens a blank tab in the session and makes it the active one; returns its id.
    pub async fn open_tab(&mut self) -> Result<String, BrowserError> {
        let tab = open_page(&self.browser, self.context()?, self.options.viewport, &self.shared.settings.dialogs).await?;
        self.set_tab(tab);
        Ok(self.tab.page.target_id().as_ref().to_owned())
    }

    /// Makes tab `id` (from [`SessionBrowser::tabs`]) the active one.
    pub async fn switch_tab(&mut self, id: &str) -> Result<(), BrowserError> {
        self.own_tab(id).await?;
        let page = self.browser.get_page(id.to_owned().into()).await?;
        let tab = watch_tab(page, self.options.viewport, &self.shared.settings.dialogs, self.context()?).await?;
        self.set_tab(tab);
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

    /// What took the session's page away, if anything did.
    pub async fn trouble(&self) -> Option<RecoveryCause> {
        if self.reaped.load(Ordering::SeqCst) {
            Some(RecoveryCause::Reaped)
        } else if self.shared.lost(self.generation).await {
            Some(RecoveryCause::BrowserCrashed)
        } else if self.page_crashed() {
            Some(RecoveryCause::PageCrashed)
        } else if self.unresponsive {
            Some(RecoveryCause::PageUnresponsive)
        } else {
            None
        }
    }

    /// Brings the session back to a working page when its page crashed, its browser died (a
    /// new one is started) or its idle context was reaped, and reopens the last URL it
    /// observed; returns what happened, for the session's error event. Other sessions are
    /// not touched. Call it before each step; it costs nothing when all is well.
    pub async fn recover(&mut self) -> Result<Option<Recovery>, BrowserError> {
        let Some(cause) = self.trouble().await else {
            return Ok(None);
        };
        let dialogs = self.shared.settings.dialogs.clone();
        match cause {
            RecoveryCause::PageCrashed | RecoveryCause::PageUnresponsive => {
                let fresh = open_page(&self.browser, self.context()?, self.options.viewport, &dialogs).await?;
                let old = self.set_tab(fresh);
                self.unresponsive = false;
                let _ = tokio::time::timeout(Duration::from_secs(2), old.page.clone().close()).await;
            }
            RecoveryCause::BrowserCrashed | RecoveryCause::Reaped => {
                let (browser, generation) = self.shared.current().await?;
                let rules = self.context()?.rules.clone();
                if cause == RecoveryCause::Reaped
                    && let Some(old) = self.context.take()
                {
                    let _ = self.browser.dispose_browser_context(old.id).await;
                }
                let (context, tab) = new_context(&self.shared, &browser, self.options.viewport, rules).await?;
                allow_downloads(&browser, &context.id, &self.download_dir).await?;
                self.reaped.store(false, Ordering::SeqCst);
                if let Some(entry) = self.shared.leases.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.lease) {
                    *entry = LeaseEntry {
                        context: context.id.clone(),
                        browser: browser.clone(),
                        last_used: Instant::now(),
                        busy: false,
                        reaped: self.reaped.clone(),
                    };
                }
                (self.browser, self.generation, self.context, self.tab) = (browser, generation, Some(context), tab);
            }
        }
        self.shared.settings.metrics.recovered(cause.as_str());
        // A page that wedged its tab would wedge the next one: not reopened.
        let reopen = self.last_url.clone().filter(|u| u.starts_with("http") && cause != RecoveryCause::PageUnresponsive);
        let reopened = match reopen {
            Some(url) => {
                crate::navigate(&self.tab.page, &url, crate::NAVIGATION_TIMEOUT).await.ok().map(|_| url)
            }
            None => None,
        };
        let what = match cause {
            RecoveryCause::PageCrashed => "the page crashed",
            RecoveryCause::PageUnresponsive => "the page stopped responding",
            RecoveryCause::BrowserCrashed => "the browser crashed and was restarted (cookies and storage are lost)",
            RecoveryCause::Reaped => "the browser context was closed after being idle (cookies and storage are lost)",
        };
        let message = match &reopened {
            Some(url) => format!("{what}; continuing on a fresh page at {url}"),
            None => format!("{what}; continuing on a fresh blank page"),
        };
        Ok(Some(Recovery { cause, reopened, message }))
    }

    /// The files downloaded so far (finished ones only), by name.
    pub fn downloads(&self) -> Vec<Download> {
        let mut found: Vec<Download> = std::fs::read_dir(&self.download_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let meta = entry.metadata().ok().filter(|m| m.is_file())?;
                (!name.ends_with(".crdownload")).then(|| Download { name, path: entry.path(), bytes: meta.len() })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// Waits (at most `timeout`) until at least `count` downloads have finished; woken by the
    /// browser's download events.
    pub async fn wait_for_downloads(&self, count: usize, timeout: Duration) -> Result<Vec<Download>, ActionError> {
        use chromiumoxide::cdp::browser_protocol::browser::EventDownloadProgress;
        let mut progress = self.browser.event_listener::<EventDownloadProgress>().await?;
        let wait = async {
            loop {
                let done = self.downloads();
                if done.len() >= count || progress.next().await.is_none() {
                    return done;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| ActionError::WaitTimeout {
            what: format!("{count} finished downloads"),
            seconds: timeout.as_secs_f64(),
        })
    }

    /// The folder downloads go to.
    pub fn download_dir(&self) -> &Path {
        &self.download_dir
    }

    /// The viewport the session asked for.
    pub fn viewport(&self) -> Viewport {
        self.options.viewport
    }

    /// Tears the context down: its pages, cookies, storage and cache are gone.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        self.forget();
        if let Some(context) = self.context.take()
            && !self.reaped.load(Ordering::SeqCst)
            && !self.shared.lost(self.generation).await
        {
            self.browser.dispose_browser_context(context.id).await?;
        }
        Ok(())
    }

    fn forget(&self) {
        self.shared.leases.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.lease);
        // The slot is given back when the permit drops, just after this.
        self.shared.settings.metrics.contexts(self.shared.in_use().saturating_sub(1));
    }
}

impl Drop for SessionBrowser {
    fn drop(&mut self) {
        // Dropped without close(): dispose in the background so no context leaks.
        if let Some(context) = self.context.take() {
            self.forget();
            let browser = self.browser.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = browser.dispose_browser_context(context.id).await;
                });
            }
        }
    }
}
