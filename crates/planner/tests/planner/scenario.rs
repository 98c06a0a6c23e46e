//! A day in the life of the planner: joiners, a future joiner prepared ahead of arrival, a
//! mover, a leaver, an evaluation failure that stops nobody else, provisioning review, and a
//! threshold breach that blocks the generation until an operator forces it.

use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, ChangeType, Owner, OwnerId, PropertyValue,
    ProvisioningEvent, ProvisioningState, Reference, RequestKind, RequestedAssignment, Resource,
    ResourceType, ResourceTypeId, ScalarValue, Secret, WorkflowState,
};
use autoprov_planner::{
    ComparisonType, CompositeRole, CorrelationKey, Criteria, EvaluationError, GenerationStatus,
    LimitKind, NavigationRule, PlanOptions, Planner, PlannerConfig, QueryRule, RoleModel, RoleRule,
    ScalarBinding, ScalarRule, SingleRole, TimeOffset, TypeRule, WaitReason, simulation,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::BTreeSet;

const AD: &str = "ad";
const MBX: &str = "mbx";
const VPN: &str = "vpn";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn ou(name: &str) -> Reference {
    Reference::dn(format!("OU={name},DC=example,DC=test"))
}

fn group(name: &str) -> Reference {
    Reference::dn(format!("CN={name},OU=Groups,DC=example,DC=test"))
}

fn config() -> PlannerConfig {
    let mut ad = ResourceType::new(
        AD,
        "AD_Entry_NominativeUser",
        "Directory_User",
        "AD_Entry",
        "ad-main",
    );
    ad.depends_on_owner_property = Some("login".into());
    // Deletes limited to 10 % of the existing targets, counted from the first target (the
    // default counts only from 100): with a handful of accounts, one leaver is too many.
    ad.thresholds.maximum_delete_percent = Some(10);
    ad.thresholds.minimum_existing_targets = 0;
    ad.thresholds.maximum_insert_percent = None;
    ad.thresholds.maximum_update_percent = None;
    let mut mbx = ResourceType::new(
        MBX,
        "Exchange_Mailbox",
        "Directory_User",
        "Mailbox",
        "exchange",
    );
    mbx.depends_on = Some(AD.into());
    mbx.require_provisioning_review = true;
    let mut vpn = ResourceType::new(VPN, "VPN_Access", "Directory_User", "VPN_Entry", "vpn");
    vpn.allow_remove = false;

    let model = RoleModel::new()
        .period_from("arrival", "departure")
        .single_role(SingleRole::new("mail-user", "Mail user"))
        .composite_role(CompositeRole::new(
            "sales",
            "Sales staff",
            ["mail-user".into()],
        ))
        .role_rule(RoleRule::new(
            "sales",
            Criteria::always().dimension("department", "Sales"),
        ))
        // The account exists 30 days before arrival (disabled) and until departure.
        .type_rule(
            TypeRule::new(AD, Criteria::always()).offset(TimeOffset::around(days(30), days(0))),
        )
        .type_rule(TypeRule::new(MBX, Criteria::always().role("mail-user")))
        .type_rule(TypeRule::new(
            VPN,
            Criteria::always().dimension("site", "Remote"),
        ))
        .scalar_rule(
            ScalarRule::from_owner(AD, "sAMAccountName", "login")
                .comparison(ComparisonType::IgnoreCase),
        )
        .scalar_rule(ScalarRule::from_owner(AD, "employeeID", "employeeId"))
        .scalar_rule(ScalarRule::from_owner(AD, "title", "title"))
        .scalar_rule(
            ScalarRule::literal(AD, "accountDisabled", true)
                .offset(TimeOffset::before_start(days(30), days(0))),
        )
        .scalar_rule(ScalarRule::literal(AD, "accountDisabled", false))
        .scalar_rule(
            ScalarRule::computed(AD, "userPassword", |o| {
                Some(Secret::new(format!("Welcome-{}!", o.identifier)).into())
            })
            .write_only(),
        )
        .query_rule(QueryRule::new(
            AD,
            "parentdn",
            ScalarBinding::OwnerProperty("department".into()),
            "OU",
            "ou",
        ))
        .navigation_rule(NavigationRule::new(AD, "memberOf", group("AllStaff")))
        .navigation_rule(
            NavigationRule::new(AD, "memberOf", group("Sales"))
                .when(Criteria::always().dimension("department", "Sales")),
        )
        .navigation_rule(
            NavigationRule::new(AD, "memberOf", group("IT"))
                .when(Criteria::always().dimension("department", "IT")),
        )
        .declare_navigation(AD, "memberOf", autoprov_planner::Multiplicity::Multi)
        .scalar_rule(ScalarRule::computed(MBX, "mail", |o| {
            let login = o.get("login")?.as_scalar()?.as_str()?;
            Some(format!("{login}@example.test").into())
        }))
        .scalar_rule(ScalarRule::from_owner(MBX, "employeeID", "employeeId"))
        .scalar_rule(ScalarRule::from_owner(VPN, "employeeID", "employeeId"));
    let key = || CorrelationKey::new("employeeId", "employeeID");
    PlannerConfig::new(vec![ad, mbx, vpn], model)
        .correlate(AD, key())
        .correlate(MBX, key())
        .correlate(VPN, key())
}

fn person(id: &str, department: &str, title: &str) -> Owner {
    Owner::new(id, id)
        .with("login", id)
        .with("employeeId", format!("E-{id}"))
        .with("department", department)
        .with("title", title)
        .with("site", "HQ")
        .with("arrival", ScalarValue::from(now() - days(400)))
}

fn ad_account(id: &str, department: &str, title: &str, groups: &[&str]) -> Resource {
    Resource::new(format!("CN={id},OU={department},DC=example,DC=test"))
        .with("sAMAccountName", id)
        .with("employeeID", format!("E-{id}"))
        .with("title", title)
        .with("accountDisabled", false)
        .with("parentdn", ou(department))
        .with(
            "memberOf",
            groups.iter().map(|g| group(g)).collect::<BTreeSet<_>>(),
        )
}

fn mailbox(id: &str) -> Resource {
    Resource::new(format!("mbx-{id}"))
        .with("mail", format!("{id}@example.test"))
        .with("employeeID", format!("E-{id}"))
}

fn planner() -> Planner {
    let mut p = Planner::new(config()).unwrap();
    for name in ["Sales", "IT"] {
        p.upsert_lookup(
            "OU",
            Resource::new(format!("OU={name},DC=example,DC=test")).with("ou", name),
        );
    }
    // alice: joiner in Sales. bob: arrives in 10 days. carol: Sales, provisioned (mover later).
    // dave: left yesterday. eve: department without OU (evaluation fails). frank: VPN user
    // who is no longer remote (removal not allowed automatically).
    p.upsert_owner(person("alice", "Sales", "Rep"));
    p.upsert_owner(person("bob", "IT", "Dev").with("arrival", ScalarValue::from(now() + days(10))));
    p.upsert_owner(person("carol", "Sales", "Rep"));
    p.upsert_owner(
        person("dave", "Sales", "Rep").with("departure", ScalarValue::from(now() - days(1))),
    );
    p.upsert_owner(person("eve", "Nowhere", "Rep"));
    p.upsert_owner(person("frank", "IT", "Dev"));
    let ad: ResourceTypeId = AD.into();
    let mbx: ResourceTypeId = MBX.into();
    p.upsert_target(
        &ad,
        &ad_account("carol", "Sales", "Rep", &["AllStaff", "Sales"]),
    )
    .unwrap();
    p.upsert_target(&mbx, &mailbox("carol")).unwrap();
    p.upsert_target(
        &ad,
        &ad_account("dave", "Sales", "Rep", &["AllStaff", "Sales"]),
    )
    .unwrap();
    p.upsert_target(&mbx, &mailbox("dave")).unwrap();
    p.upsert_target(&ad, &ad_account("frank", "IT", "Dev", &["AllStaff", "IT"]))
        .unwrap();
    p.upsert_target(
        &VPN.into(),
        &Resource::new("vpn-frank").with("employeeID", "E-frank"),
    )
    .unwrap();
    p
}

fn item<'a>(
    plan: &'a autoprov_planner::Plan,
    owner: &str,
    rt: &str,
) -> &'a autoprov_planner::PlannedItem {
    plan.items()
        .find(|i| {
            i.owner.as_ref().map(OwnerId::as_str) == Some(owner) && i.resource_type.as_str() == rt
        })
        .unwrap_or_else(|| panic!("no item for {owner}/{rt}:\n{}", simulation::render(plan)))
}

