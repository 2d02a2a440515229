//! Plain records the store reads and writes besides the domain types.

use agentd_domain::{
    ApiKeyId, Event, ProjectId, ResponseType, SessionId, SessionStatus, Usage,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A project: the owner of resources and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Its unique name (`default` for the one created at first start).
    pub name: String,
}

/// A stored API key: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Its id.
    pub id: ApiKeyId,
    /// The project it acts for.
    pub project_id: ProjectId,
    /// A label.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub key_hash: String,
    /// The first characters of the secret, to recognise it in lists.
    pub key_prefix: String,
    /// Rate-limit tier name.
    pub tier: String,
    /// Per-key override of the tier's per-minute limit.
    pub per_minute: Option<u64>,
    /// Per-key override of the tier's per-day limit.
    pub per_day: Option<u64>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The changes to a session that an event carries (committed in the same transaction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionChange {
    /// New status.
    pub status: Option<SessionStatus>,
    /// Set when the session first starts.
    pub started_at: Option<DateTime<Utc>>,
    /// Set when the session ends.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed or ended early.
    pub error: Option<String>,
    /// The agent's answer.
    pub response: Option<Value>,
    /// How to read the answer.
    pub response_type: Option<ResponseType>,
    /// Usage so far (replaces the stored value).
    pub usage: Option<Usage>,
}

/// One event to commit, with the session change it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWrite {
    /// The event, its seq already assigned.
    pub event: Event,
    /// What it changes on the session.
    pub change: Option<SessionChange>,
}

/// Sort orders for session lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSortField {
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Queue priority.
    Priority,
    /// Name (unnamed sessions sort as the empty name).
    Name,
    /// Status name.
    Status,
    /// End time (live sessions last).
    EndedAt,
    /// Run time: from start (or creation) to the end, or to the query's `now` while live.
    Duration,
}

impl SessionSortField {
    /// Every field, with its wire name.
    pub const ALL: [(SessionSortField, &'static str); 7] = [
        (SessionSortField::CreatedAt, "created_at"),
        (SessionSortField::UpdatedAt, "updated_at"),
        (SessionSortField::Priority, "priority"),
        (SessionSortField::Name, "name"),
        (SessionSortField::Status, "status"),
        (SessionSortField::EndedAt, "ended_at"),
        (SessionSortField::Duration, "duration"),
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(f, _)| *f == self).map(|(_, n)| *n).unwrap_or("created_at")
    }
}

/// A position in a sorted list: the sort value and id of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    /// For time and priority sorts.
    Int(i64),
    /// For name and status sorts.
    Text(String),
}

/// Filters, order and page of a session list.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    /// Whose sessions.
    pub project_id: ProjectId,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<SessionStatus>,
    /// Carries this tag.
    pub tag: Option<String>,
    /// Carries at least one of these tags (empty: no filter).
    pub any_tag: Vec<String>,
    /// Belongs to this end user.
    pub user_id: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// With (true) or without (false) an error.
    pub has_error: Option<bool>,
    /// Ran for less than this (see [`SessionSortField::Duration`]).
    pub duration_less_than: Option<chrono::Duration>,
    /// The time live sessions' durations run to.
    pub now: DateTime<Utc>,
    /// Sort field.
    pub sort: SessionSortField,
    /// Descending when true.
    pub descending: bool,
    /// Continue after this row.
    pub after: Option<(SortValue, SessionId)>,
    /// Page size; the store returns up to `limit + 1` rows so callers can tell if more exist.
    pub limit: u32,
}

impl SessionQuery {
    /// All sessions of a project, newest first.
    pub fn newest_first(project_id: ProjectId, limit: u32) -> Self {
        Self {
            project_id,
            statuses: Vec::new(),
            tag: None,
            any_tag: Vec::new(),
            user_id: None,
            created_after: None,
            created_before: None,
            has_error: None,
            duration_less_than: None,
            now: Utc::now(),
            sort: SessionSortField::CreatedAt,
            descending: true,
            after: None,
            limit,
        }
    }
}

