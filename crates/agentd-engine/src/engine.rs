//! The engine facade: every command on a session, checked against the status machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentd_domain::{
    Event, EventKind, FieldError, IllegalTransition, Mode, NewEvent, Priority, ProjectId,
    Secrets, Session, SessionId, SessionPatch, SessionSpec, SessionStatus, Transition,
};
use agentd_store::{Screenshot, SessionQuery, SharedStore, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::AgentRegistry;
use crate::clock::{Clock, SystemClock};
use crate::event_log::{AppendError, EventLog, SharedEvent, committed};
use crate::live::{InputAnswer, LiveSession, PendingRequest};
use crate::runner::RunQueue;
use crate::screen::Screen;
use crate::webhooks::WebhookSettings;

/// Engine settings (validated by the caller's config layer).
#[derive(Clone)]
pub struct EngineConfig {
    /// Sessions that may run at once on this node.
    pub max_concurrent_sessions: usize,
    /// The time source of timeouts.
    pub clock: Arc<dyn Clock>,
    /// How webhooks are delivered.
    pub webhooks: WebhookSettings,
    /// A conversation idle this long closes.
    pub conversation_idle: std::time::Duration,
    /// How user-defined tools run.
    pub tools: crate::tools::ToolSettings,
    /// Embeds tables' vectorized columns (None: semantic search is refused; full text works).
    pub embedder: Option<Arc<dyn agentd_embed::Embedder>>,
}

impl EngineConfig {
    /// `max_concurrent_sessions` slots on real time.
    pub fn new(max_concurrent_sessions: usize) -> Self {
        Self {
            max_concurrent_sessions,
            clock: Arc::new(SystemClock),
            webhooks: WebhookSettings::default(),
            conversation_idle: crate::conversations::DEFAULT_CONVERSATION_IDLE,
            tools: crate::tools::ToolSettings::default(),
            embedder: None,
        }
    }
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such session in this project.
    #[error("session not found")]
    NotFound,
    /// The status machine does not allow it.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The session is not in a state where this makes sense.
    #[error("{0}")]
    Conflict(String),
    /// An input field is wrong.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No agent implements the mode yet.
    #[error("mode `{0}` is not available: no agent implementation is registered for it")]
    ModeUnavailable(Mode),
    /// The server is shutting down and takes no new sessions.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The caller's key may not do this (a table grant without the permission).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] AppendError),
}

/// A session to create: the parsed request.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The task and its bounds.
    pub spec: SessionSpec,
    /// Label.
    pub name: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// Queue priority.
    pub priority: Priority,
    /// End user.
    pub user_id: Option<String>,
    /// Client data.
    pub metadata: Map<String, Value>,
    /// Secret values (`sensitive_data`), kept in memory for the run only.
    pub secrets: Secrets,
    /// How the session's events read at its `webhook_url`: a format name
    /// ([`crate::webhooks::NATIVE`] unless an adapter registered another) and what it needs.
    pub webhook_format: (String, Value),
}

/// The tag that marks a follow-up session with its conversation (the first session's id).
pub fn conversation_tag(conversation: SessionId) -> String {
    format!("conversation:{conversation}")
}

/// Earlier exchanges a follow-up carries.
pub const MAX_TURNS: usize = 10;
/// An earlier answer is carried up to this many characters.
const MAX_ANSWER_CHARS: usize = 8_000;

/// A new session's row, queued.
pub(crate) fn queued_session(project: ProjectId, new: NewSession, now: DateTime<Utc>) -> Session {
    let spec = SessionSpec { secret_names: new.secrets.names(), ..new.spec };
    Session {
        name: new.name,
        tags: new.tags,
        priority: new.priority,
        user_id: new.user_id,
        metadata: new.metadata,
        ..Session::queued(project, spec, now)
    }
}

/// The endpoint a new session's events go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// `ep_...`.
    pub endpoint_id: String,
    /// The signing secret, when the endpoint was made by this call (shown this once).
    pub new_secret: Option<String>,
}

