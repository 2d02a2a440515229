//! Conversations over the native API: `POST /v1/sessions/{id}/messages` sends a message to
//! the conversation a session belongs to (a follow-up session answers it),
//! `POST /v1/sessions/{id}/close` closes it, `GET /v1/sessions/{id}/conversation` shows it.
//! A message may be spoken (`audio`, transcribed first) and its answer asked for spoken
//! (`audio_output`), through [`crate::speech`].

use std::time::Duration;

use agentd_domain::{Session, SessionId, SessionStatus};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::speech::{self, AudioInput, AudioOutputRequest, AudioView};
use crate::extract::{JsonBody, parse_id};
use crate::state::AppState;
use crate::wire::SessionView;

/// The longest a message waits for its answer before the call returns the session as it is.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Characters of a message.
const MAX_MESSAGE_CHARS: usize = 20_000;

/// `POST /v1/sessions/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The message (this or `audio`).
    pub text: Option<String>,
    /// The message spoken (this or `text`): transcribed by the server's speech provider, and
    /// the transcript sent as the message. Refused when no speech provider is configured.
    pub audio: Option<AudioInput>,
    /// Ask for the answer spoken too (`true`, or `{voice, format}`); needs `wait`.
    pub audio_output: Option<AudioOutputRequest>,
    /// Wait for the answer (default true; at most 5 minutes, then the session as it is).
    pub wait: Option<bool>,
}

/// The follow-up session that answers a message, and the audio around it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// What the audio said, when the message was audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<String>,
    /// The answer spoken, when `audio_output` asked for it and the session completed with an
    /// answer in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioView>,
    /// Why the answer could not be spoken (the message was sent and answered all the same, so
    /// it is not an error of the call: sending it again would ask again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_error: Option<ErrorDetail>,
}

/// The goal a conversation is opened with before its first message (never run: each message
/// is a turn).
pub(crate) const OPENING_GOAL: &str = "(conversation opened; each message is a turn)";

/// `POST /v1/conversations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    /// The agent (required; a chat, research or coding agent).
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: Option<String>,
    /// A version number (default: the published version).
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub agent_version: Option<i64>,
    /// DRAFT or PUBLISHED.
    #[schema(pattern = r"^\s*([Dd][Rr][Aa][Ff][Tt]|[Pp][Uu][Bb][Ll][Ii][Ss][Hh][Ee][Dd])\s*$")]
    pub version_state: Option<String>,
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    /// Its id: its first session's.
    pub id: String,
    /// open | closed.
    pub status: String,
    /// When its last message came.
    pub last_message_at: DateTime<Utc>,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Why.
    pub close_reason: Option<String>,
}

fn conversation_view(record: &agentd_store::ConversationRecord) -> ConversationView {
    ConversationView {
        id: record.id.to_string(),
        status: if record.closed.is_some() { "closed" } else { "open" }.to_owned(),
        last_message_at: record.last_message_at,
        closed_at: record.closed.as_ref().map(|(at, _)| *at),
        close_reason: record.closed.as_ref().map(|(_, why)| why.clone()),
    }
}

fn session_id(raw: &str) -> ApiResult<SessionId> {
    parse_id("id", raw)
}

