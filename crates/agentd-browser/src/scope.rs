//! Where a script runs: the page's top document, or the document of a cross-origin iframe.
//!
//! The page-state collector walks the top document and its same-origin iframes in one pass;
//! a cross-origin iframe's document is out of its reach, so it runs again inside that frame's
//! own JavaScript context (the browser is launched with cross-origin frames in the page's
//! renderer, so their contexts belong to the page's CDP session). Each document keeps its own
//! index table; indices stay unique because every run starts numbering above the highest
//! index handed out so far (see `page_state.js`).

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::dom::{DescribeNodeParams, GetBoxModelParams};
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, ExecutionContextId, RemoteObjectId};
use serde::de::DeserializeOwned;

use crate::BrowserError;

/// A document of the page: the top one (`None`) or a cross-origin frame's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Scope(pub Option<ExecutionContextId>);

impl Scope {
    /// The top document.
    pub const TOP: Scope = Scope(None);

    fn params(self, expression: String, by_value: bool) -> Result<EvaluateParams, BrowserError> {
        let mut params = EvaluateParams::builder()
            .expression(expression)
            .return_by_value(by_value)
            .await_promise(true)
            .build()
            .map_err(BrowserError::Script)?;
        params.context_id = self.0;
        Ok(params)
    }

    /// Evaluates `expression` here and returns its value. The top document is addressed
    /// without a context id, so the browser picks its current document even mid-navigation.
    pub async fn eval<T: DeserializeOwned>(self, page: &Page, expression: String) -> Result<T, BrowserError> {
        let response = page.execute(self.params(expression, true)?).await?.result;
        if let Some(exception) = response.exception_details {
            let detail = exception.exception.and_then(|e| e.description).unwrap_or(exception.text);
            return Err(BrowserError::Script(format!("a page script failed: {detail}")));
        }
        let value = response.result.value.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|e| BrowserError::Script(format!("a page script returned nothing usable: {e}")))
    }

    /// A handle on element `index` of this document's index table, if it is still there.
    pub async fn element(self, page: &Page, index: u64) -> Result<Option<RemoteObjectId>, BrowserError> {
        let expression =
            format!("(() => {{ const r = window.__agentd && window.__agentd.byId.get({index}); return r && r.deref(); }})()");
        let response = page.execute(self.params(expression, false)?).await?;
        Ok(response.result.result.object_id)
    }

    /// The context of the cross-origin iframe that is element `index` of this document.
    pub async fn frame_of(self, page: &Page, index: u64) -> Result<Option<Scope>, BrowserError> {
        let Some(object) = self.element(page, index).await? else {
            return Ok(None);
        };
        let describe = DescribeNodeParams { object_id: Some(object), ..DescribeNodeParams::default() };
        let node = page.execute(describe).await?.result.node;
        let Some(frame) = node.frame_id else {
            return Ok(None);
        };
        Ok(page.frame_execution_context(frame).await?.map(|id| Scope(Some(id))))
    }
}

/// The document whose index table holds `index`: the top one first, then each frame's.
pub(crate) async fn scope_of(page: &Page, index: u64) -> Result<Option<Scope>, BrowserError> {
    let holds = format!("!!(window.__agentd && window.__agentd.byId.has({index}))");
    if Scope::TOP.eval::<bool>(page, holds.clone()).await? {
        return Ok(Some(Scope::TOP));
    }
    let main = page.mainframe().await?;
    for frame in page.frames().await? {
        if Some(&frame) == main.as_ref() {
            continue;
        }
        let Some(context) = page.frame_execution_context(frame).await? else {
            continue;
        };
        let scope = Scope(Some(context));
        // A frame may be navigating away; a failed probe only means "not here".
        if scope.eval::<bool>(page, holds.clone()).await.unwrap_or(false) {
            return Ok(Some(scope));
        }
    }
    Ok(None)
}

/// The centre of an element's content box in the top viewport's coordinates (DOM box models
/// of frames in the page's renderer are already relative to the top viewport).
pub(crate) async fn centre_of(page: &Page, object: RemoteObjectId) -> Result<(f64, f64), BrowserError> {
    let params = GetBoxModelParams { object_id: Some(object), ..GetBoxModelParams::default() };
    let model = page.execute(params).await?.result.model;
    let quad = model.content.inner();
    if quad.len() < 8 {
        return Err(BrowserError::Script("the element has no box".into()));
    }
    let x = (quad[0] + quad[2] + quad[4] + quad[6]) / 4.0;
    let y = (quad[1] + quad[3] + quad[5] + quad[7]) / 4.0;
    Ok((x, y))
}
