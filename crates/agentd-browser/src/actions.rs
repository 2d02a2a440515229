//! Acting on a page by the indices of [`crate::observe`]: each action returns what it did,
//! or an error that says why it could not (element gone, hidden, disabled, not editable,
//! navigation timeout). Input goes through CDP input events, as a person's would.

use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::layout::Point;
use serde::Deserialize;

use crate::BrowserError;
use crate::scope::{Scope, centre_of, scope_of};

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
    /// The element refused the action (not a select, no such option, ...).
    #[error("element {index}: {reason}")]
    Refused {
        /// The element.
        index: u64,
        /// Why.
        reason: String,
    },
    /// No visible text on the page contains what was asked for.
    #[error("no visible text contains \"{0}\"")]
    TextNotFound(String),
    /// What was waited for did not happen in time.
    #[error("{what} did not appear within {seconds} s")]
    WaitTimeout {
        /// What was awaited.
        what: String,
        /// The bound.
        seconds: f64,
    },
    /// The session may not open this URL.
    #[error("{url} is blocked: {reason}")]
    UrlBlocked {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The egress policy refuses the destination (a loopback, private or metadata address, the
    /// browser's own endpoint...).
    #[error("refused by the egress policy: {0}")]
    EgressRefused(String),
    /// A CSS selector the page cannot parse.
    #[error("`{0}` is not a valid CSS selector")]
    BadSelector(String),
    /// A key name or combination that cannot be pressed.
    #[error("{0}")]
    BadKey(String),
    /// Arguments that contradict each other.
    #[error("{0}")]
    BadArguments(String),
    /// A point outside the viewport.
    #[error("({x}, {y}) is outside the {width}x{height} viewport")]
    OutOfViewport {
        /// Horizontal position asked for.
        x: f64,
        /// Vertical position asked for.
        y: f64,
        /// Viewport width.
        width: f64,
        /// Viewport height.
        height: f64,
    },
    /// There is no page to go back or forward to.
    #[error("there is no page to go {0} to")]
    NoHistory(&'static str),
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
    /// The document the element lives in.
    #[serde(skip)]
    scope: Scope,
}

/// Scrolls element `index` (in `window.__agentd` of the document it runs in) into view and
/// describes it; coordinates are its centre in the top viewport for same-origin documents.
fn locate_script(index: u64) -> String {
    format!(
        r#"((i) => {{
  const A = window.__agentd; const ref = A && A.byId.get(i); const el = ref && ref.deref();
  if (!el || !el.isConnected) return {{ error: 'gone' }};
  el.scrollIntoView({{ block: 'center', inline: 'center', behavior: 'instant' }});
  const r = el.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0 || (el.checkVisibility && !el.checkVisibility())) {{
    // A hidden file input is reached through its visible label.
    const label = el.type === 'file' && Array.from(el.labels || []).find(l => l.checkVisibility());
    if (!label) return {{ error: 'hidden' }};
  }}
  let x = r.left + r.width / 2, y = r.top + r.height / 2, w = el.ownerDocument.defaultView;
  while (w !== window && w.frameElement) {{
    const f = w.frameElement.getBoundingClientRect();
    x += f.left + w.frameElement.clientLeft; y += f.top + w.frameElement.clientTop; w = w.parent;
  }}
  const tag = el.tagName.toLowerCase(), type = (el.type || 'text').toLowerCase();
  const editable = el.isContentEditable || tag === 'textarea' ||
    (tag === 'input' && !['button','submit','reset','checkbox','radio','file','image','range','color','hidden'].includes(type));
  const label = (el.getAttribute('aria-label') || el.innerText || el.value || el.placeholder || tag).toString().trim().slice(0, 60);
  return {{ x, y, editable, disabled: !!el.disabled || el.getAttribute('aria-disabled') === 'true', label }};
}})({index})"#
    )
}

/// Finds element `index` in the page's documents, scrolls it into view and returns its
/// centre in the top viewport's coordinates.
async fn locate(page: &Page, index: u64) -> Result<Target, ActionError> {
    let mut target: Target = Scope::TOP.eval(page, locate_script(index)).await?;
    if target.error.as_deref() == Some("gone") {
        // Not in the top document: perhaps in a cross-origin frame's.
        let Some(scope) = scope_of(page, index).await? else {
            return Err(ActionError::ElementGone(index));
        };
        target = scope.eval(page, locate_script(index)).await?;
        target.scope = scope;
        if target.error.is_none() && scope != Scope::TOP {
            let object = scope.element(page, index).await?.ok_or(ActionError::ElementGone(index))?;
            (target.x, target.y) = centre_of(page, object).await?;
        }
    }
    match target.error.as_deref() {
        Some("gone") => Err(ActionError::ElementGone(index)),
        Some(_) => Err(ActionError::NotVisible(index)),
        None => Ok(target),
    }
}

