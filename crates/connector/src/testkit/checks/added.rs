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

/// An Added order that asks for review before adopting
/// ([`ADOPTION_REVIEW_ARGUMENT`](crate::ADOPTION_REVIEW_ARGUMENT)) never adopts an account it
/// did not create.
///
/// An account created by one order; a second Added order of the same account with the
/// argument fails with [`ErrorKind::NeedsReview`], names the account, and writes nothing; the
/// same order without the argument (a person approved) adopts and converges it. An order with
/// the argument and nothing in the way creates as usual, and sent again with
/// [`RESENT_ARGUMENT`](crate::RESENT_ARGUMENT) adopts its own creation without review.
pub async fn adoption_review_is_honoured(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    run_writing(conn, profile, "adoption_review_is_honoured", &[], |ctx| async move {
        let p = ctx.profile;
        // The time of the orders' first attempt: before any account of this check exists.
        let first_attempt = "1970-01-01T00:00:00Z".to_owned();
        let mut c = ctx.account("review");
        c.set(p.text_property.clone(), "one");
        let found = ctx.create_account(c.clone()).await?;
        let before = ctx.read(&found).await?;
        c.set(p.text_property.clone(), "two");
        let mut order = ctx.order(ChangeType::Added, &p.account_type, c.clone(), None);
        order.arguments.insert(
            crate::ADOPTION_REVIEW_ARGUMENT.to_owned(),
            first_attempt.clone(),
        );
        match ctx.send(&order).await? {
            Ok(done) => fail!(
                "an Added order asking for review before adoption adopted an account another \
                 order created ({done:?}); expected NeedsReview"
            ),
            Err(e) => {
                ensure!(
                    e.kind() == ErrorKind::NeedsReview,
                    "an Added order asking for review before adoption: expected NeedsReview, got \
                     {:?}: {e}",
                    e.kind()
                );
                ensure!(
                    same_name(e.target().unwrap_or_default(), found.id.as_str())
                        || e.to_string().contains(found.stable_id.as_str()),
                    "the NeedsReview error must name the account found ({} / {}): {e}",
                    found.id,
                    found.stable_id
                );
            }
        }
        let after = ctx.read(&found).await?;
        ensure!(
            after == before,
            "an adoption waiting for review wrote to the account: before {before:?}, after \
             {after:?}"
        );
        // Approved: the same order without the argument adopts and converges.
        order.arguments.remove(crate::ADOPTION_REVIEW_ARGUMENT);
        order
            .arguments
            .insert(crate::RESENT_ARGUMENT.to_owned(), "true".to_owned());
        let adopted = ctx.apply(&order).await?;
        ensure!(
            adopted.adopted && adopted.stable_id.as_ref() == Some(&found.stable_id),
            "the approved order did not adopt the account {}: {adopted:?}",
            found.stable_id
        );
        let r = ctx.read(&found).await?;
        ensure!(
            text(&r, &p.text_property).as_deref() == Some("two"),
            "the approved adoption did not converge `{}`: {:?}",
            p.text_property,
            r.get(&p.text_property)
        );
        // Nothing in the way: the order creates; sent again, it adopts its own creation.
        let mut order = ctx.order(
            ChangeType::Added,
            &p.account_type,
            ctx.account("reviewnew"),
            None,
        );
        order
            .arguments
            .insert(crate::ADOPTION_REVIEW_ARGUMENT.to_owned(), first_attempt);
        let created = ctx.apply(&order).await?;
        let created_target = ctx.track_created(&p.account_type, &created, false)?;
        ensure!(
            !created.adopted,
            "an order asking for review before adoption, with nothing in the way, reported \
             `adopted`"
        );
        order
            .arguments
            .insert(crate::RESENT_ARGUMENT.to_owned(), "true".to_owned());
        let again = ctx.apply(&order).await.map_err(|e| {
            format!(
                "the same order sent again (its earlier attempt created {}) must adopt its own \
                 creation without review: {e}",
                created_target.id
            )
        })?;
        ensure!(
            again.adopted && again.stable_id.as_ref() == Some(&created_target.stable_id),
            "the order sent again did not adopt its own creation {}: {again:?}",
            created_target.stable_id
        );
        Ok(())
    })
    .await
}
