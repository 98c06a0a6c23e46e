//! Behaviours the reference system documents (issue 14, item 5), one test each: time-offset
//! precedence, an evaluation failure that errs only its item, assignments whose period has
//! passed, `DiscardManualAssignments` / ApprovedQuestioned, and dates read in a time zone.

use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, ChangeType, LocalTimeZone, NonConformingPolicy, Owner,
    ProvisioningState, RequestKind, RequestedAssignment, Resource, ResourceType, ScalarValue,
    WorkflowState,
};
use autoprov_planner::{
    CorrelationKey, Criteria, EvaluationError, OrderStates, Plan, PlanOptions, Planner,
    PlannerConfig, RoleModel, ScalarBinding, ScalarRule, TimeOffset, TypeRule,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn rt(id: &str) -> ResourceType {
    let mut rt = ResourceType::new(id, id, "User", "Account", "conn");
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
    Owner::new(id, id).with("employeeId", format!("E-{id}"))
}

fn account(id: &str) -> Resource {
    Resource::new(format!("CN={id}")).with("employeeID", format!("E-{id}"))
}

fn plan(p: &mut Planner) -> Plan {
    p.plan_full(now(), PlanOptions::default(), &OrderStates::new())
}

fn scalar_of(plan: &Plan, owner: &str, rt: &str, property: &str) -> Option<String> {
    plan.items()
        .find(|i| {
            i.owner.as_ref().map(|o| o.as_str()) == Some(owner) && i.resource_type.as_str() == rt
        })
        .and_then(|i| i.order.as_ref())
        .and_then(|o| o.changes.scalar(property))
        .map(ToString::to_string)
}

#[test]
fn time_offset_precedence_is_after_before_around_default() {
    // Every rule holds now (arrival in 5 days, departure in 10); they are configured in the
    // opposite order of the precedence, so the configured order alone would pick `default`.
    let all = [
        ("default", TimeOffset::DEFAULT),
        ("around", TimeOffset::around(days(30), days(30))),
        ("before", TimeOffset::before_start(days(30), days(0))),
        ("after", TimeOffset::after_end(days(30), days(0))),
    ];
    for kept in 1..=all.len() {
        let mut model = RoleModel::new()
            .period_from("arrival", "departure")
            .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
            .type_rule(
                TypeRule::new("a", Criteria::always())
                    .offset(TimeOffset::around(days(30), days(30))),
            );
        for (value, offset) in &all[..kept] {
            model = model.scalar_rule(ScalarRule::literal("a", "phase", *value).offset(*offset));
        }
        let mut p = planner(vec![rt("a")], model);
        p.upsert_owner(
            owner("u1")
                .with("arrival", ScalarValue::from(now() + days(5)))
                .with("departure", ScalarValue::from(now() + days(10))),
        );
        let plan = plan(&mut p);
        assert_eq!(
            scalar_of(&plan, "u1", "a", "phase").as_deref(),
            Some(all[kept - 1].0),
            "with the rules {:?}",
            &all[..kept]
        );
    }
    // A rule of higher precedence that does not hold gives way: after departure + 0 the
    // `After` window [departure - 30 days, departure) is closed for an owner arriving now.
    let model = RoleModel::new()
        .period_from("arrival", "departure")
        .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
        .type_rule(TypeRule::new("a", Criteria::always()))
        .scalar_rule(ScalarRule::literal("a", "phase", "default"))
        .scalar_rule(
            ScalarRule::literal("a", "phase", "after")
                .offset(TimeOffset::after_end(days(30), days(0))),
        );
    let mut p = planner(vec![rt("a")], model);
    p.upsert_owner(
        owner("u1")
            .with("arrival", ScalarValue::from(now() - days(5)))
            .with("departure", ScalarValue::from(now() + days(100))),
    );
    assert_eq!(
        scalar_of(&plan(&mut p), "u1", "a", "phase").as_deref(),
        Some("default")
    );
}

#[test]
fn an_evaluation_failure_errs_only_the_resource_type_it_concerns() {
    // Resource type `a` has a rule that fails for owner `bad`, and a rule reading an owner
    // property of the wrong kind for owner `odd`; `b` is fine for both.
    let model = RoleModel::new()
        .type_rule(TypeRule::new("a", Criteria::always()))
        .type_rule(TypeRule::new("b", Criteria::always()))
        .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
        .scalar_rule(ScalarRule::from_owner("b", "employeeID", "employeeId"))
        .scalar_rule(ScalarRule::new(
            "a",
            "upn",
            ScalarBinding::try_computed(|o| match o.id.as_str() {
                "bad" => Err("no UPN suffix for this owner".into()),
                _ => Ok(Some(format!("{}@example.test", o.id).into())),
            }),
        ))
        .scalar_rule(ScalarRule::from_owner("a", "title", "title"));
    let mut p = planner(vec![rt("a"), rt("b")], model);
    p.upsert_owner(owner("bad"));
    p.upsert_owner(owner("odd").with("title", autoprov_core::Reference::dn("CN=x")));
    // `bad` already has an `a` account: a failure never deletes it.
    p.upsert_target(&"a".into(), &account("bad")).unwrap();
    let plan = plan(&mut p);

    let errors: Vec<_> = plan.errors().collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        matches!(errors[0], EvaluationError::RuleFailed { owner, resource_type, property, .. }
            if owner.as_str() == "bad" && resource_type.as_str() == "a" && property == "upn"),
        "{}",
        errors[0]
    );
    assert!(
        matches!(errors[1], EvaluationError::InvalidRuleInput { owner, resource_type, property, owner_property, .. }
            if owner.as_str() == "odd" && resource_type.as_str() == "a" && property == "title" && owner_property == "title"),
        "{}",
        errors[1]
    );
    let text = errors[1].to_string();
    assert!(
        text.contains("odd") && text.contains(" a:") && text.contains("`title`"),
        "{text}"
    );
    for who in ["bad", "odd"] {
        let items: Vec<_> = plan
            .items()
            .filter(|i| i.owner.as_ref().map(|o| o.as_str()) == Some(who))
            .collect();
        let a = items
            .iter()
            .find(|i| i.resource_type.as_str() == "a")
            .unwrap();
        assert_eq!(a.provisioning_state, ProvisioningState::Error);
        assert!(a.order.is_none());
        assert!(a.error.as_deref().unwrap().contains(who));
        // The owner's other resource type is planned as usual.
        let b = items
            .iter()
            .find(|i| i.resource_type.as_str() == "b")
            .unwrap();
        assert_eq!(b.provisioning_state, ProvisioningState::Pending);
        assert_eq!(b.order.as_ref().unwrap().change_type, ChangeType::Added);
    }
    assert!(plan.orders().all(|o| o.resource_type.id.as_str() == "b"));
}

