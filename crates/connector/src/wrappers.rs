//! Connectors that wrap connectors: a fault injector, a concurrency limiter and a recorder.
//!
//! Each wrapper is itself a [`Connector`] and forwards every method (`info` included), so they
//! stack: `Recorder::new(ConcurrencyLimiter::new(FaultInjector::new(system, plan), 4))`.
//!
//! ```
//! use autoprov_connector::memory::InMemoryConnector;
//! use autoprov_connector::wrappers::{Call, Fault, FaultInjector, FaultPlan, Recorder};
//! use autoprov_connector::{Connector, ErrorKind};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let plan = FaultPlan::new().script(Call::Check, [Fault::fail(ErrorKind::Unavailable), Fault::Pass]);
//! let conn = Recorder::new(FaultInjector::new(InMemoryConnector::new("m"), plan));
//! assert!(conn.check().await.unwrap_err().is_temporary());
//! assert!(conn.check().await.is_ok());
//! assert_eq!(conn.calls().len(), 2);
//! # });
//! ```

use crate::connector::{
    Connector, ConnectorInfo, ExportCookie, ExportRequest, ExportStream, Fulfillment, Preview,
};
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::schema::ConnectionSchema;
use async_trait::async_trait;
use autoprov_core::{ChangeType, OrderId, ProvisioningOrder, ResourceId, Secret};
use futures::Stream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connector method that can be scripted, limited or recorded (`info` only forwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// [`Connector::check`].
    Check,
    /// [`Connector::fulfill`].
    Fulfill,
    /// [`Connector::export`].
    Export,
}

/// When an injected failure happens relative to the wrapped call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timing {
    /// The call never reaches the wrapped connector.
    BeforeApply,
    /// The wrapped connector applies the call, then its result is lost: what a timeout after
    /// the write, or a crash before the result was recorded, looks like to the caller.
    AfterApply,
}

/// What happens to one call.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The call goes through untouched.
    Pass,
    /// The call fails with an error of this kind (its default retry status), naming the
    /// call's operation and order.
    Fail {
        /// The kind of the error.
        kind: ErrorKind,
        /// Before or after the wrapped call.
        timing: Timing,
    },
    /// The call fails with exactly this error.
    Error {
        /// The error returned.
        error: ConnectorError,
        /// Before or after the wrapped call.
        timing: Timing,
    },
    /// The call never returns (to test deadlines).
    Hang {
        /// Before the wrapped call, or after it was applied.
        timing: Timing,
    },
    /// The call goes through after a delay.
    Delay(Duration),
}

impl Fault {
    /// A failure of `kind` (its default retry status) before the call is applied.
    pub fn fail(kind: ErrorKind) -> Self {
        Self::Fail {
            kind,
            timing: Timing::BeforeApply,
        }
    }

    /// A failure of `kind` after the call was applied (the result is lost).
    pub fn fail_after_apply(kind: ErrorKind) -> Self {
        Self::Fail {
            kind,
            timing: Timing::AfterApply,
        }
    }

    /// A call that never returns, before anything is applied.
    pub fn hang() -> Self {
        Self::Hang {
            timing: Timing::BeforeApply,
        }
    }
}

/// What a [`FaultInjector`] does: scripted faults per method first (one per call, in order),
/// then seeded random ones. Random draws come from one `StdRng` seeded with
/// [`FaultPlan::seed`], so a sequential test sees the same faults on every run.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    scripts: BTreeMap<Call, VecDeque<Fault>>,
    seed: u64,
    failure_ratio: f64,
    failure_kind: ErrorKind,
    after_apply_ratio: f64,
    hang_ratio: f64,
    latency: Option<(Duration, Duration)>,
    random_calls: Vec<Call>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultPlan {
    /// No fault at all: the injector only forwards.
    pub fn new() -> Self {
        Self {
            scripts: BTreeMap::new(),
            seed: 0,
            failure_ratio: 0.0,
            failure_kind: ErrorKind::Unavailable,
            after_apply_ratio: 0.0,
            hang_ratio: 0.0,
            latency: None,
            random_calls: vec![Call::Fulfill],
        }
    }

    /// Faults for the next calls of one method, in order; later calls fall back to the random
    /// faults.
    pub fn script(mut self, call: Call, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.scripts.entry(call).or_default().extend(faults);
        self
    }

    /// The seed of the random faults (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The share of calls (0.0–1.0) that fail with `kind`.
    pub fn failure_ratio(mut self, ratio: f64, kind: ErrorKind) -> Self {
        self.failure_ratio = ratio.clamp(0.0, 1.0);
        self.failure_kind = kind;
        self
    }

    /// The share of random failures (0.0–1.0) that happen after the call was applied.
    pub fn after_apply_ratio(mut self, ratio: f64) -> Self {
        self.after_apply_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// The share of calls (0.0–1.0) that hang forever.
    pub fn hang_ratio(mut self, ratio: f64) -> Self {
        self.hang_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// A latency drawn uniformly in `min..=max` added to every call (random calls).
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = Some((min, max.max(min)));
        self
    }

    /// Which methods the random faults and latency apply to (default: only fulfil).
    pub fn random_calls(mut self, calls: impl IntoIterator<Item = Call>) -> Self {
        self.random_calls = calls.into_iter().collect();
        self
    }
}

/// How many faults an injector has injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Calls seen (check, fulfil, export).
    pub calls: u64,
    /// Failures before the wrapped call.
    pub failed_before_apply: u64,
    /// Failures after the wrapped call was applied.
    pub failed_after_apply: u64,
    /// Calls that hang.
    pub hangs: u64,
    /// Calls delayed.
    pub delayed: u64,
}

