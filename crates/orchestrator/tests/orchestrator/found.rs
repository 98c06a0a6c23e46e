//! What predates autoprov (SPEC §10), end to end with the in-memory directory: a new
//! deployment on a directory that already holds accounts, hand-made memberships and drifted
//! values removes nothing no rule orders, lists each value; decisions (one, in bulk, a
//! baseline) are stored with who decided, survive a restart, and the next run applies exactly
//! the approved removals.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{
    ChangeType, Changes, FoundValue, FoundVerdict, PropertyValue, Resource, ScalarValue,
};
use autoprov_orchestrator::clock::{Clock, ManualClock};
use autoprov_orchestrator::demo::{self, ACCOUNT};
use autoprov_orchestrator::job::{JobOptions, JobReport, ProvisioningJob};
use autoprov_orchestrator::plan::{Disposition, FoundScope, NonConformingKind, Planner};
use autoprov_orchestrator::store::{AuditAction, MemoryStore, Store};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const PEOPLE: usize = 5;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

/// A job over `system` with a store of its own: a deployment of autoprov.
fn deployment(
    system: &InMemoryConnector,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
) -> ProvisioningJob {
    let mut planner = Planner::new(demo::planner_config()).unwrap();
    for p in demo::people(PEOPLE, t0()) {
        planner.upsert_owner(p);
    }
    ProvisioningJob::builder(planner, store)
        .connector(Arc::new(system.clone()))
        .clock(clock)
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
        .build()
}

async fn run(job: &mut ProvisioningJob, clock: &ManualClock) -> JobReport {
    clock.advance(TimeDelta::minutes(10));
    job.run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap()
}

fn by_login(system: &InMemoryConnector, login: &str) -> Resource {
    system
        .snapshot()
        .into_iter()
        .find(|r| {
            r.get("sAMAccountName").and_then(PropertyValue::as_scalar)
                == Some(&ScalarValue::from(login))
        })
        .unwrap()
}

fn has_group(r: &Resource, name: &str) -> bool {
    r.get("memberOf")
        .and_then(PropertyValue::as_references)
        .is_some_and(|s| s.contains(&demo::group(name)))
}

fn title(r: &Resource) -> Option<ScalarValue> {
    r.get("title").and_then(PropertyValue::as_scalar).cloned()
}

/// A directory that an earlier tool filled (here: another deployment, then forgotten), with
/// hand-made changes: VPN-Users given to two accounts by hand, one title edited by hand.
async fn existing_directory(clock: &Arc<ManualClock>) -> (InMemoryConnector, [String; 3]) {
    let earlier: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (system, mut job) = demo::build(
        demo::people(PEOPLE, t0()),
        earlier,
        clock.clone(),
        Arc::new(autoprov_orchestrator::events::NoEvents),
    )
    .unwrap();
    run(&mut job, clock).await;
    run(&mut job, clock).await;
    let logins: Vec<String> = demo::people(PEOPLE, t0())
        .into_iter()
        .map(|p| p.identifier)
        .collect();
    for login in &logins[..2] {
        let mut c = Changes::default();
        c.add_reference("memberOf", demo::group("VPN-Users"));
        system
            .modify(by_login(&system, login).id.as_str(), &c)
            .unwrap();
    }
    let mut c = Changes::default();
    c.set("title", "Hand-made title");
    system
        .modify(by_login(&system, &logins[2]).id.as_str(), &c)
        .unwrap();
    (
        system,
        [logins[0].clone(), logins[1].clone(), logins[2].clone()],
    )
}