/// The value a session has for a sort field (what a cursor records); `now` ends a live
/// session's duration.
pub fn sort_value(session: &agentd_domain::Session, field: SessionSortField, now: DateTime<Utc>) -> SortValue {
    match field {
        SessionSortField::EndedAt => SortValue::Int(session.ended_at.map_or(i64::MAX, |t| t.timestamp_millis())),
        SessionSortField::Duration => {
            let from = session.started_at.unwrap_or(session.created_at);
            SortValue::Int((session.ended_at.unwrap_or(now) - from).num_milliseconds())
        }
        SessionSortField::CreatedAt => SortValue::Int(session.created_at.timestamp_millis()),
        SessionSortField::UpdatedAt => SortValue::Int(session.updated_at.timestamp_millis()),
        SessionSortField::Priority => SortValue::Int(session.priority.rank()),
        SessionSortField::Name => SortValue::Text(session.name.clone().unwrap_or_default()),
        SessionSortField::Status => SortValue::Text(session.status.as_str().to_owned()),
    }
}

/// A request to use an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The caller's project.
    pub project_id: ProjectId,
    /// The `Idempotency-Key` header value.
    pub key: String,
    /// Hash of method, path and body.
    pub request_hash: String,
    /// Now.
    pub at: DateTime<Utc>,
    /// Records older than this are forgotten (all of the project's) and the key may be reused.
    pub expire_before: DateTime<Utc>,
    /// An unfinished claim older than this was abandoned (its process died) and is released.
    pub abandoned_before: DateTime<Utc>,
}

/// What became of an idempotency claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new: run the request, then complete or release it.
    Claimed,
    /// The key was used before.
    Seen {
        /// The hash of the request it was used for.
        request_hash: String,
        /// Its response, once that request finished.
        response: Option<(u16, String)>,
    },
}


/// A screenshot kept with a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screenshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The PNG, base64-encoded (as every API that shows it sends it).
    pub png_base64: String,
}

/// A project's webhook endpoint: a URL and the secret its deliveries are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `ep_...`.
    pub id: String,
    /// The owning project.
    pub project_id: ProjectId,
    /// Where deliveries go.
    pub url: String,
    /// The Standard Webhooks secret (`whsec_` + base64).
    pub secret: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When deliveries to it stopped (its server answered 410 Gone), and why.
    pub disabled: Option<(DateTime<Utc>, String)>,
}

/// A session's events on their way to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The session.
    pub session_id: SessionId,
    /// The endpoint.
    pub endpoint_id: String,
    /// How its events are shaped (`native`, or an adapter's name).
    pub format: String,
    /// What the format needs besides the event (a JSON object: e.g. a tracking id).
    pub context: Value,
    /// The last seq turned into deliveries.
    pub cursor_seq: u64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Attempts ran out, or the endpoint is disabled.
    Failed,
}

impl DeliveryStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status named `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// One webhook message and its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `msg_...`: the `webhook-id` header (the same on every attempt).
    pub id: String,
    /// The owning project.
    pub project_id: ProjectId,
    /// The endpoint.
    pub endpoint_id: String,
    /// The session whose event it carries.
    pub session_id: Option<SessionId>,
    /// The event's type in the payload.
    pub event_type: String,
    /// The webhook format it was rendered in (its extra headers come from it).
    pub format: String,
    /// The body, exactly as sent (and signed).
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made in all.
    pub attempts: u32,
    /// Attempts since it was (re)queued: where it is in the retry schedule.
    pub round_attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last answer's HTTP status.
    pub response_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the endpoint took it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The answer's HTTP status, if one came.
    pub response_status: Option<u16>,
    /// The status afterwards.
    pub status: DeliveryStatus,
    /// When to try again (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A schedule's move from one slot: the CAS on `expected_next`, the new state, what became of
/// the slots passed, and the session fired (with its webhook subscription), all or nothing.
#[derive(Debug, Clone)]
pub struct ScheduleAdvance {
    /// The schedule.
    pub schedule_id: agentd_domain::ScheduleId,
    /// Its `next_fire_at` as read; the advance applies only if it still is.
    pub expected_next: Option<DateTime<Utc>>,
    /// Its next slot afterwards.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Its status afterwards.
    pub status: agentd_domain::ScheduleStatus,
    /// What became of each slot passed.
    pub runs: Vec<agentd_domain::ScheduleRun>,
    /// The session fired, and its webhook subscription.
    pub fired: Option<(agentd_domain::Session, Option<WebhookSubscription>)>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A conversation's state (its id is its first session's).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    /// The first session's id.
    pub id: SessionId,
    /// The owning project.
    pub project_id: ProjectId,
    /// When its last message came (its first session's creation before any).
    pub last_message_at: DateTime<Utc>,
    /// When it was closed, and why.
    pub closed: Option<(DateTime<Utc>, String)>,
    /// For a conversation made before its first message: the spec every turn starts from
    /// (the goal empty; the agent version pinned when it was made).
    pub opening: Option<agentd_domain::SessionSpec>,
}