/// Which click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickKind {
    /// One left click.
    #[default]
    #[serde(alias = "left")]
    Single,
    /// Two left clicks (a `dblclick`).
    Double,
    /// One right click (a `contextmenu`).
    Right,
    /// One middle-button click.
    Middle,
    /// Three left clicks (selects a paragraph or a field's text).
    Triple,
}

impl ClickKind {
    fn verb(self) -> &'static str {
        match self {
            ClickKind::Single => "clicked",
            ClickKind::Double => "double-clicked",
            ClickKind::Right => "right-clicked",
            ClickKind::Middle => "middle-clicked",
            ClickKind::Triple => "triple-clicked",
        }
    }
}

/// Clicks the centre of element `index`.
pub async fn click(page: &Page, index: u64) -> Result<ActionOutcome, ActionError> {
    click_with(page, index, ClickKind::Single).await
}

/// Clicks element `index` the way `kind` says; a navigation the click starts is waited for.
pub async fn click_with(page: &Page, index: u64, kind: ClickKind) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let target = locate(page, index).await?;
    if target.disabled {
        return Err(ActionError::Disabled(index));
    }
    let navigated = crate::waits::follow_navigation(page, mouse_click(page, target.x, target.y, kind)).await?;
    Ok(ActionOutcome {
        action: "click",
        description: format!("{} [{index}] \"{}\"{}", kind.verb(), target.label, crate::waits::arrival(&navigated)),
        elapsed: started.elapsed(),
    })
}

/// Clicks the viewport point (`x`, `y`) in CSS pixels, for what has no index (a canvas, a map).
pub async fn click_at(page: &Page, x: f64, y: f64, kind: ClickKind) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    in_viewport(page, &[(x, y)]).await?;
    let navigated = crate::waits::follow_navigation(page, mouse_click(page, x, y, kind)).await?;
    Ok(ActionOutcome {
        action: "click",
        description: format!("{} at ({x}, {y}){}", kind.verb(), crate::waits::arrival(&navigated)),
        elapsed: started.elapsed(),
    })
}

/// Ok when every point is inside the viewport.
pub(crate) async fn in_viewport(page: &Page, points: &[(f64, f64)]) -> Result<(), ActionError> {
    let (width, height): (f64, f64) = Scope::TOP.eval(page, "[window.innerWidth, window.innerHeight]".into()).await?;
    match points.iter().find(|(x, y)| !(0.0..width).contains(x) || !(0.0..height).contains(y)) {
        Some(&(x, y)) => Err(ActionError::OutOfViewport { x, y, width, height }),
        None => Ok(()),
    }
}

/// Moves the mouse to (`x`, `y`) and presses and releases the button, twice for a double click
/// (with the click count a person's second click carries).
async fn mouse_click(page: &Page, x: f64, y: f64, kind: ClickKind) -> Result<(), ActionError> {
    use chromiumoxide::cdp::browser_protocol::input::{DispatchMouseEventParams, DispatchMouseEventType, MouseButton};
    page.move_mouse(Point { x, y }).await?;
    let (button, clicks) = match kind {
        ClickKind::Single => (MouseButton::Left, 1),
        ClickKind::Double => (MouseButton::Left, 2),
        ClickKind::Right => (MouseButton::Right, 1),
        ClickKind::Middle => (MouseButton::Middle, 1),
        ClickKind::Triple => (MouseButton::Left, 3),
    };
    for count in 1..=clicks {
        for kind in [DispatchMouseEventType::MousePressed, DispatchMouseEventType::MouseReleased] {
            let event = DispatchMouseEventParams::builder()
                .r#type(kind)
                .x(x)
                .y(y)
                .button(button.clone())
                .click_count(count)
                .build()
                .map_err(BrowserError::Script)?;
            page.execute(event).await?;
        }
    }
    Ok(())
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
    let _: bool = target.scope.eval(page, focus).await?;
    if !text.is_empty() {
        page.execute(InsertTextParams::new(text)).await?;
    }
    let press_enter = async { crate::keys::press_keys(page, &["Enter"]).await.map(|_| ()) };
    let navigated = if enter { crate::waits::follow_navigation(page, press_enter).await? } else { None };
    let verb = if mode == TypeMode::Replace { "typed" } else { "appended" };
    Ok(ActionOutcome {
        action: "type",
        description: format!(
            "{verb} {} characters into [{index}] \"{}\"{}",
            text.chars().count(),
            target.label,
            if enter { " and pressed Enter" } else { "" }
        ) + &crate::waits::arrival(&navigated),
        elapsed: started.elapsed(),
    })
}

