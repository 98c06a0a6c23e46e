//! Dispatch: orders go to their connection's connector, with bounded concurrency, a deadline
//! on every call, retries of temporary errors only (exponential backoff, seeded jitter, bounded
//! by attempts and total time), a retry budget against retry storms, a circuit breaker per
//! connection, and dependencies between orders.
//!
//! Every result moves the order through the core state machine
//! ([`ProvisioningState::apply`]): automated ⇒ Executed or Errored; manual ⇒ Transmitted, then
//! confirmed or reported. One failing order never stops the others. Cancellation lets in-flight
//! calls finish and starts nothing new; unstarted orders stay Pending in the store, where a later
//! [`Dispatcher::resume`] finds them. Re-sending an order whose result was lost is safe because
//! connectors are idempotent.

use crate::clock::Clock;
use crate::events::{EventSink, JobEvent, NoEvents};
use crate::store::{OrderRecord, OrderUpdate, Store, StoreError};
use autoprov_connector::Connector;
use autoprov_core::{
    ConnectionId, ConnectionMode, OrderId, PasswordResetSettings, ProvisioningEvent,
    ProvisioningOrder, ProvisioningState, ResourceType, ResourceTypeId,
};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

mod breaker;
mod budget;
mod graph;
mod policy;
pub(crate) mod send;
mod values;

pub use policy::{CircuitBreakerPolicy, DispatchPolicy, PolicyError, RetryBudget, RetryPolicy};
pub use values::{operation_of, value_changes};

pub(crate) use policy::instant_after as policy_instant_after;

use breaker::{Breaker, BreakerState};
use budget::BudgetState;
use graph::Graph;

/// A failure of the dispatcher itself (not of an order: those are results).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The same order id appears twice in one dispatch; nothing was stored or sent.
    #[error("order {order_id} appears twice in one dispatch; nothing was sent")]
    DuplicateOrder {
        /// The order.
        order_id: OrderId,
    },
    /// Orders of one dispatch depend on each other in a cycle, so none of them could ever be
    /// sent; nothing was stored or sent.
    #[error("orders {} depend on each other in a cycle; nothing was sent", .orders.iter().map(OrderId::as_str).collect::<Vec<_>>().join(", "))]
    DependencyCycle {
        /// The orders on the cycle (and those waiting on it), sorted.
        orders: Vec<OrderId>,
    },
}

/// Refuses a batch with a duplicate order id or a dependency cycle, before anything is
/// stored: such a batch would otherwise leave orders Pending forever.
pub(crate) fn check_batch<'a>(
    orders: impl Iterator<Item = &'a ProvisioningOrder> + Clone,
) -> Result<(), DispatchError> {
    let mut index: HashMap<&OrderId, usize> = HashMap::new();
    for (i, o) in orders.clone().enumerate() {
        if index.insert(&o.order_id, i).is_some() {
            return Err(DispatchError::DuplicateOrder {
                order_id: o.order_id.clone(),
            });
        }
    }
    // Kahn's algorithm over the dependencies inside the batch.
    let n = index.len();
    let mut waiting = vec![0usize; n];
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, o) in orders.clone().enumerate() {
        for dep in &o.depends_on {
            if let Some(&j) = index.get(dep) {
                waiting[i] += 1;
                dependants[j].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut seen = 0;
    while let Some(j) = ready.pop() {
        seen += 1;
        for &i in &dependants[j] {
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(i);
            }
        }
    }
    if seen == n {
        return Ok(());
    }
    let mut stuck: Vec<OrderId> = orders
        .enumerate()
        .filter(|(i, _)| waiting[*i] > 0)
        .map(|(_, o)| o.order_id.clone())
        .collect();
    stuck.sort();
    Err(DispatchError::DependencyCycle { orders: stuck })
}

/// What a dispatch achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Orders Executed.
    pub executed: Vec<OrderId>,
    /// Orders handed to a human.
    pub transmitted: Vec<OrderId>,
    /// Orders Errored, with the message.
    pub errored: Vec<(OrderId, String)>,
    /// Added orders that found an existing account autoprov did not create, of a resource
    /// type that reviews adoptions: nothing was written, they wait in AwaitingApproval (with
    /// what was found).
    pub awaiting_review: Vec<(OrderId, String)>,
    /// Orders not started (cancellation): still Pending in the store.
    pub pending: Vec<OrderId>,
    /// Orders skipped because the store had them finished already.
    pub already_finished: Vec<OrderId>,
    /// Connector calls made.
    pub attempts: u64,
}