#[derive(Debug)]
struct FaultState {
    plan: FaultPlan,
    rng: StdRng,
    stats: FaultStats,
}

/// Injects failures, latency and hangs into the calls of a wrapped connector.
///
/// With [`FaultPlan::new`] it forwards everything untouched.
#[derive(Debug)]
pub struct FaultInjector<C> {
    inner: C,
    state: Mutex<FaultState>,
}

impl<C: Connector> FaultInjector<C> {
    /// Wraps a connector.
    pub fn new(inner: C, plan: FaultPlan) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed);
        Self {
            inner,
            state: Mutex::new(FaultState {
                plan,
                rng,
                stats: FaultStats::default(),
            }),
        }
    }

    /// The wrapped connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Adds scripted faults for the next calls of a method.
    pub fn push_script(&self, call: Call, faults: impl IntoIterator<Item = Fault>) {
        self.lock()
            .plan
            .scripts
            .entry(call)
            .or_default()
            .extend(faults);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides the fault of the next call.
    fn next_fault(&self, call: Call) -> Fault {
        let mut s = self.lock();
        s.stats.calls += 1;
        let fault = match s.plan.scripts.get_mut(&call).and_then(VecDeque::pop_front) {
            Some(fault) => fault,
            None if s.plan.random_calls.contains(&call) => {
                let FaultState { plan, rng, .. } = &mut *s;
                random_fault(plan, rng)
            }
            None => Fault::Pass,
        };
        match &fault {
            Fault::Fail {
                timing: Timing::BeforeApply,
                ..
            }
            | Fault::Error {
                timing: Timing::BeforeApply,
                ..
            } => s.stats.failed_before_apply += 1,
            Fault::Fail {
                timing: Timing::AfterApply,
                ..
            }
            | Fault::Error {
                timing: Timing::AfterApply,
                ..
            } => s.stats.failed_after_apply += 1,
            Fault::Hang { .. } => s.stats.hangs += 1,
            Fault::Delay(_) => s.stats.delayed += 1,
            Fault::Pass => {}
        }
        fault
    }

    async fn around<T>(
        &self,
        call: Call,
        order: Option<&ProvisioningOrder>,
        run: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let (error, timing) = match self.next_fault(call) {
            Fault::Pass => return run.await,
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                return run.await;
            }
            Fault::Hang { timing } => {
                if timing == Timing::AfterApply {
                    let _lost = run.await;
                }
                return futures::future::pending().await;
            }
            Fault::Fail { kind, timing } => {
                let operation = match (call, order) {
                    (Call::Check, _) => Operation::Check,
                    (Call::Export, _) => Operation::Export,
                    (Call::Fulfill, Some(order)) => order.change_type.into(),
                    (Call::Fulfill, None) => Operation::Update,
                };
                let message = match timing {
                    Timing::BeforeApply => "injected fault",
                    Timing::AfterApply => "injected fault after the call was applied",
                };
                (ConnectorError::new(kind, operation, message), timing)
            }
            Fault::Error { error, timing } => (error, timing),
        };
        if timing == Timing::AfterApply {
            let _lost = run.await;
        }
        Err(match order {
            Some(order) => error.for_order(order),
            None => error,
        })
    }
}

fn random_fault(plan: &FaultPlan, rng: &mut StdRng) -> Fault {
    let delay = plan.latency.map(|(min, max)| {
        let span = (max - min).as_nanos() as u64;
        min + Duration::from_nanos(if span == 0 {
            0
        } else {
            rng.gen_range(0..=span)
        })
    });
    let draw: f64 = rng.r#gen();
    let after: f64 = rng.r#gen();
    let timing = if after < plan.after_apply_ratio {
        Timing::AfterApply
    } else {
        Timing::BeforeApply
    };
    if draw < plan.hang_ratio {
        return Fault::Hang { timing };
    }
    if draw < plan.hang_ratio + plan.failure_ratio {
        return Fault::Fail {
            kind: plan.failure_kind,
            timing,
        };
    }
    match delay {
        Some(d) if !d.is_zero() => Fault::Delay(d),
        _ => Fault::Pass,
    }
}

