//! `impl Store for PgStore`: orders, review decisions, history, retention and erasure here;
//! the other records in `records.rs`.

use crate::orders::{self, record_of};
use crate::records::append_audit;
use crate::{PgStore, db, from_json, to_json};
use async_trait::async_trait;
use autoprov_core::{
    AssignmentId, AssignmentRequest, ConnectionId, ExportCookie, FoundDecision, OrderId,
    OwnedValues, OwnerId, ProvisioningState, RequestId, Resource, ResourceId, StableId,
};
use autoprov_store::{
    Assignment, Assignments, AuditAction, AuditEntry, Erasure, HistoryEntry, JobRun, OPEN_STATES,
    OrderRecord, OrderUpdate, ReviewDecision, Store, StoreError,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn state_names(states: &[ProvisioningState]) -> Vec<&'static str> {
    states.iter().map(|s| s.name()).collect()
}

#[async_trait]
impl Store for PgStore {
    async fn insert_orders(&self, records: &[OrderRecord]) -> Result<Vec<OrderId>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("insert orders"))?;
        let existing = orders::insert_orders(&tx, self.sealer(), records).await?;
        tx.commit().await.map_err(db("insert orders: commit"))?;
        orders::refresh_stats(&client, records.len() - existing.len()).await;
        Ok(existing)
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT record, sealed FROM orders WHERE order_id = $1",
                &[&order_id.as_str()],
            )
            .await
            .map_err(db("read order"))?
            .map(|row| record_of(&row, self.sealer()))
            .transpose()
    }

    async fn update_order(
        &self,
        order_id: &OrderId,
        expected_version: u64,
        update: OrderUpdate,
    ) -> Result<OrderRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("update order"))?;
        let record = orders::apply(
            &tx,
            self.sealer(),
            order_id,
            expected_version,
            &update,
            None,
        )
        .await?;
        tx.commit().await.map_err(db("update order: commit"))?;
        Ok(record)
    }

    async fn decide_review(
        &self,
        expected_version: u64,
        decision: ReviewDecision,
    ) -> Result<OrderRecord, StoreError> {
        let update = OrderUpdate::event(decision.verdict.event(), decision.at);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("decide review"))?;
        let record = orders::apply(
            &tx,
            self.sealer(),
            &decision.order_id,
            expected_version,
            &update,
            None,
        )
        .await?;
        append_audit(&tx, &decision.audit_entry(record.order.owner_id().cloned())).await?;
        tx.execute(
            "INSERT INTO review_decisions (order_id, decision) VALUES ($1, $2)
             ON CONFLICT (order_id) DO UPDATE SET decision = EXCLUDED.decision",
            &[
                &decision.order_id.as_str(),
                &to_json("encode a review decision", &decision)?,
            ],
        )
        .await
        .map_err(db("decide review: record"))?;
        tx.commit().await.map_err(db("decide review: commit"))?;
        Ok(record)
    }

    async fn review_decision(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<ReviewDecision>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT decision FROM review_decisions WHERE order_id = $1",
                &[&order_id.as_str()],
            )
            .await
            .map_err(db("read review decision"))?
            .map(|row| from_json("decode a review decision", row.get(0)))
            .transpose()
    }

    async fn review_decisions_page(
        &self,
        after: Option<&OrderId>,
        n: usize,
    ) -> Result<Vec<ReviewDecision>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT decision FROM review_decisions
                 WHERE ($1::text IS NULL OR order_id > $1) ORDER BY order_id LIMIT $2",
                &[&after.map(|a| a.as_str()), &limit(n)],
            )
            .await
            .map_err(db("page review decisions"))?
            .into_iter()
            .map(|row| from_json("decode a review decision", row.get(0)))
            .collect()
    }

    async fn put_found_decisions(&self, decisions: &[FoundDecision]) -> Result<(), StoreError> {
        autoprov_store::check_found_batch(decisions)?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("record found decisions"))?;
        for d in decisions {
            append_audit(&tx, &autoprov_store::found_decision_audit(d)).await?;
            tx.execute(
                "INSERT INTO found_decisions (key, owner_id, decision) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET decision = EXCLUDED.decision",
                &[
                    &d.key(),
                    &d.owner.as_str(),
                    &to_json("encode a found decision", d)?,
                ],
            )
            .await
            .map_err(db("record found decisions"))?;
        }
        tx.commit()
            .await
            .map_err(db("record found decisions: commit"))?;
        Ok(())
    }

    async fn put_owned_values(&self, values: &[OwnedValues]) -> Result<(), StoreError> {
        autoprov_store::check_owned_batch(values)?;
        if values.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("record owned values"))?;
        let (gone, kept): (Vec<&OwnedValues>, Vec<&OwnedValues>) =
            values.iter().partition(|v| v.is_empty());
        if !gone.is_empty() {
            let owners: Vec<&str> = gone.iter().map(|v| v.owner.as_str()).collect();
            tx.execute(
                "DELETE FROM owned_values WHERE owner_id = ANY($1)",
                &[&owners],
            )
            .await
            .map_err(db("record owned values: forget"))?;
        }
        if !kept.is_empty() {
            // One round trip for the batch.
            let rows = serde_json::Value::Array(
                kept.iter()
                    .map(|v| to_json("encode owned values", v))
                    .collect::<Result<_, _>>()?,
            );
            tx.execute(
                "INSERT INTO owned_values (owner_id, owned)
                 SELECT x->>'Owner', x FROM jsonb_array_elements($1::jsonb) AS x
                 ON CONFLICT (owner_id) DO UPDATE SET owned = EXCLUDED.owned",
                &[&rows],
            )
            .await
            .map_err(db("record owned values"))?;
        }
        tx.commit()
            .await
            .map_err(db("record owned values: commit"))?;
        Ok(())
    }

    async fn owned_values_page(
        &self,
        after: Option<&OwnerId>,
        n: usize,
    ) -> Result<Vec<OwnedValues>, StoreError> {
        let client = self.client().await?;
        let after = after.map(|a| a.as_str());
        client
            .query(
                "SELECT owned FROM owned_values
                 WHERE ($1::text IS NULL OR owner_id > $1) ORDER BY owner_id LIMIT $2",
                &[&after, &limit(n)],
            )
            .await
            .map_err(db("page owned values"))?
            .into_iter()
            .map(|row| from_json("decode owned values", row.get(0)))
            .collect()
    }

    async fn found_decisions_page(
        &self,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<FoundDecision>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT decision FROM found_decisions
                 WHERE ($1::text IS NULL OR key > $1) ORDER BY key LIMIT $2",
                &[&after, &limit(n)],
            )
            .await
            .map_err(db("page found decisions"))?
            .into_iter()
            .map(|row| from_json("decode a found decision", row.get(0)))
            .collect()
    }

    async fn order_history(&self, order_id: &OrderId) -> Result<Vec<HistoryEntry>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT entry FROM order_history WHERE order_id = $1 ORDER BY version",
                &[&order_id.as_str()],
            )
            .await
            .map_err(db("read order history"))?
            .into_iter()
            .map(|row| from_json("decode a history entry", row.get(0)))
            .collect()
    }

    async fn orders_in(
        &self,
        states: &[ProvisioningState],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT record, sealed FROM orders WHERE state = ANY($1) ORDER BY order_id",
                &[&state_names(states)],
            )
            .await
            .map_err(db("orders in states"))?
            .iter()
            .map(|row| record_of(row, self.sealer()))
            .collect()
    }

    async fn orders_page(
        &self,
        after: Option<&OrderId>,
        n: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT record, sealed FROM orders WHERE ($1::text IS NULL OR order_id > $1)
                 ORDER BY order_id LIMIT $2",
                &[&after.map(|a| a.as_str()), &limit(n)],
            )
            .await
            .map_err(db("page orders"))?
            .iter()
            .map(|row| record_of(row, self.sealer()))
            .collect()
    }

    async fn order_counts(&self) -> Result<BTreeMap<ProvisioningState, u64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT state, count(*) FROM orders GROUP BY state", &[])
            .await
            .map_err(db("count orders"))?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let state = ProvisioningState::from_name(&name).ok_or_else(|| {
                StoreError::backend("count orders", UnknownState { name: name.clone() })
            })?;
            counts.insert(state, crate::to_u64(row.get(1)));
        }
        Ok(counts)
    }

    async fn upsert_resources(
        &self,
        connection: &ConnectionId,
        resources: Vec<Resource>,
    ) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secrets_in_resources(connection, &resources)?;
        self.upsert_resources_impl(connection, resources).await
    }

    async fn delete_resources(
        &self,
        connection: &ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>, StoreError> {
        self.delete_resources_impl(connection, ids).await
    }

    async fn resource(
        &self,
        connection: &ConnectionId,
        id: &ResourceId,
    ) -> Result<Option<Resource>, StoreError> {
        self.resource_impl(connection, id).await
    }

    async fn key_of_stable(
        &self,
        connection: &ConnectionId,
        stable: &StableId,
    ) -> Result<Option<ResourceId>, StoreError> {
        self.key_of_stable_impl(connection, stable).await
    }

    async fn resources_page(
        &self,
        connection: &ConnectionId,
        after: Option<&ResourceId>,
        n: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        self.resources_page_impl(connection, after, n).await
    }

    async fn cookie(&self, connection: &ConnectionId) -> Result<Option<ExportCookie>, StoreError> {
        self.cookie_impl(connection).await
    }

    async fn set_cookie(
        &self,
        connection: &ConnectionId,
        cookie: ExportCookie,
    ) -> Result<(), StoreError> {
        self.set_cookie_impl(connection, cookie).await
    }

    async fn put_assignments(&self, assignments: Assignments) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secrets_in_assignments(&assignments)?;
        self.put_assignments_impl(assignments).await
    }

    async fn assignment(&self, id: &AssignmentId) -> Result<Option<Assignment>, StoreError> {
        self.assignment_impl(id).await
    }

    async fn assignments_page(
        &self,
        after: Option<&AssignmentId>,
        n: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        self.assignments_page_impl(after, n).await
    }

    async fn put_request(&self, request: AssignmentRequest) -> Result<(), StoreError> {
        autoprov_store::secrets::refuse_secret_in_request(&request)?;
        self.put_request_impl(request).await
    }

    async fn request(&self, id: &RequestId) -> Result<Option<AssignmentRequest>, StoreError> {
        self.request_impl(id).await
    }

    async fn requests_page(
        &self,
        after: Option<&RequestId>,
        n: usize,
    ) -> Result<Vec<AssignmentRequest>, StoreError> {
        self.requests_page_impl(after, n).await
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("append audit"))?;
        let seq = append_audit(&tx, &entry).await?;
        tx.commit().await.map_err(db("append audit: commit"))?;
        Ok(seq)
    }

    async fn audit_page(
        &self,
        after: Option<u64>,
        n: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.audit_page_impl(after, n).await
    }

    async fn purge_finished(
        &self,
        before: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let finished: Vec<&'static str> = ProvisioningState::ALL
            .iter()
            .filter(|s| !OPEN_STATES.contains(s))
            .map(|s| s.name())
            .collect();
        let client = self.client().await?;
        // History and review decisions go with their order (ON DELETE CASCADE).
        let mut ids: Vec<OrderId> = client
            .query(
                "DELETE FROM orders WHERE order_id IN (
                     SELECT order_id FROM orders
                     WHERE state = ANY($1) AND updated_at < $2
                     ORDER BY order_id LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING order_id",
                &[&finished, &before, &limit(n)],
            )
            .await
            .map_err(db("purge finished orders"))?
            .into_iter()
            .map(|row| OrderId::new(row.get::<_, String>(0)))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn erase_owner(
        &self,
        owner: &OwnerId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError> {
        let owner_id = owner.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("erase owner"))?;
        let mut erasure = Erasure::default();
        // History and review decisions go with their orders (ON DELETE CASCADE).
        erasure.orders = tx
            .execute("DELETE FROM orders WHERE owner_id = $1", &[&owner_id])
            .await
            .map_err(db("erase owner: orders"))?;
        erasure.assignments = tx
            .execute(
                "DELETE FROM assignments
                 WHERE owner_id = $1
                    OR assigned_resource_type IN (SELECT id FROM assignments WHERE owner_id = $1)",
                &[&owner_id],
            )
            .await
            .map_err(db("erase owner: assignments"))?;
        tx.execute(
            "DELETE FROM found_decisions WHERE owner_id = $1",
            &[&owner_id],
        )
        .await
        .map_err(db("erase owner: found decisions"))?;
        tx.execute("DELETE FROM owned_values WHERE owner_id = $1", &[&owner_id])
            .await
            .map_err(db("erase owner: owned values"))?;
        erasure.requests = tx
            .execute("DELETE FROM requests WHERE owner_id = $1", &[&owner_id])
            .await
            .map_err(db("erase owner: requests"))?;
        erasure.audit_entries = tx
            .execute("DELETE FROM audit WHERE owner_id = $1", &[&owner_id])
            .await
            .map_err(db("erase owner: audit"))?;
        append_audit(
            &tx,
            &AuditEntry::new(at, actor, AuditAction::Erased, owner_id),
        )
        .await?;
        tx.commit().await.map_err(db("erase owner: commit"))?;
        Ok(erasure)
    }

    async fn put_job_run(&self, run: JobRun) -> Result<(), StoreError> {
        self.put_job_run_impl(run).await
    }

    async fn job_run(&self, id: &str) -> Result<Option<JobRun>, StoreError> {
        self.job_run_impl(id).await
    }

    async fn job_runs_page(
        &self,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<JobRun>, StoreError> {
        self.job_runs_page_impl(after, n).await
    }
}

/// A state name in the database that this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown provisioning state {name:?} in the orders table")]
struct UnknownState {
    name: String,
}
