//! Agents: named, versioned definitions of what a session runs — kind, instructions, model,
//! allowed tools and limits. Versions are numbered from 1; at most one is the editable
//! DRAFT and at most one is PUBLISHED; publishing the draft archives the version published
//! before. A session is pinned to the version it started with (its spec copies it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, Mode, ProjectId};

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    /// Being edited; usable only when asked for by name.
    Draft,
    /// The version sessions use by default.
    Published,
    /// Replaced by a later publish; still readable, still pinned by old sessions.
    Archived,
}

impl VersionState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Draft => "DRAFT",
            VersionState::Published => "PUBLISHED",
            VersionState::Archived => "ARCHIVED",
        }
    }

    /// The state named `raw` (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        [VersionState::Draft, VersionState::Published, VersionState::Archived]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw.trim()))
    }
}

/// The names of the agents' built-in tools (the research agent's and the browser agent's), which
/// a user-defined tool may not take: a model must never see two tools of one name.
pub const BUILT_IN_TOOLS: &[&str] = &[
    "web_search", "fetch_url", "answer", "table_query", "table_insert", "table_search", "click", "click_at", "type", "select", "check", "hover", "scroll", "press_keys",
    "navigate", "history", "tab", "wait", "upload", "extract", "done", "request_user_input", "request_permission",
];

/// Bounds a version sets on its sessions (None: the server's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLimits {
    /// Upper bound on browser actions.
    pub max_actions: Option<u32>,
    /// Upper bound on research cycles.
    pub max_cycles: Option<u32>,
    /// Overall time limit in seconds.
    pub timeout_seconds: Option<u64>,
}

/// What a version defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Which agent runs it.
    pub kind: Mode,
    /// Instructions added to the agent's system prompt.
    pub instructions: String,
    /// The model (None: the server's).
    pub model: Option<String>,
    /// The tools it may call, by name (built-ins and the project's tools).
    pub tools: Vec<String>,
    /// Its sessions' bounds.
    pub limits: AgentLimits,
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDef {
    /// Its id.
    pub id: AgentId,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`).
    pub resource_number: u64,
    /// The owning project.
    pub project_id: ProjectId,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a version included).
    pub updated_at: DateTime<Utc>,
}

/// One numbered version of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersion {
    /// The agent.
    pub agent_id: AgentId,
    /// 1, 2, 3 …
    pub number: u32,
    /// Where it stands.
    pub state: VersionState,
    /// What it defines.
    pub spec: AgentSpec,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was published, if it was.
    pub published_at: Option<DateTime<Utc>>,
}

/// Which version a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChoice {
    /// The published one (the default).
    Published,
    /// The draft (to try it before publishing).
    Draft,
    /// This number, whatever its state.
    Number(u32),
    /// The most recently archived one (the version published before the current one).
    LatestArchived,
}

/// A numbered version of something (an agent, a tool).
pub trait Versioned {
    /// Its number.
    fn number(&self) -> u32;
    /// Its state.
    fn state(&self) -> VersionState;
}

impl Versioned for AgentVersion {
    fn number(&self) -> u32 {
        self.number
    }
    fn state(&self) -> VersionState {
        self.state
    }
}

impl VersionChoice {
    /// The version this choice picks among `versions`.
    pub fn pick<V: Versioned>(self, versions: Vec<V>) -> Option<V> {
        // Newest first, so the latest archived one is found first.
        versions.into_iter().rev().find(|v| match self {
            VersionChoice::Published => v.state() == VersionState::Published,
            VersionChoice::Draft => v.state() == VersionState::Draft,
            VersionChoice::Number(n) => v.number() == n,
            VersionChoice::LatestArchived => v.state() == VersionState::Archived,
        })
    }

    /// Why there is no such version of the `what` ("agent", "tool").
    pub fn missing(self, what: &str) -> String {
        match self {
            VersionChoice::Published => format!("the {what} has no published version: publish its draft, or ask for the DRAFT version"),
            VersionChoice::Draft => format!("the {what} has no draft"),
            VersionChoice::Number(n) => format!("the {what} has no version {n}"),
            VersionChoice::LatestArchived => format!("the {what} has no archived version"),
        }
    }
}

/// The version a session was pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedVersion {
    /// The agent.
    pub agent_id: AgentId,
    /// The version's number.
    pub number: u32,
}
