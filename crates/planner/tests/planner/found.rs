//! What predates autoprov (SPEC §10): each classification of a value found that nothing
//! explains, each setting, decisions, and each case of "rules in reverse".

use autoprov_core::{
    ChangeType, FoundValue, FoundVerdict, NonConformingPolicy, Owner, PropertyValue, Reference,
    Resource, ResourceType, ScalarValue,
};
use autoprov_planner::{
    CorrelationKey, Criteria, Disposition, NavigationRule, NonConforming, NonConformingKind,
    OrderStates, Plan, PlanOptions, Planner, PlannerConfig, RoleModel, RoleRule, ScalarRule,
    SingleRole, TypeRule,
};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn group(name: &str) -> Reference {
    Reference::dn(format!("CN={name},OU=Groups"))
}

fn groups(names: &[&str]) -> BTreeSet<Reference> {
    names.iter().map(|n| group(n)).collect()
}

/// One account type: everyone in Sales gets it, a title from the owner, group All for everyone,
/// group Sales for Sales; `phone` is governed by a rule that gives no one a value.
fn planner(policy: NonConformingPolicy, extra: RoleModel) -> Planner {
    let mut rt = ResourceType::new("ad", "AD", "User", "Account", "conn");
    rt.non_conforming = policy;
    let model = extra
        .type_rule(TypeRule::new(
            "ad",
            Criteria::always().dimension("department", "Sales"),
        ))
        .scalar_rule(ScalarRule::from_owner("ad", "employeeID", "employeeId"))
        .scalar_rule(ScalarRule::from_owner("ad", "title", "title"))
        .scalar_rule(
            ScalarRule::literal("ad", "phone", "000")
                .when(Criteria::always().dimension("department", "Nobody")),
        )
        .navigation_rule(NavigationRule::new("ad", "memberOf", group("All")))
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("Sales"))
                .when(Criteria::always().dimension("department", "Sales")),
        );
    let config = PlannerConfig::new(vec![rt], model)
        .correlate("ad", CorrelationKey::new("employeeId", "employeeID"));
    Planner::new(config).unwrap()
}

fn owner(id: &str, department: &str) -> Owner {
    Owner::new(id, id)
        .with("employeeId", format!("E-{id}"))
        .with("department", department)
        .with("title", "Rep")
}

fn account(id: &str, title: &str, member_of: &[&str]) -> Resource {
    Resource::new(format!("CN={id}"))
        .with("employeeID", format!("E-{id}"))
        .with("title", title)
        .with("memberOf", groups(member_of))
}

fn full(p: &mut Planner) -> Plan {
    p.plan_full(now(), PlanOptions::default(), &OrderStates::new())
}

fn found(plan: &Plan) -> Vec<&NonConforming> {
    plan.non_conforming().collect()
}

#[test]
fn an_extra_membership_is_listed_for_review_not_removed_until_decided() {
    let mut p = planner(NonConformingPolicy::default(), RoleModel::new());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "HandMade"]),
    )
    .unwrap();

    // The simulation shows it, the plan keeps it: no order at all.
    let simulated = p.simulate(now(), PlanOptions::default(), &OrderStates::new());
    assert_eq!(found(&simulated).len(), 1);
    let plan = full(&mut p);
    assert!(
        plan.has_no_orders(),
        "{:?}",
        plan.all_orders().collect::<Vec<_>>()
    );
    let n = found(&plan)[0].clone();
    assert_eq!(n.kind, NonConformingKind::ExtraValue);
    assert_eq!(n.disposition, Disposition::AwaitingReview);
    assert_eq!(
        n.value,
        FoundValue::Navigation {
            property: "memberOf".into(),
            value: group("HandMade")
        }
    );
    assert_eq!(n.target.as_str(), "CN=u1");
    // Planning again does not change its mind (the value is not ours because it was listed).
    assert!(plan_again_has_no_orders(&mut p));

    // Removal confirmed: the next plan removes exactly that membership.
    p.decide_found(&n.remove("alice", now())).unwrap();
    let plan = full(&mut p);
    let orders: Vec<_> = plan.orders().collect();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].change_type, ChangeType::Modified);
    assert_eq!(
        orders[0].changes.navigations["memberOf"].remove,
        groups(&["HandMade"])
    );
    assert_eq!(found(&plan)[0].disposition, Disposition::Removing);

    // Kept instead: a Found value, neither listed nor removed.
    p.decide_found(&n.keep("alice", now())).unwrap();
    let plan = full(&mut p);
    assert!(plan.has_no_orders());
    assert!(found(&plan).is_empty());
}

fn plan_again_has_no_orders(p: &mut Planner) -> bool {
    let plan = full(p);
    plan.has_no_orders() && found(&plan).len() == 1
}

