//! Migrations and what the store refuses to keep.

use crate::support;
use autoprov_core::{ConnectionMode, Secret};
use autoprov_store::testkit::{order, record, t0};
use autoprov_store::{OrderRecord, Store, StoreError};
use autoprov_store_postgres::PgStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_twice_is_a_no_op_and_keeps_the_data() {
    let Some(url) = support::pg_url("migrating_twice_is_a_no_op_and_keeps_the_data") else {
        return;
    };
    let schema = support::fresh_schema();
    let first = support::store_in(&url, &schema).await;
    first.insert_orders(&[record(1)]).await.expect("insert");
    // Several processes starting at once: the advisory lock lets one migrate.
    let again = futures::future::join_all((0..4).map(|_| support::store_in(&url, &schema))).await;
    for s in &again {
        assert_eq!(s.schema(), schema);
        assert!(s.order(record(1).id()).await.expect("read").is_some());
    }
    assert_eq!(PgStore::schema_version(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_holding_a_secret_is_refused_naming_order_and_property() {
    let Some(store) = support::store("an_order_holding_a_secret_is_refused").await else {
        return;
    };
    let mut o = order(7);
    o.changes
        .set("unicodePwd", Secret::new("Initial-Passw0rd!"));
    let r = OrderRecord::pending(o, ConnectionMode::Automated, t0());
    let err = store
        .insert_orders(&[record(1), r])
        .await
        .expect_err("a secret must not be stored masked");
    match err {
        StoreError::SecretWithoutKey { order_id, property } => {
            assert_eq!(order_id.as_str(), "o-00007");
            assert_eq!(property, "unicodePwd");
        }
        other => panic!("expected SecretWithoutKey, got {other:?}"),
    }
    assert!(
        store.order(record(1).id()).await.expect("read").is_none(),
        "nothing of the batch is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schema_name_is_refused() {
    let err = PgStore::builder()
        .url("postgres://u:p@127.0.0.1:1/db")
        .schema("x; DROP TABLE orders")
        .build()
        .await
        .expect_err("refused before connecting");
    assert!(format!("{err:?}").contains("BadSchema"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_batches_inserted_at_once_do_not_deadlock() {
    let Some(store) = support::store("overlapping_batches_inserted_at_once").await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch: Vec<OrderRecord> = (0..100).map(record).collect();
                if t % 2 == 1 {
                    batch.reverse();
                }
                batch.rotate_left(t * 7);
                store.insert_orders(&batch).await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("every batch is accepted");
    }
    assert_eq!(
        store.orders_page(None, 1000).await.expect("page").len(),
        100
    );
}
