//! The rules a session's documents meet before their request leaves the browser: when the
//! session has rules of its own (allowed or blocked domains, an [`OutgoingCheck`] for its
//! secrets), every document request (a navigation, each of its redirect hops, an iframe, a form
//! post, a download) is paused by CDP's Fetch domain and checked — its scheme, the egress policy
//! (the proxy enforces it on the wire in any case: this check is what lets the page say why), for
//! the top-level document the session's `allowed_domains`, and the session's own check (secrets
//! leaving for another host). A refused request is answered with a page saying why, and the
//! sentence reaches the agent with its next observation (through the context's egress lane).
//! Sessions without such rules are not paused (a pause is a round trip to agentd per document):
//! the proxy alone refuses what the policy refuses, and notes it on the lane the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use agentd_egress::Lane;
use base64::Engine as _;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams, FulfillRequestParams, HeaderEntry, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{BrowserError, UrlPolicy};

/// A session's own check of what leaves in a document request (its secrets, say): `Err` with a
/// sentence for the agent refuses the request. It never sees subresources (the proxy sees those,
/// by host only).
pub trait OutgoingCheck: Send + Sync {
    /// Whether a request to `host` for `url` carrying `body` may leave.
    fn check_outgoing(&self, host: &str, url: &str, body: Option<&[u8]>) -> Result<(), String>;
}

/// What a context's documents are checked against; shared by its tabs and changed while the
/// session runs (a person allowing a host).
#[derive(Default)]
pub(crate) struct ContextRules {
    pub urls: RwLock<UrlPolicy>,
    pub outgoing: RwLock<Option<Arc<dyn OutgoingCheck>>>,
}

impl ContextRules {
    pub fn new(urls: UrlPolicy) -> Self {
        Self { urls: RwLock::new(urls), outgoing: RwLock::default() }
    }

