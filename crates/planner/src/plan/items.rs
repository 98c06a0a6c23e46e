//! What a plan holds: one [`PlannedItem`] per owner assignment that is not simply Verified,
//! grouped per owner ([`OwnerPlan`]), the whole [`Plan`] and what an incremental run changed
//! ([`PlanDelta`]).

use super::{DeducedRole, GenerationStatus, NonConforming, OrderCounts};
use crate::error::EvaluationError;
use autoprov_core::{
    AssignmentId, ChangeType, OwnerId, ProvisioningOrder, ProvisioningOrdersList,
    ProvisioningState, ResourceId, ResourceTypeId, WorkflowState,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why an expected change produced no order yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum WaitReason {
    /// The resource type does not allow automatic creation (`AllowAdd = false`).
    AllowAddDisabled,
    /// The resource type does not allow automatic removal (`AllowRemove = false`): an operator
    /// decides.
    AllowRemoveDisabled,
    /// A target without owner, kept because `RemoveOrphans` is off.
    OrphanKept,
    /// The resource type it depends on is not provisioned and not being provisioned.
    DependsOn {
        /// That resource type.
        resource_type: ResourceTypeId,
    },
    /// `DependsOnOwnerProperty` is empty on the owner.
    OwnerPropertyEmpty {
        /// The property.
        property: String,
    },
    /// The assignment waits for a person's validation (`RequestedAutomatically`).
    AwaitingValidation,
    /// Provisioning review declined this order; it is not generated again while the same
    /// change is computed.
    DeclinedInReview,
}

/// One planned item: the state of one owner's assignment of one resource type (or of one
/// orphan target), with its order when one is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlannedItem {
    /// The owner, none for an orphan.
    pub owner: Option<OwnerId>,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The assignment (`<owner>/<resource type>`), none for an orphan.
    pub assigned_resource_type_id: Option<AssignmentId>,
    /// Where the assignment comes from.
    pub workflow_state: WorkflowState,
    /// How far its fulfilment went.
    pub provisioning_state: ProvisioningState,
    /// The correlated target, if any.
    pub target: Option<ResourceId>,
    /// The order (Pending, AwaitingApproval, or in flight).
    pub order: Option<ProvisioningOrder>,
    /// Why nothing is sent, when an order is due but cannot be generated.
    pub waiting: Option<WaitReason>,
    /// The evaluation failure, for `Error` items.
    pub error: Option<String>,
    /// The store already holds the order open: an earlier generation released it (or an
    /// operator forced it), so it does not count against thresholds again (a run resumed
    /// after a crash is not blocked by its own orders).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stored: bool,
}

impl PlannedItem {
    /// Whether the item's order is released for dispatch (Pending).
    pub fn is_released(&self) -> bool {
        self.provisioning_state == ProvisioningState::Pending && self.order.is_some()
    }

    /// Whether the order counts against thresholds: Pending or AwaitingApproval, and new in
    /// this generation (not already held open by the store).
    pub(super) fn counts(&self) -> Option<ChangeType> {
        if self.stored {
            return None;
        }
        match self.provisioning_state {
            ProvisioningState::Pending | ProvisioningState::AwaitingApproval => {
                self.order.as_ref().map(|o| o.change_type)
            }
            _ => None,
        }
    }
}

/// The plan fragment of one owner: its items that are not simply Verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerPlan {
    /// The owner.
    pub owner: OwnerId,
    /// Items in resource-type dependency order.
    pub items: Vec<PlannedItem>,
    /// The evaluation failure, when policy evaluation failed for the owner as a whole (its
    /// period cannot be read: every item is then `Error` and no order is produced).
    pub error: Option<EvaluationError>,
    /// Failures that concern one resource type each (a rule, a query, a correlation): that
    /// item alone is `Error`, the owner's other items are planned as usual.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub item_errors: Vec<EvaluationError>,
    /// Values found in the owner's targets that nothing explains, with what this plan does
    /// with them (by default: kept and listed for review).
    pub non_conforming: Vec<NonConforming>,
    /// Roles deduced from the owner's unexplained memberships ("rules in reverse"), proposed
    /// for a person to give.
    pub deduced_roles: Vec<DeducedRole>,
}