impl DispatchReport {
    fn sort(&mut self) {
        self.executed.sort();
        self.transmitted.sort();
        self.errored.sort();
        self.awaiting_review.sort();
        self.pending.sort();
        self.already_finished.sort();
    }
}

pub(crate) struct Lane {
    pub(crate) connector: Arc<dyn Connector>,
    semaphore: Arc<Semaphore>,
    breaker: Breaker,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("connection", &self.connector.info().connection)
            .finish_non_exhaustive()
    }
}

/// Sends orders to connectors.
///
/// Each order runs as its own tokio task, so a multi-threaded runtime spreads the dispatcher's
/// own work (store, state machine, events) over its workers, and a connector that panics fails
/// its order instead of the dispatch.
pub struct Dispatcher {
    core: Arc<Core>,
}

pub(crate) struct Core {
    pub(crate) lanes: BTreeMap<ConnectionId, Lane>,
    delivery: Option<Arc<dyn crate::delivery::PasswordDelivery>>,
    /// Password settings by resource type: generation at fulfilment time.
    passwords: HashMap<ResourceTypeId, Arc<PasswordResetSettings>>,
    /// Resource types whose Added orders ask for review before adopting an account autoprov
    /// did not create ([`ResourceType::reviews_adoption`]).
    review_adoption: HashSet<ResourceTypeId>,
    pub(crate) policy: DispatchPolicy,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Arc<dyn EventSink>,
    budget: Mutex<BudgetState>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("connections", &self.core.lanes.keys().collect::<Vec<_>>())
            .field("policy", &self.core.policy)
            .finish_non_exhaustive()
    }
}

/// The outcome of one order inside a dispatch.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Succeeded(ProvisioningState),
    Failed(String),
    /// The connector found an account to adopt that needs review: AwaitingApproval.
    AwaitingReview(String),
    NotStarted,
}

impl Dispatcher {
    /// A dispatcher over the given connections.
    ///
    /// The policy is not checked here: check one that comes from configuration with
    /// [`DispatchPolicy::validate`] (or build the job with
    /// [`crate::job::ProvisioningJobBuilder::try_build`]). An unchecked policy never makes
    /// dispatch panic (its waits saturate, its concurrency is capped), but does not behave as
    /// meant.
    pub fn new(
        connectors: impl IntoIterator<Item = Arc<dyn Connector>>,
        policy: DispatchPolicy,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let lanes = connectors
            .into_iter()
            .map(|c| {
                let id = c.info().connection.clone();
                let lane = Lane {
                    connector: c,
                    semaphore: Arc::new(Semaphore::new(
                        policy
                            .concurrency_per_connection
                            .clamp(1, policy::MAX_CONCURRENCY),
                    )),
                    breaker: Breaker {
                        state: Mutex::new(BreakerState::Closed { failures: 0 }),
                        changed: Notify::new(),
                    },
                };
                (id, lane)
            })
            .collect();
        let budget = Mutex::new(BudgetState {
            tokens: policy.budget.capacity.min(policy.budget.min_per_second),
            last_refill: Instant::now(),
        });
        let rng = Mutex::new(StdRng::seed_from_u64(policy.jitter_seed));
        Self {
            core: Arc::new(Core {
                lanes,
                delivery: None,
                passwords: HashMap::new(),
                review_adoption: HashSet::new(),
                policy,
                store,
                clock,
                events: Arc::new(NoEvents),
                budget,
                rng,
            }),
        }
    }

