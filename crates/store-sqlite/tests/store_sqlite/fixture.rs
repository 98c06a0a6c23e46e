//! A file of schema version 1, committed as `tests/fixtures/schema-v1.sqlite`: every later
//! version must open it (migrating it), read its orders and resume them.
//!
//! The file was written by [`generate_schema_v1_fixture`], kept here: run it only to rebuild
//! the fixture of version 1 with the version-1 code (never with a later schema):
//! `AUTOPROV_WRITE_FIXTURE=1 cargo test -p autoprov-store-sqlite --test store_sqlite -- --ignored generate_schema_v1_fixture`

use autoprov_core::{
    AssignedResourceType, AssignmentId, AssignmentRequest, AssignmentStatus, ConnectionMode,
    ExportCookie, OrderId, ProvisioningEvent as E, ProvisioningState as S, RequestKind,
    RequestedAssignment, Resource, ScalarValue, Secret, WorkflowState,
};
use autoprov_store::testkit::{order, t0};
use autoprov_store::{
    Assignment, Assignments, AuditAction, AuditEntry, JobKind, JobRun, OrderRecord, OrderUpdate,
    ReviewDecision, ReviewVerdict, Store,
};
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStore};
use chrono::TimeDelta;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v1.sqlite")
}

/// The (test-only) key the fixture's secret is sealed with.
fn fixture_key() -> SealingKey {
    SealingKey::new("fixture-v1", [0x42; 32])
}

const PASSWORD: &str = "Fixture-v1-Pw!";

fn id(i: usize) -> OrderId {
    order(i).order_id
}

/// The orders of the fixture: index, the events applied after insertion, the state and
/// version they end in.
const ORDERS: &[(usize, &[E], S, u64)] = &[
    (0, &[], S::Pending, 1),
    (1, &[E::ConnectorSucceeded], S::Executed, 2),
    (2, &[E::ConnectorFailed], S::Errored, 2),
    (
        3,
        &[E::ConnectorSucceeded, E::SynchronizationMatched],
        S::Verified,
        3,
    ),
    (4, &[E::PeriodPassed], S::Inactive, 2),
    // 5: AwaitingApproval (inserted so), 6: declined in review, 7: Transmitted (manual),
    // 8: Pending with a secret and an attempt whose outcome is unknown.
];

async fn populate(store: &SqliteStore) {
    let mut records: Vec<OrderRecord> = ORDERS
        .iter()
        .map(|(i, ..)| OrderRecord::pending(order(*i), ConnectionMode::Automated, t0()))
        .collect();
    records.push(OrderRecord::new(
        order(5),
        ConnectionMode::Automated,
        S::AwaitingApproval,
        t0(),
    ));
    records.push(OrderRecord::new(
        order(6),
        ConnectionMode::Automated,
        S::AwaitingApproval,
        t0(),
    ));
    records.push(OrderRecord::pending(order(7), ConnectionMode::Manual, t0()));
    let mut secret = order(8);
    secret.changes.set("unicodePwd", Secret::new(PASSWORD));
    records.push(OrderRecord::pending(
        secret,
        ConnectionMode::Automated,
        t0(),
    ));
    store.insert_orders(&records).await.expect("insert");
    for (i, events, ..) in ORDERS {
        let mut version = 1;
        for e in *events {
            version = store
                .update_order(&id(*i), version, OrderUpdate::event(*e, t0()))
                .await
                .expect("transition")
                .version;
        }
    }
    store
        .decide_review(
            1,
            ReviewDecision::new(id(6), ReviewVerdict::Declined, "alice", t0()).because("no"),
        )
        .await
        .expect("decline");
    store
        .update_order(
            &id(7),
            1,
            OrderUpdate::event(E::HandedToHuman, t0()).ticket("T-7"),
        )
        .await
        .expect("hand over");
    store
        .update_order(&id(8), 1, OrderUpdate::at(t0()).attempt_started())
        .await
        .expect("attempt");
    let conn = "conn".into();
    let mut r = Resource::new("CN=u1,DC=example,DC=test");
    r.stable_id = Some("g-1".into());
    r.values.insert(
        "name".into(),
        autoprov_core::PropertyValue::Scalar(ScalarValue::String("u1".into())),
    );
    store
        .upsert_resources(&conn, vec![r])
        .await
        .expect("resources");
    store
        .set_cookie(&conn, ExportCookie("cookie-1".into()))
        .await
        .expect("cookie");
    let mut batch = Assignments::default();
    let art = AssignedResourceType {
        id: AssignmentId::new("owner-1/rt"),
        owner: "owner-1".into(),
        resource_type: "rt".into(),
        status: AssignmentStatus::new(WorkflowState::Calculated),
    };
    batch.resource_types.insert(art.id.clone(), art);
    store.put_assignments(batch).await.expect("assignments");
    store
        .put_request(AssignmentRequest::new(
            "req-1",
            "owner-1",
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "rt".into(),
                scalar: None,
                navigation: None,
            },
            autoprov_core::ApprovalWorkflowType::One,
        ))
        .await
        .expect("request");
    store
        .append_audit(AuditEntry::new(t0(), "carol", AuditAction::Forced, "rt").owner("owner-1"))
        .await
        .expect("audit");
    store
        .put_job_run(JobRun::started("job-1", JobKind::Complete, false, t0()))
        .await
        .expect("job run");
}

