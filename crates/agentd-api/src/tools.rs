//! `/v1/tools`: user-defined tools — an HTTP request made from templates, or an MCP server
//! (stdio command or streamable-HTTP URL) whose tools are listed and callable — versioned as
//! agents are (`PUT /v1/tools/{id}/draft`, `POST /v1/tools/{id}/publish`). `variables` are
//! plain settings; `private_variables` are sealed at rest and shown by name only, and their
//! values are masked (`[redacted:name]`) in every output, debug line and error;
//! `environment_variables` come with one execution and are never stored (masked too).
//!
//! `POST /v1/tools/{id}/execute` runs a version (published by default) and answers when it is
//! done, or — with `stream: true` or `Accept: text/event-stream` — streams Server-Sent Events:
//! `debug` (one debug line) as they come, then `result` (the same body as the synchronous
//! answer). A tool that fails is an answer with `status: "failed"` and the `error`; a request
//! that cannot run (unknown tool or version, bad arguments, a value that would change where the
//! request goes: `arguments.<name>`) is an API error. Agents call the tools their version names
//! (`tools: ["my_tool"]`) by that name.
//!
//! A definition whose URL leaves its scheme, host or port (or an MCP server's URL or command)
//! to anything but the tool's own `variables` and `private_variables` is refused when it is
//! created or changed (`definition.url_template`, …).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use agentd_domain::{ToolDef, ToolId, ToolVersion, VersionState};
use agentd_engine::{EngineError, ToolCall, ToolDraft, ToolExecution};
use agentd_tools::{CallerInput, DebugSink, ToolError, ToolKind};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::agents::version_choice;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryParams, parse_id};
use crate::state::AppState;

/// Characters of a tool's name (a function name for models: letters, digits, `_`, `-`).
pub const MAX_NAME_CHARS: usize = 64;
/// Characters of a description.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Variables of one kind (plain, private, environment).
pub const MAX_VARIABLES: usize = 50;
/// Characters of one variable's value.
pub const MAX_VARIABLE_CHARS: usize = 10_000;
/// Debug lines an execution keeps for its answer (a stream sends them all as they come).
const MAX_DEBUG_LINES: usize = 500;

/// `POST /v1/tools`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToolRequest {
    /// Its name, unique in the project: what agents call it by (required; letters, digits, `_`, `-`).
    #[schema(value_type = String, pattern = r"^\s*[A-Za-z0-9_-]{1,64}\s*$")]
    pub name: Option<String>,
    /// What it does, as a model reads it.
    #[schema(max_length = 2_000)]
    pub description: Option<String>,
    /// The tool (required): `{"type": "http", "method", "url_template", "headers", "body_template",
    /// "parameters"}` or `{"type": "mcp", "server": {"transport": "stdio", "command", "args", "env"}
    /// | {"transport": "http", "url", "headers"}}`. Templates use `{{name}}`.
    #[schema(value_type = Object)]
    pub definition: Option<Value>,
    /// Plain variables its templates may name.
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// Secret variables (sealed at rest, masked everywhere, shown by name only).
    #[schema(value_type = Option<Object>)]
    pub private_variables: Option<Value>,
    /// Publish version 1 at once (default: it is a draft).
    pub publish: Option<bool>,
}

/// `PUT /v1/tools/{id}/draft`: fields left out keep the latest version's.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolDraftRequest {
    /// What it does, as a model reads it.
    #[schema(max_length = 2_000)]
    pub description: Option<String>,
    /// The tool.
    #[schema(value_type = Option<Object>)]
    pub definition: Option<Value>,
    /// Plain variables (replace the latest version's).
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// Secret variables (replace the latest version's; left out, they are kept).
    #[schema(value_type = Option<Object>)]
    pub private_variables: Option<Value>,
}

/// `PATCH /v1/tools/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchToolRequest {
    /// A new name.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{1,64}\s*$")]
    pub name: Option<String>,
}

