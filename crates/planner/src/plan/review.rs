//! Provisioning review (SPEC §4: approve, decline, postpone) and the dispatcher's events fed
//! back to the planner's items.

use super::{OrderHome, PlannedItem, Planner, WaitReason};
use crate::error::PlanError;
use autoprov_core::{ConnectionMode, OrderId, ProvisioningEvent, ProvisioningState};
use std::sync::Arc;

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

    /// Review approves an order: AwaitingApproval ⇒ Pending (released).
    pub fn approve(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewApproved,
            ConnectionMode::Automated,
        )
    }

    /// Review declines an order: it is cancelled (Inactive) and not generated again while the
    /// same change is computed.
    pub fn decline(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewDeclined,
            ConnectionMode::Automated,
        )
    }

    /// Review postpones its decision: the item stays AwaitingApproval.
    pub fn postpone(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewPostponed,
            ConnectionMode::Automated,
        )
    }

    /// Moves the item holding `order` through the state machine (review decisions, and the
    /// dispatcher's results). An illegal transition changes nothing and is reported.
    pub fn apply_event(
        &mut self,
        order: &OrderId,
        event: ProvisioningEvent,
        mode: ConnectionMode,
    ) -> Result<ProvisioningState, PlanError> {
        let home = self
            .order_index
            .get(order)
            .cloned()
            .ok_or_else(|| PlanError::UnknownOrder {
                order_id: order.clone(),
            })?;
        let (item, rt) = match &home {
            OrderHome::Owner(owner, i) => {
                let item = self
                    .fragments
                    .get_mut(owner)
                    .and_then(|f| Arc::make_mut(f).items.get_mut(*i))
                    .ok_or_else(|| PlanError::UnknownOrder {
                        order_id: order.clone(),
                    })?;
                let rt = self.policy.rt_ids[&item.resource_type];
                (item, rt)
            }
            OrderHome::Orphan(rt, id) => (
                self.orphans.get_mut(&(*rt, id.clone())).ok_or_else(|| {
                    PlanError::UnknownOrder {
                        order_id: order.clone(),
                    }
                })?,
                *rt,
            ),
        };
        let before = item.counts();
        let next = item
            .provisioning_state
            .apply(event, mode)
            .map_err(|source| PlanError::IllegalTransition {
                order_id: order.clone(),
                owner: item
                    .owner
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                resource_type: item.resource_type.clone(),
                source,
            })?;
        item.provisioning_state = next;
        if event == ProvisioningEvent::ReviewDeclined {
            item.waiting = Some(WaitReason::DeclinedInReview);
        }
        let after = item.counts();
        if let Some(c) = before {
            self.counts[rt].add(c, -1);
        }
        if let Some(c) = after {
            self.counts[rt].add(c, 1);
        }
        Ok(next)
    }
}
