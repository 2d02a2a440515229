//! Where secrets meet the page: which site an action would type into (so that a secret is
//! typed only on its own sites), and screenshots taken with every field that holds a secret
//! masked.
//!
//! A capture first reads the page's documents (every frame, shadow roots included) over CDP
//! (`DOMSnapshot.captureSnapshot`) and compares field values and texts with the session's
//! [`ScreenMask`] in Rust — a secret is never sent into a page script — and gives each element
//! that shows one `-webkit-text-security: disc`, which draws its text as discs of the same
//! count whatever the characters. The element a secret is about to be typed into is masked
//! before the text goes in, so a capture taken meanwhile cannot catch it either. A mask is never
//! taken off (two captures at once cannot undo each other's); it changes nothing but the
//! element's look.

use std::sync::{Arc, RwLock};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::dom::{BackendNodeId, DescribeNodeParams, ResolveNodeParams};
use chromiumoxide::cdp::browser_protocol::dom_snapshot::{CaptureSnapshotReturns, StringIndex};
use chromiumoxide::cdp::js_protocol::runtime::{CallFunctionOnParams, EvaluateParams, ExecutionContextId, ReleaseObjectGroupParams};

use crate::act::Action;
use crate::actions::ActionError;
use crate::scope::scope_of;
use crate::session::SessionBrowser;
use crate::BrowserError;

/// The texts a session's screenshots must never show (every form of its secrets' values),
/// shared by every capture of the session. `Debug` shows how many, never which.
#[derive(Clone, Default)]
pub struct ScreenMask(Arc<RwLock<Vec<String>>>);

impl ScreenMask {
    /// Hides `values` from now on (replacing what was hidden before).
    pub fn set(&self, values: Vec<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = values.into_iter().filter(|v| !v.is_empty()).collect();
    }

    fn values(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for ScreenMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScreenMask({} values)", self.0.read().unwrap_or_else(|e| e.into_inner()).len())
    }
}

/// The mask every capture puts on an element that shows a secret.
const HIDE: &str = "function () { if (this.style) this.style.setProperty('-webkit-text-security', 'disc', 'important'); }";
const OBJECT_GROUP: &str = "agentd-mask";
/// A field cut short (a `maxlength`) still hides a start of a secret this long.
const MIN_CUT: usize = 6;
/// Frames within frames followed to find the focused element.
const MAX_FRAME_DEPTH: usize = 16;

/// `DOMSnapshot.captureSnapshot` asking for no computed style: chromiumoxide's own parameters
/// leave out an empty `computedStyles`, which the browser requires.
#[derive(Debug, Clone, serde::Serialize)]
struct Snapshot {
    #[serde(rename = "computedStyles")]
    computed_styles: [String; 0],
}

impl chromiumoxide::Method for Snapshot {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "DOMSnapshot.captureSnapshot".into()
    }
}

impl chromiumoxide::Command for Snapshot {
    type Response = CaptureSnapshotReturns;
}

/// Whether `text` shows one of `values` whole.
fn shows_secret(text: &str, values: &[String]) -> bool {
    values.iter().any(|v| text.contains(v.as_str()))
}

/// Whether a field's value is the beginning of one of `values` (a `maxlength` cut it).
fn holds_cut_secret(value: &str, values: &[String]) -> bool {
    let cut = value.trim_end();
    cut.chars().count() >= MIN_CUT && values.iter().any(|v| v.starts_with(cut))
}

/// Masks every element of the page that shows one of `mask`'s values: an input or text area
/// whose value holds it, or an element whose own text does. Called by every capture.
pub(crate) async fn hide_secrets(page: &Page, mask: &ScreenMask) -> Result<(), BrowserError> {
    let values = mask.values();
    if values.is_empty() {
        return Ok(());
    }
    let snapshot = page.execute(Snapshot { computed_styles: [] }).await?.result;
    let string = |index: &StringIndex| usize::try_from(*index.inner()).ok().and_then(|i| snapshot.strings.get(i));
    let shown: Vec<bool> = snapshot.strings.iter().map(|s| shows_secret(s, &values)).collect();
    let shows = |index: &StringIndex| usize::try_from(*index.inner()).ok().and_then(|i| shown.get(i)).copied().unwrap_or(false);
    // Only a field's value is taken for a secret cut short: a label may well begin like one.
    let field_shows = |index: &StringIndex| shows(index) || string(index).is_some_and(|v| holds_cut_secret(v, &values));
    let mut hidden: Vec<BackendNodeId> = Vec::new();
    for document in &snapshot.documents {
        let tree = &document.nodes;
        let backend = tree.backend_node_id.as_deref().unwrap_or_default();
        let node = |i: i64| usize::try_from(i).ok().and_then(|i| backend.get(i)).copied();
        for rare in [&tree.input_value, &tree.text_value].into_iter().flatten() {
            for (&i, value) in rare.index.iter().zip(&rare.value) {
                if field_shows(value) {
                    hidden.extend(node(i));
                }
            }
        }
        if let (Some(types), Some(texts), Some(parents)) = (&tree.node_type, &tree.node_value, &tree.parent_index) {
            for ((&kind, text), &parent) in types.iter().zip(texts).zip(parents) {
                // A text node: its element is masked.
                if kind == 3 && shows(text) {
                    hidden.extend(node(parent));
                }
            }
        }
    }
    hidden.sort_by_key(|id| *id.inner());
    hidden.dedup();
    let masked = async {
        for id in &hidden {
            let resolve = ResolveNodeParams { backend_node_id: Some(*id), object_group: Some(OBJECT_GROUP.into()), ..ResolveNodeParams::default() };
            // A node removed since the snapshot shows nothing any more.
            let Ok(resolved) = page.execute(resolve).await else { continue };
            let Some(object) = resolved.result.object.object_id else { continue };
            let hide = CallFunctionOnParams::builder().function_declaration(HIDE).object_id(object).build().map_err(BrowserError::Script)?;
            page.execute(hide).await?;
        }
        Ok::<_, BrowserError>(())
    };
    let result = masked.await;
    if !hidden.is_empty() {
        let _ = page.execute(ReleaseObjectGroupParams::new(OBJECT_GROUP)).await;
    }
    result
}

