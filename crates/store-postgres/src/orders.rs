//! Orders: insertion, and the one place an order record changes (read it `FOR UPDATE`,
//! apply the update through [`OrderRecord::applied`], write it back with its history entry,
//! in the caller's transaction).

use crate::{db, from_json, to_i64, to_json};
use autoprov_core::{OrderId, ProvisioningState, Secret};
use autoprov_store::seal::{STATES_KEEPING_SECRETS, Sealed, Sealer, restore, secrets_of};
use autoprov_store::{OrderRecord, OrderUpdate, StoreError};
use deadpool_postgres::{Client, Transaction};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use tokio_postgres::Row;

/// The record of a row selected as `record, sealed`: its JSON (secrets masked), with the
/// sealed secrets opened and put back.
pub(crate) fn record_of(row: &Row, sealer: &Sealer) -> Result<OrderRecord, StoreError> {
    let mut record: OrderRecord = from_json(
        "decode an order record",
        row.get::<_, serde_json::Value>("record"),
    )?;
    if let Some(sealed) = row.get::<_, Option<serde_json::Value>>("sealed") {
        let sealed: std::collections::BTreeMap<String, SealedJson> =
            from_json("decode sealed secrets", sealed)?;
        let mut order = (*record.order).clone();
        for (slot, s) in sealed {
            let s = s.decode(record.id(), &slot)?;
            let plain = sealer.open(record.id(), &slot, &s)?;
            restore(&mut order, &slot, Secret::new(plain));
        }
        record.order = std::sync::Arc::new(order);
    }
    Ok(record)
}

/// A sealed value in the `sealed` column: the bytes in hex.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedJson {
    key_id: String,
    nonce: String,
    ciphertext: String,
}

impl SealedJson {
    fn encode(s: Sealed) -> Self {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        Self {
            nonce: hex(&s.nonce),
            ciphertext: hex(&s.ciphertext),
            key_id: s.key_id,
        }
    }

