//! agentd's engine: the one place sessions live and change.
//!
//! Principal types: [`Engine`] (create, control, answer and watch sessions), [`Agent`] and
//! [`AgentRegistry`] (agent kinds as plug-ins), [`SessionContext`] (an agent's window on its
//! session), [`EventLog`] (gap-free, committed-before-seen events). Adapters and the native
//! API call the engine; they hold no session logic of their own.
#![deny(missing_docs)]

mod agent;
mod agents;
mod clock;
mod conversations;
mod engine;
mod event_log;
mod live;
mod resources;
mod runner;
mod scheduler;
mod semantic;
mod session_tools;
mod sealing;
mod screen;
pub mod webhooks;
mod subscribe;
mod tables;
mod tools;

pub use agent::{Agent, AgentError, AgentRegistry, Completion, SessionContext};
pub use clock::{Clock, ManualClock, SystemClock};
pub use conversations::DEFAULT_CONVERSATION_IDLE;
pub use engine::{Engine, EngineConfig, EngineError, NewSession, SessionAnswer, WebhookTarget};
pub use event_log::{AppendError, EventLog, LoggedEvent, SharedEvent};
pub use live::InputAnswer;
pub use resources::Resource;
pub use scheduler::{GRACE, NewSchedule, ScheduleStart, TimetableChoice};
pub use screen::ScreenSource;
pub use session_tools::UserTool;
pub use sealing::{SealingKey, UnsealError};
pub use subscribe::EventStream;
pub use tables::{Access, BatchDelete, BatchUpdate, ImportRefused, LineError, MAX_BATCH_ROWS, MAX_CSV_BYTES, NewColumn, Search, SearchMode, TableChange, UPLOAD_LINK_TTL};
pub use tools::{ToolCall, ToolDraft, ToolExecution, ToolSettings};
