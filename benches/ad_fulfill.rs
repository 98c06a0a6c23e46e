//! Throughput of the AD package against bare ldap3, in one run, against the same directory.
//!
//! 1. `modified`: N Modified orders (one changed attribute each) through `AdConnector::fulfill`
//!    at concurrency C, against the LDAP operations they amount to through bare ldap3 at the
//!    same concurrency over the same number of connections.
//!    - `connector`: orders as the planner writes them, whose `Resource` carries the current
//!      value: the connector's one-operation compare-and-swap path;
//!    - `bare_modify`: one modify-replace per order, what a hand-written client does;
//!    - `bare_compare_and_swap`: the connector's operation (delete old value + add new value,
//!      one modify) through bare ldap3;
//!    - `connector_read`: orders without current values: the connector reads the target,
//!      compares and writes what differs (two operations);
//!    - `bare_read_modify`: the same two operations through bare ldap3.
//! 2. `export`: a complete paged export of 5,000 accounts through `AdConnector::export`,
//!    against the same paged search (same filter, attributes and page size) through bare ldap3.
//!
//! After criterion's measurements the bench runs each comparison's two sides back to back, in
//! alternating order, for several rounds, and prints the throughput ratios (target: connector
//! ≥ 0.9 × bare ldap3).
//!
//! ```text
//! bash scripts/ad-test-server.sh start && source /var/tmp/autoprov-ad/env
//! cargo bench --bench ad_fulfill --features ad
//! ```
//!
//! Without the server's environment the bench prints that it skipped. Knobs:
//! `AUTOPROV_BENCH_ORDERS` (N, default 200), `AUTOPROV_BENCH_CONCURRENCY` (C, default 8),
//! `AUTOPROV_BENCH_ACCOUNTS` (default 5000), `AUTOPROV_BENCH_ROUNDS` (interleaved rounds,
//! default 15), `AUTOPROV_BENCH_CRITERION=0` (only the interleaved rounds),
//! `AUTOPROV_BENCH_ONLY=export` (only the comparisons whose label contains it). Each
//! comparison also prints the CPU per item of this client and of Samba on each side.
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

#[path = "support/cpu.rs"]
mod cpu;

use autoprov::ad::AdConnector;
use autoprov::connector::{Connector, ExportItem, ExportRequest, Fulfillment};
use autoprov::core::{ChangeType, Changes, OrderId, ProvisioningOrder, StableId};
use autoprov_ad::test_fixtures::{self, AdEnv};
use criterion::{Criterion, SamplingMode, Throughput};
use futures::StreamExt as _;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, Mod, Scope, SearchEntry};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 4;
const PAGE_SIZE: u32 = 500;
const USER_FILTER: &str = "(&(objectCategory=person)(objectClass=user))";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fixture {
    ad: AdConnector,
    bare: Vec<Ldap>,
    ou: String,
    /// (DN, objectGUID) of the accounts the Modified orders change.
    targets: Vec<(String, StableId)>,
    accounts_ou: String,
    accounts: usize,
    counter: AtomicU64,
    concurrency: usize,
    /// The description each target holds now (what the planner's `Resource` would carry).
    current: std::sync::Mutex<Vec<String>>,
}

fn order(target: &(String, StableId), current: Option<&str>, value: String) -> ProvisioningOrder {
    let mut changes = Changes::default();
    changes.set("description", value);
    let mut order = test_fixtures::order(
        ChangeType::Modified,
        "user",
        changes,
        Some((target.0.as_str(), Some(&target.1))),
    );
    order.order_id = OrderId::new(format!("bench-{}", target.1));
    order.connection = None;
    if let Some(current) = current {
        order.resource = order.resource.map(|r| r.with("description", current));
    }
    order
}

