#![doc = include_str!("../README.md")]

pub mod compare;
#[cfg(any(test, feature = "demo"))]
pub mod demo;
pub mod error;
mod few;
mod owners;
pub mod plan;
pub mod policy;
pub mod simulation;
#[cfg(feature = "demo")]
pub mod synthetic;
mod targets;

pub use compare::ComparisonType;
pub use error::{ConfigError, EvaluationError, PlanError};
pub use plan::{
    CorrelationKey, DeducedRole, Disposition, ExpectedAssignments, FoundScope, GenerationStatus,
    KeptAssignment, KeptValue, LimitKind, NonConforming, NonConformingKind, OrderCounts,
    OrderStates, OwnerPlan, Plan, PlanDelta, PlanOptions, PlannedItem, Planner, PlannerConfig,
    ThresholdBreach, ThresholdForce, WaitReason,
};
pub use policy::{
    CompositeRole, ComputeFn, Criteria, DateFormat, Multiplicity, NavigationRule, OwnerPeriod,
    QueryRule, RoleModel, RoleRule, RuleKind, ScalarBinding, ScalarRule, SingleRole, TimeOffset,
    TimeOffsetReference, TryComputeFn, TypeRule,
};
