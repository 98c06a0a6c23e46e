//! A group of 1,000 members: built by value-level adds, read back whole by export and by
//! curl, and one member removed without touching the 999 others.

use autoprov_connector::ConnectorExt as _;
use autoprov_connector::ExportRequest;
use autoprov_core::{ChangeType, Changes, PropertyValue, Reference};
use autoprov_scim::test_fixtures::*;
use futures::StreamExt as _;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_member_group() {
    let Some(env) = scim_env("thousand_member_group") else {
        return;
    };
    let _server = exclusive_use().await;
    let scim = connector(&env).await;
    let mut g = Changes::default();
    g.set("displayName", unique("big-group"));
    let group = apply(&scim, &order(ChangeType::Added, "Group", g, None)).await;
    let gid = group.resource_id.as_str().to_owned();
    let created: Vec<String> = futures::stream::iter(0..1000)
        .map(|i| {
            let scim = &scim;
            let gid = gid.clone();
            async move {
                let mut u = Changes::default();
                u.set("userName", unique(&format!("big-member-{i}")))
                    .add_reference("memberOf", Reference::dn(gid));
                apply(scim, &order(ChangeType::Added, "User", u, None))
                    .await
                    .resource_id
                    .as_str()
                    .to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let members: BTreeSet<String> = env
        .members_of(&gid)
        .expect("the group exists")
        .into_iter()
        .collect();
    let wanted: BTreeSet<String> = created.iter().cloned().collect();
    assert_eq!(members.len(), 1000, "curl sees {} members", members.len());
    assert_eq!(
        members, wanted,
        "curl sees other members than those created"
    );

    // The export holds the whole group and every member's memberOf.
    let batch = scim
        .export_all(ExportRequest::complete())
        .await
        .expect("complete export");
    let exported = batch
        .resources
        .iter()
        .find(|r| r.id.as_str() == gid)
        .expect("the group is exported");
    match exported.get("member") {
        Some(PropertyValue::References(set)) => assert_eq!(set.len(), 1000),
        other => panic!("the group's member is {other:?}"),
    }
    let with_group = batch
        .resources
        .iter()
        .filter(|r| match r.get("memberOf") {
            Some(PropertyValue::References(set)) => {
                set.iter().any(|x| x.get("dn") == Some(gid.as_str()))
            }
            _ => false,
        })
        .count();
    assert_eq!(with_group, 1000, "users whose memberOf names the group");

    // One value-level remove leaves the 999 others.
    let leaver = created[500].clone();
    let mut m = Changes::default();
    m.remove_reference("memberOf", Reference::dn(gid.clone()));
    let done = apply(
        &scim,
        &order(ChangeType::Modified, "User", m, Some(&leaver)),
    )
    .await;
    assert!(done.changed.contains("memberOf"));
    let members = env.members_of(&gid).unwrap();
    assert_eq!(members.len(), 999);
    assert!(!members.contains(&leaver));

    // The group first: each user's delete then finds no group to leave.
    apply(
        &scim,
        &order(ChangeType::Deleted, "Group", Changes::default(), Some(&gid)),
    )
    .await;
    assert!(env.get(&format!("/Groups/{gid}")).is_none());
    for id in &created {
        apply(
            &scim,
            &order(ChangeType::Deleted, "User", Changes::default(), Some(id)),
        )
        .await;
    }
}
