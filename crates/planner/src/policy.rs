//! The role model (SPEC §2): single and composite roles, and the rules that turn an owner into
//! expected assignments — type rules, scalar rules, navigation rules, query rules — each with
//! criteria and a time offset relative to the owner's assignment period.
//!
//! [`RoleModel`] is plain configuration; the [`Planner`](crate::Planner) compiles it once
//! (indexing rules by their criteria so an owner only looks at the rules that can match it)
//! and evaluates it per owner.

use crate::compare::ComparisonType;
use crate::error::{ConfigError, EvaluationError};
use crate::targets::{RefId, References, Sym, Symbols, TargetIdx};
use autoprov_core::{
    EntityTypeId, Owner, Period, PropertyValue, Reference, ResourceType, ResourceTypeId, RoleId,
    ScalarValue, WorkflowState,
};
use chrono::{DateTime, TimeDelta, Utc};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// A single role: a named set of entitlements that type and navigation rules can require.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleRole {
    /// Its id.
    pub id: RoleId,
    /// Its readable identifier.
    pub identifier: String,
}

impl SingleRole {
    /// A single role.
    pub fn new(id: impl Into<RoleId>, identifier: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
        }
    }
}

/// A composite role: holding it grants each of its single roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompositeRole {
    /// Its id.
    pub id: RoleId,
    /// Its readable identifier.
    pub identifier: String,
    /// The single roles it grants.
    pub single_roles: BTreeSet<RoleId>,
}

impl CompositeRole {
    /// A composite role granting the given single roles.
    pub fn new(
        id: impl Into<RoleId>,
        identifier: impl Into<String>,
        single_roles: impl IntoIterator<Item = RoleId>,
    ) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
            single_roles: single_roles.into_iter().collect(),
        }
    }
}

/// Owner criteria of a rule: every listed dimension must hold one of its accepted values, and
/// the owner must hold `single_role` when set. Empty criteria match every owner.
///
/// Dimension values are compared with the owner property's text form (case-sensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Owner property ⇒ accepted values.
    pub dimensions: BTreeMap<String, BTreeSet<String>>,
    /// A role the owner must hold (single or composite).
    pub single_role: Option<RoleId>,
}

impl Criteria {
    /// Criteria that match every owner.
    pub fn always() -> Self {
        Self::default()
    }

    /// Adds an accepted value for a dimension (several calls on one dimension accept any of
    /// the values).
    pub fn dimension(mut self, property: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions
            .entry(property.into())
            .or_default()
            .insert(value.into());
        self
    }

    /// Requires a role.
    pub fn role(mut self, role: impl Into<RoleId>) -> Self {
        self.single_role = Some(role.into());
        self
    }
}

/// A rule that gives owners a role when its criteria match (or forbids it, when denied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRule {
    /// The role given (single or composite).
    pub role: RoleId,
    /// Dimensions only.
    pub criteria: Criteria,
    /// Forbids the role instead (`IsDenied`).
    pub is_denied: bool,
}

impl RoleRule {
    /// A rule giving `role` to owners matching `criteria`.
    pub fn new(role: impl Into<RoleId>, criteria: Criteria) -> Self {
        Self {
            role: role.into(),
            criteria,
            is_denied: false,
        }
    }

    /// Makes it a denying rule.
    pub fn denied(mut self) -> Self {
        self.is_denied = true;
        self
    }
}

/// What a type rule does with the resource type it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum RuleKind {
    /// The owner gets it automatically (workflow state Calculated, or GivenByRole when the
    /// rule requires a role). Produces orders.
    #[default]
    Required,
    /// Assigned automatically but waits for a person to validate it
    /// (`AutomaticButWithValidation`); produces orders once an approved assignment request for
    /// the same resource type exists.
    RequestedAutomatically,
    /// Only suggested to whoever requests for the owner; never produces orders.
    Suggested,
}

/// Where a rule's time window is anchored, relative to the owner's assignment period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum TimeOffsetReference {
    /// Exactly the assignment period `[start, end)`.
    #[default]
    Default,
    /// The period widened: `[start - before, end + after)`.
    Around,
    /// Around the start: `[start - before, start + after)`. Never holds without a start.
    Before,
    /// Around the end: `[end - before, end + after)`. Never holds without an end.
    After,
}

/// A rule's time window relative to the owner's assignment period (e.g. an account that exists
/// disabled 30 days before arrival: a type rule `Around` with `before = 30 days`, and a scalar
/// rule `Before` with `before = 30 days` setting the disabled flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TimeOffset {
    /// The anchor.
    pub reference: TimeOffsetReference,
    /// How long before the anchor the window opens.
    pub before: TimeDelta,
    /// How long after the anchor the window closes.
    pub after: TimeDelta,
}

impl TimeOffset {
    /// Exactly the assignment period.
    pub const DEFAULT: TimeOffset = TimeOffset {
        reference: TimeOffsetReference::Default,
        before: TimeDelta::zero(),
        after: TimeDelta::zero(),
    };

    /// `[start - before, end + after)`.
    pub fn around(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::Around,
            before,
            after,
        }
    }

    /// `[start - before, start + after)`.
    pub fn before_start(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::Before,
            before,
            after,
        }
    }

    /// `[end - before, end + after)`.
    pub fn after_end(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::After,
            before,
            after,
        }
    }

    /// The window this offset gives for an assignment period, or `None` when it can never hold
    /// (a `Before`/`After` anchor that the period does not have).
    pub fn window(&self, period: Period) -> Option<Period> {
        let shift = |d: Option<DateTime<Utc>>, by: TimeDelta| d.map(|d| d + by);
        match self.reference {
            TimeOffsetReference::Default => Some(period),
            TimeOffsetReference::Around => Some(Period::new(
                shift(period.start, -self.before),
                shift(period.end, self.after),
            )),
            TimeOffsetReference::Before => {
                let start = period.start?;
                Some(Period::new(
                    Some(start - self.before),
                    Some(start + self.after),
                ))
            }
            TimeOffsetReference::After => {
                let end = period.end?;
                Some(Period::new(Some(end - self.before), Some(end + self.after)))
            }
        }
    }
}

