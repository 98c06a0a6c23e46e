//! The file-based fulfil runner: an orders file as the reference system writes it, moved aside,
//! fulfilled order by order (a failing order does not stop the others), results written
//! atomically in the reference system's CSV or JSON, progress every 10 %, an unparsable file
//! refused before anything is sent, an interrupted run resumed without sending anything twice.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{ProvisioningOrder, ProvisioningOrdersList, ProvisioningState};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo;
use autoprov_orchestrator::fulfil_file::{FileFulfilment, FulfilError, FulfilProgress};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::store::{MemoryStore, Store};
use chrono::{DateTime, TimeZone, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

/// The demo organization's joiners, as a job's simulation computes them on the seeded
/// directory.
async fn demo_orders(people: usize) -> Vec<ProvisioningOrder> {
    let system = system();
    let mut planner = autoprov_orchestrator::Planner::new(demo::planner_config()).unwrap();
    for p in demo::people(people, now()) {
        planner.upsert_owner(p);
    }
    let mut job = ProvisioningJob::builder(planner, Arc::new(MemoryStore::new()))
        .connector(Arc::new(system))
        .clock(Arc::new(ManualClock::new(now())))
        .target_filter(demo::ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(demo::ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    let report = job
        .run_complete(JobOptions::simulation(), &CancellationToken::new())
        .await
        .unwrap();
    // A file never carries initial passwords in clear (they are masked when written, and a
    // masked one is refused at fulfilment): the connector generates them.
    report
        .orders
        .into_iter()
        .map(|mut o| {
            o.changes.properties.remove("password");
            o
        })
        .collect()
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "autoprov-fulfil-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_orders(path: &Path, orders: Vec<ProvisioningOrder>) {
    let list = ProvisioningOrdersList {
        provisioning_orders_list: orders,
    };
    std::fs::write(path, list.to_json_pretty()).unwrap();
}

fn system() -> InMemoryConnector {
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    system
}

fn runner(system: &InMemoryConnector, store: Arc<MemoryStore>) -> FileFulfilment {
    FileFulfilment::new([Arc::new(system.clone()) as _], store)
        .clock(Arc::new(ManualClock::new(now())))
}

#[tokio::test]
async fn a_file_is_moved_aside_fulfilled_and_its_results_written_as_csv() {
    let dir = Dir::new("csv");
    let orders = dir.path("orders.json");
    let results = dir.path("results.csv");
    let mut list = demo_orders(20).await;
    let total = list.len();
    assert!(total >= 20);
    // One order for a connection nobody configured: Errored, the others go on.
    let mut stray = list[0].clone();
    stray.order_id = "stray-1".into();
    stray.connection = Some("nowhere".into());
    list.push(stray);
    write_orders(&orders, list);

    let system = system();
    let store = Arc::new(MemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = seen.clone();
    let report = runner(&system, store.clone())
        .on_progress(move |p| progress.lock().unwrap().push(p.to_string()))
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.orders, total + 1);
    assert_eq!(report.executed, total, "{report:?}");
    assert_eq!(report.errored, 1);
    assert!(!report.resumed);
    // Moved aside, then marked done: never processed twice.
    assert!(!orders.exists());
    assert_eq!(report.orders_file, dir.path("orders.json.done"));
    assert!(report.orders_file.exists());
    let again = runner(&system, store.clone())
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(again, FulfilError::NoOrdersFile { .. }), "{again}");

    // Progress as the reference system reports it.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], format!("OrdersCount:{}", total + 1));
    let steps: Vec<&str> = seen[1..].iter().map(String::as_str).collect();
    assert_eq!(
        steps,
        [
            "Progress:10",
            "Progress:20",
            "Progress:30",
            "Progress:40",
            "Progress:50",
            "Progress:60",
            "Progress:70",
            "Progress:80",
            "Progress:90",
            "Progress:100"
        ]
    );

    // The results file, read back with the CSV reader: one line per order, the error named.
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(
        text.starts_with("AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType"),
        "{text}"
    );
    let read = autoprov_core::results_csv::read(text.as_bytes()).unwrap();
    assert_eq!(read.len(), total + 1);
    let errored: Vec<_> = read
        .iter()
        .filter(|r| r.provisioning_state == ProvisioningState::Errored)
        .collect();
    assert_eq!(errored.len(), 1);
    assert!(
        errored[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("nowhere"),
        "{:?}",
        errored[0]
    );
    assert!(system.repeated_effects().is_empty());
    // No temporary file left beside the results.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn results_are_json_unless_the_name_says_csv() {
    let dir = Dir::new("json");
    let orders = dir.path("orders.json");
    let results = dir.path("results.json");
    write_orders(&orders, demo_orders(3).await);
    let system = system();
    let report = runner(&system, Arc::new(MemoryStore::new()))
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let list = json["ProvisioningResultsList"].as_array().unwrap();
    assert_eq!(list.len(), report.orders);
    assert!(list.iter().all(|r| r["ProvisioningState"] == "Executed"));
}

#[tokio::test]
async fn an_unparsable_file_aborts_the_run_before_anything_is_sent() {
    let dir = Dir::new("unparsable");
    let orders = dir.path("orders.json");
    let results = dir.path("results.csv");
    let mut text = {
        let list = ProvisioningOrdersList {
            provisioning_orders_list: demo_orders(5).await,
        };
        list.to_json_pretty()
    };
    // The last order's change type is not one.
    let at = text.rfind("\"Added\"").unwrap();
    text.replace_range(at..at + 7, "\"Addded\"");
    std::fs::write(&orders, text).unwrap();
    let system = system();
    let before = system.operation_log().len();
    let err = runner(&system, Arc::new(MemoryStore::new()))
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap_err();
    let FulfilError::Unparsable { moved_to, .. } = &err else {
        panic!("expected Unparsable, got {err}");
    };
    assert!(err.to_string().contains("ProvisioningOrdersList["), "{err}");
    assert_eq!(system.operation_log().len(), before, "nothing sent");
    assert!(!results.exists(), "no results file");
    assert!(
        moved_to.exists() && !orders.exists(),
        "moved aside, not read again"
    );
}

#[tokio::test]
async fn an_interrupted_run_resumes_and_sends_nothing_twice() {
    let dir = Dir::new("resume");
    let orders = dir.path("orders.json");
    let results = dir.path("results.csv");
    let list = demo_orders(30).await;
    write_orders(&orders, list.clone());
    let system = system();
    // The store outlives the runs (a durable store does so across processes).
    let store = Arc::new(MemoryStore::new());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let first = runner(&system, store.clone())
        .on_progress(move |p| {
            if p == FulfilProgress::Progress(30) {
                stop.cancel();
            }
        })
        .run(&orders, &results, &cancel)
        .await
        .unwrap();
    assert!(first.pending > 0, "{first:?}");
    assert!(first.executed > 0, "{first:?}");
    assert_eq!(
        first.orders_file,
        FileFulfilment::aside_path(&orders),
        "left aside for the next run"
    );
    let sent = system.operation_log().len();

    // A new file arrived meanwhile: the interrupted one is finished first.
    write_orders(&orders, demo_orders(2).await);
    let second = runner(&system, store.clone())
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap();
    assert!(second.resumed);
    assert_eq!(second.pending, 0);
    assert_eq!(second.executed, first.orders, "{second:?}");
    assert!(system.operation_log().len() > sent);
    assert!(
        system.repeated_effects().is_empty(),
        "nothing applied twice"
    );
    assert!(orders.exists(), "the new file waits for the next run");
    let read = autoprov_core::results_csv::read(std::fs::File::open(&results).unwrap()).unwrap();
    assert_eq!(read.len(), first.orders);
    for o in &list {
        let record = store.order(&o.order_id).await.unwrap().unwrap();
        assert_eq!(record.state, ProvisioningState::Executed);
        assert!(record.dispatch.total_attempts <= 1, "{:?}", record.dispatch);
    }
}

/// Records delivered passwords by target.
#[derive(Debug, Default)]
struct Mailbox(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl autoprov_orchestrator::delivery::PasswordDelivery for Mailbox {
    async fn deliver(
        &self,
        notice: &autoprov_orchestrator::delivery::PasswordNotice<'_>,
        password: &autoprov_core::Secret,
    ) -> Result<(), autoprov_orchestrator::delivery::DeliveryError> {
        self.0.lock().unwrap().push((
            notice.target.to_string(),
            password.expose().unwrap().to_owned(),
        ));
        Ok(())
    }
}

#[tokio::test]
async fn a_file_without_passwords_gets_them_generated_by_the_resource_types_settings() {
    let dir = Dir::new("pwd");
    let (orders, results) = (dir.path("orders.json"), dir.path("results.json"));
    let list = demo_orders(4).await;
    let accounts = list
        .iter()
        .filter(|o| o.resource_type.id.as_str() == demo::ACCOUNT)
        .count();
    assert!(accounts >= 4);
    write_orders(&orders, list);
    let mut account = demo::planner_config()
        .resource_types
        .into_iter()
        .find(|rt| rt.id.as_str() == demo::ACCOUNT)
        .unwrap();
    account.password_reset_settings = Some(autoprov_core::PasswordResetSettings::default());
    let system = system();
    let mailbox = Arc::new(Mailbox::default());
    let report = runner(&system, Arc::new(MemoryStore::new()))
        .resource_types([account])
        .password_delivery(mailbox.clone())
        .run(&orders, &results, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.errored, 0, "{report:?}");
    let delivered = mailbox.0.lock().unwrap().clone();
    assert_eq!(
        delivered.len(),
        accounts,
        "one password per account of the type"
    );
    for (target, password) in &delivered {
        assert_eq!(password.chars().count(), 12);
        assert!(system.verify_password(target, password), "{target}");
    }
    let written = std::fs::read_to_string(&results).unwrap();
    assert!(delivered.iter().all(|(_, p)| !written.contains(p.as_str())));
}
