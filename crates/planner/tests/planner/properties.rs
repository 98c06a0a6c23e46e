//! Planner invariants, checked on random organizations and random drift:
//! plan(desired, desired) is empty; applying plan(desired, actual) to actual yields desired;
//! plans are deterministic; no Deleted order when AllowRemove is false; no order touches a
//! Found/Historic value; a membership change is a delta, never a full replacement.

use autoprov_core::{
    ChangeType, NonConformingPolicy, Owner, PropertyChange, PropertyValue, ProvisioningOrder,
    Reference, Resource, ResourceType, ResourceTypeId, WorkflowState,
};
use autoprov_planner::{
    ComparisonType, CorrelationKey, Criteria, KeptAssignment, KeptValue, Multiplicity,
    NavigationRule, Plan, PlanOptions, Planner, PlannerConfig, RoleModel, ScalarRule, TypeRule,
};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const RT: &str = "acct";
const DEPARTMENTS: [&str; 3] = ["A", "B", "C"];
const SITES: [&str; 2] = ["X", "Y"];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn group(name: &str) -> Reference {
    Reference::dn(format!("CN={name}"))
}

#[derive(Clone, Debug)]
struct Person {
    department: usize,
    site: usize,
    title: String,
}

#[derive(Clone, Debug)]
struct Settings {
    allow_remove: bool,
    remove_orphans: bool,
}

fn owner(i: usize, p: &Person) -> Owner {
    Owner::new(format!("o{i}"), format!("user{i}"))
        .with("login", format!("user{i}"))
        .with("employeeId", format!("e{i}"))
        .with("department", DEPARTMENTS[p.department])
        .with("site", SITES[p.site])
        .with("title", p.title.clone())
}

fn config(s: &Settings) -> PlannerConfig {
    let mut rt = ResourceType::new(RT, "Account", "User", "Account", "conn");
    rt.allow_remove = s.allow_remove;
    rt.remove_orphans = s.remove_orphans && s.allow_remove;
    // These tests are about what the rules alone decide: values found that no rule
    // explains are removed as before (the default keeps them for review, see found.rs tests).
    rt.non_conforming = NonConformingPolicy::Remove;
    let mut model = RoleModel::new()
        // Department C gets no account: its accounts are to be removed.
        .type_rule(TypeRule::new(
            RT,
            Criteria::always()
                .dimension("department", "A")
                .dimension("department", "B"),
        ))
        .scalar_rule(
            ScalarRule::from_owner(RT, "sAMAccountName", "login")
                .comparison(ComparisonType::IgnoreCase),
        )
        .scalar_rule(ScalarRule::from_owner(RT, "employeeID", "employeeId"))
        .scalar_rule(
            ScalarRule::from_owner(RT, "title", "title")
                .when(Criteria::always().dimension("site", "X")),
        )
        .declare_navigation(RT, "parentdn", Multiplicity::Mono)
        .navigation_rule(NavigationRule::new(RT, "memberOf", group("All")));
    for d in DEPARTMENTS {
        model = model
            .navigation_rule(
                NavigationRule::new(RT, "parentdn", Reference::dn(format!("OU={d}")))
                    .when(Criteria::always().dimension("department", d)),
            )
            .navigation_rule(
                NavigationRule::new(RT, "memberOf", group(&format!("{d}-1")))
                    .when(Criteria::always().dimension("department", d)),
            );
    }
    for s in SITES {
        model = model.navigation_rule(
            NavigationRule::new(RT, "memberOf", group(&format!("{s}-1")))
                .when(Criteria::always().dimension("site", s)),
        );
    }
    PlannerConfig::new(vec![rt], model)
        .correlate(RT, CorrelationKey::new("employeeId", "employeeID"))
}

fn planner(
    people: &[Person],
    s: &Settings,
    targets: &[Resource],
    kept: &[KeptAssignment],
) -> Planner {
    let mut p = Planner::new(config(s)).unwrap();
    for (i, person) in people.iter().enumerate() {
        p.upsert_owner(owner(i, person));
    }
    let rt: ResourceTypeId = RT.into();
    for t in targets {
        p.upsert_target(&rt, t).unwrap();
    }
    for k in kept {
        p.keep(k.clone()).unwrap();
    }
    p
}

