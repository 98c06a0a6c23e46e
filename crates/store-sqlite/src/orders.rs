//! Orders as rows: the immutable order (JSON, secrets masked), the mutable record in columns,
//! sealed secrets beside them; every order write and read.

use crate::cache::{Cached, OrderCache};
use crate::codec::{Context as _, from_json, limit, time_key, to_i64, to_json, to_u64};
use autoprov_core::{
    ConnectionMode, OrderId, ProvisioningOrder, ProvisioningResult, ProvisioningState, Secret,
};
use autoprov_store::seal::{STATES_KEEPING_SECRETS, Sealed, Sealer, restore, secrets_of};
use autoprov_store::{
    AuditEntry, DispatchRecord, HistoryEntry, OPEN_STATES, OrderRecord, OrderUpdate,
    ReviewDecision, StoreError,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const COLUMNS: &str = "o.id, c.order_json, o.mode, o.state, o.version, o.dispatch, \
     o.resource_id, o.stable_id, o.ticket, o.secrets";
/// The tables of [`COLUMNS`].
const FROM: &str = "orders AS o JOIN order_contents AS c ON c.id = o.id";

/// An order row as read.
pub(crate) struct RawOrder {
    id: String,
    order_json: String,
    mode: String,
    state: String,
    version: i64,
    dispatch: String,
    resource_id: Option<String>,
    stable_id: Option<String>,
    ticket: Option<String>,
    secrets: i64,
}

fn raw(row: &Row<'_>) -> rusqlite::Result<RawOrder> {
    Ok(RawOrder {
        id: row.get(0)?,
        order_json: row.get(1)?,
        mode: row.get(2)?,
        state: row.get(3)?,
        version: row.get(4)?,
        dispatch: row.get(5)?,
        resource_id: row.get(6)?,
        stable_id: row.get(7)?,
        ticket: row.get(8)?,
        secrets: row.get(9)?,
    })
}

fn mode_text(mode: ConnectionMode) -> Result<String, StoreError> {
    match serde_json::to_value(mode).during("encoding a connection mode")? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

fn state_of(text: &str) -> Result<ProvisioningState, StoreError> {
    ProvisioningState::from_name(text).ok_or_else(|| {
        StoreError::backend(
            "decoding an order state",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown state {text}"),
            ),
        )
    })
}

/// Puts the sealed secrets of an order back into it.
fn unseal_into(
    conn: &Connection,
    sealer: &Sealer,
    order: &mut ProvisioningOrder,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT property, key_id, nonce, ciphertext FROM sealed_secrets WHERE order_id = ?1",
        )
        .during("reading sealed secrets")?;
    let rows = stmt
        .query_map([order.order_id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Sealed {
                    key_id: r.get(1)?,
                    nonce: r.get(2)?,
                    ciphertext: r.get(3)?,
                },
            ))
        })
        .during("reading sealed secrets")?
        .collect::<Result<Vec<_>, _>>()
        .during("reading sealed secrets")?;
    for (slot, sealed) in rows {
        let plain = sealer.open(&order.order_id, &slot, &sealed)?;
        restore(order, &slot, Secret::new(plain));
    }
    Ok(())
}

/// The order of a row: its JSON, with the sealed secrets put back.
fn decode_order(
    conn: &Connection,
    sealer: &Sealer,
    order_json: &str,
    secrets: i64,
) -> Result<Arc<ProvisioningOrder>, StoreError> {
    let mut order: ProvisioningOrder = from_json("decoding an order", order_json)?;
    if secrets > 0 {
        unseal_into(conn, sealer, &mut order)?;
    }
    Ok(Arc::new(order))
}

/// The record of a row around its (decoded) order.
fn record_of(raw: RawOrder, order: Arc<ProvisioningOrder>) -> Result<OrderRecord, StoreError> {
    let mode: ConnectionMode =
        serde_json::from_value(serde_json::Value::String(raw.mode)).during("decoding a mode")?;
    let dispatch: DispatchRecord = from_json("decoding a dispatch record", &raw.dispatch)?;
    let mut record = OrderRecord::new(order, mode, state_of(&raw.state)?, dispatch.created_at);
    record.version = to_u64(raw.version);
    record.dispatch = dispatch;
    record.resource_id = raw.resource_id.map(Into::into);
    record.stable_id = raw.stable_id.map(Into::into);
    record.ticket = raw.ticket;
    debug_assert_eq!(record.id().as_str(), raw.id);
    Ok(record)
}

fn decode(conn: &Connection, sealer: &Sealer, raw: RawOrder) -> Result<OrderRecord, StoreError> {
    let order = decode_order(conn, sealer, &raw.order_json, raw.secrets)?;
    record_of(raw, order)
}

