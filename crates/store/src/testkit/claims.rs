//! The claim checks: what every [`ClaimStore`] must show when several workers share it
//! (exclusive claims, lease expiry and fencing, dependencies, planning epochs). They use the
//! store's real clock: the lease check sleeps past a short lease (about 1.3 s).
#![allow(clippy::disallowed_methods)] // test checks may read the wall clock

use super::fixtures::{order, record, t0};
use crate::{Claim, ClaimStore, OrderRecord, OrderUpdate, SharedBreaker, StoreError};
use autoprov_core::{
    ConnectionId, ConnectionMode, OrderId, ProvisioningEvent as E, ProvisioningState as S,
};
use chrono::{TimeDelta, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Every claim check, in the order the macro generates them.
pub const ALL: &[&str] = &[
    "concurrent_claimers_never_get_the_same_order",
    "an_expired_lease_is_taken_over_and_the_old_holder_is_fenced",
    "a_write_under_a_claim_checks_the_version_too",
    "a_batch_of_writes_is_fenced_order_by_order",
    "a_claim_never_returns_an_order_whose_dependency_is_not_done",
    "a_stale_planning_epoch_cannot_insert",
    "permits_bound_a_connection_across_workers",
    "the_shared_breaker_opens_lets_one_probe_and_closes",
];

const LONG: Duration = Duration::from_secs(60);

fn dependent(i: usize, on: &[usize]) -> OrderRecord {
    let mut o = order(i);
    o.depends_on = on.iter().map(|d| record(*d).id().clone()).collect();
    OrderRecord::pending(o, ConnectionMode::Automated, t0())
}

/// Four tasks claiming in small batches until nothing is left: every order is claimed exactly
/// once, each lease with its own token, and leased orders are not claimable.
pub async fn concurrent_claimers_never_get_the_same_order(store: Arc<impl ClaimStore>) {
    let n = 60;
    store
        .insert_orders(&(0..n).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
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

/// A lease that expired is taken over with a greater token; the old holder's outcome, renewal
/// and release are refused with `LeaseLost`, and only the new holder's outcome is stored.
pub async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(
    store: Arc<impl ClaimStore>,
) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    // Long enough that a loaded CI machine claims twice within it; the sleep below ends it.
    let short = Duration::from_millis(1000);
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
    tokio::time::sleep(Duration::from_millis(1300)).await;
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

/// A write under a claim is refused as stale when the order changed outside the claim.
pub async fn a_write_under_a_claim_checks_the_version_too(store: Arc<impl ClaimStore>) {
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

/// `record_outcomes` writes a batch under several claims, each fenced by its own token in
/// the write: the orders whose claims hold are recorded (intents first, then outcomes), while
/// the one another worker took over after its lease expired gets `LeaseLost` and nothing is
/// written for it (its record and history stay as the new holder sees them); a stale version
/// and an illegal transition in the same batch are refused for their order only.
pub async fn a_batch_of_writes_is_fenced_order_by_order(store: Arc<impl ClaimStore>) {
    store
        .insert_orders(&(1..=5).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    // Order 1 on a short lease, 2 to 5 on a long one.
    let short = Duration::from_millis(1000);
    let mut held = store.claim("a", 1, short).await.expect("claim");
    held.extend(store.claim("a", 4, LONG).await.expect("claim"));
    let ids: Vec<String> = held.iter().map(|c| c.order_id().to_string()).collect();
    assert_eq!(ids, ["o-00001", "o-00002", "o-00003", "o-00004", "o-00005"]);
    // Every intent in one batch, before any call.
    let intents = store
        .record_outcomes(
            held.iter()
                .map(|c| (c.clone(), OrderUpdate::at(Utc::now()).attempt_started()))
                .collect(),
        )
        .await;
    assert_eq!(intents.len(), 5, "one answer per write");
    let held: Vec<Claim> = intents
        .into_iter()
        .map(|r| r.expect("every intent recorded under a live lease"))
        .collect();
    for c in &held {
        assert_eq!(c.record.dispatch.attempts, 1, "{}", c.order_id());
        let stored = store
            .order(c.order_id())
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(&stored, &c.record, "the claim carries the record as stored");
    }
    // 1's holder stalls past its lease; "b" takes 1 over.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let taken = store.claim("b", 10, LONG).await.expect("claim");
    assert_eq!(taken.len(), 1, "only the expired lease is taken: {taken:?}");
    let taken = taken.into_iter().next().expect("one");
    assert_eq!(taken.order_id(), held[0].order_id());
    // An operator changes 4 outside the claim.
    store
        .update_order(
            held[3].order_id(),
            held[3].record.version,
            OrderUpdate::at(Utc::now()).error("note"),
        )
        .await
        .expect("operator");
    let outcomes = store
        .record_outcomes(vec![
            (
                held[0].clone(),
                OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
            ),
            (
                held[1].clone(),
                OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
            ),
            (
                held[2].clone(),
                OrderUpdate::event(E::ConnectorFailed, Utc::now()).error("refused"),
            ),
            (
                held[3].clone(),
                OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
            ),
            // Pending + SynchronizationMatched is illegal.
            (
                held[4].clone(),
                OrderUpdate::event(E::SynchronizationMatched, Utc::now()),
            ),
        ])
        .await;
    assert_eq!(outcomes.len(), 5, "one answer per write");
    let mut outcomes = outcomes.into_iter();
    let lost = outcomes
        .next()
        .expect("1")
        .expect_err("1's old holder is fenced");
    assert!(
        matches!(&lost, StoreError::LeaseLost { order_id, token }
            if order_id == held[0].order_id() && *token == held[0].token),
        "got {lost:?}"
    );
    let two = outcomes.next().expect("2").expect("2 recorded");
    assert_eq!(two.record.state, S::Executed);
    let three = outcomes.next().expect("3").expect("3 recorded");
    assert_eq!(three.record.state, S::Errored);
    let four = outcomes
        .next()
        .expect("4")
        .expect_err("4 changed outside the claim");
    assert!(
        matches!(four, StoreError::StaleVersion { .. }),
        "got {four:?}"
    );
    let five = outcomes
        .next()
        .expect("5")
        .expect_err("5's update is illegal");
    assert!(
        matches!(five, StoreError::IllegalTransition { .. }),
        "got {five:?}"
    );
    // Nothing was written for 1: the new holder's view is the store's.
    let one = store
        .order(held[0].order_id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(one, taken.record, "nothing written over the new holder");
    assert_eq!(one.state, S::Pending);
    assert_eq!(
        store
            .order_history(held[0].order_id())
            .await
            .expect("history")
            .len(),
        1,
        "the intent only"
    );
    for c in [&two, &three] {
        let stored = store
            .order(c.order_id())
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(&stored, &c.record, "{}", c.order_id());
        assert_eq!(
            store
                .order_history(c.order_id())
                .await
                .expect("history")
                .len(),
            2,
            "the intent and the outcome"
        );
    }
    let five_stored = store
        .order(held[4].order_id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(five_stored, held[4].record, "nothing written for 5");
    // The new holder records 1.
    let done = store
        .record_outcomes(vec![(
            taken.clone(),
            OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
        )])
        .await
        .remove(0)
        .expect("the holder records");
    assert_eq!(done.record.state, S::Executed);
}

/// A claim never returns an order whose dependencies are not Executed or Verified (or not
/// stored), nor one whose next attempt is not due.
pub async fn a_claim_never_returns_an_order_whose_dependency_is_not_done(
    store: Arc<impl ClaimStore>,
) {
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
    let ids = |cs: &[Claim]| {
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

/// An insert under a superseded planning epoch is refused and writes nothing.
pub async fn a_stale_planning_epoch_cannot_insert(store: Arc<impl ClaimStore>) {
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

/// A connection's limit holds across workers: no more permits than the limit are live at
/// once, a released slot is taken again, an expired one is taken over with a greater token
/// (the old holder's renewal is `PermitLost`, its release a no-op), and connections do not
/// share slots.
pub async fn permits_bound_a_connection_across_workers(store: Arc<impl ClaimStore>) {
    let conn = ConnectionId::new("kit-conn");
    let other = ConnectionId::new("kit-other");
    let a = store
        .acquire_permits(&conn, "a", 3, 2, LONG)
        .await
        .expect("acquire");
    assert_eq!(a.len(), 2, "a gets the 2 it wants");
    let b = store
        .acquire_permits(&conn, "b", 3, 5, LONG)
        .await
        .expect("acquire");
    assert_eq!(b.len(), 1, "b gets the one slot left of 3");
    assert!(
        store
            .acquire_permits(&conn, "c", 3, 1, LONG)
            .await
            .expect("acquire")
            .is_empty(),
        "the limit is reached"
    );
    let mut slots: Vec<u32> = a.iter().chain(&b).map(|p| p.slot).collect();
    slots.sort_unstable();
    assert_eq!(slots, [0, 1, 2]);
    assert_eq!(
        store
            .acquire_permits(&other, "c", 1, 1, LONG)
            .await
            .expect("acquire")
            .len(),
        1,
        "another connection has its own slots"
    );
    store.release_permits(&a[..1]).await.expect("release");
    let c = store
        .acquire_permits(&conn, "c", 3, 2, LONG)
        .await
        .expect("acquire");
    assert_eq!(c.len(), 1, "the released slot is free again");
    assert_eq!(c[0].slot, a[0].slot);
    assert!(c[0].token > a[0].token);

    // b's slot expires and is taken over.
    let short = Duration::from_millis(1000);
    let b = store.renew_permit(&b[0], short).await.expect("renew");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let d = store
        .acquire_permits(&conn, "d", 3, 3, LONG)
        .await
        .expect("acquire");
    assert_eq!(d.len(), 1, "only the expired slot is free");
    assert_eq!(d[0].slot, b.slot);
    let err = store.renew_permit(&b, LONG).await.expect_err("fenced");
    assert!(
        matches!(&err, StoreError::PermitLost { connection, slot, token }
            if connection == &conn && *slot == b.slot && *token == b.token),
        "got {err:?}"
    );
    store
        .release_permits(std::slice::from_ref(&b))
        .await
        .expect("releasing a lost permit is a no-op");
    assert!(
        store
            .acquire_permits(&conn, "e", 3, 1, LONG)
            .await
            .expect("acquire")
            .is_empty(),
        "the old holder's release did not free the new holder's slot"
    );
    store
        .renew_permit(&d[0], LONG)
        .await
        .expect("the new holder renews");
}

/// The shared breaker: failures count up to the threshold and open it; while open, failures
/// change nothing; when the open period ends exactly one of several callers wins the probe;
/// a success closes it.
pub async fn the_shared_breaker_opens_lets_one_probe_and_closes(store: Arc<impl ClaimStore>) {
    let conn = ConnectionId::new("kit-breaker");
    let open_for = Duration::from_millis(1000);
    assert_eq!(
        store.breaker(&conn).await.expect("read"),
        SharedBreaker::Closed { failures: 0 }
    );
    assert_eq!(
        store
            .breaker_failure(&conn, 2, open_for)
            .await
            .expect("fail"),
        SharedBreaker::Closed { failures: 1 }
    );
    store.breaker_success(&conn).await.expect("success");
    store
        .breaker_failure(&conn, 2, open_for)
        .await
        .expect("fail");
    let opened = store
        .breaker_failure(&conn, 2, open_for)
        .await
        .expect("fail");
    assert!(
        matches!(opened, SharedBreaker::Open { remaining } if remaining <= open_for),
        "{opened:?}"
    );
    assert!(matches!(
        store.breaker(&conn).await.expect("read"),
        SharedBreaker::Open { .. }
    ));
    assert!(
        !store
            .breaker_try_probe(&conn, open_for)
            .await
            .expect("probe"),
        "no probe while open"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        store.breaker(&conn).await.expect("read"),
        SharedBreaker::ProbeDue
    );
    let probes =
        futures::future::join_all((0..4).map(|_| store.breaker_try_probe(&conn, LONG))).await;
    let won = probes
        .into_iter()
        .map(|r| r.expect("probe"))
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1, "exactly one worker probes");
    assert!(matches!(
        store.breaker(&conn).await.expect("read"),
        SharedBreaker::Open { .. }
    ));
    store.breaker_success(&conn).await.expect("good probe");
    assert_eq!(
        store.breaker(&conn).await.expect("read"),
        SharedBreaker::Closed { failures: 0 }
    );
}
