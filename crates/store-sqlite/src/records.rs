//! The records besides orders: resources, cookies, assignments, requests, audit trail, job
//! runs. Each is a JSON document under its key, with the columns its queries need.

use crate::codec::{Context as _, from_json, limit, time_key, to_json, to_u64};
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, FoundDecision, OwnedValues,
    OwnerId, RequestId, Resource, ResourceId, StableId,
};
use autoprov_store::{Assignment, Assignments, AuditEntry, JobRun, StoreError};
use rusqlite::{Connection, OptionalExtension as _, params};

fn one<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    operation: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached(sql)
        .during(operation)?
        .query_row(params, |r| r.get(0))
        .optional()
        .during(operation)?;
    text.map(|t| from_json(operation, &t)).transpose()
}

fn many<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    operation: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).during(operation)?;
    let texts: Vec<String> = stmt
        .query_map(params, |r| r.get(0))
        .during(operation)?
        .collect::<Result<_, _>>()
        .during(operation)?;
    texts.iter().map(|t| from_json(operation, t)).collect()
}

// -- resources --------------------------------------------------------------------------------

pub(crate) fn upsert_resources(
    conn: &Connection,
    connection: &ConnectionId,
    resources: &[Resource],
) -> Result<(), StoreError> {
    const OP: &str = "upserting resources";
    for r in resources {
        if let Some(stable) = &r.stable_id {
            // Renamed or moved: the same object under a new key replaces the old key.
            conn.prepare_cached(
                "DELETE FROM resources WHERE connection = ?1 AND stable_id = ?2 AND id <> ?3",
            )
            .during(OP)?
            .execute(params![connection.as_str(), stable.as_str(), r.id.as_str()])
            .during(OP)?;
        }
        conn.prepare_cached(
            "INSERT OR REPLACE INTO resources (connection, id, stable_id, resource) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .during(OP)?
        .execute(params![
            connection.as_str(),
            r.id.as_str(),
            r.stable_id.as_ref().map(|s| s.as_str()),
            to_json(OP, r)?
        ])
        .during(OP)?;
    }
    Ok(())
}

pub(crate) fn delete_resources(
    conn: &Connection,
    connection: &ConnectionId,
    ids: &[ResourceId],
) -> Result<Vec<Resource>, StoreError> {
    const OP: &str = "deleting resources";
    let mut out = Vec::new();
    for id in ids {
        if let Some(r) = resource(conn, connection, id)? {
            conn.prepare_cached("DELETE FROM resources WHERE connection = ?1 AND id = ?2")
                .during(OP)?
                .execute(params![connection.as_str(), id.as_str()])
                .during(OP)?;
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn resource(
    conn: &Connection,
    connection: &ConnectionId,
    id: &ResourceId,
) -> Result<Option<Resource>, StoreError> {
    one(
        conn,
        "reading a resource",
        "SELECT resource FROM resources WHERE connection = ?1 AND id = ?2",
        params![connection.as_str(), id.as_str()],
    )
}

pub(crate) fn key_of_stable(
    conn: &Connection,
    connection: &ConnectionId,
    stable: &StableId,
) -> Result<Option<ResourceId>, StoreError> {
    let id: Option<String> = conn
        .prepare_cached("SELECT id FROM resources WHERE connection = ?1 AND stable_id = ?2")
        .during("reading a resource key")?
        .query_row(params![connection.as_str(), stable.as_str()], |r| r.get(0))
        .optional()
        .during("reading a resource key")?;
    Ok(id.map(ResourceId::new))
}

pub(crate) fn resources_page(
    conn: &Connection,
    connection: &ConnectionId,
    after: Option<&ResourceId>,
    n: usize,
) -> Result<Vec<Resource>, StoreError> {
    many(
        conn,
        "reading resources",
        "SELECT resource FROM resources WHERE connection = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        params![
            connection.as_str(),
            after.map_or("", |a| a.as_str()),
            limit(n)
        ],
    )
}

// -- cookies ----------------------------------------------------------------------------------

pub(crate) fn cookie(
    conn: &Connection,
    connection: &ConnectionId,
) -> Result<Option<ExportCookie>, StoreError> {
    one(
        conn,
        "reading a cookie",
        "SELECT cookie FROM cookies WHERE connection = ?1",
        [connection.as_str()],
    )
}

pub(crate) fn set_cookie(
    conn: &Connection,
    connection: &ConnectionId,
    cookie: &ExportCookie,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO cookies (connection, cookie) VALUES (?1, ?2)")
        .during("storing a cookie")?
        .execute(params![
            connection.as_str(),
            to_json("storing a cookie", cookie)?
        ])
        .during("storing a cookie")?;
    Ok(())
}

// -- assignments and requests -----------------------------------------------------------------

pub(crate) fn put_assignments(conn: &Connection, batch: Assignments) -> Result<(), StoreError> {
    const OP: &str = "storing assignments";
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO assignments (id, owner, parent, assignment) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .during(OP)?;
    let rows = batch
        .resource_types
        .into_iter()
        .map(|(id, a)| (id, Some(a.owner.clone()), None, Assignment::ResourceType(a)))
        .chain(batch.scalars.into_iter().map(|(id, a)| {
            let parent = a.assigned_resource_type.clone();
            (id, None, Some(parent), Assignment::Scalar(a))
        }))
        .chain(batch.navigations.into_iter().map(|(id, a)| {
            let parent = a.assigned_resource_type.clone();
            (id, None, Some(parent), Assignment::Navigation(a))
        }));
    for (id, owner, parent, a) in rows {
        stmt.execute(params![
            id.as_str(),
            owner.as_ref().map(OwnerId::as_str),
            parent.as_ref().map(AssignmentId::as_str),
            to_json(OP, &a)?
        ])
        .during(OP)?;
    }
    Ok(())
}

pub(crate) fn assignment(
    conn: &Connection,
    id: &AssignmentId,
) -> Result<Option<Assignment>, StoreError> {
    one(
        conn,
        "reading an assignment",
        "SELECT assignment FROM assignments WHERE id = ?1",
        [id.as_str()],
    )
}

pub(crate) fn assignments_page(
    conn: &Connection,
    after: Option<&AssignmentId>,
    n: usize,
) -> Result<Vec<Assignment>, StoreError> {
    many(
        conn,
        "reading assignments",
        "SELECT assignment FROM assignments WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after.map_or("", |a| a.as_str()), limit(n)],
    )
}

pub(crate) fn put_request(
    conn: &Connection,
    request: &AssignmentRequest,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO requests (id, owner, request) VALUES (?1, ?2, ?3)")
        .during("storing a request")?
        .execute(params![
            request.id.as_str(),
            request.owner.as_str(),
            to_json("storing a request", request)?
        ])
        .during("storing a request")?;
    Ok(())
}

pub(crate) fn request(
    conn: &Connection,
    id: &RequestId,
) -> Result<Option<AssignmentRequest>, StoreError> {
    one(
        conn,
        "reading a request",
        "SELECT request FROM requests WHERE id = ?1",
        [id.as_str()],
    )
}

pub(crate) fn requests_page(
    conn: &Connection,
    after: Option<&RequestId>,
    n: usize,
) -> Result<Vec<AssignmentRequest>, StoreError> {
    many(
        conn,
        "reading requests",
        "SELECT request FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after.map_or("", |a| a.as_str()), limit(n)],
    )
}

// -- audit and erasure ------------------------------------------------------------------------

pub(crate) fn append_audit(conn: &Connection, entry: &AuditEntry) -> Result<u64, StoreError> {
    conn.prepare_cached("INSERT INTO audit (owner, entry) VALUES (?1, ?2)")
        .during("appending to the audit trail")?
        .execute(params![
            entry.owner.as_ref().map(OwnerId::as_str),
            crate::orders::audit_json(entry)?
        ])
        .during("appending to the audit trail")?;
    Ok(to_u64(conn.last_insert_rowid()))
}

pub(crate) fn audit_page(
    conn: &Connection,
    after: Option<u64>,
    n: usize,
) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
    const OP: &str = "reading the audit trail";
    let mut stmt = conn
        .prepare_cached("SELECT seq, entry FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .during(OP)?;
    let rows: Vec<(i64, String)> = stmt
        .query_map(
            params![crate::codec::to_i64(after.unwrap_or(0)), limit(n)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .during(OP)?
        .collect::<Result<_, _>>()
        .during(OP)?;
    rows.into_iter()
        .map(|(seq, e)| Ok((to_u64(seq), from_json(OP, &e)?)))
        .collect()
}

/// Deletes an owner's assignments, requests and audit entries; returns the counts.
pub(crate) fn erase_owner_records(
    conn: &Connection,
    owner: &OwnerId,
) -> Result<(u64, u64, u64), StoreError> {
    const OP: &str = "erasing an owner";
    let exec = |sql: &str| -> Result<u64, StoreError> {
        Ok(conn
            .prepare_cached(sql)
            .during(OP)?
            .execute([owner.as_str()])
            .during(OP)? as u64)
    };
    let parts = exec(
        "DELETE FROM assignments WHERE parent IN (SELECT id FROM assignments WHERE owner = ?1)",
    )?;
    let arts = exec("DELETE FROM assignments WHERE owner = ?1")?;
    let requests = exec("DELETE FROM requests WHERE owner = ?1")?;
    exec("DELETE FROM found_decisions WHERE owner = ?1")?;
    exec("DELETE FROM owned_values WHERE owner = ?1")?;
    let audit = exec("DELETE FROM audit WHERE owner = ?1")?;
    Ok((parts + arts, requests, audit))
}

// -- decisions on found values ---------------------------------------------------------------

pub(crate) fn put_found_decisions(
    conn: &Connection,
    decisions: &[FoundDecision],
) -> Result<(), StoreError> {
    const OP: &str = "recording decisions on found values";
    autoprov_store::check_found_batch(decisions)?;
    for d in decisions {
        append_audit(conn, &autoprov_store::found_decision_audit(d))?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO found_decisions (key, owner, decision) VALUES (?1, ?2, ?3)",
        )
        .during(OP)?
        .execute(params![d.key(), d.owner.as_str(), to_json(OP, d)?])
        .during(OP)?;
    }
    Ok(())
}

pub(crate) fn found_decisions_page(
    conn: &Connection,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<FoundDecision>, StoreError> {
    many(
        conn,
        "reading decisions on found values",
        "SELECT decision FROM found_decisions WHERE key > ?1 ORDER BY key LIMIT ?2",
        params![after.unwrap_or(""), limit(n)],
    )
}

// -- what autoprov holds as its own ---------------------------------------------------------

pub(crate) fn put_owned_values(
    conn: &Connection,
    values: &[OwnedValues],
) -> Result<(), StoreError> {
    const OP: &str = "recording the values autoprov holds as its own";
    autoprov_store::check_owned_batch(values)?;
    for v in values {
        if v.is_empty() {
            conn.prepare_cached("DELETE FROM owned_values WHERE owner = ?1")
                .during(OP)?
                .execute(params![v.owner.as_str()])
                .during(OP)?;
        } else {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO owned_values (owner, owned) VALUES (?1, ?2)",
            )
            .during(OP)?
            .execute(params![v.owner.as_str(), to_json(OP, v)?])
            .during(OP)?;
        }
    }
    Ok(())
}

pub(crate) fn owned_values_page(
    conn: &Connection,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<OwnedValues>, StoreError> {
    many(
        conn,
        "reading the values autoprov holds as its own",
        "SELECT owned FROM owned_values WHERE owner > ?1 ORDER BY owner LIMIT ?2",
        params![after.unwrap_or(""), limit(n)],
    )
}

// -- job runs ---------------------------------------------------------------------------------

pub(crate) fn put_job_run(conn: &Connection, run: &JobRun) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO job_runs (id, started_at, run) VALUES (?1, ?2, ?3)",
    )
    .during("storing a job run")?
    .execute(params![
        run.id,
        time_key(&run.started_at),
        to_json("storing a job run", run)?
    ])
    .during("storing a job run")?;
    Ok(())
}

pub(crate) fn job_run(conn: &Connection, id: &str) -> Result<Option<JobRun>, StoreError> {
    one(
        conn,
        "reading a job run",
        "SELECT run FROM job_runs WHERE id = ?1",
        [id],
    )
}

pub(crate) fn job_runs_page(
    conn: &Connection,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<JobRun>, StoreError> {
    match after {
        None => many(
            conn,
            "reading job runs",
            "SELECT run FROM job_runs ORDER BY started_at, id LIMIT ?1",
            [limit(n)],
        ),
        Some(after) => many(
            conn,
            "reading job runs",
            "SELECT run FROM job_runs WHERE (started_at, id) > \
             (SELECT started_at, id FROM job_runs WHERE id = ?1) \
             ORDER BY started_at, id LIMIT ?2",
            params![after, limit(n)],
        ),
    }
}