fn query_orders(
    conn: &Connection,
    sealer: &Sealer,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<OrderRecord>, StoreError> {
    query_orders_with(conn, Some(sealer), sql, params)
}

/// Orders read; their secrets put back when `sealer` is given, left masked when not.
fn query_orders_with(
    conn: &Connection,
    sealer: Option<&Sealer>,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<OrderRecord>, StoreError> {
    let raws = {
        let mut stmt = conn.prepare_cached(sql).during("reading orders")?;
        stmt.query_map(params, raw)
            .during("reading orders")?
            .collect::<Result<Vec<_>, _>>()
            .during("reading orders")?
    };
    raws.into_iter()
        .map(|r| match sealer {
            Some(sealer) => decode(conn, sealer, r),
            None => {
                let order = Arc::new(from_json("decoding an order", &r.order_json)?);
                record_of(r, order)
            }
        })
        .collect()
}

// -- reads ------------------------------------------------------------------------------------

pub(crate) fn order(
    conn: &Connection,
    sealer: &Sealer,
    id: &OrderId,
) -> Result<Option<OrderRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE o.id = ?1");
    Ok(query_orders(conn, sealer, &sql, [id.as_str()])?.pop())
}

pub(crate) fn orders_in(
    conn: &Connection,
    sealer: &Sealer,
    states: &[ProvisioningState],
) -> Result<Vec<OrderRecord>, StoreError> {
    let names: Vec<&str> = states
        .iter()
        .map(|s| s.name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    query_orders(
        conn,
        sealer,
        &orders_in_sql(names.len()),
        rusqlite::params_from_iter(names),
    )
}

/// `orders_in` for `n` states: from the `(state, id)` index.
pub(crate) fn orders_in_sql(n: usize) -> String {
    format!(
        "SELECT {COLUMNS} FROM orders AS o INDEXED BY orders_by_state \
         JOIN order_contents AS c ON c.id = o.id WHERE o.state IN ({}) ORDER BY o.id",
        vec!["?"; n].join(", ")
    )
}

/// A page of orders: keyset pagination on the primary key.
pub(crate) fn orders_page_sql() -> String {
    format!("SELECT {COLUMNS} FROM {FROM} WHERE o.id > ?1 ORDER BY o.id LIMIT ?2")
}

pub(crate) fn orders_page(
    conn: &Connection,
    sealer: &Sealer,
    after: Option<&OrderId>,
    n: usize,
) -> Result<Vec<OrderRecord>, StoreError> {
    let sql = orders_page_sql();
    query_orders(
        conn,
        sealer,
        &sql,
        params![after.map_or("", |a| a.as_str()), limit(n)],
    )
}

/// Results need no secret: they are read with secrets masked, so a missing key never hides
/// a result.
pub(crate) fn results_page(
    conn: &Connection,
    after: Option<&OrderId>,
    n: usize,
) -> Result<Vec<ProvisioningResult>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE o.id > ?1 \
         AND o.state NOT IN ('Pending', 'AwaitingApproval') ORDER BY o.id LIMIT ?2"
    );
    Ok(query_orders_with(
        conn,
        None,
        &sql,
        params![after.map_or("", |a| a.as_str()), limit(n)],
    )?
    .iter()
    .map(OrderRecord::result)
    .collect())
}

pub(crate) fn order_counts(
    conn: &Connection,
) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT state, COUNT(*) FROM orders GROUP BY state")
        .during("counting orders")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .during("counting orders")?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (state, n) = row.during("counting orders")?;
        out.insert(state_of(&state)?, to_u64(n));
    }
    Ok(out)
}

pub(crate) fn order_history(
    conn: &Connection,
    id: &OrderId,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT entry FROM order_history WHERE order_id = ?1 ORDER BY version")
        .during("reading history")?;
    let rows = stmt
        .query_map([id.as_str()], |r| r.get::<_, String>(0))
        .during("reading history")?;
    rows.map(|r| from_json("decoding history", &r.during("reading history")?))
        .collect()
}

pub(crate) fn review_decision(
    conn: &Connection,
    id: &OrderId,
) -> Result<Option<ReviewDecision>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT decision FROM review_decisions WHERE order_id = ?1")
        .during("reading a review decision")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()
        .during("reading a review decision")?;
    text.map(|t| from_json("decoding a review decision", &t))
        .transpose()
}

pub(crate) fn review_decisions_page(
    conn: &Connection,
    after: Option<&OrderId>,
    n: usize,
) -> Result<Vec<ReviewDecision>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT decision FROM review_decisions WHERE order_id > ?1 ORDER BY order_id LIMIT ?2",
        )
        .during("reading review decisions")?;
    let rows = stmt
        .query_map(params![after.map_or("", |a| a.as_str()), limit(n)], |r| {
            r.get::<_, String>(0)
        })
        .during("reading review decisions")?;
    rows.map(|r| {
        from_json(
            "decoding a review decision",
            &r.during("reading review decisions")?,
        )
    })
    .collect()
}

