//! agentd's tool runtime: executing user-defined tools (issue 8's HTTP tools and MCP servers).
//!
//! [`ToolRunner`] executes a [`ToolDefinition`] under one [`agentd_egress::EgressPolicy`] and
//! one set of [`ToolLimits`]:
//! - an [`HttpTool`] (method, URL template, headers, JSON body template, JSON-schema
//!   `parameters`) becomes one request through the policy's [`agentd_egress::EgressClient`],
//!   answered as an [`HttpToolOutput`] (status, a few headers, the body as JSON or text, bounded
//!   in time and size);
//! - an [`McpServer`] (a stdio command, or a streamable-HTTP URL reached through the policy) is
//!   driven with the official MCP SDK (rmcp): [`ToolRunner::connect_mcp`] gives an
//!   [`McpSession`] that lists tools ([`McpToolInfo`]), calls them ([`McpCallOutput`]) and shuts
//!   the server down, every request within a time limit.
//!
//! Arguments are checked against the tool's JSON schema first. Templates (`{{name}}`) take
//! arguments and [`Variables`] (plain, private, and per-execution environment ones; the
//! precedence is on [`Variables`]); an unknown name is an error. A URL's scheme, host and port
//! are the tool's own: no argument or environment value can change where a request goes
//! ([`ToolError::ChangesDestination`]; [`ToolKind::check_own_placeholders`] refuses a definition
//! that would leave them to a caller). Progress goes to a
//! [`DebugSink`] as lines. Failures are [`ToolError`]s.
//!
//! Invariants: a private variable's value never leaves this crate — every output, error and
//! debug line passes through a [`Masker`] (`[redacted:name]`); environment variables live only
//! in memory; no connection skips the egress policy; a stdio server never sees agentd's own
//! environment and is reaped when its session ends.
#![deny(missing_docs)]

mod arguments;
mod debug;
mod error;
mod headers;
mod http_tool;
mod limits;
mod mask;
mod mcp;
mod runner;
mod template;
mod variables;

pub use debug::{DebugSink, MAX_DEBUG_LINE};
pub use error::{CallerInput, ToolError};
pub use http_tool::{HttpMethod, HttpTool, HttpToolOutput, ResponseBody};
pub use limits::{StdioCommands, ToolLimits};
pub use mask::Masker;
pub use mcp::{McpCallOutput, McpServer, McpSession, McpToolInfo};
pub use runner::{ToolDefinition, ToolKind, ToolOutput, ToolRunner};
pub use variables::Variables;
