//! `agentd run GOAL --url URL`: runs one browser session from the terminal. It uses the
//! server at `AGENTD_URL` when one answers there, or else starts one in-process for the run
//! (with a key made for the run and revoked after it) — unless another server holds the data
//! directory, which it then names instead. It follows the session's event
//! stream (SSE) with a line per step and action, asks the person at the terminal when the
//! agent needs them, and prints the final response on stdout (progress goes to stderr).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::pin::pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agentd_domain::ApiKeyId;
use anyhow::{Context, bail};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::config::{Config, Overrides};
use crate::data_dir_lock::DataDirLockError;
use crate::keys::{self, KeyRequest};
use crate::server::{self, RunningServer};

/// Exit code of a run the person interrupted with Ctrl-C (128 + SIGINT, as shells do).
const EXIT_INTERRUPTED: u8 = 130;
/// How often a lost event stream is reopened (resuming after the last event seen) before
/// the run gives up.
const MAX_RECONNECTS: u32 = 5;
/// How long to wait for the session to end after Ctrl-C asked it to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bound on `/healthz` when looking for a running server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// One frame of the spinner per tick.
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPINNER_TICK: Duration = Duration::from_millis(100);

/// `agentd run`: one browser session from the terminal.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What the agent should do, in plain words.
    goal: String,
    /// Where the browser starts (http or https).
    #[arg(long, value_name = "URL")]
    url: String,
    /// Most browser actions (default: the server's, 100).
    #[arg(long, value_name = "N")]
    max_actions: Option<u32>,
    /// The LLM model for this session (default: the server's `llm_model`).
    #[arg(long)]
    model: Option<String>,
    /// Print the response as JSON (a text answer as a JSON string).
    #[arg(long)]
    json: bool,
    /// No progress lines or spinner (questions from the agent and errors still show).
    #[arg(long, short)]
    quiet: bool,
    /// The server to use (AGENTD_URL; default: the configured `addr`). When none answers
    /// there, one is started in-process for the run.
    #[arg(long, env = "AGENTD_URL", value_name = "URL")]
    server: Option<String>,
    /// API key for that server (AGENTD_API_KEY); an in-process server needs none.
    #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Runs `agentd run`; the process exit code: 0 when the session completed, 1 when it failed,
