//! `agentd-mcp-fixture`: a small MCP server on stdio for agentd-tools' tests (never part of the
//! product). Tools: `add(a, b)`, `echo(text)`, `slow(ms)` (answers after `ms` milliseconds, or
//! at once when the client cancels the call), `env(name)` (the value of one of its environment
//! variables, or "unset") and `fail(message)` (a tool error carrying the message). It writes a
//! line to stderr when it starts and on every call, so a client can show them, and exits when its
//! stdin closes (unless `--linger`).

use std::time::Duration;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// The left operand.
    a: f64,
    /// The right operand.
    b: f64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    /// How long to wait before answering, in milliseconds.
    ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EnvArgs {
    /// The environment variable's name.
    name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct FailArgs {
    /// What the error says.
    message: String,
}

#[derive(Debug, Clone)]
struct Fixture {
    #[expect(dead_code, reason = "read by the code #[tool_handler] generates")]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Fixture {
    #[tool(description = "Adds two numbers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        eprintln!("fixture: add({a}, {b})");
        (a + b).to_string()
    }

    #[tool(description = "Sends the text back.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        eprintln!("fixture: echo");
        text
    }

    #[tool(description = "Answers after a while.")]
    async fn slow(&self, cancelled: CancellationToken, Parameters(SlowArgs { ms }): Parameters<SlowArgs>) -> String {
        eprintln!("fixture: slow({ms})");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => format!("done after {ms} ms"),
            () = cancelled.cancelled() => {
                eprintln!("fixture: slow({ms}) cancelled");
                "cancelled".to_owned()
            }
        }
    }

    #[tool(description = "Tells the value of one of the server's environment variables.")]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        eprintln!("fixture: env({name}) = {}", std::env::var(&name).unwrap_or_else(|_| "unset".into()));
        std::env::var(&name).unwrap_or_else(|_| "unset".into())
    }

    #[tool(description = "Always fails, with the message given.")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        eprintln!("fixture: fail");
        CallToolResult::error(vec![ContentBlock::text(format!("failed on purpose: {message}"))])
    }
}

#[tool_handler(name = "agentd-mcp-fixture", version = "1.0.0")]
impl ServerHandler for Fixture {}

/// `--linger`: start a child process (`sleep 60`) and, once stdin closes, do not exit — a badly
/// behaved server, which only a signal to its process group stops.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let linger = std::env::args().any(|arg| arg == "--linger");
    eprintln!("fixture: started");
    let child = if linger { Some(std::process::Command::new("sleep").arg("60").spawn()?) } else { None };
    if let Some(child) = &child {
        eprintln!("fixture: lingering, child pid {}", child.id());
    }
    let fixture = Fixture { tool_router: Fixture::tool_router() };
    let server = fixture.serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    if linger {
        eprintln!("fixture: stdin closed, staying");
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    eprintln!("fixture: stdin closed, exiting");
    Ok(())
}
