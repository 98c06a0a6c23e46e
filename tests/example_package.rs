//! The guide's example package (`crates/example-package`) as a host meets it: its settings
//! are checked when the connection is built, and a bad one is named. (Its behaviour is proven
//! by the conformance kit in `crates/example-package/tests/kit.rs`.)

use autoprov_connector::{ErrorKind, PackageRegistry};
use autoprov_example_package::BadgePackage;

#[tokio::test]
async fn bad_settings_name_the_setting() {
    let mut registry = PackageRegistry::new();
    registry.register(BadgePackage::default());
    for (settings, expected) in [
        (r#"{"Sight": "HQ"}"#, "Sight"),
        (r#"{"Site": "HQ", "PageSize": 0}"#, "PageSize"),
        (r#"{"Site": 7}"#, "Site"),
        (r#"[]"#, "Settings"),
    ] {
        let json = format!(r#"[{{"Id": "b", "Package": "acme.badges", "Settings": {settings}}}]"#);
        let e = registry.connect_all_from_json(&json).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{settings}");
        assert!(e.to_string().contains(expected), "{settings}: {e}");
    }
    let json =
        r#"[{"Id": "b", "Package": "acme.badges", "Settings": {"Site": "HQ", "PageSize": 5}}]"#;
    assert_eq!(registry.connect_all_from_json(json).await.unwrap().len(), 1);
}