/// was stopped or timed out (the reason on stderr), 130 when interrupted with Ctrl-C.
pub async fn run(args: RunArgs, config_file: Option<&Path>, overrides: Overrides) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file, &overrides)?;
    let base = match &args.server {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => configured_url(&config.addr),
    };
    let mut ui = Progress::new(args.quiet);
    let http = reqwest::Client::new();
    let backend = if server_answers(&http, &base).await? {
        let Some(key) = args.api_key.clone() else {
            bail!("the server at {base} needs an API key: set AGENTD_API_KEY or pass --api-key");
        };
        ui.line(&format!("using the server at {base}"));
        Backend::Remote { base, key }
    } else {
        start_local(config, &base, &mut ui).await?
    };
    let api = Api {
        http,
        base: backend.base(),
        key: backend.key().to_owned(),
    };
    let ending = follow(&api, &args, &mut ui).await;
    drop(api);
    backend.close().await;
    ui.clear();
    let (session, ending) = ending?;
    Ok(match ending {
        Ending::Completed(response) => {
            ui.line(&format!("session {session} completed"));
            let text = match (&response, args.json) {
                (Value::String(text), false) => text.clone(),
                (_, false) => serde_json::to_string_pretty(&response)?,
                (_, true) => serde_json::to_string(&response)?,
            };
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ending::Ended { status, why } => {
            eprintln!("session {session} {status}: {why}");
            ExitCode::FAILURE
        }
        Ending::Interrupted { stopped } => {
            let state = if stopped { "stopped" } else { "asked to stop, not confirmed yet" };
            eprintln!("interrupted: session {session} {state}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
    })
}

/// `http://` + the configured listen address, with an unspecified host (0.0.0.0, ::) read
/// as loopback.
fn configured_url(addr: &str) -> String {
    let addr = addr.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
    format!("http://{addr}")
}

/// Whether an agentd server answers at `base`: true on `/healthz` (also when degraded),
/// false when nothing listens; an error when something else answers.
async fn server_answers(http: &reqwest::Client, base: &str) -> anyhow::Result<bool> {
    match http.get(format!("{base}/healthz")).timeout(PROBE_TIMEOUT).send().await {
        Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => Ok(true),
        Ok(r) => bail!("{base}/healthz answered {}: is that an agentd server? (set AGENTD_URL or --server)", r.status()),
        Err(e) if e.is_connect() || e.is_timeout() => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot reach {base} (AGENTD_URL or --server)")),
    }
}

/// Where the session runs.
enum Backend {
    /// A server that was already running.
    Remote { base: String, key: String },
    /// One started for this run, with a key made for it.
    Local { server: RunningServer, key: String, key_id: ApiKeyId },
}

impl Backend {
    fn base(&self) -> String {
        match self {
            Backend::Remote { base, .. } => base.clone(),
            Backend::Local { server, .. } => format!("http://{}", server.addr),
        }
    }

    fn key(&self) -> &str {
        match self {
            Backend::Remote { key, .. } | Backend::Local { key, .. } => key,
        }
    }

    /// An in-process server: revoke the run's key, then shut down gracefully.
    async fn close(self) {
        if let Backend::Local { server, key_id, .. } = self {
            if let Err(error) = server.engine.store().revoke_api_key(key_id, chrono::Utc::now()).await {
                eprintln!("warning: could not revoke the run's API key {key_id}: {error} (`agentd keys revoke {key_id}`)");
            }
            server.shutdown().await;
        }
    }
}

/// Starts the full server (browser agent, LLM from the config) on an ephemeral loopback
/// port over the configured data dir, with a key for this run; refused, naming the holder,
/// when a server that did not answer at `base` holds the data dir.
async fn start_local(mut config: Config, base: &str, ui: &mut Progress) -> anyhow::Result<Backend> {
    // Without a model the server would start, then refuse the session: say so first.
    if config.llm_settings(|name| std::env::var(name).ok()).is_none() {
        bail!("no server answers at {base}, and one cannot be started here: {}", agentd_agents::NO_PROVIDER);
    }
    ui.line(&format!("no server at {base}: starting one in-process (data dir {})", config.data_dir.display()));
    config.addr = "127.0.0.1:0".into();
    // One session is created as soon as the server is up: a warm reserve would only take
    // the cores its first page load needs.
    config.browser_warm_contexts = 0;
    // The server's info lines would break up the progress, and the CDP client's warnings
    // are about the protocol, not the task (a browser failure reaches the session as an
    // event); the server's own warnings and errors still show.
    if config.log == Config::default().log {
        config.log = "warn,chromiumoxide=off".into();
    }
    crate::cli::init_logging(&config);
    let server = match server::start_builtin(&config).await {
        Ok(server) => server,
        Err(error) => match error.downcast_ref::<DataDirLockError>() {
            // A server holds the data directory but does not answer at `base`: starting a
            // second one over the same data would settle its running sessions as interrupted.
            Some(DataDirLockError::InUse { dir, holder }) => {
                let hint = match holder.addr {
                    Some(addr) => format!("--server {} (or AGENTD_URL)", configured_url(&addr.to_string())),
                    None => "--server (or AGENTD_URL) at it".to_owned(),
                };
                bail!(
                    "no server answers at {base}, and the data directory {} is in use by an agentd server ({}): use that server with {hint}, or stop it first",
                    dir.display(),
                    holder.describe()
                );
            }
            _ => return Err(error),
        },
    };
    match run_key(&server, &config).await {
        Ok((key, key_id)) => Ok(Backend::Local { server, key, key_id }),
        Err(error) => {
            server.shutdown().await;
            Err(error)
        }
    }
}

/// A key for the run in the default project. On a data dir without keys the server made a
/// first key at start that nobody saw: it is revoked, so that the next `agentd serve` makes
/// (and prints) one again.
async fn run_key(server: &RunningServer, config: &Config) -> anyhow::Result<(String, ApiKeyId)> {
    let store = server.engine.store();
    if let Some(unseen) = &server.first_key
        && let Some(record) = store.api_key_by_hash(&agentd_api::auth::hash_key(unseen)).await?
    {
        store.revoke_api_key(record.id, chrono::Utc::now()).await?;
    }
    let request = KeyRequest {
        project: keys::DEFAULT_PROJECT.into(),
        name: "agentd run (revoked when the run ends)".into(),
        tier: config.admin_key_tier.clone(),
        per_minute: None,
        per_day: None,
    };
    let (secret, record) = keys::create(store.as_ref(), &request).await.context("cannot create a key for the run")?;
    Ok((secret, record.id))
}

/// The native API, as this command uses it.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

type EventStream = BoxStream<'static, Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>>;

/// An API error as a sentence; `bad_request` tells a refused answer from a lost server.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ApiFailure {
    message: String,
    bad_request: bool,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("request failed");
            return Err(ApiFailure {
                message: format!("{status}: {message}"),
                bad_request: status == reqwest::StatusCode::BAD_REQUEST,
            }
            .into());
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn create(&self, args: &RunArgs) -> anyhow::Result<String> {
        let mut body = json!({"goal": args.goal, "start_url": args.url, "mode": "browser"});
        if let Some(n) = args.max_actions {
            body["max_actions"] = json!(n);
        }
        if let Some(model) = &args.model {
            body["model"] = json!(model);
        }
        let session = self.post("/v1/sessions", body).await.context("the session was refused")?;
        session["id"].as_str().map(str::to_owned).context("the server's answer has no session id")
    }

    async fn stop(&self, id: &str) -> anyhow::Result<()> {
        self.post(&format!("/v1/sessions/{id}/stop"), json!({})).await.map(drop)
    }

    /// The session's events after `after`, live (closes after the terminal event).
    async fn events(&self, id: &str, after: u64) -> anyhow::Result<EventStream> {
        let response = self
            .http
            .get(format!("{}/v1/sessions/{id}/events", self.base))
            .bearer_auth(&self.key)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header("Last-Event-ID", after.to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        if !response.status().is_success() {
            bail!("cannot follow the session's events: {}", response.status());
        }
        Ok(response.bytes_stream().eventsource().boxed())
    }
}

/// How a run ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// The response.
    Completed(Value),
    /// Failed, stopped or timed out, and why.
    Ended { status: String, why: String },
    /// Ctrl-C; whether the session is known to have stopped (it may not have ended within
    /// the grace period, or could not be asked to stop).
    Interrupted { stopped: bool },
}

/// What the person is being asked.
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Input { request_id: String, question: String },
    Permission { request_id: String, question: String },
    Safety { check_id: String, question: String },
}

