//! Orders touch only what is provably theirs: the object with their stable id (never whatever
//! holds its DN by then), and only the attributes their mapping allows. Outcomes are checked with
//! OpenLDAP's `ldapsearch` (no code of the package): a snapshot of the test OU's entries with
//! every user attribute, `whenChanged` and `uSNChanged`, before and after.

use crate::support::*;
use autoprov_connector::{Connector, ErrorKind, Executed};
use autoprov_core::{ChangeType, Changes, ProvisioningOrder, Reference, StableId};

fn user_changes(cn: &str, ou: &str) -> Changes {
    let mut c = Changes::default();
    c.set("cn", cn)
        .set("sAMAccountName", format!("s{}", token()))
        .set("description", format!("{cn} as created"))
        .set("enabled", false)
        .set_reference("parentdn", Reference::dn(ou));
    c
}

async fn create_user(ad: &impl Connector, cn: &str, ou: &str) -> (String, StableId) {
    let done = apply(
        ad,
        &order(ChangeType::Added, "user", user_changes(cn, ou), None),
    )
    .await;
    (
        done.resource_id.to_string(),
        done.stable_id
            .expect("an Added order reports the objectGUID"),
    )
}

fn modified(key: &str, stable: &StableId, changes: Changes) -> ProvisioningOrder {
    order(
        ChangeType::Modified,
        "user",
        changes,
        Some((key, Some(stable))),
    )
}

fn deleted(key: &str, stable: &StableId) -> ProvisioningOrder {
    order(
        ChangeType::Deleted,
        "user",
        Changes::default(),
        Some((key, Some(stable))),
    )
}

fn describe(text: &str) -> Changes {
    let mut c = Changes::default();
    c.set("description", text);
    c
}

/// A sends its Deleted order late: A is gone and B took its DN. The order is done, writes
/// nothing, says so, and B is exactly as it was.
#[tokio::test]
async fn a_stale_deleted_order_never_deletes_the_new_holder_of_the_dn() {
    let Some(env) = ad_env("a_stale_deleted_order_never_deletes_the_new_holder_of_the_dn") else {
        return;
    };
    in_ou(&env.clone(), "stale-del", |admin, ou| async move {
        let ad = connector(&env).await;
        let (dn_a, guid_a) = create_user(&ad, "Alex Stale", &ou).await;
        admin.delete_tree(&dn_a).await;
        let (dn_b, guid_b) = create_user(&ad, "Alex Stale", &ou).await;
        assert_eq!(dn_a, dn_b, "B holds A's old DN");
        let before = ldapsearch_snapshot(&env, &ou);

        let done: Executed = apply(&ad, &deleted(&dn_a, &guid_a)).await;
        assert!(done.is_noop(), "{done:?}");
        let note = done
            .note
            .clone()
            .expect("the outcome says nothing was deleted");
        assert!(
            note.contains(guid_a.as_str()) && note.contains(guid_b.as_str()),
            "{note}"
        );
        assert_eq!(done.stable_id.as_ref(), Some(&guid_a));
        assert_eq!(ldapsearch_snapshot(&env, &ou), before, "B was touched");
    })
    .await;
}

