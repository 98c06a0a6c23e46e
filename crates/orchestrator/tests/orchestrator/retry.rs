//! Errored is not the end (SPEC §4, §10): an operator retry reopens Errored orders through
//! the store, audited, keeping their history; orders whose retries ran out while their
//! connection was down are reopened by the next job once the connection checks healthy.

use async_trait::async_trait;
use autoprov_connector::{
    Connector, ConnectorError, ConnectorInfo, ErrorKind, ExportRequest, ExportStream, Fulfillment,
    InMemoryConnector, Operation, Preview,
};
use autoprov_core::{ProvisioningOrder, ProvisioningState};
use autoprov_orchestrator::Planner;
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT};
use autoprov_orchestrator::dispatch::{DispatchPolicy, PolicyError, RetryPolicy};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::store::{AuditAction, MemoryStore, Store};
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The in-memory directory behind a switch: when down, every write and the connection check
/// are temporary failures (exports still answer, so a run plans on fresh data).
#[derive(Debug, Clone)]
struct Switch {
    inner: InMemoryConnector,
    down: Arc<AtomicBool>,
}

impl Switch {
    fn refuse(&self, op: Operation) -> Result<(), ConnectorError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ConnectorError::new(
                ErrorKind::Unavailable,
                op,
                "the directory is down",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for Switch {
    fn info(&self) -> &ConnectorInfo {
        self.inner.info()
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        self.refuse(Operation::Check)?;
        self.inner.check().await
    }
    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        self.refuse(order.change_type.into())?;
        self.inner.fulfill(order).await
    }
    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        self.inner.export(request).await
    }
    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        self.inner.preview(orders)
    }
}

fn world(people: usize, reopen: bool) -> (Switch, ProvisioningJob, Arc<MemoryStore>) {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let switch = Switch {
        inner: system,
        down: Arc::new(AtomicBool::new(false)),
    };
    let mut planner = Planner::new(demo::planner_config()).unwrap();
    for p in demo::people(people, now) {
        planner.upsert_owner(p);
    }
    let store = Arc::new(MemoryStore::new());
    // A retry window shortened by configuration, so the outage outlasts it in milliseconds.
    let policy = DispatchPolicy {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            multiplier: 2.0,
            jitter: 0.0,
            max_total: Duration::from_millis(50),
        },
        ..DispatchPolicy::default()
    };
    let job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(switch.clone()))
        .dispatch_policy(policy)
        .reopen_after_outage(reopen)
        .clock(Arc::new(ManualClock::new(now)))
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    (switch, job, store)
}

async fn run(job: &mut ProvisioningJob) -> autoprov_orchestrator::job::JobReport {
    job.run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap()
}

async fn errored_after_outage(
    store: &MemoryStore,
) -> Vec<autoprov_orchestrator::store::OrderRecord> {
    store
        .orders_in(&[ProvisioningState::Errored])
        .await
        .unwrap()
}

#[tokio::test]
async fn orders_whose_retries_ran_out_during_an_outage_complete_once_the_connection_is_back() {
    let (switch, mut job, store) = world(8, true);
    switch.down.store(true, Ordering::SeqCst);
    let first = job
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let sent = first.dispatch.errored.len();
    assert!(
        sent >= 8,
        "every order ran out of retries: {:?}",
        first.dispatch
    );
    assert!(first.dispatch.executed.is_empty());
    let errored = errored_after_outage(&store).await;
    assert_eq!(errored.len(), sent);
    assert!(errored.iter().all(|r| r.dispatch.retries_exhausted));

    // Still down: the next job checks the connection and leaves them Errored.
    let still = run(&mut job).await;
    assert!(still.resumed.executed.is_empty());
    assert_eq!(errored_after_outage(&store).await.len(), sent);

    // Back: the next job reopens them and completes every one, keeping their history.
    switch.down.store(false, Ordering::SeqCst);
    let back = run(&mut job).await;
    assert_eq!(
        back.resumed.executed.len() + back.dispatch.executed.len(),
        sent,
        "{:?} {:?}",
        back.resumed,
        back.dispatch
    );
    assert!(errored_after_outage(&store).await.is_empty());
    run(&mut job).await; // the next synchronization verifies them
    let counts = store.order_counts().await.unwrap();
    assert_eq!(
        counts.get(&ProvisioningState::Verified).copied(),
        Some(sent as u64),
        "{counts:?}"
    );
    for r in &errored {
        let now = store.order(r.id()).await.unwrap().unwrap();
        assert_eq!(
            now.dispatch.total_attempts,
            r.dispatch.total_attempts + 1,
            "the attempts of the outage are kept, one more after"
        );
        assert_eq!(now.dispatch.reopened, 1);
        assert!(!now.dispatch.retries_exhausted);
    }
    let audit = store.audit_page(None, 1000).await.unwrap();
    let retried = audit
        .iter()
        .filter(|(_, e)| e.action == AuditAction::Retried && e.actor == "autoprov")
        .count();
    assert_eq!(retried, sent);
    assert!(switch.inner.repeated_effects().is_empty());
}

