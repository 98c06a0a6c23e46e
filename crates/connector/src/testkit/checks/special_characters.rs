//! Names and values with unicode and every LDAP-special character.

use super::*;

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