    /// Hands generated initial passwords to `delivery` (see [`crate::delivery`]).
    pub fn with_password_delivery(
        mut self,
        delivery: Arc<dyn crate::delivery::PasswordDelivery>,
    ) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.delivery = Some(delivery),
            None => unreachable!("the core is shared only while a dispatch runs"),
        }
        self
    }

    /// Takes these resource types' settings that apply at fulfilment time: initial passwords
    /// generated by their password settings ([`ResourceType::password_reset_settings`]; see
    /// [`crate::delivery`]; types without settings get none from the dispatcher), and review
    /// before adopting an account autoprov did not create
    /// ([`ResourceType::reviews_adoption`]: the order waits in AwaitingApproval until approved;
    /// see [`autoprov_connector::ADOPTION_REVIEW_ARGUMENT`]).
    pub fn with_resource_types<'a>(
        mut self,
        resource_types: impl IntoIterator<Item = &'a ResourceType>,
    ) -> Self {
        let mut passwords = HashMap::new();
        let mut review_adoption = HashSet::new();
        for rt in resource_types {
            if let Some(s) = &rt.password_reset_settings {
                passwords.insert(rt.id.clone(), Arc::new(s.clone()));
            }
            if rt.reviews_adoption() {
                review_adoption.insert(rt.id.clone());
            }
        }
        match Arc::get_mut(&mut self.core) {
            Some(core) => {
                core.passwords = passwords;
                core.review_adoption = review_adoption;
            }
            None => unreachable!("the core is shared only while a dispatch runs"),
        }
        self
    }

    /// Sends events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.events = sink,
            None => unreachable!("the core is shared only while a dispatch runs"),
        }
        self
    }

    /// The shared core (for the worker loop).
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The policy.
    pub fn policy(&self) -> &DispatchPolicy {
        &self.core.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }

    /// The connection mode of a connection, if it is known.
    pub fn mode_of(&self, connection: &ConnectionId) -> Option<ConnectionMode> {
        self.core.mode_of(connection)
    }

    /// Stores the orders (Pending) and dispatches them. Orders the store already holds in a
    /// finished state are not sent again.
    pub async fn dispatch(
        &self,
        orders: Vec<ProvisioningOrder>,
        cancel: &CancellationToken,
    ) -> Result<DispatchReport, DispatchError> {
        self.core.dispatch(orders, cancel).await
    }

    /// Dispatches every order the store holds as Pending: after a restart, or after a
    /// cancelled or deferred dispatch.
    pub async fn resume(
        &self,
        cancel: &CancellationToken,
    ) -> Result<DispatchReport, DispatchError> {
        self.core.resume(cancel).await
    }

    /// Tells the dispatcher a connection checked healthy (a job's health check): its circuit
    /// breaker closes, as after a good probe.
    pub fn connection_healthy(&self, connection: &ConnectionId) {
        self.core.breaker_close(connection);
    }

    /// Records a human's answer for a Transmitted order: confirmed ⇒ Executed, an error ⇒
    /// Errored.
    pub async fn record_human_resolution(
        &self,
        order_id: &OrderId,
        resolution: Result<(), String>,
    ) -> Result<ProvisioningState, DispatchError> {
        self.core
            .record_human_resolution(order_id, resolution)
            .await
    }
}

impl Core {
    /// The connection mode of a connection, if it is known.
    pub fn mode_of(&self, connection: &ConnectionId) -> Option<ConnectionMode> {
        self.lanes
            .get(connection)
            .map(|l| l.connector.info().capabilities.mode)
    }

    /// Stores the orders (Pending) and dispatches them. Orders the store already holds in a
    /// finished state are not sent again.
    async fn dispatch(
        self: &Arc<Self>,
        orders: Vec<ProvisioningOrder>,
        cancel: &CancellationToken,
    ) -> Result<DispatchReport, DispatchError> {
        check_batch(orders.iter())?;
        let now = self.clock.now();
        let records: Vec<OrderRecord> = orders
            .into_iter()
            .map(|order| {
                let mode = order
                    .connection
                    .as_ref()
                    .and_then(|c| self.mode_of(c))
                    .unwrap_or_default();
                OrderRecord::pending(order, mode, now)
            })
            .collect();
        let existing: std::collections::HashSet<OrderId> = self
            .store
            .insert_orders(&records)
            .await?
            .into_iter()
            .collect();
        let mut batch = Vec::with_capacity(records.len());
        let mut report = DispatchReport::default();
        for mut record in records {
            if !existing.contains(&record.order.order_id) {
                record.version = 1; // as stored (Store::insert_orders)
                batch.push(record);
                continue;
            }
            // Stored by an earlier run: its stored record (attempts made, state) wins.
            let id = record.order.order_id.clone();
            match self.store.order(&id).await? {
                Some(r) if r.state == ProvisioningState::Pending => batch.push(r),
                Some(_) => report.already_finished.push(id),
                None => return Err(StoreError::UnknownOrder { order_id: id }.into()),
            }
        }
        self.run(batch, report, cancel).await
    }

