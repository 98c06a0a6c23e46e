//! Plans a synthetic organization once and prints the timings; run it under
//! `/usr/bin/time -v` to read the peak memory (maximum resident set size):
//!
//! ```text
//! cargo build --release -p autoprov-orchestrator --example plan_synthetic
//! /usr/bin/time -v target/release/examples/plan_synthetic 100000
//! ```

use autoprov_orchestrator::PlanOptions;
use autoprov_orchestrator::synthetic::SyntheticOrg;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let org = SyntheticOrg::new(n);
    let now = org.now();

    let t = Instant::now();
    let mut planner = org.planner();
    let load = t.elapsed();

    let repeat: usize = std::env::var("PLAN_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut full = std::time::Duration::MAX;
    let mut plan = None;
    for _ in 0..repeat {
        let t = Instant::now();
        plan = Some(planner.plan_full(now, PlanOptions::default()));
        full = full.min(t.elapsed());
    }
    let plan = plan.unwrap_or_else(|| planner.current_plan(PlanOptions::default()));
    let orders = plan.orders().count();
    drop(plan);

    // Incremental: one owner changes title, then is re-planned alone.
    let mut owner = org.owner(n / 2);
    let mut worst = std::time::Duration::ZERO;
    let mut total = std::time::Duration::ZERO;
    let rounds = 1_000;
    for round in 0..rounds {
        owner = owner.with("title", format!("T{:02}", round % 30));
        let t = Instant::now();
        planner.upsert_owner(owner.clone());
        let delta = planner.plan_incremental(now, PlanOptions::default());
        let e = t.elapsed();
        assert_eq!(delta.owners.len(), 1);
        worst = worst.max(e);
        total += e;
    }
    println!(
        "identities={n} load={load:.2?} full_plan(best of {repeat})={full:.2?} orders={orders} \
         incremental_mean={:.1?} incremental_max={worst:.1?}",
        total / rounds
    );
}
