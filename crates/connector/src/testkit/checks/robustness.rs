//! Kit v2: what packages written from the guide got wrong and the first kit let pass — a
//! rename onto another object's name, a Modified order that wipes what it did not mention,
//! a Modified order on a missing target reported as done, and paging off by one.

use super::*;

/// Renaming onto a name another object holds fails (`AlreadyExists` or `Conflict`) and
/// changes neither object.
pub async fn rename_onto_taken_name(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.rename || !c.update)
            .then(|| "the connection does not declare `rename` and `update`".into())
    }
    run_writing(
        conn,
        profile,
        "rename_onto_taken_name",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let a_name = ctx.name("renamer");
            let b_name = ctx.name("holder");
            let a = ctx
                .create_account(ctx.account_named(a_name.clone(), None))
                .await?;
            let b = ctx
                .create_account(ctx.account_named(b_name.clone(), None))
                .await?;
            let mut c = Changes::default();
            c.set(p.name_property.clone(), b_name.clone());
            let order = ctx.modify_order(&a, c);
            match ctx.send(&order).await? {
                Ok(done) => fail!(
                    "renaming {} onto the name {b_name:?} of {} succeeded ({done:?}); expected \
                     AlreadyExists or Conflict",
                    a.id,
                    b.id
                ),
                Err(e) => ensure!(
                    matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::Conflict),
                    "renaming onto a taken name: expected AlreadyExists or Conflict, got {:?}: {e}",
                    e.kind()
                ),
            }
            let ra = ctx.read(&a).await?;
            let rb = ctx.read(&b).await?;
            ensure!(
                text(&ra, &p.name_property).as_deref() == Some(a_name.as_str()),
                "the refused rename changed {}'s name to {:?}",
                a.id,
                ra.get(&p.name_property)
            );
            ensure!(
                text(&rb, &p.name_property).as_deref() == Some(b_name.as_str()),
                "the refused rename changed the holder's name to {:?}",
                rb.get(&p.name_property)
            );
            Ok(())
        },
    )
    .await
}

/// A Modified order writes only what it names: the account's other properties (its text, key,
/// fixed values, enabled state) keep their values.
pub async fn modified_keeps_unmentioned(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        if !c.update {
            return skip("the connection does not declare `update`");
        }
        (!c.enable_disable && p.key_property.is_none()).then(|| {
            "the kit needs a second property to modify: `enable_disable` or a key property".into()
        })
    }
    run_writing(
        conn,
        profile,
        "modified_keeps_unmentioned",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let kept = format!("kept {}", ctx.token());
            let name = ctx.name("unmentioned");
            let mut c = ctx.account_named(name.clone(), None);
            c.set(p.text_property.clone(), kept.clone());
            let key = p.key_property.as_ref().and_then(|k| c.scalar(k).cloned());
            let mut a = ctx.create_account(c).await?;
            let toggles = ctx.conn.info().capabilities.enable_disable;
            let mut m = Changes::default();
            let mut new_key = None;
            if toggles {
                m.set(ENABLED, false);
            } else if let Some(k) = &p.key_property {
                let v = ctx.key();
                m.set(k.clone(), v.clone());
                new_key = Some(v);
            }
            ctx.modify(&mut a, m).await?;
            let r = ctx.read(&a).await?;
            ensure!(
                text(&r, &p.text_property).as_deref() == Some(kept.as_str()),
                "a Modified order that did not mention `{}` changed it to {:?}",
                p.text_property,
                r.get(&p.text_property)
            );
            ensure!(
                text(&r, &p.name_property).as_deref() == Some(name.as_str()),
                "a Modified order that did not mention `{}` changed it to {:?}",
                p.name_property,
                r.get(&p.name_property)
            );
            if let (Some(k), Some(v), None) = (&p.key_property, &key, &new_key) {
                ensure!(
                    r.get(k) == Some(&PropertyValue::Scalar(v.clone())),
                    "a Modified order that did not mention `{k}` changed it to {:?}",
                    r.get(k)
                );
            }
            for (k, v) in &p.account_values {
                ensure!(
                    r.get(k) == Some(&PropertyValue::Scalar(v.clone())),
                    "a Modified order that did not mention `{k}` changed it to {:?}",
                    r.get(k)
                );
            }
            // And the other way round: changing the text keeps what the first order wrote.
            ctx.modify(&mut a, set_text(&p.text_property, "changed"))
                .await?;
            let r = ctx.read(&a).await?;
            if toggles {
                ensure!(
                    r.get(ENABLED) == Some(&PropertyValue::Scalar(ScalarValue::Bool(false))),
                    "a Modified order of `{}` alone re-enabled the account: `{ENABLED}` = {:?}",
                    p.text_property,
                    r.get(ENABLED)
                );
            }
            if let (Some(k), Some(v)) = (&p.key_property, &new_key) {
                ensure!(
                    text(&r, k).as_deref() == Some(v.as_str()),
                    "a Modified order of `{}` alone changed `{k}` to {:?}",
                    p.text_property,
                    r.get(k)
                );
            }
            Ok(())
        },
    )
    .await
}

