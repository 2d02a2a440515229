//! The Autessa tool API: `POST /clients/tool/execute?resourceId=<n>` runs a tool and answers
//! `{responseType: "EXECUTE_TOOL", toolName, result, debugOutput, executionTimeMs, errors}`;
//! the WebSocket `/ws/clients/tools/execute` streams `{"responseType": "DEBUG_OUTPUT",
//! "content": <line>}` as the tool reports them, then the same `EXECUTE_TOOL` body with
//! `done: true`. Tools are the native `/v1/tools`, named by their resource number.
//!
//! Choices where the documents are silent ([INF] in SPECS §3.3):
//! - `variables` are the tool's inputs: the call's arguments (checked against its
//!   `parameters`; a mismatch is 400), also what its templates name. `privateVariables` and
//!   `environmentVariables` are this call's secrets: used for names the tool's own variables
//!   do not set (a caller cannot replace the tool's own values, so it cannot send the tool's
//!   secrets elsewhere), masked as `[redacted:name]` in `result`, `debugOutput` and
//!   `errors`, never stored. Values that are not strings are passed as their JSON text. A
//!   value that would change where the tool's request goes (placed right after its URL's
//!   host) is refused with 400, `variables.<name>` (or `environmentVariables.<name>`) first
//!   in the message, and nothing is sent.
//! - A tool that fails (an HTTP tool's service answers 500, an MCP tool reports an error, a
//!   time limit) is still an execution: HTTP 200 with the `EXECUTE_TOOL` body, `result: null`
//!   and the reason in `errors` — its debug output is what explains it. A request that
//!   cannot run (no such tool or version, bad arguments) is the usual error envelope.
//! - An MCP server tool runs one of the server's tools: name it with `mcpTool` (an agentd
//!   field; without it the request is refused, naming the server's tools is
//!   `GET /v1/tools/{id}/mcp-tools`).
//! - `toolId` may be left out (`resourceId` names the tool); given, it must match.

use std::collections::BTreeMap;

use agentd_domain::{ToolDef, ToolId, ToolVersion};
use agentd_engine::{EngineError, ToolCall, ToolExecution};
use agentd_tools::DebugSink;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::{AutessaError, AutessaResult};
use super::socket::{self, Outbox, SocketHandler};
use super::{Query, VersionAsk, body_object, same_resource, version_from_body, version_from_query};
use crate::auth::{Caller, QueryKey};
use crate::state::AppState;
use crate::tools::{CallFields, KeptLines, blamed_field};

/// The tool resource `number` names (an agent's number is not found here).
async fn tool_of(state: &AppState, caller: Caller, number: u64) -> AutessaResult<ToolId> {
    match super::resource(state, caller, number).await? {
        agentd_engine::Resource::Tool(id) => Ok(id),
        agentd_engine::Resource::Agent(_) | agentd_engine::Resource::Table(_) => Err(AutessaError::resource_not_found(number)),
    }
}

async fn resolve(state: &AppState, caller: Caller, id: ToolId, number: u64, ask: VersionAsk) -> AutessaResult<(ToolDef, ToolVersion)> {
    let (tool, version) = match state.engine.resolve_tool(caller.project_id, id, ask.choice).await {
        Ok(found) => found,
        Err(EngineError::Invalid(_)) => return Err(super::no_such_version("Tool", number, ask.choice)),
        Err(EngineError::NotFound) => return Err(AutessaError::resource_not_found(number)),
        Err(other) => return Err(other.into()),
    };
    super::in_asked_state("tool", number, ask, version.number, version.state)?;
    Ok((tool, version))
}

/// This API's names of an execution's parts, for errors.
const AUTESSA_FIELDS: CallFields =
    CallFields { arguments: "variables", environment: "environmentVariables", private: "privateVariables" };

/// A variables object as text values (`field` names it in errors).
fn secrets(body: &Map<String, Value>, field: &str) -> AutessaResult<BTreeMap<String, String>> {
    crate::tools::variables(field, body.get(field).cloned()).map_err(AutessaError::from)
}

/// One execution request (REST body or socket message): the call and the version asked for.
fn call_of(body: &Map<String, Value>, number: u64, default: Option<VersionAsk>) -> AutessaResult<(ToolCall, VersionAsk)> {
    same_resource(body, "toolId", number)?;
    let arguments = match body.get("variables") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => return Err(AutessaError::bad_request("variables must be an object of name → value")),
    };
    let mcp_tool = match body.get("mcpTool") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if !name.trim().is_empty() => Some(name.trim().to_owned()),
        Some(_) => return Err(AutessaError::bad_request("mcpTool must be the name of one of the MCP server's tools")),
    };
    let call = ToolCall {
        arguments,
        mcp_tool,
        private_variables: secrets(body, "privateVariables")?,
        environment_variables: secrets(body, "environmentVariables")?,
    };
    let ask = version_from_body(body.get("version"))?.or(default).unwrap_or(VersionAsk::PUBLISHED);
    Ok((call, ask))
}

