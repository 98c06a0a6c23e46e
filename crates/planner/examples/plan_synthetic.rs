//! Plans a synthetic organization once and prints the timings; run it under
//! `/usr/bin/time -v` to read the peak memory (maximum resident set size):
//!
//! ```text
//! cargo build --release -p autoprov-planner --features demo --example plan_synthetic
//! /usr/bin/time -v target/release/examples/plan_synthetic 100000
//! ```
//!
//! With `--features demo,example-mimalloc` it runs on the mimalloc allocator instead of the
//! system's (glibc's): the planner allocates per owner and per target, and glibc's free lists
//! cost about a quarter of the load time and a tenth of the peak memory. The allocator is the
//! binary's choice, not the library's. `threads=` is rayon's pool (set `RAYON_NUM_THREADS`).
//!
//! The load time includes generating the organization (an `Owner` and a `Resource` per
//! identity, as a connector's export hands them over): `load=` is the whole load,
//! `load_planner=` the time spent inside the planner's upserts (`upsert_owner` for each owner
//! as it is generated, `upsert_targets` for each page of `synthetic::LOAD_CHUNK` targets) and
//! `load_generate=` the rest, the fixture's own share.
//! With `PLAN_GENERATE=1` the example also first generates everything once without loading it
//! and prints `generate=`. With `PLAN_LOAD=ref` the organization is streamed instead
//! (`SyntheticOrg::load_streaming_with`): one `Owner` and one `Resource` refilled in place and
//! handed over by reference (`upsert_owner_ref`, `upsert_target`), as a load from a store can;
//! `load_planner=` is then the time inside those two calls.
//!
//! `PLAN_REPEAT=n` plans `n` times: `first=` is the first full plan (it establishes every
//! owner's values), `median=` / `best=` are over all `n`.

use autoprov_planner::PlanOptions;
use autoprov_planner::synthetic::SyntheticOrg;
use std::time::Instant;

