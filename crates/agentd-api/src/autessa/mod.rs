//! The Autessa agents, tools and AutessaDB API (seed 003; SPECS §3) as a thin adapter over
//! the engine: agents, tools and tables are named by their resource number (`resourceId`,
//! the native `resource_id`), a conversation is an engine conversation, an execution is a session of
//! the agent version resolved for it. `agents.rs` serves `POST /clients/agents/execute-create`,
//! `execute`, `execute-close` (alias `close-conversation`) and the WebSocket
//! `/ws/clients/agents/execute`; `tools.rs` `POST /clients/tool/execute` and the WebSocket
//! `/ws/clients/tools/execute`; `db.rs` the AutessaDB `POST /clients/autessadb/*` over the
//! native tables (its own choices in its doc); `socket.rs` is the WebSocket plumbing every Autessa socket
//! shares; `media.rs` the input and output parts (audio through a speech provider);
//! `error.rs` the `{errors}` envelope. Every rule (versions, pinning, conversation closing)
//! is the engine's.
//!
//! Choices where the documents are silent ([INF]/[GAP] in SPECS §3):
//! - Keys: `Authorization: <key>` as documented; `Authorization: Bearer <key>` and
//!   `X-API-Key` are tolerated (a client that adds the prefix is not refused for it). A
//!   missing or wrong key is 401 `{"errors":["Invalid API key"]}`. WebSockets take
//!   `?authorization=<key>` (or the header).
//! - Every answer, refusals included, is JSON with `errors` (empty on success; an error body
//!   has only `errors`) and carries `X-RateLimit-{Limit,Remaining}-{Minute,Day}`; a window
//!   the key has no cap in (or no key at all, on a 401) reads 4294967295. Over a limit: 429
//!   with `Retry-After` (seconds) and the wait in the message.
//! - Statuses: 400 bad input (missing or non-integer `resourceId`: `resourceId is required
//!   …`; malformed JSON; bad `input`, `version`; `agentId` other than `resourceId`); 404
//!   `Resource with ID <n> not found` for a number the project does not have, has as a tool,
//!   or another project has — and `Conversation <id> not found` for a conversation of
//!   another agent; 409 `Conversation <id> is closed`, or a turn while the previous one
//!   runs; 500 the agent failed (its reason), 503 the server is stopping, 504 the agent
//!   timed out or did not answer within the wait. The vendor documents only
//!   200/401/429/500; clients read `errors` whatever the status.
//! - `agentId` in a body may be left out (`resourceId` names the agent); when given it must
//!   equal `resourceId`. Unknown body fields are ignored (vendor clients send more).
//! - `version` `{versionState, versionNumber}` (WebSocket: `?versionState=&versionNumber=`):
//!   PUBLISHED by default; DRAFT the draft; ARCHIVED the most recently archived version;
//!   `versionNumber` that version whatever its state (when a `versionState` is given as well
//!   it must match). An agent without the version asked for (nothing published yet) → 400
//!   naming what to do. A conversation turn runs the version the conversation was pinned
//!   to when it was made: a `version` in its body is checked for shape, then ignored.
//! - `conversationId` is `conv_<32 hex>` (the engine conversation's id); a plain UUID is
//!   accepted too. A single-shot execute (no `conversationId`) runs a fresh session and
//!   answers its `conversationId` anyway, so the client may continue it — except for a
//!   browser agent, whose sessions take no follow-ups (no `conversationId`; a conversation
//!   on a browser agent is refused with 409). Multiple TEXT inputs are joined with newlines.
//! - An execute waits for the answer as long as the session's own timeout allows, plus 30 s,
//!   at most 30 minutes; past that, 504 (the session goes on). A client that goes away
//!   leaves it running.
//! - Closing is idempotent: closing a closed (or 12 h idle) conversation answers
//!   `{"errors": []}`.
//! - Output: `[{"outputType":"TEXT","content":<answer>}]` — the chat, research and coding
//!   agents' `answer`, a browser agent's result (JSON results as JSON text).
//! - Audio (`inputType: AUDIO`, `outputTypes: ["AUDIO"]`, `audioOutput: true`) goes
//!   through the speech provider (`speech.rs`); without one: 400 `Audio input needs a speech
//!   provider: …` before anything runs. An AUDIO part's type is its `mimeType`/`format`, or
//!   what its first bytes show (WAV, Ogg, FLAC, WebM, MP4/M4A, MP3); what was heard comes
//!   back as a `TRANSCRIPTION` output; spoken answers are mp3 in the server's voice. Voice
//!   mode on the socket: `AUDIO_CHUNK`s are buffered in the order they arrive (up to the
//!   provider's audio limit) and the `final` one runs as an `EXECUTE_AGENT` with the whole
//!   utterance (a `TRANSCRIPTION` frame first).
//! - WebSocket: see `socket.rs` (framing, keep-alive, idle, auth) and `agents.rs` (the
//!   messages, and the conversation a socket holds).