/// A computed scalar: `None` when the owner gives no value.
pub type ComputeFn = Arc<dyn Fn(&Owner) -> Option<ScalarValue> + Send + Sync>;

/// A computed scalar that can fail; the failure marks the owner's items `Error`.
pub type TryComputeFn = Arc<dyn Fn(&Owner) -> Result<Option<ScalarValue>, String> + Send + Sync>;

/// Where a scalar rule (or a query rule's searched value) takes its value.
#[derive(Clone)]
#[non_exhaustive]
pub enum ScalarBinding {
    /// An owner property (a scalar; absent ⇒ no value).
    OwnerProperty(String),
    /// A fixed value.
    Literal(ScalarValue),
    /// A Rust closure.
    Computed(ComputeFn),
    /// A Rust closure that may fail.
    TryComputed(TryComputeFn),
}

impl fmt::Debug for ScalarBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerProperty(p) => write!(f, "OwnerProperty({p:?})"),
            Self::Literal(v) => write!(f, "Literal({v:?})"),
            Self::Computed(_) => f.write_str("Computed(<closure>)"),
            Self::TryComputed(_) => f.write_str("TryComputed(<closure>)"),
        }
    }
}

impl ScalarBinding {
    /// A closure binding.
    pub fn computed(f: impl Fn(&Owner) -> Option<ScalarValue> + Send + Sync + 'static) -> Self {
        Self::Computed(Arc::new(f))
    }

    /// A fallible closure binding.
    pub fn try_computed(
        f: impl Fn(&Owner) -> Result<Option<ScalarValue>, String> + Send + Sync + 'static,
    ) -> Self {
        Self::TryComputed(Arc::new(f))
    }

    fn evaluate<'a>(
        &'a self,
        owner: &'a Owner,
    ) -> Result<Option<Cow<'a, ScalarValue>>, BindingFailure> {
        match self {
            Self::OwnerProperty(p) => match owner.get(p) {
                None => Ok(None),
                Some(PropertyValue::Scalar(s)) => Ok(Some(Cow::Borrowed(s))),
                Some(other) => Err(BindingFailure::Kind {
                    property: p.clone(),
                    found: other.kind_name(),
                }),
            },
            Self::Literal(v) => Ok(Some(Cow::Borrowed(v))),
            Self::Computed(f) => Ok(f(owner).map(Cow::Owned)),
            Self::TryComputed(f) => f(owner)
                .map(|v| v.map(Cow::Owned))
                .map_err(BindingFailure::Rule),
        }
    }
}

enum BindingFailure {
    Kind {
        property: String,
        found: &'static str,
    },
    Rule(String),
}

/// Turns an owner into "the owner gets a target of this resource type".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRule {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// Who gets it.
    pub criteria: Criteria,
    /// Required, requested automatically or suggested.
    pub kind: RuleKind,
    /// Forbids the resource type instead (`IsDenied`); wins over every other rule and request.
    pub is_denied: bool,
    /// When, relative to the owner's assignment period.
    pub time_offset: TimeOffset,
}

impl TypeRule {
    /// A Required rule with the default time offset.
    pub fn new(resource_type: impl Into<ResourceTypeId>, criteria: Criteria) -> Self {
        Self {
            resource_type: resource_type.into(),
            criteria,
            kind: RuleKind::Required,
            is_denied: false,
            time_offset: TimeOffset::DEFAULT,
        }
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: RuleKind) -> Self {
        self.kind = kind;
        self
    }

    /// Makes it a denying rule.
    pub fn denied(mut self) -> Self {
        self.is_denied = true;
        self
    }

    /// Sets the time offset.
    pub fn offset(mut self, offset: TimeOffset) -> Self {
        self.time_offset = offset;
        self
    }
}

/// Computes one scalar property of the target. For one property, the first rule (in
/// declaration order) whose criteria match, whose window holds and that yields a value wins.
#[derive(Clone, Debug)]
pub struct ScalarRule {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The target property.
    pub property: String,
    /// Where the value comes from.
    pub binding: ScalarBinding,
    /// Who the rule applies to.
    pub criteria: Criteria,
    /// How the value is compared with the actual one.
    pub comparison: ComparisonType,
    /// `IsMapped`: when false the property is write-only — sent when the target is created,
    /// never compared afterwards (e.g. an initial password).
    pub is_mapped: bool,
    /// When, relative to the owner's assignment period.
    pub time_offset: TimeOffset,
}

impl ScalarRule {
    /// A rule with any binding, matching every owner, compared case-sensitively.
    pub fn new(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        binding: ScalarBinding,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            property: property.into(),
            binding,
            criteria: Criteria::always(),
            comparison: ComparisonType::CaseSensitive,
            is_mapped: true,
            time_offset: TimeOffset::DEFAULT,
        }
    }

    /// The target property copies an owner property.
    pub fn from_owner(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        owner_property: impl Into<String>,
    ) -> Self {
        Self::new(
            resource_type,
            property,
            ScalarBinding::OwnerProperty(owner_property.into()),
        )
    }

    /// The target property holds a fixed value.
    pub fn literal(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        value: impl Into<ScalarValue>,
    ) -> Self {
        Self::new(
            resource_type,
            property,
            ScalarBinding::Literal(value.into()),
        )
    }

    /// The target property is computed by a closure.
    pub fn computed(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        f: impl Fn(&Owner) -> Option<ScalarValue> + Send + Sync + 'static,
    ) -> Self {
        Self::new(resource_type, property, ScalarBinding::computed(f))
    }

    /// Restricts the rule to owners matching `criteria`.
    pub fn when(mut self, criteria: Criteria) -> Self {
        self.criteria = criteria;
        self
    }

    /// Sets the comparison type.
    pub fn comparison(mut self, comparison: ComparisonType) -> Self {
        self.comparison = comparison;
        self
    }

    /// Makes the property write-only (`IsMapped = false`).
    pub fn write_only(mut self) -> Self {
        self.is_mapped = false;
        self
    }

    /// Sets the time offset.
    pub fn offset(mut self, offset: TimeOffset) -> Self {
        self.time_offset = offset;
        self
    }
}

