//! Dispatch on the durable SQLite store against the in-memory store, in one run.
//!
//! 100,000 orders to a connector that does nothing, through the `Dispatcher` (two conditional
//! writes per order: the attempt before the call, the outcome after), on a fresh
//! `SqliteStore` (WAL, synchronous=FULL, group commit) and on `MemoryStore`, at concurrency 64
//! (as benches/dispatch.rs) and 256.
//! Prints orders/s for each, their ratio, and the commit times the SQLite writer thread
//! measured (`SqliteStore::stats`). Targets: ≥ 20,000 orders/s on SQLite, p99 commit ≤ 20 ms.
//!
//! Then a job against the Samba domain controller (`store_job_samba`): the same directory
//! work on `SqliteStore` and on `MemoryStore`, in interleaved rounds (the two sides back to
//! back, in alternating order): a complete job creates N joiners of the demo organization
//! (account, attributes, password, groups), the next one verifies them, then the joiners
//! depart, and two more jobs delete and verify. Prints each side's time and the ratio
//! (target: SQLite ≥ 0.95 × memory). Without the server's environment it prints that it
//! skipped.
//!
//! Run: `cargo bench --bench store` (`AUTOPROV_BENCH_ORDERS=10000` for a quick check);
//! only the job against Samba: `cargo bench --bench store -- store_job_samba`
//! (`AUTOPROV_BENCH_JOINERS`, default 50).

#![allow(missing_docs)] // criterion_group! generates undocumented items
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

mod support;

use autoprov::connector::Connector;
use autoprov::core::{ProvisioningState, ScalarValue, Thresholds};
use autoprov::orchestrator::Planner;
use autoprov::orchestrator::clock::SystemClock;
use autoprov::orchestrator::demo;
use autoprov::orchestrator::dispatch::{DispatchPolicy, Dispatcher};
use autoprov::orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov::orchestrator::store::{MemoryStore, Store};
use autoprov_ad::test_fixtures::{self, AdEnv};
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStats, SqliteStore};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
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

/// The job against Samba: one side's work, timed.
struct SambaJob {
    ad: Arc<autoprov_ad::AdConnector>,
    root: String,
    joiners: usize,
    jobs: usize,
}

impl SambaJob {
    /// N joiners created and verified, then departed, deleted and verified, on `store`; the
    /// time of the four job runs.
    async fn run(&mut self, store: Arc<dyn Store>) -> Duration {
        self.jobs += 1;
        let now = chrono::Utc::now();
        // employeeID holds at most 16 characters, sAMAccountName 20.
        let token = format!("{:04x}{:03}", std::process::id() & 0xffff, self.jobs);
        let people: Vec<autoprov::core::Owner> = demo::people(self.joiners * 2, now)
            .into_iter()
            .filter(|p| {
                // Administrators also get a reviewed account: not this benchmark's subject.
                p.get("title")
                    .and_then(autoprov::core::PropertyValue::as_scalar)
                    .and_then(ScalarValue::as_str)
                    != Some("Administrator")
            })
            .take(self.joiners)
            .map(|o| {
                // Logins and employee ids of this job only (sAMAccountName: 20 characters).
                let n = o.id.as_str().trim_start_matches('E').to_owned();
                let login = format!("b{token}{n}");
                let id = format!("{token}{n}");
                let mut o = o
                    .with("login", login.clone())
                    .with("employeeId", id.clone());
                o.identifier = login;
                o.id = id.as_str().into();
                o
            })
            .collect();
        assert_eq!(people.len(), self.joiners, "enough non-admin people");
        let mut config = demo::planner_config_in(&self.root);
        for rt in &mut config.resource_types {
            // Creating and deleting every account at once is the point.
            rt.thresholds = Thresholds::off();
        }
        let mut planner = Planner::new(config).expect("the demo policy");
        for p in &people {
            planner.upsert_owner(p.clone());
        }
        let mut job = ProvisioningJob::builder(planner, store.clone())
            .connector(self.ad.clone())
            .export_scope(demo::CONNECTION, self.root.clone())
            .target_filter(demo::ACCOUNT, |r| !demo::is_admin_account(r))
            .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
            .dispatch_policy(DispatchPolicy {
                concurrency_per_connection: 8,
                ..DispatchPolicy::default()
            })
            .build();
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let r = job
            .run_complete(JobOptions::default(), &cancel)
            .await
            .expect("job");
        assert_eq!(
            r.dispatch.executed.len(),
            self.joiners,
            "{:?}",
            r.dispatch.errored
        );
        let r = job
            .run_incremental(JobOptions::default(), &cancel)
            .await
            .expect("job");
        assert_eq!(r.verification.verified.len(), self.joiners);
        let gone = ScalarValue::from(now - chrono::TimeDelta::days(1));
        for p in &people {
            job.planner_mut()
                .upsert_owner(p.clone().with("departure", gone.clone()));
        }
        let r = job
            .run_incremental(JobOptions::default(), &cancel)
            .await
            .expect("job");
        assert_eq!(
            r.dispatch.executed.len(),
            self.joiners,
            "{:?}",
            r.dispatch.errored
        );
        let r = job
            .run_incremental(JobOptions::default(), &cancel)
            .await
            .expect("job");
        assert_eq!(r.verification.verified.len(), self.joiners);
        let took = started.elapsed();
        let counts = store.order_counts().await.expect("counts");
        assert_eq!(
            counts.get(&ProvisioningState::Verified).copied(),
            Some(2 * self.joiners as u64),
            "{counts:?}"
        );
        took
    }
}

