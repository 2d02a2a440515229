//! [`ToolRunner`]: executes any user-defined tool under one egress policy and one set of limits.

use std::sync::Arc;

use agentd_egress::{ClientConfig, EgressClient, EgressPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::debug::{DebugSink, Reporter};
use crate::error::ToolError;
use crate::http_tool::{self, HttpTool, HttpToolOutput};
use crate::limits::ToolLimits;
use crate::mcp::{self, McpCallOutput, McpServer, McpSession};
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

/// What a tool returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolOutput {
    /// An HTTP tool's answer.
    Http(HttpToolOutput),
    /// An MCP tool's result.
    Mcp(McpCallOutput),
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
        mcp::connect(server, self.policy, &self.limits, variables, masker.clone(), reporter)
            .await
            .map_err(|e| e.masked(&masker))
    }
}
