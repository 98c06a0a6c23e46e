//! Worker processes on the PostgreSQL store (`scripts/pg-test-server.sh start`): the worker
//! loop of this crate, in child processes of the test, against a target shared by the
//! processes — tables in a schema of the test's own: `effects` (one row per order, the
//! idempotent effect, inserted by key) and `calls` (one row per connector call, so a re-sent
//! order shows). What is counted is effects and calls in the target, not the workers' word.
//!
//! The worker processes are this test binary run again on the ignored entry point
//! `workers_pg::worker_process_entry`, with the settings in the environment.
//!
//! - 4 workers, 10,000 orders, a connector with latency: every order recorded once, every
//!   effect applied, no order called twice.
//! - SIGKILL one worker mid-run: its orders are taken over once its 2 s leases expire; 0 lost,
//!   one outcome each; only orders it had in flight are called again.
//! - SIGSTOP one worker past its lease, then SIGCONT: its late outcomes are refused (it counts
//!   `LeaseLost`), one outcome each.
//! - The database restarts mid-run (a throwaway cluster of the test's own, started and
//!   stopped with `scripts/pg-test-server.sh` and its own state dir and port): the workers see
//!   temporary store errors, reconnect through the pool and finish.

use async_trait::async_trait;
use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind, Executed, ExportRequest,
    ExportStream, Fulfillment, Operation,
};
use autoprov_core::{ProvisioningOrder, ProvisioningState as S};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::dispatch::DispatchPolicy;
use autoprov_orchestrator::store::Store;
use autoprov_orchestrator::store::testkit::order;
use autoprov_orchestrator::worker::{Worker, WorkerSettings};
use autoprov_store_postgres::PgStore;
use rand::Rng as _;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const ENV_NAME: &str = "AUTOPROV_WORKER_NAME";
const ENV_STORE_URL: &str = "AUTOPROV_WORKER_STORE_URL";
const ENV_STORE_SCHEMA: &str = "AUTOPROV_WORKER_STORE_SCHEMA";
const ENV_TARGET_URL: &str = "AUTOPROV_WORKER_TARGET_URL";
const ENV_TARGET_SCHEMA: &str = "AUTOPROV_WORKER_TARGET_SCHEMA";
const ENV_LATENCY_MS: &str = "AUTOPROV_WORKER_LATENCY_MS";
const ENV_LEASE_MS: &str = "AUTOPROV_WORKER_LEASE_MS";
const CONCURRENCY: usize = 8;
/// The short lease of the killed or stopped worker (and of the restart test): expired leases
/// are taken over quickly.
const LEASE: Duration = Duration::from_secs(2);
/// The lease of the other tests, long enough that a loaded machine never stalls a worker past
/// it (they are not about takeovers, and count re-sent orders as failures).
const LONG_LEASE: Duration = Duration::from_secs(15);

/// `AUTOPROV_PG_URL`, or `None` after printing that `test` skipped; with `CI=true` a missing
/// server fails the test.
fn pg_url(test: &str) -> Option<String> {
    match std::env::var("AUTOPROV_PG_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => Some(url),
        None => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{test}: no PostgreSQL test server in CI (AUTOPROV_PG_URL must be set: run \
                 `bash scripts/pg-test-server.sh start` and source its env file)"
            );
            println!(
                "SKIPPED {test}: no PostgreSQL test server (set AUTOPROV_PG_URL, run scripts/pg-test-server.sh start)"
            );
            None
        }
    }
}

