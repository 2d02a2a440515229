//! [`ToolError`]: why executing a tool failed, one sentence a person (or the model) can act on.

use std::time::Duration;

use agentd_egress::EgressError;

use crate::mask::Masker;

/// Why executing a tool failed. Errors leave the crate masked: no message carries a private
/// variable's value (see [`crate::Masker`]), and none carries a whole URL of an HTTP tool
/// (hosts only: paths and queries may hold secrets that are not declared private).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not match the tool's parameter schema (or are not a JSON object).
    #[error("invalid arguments: {}", problems.join("; "))]
    InvalidArguments {
        /// One line per problem, each naming the argument (`` `a`: "x" is not of type "number" ``).
        problems: Vec<String>,
    },
    /// The tool's `parameters` is not a usable JSON schema.
    #[error("the tool's parameter schema is invalid: {reason}")]
    InvalidSchema {
        /// What the schema compiler said.
        reason: String,
    },
    /// A template names something that is neither an argument nor a variable.
    #[error(
        "unknown placeholder {{{{{name}}}}} in {place}: no argument or variable has that name{}",
        known_names(known)
    )]
    UnknownPlaceholder {
        /// The name between the braces.
        name: String,
        /// Where it was: "the URL template", "header X-Api-Key", "the body template", ...
        place: String,
        /// The names that were available (names only: values are never shown).
        known: Vec<String>,
    },
    /// A template rendered to something that cannot be sent (a bad URL, a header value with a
    /// line break, an unknown method...).
    #[error("{place}: {reason}")]
    InvalidTemplate {
        /// Which part of the definition.
        place: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A caller's value (an argument or an environment variable) would change where an HTTP
    /// tool's request goes: a URL's scheme, host and port are the tool's own. Nothing is sent.
    #[error("{input} `{name}` would change where the request goes: {reason}")]
    ChangesDestination {
        /// Which of the caller's inputs holds it.
        input: CallerInput,
        /// Its name.
        name: String,
        /// How it would move the request (the value itself is never quoted).
        reason: String,
    },
    /// The egress policy refused the destination (passed through as the policy said it).
    #[error("{0}")]
    Egress(EgressError),
    /// An operation did not finish within its limit.
    #[error("{operation} did not finish within {}", seconds(*limit))]
    Timeout {
        /// What was running: "GET api.example.com", "MCP tools/call slow", ...
        operation: String,
        /// The limit.
        limit: Duration,
    },
    /// An HTTP tool's request was answered with a status that is not a success (2xx).
    #[error("{method} {host} answered {status}{}", excerpt(body))]
    HttpStatus {
        /// The request method.
        method: String,
        /// The host that answered.
        host: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (bounded, masked), to say why.
        body: String,
    },
    /// An HTTP request could not be made or its answer not read (connection refused, reset...).
    #[error("{method} {host} failed: {reason}")]
    Http {
        /// The request method.
        method: String,
        /// The host.
        host: String,
        /// The innermost cause.
        reason: String,
    },
    /// A stdio MCP server's command could not be started.
    #[error("cannot start the MCP server `{command}`: {reason}")]
    McpStart {
        /// The command.
        command: String,
        /// What the operating system said.
        reason: String,
    },
    /// The MCP handshake (initialize) failed.
    #[error("cannot connect to the MCP server {server}: {reason}")]
    McpConnect {
        /// The command or the URL's host.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// An MCP request failed: a JSON-RPC error from the server, or the connection closed.
    #[error("MCP {operation} failed: {reason}")]
    Mcp {
        /// The operation: "tools/list", "tools/call add".
        operation: String,
        /// What the server or the transport said.
        reason: String,
    },
    /// The MCP server has no tool of this name.
    #[error("the MCP server has no tool `{tool}` (it has: {})", available.join(", "))]
    UnknownMcpTool {
        /// The name asked for.
        tool: String,
        /// The names it has.
        available: Vec<String>,
    },
    /// An MCP tool ran and reported failure (`isError`).
    #[error("the MCP tool `{tool}` failed: {message}")]
    McpToolFailed {
        /// The tool.
        tool: String,
        /// The text it returned.
        message: String,
    },
}

/// Which of a caller's inputs a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerInput {
    /// The call's arguments.
    Argument,
    /// The call's environment variables.
    Environment,
}

impl std::fmt::Display for CallerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallerInput::Argument => "argument",
            CallerInput::Environment => "environment variable",
        })
    }
}