#[test]
fn an_assignment_whose_period_has_passed_is_inactive() {
    // Review holds the creation; the owner leaves before anyone approves it.
    let mut a = rt("a");
    a.require_provisioning_review = true;
    let model = RoleModel::new()
        .period_from("arrival", "departure")
        .type_rule(TypeRule::new("a", Criteria::always()))
        .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"));
    let mut p = planner(vec![a, rt("b")], model);
    let leaving = now() + days(1);
    p.upsert_owner(owner("u1").with("departure", ScalarValue::from(leaving)));
    let first = plan(&mut p);
    let item = first
        .items()
        .find(|i| i.resource_type.as_str() == "a")
        .unwrap();
    assert_eq!(item.provisioning_state, ProvisioningState::AwaitingApproval);
    let order = item.order.as_ref().unwrap().order_id.clone();

    // Two days later the store still holds it AwaitingApproval: the plan reports the
    // assignment Inactive (workflow 19, provisioning 6) with that order, for the store.
    let later = now() + days(2);
    let mut view = OrderStates::new();
    view.insert(order.clone(), ProvisioningState::AwaitingApproval);
    let second = p.plan_full(later, PlanOptions::default(), &view);
    let item = second
        .items()
        .find(|i| i.resource_type.as_str() == "a")
        .unwrap();
    assert_eq!(item.workflow_state, WorkflowState::Inactive);
    assert_eq!(item.provisioning_state, ProvisioningState::Inactive);
    assert_eq!(item.order.as_ref().map(|o| &o.order_id), Some(&order));
    assert!(second.orders().next().is_none());
    assert!(second.awaiting_approval().next().is_none());
    let expected = p.expected_assignments(&"u1".into(), later).unwrap();
    assert_eq!(expected.resource_types.len(), 1);
    assert_eq!(
        expected.resource_types[0].status.workflow_state,
        WorkflowState::Inactive
    );
    assert_eq!(
        expected.resource_types[0].status.provisioning_state,
        ProvisioningState::Inactive
    );
    assert_eq!(expected.resource_types[0].status.period.end, Some(leaving));

    // Once the store holds it Inactive, the past assignment costs nothing.
    let third = p.plan_full(later, PlanOptions::default(), &OrderStates::new());
    assert!(third.items().next().is_none(), "{third:?}");

    // A target still there after the period is removed, the item marked Inactive.
    p.upsert_target(&"a".into(), &account("u1")).unwrap();
    // Established by a plan during the period, so its removal needs no review.
    p.plan_full(now(), PlanOptions::default(), &OrderStates::new());
    let fourth = p.plan_full(later, PlanOptions::default(), &OrderStates::new());
    let item = fourth
        .items()
        .find(|i| i.resource_type.as_str() == "a")
        .unwrap();
    assert_eq!(item.workflow_state, WorkflowState::Inactive);
    assert_eq!(
        item.order.as_ref().map(|o| o.change_type),
        Some(ChangeType::Deleted)
    );
}

