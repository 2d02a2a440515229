//! The actions an agent can ask for, as data ([`Action`], what an LLM's tool call becomes),
//! and the URL policy that guards where a session may go.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actions::{self, ActionError, ActionOutcome, ClickKind, ScrollTarget, TypeMode};
use crate::session::SessionBrowser;
use crate::{keys, pointer, waits};

/// One browser action. Serialised with an `action` tag: `{"action":"click","index":3}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Open `url` in the active tab.
    Navigate {
        /// Where to go.
        url: String,
    },
    /// Go back one page.
    Back,
    /// Go forward one page.
    Forward,
    /// Reload the page.
    Reload,
    /// Click element `index`.
    Click {
        /// The element.
        index: u64,
        /// Which click (default: single).
        #[serde(default)]
        button: ClickKind,
    },
    /// Click the viewport point (`x`, `y`).
    ClickAt {
        /// CSS pixels from the left.
        x: f64,
        /// CSS pixels from the top.
        y: f64,
        /// Which click (default: single).
        #[serde(default)]
        button: ClickKind,
    },
    /// Move the mouse to the viewport point (`x`, `y`).
    #[serde(rename = "move")]
    MoveTo {
        /// CSS pixels from the left.
        x: f64,
        /// CSS pixels from the top.
        y: f64,
    },
    /// Press the left button at the first point, move through the others, release at the last.
    Drag {
        /// Viewport points `[x, y]`, at least two.
        path: Vec<[f64; 2]>,
    },
    /// Turn the mouse wheel at (`x`, `y`) by (`dx`, `dy`) CSS pixels (positive: right, down).
    ScrollAt {
        /// CSS pixels from the left.
        x: f64,
        /// CSS pixels from the top.
        y: f64,
        /// Horizontal pixels.
        #[serde(default)]
        dx: f64,
        /// Vertical pixels.
        #[serde(default)]
        dy: f64,
    },
    /// Type into the focused element (a line break presses Enter).
    TypeText {
        /// What to type.
        text: String,
    },
    /// Type into element `index`.
    Type {
        /// The element.
        index: u64,
        /// What to type.
        text: String,
        /// Add to what the field holds instead of replacing it.
        #[serde(default)]
        append: bool,
        /// Press Enter afterwards.
        #[serde(default)]
        enter: bool,
    },
    /// Choose an option of select element `index` by its label or value.
    Select {
        /// The element.
        index: u64,
        /// Label or value.
        option: String,
    },
    /// Check or uncheck a checkbox, radio or switch.
    Check {
        /// The element.
        index: u64,
        /// The state wanted.
        checked: bool,
    },
    /// Move the mouse over element `index`.
    Hover {
        /// The element.
        index: u64,
    },
    /// Scroll the page by `pages` viewport heights, element `index`'s own area, or to a text.
    Scroll {
        /// Viewport heights (negative: up); 1 when nothing else is given.
        #[serde(default)]
        pages: Option<f64>,
        /// Scroll inside this element instead of the page.
        #[serde(default)]
        index: Option<u64>,
        /// Scroll until this text is in view.
        #[serde(default)]
        to_text: Option<String>,
    },
    /// Press keys or combinations in order (`Enter`, `Control+a`, `Shift+Tab`).
    PressKeys {
        /// The keys.
        keys: Vec<String>,
    },
    /// Open a new tab, optionally at `url`, and make it active.
    OpenTab {
        /// Where to go.
        #[serde(default)]
        url: Option<String>,
    },
    /// Make tab `id` the active one.
    SwitchTab {
        /// The tab.
        id: String,
    },
    /// Close tab `id`.
    CloseTab {
        /// The tab.
        id: String,
    },
    /// Wait until the visible text contains `text`.
    WaitForText {
        /// The text.
        text: String,
        /// Bound in milliseconds (default 10 000).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Wait until an element matching a CSS selector is visible.
    WaitForSelector {
        /// The selector.
        selector: String,
        /// Bound in milliseconds (default 10 000).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Wait until the page navigates and loads.
    WaitForNavigation {
        /// Bound in milliseconds (default 10 000).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Wait until no request has been in flight for `quiet_ms` (default 500).
    WaitForNetworkIdle {
        /// Quiet period in milliseconds.
        #[serde(default)]
        quiet_ms: Option<u64>,
        /// Bound in milliseconds (default 10 000).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Put files from the session's folder into file input `index`.
    Upload {
        /// The element.
        index: u64,
        /// File names, relative to the session's folder.
        files: Vec<String>,
    },
}

/// The longest wait an action may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

fn bound(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_WAIT, Duration::from_millis).min(MAX_WAIT)
}

impl Action {
    /// Its short name, as in the serialised form.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Navigate { .. } => "navigate",
            Action::Back => "back",
            Action::Forward => "forward",
            Action::Reload => "reload",
            Action::Click { .. } => "click",
            Action::ClickAt { .. } => "click_at",
            Action::MoveTo { .. } => "move",
            Action::Drag { .. } => "drag",
            Action::ScrollAt { .. } => "scroll_at",
            Action::TypeText { .. } => "type_text",
            Action::Type { .. } => "type",
            Action::Select { .. } => "select",
            Action::Check { .. } => "check",
            Action::Hover { .. } => "hover",
            Action::Scroll { .. } => "scroll",
            Action::PressKeys { .. } => "press_keys",
            Action::OpenTab { .. } => "open_tab",
            Action::SwitchTab { .. } => "switch_tab",
            Action::CloseTab { .. } => "close_tab",
            Action::WaitForText { .. } => "wait_for_text",
            Action::WaitForSelector { .. } => "wait_for_selector",
            Action::WaitForNavigation { .. } => "wait_for_navigation",
            Action::WaitForNetworkIdle { .. } => "wait_for_network_idle",
            Action::Upload { .. } => "upload",
        }
    }
}

