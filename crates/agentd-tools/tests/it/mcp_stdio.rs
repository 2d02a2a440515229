//! MCP over stdio, against `agentd-mcp-fixture` (a binary of this package, built by `cargo test`).

use std::path::Path;
use std::time::Duration;

use agentd_tools::{DebugSink, McpServer, ToolDefinition, ToolError, ToolLimits, ToolOutput};
use serde_json::json;

use crate::{Lines, SECRET, assert_no_secret, runner, short_limits, variables};

const FIXTURE: &str = env!("CARGO_BIN_EXE_agentd-mcp-fixture");

/// The fixture, given the private `api_key` as its `FIXTURE_TOKEN`.
fn fixture() -> McpServer {
    McpServer::Stdio {
        command: FIXTURE.to_owned(),
        args: vec![],
        env: [("FIXTURE_TOKEN".to_owned(), "{{api_key}}".to_owned())].into(),
    }
}

/// Whether the process exists at all (a zombie still does).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn tools_are_listed_and_called_and_the_server_is_reaped_on_shutdown() {
    let (sink, mut lines) = Lines::new();
    let session = runner(short_limits()).connect_mcp(&fixture(), &variables(&[], &[]), &sink).await.unwrap();
    let pid = session.process_id().expect("a stdio server has a pid");
    assert!(process_exists(pid));

    let tools = session.list_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["add", "echo", "env", "fail", "slow"]);
    let add = &tools[0];
    assert_eq!(add.description.as_deref(), Some("Adds two numbers."));
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    assert_eq!(add.input_schema["properties"]["a"]["type"], json!("number"));

    let sum = session.call_tool("add", &json!({"a": 2, "b": 3.5})).await.unwrap();
    assert_eq!(sum.text, "5.5");
    assert_eq!(sum.content, [json!({"type": "text", "text": "5.5"})]);
    let echoed = session.call_tool("echo", &json!({"text": "héllo\nworld"})).await.unwrap();
    assert_eq!(echoed.text, "héllo\nworld");

    session.shutdown().await.unwrap();
    assert!(!process_exists(pid), "the server is gone and reaped (no zombie)");
    let lines = lines.drain();
    let expected_in_order = [
        "starting MCP server: ",
        "stderr: fixture: started",
        "MCP server `",
        "MCP tools/list → 5 tools in ",
        "MCP tools/call add",
        "MCP tools/call add → ok in ",
        "stderr: fixture: add(2, 3.5)",
        "stderr: fixture: stdin closed, exiting",
    ];
    for expected in expected_in_order {
        assert!(lines.iter().any(|line| line.starts_with(expected)), "no line starting {expected:?} in {lines:#?}");
    }
    assert!(lines.iter().any(|l| l.contains("ready: agentd-mcp-fixture 1.0.0 (protocol ")), "{lines:#?}");
    assert!(lines.last().unwrap().contains(" stopped in "), "{lines:#?}");
}

#[tokio::test]
async fn a_failing_tool_unknown_tools_and_bad_arguments_are_clear_errors() {
    let session =
        runner(short_limits()).connect_mcp(&fixture(), &variables(&[], &[]), &DebugSink::none()).await.unwrap();
    let failed = session.call_tool("fail", &json!({"message": "boom"})).await.unwrap_err();
    assert_eq!(failed.to_string(), "the MCP tool `fail` failed: failed on purpose: boom");
    assert!(matches!(failed, ToolError::McpToolFailed { .. }));

    let unknown = session.call_tool("divide", &json!({})).await.unwrap_err();
    assert_eq!(unknown.to_string(), "the MCP server has no tool `divide` (it has: add, echo, env, fail, slow)");

    let bad = session.call_tool("add", &json!({"a": "two"})).await.unwrap_err();
    let text = bad.to_string();
    assert!(
        text.starts_with("invalid arguments: ")
            && text.contains("`a`:")
            && text.contains("\"b\" is a required property"),
        "{text}"
    );

    // The session is still good after every error.
    assert_eq!(session.call_tool("add", &json!({"a": 1, "b": 1})).await.unwrap().text, "2");
    session.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_tool_times_out_and_the_session_stays_usable() {
    let limits = ToolLimits { mcp_call_timeout: Duration::from_millis(400), ..short_limits() };
    let (sink, mut lines) = Lines::new();
    let session = runner(limits).connect_mcp(&fixture(), &variables(&[], &[]), &sink).await.unwrap();
    let started = std::time::Instant::now();
    let error = session.call_tool("slow", &json!({"ms": 20_000})).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.to_string(), "MCP tools/call slow did not finish within 400 ms");
    assert_eq!(session.call_tool("slow", &json!({"ms": 10})).await.unwrap().text, "done after 10 ms");
    let pid = session.process_id().unwrap();
    session.shutdown().await.unwrap();
    assert!(!process_exists(pid));
    let lines = lines.drain();
    assert!(lines.iter().any(|l| l == "MCP tools/call slow gave no answer within 400 ms"), "{lines:#?}");
    // Dropping the timed-out request told the server to cancel it.
    assert!(lines.iter().any(|l| l == "stderr: fixture: slow(20000) cancelled"), "{lines:#?}");
}

