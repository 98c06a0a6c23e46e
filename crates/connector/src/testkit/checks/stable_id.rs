//! Stable ids: an order that carries one acts only on the object with that id.

use super::*;
use crate::connector::Executed;
use autoprov_core::{ResourceId, StableId};

/// A stale key with a valid stable id never touches another object.
///
/// Create A, delete it, and create B at A's old key; then a Modified order and a Deleted order
/// that carry A's stable id and A's old key (B's key, where keys do not derive from names): the
/// Modified order fails with `NotFound` naming
/// both stable ids, the Deleted order is done with nothing written and says so in
/// [`Executed::note`], and B is untouched (its export is the same before and after). With
/// `rename`, the same with A renamed away instead of deleted (without, A kept and B created
/// beside it): the orders act on A at its new key, never on B.
pub async fn stale_key_never_touches_another_object(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.update).then(|| "the connection does not declare `update`".into())
    }
    run_writing(
        conn,
        profile,
        "stale_key_never_touches_another_object",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            // A deleted, B created at its key.
            let name = ctx.name("stale");
            let a = ctx
                .create_account(ctx.account_named(name.clone(), None))
                .await?;
            ctx.delete(&a).await?;
            let b = ctx.create_account(ctx.account_named(name, None)).await?;
            // Where keys derive from names (DNs), B now holds A's old key; elsewhere the orders
            // carry B's key, so that the key names another object all the same.
            ensure!(
                a.stable_id != b.stable_id,
                "A and B share the stable id {}",
                a.stable_id
            );
            let before = ctx.read(&b).await?;
            let modify = stale_order(
                &ctx,
                &a,
                &b,
                ChangeType::Modified,
                "written through a stale key",
            );
            match ctx.send(&modify).await? {
                Ok(done) => fail!(
                    "a Modified order with the stable id {} of a deleted object was executed on \
                     {} ({done:?}); expected NotFound",
                    a.stable_id,
                    done.resource_id
                ),
                Err(e) => {
                    ensure!(
                        e.kind() == ErrorKind::NotFound,
                        "a Modified order with a deleted object's stable id: expected NotFound, \
                         got {:?}: {e}",
                        e.kind()
                    );
                    let text = e.to_string();
                    ensure!(
                        text.contains(a.stable_id.as_str()) && text.contains(b.stable_id.as_str()),
                        "the NotFound error must name both stable ids ({} and the holder {}): {e}",
                        a.stable_id,
                        b.stable_id
                    );
                }
            }
            let delete = stale_order(&ctx, &a, &b, ChangeType::Deleted, "");
            let done: Executed = ctx.apply(&delete).await?;
            ensure!(
                done.is_noop(),
                "a Deleted order with a deleted object's stable id wrote {:?}",
                done.changed
            );
            ensure!(
                done.note.is_some(),
                "a Deleted order whose key names another object must say it wrote nothing \
                 (Executed::note)"
            );
            let after = ctx
                .read(&b)
                .await
                .map_err(|e| format!("B after the orders with A's stable id and old key: {e}"))?;
            ensure!(
                after == before,
                "B was changed by orders carrying A's stable id: before {before:?}, after {after:?}"
            );

            // C renamed away (when the connection renames), D created at its old key: the
            // orders follow C.
            {
                let name = ctx.name("moved");
                let mut c = ctx
                    .create_account(ctx.account_named(name.clone(), None))
                    .await?;
                if ctx.conn.info().capabilities.rename {
                    let mut rename = Changes::default();
                    rename.set(p.name_property.clone(), ctx.name("away"));
                    ctx.modify(&mut c, rename).await?;
                }
                let d_name = if ctx.conn.info().capabilities.rename {
                    name
                } else {
                    ctx.name("beside")
                };
                let d = ctx.create_account(ctx.account_named(d_name, None)).await?;
                let before = ctx.read(&d).await?;
                let modify = stale_order(&ctx, &c, &d, ChangeType::Modified, "follows the id");
                let done = ctx.apply(&modify).await?;
                ensure!(
                    done.stable_id.as_ref().is_none_or(|s| *s == c.stable_id)
                        && same_name(done.resource_id.as_str(), c.id.as_str()),
                    "the Modified order with the renamed object's stable id acted on {} ({:?}), \
                     expected {} ({})",
                    done.resource_id,
                    done.stable_id,
                    c.id,
                    c.stable_id
                );
                let r = ctx.read(&c).await?;
                ensure!(
                    text(&r, &p.text_property).as_deref() == Some("follows the id"),
                    "the renamed object did not get the change: {:?}",
                    r.get(&p.text_property)
                );
                let delete = stale_order(&ctx, &c, &d, ChangeType::Deleted, "");
                ctx.apply(&delete).await?;
                ctx.mark_deleted(&c);
                ensure!(
                    ctx.read(&c).await.is_err(),
                    "the renamed object is still exported after its Deleted order"
                );
                let after = ctx.read(&d).await.map_err(|e| {
                    format!("D after the orders with the renamed object's stable id: {e}")
                })?;
                ensure!(
                    after == before,
                    "D was changed by orders carrying another object's stable id: before \
                     {before:?}, after {after:?}"
                );
            }
            Ok(())
        },
    )
    .await
}

/// An order of `change_type` carrying `target`'s stable id and the key `holder` holds now.
fn stale_order(
    ctx: &Ctx<'_>,
    target: &Created,
    holder: &Created,
    change_type: ChangeType,
    text: &str,
) -> ProvisioningOrder {
    let changes = if text.is_empty() {
        Changes::default()
    } else {
        set_text(&ctx.profile.text_property, text)
    };
    let key: &ResourceId = &holder.id;
    let stable: &StableId = &target.stable_id;
    ctx.order(
        change_type,
        &target.entity_type,
        changes,
        Some((key, Some(stable))),
    )
}
