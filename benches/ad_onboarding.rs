//! A mass onboarding and a reorganisation against the Samba domain controller, three ways, in
//! one run against the same directory:
//!
//! - **joiners**: N people (default 2,000) get an account: created disabled with its initial
//!   password (`unicodePwd` in the add, over LDAPS, as the AD package writes it), then enabled
//!   with must-change-at-first-logon (`userAccountControl`, `pwdLastSet`), then added to 3 groups
//!   (`AllStaff`, their department's group, `VPN-Users`);
//! - **movers and leavers**: M people (default 500) change department: their account moves to
//!   the new department's OU, swaps its department group, and its `department` and `title`
//!   change; L others (default 200) leave: by the demo policy (the account exists until
//!   departure) their account is deleted, the project's default leaver policy for users.
//!
//! The ways, each on a fresh OU of its own with fresh OUs and groups below it:
//!
//! - `job`: the whole `ProvisioningJob` on the demo organization's policy (plus one
//!   navigation rule for the third group): a complete run (export, plan, dispatch) and the next
//!   incremental run that verifies what it wrote, for each phase, with the default dispatch
//!   policy and the AD package's default pool unless the knobs below say otherwise.
//!   Pre-existing-value classification is on (the resource types keep the default
//!   `NonConforming` behaviour, KeepAndReview); thresholds are off, since creating 2,000
//!   accounts at once is the point (as in benches/store.rs).
//! - `ldapmodify`: the same directory operations written as LDIF (one file per phase) and
//!   applied with `ldapmodify -c` (OpenLDAP's client, one connection, LDAPS).
//! - `ldap3_cN`: the same operations through bare ldap3 over N LDAPS connections, one person's
//!   operations in order on one connection, N people at a time; N is swept over 1, 2, 4, 8,
//!   16, 32 and the best total is the directory's maximum.
//!
//! Each way's result is checked afterwards against the directory (not timed): the number of
//! accounts, the `AllStaff` members, the moved titles. Then its OU is deleted (also when the
//! way fails). Prints users per second per phase and in total, the job's ratios against the
//! ldap3 maximum (goal ≥ 0.9) and against ldapmodify (goal ≥ 1.0), and `FIGURE` lines for
//! `scripts/bench.sh`.
//!
//! ```text
//! bash scripts/ad-test-server.sh start && source /var/tmp/autoprov-ad/env
//! cargo bench --features ad --bench ad_onboarding
//! ```
//!
//! Knobs: `AUTOPROV_BENCH_ONBOARD_JOINERS` (2000), `AUTOPROV_BENCH_ONBOARD_MOVERS` (500),
//! `AUTOPROV_BENCH_ONBOARD_LEAVERS` (200), `AUTOPROV_BENCH_ONBOARD_SWEEP` (`1,2,4,8,16,32`),
//! `AUTOPROV_BENCH_ONBOARD_ROUNDS` (1: with more, the ways interleave, each round starting one
//! way further, and the figures are the medians of the rounds' ratios),
//! `AUTOPROV_BENCH_ONBOARD_WAYS` (`job,ldapmodify,ldap3`; `job_cN` adds the job on an AD pool
//! of N connections, compared with the same baselines), `AUTOPROV_BENCH_JOB_CONCURRENCY`
//! (the dispatch policy's concurrency per connection, default its default),
//! `AUTOPROV_BENCH_JOB_CONNECTIONS` (the AD pool, default the package's default) and
//! `AUTOPROV_BENCH_JOB_STEPS=1` (print the time of each step of each job run: diagnostics).
//! `AUTOPROV_BENCH_ONBOARD_RESET=1` restores the pristine domain before every way
//! (`scripts/ad-test-server.sh reset`, about a second each, not timed; the ways' trees are
//! then left to the reset instead of deleted, and the domain is reset once more at the end): each way leaves thousands
//! of tombstones behind and Samba's cost per operation grows with them, so without it the
//! way that runs later in the sequence pays for the ones before.
//! Without the server's environment, or when it does not answer, the bench prints `SKIPPED` (and fails with
//! `CI=true`).
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

#[path = "support/cpu.rs"]
mod cpu;

