//! Watching a session: its stored history from any seq, then its live events, with no loss
//! and no duplicate, ending after the terminal event.
//!
//! The subscriber joins the live broadcast *before* reading history, drops what it has
//! already delivered by seq, and re-reads the store whenever it falls behind the broadcast,
//! so a slow reader costs memory nowhere but in the store.

use std::pin::Pin;
use std::sync::Arc;

use agentd_domain::{Event, ProjectId, SessionId};
use agentd_store::{SharedStore, StoreError};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};

/// Events read from the store per query while catching up.
const PAGE: u32 = 500;
/// Events buffered between the subscriber task and the connection.
const OUTBOX: usize = 256;

/// A session's events in seq order; ends after the terminal event (or at shutdown).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Arc<Event>, StoreError>> + Send>>;

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
        let (tx, mut rx) = mpsc::channel(OUTBOX);
        let follower = Follower {
            store: self.inner.store.clone(),
            session: id,
            last: after,
            tx,
        };
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(follower.run(live, shutdown));
        Ok(Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))))
    }
}

struct Follower {
    store: SharedStore,
    session: SessionId,
    last: u64,
    tx: mpsc::Sender<Result<Arc<Event>, StoreError>>,
}

/// What to do after delivering.
enum Next {
    Continue,
    Done,
}

impl Follower {
    async fn run(mut self, live: Option<broadcast::Receiver<Arc<Event>>>, shutdown: CancellationToken) {
        let tx = self.tx.clone();
        tokio::select! {
            _ = self.follow(live) => {}
            _ = shutdown.cancelled() => {
                // Deliver what was committed up to the shutdown (the settling events), then end.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.catch_up()).await;
            }
            _ = tx.closed() => {}
        }
    }

    async fn follow(&mut self, live: Option<broadcast::Receiver<Arc<Event>>>) {
        if let Next::Done = self.catch_up().await {
            return;
        }
        let Some(mut live) = live else {
            return;
        };
        loop {
            let next = match live.recv().await {
                Ok(event) if event.seq <= self.last => Next::Continue,
                Ok(event) if event.seq == self.last + 1 => self.deliver(event).await,
                // A gap (we joined mid-batch) or lag: the store has everything committed.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => {
                    self.catch_up().await;
                    Next::Done
                }
            };
            if let Next::Done = next {
                return;
            }
        }
    }

    /// Delivers everything the store has after `last`.
    async fn catch_up(&mut self) -> Next {
        loop {
            let page = match self.store.events_after(self.session, self.last, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = self.tx.send(Err(error)).await;
                    return Next::Done;
                }
            };
            let full = page.len() == PAGE as usize;
            for event in page {
                if let Next::Done = self.deliver(Arc::new(event)).await {
                    return Next::Done;
                }
            }
            if !full {
                return Next::Continue;
            }
        }
    }

    async fn deliver(&mut self, event: Arc<Event>) -> Next {
        self.last = event.seq;
        let terminal = event.kind.is_terminal();
        if self.tx.send(Ok(event)).await.is_err() || terminal {
            Next::Done
        } else {
            Next::Continue
        }
    }
}
