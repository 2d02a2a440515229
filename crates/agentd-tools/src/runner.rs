//! [`ToolRunner`]: executes any user-defined tool under one egress policy and one set of limits.

use std::sync::Arc;

use agentd_egress::{ClientConfig, EgressClient, EgressPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::debug::{DebugSink, Reporter};
use crate::error::ToolError;
use crate::http_tool::{self, HttpTool, HttpToolOutput, ResponseBody};
use crate::limits::ToolLimits;
use crate::mcp::{self, McpCallOutput, McpServer, McpSession};
use crate::template;
use crate::variables::Variables;

/// A user-defined tool, as [`ToolRunner::execute`] takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolDefinition {
    /// An HTTP request made from templates.
    Http(HttpTool),
    /// One tool of an MCP server (started for the call and stopped after it).
    Mcp {
        /// The server.
        server: McpServer,
        /// The tool's name on that server.
        tool: String,
    },
}

/// A user-defined tool as it is kept: an HTTP tool, or an MCP server whose tools are called by
/// name ([`ToolKind::definition`] makes the [`ToolDefinition`] of one call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolKind {
    /// An HTTP request made from templates.
    Http(HttpTool),
    /// An MCP server.
    Mcp {
        /// The server.
        server: McpServer,
    },
}

impl ToolKind {
    /// Whether the definition can be used: a parameter schema that compiles, a URL template or
    /// server address that can become an http(s) URL, a command that is not blank. The error
    /// names the field (within the definition) and says what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let url_like = |template: &str| {
            let t = template.trim();
            t.starts_with("{{") || t.starts_with("http://") || t.starts_with("https://")
        };
        match self {
            ToolKind::Http(http) => {
                if !url_like(&http.url_template) {
                    return Err(("url_template", "url_template must be an http(s) URL (or begin with a {{placeholder}})".into()));
                }
                if !http.parameters.is_object() {
                    return Err(("parameters", "parameters must be a JSON schema object".into()));
                }
                jsonschema::validator_for(&http.parameters).map_err(|e| ("parameters", format!("parameters is not a valid JSON schema: {e}")))?;
                Ok(())
            }
            ToolKind::Mcp { server: McpServer::Stdio { command, .. } } if command.trim().is_empty() => {
                Err(("server.command", "server.command is required".into()))
            }
            ToolKind::Mcp { server: McpServer::Http { url, .. } } if !url_like(url) => {
                Err(("server.url", "server.url must be an http(s) URL".into()))
            }
            ToolKind::Mcp { .. } => Ok(()),
        }
    }

    /// Whether the placeholders that decide where a request goes or what runs name the tool's
    /// own variables (`own` says whether a name is one of its `variables` or
    /// `private_variables`): an HTTP tool's URL up to its path (scheme, userinfo, host, port),
    /// an MCP server's URL, a stdio server's command and arguments. A caller's arguments and
    /// environment never fill those (see [`Variables`]), so a definition that leaves one to
    /// them could never run as meant. The error names the field within the definition.
    pub fn check_own_placeholders(&self, own: impl Fn(&str) -> bool) -> Result<(), (&'static str, String)> {
        let refuse = |field: &'static str, name: &str, what: &str| {
            Err((field, format!(
                "{{{{{name}}}}} in {field} {what}, so it must name one of the tool's own variables \
                 (`variables` or `private_variables`), never a caller's argument or environment variable"
            )))
        };
        match self {
            ToolKind::Http(http) => {
                for name in template::authority_placeholders(&http.url_template) {
                    if !own(name) {
                        return refuse("url_template", name, "decides where the request goes (the URL's scheme, host or port)");
                    }
                }
            }
            ToolKind::Mcp { server: McpServer::Http { url, .. } } => {
                if let Some(name) = template::placeholder_names(url).into_iter().find(|name| !own(name)) {
                    return refuse("server.url", name, "decides where the tool connects");
                }
            }
            ToolKind::Mcp { server: McpServer::Stdio { command, args, .. } } => {
                if let Some(name) = template::placeholder_names(command).into_iter().find(|name| !own(name)) {
                    return refuse("server.command", name, "decides what runs");
                }
                let mut in_args = args.iter().flat_map(|arg| template::placeholder_names(arg));
                if let Some(name) = in_args.find(|name| !own(name)) {
                    return refuse("server.args", name, "decides what runs");
                }
            }
        }
        Ok(())
    }

    /// Checks `arguments` against an HTTP tool's parameters before anything runs (an MCP
    /// tool's schema is its server's: checked when it is called).
    pub fn check_arguments(&self, arguments: &Value) -> Result<(), ToolError> {
        match self {
            ToolKind::Http(http) => crate::arguments::validate(&http.parameters, arguments).map(|_| ()),
            ToolKind::Mcp { .. } => Ok(()),
        }
    }

    /// What one call executes: the HTTP tool, or the MCP server's tool `mcp_tool` (required
    /// for an MCP server, refused for an HTTP tool).
    pub fn definition(&self, mcp_tool: Option<&str>) -> Result<ToolDefinition, String> {
        match (self, mcp_tool) {
            (ToolKind::Http(http), None) => Ok(ToolDefinition::Http(http.clone())),
            (ToolKind::Http(_), Some(_)) => Err("an HTTP tool has no MCP tools: leave the MCP tool name out".into()),
            (ToolKind::Mcp { server }, Some(tool)) => Ok(ToolDefinition::Mcp { server: server.clone(), tool: tool.to_owned() }),
            (ToolKind::Mcp { .. }, None) => Err("an MCP server needs the name of the tool to call".into()),
        }
    }
}

