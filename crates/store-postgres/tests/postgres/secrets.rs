//! Secrets on PostgreSQL: sealed with the host's key (the same sealing as the SQLite store),
//! erased once delivered, unreadable without the key, rotated by key id; and no password in
//! any column of any table, read back raw with the `psql` client.

use crate::support;
use autoprov_core::{
    ConnectionMode, OrderId, PropertyValue, ProvisioningEvent as E, ProvisioningState as S,
    Resource, SECRET_MASK, ScalarValue, Secret,
};
use autoprov_store::testkit::{order, t0};
use autoprov_store::{
    AuditAction, AuditEntry, ClaimStore, JobKind, JobRun, OrderRecord, OrderUpdate, Store,
    StoreError,
};
use autoprov_store_postgres::{PgStore, SealingKey};

const N: usize = 12;

fn password(i: usize) -> String {
    format!("Pg-Init-Pw{i:03}-k9Qz!")
}

fn id(i: usize) -> OrderId {
    order(i).order_id
}

fn with_password(i: usize) -> OrderRecord {
    let mut o = order(i);
    o.changes.set("unicodePwd", Secret::new(password(i)));
    if i.is_multiple_of(3) {
        // A secret among the target's current values is sealed too.
        let mut target = Resource::new(format!("CN=u{i}"));
        target.values.insert(
            "unicodePwd".into(),
            PropertyValue::Scalar(ScalarValue::Secret(Secret::new(password(i)))),
        );
        o.resource = Some(target);
    }
    OrderRecord::pending(o, ConnectionMode::Automated, t0())
}

fn secret_of(r: &OrderRecord) -> String {
    match r.order.changes.scalar("unicodePwd") {
        Some(ScalarValue::Secret(s)) => s
            .expose()
            .map_or_else(|_| SECRET_MASK.to_owned(), str::to_owned),
        other => panic!("expected a secret, found {other:?}"),
    }
}

fn k1() -> SealingKey {
    SealingKey::new("k1", [1; 32])
}

fn k2() -> SealingKey {
    SealingKey::new("k2", [2; 32])
}

async fn keyed(url: &str, schema: &str, current: SealingKey, old: Option<SealingKey>) -> PgStore {
    let mut b = PgStore::builder()
        .url(url)
        .schema(schema)
        .create_schema(true)
        .pool_size(2)
        .current_key(current);
    if let Some(old) = old {
        b = b.old_key(old);
    }
    b.build().await.expect("connect with a key")
}

/// Runs `sql` through the `psql` client (tuples only, unaligned) and returns its output.
fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql (installed with postgresql by scripts/pg-test-server.sh)");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("psql prints UTF-8")
}

