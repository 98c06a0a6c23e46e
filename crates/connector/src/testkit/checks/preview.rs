//! Previews in the managed system's own language.

use super::*;

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
            let clear = p
                .password
                .expose()
                .map_err(|e| format!("the kit profile's password: {e}"))?;
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
