//! Workers sharing the PostgreSQL store, in one run: the worker loop's scaling and its
//! overhead.
//!
//! Workers are tasks in this process, each with its own `PgStore` (its own connection pool,
//! as a separate process would have) and the same worker code a process runs. Each worker's
//! concurrency is fixed at 8; the connection's limit (shared by all workers through the
//! store's permits) is 64, above 4 × 8.
//!
//! - `sleep10ms`: orders to a connector that takes 10 ms, through 1 worker and through 4.
//!   Target: 4 workers ≥ 3.2 × one worker's orders/s.
//! - `noop`: orders to a connector that does nothing, through 4 workers: claimed, attempt
//!   recorded, outcome recorded. Target: ≥ 5,000 orders/s.
//!
//! Needs the test PostgreSQL (`scripts/pg-test-server.sh start`, `AUTOPROV_PG_URL`); without
//! it the benchmark prints why it skipped. Each iteration plans its orders into a fresh schema
//! (not timed) and times the workers until every order is Executed.
//!
//! Run: `cargo bench --bench workers -- --measurement-time 5`.

#![allow(missing_docs)] // criterion_group! generates undocumented items
#![allow(clippy::disallowed_methods)] // benches may read the wall clock

mod support;

use autoprov::connector::Connector;
use autoprov::orchestrator::clock::SystemClock;
use autoprov::orchestrator::dispatch::DispatchPolicy;
use autoprov::orchestrator::worker::{Worker, WorkerSettings};
use autoprov_store_postgres::PgStore;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{orders, sleeper};
use tokio_util::sync::CancellationToken;

const CONCURRENCY: usize = 8;
const CONNECTION_LIMIT: usize = 64;

fn policy() -> DispatchPolicy {
    DispatchPolicy {
        concurrency_per_connection: CONNECTION_LIMIT,
        call_deadline: Duration::from_secs(10),
        ..DispatchPolicy::default()
    }
}

async fn store(url: &str, schema: &str) -> PgStore {
    PgStore::builder()
        .url(url)
        .schema(schema)
        .create_schema(true)
        .pool_size(CONCURRENCY + 2)
        .build()
        .await
        .expect("the PostgreSQL store")
}

/// Plans `n` orders into a fresh schema, then runs `workers` workers until all are Executed;
/// how long the workers took.
async fn run(url: &str, n: usize, workers: usize, latency: Duration, seq: u64) -> Duration {
    let schema = format!("kit_bench_{}_{seq}", std::process::id());
    let planner_store = Arc::new(store(url, &schema).await);
    let connector = sleeper(latency) as Arc<dyn Connector>;
    let make = |name: String, store: Arc<PgStore>| {
        let mut s = WorkerSettings::new(name);
        s.concurrency = CONCURRENCY;
        s.claim_batch = CONCURRENCY;
        s.idle_poll = Duration::from_millis(5);
        s.stats_every = Duration::ZERO;
        s.stop_when_drained = true;
        Worker::new(
            [connector.clone()],
            policy(),
            store,
            Arc::new(SystemClock),
            s,
        )
        .expect("worker")
    };
    make("planner".into(), planner_store.clone())
        .plan(orders(n, ""))
        .await
        .expect("plan");
    let mut ws = Vec::new();
    for i in 0..workers {
        ws.push(make(format!("w{i}"), Arc::new(store(url, &schema).await)));
    }
    let started = Instant::now();
    let handles: Vec<_> = ws
        .into_iter()
        .map(|w| tokio::spawn(async move { w.run(CancellationToken::new()).await }))
        .collect();
    let mut executed = 0;
    for h in handles {
        executed += h.await.expect("task").expect("worker").executed;
    }
    let took = started.elapsed();
    assert_eq!(executed, n as u64, "every order executed once");
    // The schema stays (a `kit_` schema: the test server drops those when it starts afresh).
    drop(planner_store);
    took
}

fn median(mut ds: Vec<Duration>) -> Duration {
    ds.sort();
    ds.get(ds.len() / 2).copied().unwrap_or_default()
}

fn workers(c: &mut Criterion) {
    let Some(url) = std::env::var("AUTOPROV_PG_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        println!(
            "SKIPPED benches/workers.rs: no PostgreSQL (set AUTOPROV_PG_URL: run \
             `bash scripts/pg-test-server.sh start` and source its env file)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen: Arc<Mutex<BTreeMap<String, Vec<Duration>>>> = Arc::default();
    let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cases: [(&str, Duration, usize, &[usize]); 2] = [
        ("sleep10ms", Duration::from_millis(10), 1_000, &[1, 4]),
        ("noop", Duration::ZERO, 5_000, &[4]),
    ];
    for (name, latency, n, counts) in cases {
        let mut group = c.benchmark_group(format!("workers_{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(n as u64));
        for &w in counts {
            let key = format!("{name}/{w}");
            group.bench_function(BenchmarkId::new(format!("workers{w}"), n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let s = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let took = rt.block_on(run(&url, n, w, latency, s));
                        seen.lock()
                            .unwrap()
                            .entry(key.clone())
                            .or_default()
                            .push(took);
                        total += took;
                    }
                    total
                })
            });
        }
        group.finish();
    }
    let seen = seen.lock().unwrap();
    let rate = |key: &str, n: usize| {
        seen.get(key)
            .map(|ds| n as f64 / median(ds.clone()).as_secs_f64())
            .unwrap_or(0.0)
    };
    let one = rate("sleep10ms/1", 1_000);
    let four = rate("sleep10ms/4", 1_000);
    let noop = rate("noop/4", 5_000);
    println!(
        "\nworkers on PostgreSQL (median per sample; concurrency {CONCURRENCY} per worker, \
         connection limit {CONNECTION_LIMIT}):\n  \
         10 ms connector: 1 worker {one:.0} orders/s, 4 workers {four:.0} orders/s: \
         {:.2} x (target >= 3.2)\n  \
         no-op connector, 4 workers: {noop:.0} orders/s claimed and recorded (target >= 5000)",
        four / one
    );
}

criterion_group!(benches, workers);
criterion_main!(benches);