    /// Dispatches every order the store holds as Pending: after a restart, or after a
    /// cancelled or deferred dispatch.
    async fn resume(
        self: &Arc<Self>,
        cancel: &CancellationToken,
    ) -> Result<DispatchReport, DispatchError> {
        let batch = self.store.unfinished_orders().await?;
        check_batch(batch.iter().map(|r| r.order.as_ref()))?;
        self.run(batch, DispatchReport::default(), cancel).await
    }

    /// Records a human's answer for a Transmitted order: confirmed ⇒ Executed, an error ⇒
    /// Errored.
    pub async fn record_human_resolution(
        &self,
        order_id: &OrderId,
        resolution: Result<(), String>,
    ) -> Result<ProvisioningState, DispatchError> {
        let record = self
            .store
            .order(order_id)
            .await?
            .ok_or_else(|| StoreError::UnknownOrder {
                order_id: order_id.clone(),
            })?;
        let update = match resolution {
            Ok(()) => OrderUpdate::event(ProvisioningEvent::HumanConfirmed, self.clock.now()),
            Err(e) => {
                OrderUpdate::event(ProvisioningEvent::HumanReportedError, self.clock.now()).error(e)
            }
        };
        let record = self
            .store
            .update_order(order_id, record.version, update)
            .await?;
        Ok(record.state)
    }

