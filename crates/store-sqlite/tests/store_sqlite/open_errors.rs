//! Opening refuses, with a typed error and never a panic: a newer schema, a damaged file, a
//! file that is not SQLite, a file another process is using.

use autoprov_store::Store;
use autoprov_store::testkit::record;
use autoprov_store_sqlite::{OpenError, SqliteOptions, SqliteStore};
use std::path::Path;
use std::process::Command;

const CHILD_DB: &str = "AUTOPROV_SQLITE_TEST_CHILD_DB";

async fn store_with_orders(db: &Path, n: usize) {
    let store = SqliteStore::open(db, SqliteOptions::new()).expect("open");
    store
        .insert_orders(&(0..n).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    store_with_orders(&db, 3).await;
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("set version");
    drop(conn);
    let err = SqliteStore::open(&db, SqliteOptions::new()).expect_err("newer");
    assert!(
        matches!(err, OpenError::NewerSchema { found: 99, supported, .. }
            if supported == SqliteStore::schema_version()),
        "got {err:?}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    std::fs::write(
        &db,
        "ProvisioningOrdersList: this is not a database\n".repeat(100),
    )
    .expect("write");
    let err = SqliteStore::open(&db, SqliteOptions::new()).expect_err("not sqlite");
    assert!(matches!(err, OpenError::NotADatabase { .. }), "got {err:?}");
}

#[tokio::test]
async fn a_damaged_file_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    store_with_orders(&db, 300).await;
    let mut bytes = std::fs::read(&db).expect("read");
    assert!(bytes.len() > 8 * 4096, "several pages: {}", bytes.len());
    // Keep the header and the schema page; scribble over the pages after them.
    for (i, b) in bytes[2 * 4096..].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, bytes).expect("write");
    let err = SqliteStore::open(&db, SqliteOptions::new()).expect_err("damaged");
    assert!(matches!(err, OpenError::Corrupt { .. }), "got {err:?}");
}

#[test]
fn a_second_store_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    let first = SqliteStore::open(&db, SqliteOptions::new()).expect("open");
    let err = SqliteStore::open(&db, SqliteOptions::new()).expect_err("in use");
    assert!(matches!(err, OpenError::InUse { .. }), "got {err:?}");
    drop(first);
    SqliteStore::open(&db, SqliteOptions::new()).expect("free again once closed");
}

/// Runs [`child_opens`] in a child process (this test binary, re-executed) on `db`; what
/// it printed.
fn open_in_child(db: &Path) -> String {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "open_errors::child_opens",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, db)
        .output()
        .expect("run the child");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_file_used_by_another_process_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    let store = SqliteStore::open(&db, SqliteOptions::new()).expect("open");
    let seen = open_in_child(&db);
    assert!(seen.contains("child: in use"), "child said: {seen}");
    drop(store);
    let seen = open_in_child(&db);
    assert!(seen.contains("child: opened"), "child said: {seen}");
}

/// The child of [`a_file_used_by_another_process_is_refused`]; does nothing when run alone.
#[test]
#[ignore = "run by a_file_used_by_another_process_is_refused in a child process"]
fn child_opens() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        return;
    };
    match SqliteStore::open(&db, SqliteOptions::new()) {
        Ok(_) => println!("child: opened"),
        Err(OpenError::InUse { .. }) => println!("child: in use"),
        Err(e) => println!("child: {e:?}"),
    }
}
