//! Connections configured from a JSON file through the package registry.

use autoprov_connector::manual::ManualConnector;
use autoprov_connector::{
    Connector, ConnectorExt, ErrorKind, ExportRequest, MemoryPackage, PackageRegistry,
};

const CONNECTIONS: &str = r#"[
  {"Id": "ad-main", "Package": "autoprov.memory",
   "Settings": {"Containers": ["OU=Sales,DC=example,DC=test", "OU=Groups,DC=example,DC=test"]}},
  {"Id": "ldap-lab", "Package": "autoprov.memory",
   "Settings": {"Schema": {"NamingContexts": ["O=lab"], "EntityTypes": [
      {"Id": "person", "Kind": "Account", "RdnAttribute": "UID", "NamePropertyy": "uid"}]}}}
]"#;

#[tokio::test]
async fn builds_connections_by_package_and_names_bad_settings() {
    let package = MemoryPackage::new();
    let mut registry = PackageRegistry::new();
    registry.register(package.clone());
    // A typo in the second connection's schema is named with its path.
    let e = registry
        .connect_all_from_json(CONNECTIONS)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(
        e.to_string().contains("NamePropertyy") && e.to_string().contains("ldap-lab"),
        "{e}"
    );

    let fixed = CONNECTIONS.replace("NamePropertyy", "NameProperty");
    let connections = registry.connect_all_from_json(&fixed).await.unwrap();
    assert_eq!(connections.len(), 2);
    let ad = &connections["ad-main"];
    assert_eq!(ad.info().package.as_str(), "autoprov.memory");
    let batch = ad.export_all(ExportRequest::complete()).await.unwrap();
    assert_eq!(batch.resources.len(), 2);
    // The host keeps a handle on the system behind a connection.
    assert_eq!(package.system(&"ad-main".into()).unwrap().len(), 2);

    let unknown = r#"[{"Id": "x", "Package": "acme.crm"}]"#;
    let e = registry.connect_all_from_json(unknown).await.unwrap_err();
    assert!(
        e.to_string().contains("acme.crm") && e.to_string().contains("autoprov.memory"),
        "{e}"
    );
}

#[test]
fn manual_connections_declare_the_manual_mode() {
    let desk = ManualConnector::new("desk");
    assert!(desk.info().capabilities.is_manual());
    assert!(!desk.info().capabilities.export);
}

#[tokio::test]
async fn misspelt_connection_fields_are_refused_with_the_closest_name() {
    let mut registry = PackageRegistry::new();
    registry.register(MemoryPackage::new());
    // `Setings` used to be dropped: the connection was built with no settings at all.
    let e = registry
        .connect_all_from_json(r#"[{"Id": "x", "Package": "autoprov.memory", "Setings": {}}]"#)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(
        e.to_string().contains("Setings") && e.to_string().contains("did you mean `Settings`?"),
        "{e}"
    );
    // A misspelt capability used to leave it off.
    let e = registry
        .connect_all_from_json(
            r#"[{"Id": "x", "Package": "autoprov.memory",
                 "Settings": {"Capabilities": {"creat": true}}}]"#,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("Capabilities.creat")
            && e.to_string().contains("did you mean `create`?"),
        "{e}"
    );
}
