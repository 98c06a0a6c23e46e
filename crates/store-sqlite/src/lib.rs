#![doc = include_str!("../README.md")]

mod cache;
mod checkpoint;
mod codec;
mod error;
mod options;
mod orders;
#[cfg(test)]
mod plans;
mod records;
mod schema;
mod stats;
mod writer;

pub use autoprov_store::seal::STATES_KEEPING_SECRETS;
pub use autoprov_store::seal::SealingKey;
pub use error::{OpenError, SourceError};
pub use options::SqliteOptions;
pub use stats::SqliteStats;

use crate::cache::OrderCache;
use crate::writer::{Job, WriteJob};
use async_trait::async_trait;
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, FoundDecision, OrderId,
    OwnedValues, OwnerId, ProvisioningResult, ProvisioningState, RequestId, Resource, ResourceId,
    StableId,
};
use autoprov_store::seal::Sealer;
use autoprov_store::{
    Assignment, Assignments, AuditAction, AuditEntry, Erasure, HistoryEntry, JobRun, OrderRecord,
    OrderUpdate, ReviewDecision, Store, StoreError,
};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// Read connections kept open for reuse (more are opened while more reads run at once).
const IDLE_READERS: usize = 8;

/// The writer thread is gone (the store is closing, or it died).
#[derive(Debug, thiserror::Error)]
#[error("the store's writer thread has stopped")]
struct WriterStopped;

/// A [`Store`] on one SQLite file: the embedded default for durable runs of one process.
///
/// See the crate documentation for its files, pragmas, migrations, group commit, sealing of
/// secrets and what is erased when.
pub struct SqliteStore {
    path: PathBuf,
    queue: Option<Sender<Box<dyn WriteJob>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<(Sender<()>, std::thread::JoinHandle<()>)>,
    readers: Arc<Mutex<Vec<Connection>>>,
    sealer: Arc<Sealer>,
    stats: Arc<Mutex<stats::Stats>>,
    // Last: released once the connections above are closed.
    _lock: std::fs::File,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store in the file `path`, with its sidecar files `-wal`, `-shm`
    /// and `.lock`: takes the lock (one process per file), checks the file, applies the
    /// schema migrations it lacks and starts the writer thread.
    ///
    /// Every refusal is a typed [`OpenError`]: another process holds the file, the file is
    /// not SQLite, damaged, or written by a newer version.
    ///
    /// It blocks (file I/O, the check, migrations): call it before serving, or inside
    /// `tokio::task::spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_owned();
        let sealer = Sealer::new(options.keys, options.current.as_deref()).ok_or_else(|| {
            OpenError::UnknownCurrentKey {
                key_id: options.current.clone().unwrap_or_default(),
            }
        })?;
        let lock = schema::lock(&path)?;
        schema::check_header(&path)?;
        let conn = schema::open_writer(&path, options.check_on_open)?;
        let reader = schema::open_reader(&path)
            .map_err(|e| schema::open_error(&path, "opening a reader", e))?;
        let checkpoints = schema::open_checkpointer(&path)
            .map_err(|e| schema::open_error(&path, "opening the checkpointer", e))?;
        let sealer = Arc::new(sealer);
        let stats = Arc::new(Mutex::new(stats::Stats::default()));
        let (queue, jobs) = std::sync::mpsc::channel();
        let writer = {
            let (sealer, stats) = (sealer.clone(), stats.clone());
            std::thread::Builder::new()
                .name("autoprov-sqlite-writer".into())
                .spawn(move || writer::run(conn, sealer, jobs, stats))
                .map_err(|e| OpenError::Io {
                    path: path.clone(),
                    operation: "starting the writer thread",
                    source: Arc::new(e),
                })?
        };
        let (stop, stopped) = std::sync::mpsc::channel();
        let checkpointer = std::thread::Builder::new()
            .name("autoprov-sqlite-checkpoint".into())
            .spawn(move || checkpoint::run(checkpoints, stopped))
            .map_err(|e| OpenError::Io {
                path: path.clone(),
                operation: "starting the checkpointer thread",
                source: Arc::new(e),
            })?;
        Ok(Self {
            path,
            queue: Some(queue),
            writer: Some(writer),
            checkpointer: Some((stop, checkpointer)),
            readers: Arc::new(Mutex::new(vec![reader])),
            sealer,
            stats,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this version of the crate writes (`PRAGMA user_version`).
    pub fn schema_version() -> u32 {
        schema::SCHEMA_VERSION
    }

    /// Commit counts and timings of the writer thread.
    pub fn stats(&self) -> SqliteStats {
        self.stats.lock().map(|s| s.snapshot()).unwrap_or_default()
    }

    /// Runs `PRAGMA integrity_check` and returns its findings (empty: the file is sound).
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        self.read("checking integrity", |conn, _| {
            let mut stmt = conn
                .prepare("PRAGMA integrity_check")
                .map_err(|e| StoreError::backend("checking integrity", e))?;
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| StoreError::backend("checking integrity", e))?;
            Ok(rows.into_iter().filter(|r| r != "ok").collect())
        })
        .await
    }

