//! agentd's domain: the vocabulary every other crate speaks.
//!
//! Principal types: [`SessionId`] and the other ids, [`Session`] with its [`SessionSpec`],
//! the [`SessionStatus`] state machine ([`SessionStatus::apply`]), and [`Event`] with its
//! [`EventKind`]. This crate knows nothing of tokio, HTTP or SQL: it is pure data and rules.
#![deny(missing_docs)]

mod agent_def;
mod event;
mod ids;
mod schedule;
mod secrets;
mod session;
mod status;
pub mod table;
mod tool_def;

pub use event::{Event, EventKind, NewEvent, describe};
pub use agent_def::{BUILT_IN_TOOLS, AgentDef, AgentLimits, AgentSpec, AgentVersion, PinnedVersion, VersionChoice, VersionState, Versioned};
pub use ids::{AgentId, ApiKeyId, IdError, ProjectId, ScheduleId, SessionId, TableId, ToolId};
pub use schedule::{MAX_EVERY_MINUTES, RunOutcome, Schedule, ScheduleRun, ScheduleStatus, Timetable};
pub use secrets::{DomainPattern, Secret, SecretReplacer, SecretScope, Secrets, secret_forms};
pub use session::{
    Driver, FieldError, Mode, Priority, ResponseType, Session, SessionPatch, SessionSpec, Source, Turn, Usage,
    parse_http_url,
};
pub use status::{IllegalTransition, SessionStatus, Transition};
pub use table::{Cell, ColumnDef, ColumnType, QuerySpec, RowPage, RowValues, TableDef, TablePermission};
pub use tool_def::{ResourceKind, SealedVariables, ToolDef, ToolSpec, ToolVersion};

/// The current time at the precision agentd stores and shows (milliseconds), so a value
/// reads the same whether it comes from a live stream or from the store.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
