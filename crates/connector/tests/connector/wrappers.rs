//! The wrappers: scripted and seeded faults (before and after the write), hangs against a
//! deadline, latency, the concurrency limit, the recorder, and forwarding of every method.

use autoprov_connector::wrappers::{
    Call, ConcurrencyLimiter, Fault, FaultInjector, FaultPlan, Recorder, Timing,
};
use autoprov_connector::{
    Connector, ConnectorError, ConnectorExt, ErrorKind, Executed, ExportRequest, InMemoryConnector,
    Operation,
};
use autoprov_core::{
    ChangeType, Changes, Owner, ProvisioningOrder, Reference, ResourceType, ResourceTypeRef,
};
use std::sync::Arc;
use std::time::Duration;

fn system() -> InMemoryConnector {
    let s = InMemoryConnector::new("w");
    s.ensure_container("OU=People,DC=example,DC=test").unwrap();
    s
}

fn added(i: usize) -> ProvisioningOrder {
    let mut changes = Changes::default();
    changes
        .set("cn", format!("User {i}"))
        .set("sAMAccountName", format!("user{i}"))
        .set_reference("parentdn", Reference::dn("OU=People,DC=example,DC=test"));
    ProvisioningOrder {
        order_id: format!("o-{i}").into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("u-{i}"), format!("user{i}"))),
        resource_type: ResourceTypeRef::of(&ResourceType::new(
            "rt",
            "AD_User",
            "Directory_User",
            "user",
            "w",
        )),
        connection: None,
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

async fn send(c: &dyn Connector, o: &ProvisioningOrder) -> Result<Executed, ConnectorError> {
    c.fulfill(o).await.map(|f| f.executed().cloned().unwrap())
}

