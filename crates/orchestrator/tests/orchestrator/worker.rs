//! The worker loop on the in-memory ClaimStore: several workers (tasks, or threads with their
//! own runtimes) share one store. What is counted is effects in the connector, not calls.

use async_trait::async_trait;
use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind, Executed, ExportRequest,
    ExportStream, Fulfillment, Operation,
};
use autoprov_core::{OrderId, ProvisioningEvent, ProvisioningOrder, ProvisioningState as S};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::dispatch::{DispatchPolicy, PolicyError};
use autoprov_orchestrator::store::testkit::order;
use autoprov_orchestrator::store::{ClaimStore, MemoryStore, SharedBreaker, Store};
use autoprov_orchestrator::worker::{Worker, WorkerReport, WorkerSettings, metrics};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A connector whose effect is one entry per call in a log (so duplicates show), with a
/// latency, a gauge of calls in flight (its peak is kept), and switches for failures.
#[derive(Debug)]
struct Target {
    info: ConnectorInfo,
    latency: Duration,
    /// Block the thread (not just the task) for this long on the first call: a stalled
    /// process, as under SIGSTOP.
    stall_first: Option<Duration>,
    effects: Mutex<HashMap<OrderId, usize>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
    /// Calls fail with a temporary error while set.
    down: AtomicBool,
    /// The first call of each order fails temporarily.
    flaky: bool,
    probes: AtomicUsize,
}

impl Target {
    fn new(latency: Duration) -> Self {
        Self {
            info: ConnectorInfo::new("test.target", "conn", Capabilities::full()),
            latency,
            stall_first: None,
            effects: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            flaky: false,
            probes: AtomicUsize::new(0),
        }
    }

    fn effects(&self) -> HashMap<OrderId, usize> {
        self.effects.lock().unwrap().clone()
    }
}

#[async_trait]
impl Connector for Target {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::Check,
                "down",
            ))
        } else {
            Ok(())
        }
    }
    async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if call == 0
            && let Some(stall) = self.stall_first
        {
            std::thread::sleep(stall);
        }
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let first = !self.effects.lock().unwrap().contains_key(&o.order_id);
        if self.down.load(Ordering::SeqCst) || (self.flaky && first && call.is_multiple_of(2)) {
            if self.flaky {
                // Remember that this order failed once, without an effect.
                self.effects.lock().unwrap().insert(o.order_id.clone(), 0);
            }
            return Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::Update,
                "target busy",
            ));
        }
        *self
            .effects
            .lock()
            .unwrap()
            .entry(o.order_id.clone())
            .or_default() += 1;
        Ok(Fulfillment::Executed(Executed::new("x")))
    }
    async fn export(&self, _r: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(
            Operation::Export,
            "test target",
        ))
    }
}

fn policy(limit: usize) -> DispatchPolicy {
    let mut p = DispatchPolicy {
        concurrency_per_connection: limit,
        call_deadline: Duration::from_secs(1),
        ..DispatchPolicy::default()
    };
    p.retry.initial_backoff = Duration::from_millis(20);
    p.retry.max_backoff = Duration::from_millis(50);
    p
}

fn settings(name: &str, concurrency: usize) -> WorkerSettings {
    let mut s = WorkerSettings::new(name);
    s.lease = Duration::from_secs(2);
    s.lease_margin = Duration::from_millis(200);
    s.concurrency = concurrency;
    s.claim_batch = concurrency;
    s.idle_poll = Duration::from_millis(20);
    s.stop_when_drained = true;
    s
}

fn worker(
    target: &Arc<Target>,
    store: &Arc<MemoryStore>,
    policy: DispatchPolicy,
    settings: WorkerSettings,
) -> Worker {
    Worker::new(
        [target.clone() as Arc<dyn Connector>],
        policy,
        store.clone(),
        Arc::new(SystemClock),
        settings,
    )
    .expect("valid settings")
}

