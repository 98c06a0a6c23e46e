//! Where the orchestrator keeps what must survive a restart: assignments, orders with their
//! dispatch record, results, synchronized resources, export cookies and job runs.
//!
//! [`Store`] is an async trait so that a durable implementation (a database) can replace
//! [`MemoryStore`] without changing callers. Every write is keyed (order id, resource key,
//! connection), so repeating a write after a crash is harmless, and
//! [`Store::unfinished_orders`] gives a restarted dispatcher every order that was not finished.

use async_trait::async_trait;
use autoprov_connector::ExportCookie;
use autoprov_core::{
    AssignedResourceNavigation, AssignedResourceScalar, AssignedResourceType, AssignmentId,
    ConnectionId, ConnectionMode, OrderId, ProvisioningOrder, ProvisioningResult,
    ProvisioningState, Resource, ResourceId, StableId,
};
use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The dispatch history of one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchRecord {
    /// Calls made to the connector so far.
    pub attempts: u32,
    /// When the next attempt may start (after a temporary failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error's message.
    pub last_error: Option<String>,
    /// When the order was stored.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When the first attempt started.
    pub first_sent_at: Option<DateTime<Utc>>,
    /// When the order reached Executed, Transmitted or Errored.
    pub finished_at: Option<DateTime<Utc>>,
}

impl DispatchRecord {
    /// A fresh record.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            first_sent_at: None,
            finished_at: None,
        }
    }
}

/// An order with its provisioning state and dispatch record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The order (shared: records are copied on every state change, orders never are).
    pub order: Arc<ProvisioningOrder>,
    /// Automated or manual, from the connection's capabilities.
    pub mode: ConnectionMode,
    /// Its provisioning state.
    pub state: ProvisioningState,
    /// Its dispatch history.
    pub dispatch: DispatchRecord,
    /// The target's key after fulfilment (e.g. the DN of a created account).
    pub resource_id: Option<ResourceId>,
    /// The target's stable id after fulfilment.
    pub stable_id: Option<StableId>,
    /// The ticket, for a manual connection.
    pub ticket: Option<String>,
}

impl OrderRecord {
    /// A Pending record for a new order.
    pub fn pending(order: ProvisioningOrder, mode: ConnectionMode, now: DateTime<Utc>) -> Self {
        Self {
            order: Arc::new(order),
            mode,
            state: ProvisioningState::Pending,
            dispatch: DispatchRecord::new(now),
            resource_id: None,
            stable_id: None,
            ticket: None,
        }
    }

    /// Its result (SPEC §6): the state, the error for Errored orders, the ticket for orders
    /// handed to a human, and what the connector learned.
    pub fn result(&self) -> ProvisioningResult {
        let message = match self.state {
            ProvisioningState::Errored => self.dispatch.last_error.clone(),
            _ => self
                .ticket
                .as_ref()
                .map(|t| format!("handed to a human: ticket {t}")),
        };
        ProvisioningResult {
            order_id: self.order.order_id.clone(),
            assignment_id: self.order.assigned_resource_type_id.clone(),
            provisioning_state: self.state,
            message,
            change_type: self.order.change_type,
            owner_id: self.order.owner_id().cloned(),
            owner_type: self
                .order
                .owner
                .as_ref()
                .and_then(|o| o.entity_type.clone())
                .or_else(|| Some(self.order.resource_type.source_entity_type.id.clone())),
            resource_id: self.resource_id.clone(),
            stable_id: self.stable_id.clone(),
            ticket: self.ticket.clone(),
        }
    }

    /// Whether dispatch is done with it (anything but Pending and AwaitingApproval).
    pub fn is_finished(&self) -> bool {
        !matches!(
            self.state,
            ProvisioningState::Pending | ProvisioningState::AwaitingApproval
        )
    }
}

/// The kind of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Export everything, evaluate everyone.
    Complete,
    /// Export changes since the cookies, evaluate dirty owners.
    Incremental,
}

/// How a job run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Every step ran.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Cancelled: in-flight calls finished, nothing new started.
    Cancelled,
    /// A threshold blocked the generation.
    Blocked,
}

/// The record of one job run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// Its id.
    pub id: String,
    /// Complete or incremental.
    pub kind: JobKind,
    /// Simulation: everything up to the orders, no write.
    pub simulation: bool,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: JobStatus,
    /// Orders generated.
    pub orders_total: u64,
    /// Orders per provisioning state at the end of the run.
    pub counts: BTreeMap<ProvisioningState, u64>,
    /// A message (the error, the threshold breach).
    pub message: Option<String>,
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An order id is already stored with different content.
    #[error("order {order_id} is already stored with a different content")]
    ConflictingOrder {
        /// The order.
        order_id: OrderId,
    },
    /// No such order.
    #[error("order {order_id} is not in the store")]
    UnknownOrder {
        /// The order.
        order_id: OrderId,
    },
    /// A state change the provisioning state machine refuses.
    #[error("order {order_id}: {message}")]
    IllegalState {
        /// The order.
        order_id: OrderId,
        /// What was refused.
        message: String,
    },
    /// The backend failed.
    #[error("store backend failed during {operation}: {message}")]
    Backend {
        /// What was attempted.
        operation: &'static str,
        /// The backend's message.
        message: String,
    },
}

