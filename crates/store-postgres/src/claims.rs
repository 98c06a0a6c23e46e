//! Work distribution: leased claims (`FOR UPDATE SKIP LOCKED`, lease times from the
//! server's `now()`, a fencing token from a sequence) and planning epochs.

use crate::orders::{self, Fence, record_of};
use crate::{PgStore, db, to_i64, to_u64};
use async_trait::async_trait;
use autoprov_core::{OrderId, ProvisioningState};
use autoprov_store::{Claim, ClaimStore, OrderRecord, OrderUpdate, PlanningEpoch, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The orders a dependency must have reached before its dependants are ready.
const DEPENDENCY_DONE: &[ProvisioningState] =
    &[ProvisioningState::Executed, ProvisioningState::Verified];

/// Ready orders, oldest id first, locked without waiting for the ones another transaction
/// holds, then leased with a fresh token. A dependency missing from the store blocks its
/// dependants (it may not be inserted yet).
const CLAIM: &str = "
WITH ready AS (
    SELECT o.order_id FROM orders o
    WHERE o.state = 'Pending'
      AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
      AND (o.not_before IS NULL OR o.not_before <= now())
      AND (o.lease_expires_at IS NULL OR o.lease_expires_at <= now())
      AND NOT EXISTS (
          SELECT 1 FROM unnest(o.depends_on) AS d(id)
          LEFT JOIN orders x ON x.order_id = d.id
          WHERE x.order_id IS NULL OR x.state <> ALL($4))
    ORDER BY o.order_id
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE orders SET lease_owner = $1, lease_token = nextval('lease_tokens'),
                  lease_expires_at = now() + make_interval(secs => $3)
FROM ready WHERE orders.order_id = ready.order_id
RETURNING orders.record, orders.sealed, orders.lease_token, orders.lease_expires_at";

fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

#[async_trait]
impl ClaimStore for PgStore {
    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let done: Vec<&str> = DEPENDENCY_DONE.iter().map(|s| s.name()).collect();
        let client = self.client().await?;
        let claim = client
            .prepare_cached(CLAIM)
            .await
            .map_err(db("claim orders: prepare"))?;
        let rows = client
            .query(
                &claim,
                &[
                    &worker,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                    &seconds(lease),
                    &done,
                ],
            )
            .await
            .map_err(db("claim orders"))?;
        let mut claims = rows
            .iter()
            .map(|row| {
                Ok(Claim::new(
                    record_of(row, self.sealer())?,
                    worker,
                    to_u64(row.get("lease_token")),
                    row.get("lease_expires_at"),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claims.sort_by(|a, b| a.order_id().cmp(b.order_id()));
        Ok(claims)
    }

    async fn renew(&self, claim: &Claim, lease: Duration) -> Result<Claim, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE orders SET lease_expires_at = now() + make_interval(secs => $3),
                        lease_owner = $4
                 WHERE order_id = $1 AND lease_token = $2
                 RETURNING lease_expires_at",
                &[
                    &claim.order_id().as_str(),
                    &to_i64(claim.token),
                    &seconds(lease),
                    &claim.worker,
                ],
            )
            .await
            .map_err(db("renew lease"))?
            .ok_or_else(|| lost(claim.order_id(), claim.token))?;
        let mut renewed = claim.clone();
        renewed.lease_expires_at = row.get::<_, DateTime<Utc>>(0);
        Ok(renewed)
    }

    async fn record_outcome(
        &self,
        claim: &Claim,
        update: OrderUpdate,
    ) -> Result<Claim, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("record outcome"))?;
        let record = orders::apply(
            &tx,
            self.sealer(),
            claim.order_id(),
            claim.record.version,
            &update,
            Some(Fence { token: claim.token }),
        )
        .await?;
        tx.commit().await.map_err(db("record outcome: commit"))?;
        let mut next = claim.clone();
        next.record = record;
        Ok(next)
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let client = self.client().await?;
        // The token stays: a later claim takes a greater one, which fences this holder.
        let n = client
            .execute(
                "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL
                 WHERE order_id = $1 AND lease_token = $2",
                &[&claim.order_id().as_str(), &to_i64(claim.token)],
            )
            .await
            .map_err(db("release lease"))?;
        if n == 1 {
            Ok(())
        } else {
            Err(lost(claim.order_id(), claim.token))
        }
    }

    async fn begin_planning(&self, planner: &str) -> Result<PlanningEpoch, StoreError> {
        let client = self.client().await?;
        let epoch: i64 = client
            .query_one(
                "UPDATE planning SET epoch = epoch + 1, planner = $1, began_at = now()
                 WHERE id = 1 RETURNING epoch",
                &[&planner],
            )
            .await
            .map_err(db("begin planning"))?
            .get(0);
        Ok(PlanningEpoch::new(to_u64(epoch), planner))
    }

    async fn insert_orders_in_epoch(
        &self,
        epoch: &PlanningEpoch,
        records: &[OrderRecord],
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("insert orders in epoch"))?;
        // FOR SHARE: a planner beginning a new epoch waits until this insert commits, and
        // an epoch begun before this statement is seen here.
        let current: i64 = tx
            .query_one("SELECT epoch FROM planning WHERE id = 1 FOR SHARE", &[])
            .await
            .map_err(db("insert orders in epoch: read epoch"))?
            .get(0);
        if to_u64(current) != epoch.epoch {
            return Err(StoreError::StalePlanningEpoch {
                epoch: epoch.epoch,
                current: to_u64(current),
            });
        }
        let existing = orders::insert_orders(&tx, self.sealer(), records).await?;
        tx.commit()
            .await
            .map_err(db("insert orders in epoch: commit"))?;
        Ok(existing)
    }
}

fn lost(order_id: &OrderId, token: u64) -> StoreError {
    StoreError::LeaseLost {
        order_id: order_id.clone(),
        token,
    }
}
