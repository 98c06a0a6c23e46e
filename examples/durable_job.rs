//! A job on a SQLite file that survives its process: run, interrupted, resumed.
//!
//! The demo organization (three dozen joiners, privileged accounts behind provisioning
//! review) on the in-memory directory, with its provisioning state in one SQLite file:
//!
//! 1. the first run is interrupted once ten orders finished (calls in flight finish too), as a
//!    stopped process would leave it:
//!    some orders executed, the rest still Pending; a reviewer approves the privileged
//!    accounts; the store is closed;
//! 2. a new store on the same file and a new job (its planner rebuilt from the HR source, as
//!    after a restart) resume: the orders left Pending are sent, nothing executed earlier is
//!    planned or sent again, the review decisions are not asked for again, and the next run
//!    verifies everything.
//!
//! The in-memory directory lives in this process, so both phases run in one process; with a
//! real directory the second phase is simply the next start of the service.
//!
//! Run: `cargo run --example durable_job`

use autoprov::connector::InMemoryConnector;
use autoprov::core::{OrderId, ProvisioningState};
use autoprov::orchestrator::Planner;
use autoprov::orchestrator::clock::ManualClock;
use autoprov::orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov::orchestrator::events::{EventSink, JobEvent};
use autoprov::orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov::orchestrator::store::{AuditAction, Store};
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStore};
use chrono::{TimeZone, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Interrupts the run after `after` orders finished, as a stopped process would.
struct Interrupt {
    after: usize,
    done: AtomicUsize,
    cancel: CancellationToken,
}

impl EventSink for Interrupt {
    fn emit(&self, event: JobEvent) {
        if let JobEvent::OrderFinished { .. } = event
            && self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
        {
            self.cancel.cancel();
        }
    }
}

/// The key that seals the initial passwords at rest. A host takes it from its vault; it is
/// never stored beside the database.
fn sealing_key() -> SealingKey {
    SealingKey::new("demo-2026-12", [42u8; 32])
}

fn job(
    system: &InMemoryConnector,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    events: Arc<dyn EventSink>,
) -> Result<ProvisioningJob, Error> {
    // The planner is rebuilt from the HR source at every start; what it must know of earlier
    // runs (orders in flight, review decisions) it reads from the store.
    let mut planner = Planner::new(demo::planner_config())?;
    for person in demo::people(36, clock_now()) {
        planner.upsert_owner(person);
    }
    Ok(ProvisioningJob::builder(planner, store)
        .connector(Arc::new(system.clone()))
        .clock(clock)
        .events(events)
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build())
}

fn clock_now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
        .single()
        .expect("a valid date")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("autoprov-durable-job-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("autoprov.db");
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system)?;
    let clock = Arc::new(ManualClock::new(clock_now()));
    println!("==> store: {}", path.display());

    // 1. The first run, interrupted after ten orders.
    let executed_before: BTreeSet<OrderId>;
    let approved: Vec<OrderId>;
    {
        let store = Arc::new(SqliteStore::open(
            &path,
            SqliteOptions::new().with_current_key(sealing_key()),
        )?);
        let cancel = CancellationToken::new();
        let interrupt = Arc::new(Interrupt {
            after: 10,
            done: AtomicUsize::new(0),
            cancel: cancel.clone(),
        });
        let mut first = job(&system, store.clone(), clock.clone(), interrupt)?;
        let report = first.run_complete(JobOptions::default(), &cancel).await?;
        executed_before = report.dispatch.executed.iter().cloned().collect();
        println!(
            "==> first run, interrupted: {} orders planned, {} executed, {} left Pending, {} awaiting review",
            report.orders.len(),
            report.dispatch.executed.len(),
            report.dispatch.pending.len(),
            report.awaiting_review.len()
        );
        approved = report.awaiting_review.clone();
        for id in &approved {
            first.approve(id, "reviewer@example.test").await?;
        }
        println!(
            "    a reviewer approved {} privileged accounts",
            approved.len()
        );
        println!("    orders by state: {:?}", store.order_counts().await?);
        // The process stops here: the store is closed, the planner forgotten.
    }

    // 2. The next start: a new store on the same file, a new job.
    let store = Arc::new(SqliteStore::open(
        &path,
        SqliteOptions::new().with_current_key(sealing_key()),
    )?);
    let quiet: Arc<dyn EventSink> = Arc::new(autoprov::orchestrator::events::NoEvents);
    let mut next = job(&system, store.clone(), clock.clone(), quiet)?;
    let report = next
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await?;
    let sent: BTreeSet<&OrderId> = report
        .dispatch
        .executed
        .iter()
        .chain(&report.resumed.executed)
        .collect();
    let sent_twice = sent
        .iter()
        .filter(|id| executed_before.contains(**id))
        .count();
    let approved_sent = approved.iter().filter(|id| sent.contains(id)).count();
    println!("==> resumed after the restart");
    println!(
        "    {} orders sent: those the interrupted run left Pending, and the {} approved ones",
        sent.len(),
        approved_sent
    );
    println!(
        "    {} of the {} orders executed before the restart planned or sent again",
        sent_twice,
        executed_before.len()
    );
    println!(
        "    {} review decisions asked again",
        report.awaiting_review.len()
    );
    next.run_incremental(JobOptions::default(), &CancellationToken::new())
        .await?;
    let counts = store.order_counts().await?;
    println!("==> the next synchronization verifies: {counts:?}");
    let audit = store.audit_page(None, 100).await?;
    let approvals = audit
        .iter()
        .filter(|(_, e)| e.action == AuditAction::Approved)
        .count();
    println!("    audit trail: {approvals} approvals, with who and when");
    println!(
        "    directory: {} effects applied twice",
        system.repeated_effects().len()
    );
    let all_verified = counts.keys().all(|s| *s == ProvisioningState::Verified);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    if sent_twice > 0 || !report.awaiting_review.is_empty() || !all_verified {
        return Err("the resumed run did not converge as expected".into());
    }
    println!("    every order Verified.");
    Ok(())
}