fn approved(id: &str, owner: &str, rt: &str, property: &str, value: &str) -> AssignmentRequest {
    let mut r = AssignmentRequest::new(
        id,
        owner,
        RequestKind::Add,
        RequestedAssignment {
            resource_type: rt.into(),
            scalar: Some((property.into(), ScalarValue::from(value))),
            navigation: None,
        },
        ApprovalWorkflowType::None,
    );
    r.submit().unwrap();
    r
}

#[test]
fn discard_manual_assignments_lets_the_rules_win_otherwise_the_manual_value_is_questioned() {
    for discard in [false, true] {
        let mut a = rt("a");
        a.discard_manual_assignments = discard;
        let model = RoleModel::new()
            .type_rule(TypeRule::new("a", Criteria::always()))
            .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
            .scalar_rule(ScalarRule::from_owner("a", "title", "title"))
            .scalar_rule(ScalarRule::from_owner("a", "company", "company"))
            .declare_scalar("a", "extensionAttribute1", Default::default());
        let mut p = planner(vec![a], model);
        p.upsert_owner(owner("u1").with("title", "Rep").with("company", "ACME"));
        p.upsert_target(
            &"a".into(),
            &account("u1")
                .with("title", "Lead")
                .with("company", "ACME")
                .with("extensionAttribute1", "badge-7"),
        )
        .unwrap();
        // Approved by hand: a title the rules contradict, a company they agree with, and a
        // value no rule computes.
        for r in [
            approved("r1", "u1", "a", "title", "Lead"),
            approved("r2", "u1", "a", "company", "ACME"),
            approved("r3", "u1", "a", "extensionAttribute1", "badge-7"),
        ] {
            p.upsert_request(r).unwrap();
        }
        let plan = plan(&mut p);
        let expected = p.expected_assignments(&"u1".into(), now()).unwrap();
        let state_of = |property: &str| {
            let s = expected
                .scalars
                .iter()
                .find(|s| s.property == property)
                .unwrap_or_else(|| panic!("{property}: {expected:?}"));
            (s.value.to_string(), s.status.workflow_state)
        };
        if discard {
            // The computed title replaces the manual one: the target is set back to it.
            assert_eq!(scalar_of(&plan, "u1", "a", "title").as_deref(), Some("Rep"));
            assert_eq!(state_of("title"), ("Rep".into(), WorkflowState::Calculated));
        } else {
            // Kept, and flagged for a person to look at again.
            assert!(
                plan.orders().next().is_none(),
                "{:?}",
                plan.orders().collect::<Vec<_>>()
            );
            assert_eq!(
                state_of("title"),
                ("Lead".into(), WorkflowState::ApprovedQuestioned)
            );
        }
        // Either way: a manual value the rules agree with is simply approved, and one no rule
        // computes is kept.
        assert_eq!(
            state_of("company"),
            ("ACME".into(), WorkflowState::Approved)
        );
        assert_eq!(
            state_of("extensionAttribute1"),
            ("badge-7".into(), WorkflowState::Approved)
        );
    }
}

