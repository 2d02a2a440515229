//! The event log's writer: assigns each session's gap-free `seq`, commits events (with the
//! session changes they carry) in group commits, and only then publishes them to live
//! subscribers. One task owns the seq counters, so no lock is held across I/O.
//!
//! A session's terminal event that the disk refused (full, failing) is kept and committed
//! once writes work again, so the session is settled with its real end without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentd_domain::{Event, NewEvent, SessionId};
use agentd_store::{EventWrite, SessionChange, SharedStore, StorageFault, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

/// A committed event as it travels to subscribers, with a slot where the first subscriber
/// that renders it for the wire leaves the result for all the others: with a thousand
/// subscribers, an event is serialised once, not a thousand times.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    event: Event,
    rendered: std::sync::OnceLock<Arc<str>>,
}

impl LoggedEvent {
    /// Wraps a committed event.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            rendered: std::sync::OnceLock::new(),
        }
    }

    /// The event rendered by `render`, computed once per event.
    pub fn rendered(&self, render: impl FnOnce(&Event) -> String) -> Arc<str> {
        self.rendered.get_or_init(|| render(&self.event).into()).clone()
    }
}

impl std::ops::Deref for LoggedEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// A committed event shared between the log, its callers and subscribers.
pub type SharedEvent = Arc<LoggedEvent>;

/// Most appends folded into one transaction.
const MAX_GROUP: usize = 512;

/// How often terminal events the disk refused are tried again (and at once after any
/// commit succeeds).
const PARKED_RETRY: Duration = Duration::from_secs(1);

/// Sessions whose terminal event waits for the disk, and the fault that refused it.
type Parked = Arc<Mutex<HashMap<SessionId, StorageFault>>>;

/// Why an append did not commit.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session is not registered with the log (it ended, or never started).
    #[error("session {0} is not accepting events")]
    NotRegistered(SessionId),
    /// The writer has shut down.
    #[error("the event log is closed")]
    Closed,
}

/// One event to append, with the session change it carries.
pub(crate) struct Entry {
    pub event: NewEvent,
    pub change: Option<SessionChange>,
}

enum Command {
    Register {
        session: SessionId,
        last_seq: u64,
    },
    Append {
        session: SessionId,
        entries: Vec<Entry>,
        publish: broadcast::Sender<SharedEvent>,
        /// Forget the session's counter after this append (it carried the terminal event).
        last: bool,
        reply: oneshot::Sender<Result<Vec<SharedEvent>, AppendError>>,
    },
}

/// Handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::UnboundedSender<Command>,
    appended: Arc<AtomicU64>,
    committed: Arc<tokio::sync::Notify>,
    parked: Parked,
}

/// A pending append; await it to learn that the events are committed.
pub(crate) type Pending = oneshot::Receiver<Result<Vec<SharedEvent>, AppendError>>;

impl EventLog {
    /// Starts the writer over `store`. It runs until every handle is dropped, then finishes
    /// what was queued and returns.
    pub fn start(store: SharedStore) -> (EventLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let appended = Arc::new(AtomicU64::new(0));
        let committed = Arc::new(tokio::sync::Notify::new());
        let parked = Parked::default();
        let writer = Writer {
            store,
            rx,
            last_seq: HashMap::new(),
            appended: appended.clone(),
            committed: committed.clone(),
            parked: Vec::new(),
            parked_ids: parked.clone(),
            retry_at: None,
        };
        (EventLog { tx, appended, committed, parked }, tokio::spawn(writer.run()))
    }

    /// The fault that keeps a session's terminal event from being committed, while the
    /// writer holds it to commit once writes work again.
    pub(crate) fn parked(&self, session: SessionId) -> Option<StorageFault> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).get(&session).copied()
    }

    /// Resolves after the next commit (one wake-up however many commits came meanwhile).
    pub(crate) async fn next_commit(&self) {
        self.committed.notified().await;
    }

    /// Events committed since start.
    pub fn appended_total(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    /// Tells the writer where a session's log stands, so it can continue it.
    pub(crate) fn register(&self, session: SessionId, last_seq: u64) {
        let _ = self.tx.send(Command::Register { session, last_seq });
    }

    /// Queues events for commit. Sending is synchronous, so the order of calls is the order
    /// of seqs; await the result to know they are committed (and published).
    pub(crate) fn append(
        &self,
        session: SessionId,
        entries: Vec<Entry>,
        publish: broadcast::Sender<SharedEvent>,
        last: bool,
    ) -> Pending {
        let (reply, pending) = oneshot::channel();
        let command = Command::Append {
            session,
            entries,
            publish,
            last,
            reply,
        };
        if let Err(mpsc::error::SendError(Command::Append { reply, .. })) = self.tx.send(command) {
            let _ = reply.send(Err(AppendError::Closed));
        }
        pending
    }
}

