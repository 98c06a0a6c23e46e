//! Versioned migrations: an ordered list of SQL files, each applied once, in one transaction,
//! under an advisory lock so that several processes starting at once migrate once.

use crate::db;
use autoprov_store::StoreError;
use deadpool_postgres::Client;

/// One migration: its version (increasing, never reused) and its SQL.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit a released one: add the next.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "sealed secrets",
        sql: include_str!("../migrations/0002_sealed_secrets.sql"),
    },
    Migration {
        version: 3,
        name: "permits_breakers",
        sql: include_str!("../migrations/0003_permits_breakers.sql"),
    },
    Migration {
        version: 4,
        name: "found_decisions",
        sql: include_str!("../migrations/0004_found_decisions.sql"),
    },
    Migration {
        version: 5,
        name: "orders_fillfactor",
        sql: include_str!("../migrations/0005_orders_fillfactor.sql"),
    },
    Migration {
        version: 6,
        name: "owned_values",
        sql: include_str!("../migrations/0006_owned_values.sql"),
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the schema (the connection's `search_path`) lacks. A schema newer
/// than this build is refused rather than used half-understood.
pub(crate) async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let tx = client.transaction().await.map_err(db("migrate: begin"))?;
    // One lock per schema: processes sharing a schema wait for each other, tests in their
    // own schemas do not.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('autoprov-store-migrations:' || current_schema()))",
        &[],
    )
    .await
    .map_err(db("migrate: advisory lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    bigint PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db("migrate: schema_migrations"))?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db("migrate: read version"))?
        .get(0);
    if current > latest_version() {
        return Err(StoreError::backend(
            "migrate",
            NewerSchema {
                found: current,
                known: latest_version(),
            },
        ));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying store migration"
        );
        tx.batch_execute(m.sql)
            .await
            .map_err(db("migrate: apply"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(db("migrate: record"))?;
    }
    tx.commit().await.map_err(db("migrate: commit"))?;
    Ok(latest_version())
}

/// The schema was migrated by a newer build.
#[derive(Debug, thiserror::Error)]
#[error(
    "the schema is at version {found}, newer than this build knows ({known}): upgrade autoprov"
)]
struct NewerSchema {
    found: i64,
    known: i64,
}
