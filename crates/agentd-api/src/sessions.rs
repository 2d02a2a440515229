//! `/v1/sessions`: create, read, list, change, delete and control sessions.

use agentd_domain::{DomainPattern, Driver, Mode, Priority, Secret, SecretScope, Secrets, SessionId, SessionPatch, SessionSpec, SessionStatus, parse_http_url};
use agentd_engine::{NewSession, SessionAnswer};
use agentd_store::{SessionQuery, SessionSortField, SortValue, sort_value};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryParams, parse_id};
use crate::state::{AppState, SessionLimits};
use crate::wire::*;

const MAX_GOAL_CHARS: usize = 20_000;
const MAX_LABEL_CHARS: usize = 200;
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 64;
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_ALLOWED_DOMAINS: usize = 100;
const MAX_MODEL_CHARS: usize = 200;
const MAX_SECRETS: usize = 50;
const MAX_SECRET_NAME_CHARS: usize = 64;
const MAX_SECRET_CHARS: usize = 4096;
const MAX_OUTPUT_SCHEMA_BYTES: usize = 64 * 1024;
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

fn int_in<T: TryFrom<i64>>(field: &str, value: Option<i64>, default: T, min: i64, max: i64) -> ApiResult<T> {
    let Some(v) = value else {
        return Ok(default);
    };
    if v < min || v > max {
        return Err(ApiError::invalid(field, format!("{field} must be between {min} and {max}, got {v}")));
    }
    T::try_from(v).map_err(|_| ApiError::invalid(field, format!("{field} is out of range")))
}

fn label(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_LABEL_CHARS {
        return Err(ApiError::invalid(field, format!("{field} must be at most {MAX_LABEL_CHARS} characters")));
    }
    Ok(Some(v))
}

