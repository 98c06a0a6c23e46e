//! How the job reads and changes provisioning state: through the store, its one owner. The
//! planner gets a read-only view of it for each plan; owners whose orders changed state are
//! re-evaluated.

use crate::dispatch::DispatchError;
use crate::plan::OrderStates;
use crate::store::{OPEN_STATES, ReviewDecision, ReviewVerdict, StoreError};
use autoprov_core::{OrderId, ProvisioningState};

use super::ProvisioningJob;

impl ProvisioningJob {
    /// Records a human's answer for a Transmitted order in the store; its owner is
    /// re-evaluated by the next run.
    pub async fn record_human_resolution(
        &mut self,
        order: &OrderId,
        resolution: Result<(), String>,
    ) -> Result<ProvisioningState, DispatchError> {
        let state = self
            .dispatcher
            .record_human_resolution(order, resolution)
            .await?;
        self.orders_changed(std::slice::from_ref(order)).await?;
        Ok(state)
    }

    /// Records a provisioning-review decision (approve ⇒ Pending, sent by the next run;
    /// decline ⇒ cancelled and not generated again for the same change; postpone) in the
    /// store, with who decided and why (audited), and returns the order's new state. An order
    /// not in review is a typed error and nothing is recorded.
    pub async fn decide_review(
        &mut self,
        decision: ReviewDecision,
    ) -> Result<ProvisioningState, StoreError> {
        let order_id = decision.order_id.clone();
        let record =
            self.store
                .order(&order_id)
                .await?
                .ok_or_else(|| StoreError::UnknownOrder {
                    order_id: order_id.clone(),
                })?;
        let record = self.store.decide_review(record.version, decision).await?;
        self.orders_changed(std::slice::from_ref(&order_id)).await?;
        Ok(record.state)
    }

    /// Approves an order in provisioning review ([`ProvisioningJob::decide_review`]).
    pub async fn approve(
        &mut self,
        order: &OrderId,
        by: &str,
    ) -> Result<ProvisioningState, StoreError> {
        let now = self.clock.now();
        self.decide_review(ReviewDecision::new(
            order.clone(),
            ReviewVerdict::Approved,
            by,
            now,
        ))
        .await
    }

    /// The store's view of the orders not done with, and of the orders review declined: what
    /// the planner must know so that it neither plans an order twice nor asks again.
    pub(super) async fn order_states(&self) -> Result<OrderStates, StoreError> {
        let mut view: OrderStates = self
            .store
            .orders_in(OPEN_STATES)
            .await?
            .into_iter()
            .map(|r| (r.id().clone(), r.state))
            .collect();
        let mut after: Option<OrderId> = None;
        loop {
            let page = self
                .store
                .review_decisions_page(after.as_ref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.order_id.clone());
            for d in page {
                if d.verdict == ReviewVerdict::Declined {
                    view.decline(d.order_id);
                }
            }
        }
        Ok(view)
    }

    /// Orders whose state changed in the store: their owners are re-evaluated by the next
    /// plan, which sees the new states (the planner keeps no copy of them).
    pub(super) async fn orders_changed(&mut self, orders: &[OrderId]) -> Result<(), StoreError> {
        for id in orders {
            if let Some(owner) = self
                .store
                .order(id)
                .await?
                .and_then(|r| r.order.owner_id().cloned())
            {
                // An owner removed meanwhile has nothing left to re-evaluate.
                let _ = self.planner.mark_dirty(&owner);
            }
        }
        Ok(())
    }
}
