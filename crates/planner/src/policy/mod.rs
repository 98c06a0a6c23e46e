//! The role model (SPEC §2): single and composite roles, and the rules that turn an owner into
//! expected assignments — type rules, scalar rules, navigation rules, query rules — each with
//! criteria and a time offset relative to the owner's assignment period.
//!
//! [`RoleModel`] is plain configuration; the [`Planner`](crate::Planner) compiles it once
//! (indexing rules by their criteria so an owner only looks at the rules that can match it)
//! and evaluates it per owner.

mod compile;
mod criteria;
mod evaluate;
mod roles;
mod rules;
mod time_offsets;
mod view;

pub use criteria::Criteria;
pub(crate) use evaluate::{
    CompiledKept, CompiledRequest, KeptTarget, Lookups, OwnerExpectation, OwnerExtras,
    RemovalTarget, RequestTarget, RtExpectation,
};
pub use roles::{CompositeRole, RoleRule, SingleRole};
pub use rules::{
    ComputeFn, DateFormat, Multiplicity, NavigationRule, QueryRule, RuleKind, ScalarBinding,
    ScalarRule, TryComputeFn, TypeRule,
};
pub use time_offsets::{TimeOffset, TimeOffsetReference};
pub(crate) use view::OwnerView;

use crate::compare::ComparisonType;
use crate::targets::{RefId, Sym};
use autoprov_core::{LocalTimeZone, ResourceType, ResourceTypeId, RoleId};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

use criteria::{CriteriaIndex, criteria_match};
use rules::BindingFailure;

/// The whole role model.
#[derive(Clone, Debug, Default)]
pub struct RoleModel {
    /// Single roles.
    pub single_roles: Vec<SingleRole>,
    /// Composite roles.
    pub composite_roles: Vec<CompositeRole>,
    /// Rules giving roles.
    pub role_rules: Vec<RoleRule>,
    /// Type rules.
    pub type_rules: Vec<TypeRule>,
    /// Scalar rules, in priority order.
    pub scalar_rules: Vec<ScalarRule>,
    /// Navigation rules.
    pub navigation_rules: Vec<NavigationRule>,
    /// Query rules, in priority order (after navigation rules for mono-valued properties).
    pub query_rules: Vec<QueryRule>,
    /// Declared navigations: multiplicity, and properties governed without any rule (so that
    /// manual requests can name them).
    pub navigations: BTreeMap<(ResourceTypeId, String), Multiplicity>,
    /// Declared scalars governed without any rule (for manual requests), with their
    /// comparison.
    pub scalars: BTreeMap<(ResourceTypeId, String), ComparisonType>,
    /// Where the assignment period comes from; `None` ⇒ always.
    pub owner_period: Option<OwnerPeriod>,
    /// The time zone in which dates without an offset are read (an arrival or departure date,
    /// a local date-time) and in which whole-day time offsets count calendar days. Default:
    /// UTC.
    pub time_zone: LocalTimeZone,
}

impl RoleModel {
    /// An empty role model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a single role.
    pub fn single_role(mut self, role: SingleRole) -> Self {
        self.single_roles.push(role);
        self
    }

    /// Adds a composite role.
    pub fn composite_role(mut self, role: CompositeRole) -> Self {
        self.composite_roles.push(role);
        self
    }

    /// Adds a role rule.
    pub fn role_rule(mut self, rule: RoleRule) -> Self {
        self.role_rules.push(rule);
        self
    }

    /// Adds a type rule.
    pub fn type_rule(mut self, rule: TypeRule) -> Self {
        self.type_rules.push(rule);
        self
    }

    /// Adds a scalar rule.
    pub fn scalar_rule(mut self, rule: ScalarRule) -> Self {
        self.scalar_rules.push(rule);
        self
    }

    /// Adds a navigation rule.
    pub fn navigation_rule(mut self, rule: NavigationRule) -> Self {
        self.navigation_rules.push(rule);
        self
    }

    /// Adds a query rule.
    pub fn query_rule(mut self, rule: QueryRule) -> Self {
        self.query_rules.push(rule);
        self
    }

