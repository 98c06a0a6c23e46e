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
    let connection = connections
        .remove(&ConnectionId::from("badges"))
        .expect("configured");
    // The profile from the connection's declared schema: users named by `name`, in groups,
    // with `note` as free text.
    let schema = connection
        .schema()
        .expect("the package declares its schema");
    let mut p = KitProfile::from_schema(&schema, None).expect("a profile from the schema");
    assert_eq!(
        (
            p.account_type.as_str(),
            p.name_property.as_str(),
            p.text_property.as_str()
        ),
        (USER, NAME, NOTE)
    );
    assert_eq!(p.group_type.as_ref().map(|g| g.as_str()), Some(GROUP));
    p.one_per_page = connections.remove(&ConnectionId::from("badges-paged"));
    // No containers to move between, automated, and no change language to preview in; any
    // other skip fails its test.
    let p = p.expect_skips([
        "move_keeps_stable_id",
        "manual_transmits",
        "preview_is_offline_and_shows_no_secret",
    ]);
    (connection, p)
}

autoprov_connector::connector_conformance_tests!(badge_system, make);
