//! Several worker processes sharing one store: each claims ready orders, records that the
//! attempt starts, applies the order's effect (a row in an `effects` table, after a latency)
//! and records the outcome under its claim. One worker is killed (SIGKILL) in the middle;
//! the others take its orders over once its leases expire. Nothing is lost, no outcome is
//! recorded twice, and an effect is applied twice only for an order the dead worker had in
//! flight (an unknown outcome, sent again: SPEC §10, connectors are idempotent).
//!
//! The worker processes are this test binary run again with `AUTOPROV_PG_WORKER` set
//! (`worker_process_entry`), so the suite stays one binary that needs nothing built besides.
#![allow(clippy::disallowed_methods)] // tests, examples and test support may read the wall clock

use crate::support;
use autoprov_core::ProvisioningEvent as E;
use autoprov_core::ProvisioningState as S;
use autoprov_store::testkit::record;
use autoprov_store::{ClaimStore, OrderUpdate, Store, StoreError};
use chrono::Utc;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKER_ENV: &str = "AUTOPROV_PG_WORKER";
const SCHEMA_ENV: &str = "AUTOPROV_PG_WORKER_SCHEMA";
const ORDERS: usize = 200;
const WORKERS: usize = 4;
const CLAIM_BATCH: usize = 4;
const LEASE: Duration = Duration::from_secs(2);
const LATENCY: Duration = Duration::from_millis(15);

/// The worker's body when this binary runs as a worker process; a no-op otherwise.
#[test]
fn worker_process_entry() {
    let (Ok(worker), Ok(schema)) = (std::env::var(WORKER_ENV), std::env::var(SCHEMA_ENV)) else {
        return;
    };
    let url = std::env::var("AUTOPROV_PG_URL").expect("the parent passes AUTOPROV_PG_URL");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run_worker(&url, &schema, &worker));
}

async fn run_worker(url: &str, schema: &str, worker: &str) {
    let store = support::store_in(url, schema).await;
    let effects = support::raw_client(url, schema).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut done, mut lost) = (0u32, 0u32);
    while Instant::now() < deadline {
        let claims = store
            .claim(worker, CLAIM_BATCH, LEASE)
            .await
            .expect("claim");
        if claims.is_empty() {
            let pending = store.order_counts().await.expect("counts");
            if pending.get(&S::Pending).copied().unwrap_or(0) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for claim in claims {
            let result = async {
                // Recorded before the call (SPEC §10), then the effect, then the outcome.
                let claim = store
                    .record_outcome(&claim, OrderUpdate::at(Utc::now()).attempt_started())
                    .await?;
                effects
                    .execute(
                        "INSERT INTO effects (order_id, token, worker) VALUES ($1, $2, $3)",
                        &[
                            &claim.order_id().as_str(),
                            &i64::try_from(claim.token).unwrap_or(i64::MAX),
                            &worker,
                        ],
                    )
                    .await
                    .expect("effect");
                tokio::time::sleep(LATENCY).await;
                store
                    .record_outcome(
                        &claim,
                        OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
                    )
                    .await
            }
            .await;
            match result {
                Ok(_) => done += 1,
                Err(StoreError::LeaseLost { .. }) => lost += 1,
                Err(e) => panic!("{worker}: {e}"),
            }
        }
    }
    println!("WORKER {worker} done={done} lease_lost={lost}");
}

fn spawn_worker(url: &str, schema: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "workers::worker_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, name)
        .env(SCHEMA_ENV, schema)
        .env("AUTOPROV_PG_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a worker process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_in_processes_lose_nothing_when_one_is_killed() {
    let test = "workers_in_processes_lose_nothing_when_one_is_killed";
    let Some(url) = support::pg_url(test) else {
        return;
    };
    let schema = support::fresh_schema();
    let store = support::store_in(&url, &schema).await;
    let db = support::raw_client(&url, &schema).await;
    db.batch_execute(
        "CREATE TABLE effects (seq bigserial PRIMARY KEY, order_id text NOT NULL,
                               token bigint NOT NULL, worker text NOT NULL)",
    )
    .await
    .expect("effects table");
    store
        .insert_orders(&(0..ORDERS).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");

    let started = Instant::now();
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|i| spawn_worker(&url, &schema, &format!("w{i}")))
        .collect();
    // Kill w0 once it is in the middle of its work.
    loop {
        let n: i64 = db
            .query_one("SELECT count(*) FROM effects WHERE worker = 'w0'", &[])
            .await
            .expect("count")
            .get(0);
        if n >= 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "w0 never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers[0].kill().expect("SIGKILL w0");
    let killed_at = started.elapsed();
    let mut summaries = Vec::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let status = w.wait().expect("wait");
        let mut out = String::new();
        if let Some(mut stdout) = w.stdout.take() {
            use std::io::Read as _;
            stdout.read_to_string(&mut out).expect("read stdout");
        }
        if i > 0 {
            assert!(status.success(), "worker w{i} failed: {out}");
        }
        // The harness prints "test … ... " before the test's own output, on the same line.
        summaries.extend(
            out.lines()
                .filter_map(|l| l.find("WORKER ").map(|at| l[at..].to_owned())),
        );
    }
    let elapsed = started.elapsed();

    // 0 lost: every order Executed, exactly one success in each history.
    let counts = store.order_counts().await.expect("counts");
    assert_eq!(
        counts,
        BTreeMap::from([(S::Executed, ORDERS as u64)]),
        "{summaries:?}"
    );
    for i in 0..ORDERS {
        let history = store.order_history(record(i).id()).await.expect("history");
        let successes = history
            .iter()
            .filter(|h| h.event == Some(E::ConnectorSucceeded))
            .count();
        assert_eq!(successes, 1, "order {i}: one recorded outcome: {history:?}");
    }
    // Effects applied twice: only orders that w0 had in flight when it died, re-sent by
    // another worker after w0's lease expired, under a greater token.
    let twice = db
        .query(
            "SELECT order_id, array_agg(worker ORDER BY token), array_agg(token ORDER BY token)
             FROM effects GROUP BY order_id HAVING count(*) > 1",
            &[],
        )
        .await
        .expect("duplicates");
    for row in &twice {
        let workers: Vec<String> = row.get(1);
        let tokens: Vec<i64> = row.get(2);
        assert_eq!(workers.len(), 2, "{workers:?}");
        assert_eq!(
            workers[0], "w0",
            "only the killed worker's attempts are re-sent"
        );
        assert_ne!(workers[1], "w0");
        assert!(tokens[0] < tokens[1]);
    }
    assert!(
        twice.len() <= CLAIM_BATCH,
        "at most w0's claimed batch is re-sent"
    );
    let effects: i64 = db
        .query_one("SELECT count(DISTINCT order_id) FROM effects", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(effects, ORDERS as i64, "every order's effect applied");
    println!(
        "{ORDERS} orders, {WORKERS} worker processes, w0 killed after {killed_at:?}: all \
         Executed in {elapsed:?}; 0 lost, 0 duplicate outcomes, {} unknown outcome(s) of w0 \
         re-sent; {summaries:?}",
        twice.len()
    );
}
