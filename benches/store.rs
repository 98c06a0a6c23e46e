//! Dispatch on the durable SQLite store against the in-memory store, in one run.
//!
//! 100,000 orders to a connector that does nothing, through the `Dispatcher` (two conditional
//! writes per order: the attempt before the call, the outcome after), on a fresh
//! `SqliteStore` (WAL, synchronous=FULL, group commit) and on `MemoryStore`, at concurrency 64
//! (as benches/dispatch.rs) and 256.
//! Prints orders/s for each, their ratio, and the commit times the SQLite writer thread
//! measured (`SqliteStore::stats`). Targets: ≥ 20,000 orders/s on SQLite, p99 commit ≤ 20 ms.
//!
//! Run: `cargo bench --bench store` (`AUTOPROV_BENCH_ORDERS=10000` for a quick check).

#![allow(missing_docs)] // criterion_group! generates undocumented items

mod support;

use autoprov::connector::Connector;
use autoprov::orchestrator::clock::SystemClock;
use autoprov::orchestrator::dispatch::{DispatchPolicy, Dispatcher};
use autoprov::orchestrator::store::{MemoryStore, Store};
use autoprov_store_sqlite::{SqliteOptions, SqliteStats, SqliteStore};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{orders, sleeper};
use tokio_util::sync::CancellationToken;

fn dispatcher(store: Arc<dyn Store>, concurrency: usize) -> Dispatcher {
    Dispatcher::new(
        [sleeper(Duration::ZERO) as Arc<dyn Connector>],
        DispatchPolicy {
            concurrency_per_connection: concurrency,
            ..DispatchPolicy::default()
        },
        store,
        Arc::new(SystemClock),
    )
}

/// Dispatches `n` orders on `store`; how long it took.
fn dispatch(
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    n: usize,
    concurrency: usize,
) -> Duration {
    let d = dispatcher(store, concurrency);
    let os = orders(n, "");
    let started = Instant::now();
    rt.block_on(async {
        let report = d.dispatch(os, &CancellationToken::new()).await.unwrap();
        assert_eq!(report.executed.len(), n);
    });
    started.elapsed()
}

#[derive(Default)]
struct Seen {
    sqlite: Vec<Duration>,
    memory: Vec<Duration>,
    stats: Vec<SqliteStats>,
}

fn median(mut ds: Vec<Duration>) -> Duration {
    ds.sort();
    ds.get(ds.len() / 2).copied().unwrap_or_default()
}

fn store_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::var("AUTOPROV_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut summary = Vec::new();
    // 64 in flight as in benches/dispatch.rs; 256 shows what group commit does with more
    // writers (each commit serves more writes).
    for concurrency in [64, 256] {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut group = c.benchmark_group(format!("store_dispatch_noop_c{concurrency}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("sqlite", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let options = SqliteOptions::new();
                    let store =
                        Arc::new(SqliteStore::open(dir.path().join("bench.db"), options).unwrap());
                    let took = dispatch(&rt, store.clone(), n, concurrency);
                    let mut s = seen.lock().unwrap();
                    s.sqlite.push(took);
                    s.stats.push(store.stats());
                    total += took;
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("memory", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let took = dispatch(&rt, Arc::new(MemoryStore::new()), n, concurrency);
                    seen.lock().unwrap().memory.push(took);
                    total += took;
                }
                total
            })
        });
        group.finish();
        summary.push(report(n, concurrency, &seen.lock().unwrap()));
    }
    println!("\n{}", summary.join("\n"));
}

fn report(n: usize, concurrency: usize, s: &Seen) -> String {
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (sqlite, memory) = (
        per_s(median(s.sqlite.clone())),
        per_s(median(s.memory.clone())),
    );
    let p99s: Vec<Duration> = s.stats.iter().map(|st| st.commit_p99).collect();
    let worst = p99s.iter().max().copied().unwrap_or_default();
    let last = s.stats.last().copied().unwrap_or_default();
    format!(
        "store dispatch of {n} orders, concurrency {concurrency} (median of {} / {} runs):\n  \
         sqlite: {sqlite:.0} orders/s (target >= 20000)\n  \
         memory: {memory:.0} orders/s\n  \
         ratio sqlite/memory: {:.3}\n  \
         sqlite commit p99: median {:.2} ms, worst {:.2} ms (target <= 20 ms)\n  \
         last run: {} writes in {} commits (largest {}), commit p50 {:.2} ms, \
         write queued-to-committed p50 {:.2} ms p99 {:.2} ms; \
         writer busy {:.0} ms (COMMIT {:.0} ms), idle {:.0} ms",
        s.sqlite.len(),
        s.memory.len(),
        sqlite / memory,
        ms(median(p99s)),
        ms(worst),
        last.writes,
        last.commits,
        last.largest_batch,
        ms(last.commit_p50),
        ms(last.write_p50),
        ms(last.write_p99),
        ms(last.busy),
        ms(last.syncing),
        ms(last.idle),
    )
}

criterion_group!(benches, store_dispatch);
criterion_main!(benches);
