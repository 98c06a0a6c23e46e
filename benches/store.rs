//! Dispatch on the durable SQLite store against the in-memory store, in one run.
//!
//! 100,000 orders to a connector that does nothing, through the `Dispatcher` (concurrency 64;
//! two conditional writes per order: the attempt before the call, the outcome after), once on
//! a fresh `SqliteStore` (WAL, synchronous=FULL, group commit) and once on `MemoryStore`.
//! Prints orders/s for each, their ratio, and the commit times the SQLite writer thread
//! measured (`SqliteStore::stats`). Targets: ≥ 20,000 orders/s on SQLite, p99 commit ≤ 20 ms.
//!
//! Run: `cargo bench --bench store` (`AUTOPROV_BENCH_ORDERS=10000` for a quick check).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use async_trait::async_trait;
use autoprov::connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, Executed, ExportRequest, ExportStream,
    Fulfillment, Operation,
};
use autoprov::core::{
    ChangeType, Changes, Owner, ProvisioningOrder, Resource, ResourceType, ResourceTypeRef,
};
use autoprov::orchestrator::clock::SystemClock;
use autoprov::orchestrator::dispatch::{DispatchPolicy, Dispatcher};
use autoprov::orchestrator::store::{MemoryStore, Store};
use autoprov_store_sqlite::{SqliteOptions, SqliteStats, SqliteStore};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Noop {
    info: ConnectorInfo,
}

#[async_trait]
impl Connector for Noop {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        Ok(Fulfillment::Executed(Executed::new(
            o.resource
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_else(|| "x".into()),
        )))
    }
    async fn export(&self, _r: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(
            Operation::Export,
            "bench connector",
        ))
    }
}

fn orders(n: usize) -> Vec<ProvisioningOrder> {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    (0..n)
        .map(|i| {
            let mut changes = Changes::default();
            changes.set("department", "Sales").set("title", "Engineer");
            ProvisioningOrder {
                order_id: format!("o{i:07}").into(),
                assigned_resource_type_id: Some(format!("u{i}/rt").as_str().into()),
                change_type: ChangeType::Modified,
                workflow_instance_id: None,
                owner: Some(Owner::new(format!("u{i}"), format!("user{i}"))),
                resource_type: ResourceTypeRef::of(&rt),
                connection: Some("conn".into()),
                changes,
                resource: Some(Resource::new(format!(
                    "CN=user{i},OU=Staff,DC=example,DC=test"
                ))),
                depends_on: vec![],
                not_before: None,
            }
        })
        .collect()
}

/// In-flight orders (`AUTOPROV_BENCH_CONCURRENCY`, default 64 as in benches/dispatch.rs).
fn concurrency() -> usize {
    std::env::var("AUTOPROV_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn dispatcher(store: Arc<dyn Store>) -> Dispatcher {
    let noop = Arc::new(Noop {
        info: ConnectorInfo::new("bench.noop", "conn", Capabilities::full()),
    });
    Dispatcher::new(
        [noop as Arc<dyn Connector>],
        DispatchPolicy {
            concurrency_per_connection: concurrency(),
            ..DispatchPolicy::default()
        },
        store,
        Arc::new(SystemClock),
    )
}

/// Dispatches `n` orders on `store`; how long it took.
fn dispatch(rt: &tokio::runtime::Runtime, store: Arc<dyn Store>, n: usize) -> Duration {
    let d = dispatcher(store);
    let os = orders(n);
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
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut group = c.benchmark_group("store_dispatch_noop");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("sqlite", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(
                    SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::new()).unwrap(),
                );
                let took = dispatch(&rt, store.clone(), n);
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
                let took = dispatch(&rt, Arc::new(MemoryStore::new()), n);
                seen.lock().unwrap().memory.push(took);
                total += took;
            }
            total
        })
    });
    group.finish();

    let s = seen.lock().unwrap();
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    let (sqlite, memory) = (
        per_s(median(s.sqlite.clone())),
        per_s(median(s.memory.clone())),
    );
    let p99s: Vec<Duration> = s.stats.iter().map(|st| st.commit_p99).collect();
    let worst = s
        .stats
        .iter()
        .map(|st| st.commit_p99)
        .max()
        .unwrap_or_default();
    let last = s.stats.last().copied().unwrap_or_default();
    println!(
        "\nstore dispatch of {n} orders (median of {} / {} runs):\n  \
         sqlite: {sqlite:.0} orders/s (target >= 20000)\n  \
         memory: {memory:.0} orders/s\n  \
         ratio sqlite/memory: {:.2}\n  \
         sqlite commit p99: median {:.2} ms, worst {:.2} ms (target <= 20 ms); \
         last run: {} writes in {} commits, largest batch {}, commit p50 {:.2} ms, \
         write queued-to-committed p99 {:.2} ms; writer busy {:.0} ms (COMMIT {:.0} ms), idle {:.0} ms",
        s.sqlite.len(),
        s.memory.len(),
        sqlite / memory,
        median(p99s).as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        last.writes,
        last.commits,
        last.largest_batch,
        last.commit_p50.as_secs_f64() * 1e3,
        last.write_p99.as_secs_f64() * 1e3,
        last.busy.as_secs_f64() * 1e3,
        last.syncing.as_secs_f64() * 1e3,
        last.idle.as_secs_f64() * 1e3,
    );
}

criterion_group!(benches, store_dispatch);
criterion_main!(benches);
