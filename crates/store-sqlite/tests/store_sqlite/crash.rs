//! The store killed mid-write: a child process (this test binary, re-executed) inserts and
//! updates orders as fast as it can, printing each write the store acknowledged; the parent
//! SIGKILLs it at random moments, reopens the file and checks that it is sound and holds
//! every acknowledged write, with whole histories.

use autoprov_core::{ConnectionMode, OrderId, ProvisioningEvent as E, ScalarValue, Secret};
use autoprov_store::testkit::{order, t0};
use autoprov_store::{OrderRecord, OrderUpdate, Store};
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStore};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DB: &str = "AUTOPROV_SQLITE_CRASH_DB";
const CHILD_RUN: &str = "AUTOPROV_SQLITE_CRASH_RUN";
const KILLS: usize = 10;
const TASKS: usize = 32;

fn options() -> SqliteOptions {
    SqliteOptions::new().with_current_key(SealingKey::new("crash", [3; 32]))
}

fn password(id: &str) -> String {
    format!("pw-of-{id}")
}

/// Runs the child on `db` until it has acknowledged writes for a random while, then kills
/// it; the acknowledged writes: order id ⇒ highest acknowledged version.
fn run_and_kill(db: &Path, run: usize) -> BTreeMap<String, u64> {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "crash::crash_child", "--ignored", "--nocapture"])
        .env(CHILD_DB, db)
        .env(CHILD_RUN, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let (Some(id), Some(v)) = (parts.next(), parts.next()) else {
                continue; // a line cut by the kill
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let _ = first_tx.send(());
            let e = acked.entry(id.to_owned()).or_default();
            *e = (*e).max(v);
        }
        acked
    });
    let _ = first_rx.recv_timeout(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(rand::thread_rng().gen_range(30..400)));
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("crash.db");
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for run in 0..KILLS {
        for (id, v) in run_and_kill(&db, run) {
            let e = acked.entry(id).or_default();
            *e = (*e).max(v);
        }
        let store = SqliteStore::open(&db, options()).expect("reopen after SIGKILL");
        let findings = store.integrity_check().await.expect("integrity_check");
        assert!(findings.is_empty(), "after kill {run}: {findings:?}");
        for (id, v) in &acked {
            let oid = OrderId::from(id.as_str());
            let r = store
                .order(&oid)
                .await
                .expect("read")
                .unwrap_or_else(|| panic!("after kill {run}: acknowledged order {id} is lost"));
            assert!(
                r.version >= *v,
                "after kill {run}: {id} is at version {}, {v} was acknowledged",
                r.version
            );
            let history = store.order_history(&oid).await.expect("history");
            let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
            assert_eq!(
                versions,
                (2..=r.version).collect::<Vec<_>>(),
                "{id}: one history entry per version"
            );
            if let Some(last) = history.last() {
                assert_eq!(
                    last.to, r.state,
                    "{id}: the record is its last entry's state"
                );
            }
            if let Some(ScalarValue::Secret(s)) = r.order.changes.scalar("unicodePwd")
                && !r.is_finished()
            {
                assert_eq!(
                    s.expose(),
                    Ok(password(id).as_str()),
                    "{id}: its sealed secret"
                );
            }
        }
        drop(store);
    }
    let writes: u64 = acked.values().sum();
    eprintln!(
        "crash test: {} orders, {writes} acknowledged writes over {KILLS} kills, all present",
        acked.len()
    );
    assert!(
        acked.len() > KILLS,
        "the child wrote: {} orders",
        acked.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// The child of [`acknowledged_writes_survive_sigkill`]: writes until killed (or 20 s), one
/// line `ack <order id> <version>` per acknowledged write. Does nothing when run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by acknowledged_writes_survive_sigkill in a child process"]
async fn crash_child() {
    let (Some(db), Some(run)) = (std::env::var_os(CHILD_DB), std::env::var_os(CHILD_RUN)) else {
        return;
    };
    let run = run.to_string_lossy().into_owned();
    let store = std::sync::Arc::new(SqliteStore::open(&db, options()).expect("child open"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, run) = (store.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let mut o = order(n);
                let id = format!("r{run}-t{t}-{n}");
                o.order_id = id.as_str().into();
                if n.is_multiple_of(4) {
                    o.changes.set("unicodePwd", Secret::new(password(&id)));
                }
                let record = OrderRecord::pending(o, ConnectionMode::Automated, t0());
                store.insert_orders(&[record]).await.expect("insert");
                println!("ack {id} 1");
                let oid: OrderId = id.as_str().into();
                let mut v = 1;
                for update in [
                    OrderUpdate::at(t0()).attempt_started(),
                    OrderUpdate::event(E::ConnectorSucceeded, t0()),
                    OrderUpdate::event(E::SynchronizationMatched, t0()),
                ]
                .into_iter()
                .take(1 + n % 3)
                {
                    v = store
                        .update_order(&oid, v, update)
                        .await
                        .expect("update")
                        .version;
                    println!("ack {id} {v}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
