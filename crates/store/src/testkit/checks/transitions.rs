//! State changes: the state machine inside the store, versions, the by-state index, history, concurrency.

use super::*;

/// An event the state machine refuses is a typed error carrying `IllegalTransition`, and
/// nothing changes.
pub async fn illegal_transition_is_refused(store: Arc<impl Store>) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    let id = record(1).id().clone();
    let before = get(store.as_ref(), &id).await;
    let err = store
        .update_order(
            &id,
            1,
            OrderUpdate::event(E::SynchronizationMatched, t0()).error("x"),
        )
        .await
        .expect_err("Pending + SynchronizationMatched is illegal");
    match &err {
        StoreError::IllegalTransition { order_id, source } => {
            assert_eq!(order_id, &id);
            assert_eq!(source.state, S::Pending);
            assert_eq!(source.event, E::SynchronizationMatched);
            assert!(
                std::error::Error::source(&err).is_some(),
                "the source is kept"
            );
        }
        other => panic!("expected IllegalTransition, got {other:?}"),
    }
    assert_eq!(
        get(store.as_ref(), &id).await,
        before,
        "a refused update writes nothing"
    );
    assert!(store.order_history(&id).await.expect("history").is_empty());
    let err = store
        .update_order(&"absent".into(), 1, OrderUpdate::at(t0()))
        .await
        .expect_err("unknown order");
    assert!(
        matches!(err, StoreError::UnknownOrder { .. }),
        "got {err:?}"
    );
}