#[async_trait]
impl<C: Connector> Connector for FaultInjector<C> {
    fn info(&self) -> &ConnectorInfo {
        self.inner.info()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.around(Call::Check, None, self.inner.check()).await
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        self.around(Call::Fulfill, Some(order), self.inner.fulfill(order))
            .await
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        self.around(Call::Export, None, self.inner.export(request))
            .await
    }

    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        self.inner.preview(orders)
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        self.inner.schema()
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        self.inner.check_password(target, password).await
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        self.around(Call::Export, None, self.inner.latest_cookie())
            .await
    }
}

/// Bounds how many calls run at once against the wrapped connector (a tokio semaphore).
///
/// An export holds its permit until its stream is dropped: reading the stream is talking to
/// the system.
#[derive(Debug)]
pub struct ConcurrencyLimiter<C> {
    inner: C,
    permits: Arc<Semaphore>,
    limit: usize,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl<C: Connector> ConcurrencyLimiter<C> {
    /// Wraps a connector with at most `limit` (at least 1) calls at once.
    pub fn new(inner: C, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The wrapped connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls that ran at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    async fn permit(&self) -> Result<Held, ConnectorError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            ConnectorError::new(ErrorKind::Unavailable, Operation::Check, "limiter closed")
        })?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Held {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        })
    }
}

struct Held {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct HeldStream {
    stream: ExportStream,
    _held: Held,
}

impl Stream for HeldStream {
    type Item = <ExportStream as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

#[async_trait]
impl<C: Connector> Connector for ConcurrencyLimiter<C> {
    fn info(&self) -> &ConnectorInfo {
        self.inner.info()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let _held = self.permit().await?;
        self.inner.check().await
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let _held = self.permit().await.map_err(|e| e.for_order(order))?;
        self.inner.fulfill(order).await
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        let held = self.permit().await?;
        let stream = self.inner.export(request).await?;
        Ok(Box::pin(HeldStream {
            stream,
            _held: held,
        }))
    }

    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        self.inner.preview(orders)
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        self.inner.schema()
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        self.inner.check_password(target, password).await
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        let _held = self.permit().await?;
        self.inner.latest_cookie().await
    }
}

/// One call a [`Recorder`] saw.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// Its position, from 1.
    pub seq: u64,
    /// The method.
    pub call: Call,
    /// The order, for fulfilment.
    pub order: Option<OrderId>,
    /// The order's change type, for fulfilment.
    pub change_type: Option<ChangeType>,
    /// The order's target key, when it names one.
    pub target: Option<String>,
    /// The export request, for exports.
    pub export: Option<ExportRequest>,
    /// What it returned: the fulfilment (none for check and export) or the error.
    pub outcome: Result<Option<Fulfillment>, ConnectorError>,
}

/// Records every call to the wrapped connector and its outcome.
pub struct Recorder<C> {
    inner: C,
    calls: Mutex<Vec<RecordedCall>>,
    info_calls: AtomicU64,
}

impl<C: fmt::Debug> fmt::Debug for Recorder<C> {
    /// The wrapped connector and how many calls were recorded, never the calls: they name the
    /// objects written ([`Recorder::calls`] gives them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls = self.calls.lock().map_or(0, |c| c.len());
        f.debug_struct("Recorder")
            .field("inner", &self.inner)
            .field("calls", &calls)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Recorder<C> {
    /// Wraps a connector.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
            info_calls: AtomicU64::new(0),
        }
    }

    /// The wrapped connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Every call so far (check, fulfil, export), in order of completion.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The fulfilment calls of one order.
    pub fn calls_of(&self, order: &OrderId) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.order.as_ref() == Some(order))
            .collect()
    }

    /// How many times `info` was called (not recorded one by one: hosts call it often).
    pub fn info_calls(&self) -> u64 {
        self.info_calls.load(Ordering::Relaxed)
    }

    fn record(&self, mut call: RecordedCall) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        call.seq = calls.len() as u64 + 1;
        calls.push(call);
    }
}

#[async_trait]
impl<C: Connector> Connector for Recorder<C> {
    fn info(&self) -> &ConnectorInfo {
        self.info_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.info()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let result = self.inner.check().await;
        self.record(RecordedCall {
            seq: 0,
            call: Call::Check,
            order: None,
            change_type: None,
            target: None,
            export: None,
            outcome: result.clone().map(|()| None),
        });
        result
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let result = self.inner.fulfill(order).await;
        self.record(RecordedCall {
            seq: 0,
            call: Call::Fulfill,
            order: Some(order.order_id.clone()),
            change_type: Some(order.change_type),
            target: order.resource.as_ref().map(|r| r.id.to_string()),
            export: None,
            outcome: result.clone().map(Some),
        });
        result
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        let result = self.inner.export(request.clone()).await;
        self.record(RecordedCall {
            seq: 0,
            call: Call::Export,
            order: None,
            change_type: None,
            target: None,
            export: Some(request),
            outcome: match &result {
                Ok(_) => Ok(None),
                Err(e) => Err(e.clone()),
            },
        });
        result
    }

    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        self.inner.preview(orders)
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        self.inner.schema()
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        self.inner.check_password(target, password).await
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        self.inner.latest_cookie().await
    }
}