/// A person's answer to the open request of a session.
#[derive(Debug, Clone, Default)]
pub struct SessionAnswer {
    /// Which request is answered (optional: the open one).
    pub request_id: Option<String>,
    /// The text, for an input request.
    pub text: Option<String>,
    /// The decision, for a permission request.
    pub granted: Option<bool>,
}

pub(crate) struct Inner {
    pub store: SharedStore,
    pub log: EventLog,
    pub registry: AgentRegistry,
    pub live: Mutex<HashMap<SessionId, Arc<LiveSession>>>,
    pub queue: RunQueue,
    pub slots: Arc<Semaphore>,
    pub tasks: TaskTracker,
    /// Stops the dispatcher: no new session starts.
    pub stop_dispatch: CancellationToken,
    /// Ends every subscriber stream (after a last catch-up).
    pub shutdown: CancellationToken,
    pub accepting: std::sync::atomic::AtomicBool,
    pub clock: Arc<dyn Clock>,
    pub webhooks: Arc<WebhookSettings>,
    /// Wakes the webhook dispatcher when deliveries are queued.
    pub deliveries_queued: Arc<tokio::sync::Notify>,
    /// Wakes the scheduler when a schedule is made or resumed.
    pub schedules_changed: Arc<tokio::sync::Notify>,
    /// Stops the background tasks (webhooks).
    pub stop_background: CancellationToken,
    /// Stops the scheduler (first thing at shutdown: no slot fires while the node stops).
    pub stop_scheduler: CancellationToken,
    /// A conversation idle this long closes.
    pub conversation_idle: std::time::Duration,
    /// Runs user-defined tools.
    pub tools: crate::tools::ToolBox,
}

