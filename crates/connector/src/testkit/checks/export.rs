//! Complete and incremental exports.

use super::*;

/// A complete export holds what fulfilment wrote, honours the type filter, and ends with one
/// `Complete` item.
pub async fn export_sees_fulfilment(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    run_writing(
        conn,
        profile,
        "export_sees_fulfilment",
        &[],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("exported");
            let mut c = ctx.account_named(name.clone(), None);
            c.set(p.text_property.clone(), "seen by export");
            let a = ctx.create_account(c).await?;
            let mut stream = ctx
                .conn
                .export(ctx.export_request())
                .await
                .map_err(|e| format!("complete export: {e}"))?;
            let mut found = None;
            let mut complete = false;
            while let Some(item) = stream.next().await {
                let item = item.map_err(|e| format!("export item: {e}"))?;
                ensure!(
                    !complete,
                    "the export yielded {item:?} after its Complete item"
                );
                match item {
                    ExportItem::Resource(r) => {
                        if r.get(PASSWORD).is_some() {
                            fail!("{} is exported with a password", r.id);
                        }
                        if r.stable_id.as_ref() == Some(&a.stable_id) {
                            found = Some(r);
                        }
                    }
                    ExportItem::Deleted { id, .. } => {
                        fail!("a complete export yielded a deletion ({id})")
                    }
                    ExportItem::Complete { cookie } => {
                        ensure!(!cookie.0.is_empty(), "the export's cookie is empty");
                        complete = true;
                    }
                }
            }
            // Release the stream (and whatever it holds: a limiter's permit, a connection).
            drop(stream);
            ensure!(
                complete,
                "the export stream ended without its Complete item"
            );
            let Some(r) = found else {
                fail!(
                    "the complete export does not hold {} (stable id {})",
                    a.id,
                    a.stable_id
                );
            };
            ensure!(
                same_name(r.id.as_str(), a.id.as_str())
                    && text(&r, &p.name_property).as_deref() == Some(name.as_str())
                    && text(&r, &p.text_property).as_deref() == Some("seen by export"),
                "the export holds {r:?}"
            );
            if let Some(g) = &p.group_type {
                let group = ctx.create_group("exported").await?;
                let only = ctx
                    .conn
                    .export_all(ctx.export_request().of_types([p.account_type.clone()]))
                    .await
                    .map_err(|e| format!("export of accounts only: {e}"))?;
                ensure!(
                    only.resources
                        .iter()
                        .any(|x| x.stable_id.as_ref() == Some(&a.stable_id)),
                    "an export of `{}` lacks the account",
                    p.account_type
                );
                ensure!(
                    !only
                        .resources
                        .iter()
                        .any(|x| x.stable_id.as_ref() == Some(&group.stable_id)),
                    "an export of `{}` holds the `{g}` {}",
                    p.account_type,
                    group.id
                );
            }
            Ok(())
        },
    )
    .await
}

