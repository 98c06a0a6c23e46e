//! The worker loop: one of several processes (or tasks) sharing one [`ClaimStore`] (in
//! production the PostgreSQL store), each claiming ready orders and sending them.
//!
//! A [`Worker`] loops: claim up to its free capacity of ready orders for a lease → for each,
//! in its own task: the connection's **shared** circuit breaker (open ⇒ the order is released
//! with a retry time; a due probe is run by exactly one worker), a **shared** connection
//! permit (the connection's limit, [`DispatchPolicy::concurrency_per_connection`], holds
//! across every worker), the lease check (a call starts only when the lease outlives the call
//! deadline plus [`WorkerSettings::lease_margin`]; otherwise the lease is renewed first) →
//! the same attempt as the in-process dispatcher (the intent recorded, the call under its
//! deadline, the result classified, the retry decided: `dispatch::send`), every write under
//! the claim's fencing token (the writes of orders that record at about the same time go
//! together in one [`ClaimStore::record_outcomes`] call, each order waiting for its own),
//! the lease renewed during the call → a temporary failure is
//! recorded with its retry time and the claim released (any worker takes the retry when it is
//! due). A write refused with [`StoreError::LeaseLost`] (this worker stalled past its lease
//! and another took the order over) is counted and logged, and the order dropped: it is never
//! retried over its new holder.
//!
//! Planning: any worker may [`plan`](Worker::plan); each call begins a new planning epoch and
//! inserts under it, so of two planners running at once only the later one's orders are
//! inserted (the other gets [`StoreError::StalePlanningEpoch`]). Run the planner in one
//! process (or on a schedule); every worker dispatches.
//!
//! Shutdown: cancel the token given to [`Worker::run`]; nothing new is claimed or started,
//! calls in flight finish and are recorded, claimed orders not yet started are released, and
//! the connection permits held are given back.
//!
//! Metrics: [`metrics`] (names documented there and in the README). Health:
//! [`Worker::health`].

pub mod metrics;
pub(crate) mod recorder;

use crate::clock::Clock;
use crate::dispatch::send::{Attempted, CallHealth, ClaimWriter, Writer, errored_update};
use crate::dispatch::{DispatchError, DispatchPolicy, Dispatcher, PolicyError, check_batch};
use crate::store::{
    Claim, ClaimStore, OrderRecord, OrderUpdate, Permit, SharedBreaker, StoreError,
};
use autoprov_connector::Connector;
use autoprov_core::{ConnectionId, OrderId, ProvisioningOrder, ProvisioningState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A worker's settings. `WorkerSettings::new(name)` gives documented defaults.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WorkerSettings {
    /// The worker's name, unique among the workers sharing a store (it is recorded as the
    /// holder of its leases and permits).
    pub name: String,
    /// The lease taken on each claimed order and connection permit. Default: 60 s. Must be
    /// longer than the call deadline plus [`Self::lease_margin`].
    pub lease: Duration,
    /// A call starts only when the lease outlives the call deadline by this much; otherwise
    /// the lease is renewed first. Default: 5 s.
    pub lease_margin: Duration,
    /// Connector calls in flight at most in this worker. It holds at most this many
    /// orders plus one claim batch. Default: 8.
    pub concurrency: usize,
    /// Orders claimed at most per claim. Default: 8.
    pub claim_batch: usize,
    /// The pause after a claim found nothing ready. Default: 500 ms.
    pub idle_poll: Duration,
    /// How often the worker publishes the store's order counts ([`metrics::ORDERS`]); zero
    /// never. Default: 15 s.
    pub stats_every: Duration,
    /// Return from [`Worker::run`] once a claim finds nothing, nothing is in flight and the
    /// store holds no Pending order (batch runs and tests). Default: no (run until
    /// cancelled).
    pub stop_when_drained: bool,
}