#[tokio::test]
async fn an_operator_retries_errored_orders_and_the_next_job_sends_them() {
    let (switch, mut job, store) = world(3, false);
    switch.down.store(true, Ordering::SeqCst);
    job.run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let errored = errored_after_outage(&store).await;
    assert!(!errored.is_empty());
    switch.down.store(false, Ordering::SeqCst);
    // Automatic reopening is off: nothing happens by itself.
    let idle = run(&mut job).await;
    assert!(idle.resumed.executed.is_empty());
    assert_eq!(errored_after_outage(&store).await.len(), errored.len());

    // One order by id, then the rest of the connection.
    let one = errored[0].id().clone();
    assert_eq!(
        job.retry(&one, "ops-alice").await.unwrap(),
        ProvisioningState::Pending
    );
    assert!(
        job.retry(&one, "ops-alice").await.is_err(),
        "a Pending order is not Errored"
    );
    let rest = job
        .retry_connection(&demo::CONNECTION.into(), "ops-bob")
        .await
        .unwrap();
    assert_eq!(rest.len(), errored.len() - 1);
    let report = run(&mut job).await;
    assert_eq!(
        report.resumed.executed.len() + report.dispatch.executed.len(),
        errored.len()
    );
    let audit = store.audit_page(None, 1000).await.unwrap();
    let by = |who: &str| {
        audit
            .iter()
            .filter(|(_, e)| e.action == AuditAction::Retried && e.actor == who)
            .count()
    };
    assert_eq!((by("ops-alice"), by("ops-bob")), (1, errored.len() - 1));
    let history = store.order_history(&one).await.unwrap();
    assert!(history.iter().any(|h| h.to == ProvisioningState::Errored));
    assert!(
        history
            .iter()
            .any(|h| h.from == ProvisioningState::Errored && h.to == ProvisioningState::Pending)
    );
}

/// A policy no one should write: NaN growth and jitter, unbounded waits, a budget that never
/// refills, a breaker that opens at once and stays open "forever".
fn hostile_policy() -> DispatchPolicy {
    let mut policy = DispatchPolicy {
        retry: RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::MAX,
            multiplier: f64::NAN,
            jitter: f64::NAN,
            max_total: Duration::from_millis(50),
        },
        ..DispatchPolicy::default()
    };
    policy.budget.min_per_second = f64::NAN;
    policy.budget.capacity = f64::NAN;
    policy.breaker.failure_threshold = 0;
    policy.breaker.open_for = Duration::MAX;
    policy.concurrency_per_connection = usize::MAX;
    policy
}

#[tokio::test]
async fn try_build_refuses_a_hostile_policy_and_build_never_panics_on_it() {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let builder = || {
        let system = InMemoryConnector::new(demo::CONNECTION);
        demo::seed_directory(&system).unwrap();
        let switch = Switch {
            inner: system,
            down: Arc::new(AtomicBool::new(true)),
        };
        let mut planner = Planner::new(demo::planner_config()).unwrap();
        for p in demo::people(3, now) {
            planner.upsert_owner(p);
        }
        let store = Arc::new(MemoryStore::new());
        let builder = ProvisioningJob::builder(planner, store.clone())
            .connector(Arc::new(switch))
            .dispatch_policy(hostile_policy())
            .reopen_after_outage(false)
            .clock(Arc::new(ManualClock::new(now)))
            .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
            .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account);
        (builder, store)
    };
    let (b, _) = builder();
    let err = b.try_build().unwrap_err();
    assert!(
        matches!(
            &err,
            PolicyError::OutOfRange { setting, .. } if *setting == "concurrency_per_connection"
        ),
        "{err}"
    );
    // Unchecked, the same policy still dispatches to the end: every wait saturates.
    let (b, store) = builder();
    let mut job = b.build();
    let report = tokio::time::timeout(Duration::from_secs(30), run(&mut job))
        .await
        .expect("a hostile policy must not hang dispatch");
    assert!(!report.dispatch.errored.is_empty(), "{:?}", report.dispatch);
    assert!(!errored_after_outage(&store).await.is_empty());
}

#[tokio::test]
async fn an_operator_retries_what_errored_since_a_time() {
    let (switch, mut job, store) = world(3, false);
    switch.down.store(true, Ordering::SeqCst);
    job.run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let errored = errored_after_outage(&store).await;
    assert!(!errored.is_empty());
    let at = errored[0]
        .dispatch
        .finished_at
        .expect("errored orders are finished");
    let later = job
        .retry_errored_since(at + chrono::TimeDelta::seconds(1), "ops")
        .await
        .unwrap();
    assert!(
        later.is_empty(),
        "nothing errored after that time: {later:?}"
    );
    let since = job.retry_errored_since(at, "ops").await.unwrap();
    assert_eq!(since.len(), errored.len());
    assert!(errored_after_outage(&store).await.is_empty());
}