fn tags(value: Vec<String>) -> ApiResult<Vec<String>> {
    if value.len() > MAX_TAGS {
        return Err(ApiError::invalid("tags", format!("at most {MAX_TAGS} tags are allowed, got {}", value.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(value.len());
    for (i, tag) in value.into_iter().enumerate() {
        let tag = tag.trim().to_owned();
        let n = tag.chars().count();
        if n == 0 || n > MAX_TAG_CHARS {
            return Err(ApiError::invalid(
                format!("tags[{i}]"),
                format!("each tag must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

fn metadata(value: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::invalid("metadata", format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON, got {size}")));
    }
    Ok(value)
}

fn choice<T: std::str::FromStr<Err = String>>(field: &str, value: Option<String>, default: T) -> ApiResult<T> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|message: String| ApiError::invalid(field, message)),
    }
}

fn domains(value: Vec<String>) -> ApiResult<Vec<String>> {
    if value.len() > MAX_ALLOWED_DOMAINS {
        return Err(ApiError::invalid("allowed_domains", format!("at most {MAX_ALLOWED_DOMAINS} domains are allowed")));
    }
    value
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let d = d.trim().to_ascii_lowercase();
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'));
            if ok {
                Ok(d)
            } else {
                Err(ApiError::invalid(
                    format!("allowed_domains[{i}]"),
                    format!("`{d}` is not a domain name (letters, digits, '-', '.', and '*' as a wildcard)"),
                ))
            }
        })
        .collect()
}

/// `sensitive_data`: flat `name → value` pairs (scoped to the session's allowed domains), and
/// `domain pattern → {name → value}` objects (scoped to that pattern's sites), side by side as
/// browser-use takes them. The limits count every secret, whichever form it came in. Errors
/// name the field (`sensitive_data.pin`, `sensitive_data["https://*.example.com"].pin`) and
/// never repeat a value.
fn sensitive_data(value: Map<String, Value>) -> ApiResult<Secrets> {
    let too_many = || ApiError::invalid("sensitive_data", format!("at most {MAX_SECRETS} secrets are allowed, counting those under every domain"));
    if value.len() > MAX_SECRETS {
        return Err(too_many());
    }
    let mut secrets = Vec::new();
    for (key, value) in value {
        match value {
            Value::Object(scoped) => {
                let field = format!("sensitive_data[{}]", Value::String(key.clone()));
                let pattern = DomainPattern::parse(&key)
                    .map_err(|why| ApiError::invalid(&field, format!("`{key}` is not a domain pattern (such as https://*.example.com): {why}")))?;
                if scoped.is_empty() {
                    return Err(ApiError::invalid(&field, "a domain's object must hold at least one secret (\"name\": \"value\")"));
                }
                for (name, value) in scoped {
                    secrets.push(secret(&field, name, value, SecretScope::Domains(vec![pattern.clone()]))?);
                }
            }
            value => secrets.push(secret("sensitive_data", key, value, SecretScope::Session)?),
        }
        if secrets.len() > MAX_SECRETS {
            return Err(too_many());
        }
    }
    Ok(Secrets::from_list(secrets))
}

/// One secret of `sensitive_data`, found at `parent` (`sensitive_data` or one domain's object).
fn secret(parent: &str, name: String, value: Value, scope: SecretScope) -> ApiResult<Secret> {
    let good_name = (1..=MAX_SECRET_NAME_CHARS).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !good_name {
        return Err(ApiError::invalid(parent, format!("secret names must be 1 to {MAX_SECRET_NAME_CHARS} letters, digits, '_', '-' or '.'")));
    }
    let field = format!("{parent}.{name}");
    // The message never repeats the value.
    let Value::String(value) = value else {
        return Err(ApiError::invalid(field, "a secret's value must be a string (or, under a domain pattern, an object of secrets)"));
    };
    if value.is_empty() || value.chars().count() > MAX_SECRET_CHARS {
        return Err(ApiError::invalid(field, format!("a secret's value must be 1 to {MAX_SECRET_CHARS} characters")));
    }
    Ok(Secret::new(name, value, scope))
}

pub(crate) fn model(value: Option<String>) -> ApiResult<Option<String>> {
    let Some(model) = value.map(|m| m.trim().to_owned()) else { return Ok(None) };
    if model.is_empty() || model.len() > MAX_MODEL_CHARS || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid("model", format!("model must be a model name of 1 to {MAX_MODEL_CHARS} characters without spaces")));
    }
    Ok(Some(model))
}

fn output_schema(value: Option<Value>) -> ApiResult<Option<Value>> {
    let Some(schema) = value else { return Ok(None) };
    let size = serde_json::to_vec(&schema).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_OUTPUT_SCHEMA_BYTES {
        return Err(ApiError::invalid("output_schema", format!("output_schema must be at most {MAX_OUTPUT_SCHEMA_BYTES} bytes of JSON, got {size}")));
    }
    if !schema.is_object() {
        return Err(ApiError::invalid("output_schema", "output_schema must be a JSON schema object"));
    }
    if let Err(error) = jsonschema::validator_for(&schema) {
        return Err(ApiError::invalid("output_schema", format!("output_schema is not a valid JSON schema: {error}")));
    }
    Ok(Some(schema))
}

/// Turns a create request into a session to create, or the first field at fault.
pub fn parse_create(req: CreateSessionRequest, limits: &SessionLimits) -> ApiResult<NewSession> {
    let goal = req.goal.map(|g| g.trim().to_owned()).unwrap_or_default();
    if goal.is_empty() {
        return Err(ApiError::invalid("goal", "goal is required and must not be empty"));
    }
    if goal.chars().count() > MAX_GOAL_CHARS {
        return Err(ApiError::invalid("goal", format!("goal must be at most {MAX_GOAL_CHARS} characters")));
    }
    let mode: Mode = choice("mode", req.mode, Mode::Browser)?;
    let start_url = req.start_url.map(|u| parse_http_url("start_url", &u)).transpose()?;
    let webhook_url = req.webhook_url.map(|u| parse_http_url("webhook_url", &u)).transpose()?;
    let default_cycles = if mode == Mode::Chat { 1 } else { 5 };
    let max_timeout = limits.max_timeout_seconds as i64;
    let spec = SessionSpec {
        mode,
        goal,
        start_url,
        max_actions: int_in(
            "max_actions",
            req.max_actions,
            limits.default_max_actions.min(limits.max_actions_cap),
            1,
            limits.max_actions_cap.into(),
        )?,
        max_cycles: int_in("max_cycles", req.max_cycles, default_cycles, 1, 8)?,
        timeout_seconds: int_in("timeout_seconds", req.timeout_seconds, limits.default_timeout_seconds, 1, max_timeout)?,
        inactivity_timeout_seconds: int_in(
            "inactivity_timeout_seconds",
            req.inactivity_timeout_seconds,
            limits.default_inactivity_timeout_seconds,
            1,
            max_timeout,
        )?,
        display_width: int_in("display_width", req.display_width, 1024, 200, 7680)?,
        display_height: int_in("display_height", req.display_height, 768, 200, 4320)?,
        headless: req.headless.unwrap_or(true),
        webhook_url,
        allowed_domains: domains(req.allowed_domains.unwrap_or_default())?,
        model: model(req.model)?,
        output_schema: output_schema(req.output_schema)?,
        secret_names: Vec::new(),
        driver: choice("driver", req.driver, Driver::Dom)?,
        continues: req.continues.map(|raw| parse_id("continues", &raw)).transpose()?,
        conversation: Vec::new(),
        conversation_id: None,
        agent: None,
        instructions: None,
        tools: None,
    };
    Ok(NewSession {
        spec,
        name: label("name", req.name)?,
        tags: tags(req.tags.unwrap_or_default())?,
        priority: choice("priority", req.priority, Priority::Normal)?,
        user_id: label("user_id", req.user_id)?,
        metadata: metadata(req.metadata.unwrap_or_default())?,
        secrets: sensitive_data(req.sensitive_data.unwrap_or_default())?,
        webhook_format: (agentd_engine::webhooks::NATIVE.into(), Value::Object(Map::new())),
    })
}

pub(crate) fn parse_patch(req: PatchSessionRequest) -> ApiResult<SessionPatch> {
    Ok(SessionPatch {
        name: req.name.map(|n| label("name", n)).transpose()?,
        tags: req.tags.map(tags).transpose()?,
        priority: req.priority.map(|p| choice("priority", Some(p), Priority::Normal)).transpose()?,
        user_id: req.user_id.map(|u| label("user_id", u)).transpose()?,
        metadata: req.metadata.map(metadata).transpose()?,
    })
}

fn session_id(raw: &str) -> ApiResult<SessionId> {
    parse_id("id", raw)
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    d: bool,
    i: Option<i64>,
    t: Option<String>,
    id: String,
}

fn encode_cursor(sort: SessionSortField, descending: bool, value: SortValue, id: SessionId) -> String {
    let (i, t) = match value {
        SortValue::Int(v) => (Some(v), None),
        SortValue::Text(v) => (None, Some(v)),
    };
    let cursor = Cursor {
        s: sort.as_str().to_owned(),
        d: descending,
        i,
        t,
        id: id.to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(raw: &str, sort: SessionSortField, descending: bool) -> ApiResult<(SortValue, SessionId)> {
    let bad = || ApiError::invalid("cursor", "cursor is malformed; pass the next_cursor of a previous page unchanged");
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.s != sort.as_str() || cursor.d != descending {
        return Err(ApiError::invalid("cursor", "cursor belongs to a different sort or order; keep sort and order as on the first page"));
    }
    let id = cursor.id.parse().map_err(|_| bad())?;
    let value = match (cursor.i, cursor.t) {
        (Some(i), None) => SortValue::Int(i),
        (None, Some(t)) => SortValue::Text(t),
        _ => return Err(bad()),
    };
    Ok((value, id))
}

pub(crate) fn timestamp(field: &str, raw: Option<String>) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|v| {
        DateTime::parse_from_rfc3339(v.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::invalid(field, format!("{field} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z, got `{v}`")))
    })
    .transpose()
}

fn boolean(field: &str, raw: Option<String>) -> ApiResult<Option<bool>> {
    raw.map(|v| match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::invalid(field, format!("{field} must be true or false, got `{v}`"))),
    })
    .transpose()
}

/// Parses a whole-number query parameter within `min..=max`.
pub(crate) fn number(field: &str, raw: Option<String>, default: u64, min: u64, max: u64) -> ApiResult<u64> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let v: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("{field} must be a whole number, got `{raw}`")))?;
    if v < min || v > max {
        return Err(ApiError::invalid(field, format!("{field} must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

/// A non-negative number of seconds (fractions allowed) in `field`.
pub(crate) fn seconds(field: &str, raw: &str) -> ApiResult<chrono::Duration> {
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e12).contains(&v) => Ok(chrono::Duration::milliseconds((v * 1000.0).round() as i64)),
        _ => Err(ApiError::invalid(field, format!("{field} must be a number of seconds (0 or more), got `{raw}`"))),
    }
}

fn parse_list(project: agentd_domain::ProjectId, q: ListSessionsQuery) -> ApiResult<SessionQuery> {
    let statuses = match q.status {
        None => Vec::new(),
        Some(raw) => raw
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<SessionStatus>().map_err(|m| ApiError::invalid("status", m)))
            .collect::<ApiResult<_>>()?,
    };
    let sort = match q.sort.as_deref() {
        None => SessionSortField::CreatedAt,
        Some(raw) => SessionSortField::ALL
            .iter()
            .find(|(_, name)| *name == raw)
            .map(|(field, _)| *field)
            .ok_or_else(|| {
                let names: Vec<_> = SessionSortField::ALL.iter().map(|(_, n)| *n).collect();
                ApiError::invalid("sort", format!("unknown sort field `{raw}`; expected one of {}", names.join(", ")))
            })?,
    };
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(ApiError::invalid("order", format!("order must be asc or desc, got `{other}`"))),
    };
    let after = q.cursor.map(|c| decode_cursor(&c, sort, descending)).transpose()?;
    Ok(SessionQuery {
        project_id: project,
        statuses,
        tag: q.tag,
        any_tag: Vec::new(),
        user_id: q.user_id,
        created_after: timestamp("created_after", q.created_after)?,
        created_before: timestamp("created_before", q.created_before)?,
        has_error: boolean("has_error", q.has_error)?,
        duration_less_than: q
            .duration_less_than
            .map(|raw| seconds("duration_less_than", &raw))
            .transpose()?,
        now: chrono::Utc::now(),
        sort,
        descending,
        after,
        limit: number("limit", q.limit, DEFAULT_PAGE.into(), 1, MAX_PAGE.into())? as u32,
    })
}

