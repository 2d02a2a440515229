//! A session's events as an Assisters client sees them: the one mapping the run and the
//! stream share ([`Transcript::read`]).
//!
//! `thought` → `{"type": "step", "message"}`; `action` → `{"type": "tool", "name", "status":
//! "completed" | "failed"}` (both with `cycle` when the agent gave one); `completed` → the
//! answer; `failed`, `timed_out`, `stopped` → an [`AssistersError`]. Other events are not
//! shown. A completed session's `response` is the research agent's JSON `{answer, steps,
//! sources, cycles}`; any other response (a plain string) is the answer itself, with no
//! sources and the steps this transcript collected.

use agentd_domain::{Event, EventKind, SessionId, describe};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::AssistersError;

/// What one event means to the client.
#[derive(Debug, PartialEq)]
pub(super) enum Update {
    /// Progress (`step` or `tool`): a stream event, and a step of the run.
    Progress(Value),
    /// The session ended: its answer, or why it has none.
    Finished(Result<Answer, AssistersError>),
}

/// The final result of a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    pub answer: String,
    pub steps: Vec<Value>,
    pub sources: Vec<Value>,
    pub cycles: u64,
}

impl Answer {
    /// The stream's `done` event (with `sessionId`, which a follow-up names).
    pub fn done_event(&self, session: SessionId) -> Value {
        json!({"type": "done", "answer": self.answer, "sources": self.sources, "steps": self.steps, "sessionId": session.to_string()})
    }

    /// The body of `POST /v1/agent/run`.
    pub fn run_body(&self, session: SessionId, mode: &str) -> Value {
        json!({
            "answer": self.answer,
            "steps": self.steps,
            "sources": self.sources,
            "sessionId": session.to_string(),
            "mode": mode,
            "cycles": self.cycles,
        })
    }
}

/// A session's progress so far, built event by event.
#[derive(Debug, Default)]
pub(super) struct Transcript {
    steps: Vec<Value>,
    /// The highest cycle an event named.
    cycle: u64,
}

