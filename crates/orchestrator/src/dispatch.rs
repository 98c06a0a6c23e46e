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
use crate::events::{EventSink, JobEvent, NoEvents, ValueChange};
use crate::store::{OrderRecord, Store, StoreError};
use autoprov_connector::{Connector, ConnectorError, ErrorKind, Fulfillment, Operation};
use autoprov_core::{
    ConnectionId, ConnectionMode, OrderId, PropertyChange, PropertyValue, ProvisioningEvent,
    ProvisioningOrder, ProvisioningState,
};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// When and how often temporary failures are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Calls at most per order, the first included. Default: 8.
    pub max_attempts: u32,
    /// The wait after the first failure. Default: 100 ms.
    pub initial_backoff: Duration,
    /// The longest wait. Default: 10 s.
    pub max_backoff: Duration,
    /// The growth of the wait per retry. Default: 2.
    pub multiplier: f64,
    /// Random spread of each wait, as a fraction (0.2 ⇒ ±20%). Default: 0.2.
    pub jitter: f64,
    /// No retry starts later than this after the first attempt. Default: 5 minutes.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), without jitter.
    pub fn base_backoff(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(retry.saturating_sub(1) as i32);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_backoff.as_secs_f64()))
    }

    /// The wait before retry number `retry`, with jitter drawn from `rng`.
    pub fn backoff(&self, retry: u32, rng: &mut StdRng) -> Duration {
        let base = self.base_backoff(retry).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = if spread > 0.0 {
            rng.gen_range(1.0 - spread..=1.0 + spread)
        } else {
            1.0
        };
        Duration::from_secs_f64((base * factor).min(self.max_backoff.as_secs_f64()))
    }
}

/// A retry budget (after tower's): retries may be at most `ratio` of first attempts, plus a
/// small steady allowance, so a sick system cannot cause a retry storm. When the budget is
/// empty, retries wait for it to refill (bounded by [`RetryPolicy::max_total`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retry tokens earned per first attempt. Default: 0.5.
    pub ratio: f64,
    /// Retry tokens earned per second regardless of traffic. Default: 10.
    pub min_per_second: f64,
    /// Most tokens kept. Default: 100.
    pub capacity: f64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.5,
            min_per_second: 10.0,
            capacity: 100.0,
        }
    }
}

/// When a connection's circuit breaker opens.
#[derive(Clone, Debug, PartialEq)]
pub struct CircuitBreakerPolicy {
    /// Consecutive temporary failures that open the breaker. Default: 10.
    pub failure_threshold: u32,
    /// How long dispatch to the connection pauses before a probe. Default: 5 s.
    pub open_for: Duration,
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            open_for: Duration::from_secs(5),
        }
    }
}

/// Dispatch settings. `Default` gives documented, conservative values.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchPolicy {
    /// Calls in flight at most per connection. Default: 8.
    pub concurrency_per_connection: usize,
    /// The deadline of every connector call (fulfil and probe). Default: 60 s.
    pub call_deadline: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Retry budget.
    pub budget: RetryBudget,
    /// Circuit breakers.
    pub breaker: CircuitBreakerPolicy,
    /// Seed of the jitter's random numbers (deterministic tests). Default: 0.
    pub jitter_seed: u64,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        Self {
            concurrency_per_connection: 8,
            call_deadline: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            budget: RetryBudget::default(),
            breaker: CircuitBreakerPolicy::default(),
            jitter_seed: 0,
        }
    }
}

/// A failure of the dispatcher itself (not of an order: those are results).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
        self.pending.sort();
        self.already_finished.sort();
    }
}

#[derive(Debug)]
struct BudgetState {
    tokens: f64,
    last_refill: Instant,
}

#[derive(Debug)]
enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

#[derive(Debug)]
struct Breaker {
    state: Mutex<BreakerState>,
    changed: Notify,
}