#[cfg(feature = "example-mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let org = SyntheticOrg::new(n);
    let now = org.now();
    let generate = std::env::var("PLAN_GENERATE")
        .is_ok_and(|v| v == "1")
        .then(|| {
            let t = Instant::now();
            let mut values = 0usize;
            for (owner, target) in org.identities() {
                values += owner.properties.len() + target.map_or(0, |r| r.values.len());
            }
            std::hint::black_box(values);
            t.elapsed()
        });

    let cpu = cpu_seconds();
    let sys = sys_seconds();
    let t = Instant::now();
    let mut planner = match autoprov_planner::Planner::new(org.config()) {
        Ok(p) => p,
        Err(e) => panic!("the synthetic configuration is valid: {e}"),
    };
    // The planner's share: every upsert timed (two clock reads per owner, some 50 ns).
    let mut load_planner = std::time::Duration::ZERO;
    let mut upsert_owner_time = std::time::Duration::ZERO;
    // `PLAN_LOAD=ref`: the streaming load (`SyntheticOrg::load_streaming_with`): one owner
    // and one resource refilled in place and handed over by reference.
    if std::env::var("PLAN_LOAD").is_ok_and(|v| v == "ref") {
        let rt = autoprov_planner::synthetic::ACCOUNT_TYPE.into();
        let mut target_time = std::time::Duration::ZERO;
        org.load_streaming_with(
            &mut planner,
            |planner, owner| {
                let t = Instant::now();
                planner.upsert_owner_ref(owner);
                upsert_owner_time += t.elapsed();
            },
            |planner, target| {
                let t = Instant::now();
                let loaded = planner.upsert_target(&rt, target);
                assert!(loaded.is_ok(), "{loaded:?}");
                target_time += t.elapsed();
            },
        );
        load_planner += target_time;
    } else {
        org.load_with(
            &mut planner,
            |planner, owner| {
                let t = Instant::now();
                planner.upsert_owner(owner);
                upsert_owner_time += t.elapsed();
            },
            |planner, targets| {
                let t = Instant::now();
                let loaded = planner
                    .upsert_targets(&autoprov_planner::synthetic::ACCOUNT_TYPE.into(), targets);
                assert!(loaded.is_ok(), "{loaded:?}");
                load_planner += t.elapsed();
            },
        );
    }
    load_planner += upsert_owner_time;
    let load = t.elapsed();
    let load_cpu = cpu_seconds() - cpu;
    let load_sys = sys_seconds() - sys;
    let peak_after_load = peak_mib();

    let repeat: usize = std::env::var("PLAN_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // `PLAN_CHUNKS=a,b,…`: full plans alternate between these chunk sizes
    // (`Planner::set_full_plan_chunk`) and a median is printed per size: an A/B in one process,
    // where the machine's swings hit both sides alike.
    let chunks: Vec<usize> = std::env::var("PLAN_CHUNKS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_default();
    let mut per_chunk: Vec<Vec<std::time::Duration>> = vec![Vec::new(); chunks.len()];
    let mut fulls = Vec::with_capacity(repeat);
    let mut full_cpu = f64::MAX;
    let mut plan = None;
    for round in 0..repeat {
        if let Some(chunk) = chunks.get(round % chunks.len().max(1)) {
            planner.set_full_plan_chunk(*chunk);
        }
        // The previous plan is dropped first: a caller keeps one plan at a time.
        drop(plan.take());
        let cpu = cpu_seconds();
        let t = Instant::now();
        plan = Some(planner.plan_full(
            now,
            PlanOptions::default(),
            &autoprov_planner::OrderStates::new(),
        ));
        fulls.push(t.elapsed());
        if let Some(times) = per_chunk.get_mut(round % chunks.len().max(1)) {
            times.push(t.elapsed());
        }
        full_cpu = full_cpu.min(cpu_seconds() - cpu);
    }
    for (chunk, times) in chunks.iter().zip(&mut per_chunk) {
        times.sort();
        if let Some(median) = times.get(times.len() / 2) {
            print!("chunk{chunk}_median={median:.2?} ");
        }
    }
    let first_plan = fulls.first().copied().unwrap_or_default();
    let mut sorted = fulls.clone();
    sorted.sort();
    let full = sorted.first().copied().unwrap_or_default();
    let full_median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let plan = plan.unwrap_or_else(|| planner.current_plan(PlanOptions::default()));
    let orders = plan.orders().count();
    // `PLAN_DIGEST=1`: a digest of the whole plan's JSON, so that two builds can be checked to
    // plan byte-identically (same orders, ids and order).
    let digest = std::env::var("PLAN_DIGEST")
        .is_ok_and(|v| v == "1")
        .then(|| {
            let json = plan.to_json();
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in json.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            (h, json.len())
        });
    drop(plan);

    // Incremental: one owner changes title, then is re-planned alone.
    let mut owner = org.owner(n / 2);
    let mut worst = std::time::Duration::ZERO;
    let mut total = std::time::Duration::ZERO;
    let rounds = 1_000;
    let mut samples = Vec::with_capacity(rounds as usize);
    for round in 0..rounds {
        owner = owner.with("title", format!("T{:02}", round % 30));
        let t = Instant::now();
        planner.upsert_owner(owner.clone());
        let delta = planner.plan_incremental(
            now,
            PlanOptions::default(),
            &autoprov_planner::OrderStates::new(),
        );
        let e = t.elapsed();
        assert_eq!(delta.owners.len(), 1);
        worst = worst.max(e);
        total += e;
        samples.push(e);
    }
    let first = samples[0];
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    if let Some((digest, len)) = digest {
        print!("plan_json_fnv1a={digest:016x} plan_json_bytes={len} ");
    }
    if let Some(generate) = generate {
        print!("generate={generate:.2?} ");
    }
    if let (Some(load), Some(all), Some(now)) = (peak_after_load, peak_mib(), status_mib("VmRSS:"))
    {
        print!("peak_after_load={load}MiB peak={all}MiB rss_at_end={now}MiB ");
    }
    println!(
        "identities={n} threads={} load={load:.2?} load_planner={load_planner:.2?} \
         load_generate={:.2?} load_cpu={load_cpu:.2}s load_sys={load_sys:.2}s \
         full_plan(of {repeat}): first={first_plan:.2?} median={full_median:.2?} best={full:.2?} \
         full_plan_cpu={full_cpu:.2}s orders={orders} \
         incremental: first={first:.1?} median={median:.1?} mean={:.1?} p99={p99:.1?} \
         max={worst:.1?}",
        rayon::current_num_threads(),
        load.saturating_sub(load_planner),
        total / rounds
    );
}

/// CPU time (user + system, all threads) of this process so far, from `/proc/self/stat`, so a
/// run on a busy machine can be judged by the work done rather than by the wall clock.
/// `NaN` where `/proc` is not available.
fn cpu_seconds() -> f64 {
    stat_seconds(&[11, 12])
}

/// System CPU time of this process so far (the kernel's share of [`cpu_seconds`]: page faults,
/// zeroing fresh pages, returning memory).
fn sys_seconds() -> f64 {
    stat_seconds(&[12])
}

/// The sum of the `/proc/self/stat` clock fields at `indexes` (counted after the name), in s.
fn stat_seconds(indexes: &[usize]) -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit(')').next() else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: f64 = indexes
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // The kernel reports in USER_HZ, 100 on Linux.
    ticks / 100.0
}

/// The peak resident set so far (`VmHWM` of `/proc/self/status`), in MiB; `None` where it
/// cannot be read.
fn peak_mib() -> Option<u64> {
    status_mib("VmHWM:")
}

/// A memory line of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in MiB.
fn status_mib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
