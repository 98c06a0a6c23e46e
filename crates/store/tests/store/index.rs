//! `MemoryStore`'s by-state index: whatever sequence of inserts and state-machine events
//! (legal or refused), `orders_in`, `order_counts` and `unfinished_orders` agree with a scan
//! of every record.

use autoprov_core::{ConnectionMode, ProvisioningEvent as E, ProvisioningState};
use autoprov_store::testkit::{order, t0};
use autoprov_store::{MemoryStore, OrderRecord, OrderUpdate, Store, StoreError, StoreExt};
use futures::TryStreamExt as _;
use proptest::prelude::*;
use std::collections::BTreeMap;

const EVENTS: &[E] = &[
    E::DifferenceFound {
        review_required: false,
    },
    E::DifferenceFound {
        review_required: true,
    },
    E::ReviewApproved,
    E::ReviewDeclined,
    E::ConnectorSucceeded,
    E::ConnectorFailed,
    E::HandedToHuman,
    E::SynchronizationMatched,
    E::VerificationTimedOut,
    E::OperatorRetried,
    E::PeriodPassed,
];

#[derive(Clone, Debug)]
enum Op {
    Insert(usize, bool),
    Event(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..24, any::<bool>()).prop_map(|(i, review)| Op::Insert(i, review)),
        (0usize..24, 0..EVENTS.len()).prop_map(|(i, e)| Op::Event(i, e)),
    ]
}

async fn check(store: &MemoryStore) {
    let all: Vec<OrderRecord> = store.orders_stream(7).try_collect().await.unwrap();
    let mut counts: BTreeMap<ProvisioningState, u64> = BTreeMap::new();
    for r in &all {
        *counts.entry(r.state).or_default() += 1;
    }
    assert_eq!(store.order_counts().await.unwrap(), counts);
    let ids =
        |rs: Vec<OrderRecord>| -> Vec<String> { rs.iter().map(|r| r.id().to_string()).collect() };
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
            let store = MemoryStore::new();
            for op in ops {
                match op {
                    Op::Insert(i, review) => {
                        let state = if review { ProvisioningState::AwaitingApproval } else { ProvisioningState::Pending };
                        let r = OrderRecord::new(order(i), ConnectionMode::Automated, state, t0());
                        store.insert_orders(&[r]).await.unwrap();
                    }
                    Op::Event(i, e) => {
                        let Some(r) = store.order(&order(i).order_id).await.unwrap() else {
                            continue;
                        };
                        match store.update_order(r.id(), r.version, OrderUpdate::event(EVENTS[e], t0())).await {
                            Ok(next) => assert_eq!(Ok(next.state), r.state.apply(EVENTS[e], r.mode)),
                            Err(StoreError::IllegalTransition { .. }) => {
                                assert!(r.state.apply(EVENTS[e], r.mode).is_err());
                                assert_eq!(store.order(r.id()).await.unwrap(), Some(r));
                            }
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
                check(&store).await;
            }
        });
    }
}
