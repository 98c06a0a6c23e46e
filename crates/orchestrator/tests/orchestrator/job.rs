//! End to end on the in-memory managed system: joiners, provisioning review, verification at
//! the next synchronization, a manual assignment request provisioned automatically and
//! verified, a mover, a leaver, simulation, thresholds and cancellation.

use autoprov_connector::{Connector, ConnectorExt, ExportRequest, InMemoryConnector, Preview};
use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, ChangeType, OwnerId, PropertyValue, ProvisioningState,
    RequestKind, RequestedAssignment, Resource, ScalarValue,
};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov_orchestrator::events::CollectEvents;
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::plan::{LimitKind, ThresholdForce};
use autoprov_orchestrator::store::{AuditAction, JobStatus, MemoryStore, Store, StoreExt};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures::TryStreamExt as _;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

struct World {
    system: InMemoryConnector,
    job: ProvisioningJob,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    events: CollectEvents,
}

fn world(people: usize) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let events = CollectEvents::new();
    let (system, job) = demo::build(
        demo::people(people, now()),
        store.clone(),
        clock.clone(),
        Arc::new(events.clone()),
    )
    .unwrap();
    World {
        system,
        job,
        store,
        clock,
        events,
    }
}

fn account<'a>(system: &'a [Resource], login: &str) -> Option<&'a Resource> {
    system.iter().find(|r| {
        r.get("sAMAccountName").and_then(PropertyValue::as_scalar)
            == Some(&ScalarValue::from(login))
    })
}