/// A fresh schema name (`kit_` schemas are dropped by the test server's next fresh start).
fn fresh_schema() -> String {
    format!("kit_{:016x}", rand::thread_rng().r#gen::<u64>())
}

async fn raw_client(
    url: &str,
    schema: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.options(format!("-c search_path={schema}"));
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn store_in(url: &str, schema: &str, pool: usize) -> PgStore {
    PgStore::builder()
        .url(url)
        .schema(schema)
        .create_schema(true)
        .pool_size(pool)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connecting to the PostgreSQL store: {e:?}"))
}

/// The target: the effect of an order is its row in `effects` (inserted by key: applying it
/// again changes nothing), and every call is logged in `calls`. A lost connection is a
/// temporary error and the next call reconnects.
#[derive(Debug)]
struct PgTarget {
    info: ConnectorInfo,
    url: String,
    schema: String,
    worker: String,
    latency: Duration,
    client: Mutex<Option<Arc<tokio_postgres::Client>>>,
}

impl PgTarget {
    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, ConnectorError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(raw_client(&self.url, &self.schema).await.map_err(down)?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

fn down(e: tokio_postgres::Error) -> ConnectorError {
    ConnectorError::new(ErrorKind::Unavailable, Operation::Update, e.to_string())
}

#[async_trait]
impl Connector for PgTarget {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        self.client().await.map(|_| ())
    }
    async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        tokio::time::sleep(self.latency).await;
        let client = self.client().await?;
        client
            .execute(
                "WITH call AS (INSERT INTO calls (order_id, worker) VALUES ($1, $2))
                 INSERT INTO effects (order_id, worker) VALUES ($1, $2)
                 ON CONFLICT (order_id) DO NOTHING",
                &[&o.order_id.as_str(), &self.worker],
            )
            .await
            .map_err(down)?;
        Ok(Fulfillment::Executed(Executed::new(o.order_id.as_str())))
    }
    async fn export(&self, _r: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(
            Operation::Export,
            "test target",
        ))
    }
}

fn policy() -> DispatchPolicy {
    DispatchPolicy {
        // The connection's limit across the 4 workers: above 4 × their concurrency.
        concurrency_per_connection: 64,
        call_deadline: Duration::from_secs(1),
        ..DispatchPolicy::default()
    }
}

/// The worker process's body (run by the tests below as a child process).
#[test]
#[ignore = "the body of a worker process: the workers_pg tests run it in child processes"]
fn worker_process_entry() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("the parent sets {k}"));
    let name = var(ENV_NAME);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async {
        let store = Arc::new(store_in(&var(ENV_STORE_URL), &var(ENV_STORE_SCHEMA), 8).await);
        let target = Arc::new(PgTarget {
            info: ConnectorInfo::new("test.pg-target", "conn", Capabilities::full()),
            url: var(ENV_TARGET_URL),
            schema: var(ENV_TARGET_SCHEMA),
            worker: name.clone(),
            latency: Duration::from_millis(var(ENV_LATENCY_MS).parse().expect("latency ms")),
            client: Mutex::new(None),
        });
        let mut settings = WorkerSettings::new(&name);
        settings.lease = Duration::from_millis(var(ENV_LEASE_MS).parse().expect("lease ms"));
        settings.lease_margin = Duration::from_millis(500);
        settings.concurrency = CONCURRENCY;
        settings.claim_batch = CONCURRENCY;
        settings.idle_poll = Duration::from_millis(50);
        settings.stop_when_drained = true;
        let worker = Worker::new(
            [target as Arc<dyn Connector>],
            policy(),
            store,
            Arc::new(SystemClock),
            settings,
        )
        .expect("valid settings");
        worker
            .run(CancellationToken::new())
            .await
            .expect("worker run")
    });
    println!(
        "WORKER {name} claimed={} executed={} lease_lost={} takeovers={} store_errors={} retried={} deferred={}",
        report.claimed,
        report.executed,
        report.lease_lost,
        report.takeovers,
        report.store_errors,
        report.retried,
        report.deferred
    );
}

/// One run: the store's and the target's places, the orders.
struct Run {
    store_url: String,
    store_schema: String,
    target_url: String,
    target_schema: String,
    latency_ms: u64,
    lease: Duration,
}

impl Run {
    fn spawn(&self, name: &str) -> Child {
        self.spawn_with_lease(name, self.lease)
    }

    /// A worker with its own lease length: the killed or stopped worker gets the short one
    /// (its orders are taken over soon), the others a long one (a loaded machine never stalls
    /// them past it, so every repeat in the target is explained).
    fn spawn_with_lease(&self, name: &str, lease: Duration) -> Child {
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "workers_pg::worker_process_entry",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_NAME, name)
            .env(ENV_STORE_URL, &self.store_url)
            .env(ENV_STORE_SCHEMA, &self.store_schema)
            .env(ENV_TARGET_URL, &self.target_url)
            .env(ENV_TARGET_SCHEMA, &self.target_schema)
            .env(ENV_LATENCY_MS, self.latency_ms.to_string())
            .env(ENV_LEASE_MS, lease.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker process")
    }

