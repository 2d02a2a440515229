//! Typed identifiers. Every id is a UUID (v7 for new resources, so ids sort by creation time).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An id string that is not a valid UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid id (expected a UUID such as 0192f0c1-7c3e-7a4b-9d2e-5f1a2b3c4d5e)")]
pub struct IdError {
    /// The rejected input, truncated for display.
    pub value: String,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| IdError {
                    value: s.chars().take(64).collect(),
                })
            }
        }
    };
}

typed_id!(
    /// Identifies a session (one run of an agent).
    SessionId
);
typed_id!(
    /// Identifies a project, the owner of every resource.
    ProjectId
);
typed_id!(
    /// Identifies an API key (not the secret itself).
    ApiKeyId
);
typed_id!(
    /// Identifies a schedule (a session template fired on a timetable).
    ScheduleId
);
typed_id!(
    /// Identifies an agent (a named, versioned definition).
    AgentId
);
typed_id!(
    /// Identifies a tool (a named, versioned HTTP tool or MCP server).
    ToolId
);
typed_id!(
    /// Identifies a table (typed columns and rows).
    TableId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let id = SessionId::new();
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
    }

    #[test]
    fn rejects_garbage() {
        let err = "not-an-id".parse::<SessionId>().unwrap_err();
        assert!(err.to_string().contains("not-an-id"));
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = SessionId::new();
        let b = SessionId::new();
        assert!(a < b);
    }
}