fn groups_of(r: &Resource) -> Vec<String> {
    r.get("memberOf")
        .and_then(PropertyValue::as_references)
        .map(|s| {
            s.iter()
                .filter_map(|g| g.dn_value().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn states(store: &MemoryStore) -> std::collections::BTreeMap<ProvisioningState, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in store
        .orders_stream(500)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
    {
        *m.entry(r.state).or_default() += 1;
    }
    m
}

fn login_of(owner: &str) -> String {
    let people = demo::people(24, now());
    let o = people.iter().find(|o| o.id.as_str() == owner).unwrap();
    o.identifier.clone()
}

#[tokio::test]
async fn joiners_review_verification_request_mover_leaver() {
    let mut w = world(24);
    let cancel = CancellationToken::new();
    let admins: Vec<_> = demo::people(24, now())
        .into_iter()
        .filter(|p| {
            p.get("title").and_then(PropertyValue::as_scalar)
                == Some(&ScalarValue::from("Administrator"))
        })
        .collect();
    assert!(!admins.is_empty(), "the demo has IT administrators");

    // Run 1: joiners. Accounts are created; privileged accounts wait in review.
    let r1 = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r1.run.status, JobStatus::Succeeded, "{:?}", r1.run.message);
    assert_eq!(r1.dispatch.executed.len(), 24, "{:?}", r1.dispatch);
    assert!(r1.dispatch.errored.is_empty(), "{:?}", r1.dispatch.errored);
    assert_eq!(r1.awaiting_review.len(), admins.len());
    assert!(r1.orders.iter().all(|o| o.change_type == ChangeType::Added));
    let snapshot = w.system.snapshot();
    let ada = account(&snapshot, &login_of("E0000")).expect("created");
    assert!(groups_of(ada).iter().any(|g| g.starts_with("CN=AllStaff,")));
    assert_eq!(
        ada.get("enabled").and_then(PropertyValue::as_scalar),
        Some(&ScalarValue::Bool(true))
    );
    assert!(
        w.system
            .verify_password(ada.id.as_str(), "Init-E0000-2026!")
    );
    assert!(
        ada.get("password").is_none(),
        "passwords are never exported"
    );
    assert_eq!(
        states(&w.store).await.get(&ProvisioningState::Executed),
        Some(&24)
    );

    // Review approves the privileged accounts.
    let pending: Vec<_> = w
        .job
        .planner()
        .pending_reviews()
        .iter()
        .filter_map(|i| i.order.as_ref().map(|o| o.order_id.clone()))
        .collect();
    assert_eq!(pending.len(), admins.len());
    for id in &pending {
        assert_eq!(
            w.job.approve(id, "reviewer").await.unwrap(),
            ProvisioningState::Pending
        );
    }

    // Run 2: the synchronization verifies run 1; the approved accounts are created.
    w.clock.advance(TimeDelta::minutes(10));
    let r2 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(
        r2.verification.verified.len(),
        24,
        "{:?}",
        r2.verification.waiting
    );
    assert_eq!(
        r2.dispatch.executed.len(),
        admins.len(),
        "{:?}",
        r2.dispatch
    );
    let snapshot = w.system.snapshot();
    let adm = account(&snapshot, &format!("adm-{}", admins[0].identifier)).expect("admin");
    assert!(
        adm.id
            .as_str()
            .ends_with(&format!("OU=Admins,{}", demo::BASE_DN))
    );

    // Run 3: everything Verified, nothing left to do.
    w.clock.advance(TimeDelta::minutes(10));
    let r3 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r3.verification.verified.len(), admins.len());
    assert!(r3.orders.is_empty(), "{:?}", r3.orders);
    let st = states(&w.store).await;
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        st.get(&ProvisioningState::Verified),
        Some(&(24 + admins.len()))
    );

    // The seed's verification scenario: a manual assignment request changes a test user's
    // permission; the job provisions it automatically; the directory holds the change; the
    // assignment is Verified.
    let owner = OwnerId::new("E0001");
    let login = login_of("E0001");
    let mut request = AssignmentRequest::new(
        "req-vpn-1",
        owner.clone(),
        RequestKind::Add,
        RequestedAssignment {
            resource_type: ACCOUNT.into(),
            scalar: None,
            navigation: Some(("memberOf".into(), demo::group("VPN-Users"))),
        },
        ApprovalWorkflowType::One,
    );
    request.submit().unwrap();
    request.approve(1).unwrap();
    w.job.planner_mut().upsert_request(request).unwrap();
    w.clock.advance(TimeDelta::minutes(10));
    let r4 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r4.dispatch.executed.len(), 1, "{:?}", r4.orders);
    let order = &r4.orders[0];
    assert_eq!(order.change_type, ChangeType::Modified);
    let nav = &order.changes.navigations["memberOf"];
    assert_eq!(nav.add.len(), 1);
    assert!(nav.remove.is_empty(), "a delta, never a replacement");
    let snapshot = w.system.snapshot();
    let user = account(&snapshot, &login).unwrap();
    assert!(
        groups_of(user)
            .iter()
            .any(|g| g.starts_with("CN=VPN-Users,"))
    );
    w.clock.advance(TimeDelta::minutes(10));
    let r5 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r5.verification.verified, vec![order.order_id.clone()]);
    let rec = w.store.order(&order.order_id).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Verified);
    let result = w
        .store
        .results_stream(100)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.order_id == order.order_id)
        .unwrap();
    assert_eq!(result.provisioning_state, ProvisioningState::Verified);

    // Mover: E0002 moves from Finance (i % 4 == 2) to Sales: OU move and group swap, same
    // stable id.
    let mover_id = "E0002";
    let before = account(&w.system.snapshot(), &login_of(mover_id))
        .unwrap()
        .clone();
    let moved = demo::people(24, now())
        .into_iter()
        .find(|o| o.id.as_str() == mover_id)
        .unwrap()
        .with("department", "Sales");
    w.job.planner_mut().upsert_owner(moved);
    w.clock.advance(TimeDelta::minutes(10));
    let r6 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r6.dispatch.executed.len(), 1, "{:?}", r6.dispatch);
    let after = account(&w.system.snapshot(), &login_of(mover_id))
        .unwrap()
        .clone();
    assert_eq!(
        before.stable_id, after.stable_id,
        "the move keeps the stable id"
    );
    assert!(after.id.as_str().contains("OU=Sales,"), "{}", after.id);
    let groups = groups_of(&after);
    assert!(
        groups.iter().any(|g| g.starts_with("CN=Sales,")),
        "{groups:?}"
    );
    assert!(
        !groups.iter().any(|g| g.starts_with("CN=Finance,")),
        "{groups:?}"
    );

    // Leaver: E0003 left yesterday.
    let leaver = demo::people(24, now())
        .into_iter()
        .find(|o| o.id.as_str() == "E0003")
        .unwrap()
        .with("departure", ScalarValue::from(now() - TimeDelta::days(1)));
    let leaver_login = leaver.identifier.clone();
    w.job.planner_mut().upsert_owner(leaver);
    w.clock.advance(TimeDelta::minutes(10));
    let r7 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(
        r7.orders
            .iter()
            .any(|o| o.change_type == ChangeType::Deleted),
        "{:?}",
        r7.orders
    );
    assert!(account(&w.system.snapshot(), &leaver_login).is_none());

    // Verify the last runs and check that no effect was ever applied twice.
    w.clock.advance(TimeDelta::minutes(10));
    w.job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    let st = states(&w.store).await;
    assert_eq!(
        st.keys().collect::<Vec<_>>(),
        vec![&ProvisioningState::Verified],
        "{st:?}"
    );
    assert!(
        w.system.repeated_effects().is_empty(),
        "{:?}",
        w.system.repeated_effects()
    );
    // A complete run now changes nothing.
    let writes = w.system.operation_log().len();
    let again = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(again.orders.is_empty(), "{:?}", again.orders);
    assert_eq!(w.system.operation_log().len(), writes);
    let runs: Vec<_> = w.store.job_runs_stream(4).try_collect().await.unwrap();
    assert_eq!(runs.len(), 9);
    assert!(runs.iter().all(|r| r.status == JobStatus::Succeeded));
    assert!(!w.events.events().is_empty());
}