    /// Makes the target's tables and plans `n` orders into the store.
    async fn prepare(&self, n: usize) -> (PgStore, tokio_postgres::Client) {
        let store = store_in(&self.store_url, &self.store_schema, 4).await;
        let target = raw_client(&self.target_url, "public")
            .await
            .expect("target");
        target
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE {s}.effects (order_id text PRIMARY KEY, worker text NOT NULL);
                 CREATE TABLE {s}.calls (seq bigserial PRIMARY KEY, order_id text NOT NULL,
                                         worker text NOT NULL)",
                s = self.target_schema
            ))
            .await
            .expect("target tables");
        let target = raw_client(&self.target_url, &self.target_schema)
            .await
            .expect("target");
        let planner = Worker::new(
            Vec::<Arc<dyn Connector>>::new(),
            policy(),
            Arc::new(store.clone()),
            Arc::new(SystemClock),
            WorkerSettings::new("planner"),
        )
        .expect("planner");
        let planned = planner
            .plan((0..n).map(order).collect())
            .await
            .expect("plan");
        assert_eq!(planned.inserted, n);
        (store, target)
    }
}

/// Waits for a worker and returns its summary line ("WORKER …").
fn finish(mut child: Child, must_succeed: bool) -> String {
    let status = child.wait().expect("wait");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read as _;
        stdout.read_to_string(&mut out).expect("read stdout");
    }
    if must_succeed {
        assert!(status.success(), "a worker failed: {out}");
    }
    // The harness prints "test … ... " before the test's own output, on the same line.
    out.lines()
        .find_map(|l| l.find("WORKER ").map(|at| l[at..].to_owned()))
        .unwrap_or_default()
}

/// A number from a summary line ("key=<n>").
fn field(summary: &str, key: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {summary:?}"))
}

/// Every order Executed with exactly one recorded success; every effect applied once.
/// Returns the orders called more than once with their callers in call order.
async fn check_all_done_once(
    store: &PgStore,
    store_db: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    n: usize,
) -> BTreeMap<String, Vec<String>> {
    let counts = store.order_counts().await.expect("counts");
    assert_eq!(counts, BTreeMap::from([(S::Executed, n as u64)]), "0 lost");
    let wrong: i64 = store_db
        .query_one(
            "SELECT count(*) FROM (
                 SELECT o.order_id FROM orders o LEFT JOIN order_history h
                   ON h.order_id = o.order_id AND h.entry->>'event' = 'ConnectorSucceeded'
                 GROUP BY o.order_id HAVING count(h.order_id) <> 1) x",
            &[],
        )
        .await
        .expect("outcomes")
        .get(0);
    assert_eq!(wrong, 0, "every order has exactly one recorded outcome");
    let effects: i64 = target
        .query_one("SELECT count(*) FROM effects", &[])
        .await
        .expect("effects")
        .get(0);
    assert_eq!(effects, n as i64, "every order's effect applied");
    target
        .query(
            "SELECT order_id, array_agg(worker ORDER BY seq) FROM calls
             GROUP BY order_id HAVING count(*) > 1",
            &[],
        )
        .await
        .expect("calls")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The orders called more than once whose repeats neither a recorded temporary failure (a
/// timeout, a lost connection: recorded with a retry time, then retried) nor `holder` (a
/// worker killed or stopped with calls in flight: an unknown outcome) explains.
async fn unexplained_repeats(
    store: &PgStore,
    twice: &BTreeMap<String, Vec<String>>,
    holder: Option<&str>,
) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (order, callers) in twice {
        if holder.is_some_and(|h| callers.iter().any(|c| c == h)) {
            continue;
        }
        let history = store
            .order_history(&order.as_str().into())
            .await
            .expect("history");
        let failures = history
            .iter()
            .filter(|h| h.event.is_none() && h.message.is_some())
            .count();
        if failures + 1 < callers.len() {
            out.push((order.clone(), callers.clone()));
        }
    }
    out
}

fn plain_run(url: &str, latency_ms: u64, lease: Duration) -> Run {
    let schema = fresh_schema();
    Run {
        store_url: url.to_owned(),
        store_schema: schema.clone(),
        target_url: url.to_owned(),
        target_schema: schema,
        latency_ms,
        lease,
    }
}

