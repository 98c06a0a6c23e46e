//! The planner's errors: configuration, policy evaluation and refused planner operations. Each
//! one names the owner, resource type, property or order it is about, so an operator can act on
//! it without reading logs.

use autoprov_core::{OwnerId, ResourceId, ResourceTypeError, ResourceTypeId, RoleId};

/// A role model or planner configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rule or setting names a resource type that is not configured.
    #[error("{context} names resource type {resource_type}, which is not configured")]
    UnknownResourceType {
        /// Where the name appears.
        context: String,
        /// The unknown resource type.
        resource_type: ResourceTypeId,
    },
    /// Two resource types share an id.
    #[error("resource type {resource_type} is configured twice")]
    DuplicateResourceType {
        /// The resource type.
        resource_type: ResourceTypeId,
    },
    /// A resource type's own settings contradict each other.
    #[error(transparent)]
    InvalidResourceType(#[from] ResourceTypeError),
    /// `DependsOn` settings form a cycle.
    #[error("resource type {resource_type}: DependsOn forms a cycle")]
    DependencyCycle {
        /// A resource type on the cycle.
        resource_type: ResourceTypeId,
    },
    /// A property is governed both as a scalar and as a navigation.
    #[error("resource type {resource_type}: `{property}` has both scalar and navigation rules")]
    PropertyKindConflict {
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The property.
        property: String,
    },
    /// A rule names a role that is not defined.
    #[error("{context} names role {role}, which is not defined")]
    UnknownRole {
        /// Where the name appears.
        context: String,
        /// The unknown role.
        role: RoleId,
    },
    /// A role rule's criteria require a role: roles are computed from dimensions only, so the
    /// result would depend on rule order.
    #[error("role rule for {role} has a role criterion; role rules take dimensions only")]
    RoleCriterionInRoleRule {
        /// The role the rule gives.
        role: RoleId,
    },
}

/// Why policy evaluation failed for one owner, or for one resource type of an owner. A failure
/// that names a resource type makes that item `Error` alone (the owner's other types and the
/// other owners are planned as usual); one that does not (the owner's period) makes every item
/// of the owner `Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[non_exhaustive]
pub enum EvaluationError {
    /// An owner property has a value of the wrong kind.
    #[error("owner {owner}: property `{property}` should be {expected}, found {found}")]
    InvalidOwnerProperty {
        /// The owner.
        owner: OwnerId,
        /// The property.
        property: String,
        /// The kind expected.
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },
    /// An owner property holding a date (the assignment period) cannot be read as one.
    #[error("owner {owner}: property `{property}`: {reason}")]
    InvalidOwnerDate {
        /// The owner.
        owner: OwnerId,
        /// The property.
        property: String,
        /// Why.
        reason: String,
    },
    /// A rule reads an owner property whose value has the wrong kind.
    #[error(
        "owner {owner}, resource type {resource_type}: rule for `{property}` reads owner property `{owner_property}`, which should be {expected}, found {found}"
    )]
    InvalidRuleInput {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The property the rule computes.
        property: String,
        /// The owner property it reads.
        owner_property: String,
        /// The kind expected.
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },
    /// A computed scalar rule reported a failure.
    #[error("owner {owner}, resource type {resource_type}: rule for `{property}` failed: {reason}")]
    RuleFailed {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The property the rule computes.
        property: String,
        /// The rule's own message.
        reason: String,
    },
    /// A query rule found no target resource matching the computed value.
    #[error(
        "owner {owner}, resource type {resource_type}: query rule for `{property}` found no resource whose value is `{value}`"
    )]
    QueryNoMatch {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The navigation property.
        property: String,
        /// The computed value that was searched.
        value: String,
    },
    /// A query rule for a mono-valued navigation found several resources.
    #[error(
        "owner {owner}, resource type {resource_type}: query rule for `{property}` found {matches} resources whose value is `{value}`"
    )]
    QueryAmbiguous {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The navigation property.
        property: String,
        /// The computed value that was searched.
        value: String,
        /// How many resources matched.
        matches: usize,
    },
    /// Several targets correlate with the owner.
    #[error("owner {owner}, resource type {resource_type}: {} targets correlate ({})", targets.len(), targets.iter().map(ResourceId::as_str).collect::<Vec<_>>().join(", "))]
    AmbiguousCorrelation {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The targets found.
        targets: Vec<ResourceId>,
    },
    /// The correlated target is already claimed by another owner.
    #[error(
        "owner {owner}, resource type {resource_type}: target {target} already correlates with owner {other_owner}"
    )]
    CorrelationConflict {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The target.
        target: ResourceId,
        /// The owner that holds it.
        other_owner: OwnerId,
    },
}

impl EvaluationError {
    /// The resource type the failure concerns, when it concerns one.
    pub fn resource_type(&self) -> Option<&ResourceTypeId> {
        match self {
            Self::InvalidRuleInput { resource_type, .. }
            | Self::RuleFailed { resource_type, .. }
            | Self::QueryNoMatch { resource_type, .. }
            | Self::QueryAmbiguous { resource_type, .. }
            | Self::AmbiguousCorrelation { resource_type, .. }
            | Self::CorrelationConflict { resource_type, .. } => Some(resource_type),
            Self::InvalidOwnerProperty { .. } | Self::InvalidOwnerDate { .. } => None,
        }
    }
}

/// A refused planner operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The owner is not known to the planner.
    #[error("owner {owner} is not known to the planner")]
    UnknownOwner {
        /// The owner.
        owner: OwnerId,
    },
    /// The resource type is not configured.
    #[error("resource type {resource_type} is not configured")]
    UnknownResourceType {
        /// The resource type.
        resource_type: ResourceTypeId,
    },
    /// A request or kept value names a property that no rule of the resource type governs, so
    /// it could never be compared.
    #[error(
        "owner {owner}, resource type {resource_type}: `{property}` is not governed by the role model (declare it)"
    )]
    UnmanagedProperty {
        /// The owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The property.
        property: String,
    },
    /// Policy evaluation failed for the owner.
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
}
