//! Sessions: what a user asks for ([`SessionSpec`]), what the system records ([`Session`]),
//! and the checked constructors that turn raw input into them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ProjectId, SessionId, SessionStatus};

/// One input field that failed validation; `field` names it the way the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The offending field (`start_url`, `tags[2]`, ...).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} `{}`; expected one of {}", $what, s, names.join(", "))
                })
            }
        }
    };
}

wire_enum!(
    /// Which kind of agent runs the session.
    Mode, "mode" {
        /// Drives a real browser toward a goal.
        Browser = "browser",
        /// Searches and reads the web, answers with sources.
        Research = "research",
        /// Converses; tools only when asked.
        Chat = "chat",
        /// Research tuned for technical questions.
        Coding = "coding",
    }
);

wire_enum!(
    /// How a browser agent sees and acts on pages.
    Driver, "driver" {
        /// From the page's interactive elements (text), acting on them by index: any chat model.
        Dom = "dom",
        /// From screenshots, acting at screen coordinates: computer-use models (OpenAI's
        /// `computer_use_preview` tool, Anthropic's computer tool).
        ComputerUse = "computer_use",
    }
);

// wire_enum! derives no Default, and a derive could not pick the variant.
#[allow(clippy::derivable_impls)]
impl Default for Driver {
    fn default() -> Self {
        Driver::Dom
    }
}

wire_enum!(
    /// Queue priority: higher runs first, then older first.
    Priority, "priority" {
        /// Runs after everything else.
        Low = "low",
        /// The default.
        Normal = "normal",
        /// Runs first.
        High = "high",
    }
);

wire_enum!(
    /// How a completed session's `response` is to be read.
    ResponseType, "response type" {
        /// Plain text.
        String = "STRING",
        /// A JSON value (validated against the session's schema when it gave one).
        Json = "JSON",
        /// Markdown text.
        Markdown = "MARKDOWN",
    }
);

impl Priority {
    /// Numeric rank for sorting and storage (low 0, normal 1, high 2).
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    /// The priority of a stored rank (unknown ranks read as normal).
    pub fn from_rank(rank: i64) -> Priority {
        match rank {
            0 => Priority::Low,
            2 => Priority::High,
            _ => Priority::Normal,
        }
    }
}

/// What the agent is asked to do and within which bounds. Fixed once the session is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Agent kind.
    pub mode: Mode,
    /// The task in the user's words.
    pub goal: String,
    /// Where a browser agent starts (http or https).
    pub start_url: Option<String>,
    /// Upper bound on browser actions.
    pub max_actions: u32,
    /// Upper bound on research cycles.
    pub max_cycles: u32,
    /// Overall time limit, not counting time spent paused.
    pub timeout_seconds: u64,
    /// Ends the session when nothing happens for this long while it is not paused.
    pub inactivity_timeout_seconds: u64,
    /// Browser viewport width in CSS pixels.
    pub display_width: u32,
    /// Browser viewport height in CSS pixels.
    pub display_height: u32,
    /// Run the browser without a window.
    pub headless: bool,
    /// Where events are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    /// Domains the agent may visit; empty means any.
    pub allowed_domains: Vec<String>,
    /// The LLM model for this session; the server's default when None.
    #[serde(default)]
    pub model: Option<String>,
    /// A JSON schema the response must match (the response is then JSON).
    #[serde(default)]
    pub output_schema: Option<Value>,
    /// Names of the secrets the session was given (`sensitive_data`); their values are never
    /// stored (see [`crate::Secrets`]).
    #[serde(default)]
    pub secret_names: Vec<String>,
    /// How a browser agent sees and acts (`dom` by default).
    #[serde(default)]
    pub driver: Driver,
    /// The session this one continues (a follow-up question), if any.
    #[serde(default)]
    pub continues: Option<crate::SessionId>,
    /// The conversation a follow-up belongs to: the id of its first session.
    #[serde(default)]
    pub conversation_id: Option<crate::SessionId>,
    /// The agent version the session runs, when it runs a defined agent.
    #[serde(default)]
    pub agent: Option<crate::PinnedVersion>,
    /// Instructions added to the agent's system prompt (from the agent version).
    #[serde(default)]
    pub instructions: Option<String>,
    /// The tools the agent may call (from the agent version; None: its built-ins).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// The conversation so far, oldest first, when it continues another session.
    #[serde(default)]
    pub conversation: Vec<Turn>,
}