async fn effects_by(target: &tokio_postgres::Client, worker: &str) -> i64 {
    target
        .query_one("SELECT count(*) FROM calls WHERE worker = $1", &[&worker])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_send_10000_orders_each_once() {
    let test = "four_worker_processes_send_10000_orders_each_once";
    let Some(url) = pg_url(test) else { return };
    let n = 10_000;
    let run = plain_run(&url, 3, LONG_LEASE);
    let (store, target) = run.prepare(n).await;
    let store_db = raw_client(&url, &run.store_schema).await.expect("store db");
    let started = Instant::now();
    let workers: Vec<Child> = (0..4).map(|i| run.spawn(&format!("w{i}"))).collect();
    let summaries: Vec<String> = workers.into_iter().map(|w| finish(w, true)).collect();
    let elapsed = started.elapsed();
    let twice = check_all_done_once(&store, &store_db, &target, n).await;
    let unexplained = unexplained_repeats(&store, &twice, None).await;
    assert!(
        unexplained.is_empty(),
        "orders called again without a recorded failure: {unexplained:?}; {summaries:?}"
    );
    let retried: u64 = summaries.iter().map(|s| field(s, "retried")).sum();
    assert!(
        twice.len() as u64 <= retried,
        "repeated calls only for temporary failures: {twice:?}; {summaries:?}"
    );
    let executed: u64 = summaries.iter().map(|s| field(s, "executed")).sum();
    assert_eq!(executed, n as u64, "{summaries:?}");
    assert!(
        summaries.iter().all(|s| field(s, "executed") > 0),
        "every worker took a share: {summaries:?}"
    );
    println!("{n} orders, 4 worker processes: all Executed once in {elapsed:?}; {summaries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing_and_its_orders_are_taken_over() {
    let test = "a_killed_worker_loses_nothing_and_its_orders_are_taken_over";
    let Some(url) = pg_url(test) else { return };
    let n = 2_000;
    let run = plain_run(&url, 20, LEASE);
    let (store, target) = run.prepare(n).await;
    let store_db = raw_client(&url, &run.store_schema).await.expect("store db");
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..4)
        .map(|i| match i {
            0 => run.spawn_with_lease("w0", LEASE),
            _ => run.spawn_with_lease(&format!("w{i}"), LONG_LEASE),
        })
        .collect();
    while effects_by(&target, "w0").await < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "w0 never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers[0].kill().expect("SIGKILL w0");
    let killed_at = started.elapsed();
    workers[0].wait().expect("w0 exits");
    // A call w0 had sent before the signal may still be running in the target database:
    // count w0's calls once that count has stopped moving.
    let mut w0_calls_at_kill = effects_by(&target, "w0").await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = effects_by(&target, "w0").await;
        if now == w0_calls_at_kill {
            break;
        }
        w0_calls_at_kill = now;
    }
    let mut summaries = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        summaries.push(finish(w, i > 0));
    }
    let elapsed = started.elapsed();
    let twice = check_all_done_once(&store, &store_db, &target, n).await;
    // Called again: only orders w0 had called when it died (an unknown outcome), then by
    // another worker.
    let unexplained = unexplained_repeats(&store, &twice, Some("w0")).await;
    assert!(
        unexplained.is_empty(),
        "only the killed worker's calls (or recorded failures) are repeated: {unexplained:?}"
    );
    let w0_repeats = twice
        .values()
        .filter(|callers| callers.first().is_some_and(|c| c == "w0"))
        .count();
    assert!(
        w0_repeats <= CONCURRENCY,
        "at most w0's calls in flight: {twice:?}"
    );
    assert_eq!(
        effects_by(&target, "w0").await,
        w0_calls_at_kill,
        "w0 is dead"
    );
    let takeovers: u64 = summaries[1..].iter().map(|s| field(s, "takeovers")).sum();
    assert!(
        takeovers >= twice.len() as u64,
        "the others counted the takeovers: {summaries:?}"
    );
    println!(
        "{n} orders, w0 SIGKILLed after {killed_at:?}: all Executed once in {elapsed:?}; \
         {w0_repeats} order(s) w0 had in flight called again; {summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_past_its_lease_has_its_late_outcomes_refused() {
    let test = "a_worker_stopped_past_its_lease_has_its_late_outcomes_refused";
    let Some(url) = pg_url(test) else { return };
    let n = 2_000;
    let run = plain_run(&url, 20, LEASE);
    let (store, target) = run.prepare(n).await;
    let store_db = raw_client(&url, &run.store_schema).await.expect("store db");
    let started = Instant::now();
    let workers: Vec<Child> = (0..4)
        .map(|i| match i {
            0 => run.spawn_with_lease("w0", LEASE),
            _ => run.spawn_with_lease(&format!("w{i}"), LONG_LEASE),
        })
        .collect();
    while effects_by(&target, "w0").await < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "w0 never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = workers[0].id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    // Past its 2 s leases, long enough for the others to take its orders over.
    tokio::time::sleep(LEASE * 2 + Duration::from_millis(500)).await;
    signal("-CONT");
    let summaries: Vec<String> = workers.into_iter().map(|w| finish(w, true)).collect();
    let twice = check_all_done_once(&store, &store_db, &target, n).await;
    let refused = field(&summaries[0], "lease_lost");
    assert!(
        refused >= 1,
        "w0's late outcomes were refused (LeaseLost): {summaries:?}"
    );
    let unexplained = unexplained_repeats(&store, &twice, Some("w0")).await;
    assert!(
        unexplained.is_empty(),
        "only orders w0 held (or recorded failures) are called twice: {unexplained:?}"
    );
    println!(
        "{n} orders, w0 stopped for {:?}: all Executed once; w0 refused {refused} time(s); \
         {} order(s) called twice; {summaries:?}",
        LEASE * 2 + Duration::from_millis(500),
        twice.len()
    );
}

