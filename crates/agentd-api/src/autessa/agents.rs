//! The agents endpoints: `execute-create` makes a conversation pinned to the version
//! resolved now; `execute` runs a single-shot session or a turn of a conversation and
//! answers once the agent has; `execute-close` (alias `close-conversation`) closes one; the
//! WebSocket `/ws/clients/agents/execute` serves `EXECUTE_AGENT` and `CLOSE_CONVERSATION`.
//!
//! On the socket (the rest is `socket.rs`):
//! - `EXECUTE_AGENT` `{agentId?, conversationId?, input, version?, outputTypes?}` answers
//!   `{"responseType":"EXECUTE_AGENT","conversationId","output":[{"outputType":"TEXT",
//!   "content":<delta>}],"done":false,"errors":[]}` then the end of the turn
//!   `{"responseType":"EXECUTE_AGENT","done":true,"conversationId","output":[full output],
//!   "errors":[]}`. agentd's agents produce an answer whole (no token stream), so there is
//!   one delta: the whole answer text, sent when it arrives, then the `done` frame; nothing
//!   is cut up or delayed to look streamed.
//! - The socket holds a conversation: an `EXECUTE_AGENT` without `conversationId` continues
//!   the one the socket holds, or starts one (pinned to the version the message or the
//!   query asks for) when it holds none; one with a `conversationId` continues that one,
//!   which the socket then holds. A browser agent holds no conversation: each execution is
//!   single-shot. Requests run concurrently; a second turn of a conversation while the
//!   first runs is refused (`ERROR`).
//! - `CLOSE_CONVERSATION` `{conversationId?}` (default: the one held) answers
//!   `{"responseType":"CLOSE_CONVERSATION","conversationId","errors":[]}`.
//! - `versionState`/`versionNumber` in the query are the socket's default `version`.

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::{AgentId, AgentVersion, Mode, Session, SessionId, SessionStatus};
use agentd_engine::{Engine, EngineError, NewSession, Resource};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::{Caller, QueryKey};
use crate::sessions::parse_create;
use crate::state::AppState;
use crate::wire::CreateSessionRequest;

use super::error::{AutessaError, AutessaResult, ok};
use super::media::{self, OutputWanted, Prompt};
use super::socket::{self, Outbox, SocketHandler};
use super::{Query, VersionAsk, body_object, same_resource, version_from_body, version_from_query};

/// The longest an execute waits for its answer.
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);
/// Beyond the session's own timeout, before the wait gives up.
const WAIT_MARGIN: Duration = Duration::from_secs(30);

/// A conversation's id as clients see it: `conv_<32 hex>`.
pub(super) fn conversation_name(id: SessionId) -> String {
    format!("conv_{}", id.as_uuid().simple())
}

fn conversation_not_found(raw: &str) -> AutessaError {
    AutessaError::new(StatusCode::NOT_FOUND, format!("Conversation {} not found", raw.trim()))
}

/// `conv_<hex>` or a plain UUID (either spelling).
fn parse_conversation(raw: &str) -> AutessaResult<SessionId> {
    let trimmed = raw.trim();
    let uuid = trimmed.strip_prefix("conv_").unwrap_or(trimmed);
    uuid::Uuid::parse_str(uuid).map(SessionId::from_uuid).map_err(|_| conversation_not_found(raw))
}

/// `conversationId` of a body or message (absent, null or blank: None).
fn conversation_field(body: &Map<String, Value>) -> AutessaResult<Option<SessionId>> {
    match body.get("conversationId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_conversation(s).map(Some),
        Some(_) => Err(AutessaError::bad_request("conversationId must be a string such as conv_...")),
    }
}

/// The agent resource `number` names (a tool's number is not found here).
async fn agent_of(state: &AppState, caller: Caller, number: u64) -> AutessaResult<AgentId> {
    match super::resource(state, caller, number).await? {
        Resource::Agent(id) => Ok(id),
        Resource::Tool(_) | Resource::Table(_) => Err(AutessaError::resource_not_found(number)),
    }
}