    /// Queues a write for the writer thread and waits for its commit.
    async fn write<T, F>(&self, operation: &'static str, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Sealer, &mut OrderCache) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Job {
            operation,
            write: Some(write),
            result: None,
            reply,
            queued_at: Instant::now(),
        });
        self.queue
            .as_ref()
            .ok_or_else(|| StoreError::backend(operation, WriterStopped))?
            .send(job)
            .map_err(|_| StoreError::backend(operation, WriterStopped))?;
        answer
            .await
            .map_err(|_| StoreError::backend(operation, WriterStopped))?
    }

    /// Runs a read on a read connection, off the async threads.
    async fn read<T, F>(&self, operation: &'static str, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Sealer) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let sealer = self.sealer.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match idle {
                Some(c) => c,
                None => {
                    schema::open_reader(&path).map_err(|e| StoreError::backend(operation, e))?
                }
            };
            let result = read(&conn, &sealer);
            if let Ok(mut r) = readers.lock()
                && r.len() < IDLE_READERS
            {
                r.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::backend(operation, e))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        // Closing the queue ends the writer thread once the queued writes are committed.
        self.queue.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Ok(mut r) = self.readers.lock() {
            r.clear();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError> {
        let records = records.to_vec();
        self.write("inserting orders", move |c, s, cache| {
            orders::insert_orders(c, s, cache, &records)
        })
        .await
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let id = order_id.clone();
        self.read("reading an order", move |c, s| orders::order(c, s, &id))
            .await
    }

    async fn update_order(
        &self,
        order_id: &OrderId,
        expected_version: u64,
        update: OrderUpdate,
    ) -> Result<OrderRecord, StoreError> {
        let id = order_id.clone();
        self.write("updating an order", move |c, s, cache| {
            orders::apply(c, s, cache, &id, expected_version, &update)
        })
        .await
    }

    async fn decide_review(
        &self,
        expected_version: u64,
        decision: ReviewDecision,
    ) -> Result<OrderRecord, StoreError> {
        self.write("recording a review decision", move |c, s, cache| {
            orders::decide_review(c, s, cache, expected_version, &decision)
        })
        .await
    }

    async fn put_found_decisions(&self, decisions: &[FoundDecision]) -> Result<(), StoreError> {
        let decisions = decisions.to_vec();
        self.write("recording decisions on found values", move |c, _, _| {
            records::put_found_decisions(c, &decisions)
        })
        .await
    }

    async fn put_owned_values(&self, values: &[OwnedValues]) -> Result<(), StoreError> {
        let values = values.to_vec();
        self.write(
            "recording the values autoprov holds as its own",
            move |c, _, _| records::put_owned_values(c, &values),
        )
        .await
    }

    async fn owned_values_page(
        &self,
        after: Option<&OwnerId>,
        limit: usize,
    ) -> Result<Vec<OwnedValues>, StoreError> {
        let after = after.map(|a| a.as_str().to_owned());
        self.read(
            "reading the values autoprov holds as its own",
            move |c, _| records::owned_values_page(c, after.as_deref(), limit),
        )
        .await
    }

    async fn found_decisions_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FoundDecision>, StoreError> {
        let after = after.map(str::to_owned);
        self.read("reading decisions on found values", move |c, _| {
            records::found_decisions_page(c, after.as_deref(), limit)
        })
        .await
    }

    async fn review_decision(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<ReviewDecision>, StoreError> {
        let id = order_id.clone();
        self.read("reading a review decision", move |c, _| {
            orders::review_decision(c, &id)
        })
        .await
    }

    async fn review_decisions_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<ReviewDecision>, StoreError> {
        let after = after.cloned();
        self.read("reading review decisions", move |c, _| {
            orders::review_decisions_page(c, after.as_ref(), limit)
        })
        .await
    }

    async fn order_history(&self, order_id: &OrderId) -> Result<Vec<HistoryEntry>, StoreError> {
        let id = order_id.clone();
        self.read("reading history", move |c, _| orders::order_history(c, &id))
            .await
    }

    async fn orders_in(
        &self,
        states: &[ProvisioningState],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let states = states.to_vec();
        self.read("reading orders by state", move |c, s| {
            orders::orders_in(c, s, &states)
        })
        .await
    }

    async fn orders_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let after = after.cloned();
        self.read("reading orders", move |c, s| {
            orders::orders_page(c, s, after.as_ref(), limit)
        })
        .await
    }

    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
        self.read("counting orders", |c, _| orders::order_counts(c))
            .await
    }

    async fn results_page(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<Vec<ProvisioningResult>, StoreError> {
        let after = after.cloned();
        self.read("reading results", move |c, _| {
            orders::results_page(c, after.as_ref(), limit)
        })
        .await
    }

    async fn upsert_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secrets_in_resources(connection, &resources)?;
        let connection = connection.clone();
        self.write("upserting resources", move |c, _, _| {
            records::upsert_resources(c, &connection, &resources)
        })
        .await
    }

    async fn delete_resources(
        &self,
        connection: &ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>, StoreError> {
        let (connection, ids) = (connection.clone(), ids.to_vec());
        self.write("deleting resources", move |c, _, _| {
            records::delete_resources(c, &connection, &ids)
        })
        .await
    }

    async fn resource(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError> {
        let (connection, id) = (connection.clone(), id.clone());
        self.read("reading a resource", move |c, _| {
            records::resource(c, &connection, &id)
        })
        .await
    }

    async fn key_of_stable(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError> {
        let (connection, stable) = (connection.clone(), stable.clone());
        self.read("reading a resource key", move |c, _| {
            records::key_of_stable(c, &connection, &stable)
        })
        .await
    }

    async fn resources_page(
        &self,
        connection: &ConnectionId,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        let (connection, after) = (connection.clone(), after.cloned());
        self.read("reading resources", move |c, _| {
            records::resources_page(c, &connection, after.as_ref(), limit)
        })
        .await
    }

    async fn cookie(&self, connection: &ConnectionId) -> Result<Option<ExportCookie>, StoreError> {
        let connection = connection.clone();
        self.read("reading a cookie", move |c, _| {
            records::cookie(c, &connection)
        })
        .await
    }

    async fn set_cookie(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError> {
        let connection = connection.clone();
        self.write("storing a cookie", move |c, _, _| {
            records::set_cookie(c, &connection, &cookie)
        })
        .await
    }

    async fn put_assignments(&self, assignments: Assignments) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secrets_in_assignments(&assignments)?;
        self.write("storing assignments", move |c, _, _| {
            records::put_assignments(c, assignments)
        })
        .await
    }

    async fn assignment(&self, id: &AssignmentId) -> Result<Option<Assignment>, StoreError> {
        let id = id.clone();
        self.read("reading an assignment", move |c, _| {
            records::assignment(c, &id)
        })
        .await
    }

    async fn assignments_page(
        &self,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        let after = after.cloned();
        self.read("reading assignments", move |c, _| {
            records::assignments_page(c, after.as_ref(), limit)
        })
        .await
    }

    async fn put_request(&self, request: AssignmentRequest) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secret_in_request(&request)?;
        self.write("storing a request", move |c, _, _| {
            records::put_request(c, &request)
        })
        .await
    }

    async fn request(&self, id: &RequestId) -> Result<Option<AssignmentRequest>, StoreError> {
        let id = id.clone();
        self.read("reading a request", move |c, _| records::request(c, &id))
            .await
    }

    async fn requests_page(
        &self,
        after: Option<&RequestId>,
        limit: usize,
    ) -> Result<Vec<AssignmentRequest>, StoreError> {
        let after = after.cloned();
        self.read("reading requests", move |c, _| {
            records::requests_page(c, after.as_ref(), limit)
        })
        .await
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        self.write("appending to the audit trail", move |c, _, _| {
            records::append_audit(c, &entry)
        })
        .await
    }

    async fn audit_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.read("reading the audit trail", move |c, _| {
            records::audit_page(c, after, limit)
        })
        .await
    }

    async fn purge_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.write("purging orders", move |c, _, cache| {
            cache.clear();
            orders::purge_finished(c, &before, limit)
        })
        .await
    }

    async fn erase_owner(
        &self,
        owner: &OwnerId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError> {
        let (owner, actor) = (owner.clone(), actor.to_owned());
        self.write("erasing an owner", move |c, _, cache| {
            cache.clear();
            let mut erasure = Erasure::default();
            erasure.orders = orders::erase_owner_orders(c, &owner)?;
            let (assignments, requests, audit) = records::erase_owner_records(c, &owner)?;
            erasure.assignments = assignments;
            erasure.requests = requests;
            erasure.audit_entries = audit;
            records::append_audit(
                c,
                &AuditEntry::new(at, actor, AuditAction::Erased, owner.as_str()),
            )?;
            Ok(erasure)
        })
        .await
    }

    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError> {
        self.write("storing a job run", move |c, _, _| {
            records::put_job_run(c, &run)
        })
        .await
    }

    async fn job_run(&self, id: &str) -> Result<Option<JobRun>, StoreError> {
        let id = id.to_owned();
        self.read("reading a job run", move |c, _| records::job_run(c, &id))
            .await
    }

    async fn job_runs_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRun>, StoreError> {
        let after = after.map(str::to_owned);
        self.read("reading job runs", move |c, _| {
            records::job_runs_page(c, after.as_deref(), limit)
        })
        .await
    }
}
