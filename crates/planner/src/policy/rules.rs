//! The rules of the role model (SPEC §2): type rules, scalar rules (with their bindings),
//! navigation rules and query rules.

use super::{Criteria, OwnerView, TimeOffset};
use crate::compare::ComparisonType;
use autoprov_core::{
    EntityTypeId, Owner, Period, PropertyValue, Reference, ResourceTypeId, ScalarValue,
};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

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
    /// The end of the owner's assignment period (read in the role model's time zone; an
    /// inclusive end date lasts its whole local day), e.g. `accountExpires`. No end ⇒ no
    /// value.
    PeriodEnd(DateFormat),
}

/// How a date is written to a target property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateFormat {
    /// A date-time value ([`ScalarValue::DateTime`]).
    DateTime,
    /// An integer in Windows FILETIME units, as Active Directory's `accountExpires` holds it
    /// (the first instant the account is expired).
    FileTime,
}

impl fmt::Debug for ScalarBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerProperty(p) => write!(f, "OwnerProperty({p:?})"),
            Self::Literal(v) => write!(f, "Literal({v:?})"),
            Self::Computed(_) => f.write_str("Computed(<closure>)"),
            Self::TryComputed(_) => f.write_str("TryComputed(<closure>)"),
            Self::PeriodEnd(format) => write!(f, "PeriodEnd({format:?})"),
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

    pub(super) fn evaluate<'a>(
        &'a self,
        owner: &'a Owner,
        period: Period,
    ) -> Result<Option<Cow<'a, ScalarValue>>, BindingFailure> {
        self.evaluate_in(&OwnerView::new(owner), None, period)
    }

    /// [`ScalarBinding::evaluate`] on an owner being evaluated; `sym` is the interned name
    /// of the owner property an `OwnerProperty` binding reads.
    pub(super) fn evaluate_in<'a>(
        &'a self,
        view: &OwnerView<'a>,
        sym: Option<crate::targets::Sym>,
        period: Period,
    ) -> Result<Option<Cow<'a, ScalarValue>>, BindingFailure> {
        let owner = view.owner();
        match self {
            Self::PeriodEnd(format) => Ok(period.end.map(|end| {
                Cow::Owned(match format {
                    DateFormat::DateTime => ScalarValue::DateTime(end),
                    DateFormat::FileTime => {
                        ScalarValue::Integer(autoprov_core::time_zone::file_time(end))
                    }
                })
            })),
            Self::OwnerProperty(p) => match view.get(sym, p) {
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

pub(super) enum BindingFailure {
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

    /// Active Directory's `accountExpires` from the end of the owner's assignment period (an
    /// inclusive departure date in the role model's time zone expires the account at the
    /// next local midnight), in FILETIME units.
    pub fn account_expires(resource_type: impl Into<ResourceTypeId>) -> Self {
        Self::new(
            resource_type,
            "accountExpires",
            ScalarBinding::PeriodEnd(DateFormat::FileTime),
        )
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
    /// with [`RoleModel::declare_navigation`](super::RoleModel::declare_navigation).
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

impl QueryRule {
    /// The normalized key this rule searches the lookups with for `owner` (its source through
    /// the comparison), ignoring criteria and time offsets; `None` when the source gives no
    /// value or fails. The planner files owners under it so that a lookup change re-plans
    /// only the owners whose key it concerns.
    pub(crate) fn owner_key(&self, owner: &Owner) -> Option<String> {
        let value = self
            .source
            .evaluate(owner, autoprov_core::Period::ALWAYS)
            .ok()
            .flatten()?;
        self.comparison.key_of(&value).map(Cow::into_owned)
    }

    /// Whether the planner cannot file owners under this rule's key: the source is the same
    /// for every owner (a literal), or depends on the assignment's period (known only at
    /// evaluation). A lookup change then re-plans every owner.
    pub(crate) fn is_literal(&self) -> bool {
        matches!(
            self.source,
            ScalarBinding::Literal(_) | ScalarBinding::PeriodEnd(_)
        )
    }
}
