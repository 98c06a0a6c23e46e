//! What autoprov holds as its own survives a restart: a job built again on the same store (a
//! new process) still deprovisions a leaver's account and removes a mover's old groups, instead
//! of taking them for values that predate autoprov and keeping them for review.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{ChangeType, OwnerId, PropertyValue, Resource, ScalarValue};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::plan::Planner;
use autoprov_orchestrator::store::{MemoryStore, Store};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

/// A job over `system` and `store`, as a freshly started process builds it: the people loaded
/// into a new planner.
fn job(
    system: &InMemoryConnector,
    store: &Arc<MemoryStore>,
    clock: &Arc<ManualClock>,
    people: Vec<autoprov_core::Owner>,
) -> ProvisioningJob {
    let mut planner = Planner::new(demo::planner_config()).unwrap();
    for p in people {
        planner.upsert_owner(p);
    }
    ProvisioningJob::builder(planner, store.clone() as Arc<dyn Store>)
        .connector(Arc::new(system.clone()))
        .clock(clock.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build()
}

fn account(system: &InMemoryConnector, login: &str) -> Option<Resource> {
    system.snapshot().into_iter().find(|r| {
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

#[tokio::test]
async fn after_a_restart_a_leaver_is_deprovisioned_and_a_movers_old_groups_removed() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now()));
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let people = demo::people(12, now());
    let cancel = CancellationToken::new();

    // The first process: joiners created and verified.
    {
        let mut first = job(&system, &store, &clock, people.clone());
        for _ in 0..2 {
            clock.advance(TimeDelta::minutes(10));
            let r = first
                .run_complete(JobOptions::default(), &cancel)
                .await
                .unwrap();
            assert!(r.dispatch.errored.is_empty(), "{:?}", r.dispatch.errored);
        }
    }
    let mut stored = Vec::new();
    let mut after: Option<OwnerId> = None;
    loop {
        let page = store.owned_values_page(after.as_ref(), 5).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.owner.clone());
        stored.extend(page);
    }
    assert_eq!(stored.len(), 12, "every owner's values are kept");

    // A new process, the same store and directory: E0003 left yesterday, E0002 moved from
    // Finance to Sales.
    let leaver_login = people[3].identifier.clone();
    let mover_login = people[2].identifier.clone();
    let old_groups = groups_of(&account(&system, &mover_login).unwrap());
    assert!(
        old_groups.iter().any(|g| g.starts_with("CN=Finance,")),
        "{old_groups:?}"
    );
    let mut changed = people.clone();
    changed[3] = changed[3]
        .clone()
        .with("departure", ScalarValue::from(now() - TimeDelta::days(1)));
    changed[2] = changed[2].clone().with("department", "Sales");
    let mut second = job(&system, &store, &clock, changed);
    clock.advance(TimeDelta::minutes(10));
    let r = second
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert!(r.dispatch.errored.is_empty(), "{:?}", r.dispatch.errored);
    assert!(
        r.non_conforming.is_empty(),
        "nothing autoprov made is taken for a value that predates it: {:?}",
        r.non_conforming
    );
    assert!(
        r.orders.iter().any(|o| o.change_type == ChangeType::Deleted
            && o.owner_id().map(OwnerId::as_str) == Some("E0003")),
        "{:?}",
        r.orders
    );
    assert!(
        account(&system, &leaver_login).is_none(),
        "the leaver is deprovisioned"
    );
    let groups = groups_of(&account(&system, &mover_login).unwrap());
    assert!(
        groups.iter().any(|g| g.starts_with("CN=Sales,")),
        "{groups:?}"
    );
    assert!(
        !groups.iter().any(|g| g.starts_with("CN=Finance,")),
        "the mover's old group is removed: {groups:?}"
    );
}
