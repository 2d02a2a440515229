//! agentd's domain: the vocabulary every other crate speaks.
//!
//! Principal types: [`SessionId`] and the other ids, [`Session`] with its [`SessionSpec`],
//! the [`SessionStatus`] state machine ([`SessionStatus::apply`]), and [`Event`] with its
//! [`EventKind`]. This crate knows nothing of tokio, HTTP or SQL: it is pure data and rules.
#![deny(missing_docs)]

mod event;
mod ids;
mod session;
mod status;

pub use event::{Event, EventKind, NewEvent};
pub use ids::{ApiKeyId, IdError, ProjectId, SessionId};
pub use session::{
    FieldError, Mode, Priority, ResponseType, Session, SessionPatch, SessionSpec, Usage,
    parse_http_url,
};
pub use status::{IllegalTransition, SessionStatus, Transition};
