//! The custom package of `examples/custom_connector.rs` passes the kit (the same file the
//! example runs, compiled here as a module).

#[allow(dead_code)]
#[path = "../../../../examples/custom_connector.rs"]
mod example;

use autoprov_connector::testkit::{self, KitProfile};
use autoprov_connector::{Connector, ErrorKind, PackageRegistry};
use std::sync::Arc;

autoprov_connector::connector_conformance_tests!(
    badge_system,
    async fn make() -> (Arc<dyn Connector>, KitProfile) {
        example::connect_from_json().await
    }
);

/// A flat system with no groups and no containers: the kit names objects with a prefix and
/// skips what the system does not declare.
#[tokio::test]
async fn the_badge_system_passes_with_declared_skips() {
    let (conn, profile) = example::connect_from_json().await;
    let report = testkit::run_all(conn.as_ref(), &profile).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(testkit::CheckOutcome::Skipped { .. })))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        skipped,
        [
            "membership_add_twice_remove_absent",
            "move_keeps_stable_id",
            "invalid_order_bad_reference",
            "manual_transmits",
            "preview_is_offline_and_shows_no_secret",
            "changed_names_memberships",
            "password_is_stored",
            "incremental_export_after_rename",
            "paging_one_per_page"
        ]
    );
}

#[tokio::test]
async fn bad_settings_name_the_setting() {
    let mut registry = PackageRegistry::new();
    registry.register(example::BadgePackage);
    for (settings, expected) in [
        (r#"{"Sight": "HQ"}"#, "Sight"),
        (r#"{"Site": ""}"#, "Site"),
        (r#"[]"#, "object"),
    ] {
        let json = format!(r#"[{{"Id": "b", "Package": "acme.badges", "Settings": {settings}}}]"#);
        let e = registry.connect_all_from_json(&json).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains(expected), "{e}");
    }
}
