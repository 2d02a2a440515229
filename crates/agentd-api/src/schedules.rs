//! `/v1/schedules`: a session template fired every N minutes or on a cron expression, between
//! a start and an optional end, at most N sessions a day; each fire creates a session.

use agentd_domain::{Schedule, ScheduleId, Timetable};
use agentd_engine::{NewSchedule, ScheduleStart, TimetableChoice, WebhookTarget};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_id, parse_json};
use crate::sessions::parse_create;
use crate::state::AppState;
use crate::wire::{CreateSessionRequest, WebhookTargetView};

/// The keys of a schedule request that are the schedule's own; the rest describe its sessions.
const SCHEDULE_KEYS: [&str; 7] = ["every_minutes", "cron", "timezone", "start_at", "start_now", "end_at", "max_sessions_per_day"];
/// The most sessions a day a schedule may ask for.
const MAX_PER_DAY: i64 = 10_000;
/// Runs shown with a schedule.
const RUNS_SHOWN: u32 = 20;

/// `POST /v1/schedules`, as the API description shows it: the fields of `POST /v1/sessions`
/// for its sessions (`CreateSessionRequest`'s schema) and the schedule's own beside them (null
/// reads as absent). The handler reads the body as a map ([`parse_schedule`]).
pub struct CreateScheduleRequest;

impl utoipa::PartialSchema for CreateScheduleRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
        use utoipa::openapi::{RefOr, schema::SchemaType};
        let mut schema = <CreateSessionRequest as utoipa::PartialSchema>::schema();
        let RefOr::T(Schema::Object(object)) = &mut schema else { return schema };
        let nullable = |t: Type| SchemaType::from_iter([t, Type::Null]);
        let field = |t: Type, description: &str| ObjectBuilder::new().schema_type(nullable(t)).description(Some(description));
        let own = [
            ("every_minutes", field(Type::Integer, "Minutes between runs, counted from the start (this or `cron`).")
                .minimum(Some(1)).maximum(Some(agentd_domain::MAX_EVERY_MINUTES))),
            ("cron", field(Type::String, "A cron expression (this or `every_minutes`), read in `timezone`.")),
            ("timezone", field(Type::String, "The IANA zone `cron` and the daily quota are read in (default UTC; with `cron` only).")),
            ("start_at", field(Type::String, "The first run at or after this time (RFC 3339).")
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))),
            ("start_now", field(Type::Boolean, "true: the first run is now (not with `start_at`).")),
            ("end_at", field(Type::String, "No run after this time (RFC 3339).").format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))),
            ("max_sessions_per_day", field(Type::Integer, "Sessions a day at most (1 to 10000).").minimum(Some(1)).maximum(Some(MAX_PER_DAY))),
        ];
        // What a scheduled session does not take may only be null: it starts a new conversation
        // each time, and runs no defined agent.
        let only_null = |why: &str| ObjectBuilder::new().schema_type(Type::Null).description(Some(why)).build();
        object.properties.insert("continues".to_owned(), only_null("Not for schedules: each run starts a new conversation.").into());
        for field in ["agent_id", "agent_version", "version_state"] {
            object.properties.insert(field.to_owned(), only_null("Not for schedules: their sessions run no defined agent.").into());
        }
        for (name, property) in own {
            object.properties.insert(name.to_owned(), property.build().into());
        }
        object.description = Some("The fields of `POST /v1/sessions` for each run's session, and the schedule's own.".into());
        schema
    }
}

impl ToSchema for CreateScheduleRequest {}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Its id.
    pub id: String,
    /// active | paused | ended.
    pub status: String,
    /// Minutes between runs (or null with `cron`).
    pub every_minutes: Option<u32>,
    /// The cron expression (or null with `every_minutes`).
    pub cron: Option<String>,
    /// The zone `cron` and the daily quota are read in.
    pub timezone: String,
    /// The next run.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// No run after this.
    pub end_at: Option<DateTime<Utc>>,
    /// Sessions a day at most.
    pub max_sessions_per_day: Option<u32>,
    /// Sessions fired today.
    pub today_sessions: u64,
    /// Sessions still possible today (null without a quota).
    pub sessions_left: Option<u64>,
    /// Sessions fired in all.
    pub fired: u64,
    /// Runs skipped because the server was down at their time.
    pub skipped_missed: u64,
    /// Runs skipped because the day's quota was used.
    pub skipped_quota: u64,
    /// When it last fired.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The session it last fired.
    pub last_session_id: Option<String>,
    /// What each run creates.
    #[schema(value_type = Object)]
    pub session: Value,
    /// The newest runs: `{slot_at, outcome, session_id, reason}`.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<Value>,
    /// Where its sessions' events go (the secret only when this call made the endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTargetView>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A project's schedules.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// Newest first.
    pub data: Vec<ScheduleView>,
}

