//! The writer thread and its group commit: one thread owns the write connection, drains
//! every write queued meanwhile and commits them in one transaction (one fsync), each in its
//! own savepoint so that a write that fails undoes only itself; then it answers each caller.
//! An answer is sent only after the commit, so a write reported as recorded is on disk.

use crate::cache::OrderCache;
use crate::stats::Stats;
use autoprov_store::StoreError;
use autoprov_store::seal::Sealer;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// At most this many writes share one transaction: a bound on the time a batch holds the
/// write lock and on the memory of pending answers.
const MAX_BATCH: usize = 2048;

/// What the writer thread runs for one write.
pub(crate) trait WriteJob: Send {
    /// Runs the write (inside its savepoint); whether it succeeded.
    fn run(&mut self, conn: &Connection, sealer: &Sealer, cache: &mut OrderCache) -> bool;
    /// Answers the caller once the batch is committed (or failed to commit).
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
    /// When the caller queued it.
    fn queued_at(&self) -> Instant;
}

/// A write and the channel of its answer.
pub(crate) struct Job<T, F> {
    pub operation: &'static str,
    pub write: Option<F>,
    pub result: Option<Result<T, StoreError>>,
    pub reply: oneshot::Sender<Result<T, StoreError>>,
    pub queued_at: Instant,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &Sealer, &mut OrderCache) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, sealer: &Sealer, cache: &mut OrderCache) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| write(conn, sealer, cache)))
            .unwrap_or_else(|_| Err(StoreError::backend(self.operation, Panicked)));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match commit {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::backend(self.operation, Panicked))),
            Err(e) => Err(e),
        };
        // The caller may have gone (its future dropped): the write stands all the same.
        let _ = self.reply.send(answer);
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }
}

/// A write panicked inside the store (a bug); the batch went on without it.
#[derive(Debug, thiserror::Error)]
#[error("the write panicked inside the store")]
pub(crate) struct Panicked;

/// The commit of a batch failed; every write of the batch was rolled back.
#[derive(Debug, thiserror::Error)]
#[error("the commit of a batch of {writes} writes failed: {cause}")]
pub(crate) struct CommitFailed {
    writes: usize,
    cause: String,
}

/// Runs one of the writer's own statements (prepared once, kept in the statement cache).
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(|e| StoreError::backend("committing", e))
}

/// The writer thread's loop: until every sender is gone.
pub(crate) fn run(
    conn: Connection,
    sealer: Arc<Sealer>,
    queue: Receiver<Box<dyn WriteJob>>,
    stats: Arc<Mutex<Stats>>,
) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    let mut cache = OrderCache::default();
    let mut idle_since = Instant::now();
    while let Ok(first) = queue.recv() {
        let idle = idle_since.elapsed();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let started = Instant::now();
        let (commit, sync) = commit_batch(&conn, &sealer, &mut cache, &mut batch);
        if commit.is_err() {
            // Entries put by writes now rolled back may be wrong.
            cache.clear();
        }
        let done = Instant::now();
        if let Ok(mut s) = stats.lock() {
            s.record_commit(done - started, batch.len());
            s.record_split(idle, sync);
            for job in &batch {
                s.record_write(done - job.queued_at());
            }
        }
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
        idle_since = Instant::now();
    }
    // Every store handle is gone: fold the WAL into the file before closing.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    drop(conn);
}

fn commit_batch(
    conn: &Connection,
    sealer: &Sealer,
    cache: &mut OrderCache,
    batch: &mut [Box<dyn WriteJob>],
) -> (Result<(), StoreError>, std::time::Duration) {
    let zero = std::time::Duration::ZERO;
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        return (Err(e), zero);
    }
    for job in batch.iter_mut() {
        let step = exec(conn, "SAVEPOINT w").and_then(|()| {
            if job.run(conn, sealer, cache) {
                cache.keep();
                exec(conn, "RELEASE w")
            } else {
                cache.discard();
                exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"))
            }
        });
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return (Err(e), zero);
        }
    }
    let syncing = Instant::now();
    let committed = conn.execute_batch("COMMIT");
    let sync = syncing.elapsed();
    let result = match committed {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::backend(
                "committing",
                CommitFailed {
                    writes: batch.len(),
                    cause: e.to_string(),
                },
            ))
        }
    };
    (result, sync)
}