/// Whether a navigation holds one reference or a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Multiplicity {
    /// One reference (`parentdn`, `manager`): the first matching rule wins.
    Mono,
    /// A set (`memberOf`): every matching rule adds its reference; changes are deltas.
    Multi,
}

/// A fixed reference under criteria (e.g. a group membership).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NavigationRule {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The navigation property.
    pub property: String,
    /// The reference.
    pub value: Reference,
    /// Who the rule applies to.
    pub criteria: Criteria,
    /// When, relative to the owner's assignment period.
    pub time_offset: TimeOffset,
}

impl NavigationRule {
    /// A rule matching every owner. The property is multi-valued unless declared otherwise
    /// with [`RoleModel::declare_navigation`].
    pub fn new(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        value: Reference,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            property: property.into(),
            value,
            criteria: Criteria::always(),
            time_offset: TimeOffset::DEFAULT,
        }
    }

    /// Restricts the rule to owners matching `criteria`.
    pub fn when(mut self, criteria: Criteria) -> Self {
        self.criteria = criteria;
        self
    }

    /// Sets the time offset.
    pub fn offset(mut self, offset: TimeOffset) -> Self {
        self.time_offset = offset;
        self
    }
}

/// A reference found by matching a value computed from the owner against a property of the
/// planner's lookup resources (e.g. `parentdn` = the OU whose `ou` equals the owner's
/// department). The reference is `{reference_key: <resource id>}` of the match.
///
/// No match, or several for a mono-valued property, is an evaluation failure for the owner.
#[derive(Clone, Debug)]
pub struct QueryRule {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The navigation property.
    pub property: String,
    /// The value searched for.
    pub source: ScalarBinding,
    /// The entity type of the resources searched (see
    /// [`Planner::upsert_lookup`](crate::Planner::upsert_lookup)).
    pub target_entity_type: EntityTypeId,
    /// Their property compared with the value (`Id` means the resource id).
    pub target_property: String,
    /// How the values are compared.
    pub comparison: ComparisonType,
    /// The key of the reference written (default `dn`).
    pub reference_key: String,
    /// Who the rule applies to.
    pub criteria: Criteria,
    /// When, relative to the owner's assignment period.
    pub time_offset: TimeOffset,
}

impl QueryRule {
    /// A rule matching every owner, comparing case-insensitively, writing `dn` references.
    /// The property is mono-valued unless declared otherwise.
    pub fn new(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        source: ScalarBinding,
        target_entity_type: impl Into<EntityTypeId>,
        target_property: impl Into<String>,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            property: property.into(),
            source,
            target_entity_type: target_entity_type.into(),
            target_property: target_property.into(),
            comparison: ComparisonType::IgnoreCase,
            reference_key: "dn".into(),
            criteria: Criteria::always(),
            time_offset: TimeOffset::DEFAULT,
        }
    }

    /// Restricts the rule to owners matching `criteria`.
    pub fn when(mut self, criteria: Criteria) -> Self {
        self.criteria = criteria;
        self
    }

    /// Sets the comparison type.
    pub fn comparison(mut self, comparison: ComparisonType) -> Self {
        self.comparison = comparison;
        self
    }
}

/// The owner properties holding the assignment period (e.g. arrival and departure dates).
/// Values must be date-times; an absent value leaves that side open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerPeriod {
    /// Owner property holding the start.
    pub start_property: Option<String>,
    /// Owner property holding the end.
    pub end_property: Option<String>,
}

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

// ---------------------------------------------------------------------------------------------
// Compiled form.

/// Rules indexed by one dimension of their criteria, so an owner only checks the rules whose
/// first dimension accepts its value (plus the rules without dimensions).
#[derive(Debug, Default, Clone)]
struct CriteriaIndex {
    by_dimension: Vec<(String, FxHashMap<String, Vec<u32>>)>,
    unindexed: Vec<u32>,
    /// Rules whose criteria the index lookup fully decides (at most one dimension, no role):
    /// being a candidate means matching.
    decided: Vec<bool>,
}

impl CriteriaIndex {
    fn build<'a>(criteria: impl Iterator<Item = &'a Criteria>) -> Self {
        let mut index = Self::default();
        for (i, c) in criteria.enumerate() {
            let i = i as u32;
            index
                .decided
                .push(c.dimensions.len() <= 1 && c.single_role.is_none());
            match c.dimensions.iter().next() {
                None => index.unindexed.push(i),
                Some((dim, values)) => {
                    let pos = match index.by_dimension.iter().position(|(d, _)| d == dim) {
                        Some(p) => p,
                        None => {
                            index.by_dimension.push((dim.clone(), FxHashMap::default()));
                            index.by_dimension.len() - 1
                        }
                    };
                    for v in values {
                        index.by_dimension[pos]
                            .1
                            .entry(v.clone())
                            .or_default()
                            .push(i);
                    }
                }
            }
        }
        index
    }

    /// Rule indices that may match, in declaration order.
    fn candidates(&self, owner: &Owner, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.unindexed);
        for (dim, values) in &self.by_dimension {
            if let Some(text) = dimension_text(owner, dim)
                && let Some(rules) = values.get(text.as_ref())
            {
                out.extend_from_slice(rules);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Whether candidate `i` matches: decided by the index, or by checking its criteria.
    fn matches(&self, i: u32, c: &Criteria, owner: &Owner, roles: &BTreeSet<RoleId>) -> bool {
        self.decided[i as usize] || criteria_match(c, owner, roles)
    }
}

fn dimension_text<'a>(owner: &'a Owner, property: &str) -> Option<Cow<'a, str>> {
    match owner.get(property)? {
        PropertyValue::Scalar(ScalarValue::String(s)) => Some(Cow::Borrowed(s)),
        PropertyValue::Scalar(other) => Some(Cow::Owned(other.to_string())),
        PropertyValue::Reference(r) => Some(Cow::Owned(r.to_string())),
        PropertyValue::References(_) => None,
    }
}

