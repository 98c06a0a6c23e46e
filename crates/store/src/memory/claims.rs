//! [`MemoryStore`] as a [`ClaimStore`]: the leases of one process, for tests and
//! simulations of work distribution. The store's clock is the process clock.

use super::{MemoryState, MemoryStore};
use crate::{Claim, ClaimStore, OrderRecord, OrderUpdate, PlanningEpoch, StoreError};
use async_trait::async_trait;
use autoprov_core::{OrderId, ProvisioningState};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The latest lease of an order; `expires_at` is `None` once released (the token stays: a
/// later claim takes a greater one, which fences this holder).
#[derive(Clone, Debug)]
pub(super) struct Lease {
    token: u64,
    expires_at: Option<DateTime<Utc>>,
}

fn until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX)
}

impl MemoryState {
    fn is_ready(&self, record: &OrderRecord, now: DateTime<Utc>) -> bool {
        let due = |t: Option<DateTime<Utc>>| t.is_none_or(|t| t <= now);
        record.state == ProvisioningState::Pending
            && due(record.dispatch.next_attempt_at)
            && due(record.order.not_before)
            && self
                .leases
                .get(record.id())
                .is_none_or(|l| l.expires_at.is_none_or(|t| t <= now))
            && record.order.depends_on.iter().all(|d| {
                self.orders.get(d).is_some_and(|r| {
                    matches!(
                        r.state,
                        ProvisioningState::Executed | ProvisioningState::Verified
                    )
                })
            })
    }

    /// The lease of `claim` if it is still the order's latest.
    fn holding(&mut self, claim: &Claim) -> Result<&mut Lease, StoreError> {
        match self.leases.get_mut(claim.order_id()) {
            Some(l) if l.token == claim.token => Ok(l),
            _ => Err(StoreError::LeaseLost {
                order_id: claim.order_id().clone(),
                token: claim.token,
            }),
        }
    }
}

#[async_trait]
impl ClaimStore for MemoryStore {
    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let now = lease_clock();
        let mut state = self.lock();
        let mut ready: Vec<OrderId> = state
            .by_state
            .get(&ProvisioningState::Pending)
            .into_iter()
            .flatten()
            .filter(|id| {
                state
                    .orders
                    .get(*id)
                    .is_some_and(|r| state.is_ready(r, now))
            })
            .cloned()
            .collect();
        ready.sort();
        ready.truncate(limit);
        let mut claims = Vec::with_capacity(ready.len());
        for id in ready {
            state.lease_seq += 1;
            let token = state.lease_seq;
            let expires_at = until(now, lease);
            state.leases.insert(
                id.clone(),
                Lease {
                    token,
                    expires_at: Some(expires_at),
                },
            );
            if let Some(record) = state.orders.get(&id) {
                claims.push(Claim::new(record.clone(), worker, token, expires_at));
            }
        }
        Ok(claims)
    }

    async fn renew(&self, claim: &Claim, lease: Duration) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        let held = state.holding(claim)?;
        let expires_at = until(lease_clock(), lease);
        held.expires_at = Some(expires_at);
        let mut renewed = claim.clone();
        renewed.lease_expires_at = expires_at;
        Ok(renewed)
    }

    async fn record_outcome(
        &self,
        claim: &Claim,
        update: OrderUpdate,
    ) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        state.holding(claim)?;
        let record = state.apply(claim.order_id(), claim.record.version, &update)?;
        if record.state != ProvisioningState::Pending {
            state.holding(claim)?.expires_at = None;
        }
        let mut next = claim.clone();
        next.record = record;
        Ok(next)
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.lock().holding(claim)?.expires_at = None;
        Ok(())
    }

    async fn begin_planning(&self, planner: &str) -> Result<PlanningEpoch, StoreError> {
        let mut state = self.lock();
        state.planning_epoch += 1;
        Ok(PlanningEpoch::new(state.planning_epoch, planner))
    }

    async fn insert_orders_in_epoch(
        &self,
        epoch: &PlanningEpoch,
        records: &[OrderRecord],
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut state = self.lock();
        if state.planning_epoch != epoch.epoch {
            return Err(StoreError::StalePlanningEpoch {
                epoch: epoch.epoch,
                current: state.planning_epoch,
            });
        }
        state.insert(records)
    }
}

/// The lease clock of the in-memory store. A store is the one clock its workers share (as
/// PostgreSQL's `now()` is for the PostgreSQL store), so this is the one place the store crate
/// reads the wall clock.
#[allow(clippy::disallowed_methods)]
fn lease_clock() -> chrono::DateTime<Utc> {
    Utc::now()
}
