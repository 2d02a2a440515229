//! Wire types of the native API (separate from the domain types they mirror).

use agentd_domain::{Event, Session, Usage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/sessions`: the union of the seeds' session fields. Only `goal` is required.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// The task, in plain words (required, non-empty).
    #[schema(value_type = String, min_length = 1, max_length = 20_000, pattern = r"\S")]
    pub goal: Option<String>,
    /// Where a browser agent starts (http or https).
    pub start_url: Option<String>,
    /// browser (default) | research | chat | coding.
    #[schema(pattern = "^(browser|research|chat|coding)$")]
    pub mode: Option<String>,
    /// Most browser actions (1 to the configured cap; default 100).
    #[schema(minimum = 1)]
    pub max_actions: Option<i64>,
    /// Most research cycles (1 to 8; default 1 for chat, 5 otherwise).
    #[schema(minimum = 1, maximum = 8)]
    pub max_cycles: Option<i64>,
    /// Overall time limit in seconds, paused time excluded (default 1800).
    #[schema(minimum = 1)]
    pub timeout_seconds: Option<i64>,
    /// Ends the session after this many idle seconds, unless paused (default 300).
    #[schema(minimum = 1)]
    pub inactivity_timeout_seconds: Option<i64>,
    /// Viewport width (200 to 7680; default 1024).
    #[schema(minimum = 200, maximum = 7680)]
    pub display_width: Option<i64>,
    /// Viewport height (200 to 4320; default 768).
    #[schema(minimum = 200, maximum = 4320)]
    pub display_height: Option<i64>,
    /// Run the browser without a window (default true).
    pub headless: Option<bool>,
    /// A label (at most 200 characters).
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Labels for filtering (at most 32, each 1 to 64 characters).
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
    /// low | normal (default) | high.
    #[schema(pattern = "^(low|normal|high)$")]
    pub priority: Option<String>,
    /// Your end user's id (at most 200 characters).
    #[schema(max_length = 200)]
    pub user_id: Option<String>,
    /// Your data, kept with the session (a JSON object, at most 16 KiB).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Where to POST the session's events (http or https).
    pub webhook_url: Option<String>,
    /// Domains the agent may visit (empty: any).
    #[schema(max_items = 100)]
    pub allowed_domains: Option<Vec<String>>,
    /// The LLM model for this session (default: the server's).
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]{1,200}\s*$")]
    pub model: Option<String>,
    /// How a browser agent works: `dom` (default; page elements as text, any chat model) or
    /// `computer_use` (screenshots and coordinates; a computer-use model).
    #[schema(pattern = "^(dom|computer_use)$")]
    pub driver: Option<String>,
    /// A JSON schema the response must match; the response is then JSON.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Secrets the agent may type into pages: `name → value`, typed only on the
    /// `allowed_domains` (any site when there are none, but never put in a URL), and, beside
    /// them, `domain pattern → {name → value}` (`https://*.example.com`; scheme optional,
    /// https by default), typed and sent only to those sites. At most 50 in all; names of
    /// letters, digits, `_`, `-`, `.`. The LLM sees only `<secret>name</secret>`, and the values
    /// are kept in memory for the run, never stored, logged or shown.
    #[schema(value_type = Option<Object>)]
    pub sensitive_data: Option<Map<String, Value>>,
    /// A finished session this one follows up (research, chat and coding modes): the new
    /// session sees that conversation's questions, answers and sources.
    #[schema(format = Uuid)]
    pub continues: Option<String>,
    /// Run a defined agent (`/v1/agents`): its kind, instructions, model, tools and limits.
    #[schema(format = Uuid)]
    pub agent_id: Option<String>,
    /// That agent's version by number (default: the published one).
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub agent_version: Option<i64>,
    /// `DRAFT` to try the agent's draft (or `PUBLISHED`, the default).
    #[schema(pattern = r"^\s*([Dd][Rr][Aa][Ff][Tt]|[Pp][Uu][Bb][Ll][Ii][Ss][Hh][Ee][Dd])\s*$")]
    pub version_state: Option<String>,
}

/// `tags`: at most 32, each 1 to 64 characters (trimmed).
fn tags_schema() -> utoipa::openapi::schema::Schema {
    let tag = utoipa::openapi::schema::ObjectBuilder::new().min_length(Some(1)).max_length(Some(64)).pattern(Some(r"\S"));
    crate::contract::strings(Some(32), tag, true)
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `PATCH /v1/sessions/{id}`: only the given fields change; `null` clears name and user_id.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSessionRequest {
    /// New name, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub name: Option<Option<String>>,
    /// New tags (replace the list).
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
    /// New priority.
    #[schema(pattern = "^(low|normal|high)$")]
    pub priority: Option<String>,
    /// New user id, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub user_id: Option<Option<String>>,
    /// New metadata (replaces the object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `POST /v1/sessions/{id}/input`: the answer to the open input or permission request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    /// The request answered (optional: the open one).
    #[schema(pattern = "^req_[0-9a-f]{32}$")]
    pub request_id: Option<String>,
    /// The text asked for, for an input request.
    pub text: Option<String>,
    /// The decision, for a permission request.
    pub granted: Option<bool>,
}

/// `POST /v1/sessions/{id}/safety_checks/{check_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyCheckDecision {
    /// true confirms (the agent proceeds); false denies.
    pub confirm: bool,
}

