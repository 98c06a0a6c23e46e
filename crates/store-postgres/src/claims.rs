//! Work distribution: leased claims (`FOR UPDATE SKIP LOCKED`, lease times from the
//! server's `now()`, a fencing token from a sequence) and planning epochs.

use crate::orders::{self, Fence, record_of};
use crate::{PgStore, db, to_i64, to_u64};
use async_trait::async_trait;
use autoprov_core::{ConnectionId, OrderId, ProvisioningState};
use autoprov_store::{
    Claim, ClaimStore, OrderRecord, OrderUpdate, Permit, PlanningEpoch, SharedBreaker, StoreError,
};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The orders a dependency must have reached before its dependants are ready.
const DEPENDENCY_DONE: &[ProvisioningState] =
    &[ProvisioningState::Executed, ProvisioningState::Verified];

/// Ready orders, oldest id first, locked without waiting for the ones another transaction
/// holds, then leased with a fresh token. A dependency missing from the store blocks its
/// dependants (it may not be inserted yet). `{limit}` is the claim's limit: a literal (as
/// are the states a dependency must have reached), so that the server settles on one
/// generic plan per connection instead of planning the statement again at every claim (a
/// `LIMIT $n` parameter keeps it choosing custom plans).
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
          WHERE x.order_id IS NULL OR x.state NOT IN ({done}))
    ORDER BY o.order_id
    LIMIT {limit}
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE orders SET lease_owner = $1, lease_token = nextval('lease_tokens'),
                  lease_expires_at = now() + make_interval(secs => $2)
FROM ready WHERE orders.order_id = ready.order_id
RETURNING orders.record, orders.sealed, orders.lease_token, orders.lease_expires_at";

/// Claim limits up to this are written into the statement (one prepared statement per
/// limit and connection); a larger one is clamped to it (a claim may return fewer orders
/// than asked).
const MAX_CLAIM: usize = 256;

/// The claim statement for `limit` (at most [`MAX_CLAIM`]).
fn claim_sql(limit: usize) -> String {
    let done = DEPENDENCY_DONE
        .iter()
        .map(|s| format!("'{}'", s.name()))
        .collect::<Vec<_>>()
        .join(", ");
    CLAIM
        .replace("{done}", &done)
        .replace("{limit}", &limit.min(MAX_CLAIM).to_string())
}

