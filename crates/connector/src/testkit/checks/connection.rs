//! The connection itself: `check` and `info`, and manual hand-over.

use super::*;

/// `check` succeeds and `info` returns the same value twice.
pub async fn connection_check(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    run(conn, profile, "connection_check", &[], |ctx| async move {
        let first = ctx.conn.info().clone();
        if let Err(e) = ctx.conn.check().await {
            fail!("check failed: {e}");
        }
        ensure!(*ctx.conn.info() == first, "info changed between two calls");
        ensure!(
            !first.package.as_str().is_empty(),
            "info has an empty package id"
        );
        Ok(())
    })
    .await
}

/// A manual connection returns `Transmitted` with a ticket.
pub async fn manual_transmits(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.is_manual()).then(|| "automated connection: it executes orders itself".into())
    }
    run(
        conn,
        profile,
        "manual_transmits",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let mut c = ctx.account("manual");
            if let Some(root) = &p.root_container {
                c.set_reference(PARENT, Reference::dn(root.clone()));
            }
            let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
            for attempt in ["the order", "the same order again"] {
                match ctx.conn.fulfill(&order).await {
                    Ok(Fulfillment::Transmitted { ticket }) => {
                        ensure!(!ticket.is_empty(), "{attempt}: an empty ticket reference");
                    }
                    Ok(other) => fail!("{attempt}: a manual connection returned {other:?}"),
                    Err(e) => fail!("{attempt}: {e}"),
                }
            }
            Ok(())
        },
    )
    .await
}