/// Runs it; the `EXECUTE_TOOL` body (without `done`).
async fn run(state: &AppState, tool: ToolDef, version: &ToolVersion, call: &ToolCall, debug: &DebugSink, kept: &KeptLines) -> AutessaResult<Value> {
    let name = tool.name.clone();
    let execution: ToolExecution = match state.engine.run_tool(tool, version, call, debug).await {
        Ok(execution) => execution,
        Err(EngineError::Invalid(field)) => return Err(AutessaError::bad_request(field.to_string())),
        Err(other) => return Err(other.into()),
    };
    let (result, errors) = match &execution.outcome {
        Ok(output) => (Value::String(output.text()), vec![]),
        Err(error) => match blamed_field(error, call, &AUTESSA_FIELDS) {
            Some(field) => return Err(AutessaError::bad_request(format!("{field}: {error}"))),
            None => (Value::Null, vec![error.to_string()]),
        },
    };
    Ok(json!({
        "responseType": "EXECUTE_TOOL",
        "toolName": name,
        "result": result,
        "debugOutput": kept.take(),
        "executionTimeMs": execution.elapsed_ms,
        "version": version.number,
        "errors": errors,
    }))
}

/// `POST /clients/tool/execute?resourceId=<n>`.
pub(super) async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> AutessaResult {
    let number = Query::parse(query.as_deref()).resource_number()?;
    let body = body_object(body)?;
    let id = tool_of(&state, caller, number).await?;
    let (call, ask) = call_of(&body, number, None)?;
    let (tool, version) = resolve(&state, caller, id, number, ask).await?;
    let kept = KeptLines::default();
    // `errors` holds the tool's failure, if it failed (see the module doc).
    let answer = run(&state, tool, &version, &call, &kept.sink(None), &kept).await?;
    Ok(axum::Json(answer).into_response())
}

/// `GET /ws/clients/tools/execute?authorization=<key>&resourceId=<n>[&versionState=…]`.
pub(super) async fn socket(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    key: QueryKey,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return socket::not_a_websocket().into_response();
    };
    let query = Query::parse(query.as_deref());
    let opened = open_socket(&state, &query, key, &headers).await;
    socket::accept(upgrade, &state, opened)
}

async fn open_socket(state: &AppState, query: &Query, key: QueryKey, headers: &HeaderMap) -> AutessaResult<(ToolSocket, socket::Admission)> {
    let admission = socket::admit(state, key, headers).await?;
    let caller = admission.caller;
    let number = query.resource_number()?;
    let tool = tool_of(state, caller, number).await?;
    let version = version_from_query(query)?;
    Ok((ToolSocket { state: state.clone(), caller, tool, number, version }, admission))
}

/// One tool socket: its caller, tool and default version.
#[derive(Clone)]
struct ToolSocket {
    state: AppState,
    caller: Caller,
    tool: ToolId,
    number: u64,
    version: Option<VersionAsk>,
}

impl SocketHandler for ToolSocket {
    async fn handle(&self, request_type: String, message: Map<String, Value>, out: Outbox) -> AutessaResult<()> {
        if request_type != "EXECUTE_TOOL" {
            return Err(AutessaError::bad_request(format!("Unknown requestType `{request_type}`: this socket takes EXECUTE_TOOL")));
        }
        let (call, ask) = call_of(&message, self.number, self.version)?;
        let (tool, version) = resolve(&self.state, self.caller, self.tool, self.number, ask).await?;
        let kept = KeptLines::default();
        let (lines, mut forwarded) = tokio::sync::mpsc::channel::<String>(1024);
        let sink = kept.sink(Some(lines));
        let relay_out = out.clone();
        // Lines go out as they come, in order, before the final message.
        let relay = tokio::spawn(async move {
            while let Some(line) = forwarded.recv().await {
                relay_out.send(json!({"responseType": "DEBUG_OUTPUT", "content": line}));
            }
        });
        let answer = run(&self.state, tool, &version, &call, &sink, &kept).await;
        drop(sink);
        let _ = relay.await;
        let mut answer = answer?;
        answer["done"] = Value::Bool(true);
        out.send(answer);
        Ok(())
    }
}
