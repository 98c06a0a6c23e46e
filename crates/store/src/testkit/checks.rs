//! The conformance checks. Each takes a fresh store and panics, naming what it found, when
//! the store misbehaves.

use super::fixtures::{order, order_for, record, t0};
use crate::{
    Assignment, Assignments, AuditAction, AuditEntry, JobKind, JobRun, JobStatus, OPEN_STATES,
    OrderRecord, OrderUpdate, ReviewDecision, ReviewVerdict, Store, StoreError,
};
use autoprov_core::{
    AssignedResourceScalar, AssignedResourceType, AssignmentId, AssignmentRequest,
    AssignmentStatus, ConnectionId, ConnectionMode, ExportCookie, OrderId, PropertyValue,
    ProvisioningEvent as E, ProvisioningState as S, RequestKind, RequestedAssignment, Resource,
    ResourceId, ScalarValue, StableId, WorkflowState,
};
use chrono::TimeDelta;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every check, in the order the macro generates them.
pub const ALL: &[&str] = &[
    "insert_and_reread",
    "reinsert_is_noop_and_conflict_is_refused",
    "illegal_transition_is_refused",
    "stale_version_is_refused",
    "state_index_agrees_with_scan",
    "reopened_order_keeps_its_history",
    "results_follow_records",
    "cookies",
    "resources_by_key_and_stable_id",
    "assignments_and_requests",
    "review_decisions",
    "job_runs",
    "concurrent_updates_lose_nothing",
    "concurrent_transitions_apply_once",
    "audit_trail",
    "retention_purges_finished_orders_only",
    "erasure_removes_one_owner",
];

async fn all_orders(store: &dyn Store, page: usize) -> Vec<OrderRecord> {
    let mut out: Vec<OrderRecord> = Vec::new();
    loop {
        let next = store
            .orders_page(out.last().map(OrderRecord::id), page)
            .await
            .expect("orders_page");
        assert!(
            next.len() <= page,
            "orders_page returned more than its limit"
        );
        if next.is_empty() {
            return out;
        }
        out.extend(next);
    }
}

async fn get(store: &dyn Store, id: &OrderId) -> OrderRecord {
    store
        .order(id)
        .await
        .expect("order")
        .unwrap_or_else(|| panic!("order {id} is missing"))
}

async fn step(store: &dyn Store, id: &OrderId, update: OrderUpdate) -> OrderRecord {
    let version = get(store, id).await.version;
    store
        .update_order(id, version, update)
        .await
        .unwrap_or_else(|e| panic!("update of {id} refused: {e}"))
}

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