/// Query of `GET /v1/sessions`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSessionsQuery {
    /// Only these statuses (comma-separated): queued, running, paused, waiting, completed,
    /// failed, stopped, timed_out.
    #[param(pattern = r"^(\s*(queued|running|paused|waiting|completed|failed|stopped|timed_out)?\s*)(,\s*(queued|running|paused|waiting|completed|failed|stopped|timed_out)?\s*)*$")]
    pub status: Option<String>,
    /// Only sessions carrying this tag.
    pub tag: Option<String>,
    /// Only this end user's sessions.
    pub user_id: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(format = DateTime)]
    pub created_after: Option<String>,
    /// Created before (RFC 3339).
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// true: only sessions with an error; false: only without.
    #[param(value_type = Option<bool>)]
    pub has_error: Option<String>,
    /// Only sessions that ran (start to end, or to now while live) for less than this many
    /// seconds.
    #[param(value_type = Option<f64>, minimum = 0, maximum = 1e12)]
    pub duration_less_than: Option<String>,
    /// created_at (default) | updated_at | priority | name | status | ended_at | duration.
    #[param(pattern = "^(created_at|updated_at|priority|name|status|ended_at|duration)$")]
    pub sort: Option<String>,
    /// desc (default) | asc.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `POST /v1/sessions/cleanup`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CleanupQuery {
    /// Delete finished sessions that ended more than this many days ago (required; 1 to 36500).
    #[param(value_type = u32, minimum = 1, maximum = 36500)]
    pub older_than_days: Option<String>,
}

/// Query of the event endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger seq (default 0: from the start).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807u64)]
    pub after: Option<String>,
    /// Page size for JSON, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Query of the WebSocket endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    /// Replay events with a larger seq first (default 0: from the start).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807u64)]
    pub after: Option<String>,
    /// The API key, for clients (browsers) that cannot send headers on a WebSocket.
    pub api_key: Option<String>,
}

/// Token usage and cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
}

impl From<&Usage> for UsageView {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost_usd: u.cost_usd,
        }
    }
}

/// A session just created: the session, and where its events go when it named a
/// `webhook_url`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSessionView {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// The webhook endpoint its events go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTargetView>,
}

/// A session's webhook endpoint, as its create call shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookTargetView {
    /// `ep_...`.
    pub endpoint_id: String,
    /// The signing secret (`whsec_...`), shown only by the call that made the endpoint:
    /// keep it to verify `webhook-signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A webhook message and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `msg_...`, the `webhook-id` header.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The session whose event it carries.
    pub session_id: Option<String>,
    /// The message type (`session.completed`, ...).
    pub event_type: String,
    /// pending | delivered | failed.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
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
    /// The body sent.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<&agentd_store::WebhookDelivery> for DeliveryView {
    fn from(d: &agentd_store::WebhookDelivery) -> Self {
        Self {
            id: d.id.clone(),
            endpoint_id: d.endpoint_id.clone(),
            session_id: d.session_id.map(|s| s.to_string()),
            event_type: d.event_type.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            response_status: d.response_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub data: Vec<DeliveryView>,
}

/// A webhook endpoint (its secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// `ep_...`.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When deliveries to it stopped (it answered 410 Gone).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why.
    pub disabled_reason: Option<String>,
}

impl From<&agentd_store::WebhookEndpoint> for EndpointView {
    fn from(e: &agentd_store::WebhookEndpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            created_at: e.created_at,
            disabled_at: e.disabled.as_ref().map(|(at, _)| *at),
            disabled_reason: e.disabled.as_ref().map(|(_, why)| why.clone()),
        }
    }
}

/// A project's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub data: Vec<EndpointView>,
}