async fn add_users(ldap: &Ldap, parent: &str, prefix: &str, n: usize, concurrency: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let mut ldap = ldap.clone();
            async move {
                let dn = format!("CN={prefix}{i:05},{parent}");
                let sam = format!("{prefix}{i}");
                let attrs = vec![
                    ("objectClass", HashSet::from(["user"])),
                    ("sAMAccountName", HashSet::from([sam.as_str()])),
                    ("userAccountControl", HashSet::from(["514"])),
                    ("description", HashSet::from(["initial"])),
                ];
                ldap.add(&dn, attrs)
                    .await
                    .expect("add")
                    .success()
                    .expect("add");
            }
        })
        .await;
}

async fn setup(env: &AdEnv) -> Fixture {
    let concurrency = knob("AUTOPROV_BENCH_CONCURRENCY", 8);
    let orders = knob("AUTOPROV_BENCH_ORDERS", 200);
    let accounts = knob("AUTOPROV_BENCH_ACCOUNTS", 5000);
    let ad = env
        .builder("bench")
        .connections(CONNECTIONS)
        .page_size(PAGE_SIZE)
        .build()
        .await
        .expect("the connector connects");
    let mut pool = Vec::new();
    for _ in 0..CONNECTIONS {
        pool.push(test_fixtures::admin_ldap(env).await);
    }
    let mut admin = pool[0].clone();
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xffff_ffff)
            .unwrap_or(0)
    );
    let ou = format!("OU=autoprov-bench-{tag},{}", env.base_dn);
    let accounts_ou = format!("OU=accounts,{ou}");
    let targets_ou = format!("OU=targets,{ou}");
    for dn in [&ou, &accounts_ou, &targets_ou] {
        admin
            .add(
                dn,
                vec![("objectClass", HashSet::from(["organizationalUnit"]))],
            )
            .await
            .expect("add OU")
            .success()
            .expect("add OU");
    }
    let started = Instant::now();
    add_users(&admin, &targets_ou, &format!("t{tag}"), orders, concurrency).await;
    add_users(
        &admin,
        &accounts_ou,
        &format!("a{tag}"),
        accounts,
        concurrency,
    )
    .await;
    eprintln!(
        "setup: {orders} target accounts and {accounts} export accounts created in {:.1?}",
        started.elapsed()
    );
    let (entries, _) = admin
        .search(
            &targets_ou,
            Scope::OneLevel,
            "(objectClass=user)",
            vec!["objectGUID"],
        )
        .await
        .expect("search")
        .success()
        .expect("search");
    let targets: Vec<(String, StableId)> = entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| {
            let guid = autoprov::ad::guid::guid_to_string(&e.bin_attrs["objectGUID"][0]).unwrap();
            (e.dn, StableId::new(guid))
        })
        .collect();
    Fixture {
        ad,
        bare: pool,
        ou,
        current: std::sync::Mutex::new(vec!["initial".to_owned(); targets.len()]),
        targets,
        accounts_ou,
        accounts,
        counter: AtomicU64::new(0),
        concurrency,
    }
}

impl Fixture {
    fn next_value(&self) -> String {
        format!("value {}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// N Modified orders through the connector, with or without the current values.
    async fn connector_round(&self, with_values: bool) -> Duration {
        let orders: Vec<ProvisioningOrder> = {
            let mut current = self.current.lock().unwrap();
            self.targets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let value = self.next_value();
                    let o = order(t, with_values.then_some(current[i].as_str()), value.clone());
                    current[i] = value;
                    o
                })
                .collect()
        };
        let started = Instant::now();
        futures::stream::iter(orders.iter())
            .for_each_concurrent(self.concurrency, |o| async move {
                match self.ad.fulfill(o).await {
                    Ok(Fulfillment::Executed(done)) => assert!(!done.is_noop()),
                    other => panic!("{other:?}"),
                }
            })
            .await;
        started.elapsed()
    }

