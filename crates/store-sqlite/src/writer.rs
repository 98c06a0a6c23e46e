//! The writer thread and its group commit: one thread owns the write connection, drains
//! every write queued meanwhile and commits them in one transaction (one fsync), each in its
//! own savepoint so that a write that fails undoes only itself; then it answers each caller.
//! An answer is sent only after the commit, so a write reported as recorded is on disk.

use crate::seal::Sealer;
use crate::stats::Stats;
use autoprov_store::StoreError;
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
    fn run(&mut self, conn: &Connection, sealer: &Sealer) -> bool;
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
    F: FnOnce(&Connection, &Sealer) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, sealer: &Sealer) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| write(conn, sealer)))
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

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.execute_batch(sql)
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
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let started = Instant::now();
        let commit = commit_batch(&conn, &sealer, &mut batch);
        let done = Instant::now();
        if let Ok(mut s) = stats.lock() {
            s.record_commit(done - started, batch.len());
            for job in &batch {
                s.record_write(done - job.queued_at());
            }
        }
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
    }
    // Every store handle is gone: fold the WAL into the file before closing.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    drop(conn);
}

fn commit_batch(
    conn: &Connection,
    sealer: &Sealer,
    batch: &mut [Box<dyn WriteJob>],
) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let step = exec(conn, "SAVEPOINT w").and_then(|()| {
            if job.run(conn, sealer) {
                exec(conn, "RELEASE w")
            } else {
                exec(conn, "ROLLBACK TO w; RELEASE w")
            }
        });
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    match conn.execute_batch("COMMIT") {
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
    }
}