struct Lane {
    connector: Arc<dyn Connector>,
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

struct Core {
    lanes: BTreeMap<ConnectionId, Lane>,
    policy: DispatchPolicy,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
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
enum Outcome {
    Succeeded(ProvisioningState),
    Failed(String),
    NotStarted,
}

impl Dispatcher {
    /// A dispatcher over the given connections.
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
                    semaphore: Arc::new(Semaphore::new(policy.concurrency_per_connection.max(1))),
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
                policy,
                store,
                clock,
                events: Arc::new(NoEvents),
                budget,
                rng,
            }),
        }
    }

    /// Sends events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.events = sink,
            None => unreachable!("the core is shared only while a dispatch runs"),
        }
        self
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
        for record in records {
            if !existing.contains(&record.order.order_id) {
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
        self.run(batch, DispatchReport::default(), cancel).await
    }

    /// Records a human's answer for a Transmitted order: confirmed ⇒ Executed, an error ⇒
    /// Errored.
    pub async fn record_human_resolution(
        &self,
        order_id: &OrderId,
        resolution: Result<(), String>,
    ) -> Result<ProvisioningState, DispatchError> {
        let mut record =
            self.store
                .order(order_id)
                .await?
                .ok_or_else(|| StoreError::UnknownOrder {
                    order_id: order_id.clone(),
                })?;
        let (event, message) = match &resolution {
            Ok(()) => (ProvisioningEvent::HumanConfirmed, None),
            Err(e) => (ProvisioningEvent::HumanReportedError, Some(e.clone())),
        };
        let next =
            record
                .state
                .apply(event, record.mode)
                .map_err(|e| StoreError::IllegalState {
                    order_id: order_id.clone(),
                    message: e.to_string(),
                })?;
        record.state = next;
        record.dispatch.last_error = message;
        record.dispatch.updated_at = self.clock.now();
        self.store.update_progress(&record).await?;
        Ok(next)
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
        let launch_limit = self.policy.concurrency_per_connection.max(1) * 2;
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
        self.errored(&mut record, &message).await?;
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

    /// Sends one order until it succeeds, fails permanently, runs out of retries, or the
    /// dispatch is cancelled. Returns its outcome and the calls made.
    async fn run_order(
        &self,
        mut record: OrderRecord,
        cancel: &CancellationToken,
    ) -> Result<(Outcome, u32), DispatchError> {
        let order_id = record.order.order_id.clone();
        let Some(conn) = record.order.connection.clone() else {
            let msg = format!("{}: the order names no connection", record.order.label());
            self.errored(&mut record, &msg).await?;
            return Ok((Outcome::Failed(msg), 0));
        };
        let Some(lane) = self.lanes.get(&conn) else {
            let msg = format!(
                "{}: connection {conn} is not configured",
                record.order.label()
            );
            self.errored(&mut record, &msg).await?;
            return Ok((Outcome::Failed(msg), 0));
        };
        let started = Instant::now();
        let mut calls = 0u32;
        loop {
            if cancel.is_cancelled() {
                return Ok((Outcome::NotStarted, calls));
            }
            self.breaker_ready(lane, &conn, cancel).await;
            if cancel.is_cancelled() {
                return Ok((Outcome::NotStarted, calls));
            }
            let permit = tokio::select! {
                p = lane.semaphore.acquire() => p.ok(),
                () = cancel.cancelled() => None,
            };
            let Some(permit) = permit else {
                return Ok((Outcome::NotStarted, calls));
            };
            calls += 1;
            record.dispatch.attempts += 1;
            let now = self.clock.now();
            record.dispatch.first_sent_at.get_or_insert(now);
            record.dispatch.updated_at = now;
            record.dispatch.next_attempt_at = None;
            self.store.update_progress(&record).await?;
            if record.dispatch.attempts == 1 || calls == 1 {
                self.deposit();
            }
            if self.events.enabled() {
                self.events.emit(JobEvent::OrderAttempt {
                    order: order_id.clone(),
                    attempt: record.dispatch.attempts,
                });
            }
            let call = tokio::time::timeout(
                self.policy.call_deadline,
                lane.connector.fulfill(&record.order),
            )
            .await;
            drop(permit);
            let result = match call {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::new(
                    ErrorKind::Timeout,
                    operation_of(&record.order),
                    format!(
                        "no answer within the call deadline of {:?}",
                        self.policy.call_deadline
                    ),
                )),
            };
            match result {
                Ok(Fulfillment::Executed(executed)) => {
                    self.breaker_success(lane, &conn);
                    record.resource_id = Some(executed.resource_id.clone());
                    if executed.stable_id.is_some() {
                        record.stable_id = executed.stable_id.clone();
                    }
                    self.settle(
                        &mut record,
                        ProvisioningEvent::ConnectorSucceeded,
                        None,
                        None,
                    )
                    .await?;
                    return Ok((Outcome::Succeeded(record.state), calls));
                }
                Ok(Fulfillment::Transmitted { ticket }) => {
                    self.breaker_success(lane, &conn);
                    let msg = format!("handed to a human: ticket {ticket}");
                    self.settle(
                        &mut record,
                        ProvisioningEvent::HandedToHuman,
                        Some(msg),
                        Some(ticket),
                    )
                    .await?;
                    return Ok((Outcome::Succeeded(record.state), calls));
                }
                Ok(_) => {
                    let msg = format!("{}: unknown fulfilment outcome", record.order.label());
                    self.errored(&mut record, &msg).await?;
                    return Ok((Outcome::Failed(msg), calls));
                }
                Err(error) => {
                    let error = error.for_order(&record.order);
                    if error.is_temporary() {
                        self.breaker_failure(lane, &conn);
                    }
                    let attempts = record.dispatch.attempts;
                    let delay = {
                        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                        self.policy.retry.backoff(attempts, &mut rng)
                    };
                    let can_retry = error.is_temporary()
                        && attempts < self.policy.retry.max_attempts
                        && started.elapsed() + delay <= self.policy.retry.max_total;
                    if can_retry {
                        let deadline = started + self.policy.retry.max_total;
                        record.dispatch.last_error = Some(error.to_string());
                        record.dispatch.next_attempt_at = Some(
                            self.clock.now()
                                + chrono::TimeDelta::from_std(delay).unwrap_or_default(),
                        );
                        self.store.update_progress(&record).await?;
                        self.events.emit(JobEvent::OrderRetrying {
                            order: order_id.clone(),
                            attempt: attempts,
                            delay,
                            error: error.to_string(),
                        });
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = cancel.cancelled() => return Ok((Outcome::NotStarted, calls)),
                        }
                        if self.withdraw(deadline, cancel).await {
                            continue;
                        }
                        if cancel.is_cancelled() {
                            return Ok((Outcome::NotStarted, calls));
                        }
                        let error = error.persistent();
                        let msg =
                            format!("{error} (retry budget exhausted after {attempts} attempts)");
                        self.errored(&mut record, &msg).await?;
                        return Ok((Outcome::Failed(msg), calls));
                    }
                    let error = error.persistent();
                    let msg = if error.status() == autoprov_connector::ErrorStatus::Persistent {
                        format!("{error} (gave up after {attempts} attempts)")
                    } else {
                        error.to_string()
                    };
                    self.errored(&mut record, &msg).await?;
                    return Ok((Outcome::Failed(msg), calls));
                }
            }
        }
    }

    /// Applies a state-machine event, stores the record and its result, and emits the event.
    /// Ends an order as Errored (the connector failed it, or it cannot be sent), recording
    /// why.
    async fn errored(&self, record: &mut OrderRecord, message: &str) -> Result<(), DispatchError> {
        self.settle(
            record,
            ProvisioningEvent::ConnectorFailed,
            Some(message.to_owned()),
            None,
        )
        .await
    }

    async fn settle(
        &self,
        record: &mut OrderRecord,
        event: ProvisioningEvent,
        message: Option<String>,
        ticket: Option<String>,
    ) -> Result<(), DispatchError> {
        let next =
            record
                .state
                .apply(event, record.mode)
                .map_err(|e| StoreError::IllegalState {
                    order_id: record.order.order_id.clone(),
                    message: e.to_string(),
                })?;
        record.state = next;
        let now = self.clock.now();
        record.dispatch.updated_at = now;
        record.dispatch.finished_at = Some(now);
        if next == ProvisioningState::Errored {
            record.dispatch.last_error = message.clone();
        }
        if ticket.is_some() {
            record.ticket = ticket;
        }
        self.store.update_progress(record).await?;
        if !self.events.enabled() {
            return Ok(());
        }
        self.events.emit(JobEvent::OrderFinished {
            order: record.order.order_id.clone(),
            owner: record.order.owner_id().cloned(),
            change_type: record.order.change_type,
            state: next,
            message,
            changes: value_changes(&record.order),
        });
        Ok(())
    }

    fn deposit(&self) {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut b);
        b.tokens = (b.tokens + self.policy.budget.ratio).min(self.policy.budget.capacity);
    }

    fn refill(&self, b: &mut BudgetState) {
        let now = Instant::now();
        let earned =
            now.duration_since(b.last_refill).as_secs_f64() * self.policy.budget.min_per_second;
        b.tokens = (b.tokens + earned).min(self.policy.budget.capacity);
        b.last_refill = now;
    }

    /// Takes one retry token, waiting for the budget to refill until `deadline`.
    async fn withdraw(&self, deadline: Instant, cancel: &CancellationToken) -> bool {
        loop {
            let wait = {
                let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
                self.refill(&mut b);
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return true;
                }
                if self.policy.budget.min_per_second <= 0.0 {
                    return false;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / self.policy.budget.min_per_second)
            };
            let until = Instant::now() + wait;
            if until > deadline {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Waits until the connection's breaker lets calls through, probing when it is due.
    async fn breaker_ready(&self, lane: &Lane, conn: &ConnectionId, cancel: &CancellationToken) {
        loop {
            enum Next {
                Go,
                Sleep(Instant),
                Probe,
                Wait,
            }
            let next = {
                let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
                match *s {
                    BreakerState::Closed { .. } => Next::Go,
                    BreakerState::Open { until, .. } if Instant::now() < until => {
                        Next::Sleep(until)
                    }
                    BreakerState::Open { .. } => {
                        *s = BreakerState::Probing;
                        Next::Probe
                    }
                    BreakerState::Probing => Next::Wait,
                }
            };
            match next {
                Next::Go => return,
                Next::Sleep(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = cancel.cancelled() => return,
                    }
                }
                Next::Wait => {
                    let notified = lane.breaker.changed.notified();
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(self.policy.breaker.open_for) => {}
                        () = cancel.cancelled() => return,
                    }
                }
                Next::Probe => {
                    let probe =
                        tokio::time::timeout(self.policy.call_deadline, lane.connector.check())
                            .await;
                    let ok = matches!(probe, Ok(Ok(())));
                    {
                        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
                        *s = if ok {
                            BreakerState::Closed { failures: 0 }
                        } else {
                            BreakerState::Open {
                                until: Instant::now() + self.policy.breaker.open_for,
                            }
                        };
                    }
                    lane.breaker.changed.notify_waiters();
                    if ok {
                        tracing::info!(connection = %conn, "circuit closed after a good probe");
                        self.events.emit(JobEvent::CircuitClosed {
                            connection: conn.clone(),
                        });
                        return;
                    }
                }
            }
        }
    }

    fn breaker_success(&self, lane: &Lane, _conn: &ConnectionId) {
        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
        if let BreakerState::Closed { failures } = &mut *s {
            *failures = 0;
        }
    }

    fn breaker_failure(&self, lane: &Lane, conn: &ConnectionId) {
        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
        if let BreakerState::Closed { failures } = &mut *s {
            *failures += 1;
            if *failures >= self.policy.breaker.failure_threshold {
                let failures = *failures;
                *s = BreakerState::Open {
                    until: Instant::now() + self.policy.breaker.open_for,
                };
                drop(s);
                tracing::warn!(connection = %conn, failures, "circuit opened: dispatch paused");
                self.events.emit(JobEvent::CircuitOpened {
                    connection: conn.clone(),
                    failures,
                });
            }
        }
    }
}

