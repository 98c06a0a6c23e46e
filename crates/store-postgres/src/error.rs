//! Which PostgreSQL failures are temporary ([`StoreError::Unavailable`]: retry later, through
//! the pool, which replaces broken connections) and which are permanent
//! ([`StoreError::Backend`]).
//!
//! Temporary: the connection is lost, refused or times out (no SQLSTATE, or class `08`), the
//! server is shutting down or starting (`57P01` admin shutdown, `57P02` crash shutdown,
//! `57P03` cannot connect now), a transaction lost a conflict (`40001` serialization failure,
//! `40P01` deadlock, `55P03` lock not available), a statement was cancelled (`57014`), or the
//! server ran short of resources (class `53`: too many connections, out of memory or disk).
//! Everything else — constraint violations (class `23`), bad data (class `22`), syntax,
//! permissions, values the driver cannot encode or decode — is permanent: the same call
//! fails the same way.

use autoprov_store::StoreError;
use deadpool_postgres::PoolError;

/// Whether a failure can pass by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Retry later: the same call may succeed.
    Temporary,
    /// A retry fails the same way.
    Permanent,
}

/// The class of a SQLSTATE code (five characters).
pub(crate) fn class_of_sqlstate(code: &str) -> ErrorClass {
    const TEMPORARY: &[&str] = &[
        "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03",
    ];
    if code.starts_with("08") || code.starts_with("53") || TEMPORARY.contains(&code) {
        ErrorClass::Temporary
    } else {
        ErrorClass::Permanent
    }
}

/// The class of a driver error.
pub(crate) fn class_of(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = e.code() {
        return class_of_sqlstate(code.code());
    }
    if e.is_closed() {
        return ErrorClass::Temporary;
    }
    // No SQLSTATE and not closed: the driver's kind is private, so tell the I/O, connect
    // and timeout kinds (temporary) from encoding, decoding and configuration (permanent)
    // by their cause and message.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let text = e.to_string();
    if io
        || text.starts_with("error connecting to server")
        || text.starts_with("error communicating with the server")
        || text.starts_with("timeout waiting for server")
    {
        ErrorClass::Temporary
    } else {
        ErrorClass::Permanent
    }
}

/// A driver error during `operation` as a [`StoreError`] of its class.
pub(crate) fn classify(operation: &'static str, e: tokio_postgres::Error) -> StoreError {
    match class_of(&e) {
        ErrorClass::Temporary => StoreError::unavailable(operation, e),
        ErrorClass::Permanent => StoreError::backend(operation, e),
    }
}

