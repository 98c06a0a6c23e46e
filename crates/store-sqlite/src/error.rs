//! Why a store cannot be opened.

use std::path::PathBuf;
use std::sync::Arc;

/// A backend's own error, kept as a source without naming its type.
pub type SourceError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) refused a file. Opening never panics.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file was written by a newer autoprov, whose schema this version does not know.
    #[error(
        "{path}: schema version {found} is newer than the {supported} this version knows; upgrade autoprov"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest schema version this version knows.
        supported: u32,
    },
    /// The file is not an SQLite database.
    #[error("{path} is not an SQLite database")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database, but damaged.
    #[error("{path} is damaged: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// Another process (or another store in this process) has the file open. Several
    /// processes share work through the PostgreSQL store, not through one SQLite file.
    #[error("{path} is in use by another process (lock {lock_path} is held)")]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The lock file.
        lock_path: PathBuf,
    },
    /// The options name a current key that was not given.
    #[error("the current sealing key {key_id} is not among the keys given")]
    UnknownCurrentKey {
        /// The key id.
        key_id: String,
    },
    /// The file or its lock cannot be read or written.
    #[error("{path}: {operation} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was attempted.
        operation: &'static str,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// SQLite refused an operation while opening.
    #[error("{path}: {operation} failed")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was attempted.
        operation: &'static str,
        /// SQLite's error.
        #[source]
        source: SourceError,
    },
}
