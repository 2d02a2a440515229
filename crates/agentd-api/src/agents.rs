//! `/v1/agents`: named, versioned agent definitions — kind, instructions, model, allowed
//! tools, limits. Version 1 is made with the agent (a draft, or published with
//! `publish: true`); `PUT /v1/agents/{id}/draft` edits the draft (or starts the next
//! version); `POST /v1/agents/{id}/publish` publishes it and archives the version before. A
//! session names `agent_id` (and `agent_version` or `version_state: "DRAFT"`) and is pinned
//! to that version.

use agentd_domain::{AgentDef, AgentId, AgentLimits, AgentSpec, AgentVersion, Mode, VersionChoice, VersionState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, parse_id};
use crate::state::AppState;
use crate::wire::CreateSessionRequest;

const MAX_NAME_CHARS: usize = 200;
const MAX_INSTRUCTIONS_CHARS: usize = 20_000;
const MAX_TOOLS: usize = 50;

/// A version's limits.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Upper bound on browser actions.
    #[schema(minimum = 1)]
    pub max_actions: Option<i64>,
    /// Upper bound on research cycles (1 to 8).
    #[schema(minimum = 1, maximum = 8)]
    pub max_cycles: Option<i64>,
    /// Overall time limit in seconds.
    #[schema(minimum = 1)]
    pub timeout_seconds: Option<i64>,
}

/// What a version defines, as sent (fields left out keep the latest version's).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    /// browser | research | chat | coding.
    #[schema(pattern = "^(browser|research|chat|coding)$")]
    pub kind: Option<String>,
    /// Instructions added to the agent's system prompt.
    #[schema(max_length = 20_000)]
    pub instructions: Option<String>,
    /// The model (the server's when absent).
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]{1,200}\s*$")]
    pub model: Option<String>,
    /// The tools it may call, by name (`web_search`, `fetch_url`, ...).
    #[schema(schema_with = tool_names_schema)]
    pub tools: Option<Vec<String>>,
    /// Its sessions' bounds.
    pub limits: Option<LimitsBody>,
}

/// `POST /v1/agents`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// Its name (required).
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// browser | research | chat | coding (required).
    #[schema(value_type = String, pattern = "^(browser|research|chat|coding)$")]
    pub kind: Option<String>,
    /// Instructions added to the agent's system prompt.
    #[schema(max_length = 20_000)]
    pub instructions: Option<String>,
    /// The model.
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]{1,200}\s*$")]
    pub model: Option<String>,
    /// The tools it may call.
    #[schema(schema_with = tool_names_schema)]
    pub tools: Option<Vec<String>>,
    /// Its sessions' bounds.
    pub limits: Option<LimitsBody>,
    /// Publish version 1 at once (default: it is a draft).
    pub publish: Option<bool>,
}

/// `PATCH /v1/agents/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAgentRequest {
    /// A new name.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// A new description (null clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// `tools`: at most 50 tool names.
