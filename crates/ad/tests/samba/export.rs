//! Complete and incremental export.

use crate::support::*;
use autoprov_connector::{
    Connector, ConnectorExt, ErrorKind, ExportCookie, ExportItem, ExportRequest,
};
use autoprov_core::{ChangeType, Changes, PropertyValue, Reference, ScalarValue, Secret};
use futures::StreamExt as _;

fn user(ou: &str, name: &str, enabled: bool, groups: &[&str]) -> Changes {
    let mut c = Changes::default();
    c.set("cn", name)
        .set("sAMAccountName", format!("x{}", token()))
        .set("description", format!("about {name}"))
        .set("password", Secret::new("Export-Passw0rd-1!"))
        .set("enabled", enabled)
        .set_reference("parentdn", Reference::dn(ou));
    for g in groups {
        c.add_reference("memberOf", Reference::dn(*g));
    }
    c
}

#[tokio::test]
async fn complete_export_gives_ids_parents_memberships_and_never_a_password() {
    let Some(env) = ad_env("complete_export_gives_ids_parents_memberships_and_never_a_password")
    else {
        return;
    };
    in_ou(&env.clone(), "export", |admin, ou| async move {
        let ad = connector(&env).await;
        let g = admin.create_group(&ou, &format!("g-{}", token())).await;
        let sub = format!("OU=Sub,{ou}");
        admin
            .add(&sub, vec![("objectClass", vec!["organizationalUnit"])])
            .await;
        let a = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                user(&ou, "Ann", true, &[&g]),
                None,
            ),
        )
        .await;
        let b = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                user(&sub, "Bob", false, &[]),
                None,
            ),
        )
        .await;

        let batch = ad
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .unwrap();
        assert!(batch.cookie.is_some());
        let find = |id: &str| {
            batch
                .resources
                .iter()
                .find(|r| r.id.as_str() == id)
                .unwrap_or_else(|| {
                    panic!(
                        "{id} not exported: {:?}",
                        batch.resources.iter().map(|r| &r.id).collect::<Vec<_>>()
                    )
                })
        };
        let ann = find(a.resource_id.as_str());
        assert_eq!(ann.entity_type.as_ref().map(|e| e.as_str()), Some("user"));
        assert_eq!(ann.stable_id, a.stable_id, "objectGUID is the stable id");
        assert_eq!(
            ann.get("parentdn")
                .and_then(|v| v.as_reference())
                .and_then(|r| r.dn_value()),
            Some(ou.as_str())
        );
        assert_eq!(
            ann.get("enabled"),
            Some(&PropertyValue::Scalar(ScalarValue::Bool(true)))
        );
        let groups = ann.get("memberOf").and_then(|v| v.as_references()).unwrap();
        assert_eq!(
            groups
                .iter()
                .filter_map(|r| r.dn_value())
                .collect::<Vec<_>>(),
            vec![g.as_str()]
        );
        assert_eq!(
            ann.get("description"),
            Some(&PropertyValue::Scalar("about Ann".into()))
        );
        for secret in ["password", "unicodePwd", "userPassword"] {
            assert!(ann.get(secret).is_none(), "{secret} exported");
        }
        let bob = find(b.resource_id.as_str());
        assert_eq!(
            bob.get("enabled"),
            Some(&PropertyValue::Scalar(ScalarValue::Bool(false)))
        );
        assert_eq!(
            bob.get("parentdn")
                .and_then(|v| v.as_reference())
                .and_then(|r| r.dn_value()),
            Some(sub.as_str())
        );
        let group = find(&g);
        assert_eq!(
            group.entity_type.as_ref().map(|e| e.as_str()),
            Some("group")
        );
        assert_eq!(
            group
                .get("member")
                .and_then(|v| v.as_references())
                .map(|s| s.len()),
            Some(1)
        );
        let sub_ou = find(&sub);
        assert_eq!(
            sub_ou.entity_type.as_ref().map(|e| e.as_str()),
            Some("organizationalUnit")
        );
        assert_eq!(
            find(&ou).entity_type.as_ref().map(|e| e.as_str()),
            Some("organizationalUnit")
        );
        assert_eq!(
            batch.resources.len(),
            5,
            "the OU, Sub, the group and two users"
        );

        // Paged: a page size of 1 gives the same result.
        let small = autoprov_ad::AdConnector::builder()
            .server(&env.url, &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .page_size(1)
            .build()
            .await
            .unwrap();
        let paged = small
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .unwrap();
        assert_eq!(paged.resources.len(), 5);

        // Only some types.
        let users = ad
            .export_all(
                ExportRequest::complete()
                    .of_types(["user".into()])
                    .within(ou.as_str()),
            )
            .await
            .unwrap();
        assert_eq!(users.resources.len(), 2);

        // The stream ends with its cookie; dropping it early is fine.
        let mut stream = ad
            .export(ExportRequest::complete().within(ou.as_str()))
            .await
            .unwrap();
        assert!(matches!(
            stream.next().await,
            Some(Ok(ExportItem::Resource(_)))
        ));
        drop(stream);
    })
    .await;
}

