//! Work distribution between several workers sharing one store (SPEC §10 "Durability"):
//! leased claims whose fencing token is checked when the outcome is written, and planning
//! epochs so that one planner at a time inserts orders.

use crate::{OrderRecord, OrderUpdate, Store, StoreError};
use async_trait::async_trait;
use autoprov_core::OrderId;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// An order a worker holds for a while: the record as claimed, the fencing token of this
/// lease and when the lease ends.
///
/// The token is a number the store increases with every claim, so a later holder of the same
/// order always has a greater token. Every write made under a claim names its token, and the
/// store refuses it with [`StoreError::LeaseLost`] once another worker claimed the order:
/// a worker that paused past its lease (GC, a network partition, a suspended VM) can never
/// record over the new holder.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The order as it was when claimed (or after the last write under this claim).
    pub record: OrderRecord,
    /// Who holds it.
    pub worker: String,
    /// The fencing token of this lease.
    pub token: u64,
    /// When the lease ends, by the store's clock (never the worker's).
    pub lease_expires_at: DateTime<Utc>,
}

impl Claim {
    /// A claim (for stores implementing [`ClaimStore`]).
    pub fn new(
        record: OrderRecord,
        worker: impl Into<String>,
        token: u64,
        lease_expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            record,
            worker: worker.into(),
            token,
            lease_expires_at,
        }
    }

    /// The claimed order's id.
    pub fn order_id(&self) -> &OrderId {
        self.record.id()
    }
}

/// A planner's turn: the epoch [`ClaimStore::begin_planning`] returned. A newer turn fences
/// every older one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanningEpoch {
    /// The epoch number (increasing).
    pub epoch: u64,
    /// The planner that began it.
    pub planner: String,
}

impl PlanningEpoch {
    /// An epoch (for stores implementing [`ClaimStore`]).
    pub fn new(epoch: u64, planner: impl Into<String>) -> Self {
        Self {
            epoch,
            planner: planner.into(),
        }
    }
}

/// A [`Store`] that several worker processes share: each claims ready orders for a lease,
/// sends them, and records their outcomes under the claim's fencing token.
///
/// # Contract
/// - **Ready** means: Pending, its `next_attempt_at` and `not_before` passed, every order it
///   `depends_on` Executed or Verified, and no unexpired lease on it.
/// - **Exclusive.** Two concurrent [`claim`](ClaimStore::claim)s never return the same
///   order; an order returns to the pool when its lease expires (a worker died) or is
///   [`release`](ClaimStore::release)d.
/// - **Lease times are the store's clock**, never the worker's.
/// - **Fenced writes.** [`record_outcome`](ClaimStore::record_outcome),
///   [`renew`](ClaimStore::renew) and [`release`](ClaimStore::release) check the token in
///   the same write; a claim taken over by another worker is [`StoreError::LeaseLost`] and
///   nothing is written. A write under a lease that expired but that nobody took over yet
///   still succeeds (the token is still the latest, so no one else can have acted).
/// - Outcomes go through [`OrderRecord::applied`], the same function as
///   [`Store::update_order`], and are appended to the history.
/// - **One planner at a time.** [`begin_planning`](ClaimStore::begin_planning) starts a new
///   epoch; [`insert_orders_in_epoch`](ClaimStore::insert_orders_in_epoch) refuses a stale
///   epoch with [`StoreError::StalePlanningEpoch`], checked in the transaction that inserts.
#[async_trait]
pub trait ClaimStore: Store {
    /// Claims up to `limit` ready orders for `worker` for `lease`, sorted by order id.
    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Extends a claim's lease to `lease` from now (store clock); same token.
    async fn renew(&self, claim: &Claim, lease: Duration) -> Result<Claim, StoreError>;

    /// Applies `update` to the claimed order if the claim still holds (token checked in the
    /// same write) and the order is at the claim's version; returns the claim with the new
    /// record. Once the order leaves Pending the lease is released.
    async fn record_outcome(&self, claim: &Claim, update: OrderUpdate)
    -> Result<Claim, StoreError>;

    /// Gives the order back before its lease ends (e.g. a temporary failure that will be
    /// retried at `next_attempt_at`, or a worker shutting down).
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Starts a planning epoch for `planner`; every earlier epoch becomes stale.
    async fn begin_planning(&self, planner: &str) -> Result<PlanningEpoch, StoreError>;

    /// [`Store::insert_orders`] if `epoch` is still the current one, checked in the same
    /// transaction; otherwise [`StoreError::StalePlanningEpoch`] and nothing is written.
    async fn insert_orders_in_epoch(
        &self,
        epoch: &PlanningEpoch,
        records: &[OrderRecord],
    ) -> Result<Vec<OrderId>, StoreError>;
}
