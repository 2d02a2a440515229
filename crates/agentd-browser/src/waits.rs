//! Waiting without sleeping: every wait here is woken by a browser event or a DOM change and
//! bounded by a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{
    ClientNavigationDisposition, EventFrameNavigated, EventFrameRequestedNavigation, EventFrameStartedLoading,
    EventFrameStoppedLoading, FrameId,
    EventNavigatedWithinDocument,
};
use futures::{FutureExt, StreamExt};

use crate::actions::{ActionError, ActionOutcome};
use crate::scope::Scope;

/// How long an action waits for the page it navigated to.
pub const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `act` and, when it made the top document navigate, waits for the new document to load;
/// returns where the page went.
pub(crate) async fn follow_navigation<F>(page: &Page, act: F) -> Result<Option<String>, ActionError>
where
    F: Future<Output = Result<(), ActionError>>,
{
    let mut requested = page.event_listener::<EventFrameRequestedNavigation>().await?;
    let mut navigated = page.event_listener::<EventFrameNavigated>().await?;
    let mut started = page.event_listener::<EventFrameStartedLoading>().await?;
    let mut stopped = page.event_listener::<EventFrameStoppedLoading>().await?;
    let main = page.mainframe().await?;
    act.await?;
    // A round trip to the page after one turn of its event loop: navigations it requested
    // while handling the input, or in a task it queued for it (links, form submissions), have
    // been reported by the time it answers (the page reports them over the same channel).
    // If the document is already gone, that is a navigation too.
    let _ = Scope::TOP.eval::<u8>(page, "new Promise(r => setTimeout(() => r(0), 0))".into()).await;
    let mut target = None;
    while let Some(Some(event)) = requested.next().now_or_never() {
        if Some(&event.frame_id) == main.as_ref() && event.disposition == ClientNavigationDisposition::CurrentTab {
            target = Some(event.url.clone());
        }
    }
    let Some(url) = target else {
        return Ok(None);
    };
    let arrive = async {
        // Each event kind comes on its own channel, in the order the browser sent them
        // overall; when a stop arrives, whatever came before it is already queued on the
        // other channels, so they are drained before the stop is judged.
        let is_main = |frame: &FrameId| Some(frame) == main.as_ref();
        let mut loading = false;
        loop {
            tokio::select! {
                biased;
                Some(event) = navigated.next() => if event.frame.parent_id.is_none() { break },
                Some(event) = started.next() => loading |= is_main(&event.frame_id),
                Some(event) = stopped.next() => {
                    if !is_main(&event.frame_id) {
                        continue;
                    }
                    while let Some(Some(event)) = navigated.next().now_or_never() {
                        if event.frame.parent_id.is_none() {
                            return wait_loaded(page).await.map(|()| true);
                        }
                    }
                    while let Some(Some(event)) = started.next().now_or_never() {
                        loading |= is_main(&event.frame_id);
                    }
                    // Started and stopped without a new document: cancelled, or turned into
                    // a download, and the page stays where it was. A stop with no start is
                    // the last page's own, still on its way.
                    if loading {
                        return Ok(false);
                    }
                }
                else => break,
            }
        }
        wait_loaded(page).await.map(|()| true)
    };
    match tokio::time::timeout(NAVIGATION_TIMEOUT, arrive).await {
        Err(_) => Err(ActionError::NavigationTimeout { url, seconds: NAVIGATION_TIMEOUT.as_secs() }),
        Ok(Ok(true)) => Ok(Some(page.url().await?.unwrap_or(url))),
        Ok(Ok(false)) => Ok(None),
        Ok(Err(error)) => Err(error),
    }
}

/// The end of an action's description when it navigated.
pub(crate) fn arrival(navigated: &Option<String>) -> String {
    navigated.as_ref().map(|url| format!("; the page is now {url}")).unwrap_or_default()
}

/// Resolves when the current document has finished loading (on its `load` event).
pub(crate) async fn wait_loaded(page: &Page) -> Result<(), ActionError> {
    let script = "new Promise(r => document.readyState === 'complete' ? r(true) : addEventListener('load', () => r(true), { once: true }))";
    let _: bool = Scope::TOP.eval(page, script.into()).await?;
    Ok(())
}

/// Waits (at most `timeout`) until the top document navigates (a new document, or a
/// client-side route change) and the new document has loaded.
pub async fn wait_for_navigation(page: &Page, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let mut navigated = page.event_listener::<EventFrameNavigated>().await?;
    let mut within = page.event_listener::<EventNavigatedWithinDocument>().await?;
    let main = page.mainframe().await?;
    let arrive = async {
        loop {
            tokio::select! {
                Some(event) = navigated.next() => if event.frame.parent_id.is_none() { break },
                Some(event) = within.next() => if Some(&event.frame_id) == main.as_ref() { break },
                else => break,
            }
        }
        wait_loaded(page).await
    };
    tokio::time::timeout(timeout, arrive).await.map_err(|_| ActionError::WaitTimeout {
        what: "a navigation".into(),
        seconds: timeout.as_secs_f64(),
    })??;
    let url = page.url().await?.unwrap_or_default();
    Ok(ActionOutcome { action: "wait", description: format!("the page navigated to {url}"), elapsed: started.elapsed() })
}

/// Waits (at most `timeout`) until the page's visible text contains `text`, woken by DOM
/// changes rather than by polling.
pub async fn wait_for_text(page: &Page, text: &str, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let wanted = serde_json::to_string(text).unwrap_or_default();
    let found = format!("document.body && document.body.innerText.includes({wanted})");
    wait_for_dom(page, &found, &format!("text \"{text}\""), timeout).await
}

/// Waits (at most `timeout`) until an element matching CSS `selector` is visible.
pub async fn wait_for_selector(page: &Page, selector: &str, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let wanted = serde_json::to_string(selector).unwrap_or_default();
    let valid: bool = Scope::TOP
        .eval(page, format!("(() => {{ try {{ document.querySelector({wanted}); return true; }} catch (e) {{ return false; }} }})()"))
        .await?;
    if !valid {
        return Err(ActionError::BadSelector(selector.to_owned()));
    }
    let found = format!("Array.from(document.querySelectorAll({wanted})).some(e => e.checkVisibility())");
    wait_for_dom(page, &found, &format!("an element matching `{selector}`"), timeout).await
}

/// Resolves when `condition` (a JavaScript expression) holds, checked again on each DOM change.
async fn wait_for_dom(page: &Page, condition: &str, what: &str, timeout: Duration) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let script = format!(
        r#"new Promise(resolve => {{
  const found = () => {condition};
  if (found()) return resolve(true);
  const seen = new MutationObserver(() => {{ if (found()) {{ seen.disconnect(); resolve(true); }} }});
  seen.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
}})"#
    );
    match tokio::time::timeout(timeout, Scope::TOP.eval::<bool>(page, script)).await {
        Err(_) => Err(ActionError::WaitTimeout { what: what.to_owned(), seconds: timeout.as_secs_f64() }),
        Ok(result) => {
            result?;
            Ok(ActionOutcome { action: "wait", description: format!("{what} appeared"), elapsed: started.elapsed() })
        }
    }
}