#[tokio::test]
async fn incremental_export_returns_changes_and_deletions_since_the_cookie() {
    let Some(env) = ad_env("incremental_export_returns_changes_and_deletions_since_the_cookie")
    else {
        return;
    };
    in_ou(&env.clone(), "incr", |admin, ou| async move {
        let ad = connector(&env).await;
        let a = apply(
            &ad,
            &order(ChangeType::Added, "user", user(&ou, "Ann", true, &[]), None),
        )
        .await;
        let b = apply(
            &ad,
            &order(ChangeType::Added, "user", user(&ou, "Bob", true, &[]), None),
        )
        .await;
        let scope = ExportRequest::complete()
            .of_types(["user".into()])
            .within(ou.as_str());
        let first = ad.export_all(scope.clone()).await.unwrap();
        assert_eq!(first.resources.len(), 2);
        let cookie = first.cookie.unwrap();

        // Nothing changed: nothing exported, a usable cookie.
        let mut incremental = scope.clone();
        incremental.mode = autoprov_connector::ExportMode::Incremental(cookie.clone());
        let none = ad.export_all(incremental.clone()).await.unwrap();
        assert!(none.resources.is_empty(), "{:?}", none.resources);
        assert!(none.deleted.is_empty());

        // One change, one deletion, one creation.
        let mut c = Changes::default();
        c.set("description", "changed");
        apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((a.resource_id.as_str(), a.stable_id.as_ref())),
            ),
        )
        .await;
        apply(
            &ad,
            &order(
                ChangeType::Deleted,
                "user",
                Changes::default(),
                Some((b.resource_id.as_str(), b.stable_id.as_ref())),
            ),
        )
        .await;
        let c_new = apply(
            &ad,
            &order(ChangeType::Added, "user", user(&ou, "Cid", true, &[]), None),
        )
        .await;
        let delta = ad.export_all(incremental).await.unwrap();
        let mut ids: Vec<&str> = delta.resources.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        let mut expected = vec![a.resource_id.as_str(), c_new.resource_id.as_str()];
        expected.sort();
        assert_eq!(ids, expected);
        assert_eq!(delta.deleted.len(), 1, "{:?}", delta.deleted);
        assert_eq!(
            delta.deleted[0].0, b.resource_id,
            "the deleted entry's original DN"
        );
        assert_eq!(delta.deleted[0].1, b.stable_id);

        // From the new cookie: nothing again.
        let mut next = scope.clone();
        next.mode = autoprov_connector::ExportMode::Incremental(delta.cookie.unwrap());
        let quiet = ad.export_all(next).await.unwrap();
        assert!(quiet.resources.is_empty() && quiet.deleted.is_empty());
        let _ = admin;

        // A cookie this package did not issue is a Conflict: run a complete export.
        for foreign in ["memory:17", "adusn1:not-base64!", ""] {
            let mut bad = scope.clone();
            bad.mode = autoprov_connector::ExportMode::Incremental(ExportCookie(foreign.into()));
            let e = match ad.export(bad).await {
                Ok(_) => panic!("foreign cookie {foreign:?} accepted"),
                Err(e) => e,
            };
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        }
    })
    .await;
}