fn done(action: &'static str, description: String) -> ActionOutcome {
    ActionOutcome { action, description, elapsed: Duration::ZERO }
}

/// Runs `action` in `session` (timing and metrics are the caller's).
pub(crate) async fn perform(session: &mut SessionBrowser, action: &Action) -> Result<ActionOutcome, ActionError> {
    let nav = waits::NAVIGATION_TIMEOUT;
    match action {
        Action::Navigate { url } => {
            session.url_policy().check(url)?;
            session.check_egress(url).await?;
            actions::navigate(session.page(), url, nav).await
        }
        Action::Back => actions::go_history(session.page(), -1, nav).await,
        Action::Forward => actions::go_history(session.page(), 1, nav).await,
        Action::Reload => actions::reload(session.page(), nav).await,
        Action::Click { index, button } => actions::click_with(session.page(), *index, *button).await,
        Action::ClickAt { x, y, button } => actions::click_at(session.page(), *x, *y, *button).await,
        Action::MoveTo { x, y } => pointer::move_to(session.page(), *x, *y).await,
        Action::Drag { path } => {
            let path: Vec<(f64, f64)> = path.iter().map(|&[x, y]| (x, y)).collect();
            pointer::drag(session.page(), &path).await
        }
        Action::ScrollAt { x, y, dx, dy } => pointer::scroll_at(session.page(), *x, *y, *dx, *dy).await,
        Action::TypeText { text } => pointer::type_focused(session.page(), text).await,
        Action::Type { index, text, append, enter } => {
            let mode = if *append { TypeMode::Append } else { TypeMode::Replace };
            actions::type_text(session.page(), *index, text, mode, *enter).await
        }
        Action::Select { index, option } => actions::select_option(session.page(), *index, option).await,
        Action::Check { index, checked } => actions::set_checked(session.page(), *index, *checked).await,
        Action::Hover { index } => actions::hover(session.page(), *index).await,
        Action::Scroll { pages, index, to_text } => {
            let target = match (to_text, index) {
                (Some(_), Some(_)) => return Err(ActionError::BadArguments("scroll: give to_text or index, not both".into())),
                (Some(_), None) if pages.is_some() => {
                    return Err(ActionError::BadArguments("scroll: give to_text or pages, not both".into()));
                }
                (Some(text), None) => ScrollTarget::Text(text.clone()),
                (None, Some(index)) => ScrollTarget::Element(*index, pages.unwrap_or(1.0)),
                (None, None) => ScrollTarget::Pages(pages.unwrap_or(1.0)),
            };
            actions::scroll(session.page(), target).await
        }
        Action::PressKeys { keys } => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            keys::press_keys(session.page(), &keys).await
        }
        Action::OpenTab { url } => {
            if let Some(url) = url {
                session.url_policy().check(url)?;
                session.check_egress(url).await?;
            }
            let id = session.open_tab().await?;
            if let Some(url) = url {
                actions::navigate(session.page(), url, nav).await?;
            }
            Ok(done("open_tab", format!("opened tab {id}{}", url.as_ref().map(|u| format!(" at {u}")).unwrap_or_default())))
        }
        Action::SwitchTab { id } => {
            session.switch_tab(id).await?;
            Ok(done("switch_tab", format!("switched to tab {id}")))
        }
        Action::CloseTab { id } => {
            session.close_tab(id).await?;
            Ok(done("close_tab", format!("closed tab {id}")))
        }
        Action::WaitForText { text, timeout_ms } => waits::wait_for_text(session.page(), text, bound(*timeout_ms)).await,
        Action::WaitForSelector { selector, timeout_ms } => {
            waits::wait_for_selector(session.page(), selector, bound(*timeout_ms)).await
        }
        Action::WaitForNavigation { timeout_ms } => waits::wait_for_navigation(session.page(), bound(*timeout_ms)).await,
        Action::WaitForNetworkIdle { quiet_ms, timeout_ms } => {
            let quiet = Duration::from_millis(quiet_ms.unwrap_or(500)).min(MAX_WAIT);
            session.wait_for_network_idle(quiet, bound(*timeout_ms)).await
        }
        Action::Upload { index, files } => {
            let folder = session.download_dir().to_path_buf();
            let mut paths: Vec<PathBuf> = Vec::with_capacity(files.len());
            for name in files {
                // Only files in the session's own folder: never elsewhere on the server.
                let plain = std::path::Path::new(name)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !plain || name.is_empty() {
                    return Err(ActionError::Refused {
                        index: *index,
                        reason: format!("`{name}` is not a file name in the session's folder"),
                    });
                }
                paths.push(folder.join(name));
            }
            actions::upload_files(session.page(), *index, &paths).await
        }
    }
}

