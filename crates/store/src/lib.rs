#![doc = include_str!("../README.md")]

mod audit;
mod claim;
mod error;
mod memory;
mod paging;
mod record;
mod runs;
#[cfg(feature = "seal")]
pub mod seal;
pub mod secrets;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use audit::{AuditAction, AuditEntry, Erasure, found_decision_audit};
pub use claim::{Claim, ClaimStore, Permit, PlanningEpoch, SharedBreaker};
pub use error::{BackendError, StoreError};
pub use memory::MemoryStore;
pub use paging::{DEFAULT_PAGE, StoreExt};
pub use record::{AdoptionReview, DispatchRecord, HistoryEntry, OrderRecord, OrderUpdate};
pub use runs::{
    Assignment, Assignments, JobKind, JobRun, JobStatus, ReviewDecision, ReviewVerdict,
};

use async_trait::async_trait;
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, FoundDecision, OrderId,
    OwnedValues, OwnerId, ProvisioningResult, ProvisioningState, RequestId, Resource, ResourceId,
    StableId,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The provisioning states in which an order is not done with: what a planner must know
/// about (so that it neither plans an order twice nor forgets one in flight) and what a
/// restarted process resumes.
pub const OPEN_STATES: &[ProvisioningState] = &[
    ProvisioningState::Pending,
    ProvisioningState::AwaitingApproval,
    ProvisioningState::Transmitted,
    ProvisioningState::Errored,
    ProvisioningState::Executed,
];

