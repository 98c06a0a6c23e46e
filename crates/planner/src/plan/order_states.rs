//! What the planner knows of orders it does not own: the provisioning state of every order
//! that is not done with, and the orders provisioning review declined. The orchestrator builds
//! it from the store (the one owner of provisioning state) before each plan; the planner
//! never changes it and keeps no copy of its own.

use autoprov_core::{OrderId, ProvisioningState};
use rustc_hash::{FxHashMap, FxHashSet};

/// A read-only view of order states, handed to [`Planner::plan_full`](crate::Planner::plan_full)
/// and its siblings.
///
/// - An order the plan computes that the view holds in an open state (Pending,
///   AwaitingApproval, Transmitted, Executed, Errored) keeps that state: it is not planned
///   again.
/// - An order the view lists as declined is not generated again while the same change is
///   computed (`WaitReason::DeclinedInReview`).
/// - Any other order is new (or finished earlier and due again): Pending, or AwaitingApproval
///   when its resource type requires provisioning review.
#[derive(Clone, Debug, Default)]
pub struct OrderStates {
    states: FxHashMap<OrderId, ProvisioningState>,
    declined: FxHashSet<OrderId>,
}

impl OrderStates {
    /// An empty view: every order is new.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an order's state.
    pub fn insert(&mut self, order: OrderId, state: ProvisioningState) {
        self.states.insert(order, state);
    }

    /// Records that provisioning review declined an order.
    pub fn decline(&mut self, order: OrderId) {
        self.declined.insert(order);
    }

    /// The state of an order, if the view holds it.
    pub fn state(&self, order: &OrderId) -> Option<ProvisioningState> {
        self.states.get(order).copied()
    }

    /// Whether provisioning review declined the order.
    pub fn is_declined(&self, order: &OrderId) -> bool {
        self.declined.contains(order)
    }

    /// How many order states it holds.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether it holds no state and no declined order.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.declined.is_empty()
    }
}

impl FromIterator<(OrderId, ProvisioningState)> for OrderStates {
    fn from_iter<I: IntoIterator<Item = (OrderId, ProvisioningState)>>(iter: I) -> Self {
        Self {
            states: iter.into_iter().collect(),
            declined: FxHashSet::default(),
        }
    }
}
