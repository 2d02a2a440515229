//! Watching a session: its stored history from any seq, then its live events, with no loss
//! and no duplicate, ending after the terminal event.
//!
//! A follower joins the live broadcast *before* reading history, drops what it has already
//! delivered by seq, and re-reads the store whenever it falls behind the broadcast (lag) or
//! sees a gap, so a slow reader costs memory nowhere but in the store. It is a plain stream
//! polled by the connection that reads it: no task per subscriber, nothing left behind when
//! the client goes away.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use agentd_domain::{Event, ProjectId, SessionId};
use agentd_store::{SharedStore, StoreError};
use futures::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::engine::{Engine, EngineError};
use crate::event_log::{LoggedEvent, SharedEvent};

/// Events read from the store per query while catching up: what one follower holds at most
/// (each its own copy, until delivered), so a thousand followers joining a long session at
/// once hold a thousand pages.
const PAGE: u32 = 100;

/// Room kept in a follower's buffer once it has caught up: live events arrive one by one.
const KEPT_BUFFER: usize = 8;

/// A session's events in seq order; ends after the terminal event (or, after delivering
/// what was committed, at shutdown).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SharedEvent, StoreError>> + Send>>;

impl Engine {
    /// A session's committed events with `seq > after`, at most `limit`.
    pub async fn events(
        &self,
        project: ProjectId,
        id: SessionId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Event>, EngineError> {
        self.get_session(project, id).await?;
        Ok(self.inner.store.events_after(id, after, limit).await?)
    }

    /// Follows a session from `after`: history first, then live events.
    pub async fn subscribe(
        &self,
        project: ProjectId,
        id: SessionId,
        after: u64,
    ) -> Result<EventStream, EngineError> {
        let live = match self.live(project, id) {
            Some(live) => Some(live.events.subscribe()),
            None => {
                self.get_session(project, id).await?;
                None
            }
        };
        let follower = Follower {
            store: self.inner.store.clone(),
            session: id,
            last: after,
            live,
            shutdown: Box::pin(self.inner.shutdown.clone().cancelled_owned()),
            buffer: VecDeque::new(),
            catching_up: true,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(follower, |mut f| async move {
            f.next().await.map(|item| (item, f))
        })))
    }
}

struct Follower {
    store: SharedStore,
    session: SessionId,
    /// The seq of the last event handed out.
    last: u64,
    /// The live feed; None once it has closed (or at shutdown): history is then all there is.
    live: Option<broadcast::Receiver<SharedEvent>>,
    /// Registered once: re-arming a cancellation future per event would take the token's
    /// lock a thousand times per event with a thousand subscribers.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    buffer: VecDeque<SharedEvent>,
    catching_up: bool,
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<SharedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.last = event.seq;
                self.done |= event.kind.is_terminal();
                if self.buffer.is_empty() {
                    // A page's worth of room would stay with the follower for its life.
                    self.buffer.shrink_to(KEPT_BUFFER);
                }
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                let page = match self.store.events_after(self.session, self.last, PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        self.done = true;
                        return Some(Err(error));
                    }
                };
                if page.len() < PAGE as usize {
                    self.catching_up = false;
                    // Without a live feed, the store was the whole story.
                    self.done = self.live.is_none() && page.is_empty();
                }
                self.buffer.extend(page.into_iter().map(|e| Arc::new(LoggedEvent::new(e))));
                continue;
            }
            let Some(live) = self.live.as_mut() else {
                self.catching_up = true;
                continue;
            };
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.seq <= self.last => {}
                    Ok(event) if event.seq == self.last + 1 => self.buffer.push_back(event),
                    // A gap (joined mid-batch) or lag: the store has everything committed.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.live = None;
                        self.catching_up = true;
                    }
                },
                _ = self.shutdown.as_mut() => {
                    // Deliver what was committed up to now (the settling events), then end.
                    self.live = None;
                    self.catching_up = true;
                }
            }
        }
    }
}
