//! MCP over streamable HTTP, against a small rmcp server served on loopback by the test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use agentd_egress::{AddressClass, EgressError, EgressPolicy};
use agentd_tools::{DebugSink, McpServer, ToolError, ToolRunner};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

use crate::{Lines, SECRET, assert_no_secret, runner, short_limits, variables};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ShoutArgs {
    text: String,
}

#[derive(Debug, Clone)]
struct Shouter {
    #[expect(dead_code, reason = "read by the code #[tool_handler] generates")]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Shouter {
    #[tool(description = "Upper-cases the text.")]
    fn shout(&self, Parameters(ShoutArgs { text }): Parameters<ShoutArgs>) -> String {
        text.to_uppercase()
    }
}

#[tool_handler(name = "shouter", version = "0.1.0")]
impl ServerHandler for Shouter {}

/// Serves the shouter at `/mcp`, recording every request's Authorization header.
async fn serve() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = StreamableHttpService::new(
        || Ok(Shouter { tool_router: Shouter::tool_router() }),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let record = seen.clone();
    let app =
        Router::new().route_service("/mcp", service).layer(middleware::from_fn(move |request: Request, next: Next| {
            let record = record.clone();
            async move {
                let auth =
                    request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned();
                record.lock().unwrap().push(auth);
                next.run(request).await
            }
        }));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn server(url: &str) -> McpServer {
    McpServer::Http {
        url: url.to_owned(),
        headers: [("Authorization".to_owned(), "Bearer {{api_key}}".to_owned())].into(),
    }
}

#[tokio::test]
async fn tools_are_listed_and_called_over_streamable_http_with_the_secret_header() {
    let (url, seen) = serve().await;
    let (sink, mut lines) = Lines::new();
    let session = runner(short_limits()).connect_mcp(&server(&url), &variables(&[], &[]), &sink).await.unwrap();
    assert_eq!(session.process_id(), None);
    let tools = session.list_tools().await.unwrap();
    assert_eq!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["shout"]);
    let output = session.call_tool("shout", &json!({"text": "hi"})).await.unwrap();
    assert_eq!(output.text, "HI");
    session.shutdown().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|auth| *auth == format!("Bearer {SECRET}")), "{seen:?}");
    let lines = lines.drain();
    assert!(lines.iter().any(|l| l.starts_with("MCP server 127.0.0.1 ready: shouter 0.1.0")), "{lines:#?}");
    assert_no_secret(&format!("{output:?} {lines:?}"));
}

#[tokio::test]
async fn the_default_policy_refuses_a_loopback_mcp_server_before_connecting() {
    let (url, seen) = serve().await;
    let strict = ToolRunner::new(EgressPolicy::default(), short_limits()).unwrap();
    let error = strict.connect_mcp(&server(&url), &variables(&[], &[]), &DebugSink::none()).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Egress(EgressError::Refused { class: AddressClass::Loopback, .. })),
        "{error:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_connect_error_naming_the_host() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let error =
        runner(short_limits()).connect_mcp(&server(&url), &variables(&[], &[]), &DebugSink::none()).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(text, "cannot connect to the MCP server 127.0.0.1: Connection refused (os error 111)");
    assert!(!text.contains("/mcp"), "no URL in errors: {text}");
}