mod agents;
mod db;
mod error;
mod media;
mod socket;
mod tools;

use agentd_domain::{VersionChoice, VersionState};
use agentd_engine::Resource;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde_json::{Map, Value};

use crate::auth::{self, Caller, LimitUsage};
use crate::state::AppState;

pub(crate) use error::{AutessaError, AutessaResult};

/// The Autessa routes (REST behind [`admit`]; sockets admit themselves from the query).
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let refuse_method = || async { AutessaError::new(StatusCode::METHOD_NOT_ALLOWED, "Use POST for this endpoint").into_response() };
    let rest = Router::new()
        .route("/clients/agents/execute-create", post(agents::execute_create).fallback(refuse_method))
        // Spoken input is larger than other bodies: this route takes the audio limit.
        .route(
            "/clients/agents/execute",
            post(agents::execute).fallback(refuse_method).layer(DefaultBodyLimit::max(crate::speech::body_limit(&state))),
        )
        .route("/clients/agents/execute-close", post(agents::close).fallback(refuse_method))
        .route("/clients/agents/close-conversation", post(agents::close).fallback(refuse_method))
        .route("/clients/agents/{*rest}", any(|| async { AutessaError::new(StatusCode::NOT_FOUND, "No such endpoint").into_response() }))
        .route("/clients/tool/execute", post(tools::execute).fallback(refuse_method))
        .route("/clients/tool/{*rest}", any(|| async { AutessaError::new(StatusCode::NOT_FOUND, "No such endpoint").into_response() }))
        .route("/clients/autessadb/insert", post(db::insert).fallback(refuse_method))
        .route("/clients/autessadb/batch-insert", post(db::batch_insert).fallback(refuse_method))
        .route("/clients/autessadb/get-data", post(db::get_data).fallback(refuse_method))
        .route("/clients/autessadb/get-single-row", post(db::get_single_row).fallback(refuse_method))
        .route("/clients/autessadb/query", post(db::query).fallback(refuse_method))
        .route("/clients/autessadb/join-query", post(db::join_query).fallback(refuse_method))
        .route("/clients/autessadb/search", post(db::search).fallback(refuse_method))
        .route("/clients/autessadb/update", post(db::update).fallback(refuse_method))
        .route("/clients/autessadb/batch-update", post(db::batch_update).fallback(refuse_method))
        .route("/clients/autessadb/delete-row", post(db::delete_row).fallback(refuse_method))
        .route("/clients/autessadb/batch-delete", post(db::batch_delete).fallback(refuse_method))
        .route("/clients/autessadb/generate-upload-link", post(db::generate_upload_link).fallback(refuse_method))
        .route("/clients/autessadb/index-record", post(db::index_record).fallback(refuse_method))
        .route("/clients/autessadb/{*rest}", any(|| async { AutessaError::new(StatusCode::NOT_FOUND, "No such endpoint").into_response() }))
        .route_layer(from_fn_with_state(state, admit));
    Router::new()
        .merge(rest)
        // An upload link is its own key (no `Authorization`), and takes a whole CSV.
        .route(
            "/clients/autessadb/uploads/{token}",
            put(db::upload).layer(DefaultBodyLimit::max(agentd_engine::MAX_CSV_BYTES)),
        )
        .route("/ws/clients/agents/execute", get(agents::socket))
        .route("/ws/clients/tools/execute", get(tools::socket))
}

/// Admits the caller of a REST route (`Authorization: <key>`, `Bearer <key>` tolerated)
/// through `auth::admit`, and writes the four rate-limit headers on every answer.
pub(crate) async fn admit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secret = auth::presented_key(req.headers()).map(str::to_owned);
    match admit_key(&state, secret).await {
        Ok((caller, usage)) => {
            req.extensions_mut().insert(caller);
            let mut response = next.run(req).await;
            LimitUsage::write_all_headers(Some(&usage), response.headers_mut());
            response
        }
        Err((error, usage)) => {
            let mut response = error.into_response();
            LimitUsage::write_all_headers(usage.as_ref(), response.headers_mut());
            auth::answer_unread(req, response).await
        }
    }
}

