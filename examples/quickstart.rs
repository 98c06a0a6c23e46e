//! The main job on the embedded default managed system: a whole provisioning cycle in memory.
//!
//! An HR source of three dozen identities, a policy (an account per employee, the OU of the
//! department, groups by department and role, a privileged account type that requires
//! provisioning review, accounts disabled before arrival) and the in-memory directory:
//!
//! 1. joiners ⇒ accounts created; the privileged accounts wait in review;
//! 2. review approves them ⇒ they are created; the next synchronization verifies everything;
//! 3. a manual assignment request adds a group, is approved, provisioned and verified;
//! 4. a mover (department change ⇒ OU move and group swap) and a leaver.
//!
//! Run: `cargo run --example quickstart`

use autoprov::connector::InMemoryConnector;
use autoprov::core::{
    ApprovalWorkflowType, AssignmentRequest, OrderId, Owner, OwnerId, PropertyValue,
    ProvisioningState, RequestKind, RequestedAssignment, ScalarValue,
};
use autoprov::orchestrator::clock::{Clock, ManualClock};
use autoprov::orchestrator::demo::{self, ACCOUNT};
use autoprov::orchestrator::events::{EventSink, JobEvent, ValueChange};
use autoprov::orchestrator::job::{JobOptions, JobReport, ProvisioningJob};
use autoprov::orchestrator::store::{DEFAULT_PAGE, MemoryStore, StoreExt};
use chrono::{TimeDelta, TimeZone, Utc};
use futures::TryStreamExt as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Prints progress as it happens and keeps each order's old → new values for the report.
#[derive(Default)]
struct Progress {
    changes: Mutex<BTreeMap<OrderId, Vec<ValueChange>>>,
}

impl EventSink for Progress {
    fn emit(&self, event: JobEvent) {
        match event {
            JobEvent::StepStarted { step } => print!("    {step:<8}"),
            JobEvent::StepFinished { summary, .. } => println!(" {summary}"),
            JobEvent::Progress {
                total,
                done,
                failed,
            } if done == total || done % 10 == 0 => {
                let failed = if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                };
                print!(" [{done}/{total}{failed}]");
            }
            JobEvent::OrderFinished { order, changes, .. } => {
                self.changes
                    .lock()
                    .unwrap()
                    .entry(order)
                    .or_default()
                    .extend(changes);
            }
            JobEvent::CircuitOpened { connection, .. } => {
                println!("    ! connection {connection}: circuit opened, dispatch paused")
            }
            _ => {}
        }
    }
}

async fn run(
    job: &mut ProvisioningJob,
    clock: &ManualClock,
    title: &str,
    incremental: bool,
) -> JobReport {
    clock.advance(TimeDelta::minutes(15));
    println!("\n==> {title}");
    let cancel = CancellationToken::new();
    let report = if incremental {
        job.run_incremental(JobOptions::default(), &cancel).await
    } else {
        job.run_complete(JobOptions::default(), &cancel).await
    }
    .expect("the job runs");
    println!(
        "    => {:?}: {} orders, {} executed, {} errored, {} awaiting review, {} verified",
        report.run.status,
        report.orders.len(),
        report.dispatch.executed.len(),
        report.dispatch.errored.len(),
        report.awaiting_review.len(),
        report.verification.verified.len()
    );
    report
}