#[test]
fn dates_are_read_in_the_configured_time_zone_with_inclusive_end_dates() {
    let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
    let paris: LocalTimeZone = "Europe/Paris".parse().unwrap();
    // The HR source writes calendar dates. Leaving on 2026-03-29 (the night summer time
    // starts) means working that whole local day; arriving on 2026-04-01, the account is
    // prepared 7 days before (local midnight, across the change).
    let model = |zone: LocalTimeZone| {
        RoleModel::new()
            .in_time_zone(zone)
            .period_from("arrival", "departure")
            .type_rule(
                TypeRule::new("a", Criteria::always()).offset(TimeOffset::around(days(7), days(0))),
            )
            .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
            .scalar_rule(ScalarRule::account_expires("a"))
    };
    let people = |p: &mut Planner| {
        p.upsert_owner(owner("leaver").with("departure", "2026-03-29"));
        p.upsert_owner(owner("joiner").with("arrival", "2026-04-01"));
        p.upsert_target(&"a".into(), &account("leaver")).unwrap();
    };
    let mut p = planner(vec![rt("a")], model(paris));
    people(&mut p);
    let plan_at = |p: &mut Planner, t: DateTime<Utc>| {
        p.plan_full(t, PlanOptions::forced(), &OrderStates::new())
    };
    let change = |plan: &Plan, who: &str| {
        plan.items()
            .find(|i| i.owner.as_ref().map(|o| o.as_str()) == Some(who))
            .and_then(|i| i.order.as_ref())
            .map(|o| o.change_type)
    };

    // Local 23:59 on the departure day (CEST, UTC+2): still employed; accountExpires is the
    // next local midnight, 2026-03-29T22:00Z, in FILETIME units.
    let plan = plan_at(&mut p, at("2026-03-29T21:59:00Z"));
    let expires = plan
        .items()
        .find(|i| i.owner.as_ref().map(|o| o.as_str()) == Some("leaver"))
        .and_then(|i| i.order.as_ref())
        .and_then(|o| o.changes.scalar("accountExpires").cloned());
    assert_eq!(
        expires,
        Some(ScalarValue::Integer(autoprov_core::time_zone::file_time(
            at("2026-03-29T22:00:00Z")
        )))
    );
    assert_eq!(change(&plan, "leaver"), Some(ChangeType::Modified));
    // Local midnight: the period has passed, the account goes.
    let plan = plan_at(&mut p, at("2026-03-29T22:00:00Z"));
    assert_eq!(change(&plan, "leaver"), Some(ChangeType::Deleted));

    // The joiner's account: 7 calendar days before 2026-04-01 00:00 CEST is 2026-03-25
    // 00:00 CET = 2026-03-24T23:00Z (7 × 24 h would be 22:00Z, an hour early).
    assert_eq!(
        change(&plan_at(&mut p, at("2026-03-24T22:30:00Z")), "joiner"),
        None
    );
    assert_eq!(
        change(&plan_at(&mut p, at("2026-03-24T23:00:00Z")), "joiner"),
        Some(ChangeType::Added)
    );

    // Read in UTC instead, the same dates end two hours later: the leaver is still there.
    let mut p = planner(vec![rt("a")], model(LocalTimeZone::UTC));
    people(&mut p);
    let plan = plan_at(&mut p, at("2026-03-29T22:00:00Z"));
    assert_eq!(change(&plan, "leaver"), Some(ChangeType::Modified));

    // A value that is no date errs its owner, naming the property.
    p.upsert_owner(owner("typo").with("departure", "29/03/2026"));
    let plan = plan_at(&mut p, at("2026-03-01T00:00:00Z"));
    let errors: Vec<_> = plan.errors().collect();
    assert!(
        matches!(errors[..], [EvaluationError::InvalidOwnerDate { owner, property, .. }]
            if owner.as_str() == "typo" && property == "departure"),
        "{errors:?}"
    );
}

