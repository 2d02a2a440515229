//! Acting on a page by the indices of [`crate::observe`]: each action returns what it did,
//! or an error that says why it could not (element gone, hidden, disabled, not editable,
//! navigation timeout). Input goes through CDP input events, as a person's would.

use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, InsertTextParams,
};
use chromiumoxide::layout::Point;
use serde::Deserialize;

use crate::BrowserError;

/// Why an action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The index names no element that is still in the page.
    #[error("element {0} is no longer on the page; observe again")]
    ElementGone(u64),
    /// The element is hidden or has no size.
    #[error("element {0} is not visible")]
    NotVisible(u64),
    /// The element is disabled.
    #[error("element {0} is disabled")]
    Disabled(u64),
    /// Text cannot be typed into the element.
    #[error("element {0} does not take text")]
    NotEditable(u64),
    /// The page did not finish loading in time.
    #[error("navigation to {url} did not finish within {seconds} s")]
    NavigationTimeout {
        /// Where it was going.
        url: String,
        /// The bound.
        seconds: u64,
    },
    /// The browser failed.
    #[error(transparent)]
    Browser(#[from] BrowserError),
}

impl From<chromiumoxide::error::CdpError> for ActionError {
    fn from(e: chromiumoxide::error::CdpError) -> Self {
        ActionError::Browser(e.into())
    }
}

/// What an action did, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    /// A short name (`click`, `type`, `navigate`).
    pub action: &'static str,
    /// A human-readable description.
    pub description: String,
    /// Wall time of the action.
    pub elapsed: Duration,
}

/// How typed text meets what the field already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeMode {
    /// Select everything first, so the text replaces it.
    Replace,
    /// Put the caret at the end.
    Append,
}

#[derive(Debug, Deserialize)]
struct Target {
    error: Option<String>,
    #[serde(default)]
    x: f64,
    #[serde(default)]
    y: f64,
    #[serde(default)]
    editable: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    label: String,
}

/// Finds element `index`, scrolls it into view and returns its centre in viewport
/// coordinates of the top document (iframe offsets added).
async fn locate(page: &Page, index: u64) -> Result<Target, ActionError> {
    let script = format!(
        r#"((i) => {{
  const A = window.__agentd; const ref = A && A.byId.get(i); const el = ref && ref.deref();
  if (!el || !el.isConnected) return {{ error: 'gone' }};
  el.scrollIntoView({{ block: 'center', inline: 'center', behavior: 'instant' }});
  const r = el.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0 || (el.checkVisibility && !el.checkVisibility())) return {{ error: 'hidden' }};
  let x = r.left + r.width / 2, y = r.top + r.height / 2, w = el.ownerDocument.defaultView;
  while (w !== window && w.frameElement) {{
    const f = w.frameElement.getBoundingClientRect();
    x += f.left + w.frameElement.clientLeft; y += f.top + w.frameElement.clientTop; w = w.parent;
  }}
  const tag = el.tagName.toLowerCase(), type = (el.type || 'text').toLowerCase();
  const editable = el.isContentEditable || tag === 'textarea' ||
    (tag === 'input' && !['button','submit','reset','checkbox','radio','file','image','range','color','hidden'].includes(type));
  const label = (el.getAttribute('aria-label') || el.innerText || el.value || el.placeholder || tag).toString().trim().slice(0, 60);
  return {{ x, y, editable, disabled: !!el.disabled, label }};
}})({index})"#
    );
    let target: Target = page
        .evaluate(script)
        .await?
        .into_value()
        .map_err(|e| BrowserError::Launch(format!("element lookup returned nothing usable: {e}")))?;
    match target.error.as_deref() {
        Some("gone") => Err(ActionError::ElementGone(index)),
        Some(_) => Err(ActionError::NotVisible(index)),
        None => Ok(target),
    }
}

/// Clicks the centre of element `index`.
pub async fn click(page: &Page, index: u64) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let target = locate(page, index).await?;
    if target.disabled {
        return Err(ActionError::Disabled(index));
    }
    page.click(Point { x: target.x, y: target.y }).await?;
    Ok(ActionOutcome {
        action: "click",
        description: format!("clicked [{index}] \"{}\"", target.label),
        elapsed: started.elapsed(),
    })
}

/// Types `text` into element `index`, replacing or appending, then presses Enter if asked.
pub async fn type_text(
    page: &Page,
    index: u64,
    text: &str,
    mode: TypeMode,
    enter: bool,
) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let target = locate(page, index).await?;
    if target.disabled {
        return Err(ActionError::Disabled(index));
    }
    if !target.editable {
        return Err(ActionError::NotEditable(index));
    }
    let select = match mode {
        TypeMode::Replace => "if (el.select) el.select(); else { const s = el.ownerDocument.getSelection(); s.selectAllChildren(el); }",
        TypeMode::Append => "if (el.setSelectionRange) { const n = el.value.length; el.setSelectionRange(n, n); } else { const s = el.ownerDocument.getSelection(); s.selectAllChildren(el); s.collapseToEnd(); }",
    };
    let focus = format!(
        "((i) => {{ const el = window.__agentd.byId.get(i).deref(); el.focus(); {select} return true; }})({index})"
    );
    let _: bool = page
        .evaluate(focus)
        .await?
        .into_value()
        .map_err(|e| BrowserError::Launch(format!("could not focus the element: {e}")))?;
    if !text.is_empty() {
        page.execute(InsertTextParams::new(text)).await?;
    }
    if enter {
        press_enter(page).await?;
    }
    let verb = if mode == TypeMode::Replace { "typed" } else { "appended" };
    Ok(ActionOutcome {
        action: "type",
        description: format!(
            "{verb} {} characters into [{index}] \"{}\"{}",
            text.chars().count(),
            target.label,
            if enter { " and pressed Enter" } else { "" }
        ),
        elapsed: started.elapsed(),
    })
}

async fn press_enter(page: &Page) -> Result<(), ActionError> {
    for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
        let mut event = DispatchKeyEventParams::builder()
            .r#type(kind.clone())
            .key("Enter")
            .code("Enter")
            .windows_virtual_key_code(13)
            .native_virtual_key_code(13);
        if kind == DispatchKeyEventType::KeyDown {
            event = event.text("\r");
        }
        let event = event.build().map_err(BrowserError::Launch)?;
        page.execute(event).await?;
    }
    Ok(())
}

/// Loads `url` and waits (at most `timeout`) for it to finish loading.
pub async fn navigate(page: &Page, url: &str, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, page.goto(url)).await {
        Err(_) => Err(ActionError::NavigationTimeout {
            url: url.to_owned(),
            seconds: timeout.as_secs(),
        }),
        Ok(result) => {
            result?;
            Ok(ActionOutcome {
                action: "navigate",
                description: format!("opened {url}"),
                elapsed: started.elapsed(),
            })
        }
    }
}
