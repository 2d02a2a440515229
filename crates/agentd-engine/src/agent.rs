//! Agent plug-ins: the [`Agent`] trait each mode implements, the [`AgentRegistry`] that maps
//! modes to implementations, and the [`SessionContext`] through which an agent reports and
//! asks a person for help. An agent never touches the store or the status directly.

use std::collections::HashMap;
use std::sync::Arc;

use agentd_domain::{
    EventKind, Mode, NewEvent, ProjectId, ResponseType, SessionId, SessionSpec,
    SessionStatus, Transition, Usage,
};
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::event_log::{SharedEvent, committed};
use crate::live::{InputAnswer, LiveSession, PendingRequest};

/// What a finished agent hands back.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer.
    pub response: Value,
    /// How to read it.
    pub response_type: ResponseType,
}

/// Why an agent stopped without completing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The task failed; `reason` is a short machine-readable cause (`max_actions`, ...).
    #[error("{message}")]
    Failed {
        /// What went wrong, for the user.
        message: String,
        /// A short code for the cause.
        reason: String,
    },
    /// The session ended under the agent (stopped, timed out): unwind quietly.
    #[error("the session has ended")]
    Ended,
    /// A person's decision ends the session as `stopped` (a denied safety check); `reason`
    /// goes into the `stopped` event.
    #[error("stopped: {reason}")]
    Stopped {
        /// Why, for the user.
        reason: String,
    },
}

impl AgentError {
    /// A failure with a reason code.
    pub fn failed(reason: impl Into<String>, message: impl Into<String>) -> Self {
        AgentError::Failed {
            message: message.into(),
            reason: reason.into(),
        }
    }
}

/// One kind of agent. `run` drives a session from start to completion; returning `Ok`
/// completes it, `Err(Failed)` fails it. The engine owns timeouts, stop and pause.
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// Works on the session until done.
    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError>;

    /// Whether this agent can take a session like `spec` (it has what it needs: an LLM,
    /// a browser); the error names the field or setting at fault. Checked at create time.
    fn admit(&self, _spec: &SessionSpec) -> Result<(), agentd_domain::FieldError> {
        Ok(())
    }
}

/// Which agent runs which mode. A mode with no implementation cannot be used.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    agents: HashMap<Mode, Arc<dyn Agent>>,
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `agent` for `mode`, replacing any earlier one.
    pub fn register(&mut self, mode: Mode, agent: Arc<dyn Agent>) -> &mut Self {
        self.agents.insert(mode, agent);
        self
    }

    /// The agent for `mode`.
    pub fn get(&self, mode: Mode) -> Option<Arc<dyn Agent>> {
        self.agents.get(&mode).cloned()
    }

    /// The modes that have an implementation.
    pub fn modes(&self) -> Vec<Mode> {
        Mode::ALL.iter().copied().filter(|m| self.agents.contains_key(m)).collect()
    }
}

/// An agent's window on its session.
#[derive(Clone)]
pub struct SessionContext {
    pub(crate) live: Arc<LiveSession>,
    /// Runs the user tools the session may call.
    pub(crate) tools: crate::tools::ToolBox,
    /// Those tools, resolved on first use.
    pub(crate) user_tools: Arc<tokio::sync::OnceCell<crate::session_tools::Resolved>>,
}

impl SessionContext {
    /// The session's id.
    pub fn session_id(&self) -> SessionId {
        self.live.id
    }

    /// The owning project.
    pub fn project_id(&self) -> ProjectId {
        self.live.project_id
    }

    /// What the session asks for.
    pub fn spec(&self) -> &SessionSpec {
        &self.live.spec
    }

    /// The session's secret values; None when the spec names secrets whose values are gone
    /// (they live in memory only, and the server restarted since the session was created).
    pub fn secrets(&self) -> Option<agentd_domain::Secrets> {
        match self.live.secrets.get() {
            Some(secrets) => Some(secrets.clone()),
            None if self.live.spec.secret_names.is_empty() => Some(agentd_domain::Secrets::default()),
            None => None,
        }
    }

    /// Records an event; returns it once committed.
    pub async fn emit(&self, kind: EventKind, data: Value) -> Result<SharedEvent, AgentError> {
        let pending = self
            .live
            .append(NewEvent::new(kind, data))
            .map_err(|_| AgentError::Ended)?;
        first(committed(pending).await)
    }

