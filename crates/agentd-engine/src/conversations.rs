//! Conversations: multi-turn sessions. A conversation is named by its first session's id;
//! each message becomes a follow-up session that `continues` it — the same mode, model and
//! agent version (pinned: a publish meanwhile changes nothing), with the earlier questions,
//! answers and sources. A conversation may also be made before its first message
//! ([`Engine::create_conversation`]): it then holds the spec its turns start from (the agent
//! version resolved when it was made), and its first message becomes the session whose id
//! is the conversation's — from there on it is like any other. A conversation closes when
//! asked, or once idle longer than the configured time (12 hours by default); a message to
//! a closed one is refused, and nothing is deleted.

use std::time::Duration;

use agentd_domain::{Mode, Priority, ProjectId, Session, SessionId, SessionSpec};
use agentd_store::ConversationRecord;

use crate::engine::{Engine, EngineError, NewSession};

/// How long a conversation may sit idle before it closes, by default.
pub const DEFAULT_CONVERSATION_IDLE: Duration = Duration::from_secs(12 * 3600);

impl Engine {
    /// Makes a conversation before its first message: its turns start from `opening` (the
    /// goal is each message). Refused for browser agents, whose sessions take no messages.
    pub async fn create_conversation(&self, project: ProjectId, mut opening: SessionSpec) -> Result<ConversationRecord, EngineError> {
        if opening.mode == Mode::Browser {
            return Err(EngineError::Conflict(
                "browser agents hold no conversations: run each goal as a session of its own".into(),
            ));
        }
        let Some(agent) = self.inner.registry.get(opening.mode) else {
            return Err(EngineError::ModeUnavailable(opening.mode));
        };
        agent.admit(&opening)?;
        opening.goal.clear();
        opening.continues = None;
        opening.conversation_id = None;
        opening.conversation.clear();
        let (id, now) = (SessionId::new(), self.inner.clock.wall());
        self.inner.store.insert_conversation(project, id, now, &opening).await?;
        Ok(ConversationRecord { id, project_id: project, last_message_at: now, closed: None, opening: Some(opening) })
    }

    /// The conversation `id` names — by any of its sessions, or by its own id before its
    /// first message — with its first session when it has one; closed first when it has
    /// been idle too long.
    pub async fn conversation(&self, project: ProjectId, id: SessionId) -> Result<(Option<Session>, ConversationRecord), EngineError> {
        let (root, mut record) = match self.get_session(project, id).await {
            Ok(named) => {
                let root = match named.spec.conversation_id {
                    Some(root) => self.get_session(project, root).await?,
                    None => named,
                };
                let record = self.inner.store.ensure_conversation(project, root.id, root.created_at).await?;
                (Some(root), record)
            }
            Err(EngineError::NotFound) => {
                let record = self.inner.store.get_conversation(project, id).await?.ok_or(EngineError::NotFound)?;
                (None, record)
            }
            Err(other) => return Err(other),
        };
        let now = self.inner.clock.wall();
        let idle = chrono::Duration::from_std(self.inner.conversation_idle).unwrap_or(chrono::Duration::MAX);
        if record.closed.is_none() && now - record.last_message_at > idle {
            let reason = format!("idle for more than {} hours", self.inner.conversation_idle.as_secs() / 3600);
            self.inner.store.close_conversation(record.id, now, &reason).await?;
            record.closed = Some((now, reason));
        }
        Ok((root, record))
    }

    /// The spec the conversation's turns start from: its first session's, or the one it was
    /// made with.
    pub fn conversation_spec<'a>(root: Option<&'a Session>, record: &'a ConversationRecord) -> Option<&'a SessionSpec> {
        root.map(|r| &r.spec).or(record.opening.as_ref())
    }

    /// Sends a message to the conversation `id` names: its first session, or a follow-up
    /// session of its newest one, created and queued; refused when the conversation is
    /// closed.
    pub async fn send_message(&self, project: ProjectId, id: SessionId, text: String) -> Result<Session, EngineError> {
        let (root, record) = self.conversation(project, id).await?;
        if let Some((at, reason)) = &record.closed {
            return Err(EngineError::Conflict(format!(
                "conversation {} was closed at {} ({reason}): start a new session",
                record.id,
                at.to_rfc3339()
            )));
        }
        let session = match root {
            Some(root) => self.follow_up(project, id, &root, text).await?,
            None => self.first_message(project, &record, text).await?,
        };
        self.inner.store.touch_conversation(record.id, self.inner.clock.wall()).await?;
        Ok(session)
    }

    async fn follow_up(&self, project: ProjectId, id: SessionId, root: &Session, text: String) -> Result<Session, EngineError> {
        if root.spec.mode == Mode::Browser {
            return Err(EngineError::Conflict("browser sessions take no messages: start a new session with the next goal".into()));
        }
        let mut spec = root.spec.clone();
        spec.goal = text;
        spec.continues = Some(id);
        spec.conversation.clear();
        spec.conversation_id = None;
        let new = NewSession {
            spec,
            name: root.name.clone(),
            tags: root.tags.clone(),
            priority: root.priority,
            user_id: root.user_id.clone(),
            metadata: root.metadata.clone(),
            secrets: Default::default(),
            webhook_format: (crate::webhooks::NATIVE.into(), serde_json::json!({})),
        };
        Ok(self.create_session_with_webhook(project, new).await?.0)
    }

    /// The first message of a conversation made before it: the session named as the
    /// conversation. Two first messages at once: the second is refused.
    async fn first_message(&self, project: ProjectId, record: &ConversationRecord, text: String) -> Result<Session, EngineError> {
        let Some(opening) = record.opening.clone() else {
            return Err(EngineError::NotFound);
        };
        let new = NewSession {
            spec: SessionSpec { goal: text, ..opening },
            name: None,
            tags: Vec::new(),
            priority: Priority::Normal,
            user_id: None,
            metadata: Default::default(),
            secrets: Default::default(),
            webhook_format: (crate::webhooks::NATIVE.into(), serde_json::json!({})),
        };
        match self.create_session_as(project, new, Some(record.id)).await {
            Ok((session, _)) => Ok(session),
            Err(EngineError::Store(error)) => match self.get_session(project, record.id).await {
                Ok(_) => Err(EngineError::Conflict(format!(
                    "conversation {} is answering its first message: send the next one once it has answered",
                    record.id
                ))),
                Err(_) => Err(EngineError::Store(error)),
            },
            Err(other) => Err(other),
        }
    }

    /// Closes the conversation `id` names (its sessions stay).
    pub async fn close_conversation(&self, project: ProjectId, id: SessionId) -> Result<ConversationRecord, EngineError> {
        let (_, record) = self.conversation(project, id).await?;
        if record.closed.is_some() {
            return Err(EngineError::Conflict(format!("conversation {} is already closed", record.id)));
        }
        let now = self.inner.clock.wall();
        self.inner.store.close_conversation(record.id, now, "closed by user").await?;
        Ok(ConversationRecord { closed: Some((now, "closed by user".into())), ..record })
    }
}