#[tokio::test]
async fn simulation_shows_the_orders_and_writes_nothing() {
    let mut w = world(12);
    let seeded = w.system.operation_log().len();
    let report = w
        .job
        .run_complete(JobOptions::simulation(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.run.status, JobStatus::Succeeded);
    assert!(report.orders.len() >= 12);
    assert!(
        report.previews.is_empty(),
        "the in-memory system has no change language of its own"
    );
    assert_eq!(
        w.system.operation_log().len(),
        seeded,
        "a simulation writes nothing"
    );
    assert!(
        w.store.orders_page(None, 1).await.unwrap().is_empty(),
        "and stores no order"
    );
    let users = w
        .system
        .export_all(ExportRequest::complete())
        .await
        .unwrap()
        .resources
        .into_iter()
        .filter(|r| r.entity_type.as_ref().map(|e| e.as_str()) == Some("user"))
        .count();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_threshold_breach_blocks_the_run_until_forced() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let mut config = demo::planner_config();
    for rt in &mut config.resource_types {
        if rt.id.as_str() == ACCOUNT {
            rt.thresholds.maximum_insert = Some(5);
        }
    }
    let mut planner = autoprov_orchestrator::Planner::new(config).unwrap();
    for p in demo::people(12, now()) {
        planner.upsert_owner(p);
    }
    let mut job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(system.clone()))
        .clock(clock)
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    let cancel = CancellationToken::new();
    let seeded = system.operation_log().len();
    let blocked = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(blocked.run.status, JobStatus::Blocked);
    assert_eq!(blocked.breaches.len(), 1);
    let b = &blocked.breaches[0];
    assert_eq!((b.count, b.limit), (12, 5));
    assert!(blocked.run.message.as_deref().unwrap().contains(ACCOUNT));
    assert_eq!(
        system.operation_log().len(),
        seeded,
        "nothing sent while blocked"
    );
    // A force must name the resource type and cover the count: one naming another type, or
    // allowing fewer orders than the generation holds, leaves it blocked.
    for force in [
        ThresholdForce::new(ADMIN_ACCOUNT, 100, "alice"),
        ThresholdForce::new(ACCOUNT, 11, "alice"),
    ] {
        let still = job
            .run_complete(JobOptions::default().force(force.clone()), &cancel)
            .await
            .unwrap();
        assert_eq!(still.run.status, JobStatus::Blocked, "{force:?}");
        assert!(
            still
                .run
                .message
                .as_deref()
                .unwrap()
                .contains("not covered"),
            "{:?}",
            still.run.message
        );
        assert_eq!(system.operation_log().len(), seeded, "nothing sent");
    }
    let forced = job
        .run_complete(
            JobOptions::default()
                .force(ThresholdForce::new(ACCOUNT, 12, "alice").because("new hires of May")),
            &cancel,
        )
        .await
        .unwrap();
    assert_eq!(forced.run.status, JobStatus::Succeeded);
    assert_eq!(forced.dispatch.executed.len(), 12);
    // Recorded with who forced it, which type, how many.
    let audit = store.audit_page(None, 1000).await.unwrap();
    let (_, entry) = audit
        .iter()
        .find(|(_, e)| e.action == AuditAction::Forced)
        .expect("the force is audited");
    assert_eq!(entry.actor, "alice");
    assert_eq!(entry.subject, ACCOUNT);
    let why = entry.reason.as_deref().unwrap();
    assert!(why.contains("up to 12 orders"), "{why}");
    assert!(why.contains("new hires of May"), "{why}");
}

