//! agentd's browser runtime: a real Chromium driven over CDP (through `chromiumoxide`, not a
//! hand-written protocol), one browser process per node, and an isolated BrowserContext
//! (own cookies, storage, cache, viewport) per session.
//!
//! Principal types: [`BrowserSettings`] (where the browser comes from), [`BrowserPool`]
//! (the launched or attached browser, the cap on contexts, the idle reaper, relaunch after a
//! crash), [`SessionBrowser`] (one session's context and tabs: `observe`, `act`, `recover`,
//! torn down by [`SessionBrowser::close`]), [`PageState`] (what an agent sees, rendered
//! within a token budget) and [`Action`] (every action as data, what a tool call becomes).
#![deny(missing_docs)]

mod act;
mod actions;
mod dialogs;
mod extract;
mod guard;
mod keys;
mod locate;
mod mask;
mod metrics;
mod network;
mod page_state;
mod pointer;
mod pool;
mod process;
mod session;
mod scope;
mod sensitivity;
mod waits;

pub use actions::{
    ActionError, ActionOutcome, ClickKind, ScrollTarget, Shot, TypeMode, annotated_screenshot, click, click_at, click_with, go_history, hover,
    navigate, reload, screenshot, scroll, select_option, set_checked, type_text, upload_files,
};
pub use waits::{NAVIGATION_TIMEOUT, wait_for_navigation, wait_for_selector, wait_for_text};
pub use dialogs::{DialogPolicy, DialogRecord};
pub use extract::{Extracted, extract_markdown};
pub use keys::press_keys;
pub use pointer::{drag, move_to, screen_png, scroll_at, type_focused};
pub use locate::{find_chrome, CHROME_CANDIDATES};
pub use page_state::{DEFAULT_TOKEN_BUDGET, Element, PageState, Scroll, TextBlock, observe};
pub use act::{Action, MAX_WAIT, UrlPolicy};
pub use mask::ScreenMask;
pub use metrics::BrowserMetrics;
pub use pool::{BrowserPool, BrowserSettings};
pub use process::kill_leftover_browser;
pub use guard::OutgoingCheck;
pub use sensitivity::Sensitive;
pub use session::{Download, Recovery, RecoveryCause, SessionBrowser, SessionOptions, TabInfo, Viewport};

/// Why the browser layer failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No browser executable was found.
    #[error("{0}")]
    NotFound(String),
    /// The browser could not be started or reached.
    #[error("could not start or reach the browser: {0}")]
    Launch(String),
    /// A script run in the page, or a command built for it, did not give a usable answer.
    #[error("page script failed: {0}")]
    Script(String),
    /// A CDP command failed.
    #[error("browser command failed: {0}")]
    Cdp(#[from] chromiumoxide::error::CdpError),
    /// The node already runs as many contexts as it may.
    #[error("the browser already runs {0} sessions, the configured maximum")]
    AtCapacity(usize),
    /// A setting cannot be honoured here.
    #[error("{0}")]
    Unsupported(String),
}