/// Awaits a pending append.
pub(crate) async fn committed(pending: Pending) -> Result<Vec<SharedEvent>, AppendError> {
    pending.await.unwrap_or(Err(AppendError::Closed))
}

struct Writer {
    store: SharedStore,
    rx: mpsc::UnboundedReceiver<Command>,
    last_seq: HashMap<SessionId, u64>,
    appended: Arc<AtomicU64>,
    committed: Arc<tokio::sync::Notify>,
    /// Terminal appends the disk refused (their callers have had the error), to commit once
    /// writes work again; they keep the session's broadcast, so its subscribers see the end.
    parked: Vec<Staged>,
    parked_ids: Parked,
    /// When the parked appends are tried next.
    retry_at: Option<Instant>,
}

struct Staged {
    events: Vec<SharedEvent>,
    writes: Vec<EventWrite>,
    publish: broadcast::Sender<SharedEvent>,
    session: SessionId,
    last: bool,
    /// None once answered (a parked append).
    reply: Option<oneshot::Sender<Result<Vec<SharedEvent>, AppendError>>>,
}

impl Staged {
    fn renumber(&mut self, base: u64) {
        for (i, (event, write)) in self.events.iter_mut().zip(&mut self.writes).enumerate() {
            let seq = base + 1 + i as u64;
            Arc::make_mut(event).event.seq = seq;
            write.event.seq = seq;
        }
    }
}