/// The version asked for, or why there is none in the vendor's words.
async fn resolve(state: &AppState, caller: Caller, agent: AgentId, number: u64, ask: VersionAsk) -> AutessaResult<AgentVersion> {
    let version = match state.engine.resolve_agent_version(caller.project_id, agent, ask.choice).await {
        Ok(version) => version,
        Err(EngineError::Invalid(_)) => return Err(super::no_such_version("Agent", number, ask.choice)),
        Err(other) => return Err(other.into()),
    };
    super::in_asked_state("agent", number, ask, version.number, version.state)?;
    Ok(version)
}

/// A session of `version` for `goal`, checked as the native API checks one.
fn session_for(state: &AppState, version: AgentVersion, goal: String) -> AutessaResult<NewSession> {
    let mut req = CreateSessionRequest { goal: Some(goal), ..CreateSessionRequest::default() };
    crate::agents::fill_from_version(&mut req, &version)?;
    let mut new = parse_create(req, &state.config.sessions)?;
    crate::agents::pin(&mut new, version);
    Ok(new)
}

/// A conversation of `version`, made now (so pinned to it).
async fn create_conversation(state: &AppState, caller: Caller, version: AgentVersion, number: u64) -> AutessaResult<SessionId> {
    if version.spec.kind == Mode::Browser {
        return Err(browser_holds_no_conversation(number));
    }
    let new = session_for(state, version, crate::conversations::OPENING_GOAL.to_owned())?;
    Ok(state.engine.create_conversation(caller.project_id, new.spec).await?.id)
}

fn browser_holds_no_conversation(number: u64) -> AutessaError {
    AutessaError::new(
        StatusCode::CONFLICT,
        format!("Agent {number} is a browser agent: its executions take no follow-ups; execute without conversationId"),
    )
}

/// The conversation `id` of `agent` (404 for another agent's), and whether it is closed.
async fn conversation_of(state: &AppState, caller: Caller, agent: AgentId, number: u64, id: SessionId) -> AutessaResult<bool> {
    let name = conversation_name(id);
    let (root, record) = match state.engine.conversation(caller.project_id, id).await {
        Ok(found) => found,
        Err(EngineError::NotFound) => return Err(conversation_not_found(&name)),
        Err(other) => return Err(other.into()),
    };
    let spec = Engine::conversation_spec(root.as_ref(), &record).ok_or_else(|| conversation_not_found(&name))?;
    if spec.agent.map(|pinned| pinned.agent_id) != Some(agent) {
        return Err(conversation_not_found(&name));
    }
    if spec.mode == Mode::Browser {
        return Err(browser_holds_no_conversation(number));
    }
    Ok(record.closed.is_some())
}

fn closed(id: SessionId) -> AutessaError {
    AutessaError::new(StatusCode::CONFLICT, format!("Conversation {} is closed", conversation_name(id)))
}

/// What an execution runs.
enum Target {
    /// A fresh session of this version.
    Single(AgentVersion),
    /// The next turn of this conversation, on its pinned version.
    Turn(SessionId),
}

/// A started execution: its session, and the conversation it belongs to (None: a browser
/// agent's, which cannot be continued).
struct Execution {
    session: Session,
    conversation: Option<SessionId>,
}

async fn start(state: &AppState, caller: Caller, agent: AgentId, number: u64, target: Target, text: String) -> AutessaResult<Execution> {
    match target {
        Target::Single(version) => {
            let browser = version.spec.kind == Mode::Browser;
            let session = state.engine.create_session(caller.project_id, session_for(state, version, text)?).await?;
            Ok(Execution { conversation: (!browser).then_some(session.id), session })
        }
        Target::Turn(id) => {
            if conversation_of(state, caller, agent, number, id).await? {
                return Err(closed(id));
            }
            let session = state.engine.send_message(caller.project_id, id, text).await?;
            Ok(Execution { conversation: Some(session.conversation()), session })
        }
    }
}