    /// The same changes through bare ldap3: one modify each, read then modify, or the
    /// connector's compare-and-swap modify.
    async fn bare_round_with(&self, how: Bare) -> Duration {
        let read_first = how == Bare::ReadModify;
        let work: Vec<(usize, &(String, StableId), String, String)> = {
            let mut current = self.current.lock().unwrap();
            self.targets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let value = self.next_value();
                    let old = std::mem::replace(&mut current[i], value.clone());
                    (i, t, old, value)
                })
                .collect()
        };
        let started = Instant::now();
        futures::stream::iter(work)
            .for_each_concurrent(self.concurrency, |(i, (dn, guid), old, value)| async move {
                let mut ldap = self.bare[i % self.bare.len()].clone();
                let target = if read_first {
                    let (entries, _) = ldap
                        .search(
                            &format!("<GUID={guid}>"),
                            Scope::Base,
                            "(objectClass=*)",
                            vec![
                                "description",
                                "objectGUID",
                                "objectClass",
                                "sAMAccountName",
                                "CN",
                            ],
                        )
                        .await
                        .expect("read")
                        .success()
                        .expect("read");
                    let entry = SearchEntry::construct(entries.into_iter().next().expect("found"));
                    assert_ne!(entry.attrs.get("description"), Some(&vec![value.clone()]));
                    entry.dn
                } else {
                    dn.clone()
                };
                let (target, mods) = if how == Bare::CompareAndSwap {
                    (
                        target,
                        vec![
                            Mod::Delete("description", HashSet::from([old.as_str()])),
                            Mod::Add("description", HashSet::from([value.as_str()])),
                        ],
                    )
                } else {
                    (
                        target,
                        vec![Mod::Replace("description", HashSet::from([value.as_str()]))],
                    )
                };
                ldap.modify(&target, mods)
                    .await
                    .expect("modify")
                    .success()
                    .expect("modify");
            })
            .await;
        started.elapsed()
    }

    async fn connector_export(&self) -> Duration {
        let started = Instant::now();
        let mut stream = self
            .ad
            .export(
                ExportRequest::complete()
                    .of_types(["user".into()])
                    .within(self.accounts_ou.as_str()),
            )
            .await
            .expect("export");
        let mut n = 0;
        while let Some(item) = stream.next().await {
            if let ExportItem::Resource(_) = item.expect("export item") {
                n += 1;
            }
        }
        assert_eq!(n, self.accounts);
        started.elapsed()
    }

    async fn bare_export(&self) -> Duration {
        let started = Instant::now();
        let mut ldap = self.bare[0].clone();
        let adapters: Vec<Box<dyn Adapter<&str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE as i32)),
        ];
        let mut search = ldap
            .streaming_search_with(
                adapters,
                &self.accounts_ou,
                Scope::Subtree,
                USER_FILTER,
                vec!["*", "memberOf", "objectGUID", "userAccountControl"],
            )
            .await
            .expect("search");
        let mut n = 0;
        while let Some(entry) = search.next().await.expect("entry") {
            let _ = SearchEntry::construct(entry);
            n += 1;
        }
        search.finish().await.success().expect("search");
        assert_eq!(n, self.accounts);
        started.elapsed()
    }

    async fn run(&self, side: Side) -> Duration {
        match side {
            Side::Connector(with_values) => self.connector_round(with_values).await,
            Side::Bare(how) => self.bare_round_with(how).await,
            Side::ConnectorExport => self.connector_export().await,
            Side::BareExport => self.bare_export().await,
        }
    }

    /// Deletes the bench's entries one by one, then its OUs: a tree delete of thousands of
    /// entries would hold the server's write lock for minutes, stalling anything else using it.
    async fn teardown(&self) {
        let started = Instant::now();
        let mut admin = self.bare[0].clone();
        let adapters: Vec<Box<dyn Adapter<&str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE as i32)),
        ];
        let mut users = Vec::new();
        if let Ok(mut search) = admin
            .streaming_search_with(
                adapters,
                &self.ou,
                Scope::Subtree,
                "(objectClass=user)",
                vec!["1.1"],
            )
            .await
        {
            while let Ok(Some(entry)) = search.next().await {
                users.push(SearchEntry::construct(entry).dn);
            }
            let _ = search.finish().await;
        }
        let count = users.len();
        futures::stream::iter(users.into_iter().enumerate())
            .for_each_concurrent(self.concurrency, |(i, dn)| async move {
                let mut ldap = self.bare[i % self.bare.len()].clone();
                let _ = ldap.delete(&dn).await;
            })
            .await;
        let res = admin
            .with_controls(ldap3::controls::RawControl {
                ctype: "1.2.840.113556.1.4.805".into(),
                crit: true,
                val: None,
            })
            .delete(&self.ou)
            .await;
        eprintln!(
            "teardown: {count} accounts and {} deleted in {:.1?} ({:?})",
            self.ou,
            started.elapsed(),
            res.map(|r| r.rc)
        );
    }
}