/// A throwaway PostgreSQL cluster of this test's own (state dir and port of its own), run
/// with the project's script; stopped when dropped.
struct OwnCluster {
    state_dir: String,
    port: u16,
}

impl OwnCluster {
    fn script(&self, command: &str) -> bool {
        Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/pg-test-server.sh"
            ))
            .arg(command)
            .env("AUTOPROV_PG_STATE_DIR", &self.state_dir)
            .env("AUTOPROV_PG_PORT", self.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn url(&self) -> String {
        format!(
            "postgres://autoprov:autoprov-test@127.0.0.1:{}/autoprov",
            self.port
        )
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_outlive_a_database_restart() {
    let test = "workers_outlive_a_database_restart";
    // The target stays on the shared server; the store is on a cluster this test restarts.
    let Some(target_url) = pg_url(test) else {
        return;
    };
    let port: u16 = std::env::var("AUTOPROV_PG_RESTART_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(55433);
    let cluster = OwnCluster {
        state_dir: std::env::var("AUTOPROV_PG_RESTART_STATE_DIR")
            .unwrap_or_else(|_| "/var/tmp/autoprov-pg-restart-test".to_owned()),
        port,
    };
    if !cluster.script("start") {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{test}: could not start a PostgreSQL cluster of its own with scripts/pg-test-server.sh"
        );
        println!("SKIPPED {test}: could not start a PostgreSQL cluster of its own (needs root)");
        return;
    }
    let n = 2_000;
    let schema = fresh_schema();
    let run = Run {
        store_url: cluster.url(),
        // Not `kit_…`: the script drops those when it starts a server afresh, and this test
        // restarts the server under the store.
        store_schema: schema.replace("kit_", "restart_"),
        target_url,
        target_schema: schema,
        latency_ms: 10,
        // Short: what the restart leaves unrecorded is taken over soon (repeats are
        // allowed here; the test is about finishing).
        lease: LEASE,
    };
    let (store, target) = run.prepare(n).await;
    let started = Instant::now();
    let workers: Vec<Child> = (0..4).map(|i| run.spawn(&format!("w{i}"))).collect();
    loop {
        let done: i64 = target
            .query_one("SELECT count(*) FROM effects", &[])
            .await
            .expect("effects")
            .get(0);
        if done >= (n / 4) as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    assert!(cluster.script("stop"), "stop the store's database");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cluster.script("start"), "start it again");
    let outage = t0.elapsed();
    let summaries: Vec<String> = workers.into_iter().map(|w| finish(w, true)).collect();
    let elapsed = started.elapsed();
    let store_db = raw_client(&run.store_url, &run.store_schema)
        .await
        .expect("store db");
    let twice = check_all_done_once(&store, &store_db, &target, n).await;
    let store_errors: u64 = summaries.iter().map(|s| field(s, "store_errors")).sum();
    assert!(
        store_errors > 0,
        "the workers saw the restart (and outlived it): {summaries:?}"
    );
    println!(
        "{n} orders, the store's database restarted mid-run ({outage:?} down): all Executed once \
         in {elapsed:?}; {} order(s) called twice (outcomes lost with the restart); {summaries:?}",
        twice.len()
    );
    drop(cluster);
}