#[tokio::test]
async fn a_new_deployment_removes_nothing_until_decided_then_exactly_the_approved_removals() {
    let clock = Arc::new(ManualClock::new(t0()));
    let (system, [a, b, c]) = existing_directory(&clock).await;
    let store = Arc::new(MemoryStore::new());
    let mut job = deployment(&system, store.clone(), clock.clone());

    // A simulation shows the values; nothing is written.
    let sim = job
        .run_complete(JobOptions::simulation(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sim.non_conforming.len(), 3, "{:?}", sim.non_conforming);

    // The first complete run removes nothing and lists each value for review.
    let first = run(&mut job, &clock).await;
    assert!(
        first
            .orders
            .iter()
            .all(|o| o.change_type != ChangeType::Deleted
                && o.changes.navigations.values().all(|n| n.remove.is_empty())
                && !o.changes.properties.contains_key("title")),
        "{:?}",
        first.orders
    );
    assert_eq!(first.non_conforming.len(), 3);
    assert!(
        first
            .non_conforming
            .iter()
            .all(|n| n.disposition == Disposition::AwaitingReview)
    );
    let memberships: Vec<_> = first
        .non_conforming
        .iter()
        .filter(|n| n.kind == NonConformingKind::ExtraValue)
        .collect();
    assert_eq!(memberships.len(), 2);
    let drifted = first
        .non_conforming
        .iter()
        .find(|n| matches!(n.kind, NonConformingKind::DifferentValue { .. }))
        .unwrap()
        .clone();
    assert_eq!(
        drifted.value,
        FoundValue::Scalar {
            property: "title".into(),
            value: "Hand-made title".into()
        }
    );
    assert!(has_group(&by_login(&system, &a), "VPN-Users"));
    assert_eq!(
        title(&by_login(&system, &c)),
        Some(ScalarValue::from("Hand-made title"))
    );

    // Decisions: the title is kept (one decision), VPN-Users removed in bulk (by group).
    let now = clock.now();
    job.decide_found(&[drifted.keep("carol", now)])
        .await
        .unwrap();
    let bulk = job
        .decide_found_in_bulk(
            &FoundScope::group(ACCOUNT, "memberOf", demo::group("VPN-Users")),
            FoundVerdict::Remove,
            "dave",
            Some("VPN access is requested, never given by hand"),
        )
        .await
        .unwrap();
    assert_eq!(bulk.len(), 2);
    let stored = store.found_decisions_page(None, 100).await.unwrap();
    assert_eq!(stored.len(), 3);
    let audit = store.audit_page(None, 1000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|(_, e)| e.actor == "dave" && e.action == AuditAction::Declined)
            .count(),
        2
    );
    assert!(
        audit
            .iter()
            .any(|(_, e)| e.actor == "carol" && e.action == AuditAction::Adopted)
    );

    // The next run applies exactly the approved removals.
    let second = run(&mut job, &clock).await;
    assert_eq!(second.dispatch.executed.len(), 2, "{:?}", second.orders);
    for o in &second.orders {
        assert_eq!(o.change_type, ChangeType::Modified);
        assert!(o.changes.properties.is_empty(), "{:?}", o.changes);
        assert_eq!(
            o.changes.navigations["memberOf"].remove,
            [demo::group("VPN-Users")].into_iter().collect()
        );
    }
    assert!(!has_group(&by_login(&system, &a), "VPN-Users"));
    assert!(!has_group(&by_login(&system, &b), "VPN-Users"));
    assert_eq!(
        title(&by_login(&system, &c)),
        Some(ScalarValue::from("Hand-made title"))
    );
    // The plan of that run listed them as being removed.
    assert_eq!(second.non_conforming.len(), 2);
    assert!(
        second
            .non_conforming
            .iter()
            .all(|n| n.disposition == Disposition::Removing)
    );

    // A restarted process reads the decisions back: the kept title stays kept.
    let mut restarted = deployment(&system, store.clone(), clock.clone());
    let third = run(&mut restarted, &clock).await;
    assert!(third.orders.is_empty(), "{:?}", third.orders);
    assert!(
        third.non_conforming.is_empty(),
        "{:?}",
        third.non_conforming
    );
}

#[tokio::test]
async fn a_baseline_keeps_everything_found_in_one_step_with_who_did_it() {
    let clock = Arc::new(ManualClock::new(t0()));
    let (system, [a, _, c]) = existing_directory(&clock).await;
    let store = Arc::new(MemoryStore::new());
    let mut job = deployment(&system, store.clone(), clock.clone());
    let kept = job.baseline(None, "go-live-team").await.unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|d| d.verdict == FoundVerdict::Keep
        && d.by == "go-live-team"
        && d.reason.as_deref() == Some("baseline of every resource type")));
    assert_eq!(
        store.found_decisions_page(None, 100).await.unwrap().len(),
        3
    );
    let after = run(&mut job, &clock).await;
    assert!(after.orders.is_empty(), "{:?}", after.orders);
    assert!(after.non_conforming.is_empty());
    assert!(has_group(&by_login(&system, &a), "VPN-Users"));
    assert_eq!(
        title(&by_login(&system, &c)),
        Some(ScalarValue::from("Hand-made title"))
    );
}

#[tokio::test]
async fn a_decision_the_planner_refuses_records_nothing() {
    let clock = Arc::new(ManualClock::new(t0()));
    let system = InMemoryConnector::new(demo::CONNECTION);
    let store = Arc::new(MemoryStore::new());
    let mut job = deployment(&system, store.clone(), clock.clone());
    let owner = demo::people(1, t0())[0].id.clone();
    let good = autoprov_core::FoundDecision::new(
        owner.clone(),
        ACCOUNT,
        FoundValue::Account,
        FoundVerdict::Keep,
        "eve",
        clock.now(),
    );
    let bad = autoprov_core::FoundDecision::new(
        owner,
        ACCOUNT,
        FoundValue::Scalar {
            property: "nTSecurityDescriptor".into(),
            value: "x".into(),
        },
        FoundVerdict::Remove,
        "eve",
        clock.now(),
    );
    let err = job.decide_found(&[good, bad]).await.unwrap_err();
    assert!(err.to_string().contains("nTSecurityDescriptor"), "{err}");
    assert!(
        store
            .found_decisions_page(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.audit_page(None, 10).await.unwrap().is_empty());
}
