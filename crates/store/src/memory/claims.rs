//! [`MemoryStore`] as a [`ClaimStore`]: the leases of one process, for tests and
//! simulations of work distribution. The store's clock is the process clock.

use super::{MemoryState, MemoryStore};
use crate::{
    Claim, ClaimStore, OrderRecord, OrderUpdate, Permit, PlanningEpoch, SharedBreaker, StoreError,
};
use async_trait::async_trait;
use autoprov_core::{ConnectionId, OrderId, ProvisioningState};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The latest lease of an order; `expires_at` is `None` once released (the token stays: a
/// later claim takes a greater one, which fences this holder).
#[derive(Clone, Debug)]
pub(super) struct Lease {
    token: u64,
    expires_at: Option<DateTime<Utc>>,
}

/// The latest lease of a connection permit slot.
#[derive(Clone, Debug)]
pub(super) struct PermitLease {
    token: u64,
    expires_at: Option<DateTime<Utc>>,
}

/// A connection's shared circuit breaker.
#[derive(Clone, Debug, Default)]
pub(super) struct BreakerRow {
    failures: u32,
    open_until: Option<DateTime<Utc>>,
    /// Opened and not closed since: when `open_until` passed, a probe is due.
    half_open: bool,
}

impl BreakerRow {
    fn view(&self, now: DateTime<Utc>) -> SharedBreaker {
        match self.open_until {
            Some(t) if t > now => SharedBreaker::Open {
                remaining: (t - now).to_std().unwrap_or_default(),
            },
            _ if self.half_open => SharedBreaker::ProbeDue,
            _ => SharedBreaker::Closed {
                failures: self.failures,
            },
        }
    }
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

    async fn acquire_permits(
        &self,
        connection: &ConnectionId,
        worker: &str,
        limit: u32,
        want: u32,
        lease: Duration,
    ) -> Result<Vec<Permit>, StoreError> {
        let now = lease_clock();
        let mut state = self.lock();
        let mut out = Vec::new();
        for slot in 0..limit {
            if out.len() >= want as usize {
                break;
            }
            let key = (connection.clone(), slot);
            if state
                .permits
                .get(&key)
                .is_some_and(|p| p.expires_at.is_some_and(|t| t > now))
            {
                continue;
            }
            state.lease_seq += 1;
            let token = state.lease_seq;
            let expires_at = until(now, lease);
            state.permits.insert(
                key,
                PermitLease {
                    token,
                    expires_at: Some(expires_at),
                },
            );
            out.push(Permit::new(
                connection.clone(),
                slot,
                worker,
                token,
                expires_at,
            ));
        }
        Ok(out)
    }

    async fn renew_permit(&self, permit: &Permit, lease: Duration) -> Result<Permit, StoreError> {
        let mut state = self.lock();
        let expires_at = until(lease_clock(), lease);
        match state
            .permits
            .get_mut(&(permit.connection.clone(), permit.slot))
        {
            Some(p) if p.token == permit.token => {
                p.expires_at = Some(expires_at);
                let mut renewed = permit.clone();
                renewed.lease_expires_at = expires_at;
                Ok(renewed)
            }
            _ => Err(StoreError::PermitLost {
                connection: permit.connection.clone(),
                slot: permit.slot,
                token: permit.token,
            }),
        }
    }

    async fn release_permits(&self, permits: &[Permit]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for permit in permits {
            if let Some(p) = state
                .permits
                .get_mut(&(permit.connection.clone(), permit.slot))
                && p.token == permit.token
            {
                p.expires_at = None;
            }
        }
        Ok(())
    }

    async fn breaker(&self, connection: &ConnectionId) -> Result<SharedBreaker, StoreError> {
        let now = lease_clock();
        Ok(self
            .lock()
            .breakers
            .get(connection)
            .map_or(SharedBreaker::Closed { failures: 0 }, |b| b.view(now)))
    }

    async fn breaker_failure(
        &self,
        connection: &ConnectionId,
        threshold: u32,
        open_for: Duration,
    ) -> Result<SharedBreaker, StoreError> {
        let now = lease_clock();
        let mut state = self.lock();
        let b = state.breakers.entry(connection.clone()).or_default();
        let open = b.open_until.is_some_and(|t| t > now);
        if b.half_open && !open {
            b.open_until = Some(until(now, open_for));
        } else if !b.half_open {
            b.failures += 1;
            if b.failures >= threshold {
                b.failures = 0;
                b.half_open = true;
                b.open_until = Some(until(now, open_for));
            }
        }
        Ok(b.view(now))
    }

    async fn breaker_success(&self, connection: &ConnectionId) -> Result<(), StoreError> {
        if let Some(b) = self.lock().breakers.get_mut(connection) {
            *b = BreakerRow::default();
        }
        Ok(())
    }

    async fn breaker_try_probe(
        &self,
        connection: &ConnectionId,
        open_for: Duration,
    ) -> Result<bool, StoreError> {
        let now = lease_clock();
        let mut state = self.lock();
        match state.breakers.get_mut(connection) {
            Some(b) if b.view(now) == SharedBreaker::ProbeDue => {
                b.open_until = Some(until(now, open_for));
                Ok(true)
            }
            _ => Ok(false),
        }
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