/// One earlier exchange of a conversation: the question, the answer and its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// What was asked.
    pub query: String,
    /// What was answered (Markdown).
    pub answer: String,
    /// The sources the answer cites.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// A page an answer cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Where it is.
    pub url: String,
    /// Its title.
    pub title: String,
    /// A short excerpt.
    #[serde(default)]
    pub snippet: String,
}

/// Token usage and cost accumulated by a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in USD from the configured price table.
    pub cost_usd: f64,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The owning project.
    pub project_id: ProjectId,
    /// Current status.
    pub status: SessionStatus,
    /// The task and its bounds.
    pub spec: SessionSpec,
    /// A label chosen by the user.
    pub name: Option<String>,
    /// Free-form labels for filtering.
    pub tags: Vec<String>,
    /// Queue priority.
    pub priority: Priority,
    /// The end user the session is for, as the client names them.
    pub user_id: Option<String>,
    /// Client data kept with the session (a JSON object).
    pub metadata: Map<String, Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its status or fields last changed (events alone do not count).
    pub updated_at: DateTime<Utc>,
    /// When an agent first picked it up.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed or ended early.
    pub error: Option<String>,
    /// The agent's answer, once completed.
    pub response: Option<Value>,
    /// How to read `response`.
    pub response_type: Option<ResponseType>,
    /// Usage so far.
    pub usage: Usage,
    /// The seq of its newest event (0 when none).
    pub last_seq: u64,
    /// When a user released its resources (`cleanup_session`); it is then no longer active.
    pub cleaned_at: Option<DateTime<Utc>>,
}

impl Session {
    /// A new session of `project` running `spec`, queued at `now`, with no labels yet.
    pub fn queued(project_id: ProjectId, spec: SessionSpec, now: DateTime<Utc>) -> Session {
        Session {
            id: SessionId::new(),
            project_id,
            status: SessionStatus::Queued,
            spec,
            name: None,
            tags: Vec::new(),
            priority: Priority::Normal,
            user_id: None,
            metadata: Map::new(),
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            error: None,
            response: None,
            response_type: None,
            usage: Usage::default(),
            last_seq: 0,
            cleaned_at: None,
        }
    }

    /// The conversation the session belongs to: its first session's id (its own when it
    /// started one).
    pub fn conversation(&self) -> crate::SessionId {
        self.spec.conversation_id.unwrap_or(self.id)
    }
}

/// The fields a user may change on an existing session; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New tags (replaces the list).
    pub tags: Option<Vec<String>>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New user id (`Some(None)` clears it).
    pub user_id: Option<Option<String>>,
    /// New metadata (replaces the object).
    pub metadata: Option<Map<String, Value>>,
}

impl SessionPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.tags.is_none()
            && self.priority.is_none()
            && self.user_id.is_none()
            && self.metadata.is_none()
    }

    /// Applies the patch to `session` in memory.
    pub fn apply_to(&self, session: &mut Session) {
        if let Some(name) = &self.name {
            session.name = name.clone();
        }
        if let Some(tags) = &self.tags {
            session.tags = tags.clone();
        }
        if let Some(priority) = self.priority {
            session.priority = priority;
        }
        if let Some(user_id) = &self.user_id {
            session.user_id = user_id.clone();
        }
        if let Some(metadata) = &self.metadata {
            session.metadata = metadata.clone();
        }
    }
}

/// Checks that `raw` is an absolute http(s) URL with a host, and returns it normalised.
pub fn parse_http_url(field: &str, raw: &str) -> Result<String, FieldError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| FieldError::new(field, format!("`{raw}` is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new(
            field,
            format!("must be an http or https URL, got scheme `{}`", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must name a host"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_only() {
        assert_eq!(
            parse_http_url("start_url", "https://example.com").unwrap(),
            "https://example.com/"
        );
        for bad in ["ftp://x.org", "javascript:alert(1)", "example.com", "", "file:///etc/passwd"] {
            let err = parse_http_url("start_url", bad).unwrap_err();
            assert_eq!(err.field, "start_url", "{bad}");
        }
    }

    #[test]
    fn enums_name_their_choices() {
        assert_eq!("high".parse::<Priority>().unwrap(), Priority::High);
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert_eq!(err, "unknown priority `urgent`; expected one of low, normal, high");
        assert!("robot".parse::<Mode>().unwrap_err().contains("browser, research, chat, coding"));
    }

    #[test]
    fn priority_rank_round_trips() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_rank(p.rank()), *p);
        }
    }
}