impl Asked {
    /// The question for an `input_requested` or `safety_check_pending` event.
    fn from_event(kind: &str, data: &Value) -> Option<Asked> {
        let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
        match (kind, data["kind"].as_str()) {
            ("input_requested", Some("permission")) => Some(Asked::Permission {
                request_id: text("request_id"),
                question: format!("? The agent asks permission: {} [y/N]", text("reason")),
            }),
            ("input_requested", _) => {
                let reason = text("reason");
                let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
                Some(Asked::Input {
                    request_id: text("request_id"),
                    question: format!("? The agent asks for {}{why}:", text("field_name")),
                })
            }
            ("safety_check_pending", _) => Some(Asked::Safety {
                check_id: text("check_id"),
                question: format!("? Safety check [{}]: {}\n  Go ahead? [y/N]", text("code"), text("message")),
            }),
            _ => None,
        }
    }

    /// The id an answer names (the `request_id` or `check_id` of the event).
    fn id(&self) -> &str {
        match self {
            Asked::Input { request_id, .. } | Asked::Permission { request_id, .. } => request_id,
            Asked::Safety { check_id, .. } => check_id,
        }
    }

    fn question(&self) -> &str {
        match self {
            Asked::Input { question, .. } | Asked::Permission { question, .. } | Asked::Safety { question, .. } => question,
        }
    }
}

/// A question waiting for its line on stdin.
struct Question {
    asked: Asked,
    reply: oneshot::Receiver<Option<String>>,
}

