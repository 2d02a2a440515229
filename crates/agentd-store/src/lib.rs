//! agentd's persistence.
//!
//! [`Store`] is the one interface the engine and the API use; [`SqliteStore`] implements it
//! over an embedded SQLite file (WAL). The SQL is portable (`$n` placeholders, BIGINT
//! millisecond times, TEXT JSON), so a PostgreSQL implementation can follow without touching
//! callers. Principal types: [`Store`], [`EventWrite`] (events and the session changes they
//! carry, committed together), [`SessionQuery`], [`ApiKeyRecord`].
#![deny(missing_docs)]

mod fault;
mod records;
mod sqlite;
mod tables;
mod vectors;

use std::collections::HashMap;
use std::sync::Arc;

use agentd_domain::{AgentDef, AgentId, AgentSpec, AgentVersion, ApiKeyId, ResourceKind, ToolDef, ToolId, ToolSpec, ToolVersion, Event, EventKind, ProjectId, Schedule, ScheduleId, ScheduleRun, ScheduleStatus, Session, SessionId, SessionPatch, SessionStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use fault::{StorageFault, WriteHealth};
pub use records::*;
pub use sqlite::SqliteStore;
pub use tables::{RowTarget, TableStore, UploadLink};
pub use vectors::{RowVectors, VectorStore};

/// A store failure. Callers log it and answer 5xx; its text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the operation.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The disk does not take writes (full, read-only, refused, failing): nothing was
    /// written, and the store works again once the cause is gone.
    #[error("storage unavailable: {0}")]
    Unavailable(StorageFault),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(sqlx::migrate::MigrateError),
    /// A stored row could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The write conflicts with what is stored (a name already taken).
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// The storage fault behind this failure, if it is one.
    pub fn fault(&self) -> Option<StorageFault> {
        match self {
            StoreError::Unavailable(fault) => Some(*fault),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match StorageFault::of_sqlx(&error) {
            Some(fault) => {
                tracing::debug!(%error, "storage fault");
                StoreError::Unavailable(fault)
            }
            None => StoreError::Database(error),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match &error {
            sqlx::migrate::MigrateError::Execute(inner) | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => {
                match StorageFault::of_sqlx(inner) {
                    Some(fault) => StoreError::Unavailable(fault),
                    None => StoreError::Migration(error),
                }
            }
            _ => StoreError::Migration(error),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Shared handle to the store.
pub type SharedStore = Arc<dyn Store>;

/// Everything agentd keeps. Every project-scoped read takes the project id, so another
/// project's ids simply are not found.
#[async_trait]
pub trait Store: TableStore + VectorStore + Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Whether a write commits now: a one-row probe write, at most one a second (callers
    /// in between share the last answer), bounded in time.
    async fn write_health(&self) -> WriteHealth;

    /// The project called `name`, created if missing.
    async fn ensure_project(&self, name: &str) -> StoreResult<Project>;
    /// The project called `name`, if any.
    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>>;

    /// Stores a new key (already hashed).
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// The unrevoked key whose hash is `key_hash`.
    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks a key revoked; false when there is no such unrevoked key.
    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Stores a new session.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// Stores a new session and the subscription of its events to a webhook endpoint, together.
    async fn insert_session_subscribed(&self, session: &Session, subscription: &WebhookSubscription) -> StoreResult<()>;
    /// One session of the project.
    async fn get_session(&self, project: ProjectId, id: SessionId) -> StoreResult<Option<Session>>;
    /// The project a session belongs to. Unscoped: only for callers that have already proven
    /// a right to this one session (a verified session link).
    async fn project_of_session(&self, id: SessionId) -> StoreResult<Option<ProjectId>>;
    /// Sessions matching `query`, in its order, at most `query.limit` (+1 to tell "more").
    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<Vec<Session>>;
    /// Applies a patch; returns the updated session, or None when it does not exist.
    async fn patch_session(
        &self,
        project: ProjectId,
        id: SessionId,
        patch: &SessionPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    /// Deletes a session and its events; false when it did not exist.
    async fn delete_session(&self, project: ProjectId, id: SessionId) -> StoreResult<bool>;
    /// Deletes the project's sessions that ended before `before`; returns how many.
    async fn delete_sessions_ended_before(
        &self,
        project: ProjectId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Every session (of any project) in one of `statuses`, oldest first.
    async fn sessions_in_status(&self, statuses: &[SessionStatus]) -> StoreResult<Vec<Session>>;
    /// How many sessions are in each status (statuses with none are left out).
    async fn count_sessions_by_status(&self) -> StoreResult<Vec<(SessionStatus, u64)>>;

    /// Commits events and the session changes they carry, all or nothing.
    async fn append_events(&self, writes: &[EventWrite]) -> StoreResult<()>;
    /// A session's events with `seq > after`, in order, at most `limit`.
    async fn events_after(&self, session: SessionId, after: u64, limit: u32) -> StoreResult<Vec<Event>>;
    /// A session's newest event of one of `kinds`.
    async fn last_event_of(&self, session: SessionId, kinds: &[EventKind]) -> StoreResult<Option<Event>>;
    /// How many events of `kind` each of `sessions` has (sessions with none are left out).
    async fn count_events_of(&self, sessions: &[SessionId], kind: EventKind) -> StoreResult<HashMap<SessionId, u64>>;

    /// Marks a session's resources released; false when it does not exist or already was.
    async fn mark_cleaned(&self, project: ProjectId, id: SessionId, at: DateTime<Utc>) -> StoreResult<bool>;
    /// Stores a screenshot of a session, keeping only its newest `keep`.
    async fn save_screenshot(&self, session: SessionId, shot: &Screenshot, keep: u32) -> StoreResult<()>;
    /// A session's newest screenshot.
    async fn latest_screenshot(&self, session: SessionId) -> StoreResult<Option<Screenshot>>;
    /// How many screenshots each of `sessions` has kept (sessions with none are left out).
    async fn count_screenshots(&self, sessions: &[SessionId]) -> StoreResult<HashMap<SessionId, u64>>;

    /// The project's endpoint for `url`, made with `new_secret` when there is none; true when
    /// it was made now (so its secret is shown once).
    async fn ensure_webhook_endpoint(
        &self,
        project: ProjectId,
        url: &str,
        new_secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WebhookEndpoint, bool)>;
    /// One endpoint (any project: the dispatcher's read).
    async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>>;
    /// The project's endpoints, oldest first.
    async fn list_webhook_endpoints(&self, project: ProjectId) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Stops deliveries to an endpoint (`Some`: when and why; its pending deliveries fail)
    /// or resumes them (`None`); false when there is no such endpoint in the project.
    async fn set_webhook_endpoint_disabled(
        &self,
        project: ProjectId,
        id: &str,
        disabled: Option<(DateTime<Utc>, String)>,
    ) -> StoreResult<bool>;
    /// Sends a session's events to an endpoint from now on.
    async fn insert_webhook_subscription(&self, subscription: &WebhookSubscription) -> StoreResult<()>;
    /// Subscriptions with events not yet queued, and each session's newest seq.
    async fn lagging_webhook_subscriptions(&self) -> StoreResult<Vec<(WebhookSubscription, u64)>>;
    /// Queues `deliveries` and moves the subscription's cursor to `cursor_seq` (closing it when
    /// `finished`), all or nothing.
    async fn queue_webhook_deliveries(
        &self,
        session: SessionId,
        cursor_seq: u64,
        finished: bool,
        deliveries: &[WebhookDelivery],
    ) -> StoreResult<()>;
    /// Pending deliveries due at `now` to endpoints other than `skip`, oldest first, at most
    /// `limit`.
    async fn due_webhook_deliveries(&self, now: DateTime<Utc>, skip: &[String], limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
    /// When the next pending delivery to an endpoint other than `skip` is due.
    async fn next_webhook_due(&self, skip: &[String]) -> StoreResult<Option<DateTime<Utc>>>;
    /// Records an attempt.
    async fn record_webhook_attempt(&self, id: &str, outcome: &AttemptOutcome) -> StoreResult<()>;
    /// The project's deliveries, newest first, optionally of one status and one session.
    async fn list_webhook_deliveries(
        &self,
        project: ProjectId,
        status: Option<DeliveryStatus>,
        session: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// One delivery of the project.
    async fn webhook_delivery(&self, project: ProjectId, id: &str) -> StoreResult<Option<WebhookDelivery>>;
    /// Queues a delivery again, due at `at`, with a fresh retry schedule; None when unknown.
    async fn requeue_webhook_delivery(&self, project: ProjectId, id: &str, at: DateTime<Utc>) -> StoreResult<Option<WebhookDelivery>>;

    /// Stores a new schedule.
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<()>;
    /// One schedule of the project.
    async fn get_schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<Option<Schedule>>;
    /// The project's schedules, newest first.
    async fn list_schedules(&self, project: ProjectId) -> StoreResult<Vec<Schedule>>;
    /// Deletes a schedule and its runs (its sessions stay); false when unknown.
    async fn delete_schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<bool>;
    /// Sets a schedule's status and next slot (pause, resume); false when unknown.
    async fn set_schedule_state(
        &self,
        project: ProjectId,
        id: ScheduleId,
        status: ScheduleStatus,
        next_fire_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Active schedules whose next slot is at or before `now`.
    async fn due_schedules(&self, now: DateTime<Utc>) -> StoreResult<Vec<Schedule>>;
    /// The earliest next slot of an active schedule.
    async fn next_schedule_due(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Applies an advance; false when the schedule moved meanwhile (nothing is written).
    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> StoreResult<bool>;
    /// Sessions a schedule fired for slots at or after `since`.
    async fn count_fired_since(&self, id: ScheduleId, since: DateTime<Utc>) -> StoreResult<u64>;
    /// A schedule's newest runs, newest first.
    async fn schedule_runs(&self, id: ScheduleId, limit: u32) -> StoreResult<Vec<ScheduleRun>>;

    /// Stores a new agent with its first version; returns the resource number it was given.
    async fn insert_agent(&self, agent: &AgentDef, first: &AgentVersion) -> StoreResult<u64>;
    /// One agent of the project.
    async fn get_agent(&self, project: ProjectId, id: AgentId) -> StoreResult<Option<AgentDef>>;
    /// The project's agents, newest first.
    async fn list_agents(&self, project: ProjectId) -> StoreResult<Vec<AgentDef>>;
    /// Renames an agent or changes its description (`Some(None)` clears it); false when unknown.
    async fn update_agent(
        &self,
        project: ProjectId,
        id: AgentId,
        name: Option<&str>,
        description: Option<Option<&str>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes an agent and its versions (sessions keep what they were pinned to); false when unknown.
    async fn delete_agent(&self, project: ProjectId, id: AgentId) -> StoreResult<bool>;
    /// An agent's versions, oldest first.
    async fn agent_versions(&self, agent: AgentId) -> StoreResult<Vec<AgentVersion>>;
    /// Sets the agent's draft (made as the next number when there is none).
    async fn put_agent_draft(&self, agent: AgentId, spec: &AgentSpec, at: DateTime<Utc>) -> StoreResult<AgentVersion>;
    /// Publishes the draft, archiving the version published before; None without a draft.
    async fn publish_agent_draft(&self, agent: AgentId, at: DateTime<Utc>) -> StoreResult<Option<AgentVersion>>;

    /// Stores a new tool with its first version; returns the resource number it was given
    /// (a name the project already uses is a [`StoreError::Conflict`]).
    async fn insert_tool(&self, tool: &ToolDef, first: &ToolVersion) -> StoreResult<u64>;
    /// One tool of the project.
    async fn get_tool(&self, project: ProjectId, id: ToolId) -> StoreResult<Option<ToolDef>>;
    /// The project's tool called `name`.
    async fn tool_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<ToolDef>>;
    /// The project's tools, newest first.
    async fn list_tools(&self, project: ProjectId) -> StoreResult<Vec<ToolDef>>;
    /// Renames a tool; false when unknown.
    async fn rename_tool(&self, project: ProjectId, id: ToolId, name: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes a tool and its versions; false when unknown.
    async fn delete_tool(&self, project: ProjectId, id: ToolId) -> StoreResult<bool>;
    /// A tool's versions, oldest first.
    async fn tool_versions(&self, tool: ToolId) -> StoreResult<Vec<ToolVersion>>;
    /// Sets the tool's draft (made as the next number when there is none).
    async fn put_tool_draft(&self, tool: ToolId, spec: &ToolSpec, at: DateTime<Utc>) -> StoreResult<ToolVersion>;
    /// Publishes the tool's draft, archiving the published version; None without a draft.
    async fn publish_tool_draft(&self, tool: ToolId, at: DateTime<Utc>) -> StoreResult<Option<ToolVersion>>;
    /// The kind and id of the project's resource with this number.
    async fn resource_by_number(&self, project: ProjectId, number: u64) -> StoreResult<Option<(ResourceKind, uuid::Uuid)>>;

    /// Makes a conversation before its first message (idle since `at`): every turn starts
    /// from `opening`, and its first message becomes the session with the conversation's id.
    async fn insert_conversation(&self, project: ProjectId, id: SessionId, at: DateTime<Utc>, opening: &agentd_domain::SessionSpec) -> StoreResult<()>;
    /// The project's conversation `id`, if it has a row.
    async fn get_conversation(&self, project: ProjectId, id: SessionId) -> StoreResult<Option<ConversationRecord>>;
    /// The conversation `id`, made (idle since `since`) when it has no row yet.
    async fn ensure_conversation(&self, project: ProjectId, id: SessionId, since: DateTime<Utc>) -> StoreResult<ConversationRecord>;
    /// Records a message at `at`; false when the conversation is closed (nothing changes).
    async fn touch_conversation(&self, id: SessionId, at: DateTime<Utc>) -> StoreResult<bool>;
    /// Closes a conversation; false when it already was.
    async fn close_conversation(&self, id: SessionId, at: DateTime<Utc>, reason: &str) -> StoreResult<bool>;

    /// Claims an idempotency key for a request, or reports what it was used for before.
    async fn idempotency_begin(&self, claim: &IdempotencyClaim) -> StoreResult<IdempotencyBegin>;
    /// Records the response of a claimed request.
    async fn idempotency_complete(
        &self,
        project: ProjectId,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()>;
    /// Releases a claim whose request did not complete (so a retry may run it).
    async fn idempotency_release(&self, project: ProjectId, key: &str) -> StoreResult<()>;
}