    fn decode(self, order_id: &OrderId, slot: &str) -> Result<Sealed, StoreError> {
        let unreadable = || StoreError::SecretUnreadable {
            order_id: order_id.clone(),
            property: slot.to_owned(),
            key_id: self.key_id.clone(),
        };
        let unhex = |t: &str| -> Option<Vec<u8>> {
            t.len()
                .is_multiple_of(2)
                .then(|| {
                    (0..t.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
                        .collect()
                })
                .flatten()
        };
        Ok(Sealed {
            nonce: unhex(&self.nonce).ok_or_else(unreadable)?,
            ciphertext: unhex(&self.ciphertext).ok_or_else(unreadable)?,
            key_id: self.key_id,
        })
    }
}

/// The `sealed` column of a new order: every secret it holds sealed with the current key
/// (none: [`StoreError::SecretWithoutKey`], so the order is refused, never stored in clear),
/// kept only while its state keeps secrets. A redacted secret has no value to seal: it stays
/// masked and reads back redacted (the dispatcher never sends it).
fn seal_column(sealer: &Sealer, r: &OrderRecord) -> Result<Option<serde_json::Value>, StoreError> {
    let secrets = secrets_of(&r.order);
    if secrets.is_empty() {
        return Ok(None);
    }
    let mut sealed = serde_json::Map::new();
    for (slot, secret) in &secrets {
        let Ok(clear) = secret.expose() else {
            continue;
        };
        let s = sealer.seal(r.id(), slot, clear)?;
        sealed.insert(
            slot.clone(),
            to_json("encode a sealed secret", &SealedJson::encode(s))?,
        );
    }
    if sealed.is_empty() || !STATES_KEEPING_SECRETS.contains(&r.state) {
        return Ok(None);
    }
    Ok(Some(serde_json::Value::Object(sealed)))
}

/// Inserts new orders (version 1) in `tx`; returns the ids already stored with the same
/// order. A conflicting or duplicated id, or an order holding a secret, is an error and the
/// caller's transaction must not commit.
pub(crate) async fn insert_orders(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    records: &[OrderRecord],
) -> Result<Vec<OrderId>, StoreError> {
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(records.len());
    // Rows are inserted (and their keys locked) in id order, so two batches sharing ids
    // wait for each other instead of deadlocking.
    let mut sorted: Vec<&OrderRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.id().cmp(b.id()));
    for r in sorted {
        if !seen.insert(r.id()) {
            return Err(StoreError::DuplicateInBatch {
                order_id: r.id().clone(),
            });
        }
        let sealed = seal_column(sealer, r)?;
        let mut stored = r.clone();
        stored.version = 1;
        rows.push(json!({
            "id": r.id().as_str(),
            "state": r.state.name(),
            "owner": r.order.owner_id().map(|o| o.as_str()),
            "deps": r.order.depends_on.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "not_before": r.order.not_before,
            "next": r.dispatch.next_attempt_at,
            "updated": r.dispatch.updated_at,
            "record": to_json("encode an order record", &stored)?,
            "sealed": sealed,
        }));
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip for the whole batch; rows already there are compared below.
    let inserted: HashSet<String> = tx
        .query(
            "INSERT INTO orders (order_id, state, version, owner_id, depends_on, not_before,
                                 next_attempt_at, updated_at, record, sealed)
             SELECT x->>'id', x->>'state', 1, x->>'owner',
                    ARRAY(SELECT jsonb_array_elements_text(x->'deps')),
                    (x->>'not_before')::timestamptz, (x->>'next')::timestamptz,
                    (x->>'updated')::timestamptz, x->'record',
                    NULLIF(x->'sealed', 'null'::jsonb)
             FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(x, n)
             ORDER BY n
             ON CONFLICT (order_id) DO NOTHING
             RETURNING order_id",
            &[&serde_json::Value::Array(rows)],
        )
        .await
        .map_err(db("insert orders"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let existing: Vec<&OrderRecord> = records
        .iter()
        .filter(|r| !inserted.contains(r.id().as_str()))
        .collect();
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let existing_ids: Vec<String> = existing
        .iter()
        .map(|r| r.id().as_str().to_owned())
        .collect();
    let stored = tx
        .query(
            "SELECT order_id, record, sealed FROM orders WHERE order_id = ANY($1)",
            &[&existing_ids],
        )
        .await
        .map_err(db("insert orders: compare"))?;
    let mut stored_by_id = HashMap::new();
    for row in &stored {
        stored_by_id.insert(row.get::<_, String>("order_id"), record_of(row, sealer)?);
    }
    for r in &existing {
        match stored_by_id.get(r.id().as_str()) {
            Some(s) if s.order.same_change(&r.order) => {}
            _ => {
                return Err(StoreError::ConflictingOrder {
                    order_id: r.id().clone(),
                });
            }
        }
    }
    Ok(existing.into_iter().map(|r| r.id().clone()).collect())
}

/// Inserted rows from which an insert refreshes the planner's statistics of `orders`.
const ANALYZE_AFTER: usize = 1000;

/// After a committed insert of many orders: refreshes the planner's statistics of the
/// `state` column (`ANALYZE orders (state)`, a sample, not a scan), as PostgreSQL advises
/// after a bulk load. Until autovacuum gets to it, statistics that predate the insert say
/// few orders are Pending; the claim's plan then reads and sorts every Pending order on each
/// claim (milliseconds per claim with thousands waiting) instead of walking its index to the
/// first ready ones. A failure is only logged: the orders are stored.
pub(crate) async fn refresh_stats(client: &Client, inserted: usize) {
    if inserted < ANALYZE_AFTER {
        return;
    }
    if let Err(e) = client.batch_execute("ANALYZE orders (state)").await {
        tracing::warn!(error = %e, "could not refresh the statistics of orders after an insert");
    }
}

/// The fencing condition of a write made under a claim.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fence {
    pub(crate) token: u64,
}

/// The one place an order record changes: read it `FOR UPDATE`, check the fence (if any)
/// and the version, apply `update` through [`OrderRecord::applied`], write the record (the
/// fence checked again in the `UPDATE`'s `WHERE`) and append its history entry. Nothing is
/// written on an error; the caller commits.
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    order_id: &OrderId,
    expected_version: u64,
    update: &OrderUpdate,
    fence: Option<Fence>,
) -> Result<OrderRecord, StoreError> {
    // Prepared once per connection: an update is three statements, each one round trip.
    let read = tx
        .prepare_cached(
            "SELECT record, sealed, lease_token FROM orders WHERE order_id = $1 FOR UPDATE",
        )
        .await
        .map_err(db("update order: prepare"))?;
    let write = tx
        .prepare_cached(
            "UPDATE orders SET state = $2, version = $3, next_attempt_at = $4, updated_at = $5,
                    record = $6,
                    sealed = CASE WHEN $9 THEN NULL ELSE sealed END,
                    lease_owner = CASE WHEN $8 THEN NULL ELSE lease_owner END,
                    lease_expires_at = CASE WHEN $8 THEN NULL ELSE lease_expires_at END
             WHERE order_id = $1 AND ($7::bigint IS NULL OR lease_token = $7)",
        )
        .await
        .map_err(db("update order: prepare"))?;
    let append = tx
        .prepare_cached("INSERT INTO order_history (order_id, version, entry) VALUES ($1, $2, $3)")
        .await
        .map_err(db("update order: prepare"))?;
    let row = tx
        .query_opt(&read, &[&order_id.as_str()])
        .await
        .map_err(db("update order: read"))?
        .ok_or_else(|| StoreError::UnknownOrder {
            order_id: order_id.clone(),
        })?;
    let lost = || StoreError::LeaseLost {
        order_id: order_id.clone(),
        token: fence.map_or(0, |f| f.token),
    };
    if let Some(f) = fence
        && row.get::<_, Option<i64>>("lease_token") != Some(to_i64(f.token))
    {
        return Err(lost());
    }
    let current = record_of(&row, sealer)?;
    if current.version != expected_version {
        return Err(StoreError::StaleVersion {
            order_id: order_id.clone(),
            expected: expected_version,
            actual: current.version,
        });
    }
    let (mut next, entry) = current.applied(update)?;
    // Under a claim, an order that left Pending has nothing left to hold: free the lease.
    let release = fence.is_some() && next.state != ProvisioningState::Pending;
    // Delivered (or never to be): the sealed secrets are erased in the same write.
    let erase = !STATES_KEEPING_SECRETS.contains(&next.state);
    let written = tx
        .execute(
            &write,
            &[
                &order_id.as_str(),
                &next.state.name(),
                &to_i64(next.version),
                &next.dispatch.next_attempt_at,
                &next.dispatch.updated_at,
                &to_json("encode an order record", &next)?,
                &fence.map(|f| to_i64(f.token)),
                &release,
                &erase,
            ],
        )
        .await
        .map_err(db("update order: write"))?;
    if written != 1 {
        return Err(lost());
    }
    tx.execute(
        &append,
        &[
            &order_id.as_str(),
            &to_i64(entry.version),
            &to_json("encode a history entry", &entry)?,
        ],
    )
    .await
    .map_err(db("update order: history"))?;
    if erase {
        // As stored: the secrets are gone, what is left is the mask (read back redacted).
        let slots: Vec<String> = secrets_of(&next.order)
            .into_iter()
            .map(|(slot, _)| slot)
            .collect();
        if !slots.is_empty() {
            let mut order = (*next.order).clone();
            for slot in slots {
                restore(&mut order, &slot, Secret::redacted());
            }
            next.order = std::sync::Arc::new(order);
        }
    }
    Ok(next)
}

