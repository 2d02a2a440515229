//! Starting an MCP session: a child process on stdio, or streamable HTTP through the egress
//! policy, then the initialize handshake — all within the start limit.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentd_egress::{EgressError, EgressPolicy};
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::transport::worker::WorkerQuitReason;
use rmcp::transport::{DynamicTransportError, StreamableHttpClientTransport, TokioChildProcess};
use url::Url;

use super::McpServer;
use super::session::McpSession;
use super::stderr;
use crate::debug::Reporter;
use crate::error::ToolError;
use crate::headers;
use crate::limits::ToolLimits;
use crate::mask::Masker;
use crate::template::Scope;
use crate::variables::Variables;

/// The only variables of agentd's own environment a stdio server sees.
const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];


/// Starts `server` and completes the handshake. Errors are returned unmasked (the caller masks).
pub(crate) async fn connect(
    server: &McpServer,
    policy: EgressPolicy,
    limits: &ToolLimits,
    variables: &Variables,
    masker: Arc<Masker>,
    reporter: Reporter,
) -> Result<McpSession, ToolError> {
    let scope = Scope::new(None, variables);
    // What runs and where it connects are the tool's own to say (see `Variables`).
    let own = Scope::own(variables);
    let started = Instant::now();
    let client_info =
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("agentd", env!("CARGO_PKG_VERSION")));
    let (service, label, url, pid, stderr_task) = match server {
        McpServer::Stdio { command, args, env } => {
            let command = own.render_text(command, "the MCP server's command")?;
            if !limits.stdio_commands.allows(&command) {
                return Err(ToolError::InvalidTemplate {
                    place: "the MCP server's command".into(),
                    reason: format!("`{command}` is not a command this server may run (the operator lists them in AGENTD_MCP_STDIO_COMMANDS)"),
                });
            }
            let args = args
                .iter()
                .map(|arg| own.render_text(arg, "the MCP server's arguments"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut child_env = Vec::with_capacity(env.len());
            for (name, template) in env {
                let place = format!("the MCP server's environment variable {name}");
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(ToolError::InvalidTemplate { place, reason: "not a valid variable name".into() });
                }
                child_env.push((name.clone(), scope.render_text(template, &place)?));
            }
            let label = format!("`{command}`");
            reporter.line(format!("starting MCP server: {}", shown_command(&command, &args)));

            let mut process = tokio::process::Command::new(&command);
            process.args(&args).env_clear();
            for name in INHERITED_ENV {
                if let Some(value) = std::env::var_os(name) {
                    process.env(name, value);
                }
            }
            process.envs(child_env);
            let mut process = CommandWrap::from(process);
            process.wrap(ProcessGroup::leader());
            let (transport, stderr) = TokioChildProcess::builder(process)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| ToolError::McpStart { command: command.clone(), reason: e.to_string() })?;
            let pid = transport.id();
            let stderr_task = stderr.map(|stderr| tokio::spawn(stderr::forward(stderr, reporter.clone())));
            // A timed-out or failed handshake drops the transport, whose guard kills the child.
            let service = within_start_limit(limits, &label, None, client_info.serve(transport)).await?;
            (service, label, None, pid, stderr_task)
        }
        McpServer::Http { url, headers } => {
            let url = own.render_text(url, "the MCP server's URL")?;
            let parsed = policy.check_url(&url).map_err(ToolError::Egress)?;
            let host = parsed.host_str().unwrap_or_default().to_owned();
            let custom_headers: HashMap<_, _> = headers::render(headers, &scope, &masker)?.into_iter().collect();
            reporter.line(format!("connecting to MCP server {url}"));
            let config = StreamableHttpClientTransportConfig::with_uri(parsed.as_str()).custom_headers(custom_headers);
            let transport = StreamableHttpClientTransport::with_client(http_client(policy, limits)?, config);
            let service =
                within_start_limit(limits, &host, Some(parsed.as_str()), client_info.serve(transport)).await?;
            (service, host, Some(parsed.to_string()), None, None)
        }
    };
    let server_info = service.peer().peer_info();
    let (name, version, protocol) = server_info
        .as_ref()
        .map(|info| {
            let (name, version) =
                info.server_info.as_ref().map(|s| (s.name.clone(), s.version.clone())).unwrap_or_default();
            (name, version, info.protocol_version.to_string())
        })
        .unwrap_or_default();
    reporter.line(format!(
        "MCP server {label} ready: {name} {version} (protocol {protocol}) in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(McpSession {
        service,
        label,
        url,
        pid,
        stderr_task,
        limits: limits.clone(),
        masker,
        reporter,
        tools: Mutex::new(None),
    })
}