/// Follows the session from creation to its end; the session's id and how it ended.
async fn follow(api: &Api, args: &RunArgs, ui: &mut Progress) -> anyhow::Result<(String, Ending)> {
    // Polled once now so the handler is in place before the session exists: a Ctrl-C from
    // here on stops the session instead of killing the process and leaving it running.
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    let _ = futures::poll!(ctrl_c.as_mut());
    let id = api.create(args).await?;
    ui.line(&format!("session {id}: {}", args.goal));
    ui.waiting("starting");
    let mut events = api.events(&id, 0).await?;
    let mut last_seq = 0;
    let mut reconnects = 0;
    let mut stdin = LineReader::default();
    let mut question: Option<Question> = None;
    let mut stop_deadline: Option<tokio::time::Instant> = None;
    let mut spinner = tokio::time::interval(SPINNER_TICK);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                if stop_deadline.is_some() {
                    return Ok((id, Ending::Interrupted { stopped: false }));
                }
                question = None;
                ui.warn("interrupted: stopping the session (Ctrl-C again to quit at once)");
                if let Err(error) = api.stop(&id).await {
                    ui.warn(&format!("could not stop the session: {error:#}"));
                    return Ok((id, Ending::Interrupted { stopped: false }));
                }
                stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                ctrl_c.set(tokio::signal::ctrl_c());
            }
            _ = tokio::time::sleep_until(stop_deadline.unwrap_or_else(tokio::time::Instant::now)), if stop_deadline.is_some() => {
                return Ok((id, Ending::Interrupted { stopped: false }));
            }
            line = async { (&mut question.as_mut().expect("guarded").reply).await.ok().flatten() }, if question.is_some() => {
                let asked = question.take().expect("guarded").asked;
                if !stdin.interactive {
                    eprintln!();
                }
                if let Some(again) = answer(api, &id, asked, line, ui).await {
                    ui.ask(again.question());
                    question = Some(Question { reply: stdin.read_line(), asked: again });
                }
                ui.waiting("thinking");
            }
            item = events.next() => {
                let event = match item {
                    Some(Ok(sse)) => {
                        reconnects = 0;
                        match serde_json::from_str::<Value>(&sse.data) {
                            Ok(event) => event,
                            Err(error) => {
                                ui.warn(&format!("skipped an event that is not JSON: {error}"));
                                continue;
                            }
                        }
                    }
                    Some(Err(_)) | None => {
                        // The stream ends only after the terminal event; anything else is a
                        // lost connection: resume after the last event seen.
                        reconnects += 1;
                        if reconnects > MAX_RECONNECTS {
                            bail!("lost the session's event stream ({MAX_RECONNECTS} reconnections failed); it may still be running: `agentd sessions show {id}`");
                        }
                        tokio::time::sleep(Duration::from_millis(200 << reconnects)).await;
                        match api.events(&id, last_seq).await {
                            Ok(stream) => events = stream,
                            Err(error) => ui.warn(&format!("reconnecting: {error:#}")),
                        }
                        continue;
                    }
                };
                let seq = event["seq"].as_u64().unwrap_or_default();
                if seq <= last_seq {
                    continue;
                }
                last_seq = seq;
                let kind = event["type"].as_str().unwrap_or_default();
                let data = &event["data"];
                if let Some(ending) = ending_of(kind, data) {
                    // Stopped because of Ctrl-C: say so (and exit 130), unless it completed first.
                    let ending = match ending {
                        Ending::Ended { .. } if stop_deadline.is_some() => Ending::Interrupted { stopped: true },
                        ending => ending,
                    };
                    return Ok((id, ending));
                }
                if let Some(asked) = Asked::from_event(kind, data) {
                    ui.ask(asked.question());
                    question = Some(Question { reply: stdin.read_line(), asked });
                    continue;
                }
                if matches!(kind, "input_received" | "safety_check_resolved")
                    && let Some(open) = &question
                    && [&data["request_id"], &data["check_id"]].iter().any(|v| v.as_str() == Some(open.asked.id()))
                {
                    question = None;
                    ui.line("(answered elsewhere)");
                }
                if let Some(line) = describe(kind, data) {
                    ui.line(&line);
                }
                ui.waiting(match kind {
                    "started" => "starting",
                    "thought" => "acting",
                    "paused" => "paused",
                    _ => "thinking",
                });
            }
            _ = spinner.tick(), if ui.animated && question.is_none() => ui.spin(),
        }
    }
}