#[test]
fn a_day_of_provisioning() {
    let mut p = planner();

    // ---- first generation: the leaver's deletion breaches MaximumDeletePercent = 10 --------
    let plan = p.plan_full(
        now(),
        PlanOptions::default(),
        &autoprov_planner::OrderStates::new(),
    );
    let GenerationStatus::Blocked { breaches } = &plan.status else {
        panic!(
            "expected a blocked generation:\n{}",
            simulation::render(&plan)
        );
    };
    assert_eq!(breaches.len(), 1);
    let b = &breaches[0];
    assert_eq!(
        (b.resource_type.as_str(), b.change_type, b.count, b.limit,),
        (AD, ChangeType::Deleted, 1, 0)
    );
    assert!(
        matches!(b.limit_kind, LimitKind::Percent { percent: 10, .. }),
        "{:?}",
        b.limit_kind
    );
    assert!(
        b.to_string().contains("1 deletes exceed the limit of 0"),
        "{b}"
    );
    assert_eq!(plan.orders().count(), 0, "nothing leaves while blocked");
    assert!(simulation::render(&plan).contains("BLOCKED"));

    // Joiner: one Added order creates the account with its groups and OU.
    let alice = item(&plan, "alice", AD);
    let order = alice.order.as_ref().unwrap();
    assert_eq!(order.change_type, ChangeType::Added);
    assert_eq!(alice.workflow_state, WorkflowState::Calculated);
    assert_eq!(alice.provisioning_state, ProvisioningState::Pending);
    assert_eq!(order.changes.reference("parentdn"), Some(&ou("Sales")));
    assert_eq!(
        order.changes.navigations["memberOf"].add,
        [group("AllStaff"), group("Sales")].into_iter().collect()
    );
    assert_eq!(
        order.changes.scalar("accountDisabled"),
        Some(&ScalarValue::Bool(false))
    );
    assert!(order.changes.scalar("userPassword").unwrap().is_secret());
    assert_eq!(order.connection.as_ref().unwrap().as_str(), "ad-main");
    // Her mailbox is given by a role (composite ⇒ single), waits in review, and depends on
    // the account order of the same plan.
    let alice_mbx = item(&plan, "alice", MBX);
    assert_eq!(alice_mbx.workflow_state, WorkflowState::GivenByRole);
    assert_eq!(
        alice_mbx.provisioning_state,
        ProvisioningState::AwaitingApproval
    );
    let mbx_order = alice_mbx.order.as_ref().unwrap();
    assert_eq!(mbx_order.depends_on, vec![order.order_id.clone()]);
    let alice_mbx_order = mbx_order.order_id.clone();

    // Future joiner: prepared 30 days ahead, disabled until arrival.
    let bob = item(&plan, "bob", AD).order.as_ref().unwrap();
    assert_eq!(bob.change_type, ChangeType::Added);
    assert_eq!(
        bob.changes.scalar("accountDisabled"),
        Some(&ScalarValue::Bool(true))
    );
    assert_eq!(
        bob.changes.scalar("sAMAccountName"),
        Some(&ScalarValue::from("bob"))
    );
    assert_eq!(bob.changes.reference("parentdn"), Some(&ou("IT")));

    // Leaver: the account and the mailbox go; the account after the mailbox.
    let dave_ad = item(&plan, "dave", AD).order.as_ref().unwrap().clone();
    let dave_mbx = item(&plan, "dave", MBX);
    assert_eq!(dave_ad.change_type, ChangeType::Deleted);
    assert!(
        dave_ad.resource.is_some(),
        "Deleted orders carry the existing target"
    );
    let dave_mbx_order = dave_mbx.order.as_ref().unwrap().order_id.clone();
    assert_eq!(dave_ad.depends_on, vec![dave_mbx_order.clone()]);
    assert_eq!(
        dave_mbx.provisioning_state,
        ProvisioningState::AwaitingApproval
    );

    // An evaluation failure marks only eve.
    let errors: Vec<&EvaluationError> = plan.errors().collect();
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(errors[0], EvaluationError::QueryNoMatch { owner, property, .. }
        if owner.as_str() == "eve" && property == "parentdn")
    );
    assert_eq!(
        item(&plan, "eve", AD).provisioning_state,
        ProvisioningState::Error
    );

    // Removal not allowed automatically: it waits for an operator, no order.
    let frank_vpn = item(&plan, "frank", VPN);
    assert!(frank_vpn.order.is_none());
    assert_eq!(frank_vpn.waiting, Some(WaitReason::AllowRemoveDisabled));

    // Carol conforms: nothing to say about her.
    assert!(plan.owners.iter().all(|o| o.owner.as_str() != "carol"));

    // ---- the operator forces the generation ----------------------------------------------
    let forced = p.current_plan(PlanOptions::forced());
    assert!(matches!(forced.status, GenerationStatus::Forced { .. }));
    let released: Vec<_> = forced.orders().map(|o| o.order_id.clone()).collect();
    assert!(released.contains(&dave_ad.order_id));
    assert!(
        !released.contains(&alice_mbx_order),
        "review items are not released"
    );

    // ---- provisioning review ---------------------------------------------------------------
    let reviews: Vec<_> = p
        .pending_reviews()
        .iter()
        .map(|i| i.owner.clone())
        .collect();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    // The decisions are the store's (the one owner of provisioning state): approving moves
    // alice's order AwaitingApproval ⇒ Pending, declining dave's ⇒ Inactive, and a declined
    // order cannot be approved. The planner sees them through the view of its next plan.
    let (approve, decline) = (
        ProvisioningEvent::ReviewApproved,
        ProvisioningEvent::ReviewDeclined,
    );
    let automated = autoprov_core::ConnectionMode::Automated;
    assert_eq!(
        ProvisioningState::AwaitingApproval.apply(approve, automated),
        Ok(ProvisioningState::Pending)
    );
    assert_eq!(
        ProvisioningState::AwaitingApproval.apply(decline, automated),
        Ok(ProvisioningState::Inactive)
    );
    assert!(
        ProvisioningState::Inactive
            .apply(approve, automated)
            .is_err(),
        "a declined order cannot be approved"
    );
    let mut view = autoprov_planner::OrderStates::new();
    view.insert(alice_mbx_order.clone(), ProvisioningState::Pending);
    view.decline(dave_mbx_order.clone());
    p.mark_dirty(&"alice".into()).unwrap();
    p.mark_dirty(&"dave".into()).unwrap();
    p.plan_incremental(now(), PlanOptions::forced(), &view);
    let plan = p.current_plan(PlanOptions::forced());
    assert!(plan.orders().any(|o| o.order_id == alice_mbx_order));
    // A re-evaluation keeps both decisions for the same change.
    p.mark_dirty(&"alice".into()).unwrap();
    p.mark_dirty(&"dave".into()).unwrap();
    p.plan_incremental(now(), PlanOptions::forced(), &view);
    let plan = p.current_plan(PlanOptions::forced());
    assert_eq!(
        item(&plan, "alice", MBX).provisioning_state,
        ProvisioningState::Pending
    );
    let dave_mbx = item(&plan, "dave", MBX);
    assert_eq!(dave_mbx.provisioning_state, ProvisioningState::Inactive);
    assert_eq!(dave_mbx.waiting, Some(WaitReason::DeclinedInReview));
    assert!(!plan.orders().any(|o| o.order_id == dave_mbx_order));

    // ---- mover: carol goes from Sales to IT -------------------------------------------------
    p.upsert_owner(person("carol", "IT", "Dev"));
    let delta = p.plan_incremental(now(), PlanOptions::forced(), &view);
    assert_eq!(delta.owners.len(), 1, "only carol is re-evaluated");
    let carol = &delta.owners[0];
    let ad_item = carol
        .items
        .iter()
        .find(|i| i.resource_type.as_str() == AD)
        .unwrap();
    let modified = ad_item.order.as_ref().unwrap();
    assert_eq!(modified.change_type, ChangeType::Modified);
    assert_eq!(modified.changes.reference("parentdn"), Some(&ou("IT")));
    assert_eq!(
        modified.changes.scalar("title"),
        Some(&ScalarValue::from("Dev"))
    );
    let members = &modified.changes.navigations["memberOf"];
    assert_eq!(members.add, [group("IT")].into_iter().collect());
    assert_eq!(members.remove, [group("Sales")].into_iter().collect());
    assert!(
        modified.changes.scalar("userPassword").is_none(),
        "write-only: never re-sent"
    );
    assert!(
        modified.changes.scalar("sAMAccountName").is_none(),
        "unchanged: not sent"
    );
    // She no longer holds the role, so her mailbox goes (after review).
    let carol_mbx = carol
        .items
        .iter()
        .find(|i| i.resource_type.as_str() == MBX)
        .unwrap();
    assert_eq!(
        carol_mbx.order.as_ref().unwrap().change_type,
        ChangeType::Deleted
    );
    assert_eq!(
        carol_mbx.provisioning_state,
        ProvisioningState::AwaitingApproval
    );

    // ---- the simulation shows the mover's diff, secrets masked -----------------------------
    let text = simulation::render(&p.current_plan(PlanOptions::forced()));
    assert!(text.contains("title: Rep → Dev"), "{text}");
    assert!(text.contains("- CN=Sales,OU=Groups"), "{text}");
    assert!(text.contains("userPassword: (none) → ********"), "{text}");
    assert!(!text.contains("Welcome-"), "{text}");
}