fn tool_names_schema() -> utoipa::openapi::schema::Schema {
    let name = utoipa::openapi::schema::ObjectBuilder::new().pattern(Some("^[A-Za-z0-9_.-]{1,100}$"));
    crate::contract::strings(Some(MAX_TOOLS), name, true)
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// One version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// 1, 2, 3 …
    pub number: u32,
    /// DRAFT | PUBLISHED | ARCHIVED.
    pub state: String,
    /// browser | research | chat | coding.
    pub kind: String,
    /// Instructions added to the agent's system prompt.
    pub instructions: String,
    /// The model.
    pub model: Option<String>,
    /// The tools it may call.
    pub tools: Vec<String>,
    /// Its sessions' bounds.
    pub limits: LimitsBody,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

impl From<&AgentVersion> for VersionView {
    fn from(v: &AgentVersion) -> Self {
        Self {
            number: v.number,
            state: v.state.as_str().to_owned(),
            kind: v.spec.kind.as_str().to_owned(),
            instructions: v.spec.instructions.clone(),
            model: v.spec.model.clone(),
            tools: v.spec.tools.clone(),
            limits: LimitsBody {
                max_actions: v.spec.limits.max_actions.map(i64::from),
                max_cycles: v.spec.limits.max_cycles.map(i64::from),
                timeout_seconds: v.spec.limits.timeout_seconds.map(|t| t as i64),
            },
            created_at: v.created_at,
            published_at: v.published_at,
        }
    }
}

/// An agent and its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Its id.
    pub id: String,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`).
    pub resource_id: u64,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The published version's number.
    pub published_version: Option<u32>,
    /// The draft's number.
    pub draft_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn view(agent: &AgentDef, versions: &[AgentVersion]) -> AgentView {
    let numbered = |state| versions.iter().find(|v| v.state == state).map(|v| v.number);
    AgentView {
        id: agent.id.to_string(),
        resource_id: agent.resource_number,
        name: agent.name.clone(),
        description: agent.description.clone(),
        published_version: numbered(VersionState::Published),
        draft_version: numbered(VersionState::Draft),
        versions: versions.iter().map(VersionView::from).collect(),
        created_at: agent.created_at,
        updated_at: agent.updated_at,
    }
}

/// A project's agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    /// Newest first.
    pub data: Vec<AgentView>,
}

fn name(raw: Option<String>) -> ApiResult<String> {
    let name = raw.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid("name", format!("name is required, at most {MAX_NAME_CHARS} characters")));
    }
    Ok(name)
}

/// A version's spec from a request, the fields left out taken from `base`.
fn spec(req: DraftRequest, base: Option<&AgentSpec>, limits: &crate::state::SessionLimits) -> ApiResult<AgentSpec> {
    let kind = match (req.kind, base) {
        (Some(raw), _) => raw.parse::<Mode>().map_err(|m| ApiError::invalid("kind", m))?,
        (None, Some(base)) => base.kind,
        (None, None) => return Err(ApiError::invalid("kind", "kind is required: browser, research, chat or coding")),
    };
    let instructions = req.instructions.or_else(|| base.map(|b| b.instructions.clone())).unwrap_or_default();
    if instructions.chars().count() > MAX_INSTRUCTIONS_CHARS {
        return Err(ApiError::invalid("instructions", format!("instructions must be at most {MAX_INSTRUCTIONS_CHARS} characters")));
    }
    let model = match req.model {
        Some(model) => crate::sessions::model(Some(model))?,
        None => base.and_then(|b| b.model.clone()),
    };
    let tools = req.tools.or_else(|| base.map(|b| b.tools.clone())).unwrap_or_default();
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::invalid("tools", format!("at most {MAX_TOOLS} tools")));
    }
    for (i, tool) in tools.iter().enumerate() {
        let ok = !tool.is_empty() && tool.len() <= 100 && tool.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !ok {
            return Err(ApiError::invalid(format!("tools[{i}]"), format!("tools[{i}] must be a tool name (letters, digits, _ - .), got `{tool}`")));
        }
    }
    let limits = match req.limits {
        None => base.map(|b| b.limits.clone()).unwrap_or_default(),
        Some(l) => {
            let bounded = |field: &str, v: Option<i64>, max: i64| -> ApiResult<Option<i64>> {
                match v {
                    Some(n) if !(1..=max).contains(&n) => Err(ApiError::invalid(format!("limits.{field}"), format!("limits.{field} must be between 1 and {max}, got {n}"))),
                    other => Ok(other),
                }
            };
            AgentLimits {
                max_actions: bounded("max_actions", l.max_actions, i64::from(limits.max_actions_cap))?.map(|n| n as u32),
                max_cycles: bounded("max_cycles", l.max_cycles, 8)?.map(|n| n as u32),
                timeout_seconds: bounded("timeout_seconds", l.timeout_seconds, limits.max_timeout_seconds as i64)?.map(|n| n as u64),
            }
        }
    };
    Ok(AgentSpec { kind, instructions, model, tools, limits })
}

fn agent_id(raw: &str) -> ApiResult<AgentId> {
    parse_id("id", raw)
}

fn not_found(error: agentd_engine::EngineError) -> ApiError {
    match error {
        agentd_engine::EngineError::NotFound => ApiError::not_found("agent"),
        other => other.into(),
    }
}

async fn full_view(state: &AppState, caller: Caller, id: AgentId) -> ApiResult<AgentView> {
    let agent = state.engine.get_agent(caller.project_id, id).await.map_err(not_found)?;
    let versions = state.engine.agent_versions(caller.project_id, id).await.map_err(not_found)?;
    Ok(view(&agent, &versions))
}

/// Create an agent (version 1: a draft, or published with `publish: true`).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = CreateAgentRequest,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_agent(State(state): State<AppState>, caller: Caller, JsonBody(req): JsonBody<CreateAgentRequest>) -> ApiResult<(StatusCode, Json<AgentView>)> {
    let name = name(req.name)?;
    let draft = DraftRequest { kind: req.kind, instructions: req.instructions, model: req.model, tools: req.tools, limits: req.limits };
    let spec = spec(draft, None, &state.config.sessions)?;
    let (agent, first) = state.engine.create_agent(caller.project_id, name, req.description, spec, req.publish.unwrap_or(false)).await?;
    Ok((StatusCode::CREATED, Json(view(&agent, &[first]))))
}

/// The project's agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = AgentList)), security(("api_key" = [])))]
pub async fn list_agents(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AgentList>> {
    let mut data = Vec::new();
    for agent in state.engine.list_agents(caller.project_id).await? {
        let versions = state.engine.agent_versions(caller.project_id, agent.id).await?;
        data.push(view(&agent, &versions));
    }
    Ok(Json(AgentList { data }))
}

/// One agent with its versions.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_agent(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    Ok(Json(full_view(&state, caller, agent_id(&id)?).await?))
}

/// Rename an agent or change its description.
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", request_body = PatchAgentRequest, params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn patch_agent(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, JsonBody(req): JsonBody<PatchAgentRequest>) -> ApiResult<Json<AgentView>> {
    let id = agent_id(&id)?;
    let new_name = req.name.map(|n| name(Some(n))).transpose()?;
    let description = req.description.as_ref().map(|d| d.as_deref());
    state.engine.update_agent(caller.project_id, id, new_name.as_deref(), description).await.map_err(not_found)?;
    Ok(Json(full_view(&state, caller, id).await?))
}

/// Delete an agent (sessions keep the version they were pinned to).
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_agent(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.delete_agent(caller.project_id, agent_id(&id)?).await.map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent's versions.
#[utoipa::path(get, path = "/v1/agents/{id}/versions", tag = "agents", params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_versions(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Vec<VersionView>>> {
    let versions = state.engine.agent_versions(caller.project_id, agent_id(&id)?).await.map_err(not_found)?;
    Ok(Json(versions.iter().map(VersionView::from).collect()))
}

/// Edit the agent's draft (or start the next version as a draft); fields left out keep the
/// latest version's.
#[utoipa::path(put, path = "/v1/agents/{id}/draft", tag = "agents", request_body = DraftRequest, params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, body = VersionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put_draft(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, JsonBody(req): JsonBody<DraftRequest>) -> ApiResult<Json<VersionView>> {
    let id = agent_id(&id)?;
    let versions = state.engine.agent_versions(caller.project_id, id).await.map_err(not_found)?;
    let spec = spec(req, versions.last().map(|v| &v.spec), &state.config.sessions)?;
    let draft = state.engine.put_agent_draft(caller.project_id, id, spec).await.map_err(not_found)?;
    Ok(Json((&draft).into()))
}

/// Publish the draft; the version published before is archived.
#[utoipa::path(post, path = "/v1/agents/{id}/publish", tag = "agents", params(("id" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, body = VersionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn publish(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<VersionView>> {
    let published = state.engine.publish_agent(caller.project_id, agent_id(&id)?).await.map_err(not_found)?;
    Ok(Json((&published).into()))
}

/// The version a request asks for: a number (`number_field`), or `version_state` DRAFT or
/// PUBLISHED (the default), not both.
pub(crate) fn version_choice(number: Option<i64>, state: Option<String>, number_field: &str) -> ApiResult<VersionChoice> {
    Ok(match (number, state) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("version_state", format!("give {number_field} or version_state, not both"))),
        (Some(n), None) if n >= 1 && n <= i64::from(u32::MAX) => VersionChoice::Number(n as u32),
        (Some(n), None) => return Err(ApiError::invalid(number_field, format!("{number_field} must be a version number (1 or more), got {n}"))),
        (None, Some(state)) => match VersionState::parse(&state) {
            Some(VersionState::Draft) => VersionChoice::Draft,
            Some(VersionState::Published) => VersionChoice::Published,
            _ => return Err(ApiError::invalid("version_state", format!("version_state must be DRAFT or PUBLISHED, got `{state}`"))),
        },
        (None, None) => VersionChoice::Published,
    })
}

/// Fills a session request from the agent version it names (what the request leaves out),
/// and says which version it is pinned to. Refuses `agent_version`/`version_state` without
/// `agent_id`, a `mode` other than the agent's kind, and an unknown agent or version.
pub(crate) async fn pin_session(state: &AppState, caller: Caller, req: &mut CreateSessionRequest) -> ApiResult<Option<AgentVersion>> {
    let Some(raw) = req.agent_id.take() else {
        if req.agent_version.is_some() || req.version_state.is_some() {
            return Err(ApiError::invalid("agent_id", "agent_version and version_state need agent_id"));
        }
        return Ok(None);
    };
    let id: AgentId = parse_id("agent_id", &raw)?;
    let choice = version_choice(req.agent_version.take(), req.version_state.take(), "agent_version")?;
    let version = state.engine.resolve_agent_version(caller.project_id, id, choice).await?;
    fill_from_version(req, &version)?;
    Ok(Some(version))
}

/// Fills what a session request leaves out from an agent version: its kind as the mode (a
/// `mode` other than the kind is refused), its model and its limits.
pub(crate) fn fill_from_version(req: &mut CreateSessionRequest, version: &AgentVersion) -> ApiResult<()> {
    let kind = version.spec.kind;
    match req.mode.as_deref().map(str::parse::<Mode>) {
        Some(Ok(mode)) if mode != kind => {
            return Err(ApiError::invalid("mode", format!("the agent is a {kind} agent; leave mode out or give `{kind}`")));
        }
        _ => {}
    }
    req.mode.get_or_insert_with(|| kind.as_str().to_owned());
    if req.model.is_none() {
        req.model = version.spec.model.clone();
    }
    let limits = &version.spec.limits;
    req.max_actions = req.max_actions.or(limits.max_actions.map(i64::from));
    req.max_cycles = req.max_cycles.or(limits.max_cycles.map(i64::from));
    req.timeout_seconds = req.timeout_seconds.or(limits.timeout_seconds.map(|t| t as i64));
    Ok(())
}

/// Pins a parsed session to `version`: the session copies its instructions and tools.
pub(crate) fn pin(new: &mut agentd_engine::NewSession, version: AgentVersion) {
    new.spec.agent = Some(agentd_domain::PinnedVersion { agent_id: version.agent_id, number: version.number });
    new.spec.instructions = Some(version.spec.instructions).filter(|i| !i.trim().is_empty());
    new.spec.tools = (!version.spec.tools.is_empty()).then_some(version.spec.tools);
}
