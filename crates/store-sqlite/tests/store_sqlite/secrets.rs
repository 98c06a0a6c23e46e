//! Secrets never at rest in clear, in any table: sealed with the host's key, erased once
//! delivered, refused without a key (and outside orders), unreadable (a typed error, never a masked value) with a wrong one.

use autoprov_core::{
    ConnectionMode, OrderId, ProvisioningEvent as E, ProvisioningState as S, SECRET_MASK,
    ScalarValue, Secret,
};
use autoprov_store::testkit::{order, t0};
use autoprov_store::{
    Assignments, AuditAction, AuditEntry, JobKind, JobRun, OrderRecord, OrderUpdate, Store,
    StoreError,
};
use autoprov_store_sqlite::{SealingKey, SqliteOptions, SqliteStore};
use base64::Engine as _;
use std::collections::HashMap;
use std::path::Path;

const N: usize = 40;

fn password(i: usize) -> String {
    format!("Init-Pw{i:03}-q7Zx!")
}

fn with_password(i: usize) -> OrderRecord {
    let mut o = order(i);
    o.changes.set("unicodePwd", Secret::new(password(i)));
    OrderRecord::pending(o, ConnectionMode::Automated, t0())
}

fn id(i: usize) -> OrderId {
    order(i).order_id
}

fn k1() -> SealingKey {
    SealingKey::new("k1", [1; 32])
}

fn k2() -> SealingKey {
    SealingKey::new("k2", [2; 32])
}

fn secret_of(r: &OrderRecord) -> String {
    match r.order.changes.scalar("unicodePwd") {
        // A redacted secret (masked, no value) shows as the mask.
        Some(ScalarValue::Secret(s)) => s
            .expose()
            .map_or_else(|_| autoprov_core::SECRET_MASK.to_owned(), str::to_owned),
        other => panic!("expected a secret, found {other:?}"),
    }
}

/// Every form a password could take in the files: UTF-8, UTF-16LE, base64 (standard and
/// URL-safe) of both.
fn forms(pw: &str) -> Vec<Vec<u8>> {
    let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut out = vec![pw.as_bytes().to_vec(), utf16.clone()];
    for bytes in [pw.as_bytes(), &utf16] {
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            out.push(
                engine
                    .encode(bytes)
                    .trim_end_matches('=')
                    .as_bytes()
                    .to_vec(),
            );
        }
    }
    out
}

fn assert_no_password_in(db: &Path) {
    let mut files = vec![db.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        files.push(p.into());
    }
    // One pass per file: every form is at least 8 bytes long, so a form is found by looking
    // up each 8-byte window among the forms' first 8 bytes.
    let mut by_prefix: HashMap<[u8; 8], Vec<(usize, Vec<u8>)>> = HashMap::new();
    for i in 0..N {
        for form in forms(&password(i)) {
            let prefix: [u8; 8] = form[..8].try_into().expect("8 bytes");
            by_prefix.entry(prefix).or_default().push((i, form));
        }
    }
    for file in files.iter().filter(|f| f.exists()) {
        let bytes = std::fs::read(file).expect("read the file");
        for (at, window) in bytes.windows(8).enumerate() {
            let prefix: [u8; 8] = window.try_into().expect("8 bytes");
            for (i, form) in by_prefix.get(&prefix).into_iter().flatten() {
                assert!(
                    !bytes[at..].starts_with(form),
                    "{}: password {i} found in clear at byte {at}",
                    file.display()
                );
            }
        }
    }
}

