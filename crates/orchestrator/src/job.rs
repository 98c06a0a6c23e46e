//! The provisioning job (SPEC §8): export every connection → synchronize → verify what earlier
//! runs executed → evaluate the policy → plan → review gate and thresholds → fulfil. The next
//! run's synchronization verifies what this one executed.
//!
//! A complete job exports everything and re-evaluates every owner; an incremental job exports
//! what changed since each connection's cookie and re-evaluates only the owners that the change
//! (or the host, through [`ProvisioningJob::planner_mut`]) marked dirty. A simulation runs
//! everything up to the orders and writes nothing to any managed system. Cancellation lets
//! in-flight calls finish and starts nothing new; every order not sent stays Pending in the
//! store.

use crate::clock::Clock;
use crate::dispatch::{DispatchError, DispatchReport, Dispatcher};
use crate::events::{EventSink, JobEvent, NoEvents};
use crate::plan::{OrderStates, Plan, PlanOptions, Planner, ThresholdBreach};
use crate::store::{
    JobKind, JobRun, JobStatus, OPEN_STATES, OrderRecord, OrderUpdate, ReviewDecision,
    ReviewVerdict, Store, StoreError,
};
use crate::verify::{VerificationReport, verify};
use crate::{EvaluationError, PlanError};
use autoprov_connector::{Connector, ConnectorError, ExportItem, ExportRequest, Preview};
use autoprov_core::{
    ConnectionId, EntityTypeId, OrderId, ProvisioningEvent, ProvisioningOrder, ProvisioningState,
    Resource, ResourceId, ResourceTypeId,
};
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Decides whether an exported resource is a target of a resource type (e.g. admin accounts
/// live in `OU=Admins`).
pub type TargetFilter = Arc<dyn Fn(&Resource) -> bool + Send + Sync>;

/// Options of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Everything up to the orders; nothing written to any managed system, no order stored.
    pub simulation: bool,
    /// An operator forces the generation past threshold breaches.
    pub force_thresholds: bool,
}

impl JobOptions {
    /// A simulation.
    pub fn simulation() -> Self {
        Self {
            simulation: true,
            force_thresholds: false,
        }
    }
}

/// A job failure that stopped the run (order failures are results, not job failures).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A connection could not be exported; planning on stale data could create duplicates, so
    /// nothing was planned or sent.
    #[error("job {job}: export of connection {connection} failed: {source}")]
    Export {
        /// The job run.
        job: String,
        /// The connection.
        connection: ConnectionId,
        /// The connector's error.
        #[source]
        source: ConnectorError,
    },
    /// The store failed.
    #[error("job {job}: {source}")]
    Store {
        /// The job run.
        job: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The planner refused an input.
    #[error("job {job}: {source}")]
    Plan {
        /// The job run.
        job: String,
        /// The planner's error.
        #[source]
        source: PlanError,
    },
    /// Dispatch refused the orders (a duplicate id, a dependency cycle).
    #[error("job {job}: {source}")]
    Dispatch {
        /// The job run.
        job: String,
        /// The dispatcher's error.
        #[source]
        source: DispatchError,
    },
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The job-run record (also in the store).
    pub run: JobRun,
    /// Resources exported per connection.
    pub exported: BTreeMap<ConnectionId, usize>,
    /// What verification of earlier orders found.
    pub verification: VerificationReport,
    /// The orders computed (released or not): in a simulation, what would be sent.
    pub orders: Vec<ProvisioningOrder>,
    /// In a simulation (also one that thresholds block), the orders in each connection's own
    /// change language (LDIF for Active Directory), for connections whose connector renders
    /// one ([`Connector::preview`]) and that have orders. Empty otherwise.
    pub previews: BTreeMap<ConnectionId, Preview>,
    /// Orders waiting in provisioning review.
    pub awaiting_review: Vec<OrderId>,
    /// Thresholds passed (the run is `Blocked` unless forced).
    pub breaches: Vec<ThresholdBreach>,
    /// Owners whose evaluation failed.
    pub evaluation_errors: Vec<EvaluationError>,
    /// What dispatch did (empty for simulations and blocked runs).
    pub dispatch: DispatchReport,
    /// Orders of earlier runs whose outcome was unknown (an attempt started, no outcome
    /// recorded: the process stopped), sent again before this run's orders.
    pub resumed: DispatchReport,
}

