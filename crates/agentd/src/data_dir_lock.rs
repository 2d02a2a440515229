//! One server per data directory: `<data_dir>/agentd.lock`, locked (`flock`) by the process
//! that serves from the directory for as long as it lives, with its PID inside (and the
//! address it listens on, once it does).
//!
//! A second server over the same SQLite data would take the first one's running sessions for
//! ones a crash left behind and settle them as `failed` while they still run; the lock makes
//! it refuse to start instead. The lock is the kernel's, not the file's: it ends with the
//! process however the process ends (kill -9 included), so a file left behind never blocks a
//! restart, and what the file says is only for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "agentd.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    /// Another process holds it: a server running over this directory.
    #[error("the data directory {} is in use by another agentd server ({}); stop that one first, or give this one another data_dir", dir.display(), holder.describe())]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// What the holder wrote into the lock file.
        holder: Holder,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock the data directory: {}: {}", path.display(), cause(error))]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
}

/// An I/O failure in words: the storage fault behind it ("the data directory is read-only")
/// when it is one, else the system's message.
fn cause(error: &std::io::Error) -> String {
    match agentd_store::StorageFault::of_io(error) {
        Some(fault) => format!("{} ({error})", fault.reason()),
        None => error.to_string(),
    }
}

/// The server holding a data directory, as its lock file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Its process id (None while it is still writing it).
    pub pid: Option<u32>,
    /// The address it listens on, once it does.
    pub addr: Option<SocketAddr>,
}

impl Holder {
    /// The lock file's text: the PID on the first line, the address on the second.
    fn parse(text: &str) -> Holder {
        let mut lines = text.lines().map(str::trim);
        Holder {
            pid: lines.next().and_then(|l| l.parse().ok()),
            addr: lines.next().and_then(|l| l.parse().ok()),
        }
    }

    /// "PID 1234, listening on 127.0.0.1:5001" (as much as is known).
    pub fn describe(&self) -> String {
        let pid = match self.pid {
            Some(pid) => format!("PID {pid}"),
            None => "PID not yet written".to_owned(),
        };
        match self.addr {
            Some(addr) => format!("{pid}, listening on {addr}"),
            None => pid,
        }
    }
}

/// The exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DataDirLockError> {
        let path = dir.join(LOCK_FILE);
        let io = |error| DataDirLockError::Io { path: path.clone(), error };
        // Opened without truncating: the holder's PID stays readable until the lock is ours.
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Unreadable or half-written: the message then says less, the refusal stands.
                let _ = file.read_to_string(&mut text);
                return Err(DataDirLockError::InUse { dir: dir.to_path_buf(), holder: Holder::parse(&text) });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        // Ours now: whatever a dead holder wrote is replaced by this process's PID. The PID is
        // only for the message a second server prints, so a full disk does not stop a start.
        if let Err(error) = file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())) {
            tracing::warn!(%error, path = %path.display(), "could not write the PID into the lock file");
        }
        Ok(DataDirLock { file, path })
    }

    /// Adds the address the server listens on (for the message a second server prints).
    pub fn record_address(&mut self, addr: SocketAddr) {
        if let Err(error) = writeln!(self.file, "{addr}") {
            tracing::debug!(%error, path = %self.path.display(), "could not write the address into the lock file");
        }
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Emptied while still locked, so a server that stopped cleanly leaves no PID behind;
        // the file stays (removing it would let two processes lock two different files).
        let _ = self.file.set_len(0);
        // Closing the file releases the lock.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_a_dead_holder_s_file_is_no_obstacle() {
        let dir = tempfile::tempdir().unwrap();
        // A file a killed server left: its PID, but no lock on it.
        std::fs::write(dir.path().join(LOCK_FILE), "999999999\n127.0.0.1:1\n").unwrap();
        let mut first = DataDirLock::acquire(dir.path()).expect("a stale file does not block");
        first.record_address("127.0.0.1:5001".parse().unwrap());
        let me = std::process::id();
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), format!("{me}\n127.0.0.1:5001\n"));

        // flock locks belong to the open file: a second opening in the same process conflicts too.
        let error = DataDirLock::acquire(dir.path()).expect_err("held");
        let DataDirLockError::InUse { holder, .. } = &error else { panic!("{error}") };
        assert_eq!(*holder, Holder { pid: Some(me), addr: Some("127.0.0.1:5001".parse().unwrap()) });
        let message = error.to_string();
        assert!(message.contains(&format!("PID {me}, listening on 127.0.0.1:5001")), "{message}");
        assert!(message.contains(&dir.path().display().to_string()), "{message}");

        drop(first);
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), "", "released clean");
        DataDirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_holder_that_has_written_nothing_yet_is_still_a_holder() {
        assert_eq!(Holder::parse(""), Holder::default());
        assert_eq!(Holder::default().describe(), "PID not yet written");
        assert_eq!(Holder::parse("42\n").describe(), "PID 42");
    }

    #[test]
    fn a_directory_that_cannot_hold_the_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = DataDirLock::acquire(&missing).expect_err("no such directory");
        assert!(matches!(error, DataDirLockError::Io { .. }), "{error}");
        assert!(error.to_string().contains(&missing.join(LOCK_FILE).display().to_string()), "{error}");
    }
}
