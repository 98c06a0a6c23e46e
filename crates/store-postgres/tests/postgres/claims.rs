//! Work distribution against the real server: exclusive claims, lease expiry and fencing,
//! dependencies, planning epochs.

use crate::support;
use autoprov_core::{ConnectionMode, OrderId, ProvisioningEvent as E, ProvisioningState as S};
use autoprov_store::testkit::{order, record, t0};
use autoprov_store::{ClaimStore, OrderRecord, OrderUpdate, Store, StoreError};
use chrono::{TimeDelta, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn dependent(i: usize, on: &[usize]) -> OrderRecord {
    let mut o = order(i);
    o.depends_on = on.iter().map(|d| record(*d).id().clone()).collect();
    OrderRecord::pending(o, ConnectionMode::Automated, t0())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_get_the_same_order() {
    let Some(store) = support::store("concurrent_claimers_never_get_the_same_order").await else {
        return;
    };
    let n = 60;
    store
        .insert_orders(&(0..n).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let store = Arc::new(store);
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claims = store
                    .claim(&format!("worker-{w}"), 3, LONG)
                    .await
                    .expect("claim");
                if claims.is_empty() {
                    return got;
                }
                got.extend(claims.into_iter().map(|c| (c.order_id().clone(), c.token)));
            }
        }));
    }
    let mut all: Vec<(OrderId, u64)> = Vec::new();
    for h in handles {
        all.extend(h.await.expect("worker"));
    }
    let ids: BTreeSet<&OrderId> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(all.len(), n, "every order claimed exactly once: {all:?}");
    assert_eq!(ids.len(), n, "no order claimed twice");
    let tokens: BTreeSet<u64> = all.iter().map(|(_, t)| *t).collect();
    assert_eq!(tokens.len(), n, "every lease has its own token");
    assert!(
        store
            .claim("late", 10, LONG)
            .await
            .expect("claim")
            .is_empty(),
        "leased orders are not claimable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced() {
    let Some(store) = support::store("an_expired_lease_is_taken_over").await else {
        return;
    };
    store.insert_orders(&[record(1)]).await.expect("insert");
    let short = Duration::from_millis(300);
    let old = store.claim("a", 10, short).await.expect("claim").remove(0);
    assert!(
        store.claim("b", 10, short).await.expect("claim").is_empty(),
        "a live lease is not taken"
    );
    // The old holder records that its attempt starts, then stalls past its lease.
    let old = store
        .record_outcome(&old, OrderUpdate::at(Utc::now()).attempt_started())
        .await
        .expect("write under a live lease");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let new = store.claim("b", 10, LONG).await.expect("claim");
    assert_eq!(new.len(), 1, "the expired lease is taken over");
    let new = new.into_iter().next().expect("one");
    assert!(new.token > old.token, "a later holder has a greater token");
    assert_eq!(
        new.record.dispatch.attempts, 1,
        "the new holder sees the attempt"
    );

    let err = store
        .record_outcome(&old, OrderUpdate::event(E::ConnectorSucceeded, Utc::now()))
        .await
        .expect_err("the old holder is fenced");
    assert!(
        matches!(&err, StoreError::LeaseLost { order_id, token } if order_id == old.order_id() && *token == old.token),
        "got {err:?}"
    );
    assert!(matches!(
        store.renew(&old, LONG).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        store.release(&old).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let renewed = store.renew(&new, LONG).await.expect("renew");
    assert!(renewed.lease_expires_at >= new.lease_expires_at);
    let done = store
        .record_outcome(
            &renewed,
            OrderUpdate::event(E::ConnectorFailed, Utc::now()).error("x"),
        )
        .await
        .expect("the holder records");
    assert_eq!(done.record.state, S::Errored);
    let stored = store
        .order(old.order_id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        stored, done.record,
        "only the new holder's outcome is stored"
    );
    assert_eq!(
        store
            .order_history(old.order_id())
            .await
            .expect("history")
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_a_claim_checks_the_version_too() {
    let Some(store) = support::store("a_write_under_a_claim_checks_the_version_too").await else {
        return;
    };
    store.insert_orders(&[record(1)]).await.expect("insert");
    let claim = store.claim("a", 1, LONG).await.expect("claim").remove(0);
    // An operator changes the order meanwhile (outside the claim).
    store
        .update_order(claim.order_id(), 1, OrderUpdate::at(t0()).error("note"))
        .await
        .expect("operator");
    let err = store
        .record_outcome(&claim, OrderUpdate::event(E::ConnectorSucceeded, t0()))
        .await
        .expect_err("stale");
    assert!(
        matches!(err, StoreError::StaleVersion { .. }),
        "got {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_never_returns_an_order_whose_dependency_is_not_done() {
    let Some(store) = support::store("a_claim_never_returns_an_order_whose_dependency").await
    else {
        return;
    };
    // 2 needs 1; 3 needs 9, which is not stored; 4 needs 1 and 5.
    store
        .insert_orders(&[
            record(1),
            dependent(2, &[1]),
            dependent(3, &[9]),
            dependent(4, &[1, 5]),
            record(5),
        ])
        .await
        .expect("insert");
    let ids = |cs: &[autoprov_store::Claim]| {
        cs.iter()
            .map(|c| c.order_id().to_string())
            .collect::<Vec<_>>()
    };
    let first = store.claim("w", 10, LONG).await.expect("claim");
    assert_eq!(ids(&first), ["o-00001", "o-00005"]);
    // 1 fails for now and is retried later: 2 and 4 stay blocked, 1 is not due.
    let one = store
        .record_outcome(
            &first[0],
            OrderUpdate::at(Utc::now())
                .retry_at(Utc::now() + TimeDelta::hours(1))
                .error("busy"),
        )
        .await
        .expect("retry later");
    store.release(&one).await.expect("release");
    store
        .record_outcome(
            &first[1],
            OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
        )
        .await
        .expect("5 done");
    assert!(store.claim("w", 10, LONG).await.expect("claim").is_empty());
    // An operator makes 1 due now; it succeeds; 2 and 4 become ready, 3 never.
    let r1 = store
        .order(record(1).id())
        .await
        .expect("read")
        .expect("stored");
    store
        .update_order(
            r1.id(),
            r1.version,
            OrderUpdate::at(Utc::now()).retry_at(t0()),
        )
        .await
        .expect("due now");
    let again = store.claim("w", 10, LONG).await.expect("claim");
    assert_eq!(ids(&again), ["o-00001"]);
    store
        .record_outcome(
            &again[0],
            OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
        )
        .await
        .expect("1 done");
    let ready = store.claim("w", 10, LONG).await.expect("claim");
    assert_eq!(ids(&ready), ["o-00002", "o-00004"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_planning_epoch_cannot_insert() {
    let Some(store) = support::store("a_stale_planning_epoch_cannot_insert").await else {
        return;
    };
    let first = store.begin_planning("planner-a").await.expect("begin");
    store
        .insert_orders_in_epoch(&first, &[record(1)])
        .await
        .expect("current epoch inserts");
    let second = store.begin_planning("planner-b").await.expect("begin");
    assert!(second.epoch > first.epoch);
    let err = store
        .insert_orders_in_epoch(&first, &[record(2)])
        .await
        .expect_err("stale epoch");
    assert!(
        matches!(err, StoreError::StalePlanningEpoch { epoch, current } if epoch == first.epoch && current == second.epoch),
        "got {err:?}"
    );
    assert!(store.order(record(2).id()).await.expect("read").is_none());
    store
        .insert_orders_in_epoch(&second, &[record(2)])
        .await
        .expect("the new planner inserts");
}
