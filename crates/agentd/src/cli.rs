//! The command line: `serve`, `keys create|list|revoke` (on the data directory),
//! `sessions list|show|stop` (through a running server's API), and `run` (one task from the
//! terminal, in [`crate::run_cmd`]).

use std::path::PathBuf;
use std::process::ExitCode;

use agentd_domain::ApiKeyId;
use agentd_store::{SqliteStore, Store};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::config::{Config, Overrides};
use crate::{keys, run_cmd, server};

/// agentd: self-hosted autonomous web agents.
#[derive(Debug, Parser)]
#[command(name = "agentd", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (settings may also come from AGENTD_* variables).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (AGENTD_DATA_DIR; default ./agentd-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (one per data directory: a second one over it refuses to start).
    Serve {
        /// Address to listen on (AGENTD_ADDR; default 127.0.0.1:5001).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Manage API keys (works on the data directory; the server may be running).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run a browser task from the terminal, with live progress; prints the response.
    ///
    /// Uses the server at AGENTD_URL (or --server) when one answers, else starts one
    /// in-process for the run (refused while another server holds the data directory). Exit
    /// code 0 when the task completed, 1 when it failed, was stopped or timed out, 130 after
    /// Ctrl-C.
    Run(run_cmd::RunArgs),
    /// Look at and stop sessions through a running server.
    Sessions {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create {
        /// A label for the key.
        #[arg(long, default_value = "cli key")]
        name: String,
        /// Project the key acts for (created if missing).
        #[arg(long, default_value = keys::DEFAULT_PROJECT)]
        project: String,
        /// Rate-limit tier (free, standard, unlimited, or one from the config).
        #[arg(long, default_value = "standard")]
        tier: String,
        /// Override the tier's requests per minute.
        #[arg(long)]
        per_minute: Option<u64>,
        /// Override the tier's requests per day.
        #[arg(long)]
        per_day: Option<u64>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (from `keys list`).
        id: String,
    },
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Server URL.
    #[arg(long, env = "AGENTD_URL", default_value = "http://127.0.0.1:5001", global = true)]
    url: String,
    /// API key.
    #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List sessions, newest first.
    List {
        /// Only these statuses (comma-separated).
        #[arg(long)]
        status: Option<String>,
        /// Only sessions with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one session as JSON.
    Show {
        /// Session id.
        id: String,
    },
    /// Stop a session.
    Stop {
        /// Session id.
        id: String,
    },
}

/// Runs the command line; the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The most a library that carries the browser's traffic may log, whatever the filter says:
/// CDP messages hold what is typed into pages (secrets among it). chromiumoxide logs every
/// message it sends and receives at `trace`, a raw message it cannot read at `debug`, and at
/// `warn` the parser's error on it, which can quote the message; its `error`s name commands
/// and connection failures only. The WebSocket library under it (through `log`) prints every
/// frame at `trace`.
const PAYLOAD_CAPS: [(&str, tracing::Level); 4] = [
    ("chromiumoxide", tracing::Level::ERROR),
    ("tungstenite", tracing::Level::INFO),
    ("tokio_tungstenite", tracing::Level::INFO),
    ("async_tungstenite", tracing::Level::INFO),
];

/// Whether an event may be logged at all ([`PAYLOAD_CAPS`]; every other target as the filter
/// says).
fn loggable(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    PAYLOAD_CAPS
        .iter()
        .find(|(prefix, _)| target == *prefix || target.strip_prefix(prefix).is_some_and(|rest| rest.starts_with("::") || rest.starts_with('_')))
        .is_none_or(|(_, cap)| meta.level() <= cap)
}

/// Logs to stderr with the configured filter and format (once per process).
pub(crate) fn init_logging(config: &Config) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into());
    let guard = tracing_subscriber::filter::filter_fn(loggable);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if config.log_format == "json" {
        registry.with(layer.json().with_filter(guard)).try_init()
    } else {
        registry.with(layer.with_filter(guard)).try_init()
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        ..Overrides::default()
    };
    match cli.command {
        Command::Serve { addr } => {
            overrides.addr = addr;
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            init_logging(&config);
            serve(config).await?;
        }
        Command::Keys { command } => {
            let config = Config::load(cli.config.as_deref(), &overrides)?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
            let store = SqliteStore::open(&config.data_dir).await?;
            keys_command(&store, &config, command).await?;
        }
        Command::Sessions { client, command } => sessions_command(client, command).await?,
        Command::Run(args) => return run_cmd::run(args, cli.config.as_deref(), overrides).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = server::start_builtin(&config).await?;
    if let Some(secret) = &server.first_key {
        println!("Created the first API key (shown only once; keep it safe):\n\n    {secret}\n");
        println!("Use it as `Authorization: Bearer <key>`. More keys: `agentd keys create`.");
    }
    println!("agentd {} listening on http://{}", agentd_api::VERSION, server.addr);
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn keys_command(store: &SqliteStore, config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            project,
            tier,
            per_minute,
            per_day,
        } => {
            if !config.tiers.contains_key(&tier) {
                let mut names: Vec<_> = config.tiers.keys().cloned().collect();
                names.sort();
                bail!("--tier: no tier named `{tier}`; configured tiers: {}", names.join(", "));
            }
            if per_minute == Some(0) || per_day == Some(0) {
                bail!("--per-minute and --per-day must be at least 1");
            }
            let req = keys::KeyRequest {
                project,
                name,
                tier,
                per_minute,
                per_day,
            };
            let (secret, record) = keys::create(store, &req).await?;
            println!("{secret}");
            eprintln!("key {} created in project `{}` (tier {}); the secret above is shown only once", record.id, req.project, record.tier);
        }
        KeysCommand::List => {
            println!("{:<36}  {:<10}  {:<10}  {:<8}  {:<20}  NAME", "ID", "PREFIX", "TIER", "STATE", "CREATED");
            for key in store.list_api_keys().await? {
                let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{:<36}  {:<10}  {:<10}  {:<8}  {:<20}  {}",
                    key.id,
                    key.key_prefix,
                    key.tier,
                    state,
                    key.created_at.format("%Y-%m-%d %H:%M:%S"),
                    key.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id: ApiKeyId = id.parse().map_err(|e| anyhow::anyhow!("key id: {e}"))?;
            if store.revoke_api_key(id, chrono::Utc::now()).await? {
                println!("key {id} revoked");
            } else {
                bail!("no active key with id {id}");
            }
        }
    }
    Ok(())
}

async fn sessions_command(client: ClientArgs, command: SessionsCommand) -> anyhow::Result<()> {
    let Some(key) = client.api_key else {
        bail!("an API key is needed: pass --api-key or set AGENTD_API_KEY");
    };
    let base = client.url.trim_end_matches('/').to_owned();
    if let SessionsCommand::Show { id } | SessionsCommand::Stop { id } = &command {
        id.parse::<agentd_domain::SessionId>().map_err(|e| anyhow::anyhow!("session id: {e}"))?;
    }
    let http = reqwest::Client::new();
    let (method, url, query): (reqwest::Method, String, Vec<(&str, String)>) = match &command {
        SessionsCommand::List { status, tag, limit } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(s) = status {
                q.push(("status", s.clone()));
            }
            if let Some(t) = tag {
                q.push(("tag", t.clone()));
            }
            (reqwest::Method::GET, format!("{base}/v1/sessions"), q)
        }
        SessionsCommand::Show { id } => (reqwest::Method::GET, format!("{base}/v1/sessions/{id}"), vec![]),
        SessionsCommand::Stop { id } => (reqwest::Method::POST, format!("{base}/v1/sessions/{id}/stop"), vec![]),
    };
    let response = http
        .request(method, &url)
        .query(&query)
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.context("the server's answer is not JSON")?;
    if !status.is_success() {
        let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("request failed");
        bail!("{status}: {message}");
    }
    match command {
        SessionsCommand::List { .. } => {
            println!("{:<36}  {:<10}  {:<8}  {:<20}  GOAL", "ID", "STATUS", "MODE", "CREATED");
            for s in body["data"].as_array().into_iter().flatten() {
                let goal: String = s["goal"].as_str().unwrap_or("").chars().take(60).collect();
                println!(
                    "{:<36}  {:<10}  {:<8}  {:<20}  {}",
                    s["id"].as_str().unwrap_or(""),
                    s["status"].as_str().unwrap_or(""),
                    s["mode"].as_str().unwrap_or(""),
                    s["created_at"].as_str().unwrap_or("").chars().take(19).collect::<String>(),
                    goal
                );
            }
        }
        SessionsCommand::Show { .. } => println!("{}", serde_json::to_string_pretty(&body)?),
        SessionsCommand::Stop { .. } => println!("session {} is {}", body["id"].as_str().unwrap_or(""), body["status"].as_str().unwrap_or("")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_browser_s_traffic_is_never_logged_whatever_the_filter() {
        use tracing::Level;
        use tracing::callsite::Identifier;
        use tracing::metadata::{Kind, Metadata};
        use tracing::field::FieldSet;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level| Metadata::new("e", target, level, None, None, None, FieldSet::new(&[], Identifier(&SITE)), Kind::EVENT);
        assert!(!super::loggable(&meta("chromiumoxide::conn", Level::TRACE)));
        assert!(!super::loggable(&meta("chromiumoxide::conn::raw_ws::parse_errors", Level::DEBUG)));
        assert!(!super::loggable(&meta("chromiumoxide", Level::INFO)));
        assert!(!super::loggable(&meta("chromiumoxide::handler", Level::WARN)), "it quotes unreadable messages");
        assert!(super::loggable(&meta("chromiumoxide::handler", Level::ERROR)));
        assert!(!super::loggable(&meta("chromiumoxide_cdp::cdp", Level::DEBUG)));
        for socket in ["tungstenite::protocol", "tokio_tungstenite", "async_tungstenite::tokio"] {
            assert!(!super::loggable(&meta(socket, Level::TRACE)), "{socket}");
            assert!(!super::loggable(&meta(socket, Level::DEBUG)), "{socket}");
            assert!(super::loggable(&meta(socket, Level::WARN)), "{socket}");
        }
        assert!(super::loggable(&meta("agentd::server", Level::TRACE)));
        assert!(super::loggable(&meta("tungstenitefoo", Level::TRACE)), "only the crates themselves are capped");
    }
}
