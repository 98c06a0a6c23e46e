//! A file-based fulfil runner, like the reference system's Fulfill task: it reads an orders
//! file as the reference system writes it (`{"ProvisioningOrdersList": […]}`), fulfils each
//! order through its connection, and writes the results file.
//!
//! - The orders file is **moved aside** (renamed to `<file>.processing`) before it is read, so
//!   it is never processed twice; once the results are written it becomes `<file>.done`.
//! - Progress is reported as the reference system does: `OrdersCount:<n>`, then `Progress:<n>`
//!   every 10 %.
//! - Orders that name no connection (the reference system writes one file per connection) go
//!   to the runner's connection when it has exactly one.
//! - A failed order is Errored and the run goes on; an **unparsable file aborts the run** with a
//!   typed error before anything is sent (the file becomes `<file>.unparsable`).
//! - The results file is written **atomically** (a temporary file in the same directory, synced,
//!   then renamed): CSV in the reference system's format when its name ends in `.csv`
//!   (`AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType`), JSON
//!   (`{"ProvisioningResultsList": […]}`) otherwise.
//! - **With a durable store, an interrupted run resumes**: a `<file>.processing` left by a
//!   killed run is processed first; orders the store holds as finished are not sent again, an
//!   attempt whose outcome was never recorded is sent again (connectors are idempotent).
//!
//! ```no_run
//! # async fn run(ad: std::sync::Arc<dyn autoprov_connector::Connector>) -> Result<(), Box<dyn std::error::Error>> {
//! use autoprov_orchestrator::fulfil_file::{FileFulfilment, FulfilProgress};
//! use autoprov_orchestrator::store::MemoryStore;
//! use std::sync::Arc;
//! let runner = FileFulfilment::new([ad], Arc::new(MemoryStore::new()))
//!     .on_progress(|p: FulfilProgress| println!("{p}"));
//! let report = runner
//!     .run("orders.json".as_ref(), "results.csv".as_ref(), &Default::default())
//!     .await?;
//! println!("{} executed, {} errored", report.executed, report.errored);
//! # Ok(()) }
//! ```

use crate::clock::{Clock, SystemClock};
use crate::dispatch::{DispatchError, DispatchPolicy, Dispatcher};
use crate::events::{EventSink, JobEvent};
use crate::store::{Store, StoreError};
use autoprov_connector::Connector;
use autoprov_core::{
    OrderFileError, ProvisioningOrdersList, ProvisioningResult, ProvisioningResultsList,
    ProvisioningState, ResourceKeys,
};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Progress of a run, in the reference system's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FulfilProgress {
    /// How many orders the file holds (`OrdersCount:<n>`), reported once, first.
    OrdersCount(usize),
    /// How much of the run is done, in percent (`Progress:<n>`), every 10 %.
    Progress(u8),
}

impl fmt::Display for FulfilProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OrdersCount(n) => write!(f, "OrdersCount:{n}"),
            Self::Progress(p) => write!(f, "Progress:{p}"),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FulfilReport {
    /// Orders in the file.
    pub orders: usize,
    /// Orders Executed (this run or an earlier, interrupted one).
    pub executed: usize,
    /// Orders handed to a person (a ticket).
    pub transmitted: usize,
    /// Orders Errored.
    pub errored: usize,
    /// Orders not finished (the run was cancelled): still Pending in the store, sent by the
    /// next run of the same file.
    pub pending: usize,
    /// Whether this run resumed a file an interrupted run had moved aside.
    pub resumed: bool,
    /// Where the orders file is now.
    pub orders_file: PathBuf,
    /// The results file written.
    pub results_file: PathBuf,
}

/// Why a run stopped (order failures are results, not run failures).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FulfilError {
    /// Neither the orders file nor one moved aside by an interrupted run is there.
    #[error("no orders file at {path} (nor an interrupted run's {aside})")]
    NoOrdersFile {
        /// The orders file.
        path: PathBuf,
        /// Where an interrupted run would have left it.
        aside: PathBuf,
    },
    /// Reading, moving or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The orders file cannot be parsed: nothing was sent.
    #[error("orders file {path} is unparsable, nothing was sent (moved to {moved_to}): {source}")]
    Unparsable {
        /// The file as given.
        path: PathBuf,
        /// Where it was moved, so that it is not read again.
        moved_to: PathBuf,
        /// What is wrong, with its JSON path.
        source: OrderFileError,
    },
    /// The store failed.
    #[error("orders file {path}: store: {source}")]
    Store {
        /// The orders file.
        path: PathBuf,
        /// The cause.
        source: StoreError,
    },
    /// Dispatch refused the orders (duplicate ids, a dependency cycle) or its store failed.
    #[error("orders file {path}: {source}")]
    Dispatch {
        /// The orders file.
        path: PathBuf,
        /// The cause.
        source: DispatchError,
    },
}