/// The key's admission, or the refusal and where the key's limits stand (when it was known).
pub(crate) async fn admit_key(state: &AppState, secret: Option<String>) -> Result<(Caller, LimitUsage), (AutessaError, Option<LimitUsage>)> {
    auth::admit(state, secret).await.map_err(|refusal| (refusal.error.clone().into(), refusal.usage().copied()))
}

/// A query string's parameters (the first of repeated names counts).
#[derive(Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

/// Names only: a socket's query carries its key.
impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// The parameter's value, trimmed; blank is absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// `resourceId`: a whole number.
    pub fn resource_number(&self) -> AutessaResult<u64> {
        let raw = self.get("resourceId").ok_or_else(|| AutessaError::bad_request("resourceId is required: add ?resourceId=<the resource's ID>"))?;
        raw.parse::<u64>()
            .map_err(|_| AutessaError::bad_request(format!("resourceId is required as an integer (the resource's ID), got `{raw}`")))
    }
}

/// The resource `number` names in the caller's project; 404 for anything else (another
/// project's included).
pub(crate) async fn resource(state: &AppState, caller: Caller, number: u64) -> AutessaResult<Resource> {
    match state.engine.resource(caller.project_id, number).await {
        Ok(found) => Ok(found),
        Err(agentd_engine::EngineError::NotFound) => Err(AutessaError::resource_not_found(number)),
        Err(other) => Err(other.into()),
    }
}

/// The body as a JSON object (an empty body reads as `{}`).
pub(crate) fn body_object(bytes: Result<Bytes, BytesRejection>) -> AutessaResult<Map<String, Value>> {
    let bytes = bytes.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AutessaError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is larger than the server accepts"),
        status => AutessaError::new(status, format!("Could not read the request body: {rejection}")),
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AutessaError::bad_request("The body must be a JSON object")),
        Err(e) => Err(AutessaError::bad_request(format!("The body is not valid JSON: {e}"))),
    }
}

/// An id field that must name the resource (`agentId`, later `toolId`): absent is fine;
/// present, it must be the integer `resourceId` is.
pub(crate) fn same_resource(body: &Map<String, Value>, field: &str, number: u64) -> AutessaResult<()> {
    let given = match body.get(field) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match given {
        Some(n) if n == number => Ok(()),
        Some(n) => Err(AutessaError::bad_request(format!("{field} {n} does not match resourceId {number}"))),
        None => Err(AutessaError::bad_request(format!("{field} must be an integer (the resource's ID)"))),
    }
}

/// A `version` override `{versionState, versionNumber}` (absent: None, the PUBLISHED
/// default).
pub(crate) fn version_from_body(value: Option<&Value>) -> AutessaResult<Option<VersionAsk>> {
    let version = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(version)) => version,
        Some(_) => return Err(AutessaError::bad_request("version must be an object {versionState, versionNumber}")),
    };
    let state = match version.get("versionState") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad_state("a non-string")),
    };
    let number = match version.get("versionNumber") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().filter(|n| (1..=u64::from(u32::MAX)).contains(n)).ok_or_else(bad_number)? as u32),
        Some(_) => return Err(bad_number()),
    };
    ask_for(state, number).map(Some)
}

/// The override of a WebSocket's query (`versionState`, `versionNumber`).
pub(crate) fn version_from_query(query: &Query) -> AutessaResult<Option<VersionAsk>> {
    let number = query
        .get("versionNumber")
        .map(|raw| raw.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(bad_number))
        .transpose()?;
    let state = query.get("versionState");
    if state.is_none() && number.is_none() {
        return Ok(None);
    }
    ask_for(state, number).map(Some)
}

/// The version a request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VersionAsk {
    pub choice: VersionChoice,
    /// With a `versionNumber`: the `versionState` given beside it, which that version must be in.
    pub number_in_state: Option<VersionState>,
}

impl VersionAsk {
    /// The default: the published version.
    pub const PUBLISHED: VersionAsk = VersionAsk { choice: VersionChoice::Published, number_in_state: None };
}

/// Why the `what` ("Agent", "Tool") numbered `number` has no version `choice`, in the
/// vendor's words.
pub(crate) fn no_such_version(what: &str, number: u64, choice: VersionChoice) -> AutessaError {
    AutessaError::bad_request(match choice {
        VersionChoice::Published => {
            format!("{what} {number} has no published version: publish it, or ask for version {{\"versionState\": \"DRAFT\"}}")
        }
        VersionChoice::Draft => format!("{what} {number} has no draft version"),
        VersionChoice::LatestArchived => format!("{what} {number} has no archived version"),
        VersionChoice::Number(n) => format!("{what} {number} has no version {n}"),
    })
}