/// Builds a [`ProvisioningJob`].
pub struct ProvisioningJobBuilder {
    planner: Planner,
    connectors: Vec<Arc<dyn Connector>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    policy: crate::dispatch::DispatchPolicy,
    filters: BTreeMap<ResourceTypeId, TargetFilter>,
    scopes: BTreeMap<ConnectionId, String>,
    default_validity: Duration,
}

impl ProvisioningJobBuilder {
    /// Exports (and so manages) only the subtree below `scope` of a connection (e.g. the OU
    /// that autoprov owns). Default: everything the connection holds.
    pub fn export_scope(
        mut self,
        connection: impl Into<ConnectionId>,
        scope: impl Into<String>,
    ) -> Self {
        self.scopes.insert(connection.into(), scope.into());
        self
    }

    /// Adds a connection.
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connectors.push(connector);
        self
    }

    /// Sets the dispatch policy (concurrency, deadline, retries, budget, breaker).
    pub fn dispatch_policy(mut self, policy: crate::dispatch::DispatchPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends progress and audit events to `sink`.
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Restricts which exported resources are targets of a resource type.
    pub fn target_filter(
        mut self,
        resource_type: impl Into<ResourceTypeId>,
        filter: impl Fn(&Resource) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filters.insert(resource_type.into(), Arc::new(filter));
        self
    }

    /// The validity period used for resource types the planner does not know. Default: 7 days.
    pub fn default_validity(mut self, period: Duration) -> Self {
        self.default_validity = period;
        self
    }

    /// Builds the job.
    pub fn build(self) -> ProvisioningJob {
        let dispatcher = Dispatcher::new(
            self.connectors.iter().cloned(),
            self.policy,
            self.store.clone(),
            self.clock.clone(),
        )
        .with_events(self.events.clone());
        let connectors = self
            .connectors
            .into_iter()
            .map(|c| (c.info().connection.clone(), c))
            .collect();
        ProvisioningJob {
            planner: self.planner,
            dispatcher,
            connectors,
            store: self.store,
            clock: self.clock,
            events: self.events,
            filters: self.filters,
            scopes: self.scopes,
            default_validity: self.default_validity,
            runs: 0,
        }
    }
}

/// The provisioning job: owns the planner and the dispatcher over a set of connections and a
/// store.
pub struct ProvisioningJob {
    planner: Planner,
    dispatcher: Dispatcher,
    connectors: BTreeMap<ConnectionId, Arc<dyn Connector>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    filters: BTreeMap<ResourceTypeId, TargetFilter>,
    scopes: BTreeMap<ConnectionId, String>,
    default_validity: Duration,
    runs: u64,
}

impl std::fmt::Debug for ProvisioningJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningJob")
            .field("connections", &self.connectors.keys().collect::<Vec<_>>())
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

/// Page and batch size for synchronized resources.
const RESOURCE_PAGE: usize = 1000;

/// How the resources of one connection feed the planner.
struct Routing {
    /// Resource types of the connection by target entity type.
    by_entity: BTreeMap<EntityTypeId, Vec<ResourceTypeId>>,
}