#[tokio::test]
async fn percent_thresholds_are_on_by_default_once_a_type_has_enough_targets() {
    // The reference system's default: 30 % of the existing targets, here applied once the
    // type has 100 of them. A first load into an empty directory is not blocked...
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let mut planner = autoprov_orchestrator::Planner::new(demo::planner_config()).unwrap();
    let people = demo::people(150, now());
    for p in &people {
        planner.upsert_owner(p.clone());
    }
    let mut job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(system.clone()))
        .clock(clock.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    let cancel = CancellationToken::new();
    let first = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(
        first.run.status,
        JobStatus::Succeeded,
        "{:?}",
        first.run.message
    );
    assert!(first.dispatch.executed.len() >= 150);
    // ...but once 150 accounts exist, 50 leavers (33 %) are.
    for p in people.iter().take(50) {
        let leaver = p
            .clone()
            .with("departure", ScalarValue::from(now() - TimeDelta::days(1)));
        job.planner_mut().upsert_owner(leaver);
    }
    clock.advance(TimeDelta::minutes(10));
    let sent = system.operation_log().len();
    let second = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(second.run.status, JobStatus::Blocked);
    let b = second
        .breaches
        .iter()
        .find(|b| b.change_type == ChangeType::Deleted)
        .expect("a delete breach");
    let LimitKind::Percent {
        percent,
        existing_targets,
    } = b.limit_kind
    else {
        panic!("a percent breach: {b:?}");
    };
    assert_eq!(percent, 30);
    assert!(existing_targets >= 150, "{existing_targets}");
    assert_eq!(b.limit, existing_targets * 30 / 100);
    assert!(b.count >= 50);
    assert_eq!(system.operation_log().len(), sent, "nothing sent");
}

#[tokio::test]
async fn a_cancelled_run_sends_nothing_and_loses_nothing() {
    let mut w = world(8);
    let seeded = w.system.operation_log().len();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(report.run.status, JobStatus::Cancelled);
    assert_eq!(w.system.operation_log().len(), seeded);
    let r = w
        .job
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.dispatch.executed.len(), 8);
    assert!(w.system.check().await.is_ok());
}

#[tokio::test]
async fn drift_in_the_directory_reopens_a_verified_item_and_is_corrected() {
    let mut w = world(8);
    let cancel = CancellationToken::new();
    w.job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    w.clock.advance(TimeDelta::minutes(10));
    let r = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(r.verification.verified.len(), 8);
    // Someone edits an account by hand: a wrong title and a stray group.
    let login = login_of("E0004");
    let target = account(&w.system.snapshot(), &login).unwrap().clone();
    let mut drift = autoprov_core::Changes::default();
    drift
        .set("title", "Intern")
        .add_reference("memberOf", demo::group("Finance-Approvers"));
    w.system.modify(target.id.as_str(), &drift).unwrap();
    w.clock.advance(TimeDelta::minutes(10));
    let fix = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(fix.dispatch.executed.len(), 1, "{:?}", fix.orders);
    let order = &fix.orders[0];
    assert_eq!(order.change_type, ChangeType::Modified);
    assert_eq!(
        order.changes.scalar("title"),
        Some(&ScalarValue::from("Specialist"))
    );
    let nav = &order.changes.navigations["memberOf"];
    assert_eq!(nav.remove.len(), 1, "the stray group is removed as a delta");
    assert!(nav.add.is_empty());
    let fixed = account(&w.system.snapshot(), &login).unwrap().clone();
    assert_eq!(
        fixed.get("title").and_then(PropertyValue::as_scalar),
        Some(&ScalarValue::from("Specialist"))
    );
    assert!(
        !groups_of(&fixed)
            .iter()
            .any(|g| g.contains("Finance-Approvers"))
    );
    w.clock.advance(TimeDelta::minutes(10));
    let again = w
        .job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(again.verification.verified, vec![order.order_id.clone()]);
}

/// The in-memory system, with a change language: one line per order.
#[derive(Debug)]
struct Lines(InMemoryConnector);

#[async_trait::async_trait]
impl Connector for Lines {
    fn info(&self) -> &autoprov_connector::ConnectorInfo {
        self.0.info()
    }
    async fn check(&self) -> Result<(), autoprov_connector::ConnectorError> {
        self.0.check().await
    }
    async fn fulfill(
        &self,
        order: &autoprov_core::ProvisioningOrder,
    ) -> Result<autoprov_connector::Fulfillment, autoprov_connector::ConnectorError> {
        self.0.fulfill(order).await
    }
    async fn export(
        &self,
        request: ExportRequest,
    ) -> Result<autoprov_connector::ExportStream, autoprov_connector::ConnectorError> {
        self.0.export(request).await
    }
    fn preview(&self, orders: &[autoprov_core::ProvisioningOrder]) -> Option<Preview> {
        Some(Preview::new(
            "lines",
            orders
                .iter()
                .map(|o| format!("{} {:?}\n", o.order_id, o.change_type))
                .collect::<String>(),
        ))
    }
}

