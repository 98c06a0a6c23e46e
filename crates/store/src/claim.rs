//! Work distribution between several workers sharing one store (SPEC §10 "Durability"):
//! leased claims whose fencing token is checked when the outcome is written, and planning
//! epochs so that one planner at a time inserts orders.

use crate::{OrderRecord, OrderUpdate, Store, StoreError};
use async_trait::async_trait;
use autoprov_core::{ConnectionId, OrderId};
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

/// One slot of a connection's concurrency limit, held by one worker for a lease (see
/// [`ClaimStore::acquire_permits`]). Like a [`Claim`], it carries a fencing token: once the
/// lease expired and another worker took the slot, the old holder's renewal is
/// [`StoreError::PermitLost`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Permit {
    /// The connection whose limit the slot counts against.
    pub connection: ConnectionId,
    /// The slot number, `0..limit`.
    pub slot: u32,
    /// Who holds it.
    pub worker: String,
    /// The fencing token of this lease (from the same sequence as claims' tokens).
    pub token: u64,
    /// When the lease ends, by the store's clock.
    pub lease_expires_at: DateTime<Utc>,
}

impl Permit {
    /// A permit (for stores implementing [`ClaimStore`]).
    pub fn new(
        connection: ConnectionId,
        slot: u32,
        worker: impl Into<String>,
        token: u64,
        lease_expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            connection,
            slot,
            worker: worker.into(),
            token,
            lease_expires_at,
        }
    }
}

/// A connection's circuit breaker as every worker sharing the store sees it (see
/// [`ClaimStore::breaker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedBreaker {
    /// Calls go through; `failures` consecutive temporary failures so far.
    Closed {
        /// Consecutive temporary failures recorded since the last success.
        failures: u32,
    },
    /// Calls pause for `remaining` more (by the store's clock).
    Open {
        /// How long the breaker stays open from the moment it was read.
        remaining: Duration,
    },
    /// The open period ended: the next worker to win [`ClaimStore::breaker_try_probe`]
    /// probes the connection; the others keep waiting.
    ProbeDue,
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
///   [`record_outcomes`](ClaimStore::record_outcomes),
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

    /// [`record_outcome`](ClaimStore::record_outcome) for several claims at once (a worker
    /// recording the intents or outcomes of a batch of orders together): one result per
    /// write, in the order given, each exactly what `record_outcome` would return for it. Each
    /// write is fenced by its own claim's token in the same write, so a claim another worker
    /// took over gets [`StoreError::LeaseLost`] and nothing is written for that order, while
    /// the others are recorded. A store failure (e.g. [`StoreError::Unavailable`]) is
    /// reported for each write it stopped; a write reported failed is never partly applied.
    ///
    /// The default calls `record_outcome` once per write; a store with round trips to save
    /// records the batch in one statement.
    async fn record_outcomes(
        &self,
        writes: Vec<(Claim, OrderUpdate)>,
    ) -> Vec<Result<Claim, StoreError>> {
        let mut out = Vec::with_capacity(writes.len());
        for (claim, update) in writes {
            out.push(self.record_outcome(&claim, update).await);
        }
        out
    }

    /// Gives the order back before its lease ends (e.g. a temporary failure that will be
    /// retried at `next_attempt_at`, or a worker shutting down).
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Takes up to `want` free slots of `connection`'s limit of `limit` concurrent calls for
    /// `worker`, for `lease`: a slot is free when nobody holds it or its lease expired. Every
    /// slot taken gets a new fencing token. Returns fewer (or none) when the others are held:
    /// the limit holds across every worker sharing the store.
    async fn acquire_permits(
        &self,
        connection: &ConnectionId,
        worker: &str,
        limit: u32,
        want: u32,
        lease: Duration,
    ) -> Result<Vec<Permit>, StoreError>;

    /// Extends a permit's lease to `lease` from now (store clock);
    /// [`StoreError::PermitLost`] when another worker took the slot meanwhile.
    async fn renew_permit(&self, permit: &Permit, lease: Duration) -> Result<Permit, StoreError>;

    /// Frees permits before their leases end. A permit another worker took over meanwhile
    /// is left to its new holder (not an error).
    async fn release_permits(&self, permits: &[Permit]) -> Result<(), StoreError>;

    /// The shared circuit breaker of `connection` (Closed with 0 failures if never used).
    async fn breaker(&self, connection: &ConnectionId) -> Result<SharedBreaker, StoreError>;

    /// Records a temporary failure of a call on `connection`: in a closed breaker the
    /// count grows and the breaker opens for `open_for` at `threshold`; when a probe is due
    /// it opens again for `open_for`; while open (a probe running included) it changes
    /// nothing. Returns the state after.
    async fn breaker_failure(
        &self,
        connection: &ConnectionId,
        threshold: u32,
        open_for: Duration,
    ) -> Result<SharedBreaker, StoreError>;

    /// Records a good call or probe on `connection`: the breaker closes with 0 failures.
    async fn breaker_success(&self, connection: &ConnectionId) -> Result<(), StoreError>;

    /// When the breaker's open period ended ([`SharedBreaker::ProbeDue`]), lets exactly one
    /// caller probe: it returns true to that one and keeps the breaker open for `open_for`
    /// (the probe's time) for everyone else; false otherwise.
    async fn breaker_try_probe(
        &self,
        connection: &ConnectionId,
        open_for: Duration,
    ) -> Result<bool, StoreError>;

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