/// The handshake, bounded by the start limit; its failure named for `label`, with `url` (when
/// HTTP) never in the message.
async fn within_start_limit<F, S, E>(
    limits: &ToolLimits,
    label: &str,
    url: Option<&str>,
    handshake: F,
) -> Result<S, ToolError>
where
    F: Future<Output = Result<S, E>>,
    E: std::error::Error + 'static,
{
    match tokio::time::timeout(limits.mcp_start_timeout, handshake).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(error)) => Err(match describe(&error, url) {
            Err(refusal) => ToolError::Egress(refusal),
            Ok(reason) => ToolError::McpConnect { server: label.to_owned(), reason },
        }),
        Err(_elapsed) => Err(ToolError::Timeout {
            operation: format!("starting the MCP server {label}"),
            limit: limits.mcp_start_timeout,
        }),
    }
}

/// An rmcp error in one line: the egress policy's refusal if that is what it carries (`Err`),
/// else what went wrong — for an HTTP failure the innermost cause ("Connection refused"), since
/// reqwest's own text names the whole URL; `url` is replaced by its host wherever it still shows.
///
/// rmcp does not chain its transport errors as `source()`, so the layers are opened by type.
pub(super) fn describe(error: &(dyn std::error::Error + 'static), url: Option<&str>) -> Result<String, EgressError> {
    if let Some(http) = find_reqwest(error) {
        if let Some(refusal) = EgressError::find_in(http) {
            return Err(refusal.clone());
        }
        let mut innermost: &dyn std::error::Error = http;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        return Ok(if http.is_connect() {
            innermost.to_string()
        } else {
            format!("the HTTP request failed: {innermost}")
        });
    }
    let text = plain(error);
    Ok(match url.and_then(|url| Some((url, Url::parse(url).ok()?.host_str()?.to_owned()))) {
        Some((url, host)) => text.replace(url, &host),
        None => text,
    })
}

type HttpTransportError = StreamableHttpError<reqwest::Error>;

/// The reqwest error inside an rmcp error, if any.
fn find_reqwest<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a reqwest::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(http) = error.downcast_ref::<reqwest::Error>() {
            return Some(http);
        }
        if let Some(inner) = inner_error(error) {
            return find_reqwest(inner);
        }
        if let Some(HttpTransportError::Client(http)) = error.downcast_ref::<HttpTransportError>() {
            return Some(http);
        }
        current = error.source();
    }
    None
}

/// The error an rmcp wrapper holds without naming it as its `source()`.
fn inner_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(ClientInitializeError::TransportError { error, .. }) = error.downcast_ref::<ClientInitializeError>() {
        return Some(error.error.as_ref());
    }
    if let Some(ServiceError::TransportSend(error)) = error.downcast_ref::<ServiceError>() {
        return Some(error.error.as_ref());
    }
    if let Some(error) = error.downcast_ref::<DynamicTransportError>() {
        return Some(error.error.as_ref());
    }
    if let Some(WorkerQuitReason::Fatal { error, .. }) = error.downcast_ref::<WorkerQuitReason<HttpTransportError>>() {
        return Some(error);
    }
    None
}

/// The error's text without rmcp's transport type names ("Transport [WorkerTransport<…>] error").
fn plain(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(ClientInitializeError::TransportError { error, context }) =
        error.downcast_ref::<ClientInitializeError>()
    {
        return format!("{} (when {context})", plain(error.error.as_ref()));
    }
    match inner_error(error) {
        Some(inner) if error.downcast_ref::<WorkerQuitReason<HttpTransportError>>().is_none() => plain(inner),
        _ => error.to_string(),
    }
}

/// The reqwest client for a streamable-HTTP server: names resolved by the egress policy's
/// `CheckedResolver` (only allowed addresses are connected to), no proxy, no redirects (the
/// one URL, checked before, is the only destination). No overall timeout: the server's event
/// stream stays open; each request is bounded by the session's limits instead.
fn http_client(policy: EgressPolicy, limits: &ToolLimits) -> Result<reqwest::Client, ToolError> {
    policy
        .streaming_client(limits.mcp_start_timeout)
        .map_err(|e| ToolError::McpConnect { server: "(HTTP client)".into(), reason: e.to_string() })
}

/// The command line as shown in debug output (masked by the reporter).
fn shown_command(command: &str, args: &[String]) -> String {
    std::iter::once(command).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}
