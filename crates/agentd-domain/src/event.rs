//! Events: the append-only, gap-free record of everything that happened in a session.
//! Every stream (SSE, WebSocket, webhooks, the compatible APIs) is a projection of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SessionId;

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal),+ $(,)?) => {
        /// What an event records. The wire name is the SSE `event:` field and the JSON `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $($(#[$doc])* #[serde(rename = $wire)] $variant),+
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $wire),+ }
            }
        }
    };
}

event_kinds! {
    /// The runner picked the session up.
    Started = "started",
    /// A browser context is ready for the session.
    BrowserStarted = "browser_started",
    /// The agent's reasoning for a step: thought, memory, next goal.
    Thought = "thought",
    /// The agent acted (a short name and a human-readable description).
    Action = "action",
    /// What the agent observed (page state, a screenshot reference, a fetched page).
    Observation = "observation",
    /// A message in the conversation (user or assistant).
    Message = "message",
    /// A diagnostic line worth keeping with the session.
    Log = "log",
    /// The agent asked a person for input or a permission.
    InputRequested = "input_requested",
    /// A person answered an input or permission request.
    InputReceived = "input_received",
    /// The agent raised a safety check that needs confirming.
    SafetyCheckPending = "safety_check_pending",
    /// A person confirmed or denied a safety check.
    SafetyCheckResolved = "safety_check_resolved",
    /// A user paused the session.
    Paused = "paused",
    /// A user resumed the session.
    Resumed = "resumed",
    /// Terminal: the task is done (response, response type, usage, cost).
    Completed = "completed",
    /// Terminal: something failed (error, reason).
    Failed = "failed",
    /// Terminal: a user stopped the session.
    Stopped = "stopped",
    /// Terminal: a timeout ended the session.
    TimedOut = "timed_out",
}

impl EventKind {
    /// True for the kinds that end a session; the last event of every finished session is one.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::Completed | EventKind::Failed | EventKind::Stopped | EventKind::TimedOut
        )
    }
}

/// An event before it is stored: what happened, without its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// Details; a JSON object.
    pub data: Value,
}

impl NewEvent {
    /// An event of `kind` with `data`.
    pub fn new(kind: EventKind, data: Value) -> Self {
        Self { kind, data }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its place in the session's log: 1, 2, 3 ... with no gaps.
    pub seq: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Details.
    pub data: Value,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
}

impl Event {
    /// The event as one line for a person (log views, the live page); see [`describe`].
    pub fn line(&self) -> String {
        describe(self.kind, &self.data)
    }
}

/// One line for a person about an event of `kind` with `data`, for every kind: the one
/// wording every log view shares (the Computer Use Agent API's `logs`, the live page).
pub fn describe(kind: EventKind, data: &Value) -> String {
    let text = |key: &str| one_line(data[key].as_str().unwrap_or_default());
    let either = |a: &str, b: &str| Some(text(a)).filter(|t| !t.is_empty()).unwrap_or_else(|| text(b));
    match kind {
        EventKind::Started => "Session started".into(),
        EventKind::BrowserStarted => format!("Starting browser at {}", text("url")),
        EventKind::Thought => {
            let thought = either("thought", "next_goal");
            match data["step"].as_u64() {
                Some(step) if thought.is_empty() => format!("Step {step}"),
                Some(step) => format!("Step {step}: {thought}"),
                None => thought,
            }
        }
        EventKind::Action if data["ok"] == false => {
            format!("Action {} failed: {}", text("name"), either("error", "description"))
        }
        EventKind::Action => format!("Action {}: {}", text("name"), text("description")),
        EventKind::Observation => Some(either("summary", "message")).filter(|t| !t.is_empty()).unwrap_or_else(|| "Observation".into()),
        EventKind::Message => Some(either("content", "text")).filter(|t| !t.is_empty()).unwrap_or_else(|| "Message".into()),
        EventKind::Log => Some(text("message")).filter(|t| !t.is_empty()).unwrap_or_else(|| "Log".into()),
        EventKind::InputRequested if data["kind"] == "permission" => {
            format!("Waiting for permission: {}", text("reason"))
        }
        EventKind::InputRequested => format!("Waiting for input `{}`: {}", text("field_name"), text("reason")),
        EventKind::InputReceived if data["kind"] == "permission" => {
            let granted = data["granted"].as_bool().unwrap_or(false);
            format!("Permission {}", if granted { "granted" } else { "denied" })
        }
        EventKind::InputReceived => "Input received".into(),
        EventKind::SafetyCheckPending => format!("Safety check {}: {}", text("code"), text("message")),
        EventKind::SafetyCheckResolved => {
            let confirmed = data["confirmed"].as_bool().unwrap_or(false);
            format!("Safety check {}", if confirmed { "confirmed" } else { "denied" })
        }
        EventKind::Paused => "Session paused".into(),
        EventKind::Resumed => "Session resumed".into(),
        EventKind::Completed => "Task completed".into(),
        EventKind::Failed => format!("Session failed: {}", text("error")),
        EventKind::Stopped => format!("Session stopped: {}", text("reason")),
        EventKind::TimedOut => match (data["reason"].as_str(), data["seconds"].as_u64()) {
            (Some("inactivity"), Some(s)) => format!("Session timed out after {s} s of inactivity; its browser was closed"),
            (_, Some(s)) => format!("Session timed out: it ran past its limit of {s} s; its browser was closed"),
            _ => "Session timed out".into(),
        },
    }
}

/// `text` on one line, white space collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_and_serde_agrees() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(seen.insert(kind.as_str()));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn every_kind_reads_as_a_line() {
        let data = serde_json::json!({"step": 2, "thought": "the  form\nis open", "name": "click", "description": "clicked Save",
            "ok": true, "reason": "inactivity", "seconds": 300, "code": "sensitive_form", "message": "a password"});
        for kind in EventKind::ALL {
            assert!(!describe(*kind, &data).is_empty(), "{kind:?}");
        }
        assert_eq!(describe(EventKind::Thought, &data), "Step 2: the form is open");
        assert_eq!(describe(EventKind::Action, &data), "Action click: clicked Save");
        assert!(describe(EventKind::TimedOut, &data).contains("300 s of inactivity"));
    }

    #[test]
    fn exactly_four_terminal_kinds() {
        assert_eq!(EventKind::ALL.iter().filter(|k| k.is_terminal()).count(), 4);
    }
}