#[test]
fn a_declined_request_removes_the_assignment_that_waited_for_it() {
    // A rule gives `c` to everyone, pending a person's validation (RequestedAutomatically):
    // the request is that validation. Approved, the account is created; declined, the
    // assignment is removed instead of waiting forever.
    let model = RoleModel::new()
        .scalar_rule(ScalarRule::from_owner("c", "employeeID", "employeeId"))
        .type_rule(
            TypeRule::new("c", Criteria::always())
                .kind(autoprov_planner::RuleKind::RequestedAutomatically),
        );
    let mut p = planner(vec![rt("c")], model);
    for who in ["yes", "no", "later"] {
        p.upsert_owner(owner(who));
    }
    let request = |id: &str, who: &str| {
        let mut r = AssignmentRequest::new(
            id,
            who,
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "c".into(),
                scalar: None,
                navigation: None,
            },
            ApprovalWorkflowType::One,
        );
        r.submit().unwrap();
        r
    };
    let mut yes = request("r-yes", "yes");
    yes.approve(1).unwrap();
    let mut no = request("r-no", "no");
    no.decline().unwrap();
    p.upsert_request(yes).unwrap();
    p.upsert_request(no).unwrap();
    p.upsert_request(request("r-later", "later")).unwrap();
    let first_plan = plan(&mut p);
    let item = |who: &str| {
        first_plan
            .items()
            .find(|i| i.owner.as_ref().map(|o| o.as_str()) == Some(who))
            .map(|i| (i.workflow_state, i.order.as_ref().map(|o| o.change_type)))
    };
    assert_eq!(
        item("yes"),
        Some((WorkflowState::Approved, Some(ChangeType::Added)))
    );
    assert_eq!(
        item("later"),
        Some((WorkflowState::AutomaticButWithValidation, None))
    );
    assert_eq!(item("no"), None, "declined: no assignment left");
    let expected = p.expected_assignments(&"no".into(), now()).unwrap();
    assert!(expected.resource_types.is_empty(), "{expected:?}");

    // Declined after the account exists: the assignment goes, and so does the account (the
    // type allows removal; it was established by this planner).
    let mut p2 = {
        let model = RoleModel::new()
            .scalar_rule(ScalarRule::from_owner("c", "employeeID", "employeeId"))
            .type_rule(
                TypeRule::new("c", Criteria::always())
                    .kind(autoprov_planner::RuleKind::RequestedAutomatically),
            );
        planner(vec![rt("c")], model)
    };
    p2.upsert_owner(owner("no"));
    p2.upsert_target(&"c".into(), &account("no")).unwrap();
    let mut first = request("r-1", "no");
    first.approve(1).unwrap();
    p2.upsert_request(first).unwrap();
    assert!(plan(&mut p2).orders().next().is_none(), "conforms");
    p2.remove_request(&"no".into(), &"r-1".into()).unwrap();
    let mut second = request("r-2", "no");
    second.decline().unwrap();
    p2.upsert_request(second).unwrap();
    let orders: Vec<_> = plan(&mut p2).orders().cloned().collect();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].change_type, ChangeType::Deleted);
}

#[test]
fn a_manual_reference_the_rules_contradict_is_questioned_or_discarded() {
    use autoprov_core::Reference;
    let ou = |n: &str| Reference::dn(format!("OU={n},DC=example,DC=test"));
    for discard in [false, true] {
        let mut a = rt("a");
        a.discard_manual_assignments = discard;
        let model = RoleModel::new()
            .type_rule(TypeRule::new("a", Criteria::always()))
            .scalar_rule(ScalarRule::from_owner("a", "employeeID", "employeeId"))
            .declare_navigation("a", "parentdn", autoprov_planner::Multiplicity::Mono)
            .navigation_rule(autoprov_planner::NavigationRule::new(
                "a",
                "parentdn",
                ou("Sales"),
            ));
        let mut p = planner(vec![a], model);
        p.upsert_owner(owner("u1"));
        let mut r = AssignmentRequest::new(
            "r1",
            "u1",
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "a".into(),
                scalar: None,
                navigation: Some(("parentdn".into(), ou("Projects"))),
            },
            ApprovalWorkflowType::None,
        );
        r.submit().unwrap();
        p.upsert_request(r).unwrap();
        let expected = p.expected_assignments(&"u1".into(), now()).unwrap();
        let nav = expected
            .navigations
            .iter()
            .find(|n| n.property == "parentdn")
            .unwrap();
        if discard {
            assert_eq!(
                (&nav.value, nav.status.workflow_state),
                (&ou("Sales"), WorkflowState::Calculated)
            );
        } else {
            assert_eq!(
                (&nav.value, nav.status.workflow_state),
                (&ou("Projects"), WorkflowState::ApprovedQuestioned)
            );
        }
    }
}
