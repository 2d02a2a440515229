//! A page's requests in flight, followed from the moment the page is opened, so "wait until
//! the network is quiet" also counts requests that started before anyone asked.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::EventFrameNavigated;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::BrowserError;
use crate::actions::{ActionError, ActionOutcome};

/// Requests in flight and requests seen, for one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Traffic {
    in_flight: usize,
    seen: u64,
}

/// Follows one page's requests.
pub(crate) struct NetworkTracker {
    traffic: watch::Receiver<Traffic>,
    task: JoinHandle<()>,
}

impl NetworkTracker {
    pub async fn watch(page: &Page) -> Result<Self, BrowserError> {
        let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
        let mut finished = page.event_listener::<EventLoadingFinished>().await?;
        let mut failed = page.event_listener::<EventLoadingFailed>().await?;
        let mut navigated = page.event_listener::<EventFrameNavigated>().await?;
        let (tx, traffic) = watch::channel(Traffic::default());
        let task = tokio::spawn(async move {
            let mut open = HashSet::new();
            let mut seen = 0u64;
            loop {
                tokio::select! {
                    Some(event) = sent.next() => {
                        // Streams that stay open by design never make a page busy.
                        let streaming = matches!(event.r#type, Some(ResourceType::EventSource | ResourceType::WebSocket));
                        // A redirect reuses its request id: still one request.
                        if !streaming && open.insert(event.request_id.clone()) {
                            seen += 1;
                        }
                    }
                    // A new document: what the old one had open (a download, say) is moot.
                    Some(event) = navigated.next() => if event.frame.parent_id.is_none() { open.clear() },
                    Some(event) = finished.next() => { open.remove(&event.request_id); }
                    Some(event) = failed.next() => { open.remove(&event.request_id); }
                    else => return,
                }
                tx.send_replace(Traffic { in_flight: open.len(), seen });
            }
        });
        Ok(Self { traffic, task })
    }

    /// Waits (at most `timeout`) until no request has been in flight for `quiet`.
    pub async fn wait_idle(&self, quiet: Duration, timeout: Duration) -> Result<ActionOutcome, ActionError> {
        let started = Instant::now();
        let mut traffic = self.traffic.clone();
        let first = traffic.borrow_and_update().seen;
        let settle = async {
            loop {
                if traffic.borrow_and_update().in_flight == 0 {
                    tokio::select! {
                        () = tokio::time::sleep(quiet) => return,
                        changed = traffic.changed() => if changed.is_err() { return },
                    }
                } else if traffic.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, settle).await.map_err(|_| ActionError::WaitTimeout {
            what: format!("a quiet network ({} requests still open)", self.traffic.borrow().in_flight),
            seconds: timeout.as_secs_f64(),
        })?;
        let now = *self.traffic.borrow();
        Ok(ActionOutcome {
            action: "wait",
            description: format!(
                "the network was quiet for {} ms ({} requests during the wait)",
                quiet.as_millis(),
                now.seen - first
            ),
            elapsed: started.elapsed(),
        })
    }
}

impl Drop for NetworkTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