/// The orders of one dispatch, their dependencies and their outcomes so far.
struct Graph {
    ids: Vec<OrderId>,
    /// Orders waiting for each order.
    dependants: Vec<Vec<usize>>,
    /// Dependencies each order still waits for.
    waiting_on: Vec<usize>,
    /// Orders whose dependencies are all settled.
    ready: VecDeque<usize>,
    /// Orders that must not run: the dependency that failed, and why.
    failed_early: Vec<Option<(OrderId, String)>>,
    outcomes: Vec<Option<Outcome>>,
    done: usize,
    failed: usize,
}

impl Graph {
    /// Records order `i`'s outcome and releases its dependants (a failure blocks them).
    fn settle(&mut self, i: usize, outcome: Outcome) {
        match &outcome {
            Outcome::Succeeded(_) => self.done += 1,
            Outcome::Failed(_) => {
                self.done += 1;
                self.failed += 1;
            }
            Outcome::NotStarted => {}
        }
        for &d in &self.dependants[i] {
            match &outcome {
                Outcome::Succeeded(_) => {}
                Outcome::Failed(reason) => {
                    if self.failed_early[d].is_none() {
                        self.failed_early[d] =
                            Some((self.ids[i].clone(), format!("failed: {reason}")));
                    }
                }
                Outcome::NotStarted => continue,
            }
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 {
                self.ready.push_back(d);
            }
        }
        self.outcomes[i] = Some(outcome);
    }
}

