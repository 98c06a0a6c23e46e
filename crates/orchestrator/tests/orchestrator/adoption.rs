//! Safe adoption (issue 13 item 6): an Added order that finds an existing account autoprov did
//! not create adopts it only after review when its resource type asks for it (`ReviewAdoption`,
//! on by default for `Privileged` types); nothing is written before; approved, it is adopted
//! and converged; declined, the account is left alone; other types adopt as before.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{ChangeType, PropertyValue, ProvisioningState, Resource};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::plan::Planner;
use autoprov_orchestrator::store::{AdoptionReview, MemoryStore, Store};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
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
}

/// The demo organization of 12 people; `privileged` marks the nominative account type
/// privileged, `review` sets its `ReviewAdoption` explicitly.
fn world(privileged: bool, review: Option<bool>) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let mut config = demo::planner_config();
    for rt in &mut config.resource_types {
        if rt.id.as_str() == ACCOUNT {
            rt.privileged = privileged;
            rt.review_adoption = review;
        }
    }
    let mut planner = Planner::new(config).unwrap();
    for p in demo::people(12, now()) {
        planner.upsert_owner(p);
    }
    let job = ProvisioningJob::builder(planner, store.clone() as Arc<dyn Store>)
        .connector(Arc::new(system.clone()))
        .clock(clock.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    World {
        system,
        job,
        store,
        clock,
    }
}

fn groups(r: &Resource) -> usize {
    r.get("memberOf")
        .and_then(PropertyValue::as_references)
        .map_or(0, |g| g.len())
}

/// Accounts made by hand before autoprov, for the first `n` nominative accounts a simulation
/// plans: the same DN and login, disabled, no groups, a stale `title`. Returns their DNs and
/// owners.
async fn accounts_made_by_hand(w: &mut World, n: usize) -> Vec<(String, String)> {
    let cancel = CancellationToken::new();
    let sim = w
        .job
        .run_incremental(JobOptions::simulation(), &cancel)
        .await
        .unwrap();
    let mut made = Vec::new();
    for o in sim
        .orders
        .iter()
        .filter(|o| o.change_type == ChangeType::Added && o.resource_type.id.as_str() == ACCOUNT)
        .take(n)
    {
        let mut c = o.changes.clone();
        c.navigations.clear();
        c.properties.remove("password");
        c.set("enabled", false).set("title", "made by hand");
        let done = w
            .system
            .seed("user", &c)
            .expect("seeding a hand-made account");
        let owner = o.owner_id().expect("an owner").to_string();
        made.push((done.resource_id.to_string(), owner));
    }
    assert_eq!(made.len(), n);
    made
}

/// The orders of the nominative account type in `ids` (the demo's admin accounts always wait
/// in provisioning review).
fn nominative(ids: &[autoprov_core::OrderId]) -> Vec<String> {
    ids.iter()
        .map(|id| id.to_string())
        .filter(|id| id.contains("/AD_Entry_NominativeUser/"))
        .collect()
}