/// The in-memory managed system: applies orders to a list of resources.
fn apply(orders: &[ProvisioningOrder], system: &mut Vec<Resource>) {
    for order in orders {
        match order.change_type {
            ChangeType::Added => {
                let id = match order.changes.scalar("employeeID") {
                    Some(v) => format!("CN={v}"),
                    None => panic!("Added order without employeeID: {order:?}"),
                };
                let mut r = Resource::new(id);
                apply_changes(order, &mut r);
                system.push(r);
            }
            ChangeType::Modified => {
                let id = &order.resource.as_ref().unwrap().id;
                let r = system.iter_mut().find(|r| &r.id == id).unwrap();
                apply_changes(order, r);
            }
            ChangeType::Deleted => {
                let id = &order.resource.as_ref().unwrap().id;
                system.retain(|r| &r.id != id);
            }
        }
    }
}

fn apply_changes(order: &ProvisioningOrder, r: &mut Resource) {
    for (p, c) in &order.changes.properties {
        match c {
            PropertyChange::Set(v) => {
                r.values.insert(p.clone(), PropertyValue::Scalar(v.clone()));
            }
            PropertyChange::SetReference(v) => {
                r.values
                    .insert(p.clone(), PropertyValue::Reference(v.clone()));
            }
            PropertyChange::Clear => {
                r.values.remove(p);
            }
        }
    }
    for (p, delta) in &order.changes.navigations {
        let entry = r
            .values
            .entry(p.clone())
            .or_insert_with(|| PropertyValue::References(BTreeSet::new()));
        let PropertyValue::References(set) = entry else {
            panic!("{p} is not multi-valued")
        };
        for a in &delta.add {
            set.insert(a.clone());
        }
        for x in &delta.remove {
            set.remove(x);
        }
        if set.is_empty() {
            r.values.remove(p);
        }
    }
}

/// A comparable form of a managed system: by employeeID, the login compared ignoring case.
fn canonical(system: &[Resource]) -> BTreeMap<String, BTreeMap<String, PropertyValue>> {
    system
        .iter()
        .map(|r| {
            let key = match r.get("employeeID") {
                Some(PropertyValue::Scalar(v)) => v.to_string(),
                _ => r.id.to_string(),
            };
            let mut values = r.values.clone();
            if let Some(PropertyValue::Scalar(v)) = values.get("sAMAccountName") {
                let lower = v.to_string().to_lowercase();
                values.insert("sAMAccountName".into(), lower.into());
            }
            (key, values)
        })
        .collect()
}

fn released(plan: &Plan) -> Vec<ProvisioningOrder> {
    plan.orders().cloned().collect()
}

/// The desired system: what the planner creates from nothing.
fn desired(people: &[Person], s: &Settings) -> Vec<Resource> {
    let mut p = planner(people, s, &[], &[]);
    let plan = p.plan_full(
        now(),
        PlanOptions::forced(),
        &autoprov_planner::OrderStates::new(),
    );
    let mut system = Vec::new();
    apply(&released(&plan), &mut system);
    system
}

#[derive(Clone, Debug)]
enum Perturbation {
    Drop(usize),
    Title(usize, String),
    CaseOfLogin(usize),
    AddGroup(usize, String),
    RemoveGroup(usize),
    MoveOu(usize),
    Orphan(usize),
    AccountForC(usize),
}