    /// Declares a navigation property of a resource type.
    pub fn declare_navigation(
        mut self,
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        multiplicity: Multiplicity,
    ) -> Self {
        self.navigations
            .insert((resource_type.into(), property.into()), multiplicity);
        self
    }

    /// Declares a scalar property of a resource type governed without a rule.
    pub fn declare_scalar(
        mut self,
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        comparison: ComparisonType,
    ) -> Self {
        self.scalars
            .insert((resource_type.into(), property.into()), comparison);
        self
    }

    /// Reads dates in `zone` (see [`RoleModel::time_zone`](Self#structfield.time_zone)).
    pub fn in_time_zone(mut self, zone: LocalTimeZone) -> Self {
        self.time_zone = zone;
        self
    }

    /// Reads the assignment period from two owner properties.
    pub fn period_from(
        mut self,
        start_property: impl Into<String>,
        end_property: impl Into<String>,
    ) -> Self {
        self.owner_period = Some(OwnerPeriod {
            start_property: Some(start_property.into()),
            end_property: Some(end_property.into()),
        });
        self
    }
}

/// The owner properties holding the assignment period (e.g. arrival and departure dates).
/// Values are date-times (instants), RFC 3339 text, local date-times or dates read in the role
/// model's time zone; a date alone is a whole local day, so an end date is inclusive (it lasts
/// until the next local midnight). An absent value leaves that side open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerPeriod {
    /// Owner property holding the start.
    pub start_property: Option<String>,
    /// Owner property holding the end.
    pub end_property: Option<String>,
}

#[derive(Debug, Clone)]
struct CompiledNav {
    sym: Sym,
    reference: RefId,
    multi: bool,
    criteria: Criteria,
    time_offset: TimeOffset,
}

/// Per resource type: the governed properties and the rules that compute them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RtPolicy {
    /// Governed scalars with their comparison and mapping (sorted by symbol).
    pub(crate) scalars: Vec<(Sym, ComparisonType, bool)>,
    /// Governed mono-valued navigations (sorted).
    pub(crate) mono: Vec<Sym>,
    /// Governed multi-valued navigations (sorted).
    pub(crate) multi: Vec<Sym>,
    /// Scalar rules by property symbol, in priority order (indices into `scalar_rules`).
    scalar_rules: Vec<(Sym, Vec<usize>)>,
    navs: Vec<CompiledNav>,
    nav_index: CriteriaIndex,
    /// Indices into `query_rules`.
    queries: Vec<(usize, Sym, bool)>,
}

/// The role model compiled against the resource types.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPolicy {
    pub(crate) rts: Vec<ResourceType>,
    pub(crate) rt_ids: FxHashMap<ResourceTypeId, usize>,
    /// Resource types in dependency order (a type after the type it depends on).
    pub(crate) dependency_order: Vec<usize>,
    pub(crate) per_rt: Vec<RtPolicy>,
    composites: FxHashMap<RoleId, Vec<RoleId>>,
    role_rules: Vec<RoleRule>,
    role_index: CriteriaIndex,
    type_rules: Vec<(usize, TypeRule)>,
    type_index: CriteriaIndex,
    scalar_rules: Vec<ScalarRule>,
    /// Per scalar rule: the owner property its binding reads, interned.
    scalar_syms: Vec<Option<Sym>>,
    query_rules: Vec<QueryRule>,
    /// Per query rule: the owner property its source reads, interned.
    query_syms: Vec<Option<Sym>>,
    owner_period: Option<OwnerPeriod>,
    time_zone: LocalTimeZone,
}

impl CompiledPolicy {
    /// The multi-valued references that navigation rules grant under a single role:
    /// (resource type, property, reference, role), for "rules in reverse".
    pub(crate) fn role_grants(&self) -> Vec<(usize, Sym, RefId, RoleId)> {
        self.per_rt
            .iter()
            .enumerate()
            .flat_map(|(rt, p)| {
                p.navs.iter().filter(|n| n.multi).filter_map(move |n| {
                    let role = n.criteria.single_role.clone()?;
                    Some((rt, n.sym, n.reference, role))
                })
            })
            .collect()
    }
}