impl WorkerSettings {
    /// The defaults, for a worker named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            lease: Duration::from_secs(60),
            lease_margin: Duration::from_secs(5),
            concurrency: 8,
            claim_batch: 8,
            idle_poll: Duration::from_millis(500),
            stats_every: Duration::from_secs(15),
            stop_when_drained: false,
        }
    }

    /// Checks the settings against the dispatch policy: a non-empty name, `concurrency` and
    /// `claim_batch` at least 1, and a lease longer than `policy.call_deadline +
    /// lease_margin` (else no call could ever start under it). The error names the setting
    /// (`worker.lease`).
    pub fn validate(&self, policy: &DispatchPolicy) -> Result<(), PolicyError> {
        let out = |setting: &'static str, value: String, expected: &'static str| {
            PolicyError::OutOfRange {
                setting,
                value,
                expected,
            }
        };
        if self.name.is_empty() {
            return Err(out("worker.name", "\"\"".into(), "a non-empty name"));
        }
        if self.concurrency == 0 {
            return Err(out("worker.concurrency", "0".into(), "at least 1"));
        }
        if self.claim_batch == 0 {
            return Err(out("worker.claim_batch", "0".into(), "at least 1"));
        }
        if self.lease <= policy.call_deadline.saturating_add(self.lease_margin) {
            return Err(out(
                "worker.lease",
                format!("{:?}", self.lease),
                "longer than call_deadline + worker.lease_margin",
            ));
        }
        Ok(())
    }
}

/// What a worker did (counts since it was made).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Orders claimed.
    pub claimed: u64,
    /// Orders recorded Executed.
    pub executed: u64,
    /// Orders recorded Transmitted (handed to a human).
    pub transmitted: u64,
    /// Orders recorded Errored.
    pub errored: u64,
    /// Temporary failures recorded with a retry time and released.
    pub retried: u64,
    /// Orders released untried because the connection's breaker was open.
    pub deferred: u64,
    /// Claimed orders released untried at shutdown.
    pub released: u64,
    /// Writes refused because another worker took the lease over (orders dropped).
    pub lease_lost: u64,
    /// Lease renewals made.
    pub renewals: u64,
    /// Claimed orders another worker had started without an outcome, sent again.
    pub takeovers: u64,
    /// Store failures the loop saw (and outlived, when temporary).
    pub store_errors: u64,
}

/// A worker's health, for a liveness or readiness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The store answered a read just now.
    pub store_reachable: bool,
    /// No lease renewal failed (for a reason other than a lost lease) within the last lease
    /// length: the worker keeps its orders.
    pub leases_renewing: bool,
    /// Connections whose shared circuit breaker is open or probing.
    pub open_breakers: Vec<ConnectionId>,
    /// Connector calls in flight in this worker.
    pub in_flight: usize,
}

impl WorkerHealth {
    /// Healthy: the store is reachable and leases renew. Open breakers are the
    /// connections' health, not the worker's.
    pub fn is_healthy(&self) -> bool {
        self.store_reachable && self.leases_renewing
    }
}

/// What [`Worker::plan`] inserted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanInserted {
    /// The planning epoch the orders were inserted under.
    pub epoch: u64,
    /// Orders inserted now.
    pub inserted: usize,
    /// Orders the store already held (left as they were).
    pub already_stored: Vec<OrderId>,
}

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    executed: AtomicU64,
    transmitted: AtomicU64,
    errored: AtomicU64,
    retried: AtomicU64,
    deferred: AtomicU64,
    released: AtomicU64,
    lease_lost: AtomicU64,
    renewals: AtomicU64,
    takeovers: AtomicU64,
    store_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A worker: see the [module](self) documentation.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    dispatcher: Dispatcher,
    store: Arc<dyn ClaimStore>,
    /// Group commit of the writes under this worker's claims.
    recorder: Arc<recorder::Recorder>,
    settings: WorkerSettings,
    permits: HashMap<ConnectionId, Arc<PermitPool>>,
    breakers: Mutex<HashMap<ConnectionId, (SharedBreaker, Instant)>>,
    counters: Counters,
    in_flight: AtomicUsize,
    /// When a lease renewal last failed (not counting lost leases).
    renewal_failed_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.inner.settings)
            .field("dispatcher", &self.inner.dispatcher)
            .finish_non_exhaustive()
    }
}

