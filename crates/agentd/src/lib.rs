//! The agentd server and CLI, as a library so tests can start the real server in-process.
//!
//! Principal items: [`config::Config`] (every setting, layered and validated),
//! [`server::start`] (the whole server on a listener, with graceful shutdown),
//! [`connections::serve`] (HTTP/1.1 connections under a cap and timeouts), [`cli`] (the
//! command line), [`run_cmd`] (`agentd run`: one task from the terminal), [`keys`] (API key
//! creation and bootstrap), [`data_dir_lock::DataDirLock`] (one server per data directory).
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod connections;
pub mod data_dir_lock;
pub mod keys;
pub mod run_cmd;
pub mod server;

/// Makes ring the process's TLS crypto provider: agentd-egress's one TLS initialisation (every
/// client it builds calls it too; the binary calls it first for the CLI's own client).
/// Idempotent.
pub use agentd_egress::install_tls;