/// Runs `body` (JavaScript with `el` bound to element `index`) and returns its string result;
/// `body` returns an error text starting with `!` to refuse.
async fn on_element(page: &Page, index: u64, body: &str) -> Result<String, ActionError> {
    let target = locate(page, index).await?;
    let script = format!(
        "((i) => {{ const el = window.__agentd.byId.get(i).deref(); {body} }})({index})"
    );
    let result: String = target.scope.eval(page, script).await?;
    match result.strip_prefix('!') {
        Some(refusal) => Err(ActionError::Refused { index, reason: refusal.to_owned() }),
        None => Ok(result),
    }
}

/// Chooses the option of select element `index` whose label or value is `option`.
pub async fn select_option(page: &Page, index: u64, option: &str) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let wanted = serde_json::to_string(option).unwrap_or_default();
    let body = format!(
        r#"if (el.tagName !== 'SELECT') return '!it is not a select element';
  const want = {wanted}; const opts = Array.from(el.options);
  const o = opts.find(o => o.label.trim() === want.trim()) || opts.find(o => o.value === want);
  if (!o) return '!no option ' + JSON.stringify(want) + '; options: ' + opts.map(o => JSON.stringify(o.label)).join(', ');
  if (o.disabled) return '!option ' + JSON.stringify(o.label) + ' is disabled';
  el.value = o.value; o.selected = true;
  el.dispatchEvent(new Event('input', {{ bubbles: true }})); el.dispatchEvent(new Event('change', {{ bubbles: true }}));
  return o.label;"#
    );
    let label = on_element(page, index, &body).await?;
    Ok(ActionOutcome {
        action: "select",
        description: format!("selected \"{label}\" in [{index}]"),
        elapsed: started.elapsed(),
    })
}

/// Checks (`true`) or unchecks a checkbox, radio or switch by clicking it when needed.
pub async fn set_checked(page: &Page, index: u64, checked: bool) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let state = "const c = ('checked' in el && (el.type === 'checkbox' || el.type === 'radio')) ? el.checked : el.getAttribute('aria-checked') === 'true'; return String(c);";
    let current = on_element(page, index, state).await? == "true";
    if current != checked {
        click(page, index).await?;
        if (on_element(page, index, state).await? == "true") != checked {
            return Err(ActionError::Refused {
                index,
                reason: format!("clicking did not {} it", if checked { "check" } else { "uncheck" }),
            });
        }
    }
    Ok(ActionOutcome {
        action: if checked { "check" } else { "uncheck" },
        description: format!("{} [{index}]", if checked { "checked" } else { "unchecked" }),
        elapsed: started.elapsed(),
    })
}

/// Moves the mouse over element `index`.
pub async fn hover(page: &Page, index: u64) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let target = locate(page, index).await?;
    page.move_mouse(Point { x: target.x, y: target.y }).await?;
    Ok(ActionOutcome {
        action: "hover",
        description: format!("hovered over [{index}] \"{}\"", target.label),
        elapsed: started.elapsed(),
    })
}

/// Where to scroll.
#[derive(Debug, Clone, PartialEq)]
pub enum ScrollTarget {
    /// The page, by this many viewport heights (negative: up).
    Pages(f64),
    /// Element `index`'s own scroll area, by this many of its heights.
    Element(u64, f64),
    /// Until this text is in view.
    Text(String),
}