/// A Modified order whose target does not exist fails with `NotFound` (never reported done)
/// and creates nothing.
pub async fn modified_missing_target_fails(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.update).then(|| "the connection does not declare `update`".into())
    }
    run_writing(
        conn,
        profile,
        "modified_missing_target_fails",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("vanished");
            let a = ctx
                .create_account(ctx.account_named(name.clone(), None))
                .await?;
            ctx.delete(&a).await?;
            let order = ctx.modify_order(&a, set_text(&p.text_property, "too late"));
            match ctx.send(&order).await? {
                Ok(done) => fail!(
                    "a Modified order of the deleted {} was reported done ({done:?}); expected \
                     NotFound",
                    a.id
                ),
                Err(e) => {
                    ensure!(
                        e.kind() == ErrorKind::NotFound,
                        "a Modified order of a missing target: expected NotFound, got {:?}: {e}",
                        e.kind()
                    );
                    ensure!(
                        e.order() == Some(&order.order_id),
                        "the error must name the order {} (got {:?})",
                        order.order_id,
                        e.order()
                    );
                }
            }
            ensure!(
                ctx.find_named(&name).await?.is_none(),
                "the Modified order of a deleted target re-created {name:?}"
            );
            Ok(())
        },
    )
    .await
}

/// An export through a connection with one resource per page
/// ([`KitProfile::one_per_page`]) holds exactly the resources of the connection's own export:
/// none lost or repeated at a page boundary, each with the same values, and ends with its
/// cookie.
pub async fn paging_one_per_page(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(_: &Capabilities, p: &KitProfile) -> Option<String> {
        p.one_per_page
            .is_none()
            .then(|| "the profile gives no connection with one resource per page".into())
    }
    run_writing(
        conn,
        profile,
        "paging_one_per_page",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let paged = p.one_per_page.clone().expect("checked");
            let mut mine = Vec::new();
            for i in 0..3 {
                mine.push(
                    ctx.create_account(ctx.account(&format!("paged{i}")))
                        .await?,
                );
            }
            let c = ctx.conn.info().capabilities;
            if c.membership && c.update && p.group_type.is_some() {
                let g = ctx.create_group("paged").await?;
                for a in &mine[..2] {
                    let mut m = Changes::default();
                    m.add_reference(MEMBER_OF, g.reference());
                    ctx.apply(&ctx.modify_order(a, m)).await?;
                }
                mine.push(g);
            }
            let whole = ctx.export().await?;
            // Read item by item, up to a bound: a page token that does not advance would
            // otherwise make the export endless.
            let bound = 2 * whole.len() + 10;
            let mut stream = paged
                .export(ctx.export_request())
                .await
                .map_err(|e| format!("export with one resource per page: {e}"))?;
            let mut batch = crate::ExportBatch::default();
            let mut items = 0;
            while let Some(item) = stream.next().await {
                items += 1;
                ensure!(
                    items <= bound,
                    "the export with one resource per page does not end: more than {bound} \
                     items for {} resources (a page token that does not advance?)",
                    whole.len()
                );
                match item.map_err(|e| format!("export with one resource per page: {e}"))? {
                    ExportItem::Resource(r) => batch.resources.push(r),
                    ExportItem::Complete { cookie } => batch.cookie = Some(cookie),
                    other => fail!("a complete export yielded {other:?}"),
                }
            }
            drop(stream);
            ensure!(
                batch.cookie.is_some(),
                "the export with one resource per page ended without its cookie"
            );
            for (i, r) in batch.resources.iter().enumerate() {
                let again = batch.resources[..i]
                    .iter()
                    .any(|x| x.id == r.id && x.stable_id == r.stable_id);
                ensure!(!again, "one resource per page repeated {}", r.id);
            }
            for created in &mine {
                let find = |rs: &[Resource]| {
                    rs.iter()
                        .find(|r| r.stable_id.as_ref() == Some(&created.stable_id))
                        .cloned()
                };
                let Some(one) = find(&batch.resources) else {
                    fail!(
                        "the export with one resource per page lost {} ({} resources exported, \
                         {} with the connection's page size)",
                        created.id,
                        batch.resources.len(),
                        whole.len()
                    );
                };
                let Some(many) = find(&whole) else {
                    fail!("{} is missing from the export", created.id);
                };
                ensure!(
                    one == many,
                    "{} differs between one resource per page ({one:?}) and the connection's \
                     page size ({many:?})",
                    created.id
                );
            }
            Ok(())
        },
    )
    .await
}