/// A Modified order for A after B took its DN fails NotFound, naming both objectGUIDs; B is
/// untouched.
#[tokio::test]
async fn a_stale_modified_order_is_not_found_naming_both_ids() {
    let Some(env) = ad_env("a_stale_modified_order_is_not_found_naming_both_ids") else {
        return;
    };
    in_ou(&env.clone(), "stale-mod", |admin, ou| async move {
        let ad = connector(&env).await;
        let (dn_a, guid_a) = create_user(&ad, "Sam Stale", &ou).await;
        admin.delete_tree(&dn_a).await;
        let (_, guid_b) = create_user(&ad, "Sam Stale", &ou).await;
        let before = ldapsearch_snapshot(&env, &ou);

        let o = modified(&dn_a, &guid_a, describe("meant for A"));
        let e = refuse(&ad, &o).await;
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(!e.is_temporary(), "{e}");
        let text = e.to_string();
        assert!(text.contains(guid_a.as_str()), "{text}");
        assert!(text.contains(guid_b.as_str()), "{text}");
        assert!(text.contains(o.order_id.as_str()), "{text}");
        // The compare-and-swap path too: the order carries A's old values.
        let mut with_values = o.clone();
        with_values.resource = with_values.resource.map(|r| {
            r.with(
                "description",
                autoprov_core::ScalarValue::from("Sam Stale as created"),
            )
        });
        let e = refuse(&ad, &with_values).await;
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_eq!(ldapsearch_snapshot(&env, &ou), before, "B was touched");
    })
    .await;
}

/// A was renamed out of band and B took its old DN: orders with A's objectGUID and its old DN
/// act on A where it is now, never on B.
#[tokio::test]
async fn orders_with_a_stable_id_follow_the_object_not_the_dn() {
    let Some(env) = ad_env("orders_with_a_stable_id_follow_the_object_not_the_dn") else {
        return;
    };
    in_ou(&env.clone(), "follow", |admin, ou| async move {
        let ad = connector(&env).await;
        let (dn_a, guid_a) = create_user(&ad, "Kim Moved", &ou).await;
        let mut ldap = admin.ldap.clone();
        ldap.modifydn(&dn_a, "CN=Kim Moved Away", true, None)
            .await
            .unwrap()
            .success()
            .unwrap();
        let moved = format!("CN=Kim Moved Away,{ou}");
        let (dn_b, _) = create_user(&ad, "Kim Moved", &ou).await;
        assert_eq!(dn_a, dn_b);
        let b_before = ldapsearch_snapshot(&env, &dn_b);

        // Through the read path (no current values) and the compare-and-swap path.
        let done = apply(&ad, &modified(&dn_a, &guid_a, describe("A, read path"))).await;
        assert!(
            done.resource_id.as_str().eq_ignore_ascii_case(&moved),
            "{done:?}"
        );
        assert_eq!(admin.values(&moved, "description").await, ["A, read path"]);
        let mut cas = modified(&dn_a, &guid_a, describe("A, swapped"));
        cas.resource = cas.resource.map(|r| {
            r.with(
                "description",
                autoprov_core::ScalarValue::from("A, read path"),
            )
        });
        apply(&ad, &cas).await;
        assert_eq!(admin.values(&moved, "description").await, ["A, swapped"]);
        assert_eq!(ldapsearch_snapshot(&env, &dn_b), b_before, "B was touched");

        // A Deleted order with A's id and old DN deletes A, not B.
        let done = apply(&ad, &deleted(&dn_a, &guid_a)).await;
        assert!(done.changed.contains("deleted"), "{done:?}");
        assert!(admin.read(&moved, &[]).await.is_none(), "A is deleted");
        assert_eq!(ldapsearch_snapshot(&env, &dn_b), b_before, "B was touched");
    })
    .await;
}