async fn check_index(store: &dyn Store) {
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

/// Cookies per connection: absent, set, replaced.
pub async fn cookies(store: Arc<impl Store>) {
    let (a, b): (ConnectionId, ConnectionId) = ("a".into(), "b".into());
    assert_eq!(store.cookie(&a).await.expect("cookie"), None);
    store
        .set_cookie(&a, ExportCookie("1".into()))
        .await
        .expect("set");
    store
        .set_cookie(&b, ExportCookie("x".into()))
        .await
        .expect("set");
    store
        .set_cookie(&a, ExportCookie("2".into()))
        .await
        .expect("set");
    assert_eq!(
        store.cookie(&a).await.expect("cookie"),
        Some(ExportCookie("2".into()))
    );
    assert_eq!(
        store.cookie(&b).await.expect("cookie"),
        Some(ExportCookie("x".into()))
    );
}

fn resource(key: &str, stable: &str, name: &str) -> Resource {
    let mut r = Resource::new(key);
    r.stable_id = Some(StableId::new(stable));
    r.entity_type = Some("AD_Entry".into());
    r.values.insert(
        "name".to_owned(),
        PropertyValue::Scalar(ScalarValue::String(name.to_owned())),
    );
    r
}

/// Resources by key, by stable id, renamed (same stable id, new key), deleted, paged.
pub async fn resources_by_key_and_stable_id(store: Arc<impl Store>) {
    let (c, other): (ConnectionId, ConnectionId) = ("conn".into(), "other".into());
    let s = store.as_ref();
    s.upsert_resources(
        &c,
        (0..5)
            .map(|i| resource(&format!("CN=u{i}"), &format!("g{i}"), "n"))
            .collect(),
    )
    .await
    .expect("upsert");
    s.upsert_resources(&other, vec![resource("CN=u0", "z0", "other")])
        .await
        .expect("upsert");
    let r = s
        .resource(&c, &"CN=u2".into())
        .await
        .expect("resource")
        .expect("stored");
    assert_eq!(r, resource("CN=u2", "g2", "n"));
    assert_eq!(
        s.key_of_stable(&c, &"g3".into()).await.expect("stable"),
        Some("CN=u3".into())
    );
    // A rename: the same object under a new key replaces the old key.
    s.upsert_resources(&c, vec![resource("CN=renamed", "g3", "n2")])
        .await
        .expect("rename");
    assert_eq!(
        s.resource(&c, &"CN=u3".into()).await.expect("resource"),
        None
    );
    assert_eq!(
        s.key_of_stable(&c, &"g3".into()).await.expect("stable"),
        Some("CN=renamed".into())
    );
    let removed = s
        .delete_resources(&c, &["CN=u1".into(), "CN=absent".into()])
        .await
        .expect("delete");
    assert_eq!(removed, vec![resource("CN=u1", "g1", "n")]);
    assert_eq!(
        s.key_of_stable(&c, &"g1".into()).await.expect("stable"),
        None
    );
    let mut keys = Vec::new();
    let mut after: Option<ResourceId> = None;
    loop {
        let page = s.resources_page(&c, after.as_ref(), 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        keys.extend(page.into_iter().map(|r| r.id.to_string()));
    }
    assert_eq!(keys, ["CN=renamed", "CN=u0", "CN=u2", "CN=u4"]);
    assert_eq!(
        s.resource(&other, &"CN=u0".into())
            .await
            .expect("resource")
            .map(|r| r.stable_id),
        Some(Some("z0".into())),
        "connections are separate"
    );
}

/// Assignments (by id, paged, upserted) and assignment requests with their approval state.
pub async fn assignments_and_requests(store: Arc<impl Store>) {
    let s = store.as_ref();
    let art = |i: usize| AssignedResourceType {
        id: AssignmentId::new(format!("a-{i}")),
        owner: format!("owner-{i}").as_str().into(),
        resource_type: "rt".into(),
        status: AssignmentStatus::new(WorkflowState::Calculated),
    };
    let mut batch = Assignments::default();
    for i in 0..4 {
        batch.resource_types.insert(art(i).id.clone(), art(i));
    }
    let scalar = AssignedResourceScalar {
        id: "b-0".into(),
        assigned_resource_type: "a-0".into(),
        property: "department".to_owned(),
        value: ScalarValue::String("Sales".into()),
        status: AssignmentStatus::new(WorkflowState::Found),
    };
    batch.scalars.insert(scalar.id.clone(), scalar.clone());
    s.put_assignments(batch).await.expect("put");
    let mut approved = art(2);
    approved.status.workflow_state = WorkflowState::Approved;
    let mut update = Assignments::default();
    update
        .resource_types
        .insert(approved.id.clone(), approved.clone());
    s.put_assignments(update).await.expect("upsert");
    assert_eq!(
        s.assignment(&"a-2".into()).await.expect("get"),
        Some(Assignment::ResourceType(approved))
    );
    assert_eq!(
        s.assignment(&"b-0".into()).await.expect("get"),
        Some(Assignment::Scalar(scalar))
    );
    let first = s.assignments_page(None, 3).await.expect("page");
    let rest = s
        .assignments_page(Some(&"a-2".into()), 3)
        .await
        .expect("page");
    assert_eq!(first.len() + rest.len(), 5, "every assignment once");

    let mut request = AssignmentRequest::new(
        "req-1",
        "owner-1",
        RequestKind::Add,
        RequestedAssignment {
            resource_type: "rt".into(),
            scalar: None,
            navigation: None,
        },
        autoprov_core::ApprovalWorkflowType::One,
    );
    s.put_request(request.clone()).await.expect("put request");
    request.submit().expect("submit");
    s.put_request(request.clone())
        .await
        .expect("upsert request");
    assert_eq!(
        s.request(&"req-1".into()).await.expect("get"),
        Some(request.clone())
    );
    assert_eq!(
        s.requests_page(None, 10).await.expect("page"),
        vec![request]
    );
    assert_eq!(s.request(&"absent".into()).await.expect("get"), None);
}

/// Review decisions apply their event and are kept with who decided; a decision the state
/// machine refuses records nothing.
pub async fn review_decisions(store: Arc<impl Store>) {
    let s = store.as_ref();
    let review = |i: usize| {
        OrderRecord::new(
            order(i),
            ConnectionMode::Automated,
            S::AwaitingApproval,
            t0(),
        )
    };
    s.insert_orders(&[review(1), review(2), review(3), record(4)])
        .await
        .expect("insert");
    let postponed = s
        .decide_review(
            1,
            ReviewDecision::new(
                review(3).id().clone(),
                ReviewVerdict::Postponed,
                "alice",
                t0(),
            ),
        )
        .await
        .expect("postpone");
    assert_eq!(postponed.state, S::AwaitingApproval);
    let approved = s
        .decide_review(
            1,
            ReviewDecision::new(
                review(1).id().clone(),
                ReviewVerdict::Approved,
                "alice",
                t0(),
            ),
        )
        .await
        .expect("approve");
    assert_eq!(approved.state, S::Pending);
    let declined =
        ReviewDecision::new(review(2).id().clone(), ReviewVerdict::Declined, "bob", t0())
            .because("not needed");
    assert_eq!(
        s.decide_review(1, declined.clone())
            .await
            .expect("decline")
            .state,
        S::Inactive
    );
    assert_eq!(
        s.review_decision(review(2).id()).await.expect("get"),
        Some(declined)
    );
    let err = s
        .decide_review(
            1,
            ReviewDecision::new(record(4).id().clone(), ReviewVerdict::Approved, "eve", t0()),
        )
        .await
        .expect_err("a Pending order is not in review");
    assert!(
        matches!(err, StoreError::IllegalTransition { .. }),
        "got {err:?}"
    );
    assert_eq!(
        s.review_decision(record(4).id()).await.expect("get"),
        None,
        "nothing recorded"
    );
    let err = s
        .decide_review(
            1,
            ReviewDecision::new(review(3).id().clone(), ReviewVerdict::Approved, "eve", t0()),
        )
        .await
        .expect_err("version 1 is stale after the postponement");
    assert!(
        matches!(err, StoreError::StaleVersion { .. }),
        "got {err:?}"
    );
    let all = s.review_decisions_page(None, 10).await.expect("page");
    let ids: Vec<String> = all.iter().map(|d| d.order_id.to_string()).collect();
    assert_eq!(ids, ["o-00001", "o-00002", "o-00003"]);
    assert_eq!(all[0].by, "alice");
}

/// Job runs: upserted by id, read by id, paged oldest first.
pub async fn job_runs(store: Arc<impl Store>) {
    let s = store.as_ref();
    let run = |i: i64| {
        JobRun::started(
            format!("job-{i}"),
            JobKind::Complete,
            false,
            t0() + TimeDelta::minutes(i),
        )
    };
    for i in [2, 0, 1] {
        s.put_job_run(run(i)).await.expect("put");
    }
    let mut done = run(1);
    done.status = JobStatus::Succeeded;
    done.finished_at = Some(t0() + TimeDelta::minutes(5));
    done.counts.insert(S::Verified, 3);
    s.put_job_run(done.clone()).await.expect("upsert");
    assert_eq!(s.job_run("job-1").await.expect("get"), Some(done));
    let first = s.job_runs_page(None, 2).await.expect("page");
    let rest = s.job_runs_page(Some(&first[1].id), 2).await.expect("page");
    let ids: Vec<&str> = first.iter().chain(&rest).map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["job-0", "job-1", "job-2"]);
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

/// The audit trail: appended in order, paged by sequence number; review decisions append
/// their entry with who decided and why.
pub async fn audit_trail(store: Arc<impl Store>) {
    let s = store.as_ref();
    let a = s
        .append_audit(AuditEntry::new(t0(), "carol", AuditAction::Forced, "rt").because("go-live"))
        .await
        .expect("append");
    let review = OrderRecord::new(
        order(1),
        ConnectionMode::Automated,
        S::AwaitingApproval,
        t0(),
    );
    s.insert_orders(std::slice::from_ref(&review))
        .await
        .expect("insert");
    s.decide_review(
        1,
        ReviewDecision::new(review.id().clone(), ReviewVerdict::Declined, "dave", t0())
            .because("no"),
    )
    .await
    .expect("decline");
    let b = s
        .append_audit(AuditEntry::new(t0(), "erin", AuditAction::Retried, "o-x"))
        .await
        .expect("append");
    assert!(b > a, "sequence numbers increase");
    let all = s.audit_page(None, 10).await.expect("page");
    let seen: Vec<(&str, AuditAction)> = all
        .iter()
        .map(|(_, e)| (e.actor.as_str(), e.action))
        .collect();
    assert_eq!(
        seen,
        [
            ("carol", AuditAction::Forced),
            ("dave", AuditAction::Declined),
            ("erin", AuditAction::Retried)
        ]
    );
    assert_eq!(all[1].1.subject, review.id().as_str());
    assert_eq!(all[1].1.owner, Some("owner-1".into()));
    assert_eq!(all[1].1.reason.as_deref(), Some("no"));
    assert_eq!(all[0].1.reason.as_deref(), Some("go-live"));
    let rest = s.audit_page(Some(all[0].0), 10).await.expect("page");
    assert_eq!(rest.len(), 2);
}

/// Retention removes finished orders older than the cut-off, with their history, and never
/// an open one.
pub async fn retention_purges_finished_orders_only(store: Arc<impl Store>) {
    let s = store.as_ref();
    s.insert_orders(&(0..6).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let old = t0();
    let recent = t0() + TimeDelta::days(40);
    // 0: Verified long ago; 1: Verified recently; 2: Errored long ago (open: recoverable);
    // 3: Executed long ago (open); 4: Inactive long ago; 5: Pending.
    for (i, path, at) in [
        (
            0,
            &[E::ConnectorSucceeded, E::SynchronizationMatched][..],
            old,
        ),
        (
            1,
            &[E::ConnectorSucceeded, E::SynchronizationMatched][..],
            recent,
        ),
        (2, &[E::ConnectorFailed][..], old),
        (3, &[E::ConnectorSucceeded][..], old),
        (4, &[E::PeriodPassed][..], old),
    ] {
        for event in path {
            step(s, record(i).id(), OrderUpdate::event(*event, at)).await;
        }
    }
    let cutoff = t0() + TimeDelta::days(30);
    let purged = s.purge_finished(cutoff, 1).await.expect("purge");
    assert_eq!(
        purged,
        vec![record(0).id().clone()],
        "limit respected, oldest ids first"
    );
    let purged = s.purge_finished(cutoff, 100).await.expect("purge");
    assert_eq!(purged, vec![record(4).id().clone()]);
    for gone in [0, 4] {
        assert!(s.order(record(gone).id()).await.expect("order").is_none());
        assert!(
            s.order_history(record(gone).id())
                .await
                .expect("history")
                .is_empty()
        );
    }
    for kept in [1, 2, 3, 5] {
        assert!(
            s.order(record(kept).id()).await.expect("order").is_some(),
            "o-{kept} kept"
        );
    }
    check_index(s).await;
}

/// Erasing one owner removes their orders, history, assignments, requests and audit entries,
/// nobody else's, and audits the erasure.
pub async fn erasure_removes_one_owner(store: Arc<impl Store>) {
    let s = store.as_ref();
    s.insert_orders(&[record(1), record(2)])
        .await
        .expect("insert");
    step(
        s,
        record(1).id(),
        OrderUpdate::event(E::ConnectorSucceeded, t0()),
    )
    .await;
    let mut batch = Assignments::default();
    for i in [1, 2] {
        let art = AssignedResourceType {
            id: AssignmentId::new(format!("owner-{i}/rt")),
            owner: format!("owner-{i}").as_str().into(),
            resource_type: "rt".into(),
            status: AssignmentStatus::new(WorkflowState::Calculated),
        };
        let scalar = AssignedResourceScalar {
            id: AssignmentId::new(format!("owner-{i}/rt/department")),
            assigned_resource_type: art.id.clone(),
            property: "department".to_owned(),
            value: ScalarValue::String("Sales".into()),
            status: AssignmentStatus::new(WorkflowState::Calculated),
        };
        batch.resource_types.insert(art.id.clone(), art);
        batch.scalars.insert(scalar.id.clone(), scalar);
        let request = AssignmentRequest::new(
            format!("req-{i}").as_str(),
            format!("owner-{i}").as_str(),
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "rt".into(),
                scalar: None,
                navigation: None,
            },
            autoprov_core::ApprovalWorkflowType::None,
        );
        s.put_request(request).await.expect("request");
        s.append_audit(
            AuditEntry::new(t0(), "frank", AuditAction::Adopted, format!("o-{i}"))
                .owner(format!("owner-{i}").as_str()),
        )
        .await
        .expect("audit");
    }
    s.put_assignments(batch).await.expect("assignments");
    let erasure = s
        .erase_owner(&"owner-1".into(), "dpo", t0())
        .await
        .expect("erase");
    assert_eq!(
        (
            erasure.orders,
            erasure.assignments,
            erasure.requests,
            erasure.audit_entries
        ),
        (1, 2, 1, 1)
    );
    assert!(s.order(record(1).id()).await.expect("order").is_none());
    assert!(
        s.order_history(record(1).id())
            .await
            .expect("history")
            .is_empty()
    );
    assert!(s.order(record(2).id()).await.expect("order").is_some());
    assert_eq!(
        s.assignment(&"owner-1/rt/department".into())
            .await
            .expect("get"),
        None
    );
    assert!(
        s.assignment(&"owner-2/rt/department".into())
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(s.request(&"req-1".into()).await.expect("get"), None);
    assert!(s.request(&"req-2".into()).await.expect("get").is_some());
    let audit = s.audit_page(None, 10).await.expect("audit");
    assert!(
        audit
            .iter()
            .all(|(_, e)| e.owner.as_ref().map(|o| o.as_str()) != Some("owner-1"))
    );
    let last = &audit.last().expect("the erasure is audited").1;
    assert_eq!(
        (last.action, last.actor.as_str(), last.subject.as_str()),
        (AuditAction::Erased, "dpo", "owner-1")
    );
    check_index(s).await;
}