impl ProvisioningJob {
    /// Starts building a job around a planner and a store.
    pub fn builder(planner: Planner, store: Arc<dyn Store>) -> ProvisioningJobBuilder {
        ProvisioningJobBuilder {
            planner,
            connectors: Vec::new(),
            store,
            clock: Arc::new(crate::clock::SystemClock),
            events: Arc::new(NoEvents),
            policy: crate::dispatch::DispatchPolicy::default(),
            filters: BTreeMap::new(),
            scopes: BTreeMap::new(),
            default_validity: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// The planner (owners, requests, review).
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// The planner, to upsert owners and requests or decide reviews between runs.
    pub fn planner_mut(&mut self) -> &mut Planner {
        &mut self.planner
    }

    /// The dispatcher (e.g. to record a human's answer for a Transmitted order).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Records a human's answer for a Transmitted order in the store; its owner is
    /// re-evaluated by the next run.
    pub async fn record_human_resolution(
        &mut self,
        order: &OrderId,
        resolution: Result<(), String>,
    ) -> Result<ProvisioningState, DispatchError> {
        let state = self
            .dispatcher
            .record_human_resolution(order, resolution)
            .await?;
        self.orders_changed(std::slice::from_ref(order)).await?;
        Ok(state)
    }

    /// Records a provisioning-review decision (approve ⇒ Pending, sent by the next run;
    /// decline ⇒ cancelled and not generated again for the same change; postpone) in the
    /// store, with who decided and why (audited), and returns the order's new state. An order
    /// not in review is a typed error and nothing is recorded.
    pub async fn decide_review(
        &mut self,
        decision: ReviewDecision,
    ) -> Result<ProvisioningState, StoreError> {
        let order_id = decision.order_id.clone();
        let record =
            self.store
                .order(&order_id)
                .await?
                .ok_or_else(|| StoreError::UnknownOrder {
                    order_id: order_id.clone(),
                })?;
        let record = self.store.decide_review(record.version, decision).await?;
        self.orders_changed(std::slice::from_ref(&order_id)).await?;
        Ok(record.state)
    }

    /// Approves an order in provisioning review ([`ProvisioningJob::decide_review`]).
    pub async fn approve(
        &mut self,
        order: &OrderId,
        by: &str,
    ) -> Result<ProvisioningState, StoreError> {
        let now = self.clock.now();
        self.decide_review(ReviewDecision::new(
            order.clone(),
            ReviewVerdict::Approved,
            by,
            now,
        ))
        .await
    }

    /// The store's view of the orders not done with, and of the orders review declined: what
    /// the planner must know so that it neither plans an order twice nor asks again.
    async fn order_states(&self) -> Result<OrderStates, StoreError> {
        let mut view: OrderStates = self
            .store
            .orders_in(OPEN_STATES)
            .await?
            .into_iter()
            .map(|r| (r.id().clone(), r.state))
            .collect();
        let mut after: Option<OrderId> = None;
        loop {
            let page = self
                .store
                .review_decisions_page(after.as_ref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.order_id.clone());
            for d in page {
                if d.verdict == ReviewVerdict::Declined {
                    view.decline(d.order_id);
                }
            }
        }
        Ok(view)
    }

    /// Orders whose state changed in the store: their owners are re-evaluated by the next
    /// plan, which sees the new states (the planner keeps no copy of them).
    async fn orders_changed(&mut self, orders: &[OrderId]) -> Result<(), StoreError> {
        for id in orders {
            if let Some(owner) = self
                .store
                .order(id)
                .await?
                .and_then(|r| r.order.owner_id().cloned())
            {
                // An owner removed meanwhile has nothing left to re-evaluate.
                let _ = self.planner.mark_dirty(&owner);
            }
        }
        Ok(())
    }

    /// Runs a complete job.
    pub async fn run_complete(
        &mut self,
        options: JobOptions,
        cancel: &CancellationToken,
    ) -> Result<JobReport, JobError> {
        self.run(JobKind::Complete, options, cancel).await
    }

    /// Runs an incremental job.
    pub async fn run_incremental(
        &mut self,
        options: JobOptions,
        cancel: &CancellationToken,
    ) -> Result<JobReport, JobError> {
        self.run(JobKind::Incremental, options, cancel).await
    }

    async fn run(
        &mut self,
        kind: JobKind,
        options: JobOptions,
        cancel: &CancellationToken,
    ) -> Result<JobReport, JobError> {
        self.runs += 1;
        let started_at = self.clock.now();
        let id = format!(
            "job-{}-{}",
            started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            self.runs
        );
        let span =
            tracing::info_span!("job", job = %id, kind = ?kind, simulation = options.simulation);
        let mut run = JobRun::started(id.clone(), kind, options.simulation, started_at);
        let store_err = |source| JobError::Store {
            job: id.clone(),
            source,
        };
        self.store
            .put_job_run(run.clone())
            .await
            .map_err(store_err)?;
        let outcome = self
            .steps(&mut run, kind, options, cancel)
            .instrument(span)
            .await;
        run.finished_at = Some(self.clock.now());
        let mut report = match outcome {
            Ok(report) => report,
            Err(e) => {
                run.status = JobStatus::Failed;
                run.message = Some(e.to_string());
                self.store.put_job_run(run).await.map_err(store_err)?;
                return Err(e);
            }
        };
        run.counts = self.store.order_counts().await.map_err(store_err)?;
        self.store
            .put_job_run(run.clone())
            .await
            .map_err(store_err)?;
        report.run = run;
        Ok(report)
    }

    /// Each connection's rendering of its orders, for the connectors that have one.
    fn previews(&self, orders: &[ProvisioningOrder]) -> BTreeMap<ConnectionId, Preview> {
        let mut by_connection: BTreeMap<&ConnectionId, Vec<ProvisioningOrder>> = BTreeMap::new();
        for order in orders {
            if let Some(c) = &order.connection {
                by_connection.entry(c).or_default().push(order.clone());
            }
        }
        by_connection
            .into_iter()
            .filter_map(|(c, orders)| {
                let preview = self.connectors.get(c)?.preview(&orders)?;
                Some((c.clone(), preview))
            })
            .collect()
    }

    async fn steps(
        &mut self,
        run: &mut JobRun,
        kind: JobKind,
        options: JobOptions,
        cancel: &CancellationToken,
    ) -> Result<JobReport, JobError> {
        let job = run.id.clone();
        let store_err = |source| JobError::Store {
            job: job.clone(),
            source,
        };
        let mut report = JobReport {
            run: run.clone(),
            exported: BTreeMap::new(),
            verification: VerificationReport::default(),
            orders: Vec::new(),
            previews: BTreeMap::new(),
            awaiting_review: Vec::new(),
            breaches: Vec::new(),
            evaluation_errors: Vec::new(),
            dispatch: DispatchReport::default(),
            resumed: DispatchReport::default(),
        };

        // 1–2. Export every connection and synchronize what it holds.
        self.events.emit(JobEvent::StepStarted { step: "export" });
        let connections: Vec<(ConnectionId, Arc<dyn Connector>)> = self
            .connectors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (conn, connector) in connections {
            if cancel.is_cancelled() {
                run.status = JobStatus::Cancelled;
                return Ok(report);
            }
            let span = tracing::info_span!("connection", connection = %conn);
            let n = self
                .export_and_sync(&job, &conn, connector.as_ref(), kind)
                .instrument(span)
                .await?;
            report.exported.insert(conn, n);
        }
        self.events.emit(JobEvent::StepFinished {
            step: "export",
            summary: format!(
                "{} resources from {} connections",
                report.exported.values().sum::<usize>(),
                report.exported.len()
            ),
        });

        // 3. Verify what earlier runs executed, against what was just synchronized.
        self.events.emit(JobEvent::StepStarted { step: "verify" });
        let validity: BTreeMap<ResourceTypeId, Duration> = self
            .planner
            .resource_types()
            .iter()
            .map(|rt| (rt.id.clone(), rt.transmitted_state_validity_period))
            .collect();
        report.verification = verify(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.events.as_ref(),
            &validity,
            self.default_validity,
        )
        .await
        .map_err(store_err)?;
        let verified_or_timed_out: Vec<OrderId> = report
            .verification
            .verified
            .iter()
            .chain(&report.verification.timed_out)
            .cloned()
            .collect();
        self.orders_changed(&verified_or_timed_out)
            .await
            .map_err(store_err)?;
        self.events.emit(JobEvent::StepFinished {
            step: "verify",
            summary: format!(
                "{} verified, {} waiting, {} timed out",
                report.verification.verified.len(),
                report.verification.waiting.len(),
                report.verification.timed_out.len()
            ),
        });

        // 4. Evaluate and plan.
        self.events.emit(JobEvent::StepStarted { step: "plan" });
        let now = self.clock.now();
        let plan_options = PlanOptions {
            force_thresholds: options.force_thresholds,
        };
        let simulation = options.simulation;
        let in_store = self.order_states().await.map_err(store_err)?;
        let plan: Plan = crate::planning::off_runtime(&mut self.planner, move |planner| {
            if kind == JobKind::Complete {
                planner.mark_all_dirty();
            }
            if simulation {
                planner.simulate(now, plan_options, &in_store)
            } else {
                match kind {
                    JobKind::Complete => planner.plan_full(now, plan_options, &in_store),
                    JobKind::Incremental => {
                        planner.plan_incremental(now, plan_options, &in_store);
                        planner.current_plan(plan_options)
                    }
                }
            }
        })
        .await;
        report.orders = plan.all_orders().cloned().collect();
        report.awaiting_review = plan
            .awaiting_approval()
            .filter_map(|i| i.order.as_ref().map(|o| o.order_id.clone()))
            .collect();
        report.evaluation_errors = plan.errors().cloned().collect();
        run.orders_total = report.orders.len() as u64;
        let released: Vec<ProvisioningOrder> = plan.orders().cloned().collect();
        self.events.emit(JobEvent::StepFinished {
            step: "plan",
            summary: format!(
                "{} orders ({} released, {} awaiting review), {} evaluation errors",
                report.orders.len(),
                released.len(),
                report.awaiting_review.len(),
                report.evaluation_errors.len()
            ),
        });

        // 5. Thresholds and simulation stop here. A simulation shows the previews even when
        //    thresholds block the generation: that is when an operator wants to see it.
        if options.simulation {
            report.previews = self.previews(&report.orders);
        }
        match &plan.status {
            crate::plan::GenerationStatus::Blocked { breaches } => {
                report.breaches = breaches.clone();
                run.status = JobStatus::Blocked;
                run.message = Some(
                    breaches
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                return Ok(report);
            }
            crate::plan::GenerationStatus::Forced { breaches } => {
                report.breaches = breaches.clone();
            }
            _ => {}
        }
        if options.simulation {
            run.status = JobStatus::Succeeded;
            return Ok(report);
        }
        // Orders waiting in provisioning review are stored as AwaitingApproval: the review
        // decision is the store's to record (and survives a restart), never asked twice.
        let awaiting: Vec<OrderRecord> = plan
            .awaiting_approval()
            .filter_map(|i| i.order.as_ref())
            .map(|o| {
                let mode = o
                    .connection
                    .as_ref()
                    .and_then(|c| self.dispatcher.mode_of(c))
                    .unwrap_or_default();
                OrderRecord::new(o.clone(), mode, ProvisioningState::AwaitingApproval, now)
            })
            .collect();
        if !awaiting.is_empty() {
            self.store
                .insert_orders(&awaiting)
                .await
                .map_err(store_err)?;
        }
        if cancel.is_cancelled() {
            run.status = JobStatus::Cancelled;
            return Ok(report);
        }

        // 6. Fulfil the released orders. An order already verified by an earlier run that is
        //    due again (drift back to an old value) reopens through the state machine.
        self.events.emit(JobEvent::StepStarted { step: "fulfil" });
        let mut to_send = Vec::with_capacity(released.len());
        for order in released {
            if order.not_before.is_some_and(|t| t > now) {
                continue;
            }
            if let Some(rec) = self.store.order(&order.order_id).await.map_err(store_err)?
                && matches!(
                    rec.state,
                    ProvisioningState::Verified | ProvisioningState::Inactive
                )
            {
                // Reopened through the store: a new round of attempts, the history kept.
                let event = ProvisioningEvent::DifferenceFound {
                    review_required: false,
                };
                self.store
                    .update_order(rec.id(), rec.version, OrderUpdate::event(event, now))
                    .await
                    .map_err(store_err)?;
            }
            to_send.push(order);
        }
        let dispatch_err = |e| match e {
            DispatchError::Store(source) => store_err(source),
            source => JobError::Dispatch {
                job: job.clone(),
                source,
            },
        };
        // Orders whose attempt started but whose outcome was never recorded (the process
        // stopped during the call) have an unknown outcome: they are sent again, before this
        // plan's orders, so that a newer order for the same target comes after them
        // (connectors are idempotent, so an effect already applied is not applied twice).
        let planned: BTreeSet<&OrderId> = to_send.iter().map(|o| &o.order_id).collect();
        let unknown: Vec<ProvisioningOrder> = self
            .store
            .unfinished_orders()
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|r| r.dispatch.attempts > 0 && !planned.contains(r.id()))
            .map(|r| (*r.order).clone())
            .collect();
        drop(planned);
        if !unknown.is_empty() {
            let resumed = self
                .dispatcher
                .dispatch(unknown, cancel)
                .await
                .map_err(dispatch_err)?;
            report.resumed = resumed;
        }
        let dispatch = self
            .dispatcher
            .dispatch(to_send, cancel)
            .await
            .map_err(dispatch_err)?;
        // The store recorded every outcome; the owners concerned are re-evaluated next time.
        let finished: Vec<OrderId> = dispatch
            .executed
            .iter()
            .chain(&dispatch.transmitted)
            .chain(dispatch.errored.iter().map(|(id, _)| id))
            .chain(&report.resumed.executed)
            .chain(&report.resumed.transmitted)
            .chain(report.resumed.errored.iter().map(|(id, _)| id))
            .cloned()
            .collect();
        self.orders_changed(&finished).await.map_err(store_err)?;
        self.events.emit(JobEvent::StepFinished {
            step: "fulfil",
            summary: format!(
                "{} executed, {} transmitted, {} errored, {} not sent",
                dispatch.executed.len(),
                dispatch.transmitted.len(),
                dispatch.errored.len(),
                dispatch.pending.len()
            ),
        });
        run.status = if cancel.is_cancelled() {
            JobStatus::Cancelled
        } else {
            JobStatus::Succeeded
        };
        report.dispatch = dispatch;
        Ok(report)
    }

    fn routing(&self, conn: &ConnectionId) -> Routing {
        let mut by_entity: BTreeMap<EntityTypeId, Vec<ResourceTypeId>> = BTreeMap::new();
        for rt in self.planner.resource_types() {
            if &rt.connection == conn {
                by_entity
                    .entry(rt.target_entity_type.clone())
                    .or_default()
                    .push(rt.id.clone());
            }
        }
        Routing { by_entity }
    }

    /// Feeds one exported resource to the planner: as a target of every resource type of the
    /// connection that accepts it, otherwise as a lookup (OUs, groups for query rules).
    fn feed(&mut self, routing: &Routing, resource: &Resource) -> Result<(), PlanError> {
        let entity = resource.entity_type.clone();
        let types = entity.as_ref().and_then(|e| routing.by_entity.get(e));
        let mut target_of_some = false;
        if let Some(types) = types {
            for rt in types {
                let accepted = self.filters.get(rt).is_none_or(|f| f(resource));
                if accepted {
                    self.planner.upsert_target(rt, resource)?;
                    target_of_some = true;
                } else {
                    self.planner.remove_target(rt, &resource.id)?;
                }
            }
        }
        if !target_of_some && let Some(entity) = entity {
            self.planner.upsert_lookup(entity, resource.clone());
        }
        Ok(())
    }

    fn forget(
        &mut self,
        routing: &Routing,
        id: &ResourceId,
        entity: Option<&EntityTypeId>,
    ) -> Result<(), PlanError> {
        for types in routing.by_entity.values() {
            for rt in types {
                self.planner.remove_target(rt, id)?;
            }
        }
        if let Some(entity) = entity {
            self.planner.remove_lookup(entity, id);
        }
        Ok(())
    }

    /// Directories keep group membership on the group (`member`); the member's `memberOf` is a
    /// back-link whose change does not make an incremental export return the member. So when
    /// an incremental export returns a group whose members changed, the stored members get
    /// their `memberOf` updated here (and are fed to the planner like any change).
    async fn maintain_back_links(
        &self,
        conn: &ConnectionId,
        upserts: &mut Vec<Resource>,
        deleted: &[ResourceId],
    ) -> Result<(), StoreError> {
        use autoprov_connector::schema::{MEMBER_OF, MEMBERS};
        use autoprov_core::{PropertyValue, Reference};
        // Exported now (under its new key after a rename or move) or deleted: nothing to derive.
        let mut fresh: BTreeSet<ResourceId> = upserts.iter().map(|r| r.id.clone()).collect();
        fresh.extend(deleted.iter().cloned());
        let fresh_stable: BTreeSet<autoprov_core::StableId> =
            upserts.iter().filter_map(|r| r.stable_id.clone()).collect();
        let mut touched: BTreeMap<ResourceId, Resource> = BTreeMap::new();
        let members_of = |r: &Resource| -> BTreeSet<String> {
            r.get(MEMBERS)
                .and_then(PropertyValue::as_references)
                .map(|s| {
                    s.iter()
                        .filter_map(|m| m.dn_value().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for group in upserts.iter() {
            if group.get(MEMBERS).is_none() {
                continue;
            }
            let old = self
                .store
                .resource(conn, &group.id)
                .await?
                .map(|g| members_of(&g))
                .unwrap_or_default();
            let new = members_of(group);
            let group_ref = Reference::dn(group.id.as_str());
            for (dn, added) in new
                .difference(&old)
                .map(|d| (d, true))
                .chain(old.difference(&new).map(|d| (d, false)))
            {
                let id = ResourceId::new(dn.as_str());
                if fresh.contains(&id) {
                    continue; // exported now: its memberOf is fresh already
                }
                let member = match touched.remove(&id) {
                    Some(m) => Some(m),
                    None => self.store.resource(conn, &id).await?,
                };
                let Some(mut member) = member else { continue };
                if member
                    .stable_id
                    .as_ref()
                    .is_some_and(|s| fresh_stable.contains(s))
                {
                    continue;
                }
                let mut groups = member
                    .get(MEMBER_OF)
                    .and_then(PropertyValue::as_references)
                    .cloned()
                    .unwrap_or_default();
                if added {
                    groups.insert(group_ref.clone());
                } else {
                    groups.retain(|g| {
                        !g.dn_value()
                            .is_some_and(|d| d.eq_ignore_ascii_case(group.id.as_str()))
                    });
                }
                member
                    .values
                    .insert(MEMBER_OF.to_owned(), PropertyValue::References(groups));
                touched.insert(id, member);
            }
        }
        upserts.extend(touched.into_values());
        Ok(())
    }

    async fn export_and_sync(
        &mut self,
        job: &str,
        conn: &ConnectionId,
        connector: &dyn Connector,
        kind: JobKind,
    ) -> Result<usize, JobError> {
        let store_err = |source| JobError::Store {
            job: job.to_owned(),
            source,
        };
        let export_err = |source| JobError::Export {
            job: job.to_owned(),
            connection: conn.clone(),
            source,
        };
        let plan_err = |source| JobError::Plan {
            job: job.to_owned(),
            source,
        };
        let cookie = match kind {
            JobKind::Incremental => self.store.cookie(conn).await.map_err(store_err)?,
            JobKind::Complete => None,
        };
        let incremental = cookie.is_some();
        let scope = self.scopes.get(conn).cloned();
        let scoped = |r: ExportRequest| match &scope {
            Some(s) => r.within(s.clone()),
            None => r,
        };
        let request = scoped(match cookie {
            Some(c) => ExportRequest::incremental(c),
            None => ExportRequest::complete(),
        });
        let mut stream = match connector.export(request).await {
            Ok(s) => s,
            Err(e) if incremental && e.kind() == autoprov_connector::ErrorKind::Conflict => {
                // The cookie expired: fall back to a complete export.
                connector
                    .export(scoped(ExportRequest::complete()))
                    .await
                    .map_err(export_err)?
            }
            Err(e) => return Err(export_err(e)),
        };
        let mut upserts = Vec::new();
        let mut deleted = Vec::new();
        let mut new_cookie = None;
        while let Some(item) = stream.next().await {
            match item.map_err(export_err)? {
                ExportItem::Resource(r) => upserts.push(r),
                ExportItem::Deleted { id, .. } => deleted.push(id),
                ExportItem::Complete { cookie } => new_cookie = Some(cookie),
                _ => {}
            }
        }
        let Some(new_cookie) = new_cookie else {
            return Err(export_err(ConnectorError::new(
                autoprov_connector::ErrorKind::Unexpected,
                autoprov_connector::Operation::Export,
                "the export ended without its cookie",
            )));
        };
        let routing = self.routing(conn);
        let n = upserts.len();
        if incremental {
            for id in &deleted {
                // Its entity type, from the synchronized copy, so a deleted lookup resource
                // (an OU) leaves the query index now rather than at the next complete run.
                let entity = self
                    .store
                    .resource(conn, id)
                    .await
                    .map_err(store_err)?
                    .and_then(|r| r.entity_type);
                self.forget(&routing, id, entity.as_ref())
                    .map_err(plan_err)?;
            }
            // A renamed or moved object comes back under a new key: forget the old one.
            for r in &upserts {
                if let Some(stable) = &r.stable_id
                    && let Some(old) = self
                        .store
                        .key_of_stable(conn, stable)
                        .await
                        .map_err(store_err)?
                    && old != r.id
                {
                    self.forget(&routing, &old, r.entity_type.as_ref())
                        .map_err(plan_err)?;
                }
            }
            self.maintain_back_links(conn, &mut upserts, &deleted)
                .await
                .map_err(store_err)?;
            for r in &upserts {
                self.feed(&routing, r).map_err(plan_err)?;
            }
            self.store
                .delete_resources(conn, &deleted)
                .await
                .map_err(store_err)?;
            self.store
                .upsert_resources(conn, upserts)
                .await
                .map_err(store_err)?;
        } else {
            // What the store holds that the complete export no longer shows is gone: found
            // page by page, so a connection of millions of objects never loads at once.
            let now_present: BTreeSet<&ResourceId> = upserts.iter().map(|r| &r.id).collect();
            let mut gone: Vec<ResourceId> = Vec::new();
            let mut after: Option<ResourceId> = None;
            loop {
                let page = self
                    .store
                    .resources_page(conn, after.as_ref(), RESOURCE_PAGE)
                    .await
                    .map_err(store_err)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for old in &page {
                    if !now_present.contains(&old.id) {
                        self.forget(&routing, &old.id, old.entity_type.as_ref())
                            .map_err(plan_err)?;
                        gone.push(old.id.clone());
                    }
                }
            }
            for r in &upserts {
                self.feed(&routing, r).map_err(plan_err)?;
            }
            self.store
                .delete_resources(conn, &gone)
                .await
                .map_err(store_err)?;
            for batch in upserts.chunks(RESOURCE_PAGE) {
                self.store
                    .upsert_resources(conn, batch.to_vec())
                    .await
                    .map_err(store_err)?;
            }
        }
        self.store
            .set_cookie(conn, new_cookie)
            .await
            .map_err(store_err)?;
        Ok(n)
    }
}