impl ToolError {
    /// A short stable name for the kind of failure (`invalid_arguments`, `timeout`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::InvalidSchema { .. } => "invalid_schema",
            ToolError::UnknownPlaceholder { .. } => "unknown_placeholder",
            ToolError::InvalidTemplate { .. } => "invalid_template",
            ToolError::ChangesDestination { .. } => "changes_destination",
            ToolError::Egress(_) => "egress_refused",
            ToolError::Timeout { .. } => "timeout",
            ToolError::HttpStatus { .. } => "http_status",
            ToolError::Http { .. } => "http_failed",
            ToolError::McpStart { .. } => "mcp_start_failed",
            ToolError::McpConnect { .. } => "mcp_connect_failed",
            ToolError::Mcp { .. } => "mcp_error",
            ToolError::UnknownMcpTool { .. } => "unknown_mcp_tool",
            ToolError::McpToolFailed { .. } => "mcp_tool_failed",
        }
    }

    /// The same error with every private variable's value replaced (see [`Masker`]).
    pub fn masked(self, masker: &Masker) -> ToolError {
        let m = |text: String| masker.mask(&text);
        match self {
            ToolError::InvalidArguments { problems } => {
                ToolError::InvalidArguments { problems: problems.into_iter().map(m).collect() }
            }
            ToolError::InvalidSchema { reason } => ToolError::InvalidSchema { reason: m(reason) },
            ToolError::UnknownPlaceholder { name, place, known } => {
                ToolError::UnknownPlaceholder { name: m(name), place: m(place), known }
            }
            ToolError::InvalidTemplate { place, reason } => {
                ToolError::InvalidTemplate { place: m(place), reason: m(reason) }
            }
            ToolError::ChangesDestination { input, name, reason } => {
                ToolError::ChangesDestination { input, name: m(name), reason: m(reason) }
            }
            ToolError::Egress(egress) => ToolError::Egress(mask_egress(egress, masker)),
            ToolError::Timeout { operation, limit } => ToolError::Timeout { operation: m(operation), limit },
            ToolError::HttpStatus { method, host, status, body } => {
                ToolError::HttpStatus { method, host: m(host), status, body: m(body) }
            }
            ToolError::Http { method, host, reason } => ToolError::Http { method, host: m(host), reason: m(reason) },
            ToolError::McpStart { command, reason } => ToolError::McpStart { command: m(command), reason: m(reason) },
            ToolError::McpConnect { server, reason } => ToolError::McpConnect { server: m(server), reason: m(reason) },
            ToolError::Mcp { operation, reason } => ToolError::Mcp { operation: m(operation), reason: m(reason) },
            ToolError::UnknownMcpTool { tool, available } => {
                ToolError::UnknownMcpTool { tool: m(tool), available: available.into_iter().map(m).collect() }
            }
            ToolError::McpToolFailed { tool, message } => {
                ToolError::McpToolFailed { tool: m(tool), message: m(message) }
            }
        }
    }
}

/// An egress error with its texts masked (a host can come from a private variable).
fn mask_egress(error: EgressError, masker: &Masker) -> EgressError {
    let m = |text: String| masker.mask(&text);
    match error {
        EgressError::InvalidUrl(reason) => EgressError::InvalidUrl(m(reason)),
        EgressError::Scheme(scheme) => EgressError::Scheme(m(scheme)),
        EgressError::Refused { target, class } => EgressError::Refused { target: m(target), class },
        EgressError::Resolve { host, reason } => EgressError::Resolve { host: m(host), reason: m(reason) },
        EgressError::Client(reason) => EgressError::Client(m(reason)),
        EgressError::PortNotAllowed { host, port } => EgressError::PortNotAllowed { host: m(host), port },
        EgressError::Protected { target } => EgressError::Protected { target: m(target) },
        other @ (EgressError::TooManyRedirects(_) | EgressError::Closed) => other,
    }
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() { " (none are defined)".to_owned() } else { format!(" (known: {})", known.join(", ")) }
}

fn excerpt(body: &str) -> String {
    if body.trim().is_empty() { String::new() } else { format!(": {}", body.trim()) }
}

/// "5 s", "250 ms", "1.5 s".
pub(crate) fn seconds(limit: Duration) -> String {
    let ms = limit.as_millis();
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", limit.as_secs_f64()),
    }
}