/// An outcome under a claim, computed from the claim's copy of the record (through
/// [`OrderRecord::applied`], as everywhere), ready to be written if the stored version and
/// lease token are still the claim's.
pub(crate) struct ClaimedWrite {
    /// The record after the update, as the caller gets it back.
    next: OrderRecord,
    /// Its history entry, encoded.
    entry: serde_json::Value,
    /// The record after the update, encoded.
    record: serde_json::Value,
    /// The order leaves Pending: the lease is freed in the same write.
    release: bool,
    /// The order's state keeps no secrets: the sealed ones are erased in the same write.
    erase: bool,
}

impl ClaimedWrite {
    /// `Ok(None)`: the update does not apply to the claim's copy (an illegal transition) —
    /// the caller takes the transactional path, which reports exactly what is wrong.
    pub(crate) fn of(
        record: &OrderRecord,
        update: &OrderUpdate,
    ) -> Result<Option<Self>, StoreError> {
        let Ok((next, entry)) = record.applied(update) else {
            return Ok(None);
        };
        Ok(Some(Self {
            release: next.state != ProvisioningState::Pending,
            // Delivered (or never to be): the sealed secrets are erased in the same write,
            // as in `apply`.
            erase: !STATES_KEEPING_SECRETS.contains(&next.state),
            entry: to_json("encode a history entry", &entry)?,
            record: to_json("encode an order record", &next)?,
            next,
        }))
    }

