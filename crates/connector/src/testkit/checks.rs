//! The checks, one per behaviour of the [`Connector`] contract.

use super::context::{Created, Ctx, Fail, ensure, fail, names, string_of};
use super::{Check, CheckOutcome, CheckResult, KitFailure, KitProfile};
use crate::capability::Capabilities;
use crate::connector::{
    Connector, ConnectorExt, ExportCookie, ExportItem, ExportRequest, Fulfillment,
};
use crate::dn::same_name;
use crate::error::{ConnectorError, ErrorKind, ErrorStatus};
use crate::schema::{ENABLED, MEMBER_OF, MEMBERS, PARENT, PASSWORD};
use autoprov_core::{
    ChangeType, Changes, PropertyValue, ProvisioningOrder, Reference, Resource, ScalarValue, Secret,
};
use futures::StreamExt as _;
use std::future::Future;

/// Why a check cannot run, from the declared capabilities and the profile.
type Need = fn(&Capabilities, &KitProfile) -> Option<String>;

fn skip(reason: impl Into<String>) -> Option<String> {
    Some(reason.into())
}

/// What every check that writes needs: an automated connection that creates, deletes (to
/// clean up) and exports (to read back).
fn writes(c: &Capabilities, _: &KitProfile) -> Option<String> {
    if c.is_manual() {
        return skip("manual connection: a human applies its orders, the kit cannot observe them");
    }
    for (flag, what) in [
        (c.create, "create"),
        (c.delete, "delete (the kit cleans up with Deleted orders)"),
        (c.export, "export (the kit reads back through export)"),
    ] {
        if !flag {
            return skip(format!("the connection does not declare `{what}`"));
        }
    }
    None
}