/// A `versionNumber` asked for with a `versionState` must be in that state.
pub(crate) fn in_asked_state(what: &str, number: u64, ask: VersionAsk, version: u32, state: VersionState) -> AutessaResult<()> {
    match ask.number_in_state {
        Some(asked) if asked != state => {
            Err(AutessaError::bad_request(format!("Version {version} of {what} {number} is {}, not {}", state.as_str(), asked.as_str())))
        }
        _ => Ok(()),
    }
}

fn ask_for(state: Option<&str>, number: Option<u32>) -> AutessaResult<VersionAsk> {
    let state = state
        .map(|s| VersionState::parse(&s.trim().to_ascii_uppercase()).ok_or_else(|| bad_state(&format!("`{s}`"))))
        .transpose()?;
    let choice = match (state, number) {
        (_, Some(n)) => VersionChoice::Number(n),
        (None | Some(VersionState::Published), None) => VersionChoice::Published,
        (Some(VersionState::Draft), None) => VersionChoice::Draft,
        (Some(VersionState::Archived), None) => VersionChoice::LatestArchived,
    };
    Ok(VersionAsk { choice, number_in_state: number.and(state) })
}

fn bad_state(got: &str) -> AutessaError {
    AutessaError::bad_request(format!("version.versionState must be PUBLISHED, DRAFT or ARCHIVED, got {got}"))
}

fn bad_number() -> AutessaError {
    AutessaError::bad_request("version.versionNumber must be a version number (1 or more)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_ids_are_whole_numbers() {
        assert_eq!(Query::parse(Some("resourceId=12")).resource_number().unwrap(), 12);
        for bad in [None, Some(""), Some("resourceId="), Some("resourceId=abc"), Some("resourceId=-1"), Some("resourceId=1.5")] {
            let e = Query::parse(bad).resource_number().unwrap_err();
            assert!(e.errors[0].starts_with("resourceId is required"), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn versions_default_to_published() {
        let v = |value: Value| version_from_body(Some(&value)).map(|ask| ask.map(|a| a.choice));
        assert_eq!(version_from_body(None).unwrap(), None);
        assert_eq!(v(json!({})).unwrap(), Some(VersionChoice::Published));
        assert_eq!(v(json!({"versionState": "DRAFT"})).unwrap(), Some(VersionChoice::Draft));
        assert_eq!(v(json!({"versionState": "archived"})).unwrap(), Some(VersionChoice::LatestArchived));
        assert_eq!(v(json!({"versionState": "ARCHIVED", "versionNumber": 2})).unwrap(), Some(VersionChoice::Number(2)));
        assert_eq!(v(json!({"versionNumber": 3})).unwrap(), Some(VersionChoice::Number(3)));
        for bad in [json!("DRAFT"), json!({"versionState": "LATEST"}), json!({"versionNumber": 0}), json!({"versionNumber": "x"})] {
            assert!(v(bad.clone()).is_err(), "{bad}");
        }
        let q = Query::parse(Some("versionState=DRAFT&resourceId=1"));
        assert_eq!(version_from_query(&q).unwrap().map(|a| a.choice), Some(VersionChoice::Draft));
        let ask = version_from_query(&Query::parse(Some("versionNumber=4&versionState=ARCHIVED"))).unwrap().unwrap();
        assert_eq!((ask.choice, ask.number_in_state), (VersionChoice::Number(4), Some(VersionState::Archived)));
        assert_eq!(version_from_query(&Query::parse(None)).unwrap(), None);
    }

    #[test]
    fn agent_id_must_name_the_resource() {
        let body = |v: Value| v.as_object().unwrap().clone();
        assert!(same_resource(&body(json!({})), "agentId", 5).is_ok());
        assert!(same_resource(&body(json!({"agentId": 5})), "agentId", 5).is_ok());
        assert!(same_resource(&body(json!({"agentId": "5"})), "agentId", 5).is_ok());
        assert_eq!(same_resource(&body(json!({"agentId": 6})), "agentId", 5).unwrap_err().errors[0], "agentId 6 does not match resourceId 5");
        assert!(same_resource(&body(json!({"agentId": true})), "agentId", 5).is_err());
    }
}