use autoprov::core::{Owner, ScalarValue, Thresholds};
use autoprov::orchestrator::Planner;
use autoprov::orchestrator::demo;
use autoprov::orchestrator::dispatch::DispatchPolicy;
use autoprov::orchestrator::events::JobEvent;
use autoprov::orchestrator::job::{JobOptions, JobReport, ProvisioningJob};
use autoprov::orchestrator::store::{JobStatus, MemoryStore};
use autoprov::planner::policy::NavigationRule;
use autoprov_ad::test_fixtures::{self, AdEnv, Admin};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use cpu::cpu;
use futures::FutureExt as _;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, Mod, Scope, SearchEntry};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The third group every joiner joins (the demo policy gives two: `AllStaff` and the
/// department's).
const THIRD_GROUP: &str = "VPN-Users";
const FIRST: [&str; 12] = [
    "Ada", "Boris", "Chloé", "Dmitri", "Élodie", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kemal", "Lena",
];
const LAST: [&str; 8] = [
    "Martin", "Nguyen", "Okafor", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka",
];

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fail_or_skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("benches/ad_onboarding.rs: {why}");
    }
    println!("SKIPPED benches/ad_onboarding.rs: {why}");
}

/// The workload's sizes.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    joiners: usize,
    movers: usize,
    leavers: usize,
}

/// One person of the workload, with names unique to one way's run.
#[derive(Clone, Debug)]
struct Person {
    owner: Owner,
    login: String,
    department: &'static str,
    first: &'static str,
    last: &'static str,
    password: String,
}

/// The people of one way's run: logins and employee ids carry `token` (sAMAccountName holds
/// 20 characters, employeeID 16).
fn people(n: usize, token: &str, now: DateTime<Utc>) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len() + i) % LAST.len()];
            let department = demo::DEPARTMENTS[i % demo::DEPARTMENTS.len()];
            let o = demo::employee(
                i,
                first,
                last,
                department,
                "Specialist",
                now - TimeDelta::days(365),
            );
            let login = format!("o{token}{i}");
            let id = format!("{token}{i:05}");
            let mut o = o
                .with("login", login.clone())
                .with("employeeId", id.clone());
            o.identifier = login.clone();
            o.id = id.as_str().into();
            Person {
                // The demo policy's initial password.
                password: format!("Init-{id}-2026!"),
                owner: o,
                login,
                department,
                first,
                last,
            }
        })
        .collect()
}

/// The department a mover moves to.
fn new_department(p: &Person) -> &'static str {
    let i = demo::DEPARTMENTS
        .iter()
        .position(|d| *d == p.department)
        .unwrap_or(0);
    demo::DEPARTMENTS[(i + 1) % demo::DEPARTMENTS.len()]
}

const NEW_TITLE: &str = "Senior Specialist";

