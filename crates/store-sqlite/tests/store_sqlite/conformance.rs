//! The store conformance kit, every check, on a fresh file each.

use crate::common::fresh;
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStore};

autoprov_store::store_conformance_tests!(
    without_key,
    async fn make() -> SqliteStore {
        fresh(SqliteOptions::new())
    }
);

autoprov_store::store_conformance_tests!(
    with_key,
    async fn make() -> SqliteStore {
        fresh(SqliteOptions::new().with_current_key(SealingKey::new("k1", [9; 32])))
    }
);