/// The order waiting in review whose target is `dn`.
async fn waiting_order_for(store: &MemoryStore, dn: &str) -> String {
    store
        .orders_in(&[ProvisioningState::AwaitingApproval])
        .await
        .unwrap()
        .into_iter()
        .find(|r| {
            r.order
                .resource
                .as_ref()
                .is_some_and(|t| t.id.as_str() == dn)
        })
        .map(|r| r.id().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_privileged_type_adopts_an_account_it_did_not_create_only_after_review() {
    let mut w = world(true, None);
    let cancel = CancellationToken::new();
    let made = accounts_made_by_hand(&mut w, 2).await;
    let before: Vec<Resource> = made
        .iter()
        .map(|(dn, _)| w.system.get(dn).expect("seeded"))
        .collect();
    // Run 1: the export finds the two accounts and correlates them with their owners; the
    // orders that would adopt them (Modified) wait for review; every other account is created.
    w.clock.advance(TimeDelta::minutes(5));
    let r1 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(r1.dispatch.errored.is_empty(), "{:?}", r1.dispatch.errored);
    assert_eq!(r1.dispatch.executed.len(), 10, "{:?}", r1.dispatch);
    let mut reviews = Vec::new();
    for ((dn, _), was) in made.iter().zip(&before) {
        let order = waiting_order_for(&w.store, dn).await;
        assert!(!order.is_empty(), "an order adopting {dn} waits for review");
        assert!(order.contains("/Modified/"), "{order}");
        assert!(
            r1.awaiting_review.iter().any(|id| id.as_str() == order),
            "the job lists {order} for review: {:?}",
            r1.awaiting_review
        );
        assert_eq!(&w.system.get(dn).unwrap(), was, "nothing written to {dn}");
        reviews.push(order);
    }

    // Run 2 without a decision: nothing is written.
    w.clock.advance(TimeDelta::minutes(5));
    let r2 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(r2.dispatch.executed.is_empty(), "{:?}", r2.dispatch);
    for ((dn, _), was) in made.iter().zip(&before) {
        assert_eq!(&w.system.get(dn).unwrap(), was, "nothing written to {dn}");
    }

    // Approve the first, decline the second.
    assert_eq!(
        w.job
            .approve(&reviews[0].as_str().into(), "reviewer")
            .await
            .unwrap(),
        ProvisioningState::Pending
    );
    assert_eq!(
        w.job
            .decline(&reviews[1].as_str().into(), "reviewer")
            .await
            .unwrap(),
        ProvisioningState::Inactive
    );
    w.clock.advance(TimeDelta::minutes(5));
    let r3 = w
        .job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(r3.dispatch.errored.is_empty(), "{:?}", r3.dispatch.errored);
    let sent: Vec<String> = r3
        .dispatch
        .executed
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(sent, vec![reviews[0].clone()], "{:?}", r3.dispatch);
    let adopted = w.system.get(&made[0].0).unwrap();
    assert_eq!(adopted.stable_id, before[0].stable_id, "the same account");
    assert!(groups(&adopted) > 0, "converged: its groups are given");
    assert_eq!(
        &w.system.get(&made[1].0).unwrap(),
        &before[1],
        "a declined adoption leaves the account alone"
    );

    // Later runs: the adopted account is verified and ours; the declined one is not asked
    // again and stays as it was.
    for _ in 0..2 {
        w.clock.advance(TimeDelta::minutes(5));
        let r = w
            .job
            .run_incremental(JobOptions::default(), &cancel)
            .await
            .unwrap();
        assert!(r.dispatch.executed.is_empty(), "{:?}", r.dispatch);
        assert!(
            nominative(&r.awaiting_review).is_empty(),
            "{:?}",
            r.awaiting_review
        );
    }
    assert_eq!(&w.system.get(&made[1].0).unwrap(), &before[1]);
}

/// The Added path: an account made after the export (so the plan creates it) is found by the
/// connector at fulfilment; the dispatcher asks for review, the order waits, nothing is written;
/// approved (also read back after the store is reopened: the approval is in the record), the
/// next dispatch adopts it.
#[tokio::test]
async fn an_added_order_that_finds_an_account_waits_for_review_then_adopts() {
    use autoprov_orchestrator::clock::SystemClock;
    use autoprov_orchestrator::dispatch::{DispatchPolicy, Dispatcher};
    use autoprov_orchestrator::store::{ReviewDecision, ReviewVerdict};
    let mut w = world(true, None);
    let cancel = CancellationToken::new();
    let sim = w
        .job
        .run_incremental(JobOptions::simulation(), &cancel)
        .await
        .unwrap();
    let added: Vec<_> = sim
        .orders
        .iter()
        .filter(|o| o.change_type == ChangeType::Added && o.resource_type.id.as_str() == ACCOUNT)
        .take(2)
        .cloned()
        .collect();
    let mut c = added[0].changes.clone();
    c.navigations.clear();
    c.properties.remove("password");
    c.set("title", "made by hand");
    let found = w.system.seed("user", &c).unwrap();
    let was = w.system.get(found.resource_id.as_str()).unwrap();
    let config = demo::planner_config();
    let mut rts: Vec<_> = config.resource_types.clone();
    for rt in &mut rts {
        rt.privileged = rt.id.as_str() == ACCOUNT;
    }
    let dispatcher = Dispatcher::new(
        [Arc::new(w.system.clone()) as Arc<dyn autoprov_connector::Connector>],
        DispatchPolicy::default(),
        w.store.clone() as Arc<dyn Store>,
        Arc::new(SystemClock),
    )
    .with_resource_types(&rts);
    let r = dispatcher.dispatch(added.clone(), &cancel).await.unwrap();
    assert_eq!(r.executed, vec![added[1].order_id.clone()], "{r:?}");
    assert_eq!(r.awaiting_review.len(), 1, "{r:?}");
    let (id, msg) = &r.awaiting_review[0];
    assert_eq!(id, &added[0].order_id);
    assert!(msg.contains(found.resource_id.as_str()), "{msg}");
    assert_eq!(w.system.get(found.resource_id.as_str()).unwrap(), was);
    let record = w.store.order(id).await.unwrap().unwrap();
    assert_eq!(record.state, ProvisioningState::AwaitingApproval);
    assert_eq!(record.dispatch.adoption, AdoptionReview::Waiting);

    // Sent again before a decision: refused by the store as not Pending, nothing written.
    let again = dispatcher
        .dispatch(vec![added[0].clone()], &cancel)
        .await
        .unwrap();
    assert!(again.executed.is_empty(), "{again:?}");
    assert_eq!(w.system.get(found.resource_id.as_str()).unwrap(), was);

    let approved = w
        .store
        .decide_review(
            record.version,
            ReviewDecision::new(id.clone(), ReviewVerdict::Approved, "reviewer", now()),
        )
        .await
        .unwrap();
    assert_eq!(approved.dispatch.adoption, AdoptionReview::Approved);
    let r = dispatcher
        .dispatch(vec![added[0].clone()], &cancel)
        .await
        .unwrap();
    assert_eq!(r.executed, vec![id.clone()], "{r:?}");
    let adopted = w.system.get(found.resource_id.as_str()).unwrap();
    assert_eq!(adopted.stable_id, was.stable_id);
    assert_ne!(adopted, was, "converged");
    assert!(groups(&adopted) > 0);
}

#[tokio::test]
async fn other_types_adopt_as_before_and_review_can_be_set_either_way() {
    // Not privileged, no setting: adopted at once.
    let mut w = world(false, None);
    let made = accounts_made_by_hand(&mut w, 1).await;
    let r = w
        .job
        .run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        nominative(&r.awaiting_review).is_empty(),
        "{:?}",
        r.awaiting_review
    );
    assert!(
        r.dispatch
            .executed
            .iter()
            .any(|id| id.as_str().starts_with(&format!("{}/", made[0].1))),
        "{:?}",
        r.dispatch
    );

    // Not privileged, ReviewAdoption on: reviewed.
    let mut w = world(false, Some(true));
    let made = accounts_made_by_hand(&mut w, 1).await;
    let r = w
        .job
        .run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let waiting = nominative(&r.awaiting_review);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert!(waiting[0].starts_with(&format!("{}/", made[0].1)));

    // Privileged, ReviewAdoption off: adopted at once.
    let mut w = world(true, Some(false));
    let made = accounts_made_by_hand(&mut w, 1).await;
    let r = w
        .job
        .run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        nominative(&r.awaiting_review).is_empty(),
        "{:?}",
        r.awaiting_review
    );
    assert!(
        r.dispatch
            .executed
            .iter()
            .any(|id| id.as_str().starts_with(&format!("{}/", made[0].1)))
    );
}
