//! Assignments: what an owner should have (SPEC §2).

use crate::ids::{AssignmentId, OwnerId, ResourceTypeId};
use crate::states::{ProvisioningState, WorkflowState};
use crate::value::{Reference, ScalarValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A validity period, UTC. `None` on either side means open.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "PascalCase")]
pub struct Period {
    /// Start (inclusive).
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// End (exclusive).
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
}

impl Period {
    /// A period open on both sides.
    pub const ALWAYS: Period = Period {
        start: None,
        end: None,
    };

    /// A period between two optional bounds.
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Self {
        Self { start, end }
    }

    /// Whether `at` lies in the period.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at < e)
    }

    /// Whether the period ended before `at`.
    pub fn is_past(&self, at: DateTime<Utc>) -> bool {
        self.end.is_some_and(|e| e <= at)
    }
}

/// States shared by every kind of assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssignmentStatus {
    /// When the assignment holds.
    #[serde(default)]
    pub period: Period,
    /// Where it came from and how far its approval went.
    pub workflow_state: WorkflowState,
    /// How far its fulfilment went.
    pub provisioning_state: ProvisioningState,
}

impl AssignmentStatus {
    /// A status with the given workflow state, always valid, nothing provisioned yet.
    pub fn new(workflow_state: WorkflowState) -> Self {
        Self {
            period: Period::ALWAYS,
            workflow_state,
            provisioning_state: ProvisioningState::None,
        }
    }
}

/// The owner should have a target of this resource type (the account exists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssignedResourceType {
    /// Its id.
    pub id: AssignmentId,
    /// The owner.
    pub owner: OwnerId,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// Its states and period.
    #[serde(flatten)]
    pub status: AssignmentStatus,
}

/// The owner's target should hold this scalar value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssignedResourceScalar {
    /// Its id.
    pub id: AssignmentId,
    /// The `AssignedResourceType` it belongs to.
    pub assigned_resource_type: AssignmentId,
    /// The property.
    pub property: String,
    /// The value.
    pub value: ScalarValue,
    /// Its states and period.
    #[serde(flatten)]
    pub status: AssignmentStatus,
}

/// The owner's target should hold this reference (e.g. one group membership).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssignedResourceNavigation {
    /// Its id.
    pub id: AssignmentId,
    /// The `AssignedResourceType` it belongs to.
    pub assigned_resource_type: AssignmentId,
    /// The navigation property.
    pub property: String,
    /// The referenced resource.
    pub value: Reference,
    /// Its states and period.
    #[serde(flatten)]
    pub status: AssignmentStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_are_half_open() {
        let a = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let p = Period::new(Some(a), Some(b));
        assert!(p.contains(a));
        assert!(!p.contains(b));
        assert!(p.is_past(b));
        assert!(Period::ALWAYS.contains(b));
    }

    #[test]
    fn assignment_json_is_pascal_case_with_state_names() {
        let a = AssignedResourceType {
            id: "art-42".into(),
            owner: "u-7".into(),
            resource_type: "rt-1".into(),
            status: AssignmentStatus::new(WorkflowState::Calculated),
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["WorkflowState"], "Calculated");
        assert_eq!(json["ProvisioningState"], "None");
        assert_eq!(json["ResourceType"], "rt-1");
        let back: AssignedResourceType = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }
}