#[test]
fn a_different_governed_value_is_listed_and_overwritten_only_after_a_decision() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, RoleModel::new());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(&"ad".into(), &account("u1", "Boss", &["All", "Sales"]))
        .unwrap();
    for _ in 0..2 {
        let plan = full(&mut p);
        assert!(plan.has_no_orders());
        let n = found(&plan);
        assert_eq!(n.len(), 1);
        assert_eq!(
            n[0].kind,
            NonConformingKind::DifferentValue {
                expected: PropertyValue::Scalar(ScalarValue::from("Rep"))
            }
        );
        assert_eq!(
            n[0].value,
            FoundValue::Scalar {
                property: "title".into(),
                value: "Boss".into()
            }
        );
    }
    let n = found(&full(&mut p))[0].clone();
    p.decide_found(&n.remove("alice", now())).unwrap();
    let plan = full(&mut p);
    let order = plan.orders().next().unwrap();
    assert_eq!(
        order.changes.properties.keys().collect::<Vec<_>>(),
        ["title"]
    );
}

#[test]
fn a_value_no_rule_gives_is_listed_not_cleared() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, RoleModel::new());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales"]).with("phone", "555"),
    )
    .unwrap();
    let plan = full(&mut p);
    assert!(plan.has_no_orders());
    let n = found(&plan);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, NonConformingKind::UnexpectedValue);
    assert_eq!(n[0].value.property(), Some("phone"));
}

#[test]
fn an_account_no_rule_gives_the_owner_is_listed_not_deleted() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, RoleModel::new());
    p.upsert_owner(owner("u1", "HR"));
    p.upsert_target(&"ad".into(), &account("u1", "Rep", &["All"]))
        .unwrap();
    let plan = full(&mut p);
    assert!(plan.has_no_orders());
    let n = found(&plan);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, NonConformingKind::UnexpectedAccount);
    assert_eq!(n[0].value, FoundValue::Account);
    let decision = n[0].remove("alice", now());
    p.decide_found(&decision).unwrap();
    let plan = full(&mut p);
    let order = plan.orders().next().unwrap();
    assert_eq!(order.change_type, ChangeType::Deleted);
}

#[test]
fn the_setting_adopts_or_removes_without_review() {
    let drifted = || account("u1", "Boss", &["All", "Sales", "HandMade"]);
    let mut adopt = planner(NonConformingPolicy::AdoptAsFound, RoleModel::new());
    adopt.upsert_owner(owner("u1", "Sales"));
    adopt.upsert_target(&"ad".into(), &drifted()).unwrap();
    let plan = full(&mut adopt);
    assert!(plan.has_no_orders());
    assert_eq!(found(&plan).len(), 2);
    assert!(
        found(&plan)
            .iter()
            .all(|n| n.disposition == Disposition::Adopted)
    );

    let mut remove = planner(NonConformingPolicy::Remove, RoleModel::new());
    remove.upsert_owner(owner("u1", "Sales"));
    remove.upsert_target(&"ad".into(), &drifted()).unwrap();
    let plan = full(&mut remove);
    let order = plan.orders().next().unwrap();
    assert_eq!(
        order.changes.properties.keys().collect::<Vec<_>>(),
        ["title"]
    );
    assert_eq!(
        order.changes.navigations["memberOf"].remove,
        groups(&["HandMade"])
    );
    assert!(
        found(&plan)
            .iter()
            .all(|n| n.disposition == Disposition::Removing)
    );
}

#[test]
fn what_a_plan_established_still_follows_the_rules() {
    // Reps get group Reps. Conforming at first: every value is autoprov's from then on.
    let reps = RoleModel::new().navigation_rule(
        NavigationRule::new("ad", "memberOf", group("Reps"))
            .when(Criteria::always().dimension("title", "Rep")),
    );
    let mut p = planner(NonConformingPolicy::KeepAndReview, reps);
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "Reps"]),
    )
    .unwrap();
    assert!(full(&mut p).has_no_orders());
    // A drift of an established value is set back (SPEC §4), no review.
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Boss", &["All", "Sales", "Reps"]),
    )
    .unwrap();
    let drift = full(&mut p);
    assert_eq!(drift.orders().count(), 1);
    assert!(found(&drift).is_empty());
    // A mover (Rep ⇒ Lead) loses the group the rules no longer give and gets the new title;
    // a hand-made group added meanwhile is listed, not removed.
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "Reps", "HandMade"]),
    )
    .unwrap();
    p.upsert_owner(owner("u1", "Sales").with("title", "Lead"));
    let moved = full(&mut p);
    let order = moved.orders().next().unwrap();
    assert_eq!(
        order.changes.properties.keys().collect::<Vec<_>>(),
        ["title"]
    );
    assert_eq!(
        order.changes.navigations["memberOf"].remove,
        groups(&["Reps"])
    );
    let n = found(&moved);
    assert_eq!(n.len(), 1);
    assert_eq!(
        n[0].value,
        FoundValue::Navigation {
            property: "memberOf".into(),
            value: group("HandMade")
        }
    );
}

