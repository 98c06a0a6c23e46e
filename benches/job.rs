//! The cost of a quiet incremental job (nothing changed) as the order history grows.
//!
//! A long-running deployment accumulates finished (Verified) orders; an incremental job that
//! finds nothing to do should cost the same whether the store holds none of them or 100,000.
//! Each figure is measured against the same job on a store without history, in the same run:
//! target ratio ≤ 2 at 100,000 finished orders.
//!
//! Run: `cargo bench --bench job`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use autoprov::connector::{ConnectorExt as _, ExportRequest};
use autoprov::core::{ConnectionMode, ProvisioningState};
use autoprov::orchestrator::clock::ManualClock;
use autoprov::orchestrator::demo;
use autoprov::orchestrator::events::NoEvents;
use autoprov::orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov::orchestrator::store::{MemoryStore, OrderRecord, Store};
use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A demo organization of 200 people, provisioned and verified, plus `history` finished orders.
fn settled_job(rt: &tokio::runtime::Runtime, history: usize) -> ProvisioningJob {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now));
    let (system, mut job) = demo::build(
        demo::people(200, now),
        store.clone(),
        clock.clone(),
        Arc::new(NoEvents),
    )
    .unwrap();
    rt.block_on(async {
        let cancel = CancellationToken::new();
        for _ in 0..3 {
            clock.advance(chrono::TimeDelta::minutes(5));
            let r = job
                .run_incremental(JobOptions::default(), &cancel)
                .await
                .unwrap();
            assert!(r.dispatch.errored.is_empty());
            for id in r.awaiting_review {
                job.approve(&id, "bench").await.unwrap();
            }
        }
        let template = store
            .orders_page(None, 1)
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("the demo provisions accounts");
        let records: Vec<OrderRecord> = (0..history)
            .map(|i| {
                let mut order = (*template.order).clone();
                order.order_id = format!("history-{i:07}").as_str().into();
                OrderRecord::new(
                    order,
                    ConnectionMode::Automated,
                    ProvisioningState::Verified,
                    now,
                )
            })
            .collect();
        store.insert_orders(&records).await.unwrap();
        let accounts = system
            .export_all(ExportRequest::complete())
            .await
            .unwrap()
            .resources
            .len();
        assert!(
            accounts > 200,
            "the demo directory is provisioned: {accounts}"
        );
    });
    job
}

fn quiet_incremental(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("quiet_incremental_job");
    group.sample_size(20);
    for history in [0usize, 100_000] {
        let mut job = settled_job(&rt, history);
        let cancel = CancellationToken::new();
        group.bench_function(BenchmarkId::new("finished_orders", history), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = job
                        .run_incremental(JobOptions::default(), &cancel)
                        .await
                        .unwrap();
                    assert!(r.dispatch.executed.is_empty(), "nothing to do");
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, quiet_incremental);
criterion_main!(benches);