    /// The record as stored once written: erased secrets read back as the mask.
    pub(crate) fn written(self) -> OrderRecord {
        let mut next = self.next;
        if self.erase {
            let slots: Vec<String> = secrets_of(&next.order)
                .into_iter()
                .map(|(slot, _)| slot)
                .collect();
            if !slots.is_empty() {
                let mut order = (*next.order).clone();
                for slot in slots {
                    restore(&mut order, &slot, Secret::redacted());
                }
                next.order = std::sync::Arc::new(order);
            }
        }
        next
    }
}

/// The write of an outcome under a claim, in one statement: the claim holds the record at
/// its version, so the new record is computed from it (through [`OrderRecord::applied`], as
/// everywhere) and written only if the stored version and the lease token are still the
/// claim's, with its history entry, atomically. One round trip instead of a transaction of
/// five; nothing is written when it returns an error. `Ok(None)`: the update does not apply
/// to the claim's copy (an illegal transition) — the caller takes the transactional path,
/// which reports exactly what is wrong.
pub(crate) async fn apply_claimed(
    client: &Client,
    order_id: &OrderId,
    record: &OrderRecord,
    token: u64,
    update: &OrderUpdate,
) -> Result<Option<OrderRecord>, StoreError> {
    let Some(w) = ClaimedWrite::of(record, update)? else {
        return Ok(None);
    };
    let write = client
        .prepare_cached(
            "WITH upd AS (
                 UPDATE orders SET state = $4, version = $5, next_attempt_at = $6,
                        updated_at = $7, record = $8,
                        sealed = CASE WHEN $11 THEN NULL ELSE sealed END,
                        lease_owner = CASE WHEN $9 THEN NULL ELSE lease_owner END,
                        lease_expires_at = CASE WHEN $9 THEN NULL ELSE lease_expires_at END
                 WHERE order_id = $1 AND lease_token = $2 AND version = $3
                 RETURNING order_id),
             hist AS (
                 INSERT INTO order_history (order_id, version, entry)
                 SELECT order_id, $5, $10 FROM upd)
             SELECT count(*) FROM upd",
        )
        .await
        .map_err(db("record outcome: prepare"))?;
    let written: i64 = client
        .query_one(
            &write,
            &[
                &order_id.as_str(),
                &to_i64(token),
                &to_i64(record.version),
                &w.next.state.name(),
                &to_i64(w.next.version),
                &w.next.dispatch.next_attempt_at,
                &w.next.dispatch.updated_at,
                &w.record,
                &w.release,
                &w.entry,
                &w.erase,
            ],
        )
        .await
        .map_err(db("record outcome"))?
        .get(0);
    if written == 1 {
        return Ok(Some(w.written()));
    }
    Err(why_not_written(client, order_id, record.version, token).await?)
}

/// Nothing was written under a claim: why, in the order the transactional path checks
/// (unknown order, lost lease, stale version).
async fn why_not_written(
    client: &Client,
    order_id: &OrderId,
    version: u64,
    token: u64,
) -> Result<StoreError, StoreError> {
    let row = client
        .query_opt(
            "SELECT version, lease_token FROM orders WHERE order_id = $1",
            &[&order_id.as_str()],
        )
        .await
        .map_err(db("record outcome: read"))?;
    let Some(row) = row else {
        return Ok(StoreError::UnknownOrder {
            order_id: order_id.clone(),
        });
    };
    if row.get::<_, Option<i64>>("lease_token") != Some(to_i64(token)) {
        return Ok(StoreError::LeaseLost {
            order_id: order_id.clone(),
            token,
        });
    }
    Ok(StoreError::StaleVersion {
        order_id: order_id.clone(),
        expected: version,
        actual: crate::to_u64(row.get("version")),
    })
}

