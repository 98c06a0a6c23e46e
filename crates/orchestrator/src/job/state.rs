//! How the job reads and changes provisioning state: through the store, its one owner. The
//! planner gets a read-only view of it for each plan; owners whose orders changed state are
//! re-evaluated.

use crate::dispatch::DispatchError;
use crate::plan::OrderStates;
use crate::store::{
    AuditAction, AuditEntry, OPEN_STATES, OrderRecord, OrderUpdate, ReviewDecision, ReviewVerdict,
    StoreError,
};
use autoprov_core::{ConnectionId, OrderId, OwnerId, ProvisioningEvent, ProvisioningState};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

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
        self.owners_changed(record.order.owner_id());
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

    /// Declines an order in provisioning review ([`ProvisioningJob::decide_review`]): it is
    /// cancelled (Inactive) and the planner does not ask again for the same order. For an Added
    /// order that found an account autoprov did not create, the account is left alone.
    pub async fn decline(
        &mut self,
        order: &OrderId,
        by: &str,
    ) -> Result<ProvisioningState, StoreError> {
        let now = self.clock.now();
        self.decide_review(ReviewDecision::new(
            order.clone(),
            ReviewVerdict::Declined,
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
            if let Some(record) = self.store.order(id).await? {
                self.owners_changed(record.order.owner_id());
            }
        }
        Ok(())
    }

    /// Owners whose orders changed state in the store, when the caller holds the orders: no
    /// store read. An owner removed meanwhile has nothing left to re-evaluate.
    pub(super) fn owners_changed<'a>(&mut self, owners: impl IntoIterator<Item = &'a OwnerId>) {
        for owner in owners {
            let _ = self.planner.mark_dirty(owner);
        }
    }

    /// Operator retry of one Errored order (SPEC §4: Errored + operator retry ⇒ Pending): the
    /// store reopens it through the state machine (a new round of attempts; the history and
    /// the attempts made are kept), the retry is audited with who asked, and the next run
    /// sends it.
    pub async fn retry(
        &mut self,
        order: &OrderId,
        by: &str,
    ) -> Result<ProvisioningState, StoreError> {
        let record = self
            .store
            .order(order)
            .await?
            .ok_or_else(|| StoreError::UnknownOrder {
                order_id: order.clone(),
            })?;
        self.reopen(record, by, None).await
    }

    /// Operator retry of every Errored order of a connection; returns the orders reopened.
    pub async fn retry_connection(
        &mut self,
        connection: &ConnectionId,
        by: &str,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.retry_where(by, |r| r.order.connection.as_ref() == Some(connection))
            .await
    }

    /// Operator retry of every order Errored since `since`; returns the orders reopened.
    pub async fn retry_errored_since(
        &mut self,
        since: DateTime<Utc>,
        by: &str,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.retry_where(by, |r| r.dispatch.finished_at.is_some_and(|t| t >= since))
            .await
    }

    async fn retry_where(
        &mut self,
        by: &str,
        which: impl Fn(&OrderRecord) -> bool,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut reopened = Vec::new();
        for record in self.store.orders_in(&[ProvisioningState::Errored]).await? {
            if which(&record) {
                let id = record.id().clone();
                self.reopen(record, by, None).await?;
                reopened.push(id);
            }
        }
        Ok(reopened)
    }

    /// Errored ⇒ Pending through the store, audited, the owner re-evaluated.
    pub(super) async fn reopen(
        &mut self,
        record: OrderRecord,
        by: &str,
        reason: Option<&str>,
    ) -> Result<ProvisioningState, StoreError> {
        let now = self.clock.now();
        let id = record.id().clone();
        let owner = record.order.owner_id().cloned();
        let next = self
            .store
            .update_order(
                &id,
                record.version,
                OrderUpdate::event(ProvisioningEvent::OperatorRetried, now),
            )
            .await?;
        self.owners_changed(owner.as_ref());
        let mut entry = AuditEntry::new(now, by, AuditAction::Retried, id.as_str());
        entry.owner = owner;
        if let Some(r) = reason {
            entry = entry.because(r);
        }
        self.store.append_audit(entry).await?;
        Ok(next.state)
    }

    /// Reopens, for each connection that checks healthy, the orders whose retries ran out
    /// while it was down (when [`reopen_after_outage`](super::ProvisioningJobBuilder::reopen_after_outage) is on); returns
    /// them, to be sent again.
    pub(super) async fn reopen_after_outage(&mut self) -> Result<Vec<OrderId>, StoreError> {
        if !self.reopen_after_outage {
            return Ok(Vec::new());
        }
        let stuck: Vec<OrderRecord> = self
            .store
            .orders_in(&[ProvisioningState::Errored])
            .await?
            .into_iter()
            .filter(|r| r.dispatch.retries_exhausted)
            .collect();
        let mut healthy: BTreeMap<ConnectionId, bool> = BTreeMap::new();
        let mut reopened = Vec::new();
        for record in stuck {
            let Some(conn) = record.order.connection.clone() else {
                continue;
            };
            let ok = match healthy.get(&conn) {
                Some(ok) => *ok,
                None => {
                    let ok = match self.connectors.get(&conn) {
                        Some(c) => c.check().await.is_ok(),
                        None => false,
                    };
                    if ok {
                        self.dispatcher.connection_healthy(&conn);
                    }
                    healthy.insert(conn.clone(), ok);
                    ok
                }
            };
            if ok {
                let id = record.id().clone();
                self.reopen(
                    record,
                    "autoprov",
                    Some("the connection checks healthy again after its retries ran out"),
                )
                .await?;
                reopened.push(id);
            }
        }
        Ok(reopened)
    }
}
