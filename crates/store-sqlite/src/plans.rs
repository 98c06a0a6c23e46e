//! The reads use the indexes they are meant to: query plans checked against a real file,
//! and the record columns checked against the fields of `OrderRecord`.

use crate::orders::{orders_in_sql, orders_page_sql};
use rusqlite::Connection;

fn plan(conn: &Connection, sql: &str, params: &[&str]) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let rows: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    rows.join(" | ")
}

fn store_file() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = crate::schema::open_writer(&dir.path().join("plans.db"), true).expect("open");
    (dir, conn)
}

#[test]
fn orders_in_reads_the_state_index() {
    let (_dir, conn) = store_file();
    let p = plan(&conn, &orders_in_sql(2), &["Pending", "Errored"]);
    assert!(p.contains("orders_by_state"), "{p}");
    assert!(!p.contains("SCAN o"), "no scan of the orders: {p}");
}

#[test]
fn pages_are_keyset_searches() {
    let (_dir, conn) = store_file();
    let p = plan(&conn, &orders_page_sql(), &["o-1", "10"]);
    assert!(p.contains("SEARCH o USING PRIMARY KEY (id>?)"), "{p}");
    assert!(!p.contains("TEMP B-TREE"), "no sort: {p}");
}

/// The order's columns cover every field of `OrderRecord`: a field added to it must get a
/// column (and a migration) before this test passes again.
#[test]
fn order_columns_cover_the_record() {
    let record = autoprov_store::testkit::record(1);
    let json = serde_json::to_value(&record).expect("json");
    let mut fields: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "dispatch",
            "mode",
            "order",
            "resource_id",
            "stable_id",
            "state",
            "ticket",
            "version"
        ]
    );
}