    /// Lends the engine a way to capture what the session's browser shows (status views and
    /// the live page ask for it); `None` withdraws it.
    pub fn show_screen(&self, source: Option<crate::ScreenSource>) {
        self.live.screen.show(source);
    }

    /// Keeps a capture of the screen in the store: call it before closing the browser, so
    /// the session's last look stays visible after it ends.
    pub async fn keep_screen(&self) {
        self.live.screen.keep(self.live.id).await;
    }

    /// Adds token usage and cost to the session's total.
    pub fn add_usage(&self, usage: &Usage) {
        let mut state = self.live.lock();
        state.usage.input_tokens += usage.input_tokens;
        state.usage.output_tokens += usage.output_tokens;
        state.usage.cost_usd += usage.cost_usd;
    }

    /// Call before each step: waits while the session is paused; `Err(Ended)` once it ended.
    pub async fn checkpoint(&self) -> Result<(), AgentError> {
        let mut status = self.live.watch_status();
        loop {
            let now = *status.borrow_and_update();
            if now.is_terminal() {
                return Err(AgentError::Ended);
            }
            if now != SessionStatus::Paused {
                return Ok(());
            }
            if status.changed().await.is_err() {
                return Err(AgentError::Ended);
            }
        }
    }

    /// Asks a person for a value (`field_name`, with the reason shown to them) and waits.
    pub async fn request_input(&self, field_name: &str, reason: &str) -> Result<String, AgentError> {
        let data = json!({"kind": "input", "field_name": field_name, "reason": reason});
        match self.ask_person(false, data).await? {
            InputAnswer::Text(text) => Ok(text),
            InputAnswer::Permission(_) => Err(AgentError::failed("bad_answer", "expected a text answer")),
        }
    }

    /// Asks a person for permission and waits; `false` when denied.
    pub async fn request_permission(&self, reason: &str) -> Result<bool, AgentError> {
        let data = json!({"kind": "permission", "reason": reason});
        match self.ask_person(true, data).await? {
            InputAnswer::Permission(granted) => Ok(granted),
            InputAnswer::Text(_) => Err(AgentError::failed("bad_answer", "expected granted true/false")),
        }
    }

    async fn ask_person(&self, permission: bool, mut data: Value) -> Result<InputAnswer, AgentError> {
        let id = format!("req_{}", Uuid::now_v7().simple());
        data["request_id"] = json!(id);
        let (reply, answer) = oneshot::channel();
        let request = PendingRequest::Input {
            id,
            permission,
            reply,
        };
        self.wait_on_person(EventKind::InputRequested, data, request, answer)
            .await
    }

    /// Raises a safety check (`code`, `message`) and waits; `true` when a person confirms.
    pub async fn safety_check(&self, code: &str, message: &str) -> Result<bool, AgentError> {
        let id = format!("sc_{}", Uuid::now_v7().simple());
        let data = json!({"check_id": id, "code": code, "message": message});
        let (reply, answer) = oneshot::channel();
        let request = PendingRequest::SafetyCheck { id, reply };
        self.wait_on_person(EventKind::SafetyCheckPending, data, request, answer)
            .await
    }

    async fn wait_on_person<T>(
        &self,
        kind: EventKind,
        data: Value,
        request: PendingRequest,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, AgentError> {
        self.checkpoint().await?;
        let changed = self
            .live
            .transition(Transition::AwaitPerson, NewEvent::new(kind, data), |state, _| {
                state.pending = Some(request);
            })
            .map_err(|_| AgentError::Ended)?;
        first(committed(changed.pending).await)?;
        let answer = tokio::select! {
            answer = answer => match answer {
                Ok(answer) => answer,
                // Nobody will answer because the session ended, or because the answer given
                // could not be recorded (the engine drops it rather than act on it).
                Err(_) if self.live.status().is_terminal() => return Err(AgentError::Ended),
                Err(_) => return Err(AgentError::failed("store", "the person's answer could not be recorded")),
            },
            _ = self.live.cancel.cancelled() => return Err(AgentError::Ended),
        };
        // An answer given while paused is held until the session is resumed.
        self.checkpoint().await?;
        Ok(answer)
    }
}

fn first(
    result: Result<Vec<SharedEvent>, crate::event_log::AppendError>,
) -> Result<SharedEvent, AgentError> {
    match result {
        Ok(mut events) if !events.is_empty() => Ok(events.swap_remove(0)),
        Ok(_) => Err(AgentError::Ended),
        Err(error) => Err(AgentError::failed("store", format!("could not record an event: {error}"))),
    }
}
