//! Planning speed on a synthetic organization (one account per identity, ~10 group
//! memberships, ~9 scalar properties, 5% drift).
//!
//! ```text
//! cargo bench --bench planning                     # 100,000 identities (full + incremental)
//! AUTOPROV_BENCH_1M=1 cargo bench --bench planning  # adds 1,000,000 identities
//! ```
//!
//! Peak memory is measured outside criterion, on the same generator:
//! `/usr/bin/time -v target/release/examples/plan_synthetic 100000` (see the orchestrator
//! README).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use autoprov::orchestrator::synthetic::SyntheticOrg;
use autoprov::orchestrator::{PlanOptions, Planner};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::time::Duration;

fn loaded(n: usize) -> (SyntheticOrg, Planner) {
    let org = SyntheticOrg::new(n);
    let mut planner = org.planner();
    // The first full plan installs the fragments the incremental runs build on.
    planner.plan_full(org.now(), PlanOptions::default());
    (org, planner)
}

fn sizes() -> Vec<usize> {
    let mut sizes = vec![100_000];
    if std::env::var_os("AUTOPROV_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    sizes
}

fn full_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_plan");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for n in sizes() {
        let (org, mut planner) = loaded(n);
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 90 } else { 15 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| planner.plan_full(org.now(), PlanOptions::default()));
        });
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("incremental_one_dirty_owner");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for n in sizes() {
        let (org, mut planner) = loaded(n);
        let mut owner = org.owner(n / 2);
        let mut round = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // A mover: the title changes, so a group membership and a scalar change.
                round += 1;
                owner = owner.clone().with("title", format!("T{:02}", round % 30));
                planner.upsert_owner(owner.clone());
                planner.plan_incremental(org.now(), PlanOptions::default())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, full_plan, incremental);
criterion_main!(benches);
