//! Conversations over the native API: `POST /v1/sessions/{id}/messages` sends a message to
//! the conversation a session belongs to (a follow-up session answers it),
//! `POST /v1/sessions/{id}/close` closes it, `GET /v1/sessions/{id}/conversation` shows it.

use std::time::Duration;

use agentd_domain::SessionId;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
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
    /// The message (required).
    pub text: Option<String>,
    /// Wait for the answer (default true; at most 5 minutes, then the session as it is).
    pub wait: Option<bool>,
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
#[utoipa::path(post, path = "/v1/sessions/{id}/messages", tag = "conversations", request_body = MessageRequest,
    params(("id" = String, Path, description = "A session of the conversation")),
    responses((status = 201, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MessageRequest>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let id = session_id(&id)?;
    let text = req.text.map(|t| t.trim().to_owned()).unwrap_or_default();
    if text.is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::invalid("text", format!("text is required, at most {MAX_MESSAGE_CHARS} characters")));
    }
    let session = state.engine.send_message(caller.project_id, id, text).await?;
    if req.wait.unwrap_or(true) {
        state.engine.wait_ended(caller.project_id, session.id, MAX_WAIT).await?;
    }
    let session = state.engine.get_session(caller.project_id, session.id).await?;
    Ok((StatusCode::CREATED, Json((&session).into())))
}

/// Close the session's conversation (its sessions stay; further messages are refused).
#[utoipa::path(post, path = "/v1/sessions/{id}/close", tag = "conversations", params(("id" = String, Path, description = "A session of the conversation")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn close(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ConversationView>> {
    let record = state.engine.close_conversation(caller.project_id, session_id(&id)?).await?;
    Ok(Json(conversation_view(&record)))
}

/// The session's conversation: open or closed (and why).
#[utoipa::path(get, path = "/v1/sessions/{id}/conversation", tag = "conversations", params(("id" = String, Path, description = "A session of the conversation")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_conversation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ConversationView>> {
    let (_, record) = state.engine.conversation(caller.project_id, session_id(&id)?).await?;
    Ok(Json(conversation_view(&record)))
}
