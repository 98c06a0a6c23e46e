//! Provisioning review (SPEC §4): what waits for a decision. The decisions themselves
//! (approve, decline, postpone) are recorded by the store, the one owner of provisioning
//! state; the planner sees them through the [`OrderStates`](super::OrderStates) view of its
//! next plan.

use super::{PlannedItem, Planner};
use autoprov_core::ProvisioningState;

impl Planner {
    /// Items waiting in provisioning review, in plan order.
    pub fn pending_reviews(&self) -> Vec<&PlannedItem> {
        self.fragments
            .values()
            .flat_map(|f| f.items.iter())
            .chain(self.orphans.values())
            .filter(|i| i.provisioning_state == ProvisioningState::AwaitingApproval)
            .collect()
    }
}