/// The session's answer once it ends, or why there is none.
async fn answer(state: &AppState, caller: Caller, session: &Session) -> AutessaResult<String> {
    let within = (Duration::from_secs(session.spec.timeout_seconds) + WAIT_MARGIN).min(MAX_WAIT);
    if !state.engine.wait_ended(caller.project_id, session.id, within).await? {
        return Err(AutessaError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("The agent did not answer within {} seconds; it is still working", within.as_secs()),
        ));
    }
    let ended = state.engine.get_session(caller.project_id, session.id).await?;
    let why = || ended.error.clone().filter(|e| !e.is_empty());
    match ended.status {
        SessionStatus::Completed => Ok(answer_text(ended.response.as_ref())),
        SessionStatus::TimedOut => Err(AutessaError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("The agent timed out: {}", why().unwrap_or_else(|| "it ran out of time".into())),
        )),
        SessionStatus::Stopped => Err(AutessaError::new(
            StatusCode::CONFLICT,
            format!("The agent was stopped: {}", why().unwrap_or_else(|| "stopped".into())),
        )),
        _ => Err(AutessaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The agent failed: {}", why().unwrap_or_else(|| "no reason given".into())),
        )),
    }
}

/// The text of a response: the chat, research and coding agents' `answer`; a browser
/// agent's result (JSON as JSON text).
fn answer_text(response: Option<&Value>) -> String {
    match response {
        Some(Value::Object(result)) if result.get("answer").is_some_and(Value::is_string) => {
            result["answer"].as_str().unwrap_or_default().to_owned()
        }
        Some(Value::String(text)) => text.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What an execute request asks, parsed.
struct ExecuteRequest {
    conversation: Option<SessionId>,
    version: Option<VersionAsk>,
    prompt: Prompt,
    wanted: OutputWanted,
}

/// Parses an execute request and checks what it names — the conversation (open, this
/// agent's) or the version (`default_version` when the body names none) — before its audio is
/// transcribed: a refused request costs no speech.
async fn parse_execute(
    state: &AppState,
    caller: Caller,
    agent: AgentId,
    body: &Map<String, Value>,
    number: u64,
    default_version: Option<VersionAsk>,
) -> AutessaResult<ExecuteRequest> {
    same_resource(body, "agentId", number)?;
    let conversation = conversation_field(body)?;
    let version = version_from_body(body.get("version"))?;
    let input = media::parse_input(body.get("input"))?;
    let wanted = OutputWanted::parse(body)?;
    match conversation {
        Some(id) if conversation_of(state, caller, agent, number, id).await? => return Err(closed(id)),
        Some(_) => {}
        None => {
            resolve(state, caller, agent, number, version.or(default_version).unwrap_or(VersionAsk::PUBLISHED)).await?;
        }
    }
    let prompt = media::prompt(state, input, wanted).await?;
    Ok(ExecuteRequest { conversation, version, prompt, wanted })
}

// ---------------------------------------------------------------------------------------
// REST

/// `POST /clients/agents/execute-create?resourceId=` `{agentId?, version?}` →
/// `{conversationId, errors: []}`.
pub(super) async fn execute_create(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    bytes: Result<Bytes, BytesRejection>,
) -> AutessaResult {
    let number = Query::parse(query.as_deref()).resource_number()?;
    let agent = agent_of(&state, caller, number).await?;
    let body = body_object(bytes)?;
    same_resource(&body, "agentId", number)?;
    let ask = version_from_body(body.get("version"))?.unwrap_or(VersionAsk::PUBLISHED);
    let version = resolve(&state, caller, agent, number, ask).await?;
    let id = create_conversation(&state, caller, version, number).await?;
    Ok(ok(json!({"conversationId": conversation_name(id)})))
}

/// `POST /clients/agents/execute?resourceId=` `{agentId?, conversationId?, input, version?}`
/// → `{errors: [], conversationId, output: [{outputType: "TEXT", content}]}`.
pub(super) async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    bytes: Result<Bytes, BytesRejection>,
) -> AutessaResult {
    let number = Query::parse(query.as_deref()).resource_number()?;
    let agent = agent_of(&state, caller, number).await?;
    let req = parse_execute(&state, caller, agent, &body_object(bytes)?, number, None).await?;
    let target = match req.conversation {
        Some(id) => Target::Turn(id),
        None => Target::Single(resolve(&state, caller, agent, number, req.version.unwrap_or(VersionAsk::PUBLISHED)).await?),
    };
    let execution = start(&state, caller, agent, number, target, req.prompt.text.clone()).await?;
    let text = answer(&state, caller, &execution.session).await?;
    let output = media::output(&state, &text, &req.prompt, req.wanted).await?;
    let mut fields = json!({"output": output});
    if let Some(conversation) = execution.conversation {
        fields["conversationId"] = json!(conversation_name(conversation));
    }
    Ok(ok(fields))
}

/// `POST /clients/agents/execute-close?resourceId=` `{agentId?, conversationId}` →
/// `{errors: []}` (a closed conversation too).
pub(super) async fn close(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    bytes: Result<Bytes, BytesRejection>,
) -> AutessaResult {
    let number = Query::parse(query.as_deref()).resource_number()?;
    let agent = agent_of(&state, caller, number).await?;
    let body = body_object(bytes)?;
    same_resource(&body, "agentId", number)?;
    let id = conversation_field(&body)?.ok_or_else(|| AutessaError::bad_request("conversationId is required"))?;
    close_conversation(&state, caller, agent, number, id).await?;
    Ok(ok(json!({})))
}

async fn close_conversation(state: &AppState, caller: Caller, agent: AgentId, number: u64, id: SessionId) -> AutessaResult<()> {
    if conversation_of(state, caller, agent, number, id).await? {
        return Ok(());
    }
    match state.engine.close_conversation(caller.project_id, id).await {
        // Closed meanwhile: closed is what was asked.
        Ok(_) | Err(EngineError::Conflict(_)) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// `GET /ws/clients/agents/execute?authorization=&resourceId=[&versionState=&versionNumber=]`.
pub(super) async fn socket(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    key: QueryKey,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return socket::not_a_websocket().into_response();
    };
    let query = Query::parse(query.as_deref());
    let opened = open_socket(&state, &query, key, &headers).await;
    socket::accept(upgrade, &state, opened)
}

async fn open_socket(state: &AppState, query: &Query, key: QueryKey, headers: &HeaderMap) -> AutessaResult<(AgentSocket, socket::Admission)> {
    let admission = socket::admit(state, key, headers).await?;
    let caller = admission.caller;
    let number = query.resource_number()?;
    let agent = agent_of(state, caller, number).await?;
    let version = version_from_query(query)?;
    let held = Arc::default();
    Ok((AgentSocket { state: state.clone(), caller, agent, number, version, held, voice: Arc::default() }, admission))
}

/// One agent socket: its caller, agent, default version and the conversation it holds.
#[derive(Clone)]
struct AgentSocket {
    state: AppState,
    caller: Caller,
    agent: AgentId,
    number: u64,
    version: Option<VersionAsk>,
    held: Arc<tokio::sync::Mutex<Option<SessionId>>>,
    /// The utterances being spoken in `AUDIO_CHUNK`s, by the conversation they are for (""
    /// for the one the socket holds).
    voice: Arc<std::sync::Mutex<std::collections::HashMap<String, media::Utterance>>>,
}

/// Utterances one socket may have half-spoken at once (one per conversation).
const MAX_UTTERANCES: usize = 4;

impl SocketHandler for AgentSocket {
    /// `AUDIO_CHUNK`s are buffered in order; the `final` one becomes an `EXECUTE_AGENT` with
    /// the whole utterance as its AUDIO input (and the chunk's other fields).
    fn prepare(&self, request_type: String, message: Map<String, Value>) -> AutessaResult<Option<(String, Map<String, Value>)>> {
        if request_type != "AUDIO_CHUNK" {
            return Ok(Some((request_type, message)));
        }
        let conversation = message.get("conversationId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let whole = {
            let mut voice = self.voice.lock().unwrap_or_else(|e| e.into_inner());
            if !voice.contains_key(&conversation) && voice.len() >= MAX_UTTERANCES {
                return Err(AutessaError::bad_request(format!("At most {MAX_UTTERANCES} utterances may be spoken at once on one socket")));
            }
            let taken = voice.entry(conversation.clone()).or_default().take(&self.state, &message);
            if !matches!(taken, Ok(None)) {
                voice.remove(&conversation);
            }
            taken?
        };
        let Some((content, mime_type)) = whole else { return Ok(None) };
        let mut request = message;
        for key in ["content", "final", "mimeType", "format", "requestType"] {
            request.remove(key);
        }
        request.insert("input".into(), json!([{"inputType": "AUDIO", "content": content, "mimeType": mime_type}]));
        Ok(Some(("EXECUTE_AGENT".to_owned(), request)))
    }

    async fn handle(&self, request_type: String, message: Map<String, Value>, out: Outbox) -> AutessaResult<()> {
        match request_type.as_str() {
            "EXECUTE_AGENT" => self.execute(message, out).await,
            "CLOSE_CONVERSATION" => self.close(message, out).await,
            other => Err(AutessaError::bad_request(format!(
                "Unknown requestType `{other}`: this socket takes EXECUTE_AGENT, AUDIO_CHUNK and CLOSE_CONVERSATION"
            ))),
        }
    }
}

impl AgentSocket {
    async fn execute(&self, message: Map<String, Value>, out: Outbox) -> AutessaResult<()> {
        let (state, caller) = (&self.state, self.caller);
        let req = parse_execute(state, caller, self.agent, &message, self.number, self.version).await?;
        let target = match req.conversation {
            // Held once its turn has started (a wrong id is not kept).
            Some(id) => Target::Turn(id),
            None => {
                let mut held = self.held.lock().await;
                match *held {
                    Some(id) => Target::Turn(id),
                    None => {
                        let ask = req.version.or(self.version).unwrap_or(VersionAsk::PUBLISHED);
                        let version = resolve(state, caller, self.agent, self.number, ask).await?;
                        if version.spec.kind == Mode::Browser {
                            Target::Single(version)
                        } else {
                            let id = create_conversation(state, caller, version, self.number).await?;
                            *held = Some(id);
                            Target::Turn(id)
                        }
                    }
                }
            }
        };
        let execution = start(state, caller, self.agent, self.number, target, req.prompt.text.clone()).await?;
        if let (Some(id), Some(_)) = (req.conversation, execution.conversation) {
            *self.held.lock().await = Some(id);
        }
        let conversation = execution.conversation.map(conversation_name);
        if let Some(heard) = &req.prompt.transcription {
            out.send(json!({"responseType": "TRANSCRIPTION", "content": heard, "conversationId": conversation}));
        }
        let text = answer(state, caller, &execution.session).await?;
        let output = media::output(state, &text, &req.prompt, req.wanted).await?;
        // The answer as it arrives: its text, then its speech (when asked for); then the end.
        for part in output.iter().filter(|p| p["outputType"] == "TEXT" || p["outputType"] == "AUDIO") {
            out.send(json!({
                "responseType": "EXECUTE_AGENT",
                "conversationId": conversation,
                "output": [part],
                "done": false,
                "errors": [],
            }));
        }
        out.send(json!({"responseType": "EXECUTE_AGENT", "done": true, "conversationId": conversation, "output": output, "errors": []}));
        Ok(())
    }

    async fn close(&self, message: Map<String, Value>, out: Outbox) -> AutessaResult<()> {
        let mut held = self.held.lock().await;
        let id = match conversation_field(&message)? {
            Some(id) => id,
            None => held.ok_or_else(|| AutessaError::bad_request("conversationId is required: this socket holds no conversation"))?,
        };
        close_conversation(&self.state, self.caller, self.agent, self.number, id).await?;
        if *held == Some(id) {
            *held = None;
        }
        out.send(json!({"responseType": "CLOSE_CONVERSATION", "conversationId": conversation_name(id), "errors": []}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_read_back() {
        let id = SessionId::new();
        let name = conversation_name(id);
        assert!(name.starts_with("conv_") && name.len() == 37, "{name}");
        assert_eq!(parse_conversation(&name).unwrap(), id);
        assert_eq!(parse_conversation(&id.to_string()).unwrap(), id);
        assert_eq!(parse_conversation("conv_abc123").unwrap_err().errors[0], "Conversation conv_abc123 not found");
    }

    #[test]
    fn answers_are_text() {
        assert_eq!(answer_text(Some(&json!({"answer": "Hi", "sources": []}))), "Hi");
        assert_eq!(answer_text(Some(&json!("plain"))), "plain");
        assert_eq!(answer_text(Some(&json!({"price": 3}))), r#"{"price":3}"#);
        assert_eq!(answer_text(None), "");
    }
}