/// A rename whose first attempt was applied (its answer lost) is sent again: the target is
/// looked up by objectGUID, found at its new DN, and the retry succeeds writing nothing, even
/// after another object took the old DN.
#[tokio::test]
async fn a_rename_retried_after_it_was_applied_succeeds() {
    let Some(env) = ad_env("a_rename_retried_after_it_was_applied_succeeds") else {
        return;
    };
    in_ou(&env.clone(), "rename-retry", |admin, ou| async move {
        let ad = connector(&env).await;
        let (dn, guid) = create_user(&ad, "Lee Before", &ou).await;
        let mut c = Changes::default();
        c.set("cn", "Lee After").set("description", "renamed");
        let rename = modified(&dn, &guid, c);
        let first = apply(&ad, &rename).await;
        let new_dn = format!("CN=Lee After,{ou}");
        assert!(first.resource_id.as_str().eq_ignore_ascii_case(&new_dn));
        let usn_after_first = usn(&admin, &new_dn).await;

        let again = apply(&ad, &rename).await;
        assert!(again.is_noop(), "the retry wrote {:?}", again.changed);
        assert!(again.resource_id.as_str().eq_ignore_ascii_case(&new_dn));
        assert_eq!(again.stable_id.as_ref(), Some(&guid));
        assert_eq!(usn(&admin, &new_dn).await, usn_after_first);

        // Another object takes the old DN; the retry still acts on the renamed one only.
        let (dn_b, _) = create_user(&ad, "Lee Before", &ou).await;
        assert_eq!(dn_b, dn);
        let before = ldapsearch_snapshot(&env, &ou);
        let third = apply(&ad, &rename).await;
        assert!(third.is_noop(), "{third:?}");
        assert_eq!(ldapsearch_snapshot(&env, &ou), before);

        // Without a stable id the old DN is all the order has: it names B now, and B is what
        // the order would change — so such orders are only as safe as their key. With a
        // malformed stable id the order is refused before anything is read or written.
        let mut bad = rename.clone();
        if let Some(r) = bad.resource.as_mut() {
            r.stable_id = Some(StableId::new("not-a-guid"));
        }
        let e = refuse(&ad, &bad).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(e.to_string().contains("not-a-guid"), "{e}");
        assert_eq!(ldapsearch_snapshot(&env, &ou), before);
    })
    .await;
}

