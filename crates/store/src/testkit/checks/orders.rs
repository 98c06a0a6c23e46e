//! Orders: inserts, re-inserts, conflicts, paging, results.

use super::*;

/// Inserted orders read back equal to what was written, version 1, by key and paged in key
/// order.
pub async fn insert_and_reread(store: Arc<impl Store>) {
    let records: Vec<OrderRecord> = (0..10).rev().map(record).collect();
    let existing = store.insert_orders(&records).await.expect("insert");
    assert!(
        existing.is_empty(),
        "a fresh store reported {existing:?} as already stored"
    );
    for r in &records {
        let back = get(store.as_ref(), r.id()).await;
        assert_eq!(back.version, 1, "a new order is stored at version 1");
        let mut expected = r.clone();
        expected.version = 1;
        assert_eq!(back, expected, "order {} read back differently", r.id());
    }
    let paged = all_orders(store.as_ref(), 3).await;
    let ids: Vec<&OrderId> = paged.iter().map(OrderRecord::id).collect();
    let mut sorted: Vec<&OrderId> = records.iter().map(OrderRecord::id).collect();
    sorted.sort();
    assert_eq!(
        ids, sorted,
        "orders_page must page through every order in key order"
    );
    assert!(
        store
            .order(&"absent".into())
            .await
            .expect("order")
            .is_none()
    );
}

/// Re-inserting the same order changes nothing; a conflicting or duplicated one refuses the
/// whole batch.
pub async fn reinsert_is_noop_and_conflict_is_refused(store: Arc<impl Store>) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    let sent = step(
        store.as_ref(),
        record(1).id(),
        OrderUpdate::at(t0()).attempt_started(),
    )
    .await;
    let again = store
        .insert_orders(&[record(1), record(2)])
        .await
        .expect("re-insert");
    assert_eq!(
        again,
        vec![record(1).id().clone()],
        "the already stored ids"
    );
    assert_eq!(
        get(store.as_ref(), record(1).id()).await,
        sent,
        "re-inserting an order must not reset it"
    );
    assert!(store.order(record(2).id()).await.expect("order").is_some());
    // The same change planned again with another context (the owner's current values, the
    // orders it waits for) is the same order: a no-op, not a conflict.
    let mut replanned = order(1);
    replanned.depends_on.push("o-00000".into());
    if let Some(owner) = replanned.owner.as_mut() {
        owner.identifier = "renamed".to_owned();
    }
    let again = store
        .insert_orders(&[OrderRecord::pending(
            replanned,
            ConnectionMode::Automated,
            t0(),
        )])
        .await
        .expect("the same change again");
    assert_eq!(again, vec![record(1).id().clone()]);
    assert_eq!(
        get(store.as_ref(), record(1).id()).await,
        sent,
        "the stored order stays"
    );

    let conflicting = OrderRecord::pending(
        order_for(1, "someone-else"),
        ConnectionMode::Automated,
        t0(),
    );
    let err = store
        .insert_orders(&[record(3), conflicting])
        .await
        .expect_err("a conflicting order must be refused");
    assert!(
        matches!(&err, StoreError::ConflictingOrder { order_id } if order_id == record(1).id()),
        "expected ConflictingOrder naming o-00001, got {err:?}"
    );
    assert!(
        store.order(record(3).id()).await.expect("order").is_none(),
        "a refused batch must write nothing"
    );
    let err = store
        .insert_orders(&[record(4), record(4)])
        .await
        .expect_err("an id twice in one batch must be refused");
    assert!(
        matches!(err, StoreError::DuplicateInBatch { .. }),
        "got {err:?}"
    );
    assert!(store.order(record(4).id()).await.expect("order").is_none());
}

/// Results are those of finished orders, derived from their records, paged by order id.
pub async fn results_follow_records(store: Arc<impl Store>) {
    store
        .insert_orders(&(0..6).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let s = store.as_ref();
    step(
        s,
        record(1).id(),
        OrderUpdate::event(E::ConnectorSucceeded, t0()),
    )
    .await;
    step(
        s,
        record(3).id(),
        OrderUpdate::event(E::ConnectorFailed, t0()).error("refused"),
    )
    .await;
    step(
        s,
        record(4).id(),
        OrderUpdate::event(E::ConnectorSucceeded, t0()),
    )
    .await;
    let first = s.results_page(None, 2).await.expect("results");
    let rest = s
        .results_page(Some(&first[1].order_id), 10)
        .await
        .expect("results");
    let ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|r| r.order_id.to_string())
        .collect();
    assert_eq!(ids, ["o-00001", "o-00003", "o-00004"]);
    assert_eq!(first[1].provisioning_state, S::Errored);
    assert_eq!(first[1].message.as_deref(), Some("refused"));
    assert_eq!(rest[0], get(s, record(4).id()).await.result());
}
