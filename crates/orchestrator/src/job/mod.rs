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
use crate::events::{EventSink, NoEvents};
use crate::plan::{Planner, ThresholdBreach};
use crate::store::{JobKind, JobRun, JobStatus, Store, StoreError};
use crate::verify::VerificationReport;
use crate::{EvaluationError, PlanError};
use autoprov_connector::{Connector, ConnectorError, Preview};
use autoprov_core::{ConnectionId, OrderId, ProvisioningOrder, Resource, ResourceTypeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Decides whether an exported resource is a target of a resource type (e.g. admin accounts
/// live in `OU=Admins`).
pub type TargetFilter = Arc<dyn Fn(&Resource) -> bool + Send + Sync>;

/// Options of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Everything up to the orders; nothing written to any managed system, no order stored.
    pub simulation: bool,
    /// Operators' forces past threshold breaches, each naming a resource type and the most
    /// orders it lets through. The generation goes out only when every breach is covered;
    /// each force used is recorded in the audit trail with who forced it.
    pub forces: Vec<crate::plan::ThresholdForce>,
}

impl JobOptions {
    /// A simulation.
    pub fn simulation() -> Self {
        Self {
            simulation: true,
            forces: Vec::new(),
        }
    }

    /// With one more force past a resource type's thresholds.
    pub fn force(mut self, force: crate::plan::ThresholdForce) -> Self {
        self.forces.push(force);
        self
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
    /// Values found in the managed systems that nothing explains (SPEC §10): what waits for
    /// review, what is adopted, what this run removes (also in a simulation).
    pub non_conforming: Vec<crate::plan::NonConforming>,
    /// Roles deduced from unexplained memberships, proposed for a person to give.
    pub deduced_roles: Vec<crate::plan::DeducedRole>,
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
    default_validity: Option<Duration>,
    reopen_after_outage: bool,
    delivery: Option<Arc<dyn crate::delivery::PasswordDelivery>>,
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

    /// The validity period used for resource types the planner does not know. Default: none
    /// (never times out, as a resource type without `TransmittedStateValidityPeriod`).
    pub fn default_validity(mut self, period: Duration) -> Self {
        self.default_validity = Some(period);
        self
    }

    /// Whether a job reopens the orders whose retries ran out while their connection was
    /// down or overloaded, once the connection checks healthy again (their attempt history is
    /// kept). Default: on.
    pub fn reopen_after_outage(mut self, reopen: bool) -> Self {
        self.reopen_after_outage = reopen;
        self
    }

    /// Where generated initial passwords go (see [`crate::delivery`]). Without one, a
    /// password a connector generates is set and dropped (with a warning).
    pub fn password_delivery(
        mut self,
        delivery: Arc<dyn crate::delivery::PasswordDelivery>,
    ) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// Builds the job after checking the dispatch policy ([`DispatchPolicy::validate`]): a
    /// policy out of range (no concurrency, a zero call deadline, a NaN or negative backoff
    /// multiplier, a jitter outside `[0, 1]`, ...) is refused, naming the setting, before the
    /// job can write anything. Prefer it to [`Self::build`] whenever the policy comes from
    /// configuration.
    ///
    /// [`DispatchPolicy::validate`]: crate::dispatch::DispatchPolicy::validate
    pub fn try_build(self) -> Result<ProvisioningJob, crate::dispatch::PolicyError> {
        self.policy.validate()?;
        Ok(self.build())
    }

    /// Builds the job without checking the dispatch policy (see [`Self::try_build`]); an
    /// out-of-range policy never makes dispatch panic (its waits saturate) but does not
    /// behave as meant.
    pub fn build(self) -> ProvisioningJob {
        let mut dispatcher = Dispatcher::new(
            self.connectors.iter().cloned(),
            self.policy,
            self.store.clone(),
            self.clock.clone(),
        )
        .with_events(self.events.clone())
        .with_resource_types(self.planner.resource_types());
        if let Some(delivery) = self.delivery {
            dispatcher = dispatcher.with_password_delivery(delivery);
        }
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
            reopen_after_outage: self.reopen_after_outage,
            runs: 0,
            found_loaded: false,
            requests_loaded: false,
            owned_loaded: false,
            owned_pending: BTreeMap::new(),
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
    default_validity: Option<Duration>,
    reopen_after_outage: bool,
    runs: u64,
    /// Whether the decisions on found values stored by earlier processes were given to the
    /// planner.
    found_loaded: bool,
    requests_loaded: bool,
    /// Whether the values autoprov holds as its own were read back from the store.
    owned_loaded: bool,
    /// Stored owned values of owners the planner does not hold yet: restored when they come.
    owned_pending: BTreeMap<autoprov_core::OwnerId, autoprov_core::OwnedValues>,
}

impl std::fmt::Debug for ProvisioningJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningJob")
            .field("connections", &self.connectors.keys().collect::<Vec<_>>())
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

mod found;
pub use found::FoundDecisionError;
mod owned;
mod requests;
mod state;
mod steps;
mod sync;

pub use requests::RequestOpError;

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
            default_validity: None,
            reopen_after_outage: true,
            delivery: None,
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
    pub(super) fn previews(&self, orders: &[ProvisioningOrder]) -> BTreeMap<ConnectionId, Preview> {
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
}