/// Sends the person's answer (`None`: stdin is closed). Returns the question again when the
/// answer was not one (not y/n, or refused by the server as invalid).
async fn answer(api: &Api, id: &str, asked: Asked, line: Option<String>, ui: &mut Progress) -> Option<Asked> {
    let Some(line) = line else {
        let what = match &asked {
            Asked::Input { .. } => "stopping the session",
            Asked::Permission { .. } | Asked::Safety { .. } => "denying",
        };
        ui.warn(&format!("no answer (stdin is closed): {what}"));
        let sent = match &asked {
            Asked::Input { .. } => api.stop(id).await,
            Asked::Permission { request_id, .. } => {
                api.post(&format!("/v1/sessions/{id}/input"), json!({"request_id": request_id, "granted": false})).await.map(drop)
            }
            Asked::Safety { check_id, .. } => {
                api.post(&format!("/v1/sessions/{id}/safety_checks/{check_id}"), json!({"confirm": false})).await.map(drop)
            }
        };
        if let Err(error) = sent {
            ui.warn(&format!("{error:#}"));
        }
        return None;
    };
    let (path, body) = match &asked {
        Asked::Input { request_id, .. } => (format!("/v1/sessions/{id}/input"), json!({"request_id": request_id, "text": line})),
        Asked::Permission { request_id, .. } => match yes_or_no(&line) {
            Some(granted) => (format!("/v1/sessions/{id}/input"), json!({"request_id": request_id, "granted": granted})),
            None => {
                ui.warn("please answer y or n");
                return Some(asked);
            }
        },
        Asked::Safety { check_id, .. } => match yes_or_no(&line) {
            Some(confirm) => (format!("/v1/sessions/{id}/safety_checks/{check_id}"), json!({"confirm": confirm})),
            None => {
                ui.warn("please answer y or n");
                return Some(asked);
            }
        },
    };
    match api.post(&path, body).await {
        Ok(_) => None,
        Err(error) => {
            ui.warn(&format!("the answer was not taken: {error:#}"));
            // A refused answer (say, an empty text) is asked again; a conflict means the
            // request is gone (answered elsewhere, or the session ended).
            let refused = error.downcast_ref::<ApiFailure>().is_some_and(|f| f.bad_request);
            refused.then_some(asked)
        }
    }
}

/// y/yes → true, n/no or nothing → false (the default), anything else → None.
fn yes_or_no(line: &str) -> Option<bool> {
    match line.trim().to_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// The ending a terminal event means; None for other events.
fn ending_of(kind: &str, data: &Value) -> Option<Ending> {
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
    let why = match kind {
        "completed" => return Some(Ending::Completed(data["response"].clone())),
        "failed" => format!("{} ({})", text("error"), text("reason")),
        "stopped" => text("reason"),
        "timed_out" => match data["seconds"].as_u64() {
            Some(seconds) => format!("{} after {seconds} s", text("reason")),
            None => text("reason"),
        },
        _ => return None,
    };
    Some(Ending::Ended {
        status: kind.replace('_', " "),
        why,
    })
}

/// The progress line for an event, if it has one.
fn describe(kind: &str, data: &Value) -> Option<String> {
    let text = |key: &str| one_line(data[key].as_str().unwrap_or_default());
    match kind {
        "browser_started" => Some(format!("browser started: {}", text("url"))),
        "thought" => {
            let step = data["step"].as_u64().unwrap_or_default();
            let thought = [text("thought"), text("next_goal")].into_iter().find(|t| !t.is_empty());
            Some(match thought {
                Some(thought) => format!("step {step} · {thought}"),
                None => format!("step {step}"),
            })
        }
        "action" if data["ok"] == false => {
            let error = Some(text("error")).filter(|e| !e.is_empty()).unwrap_or_else(|| text("description"));
            Some(format!("  ✗ {}: {error}", text("name")))
        }
        "action" => Some(format!("  → {}: {}", text("name"), text("description"))),
        "log" if matches!(data["level"].as_str(), Some("error" | "warn")) => Some(format!("  ! {}", text("message"))),
        "paused" => Some("paused".into()),
        "resumed" => Some("resumed".into()),
        _ => None,
    }
}

/// `text` on one line, white space collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines from stdin, read on a thread of its own only when asked for (a blocking read
/// cannot be cancelled; a plain thread, unlike tokio's blocking pool, does not hold up the
/// process's exit). `None` once stdin is closed.
struct LineReader {
    requests: Option<std::sync::mpsc::Sender<oneshot::Sender<Option<String>>>>,
    /// Whether stdin is a terminal (a piped answer is not echoed, so a line break follows it).
    interactive: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        Self {
            requests: None,
            interactive: std::io::stdin().is_terminal(),
        }
    }
}

impl LineReader {
    fn read_line(&mut self) -> oneshot::Receiver<Option<String>> {
        let (reply, line) = oneshot::channel();
        let requests = self.requests.get_or_insert_with(|| {
            let (requests, incoming) = std::sync::mpsc::channel::<oneshot::Sender<Option<String>>>();
            // Without the thread every request is dropped unanswered, which reads as EOF.
            let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
                let stdin = std::io::stdin();
                for reply in incoming {
                    let mut line = String::new();
                    let read = match stdin.lock().read_line(&mut line) {
                        Ok(0) | Err(_) => None,
                        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
                    };
                    let _ = reply.send(read);
                }
            });
            requests
        });
        let _ = requests.send(reply);
        line
    }
}

