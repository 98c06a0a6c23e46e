//! What the tests share.

use autoprov_store_sqlite::{SqliteOptions, SqliteStore};
use std::path::PathBuf;

/// A fresh directory kept after the test: the conformance kit's factory returns the store
/// alone, so its directory must outlive the factory.
pub fn kept_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("autoprov-sqlite-")
        .tempdir()
        .expect("a temp dir")
        .keep()
}

/// A store in a fresh directory.
pub fn fresh(options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(kept_dir().join("store.db"), options).expect("open")
}
