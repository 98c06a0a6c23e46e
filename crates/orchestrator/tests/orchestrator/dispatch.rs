//! Dispatch behaviour under paused tokio time: backoff timing, deadlines, the retry budget, the
//! circuit breaker, dependencies, cancellation, manual connections and lost results.

use async_trait::async_trait;
use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind, Executed, ExportRequest,
    ExportStream, Fulfillment, MockConnector, Operation,
};
use autoprov_core::{
    ChangeType, Changes, ConnectionMode, OrderId, Owner, ProvisioningOrder, ProvisioningState,
    ResourceType, ResourceTypeRef,
};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::dispatch::{
    CircuitBreakerPolicy, DispatchPolicy, Dispatcher, RetryBudget, RetryPolicy,
};
use autoprov_orchestrator::events::{CollectEvents, JobEvent};
use autoprov_orchestrator::store::{MemoryStore, OrderRecord, OrderUpdate, Store, StoreExt};
use futures::TryStreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the scripted connector answers to one call.
#[derive(Clone, Debug)]
enum Reply {
    Ok,
    Temporary,
    /// A temporary failure that asks for a wait (an HTTP 429/503 with `Retry-After`).
    Busy(Duration),
    Permanent,
    Hang,
    Transmit,
}

/// A connector whose replies are scripted per order; it logs every call with its time.
#[derive(Debug)]
struct Scripted {
    info: ConnectorInfo,
    script: Mutex<HashMap<OrderId, Vec<Reply>>>,
    default: Reply,
    calls: Mutex<Vec<(OrderId, Instant)>>,
    probes: Mutex<Vec<(Instant, bool)>>,
    down_until: Mutex<Option<Instant>>,
}

impl Scripted {
    fn new(mode: ConnectionMode, default: Reply) -> Arc<Self> {
        let mut caps = Capabilities::full();
        caps.mode = mode;
        Arc::new(Self {
            info: ConnectorInfo::new("test.scripted", "conn", caps),
            script: Mutex::new(HashMap::new()),
            default,
            calls: Mutex::new(Vec::new()),
            probes: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
        })
    }

    fn script(&self, order: &str, replies: Vec<Reply>) {
        self.script.lock().unwrap().insert(order.into(), replies);
    }

    fn calls_of(&self, order: &str) -> Vec<Instant> {
        let id = OrderId::new(order);
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == id)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[async_trait]
impl Connector for Scripted {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let now = Instant::now();
        let down = self.down_until.lock().unwrap().is_some_and(|u| now < u);
        self.probes.lock().unwrap().push((now, !down));
        if down {
            Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::Check,
                "down",
            ))
        } else {
            Ok(())
        }
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let now = Instant::now();
        self.calls
            .lock()
            .unwrap()
            .push((order.order_id.clone(), now));
        let down = self.down_until.lock().unwrap().is_some_and(|u| now < u);
        let reply = if down {
            Reply::Temporary
        } else {
            let mut script = self.script.lock().unwrap();
            match script.get_mut(&order.order_id) {
                Some(replies) if !replies.is_empty() => replies.remove(0),
                _ => self.default.clone(),
            }
        };
        match reply {
            Reply::Ok => Ok(Fulfillment::Executed(Executed::new(format!(
                "CN={},DC=test",
                order.order_id
            )))),
            Reply::Temporary => {
                Err(
                    ConnectorError::new(ErrorKind::Unavailable, Operation::Update, "server busy")
                        .for_order(order),
                )
            }
            Reply::Busy(wait) => Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::Update,
                "too many requests",
            )
            .with_retry_after(wait)
            .for_order(order)),
            Reply::Permanent => Err(ConnectorError::new(
                ErrorKind::InvalidOrder,
                Operation::Update,
                "constraint violation",
            )
            .for_order(order)),
            Reply::Hang => {
                futures::future::pending::<()>().await;
                unreachable!()
            }
            Reply::Transmit => Ok(Fulfillment::Transmitted {
                ticket: format!("T-{}", order.order_id),
            }),
        }
    }

    async fn export(&self, _request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(Operation::Export, "scripted"))
    }
}