/// `POST /v1/tools/{id}/execute`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteToolRequest {
    /// The arguments (a JSON object, checked against the tool's `parameters`).
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<Value>,
    /// The MCP server's tool to call (MCP tools only).
    pub mcp_tool: Option<String>,
    /// Secret values for this execution, for names the version does not set (masked, never
    /// stored).
    #[schema(value_type = Option<Object>)]
    pub private_variables: Option<Value>,
    /// Environment values for this execution, for names the version does not set (masked,
    /// never stored; over `private_variables`).
    #[schema(value_type = Option<Object>)]
    pub environment_variables: Option<Value>,
    /// A version number.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub version: Option<i64>,
    /// DRAFT or PUBLISHED (the default).
    #[schema(pattern = r"^\s*([Dd][Rr][Aa][Ff][Tt]|[Pp][Uu][Bb][Ll][Ii][Ss][Hh][Ee][Dd])\s*$")]
    pub version_state: Option<String>,
    /// Stream debug lines as Server-Sent Events.
    pub stream: Option<bool>,
}

/// Requests that may carry secret values show field names only.
macro_rules! debug_without_values {
    ($($ty:ty),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($ty), " { .. }"))
            }
        }
    )*};
}
debug_without_values!(CreateToolRequest, ToolDraftRequest, ExecuteToolRequest);

/// `GET /v1/tools/{id}/mcp-tools` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// A version number.
    pub version: Option<i64>,
    /// DRAFT or PUBLISHED (the default).
    pub version_state: Option<String>,
}

/// One version of a tool.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolVersionView {
    /// 1, 2, 3 …
    pub number: u32,
    /// DRAFT | PUBLISHED | ARCHIVED.
    pub state: String,
    /// What it does.
    pub description: String,
    /// The tool.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Plain variables.
    pub variables: BTreeMap<String, String>,
    /// The private variables' names (their values are never shown).
    pub private_variables: Vec<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

impl From<&ToolVersion> for ToolVersionView {
    fn from(v: &ToolVersion) -> Self {
        Self {
            number: v.number,
            state: v.state.as_str().to_owned(),
            description: v.spec.description.clone(),
            definition: v.spec.definition.clone(),
            variables: v.spec.variables.clone(),
            private_variables: v.spec.private_variables.names.clone(),
            created_at: v.created_at,
            published_at: v.published_at,
        }
    }
}

