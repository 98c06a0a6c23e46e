//! The records besides orders: synchronized resources, export cookies, assignments,
//! requests, the audit trail and job runs.

use crate::{PgStore, db, from_json, to_i64, to_json, to_u64};
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, RequestId, Resource, ResourceId,
    StableId,
};
use autoprov_store::{Assignment, Assignments, AuditEntry, JobRun, StoreError};
use deadpool_postgres::Transaction;

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends an audit entry in `tx`; returns its sequence number.
pub(crate) async fn append_audit(
    tx: &Transaction<'_>,
    entry: &AuditEntry,
) -> Result<u64, StoreError> {
    let seq: i64 = tx
        .query_one(
            "INSERT INTO audit (owner_id, entry) VALUES ($1, $2) RETURNING seq",
            &[
                &entry.owner.as_ref().map(|o| o.as_str()),
                &to_json("encode an audit entry", entry)?,
            ],
        )
        .await
        .map_err(db("append audit"))?
        .get(0);
    Ok(to_u64(seq))
}

impl PgStore {
    pub(crate) async fn upsert_resources_impl(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("upsert resources"))?;
        for r in &resources {
            let stable = r.stable_id.as_ref().map(|s| s.as_str());
            if let Some(stable) = stable {
                // The same object under another key (renamed, moved): that key goes.
                tx.execute(
                    "DELETE FROM resources WHERE connection = $1 AND stable_id = $2 AND key <> $3",
                    &[&connection.as_str(), &stable, &r.id.as_str()],
                )
                .await
                .map_err(db("upsert resources: rename"))?;
            }
            tx.execute(
                "INSERT INTO resources (connection, key, stable_id, resource) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connection, key)
                 DO UPDATE SET stable_id = EXCLUDED.stable_id, resource = EXCLUDED.resource",
                &[
                    &connection.as_str(),
                    &r.id.as_str(),
                    &stable,
                    &to_json("encode a resource", r)?,
                ],
            )
            .await
            .map_err(db("upsert resources"))?;
        }
        tx.commit().await.map_err(db("upsert resources: commit"))
    }

    pub(crate) async fn delete_resources_impl(
        &self,
        connection: &ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>, StoreError> {
        let keys: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM resources WHERE connection = $1 AND key = ANY($2) RETURNING key, resource",
                &[&connection.as_str(), &keys],
            )
            .await
            .map_err(db("delete resources"))?;
        // In the order asked, like every store.
        let mut by_key = std::collections::HashMap::new();
        for row in rows {
            by_key.insert(
                row.get::<_, String>("key"),
                from_json::<Resource>("decode a resource", row.get("resource"))?,
            );
        }
        Ok(ids
            .iter()
            .filter_map(|i| by_key.remove(i.as_str()))
            .collect())
    }

    pub(crate) async fn resource_impl(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT resource FROM resources WHERE connection = $1 AND key = $2",
                &[&connection.as_str(), &id.as_str()],
            )
            .await
            .map_err(db("read resource"))?
            .map(|row| from_json("decode a resource", row.get(0)))
            .transpose()
    }

    pub(crate) async fn key_of_stable_impl(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT key FROM resources WHERE connection = $1 AND stable_id = $2
                 ORDER BY key LIMIT 1",
                &[&connection.as_str(), &stable.as_str()],
            )
            .await
            .map_err(db("read resource by stable id"))?
            .map(|row| ResourceId::new(row.get::<_, String>(0))))
    }

    pub(crate) async fn resources_page_impl(
        &self,
        connection: &ConnectionId,
        after: Option<&ResourceId>,
        n: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT resource FROM resources
                 WHERE connection = $1 AND ($2::text IS NULL OR key > $2)
                 ORDER BY key LIMIT $3",
                &[&connection.as_str(), &after.map(|a| a.as_str()), &limit(n)],
            )
            .await
            .map_err(db("page resources"))?
            .into_iter()
            .map(|row| from_json("decode a resource", row.get(0)))
            .collect()
    }

    pub(crate) async fn cookie_impl(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<ExportCookie>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT cookie FROM export_cookies WHERE connection = $1",
                &[&connection.as_str()],
            )
            .await
            .map_err(db("read cookie"))?
            .map(|row| ExportCookie(row.get(0))))
    }

    pub(crate) async fn set_cookie_impl(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO export_cookies (connection, cookie) VALUES ($1, $2)
                 ON CONFLICT (connection) DO UPDATE SET cookie = EXCLUDED.cookie",
                &[&connection.as_str(), &cookie.0],
            )
            .await
            .map_err(db("set cookie"))?;
        Ok(())
    }

    pub(crate) async fn put_assignments_impl(
        &self,
        assignments: Assignments,
    ) -> Result<(), StoreError> {
        let mut rows: Vec<(AssignmentId, Option<String>, Option<String>, Assignment)> = Vec::new();
        for (id, a) in assignments.resource_types {
            rows.push((
                id,
                Some(a.owner.as_str().to_owned()),
                None,
                Assignment::ResourceType(a),
            ));
        }
        for (id, a) in assignments.scalars {
            let art = a.assigned_resource_type.as_str().to_owned();
            rows.push((id, None, Some(art), Assignment::Scalar(a)));
        }
        for (id, a) in assignments.navigations {
            let art = a.assigned_resource_type.as_str().to_owned();
            rows.push((id, None, Some(art), Assignment::Navigation(a)));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("put assignments"))?;
        for (id, owner, art, a) in rows {
            tx.execute(
                "INSERT INTO assignments (id, owner_id, assigned_resource_type, assignment)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
                     assigned_resource_type = EXCLUDED.assigned_resource_type,
                     assignment = EXCLUDED.assignment",
                &[
                    &id.as_str(),
                    &owner,
                    &art,
                    &to_json("encode an assignment", &a)?,
                ],
            )
            .await
            .map_err(db("put assignments"))?;
        }
        tx.commit().await.map_err(db("put assignments: commit"))
    }

    pub(crate) async fn assignment_impl(
        &self,
        id: &AssignmentId,
    ) -> Result<Option<Assignment>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT assignment FROM assignments WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(db("read assignment"))?
            .map(|row| from_json("decode an assignment", row.get(0)))
            .transpose()
    }

    pub(crate) async fn assignments_page_impl(
        &self,
        after: Option<&AssignmentId>,
        n: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT assignment FROM assignments WHERE ($1::text IS NULL OR id > $1)
                 ORDER BY id LIMIT $2",
                &[&after.map(|a| a.as_str()), &limit(n)],
            )
            .await
            .map_err(db("page assignments"))?
            .into_iter()
            .map(|row| from_json("decode an assignment", row.get(0)))
            .collect()
    }

    pub(crate) async fn put_request_impl(
        &self,
        request: AssignmentRequest,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO requests (id, owner_id, request) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
                     request = EXCLUDED.request",
                &[
                    &request.id.as_str(),
                    &request.owner.as_str(),
                    &to_json("encode a request", &request)?,
                ],
            )
            .await
            .map_err(db("put request"))?;
        Ok(())
    }

    pub(crate) async fn request_impl(
        &self,
        id: &RequestId,
    ) -> Result<Option<AssignmentRequest>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT request FROM requests WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(db("read request"))?
            .map(|row| from_json("decode a request", row.get(0)))
            .transpose()
    }

    pub(crate) async fn requests_page_impl(
        &self,
        after: Option<&RequestId>,
        n: usize,
    ) -> Result<Vec<AssignmentRequest>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT request FROM requests WHERE ($1::text IS NULL OR id > $1)
                 ORDER BY id LIMIT $2",
                &[&after.map(|a| a.as_str()), &limit(n)],
            )
            .await
            .map_err(db("page requests"))?
            .into_iter()
            .map(|row| from_json("decode a request", row.get(0)))
            .collect()
    }

    pub(crate) async fn audit_page_impl(
        &self,
        after: Option<u64>,
        n: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT seq, entry FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after.map_or(0, to_i64), &limit(n)],
            )
            .await
            .map_err(db("page audit"))?
            .into_iter()
            .map(|row| {
                Ok((
                    to_u64(row.get(0)),
                    from_json("decode an audit entry", row.get(1))?,
                ))
            })
            .collect()
    }

    pub(crate) async fn put_job_run_impl(&self, run: JobRun) -> Result<(), StoreError> {
        let started_ns = run.started_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO job_runs (id, started_ns, run) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET started_ns = EXCLUDED.started_ns,
                     run = EXCLUDED.run",
                &[&run.id, &started_ns, &to_json("encode a job run", &run)?],
            )
            .await
            .map_err(db("put job run"))?;
        Ok(())
    }

    pub(crate) async fn job_run_impl(&self, id: &str) -> Result<Option<JobRun>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT run FROM job_runs WHERE id = $1", &[&id])
            .await
            .map_err(db("read job run"))?
            .map(|row| from_json("decode a job run", row.get(0)))
            .transpose()
    }

    pub(crate) async fn job_runs_page_impl(
        &self,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<JobRun>, StoreError> {
        let client = self.client().await?;
        // After an unknown id: nothing (the row comparison with no row is NULL).
        client
            .query(
                "SELECT run FROM job_runs
                 WHERE $1::text IS NULL
                    OR (started_ns, id) > (SELECT started_ns, id FROM job_runs WHERE id = $1)
                 ORDER BY started_ns, id LIMIT $2",
                &[&after, &limit(n)],
            )
            .await
            .map_err(db("page job runs"))?
            .into_iter()
            .map(|row| from_json("decode a job run", row.get(0)))
            .collect()
    }
}
