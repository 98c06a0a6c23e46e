//! Chaos: 10,000 orders through the fault injector (30% temporary failures, some of them after
//! the write was applied, random latency, occasional hangs) ⇒ every order Executed, then
//! Verified by the next synchronization, none lost, no effect applied twice. Permanent failures
//! ⇒ Errored with messages naming owner, order and operation, while every other order completes.

use autoprov_connector::wrappers::{FaultInjector, FaultPlan};
use autoprov_connector::{Connector, ConnectorExt, ErrorKind, ExportRequest, InMemoryConnector};
use autoprov_core::{
    ChangeType, Changes, Owner, ProvisioningOrder, ProvisioningState, Reference, ResourceType,
    ResourceTypeRef,
};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::dispatch::{
    CircuitBreakerPolicy, DispatchPolicy, Dispatcher, RetryBudget, RetryPolicy,
};
use autoprov_orchestrator::events::NoEvents;
use autoprov_orchestrator::store::{MemoryStore, Store, StoreExt};
use autoprov_orchestrator::verify::verify;
use futures::TryStreamExt as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CONN: &str = "chaos";
const BASE: &str = "DC=example,DC=test";

fn directory() -> InMemoryConnector {
    let system = InMemoryConnector::new(CONN);
    let staff = system
        .ensure_container(&format!("OU=Staff,{BASE}"))
        .unwrap();
    let groups = system
        .ensure_container(&format!("OU=Groups,{BASE}"))
        .unwrap();
    let _ = staff;
    let mut g = Changes::default();
    g.set("cn", "AllStaff")
        .set("sAMAccountName", "allstaff")
        .set_reference("parentdn", Reference::dn(groups.as_str()));
    system.seed("group", &g).unwrap();
    system
}

fn account_order(i: usize, invalid: bool) -> ProvisioningOrder {
    let rt = ResourceType::new(
        "rt-ad",
        "AD_Entry_NominativeUser",
        "Directory_User",
        "user",
        CONN,
    );
    let login = format!("user{i:05}");
    let mut c = Changes::default();
    c.set("cn", login.as_str())
        .set("sAMAccountName", login.as_str())
        .set("employeeID", format!("E{i:05}"))
        .set("enabled", true)
        .set_reference("parentdn", Reference::dn(format!("OU=Staff,{BASE}")))
        .add_reference(
            "memberOf",
            Reference::dn(format!("CN=AllStaff,OU=Groups,{BASE}")),
        );
    if invalid {
        c.set("favoriteColour", "teal");
    }
    ProvisioningOrder {
        order_id: format!("E{i:05}/rt-ad/Added").as_str().into(),
        assigned_resource_type_id: Some(format!("E{i:05}/rt-ad").as_str().into()),
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("E{i:05}"), login)),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some(CONN.into()),
        changes: c,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

fn policy() -> DispatchPolicy {
    DispatchPolicy {
        concurrency_per_connection: 32,
        call_deadline: Duration::from_millis(250),
        retry: RetryPolicy {
            max_attempts: 40,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.3,
            max_total: Duration::from_secs(600),
        },
        budget: RetryBudget {
            ratio: 1.0,
            min_per_second: 200.0,
            capacity: 2_000.0,
        },
        breaker: CircuitBreakerPolicy {
            failure_threshold: 40,
            open_for: Duration::from_millis(200),
        },
        jitter_seed: 11,
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_orders_under_faults_are_executed_once_and_verified() {
    let n = 10_000;
    let system = directory();
    let faulty = FaultInjector::new(
        system.clone(),
        FaultPlan::new()
            .seed(2026)
            .failure_ratio(0.30, ErrorKind::Unavailable)
            .after_apply_ratio(0.3)
            .hang_ratio(0.002)
            .latency(Duration::from_micros(100), Duration::from_millis(3)),
    );
    let store = Arc::new(MemoryStore::new());
    let faulty = Arc::new(faulty);
    let dispatcher = Dispatcher::new(
        [faulty.clone() as Arc<dyn Connector>],
        policy(),
        store.clone(),
        Arc::new(SystemClock),
    );
    let orders: Vec<_> = (0..n).map(|i| account_order(i, false)).collect();
    let report = dispatcher
        .dispatch(orders, &CancellationToken::new())
        .await
        .unwrap();
    let stats = faulty.stats();
    assert!(stats.failed_before_apply > 2_000, "{stats:?}");
    assert!(stats.failed_after_apply > 500, "{stats:?}");
    assert!(stats.hangs > 5, "{stats:?}");
    assert!(
        report.errored.is_empty(),
        "{:?}",
        &report.errored[..report.errored.len().min(3)]
    );
    assert_eq!(report.executed.len(), n, "none lost");
    assert!(store.unfinished_orders().await.unwrap().is_empty());

    // No effect applied twice: retries after a lost result adopted what was already there.
    assert!(
        system.repeated_effects().is_empty(),
        "{:?}",
        &system.repeated_effects()[..3.min(system.repeated_effects().len())]
    );
    let creates = system
        .operation_log()
        .iter()
        .filter(|op| op.order.is_some() && op.operation == autoprov_connector::Operation::Create)
        .count();
    assert_eq!(creates, n, "one create per order");

    // The next synchronization verifies every order.
    let export = system.export_all(ExportRequest::complete()).await.unwrap();
    store
        .upsert_resources(&CONN.into(), export.resources)
        .await
        .unwrap();
    let v = verify(
        store.as_ref(),
        &SystemClock,
        &NoEvents,
        &BTreeMap::new(),
        Some(Duration::from_secs(3600)),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        v.verified.len(),
        n,
        "{:?}",
        &v.waiting[..v.waiting.len().min(3)]
    );
    let states: Vec<_> = store
        .orders_stream(1000)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert!(states.iter().all(|s| *s == ProvisioningState::Verified));
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_errored_and_named_while_the_rest_completes() {
    let system = directory();
    let faulty = Arc::new(FaultInjector::new(
        system.clone(),
        FaultPlan::new()
            .seed(7)
            .failure_ratio(0.30, ErrorKind::Timeout)
            .latency(Duration::from_micros(100), Duration::from_millis(2)),
    ));
    let store = Arc::new(MemoryStore::new());
    let dispatcher = Dispatcher::new(
        [faulty as Arc<dyn Connector>],
        policy(),
        store.clone(),
        Arc::new(SystemClock),
    );
    let orders: Vec<_> = (0..1_000).map(|i| account_order(i, i % 50 == 7)).collect();
    let report = dispatcher
        .dispatch(orders, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.errored.len(), 20);
    assert_eq!(report.executed.len(), 980);
    for (order, message) in &report.errored {
        let owner = order.as_str().split('/').next().unwrap();
        for needle in [
            order.as_str(),
            owner,
            "create",
            "invalid order",
            "favoriteColour",
        ] {
            assert!(message.contains(needle), "`{needle}` missing in: {message}");
        }
        let rec = store.order(order).await.unwrap().unwrap();
        assert_eq!(rec.state, ProvisioningState::Errored);
        // An invalid order wrote nothing.
        assert!(system.operations_of(order).is_empty());
    }
}
