//! A session the engine is running or about to run: its in-memory state, the channels that
//! drive it, and the one place where its status changes ([`LiveSession::transition`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use agentd_domain::{
    IllegalTransition, NewEvent, Priority, ProjectId, Session, SessionId, SessionSpec,
    SessionStatus, Transition, Usage,
};
use agentd_store::SessionChange;
use tokio::sync::{broadcast, oneshot, watch};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::event_log::{Entry, EventLog, Pending, SharedEvent};
use crate::screen::Screen;

/// Live events buffered per session before a slow subscriber is told it lagged (it then
/// catches up from the store, so nothing is lost).
const LIVE_BUFFER: usize = 1024;

/// What a person is being asked, and where the answer goes.
pub(crate) enum PendingRequest {
    /// A text answer or a permission.
    Input {
        id: String,
        permission: bool,
        reply: oneshot::Sender<InputAnswer>,
    },
    /// A safety check to confirm or deny.
    SafetyCheck {
        id: String,
        reply: oneshot::Sender<bool>,
    },
}

impl PendingRequest {
    pub(crate) fn id(&self) -> &str {
        match self {
            PendingRequest::Input { id, .. } | PendingRequest::SafetyCheck { id, .. } => id,
        }
    }
}

/// A person's answer to an input or permission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputAnswer {
    /// The text asked for.
    Text(String),
    /// Whether the permission was granted.
    Permission(bool),
}

pub(crate) struct LiveState {
    pub status: SessionStatus,
    pub pending: Option<PendingRequest>,
    pub usage: Usage,
    pub last_activity: Instant,
    /// Start of the current active (running or waiting) stretch; None while queued or paused.
    pub active_since: Option<Instant>,
    /// Active time of earlier stretches.
    pub active_before: std::time::Duration,
}

/// A timeout that will fire unless something changes.
pub(crate) struct Due {
    pub at: Instant,
    pub reason: &'static str,
    pub seconds: u64,
}

impl LiveState {
    /// When the session times out if nothing changes: the overall limit counts active time
    /// only; the inactivity limit counts from the last event or command. None while paused.
    pub fn timeout_due(&self, spec: &SessionSpec) -> Option<Due> {
        let since = self.active_since?;
        let overall = std::time::Duration::from_secs(spec.timeout_seconds).saturating_sub(self.active_before);
        let overall = Due {
            at: since + overall,
            reason: "timeout",
            seconds: spec.timeout_seconds,
        };
        let idle = Due {
            at: self.last_activity + std::time::Duration::from_secs(spec.inactivity_timeout_seconds),
            reason: "inactivity",
            seconds: spec.inactivity_timeout_seconds,
        };
        Some(if overall.at <= idle.at { overall } else { idle })
    }
}

/// A non-terminal session held in memory.
pub(crate) struct LiveSession {
    pub id: SessionId,
    pub project_id: ProjectId,
    pub spec: SessionSpec,
    priority: AtomicI64,
    state: Mutex<LiveState>,
    status_tx: watch::Sender<SessionStatus>,
    pub events: broadcast::Sender<SharedEvent>,
    pub cancel: CancellationToken,
    log: EventLog,
    pub clock: Arc<dyn Clock>,
    /// The session's secret values, set at create time (none after a restart).
    pub secrets: std::sync::OnceLock<agentd_domain::Secrets>,
    /// What its browser shows, when its agent has one.
    pub screen: Screen,
}

/// The result of a status change: the new status, and the commit to await.
pub(crate) struct Changed {
    pub pending: Pending,
}

