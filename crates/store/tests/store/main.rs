//! `MemoryStore` passes the store conformance kit.

use autoprov_store::MemoryStore;

autoprov_store::store_conformance_tests!(
    memory,
    async fn make() -> MemoryStore {
        MemoryStore::new()
    }
);

mod index;

autoprov_store::claim_conformance_tests!(
    memory_claims,
    async fn make() -> MemoryStore {
        MemoryStore::new()
    }
);