/// Writes `tests/fixtures/schema-v1.sqlite` (see the module doc). Does nothing unless
/// `AUTOPROV_WRITE_FIXTURE` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rebuilds the committed schema-v1 fixture; run by hand with the v1 code only"]
async fn generate_schema_v1_fixture() {
    if std::env::var_os("AUTOPROV_WRITE_FIXTURE").is_none() {
        return;
    }
    assert_eq!(
        SqliteStore::schema_version(),
        1,
        "the fixture is of version 1"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("schema-v1.sqlite");
    let store =
        SqliteStore::open(&db, SqliteOptions::new().with_current_key(fixture_key())).expect("open");
    populate(&store).await;
    drop(store); // checkpoints the WAL into the file
    std::fs::copy(&db, fixture()).expect("write the fixture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_v1_fixture_opens_and_resumes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    std::fs::copy(fixture(), &db).expect("copy the fixture");
    let store = SqliteStore::open(&db, SqliteOptions::new().with_current_key(fixture_key()))
        .expect("a v1 file opens (migrated to the current schema)");
    let version: u32 = rusqlite::Connection::open(&db)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("user_version");
    assert_eq!(version, SqliteStore::schema_version());

    // Read: every order as it was left.
    for (i, events, state, version) in ORDERS {
        let r = store.order(&id(*i)).await.expect("read").expect("stored");
        assert_eq!((r.state, r.version), (*state, *version), "o-{i}");
        let history = store.order_history(&id(*i)).await.expect("history");
        assert_eq!(history.len(), events.len(), "o-{i} history");
    }
    let declined = store.order(&id(6)).await.expect("read").expect("stored");
    assert_eq!(declined.state, S::Inactive);
    assert_eq!(
        store
            .review_decision(&id(6))
            .await
            .expect("decision")
            .map(|d| d.by),
        Some("alice".to_owned())
    );
    let manual = store.order(&id(7)).await.expect("read").expect("stored");
    assert_eq!(
        (manual.state, manual.ticket.as_deref()),
        (S::Transmitted, Some("T-7"))
    );
    let unknown = store.order(&id(8)).await.expect("read").expect("stored");
    assert_eq!((unknown.state, unknown.dispatch.attempts), (S::Pending, 1));
    match unknown.order.changes.scalar("unicodePwd") {
        Some(ScalarValue::Secret(s)) => assert_eq!(s.expose(), Ok(PASSWORD)),
        other => panic!("the sealed secret is restored, found {other:?}"),
    }
    let conn = "conn".into();
    assert_eq!(
        store
            .key_of_stable(&conn, &"g-1".into())
            .await
            .expect("key"),
        Some("CN=u1,DC=example,DC=test".into())
    );
    assert_eq!(
        store.cookie(&conn).await.expect("cookie"),
        Some(ExportCookie("cookie-1".into()))
    );
    assert!(matches!(
        store
            .assignment(&"owner-1/rt".into())
            .await
            .expect("assignment"),
        Some(Assignment::ResourceType(_))
    ));
    assert!(
        store
            .request(&"req-1".into())
            .await
            .expect("request")
            .is_some()
    );
    assert_eq!(store.audit_page(None, 10).await.expect("audit").len(), 2);
    assert!(store.job_run("job-1").await.expect("job").is_some());

    // Resume: further transitions on the migrated file.
    let later = t0() + TimeDelta::hours(1);
    let step = |i: usize, v: u64, u: OrderUpdate| {
        let store = &store;
        async move {
            store
                .update_order(&id(i), v, u)
                .await
                .unwrap_or_else(|e| panic!("o-{i}: {e}"))
        }
    };
    let sent = step(0, 1, OrderUpdate::at(later).attempt_started()).await;
    let done = step(
        0,
        sent.version,
        OrderUpdate::event(E::ConnectorSucceeded, later),
    )
    .await;
    assert_eq!((done.state, done.version), (S::Executed, 3));
    assert_eq!(
        step(1, 2, OrderUpdate::event(E::SynchronizationMatched, later))
            .await
            .state,
        S::Verified
    );
    let retried = step(2, 2, OrderUpdate::event(E::OperatorRetried, later)).await;
    assert_eq!((retried.state, retried.dispatch.reopened), (S::Pending, 1));
    let approved = store
        .decide_review(
            1,
            ReviewDecision::new(id(5), ReviewVerdict::Approved, "bob", later),
        )
        .await
        .expect("approve");
    assert_eq!(approved.state, S::Pending);
    let delivered = step(8, 2, OrderUpdate::event(E::ConnectorSucceeded, later)).await;
    assert_eq!(delivered.state, S::Executed);
    assert_eq!(
        store.order_history(&id(8)).await.expect("history").len(),
        2,
        "the history of version 1 goes on"
    );
    assert!(store.integrity_check().await.expect("check").is_empty());
}