/// A tool and its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolView {
    /// Its id.
    pub id: String,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`).
    pub resource_id: u64,
    /// Its name.
    pub name: String,
    /// The published version's number.
    pub published_version: Option<u32>,
    /// The draft's number.
    pub draft_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<ToolVersionView>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn view(tool: &ToolDef, versions: &[ToolVersion]) -> ToolView {
    let numbered = |state| versions.iter().find(|v| v.state == state).map(|v| v.number);
    ToolView {
        id: tool.id.to_string(),
        resource_id: tool.resource_number,
        name: tool.name.clone(),
        published_version: numbered(VersionState::Published),
        draft_version: numbered(VersionState::Draft),
        versions: versions.iter().map(ToolVersionView::from).collect(),
        created_at: tool.created_at,
        updated_at: tool.updated_at,
    }
}

/// A project's tools.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    /// Newest first.
    pub data: Vec<ToolView>,
}

/// Why an execution failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolFailure {
    /// invalid_arguments, timeout, http_status, mcp_tool_failed, …
    pub code: String,
    /// What happened (masked).
    pub message: String,
}

/// What an execution did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    /// The tool's id.
    pub tool_id: String,
    /// Its name.
    pub tool: String,
    /// The version that ran.
    pub version: u32,
    /// succeeded | failed.
    pub status: String,
    /// The output as a model reads it (an HTTP body, an MCP result's text).
    pub result: Option<String>,
    /// The whole output: `{"type": "http", status, headers, body, truncated}` or
    /// `{"type": "mcp", text, content, structured}`.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<ToolFailure>,
    /// The debug lines, in order (masked; the first 500).
    pub debug_output: Vec<String>,
    /// How long it took.
    pub elapsed_ms: u64,
}

/// The view of an execution (with the debug lines it reported).
pub(crate) fn execution_view(execution: ToolExecution, debug_output: Vec<String>) -> ExecutionView {
    let (status, result, output, error) = match execution.outcome {
        Ok(output) => ("succeeded", Some(output.text()), serde_json::to_value(&output).ok(), None),
        Err(error) => ("failed", None, None, Some(ToolFailure { code: error.code().to_owned(), message: error.to_string() })),
    };
    ExecutionView {
        tool_id: execution.tool.id.to_string(),
        tool: execution.tool.name.clone(),
        version: execution.version,
        status: status.to_owned(),
        result,
        output,
        error,
        debug_output,
        elapsed_ms: execution.elapsed_ms,
    }
}

fn tool_id(raw: &str) -> ApiResult<ToolId> {
    parse_id("id", raw)
}

fn not_found(error: EngineError) -> ApiError {
    match error {
        EngineError::NotFound => ApiError::not_found("tool"),
        other => other.into(),
    }
}

fn name(raw: Option<String>) -> ApiResult<String> {
    let name = raw.map(|n| n.trim().to_owned()).unwrap_or_default();
    let well_formed = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !well_formed {
        return Err(ApiError::invalid(
            "name",
            format!("name is required: 1 to {MAX_NAME_CHARS} letters, digits, `_` or `-` (agents call the tool by it)"),
        ));
    }
    if agentd_domain::BUILT_IN_TOOLS.contains(&name.as_str()) {
        return Err(ApiError::invalid("name", format!("`{name}` is a built-in tool's name: choose another")));
    }
    Ok(name)
}

fn description(raw: Option<String>) -> ApiResult<String> {
    let text = raw.map(|d| d.trim().to_owned()).unwrap_or_default();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid("description", format!("description must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(text)
}

/// A definition from a request, checked (a stdio MCP server's command must be one the
/// operator allows).
fn definition(state: &AppState, raw: Value) -> ApiResult<ToolKind> {
    let kind: ToolKind = serde_json::from_value(raw).map_err(|e| {
        ApiError::invalid(
            "definition",
            format!("definition must be {{\"type\": \"http\", \"method\", \"url_template\", …}} or {{\"type\": \"mcp\", \"server\": {{…}}}}: {e}"),
        )
    })?;
    kind.check().map_err(|(field, why)| ApiError::invalid(format!("definition.{field}"), why))?;
    if let ToolKind::Mcp { server: agentd_tools::McpServer::Stdio { command, .. } } = &kind
        && !state.engine.stdio_command_allowed(command)
    {
        return Err(ApiError::invalid(
            "definition.server.command",
            format!(
                "`{command}` is not a command this server runs: a stdio MCP server is a program on the server's machine, \
                 so its operator lists the allowed ones (AGENTD_MCP_STDIO_COMMANDS); or use an MCP server over HTTP"
            ),
        ));
    }
    Ok(kind)
}

/// The draft's placeholders that decide where a request goes or what runs name its own
/// variables (`private_names`: the private variables the version will have).
fn own_placeholders(draft: &ToolDraft, private_names: &[String]) -> ApiResult<()> {
    let own = |name: &str| draft.variables.contains_key(name) || private_names.iter().any(|p| p == name);
    draft.kind.check_own_placeholders(own).map_err(|(field, why)| ApiError::invalid(format!("definition.{field}"), why))
}

/// A variables object (`{name: value}`): names are identifiers, values any JSON scalar (kept
/// as text; objects and arrays as JSON text), bounded in number and size.
pub(crate) fn variables(field: &str, raw: Option<Value>) -> ApiResult<BTreeMap<String, String>> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::invalid(field, format!("{field} must be an object of name → value"))),
    };
    if map.len() > MAX_VARIABLES {
        return Err(ApiError::invalid(field, format!("{field} may hold at most {MAX_VARIABLES} variables, got {}", map.len())));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let identifier = !name.is_empty()
            && name.len() <= 100
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !identifier {
            return Err(ApiError::invalid(format!("{field}.{name}"), format!("`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)")));
        }
        let text = match value {
            Value::String(text) => text,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if text.chars().count() > MAX_VARIABLE_CHARS {
            return Err(ApiError::invalid(format!("{field}.{name}"), format!("a variable's value is at most {MAX_VARIABLE_CHARS} characters")));
        }
        out.insert(name, text);
    }
    Ok(out)
}

