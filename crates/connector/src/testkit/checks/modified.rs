//! Modified orders: re-application, rename, move, enable/disable and the write-only password.

use super::*;

/// Re-applying an Added, a Modified and a membership order changes nothing.
pub async fn reapply_changes_nothing(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.update).then(|| "the connection does not declare `update`".into())
    }
    run_writing(
        conn,
        profile,
        "reapply_changes_nothing",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let add = ctx.order(
                ChangeType::Added,
                &p.account_type,
                ctx.account("reapply"),
                None,
            );
            let done = ctx.apply(&add).await?;
            let mut a = ctx.track_created(&p.account_type, &done, false)?;
            let again = ctx.apply(&add).await?;
            ensure!(
                again.is_noop(),
                "re-applying the Added order wrote {:?}",
                again.changed
            );
            let modify = ctx.modify_order(&a, set_text(&p.text_property, "reapplied"));
            let done = ctx.apply(&modify).await?;
            ctx.follow(&mut a, &done)?;
            let again = ctx.apply(&modify).await?;
            ensure!(
                again.is_noop(),
                "re-applying the Modified order wrote {:?}",
                again.changed
            );
            let c = ctx.conn.info().capabilities;
            if c.membership && p.group_type.is_some() {
                let g = ctx.create_group("reapply").await?;
                let mut m = Changes::default();
                m.add_reference(MEMBER_OF, g.reference());
                let order = ctx.modify_order(&a, m);
                ctx.apply(&order).await?;
                let again = ctx.apply(&order).await?;
                ensure!(
                    again.is_noop(),
                    "re-applying the membership order wrote {:?}",
                    again.changed
                );
            }
            Ok(())
        },
    )
    .await
}

/// A changed name renames the target and keeps its stable id.
pub async fn rename_keeps_stable_id(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.rename || !c.update)
            .then(|| "the connection does not declare `rename` and `update`".into())
    }
    run_writing(
        conn,
        profile,
        "rename_keeps_stable_id",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let mut a = ctx.create_account(ctx.account("before")).await?;
            let old = a.id.clone();
            let new_name = ctx.name("after");
            let mut c = Changes::default();
            c.set(p.name_property.clone(), new_name.clone());
            let done = ctx.modify(&mut a, c).await?;
            ensure!(
                done.changed.contains(&p.name_property),
                "the rename reported changed = {:?}",
                done.changed
            );
            let r = ctx.read(&a).await?;
            ensure!(
                text(&r, &p.name_property).as_deref() == Some(new_name.as_str()),
                "the renamed account is named {:?}",
                r.get(&p.name_property)
            );
            ensure!(
                same_name(r.id.as_str(), done.resource_id.as_str()),
                "the export's id {} is not the new key {}",
                r.id,
                done.resource_id
            );
            let stale = ctx.export().await?.into_iter().any(|x| {
                x.stable_id.as_ref() != Some(&a.stable_id) && same_name(x.id.as_str(), old.as_str())
            });
            ensure!(
                !stale,
                "another object holds the old key {old} after the rename"
            );
            ctx.modify(&mut a, set_text(&p.text_property, "after rename"))
                .await
                .map_err(|e| format!("updating the renamed account: {e}"))?;
            Ok(())
        },
    )
    .await
}

/// A changed parent moves the target and keeps its stable id.
pub async fn move_keeps_stable_id(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        if !c.move_parent || !c.containers || !c.update {
            return skip(
                "the connection does not declare `move_parent`, `containers` and `update`",
            );
        }
        p.container_type
            .is_none()
            .then(|| "the profile has no container type".into())
    }
    run_writing(
        conn,
        profile,
        "move_keeps_stable_id",
        &[need],
        |ctx| async move {
            let from = ctx.create_container("from").await?;
            let to = ctx.create_container("to").await?;
            let mut a = ctx
                .create_account(ctx.account_named(ctx.name("mover"), Some(&from)))
                .await?;
            let old = a.id.clone();
            let mut c = Changes::default();
            c.set_reference(PARENT, to.reference());
            let done = ctx.modify(&mut a, c).await?;
            ensure!(
                done.changed.contains(PARENT),
                "the move reported changed = {:?}",
                done.changed
            );
            ensure!(
                !same_name(done.resource_id.as_str(), old.as_str()),
                "the move kept the key {old}"
            );
            let r = ctx.read(&a).await?;
            ensure!(
                names(&r, PARENT, &to),
                "after the move `{PARENT}` is {:?}, expected {}",
                r.get(PARENT),
                to.id
            );
            ensure!(
                same_name(r.id.as_str(), done.resource_id.as_str()),
                "the export's id {} is not the new key {}",
                r.id,
                done.resource_id
            );
            Ok(())
        },
    )
    .await
}

