//! Behaviours the reference system documents, through the job: an order still waiting when
//! its assignment's period passes becomes Inactive in the store.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{ProvisioningState, ScalarValue};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::store::{MemoryStore, Store};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

#[tokio::test]
async fn an_order_waiting_in_review_becomes_inactive_when_the_period_passes() {
    let mut config = demo::planner_config();
    for rt in &mut config.resource_types {
        if rt.id.as_str() == ACCOUNT {
            rt.require_provisioning_review = true;
        }
    }
    let mut planner = autoprov_orchestrator::Planner::new(config).unwrap();
    // A temp who arrived last week and leaves tomorrow; nobody reviews the creation in time.
    let temp = demo::employee(
        90,
        "Tom",
        "Temp",
        "Sales",
        "Specialist",
        now() - TimeDelta::days(7),
    )
    .with("departure", ScalarValue::from(now() + TimeDelta::days(1)));
    let stays = demo::employee(
        91,
        "Sue",
        "Stays",
        "Sales",
        "Specialist",
        now() - TimeDelta::days(7),
    );
    planner.upsert_owner(temp.clone());
    planner.upsert_owner(stays.clone());
    let store = Arc::new(MemoryStore::new());
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let clock = Arc::new(ManualClock::new(now()));
    let mut job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(system.clone()))
        .clock(clock.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    let run = async |job: &mut ProvisioningJob| {
        job.run_complete(JobOptions::default(), &CancellationToken::new())
            .await
            .unwrap()
    };
    let first = run(&mut job).await;
    let order_of = |owner: &str| {
        first
            .orders
            .iter()
            .find(|o| {
                o.owner_id().map(|o| o.as_str()) == Some(owner)
                    && o.resource_type.id.as_str() == ACCOUNT
            })
            .unwrap()
            .order_id
            .clone()
    };
    let (temp_order, stays_order) = (order_of(temp.id.as_str()), order_of(stays.id.as_str()));
    for o in [&temp_order, &stays_order] {
        let rec = store.order(o).await.unwrap().unwrap();
        assert_eq!(rec.state, ProvisioningState::AwaitingApproval);
    }

    clock.advance(TimeDelta::days(2));
    let second = run(&mut job).await;
    assert_eq!(second.inactivated, vec![temp_order.clone()]);
    let rec = store.order(&temp_order).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Inactive);
    let rec = store.order(&stays_order).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::AwaitingApproval);
    assert!(system.snapshot().iter().all(|r| {
        r.get("sAMAccountName")
            .and_then(|v| v.as_scalar())
            .is_none_or(|v| v.to_string() != temp.identifier)
    }));

    // Nothing more happens to it on the next run.
    clock.advance(TimeDelta::minutes(10));
    let third = run(&mut job).await;
    assert!(third.inactivated.is_empty());
    assert!(third.orders.iter().all(|o| o.order_id != temp_order));
}
