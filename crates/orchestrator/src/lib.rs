#![doc = include_str!("../README.md")]

pub mod clock;
pub mod compare;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod events;
mod fxhash;
pub mod job;
pub mod plan;
pub mod policy;
pub mod simulation;
pub mod store;
pub mod synthetic;
mod targets;
pub mod verify;

pub use compare::ComparisonType;
pub use error::{ConfigError, EvaluationError, PlanError};
pub use plan::{
    CorrelationKey, ExpectedAssignments, GenerationStatus, KeptAssignment, KeptValue, LimitKind,
    OrderCounts, OwnerPlan, Plan, PlanDelta, PlanOptions, PlannedItem, Planner, PlannerConfig,
    ThresholdBreach, WaitReason,
};
pub use policy::{
    CompositeRole, ComputeFn, Criteria, Multiplicity, NavigationRule, OwnerPeriod, QueryRule,
    RoleModel, RoleRule, RuleKind, ScalarBinding, ScalarRule, SingleRole, TimeOffset,
    TimeOffsetReference, TryComputeFn, TypeRule,
};
