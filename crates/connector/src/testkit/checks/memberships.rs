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
