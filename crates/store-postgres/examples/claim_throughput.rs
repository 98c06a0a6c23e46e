//! How many orders per second one process moves through claim → attempt recorded → outcome
//! recorded, with `TASKS` concurrent claimers and no connector latency (the store's own cost).
//!
//! ```sh
//! eval "$(bash scripts/pg-test-server.sh start)"
//! cargo run --release -p autoprov-store-postgres --example claim_throughput
//! ```
#![allow(clippy::disallowed_methods)] // tests, examples and test support may read the wall clock

use autoprov_core::ProvisioningEvent as E;
use autoprov_store::testkit::record;
use autoprov_store::{ClaimStore, OrderUpdate, Store};
use autoprov_store_postgres::PgStore;
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORDERS: usize = 5000;
const TASKS: usize = 8;
const BATCH: usize = 16;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("AUTOPROV_PG_URL")
        .map_err(|_| "set AUTOPROV_PG_URL (bash scripts/pg-test-server.sh start)")?;
    let store = Arc::new(
        PgStore::builder()
            .url(url)
            .schema(format!("kit_throughput_{}", std::process::id()))
            .create_schema(true)
            .pool_size(TASKS)
            .build()
            .await?,
    );
    let started = Instant::now();
    let records: Vec<_> = (0..ORDERS).map(record).collect();
    for chunk in records.chunks(1000) {
        store.insert_orders(chunk).await?;
    }
    println!("inserted {ORDERS} orders in {:?}", started.elapsed());

    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let claims = store
                    .claim(&format!("task-{t}"), BATCH, Duration::from_secs(30))
                    .await?;
                if claims.is_empty() {
                    return Ok::<_, autoprov_store::StoreError>(done);
                }
                for claim in claims {
                    let claim = store
                        .record_outcome(&claim, OrderUpdate::at(Utc::now()).attempt_started())
                        .await?;
                    store
                        .record_outcome(
                            &claim,
                            OrderUpdate::event(E::ConnectorSucceeded, Utc::now()),
                        )
                        .await?;
                    done += 1;
                }
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "{total} orders claimed and recorded (2 writes each) by {TASKS} tasks in {elapsed:?}: \
         {:.0} orders/s",
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