fn previewing_job(store: Arc<MemoryStore>, maximum_insert: Option<u32>) -> ProvisioningJob {
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let mut config = demo::planner_config();
    for rt in &mut config.resource_types {
        rt.thresholds.maximum_insert = maximum_insert;
    }
    let mut planner = autoprov_orchestrator::Planner::new(config).unwrap();
    for p in demo::people(5, now()) {
        planner.upsert_owner(p);
    }
    ProvisioningJob::builder(planner, store)
        .connector(Arc::new(Lines(system)))
        .clock(Arc::new(ManualClock::new(now())))
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build()
}

#[tokio::test]
async fn a_simulation_that_thresholds_block_still_shows_the_previews() {
    let mut job = previewing_job(Arc::new(MemoryStore::new()), Some(2));
    let sim = job
        .run_complete(JobOptions::simulation(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sim.run.status, JobStatus::Blocked);
    let preview = sim.previews.get(demo::CONNECTION).expect("a preview");
    assert_eq!(preview.text.lines().count(), sim.orders.len());
}

#[tokio::test]
async fn a_simulation_shows_each_connection_s_preview_and_a_real_run_none() {
    let mut job = previewing_job(Arc::new(MemoryStore::new()), None);
    let cancel = CancellationToken::new();
    let sim = job
        .run_complete(JobOptions::simulation(), &cancel)
        .await
        .unwrap();
    let preview = sim.previews.get(demo::CONNECTION).expect("a preview");
    assert_eq!(preview.format, "lines");
    assert_eq!(preview.text.lines().count(), sim.orders.len());
    for o in &sim.orders {
        assert!(preview.text.contains(o.order_id.as_str()));
    }
    let real = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(!real.dispatch.executed.is_empty());
    assert!(real.previews.is_empty(), "only simulations render previews");
}

/// An OU deleted in the directory leaves the planner's query index at the next incremental
/// run: a newcomer whose department names it gets an evaluation error, not an order into an
/// OU that no longer exists.
#[tokio::test]
async fn an_ou_deleted_in_the_directory_is_forgotten_by_the_next_incremental_run() {
    let mut w = world(4);
    let cancel = CancellationToken::new();
    let temp = demo::ou_dn("Temp");
    w.system.ensure_container(&temp).unwrap();
    w.job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    w.system.remove(&temp).unwrap();
    w.clock.advance(TimeDelta::minutes(5));
    w.job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    let newcomer = demo::employee(900, "Tess", "Temp", "Temp", "Specialist", now());
    let newcomer_id = newcomer.id.clone();
    w.job.planner_mut().upsert_owner(newcomer);
    w.clock.advance(TimeDelta::minutes(5));
    let r = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(
        r.orders.iter().all(|o| o.owner_id() != Some(&newcomer_id)),
        "no order into the deleted OU: {:?}",
        r.orders
    );
    assert!(
        r.evaluation_errors
            .iter()
            .any(|e| e.to_string().contains("Temp")),
        "the newcomer's query finds no OU: {:?}",
        r.evaluation_errors
    );
}

#[tokio::test]
async fn an_order_whose_outcome_was_lost_is_sent_again_once_and_verified() {
    use autoprov_orchestrator::store::{OrderRecord, OrderUpdate};
    let mut w = world(3);
    let sim = w
        .job
        .run_complete(JobOptions::simulation(), &CancellationToken::new())
        .await
        .unwrap();
    let order = sim
        .orders
        .iter()
        .find(|o| o.change_type == ChangeType::Added)
        .unwrap()
        .clone();
    // A previous process recorded the attempt, the directory applied it, and the process
    // died before recording the outcome.
    w.system.fulfill(&order).await.unwrap();
    w.store
        .insert_orders(&[OrderRecord::pending(
            order.clone(),
            autoprov_core::ConnectionMode::Automated,
            now(),
        )])
        .await
        .unwrap();
    w.store
        .update_order(&order.order_id, 1, OrderUpdate::at(now()).attempt_started())
        .await
        .unwrap();
    let report = w
        .job
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.resumed.executed, vec![order.order_id.clone()]);
    assert!(
        !report.orders.iter().any(|o| o.order_id == order.order_id),
        "the applied change is not planned again"
    );
    assert!(
        w.system.repeated_effects().is_empty(),
        "{:?}",
        w.system.repeated_effects()
    );
    let rec = w.store.order(&order.order_id).await.unwrap().unwrap();
    assert_eq!(rec.dispatch.total_attempts, 2);
    w.job
        .run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let rec = w.store.order(&order.order_id).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Verified);
}