/// Free slots of a connection's limit (no lease, or an expired one), lowest first, locked
/// without waiting for those another transaction holds, then leased with fresh tokens.
const ACQUIRE_PERMITS: &str = "
WITH free AS (
    SELECT connection, slot FROM connection_permits
    WHERE connection = $1 AND slot < $2
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
    ORDER BY slot
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE connection_permits p SET worker = $4, token = nextval('lease_tokens'),
       lease_expires_at = now() + make_interval(secs => $5)
FROM free WHERE p.connection = free.connection AND p.slot = free.slot
RETURNING p.slot, p.token, p.lease_expires_at";

/// A breaker row as (failures, half_open, seconds the breaker stays open from now).
const BREAKER_VIEW: &str = "failures, half_open,
    greatest(extract(epoch FROM open_until - now()), 0)::float8 AS remaining";

fn breaker_of(row: Option<&tokio_postgres::Row>) -> SharedBreaker {
    let Some(row) = row else {
        return SharedBreaker::Closed { failures: 0 };
    };
    let remaining: f64 = row.get("remaining");
    if remaining > 0.0 {
        SharedBreaker::Open {
            remaining: Duration::try_from_secs_f64(remaining).unwrap_or(Duration::MAX),
        }
    } else if row.get::<_, bool>("half_open") {
        SharedBreaker::ProbeDue
    } else {
        SharedBreaker::Closed {
            failures: u32::try_from(row.get::<_, i32>("failures")).unwrap_or(0),
        }
    }
}

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
        let client = self.client().await?;
        let claim = client
            .prepare_cached(&claim_sql(limit))
            .await
            .map_err(db("claim orders: prepare"))?;
        let rows = client
            .query(&claim, &[&worker, &seconds(lease)])
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
        if let Some(record) = orders::apply_claimed(
            &client,
            claim.order_id(),
            &claim.record,
            claim.token,
            &update,
        )
        .await?
        {
            let mut next = claim.clone();
            next.record = record;
            return Ok(next);
        }
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

    async fn record_outcomes(
        &self,
        writes: Vec<(Claim, OrderUpdate)>,
    ) -> Vec<Result<Claim, StoreError>> {
        let n = writes.len();
        let mut out: Vec<Option<Result<Claim, StoreError>>> = vec![None; n];
        // One statement for the writes that apply to their claim's copy; an order named
        // twice, or an update that does not apply (the transactional path says why), goes
        // through `record_outcome` on its own.
        let mut batch = Vec::with_capacity(n);
        let mut alone = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(n);
        for (i, (claim, update)) in writes.iter().enumerate() {
            if !seen.insert(claim.order_id()) {
                alone.push(i);
                continue;
            }
            match orders::ClaimedWrite::of(&claim.record, update) {
                Ok(Some(write)) => batch.push((i, write)),
                Ok(None) => alone.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if !batch.is_empty() {
            let (at, items): (Vec<usize>, Vec<orders::BatchItem<'_>>) = batch
                .into_iter()
                .map(|(i, write)| {
                    let claim = &writes[i].0;
                    (
                        i,
                        orders::BatchItem {
                            order_id: claim.order_id(),
                            version: claim.record.version,
                            token: claim.token,
                            write,
                        },
                    )
                })
                .unzip();
            let results = match self.client().await {
                Ok(client) => orders::apply_claimed_batch(&client, items).await,
                Err(e) => Err(e),
            };
            match results {
                Ok(results) => {
                    for (i, r) in at.into_iter().zip(results) {
                        out[i] = Some(r.map(|record| {
                            let mut next = writes[i].0.clone();
                            next.record = record;
                            next
                        }));
                    }
                }
                Err(e) => {
                    for i in at {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        for i in alone {
            let (claim, update) = &writes[i];
            out[i] = Some(self.record_outcome(claim, update.clone()).await);
        }
        out.into_iter()
            .map(|r| r.expect("every write answered"))
            .collect()
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

    async fn acquire_permits(
        &self,
        connection: &ConnectionId,
        worker: &str,
        limit: u32,
        want: u32,
        lease: Duration,
    ) -> Result<Vec<Permit>, StoreError> {
        if want == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let client = self.client().await?;
        let acquire = client
            .prepare_cached(ACQUIRE_PERMITS)
            .await
            .map_err(db("acquire permits: prepare"))?;
        let params = |want: u32| (i64::from(want), seconds(lease));
        let (n, secs) = params(want);
        let mut rows = client
            .query(
                &acquire,
                &[&connection.as_str(), &limit, &n, &worker, &secs],
            )
            .await
            .map_err(db("acquire permits"))?;
        if rows.len() < want as usize {
            // The slots of a connection are rows, made the first time they are wanted (and
            // when the limit grows); then the free ones are leased as above.
            let made = client
                .execute(
                    "INSERT INTO connection_permits (connection, slot)
                     SELECT $1, s FROM generate_series(0, $2 - 1) AS s
                     ON CONFLICT DO NOTHING",
                    &[&connection.as_str(), &limit],
                )
                .await
                .map_err(db("acquire permits: create slots"))?;
            if made > 0 {
                let (n, secs) = params(want - u32::try_from(rows.len()).unwrap_or(want));
                rows.extend(
                    client
                        .query(
                            &acquire,
                            &[&connection.as_str(), &limit, &n, &worker, &secs],
                        )
                        .await
                        .map_err(db("acquire permits"))?,
                );
            }
        }
        Ok(rows
            .iter()
            .map(|row| {
                Permit::new(
                    connection.clone(),
                    u32::try_from(row.get::<_, i32>("slot")).unwrap_or(0),
                    worker,
                    to_u64(row.get("token")),
                    row.get("lease_expires_at"),
                )
            })
            .collect())
    }

    async fn renew_permit(&self, permit: &Permit, lease: Duration) -> Result<Permit, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE connection_permits
                 SET lease_expires_at = now() + make_interval(secs => $4)
                 WHERE connection = $1 AND slot = $2 AND token = $3
                 RETURNING lease_expires_at",
                &[
                    &permit.connection.as_str(),
                    &i32::try_from(permit.slot).unwrap_or(i32::MAX),
                    &to_i64(permit.token),
                    &seconds(lease),
                ],
            )
            .await
            .map_err(db("renew permit"))?
            .ok_or_else(|| StoreError::PermitLost {
                connection: permit.connection.clone(),
                slot: permit.slot,
                token: permit.token,
            })?;
        let mut renewed = permit.clone();
        renewed.lease_expires_at = row.get::<_, DateTime<Utc>>(0);
        Ok(renewed)
    }

    async fn release_permits(&self, permits: &[Permit]) -> Result<(), StoreError> {
        if permits.is_empty() {
            return Ok(());
        }
        let connections: Vec<&str> = permits.iter().map(|p| p.connection.as_str()).collect();
        let slots: Vec<i32> = permits
            .iter()
            .map(|p| i32::try_from(p.slot).unwrap_or(i32::MAX))
            .collect();
        let tokens: Vec<i64> = permits.iter().map(|p| to_i64(p.token)).collect();
        let client = self.client().await?;
        client
            .execute(
                "UPDATE connection_permits p SET worker = NULL, lease_expires_at = NULL
                 FROM unnest($1::text[], $2::int[], $3::bigint[]) AS r(connection, slot, token)
                 WHERE p.connection = r.connection AND p.slot = r.slot AND p.token = r.token",
                &[&connections, &slots, &tokens],
            )
            .await
            .map_err(db("release permits"))?;
        Ok(())
    }

    async fn breaker(&self, connection: &ConnectionId) -> Result<SharedBreaker, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {BREAKER_VIEW} FROM connection_breakers WHERE connection = $1"),
                &[&connection.as_str()],
            )
            .await
            .map_err(db("read breaker"))?;
        Ok(breaker_of(row.as_ref()))
    }

    async fn breaker_failure(
        &self,
        connection: &ConnectionId,
        threshold: u32,
        open_for: Duration,
    ) -> Result<SharedBreaker, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO connection_breakers (connection) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&connection.as_str()],
            )
            .await
            .map_err(db("breaker failure"))?;
        // SET expressions read the row as it was: a closed breaker counts (and opens at the
        // threshold), a due probe reopens, an open one stays as it is.
        let row = client
            .query_one(
                &format!(
                    "UPDATE connection_breakers SET
                        failures = CASE WHEN half_open THEN failures
                                        WHEN failures + 1 >= $2 THEN 0
                                        ELSE failures + 1 END,
                        open_until = CASE
                            WHEN half_open AND (open_until IS NULL OR open_until <= now())
                                THEN now() + make_interval(secs => $3)
                            WHEN NOT half_open AND failures + 1 >= $2
                                THEN now() + make_interval(secs => $3)
                            ELSE open_until END,
                        half_open = half_open OR failures + 1 >= $2
                     WHERE connection = $1
                     RETURNING {BREAKER_VIEW}"
                ),
                &[
                    &connection.as_str(),
                    &i32::try_from(threshold).unwrap_or(i32::MAX),
                    &seconds(open_for),
                ],
            )
            .await
            .map_err(db("breaker failure"))?;
        Ok(breaker_of(Some(&row)))
    }

    async fn breaker_success(&self, connection: &ConnectionId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE connection_breakers SET failures = 0, open_until = NULL, half_open = false
                 WHERE connection = $1
                   AND (failures > 0 OR half_open OR open_until IS NOT NULL)",
                &[&connection.as_str()],
            )
            .await
            .map_err(db("breaker success"))?;
        Ok(())
    }

    async fn breaker_try_probe(
        &self,
        connection: &ConnectionId,
        open_for: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE connection_breakers SET open_until = now() + make_interval(secs => $2)
                 WHERE connection = $1 AND half_open
                   AND (open_until IS NULL OR open_until <= now())",
                &[&connection.as_str(), &seconds(open_for)],
            )
            .await
            .map_err(db("breaker probe"))?;
        Ok(n == 1)
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
        orders::refresh_stats(&client, records.len() - existing.len()).await;
        Ok(existing)
    }
}

fn lost(order_id: &OrderId, token: u64) -> StoreError {
    StoreError::LeaseLost {
        order_id: order_id.clone(),
        token,
    }
}