#[tokio::test]
async fn a_server_that_ignores_its_stdin_closing_is_stopped_with_its_process_group() {
    let lingering =
        McpServer::Stdio { command: FIXTURE.to_owned(), args: vec!["--linger".into()], env: Default::default() };
    let (sink, mut lines) = Lines::new();
    let session = runner(short_limits()).connect_mcp(&lingering, &variables(&[], &[]), &sink).await.unwrap();
    let pid = session.process_id().unwrap();
    assert_eq!(session.call_tool("add", &json!({"a": 1, "b": 2})).await.unwrap().text, "3");
    session.shutdown().await.unwrap();
    assert!(!process_exists(pid), "the server was stopped and reaped");

    let lines = lines.drain();
    let child: u32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("stderr: fixture: lingering, child pid "))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("the fixture names its child: {lines:#?}"));
    // The server's own child got the signal too (it is not ours to reap: gone, or a zombie of
    // whoever adopted it).
    let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.split_whitespace().nth(2) == Some("Z"), "the grandchild still runs: {state}");
    assert!(lines.iter().any(|l| l == "stderr: fixture: stdin closed, staying"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l == "stderr: fixture: stdin closed, exiting"), "{lines:#?}");
}

#[tokio::test]
async fn secrets_reach_the_server_only_through_its_environment_and_never_come_back() {
    let (sink, mut lines) = Lines::new();
    let session = runner(short_limits()).connect_mcp(&fixture(), &variables(&[], &[]), &sink).await.unwrap();
    // The server has the real value (it answers with it), the output says only its name.
    let token = session.call_tool("env", &json!({"name": "FIXTURE_TOKEN"})).await.unwrap();
    assert_eq!(token.text, "[redacted:api_key]");
    // An argument carrying the secret is masked on the way back too.
    let echoed = session.call_tool("echo", &json!({"text": format!("key={SECRET}")})).await.unwrap();
    assert_eq!(echoed.text, "key=[redacted:api_key]");
    // agentd's own environment is not passed on (cargo sets CARGO_MANIFEST_DIR for this test);
    // PATH is.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert_eq!(session.call_tool("env", &json!({"name": "CARGO_MANIFEST_DIR"})).await.unwrap().text, "unset");
    assert_ne!(session.call_tool("env", &json!({"name": "PATH"})).await.unwrap().text, "unset");
    let failed = session.call_tool("fail", &json!({"message": SECRET})).await.unwrap_err();
    assert_eq!(failed.to_string(), "the MCP tool `fail` failed: failed on purpose: [redacted:api_key]");
    session.shutdown().await.unwrap();

    let lines = lines.drain();
    // The fixture wrote the secret to its stderr: the debug line shows it masked.
    assert!(lines.iter().any(|l| l == "stderr: fixture: env(FIXTURE_TOKEN) = [redacted:api_key]"), "{lines:#?}");
    assert_no_secret(&format!("{token:?} {echoed:?} {failed:?} {lines:?}"));
}

#[tokio::test]
async fn one_shot_execution_starts_calls_and_stops_the_server() {
    let tool = ToolDefinition::Mcp { server: fixture(), tool: "add".into() };
    let (sink, mut lines) = Lines::new();
    let output =
        runner(short_limits()).execute(&tool, &json!({"a": 40, "b": 2}), &variables(&[], &[]), &sink).await.unwrap();
    let ToolOutput::Mcp(output) = output else { panic!("an MCP output") };
    assert_eq!(output.text, "42");
    assert!(lines.drain().last().unwrap().contains(" stopped in "));
}

#[tokio::test]
async fn a_command_that_cannot_start_or_an_unknown_placeholder_is_a_clear_error() {
    let missing = McpServer::Stdio { command: "/nonexistent/agentd-mcp".into(), args: vec![], env: Default::default() };
    let error =
        runner(short_limits()).connect_mcp(&missing, &variables(&[], &[]), &DebugSink::none()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot start the MCP server `/nonexistent/agentd-mcp`: No such file or directory (os error 2)"
    );

    let unknown =
        McpServer::Stdio { command: FIXTURE.into(), args: vec!["--token={{nope}}".into()], env: Default::default() };
    let error =
        runner(short_limits()).connect_mcp(&unknown, &variables(&[], &[]), &DebugSink::none()).await.unwrap_err();
    assert!(error.to_string().starts_with("unknown placeholder {{nope}} in the MCP server's arguments"), "{error}");

    // A command that exits at once fails the handshake, named.
    let quits = McpServer::Stdio { command: "true".into(), args: vec![], env: Default::default() };
    let error = runner(short_limits()).connect_mcp(&quits, &variables(&[], &[]), &DebugSink::none()).await.unwrap_err();
    assert!(error.to_string().starts_with("cannot connect to the MCP server `true`: "), "{error}");
}
