//! [`MemoryStore`]: the in-memory [`Store`], for tests, simulations and hosts that persist
//! elsewhere.

use crate::{
    Assignment, Assignments, AuditAction, AuditEntry, Erasure, HistoryEntry, JobRun, OPEN_STATES,
    OrderRecord, OrderUpdate, ReviewDecision, Store, StoreError, check_found_batch,
};
use async_trait::async_trait;
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, FoundDecision, OrderId,
    OwnedValues, OwnerId, ProvisioningState, RequestId, Resource, ResourceId, StableId,
};
use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

mod claims;

#[derive(Debug, Default)]
struct ConnectionResources {
    by_key: BTreeMap<ResourceId, Resource>,
    key_of_stable: FxHashMap<StableId, ResourceId>,
}

impl ConnectionResources {
    fn insert(&mut self, r: Resource) {
        if let Some(stable) = &r.stable_id
            && let Some(old) = self.key_of_stable.insert(stable.clone(), r.id.clone())
            && old != r.id
        {
            self.by_key.remove(&old);
        }
        if let Some(previous) = self.by_key.insert(r.id.clone(), r)
            && let Some(stable) = previous.stable_id
            && self.key_of_stable.get(&stable) == Some(&previous.id)
            && self
                .by_key
                .get(&previous.id)
                .and_then(|n| n.stable_id.as_ref())
                != Some(&stable)
        {
            self.key_of_stable.remove(&stable);
        }
    }

    fn remove(&mut self, id: &ResourceId) -> Option<Resource> {
        let r = self.by_key.remove(id)?;
        if let Some(stable) = &r.stable_id
            && self.key_of_stable.get(stable) == Some(id)
        {
            self.key_of_stable.remove(stable);
        }
        Some(r)
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    orders: BTreeMap<OrderId, OrderRecord>,
    /// The ids of the orders in each state (an index of `orders`).
    by_state: BTreeMap<ProvisioningState, FxHashSet<OrderId>>,
    history: FxHashMap<OrderId, Vec<HistoryEntry>>,
    reviews: BTreeMap<OrderId, ReviewDecision>,
    found: BTreeMap<String, FoundDecision>,
    /// What autoprov holds as its own, by owner.
    owned: BTreeMap<OwnerId, OwnedValues>,
    resources: BTreeMap<ConnectionId, ConnectionResources>,
    cookies: BTreeMap<ConnectionId, ExportCookie>,
    assignments: BTreeMap<AssignmentId, Assignment>,
    requests: BTreeMap<RequestId, AssignmentRequest>,
    jobs: Vec<JobRun>,
    audit: BTreeMap<u64, AuditEntry>,
    audit_seq: u64,
    /// Work distribution (`ClaimStore`): the latest lease of each claimed order.
    leases: FxHashMap<OrderId, claims::Lease>,
    lease_seq: u64,
    planning_epoch: u64,
    /// Connection permits (`ClaimStore::acquire_permits`): the latest lease of each slot.
    permits: FxHashMap<(ConnectionId, u32), claims::PermitLease>,
    /// Shared circuit breakers (`ClaimStore::breaker`).
    breakers: FxHashMap<ConnectionId, claims::BreakerRow>,
}

impl MemoryState {
    fn reindex(&mut self, id: &OrderId, from: ProvisioningState, to: ProvisioningState) {
        if from == to {
            return;
        }
        if let Some(ids) = self.by_state.get_mut(&from) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_state.remove(&from);
            }
        }
        self.by_state.entry(to).or_default().insert(id.clone());
    }

    fn append_audit(&mut self, entry: AuditEntry) -> u64 {
        self.audit_seq += 1;
        self.audit.insert(self.audit_seq, entry);
        self.audit_seq
    }

    /// Removes an order with its index entry, history and review decision.
    fn remove_order(&mut self, id: &OrderId) -> bool {
        let Some(r) = self.orders.remove(id) else {
            return false;
        };
        if let Some(ids) = self.by_state.get_mut(&r.state) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_state.remove(&r.state);
            }
        }
        self.history.remove(id);
        self.reviews.remove(id);
        self.leases.remove(id);
        true
    }

    /// Stores new orders (see [`Store::insert_orders`]); nothing if one is refused.
    fn insert(&mut self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError> {
        let mut existing_ids = Vec::new();
        let mut seen: FxHashSet<&OrderId> = FxHashSet::default();
        for r in records {
            if !seen.insert(r.id()) {
                return Err(StoreError::DuplicateInBatch {
                    order_id: r.id().clone(),
                });
            }
            if let Some(existing) = self.orders.get(r.id()) {
                if !existing.order.same_change(&r.order) {
                    return Err(StoreError::ConflictingOrder {
                        order_id: r.id().clone(),
                    });
                }
                existing_ids.push(r.id().clone());
            }
        }
        for r in records {
            if self.orders.contains_key(r.id()) {
                continue;
            }
            let mut stored = r.clone();
            stored.version = 1;
            self.by_state
                .entry(stored.state)
                .or_default()
                .insert(stored.id().clone());
            self.orders.insert(stored.id().clone(), stored);
        }
        Ok(existing_ids)
    }

    /// The one place an order record changes: check the version, apply the update through
    /// [`OrderRecord::applied`], reindex, append the history entry.
    fn apply(
        &mut self,
        order_id: &OrderId,
        expected_version: u64,
        update: &OrderUpdate,
    ) -> Result<OrderRecord, StoreError> {
        let current = self
            .orders
            .get(order_id)
            .ok_or_else(|| StoreError::UnknownOrder {
                order_id: order_id.clone(),
            })?;
        if current.version != expected_version {
            return Err(StoreError::StaleVersion {
                order_id: order_id.clone(),
                expected: expected_version,
                actual: current.version,
            });
        }
        let (next, entry) = current.applied(update)?;
        let from = current.state;
        self.reindex(order_id, from, next.state);
        self.history
            .entry(order_id.clone())
            .or_default()
            .push(entry);
        self.orders.insert(order_id.clone(), next.clone());
        Ok(next)
    }
}