/// An incremental export returns only what changed since the cookie, and an unusable cookie
/// is a `Conflict`.
pub async fn incremental_export(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.incremental_export || !c.update)
            .then(|| "the connection does not declare `incremental_export` and `update`".into())
    }
    run_writing(
        conn,
        profile,
        "incremental_export",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let unchanged = ctx.create_account(ctx.account("unchanged")).await?;
            let mut changed = ctx.create_account(ctx.account("changed")).await?;
            let deleted = ctx.create_account(ctx.account("deleted")).await?;
            let deleted_too = ctx.create_account(ctx.account("deleted-too")).await?;
            // Deleted before the cookie, as the last write before it: not in the increment.
            let deleted_before = ctx.create_account(ctx.account("deleted-before")).await?;
            ctx.delete(&deleted_before).await?;
            let base = ctx
                .conn
                .export_all(ctx.export_request())
                .await
                .map_err(|e| format!("complete export: {e}"))?;
            let Some(cookie) = base.cookie else {
                fail!("the complete export returned no cookie");
            };
            // Deletions first (the first change after the cookie, and two in a row), a
            // modification last (the last change before the next cookie).
            ctx.delete(&deleted).await?;
            ctx.delete(&deleted_too).await?;
            let created = ctx.create_account(ctx.account("created")).await?;
            ctx.modify(
                &mut changed,
                set_text(&p.text_property, "changed since the cookie"),
            )
            .await?;
            let incremental = |cookie: ExportCookie| {
                let mut request = ExportRequest::incremental(cookie);
                request.scope = ctx.export_request().scope;
                request
            };
            let inc = ctx
                .conn
                .export_all(incremental(cookie))
                .await
                .map_err(|e| format!("incremental export: {e}"))?;
            let has = |c: &Created| {
                inc.resources
                    .iter()
                    .find(|r| r.stable_id.as_ref() == Some(&c.stable_id))
            };
            ensure!(
                has(&created).is_some(),
                "the increment lacks the created {}",
                created.id
            );
            let Some(r) = has(&changed) else {
                fail!("the increment lacks the changed {}", changed.id);
            };
            ensure!(
                text(r, &p.text_property).as_deref() == Some("changed since the cookie"),
                "the increment holds the changed account with {:?}",
                r.get(&p.text_property)
            );
            ensure!(
                has(&unchanged).is_none(),
                "the increment holds {}, unchanged since the cookie",
                unchanged.id
            );
            let was_deleted =
                |d: &Vec<(autoprov_core::ResourceId, Option<autoprov_core::StableId>)>,
                 deleted: &Created| {
                    d.iter().any(|(id, stable)| match stable {
                        Some(s) => *s == deleted.stable_id,
                        None => same_name(id.as_str(), deleted.id.as_str()),
                    })
                };
            for deleted in [&deleted, &deleted_too] {
                ensure!(
                    was_deleted(&inc.deleted, deleted),
                    "the increment does not report the deletion of {} (deleted: {:?})",
                    deleted.id,
                    inc.deleted
                );
            }
            ensure!(
                !was_deleted(&inc.deleted, &deleted_before),
                "the increment reports the deletion of {}, made before its cookie",
                deleted_before.id
            );
            let Some(next) = inc.cookie else {
                fail!("the incremental export returned no cookie");
            };
            let quiet = ctx
                .conn
                .export_all(incremental(next))
                .await
                .map_err(|e| format!("second incremental export: {e}"))?;
            for c in [&unchanged, &changed, &created] {
                ensure!(
                    !quiet
                        .resources
                        .iter()
                        .any(|r| r.stable_id.as_ref() == Some(&c.stable_id)),
                    "an increment with no change since its cookie holds {}",
                    c.id
                );
            }
            ensure!(
                !was_deleted(&quiet.deleted, &deleted)
                    && !was_deleted(&quiet.deleted, &deleted_too),
                "an increment with no change since its cookie repeats a deletion"
            );
            match ctx
                .conn
                .export(incremental(ExportCookie(
                    "autoprov-kit-foreign-cookie".into(),
                )))
                .await
            {
                Ok(_) => fail!("a foreign cookie was accepted; expected a Conflict error"),
                Err(e) => ensure!(
                    e.kind() == ErrorKind::Conflict,
                    "a foreign cookie: expected Conflict, got {:?}: {e}",
                    e.kind()
                ),
            }
            Ok(())
        },
    )
    .await
}