/// The session engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Engine {
    /// Starts the engine: settles sessions a dead process left running (failed, reason
    /// `interrupted`), requeues queued ones, then starts the runner.
    pub async fn start(
        store: SharedStore,
        registry: AgentRegistry,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (log, _writer) = EventLog::start(store.clone());
        let engine = Engine {
            inner: Arc::new(Inner {
                tools: crate::tools::ToolBox {
                    store: store.clone(),
                    settings: config.tools.clone(),
                    tables: crate::tables::Tables {
                        store: store.clone(),
                        clock: config.clock.clone(),
                        semantic: crate::semantic::Semantic::new(config.embedder.clone()),
                    },
                },
                store,
                log,
                registry,
                live: Mutex::new(HashMap::new()),
                queue: RunQueue::default(),
                slots: Arc::new(Semaphore::new(config.max_concurrent_sessions.max(1))),
                tasks: TaskTracker::new(),
                stop_dispatch: CancellationToken::new(),
                shutdown: CancellationToken::new(),
                accepting: std::sync::atomic::AtomicBool::new(true),
                clock: config.clock.clone(),
                webhooks: Arc::new(config.webhooks.clone()),
                deliveries_queued: Arc::new(tokio::sync::Notify::new()),
                schedules_changed: Arc::new(tokio::sync::Notify::new()),
                stop_background: CancellationToken::new(),
                stop_scheduler: CancellationToken::new(),
                conversation_idle: config.conversation_idle,
            }),
        };
        engine.recover().await?;
        let dispatcher = engine.clone();
        engine.inner.tasks.spawn(async move { dispatcher.dispatch().await });
        engine.start_webhooks()?;
        let tables = engine.inner.tools.tables.clone();
        let vectorizer = tables.semantic.clone().run(engine.inner.store.clone(), tables, engine.inner.stop_background.clone());
        engine.inner.tasks.spawn(vectorizer);
        let scheduler = engine.clone();
        engine.inner.tasks.spawn(scheduler.run_scheduler(engine.inner.stop_scheduler.clone()));
        Ok(engine)
    }

    async fn recover(&self) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let stranded = store
            .sessions_in_status(&[SessionStatus::Running, SessionStatus::Paused, SessionStatus::Waiting])
            .await?;
        let mut pending = Vec::new();
        for session in &stranded {
            let live = self.adopt(session);
            let error = "the server stopped while this session was running";
            let changed = live.transition(Transition::Fail, failed_event(error, "interrupted"), |_, change| {
                change.error = Some(error.to_owned());
            })?;
            pending.push(changed.pending);
            tracing::warn!(session_id = %session.id, project_id = %session.project_id, "settled a session interrupted by a previous shutdown");
        }
        for p in pending {
            committed(p).await?;
        }
        for session in &stranded {
            self.forget(session.id);
        }
        for session in store.sessions_in_status(&[SessionStatus::Queued]).await? {
            let live = self.adopt(&session);
            self.inner.queue.push(live);
        }
        Ok(())
    }

    fn adopt(&self, session: &Session) -> Arc<LiveSession> {
        let screen = Screen::new(self.inner.store.clone());
        let live = LiveSession::new(session, self.inner.log.clone(), self.inner.clock.clone(), screen);
        self.lock_live().insert(session.id, live.clone());
        live
    }

    pub(crate) fn forget(&self, id: SessionId) {
        self.lock_live().remove(&id);
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<LiveSession>>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn live(&self, project: ProjectId, id: SessionId) -> Option<Arc<LiveSession>> {
        self.lock_live()
            .get(&id)
            .filter(|live| live.project_id == project)
            .cloned()
    }

    /// The store behind the engine.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The modes that can be used.
    pub fn available_modes(&self) -> Vec<Mode> {
        self.inner.registry.modes()
    }

    /// Events committed since start.
    pub fn events_appended(&self) -> u64 {
        self.inner.log.appended_total()
    }

    /// Sessions held in memory (queued, running, paused or waiting).
    pub fn live_count(&self) -> usize {
        self.lock_live().len()
    }

    /// Creates a session and queues it.
    pub async fn create_session(&self, project: ProjectId, new: NewSession) -> Result<Session, EngineError> {
        Ok(self.create_session_with_webhook(project, new).await?.0)
    }

    /// Creates a session and queues it; with a `webhook_url`, also says which endpoint its
    /// events go to (and that endpoint's secret, when this call made it).
    pub async fn create_session_with_webhook(
        &self,
        project: ProjectId,
        new: NewSession,
    ) -> Result<(Session, Option<WebhookTarget>), EngineError> {
        self.create_session_as(project, new, None).await
    }

    /// Creates a session (with the id `id` when given: a conversation's first message) and
    /// queues it.
    pub(crate) async fn create_session_as(
        &self,
        project: ProjectId,
        new: NewSession,
        id: Option<SessionId>,
    ) -> Result<(Session, Option<WebhookTarget>), EngineError> {
        if !self.inner.accepting.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let Some(agent) = self.inner.registry.get(new.spec.mode) else {
            return Err(EngineError::ModeUnavailable(new.spec.mode));
        };
        agent.admit(&new.spec)?;
        let mut new = new;
        if new.spec.continues.is_some() && new.spec.mode == agentd_domain::Mode::Browser {
            return Err(FieldError::new("continues", "continues is for research, chat and coding sessions").into());
        }
        if let Some(earlier) = new.spec.continues {
            let (conversation, turns) = self.conversation_until(project, earlier).await?;
            new.spec.conversation_id = Some(conversation);
            new.spec.conversation = turns;
            let tag = conversation_tag(conversation);
            if !new.tags.contains(&tag) {
                new.tags.push(tag);
            }
        }
        let endpoint = match &new.spec.webhook_url {
            Some(url) => Some(self.webhook_endpoint_for(project, url).await?),
            None => None,
        };
        let webhook_format = new.webhook_format.clone();
        let secrets = new.secrets.clone();
        let mut session = queued_session(project, new, agentd_domain::now());
        if let Some(id) = id {
            session.id = id;
        }
        match &endpoint {
            Some(target) => {
                let subscription = agentd_store::WebhookSubscription {
                    session_id: session.id,
                    endpoint_id: target.endpoint_id.clone(),
                    format: webhook_format.0,
                    context: webhook_format.1,
                    cursor_seq: 0,
                };
                self.inner.store.insert_session_subscribed(&session, &subscription).await?;
            }
            None => self.inner.store.insert_session(&session).await?,
        }
        let target = endpoint;
        let live = self.adopt(&session);
        let _ = live.secrets.set(secrets);
        self.inner.queue.push(live);
        Ok((session, target))
    }

    /// The conversation a follow-up of session `id` continues, and its turns: the newest
    /// finished session of the conversation `id` belongs to (so naming any of its sessions,
    /// the first one included, continues from its latest answer), with that session's own
    /// turns and its question, answer and sources (the newest [`MAX_TURNS`]).
    async fn conversation_until(&self, project: ProjectId, id: SessionId) -> Result<(SessionId, Vec<agentd_domain::Turn>), EngineError> {
        let named = match self.get_session(project, id).await {
            Ok(session) => session,
            Err(EngineError::NotFound) => return Err(FieldError::new("continues", format!("continues: no session {id} to continue")).into()),
            Err(other) => return Err(other),
        };
        let conversation = named.conversation();
        let mut query = SessionQuery::newest_first(project, 1);
        query.tag = Some(conversation_tag(conversation));
        let earlier = match self.inner.store.list_sessions(&query).await?.into_iter().next() {
            Some(newest) if newest.created_at > named.created_at => newest,
            _ => named,
        };
        if !earlier.status.is_terminal() {
            return Err(EngineError::Conflict(format!(
                "session {} of this conversation is {}: a follow-up continues a finished session",
                earlier.id, earlier.status
            )));
        }
        let (answer, sources) = match &earlier.response {
            Some(Value::Object(result)) => (
                result.get("answer").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| Value::Object(result.clone()).to_string()),
                result.get("sources").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default(),
            ),
            Some(Value::String(text)) => (text.clone(), Vec::new()),
            Some(other) => (other.to_string(), Vec::new()),
            None => ("(this question was not answered)".to_owned(), Vec::new()),
        };
        let mut turns = earlier.spec.conversation;
        turns.push(agentd_domain::Turn { query: earlier.spec.goal, answer: answer.chars().take(MAX_ANSWER_CHARS).collect(), sources });
        let skip = turns.len().saturating_sub(MAX_TURNS);
        Ok((conversation, turns.split_off(skip)))
    }

    /// Queues a session already stored (a schedule's).
    pub(crate) fn enqueue(&self, session: &Session) {
        let live = self.adopt(session);
        self.inner.queue.push(live);
    }

    /// One session of the project.
    pub async fn get_session(&self, project: ProjectId, id: SessionId) -> Result<Session, EngineError> {
        self.inner
            .store
            .get_session(project, id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    /// Sessions matching `query` (up to `limit + 1`, so callers can tell whether more exist).
    pub async fn list_sessions(&self, query: &SessionQuery) -> Result<Vec<Session>, EngineError> {
        Ok(self.inner.store.list_sessions(query).await?)
    }

    /// Changes a session's name, tags, priority, user id or metadata.
    pub async fn patch_session(
        &self,
        project: ProjectId,
        id: SessionId,
        patch: &SessionPatch,
    ) -> Result<Session, EngineError> {
        let session = self
            .inner
            .store
            .patch_session(project, id, patch, agentd_domain::now())
            .await?
            .ok_or(EngineError::NotFound)?;
        if let (Some(priority), Some(live)) = (patch.priority, self.live(project, id)) {
            live.set_priority(priority);
        }
        Ok(session)
    }

    /// Deletes a finished session and its events.
    pub async fn delete_session(&self, project: ProjectId, id: SessionId) -> Result<(), EngineError> {
        if let Some(live) = self.live(project, id) {
            let status = live.status();
            if !status.is_terminal() {
                return Err(EngineError::Conflict(format!(
                    "cannot delete a session that is {status}; stop it first"
                )));
            }
        }
        if self.inner.store.delete_session(project, id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound)
        }
    }

    /// Deletes the project's sessions that ended before `before`; returns how many.
    pub async fn cleanup_sessions(&self, project: ProjectId, before: DateTime<Utc>) -> Result<u64, EngineError> {
        Ok(self.inner.store.delete_sessions_ended_before(project, before).await?)
    }

    /// What the session's browser shows: captured now while it is live, else the last one
    /// kept; None when there is none.
    pub async fn screenshot(&self, project: ProjectId, id: SessionId) -> Result<Option<Screenshot>, EngineError> {
        if let Some(live) = self.live(project, id)
            && let Some(shot) = live.screen.capture().await
        {
            return Ok(Some(shot));
        }
        self.get_session(project, id).await?;
        Ok(self.inner.store.latest_screenshot(id).await?)
    }

    /// Waits (at most `within`) until the session has ended and its end is stored; whether
    /// it has.
    pub async fn wait_ended(&self, project: ProjectId, id: SessionId, within: std::time::Duration) -> Result<bool, EngineError> {
        use futures::StreamExt;
        let session = self.get_session(project, id).await?;
        if session.status.is_terminal() {
            return Ok(true);
        }
        // Subscribers see an event once it is committed: the terminal one means it is stored.
        let mut events = self.subscribe(project, id, session.last_seq).await?;
        let ended = async {
            while let Some(Ok(event)) = events.next().await {
                if event.kind.is_terminal() {
                    return true;
                }
            }
            false
        };
        Ok(tokio::time::timeout(within, ended).await.unwrap_or(false))
    }

    /// Releases a session's resources: stops it when it is live (its browser context is
    /// closed with it) and marks it cleaned up; refused when it already was.
    pub async fn cleanup_session(&self, project: ProjectId, id: SessionId) -> Result<Session, EngineError> {
        let session = self.get_session(project, id).await?;
        if session.cleaned_at.is_some() {
            return Err(EngineError::Conflict("the session was already cleaned up".into()));
        }
        if let Some(live) = self.live(project, id) {
            let stop = NewEvent::new(EventKind::Stopped, json!({"reason": "cleaned up by user"}));
            if let Ok(changed) = live.transition(Transition::Stop, stop, |_, _| {}) {
                committed(changed.pending).await?;
            }
        }
        if !self.inner.store.mark_cleaned(project, id, agentd_domain::now()).await? {
            return Err(EngineError::Conflict("the session was already cleaned up".into()));
        }
        self.get_session(project, id).await
    }

    /// The live session, or the refusal that fits its stored state.
    async fn live_or_refusal(
        &self,
        project: ProjectId,
        id: SessionId,
        transition: Transition,
    ) -> Result<Arc<LiveSession>, EngineError> {
        if let Some(live) = self.live(project, id) {
            return Ok(live);
        }
        let session = self.get_session(project, id).await?;
        if let Some(fault) = self.inner.log.parked(id) {
            // It has ended, but the disk refused its end: the event log commits it once
            // writes work again. Until then nothing about it can be stored.
            return Err(EngineError::Store(StoreError::Unavailable(fault)));
        }
        if !session.status.is_terminal() {
            // Stored as live but run by nobody (a store write failed under it): settle it now
            // rather than let it hang until the next restart.
            self.settle_orphan(&session).await?;
            if transition == Transition::Stop {
                return Err(EngineError::Conflict(
                    "the session had lost its runner and was settled as failed".into(),
                ));
            }
            let session = self.get_session(project, id).await?;
            return Err(EngineError::Illegal(IllegalTransition { from: session.status, transition }));
        }
        Err(EngineError::Illegal(IllegalTransition {
            from: session.status,
            transition,
        }))
    }

    async fn settle_orphan(&self, session: &Session) -> Result<(), EngineError> {
        let live = self.adopt(session);
        let error = "the session lost its runner";
        let result = live.transition(Transition::Fail, failed_event(error, "orphaned"), |_, change| {
            change.error = Some(error.to_owned());
        });
        let outcome = match result {
            Ok(changed) => committed(changed.pending).await.map(|_| ()).map_err(EngineError::from),
            Err(illegal) => Err(illegal.into()),
        };
        self.forget(session.id);
        outcome
    }

    /// Stops a session.
    pub async fn stop(&self, project: ProjectId, id: SessionId) -> Result<Session, EngineError> {
        self.stop_because(project, id, "stopped by user").await
    }

    /// Stops a session, saying why in its `stopped` event.
    pub async fn stop_because(&self, project: ProjectId, id: SessionId, reason: &str) -> Result<Session, EngineError> {
        let live = self.live_or_refusal(project, id, Transition::Stop).await?;
        let changed = live.transition(
            Transition::Stop,
            NewEvent::new(EventKind::Stopped, json!({"reason": reason})),
            |_, _| {},
        )?;
        committed(changed.pending).await?;
        self.get_session(project, id).await
    }

    /// Pauses a running or waiting session: its agent takes no further step.
    pub async fn pause(&self, project: ProjectId, id: SessionId) -> Result<Session, EngineError> {
        let live = self.live_or_refusal(project, id, Transition::Pause).await?;
        let changed = live.transition(Transition::Pause, NewEvent::new(EventKind::Paused, json!({})), |_, _| {})?;
        committed(changed.pending).await?;
        self.get_session(project, id).await
    }

    /// Resumes a paused session (back to `waiting` when a person's answer is still due).
    pub async fn resume(&self, project: ProjectId, id: SessionId) -> Result<Session, EngineError> {
        let live = self
            .live_or_refusal(project, id, Transition::Resume { to_waiting: false })
            .await?;
        let changed = live.decide::<EngineError>(
            |state| {
                let to_waiting = state.pending.is_some();
                Ok((Transition::Resume { to_waiting }, NewEvent::new(EventKind::Resumed, json!({}))))
            },
            |_, _| {},
        )?;
        committed(changed.pending).await?;
        self.get_session(project, id).await
    }

    /// Answers the session's open input or permission request.
    pub async fn answer_input(
        &self,
        project: ProjectId,
        id: SessionId,
        answer: SessionAnswer,
    ) -> Result<Event, EngineError> {
        let live = self.live_or_refusal(project, id, Transition::Answer).await?;
        let mut reply = None;
        let changed = live.decide(
            |state| {
                let (pending_id, permission) = match &state.pending {
                    Some(PendingRequest::Input { id, permission, .. }) => (id.clone(), *permission),
                    Some(PendingRequest::SafetyCheck { id, .. }) => {
                        return Err(EngineError::Conflict(format!(
                            "the open request is safety check `{id}`: confirm or deny it instead"
                        )));
                    }
                    None if state.status.is_terminal() || state.status == SessionStatus::Queued => {
                        return Err(IllegalTransition { from: state.status, transition: Transition::Answer }.into());
                    }
                    None => return Err(EngineError::Conflict("no input request is pending".into())),
                };
                if let Some(asked) = answer.request_id.as_ref().filter(|asked| **asked != pending_id) {
                    return Err(EngineError::Conflict(format!(
                        "request `{asked}` is not pending; the open request is `{pending_id}`"
                    )));
                }
                let data = match (permission, answer.granted, &answer.text) {
                    (true, Some(granted), _) => {
                        json!({"request_id": pending_id, "kind": "permission", "granted": granted})
                    }
                    (true, None, _) => {
                        return Err(FieldError::new("granted", "this is a permission request: answer with granted true or false").into());
                    }
                    (false, _, Some(_)) => json!({"request_id": pending_id, "kind": "input"}),
                    (false, _, None) => {
                        return Err(FieldError::new("text", "this is an input request: answer with text").into());
                    }
                };
                Ok((Transition::Answer, NewEvent::new(EventKind::InputReceived, data)))
            },
            |state, _| {
                if let Some(PendingRequest::Input { reply: r, permission, .. }) = state.pending.take() {
                    reply = Some((r, permission));
                }
            },
        )?;
        // The agent acts on the answer only once its event is durable: if the disk refuses it,
        // the reply is dropped with the error and the agent never acts on what nobody recorded.
        let events = committed(changed.pending).await?;
        if let Some((r, permission)) = reply {
            let value = if permission {
                InputAnswer::Permission(answer.granted.unwrap_or(false))
            } else {
                InputAnswer::Text(answer.text.unwrap_or_default())
            };
            let _ = r.send(value);
        }
        first_event(events)
    }

    /// Confirms (`true`) or denies a pending safety check.
    pub async fn resolve_safety_check(
        &self,
        project: ProjectId,
        id: SessionId,
        check_id: &str,
        confirm: bool,
    ) -> Result<Event, EngineError> {
        let live = self.live_or_refusal(project, id, Transition::Answer).await?;
        let mut reply = None;
        let changed = live.decide(
            |state| {
                match &state.pending {
                    Some(PendingRequest::SafetyCheck { id, .. }) if id == check_id => {}
                    Some(other) => {
                        return Err(EngineError::Conflict(format!(
                            "safety check `{check_id}` is not pending; the open request is `{}`",
                            other.id()
                        )));
                    }
                    None if state.status.is_terminal() || state.status == SessionStatus::Queued => {
                        return Err(IllegalTransition { from: state.status, transition: Transition::Answer }.into());
                    }
                    None => {
                        return Err(EngineError::Conflict(format!(
                            "safety check `{check_id}` is not pending: no safety check is pending"
                        )));
                    }
                }
                let data = json!({"check_id": check_id, "confirmed": confirm});
                Ok((Transition::Answer, NewEvent::new(EventKind::SafetyCheckResolved, data)))
            },
            |state, _| {
                if let Some(PendingRequest::SafetyCheck { reply: r, .. }) = state.pending.take() {
                    reply = Some(r);
                }
            },
        )?;
        // As with an answer: the decision reaches the agent only once it is durable.
        let events = committed(changed.pending).await?;
        if let Some(r) = reply {
            let _ = r.send(confirm);
        }
        first_event(events)
    }

    /// Stops taking sessions, settles the running ones (failed, reason `shutdown`; queued
    /// ones stay queued for the next start), and waits for the event log to flush.
    pub async fn shutdown(&self) {
        self.inner.accepting.store(false, std::sync::atomic::Ordering::SeqCst);
        self.inner.stop_scheduler.cancel();
        self.inner.stop_dispatch.cancel();
        let live: Vec<_> = self.lock_live().values().cloned().collect();
        let mut pending = Vec::new();
        for session in live {
            if session.status() == SessionStatus::Queued {
                continue;
            }
            let error = "the server shut down while this session was running";
            if let Ok(changed) = session.transition(Transition::Fail, failed_event(error, "shutdown"), |_, change| {
                change.error = Some(error.to_owned());
            }) {
                pending.push(changed.pending);
            }
        }
        for p in pending {
            if let Err(error) = committed(p).await {
                tracing::error!(%error, "could not record a session's shutdown");
            }
        }
        // Streams end only now, so subscribers receive the settling events first.
        self.inner.shutdown.cancel();
        // Webhooks last: the pump queues what the settling above committed.
        self.inner.stop_background.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// The `failed` event for `error` with a short `reason` code.
pub(crate) fn failed_event(error: &str, reason: &str) -> NewEvent {
    NewEvent::new(EventKind::Failed, json!({"error": error, "reason": reason}))
}

fn first_event(events: Vec<SharedEvent>) -> Result<Event, EngineError> {
    events
        .into_iter()
        .next()
        .map(|e| Event::clone(&e))
        .ok_or(EngineError::Log(AppendError::Closed))
}