fn order(id: &str) -> ProvisioningOrder {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    ProvisioningOrder {
        order_id: id.into(),
        assigned_resource_type_id: Some(format!("art-{id}").as_str().into()),
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("owner-{id}"), format!("user{id}"))),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("conn".into()),
        changes: Changes::default(),
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

fn policy() -> DispatchPolicy {
    DispatchPolicy {
        concurrency_per_connection: 4,
        call_deadline: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.0,
            max_total: Duration::from_secs(60),
        },
        budget: RetryBudget {
            ratio: 10.0,
            min_per_second: 100.0,
            capacity: 1000.0,
        },
        breaker: CircuitBreakerPolicy {
            failure_threshold: 1000,
            open_for: Duration::from_secs(1),
        },
        jitter_seed: 7,
    }
}

fn dispatcher(c: Arc<dyn Connector>, policy: DispatchPolicy) -> (Dispatcher, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let d = Dispatcher::new([c], policy, store.clone(), Arc::new(SystemClock));
    (d, store)
}

#[tokio::test(start_paused = true)]
async fn temporary_failures_are_retried_with_exponential_backoff() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script(
        "o1",
        vec![Reply::Temporary, Reply::Temporary, Reply::Temporary],
    );
    let (d, store) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed, vec![OrderId::new("o1")]);
    let calls = c.calls_of("o1");
    assert_eq!(calls.len(), 4);
    let gaps: Vec<u128> = calls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, vec![100, 200, 400], "no jitter: 100 ms doubling");
    let rec = store.order(&"o1".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Executed);
    assert_eq!(rec.dispatch.attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_from_the_managed_system_is_honoured() {
    // The service asks for 3 s, then for less than the backoff: the longer of the two wins.
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script(
        "o1",
        vec![
            Reply::Busy(Duration::from_secs(3)),
            Reply::Busy(Duration::from_millis(10)),
        ],
    );
    let (d, _) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed, vec![OrderId::new("o1")]);
    let gaps: Vec<u128> = c
        .calls_of("o1")
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, vec![3000, 200], "Retry-After, then the backoff");

    // A wait beyond the retry window ends the retries instead of retrying early.
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script("o2", vec![Reply::Busy(Duration::from_secs(600))]);
    let (d, store) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o2")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.errored.len(), 1, "{report:?}");
    assert_eq!(c.calls_of("o2").len(), 1, "never retried sooner than asked");
    let rec = store.order(&"o2".into()).await.unwrap().unwrap();
    assert!(rec.dispatch.retries_exhausted);
}