/// One write of [`apply_claimed_batch`]: the claimed order, its version and token as
/// claimed, and the write computed from the claim's copy.
pub(crate) struct BatchItem<'a> {
    pub(crate) order_id: &'a OrderId,
    pub(crate) version: u64,
    pub(crate) token: u64,
    pub(crate) write: ClaimedWrite,
}

/// [`apply_claimed`] for several claimed orders (distinct ids) in one statement: each row is
/// written only if its own lease token and version are still the claim's (checked in the
/// `UPDATE`'s `WHERE`, row by row), with its history entry. Returns, per item, the record
/// written, or why nothing was written for it. An error of the statement itself means
/// nothing was written for any of them.
pub(crate) async fn apply_claimed_batch(
    client: &Client,
    items: Vec<BatchItem<'_>>,
) -> Result<Vec<Result<OrderRecord, StoreError>>, StoreError> {
    let write = client
        .prepare_cached(
            "WITH x AS (
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                      $5::bigint[], $6::timestamptz[], $7::timestamptz[],
                                      $8::jsonb[], $9::bool[], $10::jsonb[], $11::bool[])
                     AS x(order_id, token, version, state, new_version, next_at, updated,
                          record, release, entry, erase)),
             upd AS (
                 UPDATE orders o SET state = x.state, version = x.new_version,
                        next_attempt_at = x.next_at, updated_at = x.updated, record = x.record,
                        sealed = CASE WHEN x.erase THEN NULL ELSE o.sealed END,
                        lease_owner = CASE WHEN x.release THEN NULL ELSE o.lease_owner END,
                        lease_expires_at =
                            CASE WHEN x.release THEN NULL ELSE o.lease_expires_at END
                 FROM x
                 WHERE o.order_id = x.order_id AND o.lease_token = x.token
                   AND o.version = x.version
                 RETURNING o.order_id, x.new_version, x.entry),
             hist AS (
                 INSERT INTO order_history (order_id, version, entry)
                 SELECT order_id, new_version, entry FROM upd)
             SELECT order_id FROM upd",
        )
        .await
        .map_err(db("record outcomes: prepare"))?;
    let ids: Vec<&str> = items.iter().map(|i| i.order_id.as_str()).collect();
    let tokens: Vec<i64> = items.iter().map(|i| to_i64(i.token)).collect();
    let versions: Vec<i64> = items.iter().map(|i| to_i64(i.version)).collect();
    let states: Vec<&str> = items.iter().map(|i| i.write.next.state.name()).collect();
    let new_versions: Vec<i64> = items.iter().map(|i| to_i64(i.write.next.version)).collect();
    let next_at: Vec<_> = items
        .iter()
        .map(|i| i.write.next.dispatch.next_attempt_at)
        .collect();
    let updated: Vec<_> = items
        .iter()
        .map(|i| i.write.next.dispatch.updated_at)
        .collect();
    let records: Vec<&serde_json::Value> = items.iter().map(|i| &i.write.record).collect();
    let release: Vec<bool> = items.iter().map(|i| i.write.release).collect();
    let entries: Vec<&serde_json::Value> = items.iter().map(|i| &i.write.entry).collect();
    let erase: Vec<bool> = items.iter().map(|i| i.write.erase).collect();
    let written: HashSet<String> = client
        .query(
            &write,
            &[
                &ids,
                &tokens,
                &versions,
                &states,
                &new_versions,
                &next_at,
                &updated,
                &records,
                &release,
                &entries,
                &erase,
            ],
        )
        .await
        .map_err(db("record outcomes"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if written.contains(item.order_id.as_str()) {
            out.push(Ok(item.write.written()));
        } else {
            out.push(
                match why_not_written(client, item.order_id, item.version, item.token).await {
                    Ok(e) | Err(e) => Err(e),
                },
            );
        }
    }
    Ok(out)
}
