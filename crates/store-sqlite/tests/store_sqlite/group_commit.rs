//! Group commit: concurrent writes share transactions, and a write that fails inside a batch
//! fails alone.

use crate::common::fresh;
use autoprov_core::ConnectionMode;
use autoprov_store::testkit::{order_for, record, t0};
use autoprov_store::{OrderRecord, OrderUpdate, Store, StoreError};
use autoprov_store_sqlite::SqliteOptions;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_writes_fail_alone_inside_shared_transactions() {
    let store = Arc::new(fresh(SqliteOptions::new()));
    let n = 300;
    store
        .insert_orders(&(0..n).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = record(i).id().clone();
            match i % 3 {
                // A good update.
                0 => store
                    .update_order(&id, 1, OrderUpdate::at(t0()).attempt_started())
                    .await
                    .map(|_| "ok"),
                // A stale one: refused, alone.
                1 => store
                    .update_order(&id, 7, OrderUpdate::at(t0()).attempt_started())
                    .await
                    .map(|_| "stale accepted"),
                // A conflicting insert beside a good one: the batch of two is refused whole.
                _ => store
                    .insert_orders(&[
                        record(n + i),
                        OrderRecord::pending(
                            order_for(i, "someone-else"),
                            ConnectionMode::Automated,
                            t0(),
                        ),
                    ])
                    .await
                    .map(|_| "conflict accepted"),
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let outcome = t.await.expect("task");
        match (i % 3, outcome) {
            (0, Ok("ok")) => {}
            (1, Err(StoreError::StaleVersion { .. })) => {}
            (2, Err(StoreError::ConflictingOrder { .. })) => {}
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    for i in 0..n {
        let r = store
            .order(record(i).id())
            .await
            .expect("read")
            .expect("stored");
        let expected = if i % 3 == 0 { 2 } else { 1 };
        assert_eq!(r.version, expected, "o-{i}");
        assert_eq!(
            store.order_history(r.id()).await.expect("history").len() as u64,
            expected - 1
        );
        if i % 3 == 2 {
            assert!(
                store
                    .order(record(n + i).id())
                    .await
                    .expect("read")
                    .is_none(),
                "nothing of a refused batch is written"
            );
        }
    }
    let stats = store.stats();
    assert_eq!(
        stats.writes,
        n as u64 + 1,
        "every write went through the writer"
    );
    assert!(
        stats.commits < stats.writes && stats.largest_batch > 1,
        "concurrent writes share commits: {stats:?}"
    );
}