async fn run_all(workers: &[Worker]) -> Vec<WorkerReport> {
    let runs = workers.iter().map(|w| {
        let w = w.clone();
        tokio::spawn(async move { w.run(CancellationToken::new()).await })
    });
    let mut reports = Vec::new();
    for r in futures::future::join_all(runs).await {
        reports.push(r.expect("task").expect("worker run"));
    }
    reports
}

async fn assert_all_executed_once(store: &MemoryStore, target: &Target, n: usize) {
    let counts = store.order_counts().await.unwrap();
    assert_eq!(
        counts.get(&S::Executed).copied(),
        Some(n as u64),
        "{counts:?}"
    );
    let effects = target.effects();
    assert_eq!(effects.len(), n, "every order's effect applied");
    let twice: Vec<_> = effects.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        twice.is_empty(),
        "effects applied other than once: {twice:?}"
    );
    for i in 0..n {
        let history = store.order_history(&order(i).order_id).await.unwrap();
        let successes = history
            .iter()
            .filter(|h| h.event == Some(ProvisioningEvent::ConnectorSucceeded))
            .count();
        assert_eq!(successes, 1, "order {i} recorded once: {history:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_send_every_order_once_within_the_connections_limit() {
    let store = Arc::new(MemoryStore::new());
    let target = Arc::new(Target::new(Duration::from_millis(5)));
    let n = 400;
    // Each worker could run 6 calls at once; the connection allows 8 across all of them.
    let workers: Vec<Worker> = (0..4)
        .map(|i| worker(&target, &store, policy(8), settings(&format!("w{i}"), 6)))
        .collect();
    let planned = workers[0]
        .plan((0..n).map(order).collect())
        .await
        .expect("plan");
    assert_eq!(planned.inserted, n);
    let reports = run_all(&workers).await;
    assert_all_executed_once(&store, &target, n).await;
    let peak = target.peak.load(Ordering::SeqCst);
    assert!(
        peak <= 8,
        "the connection's limit holds across workers: peak {peak}"
    );
    assert!(
        peak > 6,
        "more than one worker's worth ran at once: peak {peak}"
    );
    let executed: u64 = reports.iter().map(|r| r.executed).sum();
    assert_eq!(executed, n as u64);
    assert!(
        reports.iter().filter(|r| r.executed > 0).count() >= 2,
        "the work is shared: {reports:?}"
    );
    assert!(
        reports
            .iter()
            .all(|r| r.lease_lost == 0 && r.takeovers == 0)
    );
    // Idle workers gave their permits back.
    assert_eq!(
        store
            .acquire_permits(&"conn".into(), "probe", 8, 8, Duration::from_secs(1))
            .await
            .unwrap()
            .len(),
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_released_with_a_retry_time_and_retried() {
    let store = Arc::new(MemoryStore::new());
    let mut t = Target::new(Duration::from_millis(1));
    t.flaky = true;
    let target = Arc::new(t);
    let n = 40;
    let workers: Vec<Worker> = (0..2)
        .map(|i| worker(&target, &store, policy(4), settings(&format!("w{i}"), 2)))
        .collect();
    workers[0].plan((0..n).map(order).collect()).await.unwrap();
    let reports = run_all(&workers).await;
    assert_all_executed_once(&store, &target, n).await;
    let retried: u64 = reports.iter().map(|r| r.retried).sum();
    assert!(
        retried > 0,
        "some first calls failed and were retried: {reports:?}"
    );
    // A retried order's history: attempt, retry time, attempt, success.
    let retried_order = (0..n)
        .map(order)
        .find(|o| {
            futures::executor::block_on(store.order(&o.order_id))
                .unwrap()
                .unwrap()
                .dispatch
                .total_attempts
                == 2
        })
        .expect("an order that needed two attempts");
    let record = store.order(&retried_order.order_id).await.unwrap().unwrap();
    assert_eq!(
        record
            .dispatch
            .last_error
            .as_deref()
            .map(|e| e.contains("target busy")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_breaker_stops_every_worker_and_one_probe_closes_it() {
    let store = Arc::new(MemoryStore::new());
    let target = Arc::new(Target::new(Duration::from_millis(1)));
    target.down.store(true, Ordering::SeqCst);
    let mut p = policy(4);
    p.breaker.failure_threshold = 3;
    p.breaker.open_for = Duration::from_millis(300);
    p.retry.max_attempts = 1000;
    p.budget.min_per_second = 1000.0;
    let workers: Vec<Worker> = (0..3)
        .map(|i| worker(&target, &store, p.clone(), settings(&format!("w{i}"), 2)))
        .collect();
    workers[0].plan((0..30).map(order).collect()).await.unwrap();
    let handles: Vec<_> = workers
        .iter()
        .map(|w| {
            let w = w.clone();
            tokio::spawn(async move { w.run(CancellationToken::new()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls_while_open = target.calls.load(Ordering::SeqCst);
    assert!(
        matches!(
            store.breaker(&"conn".into()).await.unwrap(),
            SharedBreaker::Open { .. } | SharedBreaker::ProbeDue
        ),
        "the breaker opened"
    );
    // Each worker holds up to concurrency + claim batch (2 + 2) orders; a failure reaches
    // the shared breaker after its outcome is recorded. So the calls before the breaker
    // stops them are at most the threshold plus every order the workers hold.
    assert!(
        calls_while_open <= 3 + 3 * (2 + 2),
        "the threshold plus what the workers hold, not a cache period of calls: {calls_while_open}"
    );
    let health = workers[1].health().await;
    assert_eq!(health.open_breakers, vec!["conn".into()]);
    assert!(health.store_reachable && health.is_healthy());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probes_while_down = target.probes.load(Ordering::SeqCst);
    assert!(
        probes_while_down >= 1,
        "a probe ran when the open period ended"
    );
    assert_eq!(
        target.calls.load(Ordering::SeqCst),
        calls_while_open,
        "no call while the breaker is open or probing"
    );
    target.down.store(false, Ordering::SeqCst);
    let mut reports = Vec::new();
    for h in handles {
        reports.push(h.await.unwrap().unwrap());
    }
    assert_eq!(
        store
            .order_counts()
            .await
            .unwrap()
            .get(&S::Executed)
            .copied(),
        Some(30)
    );
    let deferred: u64 = reports.iter().map(|r| r.deferred).sum();
    assert!(deferred > 0, "orders were deferred while open: {reports:?}");
    // Fewer probes than workers × open periods: one worker probes for all.
    let probes = target.probes.load(Ordering::SeqCst);
    assert!(probes <= probes_while_down + 2, "probes {probes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_saw_failures_reads_the_shared_breaker_before_its_next_call() {
    let store = Arc::new(MemoryStore::new());
    let target = Arc::new(Target::new(Duration::from_millis(1)));
    target.down.store(true, Ordering::SeqCst);
    let mut p = policy(4);
    p.breaker.failure_threshold = 3;
    p.breaker.open_for = Duration::from_secs(2);
    p.retry.max_attempts = 1000;
    p.retry.initial_backoff = Duration::from_millis(300);
    p.retry.max_backoff = Duration::from_millis(300);
    p.budget.min_per_second = 1000.0;
    let w = worker(&target, &store, p, settings("w", 1));
    w.plan(vec![order(1)]).await.unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (w, stop) = (w.clone(), stop.clone());
        async move { w.run(stop).await }
    });
    // The worker's own failure is in the shared breaker (and in the worker's view of it).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.breaker(&"conn".into()).await.unwrap() != (SharedBreaker::Closed { failures: 1 }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first failure was recorded"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Other workers' failures open it before this worker's retry is due.
    for _ in 0..2 {
        store
            .breaker_failure(&"conn".into(), 3, Duration::from_secs(2))
            .await
            .unwrap();
    }
    assert!(matches!(
        store.breaker(&"conn".into()).await.unwrap(),
        SharedBreaker::Open { .. }
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        target.calls.load(Ordering::SeqCst),
        1,
        "the retry saw the open breaker, not the closed one this worker read before"
    );
    stop.cancel();
    let report = run.await.unwrap().unwrap();
    assert!(report.deferred >= 1, "{report:?}");
}

#[test]
fn a_worker_that_stalls_past_its_lease_has_its_outcome_refused() {
    let store = Arc::new(MemoryStore::new());
    let mut t = Target::new(Duration::from_millis(1));
    // The first call blocks its worker's only thread past the 2 s lease: no renewal runs.
    t.stall_first = Some(Duration::from_millis(3000));
    let target = Arc::new(t);
    let rt = |threads: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    let stalled = worker(&target, &store, policy(4), settings("stalled", 1));
    rt(1).block_on(stalled.plan(vec![order(1)])).unwrap();
    let thread = std::thread::spawn({
        let stalled = stalled.clone();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(stalled.run(CancellationToken::new())).unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(2400));
    let other = worker(&target, &store, policy(4), settings("other", 1));
    let other_report = rt(2).block_on(other.run(CancellationToken::new())).unwrap();
    assert_eq!(other_report.executed, 1, "{other_report:?}");
    assert_eq!(
        other_report.takeovers, 1,
        "it took over an attempt without outcome"
    );
    let stalled_report = thread.join().unwrap();
    assert_eq!(
        stalled_report.lease_lost, 1,
        "the late outcome is refused: {stalled_report:?}"
    );
    assert_eq!(stalled_report.executed, 0);
    let history = rt(1)
        .block_on(store.order_history(&order(1).order_id))
        .unwrap();
    let successes = history
        .iter()
        .filter(|h| h.event == Some(ProvisioningEvent::ConnectorSucceeded))
        .count();
    assert_eq!(successes, 1, "one outcome recorded: {history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_claims_not_started_and_the_permits() {
    let store = Arc::new(MemoryStore::new());
    let target = Arc::new(Target::new(Duration::from_millis(300)));
    // 4 claimed at once, 1 permit: 3 wait for it when the shutdown comes.
    let mut s = settings("w", 4);
    s.stop_when_drained = false;
    let w = worker(&target, &store, policy(1), s);
    w.plan((0..4).map(order).collect()).await.unwrap();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn({
        let w = w.clone();
        let shutdown = shutdown.clone();
        async move { w.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.claimed, 4);
    assert_eq!(
        report.executed, 1,
        "the call in flight finished and was recorded"
    );
    assert_eq!(report.released, 3, "{report:?}");
    // Released at once, not after the lease: another worker claims them now.
    let again = store
        .claim("next", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    let permits = store
        .acquire_permits(&"conn".into(), "next", 1, 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(permits.len(), 1, "the permit was given back");
}

#[test]
fn settings_are_checked_against_the_policy() {
    let target = Arc::new(Target::new(Duration::ZERO));
    let store = Arc::new(MemoryStore::new());
    let mut s = settings("w", 2);
    s.lease = Duration::from_secs(1); // not longer than the 1 s call deadline + margin
    let err = Worker::new(
        [target.clone() as Arc<dyn Connector>],
        policy(4),
        store.clone(),
        Arc::new(SystemClock),
        s,
    )
    .expect_err("refused");
    assert!(
        matches!(
            err,
            PolicyError::OutOfRange {
                setting: "worker.lease",
                ..
            }
        ),
        "{err}"
    );
    let mut s = settings("w", 2);
    s.concurrency = 0;
    let err = Worker::new(
        [target as Arc<dyn Connector>],
        policy(4),
        store,
        Arc::new(SystemClock),
        s,
    )
    .expect_err("refused");
    assert!(matches!(
        err,
        PolicyError::OutOfRange {
            setting: "worker.concurrency",
            ..
        }
    ));
}

#[test]
fn every_metric_is_documented_for_operators() {
    let readme = include_str!("../../README.md");
    for name in metrics::ALL {
        assert!(
            readme.contains(name),
            "{name} is not in the orchestrator README"
        );
    }
}
