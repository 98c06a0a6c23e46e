//! Commit timings of the writer thread.

use std::time::Duration;

/// How many recent samples the percentiles are computed over.
const WINDOW: usize = 1 << 16;

/// A ring of the last [`WINDOW`] samples.
#[derive(Debug, Default)]
struct Ring {
    samples: Vec<Duration>,
    next: usize,
}

impl Ring {
    fn push(&mut self, d: Duration) {
        if self.samples.len() < WINDOW {
            self.samples.push(d);
        } else {
            self.samples[self.next] = d;
            self.next = (self.next + 1) % WINDOW;
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    commits: u64,
    writes: u64,
    largest_batch: usize,
    commit: Ring,
    write: Ring,
    idle: Duration,
    sync: Duration,
    busy: Duration,
}

impl Stats {
    pub fn record_commit(&mut self, took: Duration, writes: usize) {
        self.commits += 1;
        self.writes += writes as u64;
        self.largest_batch = self.largest_batch.max(writes);
        self.commit.push(took);
        self.busy += took;
    }

    pub fn record_split(&mut self, idle: Duration, sync: Duration) {
        self.idle += idle;
        self.sync += sync;
    }

    pub fn record_write(&mut self, took: Duration) {
        self.write.push(took);
    }

    pub fn snapshot(&self) -> SqliteStats {
        SqliteStats {
            commits: self.commits,
            writes: self.writes,
            largest_batch: self.largest_batch,
            commit_p50: self.commit.percentile(0.50),
            commit_p99: self.commit.percentile(0.99),
            write_p50: self.write.percentile(0.50),
            write_p99: self.write.percentile(0.99),
            idle: self.idle,
            busy: self.busy,
            syncing: self.sync,
        }
    }
}

/// What the writer thread did since the store was opened (percentiles over the last 65,536
/// commits and writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Writes committed (a transaction holds every write queued while the previous one
    /// committed).
    pub writes: u64,
    /// The most writes one transaction held.
    pub largest_batch: usize,
    /// Median time of one commit: from `BEGIN` to the end of `COMMIT`, fsync included.
    pub commit_p50: Duration,
    /// 99th percentile of the time of one commit.
    pub commit_p99: Duration,
    /// Median time a write waited from being queued to its commit.
    pub write_p50: Duration,
    /// 99th percentile of the time from queued to committed.
    pub write_p99: Duration,
    /// Time the writer thread waited for writes.
    pub idle: Duration,
    /// Time the writer thread spent in transactions (writes and commits).
    pub busy: Duration,
    /// Of `busy`, the time spent in `COMMIT` (writing the WAL and fsync).
    pub syncing: Duration,
}
