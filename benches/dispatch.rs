//! Dispatch overhead, each figure against its baseline measured in the same run.
//!
//! (a) 100,000 orders to a connector that does nothing: the orchestrator's own cost per order
//!     (store, state machine, results, scheduling). Baseline: the same calls made directly in a
//!     loop. Target: ≥ 50,000 orders/s.
//! (b) 10,000 orders to a connector that takes 1 ms per call, at concurrency 64: the
//!     orchestrator against calling the connector directly with the same concurrency. Target:
//!     ≥ 0.9 × direct throughput.
//!
//! Run: `cargo bench --bench dispatch`

#![allow(missing_docs)] // criterion_group! generates undocumented items

mod support;

use autoprov::connector::Connector;
use autoprov::orchestrator::clock::SystemClock;
use autoprov::orchestrator::dispatch::{DispatchPolicy, Dispatcher};
use autoprov::orchestrator::store::MemoryStore;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use support::{Sleeper, orders, sleeper};
use tokio_util::sync::CancellationToken;

fn dispatcher(c: Arc<Sleeper>, concurrency: usize) -> Dispatcher {
    Dispatcher::new(
        [c as Arc<dyn Connector>],
        DispatchPolicy {
            concurrency_per_connection: concurrency,
            ..DispatchPolicy::default()
        },
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    )
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = 100_000;
    let mut group = c.benchmark_group("dispatch_noop_100k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    let mut run = 0;
    group.bench_function(BenchmarkId::new("orchestrator", n), |b| {
        b.iter_batched(
            || {
                run += 1;
                (
                    dispatcher(sleeper(Duration::ZERO), 64),
                    orders(n, &format!("run{run}-")),
                )
            },
            |(d, os)| {
                rt.block_on(async {
                    let report = d.dispatch(os, &CancellationToken::new()).await.unwrap();
                    assert_eq!(report.executed.len(), n);
                });
                d // dropped after the measurement
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function(BenchmarkId::new("direct", n), |b| {
        b.iter_batched(
            || (sleeper(Duration::ZERO), orders(n, "run0-")),
            |(c, os)| {
                rt.block_on(async {
                    for o in &os {
                        c.fulfill(o).await.unwrap();
                    }
                });
                os
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn one_ms_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = 10_000;
    let concurrency = 64;
    let mut group = c.benchmark_group("dispatch_1ms_10k_c64");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    let mut run = 0;
    group.bench_function("orchestrator", |b| {
        b.iter_batched(
            || {
                run += 1;
                (
                    dispatcher(sleeper(Duration::from_millis(1)), concurrency),
                    orders(n, &format!("run{run}-")),
                )
            },
            |(d, os)| {
                rt.block_on(async {
                    let report = d.dispatch(os, &CancellationToken::new()).await.unwrap();
                    assert_eq!(report.executed.len(), n);
                });
                d // dropped after the measurement
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("direct", |b| {
        b.iter_batched(
            || (sleeper(Duration::from_millis(1)), orders(n, "run0-")),
            |(c, os)| {
                rt.block_on(async {
                    futures::stream::iter(os.iter())
                        .for_each_concurrent(concurrency, |o| {
                            let c = c.clone();
                            async move {
                                c.fulfill(o).await.unwrap();
                            }
                        })
                        .await
                });
                os
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, overhead, one_ms_calls);
criterion_main!(benches);