/// Batched writes in flight at once per worker (see `recorder`): while one runs, the writes
/// of other orders queue and go together in the next. One gave the fewest statements per
/// order and the same or better throughput than two in `benches/workers.rs`.
const RECORD_FLUSHES: usize = 1;

/// How long a worker trusts the shared breaker it read last, when that was closed with no
/// failures or open.
const BREAKER_CACHE: Duration = Duration::from_millis(500);

/// What became of one claimed order.
enum Done {
    Settled(crate::dispatch::Outcome),
    Retry,
    Deferred,
    Released,
}

impl Worker {
    /// A worker over `connectors`, sharing `store` with the other workers. The policy's
    /// `concurrency_per_connection` is each connection's limit across **all** workers; the
    /// settings' `concurrency` this worker's own. Both are checked.
    pub fn new<S: ClaimStore>(
        connectors: impl IntoIterator<Item = Arc<dyn Connector>>,
        policy: DispatchPolicy,
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> Result<Self, PolicyError> {
        policy.validate()?;
        settings.validate(&policy)?;
        let claims: Arc<dyn ClaimStore> = store;
        let dispatcher = Dispatcher::new(connectors, policy, claims.clone(), clock);
        let permits = dispatcher
            .core()
            .lanes
            .keys()
            .map(|c| (c.clone(), Arc::new(PermitPool::new(c.clone()))))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                dispatcher,
                recorder: Arc::new(recorder::Recorder::new(
                    claims.clone(),
                    settings.concurrency.saturating_add(settings.claim_batch),
                    RECORD_FLUSHES,
                )),
                store: claims,
                settings,
                permits,
                breakers: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                in_flight: AtomicUsize::new(0),
                renewal_failed_at: Mutex::new(None),
            }),
        })
    }

    /// Configures the dispatcher this worker sends through — password delivery, resource
    /// types' password settings, events ([`Dispatcher::with_password_delivery`],
    /// [`Dispatcher::with_resource_types`], [`Dispatcher::with_events`]). Call it right after
    /// [`Worker::new`], before the worker is cloned or run.
    ///
    /// # Panics
    /// If the worker was cloned already (its state is shared).
    pub fn configure(mut self, f: impl FnOnce(Dispatcher) -> Dispatcher) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("configure a worker right after Worker::new, before cloning it");
        let core = inner.dispatcher.core();
        let placeholder = Dispatcher::new(
            Vec::new(),
            core.policy.clone(),
            core.store.clone(),
            core.clock.clone(),
        );
        let dispatcher = std::mem::replace(&mut inner.dispatcher, placeholder);
        inner.dispatcher = f(dispatcher);
        self
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    /// Its settings.
    pub fn settings(&self) -> &WorkerSettings {
        &self.inner.settings
    }

    /// Inserts planned orders (Pending) under a new planning epoch: a planner that another
    /// began after it gets [`StoreError::StalePlanningEpoch`] and inserts nothing. A batch
    /// with a duplicate id or a dependency cycle is refused before anything is stored.
    pub async fn plan(
        &self,
        orders: Vec<ProvisioningOrder>,
    ) -> Result<PlanInserted, DispatchError> {
        check_batch(orders.iter())?;
        let core = self.inner.dispatcher.core();
        let epoch = self.inner.store.begin_planning(self.name()).await?;
        let now = core.clock.now();
        let records: Vec<OrderRecord> = orders
            .into_iter()
            .map(|order| {
                let mode = order
                    .connection
                    .as_ref()
                    .and_then(|c| self.inner.dispatcher.mode_of(c))
                    .unwrap_or_default();
                OrderRecord::pending(order, mode, now)
            })
            .collect();
        let already_stored = self
            .inner
            .store
            .insert_orders_in_epoch(&epoch, &records)
            .await?;
        Ok(PlanInserted {
            epoch: epoch.epoch,
            inserted: records.len() - already_stored.len(),
            already_stored,
        })
    }

    /// The counts so far.
    pub fn report(&self) -> WorkerReport {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerReport {
            claimed: get(&c.claimed),
            executed: get(&c.executed),
            transmitted: get(&c.transmitted),
            errored: get(&c.errored),
            retried: get(&c.retried),
            deferred: get(&c.deferred),
            released: get(&c.released),
            lease_lost: get(&c.lease_lost),
            renewals: get(&c.renewals),
            takeovers: get(&c.takeovers),
            store_errors: get(&c.store_errors),
        }
    }

    /// Checks the worker's health now: reads each connection's shared breaker from the
    /// store (reachability), and looks at recent lease renewals.
    pub async fn health(&self) -> WorkerHealth {
        let inner = &self.inner;
        let mut store_reachable = true;
        let mut open_breakers = Vec::new();
        for conn in inner.permits.keys() {
            match inner.store.breaker(conn).await {
                Ok(SharedBreaker::Closed { .. }) => {}
                Ok(_) => open_breakers.push(conn.clone()),
                Err(_) => {
                    store_reachable = false;
                    break;
                }
            }
        }
        if inner.permits.is_empty() {
            store_reachable = inner.store.breaker(&ConnectionId::new("")).await.is_ok();
        }
        let leases_renewing = inner
            .renewal_failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|t| t.elapsed() > inner.settings.lease);
        WorkerHealth {
            store_reachable,
            leases_renewing,
            open_breakers,
            in_flight: inner.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Runs the loop until `shutdown` is cancelled (or, with
    /// [`WorkerSettings::stop_when_drained`], until no order is left). Temporary store
    /// failures are waited out with backoff (the pool reconnects); a permanent one ends the
    /// loop with the error, after the orders in hand are settled or released.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<WorkerReport, DispatchError> {
        let inner = &self.inner;
        let s = &inner.settings;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut store_wait = Duration::from_millis(100);
        let mut stats_due = Instant::now();
        let result: Result<(), StoreError> = loop {
            while let Some(joined) = tasks.try_join_next() {
                log_panic(joined);
            }
            if shutdown.is_cancelled() {
                break Ok(());
            }
            if !s.stats_every.is_zero() && Instant::now() >= stats_due {
                stats_due = Instant::now() + s.stats_every;
                if let Ok(counts) = inner.store.order_counts().await {
                    for (state, n) in counts {
                        metrics::orders(state, n);
                    }
                }
            }
            // Orders in hand: up to `concurrency` in calls (the permits cap them) plus one
            // claim batch waiting, so that a claim fetches a whole batch (one round trip) and
            // the next batch is in hand when calls end. Waiting claims keep their leases; the
            // lease check before each call renews those that waited long.
            let batch = s.claim_batch.max(1);
            let capacity = s.concurrency.saturating_add(batch);
            let free = capacity.saturating_sub(tasks.len());
            if free < batch.min(capacity) {
                tokio::select! {
                    joined = tasks.join_next() => if let Some(j) = joined { log_panic(j) },
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
            let sent = Instant::now();
            match inner
                .store
                .claim(&s.name, free.min(s.claim_batch), s.lease)
                .await
            {
                Ok(claims) if claims.is_empty() => {
                    store_wait = Duration::from_millis(100);
                    inner.release_idle_permits().await;
                    if s.stop_when_drained && tasks.is_empty() {
                        // From the index by state (what other workers still hold), not a
                        // count of every order stored: idle workers ask at every poll.
                        if let Ok(pending) =
                            inner.store.orders_in(&[ProvisioningState::Pending]).await
                            && pending.is_empty()
                        {
                            break Ok(());
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(s.idle_poll) => {}
                        Some(j) = tasks.join_next(), if !tasks.is_empty() => log_panic(j),
                        () = shutdown.cancelled() => {}
                    }
                }
                Ok(claims) => {
                    store_wait = Duration::from_millis(100);
                    metrics::claimed(&s.name, claims.len());
                    inner
                        .counters
                        .claimed
                        .fetch_add(claims.len() as u64, Ordering::Relaxed);
                    let expires = crate::dispatch::policy_instant_after(sent, s.lease);
                    for claim in claims {
                        let inner = Arc::clone(inner);
                        let shutdown = shutdown.clone();
                        let span = tracing::info_span!(
                            "order",
                            order = %claim.order_id(),
                            worker = %s.name,
                            token = claim.token,
                        );
                        tasks.spawn(tracing::Instrument::instrument(
                            inner.process(claim, expires, shutdown),
                            span,
                        ));
                    }
                }
                Err(e) if e.is_temporary() => {
                    bump(&inner.counters.store_errors);
                    metrics::store_error(&s.name, true);
                    tracing::warn!(worker = %s.name, error = %e, wait = ?store_wait,
                        "store unavailable; claiming again after a pause");
                    tokio::select! {
                        () = tokio::time::sleep(store_wait) => {}
                        () = shutdown.cancelled() => {}
                    }
                    store_wait = (store_wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    bump(&inner.counters.store_errors);
                    metrics::store_error(&s.name, false);
                    break Err(e);
                }
            }
        };
        while let Some(joined) = tasks.join_next().await {
            log_panic(joined);
        }
        inner.release_idle_permits().await;
        result?;
        Ok(self.report())
    }
}

fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        // The order's lease expires and another worker (or this one) takes it again.
        tracing::error!(error = %e, "an order's task failed (its lease will expire)");
    }
}

impl Inner {
    fn core(&self) -> &Arc<crate::dispatch::Core> {
        self.dispatcher.core()
    }

    fn renewed(&self, ok: bool) {
        metrics::renewal(&self.settings.name, ok);
        if ok {
            bump(&self.counters.renewals);
        } else {
            *self
                .renewal_failed_at
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    /// One claimed order, start to end; every failure is counted and logged here.
    async fn process(self: Arc<Self>, claim: Claim, expires: Instant, shutdown: CancellationToken) {
        let name = &self.settings.name;
        let order_id = claim.order_id().clone();
        let mut record = claim.record.clone();
        if record.dispatch.attempts > 0 && record.dispatch.next_attempt_at.is_none() {
            // An attempt was recorded with neither an outcome nor a retry time: its holder
            // died or stalled past its lease. Unknown outcome: sent again (idempotent).
            bump(&self.counters.takeovers);
            metrics::takeover(name);
            tracing::info!(order = %order_id, "taking over an order whose lease expired mid-attempt");
        }
        let me = Arc::clone(&self);
        let mut writer = Writer::Claimed(Box::new(ClaimWriter {
            store: Arc::clone(&self.store),
            recorder: Arc::clone(&self.recorder),
            claim,
            lease: self.settings.lease,
            expires,
            on_renew: Arc::new(move |ok| me.renewed(ok)),
        }));
        let done = self.send(&mut record, &mut writer, &shutdown).await;
        let Writer::Claimed(w) = writer else {
            unreachable!("a worker writes under its claim")
        };
        let c = &self.counters;
        match done {
            Ok(Done::Settled(crate::dispatch::Outcome::Succeeded(
                ProvisioningState::Transmitted,
            ))) => {
                bump(&c.transmitted);
                metrics::outcome(name, "transmitted");
            }
            Ok(Done::Settled(crate::dispatch::Outcome::Succeeded(_))) => {
                bump(&c.executed);
                metrics::outcome(name, "executed");
            }
            Ok(Done::Settled(crate::dispatch::Outcome::AwaitingReview(_))) => {
                metrics::outcome(name, "awaiting_review");
            }
            Ok(Done::Settled(_)) => {
                bump(&c.errored);
                metrics::outcome(name, "errored");
            }
            Ok(done @ (Done::Retry | Done::Deferred | Done::Released)) => {
                let (counter, label) = match done {
                    Done::Retry => (&c.retried, "retry"),
                    Done::Deferred => (&c.deferred, "deferred"),
                    _ => (&c.released, "released"),
                };
                match self.store.release(&w.claim).await {
                    Ok(()) => {
                        bump(counter);
                        metrics::outcome(name, label);
                    }
                    Err(e) => self.failed(&order_id, &e),
                }
            }
            Err(DispatchError::Store(e)) => self.failed(&order_id, &e),
            Err(e) => tracing::error!(order = %order_id, error = %e, "order failed"),
        }
    }

    /// Counts and logs a store failure of one order. A lost lease drops the order: its new
    /// holder sends it. Any other failure leaves the claim to expire.
    fn failed(&self, order_id: &OrderId, e: &StoreError) {
        let name = &self.settings.name;
        if let StoreError::LeaseLost { token, .. } = e {
            bump(&self.counters.lease_lost);
            metrics::lease_lost(name);
            tracing::warn!(worker = %name, order = %order_id, token,
                "lease lost: another worker took the order over; its outcome here is dropped");
        } else {
            bump(&self.counters.store_errors);
            metrics::store_error(name, e.is_temporary());
            tracing::warn!(worker = %name, order = %order_id, error = %e,
                "could not record; the claim is left to expire and the order is taken again");
        }
    }

    /// Sends one claimed order: breaker, permit, lease check, then the shared attempt.
    async fn send(
        &self,
        record: &mut OrderRecord,
        writer: &mut Writer,
        shutdown: &CancellationToken,
    ) -> Result<Done, DispatchError> {
        let core = self.core();
        let (lane, conn) = match core.route(record) {
            Ok(route) => route,
            Err(msg) => {
                core.settle_with(
                    record,
                    writer,
                    errored_update(core, &msg, false),
                    Some(msg.clone()),
                )
                .await?;
                return Ok(Done::Settled(crate::dispatch::Outcome::Failed(msg)));
            }
        };
        if shutdown.is_cancelled() {
            return Ok(Done::Released);
        }
        // The permit first, then the breaker: an order that waited for a permit sees the
        // breaker as it is when its call would start.
        let pool = Arc::clone(&self.permits[&conn]);
        let Some(permit) = pool.take(self, shutdown).await? else {
            return Ok(Done::Released);
        };
        if let Some(wait) = self.breaker_gate(lane, &conn).await? {
            drop(permit);
            let now = core.clock.now();
            let at = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
            *record = writer_write(writer, OrderUpdate::at(now).retry_at(at)).await?;
            return Ok(Done::Deferred);
        }
        let Writer::Claimed(w) = writer else {
            unreachable!("a worker writes under its claim")
        };
        let needed = core
            .policy
            .call_deadline
            .saturating_add(self.settings.lease_margin);
        if w.expires.saturating_duration_since(Instant::now()) < needed {
            w.renew().await?;
        }
        let elapsed = record
            .dispatch
            .first_sent_at
            .filter(|_| record.dispatch.attempts > 0)
            .and_then(|t| (core.clock.now() - t).to_std().ok())
            .unwrap_or_default();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::in_flight(&self.settings.name, self.in_flight.load(Ordering::Relaxed));
        let attempted = core
            .attempt(lane, &conn, record, writer, elapsed, false, permit)
            .await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::in_flight(&self.settings.name, self.in_flight.load(Ordering::Relaxed));
        let (attempted, health) = attempted?;
        self.mirror_breaker(&conn, health).await;
        match attempted {
            Attempted::Settled(outcome) => Ok(Done::Settled(outcome)),
            Attempted::Retry {
                error, attempts, ..
            } => {
                if core.try_withdraw() {
                    Ok(Done::Retry)
                } else {
                    let outcome = core
                        .budget_exhausted(record, writer, error, attempts)
                        .await?;
                    Ok(Done::Settled(outcome))
                }
            }
        }
    }

    /// The shared breaker of `conn`: `None` to go ahead, or how long to wait (the order is
    /// released with that retry time). When a probe is due, one worker probes.
    async fn breaker_gate(
        &self,
        lane: &crate::dispatch::Lane,
        conn: &ConnectionId,
    ) -> Result<Option<Duration>, StoreError> {
        let core = self.core();
        let view = self.breaker_view(conn).await?;
        match view {
            SharedBreaker::Closed { .. } => Ok(None),
            SharedBreaker::Open { remaining } => {
                Ok(Some(remaining.max(Duration::from_millis(100))))
            }
            _ => {
                let open_for = core.policy.breaker.open_for;
                if !self.store.breaker_try_probe(conn, open_for).await? {
                    self.forget_breaker(conn);
                    return Ok(Some(Duration::from_secs(1).min(open_for)));
                }
                let probe =
                    tokio::time::timeout(core.policy.call_deadline, lane.connector.check()).await;
                if matches!(probe, Ok(Ok(()))) {
                    self.store.breaker_success(conn).await?;
                    core.breaker_close(conn);
                    self.cache_breaker(conn, SharedBreaker::Closed { failures: 0 });
                    tracing::info!(connection = %conn, "shared circuit closed after a good probe");
                    Ok(None)
                } else {
                    let view = self
                        .store
                        .breaker_failure(conn, core.policy.breaker.failure_threshold, open_for)
                        .await?;
                    self.cache_breaker(conn, view);
                    Ok(Some(open_for))
                }
            }
        }
    }

    async fn breaker_view(&self, conn: &ConnectionId) -> Result<SharedBreaker, StoreError> {
        let cached = self
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(conn)
            // A connection with failures is read at the source for every call: another
            // worker's failure may have opened the breaker since this one last looked.
            .filter(|(v, at)| {
                at.elapsed() < BREAKER_CACHE
                    && matches!(
                        v,
                        SharedBreaker::Closed { failures: 0 } | SharedBreaker::Open { .. }
                    )
            })
            .map(|(v, at)| match *v {
                SharedBreaker::Open { remaining } => SharedBreaker::Open {
                    remaining: remaining.saturating_sub(at.elapsed()),
                },
                v => v,
            });
        if let Some(v) = cached {
            return Ok(v);
        }
        let view = self.store.breaker(conn).await?;
        self.cache_breaker(conn, view);
        Ok(view)
    }

    fn cache_breaker(&self, conn: &ConnectionId, view: SharedBreaker) {
        metrics::breaker_open(conn, !matches!(view, SharedBreaker::Closed { .. }));
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn.clone(), (view, Instant::now()));
    }

    fn forget_breaker(&self, conn: &ConnectionId) {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(conn);
    }

    /// Tells the shared breaker how a call went: a temporary failure counts (and may open
    /// it for every worker); a good call closes it when it had failures. Store failures here
    /// are logged only: the outcome is already recorded.
    async fn mirror_breaker(&self, conn: &ConnectionId, health: CallHealth) {
        let policy = &self.core().policy;
        let result = match health {
            CallHealth::TemporaryFailure => self
                .store
                .breaker_failure(
                    conn,
                    policy.breaker.failure_threshold,
                    policy.breaker.open_for,
                )
                .await
                .map(|v| self.cache_breaker(conn, v)),
            CallHealth::Good => {
                let had_failures = !matches!(
                    self.breakers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(conn),
                    Some((SharedBreaker::Closed { failures: 0 }, _)) | None
                );
                if had_failures {
                    self.store
                        .breaker_success(conn)
                        .await
                        .map(|()| self.cache_breaker(conn, SharedBreaker::Closed { failures: 0 }))
                } else {
                    Ok(())
                }
            }
            CallHealth::Refused | CallHealth::NotCalled => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(connection = %conn, error = %e, "could not update the shared breaker");
        }
    }

    /// Gives back the connection permits this worker holds but does not use.
    async fn release_idle_permits(&self) {
        for pool in self.permits.values() {
            let idle = pool.drain();
            if idle.is_empty() {
                continue;
            }
            if let Err(e) = self.store.release_permits(&idle).await {
                // Their leases expire by themselves.
                tracing::warn!(connection = %pool.conn, error = %e, "could not release permits");
            }
        }
    }
}

async fn writer_write(writer: &mut Writer, update: OrderUpdate) -> Result<OrderRecord, StoreError> {
    let Writer::Claimed(w) = writer else {
        unreachable!("a worker writes under its claim")
    };
    w.write(update).await
}

/// The connection permits one worker holds for one connection: leased from the store (the
/// limit across workers), kept while the worker has work (so a call costs no extra store
/// round trip), given back when it is idle or stops.
struct PermitPool {
    conn: ConnectionId,
    /// Permits held and not in use, with their lease end by this process's clock.
    free: Mutex<Vec<(Permit, Instant)>>,
    /// Permits held (free or in use).
    held: AtomicUsize,
    returned: Notify,
}

/// A permit in use; dropping it returns it to its pool.
struct PermitGuard {
    pool: Arc<PermitPool>,
    permit: Option<(Permit, Instant)>,
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p);
            self.pool.returned.notify_one();
        }
    }
}

