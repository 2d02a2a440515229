//! MCP servers through the official Rust SDK (rmcp): their definitions ([`McpServer`]), the
//! connection ([`McpSession`]: list tools, call one, shut down) and what comes back.

mod connect;
mod session;
mod stderr;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use connect::connect;
pub use session::McpSession;

/// An MCP server a tool comes from. Every string may use `{{name}}` placeholders, filled from the
/// [`crate::Variables`] (no arguments: the server is started before any call), so a secret can
/// reach the server (`env: {"API_TOKEN": "{{token}}"}`) without being written in the definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpServer {
    /// A local command speaking MCP on its stdin and stdout.
    ///
    /// It starts with an empty environment but for `PATH`, `HOME`, `LANG` and `TMPDIR` (when
    /// agentd has them) and `env`: agentd's own settings and keys are never passed on. It runs in
    /// its own process group, so stopping it stops what it started too. Its stderr lines are
    /// debug output.
    Stdio {
        /// The program (looked up on `PATH` when not a path).
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Environment variables for it.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A server speaking streamable HTTP at `url`, reached through the egress policy.
    Http {
        /// The MCP endpoint.
        url: String,
        /// Headers sent with every request (`Authorization: Bearer {{token}}`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// One tool an MCP server offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpToolInfo {
    /// Its name, as called.
    pub name: String,
    /// What it does, as the server says.
    pub description: Option<String>,
    /// The JSON schema of its arguments.
    pub input_schema: Value,
}

/// What a call to an MCP tool returned, masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpCallOutput {
    /// The text blocks of the result, joined by newlines (what a model usually reads).
    pub text: String,
    /// Every content block as MCP sends it (`{"type": "text", "text": …}`, images, resources).
    pub content: Vec<Value>,
    /// The structured result, when the tool gives one.
    pub structured: Option<Value>,
    /// From sending the call to its answer.
    pub elapsed_ms: u64,
}