/// Create a session; it is queued and starts as soon as a runner slot is free.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSessionRequest,
    responses((status = 201, body = CreatedSessionView), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(mut req): JsonBody<CreateSessionRequest>,
) -> ApiResult<(StatusCode, Json<CreatedSessionView>)> {
    let pinned = crate::agents::pin_session(&state, caller, &mut req).await?;
    let mut new = parse_create(req, &state.config.sessions)?;
    if let Some(version) = pinned {
        crate::agents::pin(&mut new, version);
    }
    let (session, webhook) = state.engine.create_session_with_webhook(caller.project_id, new).await?;
    let view = CreatedSessionView {
        session: (&session).into(),
        webhook: webhook.map(|target| WebhookTargetView { endpoint_id: target.endpoint_id, secret: target.new_secret }),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// One session.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SessionView>> {
    let session = state.engine.get_session(caller.project_id, session_id(&id)?).await?;
    Ok(Json((&session).into()))
}

/// Sessions, filtered, sorted and paginated with a cursor.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(ListSessionsQuery),
    responses((status = 200, body = SessionPage), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListSessionsQuery>,
) -> ApiResult<Json<SessionPage>> {
    let query = parse_list(caller.project_id, q)?;
    let mut sessions = state.engine.list_sessions(&query).await?;
    let has_more = sessions.len() > query.limit as usize;
    sessions.truncate(query.limit as usize);
    let next_cursor = match sessions.last() {
        Some(last) if has_more => Some(encode_cursor(query.sort, query.descending, sort_value(last, query.sort, query.now), last.id)),
        _ => None,
    };
    Ok(Json(SessionPage {
        data: sessions.iter().map(SessionView::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// Change a session's name, tags, priority, user id or metadata.
#[utoipa::path(patch, path = "/v1/sessions/{id}", tag = "sessions", request_body = PatchSessionRequest,
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn patch_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PatchSessionRequest>,
) -> ApiResult<Json<SessionView>> {
    let id = session_id(&id)?;
    let patch = parse_patch(req)?;
    let session = state.engine.patch_session(caller.project_id, id, &patch).await?;
    Ok(Json((&session).into()))
}

/// Delete a finished session and its events (a live session must be stopped first: 409).
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.delete_session(caller.project_id, session_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete finished sessions that ended more than `older_than_days` days ago.
#[utoipa::path(post, path = "/v1/sessions/cleanup", tag = "sessions", params(CleanupQuery),
    responses((status = 200, body = CleanupResult), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn cleanup_sessions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<CleanupQuery>,
) -> ApiResult<Json<CleanupResult>> {
    if q.older_than_days.is_none() {
        return Err(ApiError::invalid("older_than_days", "older_than_days is required (a whole number of days, at least 1)"));
    }
    let days = number("older_than_days", q.older_than_days, 0, 1, 36_500)?;
    let before = Utc::now() - Duration::days(days as i64);
    let deleted = state.engine.cleanup_sessions(caller.project_id, before).await?;
    Ok(Json(CleanupResult { deleted }))
}

/// Stop a session (any live status).
#[utoipa::path(post, path = "/v1/sessions/{id}/stop", tag = "control", params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn stop_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SessionView>> {
    let session = state.engine.stop(caller.project_id, session_id(&id)?).await?;
    Ok(Json((&session).into()))
}

/// Pause a running or waiting session.
#[utoipa::path(post, path = "/v1/sessions/{id}/pause", tag = "control", params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn pause_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SessionView>> {
    let session = state.engine.pause(caller.project_id, session_id(&id)?).await?;
    Ok(Json((&session).into()))
}

/// Resume a paused session.
#[utoipa::path(post, path = "/v1/sessions/{id}/resume", tag = "control", params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn resume_session(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SessionView>> {
    let session = state.engine.resume(caller.project_id, session_id(&id)?).await?;
    Ok(Json((&session).into()))
}

/// Answer the session's open input (`text`) or permission (`granted`) request.
#[utoipa::path(post, path = "/v1/sessions/{id}/input", tag = "control", request_body = InputRequest,
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn answer_input(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<InputRequest>,
) -> ApiResult<Json<SessionView>> {
    let id = session_id(&id)?;
    let answer = to_answer(req)?;
    state.engine.answer_input(caller.project_id, id, answer).await?;
    Ok(Json((&state.engine.get_session(caller.project_id, id).await?).into()))
}

/// Checks that an input answer carries exactly what an answer needs.
pub(crate) fn to_answer(req: InputRequest) -> ApiResult<SessionAnswer> {
    if req.text.is_none() && req.granted.is_none() {
        return Err(ApiError::invalid("text", "give `text` (for an input request) or `granted` (for a permission request)"));
    }
    if req.text.is_some() && req.granted.is_some() {
        return Err(ApiError::invalid("granted", "give either `text` or `granted`, not both"));
    }
    Ok(SessionAnswer {
        request_id: req.request_id,
        text: req.text,
        granted: req.granted,
    })
}

/// Confirm or deny a pending safety check.
#[utoipa::path(post, path = "/v1/sessions/{id}/safety_checks/{check_id}", tag = "control", request_body = SafetyCheckDecision,
    params(("id" = uuid::Uuid, Path, description = "Session id"), ("check_id" = String, Path, pattern = "^sc_[0-9a-f]{32}$", description = "Safety check id (`sc_` and 32 hex digits)")),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn resolve_safety_check(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, check_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<SafetyCheckDecision>,
) -> ApiResult<Json<SessionView>> {
    let id = session_id(&id)?;
    state.engine.resolve_safety_check(caller.project_id, id, &check_id, req.confirm).await?;
    Ok(Json((&state.engine.get_session(caller.project_id, id).await?).into()))
}
