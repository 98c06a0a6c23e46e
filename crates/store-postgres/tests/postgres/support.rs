//! The server's URL (or a skip), and a store in a fresh schema per test.

use autoprov_store_postgres::PgStore;
use rand::Rng as _;

/// `AUTOPROV_PG_URL`, or `None` after printing that `test` skipped. With `CI=true` a missing
/// server fails the test instead: CI must run the PostgreSQL suite.
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var("AUTOPROV_PG_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => Some(url),
        None => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: no PostgreSQL test server in CI (AUTOPROV_PG_URL must be set: run \
                     `bash scripts/pg-test-server.sh start` and source its env file)"
                );
            }
            println!(
                "SKIPPED {test}: no PostgreSQL test server (set AUTOPROV_PG_URL, run scripts/pg-test-server.sh start)"
            );
            None
        }
    }
}

/// A fresh schema name, so that tests running at once never see each other's rows.
pub fn fresh_schema() -> String {
    format!("kit_{:016x}", rand::thread_rng().r#gen::<u64>())
}

/// A migrated store in a fresh schema, or `None` (skipped).
pub async fn store(test: &str) -> Option<PgStore> {
    let url = pg_url(test)?;
    Some(store_in(&url, &fresh_schema()).await)
}

/// A migrated store in `schema` (created if missing).
pub async fn store_in(url: &str, schema: &str) -> PgStore {
    PgStore::builder()
        .url(url)
        .schema(schema)
        .create_schema(true)
        .pool_size(4)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connecting to the PostgreSQL test server: {e:?}"))
}

/// A plain connection with `schema` first on the search path (the tests' own tables).
pub async fn raw_client(url: &str, schema: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("AUTOPROV_PG_URL parses");
    config.options(format!("-c search_path={schema}"));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connecting to the PostgreSQL test server");
    tokio::spawn(connection);
    client
}
