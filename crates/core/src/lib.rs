#![doc = include_str!("../README.md")]

pub mod assignment;
pub mod config;
pub mod found;
pub mod ids;
pub mod model;
pub mod order;
pub mod password;
pub mod results_csv;
pub mod secret;
pub mod states;
pub mod value;
pub mod workflow;

pub use assignment::{
    AssignedResourceNavigation, AssignedResourceScalar, AssignedResourceType, AssignmentStatus,
    Period,
};
pub use found::{FoundDecision, FoundValue, FoundVerdict, NonConformingPolicy, OwnedValues};
pub use ids::{
    AssignmentId, ConnectionId, EntityTypeId, ExportCookie, OrderId, OwnerId, PackageId, RequestId,
    ResourceId, ResourceTypeId, RoleId, StableId,
};
pub use model::{
    EntityType, Owner, PropertyDefinition, PropertyKind, Resource, ResourceType, ResourceTypeError,
    Thresholds,
};
pub use order::{
    ChangeType, Changes, EntityTypeRef, NavigationChange, OrderFileError, PropertyChange,
    ProvisioningOrder, ProvisioningOrdersList, ProvisioningResult, ProvisioningResultsList,
    ResourceKeys, ResourceTypeRef,
};
pub use password::{PasswordMode, PasswordResetSettings};
pub use results_csv::ResultsCsvError;
pub use secret::{RedactedSecret, SECRET_MASK, Secret};
pub use states::{
    ConnectionMode, IllegalTransition, ProvisioningEvent, ProvisioningState, WorkflowState,
};
pub use value::{PropertyValue, Reference, ScalarValue};
pub use workflow::{
    ApprovalWorkflowType, AssignmentRequest, ImplicitApproval, RequestError, RequestKind,
    RequestState, RequestedAssignment, StepApproval,
};