/// Scrolls the page, an element, or to a text; reports where the page now stands.
pub async fn scroll(page: &Page, target: ScrollTarget) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let description = match &target {
        ScrollTarget::Pages(pages) => {
            let script = format!("window.scrollBy(0, {pages} * window.innerHeight); String(Math.round(window.scrollY))");
            let y: String = Scope::TOP.eval(page, script).await?;
            format!("scrolled the page by {pages} pages to y={y}")
        }
        ScrollTarget::Element(index, amount) => {
            let body = format!("el.scrollBy(0, {amount} * el.clientHeight); return String(Math.round(el.scrollTop));");
            let top = on_element(page, *index, &body).await?;
            format!("scrolled [{index}] by {amount} of its height to top={top}")
        }
        ScrollTarget::Text(text) => {
            let wanted = serde_json::to_string(text).unwrap_or_default();
            let script = format!(
                r#"(() => {{ const want = {wanted}.toLowerCase();
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = w.nextNode(); n; n = w.nextNode()) {{
    if (n.textContent.toLowerCase().includes(want) && n.parentElement && n.parentElement.checkVisibility()) {{
      n.parentElement.scrollIntoView({{ block: 'center', behavior: 'instant' }}); return String(Math.round(window.scrollY));
    }}
  }}
  return '!'; }})()"#
            );
            let y: String = Scope::TOP.eval(page, script).await?;
            if y == "!" {
                return Err(ActionError::TextNotFound(text.clone()));
            }
            format!("scrolled to \"{text}\" (y={y})")
        }
    };
    Ok(ActionOutcome {
        action: "scroll",
        description,
        elapsed: started.elapsed(),
    })
}

/// Steps through the session's history: `-1` back, `1` forward; waits for the page.
pub async fn go_history(page: &Page, delta: i64, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    use chromiumoxide::cdp::browser_protocol::page::{GetNavigationHistoryParams, NavigateToHistoryEntryParams};
    let started = Instant::now();
    let history = page.execute(GetNavigationHistoryParams::default()).await?.result;
    let to = history.current_index + delta;
    let Some(entry) = usize::try_from(to).ok().and_then(|i| history.entries.get(i)) else {
        return Err(ActionError::NoHistory(if delta < 0 { "back" } else { "forward" }));
    };
    let url = entry.url.clone();
    let go = async {
        use chromiumoxide::cdp::browser_protocol::page::{EventFrameNavigated, EventNavigatedWithinDocument};
        use futures::StreamExt;
        // Listen before acting: a restore from the back-forward cache fires no load event,
        // and a client-routed page navigates within its document.
        let mut navigated = page.event_listener::<EventFrameNavigated>().await?;
        let mut within = page.event_listener::<EventNavigatedWithinDocument>().await?;
        page.execute(NavigateToHistoryEntryParams::new(entry.id)).await?;
        loop {
            tokio::select! {
                Some(event) = navigated.next() => if event.frame.parent_id.is_none() { break },
                Some(_) = within.next() => break,
                else => break,
            }
        }
        crate::waits::wait_loaded(page).await
    };
    tokio::time::timeout(timeout, go)
        .await
        .map_err(|_| ActionError::NavigationTimeout { url: url.clone(), seconds: timeout.as_secs() })??;
    Ok(ActionOutcome {
        action: if delta < 0 { "back" } else { "forward" },
        description: format!("went {} to {url}", if delta < 0 { "back" } else { "forward" }),
        elapsed: started.elapsed(),
    })
}

/// Puts the files at `paths` into file input `index` (hidden inputs included: pages often
/// style a label instead); the page receives its usual `input` and `change` events.
pub async fn upload_files(page: &Page, index: u64, paths: &[std::path::PathBuf]) -> Result<ActionOutcome, ActionError> {
    use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
    let started = Instant::now();
    for path in paths {
        if !path.is_file() {
            return Err(ActionError::Refused { index, reason: format!("no file at {}", path.display()) });
        }
    }
    let check = format!(
        "((i) => {{ const r = window.__agentd && window.__agentd.byId.get(i); const el = r && r.deref();
           if (!el || !el.isConnected) return 'gone';
           return el.tagName === 'INPUT' && el.type === 'file' ? (el.multiple ? 'many' : 'one') : 'other'; }})({index})"
    );
    let scope = scope_of(page, index).await?.ok_or(ActionError::ElementGone(index))?;
    let kind: String = scope.eval(page, check).await?;
    match kind.as_str() {
        "gone" => return Err(ActionError::ElementGone(index)),
        "other" => return Err(ActionError::Refused { index, reason: "it is not a file input".into() }),
        "one" if paths.len() > 1 => {
            return Err(ActionError::Refused { index, reason: "this input takes one file".into() });
        }
        _ => {}
    }
    let object = scope.element(page, index).await?.ok_or(ActionError::ElementGone(index))?;
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut params = SetFileInputFilesParams::new(files.clone());
    params.object_id = Some(object);
    page.execute(params).await?;
    Ok(ActionOutcome {
        action: "upload",
        description: format!("put {} into [{index}]", files.join(", ")),
        elapsed: started.elapsed(),
    })
}