/// Which URLs a session may open. Only `http`, `https` and `about:blank` are ever allowed
/// (never `file:`, `chrome:` or `javascript:`); `allowed_domains`, when not empty, limits
/// hosts to those domains and their subdomains; `blocked_domains` are refused always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlPolicy {
    /// Hosts allowed (with their subdomains); empty allows every host.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Hosts refused (with their subdomains).
    #[serde(default)]
    pub blocked_domains: Vec<String>,
}

impl UrlPolicy {
    /// Ok when the session may open `url`, else why not.
    pub fn check(&self, url: &str) -> Result<(), ActionError> {
        let blocked = |reason: String| Err(ActionError::UrlBlocked { url: url.to_owned(), reason });
        if url == "about:blank" {
            return Ok(());
        }
        let Ok(parsed) = url::Url::parse(url) else {
            return blocked("it is not an absolute URL".into());
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return blocked(format!("the {} scheme is not allowed; use http or https", parsed.scheme()));
        }
        let host = host_of(&parsed);
        if self.blocked_domains.iter().any(|d| within(&host, d)) {
            return blocked(format!("{host} is on the session's blocked list"));
        }
        if self.outside_allowed(url).is_some() {
            return blocked(format!("{host} is not among the allowed domains ({})", self.allowed_domains.join(", ")));
        }
        Ok(())
    }

    /// The host of `url` when it is an http(s) URL outside the allowed domains (a list is
    /// set and no entry covers it); None otherwise, blocked hosts included.
    pub fn outside_allowed(&self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https"))?;
        let host = host_of(&parsed);
        let outside = !self.allowed_domains.is_empty()
            && !self.allowed_domains.iter().any(|d| within(&host, d))
            && !self.blocked_domains.iter().any(|d| within(&host, d));
        outside.then_some(host)
    }
}

fn host_of(url: &url::Url) -> String {
    url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase()
}

/// `host` is `domain` or one of its subdomains (`*.` in front of `domain` means the same).
fn within(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_from_tool_call_json() {
        let click: Action = serde_json::from_str(r#"{"action":"click","index":3}"#).unwrap();
        assert_eq!(click, Action::Click { index: 3, button: ClickKind::Single });
        let right: Action = serde_json::from_str(r#"{"action":"click","index":3,"button":"right"}"#).unwrap();
        assert_eq!(right, Action::Click { index: 3, button: ClickKind::Right });
        let err = serde_json::from_str::<Action>(r#"{"action":"click"}"#).unwrap_err().to_string();
        assert!(err.contains("index"), "{err}");
        assert!(serde_json::from_str::<Action>(r#"{"action":"fly"}"#).is_err());
        assert_eq!(bound(Some(3_600_000)), MAX_WAIT, "waits are bounded");

    }

    #[test]
    fn url_policy() {
        let open = UrlPolicy::default();
        assert!(open.check("https://example.com/a").is_ok());
        assert!(open.check("about:blank").is_ok());
        for bad in ["file:///etc/passwd", "chrome://settings", "javascript:alert(1)", "not a url"] {
            assert!(matches!(open.check(bad), Err(ActionError::UrlBlocked { .. })), "{bad}");
        }
        let narrow = UrlPolicy { allowed_domains: vec!["example.com".into()], blocked_domains: vec!["ads.example.com".into()] };
        assert!(narrow.check("https://shop.example.com/").is_ok());
        assert!(narrow.check("https://example.com.evil.net/").is_err());
        assert!(narrow.check("https://ads.example.com/x").is_err());
        assert!(narrow.check("https://other.org/").unwrap_err().to_string().contains("allowed domains"));
        assert_eq!(narrow.outside_allowed("https://Other.org/x").as_deref(), Some("other.org"));
        assert_eq!(narrow.outside_allowed("https://shop.example.com/"), None);
        assert_eq!(narrow.outside_allowed("https://ads.example.com/"), None, "blocked, not merely outside");
        assert_eq!(open.outside_allowed("https://other.org/"), None);
    }
}
