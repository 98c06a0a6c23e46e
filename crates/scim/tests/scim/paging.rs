//! Paging: an export with one resource per page holds exactly what an export with the default
//! page size holds (no resource lost or repeated at a page boundary), complete and incremental.

use autoprov_connector::{ConnectorExt as _, ExportMode, ExportRequest};
use autoprov_core::{ChangeType, Changes, Reference};
use autoprov_scim::ScimConnector;
use autoprov_scim::test_fixtures::*;
use std::collections::BTreeSet;

fn ids(resources: &[autoprov_core::Resource]) -> Vec<String> {
    resources.iter().map(|r| r.id.to_string()).collect()
}

#[tokio::test]
async fn one_resource_per_page_loses_and_repeats_nothing() {
    let Some(env) = scim_env("one_resource_per_page_loses_and_repeats_nothing") else {
        return;
    };
    // Index paging shifts under concurrent deletions: this test has the service alone.
    let _server = exclusive_use().await;
    let scim = connector(&env).await;
    let mut settings = env.settings();
    settings.page_size = 1;
    let one = ScimConnector::connect("scim-page-1", settings)
        .await
        .unwrap();

    let mut g = Changes::default();
    g.set("displayName", unique("paged-group"));
    let group = apply(&scim, &order(ChangeType::Added, "Group", g, None)).await;
    let gid = group.resource_id.to_string();
    let mut mine = Vec::new();
    for i in 0..5 {
        let mut u = Changes::default();
        u.set("userName", unique(&format!("paged-{i}")));
        if i % 2 == 0 {
            u.add_reference("memberOf", Reference::dn(gid.clone()));
        }
        mine.push(
            apply(&scim, &order(ChangeType::Added, "User", u, None))
                .await
                .resource_id
                .to_string(),
        );
    }

    let big = scim.export_all(ExportRequest::complete()).await.unwrap();
    let small = one.export_all(ExportRequest::complete()).await.unwrap();
    let (a, b) = (ids(&big.resources), ids(&small.resources));
    let unique_b: BTreeSet<&String> = b.iter().collect();
    assert_eq!(
        unique_b.len(),
        b.len(),
        "a page boundary repeated a resource: {b:?}"
    );
    assert_eq!(
        a.iter().collect::<BTreeSet<_>>(),
        unique_b,
        "page size 1 and the default page size export different resources"
    );
    for id in mine.iter().chain([&gid]) {
        assert!(b.contains(id), "page size 1 lost {id}");
    }
    // The same resources, the same values (memberOf included).
    let mut sa = big.resources.clone();
    let mut sb = small.resources.clone();
    sa.sort_by(|x, y| x.id.cmp(&y.id));
    sb.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(sa, sb);

    // Incremental with one per page: exactly the two changed since the cookie.
    let cookie = small.cookie.clone().unwrap();
    for id in &mine[1..3] {
        let mut m = Changes::default();
        m.set("title", "changed");
        apply(&scim, &order(ChangeType::Modified, "User", m, Some(id))).await;
    }
    let inc = one
        .export_all(ExportRequest::incremental(cookie).of_types(["User".into()]))
        .await
        .unwrap();
    let changed: BTreeSet<String> = ids(&inc.resources).into_iter().collect();
    assert_eq!(changed, mine[1..3].iter().cloned().collect::<BTreeSet<_>>());
    // The increment swept only users: the groups known at the complete export stay known,
    // so an increment of groups from its cookie still works (and sees no change).
    let groups = one
        .export_all(
            ExportRequest::incremental(inc.cookie.clone().unwrap()).of_types(["Group".into()]),
        )
        .await
        .expect("an increment of groups from a users-only increment's cookie");
    assert!(
        groups.resources.is_empty() && groups.deleted.is_empty(),
        "{groups:?}"
    );

    for id in &mine {
        apply(
            &scim,
            &order(ChangeType::Deleted, "User", Changes::default(), Some(id)),
        )
        .await;
    }
    apply(
        &scim,
        &order(ChangeType::Deleted, "Group", Changes::default(), Some(&gid)),
    )
    .await;
}

/// With `FullSweepEvery: 2`, the first increment does not sweep (it reports no deletion), the
/// second does and reports the deletion; a cookie of another connection is a `Conflict`.
#[tokio::test]
async fn deletions_are_reported_by_the_periodic_sweep() {
    let Some(env) = scim_env("deletions_are_reported_by_the_periodic_sweep") else {
        return;
    };
    let _server = shared_use().await;
    let mut settings = env.settings();
    settings.full_sweep_every = 2;
    let scim = ScimConnector::connect("scim-sweep-2", settings)
        .await
        .unwrap();
    let mut u = Changes::default();
    u.set("userName", unique("swept"));
    let id = apply(&scim, &order(ChangeType::Added, "User", u, None))
        .await
        .resource_id
        .to_string();
    let users = || ExportRequest::complete().of_types(["User".into()]);
    let base = scim.export_all(users()).await.unwrap();
    apply(
        &scim,
        &order(ChangeType::Deleted, "User", Changes::default(), Some(&id)),
    )
    .await;
    let first = scim
        .export_all(users().with_mode(ExportMode::Incremental(base.cookie.unwrap())))
        .await
        .unwrap();
    assert!(
        !first.deleted.iter().any(|(d, _)| d.as_str() == id),
        "the first increment swept although FullSweepEvery is 2"
    );
    let second = scim
        .export_all(users().with_mode(ExportMode::Incremental(first.cookie.clone().unwrap())))
        .await
        .unwrap();
    assert!(
        second
            .deleted
            .iter()
            .any(|(d, s)| d.as_str() == id && s.as_ref().is_some_and(|s| s.as_str() == id)),
        "the sweeping increment does not report the deletion: {:?}",
        second.deleted
    );
    let other = connector(&env).await;
    let e = other
        .export_all(users().with_mode(ExportMode::Incremental(second.cookie.unwrap())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), autoprov_connector::ErrorKind::Conflict, "{e}");
}
