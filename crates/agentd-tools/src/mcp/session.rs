//! [`McpSession`]: a connected MCP server — list its tools, call them, shut it down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, ClientConfig, Tool};
use rmcp::service::{RunningService, ServiceError};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::connect::describe;
use super::{McpCallOutput, McpToolInfo};
use crate::arguments;
use crate::debug::Reporter;
use crate::error::{ToolError, seconds};
use crate::limits::ToolLimits;
use crate::mask::Masker;

/// How long shutting down waits for the last stderr lines once the server has exited.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// A connected MCP server. Every request is bounded by [`ToolLimits::mcp_call_timeout`]; every
/// output and error is masked.
///
/// Call [`McpSession::shutdown`] when done: it closes the server's stdin, waits for it to exit
/// and reaps it (then SIGTERM, then SIGKILL to its process group). A session dropped without it
/// is closed in the background the same way.
pub struct McpSession {
    pub(super) service: RunningService<RoleClient, ClientConfig>,
    /// How messages name the server: its command in backticks, or its host.
    pub(super) label: String,
    /// An HTTP server's URL, kept out of error messages.
    pub(super) url: Option<String>,
    pub(super) pid: Option<u32>,
    pub(super) stderr_task: Option<JoinHandle<()>>,
    pub(super) limits: ToolLimits,
    pub(super) masker: Arc<Masker>,
    pub(super) reporter: Reporter,
    /// The server's tools as last listed (unmasked: their schemas check arguments).
    pub(super) tools: Mutex<Option<Arc<Vec<Tool>>>>,
}

impl McpSession {
    /// The server's process id (stdio servers).
    pub fn process_id(&self) -> Option<u32> {
        self.pid
    }

    /// The server's tools (every page), masked.
    pub async fn list_tools(&self) -> Result<Vec<McpToolInfo>, ToolError> {
        let tools = self.fetch_tools().await.map_err(|e| e.masked(&self.masker))?;
        Ok(tools
            .iter()
            .map(|tool| McpToolInfo {
                name: self.masker.mask(&tool.name),
                description: tool.description.as_deref().map(|d| self.masker.mask(d)),
                input_schema: self.masker.mask_value(Value::Object((*tool.input_schema).clone())),
            })
            .collect())
    }

    /// Calls the tool `name` with `arguments` (a JSON object, checked against the tool's input
    /// schema first). A result the tool marks as an error is [`ToolError::McpToolFailed`].
    pub async fn call_tool(&self, name: &str, arguments: &Value) -> Result<McpCallOutput, ToolError> {
        self.call(name, arguments).await.map_err(|e| e.masked(&self.masker))
    }

    /// Stops the server and waits (up to [`ToolLimits::mcp_shutdown_timeout`]) until it has
    /// exited and been reaped; its last stderr lines are reported before this returns.
    pub async fn shutdown(mut self) -> Result<(), ToolError> {
        let started = Instant::now();
        let limit = self.limits.mcp_shutdown_timeout;
        let closed = self.service.close_with_timeout(limit).await;
        if let Some(task) = self.stderr_task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(STDERR_DRAIN, task).await.is_err() {
                abort.abort();
            }
        }
        match closed {
            Ok(Some(_reason)) => {
                self.reporter.line(format!(
                    "MCP server {} stopped in {} ms",
                    self.label,
                    started.elapsed().as_millis()
                ));
                Ok(())
            }
            Ok(None) => {
                self.reporter.line(format!("MCP server {} did not stop within {}", self.label, seconds(limit)));
                Err(ToolError::Timeout { operation: format!("stopping the MCP server {}", self.label), limit }
                    .masked(&self.masker))
            }
            Err(join) => {
                Err(ToolError::Mcp { operation: "shutdown".into(), reason: join.to_string() }.masked(&self.masker))
            }
        }
    }

    async fn fetch_tools(&self) -> Result<Arc<Vec<Tool>>, ToolError> {
        let operation = "tools/list";
        let started = Instant::now();
        let tools = self.bounded(operation, self.service.peer().list_all_tools()).await?;
        self.reporter.line(format!("MCP {operation} → {} tools in {} ms", tools.len(), started.elapsed().as_millis()));
        let tools = Arc::new(tools);
        if let Ok(mut cached) = self.tools.lock() {
            *cached = Some(tools.clone());
        }
        Ok(tools)
    }

    async fn call(&self, name: &str, arguments: &Value) -> Result<McpCallOutput, ToolError> {
        let cached = self.tools.lock().ok().and_then(|cached| cached.clone());
        let tools = match cached {
            Some(tools) => tools,
            None => self.fetch_tools().await?,
        };
        let Some(tool) = tools.iter().find(|tool| tool.name == name) else {
            return Err(ToolError::UnknownMcpTool {
                tool: name.to_owned(),
                available: tools.iter().map(|tool| tool.name.to_string()).collect(),
            });
        };
        let schema = Value::Object((*tool.input_schema).clone());
        let arguments = arguments::validate(&schema, arguments)?.cloned().unwrap_or_default();

        let operation = format!("tools/call {name}");
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = Some(arguments);
        self.reporter.line(format!("MCP {operation}"));
        let started = Instant::now();
        let result = self.bounded(&operation, self.service.peer().call_tool(params)).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;

        let text = result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
            .collect::<Vec<_>>()
            .join("\n");
        if result.is_error == Some(true) {
            self.reporter.line(format!("MCP {operation} → tool error in {elapsed_ms} ms"));
            return Err(ToolError::McpToolFailed { tool: name.to_owned(), message: text });
        }
        self.reporter.line(format!("MCP {operation} → ok in {elapsed_ms} ms"));
        let content = result.content.iter().filter_map(|block| serde_json::to_value(block).ok()).collect::<Vec<_>>();
        Ok(McpCallOutput {
            text: self.masker.mask(&text),
            content: content.into_iter().map(|block| self.masker.mask_value(block)).collect(),
            structured: result.structured_content.map(|value| self.masker.mask_value(value)),
            elapsed_ms,
        })
    }

    /// A request bounded by the call limit. Dropping a timed-out request makes rmcp send the
    /// server a cancellation, so the session stays usable.
    async fn bounded<T>(
        &self,
        operation: &str,
        request: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ToolError> {
        let limit = self.limits.mcp_call_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let reason = match &error {
                    ServiceError::McpError(data) => data.message.to_string(),
                    other => match describe(other, self.url.as_deref()) {
                        Ok(reason) => reason,
                        Err(refusal) => return Err(ToolError::Egress(refusal)),
                    },
                };
                self.reporter.line(format!("MCP {operation} failed: {reason}"));
                Err(ToolError::Mcp { operation: operation.to_owned(), reason })
            }
            Err(_elapsed) => {
                self.reporter.line(format!("MCP {operation} gave no answer within {}", seconds(limit)));
                Err(ToolError::Timeout { operation: format!("MCP {operation}"), limit })
            }
        }
    }
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("server", &self.masker.mask(&self.label))
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}