#[test]
fn a_leaver_loses_an_established_account_and_groups() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, RoleModel::new());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(&"ad".into(), &account("u1", "Rep", &["All", "Sales"]))
        .unwrap();
    assert!(full(&mut p).has_no_orders());
    // Leaves Sales: the type rule no longer applies ⇒ the account is deleted, as before.
    p.upsert_owner(owner("u1", "HR"));
    let plan = full(&mut p);
    let order = plan.orders().next().unwrap();
    assert_eq!(order.change_type, ChangeType::Deleted);
    assert!(found(&plan).is_empty());
}

#[test]
fn a_decision_on_an_ungoverned_property_or_unknown_owner_is_refused() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, RoleModel::new());
    p.upsert_owner(owner("u1", "Sales"));
    let bad = autoprov_core::FoundDecision::new(
        "u1",
        "ad",
        FoundValue::Scalar {
            property: "nTSecurityDescriptor".into(),
            value: "x".into(),
        },
        FoundVerdict::Remove,
        "alice",
        now(),
    );
    let err = p.decide_found(&bad).unwrap_err().to_string();
    assert!(err.contains("nTSecurityDescriptor"), "{err}");
    let mut unknown = bad.clone();
    unknown.owner = "nobody".into();
    unknown.value = FoundValue::Account;
    assert!(p.decide_found(&unknown).is_err());
}

/// Roles: Finance grants groups F1 and F2; Audit grants A1; Shared is granted by both Finance
/// and Audit.
fn roles() -> RoleModel {
    RoleModel::new()
        .single_role(SingleRole::new("finance", "Finance"))
        .single_role(SingleRole::new("audit", "Audit"))
        .role_rule(RoleRule::new(
            "finance",
            Criteria::always().dimension("team", "finance"),
        ))
        .role_rule(RoleRule::new(
            "audit",
            Criteria::always().dimension("team", "audit"),
        ))
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("F1"))
                .when(Criteria::always().role("finance")),
        )
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("F2"))
                .when(Criteria::always().role("finance")),
        )
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("A1"))
                .when(Criteria::always().role("audit")),
        )
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("Shared"))
                .when(Criteria::always().role("finance")),
        )
        .navigation_rule(
            NavigationRule::new("ad", "memberOf", group("Shared"))
                .when(Criteria::always().role("audit")),
        )
}

#[test]
fn one_group_one_role_deduces_the_role() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, roles());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(&"ad".into(), &account("u1", "Rep", &["All", "Sales", "A1"]))
        .unwrap();
    let plan = full(&mut p);
    let deduced: Vec<_> = plan.deduced_roles().collect();
    assert_eq!(deduced.len(), 1);
    assert_eq!(deduced[0].role.as_str(), "audit");
    assert_eq!(deduced[0].found, vec![group("A1")]);
    assert_eq!(deduced[0].missing, vec![group("Shared")]);
    // Proposed, not assigned: nothing is ordered, A1 waits for review.
    assert!(plan.has_no_orders());
}

#[test]
fn a_role_granting_several_groups_of_which_some_are_found_lists_the_missing_ones() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, roles());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "F1", "Shared"]),
    )
    .unwrap();
    let plan = full(&mut p);
    let deduced: Vec<_> = plan.deduced_roles().collect();
    assert_eq!(deduced.len(), 1, "{deduced:?}");
    assert_eq!(deduced[0].role.as_str(), "finance");
    assert_eq!(deduced[0].found, vec![group("F1"), group("Shared")]);
    assert_eq!(deduced[0].missing, vec![group("F2")]);
}

#[test]
fn a_group_several_roles_grant_deduces_nothing() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, roles());
    p.upsert_owner(owner("u1", "Sales"));
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "Shared"]),
    )
    .unwrap();
    let plan = full(&mut p);
    assert_eq!(plan.deduced_roles().count(), 0);
    assert_eq!(found(&plan).len(), 1);
}

#[test]
fn a_role_the_owner_holds_is_not_proposed_again() {
    let mut p = planner(NonConformingPolicy::KeepAndReview, roles());
    p.upsert_owner(owner("u1", "Sales").with("team", "finance"));
    // Holds Finance (F1, F2, Shared expected) and has A1 by hand: Audit is deduced.
    p.upsert_target(
        &"ad".into(),
        &account("u1", "Rep", &["All", "Sales", "F1", "F2", "Shared", "A1"]),
    )
    .unwrap();
    let plan = full(&mut p);
    let deduced: Vec<_> = plan.deduced_roles().map(|d| d.role.as_str()).collect();
    assert_eq!(deduced, ["audit"]);
}
