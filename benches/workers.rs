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
//! it the benchmark prints why it skipped. Each case has a schema of its own and its workers'
//! stores, made (and their pools opened) before anything is timed, as in running worker
//! processes; each iteration plans new orders into it (not timed) and times fresh `Worker`s
//! on those stores until every order is Executed. The schema is dropped after the case.
//!
//! Run: `cargo bench --bench workers -- --sample-size 10 --measurement-time 5`.

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
const CLAIM_BATCH: usize = 8;
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

/// One case's store: a schema of its own, the planner's store and each worker's (its own
/// pool, opened before anything is timed, as in a running worker process).
struct Case {
    url: String,
    schema: String,
    planner: Arc<PgStore>,
    workers: Vec<Arc<PgStore>>,
}

impl Case {
    async fn new(url: &str, name: &str, workers: usize) -> Self {
        let schema = format!("kit_bench_{}_{name}", std::process::id());
        drop_schema(url, &schema).await;
        let planner = Arc::new(store(url, &schema).await);
        let mut stores = Vec::new();
        for _ in 0..workers {
            let store = store(url, &schema).await;
            // A running worker's pool is open: logins are not part of the timed loop.
            store.open_connections().await.expect("open the pool");
            stores.push(Arc::new(store));
        }
        Self {
            url: url.to_owned(),
            schema,
            planner,
            workers: stores,
        }
    }

    /// Plans `n` new orders (not timed), then runs the workers until all are Executed; how
    /// long the workers took.
    async fn run(&self, n: usize, latency: Duration, seq: u64) -> Duration {
        let connector = sleeper(latency) as Arc<dyn Connector>;
        let make = |name: String, store: Arc<PgStore>| {
            let mut s = WorkerSettings::new(name);
            s.concurrency = CONCURRENCY;
            s.claim_batch = CLAIM_BATCH;
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
        make("planner".into(), self.planner.clone())
            .plan(orders(n, &format!("r{seq}-")))
            .await
            .expect("plan");
        let ws: Vec<Worker> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, store)| make(format!("w{i}"), store.clone()))
            .collect();
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
        took
    }

    async fn finish(self) {
        drop(self.workers);
        drop(self.planner);
        drop_schema(&self.url, &self.schema).await;
    }
}

/// Drops a run's schema (its orders are not needed after it; thousands of runs' schemas
/// would fill the test server).
async fn drop_schema(url: &str, schema: &str) {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return;
    };
    let conn = tokio::spawn(connection);
    if let Err(e) = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
    {
        eprintln!("could not drop the bench schema {schema}: {e}");
    }
    drop(client);
    let _ = conn.await;
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
            let case = rt.block_on(Case::new(&url, &format!("{name}_{w}"), w));
            group.bench_function(BenchmarkId::new(format!("workers{w}"), n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let s = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let took = rt.block_on(case.run(n, latency, s));
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
            rt.block_on(case.finish());
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