#[tokio::test(start_paused = true)]
async fn jitter_is_seeded_and_bounded() {
    let mut p = policy();
    p.retry.jitter = 0.5;
    let gaps_for = |seed: u64| {
        let mut p = p.clone();
        p.jitter_seed = seed;
        async move {
            let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
            c.script("o1", vec![Reply::Temporary, Reply::Temporary]);
            let (d, _) = dispatcher(c.clone(), p);
            d.dispatch(vec![order("o1")], &CancellationToken::new())
                .await
                .unwrap();
            let calls = c.calls_of("o1");
            calls
                .windows(2)
                .map(|w| (w[1] - w[0]).as_millis())
                .collect::<Vec<_>>()
        }
    };
    let a = gaps_for(1).await;
    let b = gaps_for(1).await;
    assert_eq!(a, b, "same seed, same waits");
    assert!((50..=150).contains(&a[0]), "{a:?}");
    assert!((100..=300).contains(&a[1]), "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_call_hits_the_deadline_and_is_retried() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script("o1", vec![Reply::Hang]);
    let (d, _) = dispatcher(c.clone(), policy());
    let start = Instant::now();
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1);
    let calls = c.calls_of("o1");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1] - start).as_millis(),
        2_000 + 100,
        "deadline then first backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_name_owner_order_operation() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script("o1", vec![Reply::Permanent]);
    let (d, store) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o1"), order("o2")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(c.calls_of("o1").len(), 1);
    assert_eq!(
        report.executed,
        vec![OrderId::new("o2")],
        "one failure stops nothing else"
    );
    let (id, msg) = &report.errored[0];
    assert_eq!(id.as_str(), "o1");
    for needle in ["o1", "owner-o1", "update", "invalid order", "permanent"] {
        assert!(msg.contains(needle), "{needle} missing in {msg}");
    }
    let results: Vec<_> = store.results_stream(10).try_collect().await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].provisioning_state, ProvisioningState::Errored);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_attempts_with_a_persistent_error() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Temporary);
    let (d, _) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(c.calls_of("o1").len(), 5);
    let msg = &report.errored[0].1;
    assert!(
        msg.contains("persistent") && msg.contains("gave up after 5 attempts"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_total_time() {
    let mut p = policy();
    p.retry.max_attempts = 100;
    p.retry.max_total = Duration::from_millis(1_000);
    let c = Scripted::new(ConnectionMode::Automated, Reply::Temporary);
    let (d, _) = dispatcher(c.clone(), p);
    d.dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    // 0, 100, 300, 700 ms: the next retry would start at 1,500 ms.
    assert_eq!(c.calls_of("o1").len(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_prevents_a_retry_storm() {
    let mut p = policy();
    p.concurrency_per_connection = 50;
    p.retry.max_attempts = 10;
    p.retry.max_total = Duration::from_secs(3);
    p.budget = RetryBudget {
        ratio: 0.1,
        min_per_second: 2.0,
        capacity: 5.0,
    };
    let c = Scripted::new(ConnectionMode::Automated, Reply::Temporary);
    let (d, _) = dispatcher(c.clone(), p);
    let orders: Vec<_> = (0..50).map(|i| order(&format!("o{i:02}"))).collect();
    let report = d.dispatch(orders, &CancellationToken::new()).await.unwrap();
    let calls = c.calls.lock().unwrap().len();
    // Without a budget: 50 orders × up to 5 attempts in 3 s = 250 calls. With it: 50 first
    // attempts, plus at most 2 initial tokens, 0.1 × 50 earned, and 2/s for ~3 s.
    assert!(
        calls <= 50 + 2 + 5 + 7,
        "{calls} calls: the budget did not hold"
    );
    assert_eq!(report.errored.len(), 50);
    assert!(
        report
            .errored
            .iter()
            .any(|(_, m)| m.contains("retry budget exhausted")),
        "{:?}",
        report.errored[0]
    );
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_pauses_dispatch_and_probes_before_resuming() {
    let mut p = policy();
    p.concurrency_per_connection = 1;
    p.breaker = CircuitBreakerPolicy {
        failure_threshold: 3,
        open_for: Duration::from_secs(1),
    };
    p.retry.max_attempts = 20;
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let start = Instant::now();
    *c.down_until.lock().unwrap() = Some(start + Duration::from_millis(2_500));
    let events = CollectEvents::new();
    let (d, _) = dispatcher(c.clone(), p);
    let d = d.with_events(Arc::new(events.clone()));
    let orders: Vec<_> = (0..3).map(|i| order(&format!("o{i}"))).collect();
    let report = d.dispatch(orders, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.executed.len(), 3, "{report:?}");

    let probes = c.probes.lock().unwrap().clone();
    assert!(
        probes.iter().any(|(_, ok)| !ok),
        "a probe found the system down"
    );
    let (first_good_probe, _) = *probes.iter().find(|(_, ok)| *ok).expect("a good probe");
    assert!(first_good_probe >= start + Duration::from_millis(2_500));
    // Between the opening (3rd failure) and the good probe, no order was sent.
    let calls = c.calls.lock().unwrap().clone();
    let third_failure = calls[2].1;
    assert!(
        calls
            .iter()
            .all(|(_, t)| *t <= third_failure || *t >= first_good_probe),
        "calls while the breaker was open: {calls:?}"
    );
    let evs = events.events();
    assert!(
        evs.iter()
            .any(|e| matches!(e, JobEvent::CircuitOpened { .. }))
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, JobEvent::CircuitClosed { .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn dependants_wait_for_and_are_blocked_by_their_dependencies() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    c.script("a-account", vec![Reply::Temporary]);
    c.script("x-account", vec![Reply::Permanent]);
    let (d, store) = dispatcher(c.clone(), policy());
    let mut mailbox = order("b-mailbox");
    mailbox.depends_on = vec!["a-account".into()];
    let mut blocked = order("y-mailbox");
    blocked.depends_on = vec!["x-account".into()];
    let mut chained = order("z-chained");
    chained.depends_on = vec!["y-mailbox".into()];
    let report = d
        .dispatch(
            vec![
                chained,
                blocked,
                mailbox,
                order("a-account"),
                order("x-account"),
            ],
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let calls: Vec<OrderId> = c
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(o, _)| o.clone())
        .collect();
    let pos = |id: &str| calls.iter().rposition(|o| o.as_str() == id).unwrap();
    assert!(
        pos("b-mailbox") > pos("a-account"),
        "after its dependency: {calls:?}"
    );
    assert!(c.calls_of("y-mailbox").is_empty(), "never sent");
    assert!(c.calls_of("z-chained").is_empty(), "never sent");
    assert_eq!(report.executed.len(), 2);
    let rec = store.order(&"y-mailbox".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Errored);
    let msg = rec.dispatch.last_error.unwrap();
    assert!(
        msg.contains("blocked: dependency x-account failed"),
        "{msg}"
    );
    let msg = store
        .order(&"z-chained".into())
        .await
        .unwrap()
        .unwrap()
        .dispatch
        .last_error
        .unwrap();
    assert!(msg.contains("dependency y-mailbox"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn cancellation_lets_in_flight_calls_finish_and_starts_nothing_new() {
    let mut p = policy();
    p.concurrency_per_connection = 2;
    #[derive(Debug)]
    struct Slow(Arc<Scripted>);
    #[async_trait]
    impl Connector for Slow {
        fn info(&self) -> &ConnectorInfo {
            self.0.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.fulfill(o).await
        }
        async fn export(&self, r: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.0.export(r).await
        }
    }
    let inner = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let (d, store) = dispatcher(Arc::new(Slow(inner.clone())), p);
    let cancel = CancellationToken::new();
    let orders: Vec<_> = (0..10).map(|i| order(&format!("o{i}"))).collect();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c2.cancel();
    });
    let report = d.dispatch(orders, &cancel).await.unwrap();
    // Two calls at a time of 100 ms: 0–100 ms two, 100–200 ms two more (in flight at 150).
    assert_eq!(report.executed.len(), 4, "{report:?}");
    assert_eq!(report.pending.len(), 6);
    assert_eq!(
        store.unfinished_orders().await.unwrap().len(),
        6,
        "nothing lost"
    );
    let report = d.resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.executed.len(), 6);
    assert_eq!(inner.calls.lock().unwrap().len(), 10, "nothing sent twice");
}

#[tokio::test(start_paused = true)]
async fn manual_connections_transmit_then_wait_for_a_human() {
    let c = Scripted::new(ConnectionMode::Manual, Reply::Transmit);
    let (d, store) = dispatcher(c.clone(), policy());
    let report = d
        .dispatch(vec![order("o1"), order("o2")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.transmitted.len(), 2);
    let rec = store.order(&"o1".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Transmitted);
    assert_eq!(rec.ticket.as_deref(), Some("T-o1"));
    assert_eq!(
        d.record_human_resolution(&"o1".into(), Ok(()))
            .await
            .unwrap(),
        ProvisioningState::Executed
    );
    assert_eq!(
        d.record_human_resolution(&"o2".into(), Err("no such mailbox".into()))
            .await
            .unwrap(),
        ProvisioningState::Errored
    );
    // Confirming twice is an illegal transition, reported, not applied.
    assert!(
        d.record_human_resolution(&"o1".into(), Ok(()))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_result_is_redispatched_and_finished_orders_are_not() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let (d, store) = dispatcher(c.clone(), policy());
    d.dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    // The same orders again (a job re-run): nothing is sent twice.
    let report = d
        .dispatch(vec![order("o1"), order("o2")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.already_finished, vec![OrderId::new("o1")]);
    assert_eq!(c.calls_of("o1").len(), 1);
    // A crash between send and record: the store says Pending with one attempt started and
    // no outcome recorded.
    let now = chrono::Utc::now();
    store
        .insert_orders(&[OrderRecord::pending(
            order("o3"),
            ConnectionMode::Automated,
            now,
        )])
        .await
        .unwrap();
    store
        .update_order(&"o3".into(), 1, OrderUpdate::at(now).attempt_started())
        .await
        .unwrap();
    let report = d.resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.executed, vec![OrderId::new("o3")]);
    let rec = store.order(&"o3".into()).await.unwrap().unwrap();
    assert_eq!(
        rec.dispatch.attempts, 2,
        "sent again: the connector is idempotent"
    );
}

#[tokio::test(start_paused = true)]
async fn mockall_connector_sees_the_deadline_per_call() {
    let mut mock = MockConnector::new();
    let info = ConnectorInfo::new("mock", "conn", Capabilities::full());
    mock.expect_info().return_const(info);
    let mut seq = mockall::Sequence::new();
    mock.expect_fulfill()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|o| {
            Err(ConnectorError::new(ErrorKind::Timeout, Operation::Create, "slow").for_order(o))
        });
    mock.expect_fulfill()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Fulfillment::Executed(Executed::new("CN=x"))));
    let (d, store) = dispatcher(Arc::new(mock), policy());
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1);
    let rec = store.order(&"o1".into()).await.unwrap().unwrap();
    assert_eq!(rec.resource_id.unwrap().as_str(), "CN=x");
    assert_eq!(rec.dispatch.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_connector_fails_its_order_and_nothing_else() {
    #[derive(Debug)]
    struct Panicky(Arc<Scripted>);
    #[async_trait]
    impl Connector for Panicky {
        fn info(&self) -> &ConnectorInfo {
            self.0.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            if o.order_id.as_str() == "o2" {
                panic!("bug in a connector");
            }
            self.0.fulfill(o).await
        }
        async fn export(&self, r: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.0.export(r).await
        }
    }
    let inner = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let (d, store) = dispatcher(Arc::new(Panicky(inner)), policy());
    let orders: Vec<_> = (1..=3).map(|i| order(&format!("o{i}"))).collect();
    let report = d.dispatch(orders, &CancellationToken::new()).await.unwrap();
    assert_eq!(
        report.executed,
        vec![OrderId::new("o1"), OrderId::new("o3")]
    );
    let (id, msg) = &report.errored[0];
    assert_eq!(id.as_str(), "o2");
    assert!(
        msg.contains("panicked") && msg.contains("owner-o2") && msg.contains("create"),
        "{msg}"
    );
    let rec = store.order(&"o2".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Errored);
}

#[tokio::test(start_paused = true)]
async fn mockall_circuit_breaker_probes_before_resuming() {
    let mut mock = MockConnector::new();
    mock.expect_info()
        .return_const(ConnectorInfo::new("mock", "conn", Capabilities::full()));
    let mut seq = mockall::Sequence::new();
    // Three temporary failures open the breaker (threshold 3)...
    mock.expect_fulfill()
        .times(3)
        .in_sequence(&mut seq)
        .returning(|o| {
            Err(ConnectorError::new(ErrorKind::Unavailable, Operation::Create, "down").for_order(o))
        });
    // ...the first probe still fails, the second succeeds...
    mock.expect_check()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| {
            Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::Check,
                "down",
            ))
        });
    mock.expect_check()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(()));
    // ...and only then does the order go out again.
    mock.expect_fulfill()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Fulfillment::Executed(Executed::new("CN=x"))));
    let mut p = policy();
    p.concurrency_per_connection = 1;
    p.breaker = CircuitBreakerPolicy {
        failure_threshold: 3,
        open_for: Duration::from_secs(10),
    };
    let (d, _) = dispatcher(Arc::new(mock), p);
    let start = Instant::now();
    let report = d
        .dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1);
    // 100 + 200 ms of backoff, then two open periods of 10 s before the good probe.
    assert!(Instant::now() - start >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn mockall_retry_budget_refills_at_its_steady_rate() {
    let mut mock = MockConnector::new();
    mock.expect_info()
        .return_const(ConnectorInfo::new("mock", "conn", Capabilities::full()));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    mock.expect_fulfill().returning(move |o| {
        seen.lock().unwrap().push(Instant::now());
        Err(ConnectorError::new(ErrorKind::Unavailable, Operation::Create, "busy").for_order(o))
    });
    let mut p = policy();
    p.retry.max_attempts = 6;
    p.retry.initial_backoff = Duration::from_millis(1);
    p.retry.multiplier = 1.0;
    p.retry.max_total = Duration::from_secs(30);
    p.budget = RetryBudget {
        ratio: 0.0,
        min_per_second: 1.0,
        capacity: 1.0,
    };
    let (d, _) = dispatcher(Arc::new(mock), p);
    d.dispatch(vec![order("o1")], &CancellationToken::new())
        .await
        .unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 6);
    // The first retry uses the initial token; later ones wait for the budget: ~1 per second.
    for w in calls.windows(2).skip(1) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(990),
            "{:?}",
            w[1] - w[0]
        );
    }
}