/// A schedule as the API shows it.
pub(crate) async fn view(state: &AppState, schedule: &Schedule, webhook: Option<WebhookTarget>, runs: bool) -> ApiResult<ScheduleView> {
    let today = state.engine.schedule_sessions_today(schedule).await?;
    let runs = if runs { state.engine.schedule_runs(schedule, RUNS_SHOWN).await? } else { Vec::new() };
    let (every_minutes, cron, timezone) = match &schedule.timetable {
        Timetable::Every { minutes, .. } => (Some(*minutes), None, "UTC".to_owned()),
        Timetable::Cron { expression, timezone } => (None, Some(expression.clone()), timezone.clone()),
    };
    let spec = &schedule.template["spec"];
    let session = json!({
        "mode": spec["mode"], "goal": spec["goal"], "start_url": spec["start_url"], "max_actions": spec["max_actions"],
        "webhook_url": spec["webhook_url"], "name": schedule.template["name"], "tags": schedule.template["tags"],
        "priority": schedule.template["priority"], "user_id": schedule.template["user_id"],
    });
    Ok(ScheduleView {
        id: schedule.id.to_string(),
        status: schedule.status.as_str().to_owned(),
        every_minutes,
        cron,
        timezone,
        next_fire_at: schedule.next_fire_at,
        end_at: schedule.end_at,
        max_sessions_per_day: schedule.max_sessions_per_day,
        today_sessions: today,
        sessions_left: schedule.max_sessions_per_day.map(|max| u64::from(max).saturating_sub(today)),
        fired: schedule.fired,
        skipped_missed: schedule.skipped_missed,
        skipped_quota: schedule.skipped_quota,
        last_fire_at: schedule.last_fire.map(|(at, _)| at),
        last_session_id: schedule.last_fire.map(|(_, id)| id.to_string()),
        session,
        runs: runs
            .iter()
            .map(|r| json!({"slot_at": r.slot_at, "outcome": r.outcome.as_str(), "session_id": r.session_id, "reason": r.reason}))
            .collect(),
        webhook: webhook.map(|t| WebhookTargetView { endpoint_id: t.endpoint_id, secret: t.new_secret }),
        created_at: schedule.created_at,
        updated_at: schedule.updated_at,
    })
}