/// Finds the element with index `index`, masks it when `mark`, and returns its document's
/// origin (`null` when gone).
fn element_script(index: u64, mark: bool) -> String {
    format!(
        "((i) => {{ const r = window.__agentd && window.__agentd.byId.get(i); const el = r && r.deref();
  if (!el || !el.isConnected) return null;
  if ({mark} && el.style) el.style.setProperty('-webkit-text-security', 'disc', 'important');
  return (el.ownerDocument.defaultView || window).origin; }})({index})"
    )
}

/// Follows the focus down through shadow roots and same-origin frames: returns the focused
/// document's origin (masking the focused element when `mark`), or the frame element when the
/// focus is inside a cross-origin frame (its own context is asked next).
fn focus_script(mark: bool) -> String {
    format!(
        "(() => {{ let el = document.activeElement;
  for (let depth = 0; el && depth < 64; depth++) {{
    if (el.shadowRoot && el.shadowRoot.activeElement) {{ el = el.shadowRoot.activeElement; continue; }}
    if (el.tagName === 'IFRAME' || el.tagName === 'FRAME') {{
      let inner = null; try {{ inner = el.contentDocument; }} catch (e) {{}}
      if (!inner) return el;
      el = inner.activeElement; continue;
    }}
    break;
  }}
  if ({mark} && el && el !== el.ownerDocument.body && el.style) el.style.setProperty('-webkit-text-security', 'disc', 'important');
  return ((el && el.ownerDocument.defaultView) || window).origin; }})()"
    )
}

/// The origin of the document the focused element is in (through cross-origin frames too).
async fn focused_origin(page: &Page, mark: bool) -> Result<String, ActionError> {
    let mut context: Option<ExecutionContextId> = None;
    for _ in 0..MAX_FRAME_DEPTH {
        let mut params = EvaluateParams::builder().expression(focus_script(mark)).return_by_value(false).build().map_err(BrowserError::Script)?;
        params.context_id = context;
        let response = page.execute(params).await?.result;
        if response.exception_details.is_some() {
            return Err(BrowserError::Script("could not tell which document has the focus".into()).into());
        }
        if let Some(serde_json::Value::String(origin)) = response.result.value {
            return Ok(origin);
        }
        let Some(frame_element) = response.result.object_id else {
            return Err(BrowserError::Script("could not tell which document has the focus".into()).into());
        };
        let node = page.execute(DescribeNodeParams { object_id: Some(frame_element), ..DescribeNodeParams::default() }).await?.result.node;
        let frame = node.frame_id.ok_or_else(|| BrowserError::Script("the focused frame has no document".into()))?;
        context = Some(page.frame_execution_context(frame).await?.ok_or_else(|| BrowserError::Script("the focused frame is not ready".into()))?);
    }
    Err(BrowserError::Script("the focus is nested in too many frames".into()).into())
}

/// What [`SessionBrowser::typing_origin`] and [`SessionBrowser::mask_typing_target`] share.
async fn typing_target(page: &Page, action: &Action, mark: bool) -> Result<Option<String>, ActionError> {
    match action {
        Action::Type { index, .. } | Action::Select { index, .. } => {
            let scope = scope_of(page, *index).await?.ok_or(ActionError::ElementGone(*index))?;
            let origin: Option<String> = scope.eval(page, element_script(*index, mark)).await?;
            origin.map(Some).ok_or(ActionError::ElementGone(*index))
        }
        Action::TypeText { .. } | Action::PressKeys { .. } => focused_origin(page, mark).await.map(Some),
        _ => Ok(None),
    }
}

impl SessionBrowser {
    /// The origin (`https://example.com`, or `null` for an opaque one) of the document `action`
    /// would put text into — the element it names, or the one that has the focus — whatever
    /// frame it is in; None for an action that types nothing.
    pub async fn typing_origin(&self, action: &Action) -> Result<Option<String>, ActionError> {
        typing_target(self.page(), action, false).await
    }

    /// Masks the element `action` is about to type into, so that no screenshot shows what goes
    /// in (call it just before typing a secret).
    pub async fn mask_typing_target(&self, action: &Action) -> Result<(), ActionError> {
        typing_target(self.page(), action, true).await.map(|_| ())
    }

    /// What this session's screenshots hide.
    pub fn screen_mask(&self) -> &ScreenMask {
        &self.screen_mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_whole_and_in_fields_cut_short() {
        let values = vec!["Zürich päss/&=1 ✓".to_owned(), "hunter2".to_owned()];
        assert!(shows_secret("Zürich päss/&=1 ✓", &values));
        assert!(shows_secret("Hello Zürich päss/&=1 ✓!", &values));
        assert!(!shows_secret("Zürich p", &values), "a text is not taken for a cut secret");
        assert!(holds_cut_secret("Zürich p", &values), "a field's maxlength cut it");
        assert!(!holds_cut_secret("Zür", &values), "too short to tell");
        assert!(holds_cut_secret("hunter", &values));
        assert!(!holds_cut_secret("        ", &values), "white space is no secret");
        assert!(!shows_secret("nothing secret", &values) && !holds_cut_secret("nothing secret", &values));
        assert_eq!(format!("{:?}", { let m = ScreenMask::default(); m.set(values); m }), "ScreenMask(2 values)");
    }
}