fn perturb(system: &mut Vec<Resource>, people: &[Person], ops: &[Perturbation]) {
    for op in ops {
        let n = system.len();
        match op {
            Perturbation::Drop(i) if n > 0 => {
                system.remove(i % n);
            }
            Perturbation::Title(i, t) if n > 0 => {
                system[i % n]
                    .values
                    .insert("title".into(), t.clone().into());
            }
            Perturbation::CaseOfLogin(i) if n > 0 => {
                let r = &mut system[i % n];
                if let Some(PropertyValue::Scalar(v)) = r.values.get("sAMAccountName") {
                    let upper = v.to_string().to_uppercase();
                    r.values.insert("sAMAccountName".into(), upper.into());
                }
            }
            Perturbation::AddGroup(i, g) if n > 0 => {
                let r = &mut system[i % n];
                if let Some(PropertyValue::References(set)) = r.values.get_mut("memberOf") {
                    set.insert(group(g));
                }
            }
            Perturbation::RemoveGroup(i) if n > 0 => {
                let r = &mut system[i % n];
                if let Some(PropertyValue::References(set)) = r.values.get_mut("memberOf") {
                    let first = set.iter().next().cloned();
                    if let Some(first) = first {
                        set.remove(&first);
                    }
                }
            }
            Perturbation::MoveOu(i) if n > 0 => {
                system[i % n]
                    .values
                    .insert("parentdn".into(), Reference::dn("OU=Elsewhere").into());
            }
            Perturbation::Orphan(k)
                if !system
                    .iter()
                    .any(|r| r.id.as_str() == format!("CN=orphan{k}")) =>
            {
                system.push(
                    Resource::new(format!("CN=orphan{k}"))
                        .with("employeeID", format!("x{k}"))
                        .with("sAMAccountName", format!("orphan{k}")),
                );
            }
            Perturbation::AccountForC(i) if !people.is_empty() => {
                let i = i % people.len();
                if people[i].department == 2
                    && !system.iter().any(|r| r.id.as_str() == format!("CN=e{i}"))
                {
                    system.push(
                        Resource::new(format!("CN=e{i}"))
                            .with("employeeID", format!("e{i}"))
                            .with("sAMAccountName", format!("user{i}")),
                    );
                }
            }
            _ => {}
        }
    }
}

fn people() -> impl Strategy<Value = Vec<Person>> {
    prop::collection::vec(
        (0..3usize, 0..2usize, "[a-c]{1,2}").prop_map(|(department, site, title)| Person {
            department,
            site,
            title,
        }),
        0..10,
    )
}

fn settings() -> impl Strategy<Value = Settings> {
    (any::<bool>(), any::<bool>()).prop_map(|(allow_remove, remove_orphans)| Settings {
        allow_remove,
        remove_orphans,
    })
}