fn criteria_match(c: &Criteria, owner: &Owner, roles: &BTreeSet<RoleId>) -> bool {
    if let Some(role) = &c.single_role
        && !roles.contains(role)
    {
        return false;
    }
    c.dimensions.iter().all(|(dim, accepted)| {
        dimension_text(owner, dim).is_some_and(|v| accepted.contains(v.as_ref()))
    })
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

impl RtPolicy {
    pub(crate) fn multiplicity(&self, sym: Sym) -> Option<Multiplicity> {
        if self.multi.binary_search(&sym).is_ok() {
            Some(Multiplicity::Multi)
        } else if self.mono.binary_search(&sym).is_ok() {
            Some(Multiplicity::Mono)
        } else {
            None
        }
    }

    pub(crate) fn scalar(&self, sym: Sym) -> Option<(ComparisonType, bool)> {
        self.scalars
            .binary_search_by_key(&sym, |(s, _, _)| *s)
            .ok()
            .map(|i| (self.scalars[i].1, self.scalars[i].2))
    }
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
    query_rules: Vec<QueryRule>,
    owner_period: Option<OwnerPeriod>,
}

impl CompiledPolicy {
    pub(crate) fn compile(
        resource_types: Vec<ResourceType>,
        model: RoleModel,
        syms: &mut Symbols,
        refs: &mut References,
    ) -> Result<Self, ConfigError> {
        let mut rt_ids = FxHashMap::default();
        for (i, rt) in resource_types.iter().enumerate() {
            rt.validate()?;
            if rt_ids.insert(rt.id.clone(), i).is_some() {
                return Err(ConfigError::DuplicateResourceType {
                    resource_type: rt.id.clone(),
                });
            }
        }
        let rt_of = |id: &ResourceTypeId, context: &str| {
            rt_ids
                .get(id)
                .copied()
                .ok_or_else(|| ConfigError::UnknownResourceType {
                    context: context.to_owned(),
                    resource_type: id.clone(),
                })
        };
        for rt in &resource_types {
            if let Some(dep) = &rt.depends_on {
                rt_of(dep, &format!("DependsOn of {}", rt.id))?;
            }
        }
        let dependency_order = dependency_order(&resource_types, &rt_ids)?;

        // Roles.
        let mut known_roles: BTreeSet<RoleId> =
            model.single_roles.iter().map(|r| r.id.clone()).collect();
        let mut composites = FxHashMap::default();
        for c in &model.composite_roles {
            for s in &c.single_roles {
                if !known_roles.contains(s) {
                    return Err(ConfigError::UnknownRole {
                        context: format!("composite role {}", c.id),
                        role: s.clone(),
                    });
                }
            }
            composites.insert(c.id.clone(), c.single_roles.iter().cloned().collect());
        }
        known_roles.extend(model.composite_roles.iter().map(|c| c.id.clone()));
        let check_role = |c: &Criteria, context: &str| -> Result<(), ConfigError> {
            match &c.single_role {
                Some(r) if !known_roles.contains(r) => Err(ConfigError::UnknownRole {
                    context: context.to_owned(),
                    role: r.clone(),
                }),
                _ => Ok(()),
            }
        };
        for r in &model.role_rules {
            if !known_roles.contains(&r.role) {
                return Err(ConfigError::UnknownRole {
                    context: "role rule".into(),
                    role: r.role.clone(),
                });
            }
            if r.criteria.single_role.is_some() {
                return Err(ConfigError::RoleCriterionInRoleRule {
                    role: r.role.clone(),
                });
            }
        }

        // Type rules.
        let mut type_rules = Vec::new();
        for r in &model.type_rules {
            let rt = rt_of(&r.resource_type, "type rule")?;
            check_role(&r.criteria, &format!("type rule for {}", r.resource_type))?;
            type_rules.push((rt, r.clone()));
        }

        // Per resource type properties.
        let mut per_rt = vec![RtPolicy::default(); resource_types.len()];
        let mut multiplicity: BTreeMap<(usize, Sym), Multiplicity> = BTreeMap::new();
        let mut scalar_props: BTreeMap<(usize, Sym), (ComparisonType, bool)> = BTreeMap::new();
        for ((rt_id, prop), cmp) in &model.scalars {
            let rt = rt_of(rt_id, &format!("declared scalar `{prop}`"))?;
            scalar_props.insert((rt, syms.intern(prop)), (*cmp, true));
        }
        for (i, r) in model.scalar_rules.iter().enumerate() {
            let rt = rt_of(
                &r.resource_type,
                &format!("scalar rule for `{}`", r.property),
            )?;
            check_role(&r.criteria, &format!("scalar rule for `{}`", r.property))?;
            let sym = syms.intern(&r.property);
            // The first rule of a property sets its comparison and mapping.
            scalar_props
                .entry((rt, sym))
                .or_insert((r.comparison, r.is_mapped));
            let rules = &mut per_rt[rt].scalar_rules;
            match rules.iter_mut().find(|(s, _)| *s == sym) {
                Some((_, list)) => list.push(i),
                None => rules.push((sym, vec![i])),
            }
        }
        // Explicit declarations first so that they win over rule defaults.
        for ((rt_id, prop), m) in &model.navigations {
            let rt = rt_of(rt_id, &format!("declared navigation `{prop}`"))?;
            multiplicity.insert((rt, syms.intern(prop)), *m);
        }
        for r in &model.navigation_rules {
            let rt = rt_of(
                &r.resource_type,
                &format!("navigation rule for `{}`", r.property),
            )?;
            check_role(
                &r.criteria,
                &format!("navigation rule for `{}`", r.property),
            )?;
            let sym = syms.intern(&r.property);
            multiplicity.entry((rt, sym)).or_insert(Multiplicity::Multi);
        }
        for r in &model.query_rules {
            let rt = rt_of(
                &r.resource_type,
                &format!("query rule for `{}`", r.property),
            )?;
            check_role(&r.criteria, &format!("query rule for `{}`", r.property))?;
            let sym = syms.intern(&r.property);
            multiplicity.entry((rt, sym)).or_insert(Multiplicity::Mono);
        }
        for (&(rt, sym), m) in &multiplicity {
            if scalar_props.contains_key(&(rt, sym)) {
                return Err(ConfigError::PropertyKindConflict {
                    resource_type: resource_types[rt].id.clone(),
                    property: syms.name(sym).to_owned(),
                });
            }
            match m {
                Multiplicity::Mono => per_rt[rt].mono.push(sym),
                Multiplicity::Multi => per_rt[rt].multi.push(sym),
            }
        }
        for (&(rt, sym), &(cmp, mapped)) in &scalar_props {
            per_rt[rt].scalars.push((sym, cmp, mapped));
        }
        for r in &model.navigation_rules {
            let rt = rt_ids[&r.resource_type];
            let sym = syms.intern(&r.property);
            per_rt[rt].navs.push(CompiledNav {
                sym,
                reference: refs.intern(&r.value),
                multi: multiplicity[&(rt, sym)] == Multiplicity::Multi,
                criteria: r.criteria.clone(),
                time_offset: r.time_offset,
            });
        }
        for (i, r) in model.query_rules.iter().enumerate() {
            let rt = rt_ids[&r.resource_type];
            let sym = syms.intern(&r.property);
            let multi = multiplicity[&(rt, sym)] == Multiplicity::Multi;
            per_rt[rt].queries.push((i, sym, multi));
        }
        for p in &mut per_rt {
            p.mono.sort_unstable();
            p.multi.sort_unstable();
            p.scalars.sort_unstable_by_key(|(s, _, _)| *s);
            p.scalar_rules.sort_unstable_by_key(|(s, _)| *s);
            p.nav_index = CriteriaIndex::build(p.navs.iter().map(|n| &n.criteria));
        }

        let role_index = CriteriaIndex::build(model.role_rules.iter().map(|r| &r.criteria));
        let type_index = CriteriaIndex::build(type_rules.iter().map(|(_, r)| &r.criteria));
        Ok(Self {
            rts: resource_types,
            rt_ids,
            dependency_order,
            per_rt,
            composites,
            role_rules: model.role_rules,
            role_index,
            type_rules,
            type_index,
            scalar_rules: model.scalar_rules,
            query_rules: model.query_rules,
            owner_period: model.owner_period,
        })
    }

    /// The query rules (for building lookups).
    pub(crate) fn query_rules(&self) -> &[QueryRule] {
        &self.query_rules
    }

    /// The roles an owner holds: role rules, composite roles expanded, denied roles removed.
    pub(crate) fn roles_of(&self, owner: &Owner, scratch: &mut Vec<u32>) -> BTreeSet<RoleId> {
        let mut granted = BTreeSet::new();
        let mut denied = BTreeSet::new();
        if self.role_rules.is_empty() {
            return granted;
        }
        self.role_index.candidates(owner, scratch);
        for &i in scratch.iter() {
            let rule = &self.role_rules[i as usize];
            if self.role_index.matches(i, &rule.criteria, owner, &granted) {
                if rule.is_denied {
                    denied.insert(rule.role.clone());
                } else {
                    granted.insert(rule.role.clone());
                }
            }
        }
        let expanded: Vec<RoleId> = granted
            .iter()
            .filter_map(|r| self.composites.get(r))
            .flatten()
            .cloned()
            .collect();
        granted.extend(expanded);
        for d in &denied {
            granted.remove(d);
            if let Some(singles) = self.composites.get(d) {
                for s in singles {
                    granted.remove(s);
                }
            }
        }
        granted
    }

    fn owner_period(&self, owner: &Owner) -> Result<Period, EvaluationError> {
        let Some(p) = &self.owner_period else {
            return Ok(Period::ALWAYS);
        };
        let read = |prop: &Option<String>| -> Result<Option<DateTime<Utc>>, EvaluationError> {
            let Some(prop) = prop else { return Ok(None) };
            match owner.get(prop) {
                None => Ok(None),
                Some(PropertyValue::Scalar(ScalarValue::DateTime(d))) => Ok(Some(*d)),
                Some(other) => Err(EvaluationError::InvalidOwnerProperty {
                    owner: owner.id.clone(),
                    property: prop.clone(),
                    expected: "a date-time",
                    found: other.kind_name(),
                }),
            }
        };
        Ok(Period::new(
            read(&p.start_property)?,
            read(&p.end_property)?,
        ))
    }

    /// Evaluates the role model for one owner.
    /// `targets[rt]` is the owner's correlated target of that type, if any: an existing
    /// target never receives write-only values, so they are not computed (an empty slice
    /// computes everything).
    pub(crate) fn evaluate<'a>(
        &'a self,
        owner: &'a Owner,
        extras: &'a OwnerExtras,
        lookups: &Lookups,
        now: DateTime<Utc>,
        targets: &[Option<TargetIdx>],
    ) -> Result<OwnerExpectation<'a>, EvaluationError> {
        let mut scratch = Vec::new();
        let roles = self.roles_of(owner, &mut scratch);
        let period = self.owner_period(owner)?;

        // Type rules ⇒ which resource types, with which workflow state and window.
        #[derive(Clone, Copy)]
        struct Candidate {
            workflow: WorkflowState,
            rank: u8,
            window: Period,
            eval_at: DateTime<Utc>,
        }
        let mut chosen: BTreeMap<usize, Candidate> = BTreeMap::new();
        let mut denied: BTreeSet<usize> = BTreeSet::new();
        let mut suggested: BTreeSet<usize> = BTreeSet::new();
        self.type_index.candidates(owner, &mut scratch);
        for &i in scratch.iter() {
            let (rt, rule) = &self.type_rules[i as usize];
            if !self.type_index.matches(i, &rule.criteria, owner, &roles) {
                continue;
            }
            let Some(window) = rule.time_offset.window(period) else {
                continue;
            };
            let ahead = TimeDelta::hours(i64::from(self.rts[*rt].fulfill_hours_ahead_of_time));
            let eval_at = if window.contains(now) {
                now
            } else if let Some(start) = window.start.filter(|s| *s > now && *s - ahead <= now) {
                start
            } else {
                continue;
            };
            if rule.is_denied {
                denied.insert(*rt);
                continue;
            }
            let (workflow, rank) = match rule.kind {
                RuleKind::Required if rule.criteria.single_role.is_some() => {
                    (WorkflowState::GivenByRole, 3)
                }
                RuleKind::Required => (WorkflowState::Calculated, 3),
                RuleKind::RequestedAutomatically => (WorkflowState::AutomaticButWithValidation, 2),
                RuleKind::Suggested => {
                    suggested.insert(*rt);
                    continue;
                }
            };
            let candidate = Candidate {
                workflow,
                rank,
                window,
                eval_at,
            };
            chosen
                .entry(*rt)
                .and_modify(|c| {
                    if rank > c.rank {
                        *c = candidate;
                    }
                })
                .or_insert(candidate);
        }

        // Approved manual requests.
        let mut manual_scalars: Vec<(usize, Sym, Option<&'a ScalarValue>)> = Vec::new();
        let mut manual_navs: Vec<(usize, Sym, RefId, bool)> = Vec::new();
        let mut cancelled: BTreeSet<usize> = BTreeSet::new();
        for req in &extras.requests {
            if self.rts[req.rt].discard_manual_assignments {
                continue;
            }
            if req.add {
                // Any approved addition (of the account, a value or a membership) means the
                // owner has the account.
                let c = chosen.entry(req.rt).or_insert(Candidate {
                    workflow: WorkflowState::Approved,
                    rank: 1,
                    window: Period::ALWAYS,
                    eval_at: now,
                });
                if !c.workflow.produces_orders() {
                    c.workflow = WorkflowState::Approved;
                }
            } else if req.what == RequestTarget::ResourceType {
                cancelled.insert(req.rt);
            }
            match &req.what {
                RequestTarget::ResourceType => {}
                RequestTarget::Scalar(sym, value) => {
                    manual_scalars.push((req.rt, *sym, req.add.then_some(value)));
                }
                RequestTarget::Navigation(sym, r) => manual_navs.push((req.rt, *sym, *r, req.add)),
            }
        }

        let mut out = OwnerExpectation {
            roles,
            rts: Vec::new(),
            suggested: suggested.into_iter().collect(),
        };
        let kept_accounts: BTreeSet<usize> = extras
            .kept
            .iter()
            .filter(|k| matches!(k.what, KeptTarget::Account))
            .map(|k| k.rt)
            .collect();
        for (&rt, c) in &chosen {
            if denied.contains(&rt) || cancelled.contains(&rt) {
                continue;
            }
            let mut exp = RtExpectation {
                rt,
                workflow: c.workflow,
                window: c.window,
                kept_account: kept_accounts.contains(&rt),
                scalars: Vec::with_capacity(self.per_rt[rt].scalars.len()),
                mono: Vec::with_capacity(self.per_rt[rt].mono.len()),
                multi: Vec::with_capacity(self.per_rt[rt].multi.len()),
            };
            if c.workflow.produces_orders() {
                let skip_write_only = targets.get(rt).is_some_and(Option::is_some);
                self.fill_values(
                    owner,
                    &out.roles,
                    rt,
                    period,
                    c.eval_at,
                    lookups,
                    skip_write_only,
                    &mut exp,
                )?;
                for (mrt, sym, value) in &manual_scalars {
                    if *mrt == rt {
                        exp.scalars.retain(|(s, _)| s != sym);
                        if let Some(v) = value {
                            exp.scalars.push((*sym, Cow::Borrowed(*v)));
                        }
                    }
                }
                for (mrt, sym, r, add) in &manual_navs {
                    if *mrt != rt {
                        continue;
                    }
                    let multi = self.per_rt[rt].multiplicity(*sym) == Some(Multiplicity::Multi);
                    if multi {
                        let entry = match exp.multi.iter_mut().find(|(s, _)| s == sym) {
                            Some(e) => e,
                            None => {
                                exp.multi.push((*sym, Vec::new()));
                                exp.multi.last_mut().expect("just pushed")
                            }
                        };
                        if *add {
                            entry.1.push(*r);
                        } else {
                            entry.1.retain(|x| x != r);
                        }
                    } else {
                        exp.mono.retain(|(s, _)| s != sym);
                        if *add {
                            exp.mono.push((*sym, *r));
                        }
                    }
                }
                exp.normalize();
            }
            out.rts.push(exp);
        }
        // Found/Historic accounts no rule explains are kept as they are.
        for rt in kept_accounts {
            if !out.rts.iter().any(|e| e.rt == rt) {
                let workflow = extras
                    .kept
                    .iter()
                    .find(|k| k.rt == rt && matches!(k.what, KeptTarget::Account))
                    .map_or(WorkflowState::Found, |k| k.workflow);
                out.rts.push(RtExpectation {
                    rt,
                    workflow,
                    window: Period::ALWAYS,
                    kept_account: true,
                    scalars: Vec::new(),
                    mono: Vec::new(),
                    multi: Vec::new(),
                });
            }
        }
        out.rts.sort_unstable_by_key(|e| e.rt);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_values<'a>(
        &'a self,
        owner: &'a Owner,
        roles: &BTreeSet<RoleId>,
        rt: usize,
        period: Period,
        at: DateTime<Utc>,
        lookups: &Lookups,
        skip_write_only: bool,
        exp: &mut RtExpectation<'a>,
    ) -> Result<(), EvaluationError> {
        let policy = &self.per_rt[rt];
        // A value rule with the default offset holds as long as the resource type does (its
        // window may be wider than the period, e.g. an account prepared before arrival).
        let holds = |offset: &TimeOffset| {
            offset.reference == TimeOffsetReference::Default
                || offset.window(period).is_some_and(|w| w.contains(at))
        };
        for (sym, rules) in &policy.scalar_rules {
            if skip_write_only && policy.scalar(*sym).is_some_and(|(_, mapped)| !mapped) {
                continue;
            }
            for &i in rules {
                let rule = &self.scalar_rules[i];
                if !holds(&rule.time_offset) || !criteria_match(&rule.criteria, owner, roles) {
                    continue;
                }
                let value = rule
                    .binding
                    .evaluate(owner)
                    .map_err(|f| self.binding_error(owner, rt, &rule.property, f))?;
                if let Some(v) = value {
                    exp.scalars.push((*sym, v));
                    break;
                }
            }
        }
        let mut scratch = Vec::new();
        policy.nav_index.candidates(owner, &mut scratch);
        for &i in &scratch {
            let nav = &policy.navs[i as usize];
            if !holds(&nav.time_offset) || !policy.nav_index.matches(i, &nav.criteria, owner, roles)
            {
                continue;
            }
            if nav.multi {
                push_multi(&mut exp.multi, nav.sym, nav.reference);
            } else if !exp.mono.iter().any(|(s, _)| *s == nav.sym) {
                exp.mono.push((nav.sym, nav.reference));
            }
        }
        for &(qi, sym, multi) in &policy.queries {
            let rule = &self.query_rules[qi];
            if !multi && exp.mono.iter().any(|(s, _)| *s == sym) {
                continue;
            }
            if !holds(&rule.time_offset) || !criteria_match(&rule.criteria, owner, roles) {
                continue;
            }
            let Some(value) = rule
                .source
                .evaluate(owner)
                .map_err(|f| self.binding_error(owner, rt, &rule.property, f))?
            else {
                continue;
            };
            let Some(key) = rule.comparison.key_of(&value) else {
                continue;
            };
            let found = lookups.find(qi, &key);
            match (found.len(), multi) {
                (0, _) => {
                    return Err(EvaluationError::QueryNoMatch {
                        owner: owner.id.clone(),
                        resource_type: self.rts[rt].id.clone(),
                        property: rule.property.clone(),
                        value: value.to_string(),
                    });
                }
                (1, false) => exp.mono.push((sym, found[0])),
                (n, false) => {
                    return Err(EvaluationError::QueryAmbiguous {
                        owner: owner.id.clone(),
                        resource_type: self.rts[rt].id.clone(),
                        property: rule.property.clone(),
                        value: value.to_string(),
                        matches: n,
                    });
                }
                (_, true) => {
                    for r in found {
                        push_multi(&mut exp.multi, sym, *r);
                    }
                }
            }
        }
        Ok(())
    }

    fn binding_error(
        &self,
        owner: &Owner,
        rt: usize,
        property: &str,
        failure: BindingFailure,
    ) -> EvaluationError {
        match failure {
            BindingFailure::Kind { property, found } => EvaluationError::InvalidOwnerProperty {
                owner: owner.id.clone(),
                property,
                expected: "a scalar",
                found,
            },
            BindingFailure::Rule(reason) => EvaluationError::RuleFailed {
                owner: owner.id.clone(),
                resource_type: self.rts[rt].id.clone(),
                property: property.to_owned(),
                reason,
            },
        }
    }
}

