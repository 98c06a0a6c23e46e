//! Behaviours the reference system documents, through the job: an order still waiting when
//! its assignment's period passes becomes Inactive in the store; verification does not
//! compare values written but not mapped back (`IsMapped = false`).

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

#[tokio::test]
async fn verification_does_not_compare_values_written_but_not_mapped_back() {
    use autoprov_core::{
        ChangeType, Changes, ProvisioningOrder, Resource, ResourceType, ResourceTypeRef,
    };
    use autoprov_orchestrator::clock::ManualClock as Clock;
    use autoprov_orchestrator::events::NoEvents;
    use autoprov_orchestrator::store::OrderRecord;
    use autoprov_orchestrator::verify::verify;
    use autoprov_planner::{Criteria, PlannerConfig, RoleModel, ScalarRule, TypeRule};
    use std::collections::{BTreeMap, BTreeSet};

    // The role model writes `comment` on creation but the export never reads it back.
    let rt = ResourceType::new("acc", "Account", "User", "Account", "conn");
    let model = RoleModel::new()
        .type_rule(TypeRule::new("acc", Criteria::always()))
        .scalar_rule(ScalarRule::from_owner("acc", "displayName", "name"))
        .scalar_rule(ScalarRule::literal("acc", "comment", "created by autoprov").write_only());
    let planner =
        autoprov_orchestrator::Planner::new(PlannerConfig::new(vec![rt.clone()], model)).unwrap();
    let unmapped = planner.unmapped_properties();
    assert_eq!(
        unmapped,
        BTreeSet::from([("acc".into(), "comment".to_owned())])
    );

    let mut changes = Changes::default();
    changes
        .set("displayName", "Ada")
        .set("comment", "created by autoprov");
    let order = ProvisioningOrder {
        order_id: "u1/acc/Modified/1".into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Modified,
        workflow_instance_id: None,
        owner: None,
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("conn".into()),
        changes,
        resource: Some(Resource::new("CN=ada")),
        depends_on: Vec::new(),
        not_before: None,
        arguments: Default::default(),
    };
    for (skip, verified) in [(BTreeSet::new(), false), (unmapped, true)] {
        let store = MemoryStore::new();
        store
            .insert_orders(&[OrderRecord::new(
                order.clone(),
                Default::default(),
                ProvisioningState::Executed,
                now(),
            )])
            .await
            .unwrap();
        store
            .upsert_resources(
                &"conn".into(),
                vec![Resource::new("CN=ada").with("displayName", "Ada")],
            )
            .await
            .unwrap();
        let report = verify(
            &store,
            &Clock::new(now()),
            &NoEvents,
            &BTreeMap::new(),
            None,
            &skip,
        )
        .await
        .unwrap();
        assert_eq!(report.verified.len() == 1, verified, "{report:?}");
        if !verified {
            assert!(report.waiting[0].1.contains("comment"), "{report:?}");
        }
    }
}
