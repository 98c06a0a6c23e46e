//! Deleted orders.

use super::*;

/// Deleting a target twice, and deleting a missing one, succeed.
pub async fn idempotent_delete(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    run_writing(conn, profile, "idempotent_delete", &[], |ctx| async move {
        let a = ctx.create_account(ctx.account("delete")).await?;
        let order = ctx.delete_order(&a);
        ctx.apply(&order).await?;
        ctx.mark_deleted(&a);
        ctx.apply(&order)
            .await
            .map_err(|e| format!("re-sending the same Deleted order: {e}"))?;
        let other = ctx.delete_order(&a);
        ctx.apply(&other)
            .await
            .map_err(|e| format!("another Deleted order of a missing target: {e}"))?;
        ensure!(ctx.read(&a).await.is_err(), "{} is still exported", a.id);
        Ok(())
    })
    .await
}
