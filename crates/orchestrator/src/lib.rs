#![doc = include_str!("../README.md")]

pub mod clock;
pub mod delivery;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dispatch;
pub mod events;
pub mod fulfil_file;
pub mod job;
mod planning;
#[cfg(feature = "smtp")]
pub mod smtp;
pub mod store;
pub mod verify;
pub mod worker;

// The planning subsystem lives in `autoprov-planner`; its modules and types stay reachable at
// the paths they had here.
pub use autoprov_planner as planner;
#[cfg(feature = "demo")]
pub use autoprov_planner::synthetic;
pub use autoprov_planner::{compare, error, plan, policy, simulation};

pub use autoprov_planner::{
    ComparisonType, CompositeRole, ComputeFn, ConfigError, CorrelationKey, Criteria, DateFormat,
    EvaluationError, ExpectedAssignments, GenerationStatus, KeptAssignment, KeptValue, LimitKind,
    Multiplicity, NavigationRule, OrderCounts, OwnerPeriod, OwnerPlan, Plan, PlanDelta, PlanError,
    PlanOptions, PlannedItem, Planner, PlannerConfig, QueryRule, RoleModel, RoleRule, RuleKind,
    ScalarBinding, ScalarRule, SingleRole, ThresholdBreach, TimeOffset, TimeOffsetReference,
    TryComputeFn, TypeRule, WaitReason,
};