    pub fn urls(&self) -> UrlPolicy {
        self.urls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the session has rules only the guard can apply: allowed or blocked domains, or
    /// its own check. Without any, documents are not paused (a pause costs a round trip to
    /// agentd per document); the egress policy holds on the wire through the proxy either way.
    fn need_guard(&self) -> bool {
        let urls = self.urls.read().unwrap_or_else(|e| e.into_inner());
        !urls.allowed_domains.is_empty()
            || !urls.blocked_domains.is_empty()
            || self.outgoing.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// Checks one tab's document requests while it lives, once its session has rules to apply
/// ([`NavigationGuard::ensure`]).
pub(crate) struct NavigationGuard {
    page: Page,
    rules: Arc<ContextRules>,
    enabled: AtomicBool,
    task: JoinHandle<()>,
}

impl NavigationGuard {
    /// Listens for `page`'s paused document requests and judges them by `rules` and `lane`;
    /// pausing starts now if the rules need it, or at the first [`NavigationGuard::ensure`] after
    /// they do.
    pub async fn watch(page: &Page, rules: Arc<ContextRules>, lane: Arc<Lane>) -> Result<Self, BrowserError> {
        let mut paused = page.event_listener::<EventRequestPaused>().await?;
        let guard_rules = rules.clone();
        let listening = page.clone();
        let task = tokio::spawn(async move {
            let (page, rules) = (listening, guard_rules);
            let main_frame = page.target_id().as_ref().to_owned();
            while let Some(event) = paused.next().await {
                let (page, rules, lane, main_frame) = (page.clone(), rules.clone(), lane.clone(), main_frame.clone());
                // Each on its own: a slow name lookup must not hold up the tab's other documents.
                tokio::spawn(async move {
                    let top = event.frame_id.as_ref() == main_frame;
                    match refusal(&event, top, &rules, &lane).await {
                        None => {
                            let _ = page.execute(ContinueRequestParams::new(event.request_id.clone())).await;
                        }
                        Some(sentence) => {
                            tracing::debug!(reason = %sentence, "a document request was refused");
                            // A page saying why; when the browser takes no page for this request,
                            // it is failed instead — never left paused.
                            if let Err(error) = page.execute(refusal_page(&event, &sentence)).await {
                                tracing::debug!(%error, "a refusal page was not taken; failing the request");
                                let fail = FailRequestParams::new(event.request_id.clone(), ErrorReason::BlockedByClient);
                                let _ = page.execute(fail).await;
                            }
                            lane.note_refusal(sentence);
                        }
                    }
                });
            }
        });
        let guard = Self { page: page.clone(), rules, enabled: AtomicBool::new(false), task };
        guard.ensure().await?;
        Ok(guard)
    }

    /// Starts pausing the tab's document requests if its session's rules now need it (called
    /// before each observation and action; an atomic load when nothing changed).
    pub async fn ensure(&self) -> Result<(), BrowserError> {
        if self.enabled.load(Ordering::Acquire) || !self.rules.need_guard() {
            return Ok(());
        }
        let pattern = RequestPattern {
            url_pattern: Some("*".into()),
            resource_type: Some(ResourceType::Document),
            request_stage: Some(RequestStage::Request),
        };
        self.page.execute(EnableParams { patterns: Some(vec![pattern]), handle_auth_requests: None }).await?;
        self.enabled.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for NavigationGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a paused document request may not leave, as a sentence for the agent; None lets it go.
async fn refusal(event: &EventRequestPaused, top: bool, rules: &ContextRules, lane: &Lane) -> Option<String> {
    let raw = &event.request.url;
    let Ok(url) = url::Url::parse(raw) else {
        return Some("refused: a page asked for a request to something that is not a URL".into());
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!("refused: the {} scheme is not allowed; only http and https are", url.scheme()));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    match lane.check(&host, port).await {
        // A name that does not resolve is the network's answer, not a refusal: the request goes
        // on and fails as it would.
        Ok(()) | Err(agentd_egress::EgressError::Resolve { .. }) => {}
        Err(error) => return Some(format!("refused by the egress policy: {error}")),
    }
    if top {
        let urls = rules.urls();
        if let Some(outside) = urls.outside_allowed(raw) {
            let what = if event.redirected_request_id.is_some() { "a redirect" } else { "a navigation" };
            return Some(format!(
                "refused: {what} to {outside}, which is outside the session's allowed domains ({})",
                urls.allowed_domains.join(", ")
            ));
        }
        if let Err(blocked) = urls.check(raw) {
            return Some(format!("refused: {blocked}", blocked = blocked_reason(&blocked)));
        }
    }
    let outgoing = rules.outgoing.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(check) = outgoing {
        let body = post_body(event);
        if let Err(reason) = check.check_outgoing(&host, raw, body.as_deref()) {
            return Some(format!("refused: {reason}"));
        }
    }
    None
}

/// The reason part of a URL-policy refusal, without the URL (its query may hold anything).
fn blocked_reason(error: &crate::ActionError) -> String {
    match error {
        crate::ActionError::UrlBlocked { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The request's body, when it has one the browser handed over.
fn post_body(event: &EventRequestPaused) -> Option<Vec<u8>> {
    let entries = event.request.post_data_entries.as_ref()?;
    let mut body = Vec::new();
    for entry in entries {
        if let Some(bytes) = &entry.bytes {
            let encoded: &str = bytes.as_ref();
            body.extend(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?);
        }
    }
    Some(body)
}

/// A 403 page saying why, in place of what was asked for.
fn refusal_page(event: &EventRequestPaused, sentence: &str) -> FulfillRequestParams {
    let escaped = sentence.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Refused by agentd</title></head>\
         <body><h1>Refused by agentd</h1><p>{escaped}</p></body></html>"
    );
    let mut params = FulfillRequestParams::new(event.request_id.clone(), 403);
    params.response_headers = Some(vec![
        HeaderEntry::new("content-type", "text/html; charset=utf-8"),
        HeaderEntry::new("cache-control", "no-store"),
    ]);
    params.body = Some(base64::engine::general_purpose::STANDARD.encode(page).into());
    params
}