/// One LDAP operation, as both baselines send it.
#[derive(Clone, Debug)]
enum Op {
    Add {
        dn: String,
        attrs: Vec<(&'static str, Vec<u8>)>,
    },
    /// (add?, attribute, value): `false` deletes the value; replace when `replace`.
    Modify {
        dn: String,
        mods: Vec<(ModKind, &'static str, Vec<u8>)>,
    },
    Move {
        dn: String,
        rdn: String,
        superior: String,
    },
    Delete {
        dn: String,
    },
}

#[derive(Clone, Copy, Debug)]
enum ModKind {
    Add,
    Delete,
    Replace,
}

/// The directory of one way's run: its root OU, and the DNs below it.
struct Tree {
    root: String,
}

impl Tree {
    fn ou(&self, name: &str) -> String {
        format!("OU={name},{}", self.root)
    }
    fn group(&self, name: &str) -> String {
        format!("CN={name},OU=Groups,{}", self.root)
    }
    fn account(&self, p: &Person, department: &str) -> String {
        format!("CN={},{}", p.login, self.ou(department))
    }
}

/// A joiner's operations: what the AD package writes for the demo policy's Added order.
fn joiner_ops(t: &Tree, p: &Person) -> Vec<Op> {
    let dn = t.account(p, p.department);
    let pwd: Vec<u8> = format!("\"{}\"", p.password)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let id = p.owner.id.to_string();
    let attrs: Vec<(&'static str, Vec<u8>)> = vec![
        ("objectClass", b"user".to_vec()),
        ("cn", p.login.clone().into_bytes()),
        ("sAMAccountName", p.login.clone().into_bytes()),
        ("employeeID", id.into_bytes()),
        (
            "displayName",
            format!("{} {}", p.first, p.last).into_bytes(),
        ),
        ("department", p.department.as_bytes().to_vec()),
        ("title", b"Specialist".to_vec()),
        ("givenName", p.first.as_bytes().to_vec()),
        ("sn", p.last.as_bytes().to_vec()),
        ("userAccountControl", b"514".to_vec()),
        ("unicodePwd", pwd),
    ];
    let mut ops = vec![
        Op::Add {
            dn: dn.clone(),
            attrs,
        },
        Op::Modify {
            dn: dn.clone(),
            mods: vec![
                (ModKind::Replace, "userAccountControl", b"512".to_vec()),
                (ModKind::Replace, "pwdLastSet", b"0".to_vec()),
            ],
        },
    ];
    for g in ["AllStaff", p.department, THIRD_GROUP] {
        ops.push(Op::Modify {
            dn: t.group(g),
            mods: vec![(ModKind::Add, "member", dn.clone().into_bytes())],
        });
    }
    ops
}

/// A mover's operations: the move, the attributes, the department groups swapped.
fn mover_ops(t: &Tree, p: &Person) -> Vec<Op> {
    let to = new_department(p);
    let old = t.account(p, p.department);
    let new = t.account(p, to);
    vec![
        Op::Move {
            dn: old,
            rdn: format!("CN={}", p.login),
            superior: t.ou(to),
        },
        Op::Modify {
            dn: new.clone(),
            mods: vec![
                (ModKind::Replace, "department", to.as_bytes().to_vec()),
                (ModKind::Replace, "title", NEW_TITLE.as_bytes().to_vec()),
            ],
        },
        Op::Modify {
            dn: t.group(to),
            mods: vec![(ModKind::Add, "member", new.clone().into_bytes())],
        },
        Op::Modify {
            dn: t.group(p.department),
            mods: vec![(ModKind::Delete, "member", new.into_bytes())],
        },
    ]
}

fn leaver_ops(t: &Tree, p: &Person) -> Vec<Op> {
    vec![Op::Delete {
        dn: t.account(p, p.department),
    }]
}

/// Each person's operations, in order, for both phases.
fn phases(t: &Tree, people: &[Person], s: Sizes) -> (Vec<Vec<Op>>, Vec<Vec<Op>>) {
    let first = people.iter().map(|p| joiner_ops(t, p)).collect();
    let second = people[..s.movers]
        .iter()
        .map(|p| mover_ops(t, p))
        .chain(
            people[s.movers..s.movers + s.leavers]
                .iter()
                .map(|p| leaver_ops(t, p)),
        )
        .collect();
    (first, second)
}

// ---- LDIF -------------------------------------------------------------------------------

fn ldif_line(out: &mut String, name: &str, value: &[u8]) {
    let safe = value.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        && !matches!(value.first(), Some(b' ' | b':' | b'<'))
        && value.last() != Some(&b' ');
    if safe {
        let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value));
    } else {
        let _ = writeln!(
            out,
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        );
    }
}

fn ldif(ops: &[Vec<Op>]) -> String {
    let mut out = String::new();
    for op in ops.iter().flatten() {
        match op {
            Op::Add { dn, attrs } => {
                ldif_line(&mut out, "dn", dn.as_bytes());
                out.push_str("changetype: add\n");
                for (k, v) in attrs {
                    ldif_line(&mut out, k, v);
                }
            }
            Op::Modify { dn, mods } => {
                ldif_line(&mut out, "dn", dn.as_bytes());
                out.push_str("changetype: modify\n");
                for (kind, k, v) in mods {
                    let verb = match kind {
                        ModKind::Add => "add",
                        ModKind::Delete => "delete",
                        ModKind::Replace => "replace",
                    };
                    let _ = writeln!(out, "{verb}: {k}");
                    ldif_line(&mut out, k, v);
                    out.push_str("-\n");
                }
            }
            Op::Move { dn, rdn, superior } => {
                ldif_line(&mut out, "dn", dn.as_bytes());
                out.push_str("changetype: modrdn\n");
                ldif_line(&mut out, "newrdn", rdn.as_bytes());
                out.push_str("deleteoldrdn: 1\n");
                ldif_line(&mut out, "newsuperior", superior.as_bytes());
            }
            Op::Delete { dn } => {
                ldif_line(&mut out, "dn", dn.as_bytes());
                out.push_str("changetype: delete\n");
            }
        }
        out.push('\n');
    }
    out
}