fn push_multi(multi: &mut Vec<(Sym, Vec<RefId>)>, sym: Sym, r: RefId) {
    match multi.iter_mut().find(|(s, _)| *s == sym) {
        Some((_, list)) => list.push(r),
        None => {
            let mut list = Vec::with_capacity(16);
            list.push(r);
            multi.push((sym, list));
        }
    }
}

fn dependency_order(
    rts: &[ResourceType],
    ids: &FxHashMap<ResourceTypeId, usize>,
) -> Result<Vec<usize>, ConfigError> {
    // Depth-first with colouring; resource types sorted by id for a deterministic order.
    let mut sorted: Vec<usize> = (0..rts.len()).collect();
    sorted.sort_by(|a, b| rts[*a].id.cmp(&rts[*b].id));
    let mut state = vec![0u8; rts.len()];
    let mut order = Vec::with_capacity(rts.len());
    fn visit(
        i: usize,
        rts: &[ResourceType],
        ids: &FxHashMap<ResourceTypeId, usize>,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<(), ConfigError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(ConfigError::DependencyCycle {
                    resource_type: rts[i].id.clone(),
                });
            }
            _ => {}
        }
        state[i] = 1;
        if let Some(dep) = &rts[i].depends_on {
            visit(ids[dep], rts, ids, state, order)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in sorted {
        visit(i, rts, ids, &mut state, &mut order)?;
    }
    Ok(order)
}