async fn run_with_passwords(db: &Path) {
    let store = SqliteStore::open(db, SqliteOptions::new().with_current_key(k1())).expect("open");
    let records: Vec<OrderRecord> = (0..N).map(with_password).collect();
    store.insert_orders(&records).await.expect("insert");
    for i in 0..N {
        let r = store.order(&id(i)).await.expect("read").expect("stored");
        assert_eq!(secret_of(&r), password(i), "the secret is restored on read");
        if i % 2 == 0 {
            let sent = store
                .update_order(&id(i), 1, OrderUpdate::at(t0()).attempt_started())
                .await
                .expect("attempt");
            assert_eq!(secret_of(&sent), password(i), "still needed while Pending");
            let done = store
                .update_order(
                    &id(i),
                    2,
                    OrderUpdate::event(E::ConnectorSucceeded, t0())
                        .error(format!("set {}", Secret::new(password(i)))),
                )
                .await
                .expect("executed");
            assert_eq!(done.state, S::Executed);
            assert_eq!(secret_of(&done), SECRET_MASK, "erased once delivered");
        } else if i % 4 == 1 {
            store
                .update_order(&id(i), 1, OrderUpdate::event(E::ConnectorFailed, t0()))
                .await
                .expect("errored");
        }
    }
    // The other tables: texts built from a secret hold its mask (history messages, audit
    // reasons, job-run messages); a secret among exported values, assignments or requests is
    // refused before anything is written.
    for i in (0..N).step_by(2) {
        let shown = format!("password {} set", Secret::new(password(i)));
        let mut audit = AuditEntry::new(t0(), "ops", AuditAction::Approved, id(i).as_str());
        audit.reason = Some(shown.clone());
        store.append_audit(audit).await.expect("audit");
        let mut run = JobRun::started(format!("run-{i}"), JobKind::Complete, false, t0());
        run.message = Some(shown);
        store.put_job_run(run).await.expect("job run");
    }
    let mut leaky = autoprov_core::Resource::new("CN=leak");
    leaky.values.insert(
        "unicodePwd".into(),
        autoprov_core::PropertyValue::Scalar(ScalarValue::Secret(Secret::new(password(3)))),
    );
    assert!(matches!(
        store.upsert_resources(&"ad".into(), vec![leaky]).await,
        Err(StoreError::SecretNotStorable {
            table: "resources",
            ..
        })
    ));
    let mut assignments = Assignments::default();
    assignments.scalars.insert(
        "s-1".into(),
        autoprov_core::AssignedResourceScalar {
            id: "s-1".into(),
            assigned_resource_type: "a-1".into(),
            property: "unicodePwd".into(),
            value: ScalarValue::Secret(Secret::new(password(5))),
            status: autoprov_core::AssignmentStatus::new(autoprov_core::WorkflowState::Found),
        },
    );
    assert!(matches!(
        store.put_assignments(assignments).await,
        Err(StoreError::SecretNotStorable {
            table: "assignments",
            ..
        })
    ));
    let history = store.order_history(&id(0)).await.expect("history");
    assert!(history.len() >= 2, "the history is written: {history:?}");
    // Errored orders keep their secret: an operator retry sends them again.
    let errored = store.order(&id(1)).await.expect("read").expect("stored");
    assert_eq!(errored.state, S::Errored);
    assert_eq!(secret_of(&errored), password(1));
    let executed = store.order(&id(0)).await.expect("read").expect("stored");
    assert_eq!(secret_of(&executed), SECRET_MASK);
    // While open: the WAL holds the recent pages.
    assert_no_password_in(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_at_rest_in_db_or_wal() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    run_with_passwords(&db).await;
    // Closed (the WAL checkpointed into the file).
    assert_no_password_in(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_key_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    run_with_passwords(&db).await;
    for options in [
        SqliteOptions::new(),
        SqliteOptions::new().with_current_key(SealingKey::new("k1", [7; 32])),
        SqliteOptions::new().with_current_key(k2()),
    ] {
        let store = SqliteStore::open(&db, options).expect("reopen");
        let err = store
            .order(&id(3))
            .await
            .expect_err("a sealed secret without its key");
        assert!(
            matches!(&err, StoreError::SecretUnreadable { order_id, property, key_id }
                if order_id == &id(3) && property == "unicodePwd" && key_id == "k1"),
            "got {err:?}"
        );
        // Results need no secret: a missing key hides none.
        let results = store.results_page(None, 100).await.expect("results");
        assert!(
            results.iter().any(|r| r.order_id == id(1)),
            "o-1 is Errored"
        );
        // An order whose secret was erased reads without a key: it holds the mask only.
        let executed = store.order(&id(0)).await.expect("read").expect("stored");
        assert_eq!(secret_of(&executed), SECRET_MASK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_the_id_each_row_names() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    run_with_passwords(&db).await;
    let rotated = SqliteOptions::new()
        .with_current_key(k2())
        .with_old_key(k1());
    let store = SqliteStore::open(&db, rotated).expect("reopen");
    let old = store.order(&id(3)).await.expect("read").expect("stored");
    assert_eq!(secret_of(&old), password(3), "opened with the old key");
    let mut o = order(1000);
    o.changes.set("unicodePwd", Secret::new("Rotated-Pw!"));
    store
        .insert_orders(&[OrderRecord::pending(o, ConnectionMode::Automated, t0())])
        .await
        .expect("insert");
    drop(store);
    let store =
        SqliteStore::open(&db, SqliteOptions::new().with_current_key(k2())).expect("reopen");
    let new = store.order(&id(1000)).await.expect("read").expect("stored");
    assert_eq!(
        secret_of(&new),
        "Rotated-Pw!",
        "sealed with the current key"
    );
    assert!(matches!(
        store.order(&id(3)).await,
        Err(StoreError::SecretUnreadable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_key_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    let store = SqliteStore::open(&db, SqliteOptions::new()).expect("open");
    let plain = OrderRecord::pending(order(1), ConnectionMode::Automated, t0());
    let err = store
        .insert_orders(&[plain, with_password(2)])
        .await
        .expect_err("no key to seal with");
    assert!(
        matches!(&err, StoreError::SecretWithoutKey { order_id, property }
            if order_id == &id(2) && property == "unicodePwd"),
        "got {err:?}"
    );
    assert!(
        store.order(&id(1)).await.expect("read").is_none(),
        "nothing of the batch is written"
    );
    drop(store);
    assert_no_password_in(&db);
}

#[test]
fn key_debug_prints_no_key_bytes() {
    let shown = format!("{:?}", SqliteOptions::new().with_current_key(k2()));
    assert!(shown.contains("k2") && !shown.contains("[2, 2"), "{shown}");
}

#[test]
fn the_scan_finds_a_password_in_clear() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("plain.db");
    for form in forms(&password(5)) {
        let mut bytes = vec![0u8; 1000];
        bytes.extend_from_slice(&form);
        bytes.extend_from_slice(&[0u8; 100]);
        std::fs::write(&file, bytes).expect("write");
        let found = std::panic::catch_unwind(|| assert_no_password_in(&file));
        assert!(found.is_err(), "a password in clear must be found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_among_the_targets_values_is_sealed_too() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("store.db");
    let store = SqliteStore::open(&db, SqliteOptions::new().with_current_key(k1())).expect("open");
    let mut o = order(7);
    let mut target = autoprov_core::Resource::new("CN=u7");
    target.values.insert(
        "unicodePwd".into(),
        autoprov_core::PropertyValue::Scalar(ScalarValue::Secret(Secret::new(password(7)))),
    );
    o.resource = Some(target);
    store
        .insert_orders(&[OrderRecord::pending(o, ConnectionMode::Automated, t0())])
        .await
        .expect("insert");
    drop(store);
    assert_no_password_in(&db);
    let store =
        SqliteStore::open(&db, SqliteOptions::new().with_current_key(k1())).expect("reopen");
    let r = store.order(&id(7)).await.expect("read").expect("stored");
    match r
        .order
        .resource
        .as_ref()
        .and_then(|t| t.values.get("unicodePwd"))
    {
        Some(autoprov_core::PropertyValue::Scalar(ScalarValue::Secret(s))) => {
            assert_eq!(s.expose(), Ok(password(7).as_str()));
        }
        other => panic!("expected the secret back, found {other:?}"),
    }
    drop(store);
    let store = SqliteStore::open(&db, SqliteOptions::new()).expect("reopen without key");
    assert!(matches!(
        store.order(&id(7)).await,
        Err(StoreError::SecretUnreadable { property, .. }) if property == "Resource:unicodePwd"
    ));
}
