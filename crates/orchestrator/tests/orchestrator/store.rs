//! `MemoryStore`'s by-state index: whatever sequence of inserts and updates, `orders_in`,
//! `order_counts` and `unfinished_orders` agree with a scan of every record.

use autoprov_core::{
    ChangeType, Changes, ConnectionMode, Owner, ProvisioningOrder, ProvisioningState, ResourceType,
    ResourceTypeRef,
};
use autoprov_orchestrator::store::{MemoryStore, OrderRecord, Store};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn order(i: u8) -> ProvisioningOrder {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    ProvisioningOrder {
        order_id: format!("o-{i:03}").as_str().into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("owner-{i}"), format!("user{i}"))),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("conn".into()),
        changes: Changes::default(),
        resource: None,
        depends_on: vec![],
        not_before: None,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, usize),
    Progress(u8, usize),
    Replace(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = ProvisioningState::ALL.len();
    prop_oneof![
        (0u8..24, 0..n).prop_map(|(i, s)| Op::Insert(i, s)),
        (0u8..24, 0..n).prop_map(|(i, s)| Op::Progress(i, s)),
        (0u8..24, 0..n).prop_map(|(i, s)| Op::Replace(i, s)),
    ]
}

async fn check(store: &MemoryStore) {
    let all = store.orders().await.unwrap();
    let mut counts: BTreeMap<ProvisioningState, u64> = BTreeMap::new();
    for r in &all {
        *counts.entry(r.state).or_default() += 1;
    }
    assert_eq!(store.order_counts().await.unwrap(), counts);
    let ids = |rs: Vec<OrderRecord>| -> Vec<String> {
        rs.iter().map(|r| r.order.order_id.to_string()).collect()
    };
    for s in ProvisioningState::ALL {
        let scanned: Vec<OrderRecord> = all.iter().filter(|r| r.state == *s).cloned().collect();
        assert_eq!(ids(store.orders_in(&[*s]).await.unwrap()), ids(scanned));
    }
    let pair = [ProvisioningState::Executed, ProvisioningState::Transmitted];
    let scanned: Vec<OrderRecord> = all
        .iter()
        .filter(|r| pair.contains(&r.state))
        .cloned()
        .collect();
    assert_eq!(ids(store.orders_in(&pair).await.unwrap()), ids(scanned));
    assert_eq!(
        ids(store.unfinished_orders().await.unwrap()),
        ids(all
            .iter()
            .filter(|r| r.state == ProvisioningState::Pending)
            .cloned()
            .collect())
    );
}

proptest! {
    #[test]
    fn the_state_index_agrees_with_a_scan(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let store = MemoryStore::new();
            for op in ops {
                match op {
                    Op::Insert(i, s) => {
                        let mut r = OrderRecord::pending(order(i), ConnectionMode::Automated, now);
                        r.state = ProvisioningState::ALL[s];
                        store.insert_orders(&[r]).await.unwrap();
                    }
                    Op::Progress(i, s) | Op::Replace(i, s) => {
                        let Some(mut r) = store.order(&order(i).order_id).await.unwrap() else {
                            continue;
                        };
                        r.state = ProvisioningState::ALL[s];
                        if matches!(op, Op::Progress(..)) {
                            store.update_progress(&r).await.unwrap();
                        } else {
                            store.update_order(r).await.unwrap();
                        }
                    }
                }
                check(&store).await;
            }
        });
    }
}
