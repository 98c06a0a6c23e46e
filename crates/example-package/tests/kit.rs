//! The guide's example package passes every conformance check its capabilities allow: the
//! same site through a connection with the default page size and one with one object per
//! page, both built from a JSON connections file as a host builds them.

use autoprov_connector::testkit::KitProfile;
use autoprov_connector::{Connector, PackageRegistry};
use autoprov_core::ConnectionId;
use autoprov_example_package::{BadgePackage, GROUP, NAME, NOTE, USER};
use std::sync::Arc;

/// The connections file: two connections to the same site.
const CONNECTIONS: &str = r#"[
    {"Id": "badges", "Package": "acme.badges", "Settings": {"Site": "HQ"}},
    {"Id": "badges-paged", "Package": "acme.badges", "Settings": {"Site": "HQ", "PageSize": 1}}
]"#;

/// A connection to a fresh site, and the kit's profile for it (with the same site through the
/// connection that exports one object per page).
pub async fn make() -> (Arc<dyn Connector>, KitProfile) {
    let mut registry = PackageRegistry::new();
    registry.register(BadgePackage::default());
    let mut connections = registry
        .connect_all_from_json(CONNECTIONS)
        .await
        .expect("the package connects");
    let mut p = KitProfile::new(USER, NAME);
    p.group_type = Some(GROUP.into());
    p.required_property = Some(NAME.into());
    p.text_property = NOTE.into();
    p.one_per_page = connections.remove(&ConnectionId::from("badges-paged"));
    // No containers to move between, automated, and no change language to preview in; any
    // other skip fails its test.
    let p = p.expect_skips([
        "move_keeps_stable_id",
        "manual_transmits",
        "preview_is_offline_and_shows_no_secret",
    ]);
    (
        connections
            .remove(&ConnectionId::from("badges"))
            .expect("configured"),
        p,
    )
}

autoprov_connector::connector_conformance_tests!(badge_system, make);