/// An update naming a version other than the stored one is a typed conflict.
pub async fn stale_version_is_refused(store: Arc<impl Store>) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    let id = record(1).id().clone();
    let v2 = store
        .update_order(&id, 1, OrderUpdate::at(t0()).attempt_started())
        .await
        .expect("first writer");
    assert_eq!(v2.version, 2);
    let err = store
        .update_order(&id, 1, OrderUpdate::event(E::ConnectorSucceeded, t0()))
        .await
        .expect_err("the second writer read version 1");
    assert!(
        matches!(
            err,
            StoreError::StaleVersion {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "got {err:?}"
    );
    assert_eq!(get(store.as_ref(), &id).await.state, S::Pending);
}

/// `orders_in`, `order_counts` and `unfinished_orders` agree with a scan, through a
/// sequence of transitions.
pub async fn state_index_agrees_with_scan(store: Arc<impl Store>) {
    let n = 24;
    store
        .insert_orders(&(0..n).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let paths: &[&[E]] = &[
        &[],
        &[E::ConnectorSucceeded],
        &[E::ConnectorFailed],
        &[E::ConnectorSucceeded, E::SynchronizationMatched],
        &[
            E::ConnectorSucceeded,
            E::VerificationTimedOut,
            E::OperatorRetried,
        ],
        &[
            E::ConnectorFailed,
            E::OperatorRetried,
            E::ConnectorSucceeded,
        ],
        &[E::PeriodPassed],
    ];
    for i in 0..n {
        for event in paths[i % paths.len()] {
            step(
                store.as_ref(),
                record(i).id(),
                OrderUpdate::event(*event, t0()),
            )
            .await;
        }
        check_index(store.as_ref()).await;
    }
}

pub(super) async fn check_index(store: &dyn Store) {
    let all = all_orders(store, 5).await;
    let mut counts: BTreeMap<S, u64> = BTreeMap::new();
    for r in &all {
        *counts.entry(r.state).or_default() += 1;
    }
    assert_eq!(
        store.order_counts().await.expect("counts"),
        counts,
        "order_counts"
    );
    let ids = |rs: &[OrderRecord]| rs.iter().map(|r| r.id().clone()).collect::<Vec<_>>();
    for s in S::ALL {
        let scanned: Vec<OrderRecord> = all.iter().filter(|r| r.state == *s).cloned().collect();
        let indexed = store.orders_in(&[*s]).await.expect("orders_in");
        assert_eq!(ids(&indexed), ids(&scanned), "orders_in({s})");
        assert_eq!(
            indexed, scanned,
            "orders_in({s}) returns the stored records"
        );
    }
    let open: Vec<OrderRecord> = all
        .iter()
        .filter(|r| OPEN_STATES.contains(&r.state))
        .cloned()
        .collect();
    assert_eq!(
        ids(&store.orders_in(OPEN_STATES).await.expect("open")),
        ids(&open)
    );
    let pending: Vec<OrderRecord> = all
        .iter()
        .filter(|r| r.state == S::Pending)
        .cloned()
        .collect();
    assert_eq!(
        ids(&store.unfinished_orders().await.expect("unfinished")),
        ids(&pending)
    );
}

/// A reopened order keeps its attempts and outcomes: a new round restarts `attempts`, the
/// totals and the history stay.
pub async fn reopened_order_keeps_its_history(store: Arc<impl Store>) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    let id = record(1).id().clone();
    let s = store.as_ref();
    step(s, &id, OrderUpdate::at(t0()).attempt_started()).await;
    step(
        s,
        &id,
        OrderUpdate::at(t0())
            .retry_at(t0() + TimeDelta::seconds(5))
            .error("busy"),
    )
    .await;
    step(s, &id, OrderUpdate::at(t0()).attempt_started()).await;
    let done = step(
        s,
        &id,
        OrderUpdate::event(E::ConnectorSucceeded, t0())
            .learned(Some("CN=u1".into()), Some("g-1".into())),
    )
    .await;
    assert_eq!(done.dispatch.attempts, 2);
    assert_eq!(done.resource_id, Some(ResourceId::new("CN=u1")));
    assert_eq!(done.dispatch.finished_at, Some(t0()));
    step(s, &id, OrderUpdate::event(E::SynchronizationMatched, t0())).await;
    let reopened = step(
        s,
        &id,
        OrderUpdate::event(
            E::DifferenceFound {
                review_required: false,
            },
            t0() + TimeDelta::hours(1),
        ),
    )
    .await;
    assert_eq!(reopened.state, S::Pending);
    assert_eq!(reopened.dispatch.attempts, 0, "a new round of attempts");
    assert_eq!(
        reopened.dispatch.total_attempts, 2,
        "earlier attempts are kept"
    );
    assert_eq!(reopened.dispatch.reopened, 1);
    assert_eq!(reopened.dispatch.finished_at, None);
    assert_eq!(
        reopened.stable_id,
        Some(StableId::new("g-1")),
        "what was learned stays"
    );
    let history = s.order_history(&id).await.expect("history");
    assert_eq!(history.len(), 6, "one entry per update: {history:?}");
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6, 7]
    );
    assert_eq!(history[0].attempt, Some(1));
    assert_eq!(history[1].message.as_deref(), Some("busy"));
    assert_eq!((history[3].from, history[3].to), (S::Pending, S::Executed));
    assert_eq!((history[5].from, history[5].to), (S::Verified, S::Pending));
}

