//! [`ToolLimits`]: the bounds on every tool execution, in one place.

use std::time::Duration;

/// The bounds on every tool execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLimits {
    /// An HTTP tool's whole request: connecting, sending, and reading the answer (default 30 s).
    pub http_timeout: Duration,
    /// The most of an HTTP tool's answer that is read; the rest is cut (default 1 MiB).
    pub max_response_bytes: usize,
    /// Starting an MCP server: spawning (stdio) or connecting (HTTP) and the initialize
    /// handshake (default 30 s).
    pub mcp_start_timeout: Duration,
    /// One MCP request: listing tools or calling one (default 60 s).
    pub mcp_call_timeout: Duration,
    /// Stopping an MCP server: closing its stdin and waiting for it to exit, then SIGTERM to
    /// its process group, then SIGKILL (default 10 s; rmcp gives each step 3 s).
    pub mcp_shutdown_timeout: Duration,
    /// The commands stdio MCP servers may run (default: any — a server that lets users define
    /// tools must pass its operator's list).
    pub stdio_commands: StdioCommands,
}

/// Which commands stdio MCP servers may run: a stdio server is a program on this machine, so
/// a multi-user server lets its operator choose them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StdioCommands {
    /// Any command (a library default; not for a server whose users define tools).
    #[default]
    Any,
    /// These commands, exactly as written in the tool (a path or a name looked up on `PATH`).
    Only(Vec<String>),
}

impl StdioCommands {
    /// Whether `command` may run.
    pub fn allows(&self, command: &str) -> bool {
        match self {
            StdioCommands::Any => true,
            StdioCommands::Only(allowed) => allowed.iter().any(|a| a == command.trim()),
        }
    }
}

impl Default for ToolLimits {
    fn default() -> ToolLimits {
        ToolLimits {
            http_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            mcp_start_timeout: Duration::from_secs(30),
            mcp_call_timeout: Duration::from_secs(60),
            mcp_shutdown_timeout: Duration::from_secs(10),
            stdio_commands: StdioCommands::Any,
        }
    }
}