/// The in-memory [`Store`]: for tests, simulations and hosts that persist elsewhere. It
/// passes the store conformance kit like every store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // Every method checks before it writes, so a poisoned lock holds no half-written
        // record.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Up to `limit` values of `map` after `after`, in key order.
fn page<K: Ord, V: Clone>(map: &BTreeMap<K, V>, after: Option<&K>, limit: usize) -> Vec<V> {
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    map.range((lower, Bound::Unbounded))
        .take(limit)
        .map(|(_, v)| v.clone())
        .collect()
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError> {
        self.lock().insert(records)
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn update_order(
        &self,
        order_id: &OrderId,
        expected_version: u64,
        update: OrderUpdate,
    ) -> Result<OrderRecord, StoreError> {
        self.lock().apply(order_id, expected_version, &update)
    }

    async fn decide_review(
        &self,
        expected_version: u64,
        decision: ReviewDecision,
    ) -> Result<OrderRecord, StoreError> {
        let mut state = self.lock();
        let update = OrderUpdate::event(decision.verdict.event(), decision.at);
        let record = state.apply(&decision.order_id, expected_version, &update)?;
        state.append_audit(decision.audit_entry(record.order.owner_id().cloned()));
        state.reviews.insert(decision.order_id.clone(), decision);
        Ok(record)
    }

    async fn put_found_decisions(&self, decisions: &[FoundDecision]) -> Result<(), StoreError> {
        check_found_batch(decisions)?;
        let mut state = self.lock();
        for d in decisions {
            state.append_audit(crate::found_decision_audit(d));
            state.found.insert(d.key(), d.clone());
        }
        Ok(())
    }

    async fn put_owned_values(&self, values: &[OwnedValues]) -> Result<(), StoreError> {
        crate::check_owned_batch(values)?;
        let mut state = self.lock();
        for v in values {
            if v.is_empty() {
                state.owned.remove(&v.owner);
            } else {
                state.owned.insert(v.owner.clone(), v.clone());
            }
        }
        Ok(())
    }

    async fn owned_values_page(
        &self,
        after: Option<&OwnerId>,
        limit: usize,
    ) -> Result<Vec<OwnedValues>, StoreError> {
        let state = self.lock();
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(state
            .owned
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn found_decisions_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FoundDecision>, StoreError> {
        let state = self.lock();
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        Ok(state
            .found
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect())
    }

    async fn review_decision(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<ReviewDecision>, StoreError> {
        Ok(self.lock().reviews.get(order_id).cloned())
    }

    async fn review_decisions_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<ReviewDecision>, StoreError> {
        Ok(page(&self.lock().reviews, after, limit))
    }

    async fn order_history(&self, order_id: &OrderId) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .lock()
            .history
            .get(order_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn orders_in(
        &self,
        states: &[ProvisioningState],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let state = self.lock();
        let mut found: Vec<OrderRecord> = states
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|s| state.by_state.get(s))
            .flatten()
            .filter_map(|id| state.orders.get(id).cloned())
            .collect();
        found.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(found)
    }

    async fn orders_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(page(&self.lock().orders, after, limit))
    }

    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
        Ok(self
            .lock()
            .by_state
            .iter()
            .map(|(s, ids)| (*s, ids.len() as u64))
            .collect())
    }

    async fn upsert_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError> {
        crate::secrets::refuse_secrets_in_resources(connection, &resources)?;
        let mut state = self.lock();
        let map = state.resources.entry(connection.clone()).or_default();
        for r in resources {
            map.insert(r);
        }
        Ok(())
    }

    async fn delete_resources(
        &self,
        connection: &ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>, StoreError> {
        let mut state = self.lock();
        let Some(map) = state.resources.get_mut(connection) else {
            return Ok(Vec::new());
        };
        Ok(ids.iter().filter_map(|id| map.remove(id)).collect())
    }

    async fn resource(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError> {
        Ok(self
            .lock()
            .resources
            .get(connection)
            .and_then(|m| m.by_key.get(id).cloned()))
    }

    async fn key_of_stable(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError> {
        Ok(self
            .lock()
            .resources
            .get(connection)
            .and_then(|m| m.key_of_stable.get(stable).cloned()))
    }

    async fn resources_page(
        &self,
        connection: &ConnectionId,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        Ok(self
            .lock()
            .resources
            .get(connection)
            .map(|m| page(&m.by_key, after, limit))
            .unwrap_or_default())
    }

    async fn cookie(&self, connection: &ConnectionId) -> Result<Option<ExportCookie>, StoreError> {
        Ok(self.lock().cookies.get(connection).cloned())
    }

    async fn set_cookie(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError> {
        self.lock().cookies.insert(connection.clone(), cookie);
        Ok(())
    }

    async fn put_assignments(&self, assignments: Assignments) -> Result<(), StoreError> {
        crate::secrets::refuse_secrets_in_assignments(&assignments)?;
        let mut state = self.lock();
        for (id, a) in assignments.resource_types {
            state.assignments.insert(id, Assignment::ResourceType(a));
        }
        for (id, a) in assignments.scalars {
            state.assignments.insert(id, Assignment::Scalar(a));
        }
        for (id, a) in assignments.navigations {
            state.assignments.insert(id, Assignment::Navigation(a));
        }
        Ok(())
    }

    async fn assignment(&self, id: &AssignmentId) -> Result<Option<Assignment>, StoreError> {
        Ok(self.lock().assignments.get(id).cloned())
    }

    async fn assignments_page(
        &self,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        Ok(page(&self.lock().assignments, after, limit))
    }

    async fn put_request(&self, request: AssignmentRequest) -> Result<(), StoreError> {
        crate::secrets::refuse_secret_in_request(&request)?;
        self.lock().requests.insert(request.id.clone(), request);
        Ok(())
    }

    async fn request(&self, id: &RequestId) -> Result<Option<AssignmentRequest>, StoreError> {
        Ok(self.lock().requests.get(id).cloned())
    }

    async fn requests_page(
        &self,
        after: Option<&RequestId>,
        limit: usize,
    ) -> Result<Vec<AssignmentRequest>, StoreError> {
        Ok(page(&self.lock().requests, after, limit))
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        Ok(self.lock().append_audit(entry))
    }

    async fn audit_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let state = self.lock();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .audit
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    async fn purge_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut state = self.lock();
        let mut ids: Vec<OrderId> = state
            .by_state
            .iter()
            .filter(|(s, _)| !OPEN_STATES.contains(s))
            .flat_map(|(_, ids)| ids.iter())
            .filter(|id| {
                state
                    .orders
                    .get(*id)
                    .is_some_and(|r| r.dispatch.updated_at < before)
            })
            .cloned()
            .collect();
        ids.sort();
        ids.truncate(limit);
        for id in &ids {
            state.remove_order(id);
        }
        Ok(ids)
    }

    async fn erase_owner(
        &self,
        owner: &OwnerId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError> {
        let mut state = self.lock();
        let mut erasure = Erasure::default();
        let orders: Vec<OrderId> = state
            .orders
            .values()
            .filter(|r| r.order.owner_id() == Some(owner))
            .map(|r| r.id().clone())
            .collect();
        for id in &orders {
            state.remove_order(id);
        }
        erasure.orders = orders.len() as u64;
        state.found.retain(|_, d| &d.owner != owner);
        state.owned.remove(owner);
        let arts: BTreeSet<AssignmentId> = state
            .assignments
            .values()
            .filter_map(|a| match a {
                Assignment::ResourceType(a) if &a.owner == owner => Some(a.id.clone()),
                _ => None,
            })
            .collect();
        let before = state.assignments.len();
        state.assignments.retain(|id, a| {
            !arts.contains(id)
                && match a {
                    Assignment::Scalar(s) => !arts.contains(&s.assigned_resource_type),
                    Assignment::Navigation(n) => !arts.contains(&n.assigned_resource_type),
                    Assignment::ResourceType(_) => true,
                }
        });
        erasure.assignments = (before - state.assignments.len()) as u64;
        let before = state.requests.len();
        state.requests.retain(|_, r| &r.owner != owner);
        erasure.requests = (before - state.requests.len()) as u64;
        let before = state.audit.len();
        state.audit.retain(|_, e| e.owner.as_ref() != Some(owner));
        erasure.audit_entries = (before - state.audit.len()) as u64;
        let entry = AuditEntry::new(at, actor, AuditAction::Erased, owner.as_str());
        state.append_audit(entry);
        Ok(erasure)
    }

    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.jobs.iter_mut().find(|j| j.id == run.id) {
            Some(slot) => *slot = run,
            None => {
                state.jobs.push(run);
                state
                    .jobs
                    .sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            }
        }
        Ok(())
    }

    async fn job_run(&self, id: &str) -> Result<Option<JobRun>, StoreError> {
        Ok(self.lock().jobs.iter().find(|j| j.id == id).cloned())
    }

    async fn job_runs_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRun>, StoreError> {
        let state = self.lock();
        let start = match after {
            Some(id) => match state.jobs.iter().position(|j| j.id == id) {
                Some(i) => i + 1,
                None => return Ok(Vec::new()),
            },
            None => 0,
        };
        Ok(state.jobs.iter().skip(start).take(limit).cloned().collect())
    }
}