impl Writer {
    async fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            let received = match self.retry_at {
                None => self.rx.recv_many(&mut batch, MAX_GROUP).await,
                Some(at) => tokio::select! {
                    received = self.rx.recv_many(&mut batch, MAX_GROUP) => received,
                    _ = tokio::time::sleep_until(at) => {
                        self.retry_parked().await;
                        continue;
                    }
                },
            };
            if received == 0 {
                break;
            }
            self.process(std::mem::take(&mut batch)).await;
        }
        // Every handle is gone (shutdown): one last try for what the disk refused; what still
        // fails is settled at the next start, like any session a stopped server left live.
        self.retry_parked().await;
    }

    async fn process(&mut self, commands: Vec<Command>) {
        // Seqs are assigned on a scratch copy and kept only once the commit succeeds.
        let mut next: HashMap<SessionId, u64> = HashMap::new();
        let mut staged = Vec::new();
        for command in commands {
            match command {
                Command::Register { session, last_seq } => {
                    self.last_seq.insert(session, last_seq);
                    next.remove(&session);
                    // Whoever registers the session again (a command settling it as an
                    // orphan) read its stored state and takes over its end.
                    self.unpark(session);
                }
                Command::Append {
                    session,
                    entries,
                    publish,
                    last,
                    reply,
                } => {
                    let Some(base) = next
                        .get(&session)
                        .or_else(|| self.last_seq.get(&session))
                        .copied()
                    else {
                        let _ = reply.send(Err(AppendError::NotRegistered(session)));
                        continue;
                    };
                    let reply = Some(reply);
                    let now = agentd_domain::now();
                    let mut seq = base;
                    let mut events = Vec::with_capacity(entries.len());
                    let mut writes = Vec::with_capacity(entries.len());
                    for entry in entries {
                        seq += 1;
                        let event = Event {
                            session_id: session,
                            seq,
                            kind: entry.event.kind,
                            data: entry.event.data,
                            created_at: now,
                        };
                        writes.push(EventWrite {
                            event: event.clone(),
                            change: entry.change,
                        });
                        events.push(Arc::new(LoggedEvent::new(event)));
                    }
                    next.insert(session, seq);
                    staged.push(Staged {
                        events,
                        writes,
                        publish,
                        session,
                        last,
                        reply,
                    });
                }
            }
        }
        if staged.is_empty() {
            return;
        }
        let writes: Vec<EventWrite> = staged.iter().flat_map(|s| s.writes.iter().cloned()).collect();
        match self.store.append_events(&writes).await {
            Ok(()) => {
                for s in staged {
                    self.settle(s, Ok(()));
                }
                // The disk takes writes again: what it refused before goes now.
                if !self.parked.is_empty() {
                    self.retry_parked().await;
                }
            }
            Err(error) if staged.len() == 1 => {
                if let Some(s) = staged.pop() {
                    self.settle(s, Err(error));
                }
            }
            Err(StoreError::Unavailable(fault)) => {
                // The disk refused the group: it would refuse each append alone too.
                tracing::warn!(cause = %fault, count = staged.len(), "group commit refused by the disk");
                for s in staged {
                    self.settle(s, Err(StoreError::Unavailable(fault)));
                }
            }
            Err(error) => {
                // One bad append must not sink its neighbours: retry each on its own, its
                // seqs renumbered from what is actually committed so no gap can appear.
                tracing::warn!(%error, count = staged.len(), "group commit failed; retrying appends one by one");
                for s in staged {
                    self.commit_alone(s).await;
                }
            }
        }
    }

    /// Commits one append on its own, its seqs renumbered from what is committed.
    async fn commit_alone(&mut self, mut s: Staged) {
        let Some(base) = self.last_seq.get(&s.session).copied() else {
            if let Some(reply) = s.reply.take() {
                let _ = reply.send(Err(AppendError::NotRegistered(s.session)));
            }
            self.unpark(s.session);
            return;
        };
        s.renumber(base);
        let result = self.store.append_events(&s.writes).await;
        self.settle(s, result);
    }

    /// Tries the parked terminal appends again: together, or (when that fails otherwise than
    /// by the disk) one by one.
    async fn retry_parked(&mut self) {
        self.retry_at = None;
        let mut parked = Vec::new();
        for mut s in std::mem::take(&mut self.parked) {
            match self.last_seq.get(&s.session) {
                Some(&base) => {
                    s.renumber(base);
                    parked.push(s);
                }
                None => self.unpark(s.session),
            }
        }
        if parked.is_empty() {
            return;
        }
        let writes: Vec<EventWrite> = parked.iter().flat_map(|s| s.writes.iter().cloned()).collect();
        match self.store.append_events(&writes).await {
            Ok(()) => {
                tracing::info!(count = parked.len(), "recorded the ends of sessions the disk had refused");
                for s in parked {
                    self.settle(s, Ok(()));
                }
            }
            Err(StoreError::Unavailable(_)) => {
                self.parked = parked;
                self.retry_at = Some(Instant::now() + PARKED_RETRY);
            }
            Err(error) => {
                tracing::warn!(%error, count = parked.len(), "recording parked session ends failed; retrying them one by one");
                for s in parked {
                    self.commit_alone(s).await;
                }
            }
        }
    }

    fn unpark(&mut self, session: SessionId) {
        if self.parked_ids.lock().unwrap_or_else(|e| e.into_inner()).remove(&session).is_some() {
            self.parked.retain(|s| s.session != session);
        }
    }

    fn settle(&mut self, mut staged: Staged, result: Result<(), StoreError>) {
        match result {
            Ok(()) => {
                let last_seq = staged.events.last().map(|e| e.seq).unwrap_or(0);
                if staged.last {
                    self.last_seq.remove(&staged.session);
                } else {
                    self.last_seq.insert(staged.session, last_seq);
                }
                self.unpark(staged.session);
                self.appended
                    .fetch_add(staged.events.len() as u64, Ordering::Relaxed);
                self.committed.notify_one();
                for event in &staged.events {
                    // No receivers is fine: nobody is watching live.
                    let _ = staged.publish.send(event.clone());
                }
                if let Some(reply) = staged.reply {
                    let _ = reply.send(Ok(staged.events));
                }
            }
            Err(StoreError::Unavailable(fault)) if staged.last => {
                // The session has ended in memory, and nothing will append to it again: keep
                // its end to commit once the disk takes writes (its caller learns now that it
                // is not stored).
                if let Some(reply) = staged.reply.take() {
                    tracing::warn!(cause = %fault, session_id = %staged.session, "a session's end could not be stored; it is kept until writes work again");
                    let _ = reply.send(Err(AppendError::Store(StoreError::Unavailable(fault))));
                }
                self.parked_ids.lock().unwrap_or_else(|e| e.into_inner()).insert(staged.session, fault);
                self.parked.push(staged);
                self.retry_at.get_or_insert_with(|| Instant::now() + PARKED_RETRY);
            }
            Err(error) => {
                tracing::error!(%error, session_id = %staged.session, "event append failed");
                self.unpark(staged.session);
                if let Some(reply) = staged.reply {
                    let _ = reply.send(Err(AppendError::Store(error)));
                }
            }
        }
    }
}