type ProgressFn = Arc<dyn Fn(FulfilProgress) + Send + Sync>;

/// The runner: the connections orders are sent through, the store that remembers their
/// outcomes (a durable store makes an interrupted run resumable), the dispatch policy.
pub struct FileFulfilment {
    connectors: Vec<Arc<dyn Connector>>,
    store: Arc<dyn Store>,
    policy: DispatchPolicy,
    clock: Arc<dyn Clock>,
    keys: ResourceKeys,
    progress: Option<ProgressFn>,
    delivery: Option<Arc<dyn crate::delivery::PasswordDelivery>>,
    resource_types: Vec<autoprov_core::ResourceType>,
}

impl fmt::Debug for FileFulfilment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileFulfilment")
            .field(
                "connections",
                &self
                    .connectors
                    .iter()
                    .map(|c| c.info().connection.clone())
                    .collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl FileFulfilment {
    /// A runner over `connectors`, recording in `store`, with the default dispatch policy.
    pub fn new(
        connectors: impl IntoIterator<Item = Arc<dyn Connector>>,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            connectors: connectors.into_iter().collect(),
            store,
            policy: DispatchPolicy::default(),
            clock: Arc::new(SystemClock),
            keys: ResourceKeys::default(),
            progress: None,
            delivery: None,
            resource_types: Vec::new(),
        }
    }

    /// The dispatch policy (retries, deadlines, concurrency).
    pub fn policy(mut self, policy: DispatchPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key property of resource types whose `Resource` objects carry neither `Id`, `dn`
    /// nor `objectGUID` (see [`ResourceKeys`]).
    pub fn resource_keys(mut self, keys: ResourceKeys) -> Self {
        self.keys = keys;
        self
    }

    /// Calls `f` with the run's progress (`OrdersCount`, then `Progress` every 10 %).
    pub fn on_progress(mut self, f: impl Fn(FulfilProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Hands generated initial passwords to `delivery` (see [`crate::delivery`]).
    pub fn password_delivery(
        mut self,
        delivery: Arc<dyn crate::delivery::PasswordDelivery>,
    ) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// The resource types whose password settings (`PasswordResetSettings`) generate initial
    /// passwords at fulfilment time for the file's Added orders (an orders file names its
    /// resource types but carries none of their settings). See [`crate::delivery`].
    pub fn resource_types(
        mut self,
        resource_types: impl IntoIterator<Item = autoprov_core::ResourceType>,
    ) -> Self {
        self.resource_types = resource_types.into_iter().collect();
        self
    }

    /// Where a run moves `orders` while it processes it.
    pub fn aside_path(orders: &Path) -> PathBuf {
        with_suffix(orders, ".processing")
    }

    /// Runs one orders file: moves it aside, fulfils every order, writes `results`
    /// atomically, and marks the file done. See the [module documentation](self).
    pub async fn run(
        &self,
        orders: &Path,
        results: &Path,
        cancel: &CancellationToken,
    ) -> Result<FulfilReport, FulfilError> {
        let aside = Self::aside_path(orders);
        // An interrupted run's file first: its orders are half done.
        let resumed = aside.exists();
        if !resumed {
            match std::fs::rename(orders, &aside) {
                Ok(()) => sync_dir(&aside),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(FulfilError::NoOrdersFile {
                        path: orders.to_owned(),
                        aside,
                    });
                }
                Err(source) => {
                    return Err(FulfilError::Io {
                        action: "moving aside",
                        path: orders.to_owned(),
                        source,
                    });
                }
            }
        }
        let text = std::fs::read_to_string(&aside).map_err(|source| FulfilError::Io {
            action: "reading",
            path: aside.clone(),
            source,
        })?;
        let list = match ProvisioningOrdersList::from_json_with_keys(&text, &self.keys) {
            Ok(list) => list,
            Err(source) => {
                let moved_to = with_suffix(orders, ".unparsable");
                std::fs::rename(&aside, &moved_to).map_err(|e| FulfilError::Io {
                    action: "moving aside the unparsable",
                    path: aside.clone(),
                    source: e,
                })?;
                return Err(FulfilError::Unparsable {
                    path: orders.to_owned(),
                    moved_to,
                    source,
                });
            }
        };
        let mut orders_list = list.provisioning_orders_list;
        // The reference system writes one file per connection, without naming it in the
        // orders: with one connection configured, that is where they go.
        if let [only] = self.connectors.as_slice() {
            let id = only.info().connection.clone();
            for o in orders_list.iter_mut().filter(|o| o.connection.is_none()) {
                o.connection = Some(id.clone());
            }
        }
        let total = orders_list.len();
        let progress = Progress::new(total, self.progress.clone());
        progress.report(FulfilProgress::OrdersCount(total));

        let mut dispatcher = Dispatcher::new(
            self.connectors.iter().cloned(),
            self.policy.clone(),
            self.store.clone(),
            self.clock.clone(),
        )
        .with_events(Arc::new(ProgressEvents(progress.clone())))
        .with_resource_types(&self.resource_types);
        if let Some(d) = &self.delivery {
            dispatcher = dispatcher.with_password_delivery(d.clone());
        }
        let ids: Vec<_> = orders_list.iter().map(|o| o.order_id.clone()).collect();
        let dispatched = dispatcher
            .dispatch(orders_list, cancel)
            .await
            .map_err(|source| FulfilError::Dispatch {
                path: orders.to_owned(),
                source,
            })?;
        // Orders an interrupted run finished are not sent again, so no event counted them.
        progress.advance(dispatched.already_finished.len());

        // The results, in the file's order, from the store (the one record of each outcome).
        let mut out: Vec<ProvisioningResult> = Vec::with_capacity(total);
        let mut report = FulfilReport {
            orders: total,
            executed: 0,
            transmitted: 0,
            errored: 0,
            pending: 0,
            resumed,
            orders_file: aside.clone(),
            results_file: results.to_owned(),
        };
        for id in &ids {
            let record = self
                .store
                .order(id)
                .await
                .map_err(|source| FulfilError::Store {
                    path: orders.to_owned(),
                    source,
                })?;
            let Some(record) = record else { continue };
            match record.state {
                ProvisioningState::Executed | ProvisioningState::Verified => report.executed += 1,
                ProvisioningState::Transmitted => report.transmitted += 1,
                ProvisioningState::Errored => report.errored += 1,
                _ => {
                    report.pending += 1;
                    continue;
                }
            }
            out.push(record.result());
        }
        write_results_atomically(results, &out)?;
        progress.finish();
        if report.pending == 0 {
            let done = with_suffix(orders, ".done");
            std::fs::rename(&aside, &done).map_err(|source| FulfilError::Io {
                action: "marking done",
                path: aside.clone(),
                source,
            })?;
            sync_dir(&done);
            report.orders_file = done;
        }
        Ok(report)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Makes a rename durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// Writes the results next to their final name, syncs, and renames over it: a reader sees
/// the old file or the whole new one, never half of it.
fn write_results_atomically(
    path: &Path,
    results: &[ProvisioningResult],
) -> Result<(), FulfilError> {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let tmp = with_suffix(path, &format!(".tmp-{}", std::process::id()));
    let io = |action: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| FulfilError::Io {
            action,
            path: p,
            source,
        }
    };
    let write = || -> Result<(), FulfilError> {
        let mut file = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        if csv {
            let mut buf = Vec::new();
            autoprov_core::results_csv::write(&mut buf, results).map_err(|e| FulfilError::Io {
                action: "writing results to",
                path: tmp.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            file.write_all(&buf).map_err(io("writing", &tmp))?;
        } else {
            let list = ProvisioningResultsList {
                provisioning_results_list: results.to_vec(),
            };
            serde_json::to_writer_pretty(&mut file, &list).map_err(|e| FulfilError::Io {
                action: "writing results to",
                path: tmp.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        file.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
        sync_dir(path);
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Counts finished orders and reports every 10 % once.
#[derive(Clone)]
struct Progress {
    total: usize,
    done: Arc<AtomicUsize>,
    reported: Arc<Mutex<u8>>,
    sink: Option<ProgressFn>,
}

impl Progress {
    fn new(total: usize, sink: Option<ProgressFn>) -> Self {
        Self {
            total,
            done: Arc::new(AtomicUsize::new(0)),
            reported: Arc::new(Mutex::new(0)),
            sink,
        }
    }

    fn report(&self, p: FulfilProgress) {
        if let Some(sink) = &self.sink {
            sink(p);
        }
    }

    fn advance(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        let percent = (done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100) as u8;
        let step = percent / 10 * 10;
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        while *reported < step {
            *reported += 10;
            self.report(FulfilProgress::Progress(*reported));
        }
    }

    /// Reports 100 % if it was not reached (an empty file, orders left pending).
    fn finish(&self) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if *reported < 100 && self.done.load(Ordering::SeqCst) >= self.total {
            while *reported < 100 {
                *reported += 10;
                self.report(FulfilProgress::Progress(*reported));
            }
        }
    }
}

struct ProgressEvents(Progress);

impl EventSink for ProgressEvents {
    fn emit(&self, event: JobEvent) {
        if matches!(
            event,
            JobEvent::OrderFinished { .. } | JobEvent::OrderBlocked { .. }
        ) {
            self.0.advance(1);
        }
    }
}