/// Hostile orders: sensitive attributes, attribute options, names shaped like LDAP syntax, and
/// stale or forged stable ids, each next to a legitimate change. Every one is refused (or, for
/// a Deleted order, done with nothing written) and `ldapsearch` shows 0 changed attributes,
/// `whenChanged` and `uSNChanged` included, on every entry of the test OU.
#[tokio::test]
async fn hostile_orders_write_nothing_beyond_the_mapping() {
    let Some(env) = ad_env("hostile_orders_write_nothing_beyond_the_mapping") else {
        return;
    };
    in_ou(&env.clone(), "hostile", |admin, ou| async move {
        let ad = connector(&env).await;
        let (victim, guid) = create_user(&ad, "Vic Tim", &ou).await;
        let group = admin.create_group(&ou, &format!("g{}", token())).await;
        let group_guid = apply(
            &ad,
            &order(
                ChangeType::Modified,
                "group",
                Changes::default(),
                Some((group.as_str(), None)),
            ),
        )
        .await
        .stable_id
        .expect("the group's objectGUID");
        // A stale objectGUID: of an object deleted since.
        let (gone, stale) = create_user(&ad, "Gone Soon", &ou).await;
        admin.delete_tree(&gone).await;
        let before = ldapsearch_snapshot(&env, &ou);
        assert!(
            before.contains("Vic Tim") && before.contains("uSNChanged"),
            "{before}"
        );

        let nul_name = "nul\0name".to_owned();
        let hostile_properties: Vec<(String, autoprov_core::ScalarValue)> = vec![
            (
                "nTSecurityDescriptor".into(),
                "O:BAG:BAD:(A;;GA;;;WD)".into(),
            ),
            (
                "servicePrincipalName".into(),
                "HTTP/evil.example.test".into(),
            ),
            (
                "msDS-KeyCredentialLink".into(),
                format!("B:8:0000:{victim}").into(),
            ),
            (
                "msDS-AllowedToActOnBehalfOfOtherIdentity".into(),
                "O:BAD:(A;;CR;;;WD)".into(),
            ),
            ("primaryGroupID".into(), 512i64.into()),
            ("adminCount".into(), 1i64.into()),
            ("sIDHistory".into(), "S-1-5-21-1-2-3-500".into()),
            ("userAccountControl".into(), 66048i64.into()),
            ("USERACCOUNTCONTROL".into(), 66048i64.into()),
            ("member".into(), group.clone().into()),
            ("Member".into(), group.clone().into()),
            ("userCertificate;binary".into(), "x".into()),
            ("member;range=0-*".into(), group.clone().into()),
            ("member;range=0-1".into(), group.clone().into()),
            ("description;lang-en".into(), "option".into()),
            (format!("cn=x,{}", env.base_dn), "syntax".into()),
            ("objectClass".into(), "computer".into()),
            ("objectGUID".into(), "x".into()),
            ("unicodePwd".into(), "\"Evil-Passw0rd-1\"".into()),
            ("with space".into(), "x".into()),
            (nul_name.clone(), "x".into()),
            ("*".into(), "x".into()),
            ("(objectClass=*)".into(), "x".into()),
            ("homeDirectory".into(), "\\\\evil\\share".into()),
        ];
        let mut refused = 0;
        for (property, value) in &hostile_properties {
            // Next to a legitimate change: nothing of the order may be applied.
            let mut c = describe("half-applied");
            c.set(property.clone(), value.clone());
            for o in [modified(&victim, &guid, c.clone()), {
                let mut c = user_changes("Evil New", &ou);
                c.set(property.clone(), value.clone());
                order(ChangeType::Added, "user", c, None)
            }] {
                let e = refuse(&ad, &o).await;
                assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{property:?}: {e}");
                assert!(!e.is_temporary(), "{property:?}: {e}");
                let text = e.to_string();
                assert!(
                    text.contains(o.order_id.as_str()),
                    "names the order: {text}"
                );
                let shown = property.escape_debug().to_string();
                assert!(text.contains(&shown), "names the property {shown}: {text}");
                refused += 1;
            }
        }
        // `member` written through a group order as a plain attribute (a replace of every
        // member) is refused as well; memberships go through `memberOf` deltas.
        let mut c = Changes::default();
        c.set("member", victim.as_str());
        let o = order(
            ChangeType::Modified,
            "group",
            c,
            Some((group.as_str(), Some(&group_guid))),
        );
        let e = refuse(&ad, &o).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(e.to_string().contains("`member`"), "{e}");

        // `member` as a navigation of a user order, and a navigation a mapping does not have.
        for nav in ["member", "Member;range=0-*", "directReports"] {
            let mut c = describe("half-applied");
            c.add_reference(nav, Reference::dn(group.as_str()));
            let e = refuse(&ad, &modified(&victim, &guid, c)).await;
            assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{nav}: {e}");
            assert!(e.to_string().contains(nav), "{nav}: {e}");
        }

        // Stale and forged stable ids with the victim's DN.
        let forged = StableId::new("01234567-89ab-cdef-0123-456789abcdef");
        for id in [&stale, &forged] {
            let e = refuse(&ad, &modified(&victim, id, describe("stale"))).await;
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert!(
                e.to_string().contains(guid.as_str()),
                "names the holder: {e}"
            );
            let done = apply(&ad, &deleted(&victim, id)).await;
            assert!(done.is_noop() && done.note.is_some(), "{done:?}");
        }
        let mut c = describe("bad id");
        c.set("sn", "x");
        let e = refuse(&ad, &modified(&victim, &StableId::new("*)(cn=*"), c)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        let e = refuse(
            &ad,
            &order(
                ChangeType::Deleted,
                "user",
                Changes::default(),
                Some((victim.as_str(), Some(&StableId::new("<GUID=x>")))),
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");

        let after = ldapsearch_snapshot(&env, &ou);
        assert_eq!(
            after, before,
            "{refused} refused orders changed the directory"
        );
        assert!(!after.contains("Evil New"));
        // The legitimate path still works: the mapping's own properties are written.
        apply(&ad, &modified(&victim, &guid, describe("allowed"))).await;
        assert_eq!(admin.values(&victim, "description").await, ["allowed"]);
    })
    .await;
}