/// Accounts are disabled and enabled.
pub async fn disable_enable(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.enable_disable || !c.update)
            .then(|| "the connection does not declare `enable_disable` and `update`".into())
    }
    run_writing(conn, profile, "disable_enable", &[need], |ctx| async move {
        let mut c = ctx.account("toggle");
        c.set(ENABLED, false);
        let mut a = ctx.create_account(c).await?;
        for expected in [false, true, false] {
            if ctx.read(&a).await?.get(ENABLED)
                != Some(&PropertyValue::Scalar(ScalarValue::Bool(expected)))
            {
                let r = ctx.read(&a).await?;
                fail!(
                    "`{ENABLED}` reads back as {:?}, expected {expected}",
                    r.get(ENABLED)
                );
            }
            let mut c = Changes::default();
            c.set(ENABLED, !expected);
            ctx.modify(&mut a, c).await?;
        }
        Ok(())
    })
    .await
}

/// A password is accepted, never exported, never shown in an error.
pub async fn password_write_only(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.password).then(|| "the connection does not declare `password`".into())
    }
    run_writing(
        conn,
        profile,
        "password_write_only",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let password = p.password.clone();
            let mut c = ctx.account("secret");
            c.set(PASSWORD, password.clone());
            let mut a = ctx.create_account(c).await?;
            let clear = password
                .expose()
                .map_err(|e| format!("the kit profile's password: {e}"))?;
            let leak = |r: &Resource| -> Option<String> {
                let debug = format!("{r:?}");
                let json = serde_json::to_string(r).unwrap_or_default();
                if r.get(PASSWORD).is_some() {
                    return Some(format!("`{PASSWORD}` is exported"));
                }
                if r.values
                    .values()
                    .any(|v| matches!(v, PropertyValue::Scalar(ScalarValue::Secret(_))))
                {
                    return Some("a secret value is exported".into());
                }
                (debug.contains(clear) || json.contains(clear))
                    .then(|| "the password text is exported".into())
            };
            for r in ctx.export().await? {
                if let Some(what) = leak(&r) {
                    fail!("{what} (in {})", r.id);
                }
            }
            if ctx.conn.info().capabilities.update {
                let mut c = Changes::default();
                c.set(PASSWORD, Secret::new(format!("{clear}9z")));
                ctx.modify(&mut a, c)
                    .await
                    .map_err(|e| format!("changing the password: {e}"))?;
                for r in ctx.export().await? {
                    if let Some(what) = leak(&r) {
                        fail!("after a change, {what} (in {})", r.id);
                    }
                }
            }
            let mut bad = ctx.account("secret-bad");
            bad.set(PASSWORD, password.clone())
                .set(p.unknown_property.clone(), "x");
            let order = ctx.order(ChangeType::Added, &p.account_type, bad, None);
            match ctx.send(&order).await? {
                // Accepting an unknown property is `invalid_order_unknown_property`'s finding;
                // here only the error text matters.
                Ok(done) => {
                    ctx.track_created(&p.account_type, &done, false)?;
                }
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    ensure!(
                        !shown.contains(clear),
                        "an error shows the password: {shown}"
                    );
                }
            }
            Ok(())
        },
    )
    .await
}

/// A password written is stored: for a connection that can check passwords
/// ([`Capabilities::password_check`]), the account created with one verifies with it and not
/// with another, and a new password set by a Modified order replaces it.
pub async fn password_is_stored(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        if !c.password {
            return skip("the connection does not declare `password`");
        }
        (!c.password_check).then(|| "the connection does not declare `password_check`".into())
    }
    run_writing(
        conn,
        profile,
        "password_is_stored",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let password = p.password.clone();
            let clear = password
                .expose()
                .map_err(|e| format!("the kit profile's password: {e}"))?
                .to_owned();
            let mut c = ctx.account("stored");
            c.set(PASSWORD, password.clone());
            let mut a = ctx.create_account(c).await?;
            let check = |target: autoprov_core::ResourceId, pw: Secret| async move {
                ctx.conn
                    .check_password(&target, &pw)
                    .await
                    .map_err(|e| format!("checking the password of {target}: {e}"))
            };
            ensure!(
                check(a.id.clone(), password.clone()).await?,
                "the password of the Added order does not verify: it was not stored"
            );
            ensure!(
                !check(a.id.clone(), Secret::new(format!("{clear}-wrong"))).await?,
                "another password verifies for {}",
                a.id
            );
            if ctx.conn.info().capabilities.update {
                let new = Secret::new(format!("{clear}9z"));
                let mut c = Changes::default();
                c.set(PASSWORD, new.clone());
                ctx.modify(&mut a, c).await?;
                ensure!(
                    check(a.id.clone(), new).await?,
                    "the password of the Modified order does not verify: it was not stored"
                );
                ensure!(
                    !check(a.id.clone(), password).await?,
                    "the old password still verifies after a Modified order replaced it"
                );
            }
            Ok(())
        },
    )
    .await
}