#[tokio::test]
async fn duplicate_ids_and_dependency_cycles_are_refused_before_anything_is_stored() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let (d, store) = dispatcher(c.clone(), policy());
    let err = d
        .dispatch(
            vec![order("o1"), order("o2"), order("o1")],
            &CancellationToken::new(),
        )
        .await
        .expect_err("a duplicate id");
    assert!(
        matches!(&err, autoprov_orchestrator::dispatch::DispatchError::DuplicateOrder { order_id } if order_id.as_str() == "o1"),
        "{err:?}"
    );
    let (mut a, mut b, mut x, free) = (order("a"), order("b"), order("x"), order("free"));
    a.depends_on = vec!["b".into()];
    b.depends_on = vec!["a".into()];
    x.depends_on = vec!["a".into()];
    let err = d
        .dispatch(vec![free, a, b, x], &CancellationToken::new())
        .await
        .expect_err("a cycle");
    match &err {
        autoprov_orchestrator::dispatch::DispatchError::DependencyCycle { orders } => {
            let ids: Vec<&str> = orders.iter().map(|o| o.as_str()).collect();
            assert_eq!(ids, ["a", "b", "x"]);
            let msg = err.to_string();
            assert!(msg.contains("a, b, x"), "{msg}");
        }
        other => panic!("expected DependencyCycle, got {other:?}"),
    }
    assert!(
        store.orders_page(None, 1).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert!(c.calls_of("free").is_empty(), "nothing sent");
}

#[tokio::test]
async fn an_order_with_a_redacted_secret_is_errored_without_calling_the_connector() {
    let c = Scripted::new(ConnectionMode::Automated, Reply::Ok);
    let (d, store) = dispatcher(c.clone(), policy());
    // An orders file written by autoprov (passwords masked) and read back.
    let mut o = order("masked");
    o.changes
        .set("password", autoprov_core::Secret::new("Init-Pass1"));
    let json = serde_json::to_string(&o).unwrap();
    let back: ProvisioningOrder = serde_json::from_str(&json).unwrap();
    assert_eq!(back.redacted_secret(), Some("password"));
    let report = d
        .dispatch(vec![back], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.errored.len(), 1);
    assert!(
        report.errored[0].1.contains("masked secret"),
        "{:?}",
        report.errored
    );
    assert!(
        c.calls_of("masked").is_empty(),
        "the connector never sees it"
    );
    let rec = store.order(&"masked".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Errored);
}