/// Applies an LDIF file with `ldapmodify -c` (one client, LDAPS, verifying the test CA); the
/// time it took. Fails when any record failed.
fn ldapmodify(env: &AdEnv, text: &str, phase: &str) -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(format!("{phase}.ldif"));
    std::fs::write(&path, text).expect("writing the LDIF");
    let started = Instant::now();
    let out = std::process::Command::new("ldapmodify")
        .env("LDAPTLS_CACERT", &env.ca_file)
        .args([
            "-x",
            "-H",
            &env.url,
            "-D",
            &env.bind_dn,
            "-w",
            &env.password,
            "-c",
            "-f",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ldapmodify (ldap-utils): {e}"));
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "ldapmodify ({phase}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    took
}

// ---- bare ldap3 -------------------------------------------------------------------------

async fn send(ldap: &mut Ldap, op: &Op) {
    let result = match op {
        Op::Add { dn, attrs } => {
            let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), HashSet::from([v.clone()])))
                .collect();
            ldap.add(dn, attrs).await
        }
        Op::Modify { dn, mods } => {
            let mods: Vec<Mod<Vec<u8>>> = mods
                .iter()
                .map(|(kind, k, v)| {
                    let (k, v) = (k.as_bytes().to_vec(), HashSet::from([v.clone()]));
                    match kind {
                        ModKind::Add => Mod::Add(k, v),
                        ModKind::Delete => Mod::Delete(k, v),
                        ModKind::Replace => Mod::Replace(k, v),
                    }
                })
                .collect();
            ldap.modify(dn, mods).await
        }
        Op::Move { dn, rdn, superior } => ldap.modifydn(dn, rdn, true, Some(superior)).await,
        Op::Delete { dn } => ldap.delete(dn).await,
    };
    if let Err(e) = result.map_err(|e| e.to_string()).and_then(|r| {
        r.success()
            .map(|_| ())
            .map_err(|e| format!("{e} ({op_name})", op_name = name(op)))
    }) {
        panic!("bare ldap3: {e}");
    }
}

fn name(op: &Op) -> String {
    match op {
        Op::Add { dn, .. } => format!("add {dn}"),
        Op::Modify { dn, .. } => format!("modify {dn}"),
        Op::Move { dn, .. } => format!("modrdn {dn}"),
        Op::Delete { dn } => format!("delete {dn}"),
    }
}

/// Every person's operations over `conns` connections: each connection takes the next person
/// and sends their operations in order.
async fn bare(conns: &[Ldap], work: &[Vec<Op>]) -> Duration {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    futures::future::join_all(conns.iter().map(|ldap| {
        let mut ldap = ldap.clone();
        let next = &next;
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(ops) = work.get(i) else { break };
                for op in ops {
                    send(&mut ldap, op).await;
                }
            }
        }
    }))
    .await;
    started.elapsed()
}

// ---- the job ----------------------------------------------------------------------------

fn job_ok(r: &JobReport, what: &str) {
    assert_eq!(
        r.run.status,
        JobStatus::Succeeded,
        "{what}: {:?}",
        r.run.message
    );
    assert!(
        r.dispatch.errored.is_empty(),
        "{what}: {} errored, first {:?}",
        r.dispatch.errored.len(),
        r.dispatch.errored.first()
    );
    assert!(r.breaches.is_empty(), "{what}: {:?}", r.breaches);
}