// -- writes -----------------------------------------------------------------------------------

pub(crate) fn insert_orders(
    conn: &Connection,
    sealer: &Sealer,
    cache: &mut OrderCache,
    records: &[OrderRecord],
) -> Result<Vec<OrderId>, StoreError> {
    let mut seen: HashSet<&OrderId> = HashSet::with_capacity(records.len());
    let mut existing = Vec::new();
    let mut fresh = Vec::with_capacity(records.len());
    let mut find = conn
        .prepare_cached("SELECT order_json FROM order_contents WHERE id = ?1")
        .during("inserting orders")?;
    for r in records {
        if !seen.insert(r.id()) {
            return Err(StoreError::DuplicateInBatch {
                order_id: r.id().clone(),
            });
        }
        let order_json = to_json("encoding an order", &*r.order)?;
        let stored: Option<String> = find
            .query_row([r.id().as_str()], |row| row.get(0))
            .optional()
            .during("inserting orders")?;
        match stored {
            // Compared as JSON, where secrets are masked: an order id names the content of a
            // change, and a secret's value is not part of it (nor can it be once erased).
            Some(stored) => {
                let stored: ProvisioningOrder = from_json("decoding an order", &stored)?;
                if !stored.same_change(&r.order) {
                    return Err(StoreError::ConflictingOrder {
                        order_id: r.id().clone(),
                    });
                }
                existing.push(r.id().clone());
            }
            None => fresh.push((r, order_json)),
        }
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO orders (id, owner, mode, state, version, dispatch, \
             resource_id, stable_id, ticket, updated_at, secrets) \
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .during("inserting orders")?;
    let mut insert_content = conn
        .prepare_cached("INSERT INTO order_contents (id, order_json) VALUES (?1, ?2)")
        .during("inserting orders")?;
    for (r, order_json) in fresh {
        let secrets = secrets_of(&r.order);
        let keep = STATES_KEEPING_SECRETS.contains(&r.state);
        let mut sealed = Vec::with_capacity(secrets.len());
        for (slot, secret) in &secrets {
            // A redacted secret has no value to seal: it stays masked, and reads back redacted
            // (the dispatcher never sends it).
            let Ok(clear) = secret.expose() else {
                continue;
            };
            let s = sealer.seal(r.id(), slot, clear)?;
            if keep {
                sealed.push((slot, s));
            }
        }
        insert
            .execute(params![
                r.id().as_str(),
                r.order.owner_id().map(|o| o.as_str()),
                mode_text(r.mode)?,
                r.state.name(),
                to_json("encoding a dispatch record", &r.dispatch)?,
                r.resource_id.as_ref().map(|x| x.as_str()),
                r.stable_id.as_ref().map(|x| x.as_str()),
                r.ticket,
                time_key(&r.dispatch.updated_at),
                sealed.len() as i64,
            ])
            .during("inserting orders")?;
        insert_content
            .execute(params![r.id().as_str(), order_json])
            .during("inserting orders")?;
        let sealed_count = sealed.len() as i64;
        for (slot, s) in sealed {
            conn.prepare_cached(
                "INSERT INTO sealed_secrets (order_id, property, key_id, nonce, ciphertext) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .during("sealing secrets")?
            .execute(params![
                r.id().as_str(),
                slot,
                s.key_id,
                s.nonce,
                s.ciphertext
            ])
            .during("sealing secrets")?;
        }
        if keep || secrets.is_empty() {
            let mut stored = r.clone();
            stored.version = 1;
            cache.put(stored, sealed_count);
        }
    }
    Ok(existing)
}

/// The one place an order row changes: checks the version, applies the update through
/// [`OrderRecord::applied`], erases sealed secrets the new state no longer needs, appends the
/// history entry.
pub(crate) fn apply(
    conn: &Connection,
    sealer: &Sealer,
    cache: &mut OrderCache,
    id: &OrderId,
    expected_version: u64,
    update: &OrderUpdate,
) -> Result<OrderRecord, StoreError> {
    let cached = match cache.get(id) {
        Some(c) => c,
        None => {
            let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE o.id = ?1");
            let raw = conn
                .prepare_cached(&sql)
                .during("updating an order")?
                .query_row([id.as_str()], raw)
                .optional()
                .during("updating an order")?
                .ok_or_else(|| StoreError::UnknownOrder {
                    order_id: id.clone(),
                })?;
            let secrets = raw.secrets;
            Cached {
                record: decode(conn, sealer, raw)?,
                secrets,
            }
        }
    };
    let (current, secrets) = (cached.record, cached.secrets);
    if current.version != expected_version {
        return Err(StoreError::StaleVersion {
            order_id: id.clone(),
            expected: expected_version,
            actual: current.version,
        });
    }
    let (mut next, entry) = current.applied(update)?;
    let erase = secrets > 0 && !STATES_KEEPING_SECRETS.contains(&next.state);
    if erase {
        conn.prepare_cached("DELETE FROM sealed_secrets WHERE order_id = ?1")
            .during("erasing sealed secrets")?
            .execute([id.as_str()])
            .during("erasing sealed secrets")?;
        // What a later read returns: the secret is gone from the store.
        let json: String = conn
            .prepare_cached("SELECT order_json FROM order_contents WHERE id = ?1")
            .during("erasing sealed secrets")?
            .query_row([id.as_str()], |r| r.get(0))
            .during("erasing sealed secrets")?;
        next.order = Arc::new(from_json("decoding an order", &json)?);
    }
    let secrets = if erase { 0 } else { secrets };
    conn.prepare_cached(
        "UPDATE orders SET state = ?2, version = ?3, dispatch = ?4, resource_id = ?5, \
         stable_id = ?6, ticket = ?7, updated_at = ?8, secrets = ?9 WHERE id = ?1",
    )
    .during("updating an order")?
    .execute(params![
        id.as_str(),
        next.state.name(),
        to_i64(next.version),
        to_json("encoding a dispatch record", &next.dispatch)?,
        next.resource_id.as_ref().map(|x| x.as_str()),
        next.stable_id.as_ref().map(|x| x.as_str()),
        next.ticket,
        time_key(&next.dispatch.updated_at),
        secrets,
    ])
    .during("updating an order")?;
    conn.prepare_cached("INSERT INTO order_history (order_id, version, entry) VALUES (?1, ?2, ?3)")
        .during("appending history")?
        .execute(params![
            id.as_str(),
            to_i64(entry.version),
            to_json("encoding history", &entry)?
        ])
        .during("appending history")?;
    cache.put(next.clone(), secrets);
    Ok(next)
}

pub(crate) fn decide_review(
    conn: &Connection,
    sealer: &Sealer,
    cache: &mut OrderCache,
    expected_version: u64,
    decision: &ReviewDecision,
) -> Result<OrderRecord, StoreError> {
    let update = OrderUpdate::event(decision.verdict.event(), decision.at);
    let record = apply(
        conn,
        sealer,
        cache,
        &decision.order_id,
        expected_version,
        &update,
    )?;
    crate::records::append_audit(
        conn,
        &decision.audit_entry(record.order.owner_id().cloned()),
    )?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO review_decisions (order_id, decision) VALUES (?1, ?2)",
    )
    .during("recording a review decision")?
    .execute(params![
        decision.order_id.as_str(),
        to_json("encoding a review decision", decision)?
    ])
    .during("recording a review decision")?;
    Ok(record)
}

pub(crate) fn purge_finished(
    conn: &Connection,
    before: &chrono::DateTime<chrono::Utc>,
    n: usize,
) -> Result<Vec<OrderId>, StoreError> {
    let finished: Vec<&str> = ProvisioningState::ALL
        .iter()
        .filter(|s| !OPEN_STATES.contains(s))
        .map(|s| s.name())
        .collect();
    let sql = format!(
        "SELECT id FROM orders WHERE state IN ({}) AND updated_at < ? ORDER BY id LIMIT ?",
        vec!["?"; finished.len()].join(", ")
    );
    let mut values: Vec<rusqlite::types::Value> = finished
        .iter()
        .map(|s| rusqlite::types::Value::Text((*s).to_owned()))
        .collect();
    values.push(rusqlite::types::Value::Text(time_key(before)));
    values.push(rusqlite::types::Value::Integer(limit(n)));
    let ids: Vec<String> = conn
        .prepare_cached(&sql)
        .during("purging orders")?
        .query_map(rusqlite::params_from_iter(values), |r| r.get(0))
        .during("purging orders")?
        .collect::<Result<_, _>>()
        .during("purging orders")?;
    let mut delete = conn
        .prepare_cached("DELETE FROM orders WHERE id = ?1")
        .during("purging orders")?;
    for id in &ids {
        delete.execute([id]).during("purging orders")?;
    }
    Ok(ids.into_iter().map(OrderId::from).collect())
}

/// Deletes an owner's orders (with history, decisions, sealed secrets); returns how many.
pub(crate) fn erase_owner_orders(
    conn: &Connection,
    owner: &autoprov_core::OwnerId,
) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM orders WHERE owner = ?1")
        .during("erasing an owner")?
        .execute([owner.as_str()])
        .during("erasing an owner")?;
    Ok(n as u64)
}

/// An audit entry's stored form.
pub(crate) fn audit_json(entry: &AuditEntry) -> Result<String, StoreError> {
    to_json("encoding an audit entry", entry)
}