impl LiveSession {
    /// The live side of a stored `session`.
    pub fn new(session: &Session, log: EventLog, clock: Arc<dyn Clock>, screen: Screen) -> Arc<Self> {
        log.register(session.id, session.last_seq);
        let status = session.status;
        Arc::new(Self {
            id: session.id,
            project_id: session.project_id,
            spec: session.spec.clone(),
            priority: AtomicI64::new(session.priority.rank()),
            state: Mutex::new(LiveState {
                status,
                pending: None,
                usage: Usage::default(),
                last_activity: clock.now(),
                active_since: None,
                active_before: std::time::Duration::ZERO,
            }),
            status_tx: watch::channel(status).0,
            events: broadcast::channel(LIVE_BUFFER).0,
            cancel: CancellationToken::new(),
            log,
            clock,
            secrets: std::sync::OnceLock::new(),
            screen,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A poisoned lock means a panic mid-update of plain data; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> SessionStatus {
        self.lock().status
    }

    pub fn priority_rank(&self) -> i64 {
        self.priority.load(Ordering::Relaxed)
    }

    pub fn set_priority(&self, priority: Priority) {
        self.priority.store(priority.rank(), Ordering::Relaxed);
    }

    pub fn watch_status(&self) -> watch::Receiver<SessionStatus> {
        self.status_tx.subscribe()
    }

    /// Applies `transition` and queues `event` (carrying the new status) for commit, under
    /// the session's lock so that status order and event order agree. `prepare` may adjust
    /// state and the change once the transition is known to be legal.
    pub fn transition(
        &self,
        transition: Transition,
        event: NewEvent,
        prepare: impl FnOnce(&mut LiveState, &mut SessionChange),
    ) -> Result<Changed, IllegalTransition> {
        self.decide(|_| Ok((transition, event)), prepare)
    }

    /// Like [`LiveSession::transition`], but `decide` first looks at the state (under the same
    /// lock) and chooses the transition and its event, or refuses: a check and the change it
    /// allows can never be separated by another command.
    pub fn decide<E: From<IllegalTransition>>(
        &self,
        decide: impl FnOnce(&LiveState) -> Result<(Transition, NewEvent), E>,
        prepare: impl FnOnce(&mut LiveState, &mut SessionChange),
    ) -> Result<Changed, E> {
        let now = self.clock.now();
        let mut state = self.lock();
        let (transition, event) = decide(&state)?;
        let next = state.status.apply(transition)?;
        let mut change = SessionChange {
            status: Some(next),
            ..SessionChange::default()
        };
        if next.is_terminal() {
            change.ended_at = Some(agentd_domain::now());
            change.usage = Some(state.usage.clone());
        }
        prepare(&mut state, &mut change);
        let active = |s: SessionStatus| matches!(s, SessionStatus::Running | SessionStatus::Waiting);
        match (active(state.status), active(next)) {
            (false, true) => state.active_since = Some(now),
            (true, false) => {
                if let Some(since) = state.active_since.take() {
                    state.active_before += now.saturating_duration_since(since);
                }
            }
            _ => {}
        }
        state.status = next;
        state.last_activity = now;
        if next.is_terminal() {
            // Whoever waits on a person learns that nobody will answer.
            state.pending = None;
        }
        let pending = self.log.append(
            self.id,
            vec![Entry {
                event,
                change: Some(change),
            }],
            self.events.clone(),
            next.is_terminal(),
        );
        self.status_tx.send_replace(next);
        if next.is_terminal() {
            self.cancel.cancel();
        }
        Ok(Changed { pending })
    }

    /// Undoes a start the store refused (the store still has the session queued): back to
    /// queued, unless a command moved it meanwhile. Whether it did.
    pub fn back_to_queued(&self) -> bool {
        let mut state = self.lock();
        if state.status != SessionStatus::Running {
            return false;
        }
        state.status = SessionStatus::Queued;
        state.active_since = None;
        self.status_tx.send_replace(SessionStatus::Queued);
        true
    }

    /// Queues an event that changes no status; refused once the session has ended.
    pub fn append(&self, event: NewEvent) -> Result<Pending, SessionStatus> {
        let now = self.clock.now();
        let mut state = self.lock();
        if state.status.is_terminal() {
            return Err(state.status);
        }
        state.last_activity = now;
        Ok(self.log.append(
            self.id,
            vec![Entry {
                event,
                change: None,
            }],
            self.events.clone(),
            false,
        ))
    }
}
