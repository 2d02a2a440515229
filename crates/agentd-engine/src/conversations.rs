//! Conversations: multi-turn sessions. A conversation is named by its first session's id;
//! each message becomes a follow-up session that `continues` it — the same mode, model and
//! agent version (pinned: a publish meanwhile changes nothing), with the earlier questions,
//! answers and sources. A conversation closes when asked, or once idle longer than the
//! configured time (12 hours by default); a message to a closed one is refused, and nothing
//! is deleted.

use std::time::Duration;

use agentd_domain::{Mode, ProjectId, Session, SessionId};
use agentd_store::ConversationRecord;

use crate::engine::{Engine, EngineError, NewSession};

/// How long a conversation may sit idle before it closes, by default.
pub const DEFAULT_CONVERSATION_IDLE: Duration = Duration::from_secs(12 * 3600);

impl Engine {
    /// The conversation session `id` belongs to, closed first when it has been idle too long.
    pub async fn conversation(&self, project: ProjectId, id: SessionId) -> Result<(Session, ConversationRecord), EngineError> {
        let named = self.get_session(project, id).await?;
        let root = match named.spec.conversation_id {
            Some(root) => self.get_session(project, root).await?,
            None => named,
        };
        let mut record = self.inner.store.ensure_conversation(project, root.id, root.created_at).await?;
        let now = self.inner.clock.wall();
        let idle = chrono::Duration::from_std(self.inner.conversation_idle).unwrap_or(chrono::Duration::MAX);
        if record.closed.is_none() && now - record.last_message_at > idle {
            let reason = format!("idle for more than {} hours", self.inner.conversation_idle.as_secs() / 3600);
            self.inner.store.close_conversation(root.id, now, &reason).await?;
            record.closed = Some((now, reason));
        }
        Ok((root, record))
    }

    /// Sends a message to the conversation session `id` belongs to: a follow-up session of
    /// its newest one, created and queued; refused when the conversation is closed.
    pub async fn send_message(&self, project: ProjectId, id: SessionId, text: String) -> Result<Session, EngineError> {
        let (root, record) = self.conversation(project, id).await?;
        if let Some((at, reason)) = record.closed {
            return Err(EngineError::Conflict(format!(
                "conversation {} was closed at {} ({reason}): start a new session",
                root.id,
                at.to_rfc3339()
            )));
        }
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
        let (session, _) = self.create_session_with_webhook(project, new).await?;
        self.inner.store.touch_conversation(root.id, self.inner.clock.wall()).await?;
        Ok(session)
    }

    /// Closes the conversation session `id` belongs to (its sessions stay).
    pub async fn close_conversation(&self, project: ProjectId, id: SessionId) -> Result<ConversationRecord, EngineError> {
        let (root, record) = self.conversation(project, id).await?;
        if record.closed.is_some() {
            return Err(EngineError::Conflict(format!("conversation {} is already closed", root.id)));
        }
        let now = self.inner.clock.wall();
        self.inner.store.close_conversation(root.id, now, "closed by user").await?;
        Ok(ConversationRecord { closed: Some((now, "closed by user".into())), ..record })
    }
}
