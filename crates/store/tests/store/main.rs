//! `MemoryStore` passes the store conformance kit.

use autoprov_store::MemoryStore;

autoprov_store::store_conformance_tests!(
    memory,
    async fn make() -> MemoryStore {
        MemoryStore::new()
    }
);

mod index;