/// The three kinds of assignments, keyed by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    /// `AssignedResourceType`s.
    pub resource_types: BTreeMap<AssignmentId, AssignedResourceType>,
    /// `AssignedResourceScalar`s.
    pub scalars: BTreeMap<AssignmentId, AssignedResourceScalar>,
    /// `AssignedResourceNavigation`s.
    pub navigations: BTreeMap<AssignmentId, AssignedResourceNavigation>,
}

/// The orchestrator's persistent state.
///
/// Writing a durable implementation: order records hold the orders' secrets (initial
/// passwords), and serde serialization of a [`Secret`](autoprov_core::Secret) is *masked* by
/// design (so it never lands in a log or an export). A store that serializes records must keep
/// the secret values by other means (sealed with a host key, or in a vault) and restore them on
/// read; otherwise a re-sent order would set the password `********`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores new orders and returns the ids of those that were already stored. An order id
    /// already stored with the same order is left as it is (re-running a job after a crash is
    /// harmless); with a different order it is a [`StoreError::ConflictingOrder`] and nothing
    /// is written.
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError>;

    /// Replaces an order's record.
    async fn update_order(&self, record: OrderRecord) -> Result<(), StoreError>;

    /// Stores an order's progress: everything but the order itself (state, mode, dispatch
    /// record, learned ids, ticket). The dispatcher calls it on every attempt, so a store
    /// should make it cheap; the default replaces the whole record.
    async fn update_progress(&self, record: &OrderRecord) -> Result<(), StoreError> {
        self.update_order(record.clone()).await
    }

    /// One order's record.
    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError>;

    /// Every order record, sorted by order id.
    async fn orders(&self) -> Result<Vec<OrderRecord>, StoreError>;

    /// Orders that dispatch has not finished (Pending), sorted by order id: what a restarted
    /// dispatcher must send (again).
    async fn unfinished_orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.orders_in(&[ProvisioningState::Pending]).await
    }

    /// The order records in any of `states`, sorted by order id. Each job asks for the
    /// Executed and Transmitted ones (to verify them); a store should answer from an index by
    /// state, so that a job costs what is in flight rather than the whole order history. The
    /// default filters [`Store::orders`].
    async fn orders_in(
        &self,
        states: &[ProvisioningState],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self
            .orders()
            .await?
            .into_iter()
            .filter(|r| states.contains(&r.state))
            .collect())
    }

    /// How many orders are in each state (states without orders are absent). Each job records
    /// it in its [`JobRun`]; a store should keep it as counters. The default counts
    /// [`Store::orders`].
    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for r in self.orders().await? {
            *counts.entry(r.state).or_default() += 1;
        }
        Ok(counts)
    }

    /// The result of every order that dispatch finished (SPEC §6), sorted by order id. Results
    /// are derived from the order records (state, learned ids, ticket, last error), so they
    /// can never disagree with them.
    async fn results(&self) -> Result<Vec<ProvisioningResult>, StoreError> {
        Ok(self
            .orders()
            .await?
            .iter()
            .filter(|r| r.is_finished())
            .map(OrderRecord::result)
            .collect())
    }

    /// Replaces a connection's synchronized resources (after a complete export).
    async fn replace_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError>;

    /// Applies an incremental export: upserts (a renamed object replaces its old key, found by
    /// stable id) and deletions.
    async fn merge_resources(
        &self,
        connection: &ConnectionId,
        upserts: Vec<Resource>,
        deleted: Vec<ResourceId>,
    ) -> Result<(), StoreError>;

    /// A connection's synchronized resources, sorted by key.
    async fn resources(&self, connection: &ConnectionId) -> Result<Vec<Resource>, StoreError>;

    /// One synchronized resource by key.
    async fn resource(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError>;

    /// The key under which a synchronized resource with this stable id is stored, if any
    /// (a renamed or moved object keeps its stable id but changes key).
    async fn key_of_stable(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError>;

    /// The export cookie of a connection.
    async fn cookie(&self, connection: &ConnectionId) -> Result<Option<ExportCookie>, StoreError>;

    /// Stores the export cookie of a connection (only after its export was synchronized).
    async fn set_cookie(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError>;

    /// Stores (upserts by id) assignments.
    async fn put_assignments(&self, assignments: Assignments) -> Result<(), StoreError>;

    /// Every stored assignment.
    async fn assignments(&self) -> Result<Assignments, StoreError>;

    /// Stores (upserts by id) a job run.
    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError>;

    /// Every job run, oldest first.
    async fn job_runs(&self) -> Result<Vec<JobRun>, StoreError>;
}

#[derive(Debug, Default)]
struct ConnectionResources {
    by_key: BTreeMap<ResourceId, Resource>,
    key_of_stable: HashMap<StableId, ResourceId>,
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

    fn remove(&mut self, id: &ResourceId) {
        if let Some(r) = self.by_key.remove(id)
            && let Some(stable) = r.stable_id
            && self.key_of_stable.get(&stable) == Some(id)
        {
            self.key_of_stable.remove(&stable);
        }
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    orders: FxHashMap<OrderId, OrderRecord>,
    /// The ids of the orders in each state (an index of `orders`).
    by_state: BTreeMap<ProvisioningState, FxHashSet<OrderId>>,
    resources: BTreeMap<ConnectionId, ConnectionResources>,
    cookies: BTreeMap<ConnectionId, ExportCookie>,
    assignments: Assignments,
    jobs: Vec<JobRun>,
}

/// The in-memory [`Store`]: for tests, simulations and hosts that persist elsewhere.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

impl MemoryState {
    /// Moves an order's id to its new state's index entry.
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

    fn in_states(&self, states: &[ProvisioningState]) -> Vec<OrderRecord> {
        let mut found: Vec<OrderRecord> = states
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|s| self.by_state.get(s))
            .flatten()
            .filter_map(|id| self.orders.get(id).cloned())
            .collect();
        found.sort_by(|a, b| a.order.order_id.cmp(&b.order.order_id));
        found
    }
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

#[async_trait]
impl Store for MemoryStore {
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError> {
        let mut state = self.lock();
        let mut existing_ids = Vec::new();
        for r in records {
            if let Some(existing) = state.orders.get(&r.order.order_id) {
                if existing.order != r.order {
                    return Err(StoreError::ConflictingOrder {
                        order_id: r.order.order_id.clone(),
                    });
                }
                existing_ids.push(r.order.order_id.clone());
            }
        }
        state.orders.reserve(records.len());
        for r in records {
            if state.orders.contains_key(&r.order.order_id) {
                continue;
            }
            state.orders.insert(r.order.order_id.clone(), r.clone());
            state
                .by_state
                .entry(r.state)
                .or_default()
                .insert(r.order.order_id.clone());
        }
        Ok(existing_ids)
    }

    async fn update_progress(&self, record: &OrderRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.orders.get_mut(&record.order.order_id) {
            Some(slot) => {
                let was = slot.state;
                slot.mode = record.mode;
                slot.state = record.state;
                slot.dispatch.clone_from(&record.dispatch);
                slot.resource_id.clone_from(&record.resource_id);
                slot.stable_id.clone_from(&record.stable_id);
                slot.ticket.clone_from(&record.ticket);
                state.reindex(&record.order.order_id, was, record.state);
                Ok(())
            }
            None => Err(StoreError::UnknownOrder {
                order_id: record.order.order_id.clone(),
            }),
        }
    }

    async fn update_order(&self, record: OrderRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.orders.get_mut(&record.order.order_id) {
            Some(slot) => {
                let (was, now) = (slot.state, record.state);
                let id = record.order.order_id.clone();
                *slot = record;
                state.reindex(&id, was, now);
                Ok(())
            }
            None => Err(StoreError::UnknownOrder {
                order_id: record.order.order_id.clone(),
            }),
        }
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        let mut all: Vec<_> = self.lock().orders.values().cloned().collect();
        all.sort_by(|a, b| a.order.order_id.cmp(&b.order.order_id));
        Ok(all)
    }

    async fn orders_in(
        &self,
        states: &[ProvisioningState],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.lock().in_states(states))
    }

    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
        Ok(self
            .lock()
            .by_state
            .iter()
            .map(|(s, ids)| (*s, ids.len() as u64))
            .collect())
    }

    async fn replace_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError> {
        let mut fresh = ConnectionResources::default();
        for r in resources {
            fresh.insert(r);
        }
        self.lock().resources.insert(connection.clone(), fresh);
        Ok(())
    }

    async fn merge_resources(
        &self,
        connection: &ConnectionId,
        upserts: Vec<Resource>,
        deleted: Vec<ResourceId>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let map = state.resources.entry(connection.clone()).or_default();
        for id in &deleted {
            map.remove(id);
        }
        for r in upserts {
            map.insert(r);
        }
        Ok(())
    }

    async fn resources(&self, connection: &ConnectionId) -> Result<Vec<Resource>, StoreError> {
        Ok(self
            .lock()
            .resources
            .get(connection)
            .map(|m| m.by_key.values().cloned().collect())
            .unwrap_or_default())
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
        let mut state = self.lock();
        state
            .assignments
            .resource_types
            .extend(assignments.resource_types);
        state.assignments.scalars.extend(assignments.scalars);
        state
            .assignments
            .navigations
            .extend(assignments.navigations);
        Ok(())
    }

    async fn assignments(&self) -> Result<Assignments, StoreError> {
        Ok(self.lock().assignments.clone())
    }

    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.jobs.iter_mut().find(|j| j.id == run.id) {
            Some(slot) => *slot = run,
            None => state.jobs.push(run),
        }
        Ok(())
    }

    async fn job_runs(&self) -> Result<Vec<JobRun>, StoreError> {
        Ok(self.lock().jobs.clone())
    }
}
