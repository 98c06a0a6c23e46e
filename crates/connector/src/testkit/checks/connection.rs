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

/// `check` writes nothing: the profile's root container (or, without one, everything the
/// connection exports) reads the same before and after three checks.
pub async fn check_writes_nothing(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        if c.is_manual() {
            return skip(
                "manual connection: a human applies its orders, the kit cannot observe them",
            );
        }
        (!c.export).then(|| "the connection does not declare `export`".into())
    }
    run(conn, profile, "check_writes_nothing", &[need], |ctx| async move {
        let request = || match &ctx.profile.root_container {
            Some(root) => crate::ExportRequest::complete().within(root.as_str()),
            None => crate::ExportRequest::complete(),
        };
        let read = || async {
            let mut all = ctx
                .conn
                .export_all(request())
                .await
                .map_err(|e| format!("complete export: {e}"))?
                .resources;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            Ok::<_, Fail>(all)
        };
        let before = read().await?;
        for _ in 0..3 {
            if let Err(e) = ctx.conn.check().await {
                fail!("check failed: {e}");
            }
        }
        let after = read().await?;
        if before != after {
            let added: Vec<&str> = after
                .iter()
                .filter(|r| !before.iter().any(|b| b.id == r.id))
                .map(|r| r.id.as_str())
                .collect();
            let changed: Vec<&str> = after
                .iter()
                .filter(|r| before.iter().any(|b| b.id == r.id && b != *r))
                .map(|r| r.id.as_str())
                .collect();
            fail!(
                "check wrote to the managed system: {} objects before, {} after; new {added:?}, \
                 changed {changed:?}",
                before.len(),
                after.len()
            );
        }
        Ok(())
    })
    .await
}

/// Orders sent at the same time on one connection are each applied once, to their own target:
/// 12 Added orders at once, then 12 Modified orders at once (one each), and, where the
/// connection has groups, 12 memberships of one group added at once (none lost).
pub async fn parallel_orders(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.update).then(|| "the connection does not declare `update`".into())
    }
    const N: usize = 12;
    run_writing(conn, profile, "parallel_orders", &[need], |ctx| async move {
        let p = ctx.profile;
        let labels: Vec<String> = (0..N).map(|i| ctx.name(&format!("par{i}"))).collect();
        let orders: Vec<ProvisioningOrder> = labels
            .iter()
            .map(|n| {
                ctx.order(
                    ChangeType::Added,
                    &p.account_type,
                    ctx.account_named(n.clone(), None),
                    None,
                )
            })
            .collect();
        let results = futures::future::join_all(orders.iter().map(|o| ctx.send(o))).await;
        let mut created = Vec::new();
        for (o, r) in orders.iter().zip(results) {
            match r? {
                Ok(done) => {
                    created.push(ctx.track_created(&p.account_type, &done, false)?);
                }
                Err(e) => fail!("order {} sent in parallel failed: {e}", o.order_id),
            }
        }
        let all = ctx.export().await?;
        for (name, c) in labels.iter().zip(&created) {
            let holders: Vec<&Resource> = all
                .iter()
                .filter(|r| string_of(r, &p.name_property) == Some(name.as_str()))
                .collect();
            ensure!(
                holders.len() == 1,
                "{} objects are named {name:?} after {N} Added orders sent at once",
                holders.len()
            );
            ensure!(
                holders[0].stable_id.as_ref() == Some(&c.stable_id),
                "the Added order for {name:?} reported the stable id {}, but {name:?} has {:?} \
                 (an outcome given to the wrong order)",
                c.stable_id,
                holders[0].stable_id
            );
        }
        // One Modified order per account, all at once: each gets its own value.
        let modifies: Vec<ProvisioningOrder> = created
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut ch = Changes::default();
                ch.set(p.text_property.clone(), format!("value {i}"));
                ctx.modify_order(c, ch)
            })
            .collect();
        let results = futures::future::join_all(modifies.iter().map(|o| ctx.send(o))).await;
        for (o, r) in modifies.iter().zip(results) {
            if let Err(e) = r? {
                fail!("Modified order {} sent in parallel failed: {e}", o.order_id);
            }
        }
        let all = ctx.export().await?;
        for (i, c) in created.iter().enumerate() {
            let r = all
                .iter()
                .find(|r| r.stable_id.as_ref() == Some(&c.stable_id))
                .ok_or_else(|| format!("{} is missing after the parallel updates", c.id))?;
            ensure!(
                text(r, &p.text_property).as_deref() == Some(format!("value {i}").as_str()),
                "after {N} Modified orders sent at once, {} has `{}` = {:?}, expected \"value {i}\"",
                c.id,
                p.text_property,
                r.get(&p.text_property)
            );
        }
        // Memberships of one group added at once: none lost.
        let caps = ctx.conn.info().capabilities;
        if caps.membership && p.group_type.is_some() {
            let g = ctx.create_group("pargroup").await?;
            let adds: Vec<ProvisioningOrder> = created
                .iter()
                .map(|c| {
                    let mut ch = Changes::default();
                    ch.add_reference(MEMBER_OF, g.reference());
                    ctx.modify_order(c, ch)
                })
                .collect();
            let results = futures::future::join_all(adds.iter().map(|o| ctx.send(o))).await;
            for (o, r) in adds.iter().zip(results) {
                if let Err(e) = r? {
                    fail!("membership order {} sent in parallel failed: {e}", o.order_id);
                }
            }
            let all = ctx.export().await?;
            for c in &created {
                let r = all
                    .iter()
                    .find(|r| r.stable_id.as_ref() == Some(&c.stable_id))
                    .ok_or_else(|| format!("{} is missing", c.id))?;
                ensure!(
                    names(r, MEMBER_OF, &g),
                    "after {N} memberships of {} added at once, {} is not a member (a lost \
                     update): {:?}",
                    g.id,
                    c.id,
                    r.get(MEMBER_OF)
                );
            }
        }
        Ok(())
    })
    .await
}

/// A connection's `Debug` says something (at least which connection it is) and shows none of
/// the data it holds or has written: not an account's name, nor a value written to it, nor its
/// password. A `Debug` line ends up in logs.
pub async fn debug_shows_no_held_data(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    run_writing(
        conn,
        profile,
        "debug_shows_no_held_data",
        &[],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("debug-held");
            let text = format!("held text {}", ctx.token());
            let mut c = ctx.account_named(name.clone(), None);
            c.set(p.text_property.clone(), text.clone());
            let password = p.password.clone();
            let clear = password
                .expose()
                .map_err(|e| format!("the kit profile's password: {e}"))?
                .to_owned();
            if ctx.conn.info().capabilities.password {
                c.set(PASSWORD, password);
            }
            ctx.create_account(c).await?;
            let debug = format!("{:?} {:#?}", ctx.conn, ctx.conn);
            ensure!(
                !debug.trim().is_empty(),
                "the connection's Debug prints nothing; it should at least name the connection"
            );
            for (what, value) in [
                ("the name of an account it holds", name.as_str()),
                ("a value it wrote", text.as_str()),
                ("a password it wrote", clear.as_str()),
            ] {
                ensure!(
                    !debug.contains(value),
                    "the connection's Debug shows {what} ({value:?}): {debug}"
                );
            }
            Ok(())
        },
    )
    .await
}
