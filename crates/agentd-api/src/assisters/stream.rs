//! `GET /v1/agent/stream`: the session's progress as Server-Sent Events in the Assisters
//! framing — one `data: <json>` line and a blank line per event, no `event:` or `id:` lines
//! (keep-alive comments, `:` lines, which clients ignore, on idle stretches), ending with the
//! `done` or `error` event (both with the `sessionId` a follow-up names) and then
//! `data: [DONE]`. Refusals (400, 401, 403, 404, 429) come
//! before the stream opens, as JSON errors.

use std::collections::VecDeque;
use std::convert::Infallible;

use agentd_domain::SessionId;
use agentd_engine::EventStream;
use axum::extract::{RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::state::AppState;

use super::AgentParams;
use super::error::{AssistersError, AssistersResult};
use super::events::{Transcript, Update};

/// The payload that ends every stream.
const END: &str = "[DONE]";

/// `GET /v1/agent/stream?query=&mode=&sessionId=&maxCycles=`.
pub(super) async fn stream(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> AssistersResult<Response> {
    let params = AgentParams::from_query(query.as_deref())?;
    let (session, events) = super::start(&state, caller, params).await?;
    // `sessionId` names the conversation: the same on every follow-up.
    let feed = Feed { session: session.conversation(), events, transcript: Transcript::default(), ready: VecDeque::new(), ended: false };
    let stream = futures::stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (Ok::<_, Infallible>(event), feed)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.config.heartbeat)).into_response())
}

/// A stream's state: the session's events, what they mean so far, what is ready to send.
struct Feed {
    session: SessionId,
    events: EventStream,
    transcript: Transcript,
    ready: VecDeque<SseEvent>,
    ended: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let mut last = match self.events.next().await {
                Some(Ok(event)) => match self.transcript.read(&event) {
                    None => continue,
                    Some(Update::Progress(step)) => {
                        self.ready.push_back(data(&step));
                        continue;
                    }
                    Some(Update::Finished(Ok(answer))) => answer.done_event(self.session),
                    Some(Update::Finished(Err(error))) => error.stream_event(),
                },
                Some(Err(error)) => {
                    tracing::warn!(session_id = %self.session, %error, "assisters stream: the event stream failed");
                    AssistersError::internal(error).stream_event()
                }
                // The events end before the session only when the server stops.
                None => AssistersError::shutting_down().stream_event(),
            };
            last["sessionId"] = json!(self.session.to_string());
            self.ready.push_back(data(&last));
            self.ready.push_back(SseEvent::default().data(END));
            self.ended = true;
        }
    }
}

fn data(payload: &Value) -> SseEvent {
    SseEvent::default().data(payload.to_string())
}
