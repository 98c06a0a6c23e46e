//! The synthetic organization agrees with its own role model: no drift ⇒ no order; each
//! drifted identity ⇒ exactly one order of the expected kind.

use autoprov_core::ChangeType;
use autoprov_planner::synthetic::{Drift, SyntheticOrg};
use autoprov_planner::{PlanOptions, simulation};

#[test]
fn no_drift_means_no_order() {
    let mut org = SyntheticOrg::new(500);
    org.drift_percent = 0;
    let mut planner = org.planner();
    let plan = planner.plan_full(
        org.now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    assert!(plan.has_no_orders(), "{}", simulation::render(&plan));
    assert!(plan.owners.is_empty());
}

#[test]
fn each_drift_gives_one_order_of_its_kind() {
    let mut org = SyntheticOrg::new(2_000);
    org.drift_percent = 20;
    org.orphans = 3;
    let mut planner = org.planner();
    let plan = planner.plan_full(
        org.now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let mut expected = 0;
    for i in 0..org.identities {
        let drift = org.drift(i);
        let fragment = plan.owners.iter().find(|o| o.owner == org.owner_id(i));
        if drift == Drift::None {
            assert!(fragment.is_none(), "identity {i}: {fragment:?}");
            continue;
        }
        expected += 1;
        let fragment = fragment.unwrap_or_else(|| panic!("identity {i} drifted ({drift:?})"));
        assert_eq!(fragment.items.len(), 1);
        let order = fragment.items[0].order.as_ref().unwrap();
        match drift {
            Drift::Missing => {
                assert_eq!(order.change_type, ChangeType::Added);
                assert_eq!(order.changes.navigations["memberOf"].add.len(), 10);
                assert!(order.changes.scalar("userPassword").unwrap().is_secret());
                assert!(order.changes.reference("parentdn").is_some());
            }
            Drift::Title => {
                assert_eq!(order.change_type, ChangeType::Modified);
                assert_eq!(order.changes.properties.len(), 1, "{:?}", order.changes);
                assert!(order.changes.scalar("title").is_some());
            }
            Drift::Membership => {
                let delta = &order.changes.navigations["memberOf"];
                assert_eq!((delta.add.len(), delta.remove.len()), (1, 1));
                assert!(order.changes.properties.is_empty());
            }
            Drift::MailAndCase => {
                // displayName differs only in case and is compared ignoring case.
                assert_eq!(
                    order.changes.properties.keys().collect::<Vec<_>>(),
                    ["mail"]
                );
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(plan.orders().count(), expected);
    // Orphans are kept (RemoveOrphans is off by default) and reported.
    assert_eq!(plan.orphans.len(), 3);
    assert!(plan.orphans.iter().all(|o| o.order.is_none()));
}

/// A full re-plan keeps the installed fragment of an owner whose plan did not change (the same
/// allocation, not a second copy) and replaces the fragment of one that changed; the plan is
/// the one a simulation computes. (That the plans are byte-identical to those of the planner
/// before it kept fragments was checked with `plan_synthetic`'s `PLAN_DIGEST=1` at 1, 2 and 5
/// plans of 100,000 identities.)
#[test]
fn a_full_re_plan_keeps_unchanged_fragments_and_replaces_changed_ones() {
    let mut org = SyntheticOrg::new(2_000);
    org.drift_percent = 20;
    let orders = autoprov_planner::OrderStates::new();
    let now = org.now();
    let mut planner = org.planner();
    // The first plan establishes values, which the second one classifies by: from the second
    // on, an unchanged owner plans the same.
    drop(planner.plan_full(now, PlanOptions::default(), &orders));
    let first = planner.plan_full(now, PlanOptions::default(), &orders);
    assert!(first.owners.len() > 100, "{} fragments", first.owners.len());
    let kept = first.owners[0].owner.clone();
    let changed = first.owners[1].owner.clone();
    let kept_before: *const _ = planner.owner_plan(&kept).unwrap();
    let changed_before = planner.owner_plan(&changed).unwrap().clone();
    drop(first);

    // One owner changes title: its plan changes, the others' do not.
    let i = (0..org.identities)
        .find(|i| org.owner_id(*i) == changed)
        .unwrap();
    planner.upsert_owner(org.owner(i).with("title", "T29-new"));
    let simulated = planner.simulate(now, PlanOptions::default(), &orders);
    let second = planner.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(simulated.to_json(), second.to_json());
    assert!(
        std::ptr::eq(kept_before, planner.owner_plan(&kept).unwrap()),
        "the unchanged fragment is the same allocation"
    );
    let changed_after = planner.owner_plan(&changed).unwrap();
    assert_ne!(
        &changed_before, changed_after,
        "the changed owner's plan changed"
    );
    assert!(second.owners.iter().any(|o| o.owner == kept));
}

/// Until its first plan a planner files no dirty owner or target one by one (a first load of
/// a million identities did it twice per identity); a first incremental plan then takes every
/// owner and every target, and leaves the planner as a full plan would.
#[test]
fn a_first_incremental_plan_after_a_load_is_the_full_plan() {
    let mut org = SyntheticOrg::new(2_000);
    org.drift_percent = 20;
    org.orphans = 3;
    let orders = autoprov_planner::OrderStates::new();
    let now = org.now();
    let account = autoprov_planner::synthetic::ACCOUNT_TYPE.into();
    let changes = |planner: &mut autoprov_planner::Planner| {
        // Changes before the first plan: an owner leaves, one changes, a target goes.
        assert!(planner.remove_owner(&org.owner_id(7)).is_some());
        planner.upsert_owner(org.owner(8).with("title", "T29-new"));
        let gone = org
            .identities()
            .filter_map(|(_, target)| target)
            .nth(9)
            .expect("ten accounts")
            .id;
        assert!(planner.remove_target(&account, &gone).unwrap());
    };
    let mut full = org.planner();
    changes(&mut full);
    let expected = full.plan_full(now, PlanOptions::default(), &orders);

    let mut incremental = org.planner();
    changes(&mut incremental);
    assert_eq!(
        incremental.dirty_count(),
        org.identities - 1,
        "every owner is dirty"
    );
    let delta = incremental.plan_incremental(now, PlanOptions::default(), &orders);
    assert_eq!(
        delta.owners.len(),
        org.identities - 1,
        "every owner re-planned"
    );
    assert!(
        delta.orphans.iter().filter(|o| o.2.is_some()).count() >= 3,
        "the orphans were checked: {:?}",
        delta.orphans.len()
    );
    assert_eq!(incremental.dirty_count(), 0);
    assert_eq!(
        incremental.current_plan(PlanOptions::default()).to_json(),
        expected.to_json()
    );
    assert!(!expected.has_no_orders());

    // From then on, changes are filed one by one.
    incremental.upsert_owner(org.owner(10).with("title", "T28-new"));
    assert_eq!(incremental.dirty_count(), 1);
    let delta = incremental.plan_incremental(now, PlanOptions::default(), &orders);
    assert_eq!(delta.owners.len(), 1);
}

/// A full plan plans and installs owners a chunk at a time (`set_full_plan_chunk`): over
/// several chunks, and with changed owners on both sides of a chunk's edge, the installed plan
/// is the one a simulation (which plans everyone at once) computes, and a re-plan keeps every
/// unchanged fragment.
#[test]
fn a_full_plan_over_several_chunks_is_the_plan_computed_at_once() {
    let mut org = SyntheticOrg::new(3_500);
    org.drift_percent = 20;
    org.orphans = 2;
    let orders = autoprov_planner::OrderStates::new();
    let now = org.now();
    let mut planner = org.planner();
    planner.set_full_plan_chunk(1_000);
    let simulated = planner.simulate(now, PlanOptions::default(), &orders);
    let first = planner.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(simulated.to_json(), first.to_json());
    drop((simulated, first));

    // Owners in owner order around the first chunk's last owner and the second's first.
    for i in [0, 999, 1_000, 1_001, 2_000, 3_499] {
        planner.upsert_owner(org.owner(i).with("title", "T29-new"));
    }
    let simulated = planner.simulate(now, PlanOptions::default(), &orders);
    let second = planner.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(simulated.to_json(), second.to_json());
    for i in [999, 1_000, 2_000] {
        let plan = planner
            .owner_plan(&org.owner_id(i))
            .expect("a changed title changes the owner's groups");
        assert!(
            plan.items.iter().any(|item| item.order.is_some()),
            "owner {i} has an order"
        );
    }
    // The second plan established the changed owners' new values: the third classifies by
    // them, and still plans as a simulation does.
    let simulated = planner.simulate(now, PlanOptions::default(), &orders);
    let third = planner.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(simulated.to_json(), third.to_json());
}

/// `Planner::reserve` is a hint: a planner that reserved room for fewer or for more owners and
/// targets than it is loaded with, or none, plans the same; so does one that reserves again
/// after its first plan, when it keeps its dirty owners.
#[test]
fn a_reservation_of_any_size_plans_as_none() {
    let mut org = SyntheticOrg::new(600);
    org.drift_percent = 20;
    org.orphans = 2;
    let orders = autoprov_planner::OrderStates::new();
    let now = org.now();
    let rt = autoprov_core::ResourceTypeId::new(autoprov_planner::synthetic::ACCOUNT_TYPE);
    let load = |reserve: Option<(usize, usize)>| {
        let mut planner =
            autoprov_planner::Planner::new(org.config()).expect("the configuration is valid");
        if let Some((owners, targets)) = reserve {
            planner.reserve(owners, targets);
        }
        for ou in org.ous() {
            planner.upsert_lookup(autoprov_planner::synthetic::OU_TYPE, ou);
        }
        for (owner, target) in org.identities() {
            planner.upsert_owner(owner);
            if let Some(target) = target {
                planner
                    .upsert_target(&rt, &target)
                    .expect("a configured type");
            }
        }
        for k in 0..org.orphans {
            planner
                .upsert_target(&rt, &org.orphan_target(k))
                .expect("a configured type");
        }
        planner
    };
    let expected = load(None)
        .plan_full(now, PlanOptions::default(), &orders)
        .to_json();
    assert_eq!(
        expected,
        org.planner()
            .plan_full(now, PlanOptions::default(), &orders)
            .to_json(),
        "the synthetic load reserves"
    );
    for reserve in [(0, 0), (10, 3), (600, 602), (100_000, 100_000)] {
        let mut planner = load(Some(reserve));
        let plan = planner.plan_full(now, PlanOptions::default(), &orders);
        assert_eq!(plan.to_json(), expected, "reserve {reserve:?}");
        // Reserving after a plan, then changing an owner: the same incremental plan.
        let mut none = load(None);
        let _ = none.plan_full(now, PlanOptions::default(), &orders);
        planner.reserve(reserve.0, reserve.1);
        for p in [&mut none, &mut planner] {
            p.upsert_owner(org.owner(7).with("title", "T29-new"));
        }
        let a = none.plan_incremental(now, PlanOptions::default(), &orders);
        let b = planner.plan_incremental(now, PlanOptions::default(), &orders);
        assert_eq!(a.owners.len(), 1, "reserve {reserve:?}");
        assert_eq!(
            format!("{:?}", a.owners),
            format!("{:?}", b.owners),
            "reserve {reserve:?}"
        );
    }
}

/// The streaming load (`SyntheticOrg::load_streaming_with`: one owner and one resource
/// refilled in place, handed over by reference to `upsert_owner_ref` and `upsert_target`)
/// hands over exactly the organization's owners and targets, and plans as the load by value;
/// so does replacing an owner by reference. 1,500 identities: the string pool judges a
/// property's sharing after 1,024 values, within the load.
#[test]
fn a_streaming_load_by_reference_plans_as_the_load_by_value() {
    let mut org = SyntheticOrg::new(1_500);
    org.drift_percent = 20;
    org.orphans = 2;
    let orders = autoprov_planner::OrderStates::new();
    let now = org.now();
    let rt = autoprov_core::ResourceTypeId::new(autoprov_planner::synthetic::ACCOUNT_TYPE);
    let mut by_value = org.planner();
    let mut by_ref =
        autoprov_planner::Planner::new(org.config()).expect("the configuration is valid");
    let mut owners = Vec::new();
    let mut targets = Vec::new();
    org.load_streaming_with(
        &mut by_ref,
        |planner, owner| {
            owners.push(owner.clone());
            planner.upsert_owner_ref(owner);
        },
        |planner, target| {
            targets.push(target.clone());
            planner
                .upsert_target(&rt, target)
                .expect("a configured type");
        },
    );
    let (expected_owners, expected_targets): (Vec<_>, Vec<_>) = org.identities().unzip();
    assert_eq!(owners, expected_owners);
    assert_eq!(
        targets,
        expected_targets.into_iter().flatten().collect::<Vec<_>>()
    );
    let a = by_value.plan_full(now, PlanOptions::default(), &orders);
    let b = by_ref.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(a.to_json(), b.to_json());
    assert!(
        a.orders().count() > 100,
        "drift gives orders: {}",
        a.orders().count()
    );
    drop((a, b));

    // A replaced owner, by value and by reference: the same incremental plan.
    let changed = org.owner(700).with("title", "T29-new").with("note", 3i64);
    by_value.upsert_owner(changed.clone());
    by_ref.upsert_owner_ref(&changed);
    let a = by_value.plan_incremental(now, PlanOptions::default(), &orders);
    let b = by_ref.plan_incremental(now, PlanOptions::default(), &orders);
    assert_eq!(a.owners.len(), 1);
    assert_eq!(a.owners, b.owners);
    let a = by_value.plan_full(now, PlanOptions::default(), &orders);
    let b = by_ref.plan_full(now, PlanOptions::default(), &orders);
    assert_eq!(a.to_json(), b.to_json());
}
