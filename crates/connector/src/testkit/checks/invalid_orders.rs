//! Orders a connector must refuse as given, writing nothing.

use super::*;

/// An Added order without a required attribute is a permanent `InvalidOrder` and creates
/// nothing.
pub async fn invalid_order_missing_required(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(_: &Capabilities, p: &KitProfile) -> Option<String> {
        p.required_property
            .is_none()
            .then(|| "the profile names no required property".into())
    }
    run_writing(
        conn,
        profile,
        "invalid_order_missing_required",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let required = p.required_property.clone().expect("checked");
            let name = ctx.name("no-required");
            let mut c = ctx.account_named(name.clone(), None);
            c.properties.remove(&required);
            let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
            let result = ctx.send(&order).await?;
            if let Ok(done) = &result {
                ctx.track_created(&p.account_type, done, false)?;
            }
            expect_invalid(result, &order, &format!("an account without `{required}`"))?;
            ensure!(
                ctx.find_named(&name).await?.is_none(),
                "the invalid order created {name:?}"
            );
            Ok(())
        },
    )
    .await
}

/// An unknown property is a permanent `InvalidOrder` and writes nothing, not even the valid
/// part of the order.
pub async fn invalid_order_unknown_property(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    run_writing(
        conn,
        profile,
        "invalid_order_unknown_property",
        &[],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("unknown");
            let mut c = ctx.account_named(name.clone(), None);
            c.set(p.unknown_property.clone(), "x");
            let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
            let result = ctx.send(&order).await?;
            if let Ok(done) = &result {
                ctx.track_created(&p.account_type, done, false)?;
            }
            expect_invalid(
                result,
                &order,
                &format!("an Added order with `{}`", p.unknown_property),
            )?;
            ensure!(
                ctx.find_named(&name).await?.is_none(),
                "the invalid order created {name:?}"
            );
            if ctx.conn.info().capabilities.update {
                let mut c = ctx.account("kept");
                c.set(p.text_property.clone(), "kept");
                let a = ctx.create_account(c).await?;
                let mut m = set_text(&p.text_property, "must not be written");
                m.set(p.unknown_property.clone(), "x");
                let order = ctx.modify_order(&a, m);
                let result = ctx.send(&order).await?;
                expect_invalid(
                    result,
                    &order,
                    &format!("a Modified order with `{}`", p.unknown_property),
                )?;
                let r = ctx.read(&a).await?;
                ensure!(
                    text(&r, &p.text_property).as_deref() == Some("kept"),
                    "the invalid Modified order wrote its valid part: `{}` = {:?}",
                    p.text_property,
                    r.get(&p.text_property)
                );
                ensure!(
                    r.get(&p.unknown_property).is_none(),
                    "the unknown property was written"
                );
            }
            Ok(())
        },
    )
    .await
}

/// A reference to a missing object is a permanent `InvalidOrder` and writes nothing.
pub async fn invalid_order_bad_reference(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        let groups = c.membership && p.group_type.is_some();
        let containers = c.containers && p.container_type.is_some();
        (!groups && !containers).then(|| {
            "neither memberships (a group type and `membership`) nor containers (a container \
             type and `containers`) give the kit a reference to break"
                .into()
        })
    }
    run_writing(
        conn,
        profile,
        "invalid_order_bad_reference",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let c = ctx.conn.info().capabilities;
            if c.membership && p.group_type.is_some() {
                let good = ctx.create_group("good").await?;
                let gone = ctx.create_group("gone").await?;
                ctx.delete(&gone).await?;
                let name = ctx.name("bad-ref");
                let mut changes = ctx.account_named(name.clone(), None);
                changes
                    .add_reference(MEMBER_OF, good.reference())
                    .add_reference(MEMBER_OF, gone.reference());
                let order = ctx.order(ChangeType::Added, &p.account_type, changes, None);
                let result = ctx.send(&order).await?;
                if let Ok(done) = &result {
                    ctx.track_created(&p.account_type, done, false)?;
                }
                expect_invalid(result, &order, "an account in a deleted group")?;
                ensure!(
                    ctx.find_named(&name).await?.is_none(),
                    "the invalid order created {name:?}"
                );
                if c.update {
                    let mut a = ctx.create_account(ctx.account("bad-ref-mod")).await?;
                    let mut m = set_text(&p.text_property, "must not be written");
                    m.add_reference(MEMBER_OF, good.reference())
                        .add_reference(MEMBER_OF, gone.reference());
                    let order = ctx.modify_order(&a, m);
                    let result = ctx.send(&order).await?;
                    expect_invalid(result, &order, "adding an account to a deleted group")?;
                    let r = ctx.read(&a).await?;
                    ensure!(
                        !names(&r, MEMBER_OF, &good) && r.get(&p.text_property).is_none(),
                        "the invalid Modified order wrote its valid part: {r:?}"
                    );
                    ctx.follow(&mut a, &crate::Executed::new(r.id.clone()))?;
                    let not_a_group = ctx.create_account(ctx.account("not-a-group")).await?;
                    let mut m = Changes::default();
                    m.add_reference(MEMBER_OF, not_a_group.reference());
                    let order = ctx.modify_order(&a, m);
                    let result = ctx.send(&order).await?;
                    expect_invalid(result, &order, "adding an account to an account")?;
                    let r = ctx.read(&a).await?;
                    ensure!(
                        !names(&r, MEMBER_OF, &not_a_group),
                        "an account was made a member of another account: {r:?}"
                    );
                }
            } else {
                let gone = ctx.create_container("gone").await?;
                ctx.delete(&gone).await?;
                let name = ctx.name("bad-parent");
                let changes = ctx.account_named(name.clone(), Some(&gone));
                let order = ctx.order(ChangeType::Added, &p.account_type, changes, None);
                let result = ctx.send(&order).await?;
                if let Ok(done) = &result {
                    ctx.track_created(&p.account_type, done, false)?;
                }
                expect_invalid(result, &order, "an account in a deleted container")?;
            }
            Ok(())
        },
    )
    .await
}

/// A secret that was masked when written and read back (a redacted secret) has no value: an
/// order carrying one as the password is a permanent `InvalidOrder` that writes nothing —
/// never the password `********`.
pub async fn redacted_secret_is_refused(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.password).then(|| "the connection does not declare `password`".into())
    }
    run_writing(
        conn,
        profile,
        "redacted_secret_is_refused",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("redacted");
            let mut c = ctx.account_named(name.clone(), None);
            c.set(PASSWORD, autoprov_core::Secret::redacted());
            let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
            let result = ctx.send(&order).await?;
            if let Ok(done) = &result {
                ctx.track_created(&p.account_type, done, false)?;
            }
            expect_invalid(result, &order, "an Added order whose password is redacted")?;
            ensure!(
                ctx.find_named(&name).await?.is_none(),
                "the order with a redacted password created {name:?}"
            );
            if ctx.conn.info().capabilities.update {
                let a = ctx.create_account(ctx.account("pw-kept")).await?;
                let mut m = autoprov_core::Changes::default();
                m.set(PASSWORD, autoprov_core::Secret::redacted());
                let order = ctx.modify_order(&a, m);
                let result = ctx.send(&order).await?;
                expect_invalid(
                    result,
                    &order,
                    "a Modified order whose password is redacted",
                )?;
            }
            Ok(())
        },
    )
    .await
}