// ---------------------------------------------------------------------------------------------
// Evaluation inputs and outputs (crate-internal).

/// What a compiled approved request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestTarget {
    ResourceType,
    Scalar(Sym, ScalarValue),
    Navigation(Sym, RefId),
}

/// An approved assignment request, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledRequest {
    pub(crate) rt: usize,
    pub(crate) add: bool,
    pub(crate) what: RequestTarget,
}

/// What a kept (Found/Historic) value protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeptTarget {
    Account,
    Scalar(Sym),
    Navigation(Sym, RefId),
}

/// A Found/Historic value, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledKept {
    pub(crate) rt: usize,
    pub(crate) what: KeptTarget,
    pub(crate) workflow: WorkflowState,
}

/// Approved requests and kept values of one owner.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnerExtras {
    pub(crate) requests: Vec<CompiledRequest>,
    pub(crate) kept: Vec<CompiledKept>,
}

/// Query-rule lookups: for each query rule, normalized value ⇒ references.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookups {
    pub(crate) per_rule: Vec<FxHashMap<String, Vec<RefId>>>,
}

impl Lookups {
    fn find(&self, rule: usize, key: &str) -> &[RefId] {
        self.per_rule
            .get(rule)
            .and_then(|m| m.get(key))
            .map_or(&[], Vec::as_slice)
    }
}