/// Every row of every table of `schema`, each row as PostgreSQL's text form of the whole row
/// (every column: text, jsonb, bytea as hex).
fn dump(url: &str, schema: &str) -> String {
    let tables = psql(
        url,
        &format!(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = '{schema}' AND table_type = 'BASE TABLE' ORDER BY 1"
        ),
    );
    let tables: Vec<&str> = tables.lines().filter(|t| !t.is_empty()).collect();
    for expected in ["orders", "order_history", "resources", "audit", "job_runs"] {
        assert!(tables.contains(&expected), "{expected} in {tables:?}");
    }
    tables
        .iter()
        .map(|t| psql(url, &format!("SELECT t::text FROM {schema}.{t} AS t")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every text form a password could take in the dump: itself, UTF-16LE, base64 of both, and
/// the hex of both (PostgreSQL prints bytea as hex).
fn forms(pw: &str) -> Vec<String> {
    use base64::Engine as _;
    let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut out = vec![pw.to_owned()];
    for bytes in [pw.as_bytes(), &utf16] {
        out.push(base64::engine::general_purpose::STANDARD.encode(bytes));
        out.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        out.push(bytes.iter().map(|b| format!("{b:02x}")).collect());
    }
    out.push(String::from_utf8_lossy(&utf16).into_owned());
    out.into_iter()
        .map(|f| f.trim_end_matches('=').to_owned())
        .collect()
}

fn assert_no_password_in(text: &str) {
    for i in 0..N {
        for form in forms(&password(i)) {
            assert!(
                !text.contains(&form),
                "password {i} found in a column (as {form})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_round_trip_and_no_column_holds_a_password() {
    let Some(url) = support::pg_url("sealed_secrets_round_trip_and_no_column_holds_a_password")
    else {
        return;
    };
    let schema = support::fresh_schema();
    let store = keyed(&url, &schema, k1(), None).await;
    let records: Vec<OrderRecord> = (0..N).map(with_password).collect();
    store.insert_orders(&records).await.expect("insert sealed");
    // Re-inserting the same orders is a no-op (their secrets are compared opened).
    let again = store.insert_orders(&records).await.expect("re-insert");
    assert_eq!(again.len(), N);
    for i in 0..N {
        let r = store.order(&id(i)).await.expect("read").expect("stored");
        assert_eq!(secret_of(&r), password(i), "restored on read");
        if i.is_multiple_of(3) {
            match r
                .order
                .resource
                .as_ref()
                .and_then(|t| t.values.get("unicodePwd"))
            {
                Some(PropertyValue::Scalar(ScalarValue::Secret(s))) => {
                    assert_eq!(s.expose(), Ok(password(i).as_str()));
                }
                other => panic!("expected the target's secret back, found {other:?}"),
            }
        }
        if i.is_multiple_of(2) {
            let sent = store
                .update_order(&id(i), 1, OrderUpdate::at(t0()).attempt_started())
                .await
                .expect("attempt");
            assert_eq!(secret_of(&sent), password(i), "still needed while Pending");
            // The texts of the other tables come from Display, which prints the mask.
            let message = format!("set {} on the account", Secret::new(password(i)));
            let done = store
                .update_order(
                    &id(i),
                    2,
                    OrderUpdate::event(E::ConnectorSucceeded, t0()).error(message.clone()),
                )
                .await
                .expect("executed");
            assert_eq!(done.state, S::Executed);
            assert_eq!(secret_of(&done), SECRET_MASK, "erased once delivered");
            let mut audit = AuditEntry::new(t0(), "ops", AuditAction::Approved, id(i).as_str());
            audit.reason = Some(message.clone());
            store.append_audit(audit).await.expect("audit");
        } else if i % 4 == 1 {
            store
                .update_order(&id(i), 1, OrderUpdate::event(E::ConnectorFailed, t0()))
                .await
                .expect("errored");
        }
    }
    let mut run = JobRun::started("run-1", JobKind::Complete, false, t0());
    run.message = Some(format!("{}", Secret::new(password(0))));
    store.put_job_run(run).await.expect("job run");
    // A secret among exported values is refused, naming it.
    let mut leaky = Resource::new("CN=leak");
    leaky.values.insert(
        "unicodePwd".into(),
        PropertyValue::Scalar(ScalarValue::Secret(Secret::new(password(1)))),
    );
    assert!(matches!(
        store.upsert_resources(&"ad".into(), vec![leaky]).await,
        Err(StoreError::SecretNotStorable {
            table: "resources",
            ..
        })
    ));
    // Errored orders keep their secret: an operator retry sends them again.
    let errored = store.order(&id(1)).await.expect("read").expect("stored");
    assert_eq!(secret_of(&errored), password(1));

    let text = dump(&url, &schema);
    assert!(
        text.contains(id(3).as_str()) && text.contains("k1"),
        "the dump holds the rows (order ids, key ids): {text:.400}"
    );
    assert_no_password_in(&text);
    let kept = psql(
        &url,
        &format!(
            "SELECT state, count(*) FROM {schema}.orders WHERE sealed IS NOT NULL GROUP BY 1 ORDER BY 1"
        ),
    );
    assert!(
        !kept.contains("Executed"),
        "no executed order keeps a sealed value: {kept}"
    );
    assert!(
        kept.contains("Pending") && kept.contains("Errored"),
        "{kept}"
    );

    // Without the key: a typed error naming the order, the slot and the key, never a mask.
    let keyless = support::store_in(&url, &schema).await;
    assert!(matches!(
        keyless.order(&id(3)).await,
        Err(StoreError::SecretUnreadable { order_id, key_id, .. }) if order_id == id(3) && key_id == "k1"
    ));
    let executed = keyless.order(&id(0)).await.expect("read").expect("stored");
    assert_eq!(
        secret_of(&executed),
        SECRET_MASK,
        "erased: readable without a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_the_id_each_row_names() {
    let Some(url) = support::pg_url("pg keys_rotate_by_the_id_each_row_names") else {
        return;
    };
    let schema = support::fresh_schema();
    let first = keyed(&url, &schema, k1(), None).await;
    first
        .insert_orders(&[with_password(3)])
        .await
        .expect("insert with k1");
    drop(first);

    let rotated = keyed(&url, &schema, k2(), Some(k1())).await;
    let old = rotated.order(&id(3)).await.expect("read").expect("stored");
    assert_eq!(secret_of(&old), password(3), "opened with the old key");
    rotated
        .insert_orders(&[with_password(5)])
        .await
        .expect("insert with k2");
    // An update of the old order keeps its seal (and its key id) while it stays open.
    rotated
        .update_order(&id(3), 1, OrderUpdate::at(t0()).attempt_started())
        .await
        .expect("attempt");
    drop(rotated);
    let keys = psql(
        &url,
        &format!(
            "SELECT order_id, sealed->'unicodePwd'->>'key_id' FROM {schema}.orders ORDER BY 1"
        ),
    );
    assert_eq!(keys.trim(), format!("{}|k1\n{}|k2", id(3), id(5)));

    let only_new = keyed(&url, &schema, k2(), None).await;
    let new = only_new.order(&id(5)).await.expect("read").expect("stored");
    assert_eq!(secret_of(&new), password(5), "sealed with the current key");
    assert!(matches!(
        only_new.order(&id(3)).await,
        Err(StoreError::SecretUnreadable { key_id, .. }) if key_id == "k1"
    ));
    // A wrong key under the right id does not open it either.
    let forged = keyed(&url, &schema, SealingKey::new("k2", [9; 32]), None).await;
    assert!(matches!(
        forged.order(&id(5)).await,
        Err(StoreError::SecretUnreadable { .. })
    ));
}

#[test]
fn key_debug_prints_no_key_bytes() {
    let shown = format!(
        "{:?}",
        PgStore::builder().current_key(SealingKey::new("k9", [9; 32]))
    );
    assert!(shown.contains("k9") && !shown.contains("[9, 9"), "{shown}");
}

/// Outcomes under a claim (one statement each) keep the sealed secret while the order is
/// Pending and erase it, as `update_order` does, when it is executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_under_a_claim_keep_then_erase_the_sealed_secret() {
    let Some(url) = support::pg_url("outcomes_under_a_claim_keep_then_erase_the_sealed_secret")
    else {
        return;
    };
    let schema = support::fresh_schema();
    let store = keyed(&url, &schema, k1(), None).await;
    store
        .insert_orders(&[with_password(1)])
        .await
        .expect("insert");
    let claim = store
        .claim("w", 1, std::time::Duration::from_secs(60))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(secret_of(&claim.record), password(1));
    let claim = store
        .record_outcome(&claim, OrderUpdate::at(t0()).attempt_started())
        .await
        .expect("attempt");
    assert_eq!(secret_of(&claim.record), password(1), "still Pending: kept");
    let reread = store.order(&id(1)).await.expect("read").expect("stored");
    assert_eq!(
        secret_of(&reread),
        password(1),
        "sealed, and opened on read"
    );
    let done = store
        .record_outcome(
            &claim,
            OrderUpdate::event(autoprov_core::ProvisioningEvent::ConnectorSucceeded, t0()),
        )
        .await
        .expect("outcome");
    let stored = store.order(&id(1)).await.expect("read").expect("stored");
    assert_eq!(stored, done.record, "the claim's record is the stored one");
    assert_ne!(secret_of(&stored), password(1), "erased once executed");
    let sealed = psql(
        &url,
        &format!("SELECT count(*) FROM {schema}.orders WHERE sealed IS NOT NULL"),
    );
    assert_eq!(sealed.trim(), "0", "no sealed secret left");
}

/// The same through `record_outcomes` (several claims, one statement): the secrets stay
/// sealed while the orders are Pending and are erased in the write that executes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_outcomes_keep_then_erase_the_sealed_secrets() {
    let Some(url) = support::pg_url("batched_outcomes_keep_then_erase_the_sealed_secrets") else {
        return;
    };
    let schema = support::fresh_schema();
    let store = keyed(&url, &schema, k1(), None).await;
    store
        .insert_orders(&[with_password(1), with_password(2)])
        .await
        .expect("insert");
    let claims = store
        .claim("w", 2, std::time::Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(claims.len(), 2);
    let claims: Vec<_> = store
        .record_outcomes(
            claims
                .into_iter()
                .map(|c| (c, OrderUpdate::at(t0()).attempt_started()))
                .collect(),
        )
        .await
        .into_iter()
        .map(|r| r.expect("attempt"))
        .collect();
    for (c, i) in claims.iter().zip([1, 2]) {
        assert_eq!(secret_of(&c.record), password(i), "still Pending: kept");
        let reread = store.order(&id(i)).await.expect("read").expect("stored");
        assert_eq!(
            secret_of(&reread),
            password(i),
            "sealed, and opened on read"
        );
    }
    let done: Vec<_> = store
        .record_outcomes(
            claims
                .into_iter()
                .map(|c| {
                    (
                        c,
                        OrderUpdate::event(
                            autoprov_core::ProvisioningEvent::ConnectorSucceeded,
                            t0(),
                        ),
                    )
                })
                .collect(),
        )
        .await
        .into_iter()
        .map(|r| r.expect("outcome"))
        .collect();
    for (d, i) in done.iter().zip([1, 2]) {
        let stored = store.order(&id(i)).await.expect("read").expect("stored");
        assert_eq!(stored, d.record, "the claim's record is the stored one");
        assert_ne!(secret_of(&stored), password(i), "erased once executed");
    }
    let sealed = psql(
        &url,
        &format!("SELECT count(*) FROM {schema}.orders WHERE sealed IS NOT NULL"),
    );
    assert_eq!(sealed.trim(), "0", "no sealed secret left");
}
