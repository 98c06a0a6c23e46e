//! The conformance checks, one file per area. Each takes a fresh store and panics, naming
//! what it found, when the store misbehaves.

mod audit;
mod orders;
mod records;
mod transitions;

pub use audit::{audit_trail, erasure_removes_one_owner, retention_purges_finished_orders_only};
pub use orders::{
    insert_and_reread, reinsert_is_noop_and_conflict_is_refused, results_follow_records,
};
pub use records::{
    assignments_and_requests, cookies, found_decisions, job_runs, owned_values,
    resources_by_key_and_stable_id, review_decisions, secrets_outside_orders_are_refused,
};
pub use transitions::{
    adoption_review_is_kept, concurrent_transitions_apply_once, concurrent_updates_lose_nothing,
    illegal_transition_is_refused, reopened_order_keeps_its_history, stale_version_is_refused,
    state_index_agrees_with_scan,
};

use super::fixtures::{order, order_for, record, t0};
use crate::{
    Assignment, Assignments, AuditAction, AuditEntry, JobKind, JobRun, JobStatus, OPEN_STATES,
    OrderRecord, OrderUpdate, ReviewDecision, ReviewVerdict, Store, StoreError,
};
use autoprov_core::{
    AssignedResourceScalar, AssignedResourceType, AssignmentId, AssignmentRequest,
    AssignmentStatus, ConnectionId, ConnectionMode, ExportCookie, OrderId, PropertyValue,
    ProvisioningEvent as E, ProvisioningState as S, RequestKind, RequestedAssignment, Resource,
    ResourceId, ScalarValue, StableId, WorkflowState,
};
use chrono::TimeDelta;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every check, in the order the macro generates them.
pub const ALL: &[&str] = &[
    "insert_and_reread",
    "reinsert_is_noop_and_conflict_is_refused",
    "illegal_transition_is_refused",
    "stale_version_is_refused",
    "state_index_agrees_with_scan",
    "reopened_order_keeps_its_history",
    "adoption_review_is_kept",
    "results_follow_records",
    "cookies",
    "resources_by_key_and_stable_id",
    "assignments_and_requests",
    "secrets_outside_orders_are_refused",
    "review_decisions",
    "found_decisions",
    "owned_values",
    "job_runs",
    "concurrent_updates_lose_nothing",
    "concurrent_transitions_apply_once",
    "audit_trail",
    "retention_purges_finished_orders_only",
    "erasure_removes_one_owner",
];

pub(super) async fn all_orders(store: &dyn Store, page: usize) -> Vec<OrderRecord> {
    let mut out: Vec<OrderRecord> = Vec::new();
    loop {
        let next = store
            .orders_page(out.last().map(OrderRecord::id), page)
            .await
            .expect("orders_page");
        assert!(
            next.len() <= page,
            "orders_page returned more than its limit"
        );
        if next.is_empty() {
            return out;
        }
        out.extend(next);
    }
}

pub(super) async fn get(store: &dyn Store, id: &OrderId) -> OrderRecord {
    store
        .order(id)
        .await
        .expect("order")
        .unwrap_or_else(|| panic!("order {id} is missing"))
}

pub(super) async fn step(store: &dyn Store, id: &OrderId, update: OrderUpdate) -> OrderRecord {
    let version = get(store, id).await.version;
    store
        .update_order(id, version, update)
        .await
        .unwrap_or_else(|e| panic!("update of {id} refused: {e}"))
}