/// A pool failure (no connection could be had) as a [`StoreError`]: a timeout or a failed
/// connect is temporary, a closed or misconfigured pool permanent.
pub(crate) fn classify_pool(operation: &'static str, e: PoolError) -> StoreError {
    let temporary = match &e {
        PoolError::Timeout(_) => true,
        PoolError::Backend(inner) => class_of(inner) == ErrorClass::Temporary,
        _ => false,
    };
    if temporary {
        StoreError::unavailable(operation, e)
    } else {
        StoreError::backend(operation, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        for code in [
            "08000", "08003", "08006", "08001", "08004", "40001", "40P01", "55P03", "57014",
            "57P01", "57P02", "57P03", "53300", "53100", "53200",
        ] {
            assert_eq!(class_of_sqlstate(code), ErrorClass::Temporary, "{code}");
        }
        for code in [
            "23505", "23503", "23502", "23514", "22P02", "22001", "22003", "42601", "42P01",
            "42501", "0A000", "XX000",
        ] {
            assert_eq!(class_of_sqlstate(code), ErrorClass::Permanent, "{code}");
        }
    }

    /// Real errors from the test server (`AUTOPROV_PG_URL`), classified.
    mod server {
        use super::*;

        async fn connect() -> Option<tokio_postgres::Client> {
            let Some(url) = std::env::var("AUTOPROV_PG_URL")
                .ok()
                .filter(|v| !v.is_empty())
            else {
                assert!(
                    !std::env::var("CI").is_ok_and(|v| v == "true"),
                    "no PostgreSQL test server in CI (AUTOPROV_PG_URL must be set)"
                );
                println!("SKIPPED: no PostgreSQL test server (set AUTOPROV_PG_URL)");
                return None;
            };
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connecting to the PostgreSQL test server");
            tokio::spawn(connection);
            Some(client)
        }

        fn class_r(r: Result<impl Sized, tokio_postgres::Error>) -> (ErrorClass, String) {
            let e = r.err().expect("the statement fails");
            let code = e.code().map(|c| c.code().to_owned()).unwrap_or_default();
            (class_of(&e), code)
        }

        #[tokio::test]
        async fn constraint_violations_and_bad_data_are_permanent() {
            let Some(c) = connect().await else { return };
            c.batch_execute("CREATE TEMP TABLE t (id int PRIMARY KEY, n int NOT NULL)")
                .await
                .expect("temp table");
            c.execute("INSERT INTO t VALUES (1, 1)", &[])
                .await
                .expect("insert");
            let cases = [
                ("INSERT INTO t VALUES (1, 2)", "23505"),
                ("INSERT INTO t VALUES (2, NULL)", "23502"),
                ("SELECT 'x'::int", "22P02"),
                ("SELECT 1/0", "22012"),
                ("SELECT * FROM no_such_table", "42P01"),
            ];
            for (sql, expected) in cases {
                let (class, code) = class_r(c.execute(sql, &[]).await);
                assert_eq!(code, expected, "{sql}");
                assert_eq!(class, ErrorClass::Permanent, "{sql}");
            }
            // A value the driver cannot encode for the column type (no SQLSTATE).
            let (class, code) = class_r(c.query("SELECT $1::int", &[&"text"]).await);
            assert_eq!((class, code.as_str()), (ErrorClass::Permanent, ""));
        }

        #[tokio::test]
        async fn serialization_failures_deadlocks_and_shutdowns_are_temporary() {
            let Some(a) = connect().await else { return };
            let Some(b) = connect().await else { return };
            let (class, code) = class_r(
                a.batch_execute("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$")
                    .await,
            );
            assert_eq!((class, code.as_str()), (ErrorClass::Temporary, "40001"));

            // A real deadlock: a and b each lock one row, then want the other's.
            let table = format!("deadlock_{}", std::process::id());
            a.batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY);
                 INSERT INTO {table} VALUES (1), (2)"
            ))
            .await
            .expect("table");
            a.batch_execute(&format!(
                "BEGIN; SELECT * FROM {table} WHERE id = 1 FOR UPDATE"
            ))
            .await
            .expect("a locks 1");
            b.batch_execute(&format!(
                "BEGIN; SELECT * FROM {table} WHERE id = 2 FOR UPDATE"
            ))
            .await
            .expect("b locks 2");
            let lock_a = format!("SELECT * FROM {table} WHERE id = 2 FOR UPDATE");
            let lock_b = format!("SELECT * FROM {table} WHERE id = 1 FOR UPDATE");
            let (ra, rb) = tokio::join!(a.batch_execute(&lock_a), async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                b.batch_execute(&lock_b).await
            });
            let failed = [ra, rb]
                .into_iter()
                .filter_map(Result::err)
                .collect::<Vec<_>>();
            assert_eq!(failed.len(), 1, "one side is chosen as the deadlock victim");
            assert_eq!(failed[0].code().map(|c| c.code()), Some("40P01"));
            assert_eq!(class_of(&failed[0]), ErrorClass::Temporary);
            a.batch_execute("ROLLBACK").await.expect("rollback");
            b.batch_execute("ROLLBACK").await.expect("rollback");
            a.batch_execute(&format!("DROP TABLE {table}"))
                .await
                .expect("drop");

            // The server ends the session (what a restart does): 57P01, then a closed
            // connection; both temporary.
            let (class, code) = class_r(
                b.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
                    .await,
            );
            assert_eq!((class, code.as_str()), (ErrorClass::Temporary, "57P01"));
            let e = b.batch_execute("SELECT 1").await.expect_err("closed");
            assert!(e.is_closed(), "{e:?}");
            assert_eq!(class_of(&e), ErrorClass::Temporary);
        }

        #[tokio::test]
        async fn a_refused_connection_is_temporary() {
            // Nothing listens on port 1: the pool cannot connect.
            let err = crate::PgStore::builder()
                .url("postgres://nobody:none@127.0.0.1:1/none")
                .connect_timeout(std::time::Duration::from_secs(2))
                .build()
                .await
                .expect_err("nothing listens");
            assert!(err.is_temporary(), "{err:?}");
            assert!(matches!(
                err,
                StoreError::Unavailable {
                    operation: "connect",
                    ..
                }
            ));
        }
    }
}