async fn full_view(state: &AppState, caller: Caller, id: ToolId) -> ApiResult<ToolView> {
    let tool = state.engine.get_tool(caller.project_id, id).await.map_err(not_found)?;
    let versions = state.engine.tool_versions(caller.project_id, id).await.map_err(not_found)?;
    Ok(view(&tool, &versions))
}

/// Create a tool (version 1: a draft, or published with `publish: true`).
#[utoipa::path(post, path = "/v1/tools", tag = "tools", request_body = CreateToolRequest,
    responses((status = 201, body = ToolView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_tool(State(state): State<AppState>, caller: Caller, JsonBody(req): JsonBody<CreateToolRequest>) -> ApiResult<(StatusCode, Json<ToolView>)> {
    let name = name(req.name)?;
    let kind = definition(&state, req.definition.ok_or_else(|| ApiError::invalid("definition", "definition is required"))?)?;
    let draft = ToolDraft {
        description: description(req.description)?,
        kind,
        variables: variables("variables", req.variables)?,
        private_variables: Some(variables("private_variables", req.private_variables)?),
    };
    let private_names: Vec<String> = draft.private_variables.iter().flat_map(|p| p.keys().cloned()).collect();
    own_placeholders(&draft, &private_names)?;
    let (tool, first) = state.engine.create_tool(caller.project_id, name, draft, req.publish.unwrap_or(false)).await?;
    Ok((StatusCode::CREATED, Json(view(&tool, &[first]))))
}

/// The project's tools.
#[utoipa::path(get, path = "/v1/tools", tag = "tools", responses((status = 200, body = ToolList)), security(("api_key" = [])))]
pub async fn list_tools(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ToolList>> {
    let mut data = Vec::new();
    for tool in state.engine.list_tools(caller.project_id).await? {
        let versions = state.engine.tool_versions(caller.project_id, tool.id).await?;
        data.push(view(&tool, &versions));
    }
    Ok(Json(ToolList { data }))
}

/// One tool with its versions.
#[utoipa::path(get, path = "/v1/tools/{id}", tag = "tools", params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = ToolView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_tool(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ToolView>> {
    Ok(Json(full_view(&state, caller, tool_id(&id)?).await?))
}

/// Rename a tool (agent versions name tools by name: update them too).
#[utoipa::path(patch, path = "/v1/tools/{id}", tag = "tools", request_body = PatchToolRequest, params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = ToolView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn patch_tool(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, JsonBody(req): JsonBody<PatchToolRequest>) -> ApiResult<Json<ToolView>> {
    let id = tool_id(&id)?;
    if req.name.is_some() {
        state.engine.rename_tool(caller.project_id, id, &name(req.name)?).await.map_err(not_found)?;
    }
    Ok(Json(full_view(&state, caller, id).await?))
}

/// Delete a tool and its versions.
#[utoipa::path(delete, path = "/v1/tools/{id}", tag = "tools", params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_tool(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.delete_tool(caller.project_id, tool_id(&id)?).await.map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A tool's versions.
#[utoipa::path(get, path = "/v1/tools/{id}/versions", tag = "tools", params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = Vec<ToolVersionView>), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_versions(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Vec<ToolVersionView>>> {
    let versions = state.engine.tool_versions(caller.project_id, tool_id(&id)?).await.map_err(not_found)?;
    Ok(Json(versions.iter().map(ToolVersionView::from).collect()))
}

/// Edit the tool's draft (or start the next version as a draft); fields left out keep the
/// latest version's.
#[utoipa::path(put, path = "/v1/tools/{id}/draft", tag = "tools", request_body = ToolDraftRequest, params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = ToolVersionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put_draft(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, JsonBody(req): JsonBody<ToolDraftRequest>) -> ApiResult<Json<ToolVersionView>> {
    let id = tool_id(&id)?;
    let versions = state.engine.tool_versions(caller.project_id, id).await.map_err(not_found)?;
    let latest = versions.last().ok_or_else(|| ApiError::not_found("tool"))?;
    let kind = match req.definition {
        Some(raw) => definition(&state, raw)?,
        None => state.engine.tool_kind(latest)?,
    };
    let draft = ToolDraft {
        description: match req.description {
            Some(text) => description(Some(text))?,
            None => latest.spec.description.clone(),
        },
        kind,
        variables: match req.variables {
            Some(raw) => variables("variables", Some(raw))?,
            None => latest.spec.variables.clone(),
        },
        private_variables: req.private_variables.map(|raw| variables("private_variables", Some(raw))).transpose()?,
    };
    let private_names = match &draft.private_variables {
        Some(values) => values.keys().cloned().collect(),
        None => latest.spec.private_variables.names.clone(),
    };
    own_placeholders(&draft, &private_names)?;
    let version = state.engine.put_tool_draft(caller.project_id, id, draft).await.map_err(not_found)?;
    Ok(Json((&version).into()))
}

