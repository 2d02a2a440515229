//! Tools: named, versioned user-defined tools — an HTTP request made from templates, or an
//! MCP server whose tools an agent may call. Versions follow the agents' rules
//! ([`crate::VersionState`]). A version's private variables are kept sealed (encrypted with
//! the server's secrets key by the engine); only their names are ever shown.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ProjectId, ToolId, VersionState};

/// Private variables at rest: their names, and their values sealed (base64 of nonce and
/// ciphertext), which only the engine can open.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedVariables {
    /// The names, sorted.
    pub names: Vec<String>,
    /// The sealed values (None when there are none).
    pub sealed: Option<String>,
}

impl fmt::Debug for SealedVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedVariables").field("names", &self.names).finish_non_exhaustive()
    }
}

/// What a tool version defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// What the tool does, as an agent's model reads it.
    pub description: String,
    /// The tool itself: an HTTP tool or an MCP server (`agentd_tools::ToolKind` as JSON,
    /// checked before it is stored).
    pub definition: serde_json::Value,
    /// Plain variables its templates may name.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Secret variables, sealed.
    #[serde(default)]
    pub private_variables: SealedVariables,
}

/// A tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// Its id.
    pub id: ToolId,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`).
    pub resource_number: u64,
    /// The owning project.
    pub project_id: ProjectId,
    /// Its name: unique in the project, the name agents call it by.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a version included).
    pub updated_at: DateTime<Utc>,
}

/// One numbered version of a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolVersion {
    /// The tool.
    pub tool_id: ToolId,
    /// 1, 2, 3 …
    pub number: u32,
    /// Where it stands.
    pub state: VersionState,
    /// What it defines.
    pub spec: ToolSpec,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was published, if it was.
    pub published_at: Option<DateTime<Utc>>,
}

impl crate::Versioned for ToolVersion {
    fn number(&self) -> u32 {
        self.number
    }
    fn state(&self) -> VersionState {
        self.state
    }
}

/// What kind of resource a resource number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// An agent.
    Agent,
    /// A tool.
    Tool,
    /// A table.
    Table,
}

impl ResourceKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Agent => "agent",
            ResourceKind::Tool => "tool",
            ResourceKind::Table => "table",
        }
    }

    /// The kind stored as `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        [ResourceKind::Agent, ResourceKind::Tool, ResourceKind::Table].into_iter().find(|k| k.as_str() == raw)
    }
}
