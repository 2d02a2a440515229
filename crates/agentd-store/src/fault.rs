//! Storage faults: the disk under the store is full, read-only, refused to this user or
//! failing. They are told apart from other database errors so that callers can fail the
//! request with "retry later" (the store works again once the cause is gone) and operators
//! read the cause, not "unable to open database file (code 14)".

use std::io::ErrorKind;
use std::path::Path;

/// Why the disk does not take the store's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left on the device (or over the user's quota).
    Full,
    /// The file system (or the database file) is read-only.
    ReadOnly,
    /// The server's user may not write to the data directory or the database file.
    PermissionDenied,
    /// Reading or writing failed (an I/O error).
    Io,
}

impl StorageFault {
    /// The cause in a sentence for an operator (no path: it may reach `/healthz`).
    pub fn reason(self) -> &'static str {
        match self {
            StorageFault::Full => "the disk holding the data directory is full",
            StorageFault::ReadOnly => "the data directory is read-only (a read-only file system or database file)",
            StorageFault::PermissionDenied => "the server's user may not write to the data directory",
            StorageFault::Io => "the disk holding the data directory fails to read or write (I/O error)",
        }
    }

    /// The fault an SQLite result code reports, if it is one: SQLITE_FULL, SQLITE_READONLY,
    /// SQLITE_IOERR (and their extended codes).
    pub(crate) fn of_sqlite(code: i64) -> Option<Self> {
        match code & 0xff {
            13 => Some(StorageFault::Full),
            8 => Some(StorageFault::ReadOnly),
            10 => Some(StorageFault::Io),
            _ => None,
        }
    }

    /// The fault an operating-system error reports, if it is one.
    pub fn of_io(error: &std::io::Error) -> Option<Self> {
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(StorageFault::Full),
            ErrorKind::ReadOnlyFilesystem => Some(StorageFault::ReadOnly),
            ErrorKind::PermissionDenied => Some(StorageFault::PermissionDenied),
            _ => None,
        }
    }

    /// The fault behind a database error, if it is one.
    pub(crate) fn of_sqlx(error: &sqlx::Error) -> Option<Self> {
        match error {
            sqlx::Error::Database(db) => db.code().and_then(|code| code.parse().ok()).and_then(Self::of_sqlite),
            sqlx::Error::Io(io) => Self::of_io(io),
            _ => None,
        }
    }

    /// Asks the file system why the database in `data_dir` could not be opened or written:
    /// SQLite says "unable to open database file" whatever the cause. Writes (and removes) a
    /// small file in the directory and opens the database file for writing; the fault either
    /// reports, or None when both work.
    pub(crate) fn diagnose(data_dir: &Path, database: &Path) -> Option<Self> {
        let probe = data_dir.join(format!(".agentd-write-check.{}", std::process::id()));
        let written = std::fs::write(&probe, [0u8; 64 * 1024]);
        let _ = std::fs::remove_file(&probe);
        if let Err(error) = written {
            return Self::of_io(&error);
        }
        if database.exists()
            && let Err(error) = std::fs::OpenOptions::new().write(true).open(database)
        {
            return Self::of_io(&error);
        }
        None
    }
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// What a write probe found ([`crate::Store::write_health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteHealth {
    /// A write committed.
    Writable,
    /// The disk refused it.
    Unavailable(StorageFault),
    /// The database failed otherwise (busy past its timeout, or broken); the log has the detail.
    Failing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_and_os_errors_name_their_fault() {
        // SQLITE_FULL, SQLITE_IOERR_WRITE (778), SQLITE_IOERR_SHMSIZE (4874), SQLITE_READONLY_DBMOVED (1032).
        assert_eq!(StorageFault::of_sqlite(13), Some(StorageFault::Full));
        assert_eq!(StorageFault::of_sqlite(778), Some(StorageFault::Io));
        assert_eq!(StorageFault::of_sqlite(4874), Some(StorageFault::Io));
        assert_eq!(StorageFault::of_sqlite(1032), Some(StorageFault::ReadOnly));
        // SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_CANTOPEN: not a verdict on the disk.
        for code in [5, 2067, 14] {
            assert_eq!(StorageFault::of_sqlite(code), None, "{code}");
        }
        let os = |kind| std::io::Error::from(kind);
        assert_eq!(StorageFault::of_io(&os(ErrorKind::StorageFull)), Some(StorageFault::Full));
        assert_eq!(StorageFault::of_io(&os(ErrorKind::ReadOnlyFilesystem)), Some(StorageFault::ReadOnly));
        assert_eq!(StorageFault::of_io(&os(ErrorKind::PermissionDenied)), Some(StorageFault::PermissionDenied));
        assert_eq!(StorageFault::of_io(&os(ErrorKind::NotFound)), None);
    }
}
