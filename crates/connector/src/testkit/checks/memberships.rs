//! Multi-valued navigations: value-level membership deltas.

use super::*;

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

/// `Executed::changed` names the memberships an order wrote: an Added order with a group, a
/// Modified order adding one and a Modified order removing one each list `memberOf` (the
/// orchestrator verifies and reports what `changed` names).
pub async fn changed_names_memberships(conn: &dyn Connector, profile: &KitProfile) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        if !c.membership || !c.update {
            return skip("the connection does not declare `membership` and `update`");
        }
        p.group_type
            .is_none()
            .then(|| "the profile has no group type".into())
    }
    run_writing(conn, profile, "changed_names_memberships", &[need], |ctx| async move {
        let p = ctx.profile;
        let g = ctx.create_group("changed-a").await?;
        let h = ctx.create_group("changed-b").await?;
        let mut c = ctx.account("changed");
        c.add_reference(MEMBER_OF, g.reference());
        let order = ctx.order(ChangeType::Added, &p.account_type, c, None);
        let done = ctx.apply(&order).await?;
        let a = ctx.track_created(&p.account_type, &done, false)?;
        ensure!(
            done.changed.contains(MEMBER_OF),
            "an Added order with a membership reported changed = {:?}, without `{MEMBER_OF}`",
            done.changed
        );
        let mut add = Changes::default();
        add.add_reference(MEMBER_OF, h.reference());
        let done = ctx.apply(&ctx.modify_order(&a, add)).await?;
        ensure!(
            done.changed.contains(MEMBER_OF),
            "a Modified order adding a membership reported changed = {:?}, without `{MEMBER_OF}`",
            done.changed
        );
        let mut remove = Changes::default();
        remove.remove_reference(MEMBER_OF, g.reference());
        let done = ctx.apply(&ctx.modify_order(&a, remove)).await?;
        ensure!(
            done.changed.contains(MEMBER_OF),
            "a Modified order removing a membership reported changed = {:?}, without \
             `{MEMBER_OF}`",
            done.changed
        );
        Ok(())
    })
    .await
}

/// After a group and a member are renamed, an incremental export leaves no membership naming
/// an old name: merged over the complete export it was taken after (items replace what they
/// name, by stable id), the member untouched by the orders names the renamed group, and the
/// group untouched by the orders names the renamed member. A directory keeps memberships as
/// links, so renaming one side changes what the other side reads without changing its own
/// change number: the export must send the other side again (or name it by stable id). A
/// connection whose groups do not show their members is checked on the member's side only.
pub async fn incremental_export_after_rename(
    conn: &dyn Connector,
    profile: &KitProfile,
) -> CheckResult {
    fn need(c: &Capabilities, p: &KitProfile) -> Option<String> {
        if !c.membership || !c.update || !c.rename || !c.incremental_export {
            return skip(
                "the connection does not declare `membership`, `update`, `rename` and \
                 `incremental_export`",
            );
        }
        p.group_type
            .is_none()
            .then(|| "the profile has no group type".into())
    }
    run_writing(
        conn,
        profile,
        "incremental_export_after_rename",
        &[need],
        |ctx| async move {
            let p = ctx.profile;
            let mut renamed_group = ctx.create_group("renamed-group").await?;
            let kept_group = ctx.create_group("kept-group").await?;
            let mut c = ctx.account("kept-member");
            c.add_reference(MEMBER_OF, renamed_group.reference());
            let kept_member = ctx.create_account(c).await?;
            let mut c = ctx.account("renamed-member");
            c.add_reference(MEMBER_OF, kept_group.reference());
            let mut renamed_member = ctx.create_account(c).await?;

            let base = ctx
                .conn
                .export_all(ctx.export_request())
                .await
                .map_err(|e| format!("complete export: {e}"))?;
            let Some(cookie) = base.cookie else {
                fail!("the complete export returned no cookie");
            };
            let mut view: std::collections::BTreeMap<String, Resource> = base
                .resources
                .into_iter()
                .filter_map(|r| Some((r.stable_id.clone()?.as_str().to_owned(), r)))
                .collect();

            let old_group = renamed_group.id.clone();
            let group_name = p.group_name_property.as_ref().unwrap_or(&p.name_property);
            let new_name = ctx.name("group-renamed");
            ctx.modify(&mut renamed_group, set_text(group_name, &new_name))
                .await?;
            let old_member = renamed_member.id.clone();
            let new_name = ctx.name("member-renamed");
            ctx.modify(&mut renamed_member, set_text(&p.name_property, &new_name))
                .await?;

            let mut request = ExportRequest::incremental(cookie);
            request.scope = ctx.export_request().scope;
            let inc = ctx
                .conn
                .export_all(request)
                .await
                .map_err(|e| format!("incremental export: {e}"))?;
            for r in inc.resources {
                if let Some(s) = r.stable_id.clone() {
                    view.insert(s.as_str().to_owned(), r);
                }
            }
            for (_, stable) in inc.deleted {
                if let Some(s) = stable {
                    view.remove(s.as_str());
                }
            }
            let get = |c: &Created| {
                view.get(c.stable_id.as_str()).ok_or_else(|| {
                    format!(
                        "{} (stable id {}) is missing from the complete export merged with the \
                     incremental one",
                        c.id, c.stable_id
                    )
                })
            };
            for (holder, property, renamed, old) in [
                (&kept_member, MEMBER_OF, &renamed_group, &old_group),
                (&kept_group, MEMBERS, &renamed_member, &old_member),
            ] {
                let r = get(holder)?;
                if property == MEMBERS && r.get(MEMBERS).is_none() {
                    // The connection shows memberships on the member's side only.
                    continue;
                }
                ensure!(
                    names(r, property, renamed),
                    "after {old} was renamed to {}, the incremental export left {}'s `{property}` \
                 without it: {:?}",
                    renamed.id,
                    holder.id,
                    r.get(property)
                );
                ensure!(
                    same_name(old.as_str(), renamed.id.as_str())
                        || !names_of(r, property)
                            .iter()
                            .any(|n| same_name(n, old.as_str())),
                    "after {old} was renamed to {}, the incremental export left {}'s `{property}` \
                 naming the old name: {:?}",
                    renamed.id,
                    holder.id,
                    r.get(property)
                );
            }
            Ok(())
        },
    )
    .await
}