fn store_job_samba(c: &mut Criterion) {
    let Some(env) = AdEnv::from_env() else {
        println!(
            "SKIPPED store_job_samba: no AD test server (set AUTOPROV_AD_URL, run scripts/ad-test-server.sh start)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let joiners: usize = std::env::var("AUTOPROV_BENCH_JOINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // Connected first: a server that does not answer skips the benchmark with the reason.
    let ad = match rt.block_on(env.builder(demo::CONNECTION).connections(4).build()) {
        Ok(ad) => ad,
        Err(e) => {
            println!("SKIPPED store_job_samba: the AD test server does not answer: {e}");
            return;
        }
    };
    let (admin, root, mut side) = rt.block_on(async {
        let admin = test_fixtures::Admin::connect(&env).await;
        let root = admin.create_ou("store-job").await;
        for ou in demo::ous() {
            admin
                .add(
                    &format!("OU={ou},{root}"),
                    vec![("objectClass", vec!["organizationalUnit"])],
                )
                .await;
        }
        let tag = test_fixtures::token();
        for (i, g) in demo::groups().enumerate() {
            let sam = format!("g{tag}{i}");
            admin
                .add(
                    &format!("CN={g},OU=Groups,{root}"),
                    vec![
                        ("objectClass", vec!["group"]),
                        ("sAMAccountName", vec![&sam]),
                    ],
                )
                .await;
        }
        let side = SambaJob {
            ad: Arc::new(ad),
            root: root.clone(),
            joiners,
            jobs: 0,
        };
        (admin, root, side)
    });
    let key = || SqliteOptions::new().with_current_key(SealingKey::new("bench", [7; 32]));
    let times: Arc<Mutex<Vec<(Duration, Duration)>>> = Arc::default();
    let mut group = c.benchmark_group("store_job_samba");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(2 * joiners as u64));
    // One iteration: one round, both sides back to back, in alternating order.
    group.bench_function(BenchmarkId::new("round_sqlite_and_memory", joiners), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let round = times.lock().unwrap().len();
                let dir = tempfile::tempdir().unwrap();
                let sqlite: Arc<dyn Store> =
                    Arc::new(SqliteStore::open(dir.path().join("job.db"), key()).unwrap());
                let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let (ts, tm) = rt.block_on(async {
                    if round.is_multiple_of(2) {
                        let ts = side.run(sqlite).await;
                        (ts, side.run(memory).await)
                    } else {
                        let tm = side.run(memory).await;
                        (side.run(sqlite).await, tm)
                    }
                });
                times.lock().unwrap().push((ts, tm));
                total += ts + tm;
            }
            total
        })
    });
    group.finish();
    rt.block_on(admin.delete_tree(&root));
    let times = times.lock().unwrap();
    let sqlite: Duration = times.iter().map(|t| t.0).sum();
    let memory: Duration = times.iter().map(|t| t.1).sum();
    let mut per_round: Vec<f64> = times
        .iter()
        .map(|(s, m)| m.as_secs_f64() / s.as_secs_f64())
        .collect();
    per_round.sort_by(f64::total_cmp);
    let n = times.len().max(1) as f64;
    println!(
        "\nstore job against Samba: {} interleaved rounds of {joiners} joiners created, verified, \
         deleted and verified (4 job runs) per side:\n  \
         sqlite: {:.2} s per job ({:.1} orders/s)\n  \
         memory: {:.2} s per job ({:.1} orders/s)\n  \
         speed ratio sqlite/memory (memory time / sqlite time): {:.3} (median of rounds {:.3}; target >= 0.95)",
        times.len(),
        sqlite.as_secs_f64() / n,
        2.0 * joiners as f64 * n / sqlite.as_secs_f64(),
        memory.as_secs_f64() / n,
        2.0 * joiners as f64 * n / memory.as_secs_f64(),
        memory.as_secs_f64() / sqlite.as_secs_f64(),
        per_round
            .get(per_round.len() / 2)
            .copied()
            .unwrap_or_default(),
    );
    // For `scripts/bench.sh`, which regenerates the README's figures.
    println!(
        "FIGURE store_job_samba: **{:.3}** ({:.2} vs {:.2} s per job, {} rounds)",
        memory.as_secs_f64() / sqlite.as_secs_f64(),
        sqlite.as_secs_f64() / n,
        memory.as_secs_f64() / n,
        times.len()
    );
}

criterion_group!(benches, store_dispatch, store_job_samba);
criterion_main!(benches);