/// Many tasks updating the same orders concurrently with read-modify-write loops: every
/// successful update is kept (no lost update), the history has one entry per version.
pub async fn concurrent_updates_lose_nothing(store: Arc<impl Store>) {
    let orders = 5;
    let tasks = 8;
    let per_task = 10;
    store
        .insert_orders(&(0..orders).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for k in 0..per_task {
                let id = record((t + k) % orders).id().clone();
                loop {
                    let current = store.order(&id).await.expect("read").expect("stored");
                    match store
                        .update_order(
                            &id,
                            current.version,
                            OrderUpdate::at(t0()).attempt_started(),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::StaleVersion { .. }) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let mut total = 0;
    for i in 0..orders {
        let r = get(store.as_ref(), record(i).id()).await;
        let history = store.order_history(r.id()).await.expect("history");
        assert_eq!(
            history.len() as u64,
            r.version - 1,
            "one history entry per version"
        );
        assert_eq!(u64::from(r.dispatch.total_attempts), r.version - 1);
        total += r.dispatch.total_attempts;
    }
    assert_eq!(total as usize, tasks * per_task, "every update is kept");
}

/// Many tasks racing to apply an outcome to the same Pending order at the version they
/// read: exactly one wins, the others get a typed conflict (or, having re-read, a typed
/// illegal transition), never a second effect.
pub async fn concurrent_transitions_apply_once(store: Arc<impl Store>) {
    store.insert_orders(&[record(1)]).await.expect("insert");
    let id = record(1).id().clone();
    let mut handles = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            let event = if t % 2 == 0 {
                E::ConnectorSucceeded
            } else {
                E::ConnectorFailed
            };
            let current = store.order(&id).await.expect("read").expect("stored");
            store
                .update_order(&id, current.version, OrderUpdate::event(event, t0()))
                .await
        }));
    }
    let mut won = 0;
    for h in handles {
        match h.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::StaleVersion { .. } | StoreError::IllegalTransition { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one outcome is recorded");
    let r = get(store.as_ref(), &id).await;
    assert_eq!(r.version, 2);
    assert!(matches!(r.state, S::Executed | S::Errored));
    assert_eq!(store.order_history(&id).await.expect("history").len(), 1);
}

/// An Added order whose connector found an account to adopt that needs review
/// (`AdoptionNeedsReview`) waits in AwaitingApproval with [`AdoptionReview::Waiting`]; approved,
/// it is Pending with [`AdoptionReview::Approved`] and a new round of attempts, kept by the store
/// (so it is sent without asking again, also after a restart); declined, it is Inactive and a
/// later reopening asks again.
///
/// [`AdoptionReview::Waiting`]: crate::AdoptionReview::Waiting
/// [`AdoptionReview::Approved`]: crate::AdoptionReview::Approved
pub async fn adoption_review_is_kept(store: Arc<impl Store>) {
    use crate::AdoptionReview;
    let s = store.as_ref();
    s.insert_orders(&[record(1), record(2)])
        .await
        .expect("insert");
    let (one, two) = (record(1).id().clone(), record(2).id().clone());
    for id in [&one, &two] {
        step(s, id, OrderUpdate::at(t0()).attempt_started()).await;
        let r = step(
            s,
            id,
            OrderUpdate::event(E::AdoptionNeedsReview, t0()).error("an existing account"),
        )
        .await;
        assert_eq!(r.state, S::AwaitingApproval);
        assert_eq!(r.dispatch.adoption, AdoptionReview::Waiting);
        assert_eq!(get(s, id).await.dispatch.adoption, AdoptionReview::Waiting);
    }
    let version = get(s, &one).await.version;
    let approved = s
        .decide_review(
            version,
            ReviewDecision::new(one.clone(), ReviewVerdict::Approved, "alice", t0()),
        )
        .await
        .expect("approve");
    assert_eq!(approved.state, S::Pending);
    assert_eq!(approved.dispatch.adoption, AdoptionReview::Approved);
    assert_eq!(approved.dispatch.attempts, 0, "approval starts a new round");
    assert_eq!(approved.dispatch.total_attempts, 1);
    let reread = get(s, &one).await;
    assert_eq!(reread.dispatch.adoption, AdoptionReview::Approved);
    assert_eq!(
        all_orders(s, 10)
            .await
            .iter()
            .find(|r| r.id() == &one)
            .map(|r| r.dispatch.adoption),
        Some(AdoptionReview::Approved),
        "a scan reads the approval back"
    );
    let version = get(s, &two).await.version;
    let declined = s
        .decide_review(
            version,
            ReviewDecision::new(two.clone(), ReviewVerdict::Declined, "bob", t0()),
        )
        .await
        .expect("decline");
    assert_eq!(declined.state, S::Inactive);
    let reopened = step(
        s,
        &two,
        OrderUpdate::event(
            E::DifferenceFound {
                review_required: false,
            },
            t0(),
        ),
    )
    .await;
    assert_eq!(reopened.state, S::Pending);
    assert_eq!(
        reopened.dispatch.adoption,
        AdoptionReview::NotAsked,
        "a declined adoption reopened later asks again"
    );
}