fn text(o: &Owner, p: &str) -> String {
    o.get(p)
        .and_then(PropertyValue::as_scalar)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let started = std::time::Instant::now();
    let today = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(today));
    let store = Arc::new(MemoryStore::new());
    let progress = Arc::new(Progress::default());

    // The HR source: 36 employees, plus one who arrives in a week.
    let mut people = demo::people(36, today);
    people.push(demo::employee(
        99,
        "Noor",
        "Haddad",
        "Sales",
        "Specialist",
        today + TimeDelta::days(7),
    ));
    let hr: BTreeMap<OwnerId, Owner> = people.iter().map(|o| (o.id.clone(), o.clone())).collect();

    let (directory, mut job): (InMemoryConnector, ProvisioningJob) =
        demo::build(people, store.clone(), clock.clone(), progress.clone())?;
    println!(
        "autoprov quickstart: {} identities, in-memory directory {}",
        hr.len(),
        demo::BASE_DN
    );

    // 1. Joiners.
    run(&mut job, &clock, "complete job: joiners", false).await;

    // 2. Provisioning review approves the privileged accounts.
    let reviews: Vec<(OrderId, String)> = job
        .planner()
        .pending_reviews()
        .iter()
        .filter_map(|i| i.order.as_ref().map(|o| (o.order_id.clone(), o.label())))
        .collect();
    println!("\n==> provisioning review");
    for (id, label) in &reviews {
        job.approve(id, "quickstart reviewer").await?;
        println!("    approved {label}");
    }
    run(&mut job, &clock, "incremental job: approved accounts", true).await;
    run(
        &mut job,
        &clock,
        "incremental job: synchronize and verify",
        true,
    )
    .await;

    // 3. A manual assignment request: one approval step, then automatic provisioning.
    let requester = OwnerId::new("E0005");
    let mut request = AssignmentRequest::new(
        "REQ-0001",
        requester.clone(),
        RequestKind::Add,
        RequestedAssignment {
            resource_type: ACCOUNT.into(),
            scalar: None,
            navigation: Some(("memberOf".into(), demo::group("VPN-Users"))),
        },
        ApprovalWorkflowType::One,
    );
    request.submit()?;
    println!(
        "\n==> assignment request REQ-0001: VPN-Users for {} ({:?})",
        hr[&requester].identifier,
        request.workflow_state()
    );
    request.approve(1)?;
    println!(
        "    approved by the manager ({:?})",
        request.workflow_state()
    );
    job.planner_mut().upsert_request(request)?;
    run(&mut job, &clock, "incremental job: the request", true).await;
    run(
        &mut job,
        &clock,
        "incremental job: verify the request",
        true,
    )
    .await;

    // 4. A mover and a leaver.
    let mover = hr[&OwnerId::new("E0002")]
        .clone()
        .with("department", "Sales");
    println!(
        "\n==> HR: {} moves from Finance to Sales; {} leaves",
        mover.identifier,
        hr[&OwnerId::new("E0003")].identifier
    );
    job.planner_mut().upsert_owner(mover);
    job.planner_mut()
        .upsert_owner(hr[&OwnerId::new("E0003")].clone().with(
            "departure",
            ScalarValue::from(clock.now() - TimeDelta::days(1)),
        ));
    run(&mut job, &clock, "incremental job: mover and leaver", true).await;
    run(&mut job, &clock, "incremental job: verify", true).await;

    // The report: per owner, its orders, old → new values and states.
    println!("\n==> report (per owner: orders, old → new values, state)");
    let records: Vec<_> = store.orders_stream(DEFAULT_PAGE).try_collect().await?;
    let changes = progress.changes.lock().unwrap().clone();
    let mut by_owner: BTreeMap<OwnerId, Vec<_>> = BTreeMap::new();
    for r in &records {
        if let Some(o) = r.order.owner_id() {
            by_owner.entry(o.clone()).or_default().push(r);
        }
    }
    for (owner, orders) in &by_owner {
        let o = &hr[owner];
        println!(
            "  {owner} {} ({}, {})",
            o.identifier,
            text(o, "department"),
            text(o, "title")
        );
        for r in orders {
            println!(
                "    {:<8} {:<24} {}",
                r.order.change_type.to_string(),
                r.order.resource_type.identifier,
                r.state
            );
            let lines = changes.get(&r.order.order_id).cloned().unwrap_or_default();
            let detailed = r.order.change_type != autoprov::core::ChangeType::Added
                || owner.as_str() == "E0000"
                || owner.as_str() == "E0099";
            if detailed {
                for c in lines {
                    println!(
                        "             {:<22} {} → {}",
                        c.property,
                        if c.old.is_empty() { "∅" } else { &c.old },
                        if c.new.is_empty() { "∅" } else { &c.new }
                    );
                }
            }
        }
    }
    let mut states: BTreeMap<ProvisioningState, usize> = BTreeMap::new();
    for r in &records {
        *states.entry(r.state).or_default() += 1;
    }
    let future = directory.snapshot().into_iter().find(|r| {
        r.get("employeeID").and_then(PropertyValue::as_scalar) == Some(&ScalarValue::from("E0099"))
    });
    println!(
        "\n  orders by state: {states:?}\n  future joiner E0099: account {} (enabled: {})",
        future
            .as_ref()
            .map(|r| r.id.to_string())
            .unwrap_or_else(|| "missing".into()),
        future
            .as_ref()
            .and_then(|r| r.get("enabled"))
            .and_then(PropertyValue::as_scalar)
            .map(|v| v.to_string())
            .unwrap_or_default()
    );
    println!(
        "  directory: {} objects, {} writes, {} effects applied twice; {} job runs in {:.2?}",
        directory.len(),
        directory.operation_log().len(),
        directory.repeated_effects().len(),
        store
            .job_runs_stream(DEFAULT_PAGE)
            .try_collect::<Vec<_>>()
            .await?
            .len(),
        started.elapsed()
    );
    let all_verified = states.keys().all(|s| *s == ProvisioningState::Verified);
    if !all_verified {
        return Err(format!("not everything was verified: {states:?}").into());
    }
    println!("  every order Verified.");
    Ok(())
}