/// What one owner should have in one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtExpectation<'a> {
    pub(crate) rt: usize,
    pub(crate) workflow: WorkflowState,
    pub(crate) window: Period,
    /// A Found/Historic account: never deleted automatically.
    pub(crate) kept_account: bool,
    /// Sorted by symbol.
    pub(crate) scalars: Vec<(Sym, Cow<'a, ScalarValue>)>,
    /// Sorted by symbol.
    pub(crate) mono: Vec<(Sym, RefId)>,
    /// Sorted by symbol; each list sorted, without duplicates.
    pub(crate) multi: Vec<(Sym, Vec<RefId>)>,
}

impl RtExpectation<'_> {
    fn normalize(&mut self) {
        self.scalars.sort_by_key(|(s, _)| *s);
        self.mono.sort_by_key(|(s, _)| *s);
        self.multi.sort_by_key(|(s, _)| *s);
        for (_, list) in &mut self.multi {
            list.sort_unstable();
            list.dedup();
        }
    }

    /// Whether the assignment produces orders (approval complete).
    pub(crate) fn active(&self) -> bool {
        self.workflow.produces_orders()
    }
}

/// The evaluation of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerExpectation<'a> {
    pub(crate) roles: BTreeSet<RoleId>,
    /// Sorted by resource type index.
    pub(crate) rts: Vec<RtExpectation<'a>>,
    pub(crate) suggested: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap()
    }

    #[test]
    fn time_offsets_shift_the_period() {
        let p = Period::new(Some(t(10)), Some(t(20)));
        let d = TimeDelta::days(2);
        assert_eq!(TimeOffset::DEFAULT.window(p), Some(p));
        assert_eq!(
            TimeOffset::around(d, d).window(p),
            Some(Period::new(Some(t(8)), Some(t(22))))
        );
        assert_eq!(
            TimeOffset::before_start(d, TimeDelta::zero()).window(p),
            Some(Period::new(Some(t(8)), Some(t(10))))
        );
        assert_eq!(
            TimeOffset::after_end(TimeDelta::zero(), d).window(p),
            Some(Period::new(Some(t(20)), Some(t(22))))
        );
        assert_eq!(TimeOffset::after_end(d, d).window(Period::ALWAYS), None);
    }

    #[test]
    fn criteria_need_every_dimension_and_the_role() {
        let owner = Owner::new("u1", "u1")
            .with("department", "Sales")
            .with("site", "Paris");
        let roles: BTreeSet<RoleId> = [RoleId::new("r1")].into_iter().collect();
        let c = Criteria::always()
            .dimension("department", "Sales")
            .dimension("department", "HR");
        assert!(criteria_match(&c, &owner, &roles));
        assert!(!criteria_match(
            &c.clone().dimension("site", "Lyon"),
            &owner,
            &roles
        ));
        assert!(criteria_match(&c.clone().role("r1"), &owner, &roles));
        assert!(!criteria_match(&c.role("r2"), &owner, &roles));
    }

    #[test]
    fn composite_roles_grant_their_single_roles_and_denials_win() {
        let model = RoleModel::new()
            .single_role(SingleRole::new("s1", "S1"))
            .single_role(SingleRole::new("s2", "S2"))
            .composite_role(CompositeRole::new("c1", "C1", ["s1".into(), "s2".into()]))
            .role_rule(RoleRule::new(
                "c1",
                Criteria::always().dimension("department", "Sales"),
            ))
            .role_rule(RoleRule::new("s2", Criteria::always().dimension("site", "Lyon")).denied());
        let mut syms = Symbols::default();
        let mut refs = References::default();
        let p = CompiledPolicy::compile(vec![], model, &mut syms, &mut refs).unwrap();
        let mut scratch = Vec::new();
        let paris = Owner::new("u1", "u1")
            .with("department", "Sales")
            .with("site", "Paris");
        let roles = p.roles_of(&paris, &mut scratch);
        assert_eq!(
            roles.iter().map(RoleId::as_str).collect::<Vec<_>>(),
            ["c1", "s1", "s2"]
        );
        let lyon = paris.clone().with("site", "Lyon");
        let roles = p.roles_of(&lyon, &mut scratch);
        assert!(!roles.contains(&RoleId::new("s2")));
    }

    #[test]
    fn configuration_errors_name_what_is_wrong() {
        let rt = ResourceType::new("ad", "AD", "User", "AD_Entry", "c");
        let model = RoleModel::new().type_rule(TypeRule::new("nope", Criteria::always()));
        let err = CompiledPolicy::compile(
            vec![rt.clone()],
            model,
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::UnknownResourceType { .. }),
            "{err}"
        );
        let mut a = rt.clone();
        a.depends_on = Some("mbx".into());
        let mut b = ResourceType::new("mbx", "MBX", "User", "Mailbox", "c");
        b.depends_on = Some("ad".into());
        let err = CompiledPolicy::compile(
            vec![a, b],
            RoleModel::new(),
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::DependencyCycle { .. }), "{err}");
        let model = RoleModel::new()
            .scalar_rule(ScalarRule::literal("ad", "x", "1"))
            .navigation_rule(NavigationRule::new("ad", "x", Reference::dn("CN=g")));
        let err = CompiledPolicy::compile(
            vec![rt],
            model,
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::PropertyKindConflict { .. }),
            "{err}"
        );
    }
}