/// The operation an order mainly performs, for errors raised around the connector call.
pub fn operation_of(order: &ProvisioningOrder) -> Operation {
    order.change_type.into()
}

/// What an order changes, old → new, rendered for people (secrets masked).
pub fn value_changes(order: &ProvisioningOrder) -> Vec<ValueChange> {
    let old_of = |property: &str| -> String {
        order
            .resource
            .as_ref()
            .and_then(|r| r.get(property))
            .map(render)
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for (property, change) in &order.changes.properties {
        let new = match change {
            PropertyChange::Set(v) => v.to_string(),
            PropertyChange::SetReference(r) => r.to_string(),
            PropertyChange::Clear => String::new(),
            #[allow(unreachable_patterns)]
            _ => String::new(),
        };
        out.push(ValueChange {
            property: property.clone(),
            old: old_of(property),
            new,
        });
    }
    for (property, nav) in &order.changes.navigations {
        for r in &nav.add {
            out.push(ValueChange {
                property: format!("{property} +"),
                old: String::new(),
                new: r.to_string(),
            });
        }
        for r in &nav.remove {
            out.push(ValueChange {
                property: format!("{property} -"),
                old: r.to_string(),
                new: String::new(),
            });
        }
    }
    if order.change_type == autoprov_core::ChangeType::Deleted {
        out.push(ValueChange {
            property: "(target)".into(),
            old: order
                .resource
                .as_ref()
                .map(|r| r.id.to_string())
                .unwrap_or_default(),
            new: "(deleted)".into(),
        });
    }
    out
}

fn render(v: &PropertyValue) -> String {
    match v {
        PropertyValue::Scalar(s) => s.to_string(),
        PropertyValue::Reference(r) => r.to_string(),
        PropertyValue::References(rs) => rs
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