impl Transcript {
    /// Reads the next event of the session; None for events the client does not see.
    pub fn read(&mut self, event: &Event) -> Option<Update> {
        let data = &event.data;
        let cycle = data["cycle"].as_u64();
        self.cycle = self.cycle.max(cycle.unwrap_or(0));
        let mut step = match event.kind {
            EventKind::Thought => {
                let text = |key: &str| data[key].as_str().map(str::trim).filter(|t| !t.is_empty());
                json!({"type": "step", "message": text("thought").or_else(|| text("next_goal"))?})
            }
            EventKind::Action => {
                let status = if data["ok"] == false { "failed" } else { "completed" };
                json!({"type": "tool", "name": data["name"].as_str()?, "status": status})
            }
            EventKind::Completed => return Some(Update::Finished(Ok(self.answer(&data["response"])))),
            EventKind::Failed => return Some(Update::Finished(Err(failure(data)))),
            EventKind::TimedOut => {
                let message = describe(event.kind, data);
                return Some(Update::Finished(Err(AssistersError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", "agent_timeout", message))));
            }
            EventKind::Stopped => {
                let reason = data["reason"].as_str().unwrap_or("stopped");
                let message = format!("the agent session was stopped: {reason}");
                return Some(Update::Finished(Err(AssistersError::new(StatusCode::CONFLICT, "invalid_request_error", "session_stopped", message))));
            }
            _ => return None,
        };
        if let Some(cycle) = cycle {
            step["cycle"] = json!(cycle);
        }
        self.steps.push(step.clone());
        Some(Update::Progress(step))
    }

    fn answer(&self, response: &Value) -> Answer {
        let list = |value: &Value| value.as_array().cloned();
        match response {
            Value::Object(result) if result.get("answer").is_some_and(Value::is_string) => Answer {
                answer: result["answer"].as_str().unwrap_or_default().to_owned(),
                steps: result.get("steps").and_then(list).unwrap_or_else(|| self.steps.clone()),
                sources: result.get("sources").and_then(list).unwrap_or_default(),
                cycles: result.get("cycles").and_then(Value::as_u64).unwrap_or(self.cycles()),
            },
            other => Answer {
                answer: match other {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    json => json.to_string(),
                },
                steps: self.steps.clone(),
                sources: Vec::new(),
                cycles: self.cycles(),
            },
        }
    }

    /// Cycles run: the highest an event named; a session that answered ran at least one.
    fn cycles(&self) -> u64 {
        self.cycle.max(1)
    }
}

/// Why a failed session has no answer: the server stopping is a 503 (retry later); anything
/// else is the agent's failure, a 500 with the session's error.
fn failure(data: &Value) -> AssistersError {
    if matches!(data["reason"].as_str(), Some("shutdown" | "interrupted")) {
        return AssistersError::shutting_down();
    }
    let message = data["error"].as_str().filter(|m| !m.is_empty()).unwrap_or("the agent failed");
    AssistersError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "agent_failed", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, data: Value) -> Event {
        Event { session_id: SessionId::new(), seq: 1, kind, data, created_at: chrono::Utc::now() }
    }

    fn progress(t: &mut Transcript, kind: EventKind, data: Value) -> Option<Value> {
        match t.read(&event(kind, data)) {
            Some(Update::Progress(v)) => Some(v),
            None => None,
            other => panic!("expected progress, got {other:?}"),
        }
    }

    fn finished(t: &mut Transcript, kind: EventKind, data: Value) -> Result<Answer, AssistersError> {
        match t.read(&event(kind, data)) {
            Some(Update::Finished(outcome)) => outcome,
            other => panic!("expected the end, got {other:?}"),
        }
    }

    #[test]
    fn thoughts_and_actions_become_steps_and_tools() {
        let mut t = Transcript::default();
        assert_eq!(progress(&mut t, EventKind::Thought, json!({"cycle": 1, "thought": "Searching the web"})), Some(json!({"type": "step", "message": "Searching the web", "cycle": 1})));
        assert_eq!(progress(&mut t, EventKind::Thought, json!({"got": "x"})), None, "a thought without text is not shown");
        assert_eq!(
            progress(&mut t, EventKind::Action, json!({"name": "web_search", "ok": true, "description": "q"})),
            Some(json!({"type": "tool", "name": "web_search", "status": "completed"}))
        );
        assert_eq!(
            progress(&mut t, EventKind::Action, json!({"name": "fetch_url", "ok": false, "cycle": 2})),
            Some(json!({"type": "tool", "name": "fetch_url", "status": "failed", "cycle": 2}))
        );
        assert_eq!(progress(&mut t, EventKind::Started, json!({})), None);
        assert_eq!(progress(&mut t, EventKind::Log, json!({"message": "x"})), None);
        let answer = finished(&mut t, EventKind::Completed, json!({"response": "plain text", "response_type": "STRING"})).unwrap();
        assert_eq!(answer.answer, "plain text");
        assert_eq!((answer.steps.len(), answer.sources.len(), answer.cycles), (3, 0, 2));
    }

    #[test]
    fn the_research_agents_result_is_read_as_is() {
        let mut t = Transcript::default();
        progress(&mut t, EventKind::Thought, json!({"thought": "x"}));
        let response = json!({"answer": "# A [1]", "steps": [{"type": "step", "message": "s"}], "sources": [{"url": "https://a.example", "title": "A", "snippet": "a"}], "cycles": 3});
        let answer = finished(&mut t, EventKind::Completed, json!({"response": response, "response_type": "JSON"})).unwrap();
        let id = SessionId::new();
        assert_eq!(
            answer.done_event(id),
            json!({"type": "done", "answer": "# A [1]", "sources": response["sources"], "steps": response["steps"], "sessionId": id.to_string()})
        );
        assert_eq!(answer.cycles, 3);
        let body = answer.run_body(id, "research");
        assert_eq!((body["sessionId"].as_str(), body["mode"].as_str()), (Some(id.to_string().as_str()), Some("research")));
    }

    #[test]
    fn endings_without_an_answer_map_to_statuses() {
        let mut t = Transcript::default();
        let failed = finished(&mut t, EventKind::Failed, json!({"error": "the model refused", "reason": "llm"})).unwrap_err();
        assert_eq!((failed.status.as_u16(), failed.kind, failed.code, failed.message.as_str()), (500, "server_error", "agent_failed", "the model refused"));
        assert_eq!(failed.stream_event(), json!({"type": "error", "error": {"message": "the model refused", "type": "server_error", "code": "agent_failed"}, "message": "the model refused"}));
        let shutdown = finished(&mut t, EventKind::Failed, json!({"error": "server stopping", "reason": "shutdown"})).unwrap_err();
        assert_eq!(shutdown.status.as_u16(), 503);
        let timed_out = finished(&mut t, EventKind::TimedOut, json!({"reason": "overall", "seconds": 30})).unwrap_err();
        assert_eq!((timed_out.status.as_u16(), timed_out.code), (504, "agent_timeout"));
        let stopped = finished(&mut t, EventKind::Stopped, json!({"reason": "stopped by user"})).unwrap_err();
        assert_eq!((stopped.status.as_u16(), stopped.code), (409, "session_stopped"));
    }
}