impl PermitPool {
    fn new(conn: ConnectionId) -> Self {
        Self {
            conn,
            free: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            returned: Notify::new(),
        }
    }

    fn drain(&self) -> Vec<Permit> {
        let idle: Vec<Permit> = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .map(|(p, _)| p)
            .collect();
        self.held.fetch_sub(idle.len(), Ordering::Relaxed);
        idle
    }

    /// A permit to call the connection: one this worker holds (renewed if its lease would
    /// end before a call could), or a new one from the store while this worker holds fewer
    /// than its concurrency; otherwise waits. `None` on shutdown.
    async fn take(
        self: &Arc<Self>,
        worker: &Inner,
        shutdown: &CancellationToken,
    ) -> Result<Option<PermitGuard>, StoreError> {
        let s = &worker.settings;
        let policy = &worker.core().policy;
        let needed = policy.call_deadline.saturating_add(s.lease_margin);
        let guard = |p: Permit, expires: Instant| PermitGuard {
            pool: Arc::clone(self),
            permit: Some((p, expires)),
        };
        loop {
            let returned = self.returned.notified();
            let next = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some((permit, expires)) = next {
                if expires.saturating_duration_since(Instant::now()) >= needed {
                    return Ok(Some(guard(permit, expires)));
                }
                let sent = Instant::now();
                match worker.store.renew_permit(&permit, s.lease).await {
                    Ok(p) => {
                        return Ok(Some(guard(
                            p,
                            crate::dispatch::policy_instant_after(sent, s.lease),
                        )));
                    }
                    Err(StoreError::PermitLost { .. }) => {
                        self.held.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        self.held.fetch_sub(1, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            if self.held.fetch_add(1, Ordering::Relaxed) < s.concurrency {
                let limit = u32::try_from(policy.concurrency_per_connection).unwrap_or(u32::MAX);
                let sent = Instant::now();
                match worker
                    .store
                    .acquire_permits(&self.conn, &s.name, limit, 1, s.lease)
                    .await
                {
                    Ok(mut got) if !got.is_empty() => {
                        let p = got.remove(0);
                        return Ok(Some(guard(
                            p,
                            crate::dispatch::policy_instant_after(sent, s.lease),
                        )));
                    }
                    Ok(_) => {
                        self.held.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.held.fetch_sub(1, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            } else {
                self.held.fetch_sub(1, Ordering::Relaxed);
            }
            // Every slot is in use (here or in other workers): wait for one to come back.
            tokio::select! {
                () = returned => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = shutdown.cancelled() => return Ok(None),
            }
        }
    }
}