/// Query of `GET /v1/webhooks/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// pending | delivered | failed.
    #[param(pattern = r"^\s*(pending|delivered|failed)\s*$")]
    pub status: Option<String>,
    /// Only this session's.
    #[param(format = Uuid)]
    pub session_id: Option<String>,
    /// 1 to 500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    pub id: String,
    /// queued | running | paused | waiting | completed | failed | stopped | timed_out.
    pub status: String,
    /// browser | research | chat | coding.
    pub mode: String,
    /// The task.
    pub goal: String,
    /// Start URL.
    pub start_url: Option<String>,
    /// Most browser actions.
    pub max_actions: u32,
    /// Most research cycles.
    pub max_cycles: u32,
    /// Overall time limit.
    pub timeout_seconds: u64,
    /// Inactivity limit.
    pub inactivity_timeout_seconds: u64,
    /// Viewport width.
    pub display_width: u32,
    /// Viewport height.
    pub display_height: u32,
    /// Browser without a window.
    pub headless: bool,
    /// Label.
    pub name: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// low | normal | high.
    pub priority: String,
    /// End user.
    pub user_id: Option<String>,
    /// Client data.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// Allowed domains.
    pub allowed_domains: Vec<String>,
    /// LLM model chosen for the session (None: the server's default).
    pub model: Option<String>,
    /// dom | computer_use.
    pub driver: String,
    /// The JSON schema the response must match.
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Names of the secrets given in `sensitive_data` (never their values).
    pub secret_names: Vec<String>,
    /// Created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// Status or fields last changed.
    pub updated_at: DateTime<Utc>,
    /// First picked up by an agent.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed or ended early.
    pub error: Option<String>,
    /// The agent's answer.
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    /// STRING | JSON | MARKDOWN.
    pub response_type: Option<String>,
    /// Usage and cost.
    pub usage: UsageView,
    /// Seq of the newest event.
    pub last_seq: u64,
    /// When its resources were released (`cleanup_session` of the Computer Use Agent API).
    pub cleaned_at: Option<DateTime<Utc>>,
    /// The agent version it runs (`{agent_id, version}`), when it runs a defined agent.
    #[schema(value_type = Option<Object>)]
    pub agent: Option<Value>,
    /// The conversation it belongs to (its first session's id).
    pub conversation_id: String,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id.to_string(),
            status: s.status.as_str().to_owned(),
            mode: s.spec.mode.as_str().to_owned(),
            goal: s.spec.goal.clone(),
            start_url: s.spec.start_url.clone(),
            max_actions: s.spec.max_actions,
            max_cycles: s.spec.max_cycles,
            timeout_seconds: s.spec.timeout_seconds,
            inactivity_timeout_seconds: s.spec.inactivity_timeout_seconds,
            display_width: s.spec.display_width,
            display_height: s.spec.display_height,
            headless: s.spec.headless,
            name: s.name.clone(),
            tags: s.tags.clone(),
            priority: s.priority.as_str().to_owned(),
            user_id: s.user_id.clone(),
            metadata: s.metadata.clone(),
            webhook_url: s.spec.webhook_url.clone(),
            allowed_domains: s.spec.allowed_domains.clone(),
            model: s.spec.model.clone(),
            driver: s.spec.driver.as_str().to_owned(),
            output_schema: s.spec.output_schema.clone(),
            secret_names: s.spec.secret_names.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            started_at: s.started_at,
            ended_at: s.ended_at,
            error: s.error.clone(),
            response: s.response.clone(),
            response_type: s.response_type.map(|t| t.as_str().to_owned()),
            usage: (&s.usage).into(),
            last_seq: s.last_seq,
            cleaned_at: s.cleaned_at,
            agent: s.spec.agent.map(|pin| serde_json::json!({"agent_id": pin.agent_id.to_string(), "version": pin.number})),
            conversation_id: s.conversation().to_string(),
        }
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    /// The sessions.
    pub data: Vec<SessionView>,
    /// More sessions follow.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Result of a cleanup.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupResult {
    /// Sessions deleted.
    pub deleted: u64,
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its session.
    pub session_id: String,
    /// Its place in the session's log (1, 2, 3 ...).
    pub seq: u64,
    /// started | browser_started | thought | action | observation | message | log |
    /// input_requested | input_received | safety_check_pending | safety_check_resolved |
    /// paused | resumed | completed | failed | stopped | timed_out.
    #[serde(rename = "type")]
    pub kind: String,
    /// Details.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Committed at.
    pub created_at: DateTime<Utc>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            session_id: e.session_id.to_string(),
            seq: e.seq,
            kind: e.kind.as_str().to_owned(),
            data: e.data.clone(),
            created_at: e.created_at,
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in seq order.
    pub data: Vec<EventView>,
    /// More events follow.
    pub has_more: bool,
    /// Pass as `after` for the next page.
    pub next_after: u64,
}

/// Health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok | degraded.
    pub status: String,
    /// Whether the store takes writes.
    pub store: bool,
    /// Why it does not (a full or read-only disk, a failing one); absent when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Server version.
    pub version: String,
}