impl OwnerPlan {
    /// An empty fragment of an owner.
    pub fn new(owner: OwnerId) -> Self {
        Self {
            owner,
            items: Vec::new(),
            error: None,
            item_errors: Vec::new(),
            non_conforming: Vec::new(),
            deduced_roles: Vec::new(),
        }
    }

    /// Whether the owner has nothing to report (everything Verified, nothing non-conforming).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.error.is_none()
            && self.item_errors.is_empty()
            && self.non_conforming.is_empty()
            && self.deduced_roles.is_empty()
    }
}

/// Options of one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// An operator forces the generation despite threshold breaches. Default: false.
    pub force_thresholds: bool,
}

impl PlanOptions {
    /// Options forcing the generation past threshold breaches.
    pub fn forced() -> Self {
        Self {
            force_thresholds: true,
        }
    }
}

/// A whole plan: every owner with something to report, every orphan, and whether the orders
/// may go out. Deterministic: the same inputs give the same plan, byte for byte once
/// serialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Plan {
    /// Threshold verdict.
    pub status: GenerationStatus,
    /// Owners with something to report, sorted by owner id (shared with the planner, so
    /// handing out a plan does not copy its orders).
    pub owners: Vec<Arc<OwnerPlan>>,
    /// Targets without owner that need a decision or an order, sorted by resource type and id.
    pub orphans: Vec<PlannedItem>,
    /// Order counts per resource type.
    pub counts: BTreeMap<ResourceTypeId, OrderCounts>,
}

impl Plan {
    /// Every item, owners first (by owner), then orphans.
    pub fn items(&self) -> impl Iterator<Item = &PlannedItem> {
        self.owners
            .iter()
            .flat_map(|o| o.items.iter())
            .chain(self.orphans.iter())
    }

    /// The released orders (Pending), in plan order; none while the generation is blocked.
    pub fn orders(&self) -> impl Iterator<Item = &ProvisioningOrder> {
        let released = self.status.is_released();
        self.items()
            .filter(move |i| released && i.is_released())
            .filter_map(|i| i.order.as_ref())
    }

    /// Every order computed, released or not (what a simulation shows).
    pub fn all_orders(&self) -> impl Iterator<Item = &ProvisioningOrder> {
        self.items().filter_map(|i| i.order.as_ref())
    }

    /// Items waiting in provisioning review.
    pub fn awaiting_approval(&self) -> impl Iterator<Item = &PlannedItem> {
        self.items()
            .filter(|i| i.provisioning_state == ProvisioningState::AwaitingApproval)
    }

    /// Every non-conforming value found (SPEC §10), owners in order: what waits for review,
    /// what is adopted, what this plan removes.
    pub fn non_conforming(&self) -> impl Iterator<Item = &NonConforming> {
        self.owners.iter().flat_map(|o| o.non_conforming.iter())
    }

    /// Roles deduced from unexplained memberships, proposed (never assigned by the planner).
    pub fn deduced_roles(&self) -> impl Iterator<Item = &DeducedRole> {
        self.owners.iter().flat_map(|o| o.deduced_roles.iter())
    }

    /// Evaluation failures, owners in order: an owner's failure as a whole, then those of its
    /// resource types.
    pub fn errors(&self) -> impl Iterator<Item = &EvaluationError> {
        self.owners
            .iter()
            .flat_map(|o| o.error.iter().chain(o.item_errors.iter()))
    }

    /// Whether the plan holds no order at all (released or awaiting review).
    pub fn has_no_orders(&self) -> bool {
        self.all_orders().next().is_none()
    }

    /// The released orders as an interchange file (SPEC §6).
    pub fn to_orders_list(&self) -> ProvisioningOrdersList {
        ProvisioningOrdersList {
            provisioning_orders_list: self.orders().cloned().collect(),
        }
    }

    /// The plan as JSON (stable: the same plan gives the same bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What an incremental run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanDelta {
    /// Threshold verdict of the whole generation after the change.
    pub status: GenerationStatus,
    /// The new fragment of every re-evaluated owner (empty = everything Verified), sorted.
    pub owners: Vec<OwnerPlan>,
    /// Orphans re-checked: the new item, or `None` when the target is no longer an orphan to
    /// report.
    pub orphans: Vec<(ResourceTypeId, ResourceId, Option<PlannedItem>)>,
}