/// Splits a schedule request into the schedule's own fields and its sessions' request.
pub(crate) fn parse_schedule(body: Map<String, Value>, state: &AppState) -> ApiResult<NewSchedule> {
    let (own, rest): (Map<String, Value>, Map<String, Value>) = body.into_iter().partition(|(k, _)| SCHEDULE_KEYS.contains(&k.as_str()));
    let request: CreateSessionRequest = parse_json(Value::Object(rest).to_string().as_bytes())?;
    // A schedule's sessions are not pinned to a defined agent (yet): refused rather than dropped.
    for (field, given) in [
        ("agent_id", request.agent_id.is_some()),
        ("agent_version", request.agent_version.is_some()),
        ("version_state", request.version_state.is_some()),
    ] {
        if given {
            return Err(ApiError::invalid(field, format!("{field} is not taken by a schedule: its sessions do not run a defined agent")));
        }
    }
    let session = parse_create(request, &state.config.sessions)?;
    let field = |name: &str| own.get(name).filter(|v| !v.is_null());
    let int = |name: &str| -> ApiResult<Option<i64>> {
        field(name)
            .map(|v| v.as_i64().ok_or_else(|| ApiError::invalid(name, format!("{name} must be a whole number, got {v}"))))
            .transpose()
    };
    let time = |name: &str| -> ApiResult<Option<DateTime<Utc>>> {
        field(name)
            .map(|v| {
                v.as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| ApiError::invalid(name, format!("{name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got {v}")))
            })
            .transpose()
    };
    let text = |name: &str| -> ApiResult<Option<String>> {
        field(name).map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::invalid(name, format!("{name} must be a string")))).transpose()
    };
    let timetable = match (int("every_minutes")?, text("cron")?) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("cron", "give every_minutes or cron, not both")),
        (None, None) => return Err(ApiError::invalid("every_minutes", "every_minutes (or cron) is required")),
        (Some(minutes), None) => {
            if field("timezone").is_some() {
                return Err(ApiError::invalid("timezone", "timezone goes with cron; every_minutes counts from the start"));
            }
            TimetableChoice::Every(minutes)
        }
        (None, Some(expression)) => TimetableChoice::Cron(expression, text("timezone")?.unwrap_or_else(|| "UTC".into())),
    };
    let start_now = match field("start_now") {
        None => None,
        Some(v) => Some(v.as_bool().ok_or_else(|| ApiError::invalid("start_now", "start_now must be true or false"))?),
    };
    let start = match (time("start_at")?, start_now) {
        (Some(_), Some(true)) => return Err(ApiError::invalid("start_at", "give start_at or start_now: true, not both")),
        (Some(at), _) => ScheduleStart::At(at),
        (None, Some(true)) => ScheduleStart::Now,
        (None, _) => ScheduleStart::Next,
    };
    let max_sessions_per_day = match int("max_sessions_per_day")? {
        None => None,
        Some(n) if (1..=MAX_PER_DAY).contains(&n) => Some(n as u32),
        Some(n) => return Err(ApiError::invalid("max_sessions_per_day", format!("max_sessions_per_day must be between 1 and {MAX_PER_DAY}, got {n}"))),
    };
    Ok(NewSchedule { session, timetable, start, end_at: time("end_at")?, max_sessions_per_day })
}

fn schedule_id(raw: &str) -> ApiResult<ScheduleId> {
    parse_id("id", raw)
}

fn not_found(error: agentd_engine::EngineError) -> ApiError {
    match error {
        agentd_engine::EngineError::NotFound => ApiError::not_found("schedule"),
        other => other.into(),
    }
}

/// Create a schedule: the fields of `POST /v1/sessions` for its sessions, plus
/// `every_minutes` or `cron` (with `timezone`), `start_at` or `start_now`, `end_at`,
/// `max_sessions_per_day`.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = CreateScheduleRequest,
    responses((status = 201, body = ScheduleView), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_schedule(State(state): State<AppState>, caller: Caller, bytes: Bytes) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let body: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ApiError::new(crate::error::ErrorCode::InvalidJson, "the body must be a JSON object")),
        Err(e) => return Err(ApiError::new(crate::error::ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}"))),
    };
    let new = parse_schedule(body, &state)?;
    let (schedule, webhook) = state.engine.create_schedule(caller.project_id, new).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &schedule, webhook, false).await?)))
}

/// The project's schedules.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", responses((status = 200, body = ScheduleList)), security(("api_key" = [])))]
pub async fn list_schedules(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ScheduleList>> {
    let mut data = Vec::new();
    for schedule in state.engine.list_schedules(caller.project_id).await? {
        data.push(view(&state, &schedule, None, false).await?);
    }
    Ok(Json(ScheduleList { data }))
}

/// One schedule, with its newest runs.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_schedule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.engine.get_schedule(caller.project_id, schedule_id(&id)?).await.map_err(not_found)?;
    Ok(Json(view(&state, &schedule, None, true).await?))
}

/// Pause a schedule: nothing fires until it is resumed.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn pause_schedule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.engine.pause_schedule(caller.project_id, schedule_id(&id)?).await.map_err(not_found)?;
    Ok(Json(view(&state, &schedule, None, true).await?))
}

/// Resume a paused schedule from its next slot.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn resume_schedule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.engine.resume_schedule(caller.project_id, schedule_id(&id)?).await.map_err(not_found)?;
    Ok(Json(view(&state, &schedule, None, true).await?))
}

/// Delete a schedule (the sessions it made stay).
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "Schedule id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_schedule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.delete_schedule(caller.project_id, schedule_id(&id)?).await.map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}