/// How a screenshot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shot {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Scale the image down to at most this many pixels wide.
    pub max_width: Option<u32>,
}

impl From<u8> for Shot {
    fn from(quality: u8) -> Self {
        Self { quality, max_width: None }
    }
}

/// A JPEG of the viewport; whatever shows one of `mask`'s values is masked first.
pub async fn screenshot(page: &Page, shot: impl Into<Shot>, mask: &crate::ScreenMask) -> Result<Vec<u8>, ActionError> {
    use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, Viewport as Clip};
    use chromiumoxide::page::ScreenshotParams;
    let shot = shot.into();
    let mut params = ScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Jpeg)
        .quality(i64::from(shot.quality.clamp(1, 100)));
    if let Some(max_width) = shot.max_width {
        let view = page.layout_metrics().await?.css_visual_viewport;
        if view.client_width > f64::from(max_width) {
            let scale = f64::from(max_width.max(1)) / view.client_width;
            params = params.clip(Clip { x: view.page_x, y: view.page_y, width: view.client_width, height: view.client_height, scale });
        }
    }
    crate::mask::hide_secrets(page, mask).await?;
    Ok(page.screenshot(params.build()).await?)
}

/// A JPEG of the viewport with a numbered box drawn on each element of `state` that is in
/// view (set-of-marks, for vision models). The marks live in an overlay that the page's own
/// scripts cannot reach, and are removed right after the capture. `mask` as for [`screenshot`].
pub async fn annotated_screenshot(
    page: &Page,
    state: &crate::PageState,
    shot: impl Into<Shot>,
    mask: &crate::ScreenMask,
) -> Result<Vec<u8>, ActionError> {
    let marks: Vec<[i64; 5]> = state
        .elements
        .iter()
        .filter(|e| e.in_viewport())
        .map(|e| [e.index as i64, e.x, e.y, e.w, e.h])
        .collect();
    let marks = serde_json::to_string(&marks).unwrap_or_default();
    let draw = format!(
        r#"((marks) => {{
  const host = document.createElement('agentd-marks');
  host.style.cssText = 'position:fixed;inset:0;z-index:2147483647;pointer-events:none;display:block';
  const root = host.attachShadow({{ mode: 'closed' }});
  const colours = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#008080', '#9a6324', '#800000'];
  for (const [i, x, y, w, h] of marks) {{
    const c = colours[i % colours.length];
    const box = document.createElement('div');
    box.style.cssText = `position:fixed;left:${{x}}px;top:${{y}}px;width:${{w}}px;height:${{h}}px;outline:2px solid ${{c}};box-sizing:border-box`;
    const tag = document.createElement('span');
    tag.textContent = i;
    tag.style.cssText = `position:absolute;left:-2px;top:${{y > 14 ? -16 : 0}}px;background:${{c}};color:#fff;font:bold 11px/14px sans-serif;padding:0 3px`;
    box.appendChild(tag); root.appendChild(box);
  }}
  document.documentElement.appendChild(host);
  window.__agentdMarks = host;
  return true;
}})({marks})"#
    );
    let _: bool = Scope::TOP.eval(page, draw).await?;
    let shot = screenshot(page, shot, mask).await;
    let _: bool = Scope::TOP
        .eval(page, "(() => { const h = window.__agentdMarks; if (h) h.remove(); delete window.__agentdMarks; return true; })()".into())
        .await?;
    shot
}

/// Reloads the page and waits for it.
pub async fn reload(page: &Page, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let url = page.url().await?.unwrap_or_default();
    tokio::time::timeout(timeout, page.reload())
        .await
        .map_err(|_| ActionError::NavigationTimeout { url: url.clone(), seconds: timeout.as_secs() })??;
    Ok(ActionOutcome {
        action: "reload",
        description: format!("reloaded {url}"),
        elapsed: started.elapsed(),
    })
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
