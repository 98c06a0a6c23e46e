//! One test per rule or setting of SPEC §2 / §5 that the scenario does not already cover.

use autoprov_core::{
    ChangeType, NonConformingPolicy, Owner, ProvisioningState, Reference, Resource, ResourceType,
    ScalarValue, WorkflowState,
};
use autoprov_planner::{
    ComparisonType, CorrelationKey, Criteria, EvaluationError, GenerationStatus, LimitKind,
    NavigationRule, PlanOptions, Planner, PlannerConfig, RoleModel, RuleKind, ScalarBinding,
    ScalarRule, TypeRule, WaitReason,
};
use chrono::{DateTime, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn rt(id: &str) -> ResourceType {
    let mut rt = ResourceType::new(id, id, "User", "Account", "conn");
    // These tests are about what the rules alone decide: values found that no rule
    // explains are removed as before (the default keeps them for review, see found.rs tests).
    rt.non_conforming = NonConformingPolicy::Remove;
    rt
}

fn planner(types: Vec<ResourceType>, model: RoleModel) -> Planner {
    let mut config = PlannerConfig::new(types.clone(), model);
    for t in &types {
        config = config.correlate(
            t.id.clone(),
            CorrelationKey::new("employeeId", "employeeID"),
        );
    }
    Planner::new(config).unwrap()
}

fn owner(id: &str) -> Owner {
    Owner::new(id, id)
        .with("employeeId", format!("E-{id}"))
        .with("department", "Sales")
}

fn account(id: &str) -> Resource {
    Resource::new(format!("CN={id}")).with("employeeID", format!("E-{id}"))
}

fn base_rules(model: RoleModel, t: &str) -> RoleModel {
    model.scalar_rule(ScalarRule::from_owner(t, "employeeID", "employeeId"))
}

#[test]
fn denied_rules_win_and_suggested_or_automatic_rules_produce_no_order() {
    let model = base_rules(RoleModel::new(), "a")
        .type_rule(TypeRule::new("a", Criteria::always()))
        .type_rule(TypeRule::new("a", Criteria::always().dimension("department", "Sales")).denied())
        .type_rule(TypeRule::new("b", Criteria::always()).kind(RuleKind::Suggested))
        .type_rule(TypeRule::new("c", Criteria::always()).kind(RuleKind::RequestedAutomatically));
    let mut p = planner(vec![rt("a"), rt("b"), rt("c")], model);
    p.upsert_owner(owner("u1"));
    p.upsert_owner(owner("u2").with("department", "HR"));
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let orders: Vec<_> = plan.orders().collect();
    assert_eq!(orders.len(), 1, "only u2 gets `a`: {orders:#?}");
    assert_eq!(orders[0].owner_id().unwrap().as_str(), "u2");
    let waiting: Vec<_> = plan
        .items()
        .filter(|i| i.resource_type.as_str() == "c")
        .map(|i| (i.workflow_state, i.waiting.clone()))
        .collect();
    assert_eq!(
        waiting,
        vec![
            (
                WorkflowState::AutomaticButWithValidation,
                Some(WaitReason::AwaitingValidation)
            );
            2
        ]
    );
}

#[test]
fn creation_waits_for_allow_add_owner_property_and_dependency() {
    let mut no_add = rt("noadd");
    no_add.allow_add = false;
    let mut needs_login = rt("login");
    needs_login.depends_on_owner_property = Some("login".into());
    let mut dependent = rt("dep");
    dependent.depends_on = Some("login".into());
    let model = ["noadd", "login", "dep"]
        .iter()
        .fold(RoleModel::new(), |m, t| {
            base_rules(m, t).type_rule(TypeRule::new(*t, Criteria::always()))
        });
    let mut p = planner(vec![no_add, needs_login, dependent], model);
    p.upsert_owner(owner("u1"));
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    assert!(plan.has_no_orders());
    let reasons: Vec<_> = plan.items().map(|i| i.waiting.clone().unwrap()).collect();
    assert!(reasons.contains(&WaitReason::AllowAddDisabled));
    assert!(reasons.contains(&WaitReason::OwnerPropertyEmpty {
        property: "login".into()
    }));
    assert!(reasons.contains(&WaitReason::DependsOn {
        resource_type: "login".into()
    }));
    // Once the owner property is filled, both the type and its dependent are created, the
    // dependent after it.
    p.upsert_owner(owner("u1").with("login", "u1"));
    let delta = p.plan_incremental(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let items = &delta.owners[0].items;
    let login = items
        .iter()
        .find(|i| i.resource_type.as_str() == "login")
        .unwrap();
    let dep = items
        .iter()
        .find(|i| i.resource_type.as_str() == "dep")
        .unwrap();
    assert_eq!(
        dep.order.as_ref().unwrap().depends_on,
        vec![login.order.as_ref().unwrap().order_id.clone()]
    );
}

#[test]
fn fulfill_hours_ahead_of_time_prepares_future_assignments() {
    let mut early = rt("early");
    early.fulfill_hours_ahead_of_time = 48;
    let model = ["early", "late"].iter().fold(
        RoleModel::new().period_from("arrival", "departure"),
        |m, t| base_rules(m, t).type_rule(TypeRule::new(*t, Criteria::always())),
    );
    let mut p = planner(vec![early, rt("late")], model);
    p.upsert_owner(owner("u1").with(
        "arrival",
        ScalarValue::from(now() + chrono::TimeDelta::hours(24)),
    ));
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let types: Vec<_> = plan
        .orders()
        .map(|o| o.resource_type.id.as_str().to_owned())
        .collect();
    assert_eq!(types, ["early"]);
    // A departure in the past ends every assignment: the account goes.
    p.upsert_target(&"late".into(), &account("u1")).unwrap();
    p.upsert_owner(owner("u1").with(
        "departure",
        ScalarValue::from(now() - chrono::TimeDelta::hours(1)),
    ));
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let changes: Vec<_> = plan
        .orders()
        .map(|o| (o.resource_type.id.as_str().to_owned(), o.change_type))
        .collect();
    assert_eq!(changes, [("late".to_owned(), ChangeType::Deleted)]);
}

#[test]
fn percent_thresholds_count_against_existing_targets() {
    let mut t = rt("a");
    t.thresholds.maximum_update_percent = Some(10);
    t.thresholds.minimum_existing_targets = 20;
    let model = base_rules(RoleModel::new(), "a")
        .type_rule(TypeRule::new("a", Criteria::always()))
        .scalar_rule(ScalarRule::literal("a", "flag", "on"));
    let mut p = planner(vec![t], model);
    for i in 0..20 {
        let id = format!("u{i:02}");
        p.upsert_owner(owner(&id));
        let flag = if i < 3 { "off" } else { "on" };
        p.upsert_target(&"a".into(), &account(&id).with("flag", flag))
            .unwrap();
    }
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let GenerationStatus::Blocked { breaches } = &plan.status else {
        panic!("3 updates of 20 targets exceed 10%");
    };
    assert_eq!(breaches[0].count, 3);
    assert_eq!(breaches[0].limit, 2);
    assert_eq!(
        breaches[0].limit_kind,
        LimitKind::Percent {
            percent: 10,
            existing_targets: 20
        }
    );
    assert_eq!(plan.orders().count(), 0);
    assert_eq!(p.current_plan(PlanOptions::forced()).orders().count(), 3);
}

#[test]
fn percent_thresholds_wait_for_the_minimum_of_existing_targets_and_zero_is_off() {
    // The default: 30 % once the type has 100 targets. 19 targets, 19 updates: not blocked.
    let t = rt("a");
    assert_eq!(t.thresholds.update_percent(), Some(30));
    let model = base_rules(RoleModel::new(), "a")
        .type_rule(TypeRule::new("a", Criteria::always()))
        .scalar_rule(ScalarRule::literal("a", "flag", "on"));
    let mut p = planner(vec![t.clone()], model.clone());
    for i in 0..19 {
        let id = format!("u{i:02}");
        p.upsert_owner(owner(&id));
        p.upsert_target(&"a".into(), &account(&id).with("flag", "off"))
            .unwrap();
    }
    let states = autoprov_planner::OrderStates::new();
    let plan = p.plan_full(now(), PlanOptions::default(), &states);
    assert_eq!(plan.status, GenerationStatus::Released);
    assert_eq!(plan.orders().count(), 19);

    // 100 targets, 31 updates: blocked at 30; with the percent set to 0 (the reference
    // system's "off"), released.
    for (percent, blocked) in [(Some(30), true), (Some(0), false), (None, false)] {
        let mut t = t.clone();
        t.thresholds.maximum_update_percent = percent;
        let mut p = planner(vec![t], model.clone());
        for i in 0..100 {
            let id = format!("u{i:03}");
            p.upsert_owner(owner(&id));
            let flag = if i < 31 { "off" } else { "on" };
            p.upsert_target(&"a".into(), &account(&id).with("flag", flag))
                .unwrap();
        }
        let plan = p.plan_full(now(), PlanOptions::default(), &states);
        assert_eq!(
            matches!(plan.status, GenerationStatus::Blocked { .. }),
            blocked,
            "{percent:?}: {:?}",
            plan.status
        );
    }
}

#[test]
fn a_failing_rule_marks_its_owner_only_and_postpone_keeps_review() {
    let mut t = rt("a");
    t.require_provisioning_review = true;
    let model = base_rules(RoleModel::new(), "a")
        .type_rule(TypeRule::new("a", Criteria::always()))
        .scalar_rule(ScalarRule::new(
            "a",
            "upn",
            ScalarBinding::try_computed(|o| match o.get("department") {
                Some(_) if o.id.as_str() == "bad" => Err("no UPN suffix for this owner".into()),
                _ => Ok(Some(format!("{}@example.test", o.id).into())),
            }),
        ));
    let mut p = planner(vec![t], model);
    p.upsert_owner(owner("bad"));
    p.upsert_owner(owner("good"));
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let errors: Vec<_> = plan.errors().collect();
    assert!(
        matches!(errors[..], [EvaluationError::RuleFailed { owner, property, .. }]
        if owner.as_str() == "bad" && property == "upn")
    );
    assert!(errors[0].to_string().contains("no UPN suffix"));
    let reviews: Vec<_> = p.pending_reviews().into_iter().cloned().collect();
    assert_eq!(reviews.len(), 1);
    let order = reviews[0].order.as_ref().unwrap().order_id.clone();
    // Postponed in the store, it stays AwaitingApproval there and in the next plan.
    let mut view = autoprov_planner::OrderStates::new();
    view.insert(order.clone(), ProvisioningState::AwaitingApproval);
    p.mark_dirty(&"good".into()).unwrap();
    p.plan_incremental(now(), PlanOptions::default(), &view);
    assert_eq!(p.pending_reviews().len(), 1);
    assert_eq!(
        p.pending_reviews()[0].order.as_ref().map(|o| &o.order_id),
        Some(&order)
    );
}

#[test]
fn orphans_are_deleted_only_with_remove_orphans() {
    let mut keep = rt("keep");
    keep.remove_orphans = false;
    let mut purge = rt("purge");
    purge.remove_orphans = true;
    let model = ["keep", "purge"].iter().fold(RoleModel::new(), |m, t| {
        base_rules(m, t)
            .type_rule(TypeRule::new(*t, Criteria::always()))
            .navigation_rule(NavigationRule::new(*t, "memberOf", Reference::dn("CN=g")))
    });
    let mut p = planner(vec![keep, purge], model);
    p.upsert_target(&"keep".into(), &account("gone")).unwrap();
    p.upsert_target(&"purge".into(), &account("gone")).unwrap();
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let orders: Vec<_> = plan.orders().collect();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].resource_type.id.as_str(), "purge");
    assert_eq!(orders[0].change_type, ChangeType::Deleted);
    assert!(orders[0].owner.is_none() && orders[0].resource.is_some());
    let kept = plan
        .orphans
        .iter()
        .find(|o| o.resource_type.as_str() == "keep")
        .unwrap();
    assert_eq!(kept.waiting, Some(WaitReason::OrphanKept));
    // The owner shows up: the orphan is correlated again and the delete disappears.
    p.upsert_owner(owner("gone"));
    let delta = p.plan_incremental(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    assert_eq!(delta.orphans.len(), 2);
    assert!(delta.orphans.iter().all(|(_, _, item)| item.is_none()));
    let plan = p.current_plan(PlanOptions::default());
    assert!(plan.orphans.is_empty());
    assert!(plan.orders().all(|o| o.change_type == ChangeType::Modified));
}

#[test]
fn ignore_diacritics_and_simplified_compare_as_the_reference_system_names_them() {
    // The rule computes "Hélène O'Brien"; the directory holds variants of it. An order is
    // planned only when the comparison type tells them apart.
    let cases = [
        (ComparisonType::CaseSensitive, "Helene O'Brien", true),
        (ComparisonType::IgnoreDiacritics, "HELENE O'BRIEN", false),
        (ComparisonType::IgnoreDiacritics, "Helene OBrien", true),
        (ComparisonType::Simplified, "helene obrien", false),
        (ComparisonType::Simplified, "Helene-O-Brien", false),
        (ComparisonType::Simplified, "Helen OBrien", true),
    ];
    for (comparison, actual, modified) in cases {
        let model = base_rules(RoleModel::new(), "a")
            .type_rule(TypeRule::new("a", Criteria::always()))
            .scalar_rule(
                ScalarRule::literal("a", "displayName", "Hélène O'Brien").comparison(comparison),
            );
        let mut p = planner(vec![rt("a")], model);
        p.upsert_owner(owner("u1"));
        p.upsert_target(&"a".into(), &account("u1").with("displayName", actual))
            .unwrap();
        let plan = p.plan_full(
            now(),
            PlanOptions::default(),
            &autoprov_planner::OrderStates::new(),
        );
        let orders: Vec<_> = plan.orders().collect();
        assert_eq!(
            !orders.is_empty(),
            modified,
            "{comparison:?} on {actual:?}: {orders:?}"
        );
        if modified {
            assert_eq!(orders[0].change_type, ChangeType::Modified);
        }
    }
    // And by their names in configuration.
    let c: ComparisonType = serde_json::from_str("\"Simplified\"").unwrap();
    assert_eq!(c, ComparisonType::Simplified);
}

#[test]
fn orders_the_store_already_holds_do_not_count_against_thresholds_again() {
    // 10 existing accounts, 5 joiners: 5 inserts against a limit of 10 % (1) is blocked...
    let mut t = rt("a");
    t.thresholds.minimum_existing_targets = 0;
    t.thresholds.maximum_insert_percent = Some(10);
    let model = base_rules(RoleModel::new(), "a").type_rule(TypeRule::new("a", Criteria::always()));
    let mut p = planner(vec![t], model);
    for i in 0..15 {
        let id = format!("u{i:02}");
        p.upsert_owner(owner(&id));
        if i < 10 {
            p.upsert_target(&"a".into(), &account(&id)).unwrap();
        }
    }
    let none = autoprov_planner::OrderStates::new();
    let plan = p.plan_full(now(), PlanOptions::default(), &none);
    let GenerationStatus::Blocked { breaches } = &plan.status else {
        panic!(
            "5 inserts against 10 targets exceed 10 %: {:?}",
            plan.status
        );
    };
    assert_eq!(breaches[0].count, 5);
    // ...but once an earlier generation released them (an operator forced it, then the process
    // stopped half-way), the store holds them open, and the resumed run is not blocked by its
    // own orders.
    let mut held = autoprov_planner::OrderStates::new();
    for o in plan.all_orders() {
        held.insert(o.order_id.clone(), ProvisioningState::Pending);
    }
    let resumed = p.plan_full(now(), PlanOptions::default(), &held);
    assert_eq!(
        resumed.status,
        GenerationStatus::Released,
        "{:?}",
        resumed.status
    );
    assert_eq!(resumed.orders().count(), 5);
    // A new joiner on top is counted: 1 new insert is within the limit of 1.
    p.upsert_owner(owner("u15"));
    let plus_one = p.plan_full(now(), PlanOptions::default(), &held);
    assert_eq!(plus_one.status, GenerationStatus::Released);
    p.upsert_owner(owner("u16"));
    let plus_two = p.plan_full(now(), PlanOptions::default(), &held);
    let GenerationStatus::Blocked { breaches } = &plus_two.status else {
        panic!("2 new inserts exceed the limit of 1: {:?}", plus_two.status);
    };
    assert_eq!(breaches[0].count, 2, "only the new orders count");
}