/// Runs both phases through the whole job; each phase's time (the run that writes and the
/// run that verifies).
async fn job_way(
    env: &AdEnv,
    t: &Tree,
    people: &[Person],
    s: Sizes,
    connections: Option<usize>,
) -> (Duration, Duration) {
    let mut builder = env.builder(demo::CONNECTION);
    if let Some(n) = connections.or_else(|| {
        std::env::var("AUTOPROV_BENCH_JOB_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
    }) {
        builder = builder.connections(n);
    }
    let ad = builder.build().await.expect("the connector connects");
    let mut policy = DispatchPolicy::default();
    policy.concurrency_per_connection = knob(
        "AUTOPROV_BENCH_JOB_CONCURRENCY",
        policy.concurrency_per_connection,
    );
    let mut config = demo::planner_config_in(&t.root);
    for rt in &mut config.resource_types {
        rt.thresholds = Thresholds::off();
    }
    config.role_model = config.role_model.navigation_rule(NavigationRule::new(
        demo::ACCOUNT,
        "memberOf",
        demo::group_in(&t.root, THIRD_GROUP),
    ));
    let mut planner = Planner::new(config).expect("the demo policy");
    for p in people {
        planner.upsert_owner(p.owner.clone());
    }
    let mut job = ProvisioningJob::builder(planner, Arc::new(MemoryStore::new()));
    if std::env::var("AUTOPROV_BENCH_JOB_STEPS").is_ok_and(|v| v == "1") {
        // Diagnostics: each step's time. Events are then rendered for every order, which
        // costs a little: not for the figures.
        let started = std::sync::Mutex::new(Instant::now());
        job = job.events(Arc::new(move |e: JobEvent| match e {
            JobEvent::StepStarted { .. } => {
                *started.lock().unwrap() = Instant::now();
            }
            JobEvent::StepFinished { step, summary } => {
                eprintln!(
                    "    step {step}: {:.1?} ({summary})",
                    started.lock().unwrap().elapsed()
                );
            }
            _ => {}
        }));
    }
    let mut job = job
        .connector(Arc::new(ad))
        .export_scope(demo::CONNECTION, t.root.clone())
        .target_filter(demo::ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
        .dispatch_policy(policy)
        .build();
    let cancel = CancellationToken::new();

    let (started, samba0) = (Instant::now(), samba());
    let r = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .expect("job");
    let (write1, samba1) = (started.elapsed(), samba());
    job_ok(&r, "joiners");
    assert_eq!(r.dispatch.executed.len(), s.joiners, "joiners executed");
    let r = job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .expect("job");
    let (first, samba2) = (started.elapsed(), samba());
    job_ok(&r, "joiners verified");
    assert_eq!(r.verification.verified.len(), s.joiners, "joiners verified");
    eprintln!(
        "  job joiners: write run {:.1?} (samba CPU {:.1?}), verifying run {:.1?} (samba CPU {:.1?})",
        write1,
        samba1.saturating_sub(samba0),
        first - write1,
        samba2.saturating_sub(samba1)
    );

    let gone = ScalarValue::from(Utc::now() - TimeDelta::days(1));
    for p in &people[..s.movers] {
        job.planner_mut().upsert_owner(
            p.owner
                .clone()
                .with("department", new_department(p))
                .with("title", NEW_TITLE),
        );
    }
    for p in &people[s.movers..s.movers + s.leavers] {
        job.planner_mut()
            .upsert_owner(p.owner.clone().with("departure", gone.clone()));
    }
    let (started, samba0) = (Instant::now(), samba());
    let r = job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .expect("job");
    let (write2, samba1) = (started.elapsed(), samba());
    job_ok(&r, "movers and leavers");
    assert_eq!(
        r.dispatch.executed.len(),
        s.movers + s.leavers,
        "movers and leavers executed"
    );
    let r = job
        .run_incremental(JobOptions::default(), &cancel)
        .await
        .expect("job");
    let (second, samba2) = (started.elapsed(), samba());
    job_ok(&r, "movers and leavers verified");
    assert_eq!(
        r.verification.verified.len(),
        s.movers + s.leavers,
        "movers and leavers verified"
    );
    eprintln!(
        "  job movers+leavers: write run {:.1?} (samba CPU {:.1?}), verifying run {:.1?} (samba CPU {:.1?})",
        write2,
        samba1.saturating_sub(samba0),
        second - write2,
        samba2.saturating_sub(samba1)
    );
    (first, second)
}

// ---- the directory ----------------------------------------------------------------------

/// A fresh root OU with the demo organization's OUs and groups.
async fn tree(admin: &Admin, label: &str) -> Tree {
    let root = admin.create_ou(&format!("onboard-{label}")).await;
    let t = Tree { root };
    for ou in demo::ous() {
        admin
            .add(&t.ou(ou), vec![("objectClass", vec!["organizationalUnit"])])
            .await;
    }
    let tag = test_fixtures::token();
    for (i, g) in demo::groups().enumerate() {
        let sam = format!("g{tag}{i}");
        admin
            .add(
                &t.group(g),
                vec![
                    ("objectClass", vec!["group"]),
                    ("sAMAccountName", vec![&sam]),
                ],
            )
            .await;
    }
    t
}

async fn count(admin: &Admin, base: &str, filter: &str) -> usize {
    let mut ldap = admin.ldap.clone();
    let adapters: Vec<Box<dyn Adapter<&str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let mut search = ldap
        .streaming_search_with(adapters, base, Scope::Subtree, filter, vec!["1.1"])
        .await
        .expect("search");
    let mut n = 0;
    while let Some(entry) = search.next().await.expect("entry") {
        let _ = SearchEntry::construct(entry);
        n += 1;
    }
    search.finish().await.success().expect("search");
    n
}

/// What the directory holds after a way's phase: the same for every way.
async fn check(admin: &Admin, t: &Tree, s: Sizes, phase: u8, way: &str) {
    let users = count(admin, &t.root, "(objectClass=user)").await;
    let all_staff = admin.members(&t.group("AllStaff")).await.len();
    let third = admin.members(&t.group(THIRD_GROUP)).await.len();
    let enabled = count(
        admin,
        &t.root,
        "(&(objectClass=user)(userAccountControl=512))",
    )
    .await;
    let moved = count(admin, &t.root, &format!("(title={NEW_TITLE})")).await;
    let expected = if phase == 1 {
        (s.joiners, 0)
    } else {
        (s.joiners - s.leavers, s.movers)
    };
    let got = (users, all_staff, third, enabled, moved);
    let want = (expected.0, expected.0, expected.0, expected.0, expected.1);
    assert_eq!(
        got, want,
        "{way}, phase {phase}: (accounts, AllStaff members, {THIRD_GROUP} members, enabled, moved)"
    );
}

/// One way's times: joiners, movers and leavers.
#[derive(Clone, Debug)]
struct Times {
    way: String,
    joiners: Duration,
    rest: Duration,
}

impl Times {
    fn rates(&self, s: Sizes) -> (f64, f64, f64) {
        let rest = (s.movers + s.leavers) as f64;
        (
            s.joiners as f64 / self.joiners.as_secs_f64(),
            rest / self.rest.as_secs_f64(),
            (s.joiners as f64 + rest) / (self.joiners + self.rest).as_secs_f64(),
        )
    }
}

enum Way {
    Job,
    /// The job with the AD pool at this many connections (`job_cN` in the ways knob).
    JobOn(usize),
    Ldapmodify,
    Bare(usize),
}

impl Way {
    fn label(&self) -> String {
        match self {
            Way::Job => "job".into(),
            Way::JobOn(n) => format!("job_c{n}"),
            Way::Ldapmodify => "ldapmodify".into(),
            Way::Bare(n) => format!("ldap3_c{n}"),
        }
    }
}

/// Samba's CPU time so far (zero where it cannot be read).
fn samba() -> Duration {
    cpu().1.unwrap_or_default()
}

fn phase_cpu(label: &str, joiners: Duration, rest: Duration) {
    eprintln!("  {label}: samba CPU joiners {joiners:.1?}, movers+leavers {rest:.1?}");
}

/// Runs one way on a fresh tree, checks the directory, deletes the tree (also on failure)
/// unless `keep` (the domain is reset before the next way).
async fn run_way(env: &AdEnv, admin: &Admin, way: &Way, s: Sizes, keep: bool) -> Times {
    let label = way.label();
    let t = tree(admin, &label.replace('_', "")).await;
    let token = format!("{:05x}", rand::random::<u32>() & 0xfffff);
    let people = people(s.joiners, &token, Utc::now());
    let (own_before, samba_before) = cpu();
    let outcome = AssertUnwindSafe(async {
        let (ops1, ops2) = phases(&t, &people, s);
        let (joiners, rest) = match way {
            Way::Job => job_way(env, &t, &people, s, None).await,
            Way::JobOn(n) => job_way(env, &t, &people, s, Some(*n)).await,
            Way::Ldapmodify => {
                let (l1, l2) = (ldif(&ops1), ldif(&ops2));
                let env2 = env.clone();
                let samba0 = samba();
                let a = tokio::task::spawn_blocking(move || ldapmodify(&env2, &l1, "joiners"))
                    .await
                    .expect("ldapmodify");
                let samba1 = samba();
                check(admin, &t, s, 1, &label).await;
                let env2 = env.clone();
                let samba2 = samba();
                let b = tokio::task::spawn_blocking(move || ldapmodify(&env2, &l2, "movers"))
                    .await
                    .expect("ldapmodify");
                phase_cpu(
                    &label,
                    samba1.saturating_sub(samba0),
                    samba().saturating_sub(samba2),
                );
                (a, b)
            }
            Way::Bare(n) => {
                let mut conns = Vec::new();
                for _ in 0..*n {
                    conns.push(test_fixtures::admin_ldap(env).await);
                }
                let samba0 = samba();
                let a = bare(&conns, &ops1).await;
                let samba1 = samba();
                check(admin, &t, s, 1, &label).await;
                let samba2 = samba();
                let b = bare(&conns, &ops2).await;
                phase_cpu(
                    &label,
                    samba1.saturating_sub(samba0),
                    samba().saturating_sub(samba2),
                );
                for mut c in conns {
                    let _ = c.unbind().await;
                }
                (a, b)
            }
        };
        check(admin, &t, s, 2, &label).await;
        Times {
            way: label.clone(),
            joiners,
            rest,
        }
    })
    .catch_unwind()
    .await;
    if let ((Some(a), Some(b)), (Some(c), Some(d))) = ((own_before, samba_before), cpu()) {
        // Includes the untimed checks after each phase (a few searches).
        eprintln!(
            "  {label}: CPU of this process (and ldapmodify) {:.1?}, of samba {:.1?}",
            c.saturating_sub(a),
            d.saturating_sub(b)
        );
    }
    if !keep {
        let started = Instant::now();
        admin.delete_tree(&t.root).await;
        eprintln!("  {label}: {} deleted in {:.1?}", t.root, started.elapsed());
    }
    match outcome {
        Ok(times) => times,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn main() {
    let Some(env) = AdEnv::from_env() else {
        fail_or_skip(
            "no AD test server (set AUTOPROV_AD_URL: run `bash scripts/ad-test-server.sh start` \
             and source its env file)",
        );
        return;
    };
    let s = Sizes {
        joiners: knob("AUTOPROV_BENCH_ONBOARD_JOINERS", 2000),
        movers: knob("AUTOPROV_BENCH_ONBOARD_MOVERS", 500),
        leavers: knob("AUTOPROV_BENCH_ONBOARD_LEAVERS", 200),
    };
    assert!(
        s.movers + s.leavers <= s.joiners,
        "movers and leavers are among the joiners"
    );
    let sweep: Vec<usize> = std::env::var("AUTOPROV_BENCH_ONBOARD_SWEEP")
        .unwrap_or_else(|_| "1,2,4,8,16,32".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let ways_knob = std::env::var("AUTOPROV_BENCH_ONBOARD_WAYS")
        .unwrap_or_else(|_| "job,ldapmodify,ldap3".into());
    let mut ways = Vec::new();
    for w in ways_knob.split(',') {
        match w.trim() {
            "job" => ways.push(Way::Job),
            "ldapmodify" => ways.push(Way::Ldapmodify),
            "ldap3" => ways.extend(sweep.iter().map(|n| Way::Bare(*n))),
            other if other.starts_with("job_c") => match other["job_c".len()..].parse() {
                Ok(n) if n > 0 => ways.push(Way::JobOn(n)),
                _ => panic!("AUTOPROV_BENCH_ONBOARD_WAYS: {other:?} is not job_cN with N > 0"),
            },
            other => panic!("AUTOPROV_BENCH_ONBOARD_WAYS: unknown way {other:?}"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Connected first: a server that does not answer skips the benchmark with the reason.
    if let Err(e) = rt.block_on(env.builder(demo::CONNECTION).connections(1).build()) {
        fail_or_skip(&format!("the AD test server does not answer: {e}"));
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ad_onboarding: {} joiners, then {} movers and {} leavers; ways {ways_knob} (ldap3 sweep \
         {sweep:?}); load before: {}",
        s.joiners,
        s.movers,
        s.leavers,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let reset = std::env::var("AUTOPROV_BENCH_ONBOARD_RESET").is_ok_and(|v| v == "1");
    let mut admin = rt.block_on(Admin::connect(&env));
    // Rounds interleave the ways (each round starts one way further), so that a slower or
    // busier stretch of the run, or a directory that grows, does not fall on one way only.
    let mut rounds: Vec<Vec<Times>> = Vec::new();
    for round in 0..knob("AUTOPROV_BENCH_ONBOARD_ROUNDS", 1).max(1) {
        let mut all: Vec<Times> = Vec::new();
        for i in 0..ways.len() {
            let way = &ways[(i + round) % ways.len()];
            if reset {
                reset_domain();
                admin = rt.block_on(Admin::connect(&env));
            }
            // With a reset before every way, the tree is left for the reset to take away
            // (deleting 2,000 accounts costs Samba a minute).
            let t = rt.block_on(run_way(&env, &admin, way, s, reset));
            let (a, b, c) = t.rates(s);
            println!(
                "{:<12} joiners {:>7.1} users/s ({:.1?}), movers+leavers {:>7.1} users/s ({:.1?}), total {:>7.1} users/s",
                t.way, a, t.joiners, b, t.rest, c
            );
            all.push(t);
        }
        rounds.push(all);
    }
    if reset {
        reset_domain();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load after: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Other job configurations (`job_cN`): their medians against the same baselines.
    for label in rounds[0]
        .iter()
        .map(|t| &t.way)
        .filter(|w| w.starts_with("job_c"))
    {
        let other: Vec<Summary> = rounds.iter().filter_map(|r| summary(r, s, label)).collect();
        let med = |f: &dyn Fn(&Summary) -> Option<f64>| median(other.iter().filter_map(f));
        println!(
            "{label}: {:.1} users/s; / ldap3 maximum {}; / ldapmodify {} (medians of {} rounds)",
            med(&|m| Some(m.job.2)).unwrap_or_default(),
            ratio(med(&|m| m.vs_ldap3.map(|r| r.2))),
            ratio(med(&|m| m.vs_ldapmodify.map(|r| r.2))),
            other.len()
        );
    }
    let summaries: Vec<Summary> = rounds.iter().filter_map(|r| summary(r, s, "job")).collect();
    if summaries.len() > 1 {
        for (i, m) in summaries.iter().enumerate() {
            let best = match m.vs_ldap3 {
                Some(r) => format!("; / ldap3 maximum ({}) {:.3}", m.best_way, r.2),
                None => String::new(),
            };
            println!(
                "round {}: job {:.1} users/s{best}; / ldapmodify {}",
                i + 1,
                m.job.2,
                ratio(m.vs_ldapmodify.map(|r| r.2)),
            );
        }
    }
    let Some(first) = summaries.first() else {
        return;
    };
    let med = |f: &dyn Fn(&Summary) -> Option<f64>| median(summaries.iter().filter_map(f));
    let users = |r: f64| format!("{r:.1} users/s");
    let of = if summaries.len() > 1 {
        format!(", median of {} rounds", summaries.len())
    } else {
        String::new()
    };
    let job = (
        med(&|m| Some(m.job.0)).unwrap_or(first.job.0),
        med(&|m| Some(m.job.1)).unwrap_or(first.job.1),
        med(&|m| Some(m.job.2)).unwrap_or(first.job.2),
    );
    println!(
        "FIGURE ad_onboarding_job: **{}** (joiners {}, movers+leavers {}; {} + {} + {}{of})",
        users(job.2),
        users(job.0),
        users(job.1),
        s.joiners,
        s.movers,
        s.leavers
    );
    if let Some(total) = med(&|m| m.vs_ldap3.map(|r| r.2)) {
        println!(
            "job / ldap3 maximum: total {:.3}, joiners {}, movers+leavers {} (goal >= 0.9{of})",
            total,
            ratio(med(&|m| m.vs_ldap3.map(|r| r.0))),
            ratio(med(&|m| m.vs_ldap3.map(|r| r.1))),
        );
        let best = med(&|m| Some(m.best.2)).unwrap_or_default();
        println!(
            "FIGURE ad_onboarding_vs_ldap3: **{total:.2}** ({} vs {} at {} connections{of})",
            users(job.2),
            users(best),
            first.best_way.trim_start_matches("ldap3_c")
        );
    }
    if let Some(total) = med(&|m| m.vs_ldapmodify.map(|r| r.2)) {
        println!(
            "job / ldapmodify: total {:.3}, joiners {}, movers+leavers {} (goal >= 1.0{of})",
            total,
            ratio(med(&|m| m.vs_ldapmodify.map(|r| r.0))),
            ratio(med(&|m| m.vs_ldapmodify.map(|r| r.1))),
        );
        let lm = med(&|m| m.ldapmodify).unwrap_or_default();
        println!(
            "FIGURE ad_onboarding_vs_ldapmodify: **{total:.2}** ({} vs {}{of})",
            users(job.2),
            users(lm)
        );
    }
}

/// Restores the pristine domain (`scripts/ad-test-server.sh reset`): the same server, address
/// and credentials, without the tombstones of the ways before.
fn reset_domain() {
    let started = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ad-test-server.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("reset")
        .output()
        .expect("run scripts/ad-test-server.sh reset");
    assert!(
        out.status.success(),
        "scripts/ad-test-server.sh reset failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("  domain reset to pristine in {:.1?}", started.elapsed());
}

/// One round's job figures and its ratios (joiners, movers+leavers, total).
struct Summary {
    job: (f64, f64, f64),
    best_way: String,
    best: (f64, f64, f64),
    vs_ldap3: Option<(f64, f64, f64)>,
    vs_ldapmodify: Option<(f64, f64, f64)>,
    ldapmodify: Option<f64>,
}

fn summary(all: &[Times], s: Sizes, job_way: &str) -> Option<Summary> {
    let job = all.iter().find(|t| t.way == job_way)?.rates(s);
    let best = all
        .iter()
        .filter(|t| t.way.starts_with("ldap3_"))
        .max_by(|a, b| a.rates(s).2.total_cmp(&b.rates(s).2));
    let div = |a: (f64, f64, f64), b: (f64, f64, f64)| (a.0 / b.0, a.1 / b.1, a.2 / b.2);
    let lm = all
        .iter()
        .find(|t| t.way == "ldapmodify")
        .map(|t| t.rates(s));
    Some(Summary {
        job,
        best_way: best.map(|b| b.way.clone()).unwrap_or_default(),
        best: best.map(|b| b.rates(s)).unwrap_or_default(),
        vs_ldap3: best.map(|b| div(job, b.rates(s))),
        vs_ldapmodify: lm.map(|m| div(job, m)),
        ldapmodify: lm.map(|m| m.2),
    })
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}
