//! The agentd server and CLI, as a library so tests can start the real server in-process.
//!
//! Principal items: [`config::Config`] (every setting, layered and validated),
//! [`server::start`] (the whole server on a listener, with graceful shutdown), [`cli`] (the
//! command line), [`keys`] (API key creation and bootstrap).
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod keys;
pub mod server;
