//! The PostgreSQL store against a real server (`scripts/pg-test-server.sh start`): the store
//! conformance kit, and the work-distribution guarantees (claims, leases, fencing, planning
//! epochs). One binary for the crate.

mod support;

use autoprov_store_postgres::PgStore;

autoprov_store::store_conformance_tests!(
    kit,
    async fn make() -> Option<PgStore> {
        support::store("store kit").await
    }
);

autoprov_store::claim_conformance_tests!(
    claims,
    async fn make() -> Option<PgStore> {
        support::store("claim kit").await
    }
);

mod schema;
mod secrets;
mod workers;
