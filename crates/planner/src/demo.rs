//! A small, complete organization: what the quickstart runs and what the end-to-end tests
//! check. Copy it as the starting point of your own setup.
//!
//! - An HR source of a few dozen identities ([`people`]) in four departments.
//! - A policy ([`planner_config`]): every employee gets an AD-like account (`cn` and
//!   `sAMAccountName` from the login, attributes from HR, an initial password that must be
//!   changed), placed in the OU of their department (a query rule), member of `AllStaff`, of
//!   their department's group and of a role group; the account exists disabled 14 days before
//!   arrival and is enabled from arrival to departure. IT administrators also get a privileged
//!   `adm-` account in `OU=Admins`, which requires provisioning review.
//! - The OUs ([`ous`]) and groups ([`groups`]) the policy refers to; the orchestrator's `demo`
//!   module seeds them into the in-memory directory.

use crate::ComparisonType;
use crate::plan::{CorrelationKey, PlannerConfig};
use crate::policy::{
    Criteria, Multiplicity, NavigationRule, QueryRule, RoleModel, RoleRule, ScalarBinding,
    ScalarRule, SingleRole, TimeOffset, TypeRule,
};
use autoprov_core::{Owner, PropertyValue, Reference, ResourceType, ScalarValue, Secret};
use chrono::{DateTime, TimeDelta, Utc};

/// The connection id of the demo directory.
pub const CONNECTION: &str = "ad-demo";
/// The nominative account resource type.
pub const ACCOUNT: &str = "AD_Entry_NominativeUser";
/// The privileged account resource type (requires review).
pub const ADMIN_ACCOUNT: &str = "AD_Entry_AdminUser";
/// The naming context.
pub const BASE_DN: &str = "DC=example,DC=test";
/// The departments, each with an OU and a group.
pub const DEPARTMENTS: [&str; 4] = ["Sales", "IT", "Finance", "HR"];
/// Groups that only requests grant.
pub const REQUESTABLE_GROUPS: [&str; 2] = ["Finance-Approvers", "VPN-Users"];

/// The DN of an OU.
pub fn ou_dn(name: &str) -> String {
    format!("OU={name},{BASE_DN}")
}

/// A reference to a group of `OU=Groups`.
pub fn group(name: &str) -> Reference {
    group_in(BASE_DN, name)
}

/// A reference to a group of `OU=Groups` below `base`.
pub fn group_in(base: &str, name: &str) -> Reference {
    Reference::dn(format!("CN={name},OU=Groups,{base}"))
}

/// Every OU the policy refers to (departments, `Admins`, `Groups`).
pub fn ous() -> impl Iterator<Item = &'static str> {
    DEPARTMENTS.iter().copied().chain(["Admins", "Groups"])
}

/// Every group the policy refers to.
pub fn groups() -> impl Iterator<Item = &'static str> {
    DEPARTMENTS
        .iter()
        .copied()
        .chain(["AllStaff", "Managers", "Domain-Operators"])
        .chain(REQUESTABLE_GROUPS)
}

/// The HR source: `count` identities (use a few dozen), spread over the departments, all
/// arrived a year before `now`. Every seventh is a manager, every fifth in IT is an
/// administrator.
pub fn people(count: usize, now: DateTime<Utc>) -> Vec<Owner> {
    const FIRST: [&str; 12] = [
        "Ada", "Boris", "Chloé", "Dmitri", "Élodie", "Farid", "Greta", "Hiro", "Ines", "Jonas",
        "Kemal", "Lena",
    ];
    const LAST: [&str; 8] = [
        "Martin", "Nguyen", "Okafor", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka",
    ];
    (0..count)
        .map(|i| {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len() + i) % LAST.len()];
            let department = DEPARTMENTS[i % DEPARTMENTS.len()];
            let title = if i % 7 == 0 {
                "Manager"
            } else if department == "IT" && i % 5 == 0 {
                "Administrator"
            } else {
                "Specialist"
            };
            employee(
                i,
                first,
                last,
                department,
                title,
                now - TimeDelta::days(365),
            )
        })
        .collect()
}