/// Runs a check that writes: in its own namespace, cleaning up whatever happened.
async fn run_writing<'a, F, Fut>(
    conn: &'a dyn Connector,
    profile: &'a KitProfile,
    check: &'static str,
    needs: &[Need],
    body: F,
) -> CheckResult
where
    F: FnOnce(Ctx<'a>) -> Fut,
    Fut: Future<Output = Result<(), Fail>> + 'a,
{
    let mut all: Vec<Need> = vec![writes];
    all.extend_from_slice(needs);
    run_in(conn, profile, check, &all, true, body).await
}

/// Runs a check that does not write.
async fn run<'a, F, Fut>(
    conn: &'a dyn Connector,
    profile: &'a KitProfile,
    check: &'static str,
    needs: &[Need],
    body: F,
) -> CheckResult
where
    F: FnOnce(Ctx<'a>) -> Fut,
    Fut: Future<Output = Result<(), Fail>> + 'a,
{
    run_in(conn, profile, check, needs, false, body).await
}

async fn run_in<'a, F, Fut>(
    conn: &'a dyn Connector,
    profile: &'a KitProfile,
    check: &'static str,
    needs: &[Need],
    namespace: bool,
    body: F,
) -> CheckResult
where
    F: FnOnce(Ctx<'a>) -> Fut,
    Fut: Future<Output = Result<(), Fail>> + 'a,
{
    let capabilities = conn.info().capabilities;
    for need in needs {
        if let Some(reason) = need(&capabilities, profile) {
            return Ok(CheckOutcome::Skipped { reason });
        }
    }
    let failure = |message: String| KitFailure { check, message };
    let ctx = Ctx::open(conn, profile, check, namespace)
        .await
        .map_err(failure)?;
    let result = body(ctx.clone()).await;
    let cleanup = ctx.cleanup().await;
    match (result, cleanup) {
        (Ok(()), Ok(())) => Ok(CheckOutcome::Passed),
        (Ok(()), Err(c)) => Err(failure(format!("cleaning up: {c}"))),
        (Err(e), Ok(())) => Err(failure(e)),
        (Err(e), Err(c)) => Err(failure(format!("{e} (cleaning up also failed: {c})"))),
    }
}

fn expect_invalid(
    result: Result<crate::Executed, ConnectorError>,
    order: &ProvisioningOrder,
    what: &str,
) -> Result<ConnectorError, Fail> {
    match result {
        Ok(done) => fail!("{what}: the order was executed ({done:?}); expected InvalidOrder"),
        Err(e) => {
            ensure!(
                e.kind() == ErrorKind::InvalidOrder,
                "{what}: expected an InvalidOrder error, got {:?}: {e}",
                e.kind()
            );
            ensure!(
                e.status() == ErrorStatus::Permanent,
                "{what}: an invalid order must be permanent, got {}",
                e.status()
            );
            ensure!(
                e.order() == Some(&order.order_id),
                "{what}: the error must name the order {} (got {:?})",
                order.order_id,
                e.order()
            );
            Ok(e)
        }
    }
}

fn text(r: &Resource, property: &str) -> Option<String> {
    string_of(r, property).map(str::to_owned)
}

fn set_text(property: &str, value: &str) -> Changes {
    let mut c = Changes::default();
    c.set(property, value);
    c
}

macro_rules! checks {
    ($($name:ident => $behaviour:literal),+ $(,)?) => {
        /// Every check, in order.
        pub(super) static ALL: &[Check] = &[
            $(Check {
                name: stringify!($name),
                behaviour: $behaviour,
                run: |conn, profile| Box::pin($name(conn, profile)),
            }),+
        ];
    };
}

checks! {
    connection_check => "check succeeds and info is stable",
    create_read_update_delete => "an account is created, read back, updated, cleared and deleted",
    idempotent_create => "an Added order for an existing identical account adopts and converges it; a different object holding the name is AlreadyExists",
    idempotent_delete => "deleting a missing target succeeds",
    reapply_changes_nothing => "re-applying an applied order succeeds and changes nothing",
    membership_add_twice_remove_absent => "memberships are value-level deltas; adding a present member and removing an absent one succeed",
    rename_keeps_stable_id => "a changed name renames the target and keeps its stable id",
    move_keeps_stable_id => "a changed parent moves the target and keeps its stable id",
    disable_enable => "accounts are disabled and enabled",
    password_write_only => "a password is accepted and never exported nor shown in errors",
    export_sees_fulfilment => "a complete export holds what fulfilment wrote and ends with a cookie",
    incremental_export => "an incremental export returns only changes and deletions since the cookie",
    invalid_order_missing_required => "a missing required attribute is a permanent InvalidOrder that writes nothing",
    invalid_order_unknown_property => "an unknown property is a permanent InvalidOrder that writes nothing",
    invalid_order_bad_reference => "a reference to a missing object is a permanent InvalidOrder that writes nothing",
    special_characters_round_trip => "names and values with unicode and every LDAP-special character round-trip exactly",
    manual_transmits => "a manual connection hands orders to a human with a ticket",
    preview_is_offline_and_shows_no_secret => "a preview (when the connector has one) writes nothing, shows no password, and lists refused orders by name",
}

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

/// Memberships are value-level: adding twice and removing an absent member succeed, and
/// removing one member leaves the others.
pub async fn membership_add_twice_remove_absent(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        if !c.membership || !c.update {
            return skip("the connection does not declare `membership` and `update`");
        }
        p.group_type
            .is_none()
            .then(|| "the profile has no group type".into())
    }
    run_writing(conn, profile, "membership_add_twice_remove_absent", &[need], |ctx| async move {
        let g = ctx.create_group("members").await?;
        let mut c = ctx.account("member-a");
        c.add_reference(MEMBER_OF, g.reference());
        let a = ctx.create_account(c).await?;
        let b = ctx.create_account(ctx.account("member-b")).await?;
        let r = ctx.read(&a).await?;
        ensure!(
            names(&r, MEMBER_OF, &g),
            "the initial membership (memberOf_add on the Added order) is missing: memberOf = {:?}",
            r.get(MEMBER_OF)
        );
        let group = ctx.read(&g).await?;
        if group.get(MEMBERS).is_some() {
            ensure!(
                names(&group, MEMBERS, &a),
                "the group's `member` lacks {}: {:?}",
                a.id,
                group.get(MEMBERS)
            );
        }
        let mut add = Changes::default();
        add.add_reference(MEMBER_OF, g.reference());
        for attempt in ["adding a member", "adding the same member again"] {
            let order = ctx.modify_order(&b, add.clone());
            ctx.apply(&order).await.map_err(|e| format!("{attempt}: {e}"))?;
        }
        let mut remove = Changes::default();
        remove.remove_reference(MEMBER_OF, g.reference());
        for attempt in ["removing a member", "removing an absent member"] {
            let order = ctx.modify_order(&a, remove.clone());
            ctx.apply(&order).await.map_err(|e| format!("{attempt}: {e}"))?;
        }
        let ra = ctx.read(&a).await?;
        ensure!(
            !names(&ra, MEMBER_OF, &g),
            "{} is still a member after its removal: {:?}",
            a.id,
            ra.get(MEMBER_OF)
        );
        let rb = ctx.read(&b).await?;
        ensure!(
            names(&rb, MEMBER_OF, &g),
            "removing one member removed another (never a replacement): {:?}",
            rb.get(MEMBER_OF)
        );
        let group = ctx.read(&g).await?;
        if group.get(MEMBERS).is_some() {
            ensure!(
                names(&group, MEMBERS, &b) && !names(&group, MEMBERS, &a),
                "the group's `member` is {:?}",
                group.get(MEMBERS)
            );
        }
        Ok(())
    })
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
            let clear = password.expose();
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
            let base = ctx
                .conn
                .export_all(ctx.export_request())
                .await
                .map_err(|e| format!("complete export: {e}"))?;
            let Some(cookie) = base.cookie else {
                fail!("the complete export returned no cookie");
            };
            let created = ctx.create_account(ctx.account("created")).await?;
            ctx.modify(
                &mut changed,
                set_text(&p.text_property, "changed since the cookie"),
            )
            .await?;
            ctx.delete(&deleted).await?;
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
                |d: &Vec<(autoprov_core::ResourceId, Option<autoprov_core::StableId>)>| {
                    d.iter().any(|(id, stable)| match stable {
                        Some(s) => *s == deleted.stable_id,
                        None => same_name(id.as_str(), deleted.id.as_str()),
                    })
                };
            ensure!(
                was_deleted(&inc.deleted),
                "the increment does not report the deletion of {} (deleted: {:?})",
                deleted.id,
                inc.deleted
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
                !was_deleted(&quiet.deleted),
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

/// The special-character cases: a label and a template where `{}` is a unique token.
const SPECIAL_CASES: &[(&str, &str)] = &[
    ("unicode", "Zoë Ångström-{} 日本語 😀"),
    ("comma", "{},x"),
    ("plus", "{}+x"),
    ("quote", "{}\"x"),
    ("backslash", "{}\\x"),
    ("angle brackets", "{}<x>"),
    ("semicolon", "{};x"),
    ("equals", "{}=x"),
    ("leading hash", "#{}"),
    ("inner hash", "{}#x"),
    ("asterisk", "{}*x"),
    ("parentheses", "{}(x)"),
    ("NUL", "{}\0x"),
    ("leading space", " {}"),
    ("trailing space", "{} "),
    ("everything", " #{} ,+\"\\<>;=#*()\0 x "),
];

/// Names and values with unicode and every LDAP-special character round-trip exactly (or,
/// for the profile's rejected characters, are a permanent `InvalidOrder` that writes
/// nothing).
pub async fn special_characters_round_trip(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, _: &KitProfile) -> Option<String> {
        (!c.special_characters || !c.update)
            .then(|| "the connection does not declare `special_characters` and `update`".into())
    }
    run_writing(
        conn,
        profile,
        "special_characters_round_trip",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            for (label, template) in SPECIAL_CASES {
                let value = template.replace("{}", &ctx.token());
                let shown = value.escape_debug().to_string();
                let mut c = ctx.account_named(value.clone(), None);
                c.set(p.text_property.clone(), value.clone());
                let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
                let result = ctx.send(&order).await?;
                if let Ok(done) = &result {
                    ctx.track_created(&p.account_type, done, false)?;
                }
                if value.chars().any(|ch| p.rejected_characters.contains(&ch)) {
                    expect_invalid(
                        result,
                        &order,
                        &format!("{label} (rejected by the profile)"),
                    )?;
                    ensure!(
                        ctx.find_named(&value).await?.is_none(),
                        "{label}: the refused order created \"{shown}\""
                    );
                    continue;
                }
                let done = match result {
                    Ok(done) => done,
                    Err(e) => fail!("{label}: creating \"{shown}\" failed: {e}"),
                };
                let mut a = ctx.track_created(&p.account_type, &done, false)?;
                let r = ctx.read(&a).await?;
                ensure!(
                    text(&r, &p.name_property).as_deref() == Some(value.as_str()),
                    "{label}: the name \"{shown}\" reads back as {:?}",
                    r.get(&p.name_property)
                );
                ensure!(
                    text(&r, &p.text_property).as_deref() == Some(value.as_str()),
                    "{label}: the value \"{shown}\" reads back as {:?}",
                    r.get(&p.text_property)
                );
                ensure!(
                    same_name(r.id.as_str(), a.id.as_str()),
                    "{label}: exported as {}, created as {}",
                    r.id,
                    a.id
                );
                // The key the connector returned finds the object again (no stable id given).
                let changed = format!("{value}2");
                let order = ctx.order(
                    ChangeType::Modified,
                    &p.account_type,
                    set_text(&p.text_property, &changed),
                    Some((&a.id, None)),
                );
                let done = ctx
                    .apply(&order)
                    .await
                    .map_err(|e| format!("{label}: updating by key: {e}"))?;
                ctx.follow(&mut a, &done)?;
                let r = ctx.read(&a).await?;
                ensure!(
                    text(&r, &p.text_property).as_deref() == Some(changed.as_str()),
                    "{label}: after an update by key the value reads back as {:?}",
                    r.get(&p.text_property)
                );
            }
            Ok(())
        },
    )
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

/// A connector's preview (when it has one) writes nothing, never shows a password, renders a
/// valid order, and names every order it refuses.
pub async fn preview_is_offline_and_shows_no_secret(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    if conn.preview(&[]).is_none() {
        return Ok(CheckOutcome::Skipped {
            reason: "the connector has no preview language (`Connector::preview` gives None)"
                .into(),
        });
    }
    run_writing(
        conn,
        profile,
        "preview_is_offline_and_shows_no_secret",
        &[],
        |ctx| async move {
            let p = ctx.profile;
            let name = ctx.name("preview");
            let mut c = ctx.account_named(name.clone(), None);
            let with_password = ctx.conn.info().capabilities.password;
            if with_password {
                c.set(PASSWORD, p.password.clone());
            }
            let valid = ctx.order(ChangeType::Added, &p.account_type, c, None);
            // Deleted without a target: every connector refuses it as given.
            let refused = ctx.order(
                ChangeType::Deleted,
                &p.account_type,
                Changes::default(),
                None,
            );
            let orders = [valid.clone(), refused.clone()];
            let preview = ctx
                .conn
                .preview(&orders)
                .ok_or("`preview` gave None for orders after Some for none")?;
            ensure!(!preview.format.is_empty(), "the preview names no format");
            let clear = p.password.expose();
            let shown = format!("{} {:?}", preview.text, preview.refused);
            ensure!(
                !with_password || !shown.contains(clear),
                "the preview shows the password"
            );
            ensure!(
                preview.text.contains(name.as_str()),
                "the preview does not show the valid order's target `{name}`:\n{}",
                preview.text
            );
            ensure!(
                preview
                    .refused
                    .iter()
                    .all(|e| e.order() != Some(&valid.order_id)),
                "the valid order is refused: {:?}",
                preview.refused
            );
            ensure!(
                preview
                    .refused
                    .iter()
                    .any(|e| e.order() == Some(&refused.order_id)),
                "a Deleted order without a target is not listed as refused (with its order id): \
                 {:?}",
                preview.refused
            );
            for r in ctx.export().await? {
                ensure!(
                    string_of(&r, &p.name_property).is_none_or(|n| n != name),
                    "the preview wrote `{}`",
                    r.id
                );
            }
            Ok(())
        },
    )
    .await
}