/// Where provisioning state lives: orders with their state, version and history, review
/// decisions, synchronized resources, export cookies, assignments, assignment requests and
/// job runs.
///
/// # Contract
/// - **The only owner of an order's provisioning state.** A state changes only through
///   [`Store::update_order`] (and [`Store::decide_review`]): a conditional write that names
///   the version the caller read and applies the core state machine
///   ([`ProvisioningState::apply`]) inside the store. A stale version is
///   [`StoreError::StaleVersion`], an illegal transition [`StoreError::IllegalTransition`]
///   carrying the core [`autoprov_core::IllegalTransition`]; in both cases nothing is written.
/// - **Nothing returns or replaces a whole collection.** Reads are by key, by state or
///   paged (`after` = the last key of the previous page, `limit` = page size, results sorted
///   by key); writes are per record or per batch. A store of millions of records works the
///   same.
/// - **Writes are keyed**, so repeating one after a crash is harmless: re-inserting an
///   order with the same content is a no-op.
/// - Every update appends a [`HistoryEntry`]; an order that is reopened keeps its history.
/// - Secrets: serde serialization of a [`Secret`](autoprov_core::Secret) is *masked* by
///   design. A store that serializes orders must keep secret values by other means (sealed
///   with a host key) and restore them on read, or refuse such orders.
///
/// Every store runs the conformance kit (`store_conformance_tests!`, feature `testkit`).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    // -- orders -------------------------------------------------------------------------------

    /// Stores new orders (version 1) and returns the ids of those already stored. An order
    /// id already stored for the same change ([`same_change`](autoprov_core::ProvisioningOrder::same_change): its context
    /// may differ) is left as it is; for a different change it is
    /// [`StoreError::ConflictingOrder`], and an id twice in `records` is
    /// [`StoreError::DuplicateInBatch`]; in both cases nothing of the batch is written.
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError>;

    /// One order's record.
    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError>;

    /// Applies `update` to the order if its stored version is `expected_version`, through
    /// [`OrderRecord::applied`]; returns the new record. Appends a [`HistoryEntry`].
    async fn update_order(
        &self,
        order_id: &OrderId,
        expected_version: u64,
        update: OrderUpdate,
    ) -> Result<OrderRecord, StoreError>;

    /// Records a provisioning-review decision and applies its event
    /// ([`ReviewVerdict::event`]) to the order, in one write, under the same conditions as
    /// [`Store::update_order`]. The latest decision per order is kept
    /// ([`Store::review_decision`]), and an [`AuditEntry`] is appended in the same write.
    async fn decide_review(
        &self,
        expected_version: u64,
        decision: ReviewDecision,
    ) -> Result<OrderRecord, StoreError>;

    /// The latest review decision on an order.
    async fn review_decision(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<ReviewDecision>, StoreError>;

    /// Review decisions, by order id.
    async fn review_decisions_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<ReviewDecision>, StoreError>;

    /// Every update applied to an order, oldest first.
    async fn order_history(&self, order_id: &OrderId) -> Result<Vec<HistoryEntry>, StoreError>;

    /// The order records in any of `states`, sorted by order id, answered from an index by
    /// state, so that a job costs what is in flight rather than the whole history.
    async fn orders_in(&self, states: &[ProvisioningState])
    -> Result<Vec<OrderRecord>, StoreError>;

    /// Order records by order id.
    async fn orders_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError>;

    /// How many orders are in each state (states without orders are absent).
    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError>;

    /// Orders that dispatch has not finished (Pending), sorted by order id: what a restarted
    /// dispatcher must send (again).
    async fn unfinished_orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.orders_in(&[ProvisioningState::Pending]).await
    }

    /// Results (SPEC §6) of the orders that dispatch finished, by order id. Results are
    /// derived from the records, so they never disagree with them.
    async fn results_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<ProvisioningResult>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = after.cloned();
        loop {
            let page = self.orders_page(cursor.as_ref(), limit.max(1)).await?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            cursor = Some(last.id().clone());
            for r in page.iter().filter(|r| r.is_finished()) {
                out.push(r.result());
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }

    // -- synchronized resources --------------------------------------------------------------

    /// Upserts synchronized resources of a connection. A resource whose stable id is stored
    /// under another key (renamed or moved) replaces that key.
    async fn upsert_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError>;

    /// Removes synchronized resources; returns those that were stored.
    async fn delete_resources(
        &self,
        connection: &ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>, StoreError>;

    /// One synchronized resource by key.
    async fn resource(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError>;

    /// The key under which a synchronized resource with this stable id is stored, if any.
    async fn key_of_stable(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError>;

    /// A connection's synchronized resources, by key.
    async fn resources_page(
        &self,
        connection: &ConnectionId,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError>;

    // -- export cookies -----------------------------------------------------------------------

    /// The export cookie of a connection.
    async fn cookie(&self, connection: &ConnectionId) -> Result<Option<ExportCookie>, StoreError>;

    /// Stores the export cookie of a connection (only after its export was synchronized).
    async fn set_cookie(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError>;

    // -- assignments and requests -----------------------------------------------------------

    /// Upserts a batch of assignments by id.
    async fn put_assignments(&self, assignments: Assignments) -> Result<(), StoreError>;

    /// One assignment by id.
    async fn assignment(&self, id: &AssignmentId) -> Result<Option<Assignment>, StoreError>;

    /// Assignments of every kind, by id.
    async fn assignments_page(
        &self,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError>;

    /// Upserts an assignment request (with its approval state) by id.
    async fn put_request(&self, request: AssignmentRequest) -> Result<(), StoreError>;

    /// One assignment request by id.
    async fn request(&self, id: &RequestId) -> Result<Option<AssignmentRequest>, StoreError>;

    /// Assignment requests, by id.
    async fn requests_page(
        &self,
        after: Option<&RequestId>,
        limit: usize,
    ) -> Result<Vec<AssignmentRequest>, StoreError>;

    // -- what predates autoprov: decisions on found values ------------------------------------

    /// Records decisions on found (non-conforming) values, in one write: each is filed under
    /// its [`FoundDecision::key`] (owner, resource type, value), replacing an earlier decision
    /// on the same value, and gets its audit entry ([`found_decision_audit`]: who kept or
    /// confirmed the removal of what, and why). A key twice in `decisions` is
    /// [`StoreError::DuplicateFoundDecision`] and nothing is written.
    async fn put_found_decisions(&self, decisions: &[FoundDecision]) -> Result<(), StoreError>;

    /// Decisions on found values, by key ([`FoundDecision::key`]); `after` is the key of the
    /// last decision of the previous page.
    async fn found_decisions_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FoundDecision>, StoreError>;

    /// Replaces what autoprov holds as its own for these owners ([`OwnedValues`]) in one
    /// write; an empty one forgets its owner. An owner twice in `values` is
    /// [`StoreError::DuplicateOwnedValues`] and nothing is written
    /// ([`check_owned_batch`]).
    async fn put_owned_values(&self, values: &[OwnedValues]) -> Result<(), StoreError>;

    /// What autoprov holds as its own, by owner; `after` is the owner of the last entry of the
    /// previous page.
    async fn owned_values_page(
        &self,
        after: Option<&OwnerId>,
        limit: usize,
    ) -> Result<Vec<OwnedValues>, StoreError>;

    // -- audit, retention, erasure -------------------------------------------------------------

    /// Appends an entry to the audit trail; returns its sequence number (increasing).
    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError>;

    /// Audit entries with their sequence numbers, oldest first, after sequence `after`.
    async fn audit_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError>;

    /// Removes up to `limit` finished orders (Verified, Inactive, Error) last updated before
    /// `before`, with their history and review decisions; returns their ids. Open orders
    /// (Pending, AwaitingApproval, Executed, Transmitted, Errored) are never purged.
    async fn purge_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError>;

    /// Erases an owner's data on request (data-protection law): their orders with history
    /// and review decisions, assignments, requests, decisions on found values and the audit
    /// entries about them. The
    /// erasure itself is then audited (by `actor`, naming no personal data but the owner id).
    async fn erase_owner(
        &self,
        owner: &OwnerId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError>;

    // -- job runs -----------------------------------------------------------------------------

    /// Upserts a job run by id.
    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError>;

    /// One job run by id.
    async fn job_run(&self, id: &str) -> Result<Option<JobRun>, StoreError>;

    /// Job runs, oldest first (by start time, then id); `after` is the id of the last run of
    /// the previous page.
    async fn job_runs_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRun>, StoreError>;
}

/// Refuses a batch of [`OwnedValues`] that names an owner twice — every store checks a batch
/// with it before writing anything.
pub fn check_owned_batch(values: &[OwnedValues]) -> Result<(), StoreError> {
    let mut owners = std::collections::BTreeSet::new();
    for v in values {
        if !owners.insert(&v.owner) {
            return Err(StoreError::DuplicateOwnedValues {
                owner: v.owner.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a batch of found-value decisions that decides one value twice, or that holds a
/// secret value (it would be stored masked) — every store checks a batch with it before
/// writing anything.
pub fn check_found_batch(decisions: &[FoundDecision]) -> Result<(), StoreError> {
    let mut keys = std::collections::BTreeSet::new();
    for d in decisions {
        if let autoprov_core::FoundValue::Scalar { property, value } = &d.value
            && value.is_secret()
        {
            return Err(StoreError::SecretNotStorable {
                table: "found_decisions",
                key: format!("{}/{}", d.owner, d.resource_type),
                property: property.clone(),
            });
        }
        if !keys.insert(d.key()) {
            return Err(StoreError::DuplicateFoundDecision {
                owner: d.owner.clone(),
                resource_type: d.resource_type.clone(),
                value: d.value.to_string(),
            });
        }
    }
    Ok(())
}