/// One identity of the HR source.
pub fn employee(
    number: usize,
    first: &str,
    last: &str,
    department: &str,
    title: &str,
    arrival: DateTime<Utc>,
) -> Owner {
    let login = format!(
        "{}{}",
        first
            .chars()
            .next()
            .map(|c| c.to_lowercase().to_string())
            .unwrap_or_default(),
        ascii_lower(last)
    ) + &format!("{number}");
    Owner::new(format!("E{number:04}"), login.clone())
        .with_entity_type("Directory_User")
        .with("login", login)
        .with("employeeId", format!("E{number:04}"))
        .with("firstName", first)
        .with("lastName", last)
        .with("department", department)
        .with("title", title)
        .with("arrival", ScalarValue::from(arrival))
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn text(o: &Owner, property: &str) -> Option<String> {
    o.get(property)
        .and_then(PropertyValue::as_scalar)
        .and_then(ScalarValue::as_str)
        .map(str::to_owned)
}

/// The resource types and the policy, below [`BASE_DN`].
pub fn planner_config() -> PlannerConfig {
    planner_config_in(BASE_DN)
}

/// The resource types and the policy, with the groups below `base` (e.g. a test's own OU).
pub fn planner_config_in(base: &str) -> PlannerConfig {
    let group = |name: &str| group_in(base, name);
    let account = ResourceType::new(ACCOUNT, ACCOUNT, "Directory_User", "user", CONNECTION);
    let mut admin = ResourceType::new(
        ADMIN_ACCOUNT,
        ADMIN_ACCOUNT,
        "Directory_User",
        "user",
        CONNECTION,
    );
    admin.require_provisioning_review = true;
    admin.depends_on = Some(ACCOUNT.into());

    let days = TimeDelta::days;
    let mut model = RoleModel::new()
        .period_from("arrival", "departure")
        .single_role(SingleRole::new("it-admin", "IT administrator"))
        .single_role(SingleRole::new("manager", "People manager"))
        .role_rule(RoleRule::new(
            "it-admin",
            Criteria::always()
                .dimension("department", "IT")
                .dimension("title", "Administrator"),
        ))
        .role_rule(RoleRule::new(
            "manager",
            Criteria::always().dimension("title", "Manager"),
        ))
        // The account exists 14 days before arrival (disabled) and until departure.
        .type_rule(
            TypeRule::new(ACCOUNT, Criteria::always())
                .offset(TimeOffset::around(days(14), days(0))),
        )
        .type_rule(TypeRule::new(
            ADMIN_ACCOUNT,
            Criteria::always().role("it-admin"),
        ))
        .declare_navigation(ACCOUNT, "memberOf", Multiplicity::Multi)
        .declare_navigation(ADMIN_ACCOUNT, "memberOf", Multiplicity::Multi);
    for (rt, prefix) in [(ACCOUNT, ""), (ADMIN_ACCOUNT, "adm-")] {
        let name = move |o: &Owner| text(o, "login").map(|l| format!("{prefix}{l}").into());
        model = model
            .scalar_rule(
                ScalarRule::computed(rt, "cn", name).comparison(ComparisonType::IgnoreCase),
            )
            .scalar_rule(
                ScalarRule::computed(rt, "sAMAccountName", name)
                    .comparison(ComparisonType::IgnoreCase),
            )
            .scalar_rule(ScalarRule::from_owner(rt, "employeeID", "employeeId"))
            .scalar_rule(ScalarRule::computed(rt, "displayName", move |o| {
                Some(
                    format!(
                        "{}{} {}",
                        if prefix.is_empty() { "" } else { "[admin] " },
                        text(o, "firstName")?,
                        text(o, "lastName")?
                    )
                    .into(),
                )
            }))
            .scalar_rule(
                ScalarRule::computed(rt, "password", |o| {
                    Some(Secret::new(format!("Init-{}-2026!", o.id)).into())
                })
                .write_only(),
            )
            .scalar_rule(ScalarRule::literal(rt, "mustChangePassword", true).write_only())
            .scalar_rule(
                ScalarRule::literal(rt, "enabled", false)
                    .offset(TimeOffset::before_start(days(14), days(0))),
            )
            .scalar_rule(ScalarRule::literal(rt, "enabled", true));
    }
    model = model
        .scalar_rule(ScalarRule::from_owner(ACCOUNT, "department", "department"))
        .scalar_rule(ScalarRule::from_owner(ACCOUNT, "title", "title"))
        .scalar_rule(ScalarRule::from_owner(ACCOUNT, "givenName", "firstName"))
        .scalar_rule(ScalarRule::from_owner(ACCOUNT, "sn", "lastName"))
        .query_rule(QueryRule::new(
            ACCOUNT,
            "parentdn",
            ScalarBinding::OwnerProperty("department".into()),
            "organizationalUnit",
            "ou",
        ))
        .query_rule(QueryRule::new(
            ADMIN_ACCOUNT,
            "parentdn",
            ScalarBinding::Literal("Admins".into()),
            "organizationalUnit",
            "ou",
        ))
        .navigation_rule(NavigationRule::new(ACCOUNT, "memberOf", group("AllStaff")))
        .navigation_rule(
            NavigationRule::new(ACCOUNT, "memberOf", group("Managers"))
                .when(Criteria::always().role("manager")),
        )
        .navigation_rule(NavigationRule::new(
            ADMIN_ACCOUNT,
            "memberOf",
            group("Domain-Operators"),
        ));
    for d in DEPARTMENTS {
        model = model.navigation_rule(
            NavigationRule::new(ACCOUNT, "memberOf", group(d))
                .when(Criteria::always().dimension("department", d)),
        );
    }
    PlannerConfig::new(vec![account, admin], model)
        .correlate(ACCOUNT, CorrelationKey::new("employeeId", "employeeID"))
        .correlate(
            ADMIN_ACCOUNT,
            CorrelationKey::new("employeeId", "employeeID"),
        )
}

/// Whether an exported account lives in an OU named `Admins`.
pub fn is_admin_account(r: &autoprov_core::Resource) -> bool {
    r.get("parentdn")
        .and_then(PropertyValue::as_reference)
        .and_then(Reference::dn_value)
        .is_some_and(|dn| {
            dn.get(..10)
                .is_some_and(|rdn| rdn.eq_ignore_ascii_case("OU=Admins,"))
        })
}
