//! Order identity (autoprov-store README, "Order identity"): an order id names the content of
//! one change — owner, resource type, change type and a digest of the changes and the target.
//! Stored ids must never change meaning between versions, so the id function is pinned here
//! with known outputs. If this test fails, stored orders would no longer be recognised: keep
//! the function, or write a migration.

use autoprov_core::{ChangeType, NonConformingPolicy, Owner, Resource, ResourceType};
use autoprov_planner::{
    CorrelationKey, Criteria, OrderStates, PlanOptions, Planner, PlannerConfig, RoleModel,
    ScalarRule, TypeRule,
};
use chrono::{TimeZone, Utc};

fn planner() -> Planner {
    let mut rt = ResourceType::new("AD_User", "AD_User", "Directory_User", "AD_Entry", "ad");
    rt.remove_orphans = true;
    // These tests are about what the rules alone decide: values found that no rule
    // explains are removed as before (the default keeps them for review, see found.rs tests).
    rt.non_conforming = NonConformingPolicy::Remove;
    let model = RoleModel::new()
        .type_rule(TypeRule::new(
            "AD_User",
            Criteria::always().dimension("active", "yes"),
        ))
        .scalar_rule(ScalarRule::from_owner(
            "AD_User",
            "employeeID",
            "employeeId",
        ))
        .scalar_rule(ScalarRule::from_owner(
            "AD_User",
            "department",
            "department",
        ));
    let config = PlannerConfig::new(vec![rt], model)
        .correlate("AD_User", CorrelationKey::new("employeeId", "employeeID"));
    Planner::new(config).unwrap()
}

fn person(id: &str, department: &str, active: &str) -> Owner {
    Owner::new(id, id)
        .with("employeeId", format!("E-{id}"))
        .with("department", department)
        .with("active", active)
}