/// Progress on stderr: lines, and a spinner while waiting when stderr is a terminal.
struct Progress {
    quiet: bool,
    animated: bool,
    shown: bool,
    frame: usize,
    label: &'static str,
    since: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            animated: !quiet && std::io::stderr().is_terminal(),
            shown: false,
            frame: 0,
            label: "starting",
            since: Instant::now(),
        }
    }

    /// A progress line (none when quiet).
    fn line(&mut self, text: &str) {
        if !self.quiet {
            self.clear();
            eprintln!("{text}");
        }
    }

    /// A line shown even when quiet.
    fn warn(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
    }

    /// A question, left open for the answer on the same line.
    fn ask(&mut self, question: &str) {
        self.clear();
        eprint!("{question} ");
        let _ = std::io::stderr().flush();
    }

    /// What the spinner says from now on.
    fn waiting(&mut self, label: &'static str) {
        if self.label != label {
            self.label = label;
            self.since = Instant::now();
        }
    }

    fn spin(&mut self) {
        self.frame = (self.frame + 1) % SPINNER.len();
        let seconds = self.since.elapsed().as_secs();
        eprint!("\r\x1b[2K{} {}… {seconds}s", SPINNER[self.frame], self.label);
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    /// Erases the spinner's line.
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_actions_read_as_one_line_each() {
        let thought = json!({"step": 2, "thought": "the form\nneeds a size", "next_goal": "pick one"});
        assert_eq!(describe("thought", &thought).unwrap(), "step 2 · the form needs a size");
        assert_eq!(describe("thought", &json!({"step": 3, "thought": "", "next_goal": "submit"})).unwrap(), "step 3 · submit");
        let ok = json!({"name": "click", "description": "clicked [4] button \"Submit\"", "ok": true});
        assert_eq!(describe("action", &ok).unwrap(), "  → click: clicked [4] button \"Submit\"");
        let failed = json!({"name": "click", "description": "no element 99", "ok": false, "error": "no element 99"});
        assert_eq!(describe("action", &failed).unwrap(), "  ✗ click: no element 99");
        assert_eq!(describe("observation", &json!({})), None);
        assert_eq!(describe("log", &json!({"level": "info", "message": "x"})), None);
    }

    #[test]
    fn terminal_events_end_the_run_with_their_reason() {
        assert_eq!(ending_of("completed", &json!({"response": "hi"})), Some(Ending::Completed(json!("hi"))));
        assert_eq!(
            ending_of("failed", &json!({"error": "used all 2 actions", "reason": "max_actions"})),
            Some(Ending::Ended { status: "failed".into(), why: "used all 2 actions (max_actions)".into() })
        );
        assert_eq!(
            ending_of("timed_out", &json!({"reason": "inactivity", "seconds": 300})),
            Some(Ending::Ended { status: "timed out".into(), why: "inactivity after 300 s".into() })
        );
        assert_eq!(ending_of("thought", &json!({})), None);
    }

    #[test]
    fn questions_name_what_an_answer_must_carry() {
        let input = Asked::from_event("input_requested", &json!({"kind": "input", "field_name": "email", "reason": "to sign up", "request_id": "req_1"})).unwrap();
        assert_eq!((input.id(), input.question()), ("req_1", "? The agent asks for email (to sign up):"));
        let permission = Asked::from_event("input_requested", &json!({"kind": "permission", "reason": "buy", "request_id": "req_2"})).unwrap();
        assert!(matches!(permission, Asked::Permission { .. }) && permission.id() == "req_2");
        let check = Asked::from_event("safety_check_pending", &json!({"check_id": "sc_1", "code": "download", "message": "a file"})).unwrap();
        assert!(check.question().contains("[download]: a file"), "{}", check.question());
        assert_eq!(Asked::from_event("thought", &json!({})), None);
    }

    #[test]
    fn yes_no_defaults_to_no_and_asks_again_otherwise() {
        assert_eq!(yes_or_no(" Y "), Some(true));
        assert_eq!(yes_or_no("yes"), Some(true));
        assert_eq!(yes_or_no(""), Some(false));
        assert_eq!(yes_or_no("No"), Some(false));
        assert_eq!(yes_or_no("maybe"), None);
    }

    #[test]
    fn the_configured_address_is_reached_on_loopback() {
        assert_eq!(configured_url("127.0.0.1:5001"), "http://127.0.0.1:5001");
        assert_eq!(configured_url("0.0.0.0:7000"), "http://127.0.0.1:7000");
        assert_eq!(configured_url("[::]:7000"), "http://[::1]:7000");
    }
}