/// Send a message to the session's conversation: a follow-up session answers it (the same
/// agent version, the earlier turns in context). Refused once the conversation is closed.
///
/// The message is `text`, or `audio` transcribed by the server's speech provider (the
/// response's `transcription`); `audio_output` asks for the answer spoken too (the response's
/// `audio`). Without a speech provider (`AGENTD_SPEECH_URL`) both are refused with a 400
/// naming the field; a speech provider that fails is a 502 (`upstream_failed`) before the
/// message is sent, or the response's `audio_error` after it was answered.
#[utoipa::path(post, path = "/v1/sessions/{id}/messages", tag = "conversations", request_body = MessageRequest,
    params(("id" = uuid::Uuid, Path, description = "A session of the conversation")),
    responses((status = 201, body = MessageView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MessageRequest>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let id = session_id(&id)?;
    // Everything is checked before the speech provider is paid or anything is stored.
    let audio = match (&req.text, &req.audio) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("audio", "give the message as text or as audio, not both")),
        (None, Some(audio)) => Some(speech::parse_audio(&state, "audio", audio)?),
        _ => None,
    };
    let output = speech::parse_audio_output(&state, "audio_output", req.audio_output.as_ref())?;
    let wait = req.wait.unwrap_or(true);
    if output.is_some() && !wait {
        return Err(ApiError::invalid("audio_output", "audio_output needs the answer: leave wait out or set it to true"));
    }
    let (text, transcription) = match &audio {
        Some(clip) => {
            // An unknown session is a 404 before the audio is paid for.
            state.engine.get_session(caller.project_id, id).await?;
            let heard = speech::transcribe(&state, "audio", clip).await?;
            if heard.is_empty() || heard.chars().count() > MAX_MESSAGE_CHARS {
                return Err(ApiError::invalid("audio", format!("the audio must say something, at most {MAX_MESSAGE_CHARS} characters once transcribed")));
            }
            (heard.clone(), Some(heard))
        }
        None => {
            let text = req.text.as_deref().map(str::trim).unwrap_or_default();
            if text.is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
                return Err(ApiError::invalid("text", format!("text (or audio) is required, at most {MAX_MESSAGE_CHARS} characters")));
            }
            (text.to_owned(), None)
        }
    };
    let session = state.engine.send_message(caller.project_id, id, text).await?;
    if wait {
        state.engine.wait_ended(caller.project_id, session.id, MAX_WAIT).await?;
    }
    let session = state.engine.get_session(caller.project_id, session.id).await?;
    let (audio, audio_error) = match output {
        Some(output) => speak_answer(&state, &session, &output).await,
        None => (None, None),
    };
    let view = MessageView { session: (&session).into(), transcription, audio, audio_error };
    Ok((StatusCode::CREATED, Json(view)))
}

/// The session's answer spoken, or why it could not be.
async fn speak_answer(state: &AppState, session: &Session, output: &speech::AudioOutput) -> (Option<AudioView>, Option<ErrorDetail>) {
    let text = match (session.status, session.response.as_ref().and_then(speech::spoken_text)) {
        (SessionStatus::Completed, Some(text)) => text,
        (status, _) => {
            let why = if status == SessionStatus::Completed {
                "the answer has no words to speak".to_owned()
            } else {
                format!("the session has no answer to speak: it is {}", status.as_str())
            };
            return (None, Some(ApiError::invalid("audio_output", why).body().error));
        }
    };
    match speech::speak(state, "audio_output", &text, output).await {
        Ok(speech) => (Some(speech.into()), None),
        Err(error) => (None, Some(error.body().error)),
    }
}

/// Open a conversation with an agent before its first message, pinned to the agent version
/// resolved now; its id takes messages (`POST /v1/sessions/{id}/messages`), the first of which
/// becomes the session of that id.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", request_body = CreateConversationRequest,
    responses((status = 201, body = ConversationView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateConversationRequest>,
) -> ApiResult<(StatusCode, Json<ConversationView>)> {
    if req.agent_id.is_none() {
        return Err(ApiError::invalid("agent_id", "agent_id is required: a conversation is held with an agent"));
    }
    let mut opening = crate::wire::CreateSessionRequest {
        goal: Some(OPENING_GOAL.to_owned()),
        agent_id: req.agent_id,
        agent_version: req.agent_version,
        version_state: req.version_state,
        ..Default::default()
    };
    let version = crate::agents::pin_session(&state, caller, &mut opening).await?.expect("agent_id was given");
    let mut new = crate::sessions::parse_create(opening, &state.config.sessions)?;
    crate::agents::pin(&mut new, version);
    let record = state.engine.create_conversation(caller.project_id, new.spec).await?;
    Ok((StatusCode::CREATED, Json(conversation_view(&record))))
}

/// Close the session's conversation (its sessions stay; further messages are refused).
#[utoipa::path(post, path = "/v1/sessions/{id}/close", tag = "conversations", params(("id" = uuid::Uuid, Path, description = "A session of the conversation")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn close(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ConversationView>> {
    let record = state.engine.close_conversation(caller.project_id, session_id(&id)?).await?;
    Ok(Json(conversation_view(&record)))
}

/// The session's conversation: open or closed (and why).
#[utoipa::path(get, path = "/v1/sessions/{id}/conversation", tag = "conversations", params(("id" = uuid::Uuid, Path, description = "A session of the conversation")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_conversation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ConversationView>> {
    let (_, record) = state.engine.conversation(caller.project_id, session_id(&id)?).await?;
    Ok(Json(conversation_view(&record)))
}