#[tokio::test]
async fn scripted_faults_come_in_order_and_name_the_order() {
    let s = system();
    let plan = FaultPlan::new().script(
        Call::Fulfill,
        [
            Fault::fail(ErrorKind::Unavailable),
            Fault::fail(ErrorKind::PermissionDenied),
            Fault::Pass,
        ],
    );
    let c = FaultInjector::new(s.clone(), plan);
    let e = send(&c, &added(1)).await.unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(e.operation(), Operation::Create);
    assert_eq!(e.order().unwrap().as_str(), "o-1");
    assert_eq!(e.owner().unwrap().as_str(), "u-1");
    let e = send(&c, &added(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(!e.is_temporary());
    assert_eq!(s.len(), 1, "nothing was applied before the failures");
    send(&c, &added(1)).await.unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(c.stats().failed_before_apply, 2);
    // Custom errors pass through as given.
    c.push_script(
        Call::Check,
        [Fault::Error {
            error: ConnectorError::new(ErrorKind::Unauthenticated, Operation::Check, "bad pw"),
            timing: Timing::BeforeApply,
        }],
    );
    assert_eq!(
        c.check().await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
    c.check().await.unwrap();
}

#[tokio::test]
async fn a_failure_after_apply_loses_the_result_and_the_retry_is_a_noop() {
    let s = system();
    let plan =
        FaultPlan::new().script(Call::Fulfill, [Fault::fail_after_apply(ErrorKind::Timeout)]);
    let c = FaultInjector::new(s.clone(), plan);
    let o = added(7);
    let e = send(&c, &o).await.unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(
        s.len(),
        2,
        "the write happened although the caller saw an error"
    );
    let retry = send(&c, &o).await.unwrap();
    assert!(retry.is_noop() && retry.adopted);
    assert!(s.repeated_effects().is_empty(), "no effect applied twice");
    assert_eq!(c.stats().failed_after_apply, 1);
}

#[tokio::test]
async fn seeded_failures_are_reproducible() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let plan = FaultPlan::new()
            .seed(seed)
            .failure_ratio(0.3, ErrorKind::Unavailable)
            .after_apply_ratio(0.5);
        let c = FaultInjector::new(system(), plan);
        let mut out = Vec::new();
        for i in 0..200 {
            out.push(send(&c, &added(i)).await.is_ok());
        }
        out
    }
    let a = outcomes(42).await;
    assert_eq!(a, outcomes(42).await);
    assert_ne!(a, outcomes(43).await);
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!((30..90).contains(&failures), "about 30% fail: {failures}");
}

#[tokio::test(start_paused = true)]
async fn hangs_never_return_so_deadlines_are_testable() {
    let s = system();
    let plan = FaultPlan::new().script(
        Call::Fulfill,
        [
            Fault::hang(),
            Fault::Hang {
                timing: Timing::AfterApply,
            },
        ],
    );
    let c = FaultInjector::new(s.clone(), plan);
    let deadline = Duration::from_secs(30);
    assert!(
        tokio::time::timeout(deadline, c.fulfill(&added(1)))
            .await
            .is_err()
    );
    assert_eq!(s.len(), 1);
    assert!(
        tokio::time::timeout(deadline, c.fulfill(&added(2)))
            .await
            .is_err()
    );
    assert_eq!(s.len(), 2, "the hang after apply wrote first");
    assert_eq!(c.stats().hangs, 2);
    // Latency is drawn from the seeded range.
    let slow = FaultInjector::new(
        system(),
        FaultPlan::new().latency(Duration::from_millis(100), Duration::from_millis(200)),
    );
    let start = tokio::time::Instant::now();
    send(&slow, &added(3)).await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took <= Duration::from_millis(200),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_bounds_concurrent_calls() {
    let slow = FaultInjector::new(
        system(),
        FaultPlan::new().latency(Duration::from_millis(5), Duration::from_millis(10)),
    );
    let c = Arc::new(ConcurrencyLimiter::new(slow, 3));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { send(&*c, &added(i)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(c.limit(), 3);
    assert!(c.peak() <= 3, "peak {}", c.peak());
    assert!(c.peak() >= 2, "calls did overlap: {}", c.peak());
    assert_eq!(c.in_flight(), 0);
    // An export holds its permit while its stream is read.
    let stream = c.export(ExportRequest::complete()).await.unwrap();
    assert_eq!(c.in_flight(), 1);
    drop(stream);
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn the_recorder_records_every_call_and_outcome() {
    let c = Recorder::new(FaultInjector::new(
        system(),
        FaultPlan::new().script(Call::Fulfill, [Fault::fail(ErrorKind::Unavailable)]),
    ));
    assert!(send(&c, &added(1)).await.is_err());
    send(&c, &added(1)).await.unwrap();
    c.check().await.unwrap();
    c.export_all(ExportRequest::complete()).await.unwrap();
    let calls = c.calls();
    assert_eq!(
        calls.iter().map(|c| c.call).collect::<Vec<_>>(),
        [Call::Fulfill, Call::Fulfill, Call::Check, Call::Export]
    );
    assert_eq!(
        calls.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let of_order = c.calls_of(&"o-1".into());
    assert_eq!(of_order.len(), 2);
    assert!(of_order[0].outcome.is_err());
    assert!(matches!(&of_order[1].outcome, Ok(Some(f)) if f.executed().is_some()));
    assert_eq!(of_order[1].change_type, Some(ChangeType::Added));
    assert!(calls[3].export.is_some());
}

#[tokio::test]
async fn every_wrapper_forwards_every_method() {
    let inner = system();
    let wrapped: Vec<Box<dyn Connector>> = vec![
        Box::new(FaultInjector::new(inner.clone(), FaultPlan::new())),
        Box::new(ConcurrencyLimiter::new(inner.clone(), 1)),
        Box::new(Recorder::new(inner.clone())),
        Box::new(Recorder::new(ConcurrencyLimiter::new(
            FaultInjector::new(
                Arc::new(inner.clone()) as Arc<dyn Connector>,
                FaultPlan::new(),
            ),
            2,
        ))),
    ];
    for (i, c) in wrapped.iter().enumerate() {
        assert_eq!(c.info(), inner.info(), "wrapper {i}: info");
        c.check().await.unwrap();
        let done = send(c.as_ref(), &added(100 + i)).await.unwrap();
        assert!(
            inner.get(done.resource_id.as_str()).is_some(),
            "wrapper {i}: fulfil"
        );
        let batch = c.export_all(ExportRequest::complete()).await.unwrap();
        assert_eq!(batch.resources.len(), inner.len(), "wrapper {i}: export");
    }
    let r = Recorder::new(inner.clone());
    let _ = r.info();
    assert_eq!(r.info_calls(), 1);
}

/// Many orders through 30% seeded temporary failures (half of them after the write), retried
/// until they succeed: every order applied exactly once.
#[tokio::test]
async fn retries_through_faults_apply_every_effect_once() {
    let s = system();
    let c = FaultInjector::new(
        s.clone(),
        FaultPlan::new()
            .seed(7)
            .failure_ratio(0.3, ErrorKind::Unavailable)
            .after_apply_ratio(0.5),
    );
    for i in 0..300 {
        let o = added(i);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match send(&c, &o).await {
                Ok(_) => break,
                Err(e) if e.is_temporary() && attempts < 20 => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(s.len(), 301);
    assert!(s.repeated_effects().is_empty());
    assert!(c.stats().failed_after_apply > 0 && c.stats().failed_before_apply > 0);
}