#[test]
fn approved_requests_join_the_expected_assignments_and_found_values_are_kept() {
    let mut p = planner();
    p.upsert_target(
        &AD.into(),
        &ad_account("alice", "Sales", "Rep", &["AllStaff", "Sales", "Legacy"]),
    )
    .unwrap();
    let plan = p.plan_full(
        now(),
        PlanOptions::forced(),
        &autoprov_planner::OrderStates::new(),
    );
    let order = item(&plan, "alice", AD).order.as_ref().unwrap();
    assert_eq!(
        order.changes.navigations["memberOf"].remove,
        [group("Legacy")].into_iter().collect()
    );

    // An operator keeps the Legacy membership as Found: no order touches it any more.
    p.keep(autoprov_planner::KeptAssignment {
        owner: "alice".into(),
        resource_type: AD.into(),
        value: autoprov_planner::KeptValue::Navigation("memberOf".into(), group("Legacy")),
        workflow_state: WorkflowState::Found,
    })
    .unwrap();
    // And a manual request (approved in one step) adds the VPN group to her account.
    let mut request = AssignmentRequest::new(
        "req-1",
        "alice",
        RequestKind::Add,
        RequestedAssignment {
            resource_type: AD.into(),
            scalar: None,
            navigation: Some(("memberOf".into(), group("VPN-Users"))),
        },
        ApprovalWorkflowType::One,
    );
    request.submit().unwrap();
    p.upsert_request(request.clone()).unwrap();
    let delta = p.plan_incremental(
        now(),
        PlanOptions::forced(),
        &autoprov_planner::OrderStates::new(),
    );
    assert!(
        delta.owners[0]
            .items
            .iter()
            .all(|i| i.resource_type.as_str() != AD),
        "pending request and kept value: alice's account conforms"
    );
    request.approve(1).unwrap();
    p.upsert_request(request).unwrap();
    let delta = p.plan_incremental(
        now(),
        PlanOptions::forced(),
        &autoprov_planner::OrderStates::new(),
    );
    let order = delta.owners[0].items[0].order.as_ref().unwrap();
    let members = &order.changes.navigations["memberOf"];
    assert_eq!(members.add, [group("VPN-Users")].into_iter().collect());
    assert!(members.remove.is_empty(), "the Found membership is kept");

    // The expected assignments, as the core types, say where each value comes from.
    let expected = p.expected_assignments(&"alice".into(), now()).unwrap();
    let origin = |g: &str| {
        expected
            .navigations
            .iter()
            .find(|n| n.value == group(g))
            .map(|n| (n.status.workflow_state, n.status.provisioning_state))
    };
    assert_eq!(
        origin("Sales"),
        Some((WorkflowState::Calculated, ProvisioningState::Verified))
    );
    assert_eq!(
        origin("VPN-Users"),
        Some((WorkflowState::Approved, ProvisioningState::Pending))
    );
    assert_eq!(
        origin("Legacy"),
        Some((WorkflowState::Found, ProvisioningState::Verified))
    );
    assert!(expected.roles.contains("mail-user"));
    let account = &expected.resource_types;
    assert!(
        account.iter().any(|a| a.resource_type.as_str() == AD
            && a.status.workflow_state == WorkflowState::Calculated)
    );

    // A request naming a property no rule governs is refused with its names.
    let bad = AssignmentRequest::new(
        "req-2",
        "alice",
        RequestKind::Add,
        RequestedAssignment {
            resource_type: AD.into(),
            scalar: Some(("shoeSize".into(), 42i64.into())),
            navigation: None,
        },
        ApprovalWorkflowType::None,
    );
    let err = p.upsert_request(bad).unwrap_err();
    assert!(
        err.to_string().contains("shoeSize") && err.to_string().contains("alice"),
        "{err}"
    );
}

#[test]
fn same_inputs_give_byte_identical_plans() {
    let a = planner()
        .plan_full(
            now(),
            PlanOptions::forced(),
            &autoprov_planner::OrderStates::new(),
        )
        .to_json();
    let b = planner()
        .plan_full(
            now(),
            PlanOptions::forced(),
            &autoprov_planner::OrderStates::new(),
        )
        .to_json();
    assert_eq!(a, b);
    // Re-planning without change gives the same plan again.
    let mut p = planner();
    let first = p
        .plan_full(
            now(),
            PlanOptions::forced(),
            &autoprov_planner::OrderStates::new(),
        )
        .to_json();
    let second = p
        .plan_full(
            now(),
            PlanOptions::forced(),
            &autoprov_planner::OrderStates::new(),
        )
        .to_json();
    assert_eq!(first, second);
    // And a simulation equals the installed plan without installing it.
    let p = planner();
    let simulated = p
        .simulate(
            now(),
            PlanOptions::forced(),
            &autoprov_planner::OrderStates::new(),
        )
        .to_json();
    assert_eq!(simulated, first);
    assert_eq!(
        p.current_plan(PlanOptions::forced()).owners.len(),
        0,
        "nothing installed"
    );
    let _ = PropertyValue::from("x");
}
