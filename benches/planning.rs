//! Planning speed on a synthetic organization (one account per identity, ~10 group
//! memberships, ~9 scalar properties, 5% drift).
//!
//! ```text
//! cargo bench --bench planning                     # 100,000 identities (full + incremental)
//! cargo bench --bench planning -- upsert_lookups   # loading 1,000 and 10,000 OUs
//! AUTOPROV_BENCH_1M=1 cargo bench --bench planning  # adds 1,000,000 identities
//! cargo bench --bench planning -- ou_rename        # one OU renamed: reverse index vs everyone
//! ```
//!
//! Peak memory is measured outside criterion, on the same generator:
//! `/usr/bin/time -v target/release/examples/plan_synthetic 100000` (see the orchestrator
//! README).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use autoprov::core::Resource;
use autoprov::orchestrator::synthetic::SyntheticOrg;
use autoprov::orchestrator::{PlanOptions, Planner};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::time::Duration;

fn loaded(n: usize) -> (SyntheticOrg, Planner) {
    let org = SyntheticOrg::new(n);
    let mut planner = org.planner();
    // The first full plan installs the fragments the incremental runs build on.
    planner.plan_full(
        org.now(),
        PlanOptions::default(),
        &autoprov::planner::OrderStates::new(),
    );
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
            b.iter(|| {
                planner.plan_full(
                    org.now(),
                    PlanOptions::default(),
                    &autoprov::planner::OrderStates::new(),
                )
            });
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
                planner.plan_incremental(
                    org.now(),
                    PlanOptions::default(),
                    &autoprov::planner::OrderStates::new(),
                )
            });
        });
    }
    group.finish();
}

/// Renaming one OU (of 50) and re-planning: the reverse index of query keys re-plans the ~2%
/// of owners whose department searches it; the baseline, in the same run, re-plans everyone
/// (as every lookup change did before the index).
fn ou_rename(c: &mut Criterion) {
    use autoprov::orchestrator::synthetic::OU_TYPE;
    let mut group = c.benchmark_group("ou_rename");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    let n = 100_000;
    let (org, mut planner) = loaded(n);
    let ou = org.ous().remove(1);
    let mut round = 0usize;
    let mut rename = |planner: &mut Planner| {
        round += 1;
        let name = if round % 2 == 1 {
            "D001-renamed"
        } else {
            "D001"
        };
        planner.upsert_lookup(OU_TYPE, ou.clone().with("ou", name));
    };
    for everyone in [false, true] {
        let id = if everyone {
            "replan_everyone"
        } else {
            "reverse_index"
        };
        group.bench_with_input(BenchmarkId::new(id, n), &n, |b, _| {
            b.iter(|| {
                rename(&mut planner);
                if everyone {
                    planner.mark_all_dirty();
                }
                planner.plan_incremental(
                    org.now(),
                    PlanOptions::default(),
                    &autoprov::planner::OrderStates::new(),
                )
            });
        });
    }
    group.finish();
}

/// Loading lookup resources (OUs that query rules search) one by one: the cost per OU at
/// 10,000 OUs against 1,000, in the same run. Linear loading keeps the ratio near 1; a rebuild
/// per call (as before) makes it ~10.
fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("upsert_lookups");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let ous: Vec<Resource> = (0..n)
            .map(|i| {
                Resource::new(format!("OU=ou{i},DC=example,DC=test"))
                    .with_entity_type("organizationalUnit")
                    .with("ou", format!("ou{i}"))
            })
            .collect();
        group.throughput(criterion::Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("ous", n), |b| {
            b.iter_batched(
                || {
                    (
                        Planner::new(autoprov::orchestrator::demo::planner_config()).unwrap(),
                        ous.clone(),
                    )
                },
                |(mut planner, ous)| {
                    for ou in ous {
                        planner.upsert_lookup("organizationalUnit", ou);
                    }
                    planner
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, full_plan, incremental, ou_rename, lookups);
criterion_main!(benches);