/// What a tool returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolOutput {
    /// An HTTP tool's answer.
    Http(HttpToolOutput),
    /// An MCP tool's result.
    Mcp(McpCallOutput),
}

impl ToolOutput {
    /// The output as a model reads it: an HTTP body (JSON as JSON text), or an MCP result's
    /// text (its structured result when it has no text).
    pub fn text(&self) -> String {
        match self {
            ToolOutput::Http(http) => match &http.body {
                ResponseBody::Json(value) => value.to_string(),
                ResponseBody::Text(text) => text.clone(),
            },
            ToolOutput::Mcp(mcp) if mcp.text.is_empty() => mcp.structured.as_ref().map(Value::to_string).unwrap_or_default(),
            ToolOutput::Mcp(mcp) => mcp.text.clone(),
        }
    }
}

/// Executes user-defined tools. Every connection goes through the egress policy; every output,
/// error and debug line is masked with the execution's private variables.
#[derive(Debug, Clone)]
pub struct ToolRunner {
    policy: EgressPolicy,
    http: EgressClient,
    limits: ToolLimits,
}

impl ToolRunner {
    /// A runner under `policy` and `limits`.
    pub fn new(policy: EgressPolicy, limits: ToolLimits) -> Result<ToolRunner, ToolError> {
        let http = policy
            .client(ClientConfig {
                timeout: limits.http_timeout,
                connect_timeout: limits.http_timeout.min(std::time::Duration::from_secs(10)),
                // Each hop is re-checked by the policy.
                follow_redirects: true,
                ..ClientConfig::default()
            })
            .map_err(ToolError::Egress)?;
        Ok(ToolRunner { policy, http, limits })
    }

    /// The limits this runner applies.
    pub fn limits(&self) -> &ToolLimits {
        &self.limits
    }

    /// Executes `tool` with `arguments` (a JSON object; `null` for none), reporting progress to
    /// `debug`. An MCP tool's server is started for the call and stopped after it.
    pub async fn execute(
        &self,
        tool: &ToolDefinition,
        arguments: &Value,
        variables: &Variables,
        debug: &DebugSink,
    ) -> Result<ToolOutput, ToolError> {
        match tool {
            ToolDefinition::Http(http) => {
                self.execute_http(http, arguments, variables, debug).await.map(ToolOutput::Http)
            }
            ToolDefinition::Mcp { server, tool } => {
                let session = self.connect_mcp(server, variables, debug).await?;
                let result = session.call_tool(tool, arguments).await;
                let stopped = session.shutdown().await;
                let output = result?;
                // The call's answer is kept even if the server was slow to stop (it was killed).
                if let Err(error) = stopped {
                    tracing::warn!(%error, "tools: MCP server did not stop cleanly");
                }
                Ok(ToolOutput::Mcp(output))
            }
        }
    }

    /// Executes an HTTP tool.
    pub async fn execute_http(
        &self,
        tool: &HttpTool,
        arguments: &Value,
        variables: &Variables,
        debug: &DebugSink,
    ) -> Result<HttpToolOutput, ToolError> {
        let masker = Arc::new(variables.masker());
        let reporter = Reporter::new(debug.clone(), masker.clone());
        http_tool::execute(&self.http, &self.limits, tool, arguments, variables, &masker, &reporter)
            .await
            .map_err(|e| e.masked(&masker))
    }

    /// Starts (stdio) or connects to (HTTP) an MCP server and completes the handshake. The
    /// session keeps `debug` for everything it does later (its stderr lines too).
    pub async fn connect_mcp(
        &self,
        server: &McpServer,
        variables: &Variables,
        debug: &DebugSink,
    ) -> Result<McpSession, ToolError> {
        let masker = Arc::new(variables.masker());
        let reporter = Reporter::new(debug.clone(), masker.clone());
        mcp::connect(server, self.policy.clone(), &self.limits, variables, masker.clone(), reporter)
            .await
            .map_err(|e| e.masked(&masker))
    }
}
