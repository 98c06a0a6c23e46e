//! Added orders: create, read back, and adopt an identical existing account.

use super::*;

/// Create, read back, update, clear and delete an account.
pub async fn create_read_update_delete(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.update).then(|| "the connection does not declare `update`".into())
    }
    run_writing(
        conn,
        profile,
        "create_read_update_delete",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("crud");
            let mut c = ctx.account_named(name.clone(), None);
            c.set(p.text_property.clone(), "first value");
            let key = p.key_property.as_ref().and_then(|k| c.scalar(k).cloned());
            let mut a = ctx.create_account(c).await?;
            let r = ctx.read(&a).await?;
            ensure!(
                same_name(r.id.as_str(), a.id.as_str()),
                "the export's id {} is not the key {} that fulfilment returned",
                r.id,
                a.id
            );
            ensure!(
                r.entity_type.as_ref().is_none_or(|t| *t == p.account_type),
                "exported as a `{:?}`, expected `{}`",
                r.entity_type,
                p.account_type
            );
            ensure!(
                text(&r, &p.name_property).as_deref() == Some(name.as_str()),
                "`{}` reads back as {:?}, expected {name:?}",
                p.name_property,
                r.get(&p.name_property)
            );
            ensure!(
                text(&r, &p.text_property).as_deref() == Some("first value"),
                "`{}` reads back as {:?}",
                p.text_property,
                r.get(&p.text_property)
            );
            if let (Some(k), Some(v)) = (&p.key_property, key) {
                ensure!(
                    r.get(k) == Some(&PropertyValue::Scalar(v.clone())),
                    "`{k}` reads back as {:?}, expected {v:?}",
                    r.get(k)
                );
            }
            if let Some(ns) = ctx.namespace() {
                ensure!(
                    names(&r, PARENT, ns),
                    "`{PARENT}` reads back as {:?}, expected {}",
                    r.get(PARENT),
                    ns.id
                );
            }
            let done = ctx
                .modify(&mut a, set_text(&p.text_property, "second value"))
                .await?;
            ensure!(
                done.changed.contains(&p.text_property),
                "the update reported changed = {:?}, expected it to name `{}`",
                done.changed,
                p.text_property
            );
            let r = ctx.read(&a).await?;
            ensure!(
                text(&r, &p.text_property).as_deref() == Some("second value"),
                "after the update `{}` reads back as {:?}",
                p.text_property,
                r.get(&p.text_property)
            );
            ensure!(
                text(&r, &p.name_property).as_deref() == Some(name.as_str()),
                "the update changed the name to {:?}",
                r.get(&p.name_property)
            );
            let mut clear = Changes::default();
            clear.clear(p.text_property.clone());
            ctx.modify(&mut a, clear).await?;
            let r = ctx.read(&a).await?;
            ensure!(
                r.get(&p.text_property).is_none(),
                "after clearing, `{}` reads back as {:?}",
                p.text_property,
                r.get(&p.text_property)
            );
            ctx.delete(&a).await?;
            ensure!(
                ctx.read(&a).await.is_err(),
                "{} is still exported after its deletion",
                a.id
            );
            Ok(())
        },
    )
    .await
}

/// An Added order of an existing identical account adopts it and converges its attributes; a
/// different object holding the name is `AlreadyExists`.
pub async fn idempotent_create(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    run_writing(conn, profile, "idempotent_create", &[], |ctx| async move {
        let p = ctx.profile;
        let mut c = ctx.account("adopt");
        c.set(p.text_property.clone(), "one");
        let first = ctx.create_account(c.clone()).await?;
        c.set(p.text_property.clone(), "two");
        let order = ctx.order(ChangeType::Added, &p.account_type, c.clone(), None);
        let again = ctx.apply(&order).await?;
        ensure!(
            again.adopted,
            "a second Added order of the same account did not report `adopted`"
        );
        ensure!(
            again.stable_id.as_ref() == Some(&first.stable_id),
            "the adoption reported stable id {:?}, expected {}",
            again.stable_id,
            first.stable_id
        );
        ensure!(
            same_name(again.resource_id.as_str(), first.id.as_str()),
            "the adoption reported key {}, expected {}",
            again.resource_id,
            first.id
        );
        ensure!(
            again.changed.contains(&p.text_property),
            "converging changed {:?}, expected `{}`",
            again.changed,
            p.text_property
        );
        let r = ctx.read(&first).await?;
        ensure!(
            text(&r, &p.text_property).as_deref() == Some("two"),
            "the adopted account was not converged: `{}` is {:?}",
            p.text_property,
            r.get(&p.text_property)
        );
        let name = string_of(&r, &p.name_property)
            .unwrap_or_default()
            .to_owned();
        let count = ctx
            .export()
            .await?
            .iter()
            .filter(|x| string_of(x, &p.name_property) == Some(name.as_str()))
            .count();
        ensure!(
            count == 1,
            "{count} objects are named {name:?} after the adoption"
        );
        if let Some(key) = &p.key_property {
            let mut other = c.clone();
            other.set(key.clone(), ctx.key());
            let order = ctx.order(ChangeType::Added, &p.account_type, other, None);
            match ctx.send(&order).await? {
                Ok(done) => {
                    if let Some(stable) = &done.stable_id
                        && *stable != first.stable_id
                    {
                        ctx.track_created(&p.account_type, &done, false)?;
                    }
                    fail!(
                        "an Added order whose name is held by an account with another `{key}` \
                         succeeded ({done:?}); expected AlreadyExists"
                    );
                }
                Err(e) => ensure!(
                    e.kind() == ErrorKind::AlreadyExists,
                    "a different object holding the name: expected AlreadyExists, got {:?}: {e}",
                    e.kind()
                ),
            }
        }
        Ok(())
    })
    .await
}