/// The cookie of [`Connector::latest_cookie`], taken after some writes, starts an incremental
/// export that holds none of them and every write made after it.
pub async fn latest_cookie_starts_after_writes(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.incremental_export || !c.update)
            .then(|| "the connection does not declare `incremental_export` and `update`".into())
    }
    const CHECK: &str = "latest_cookie_starts_after_writes";
    if need(&conn.info().capabilities, profile).is_none() {
        match conn.latest_cookie().await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Ok(CheckOutcome::Skipped {
                    reason: "the connection cannot tell its latest cookie (`latest_cookie` \
                             returns None)"
                        .into(),
                });
            }
            Err(e) => {
                return Err(KitFailure {
                    check: CHECK,
                    message: format!("latest_cookie: {e}"),
                });
            }
        }
    }
    run_writing(conn, profile, CHECK, &[need], |ctx| async move {
        let p = ctx.profile;
        let mut before = ctx.create_account(ctx.account("before")).await?;
        let mut changed = ctx.create_account(ctx.account("changed")).await?;
        let deleted = ctx.create_account(ctx.account("deleted")).await?;
        let early = ctx.create_account(ctx.account("early-deleted")).await?;
        ctx.delete(&early).await?;
        // The last write before the cookie: an export from a cookie off by one holds it.
        ctx.modify(
            &mut before,
            set_text(&p.text_property, "changed before the cookie"),
        )
        .await?;
        let conn = ctx.conn;
        let latest = || async move {
            match conn.latest_cookie().await {
                Ok(Some(cookie)) if !cookie.0.is_empty() => Ok(cookie),
                Ok(Some(_)) => Err("latest_cookie returned an empty cookie".to_owned()),
                Ok(None) => Err("latest_cookie returned a cookie, then None".to_owned()),
                Err(e) => Err(format!("latest_cookie: {e}")),
            }
        };
        let scope = ctx.export_request().scope;
        let since = |cookie: ExportCookie| {
            let mut request = ExportRequest::incremental(cookie.clone());
            request.scope = scope.clone();
            async move {
                conn.export_all(request).await.map_err(|e| {
                    format!("incremental export from the latest cookie {cookie:?}: {e}")
                })
            }
        };
        let has = |batch: &crate::ExportBatch, c: &Created| {
            batch
                .resources
                .iter()
                .find(|r| r.stable_id.as_ref() == Some(&c.stable_id))
                .cloned()
        };
        let reports = |batch: &crate::ExportBatch, c: &Created| {
            batch.deleted.iter().any(|(id, stable)| match stable {
                Some(s) => *s == c.stable_id,
                None => same_name(id.as_str(), c.id.as_str()),
            })
        };
        // Round one: a change is the first write after the cookie, a creation follows.
        let cookie = latest().await?;
        ctx.modify(
            &mut changed,
            set_text(&p.text_property, "changed after the cookie"),
        )
        .await?;
        let created = ctx.create_account(ctx.account("after")).await?;
        let inc = since(cookie).await?;
        ensure!(
            has(&inc, &before).is_none(),
            "the export from the latest cookie holds {}, written before the cookie was taken",
            before.id
        );
        ensure!(
            has(&inc, &created).is_some(),
            "the export from the latest cookie lacks {}, created after it",
            created.id
        );
        let Some(r) = has(&inc, &changed) else {
            fail!(
                "the export from the latest cookie lacks {}, changed right after it",
                changed.id
            );
        };
        ensure!(
            text(&r, &p.text_property).as_deref() == Some("changed after the cookie"),
            "the export from the latest cookie holds the changed account with {:?}",
            r.get(&p.text_property)
        );
        ensure!(
            !reports(&inc, &early),
            "the export from the latest cookie reports the deletion of {}, made before it",
            early.id
        );
        // Round two: a deletion is the first write after the cookie.
        let cookie = latest().await?;
        ctx.delete(&deleted).await?;
        let inc = since(cookie).await?;
        ensure!(
            reports(&inc, &deleted),
            "the export from the latest cookie does not report the deletion of {}, made right \
             after it (deleted: {:?})",
            deleted.id,
            inc.deleted
        );
        for c in [&changed, &created] {
            ensure!(
                has(&inc, c).is_none(),
                "the export from the latest cookie holds {}, written before the cookie was taken",
                c.id
            );
        }
        Ok(())
    })
    .await
}