/// A comparison: its label, its two sides, the items per round, and each round's two times.
/// A comparison: its label, its two sides, the items per round, and per round each side's
/// wall time and CPU (this client's, Samba's).
type Comparison = (
    &'static str,
    Side,
    Side,
    usize,
    Vec<(Duration, Duration)>,
    Cpu,
);

/// Summed CPU time of each side of a comparison: this client's and Samba's.
#[derive(Default)]
struct Cpu {
    client: [Duration; 2],
    samba: [Duration; 2],
}

impl Cpu {
    /// Runs `side` as side `i` (0 or 1), adding its CPU; returns its wall time.
    async fn measure(&mut self, i: usize, fixture: &Fixture, side: Side) -> Duration {
        let (client, samba) = cpu::cpu();
        let wall = fixture.run(side).await;
        let (client_after, samba_after) = cpu::cpu();
        if let (Some(a), Some(b)) = (client, client_after) {
            self.client[i] += b.saturating_sub(a);
        }
        if let (Some(a), Some(b)) = (samba, samba_after) {
            self.samba[i] += b.saturating_sub(a);
        }
        wall
    }
}

/// A criterion group: its name, the elements per iteration, and its (bench name, side) pairs.
type CriterionGroup = (&'static str, u64, &'static [(&'static str, Side)]);

/// One side of a comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Modified orders through the connector, with or without current values.
    Connector(bool),
    Bare(Bare),
    ConnectorExport,
    BareExport,
}

/// How bare ldap3 applies a change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bare {
    Modify,
    ReadModify,
    CompareAndSwap,
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let Some(env) = AdEnv::from_env() else {
        println!(
            "SKIPPED ad_fulfill: no AD test server (set AUTOPROV_AD_URL, run scripts/ad-test-server.sh start)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = rt.block_on(setup(&env));
    let n = fixture.targets.len();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();

    let with_criterion = knob("AUTOPROV_BENCH_CRITERION", 1) != 0;
    if with_criterion {
        let groups: [CriterionGroup; 2] = [
            (
                "modified",
                n as u64,
                &[
                    ("connector", Side::Connector(true)),
                    ("connector_read", Side::Connector(false)),
                    ("bare_modify", Side::Bare(Bare::Modify)),
                    ("bare_compare_and_swap", Side::Bare(Bare::CompareAndSwap)),
                    ("bare_read_modify", Side::Bare(Bare::ReadModify)),
                ],
            ),
            (
                "export",
                fixture.accounts as u64,
                &[
                    ("connector", Side::ConnectorExport),
                    ("bare", Side::BareExport),
                ],
            ),
        ];
        for (group, elements, sides) in groups {
            let mut g = c.benchmark_group(group);
            g.sampling_mode(SamplingMode::Flat);
            g.throughput(Throughput::Elements(elements));
            for &(name, side) in sides {
                g.bench_function(name, |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let f = &fixture;
                        async move {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                total += f.run(side).await;
                            }
                            total
                        }
                    })
                });
            }
            g.finish();
        }
    }

    // Interleaved rounds: the machine is shared (client and server on 2 cores, other work
    // around), so each comparison runs its two sides back to back, in alternating order, many
    // times; the ratio is total work over total time of each side.
    let rounds = knob("AUTOPROV_BENCH_ROUNDS", 15);
    let mut pairs: Vec<Comparison> = vec![
        (
            "modified, orders with current values: connector / bare ldap3 modify (target >= 0.90)",
            Side::Connector(true),
            Side::Bare(Bare::Modify),
            n,
            Vec::new(),
            Cpu::default(),
        ),
        (
            "modified, orders with current values: connector / bare ldap3 compare-and-swap (the same LDAP operations)",
            Side::Connector(true),
            Side::Bare(Bare::CompareAndSwap),
            n,
            Vec::new(),
            Cpu::default(),
        ),
        (
            "modified, orders without values: connector / bare ldap3 read+modify (the same LDAP operations)",
            Side::Connector(false),
            Side::Bare(Bare::ReadModify),
            n,
            Vec::new(),
            Cpu::default(),
        ),
        (
            "paged export: connector / bare ldap3 (target >= 0.95)",
            Side::ConnectorExport,
            Side::BareExport,
            fixture.accounts,
            Vec::new(),
            Cpu::default(),
        ),
    ];
    // `AUTOPROV_BENCH_ONLY=export` (any part of a label) keeps only the matching comparisons.
    if let Ok(only) = std::env::var("AUTOPROV_BENCH_ONLY") {
        pairs.retain(|p| p.0.contains(only.as_str()));
    }
    rt.block_on(async {
        // Warm-up, untimed: first connections, the connector's schema cache.
        for side in [
            Side::Connector(true),
            Side::Bare(Bare::Modify),
            Side::ConnectorExport,
            Side::BareExport,
        ] {
            fixture.run(side).await;
        }
        for round in 0..rounds {
            for (_, a, b, _, times, cpu) in pairs.iter_mut() {
                let f = &fixture;
                let (ta, tb) = if round % 2 == 0 {
                    let ta = cpu.measure(0, f, *a).await;
                    (ta, cpu.measure(1, f, *b).await)
                } else {
                    let tb = cpu.measure(1, f, *b).await;
                    (cpu.measure(0, f, *a).await, tb)
                };
                times.push((ta, tb));
            }
        }
    });
    println!(
        "\nad_fulfill summary: {rounds} interleaved rounds; N = {n} Modified orders per round at concurrency {} over {CONNECTIONS} connections; export of {} accounts, page size {PAGE_SIZE}",
        fixture.concurrency, fixture.accounts
    );
    for (label, _, _, items, times, cpu) in &pairs {
        let total_a: Duration = times.iter().map(|t| t.0).sum();
        let total_b: Duration = times.iter().map(|t| t.1).sum();
        let rate_a = per_second(items * times.len(), total_a);
        let rate_b = per_second(items * times.len(), total_b);
        let per_round = median(
            times
                .iter()
                .map(|(a, b)| b.as_secs_f64() / a.as_secs_f64())
                .collect(),
        );
        println!(
            "  {label}: {rate_a:.0}/s vs {rate_b:.0}/s, ratio {:.2} (median of rounds {per_round:.2})",
            rate_a / rate_b
        );
        let rounds: Vec<String> = times
            .iter()
            .map(|(a, b)| format!("{:.2}", b.as_secs_f64() / a.as_secs_f64()))
            .collect();
        println!("    rounds (even: connector first): {}", rounds.join(" "));
        // Where the time goes: the client and the directory share the cores.
        let per_item = |d: Duration| d.as_secs_f64() * 1e6 / (items * times.len()) as f64;
        println!(
            "    CPU per item: client {:.0} vs {:.0} µs, samba {:.0} vs {:.0} µs",
            per_item(cpu.client[0]),
            per_item(cpu.client[1]),
            per_item(cpu.samba[0]),
            per_item(cpu.samba[1]),
        );
        // For `scripts/bench.sh`, which regenerates the README's figures.
        let figure = if label
            .starts_with("modified, orders with current values: connector / bare ldap3 modify")
        {
            Some("ad_modify")
        } else if label.starts_with("paged export") {
            Some("ad_export")
        } else {
            None
        };
        if let Some(id) = figure {
            println!(
                "FIGURE {id}: **{per_round:.2}** median of {} rounds ({rate_a:.0} vs {rate_b:.0}/s, total ratio {:.2})",
                times.len(),
                rate_a / rate_b
            );
        }
    }
    rt.block_on(fixture.teardown());
    c.final_summary();
}
