//! The checks, one per behaviour of the [`Connector`] contract.

mod added;
mod connection;
mod deleted;
mod export;
mod invalid_orders;
mod memberships;
mod modified;
mod preview;
mod robustness;
mod special_characters;
mod stable_id;

pub use added::{adoption_review_is_honoured, create_read_update_delete, idempotent_create};
pub use connection::{
    check_writes_nothing, connection_check, debug_shows_no_held_data, manual_transmits,
    parallel_orders,
};
pub use deleted::idempotent_delete;
pub use export::{export_sees_fulfilment, incremental_export, latest_cookie_starts_after_writes};
pub use invalid_orders::{
    invalid_order_bad_reference, invalid_order_missing_required, invalid_order_unknown_property,
    redacted_secret_is_refused,
};
pub use memberships::{
    changed_names_memberships, incremental_export_after_rename, membership_add_twice_remove_absent,
};
pub use modified::{
    disable_enable, move_keeps_stable_id, password_is_stored, password_write_only,
    reapply_changes_nothing, rename_keeps_stable_id,
};
pub use preview::preview_is_offline_and_shows_no_secret;
pub use robustness::{
    modified_keeps_unmentioned, modified_missing_target_fails, paging_one_per_page,
    rename_onto_taken_name,
};
pub use special_characters::special_characters_round_trip;
pub use stable_id::stale_key_never_touches_another_object;

use super::context::{Created, Ctx, Fail, ensure, fail, names, names_of, string_of};
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
    adoption_review_is_honoured => "an Added order asking for review before adoption never adopts an account it did not create: NeedsReview, nothing written; approved, it adopts; its own creation sent again is adopted",
    idempotent_delete => "deleting a missing target succeeds",
    reapply_changes_nothing => "re-applying an applied order succeeds and changes nothing",
    membership_add_twice_remove_absent => "memberships are value-level deltas; adding a present member and removing an absent one succeed",
    rename_keeps_stable_id => "a changed name renames the target and keeps its stable id",
    move_keeps_stable_id => "a changed parent moves the target and keeps its stable id",
    stale_key_never_touches_another_object => "an order carrying a stable id acts only on that object: with a stale key naming another object, a Modified order is NotFound naming both ids, a Deleted order writes nothing and says so",
    disable_enable => "accounts are disabled and enabled",
    password_write_only => "a password is accepted and never exported nor shown in errors",
    export_sees_fulfilment => "a complete export holds what fulfilment wrote and ends with a cookie",
    incremental_export => "an incremental export returns only changes and deletions since the cookie",
    latest_cookie_starts_after_writes => "an incremental export from the latest cookie (when the connection can tell it) holds nothing written before it was taken and everything written after",
    invalid_order_missing_required => "a missing required attribute is a permanent InvalidOrder that writes nothing",
    invalid_order_unknown_property => "an unknown property is a permanent InvalidOrder that writes nothing",
    invalid_order_bad_reference => "a reference to a missing object is a permanent InvalidOrder that writes nothing",
    redacted_secret_is_refused => "a masked secret read back from a file is a permanent InvalidOrder that writes nothing, never the password `********`",
    special_characters_round_trip => "names and values with unicode and every LDAP-special character round-trip exactly",
    manual_transmits => "a manual connection hands orders to a human with a ticket",
    preview_is_offline_and_shows_no_secret => "a preview (when the connector has one) writes nothing, shows no password, and lists refused orders by name",
    rename_onto_taken_name => "renaming onto a name another object holds fails (AlreadyExists or Conflict) and changes neither",
    modified_keeps_unmentioned => "a Modified order writes only what it names; the other properties keep their values",
    modified_missing_target_fails => "a Modified order of a missing target fails with NotFound, never reported done, and creates nothing",
    check_writes_nothing => "check writes nothing to the managed system",
    changed_names_memberships => "Executed::changed names the memberships an order added or removed",
    password_is_stored => "a password written verifies afterwards (connections that can check passwords), another does not",
    parallel_orders => "orders sent at the same time are each applied once, to their own target, and no membership is lost",
    incremental_export_after_rename => "after a group and a member are renamed, an incremental export merged over the complete one names each by its new name on the other side: no stale membership",
    debug_shows_no_held_data => "the connection's Debug names something and shows no name, value or password it holds or wrote",
    paging_one_per_page => "an export with one resource per page holds exactly what the connection's export holds: nothing lost or repeated at a page boundary",
}