fn ids() -> Vec<(ChangeType, String)> {
    let mut p = planner();
    p.upsert_owner(person("u1", "Sales", "yes")); // joiner: Added
    p.upsert_owner(person("u2", "HR", "yes")); // mover: Modified
    p.upsert_owner(person("u3", "IT", "no")); // leaver: Deleted
    let account = |id: &str, department: &str| {
        Resource::new(format!("CN={id},OU=Users,DC=example,DC=test"))
            .with("employeeID", format!("E-{id}"))
            .with("department", department)
    };
    for r in [
        account("u2", "Sales"),
        account("u3", "IT"),
        account("gone", "IT"),
    ] {
        p.upsert_target(&"AD_User".into(), &r).unwrap();
    }
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let plan = p.plan_full(now, PlanOptions::forced(), &OrderStates::new());
    let mut out: Vec<(ChangeType, String)> = plan
        .all_orders()
        .map(|o| (o.change_type, o.order_id.to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn order_ids_are_pinned() {
    let got = ids();
    let expected: Vec<(ChangeType, String)> = vec![
        (
            ChangeType::Added,
            "u1/AD_User/Added/e7e2dc198733fefc".to_owned(),
        ),
        (
            ChangeType::Modified,
            "u2/AD_User/Modified/ae7ce96c5f025487".to_owned(),
        ),
        (
            ChangeType::Deleted,
            "u3/AD_User/Deleted/55ae1e7ce42c6a4e".to_owned(),
        ),
        (
            ChangeType::Deleted,
            "~orphan/AD_User/CN=gone,OU=Users,DC=example,DC=test/Deleted".to_owned(),
        ),
    ];
    assert_eq!(got, expected);
    assert_eq!(ids(), got, "the same inputs give the same ids");
}

/// Two owners holding the same correlation key value: neither takes the target (each is an
/// Error naming the other), the target is not an orphan; once one owner's key changes, the
/// other correlates again — and the conflict comes back with the key (the planner counts the
/// key values two owners share, and looks for a conflict only while there is one).
#[test]
fn owners_sharing_a_key_value_conflict_until_one_changes() {
    let mut p = planner();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let account = Resource::new("CN=u1,OU=Users,DC=example,DC=test")
        .with("employeeID", "E-u1")
        .with("department", "Sales");
    p.upsert_target(&"AD_User".into(), &account).unwrap();
    let twin = |id: &str, key: &str| person(id, "Sales", "yes").with("employeeId", key);
    p.upsert_owner(twin("u1", "E-u1"));
    p.upsert_owner(twin("u2", "E-u1"));
    let errors = |p: &mut Planner, full: bool| -> Vec<(String, String)> {
        let plan = if full {
            p.plan_full(now, PlanOptions::forced(), &OrderStates::new())
        } else {
            p.plan_incremental(now, PlanOptions::forced(), &OrderStates::new());
            p.current_plan(PlanOptions::forced())
        };
        assert!(
            plan.orders().all(|o| o.change_type != ChangeType::Deleted),
            "the target is never an orphan: {}",
            plan.to_json()
        );
        plan.owners
            .iter()
            .flat_map(|o| o.items.iter())
            .filter_map(|i| Some((i.owner.as_ref()?.to_string(), i.error.clone()?)))
            .collect()
    };
    let conflict = errors(&mut p, true);
    assert_eq!(conflict.len(), 2, "{conflict:?}");
    assert!(
        conflict[0].1.contains("u2") && conflict[1].1.contains("u1"),
        "{conflict:?}"
    );
    // u2's key changes: u1 correlates with its account (nothing to change), u2 is a joiner.
    p.upsert_owner(twin("u2", "E-u2"));
    assert_eq!(errors(&mut p, false), []);
    assert_eq!(errors(&mut p, true), []);
    let plan = p.current_plan(PlanOptions::forced());
    let orders: Vec<_> = plan.orders().map(|o| o.change_type).collect();
    assert_eq!(orders, [ChangeType::Added], "{}", plan.to_json());
    // And back: the conflict again.
    p.upsert_owner(twin("u2", "E-u1"));
    assert_eq!(errors(&mut p, false).len(), 2);
    assert_eq!(errors(&mut p, true).len(), 2);
    p.remove_owner(&"u2".into());
    assert_eq!(errors(&mut p, true), []);
}

/// A re-plan confirms an owner's last correlation from the target itself while that target is
/// the only one holding the owner's key value; every change that breaks this is seen: a second
/// target with the same value (ambiguous, both protected), that target gone again, the
/// target's own value changed (no longer the owner's), and a new target in the slot the old
/// one left. Full and incremental plans agree at each step.
#[test]
fn a_confirmed_correlation_follows_every_change_of_the_key_index() {
    let mut p = planner();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let rt = "AD_User".into();
    let account = |cn: &str, key: &str| {
        Resource::new(format!("CN={cn},OU=Users,DC=example,DC=test"))
            .with("employeeID", key)
            .with("department", "Sales")
    };
    p.upsert_owner(person("u1", "Sales", "yes"));
    p.upsert_target(&rt, &account("a", "E-u1")).unwrap();
    // (errors, orders as (change type, target)) of a full or an incremental plan.
    let outcome = |p: &mut Planner, full: bool| {
        let plan = if full {
            p.plan_full(now, PlanOptions::forced(), &OrderStates::new())
        } else {
            p.plan_incremental(now, PlanOptions::forced(), &OrderStates::new());
            p.current_plan(PlanOptions::forced())
        };
        let errors: Vec<String> = plan
            .owners
            .iter()
            .flat_map(|o| o.items.iter())
            .filter_map(|i| i.error.clone())
            .collect();
        let mut orders: Vec<(ChangeType, String)> = plan
            .all_orders()
            .map(|o| {
                let target = o.resource.as_ref().map(|r| r.id.to_string());
                (o.change_type, target.unwrap_or_default())
            })
            .collect();
        orders.sort();
        (errors, orders)
    };
    let both = |p: &mut Planner| {
        let incremental = outcome(p, false);
        let full = outcome(p, true);
        assert_eq!(incremental, full, "incremental and full plans agree");
        // Planned again with nothing changed: the claim is now confirmed from the target.
        assert_eq!(outcome(p, true), full, "a re-plan confirms the same");
        full
    };
    let cn = |cn: &str| format!("CN={cn},OU=Users,DC=example,DC=test");
    assert_eq!(
        both(&mut p),
        (vec![], vec![]),
        "u1 holds account a, as expected"
    );

    // A second account with u1's key: ambiguous, neither is an orphan nor changed.
    p.upsert_target(&rt, &account("b", "E-u1")).unwrap();
    let (errors, orders) = both(&mut p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&cn("a")) && errors[0].contains(&cn("b")),
        "{errors:?}"
    );
    assert_eq!(orders, [], "both candidates are protected");

    // It goes: a alone again.
    assert!(p.remove_target(&rt, &cn("b").into()).unwrap());
    assert_eq!(both(&mut p), (vec![], vec![]));

    // a's own key changes by hand: no longer u1's. u1 is a joiner, a an orphan.
    p.upsert_target(&rt, &account("a", "E-other")).unwrap();
    assert_eq!(
        both(&mut p),
        (
            vec![],
            vec![
                (ChangeType::Added, String::new()),
                (ChangeType::Deleted, cn("a"))
            ]
        )
    );

    // a leaves; c, with u1's key, takes the slot a left: u1 correlates with c.
    assert!(p.remove_target(&rt, &cn("a").into()).unwrap());
    p.upsert_target(&rt, &account("c", "E-u1")).unwrap();
    assert_eq!(both(&mut p), (vec![], vec![]));
}