    async fn run(
        self: &Arc<Self>,
        batch: Vec<OrderRecord>,
        mut report: DispatchReport,
        cancel: &CancellationToken,
    ) -> Result<DispatchReport, DispatchError> {
        let total = batch.len();
        self.events.emit(JobEvent::DispatchStarted { total });

        // Dependency graph inside the batch; dependencies outside it are looked up.
        let has_dependencies = batch.iter().any(|r| !r.order.depends_on.is_empty());
        let index: HashMap<OrderId, usize> = if has_dependencies {
            batch
                .iter()
                .enumerate()
                .map(|(i, r)| (r.order.order_id.clone(), i))
                .collect()
        } else {
            HashMap::new()
        };
        let mut waiting_on = vec![0usize; total];
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); total];
        let mut failed_early: Vec<Option<(OrderId, String)>> = vec![None; total];
        for (i, r) in batch.iter().enumerate() {
            for dep in &r.order.depends_on {
                if let Some(&j) = index.get(dep) {
                    waiting_on[i] += 1;
                    dependants[j].push(i);
                } else {
                    match self.store.order(dep).await? {
                        Some(d)
                            if matches!(
                                d.state,
                                ProvisioningState::Executed | ProvisioningState::Verified
                            ) => {}
                        Some(d) => failed_early[i] = Some((dep.clone(), format!("is {}", d.state))),
                        None => {
                            failed_early[i] =
                                Some((dep.clone(), "is unknown to the store".to_string()))
                        }
                    }
                }
            }
        }

        let mut graph = Graph {
            ids: batch.iter().map(|r| r.order.order_id.clone()).collect(),
            ready: (0..total).filter(|&i| waiting_on[i] == 0).collect(),
            dependants,
            waiting_on,
            failed_early,
            outcomes: vec![None; total],
            done: 0,
            failed: 0,
        };
        let mut records: Vec<Option<OrderRecord>> = batch.into_iter().map(Some).collect();
        let mut running = FuturesUnordered::new();
        let mut in_flight: HashMap<ConnectionId, usize> = HashMap::new();
        let launch_limit = self
            .policy
            .concurrency_per_connection
            .max(1)
            .saturating_mul(2);
        let mut queues: BTreeMap<ConnectionId, VecDeque<usize>> = BTreeMap::new();

        loop {
            // Route what became ready: blocked orders settle at once, the others wait in their
            // connection's queue.
            while let Some(i) = graph.ready.pop_front() {
                if let Some((dep, reason)) = graph.failed_early[i].take() {
                    let record = records[i].take().expect("each order settles once");
                    let msg = self.block(record, &dep, &reason).await?;
                    graph.settle(i, Outcome::Failed(msg));
                    continue;
                }
                let conn = records[i]
                    .as_ref()
                    .and_then(|r| r.order.connection.clone())
                    .unwrap_or_else(|| ConnectionId::new(""));
                queues.entry(conn).or_default().push_back(i);
            }
            // Launch from each connection's queue up to its limit, unless cancelled.
            if !cancel.is_cancelled() {
                for (conn, queue) in queues.iter_mut() {
                    let n = in_flight.entry(conn.clone()).or_default();
                    while *n < launch_limit {
                        let Some(i) = queue.pop_front() else { break };
                        *n += 1;
                        let record = records[i].take().expect("each order launches once");
                        let conn = conn.clone();
                        let span = tracing::info_span!(
                            "order",
                            order = %record.order.order_id,
                            connection = %conn,
                            owner = record.order.owner_id().map(|o| o.as_str()).unwrap_or(""),
                        );
                        let task = tokio::spawn(
                            Arc::clone(self)
                                .run_order_task(record, cancel.clone())
                                .instrument(span),
                        );
                        running.push(async move { (i, conn, task.await) });
                    }
                }
            }
            let Some((i, conn, result)) = running.next().await else {
                break;
            };
            if let Some(n) = in_flight.get_mut(&conn) {
                *n -= 1;
            }
            let (outcome, attempts) = match result {
                Ok(r) => r?,
                Err(join) => (self.task_failed(&graph.ids[i], join).await?, 1),
            };
            report.attempts += u64::from(attempts);
            graph.settle(i, outcome);
            self.events.emit(JobEvent::Progress {
                total,
                done: graph.done,
                failed: graph.failed,
            });
        }

        // Whatever was never launched (cancelled, or waiting on a cancelled dependency) stays
        // Pending in the store.
        for r in records.iter().flatten() {
            report.pending.push(r.order.order_id.clone());
        }
        for (id, outcome) in graph.ids.into_iter().zip(graph.outcomes) {
            match outcome {
                Some(Outcome::Succeeded(ProvisioningState::Transmitted)) => {
                    report.transmitted.push(id)
                }
                Some(Outcome::Succeeded(_)) => report.executed.push(id),
                Some(Outcome::Failed(msg)) => report.errored.push((id, msg)),
                Some(Outcome::AwaitingReview(msg)) => report.awaiting_review.push((id, msg)),
                Some(Outcome::NotStarted) => report.pending.push(id),
                None => {}
            }
        }
        report.sort();
        Ok(report)
    }

    /// Marks an order Errored because a dependency failed.
    async fn block(
        &self,
        mut record: OrderRecord,
        dependency: &OrderId,
        reason: &str,
    ) -> Result<String, DispatchError> {
        let dependency = dependency.clone();
        let message = format!(
            "{}: blocked: dependency {dependency} {reason}",
            record.order.label()
        );
        self.events.emit(JobEvent::OrderBlocked {
            order: record.order.order_id.clone(),
            dependency: dependency.clone(),
        });
        // Its failure is not its own: reopened with its dependency once the connection is
        // healthy again.
        self.errored_after_retries(&mut record, &message, true)
            .await?;
        Ok(message)
    }

    async fn run_order_task(
        self: Arc<Self>,
        record: OrderRecord,
        cancel: CancellationToken,
    ) -> Result<(Outcome, u32), DispatchError> {
        self.run_order(record, &cancel).await
    }

    /// An order's task died (the connector panicked): the order is Errored, the rest goes on.
    async fn task_failed(
        &self,
        order_id: &OrderId,
        join: tokio::task::JoinError,
    ) -> Result<Outcome, DispatchError> {
        let reason = if join.is_panic() {
            "the connector panicked"
        } else {
            "its task was cancelled"
        };
        let Some(mut record) = self.store.order(order_id).await? else {
            return Err(StoreError::UnknownOrder {
                order_id: order_id.clone(),
            }
            .into());
        };
        let message = format!(
            "{}: {reason} during {}",
            record.order.label(),
            operation_of(&record.order)
        );
        if record.state == ProvisioningState::Pending {
            self.errored(&mut record, &message).await?;
        }
        Ok(Outcome::Failed(message))
    }
}