/// Renaming an OU by hand changes the DN of everything below it and the `member` of groups
/// elsewhere, without moving their `uSNChanged`: the incremental export sends them again
/// with their new names. Checked against `ldapsearch`.
#[tokio::test]
async fn an_ou_renamed_by_hand_sends_its_entries_and_their_groups_again() {
    let Some(env) = ad_env("an_ou_renamed_by_hand_sends_its_entries_and_their_groups_again") else {
        return;
    };
    in_ou(&env.clone(), "ourename", |admin, ou| async move {
        let ad = connector(&env).await;
        let g = admin.create_group(&ou, &format!("g-{}", token())).await;
        let team = format!("OU=Team,{ou}");
        admin
            .add(&team, vec![("objectClass", vec!["organizationalUnit"])])
            .await;
        let ann = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                user(&team, "Ann", true, &[&g]),
                None,
            ),
        )
        .await;
        let first = ad
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .unwrap();
        let mut incremental = ExportRequest::incremental(first.cookie.unwrap());
        incremental.scope = Some(ou.clone());

        let out = env.ldap_tool("ldapmodrdn", &["-r", &team, "OU=Squad"]);
        assert!(out.status.success(), "ldapmodrdn: {out:?}");
        let moved = format!("CN=Ann,OU=Squad,{ou}");
        let seen = env.ldap_tool(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-b",
                &g,
                "-s",
                "base",
                "member",
            ],
        );
        let seen = String::from_utf8_lossy(&seen.stdout).to_string();
        assert!(seen.contains(&moved), "ldapsearch shows {seen}");

        let delta = ad.export_all(incremental).await.unwrap();
        let sent = |stable: &autoprov_core::StableId| {
            delta
                .resources
                .iter()
                .find(|r| r.stable_id.as_ref() == Some(stable))
        };
        let a = sent(ann.stable_id.as_ref().unwrap())
            .unwrap_or_else(|| panic!("Ann is not sent again: {:?}", delta.resources));
        assert!(a.id.as_str().eq_ignore_ascii_case(&moved), "{}", a.id);
        let group = delta
            .resources
            .iter()
            .find(|r| r.id.as_str().eq_ignore_ascii_case(&g))
            .unwrap_or_else(|| panic!("the group is not sent again: {:?}", delta.resources));
        let Some(PropertyValue::References(members)) = group.get("member") else {
            panic!("the group's member: {:?}", group.get("member"));
        };
        let members: Vec<&str> = members.iter().filter_map(|m| m.get("dn")).collect();
        assert_eq!(members.len(), 1, "{members:?}");
        assert!(members[0].eq_ignore_ascii_case(&moved), "{members:?}");
    })
    .await;
}

/// Renaming a manager by hand changes the `manager` its reports read (a link, like
/// `member`), without moving their `uSNChanged`: the incremental export sends the reports
/// again with the new DN, and does not send entries that do not reference it. Checked
/// against `ldapsearch`.
#[tokio::test]
async fn a_manager_renamed_by_hand_sends_the_entries_that_reference_it_again() {
    let Some(env) = ad_env("a_manager_renamed_by_hand_sends_the_entries_that_reference_it_again")
    else {
        return;
    };
    in_ou(&env.clone(), "mgrrename", |admin, ou| async move {
        let ad = connector(&env).await;
        let boss = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                user(&ou, "Boss", true, &[]),
                None,
            ),
        )
        .await;
        let mut c = user(&ou, "Ann", true, &[]);
        c.set_reference("manager", Reference::dn(boss.resource_id.as_str()));
        let ann = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let other = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                user(&ou, "Other", true, &[]),
                None,
            ),
        )
        .await;
        let first = ad
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .unwrap();
        let mut incremental = ExportRequest::incremental(first.cookie.unwrap());
        incremental.scope = Some(ou.clone());

        let out = env.ldap_tool("ldapmodrdn", &["-r", boss.resource_id.as_str(), "CN=Chief"]);
        assert!(out.status.success(), "ldapmodrdn: {out:?}");
        let chief = format!("CN=Chief,{ou}");
        let seen = env.ldap_tool(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-b",
                ann.resource_id.as_str(),
                "-s",
                "base",
                "manager",
            ],
        );
        let seen = String::from_utf8_lossy(&seen.stdout).to_string();
        assert!(seen.contains(&chief), "ldapsearch shows {seen}");

        let delta = ad.export_all(incremental).await.unwrap();
        let sent = |stable: &autoprov_core::StableId| {
            delta
                .resources
                .iter()
                .find(|r| r.stable_id.as_ref() == Some(stable))
        };
        let a = sent(ann.stable_id.as_ref().unwrap())
            .unwrap_or_else(|| panic!("Ann is not sent again: {:?}", delta.resources));
        let manager = match a.get("manager") {
            Some(PropertyValue::Reference(r)) => r.get("dn").unwrap_or_default().to_owned(),
            v => panic!("Ann's manager: {v:?}"),
        };
        assert!(manager.eq_ignore_ascii_case(&chief), "{manager}");
        assert!(
            sent(boss.stable_id.as_ref().unwrap()).is_some(),
            "the renamed entry itself is sent"
        );
        assert!(
            sent(other.stable_id.as_ref().unwrap()).is_none(),
            "an entry that does not reference it is not: {:?}",
            delta.resources
        );
        let _ = admin;
    })
    .await;
}