/// Publish the draft; the version published before is archived.
#[utoipa::path(post, path = "/v1/tools/{id}/publish", tag = "tools", params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = ToolVersionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn publish(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ToolVersionView>> {
    let published = state.engine.publish_tool(caller.project_id, tool_id(&id)?).await.map_err(not_found)?;
    Ok(Json((&published).into()))
}

/// An MCP server's tools.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpToolList {
    /// Each tool: name, description, input_schema.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
}

/// The tools an MCP server tool offers (the server is started, asked, and stopped).
#[utoipa::path(get, path = "/v1/tools/{id}/mcp-tools", tag = "tools", params(("id" = uuid::Uuid, Path, description = "Tool id"),
    ("version" = Option<i64>, Query, minimum = 1, maximum = 4_294_967_295_i64, description = "A version number"),
    ("version_state" = Option<String>, Query, pattern = r"^\s*([Dd][Rr][Aa][Ff][Tt]|[Pp][Uu][Bb][Ll][Ii][Ss][Hh][Ee][Dd])\s*$", description = "DRAFT or PUBLISHED")),
    responses((status = 200, body = McpToolList), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)), security(("api_key" = [])))]
pub async fn mcp_tools(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, QueryParams(q): QueryParams<VersionQuery>) -> ApiResult<Json<McpToolList>> {
    let choice = version_choice(q.version, q.version_state, "version")?;
    let listed = state.engine.list_mcp_tools(caller.project_id, tool_id(&id)?, choice, &ToolCall::default()).await.map_err(not_found)?;
    match listed {
        Ok(tools) => Ok(Json(McpToolList { data: tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect() })),
        Err(error) => Err(ApiError::new(crate::ErrorCode::UpstreamFailed, error.to_string())),
    }
}

/// Execute a tool version (published by default): the answer when it is done, or Server-Sent
/// Events (`debug` lines as they come, then `result`) with `stream: true` or
/// `Accept: text/event-stream`.
#[utoipa::path(post, path = "/v1/tools/{id}/execute", tag = "tools", request_body = ExecuteToolRequest, params(("id" = uuid::Uuid, Path, description = "Tool id")),
    responses((status = 200, body = ExecutionView, description = "The execution (a failed tool has status `failed`); or an event stream"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ExecuteToolRequest>,
) -> ApiResult<Response> {
    let id = tool_id(&id)?;
    let choice = version_choice(req.version, req.version_state, "version")?;
    let call = ToolCall {
        arguments: req.arguments.unwrap_or(Value::Null),
        mcp_tool: req.mcp_tool,
        private_variables: variables("private_variables", req.private_variables)?,
        environment_variables: variables("environment_variables", req.environment_variables)?,
    };
    let (tool, version) = state.engine.resolve_tool(caller.project_id, id, choice).await.map_err(not_found)?;
    let streamed = req.stream.unwrap_or(false) || crate::events::wants_sse(&headers);
    let kept = KeptLines::default();
    if !streamed {
        let sink = kept.sink(None);
        let execution = state.engine.run_tool(tool, &version, &call, &sink).await?;
        refuse_bad_arguments(&execution, &call)?;
        return Ok(Json(execution_view(execution, kept.take())).into_response());
    }
    // Arguments are checked before the stream opens, so bad ones are a 400 here too.
    if let Err(error) = state.engine.tool_kind(&version)?.check_arguments(&call.arguments) {
        return Err(ApiError::invalid("arguments", error.to_string()));
    }
    let (sender, receiver) = tokio::sync::mpsc::channel(1024);
    let sink = kept.sink(Some(sender));
    let engine = state.engine.clone();
    // The sink (and its sender) drops when the execution ends, which ends the debug lines; a
    // client that goes away drops the stream, which stops the execution.
    let mut run = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let execution = engine.run_tool(tool, &version, &call, &sink).await;
        (execution, call)
    }));
    let lines = tokio_stream::wrappers::ReceiverStream::new(receiver)
        .map(|line: String| Ok::<_, Infallible>(SseEvent::default().event("debug").data(serde_json::json!({"line": line}).to_string())));
    let end = futures::stream::once(async move {
        let event = match (&mut run).await {
            // The request's fault found while running (a value that would move the request):
            // the same 400 body a synchronous execution answers, as the stream's `error`.
            Ok((Ok(execution), call)) => match refuse_bad_arguments(&execution, &call) {
                Ok(()) => SseEvent::default().event("result").data(json_text(&execution_view(execution, kept.take()))),
                Err(refused) => SseEvent::default().event("error").data(json_text(&refused.body())),
            },
            Ok((Err(error), _)) => SseEvent::default().event("error").data(json_text(&ApiError::from(error).body())),
            Err(_) => SseEvent::default().event("error").data(json_text(&ApiError::internal("the execution stopped unexpectedly").body())),
        };
        Ok::<_, Infallible>(event)
    });
    let sse = Sse::new(lines.chain(end)).keep_alive(KeepAlive::new().interval(state.config.heartbeat));
    Ok(sse.into_response())
}

fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// How a surface names the parts of an execution request, for errors.
pub(crate) struct CallFields {
    /// The arguments.
    pub arguments: &'static str,
    /// The call's environment variables.
    pub environment: &'static str,
    /// The call's private variables.
    pub private: &'static str,
}

/// The native API's names.
const NATIVE_FIELDS: CallFields =
    CallFields { arguments: "arguments", environment: "environment_variables", private: "private_variables" };

/// The request's field a tool's failure is the fault of, when it is the request's: arguments
/// that do not match the tool's parameters (`arguments`), or a caller's value that would change
/// where the request goes (`arguments.<name>`, `environment_variables.<name>`). Other failures
/// are the tool's, reported in the execution.
pub(crate) fn blamed_field(error: &ToolError, call: &ToolCall, fields: &CallFields) -> Option<String> {
    match error {
        ToolError::InvalidArguments { .. } => Some(fields.arguments.to_owned()),
        ToolError::ChangesDestination { input: CallerInput::Argument, name, .. } => Some(format!("{}.{name}", fields.arguments)),
        ToolError::ChangesDestination { input: CallerInput::Environment, name, .. } => {
            // The environment wins over the call's private variables of the same name.
            let private = call.private_variables.contains_key(name) && !call.environment_variables.contains_key(name);
            Some(format!("{}.{name}", if private { fields.private } else { fields.environment }))
        }
        _ => None,
    }
}

/// A failure that is the request's fault is a 400 naming its field (see [`blamed_field`]).
pub(crate) fn refuse_bad_arguments(execution: &ToolExecution, call: &ToolCall) -> ApiResult<()> {
    match &execution.outcome {
        Err(error) => match blamed_field(error, call, &NATIVE_FIELDS) {
            Some(field) => Err(ApiError::invalid(field, error.to_string())),
            None => Ok(()),
        },
        Ok(_) => Ok(()),
    }
}

/// The debug lines an execution keeps for its answer (the first [`MAX_DEBUG_LINES`]).
#[derive(Clone, Default)]
pub(crate) struct KeptLines(Arc<Mutex<Vec<String>>>);

impl KeptLines {
    /// A sink that keeps each line and, when given, forwards it to `forward` (dropped while
    /// that is full: a slow reader never holds a tool up).
    pub(crate) fn sink(&self, forward: Option<tokio::sync::mpsc::Sender<String>>) -> DebugSink {
        let kept = self.clone();
        DebugSink::from_fn(move |line: String| {
            {
                let mut lines = kept.0.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() < MAX_DEBUG_LINES {
                    lines.push(line.clone());
                }
            }
            if let Some(forward) = &forward {
                let _ = forward.try_send(line);
            }
        })
    }

    /// The lines kept so far.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