fn perturbations() -> impl Strategy<Value = Vec<Perturbation>> {
    prop::collection::vec(
        prop_oneof![
            (0..20usize).prop_map(Perturbation::Drop),
            (0..20usize, "[a-d]{1,2}").prop_map(|(i, t)| Perturbation::Title(i, t)),
            (0..20usize).prop_map(Perturbation::CaseOfLogin),
            (0..20usize, "[p-r]").prop_map(|(i, g)| Perturbation::AddGroup(i, g)),
            (0..20usize).prop_map(Perturbation::RemoveGroup),
            (0..20usize).prop_map(Perturbation::MoveOu),
            (0..3usize).prop_map(Perturbation::Orphan),
            (0..20usize).prop_map(Perturbation::AccountForC),
        ],
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn planning_desired_against_itself_is_empty(people in people(), s in settings()) {
        let desired = desired(&people, &s);
        let mut p = planner(&people, &s, &desired, &[]);
        let plan = p.plan_full(now(), PlanOptions::default(), &autoprov_planner::OrderStates::new());
        prop_assert!(plan.has_no_orders(), "{}", autoprov_planner::simulation::render(&plan));
    }

    #[test]
    fn applying_the_plan_to_actual_yields_desired(
        people in people(),
        s in settings(),
        ops in perturbations(),
    ) {
        let desired = desired(&people, &s);
        let mut actual = desired.clone();
        perturb(&mut actual, &people, &ops);
        let mut p = planner(&people, &s, &actual, &[]);
        let plan = p.plan_full(now(), PlanOptions::forced(), &autoprov_planner::OrderStates::new());
        let mut system = actual.clone();
        apply(&released(&plan), &mut system);

        // What may legitimately remain: accounts that may not be removed automatically.
        let mut expected = canonical(&desired);
        for r in &actual {
            let key = canonical(std::slice::from_ref(r));
            let (k, v) = key.into_iter().next().unwrap();
            let orphan = k.starts_with('x');
            let kept = if orphan { !(s.allow_remove && s.remove_orphans) } else { !s.allow_remove };
            if kept && !expected.contains_key(&k) {
                expected.insert(k, v);
            }
        }
        prop_assert_eq!(canonical(&system), expected);

        // Applied once, the system conforms: a second plan is empty.
        let mut again = planner(&people, &s, &system, &[]);
        let second = again.plan_full(now(), PlanOptions::forced(), &autoprov_planner::OrderStates::new());
        prop_assert!(second.has_no_orders(), "{}", autoprov_planner::simulation::render(&second));
    }

    #[test]
    fn plans_are_deterministic(people in people(), s in settings(), ops in perturbations()) {
        let mut actual = desired(&people, &s);
        perturb(&mut actual, &people, &ops);
        let a = planner(&people, &s, &actual, &[]).plan_full(now(), PlanOptions::default(), &autoprov_planner::OrderStates::new()).to_json();
        let mut reversed = actual.clone();
        reversed.reverse();
        let b = planner(&people, &s, &reversed, &[]).plan_full(now(), PlanOptions::default(), &autoprov_planner::OrderStates::new()).to_json();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn no_deleted_order_without_allow_remove(people in people(), ops in perturbations()) {
        let s = Settings { allow_remove: false, remove_orphans: false };
        let mut actual = desired(&people, &s);
        perturb(&mut actual, &people, &ops);
        let plan = planner(&people, &s, &actual, &[]).plan_full(now(), PlanOptions::forced(), &autoprov_planner::OrderStates::new());
        prop_assert!(plan.all_orders().all(|o| o.change_type != ChangeType::Deleted));
    }

    #[test]
    fn kept_values_are_never_touched_and_memberships_change_by_delta(
        people in people(),
        s in settings(),
        ops in perturbations(),
        keep_title in any::<bool>(),
    ) {
        let mut actual = desired(&people, &s);
        perturb(&mut actual, &people, &ops);
        // Keep, as Found/Historic, every membership and the title of each correlated account.
        let mut kept = Vec::new();
        for (i, _) in people.iter().enumerate() {
            let Some(r) = actual.iter().find(|r| r.id.as_str() == format!("CN=e{i}")) else { continue };
            if let Some(PropertyValue::References(set)) = r.get("memberOf") {
                for g in set {
                    kept.push(KeptAssignment {
                        owner: format!("o{i}").into(),
                        resource_type: RT.into(),
                        value: KeptValue::Navigation("memberOf".into(), g.clone()),
                        workflow_state: WorkflowState::Historic,
                    });
                }
            }
            if keep_title {
                kept.push(KeptAssignment {
                    owner: format!("o{i}").into(),
                    resource_type: RT.into(),
                    value: KeptValue::Scalar("title".into()),
                    workflow_state: WorkflowState::Found,
                });
            }
        }
        let plan = planner(&people, &s, &actual, &kept).plan_full(now(), PlanOptions::forced(), &autoprov_planner::OrderStates::new());
        for order in plan.all_orders() {
            if order.change_type != ChangeType::Modified {
                continue;
            }
            let current = order.resource.as_ref().unwrap();
            let owner = order.owner.as_ref().unwrap().id.clone();
            prop_assert!(!order.changes.properties.contains_key("memberOf"), "never a full replacement");
            if let Some(delta) = order.changes.navigations.get("memberOf") {
                let present = match current.get("memberOf") {
                    Some(PropertyValue::References(set)) => set.clone(),
                    _ => BTreeSet::new(),
                };
                prop_assert!(delta.add.is_disjoint(&present), "adds only what is missing");
                prop_assert!(delta.remove.is_subset(&present), "removes only what is there");
                for k in kept.iter().filter(|k| k.owner == owner) {
                    if let KeptValue::Navigation(_, r) = &k.value {
                        prop_assert!(!delta.remove.contains(r), "kept membership removed");
                    }
                }
            }
            if keep_title {
                prop_assert!(!order.changes.properties.contains_key("title"), "kept title changed");
            }
        }
    }
}
