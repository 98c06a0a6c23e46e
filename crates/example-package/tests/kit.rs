//! The guide's example package passes every conformance check its capabilities allow: the
//! same system through a connection with the default page size and one with one object per
//! page, both built from JSON settings as a host builds them.

use autoprov_connector::testkit::KitProfile;
use autoprov_connector::{ConnectionConfig, Connector, PackageRegistry};
use autoprov_example_package::{BadgePackage, GROUP, NAME, NOTE, USER};
use std::sync::Arc;

/// A connection to a fresh site, and the kit's profile for it (with the same site through a
/// second connection that exports one object per page).
async fn make() -> (Arc<dyn Connector>, KitProfile) {
    let mut registry = PackageRegistry::new();
    registry.register(BadgePackage::default());
    let mut connections = Vec::new();
    for settings in [r#"{"Site": "HQ"}"#, r#"{"Site": "HQ", "PageSize": 1}"#] {
        let json =
            format!(r#"{{"Id": "badges", "Package": "acme.badges", "Settings": {settings}}}"#);
        let config: ConnectionConfig = serde_json::from_str(&json).expect("a connection entry");
        connections.push(
            registry
                .connect(&config)
                .await
                .expect("the package connects"),
        );
    }
    let (paged, conn) = (connections.pop().unwrap(), connections.pop().unwrap());
    let mut p = KitProfile::new(USER, NAME);
    p.group_type = Some(GROUP.into());
    p.required_property = Some(NAME.into());
    p.text_property = NOTE.into();
    p.one_per_page = Some(paged);
    // No containers to move between, automated, and no change language to preview in.
    let p = p.expect_skips([
        "move_keeps_stable_id",
        "manual_transmits",
        "preview_is_offline_and_shows_no_secret",
    ]);
    (conn, p)
}

autoprov_connector::connector_conformance_tests!(badge_system, make);
