//! The `autoprov.memory` package: in-memory systems built from JSON settings.

use crate::capability::Capabilities;
use crate::connector::Connector;
use crate::error::{ConnectorError, Operation};
use crate::memory::{InMemoryConnector, InMemorySchema, PACKAGE_ID};
use crate::registry::{BuiltConnections, Package};
use crate::settings::parse_settings_or_default;
use async_trait::async_trait;
use autoprov_core::{ConnectionId, PackageId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The settings of an in-memory connection (every field optional):
///
/// ```json
/// {"Schema": {"NamingContexts": ["DC=example,DC=test"], "EntityTypes": [...]},
///  "Containers": ["OU=Sales,DC=example,DC=test"],
///  "TreeDelete": false,
///  "Capabilities": {"create": true, ...}}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InMemorySettings {
    /// The schema (default: [`InMemorySchema::ad_like`]).
    #[serde(default)]
    pub schema: Option<InMemorySchema>,
    /// Containers created at connection time.
    #[serde(default)]
    pub containers: Vec<String>,
    /// A deleted container takes its subtree with it.
    #[serde(default)]
    pub tree_delete: bool,
    /// Declared capabilities (default: [`Capabilities::full`]).
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

/// The `autoprov.memory` package.
///
/// Clones share the record of the systems they built, so a host can register one clone and
/// keep another to inspect a connection's system ([`MemoryPackage::system`]).
///
/// ```
/// use autoprov_connector::PackageRegistry;
/// use autoprov_connector::memory::MemoryPackage;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let package = MemoryPackage::new();
/// let mut registry = PackageRegistry::new();
/// registry.register(package.clone());
/// let connections = registry
///     .connect_all_from_json(r#"[{"Id": "ad", "Package": "autoprov.memory",
///         "Settings": {"Containers": ["OU=Sales,DC=example,DC=test"]}}]"#)
///     .await
///     .unwrap();
/// assert_eq!(connections["ad"].info().package.as_str(), "autoprov.memory");
/// assert_eq!(package.system(&"ad".into()).unwrap().len(), 1);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryPackage {
    built: BuiltConnections<InMemoryConnector>,
}

impl MemoryPackage {
    /// The package.
    pub fn new() -> Self {
        Self::default()
    }

    /// The system built for a connection, if any.
    pub fn system(&self, connection: &ConnectionId) -> Option<InMemoryConnector> {
        self.built.get(connection)
    }

    /// Builds a system from settings.
    pub fn build(
        connection: ConnectionId,
        settings: InMemorySettings,
    ) -> Result<InMemoryConnector, ConnectorError> {
        let mut builder = InMemoryConnector::builder(connection)
            .tree_delete(settings.tree_delete)
            .containers(settings.containers);
        if let Some(schema) = settings.schema {
            builder = builder.schema(schema);
        }
        if let Some(capabilities) = settings.capabilities {
            builder = builder.capabilities(capabilities);
        }
        builder.build()
    }
}

#[async_trait]
impl Package for MemoryPackage {
    fn id(&self) -> PackageId {
        PACKAGE_ID.into()
    }

    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings: InMemorySettings =
            parse_settings_or_default(settings).map_err(|e| e.for_connection(&connection))?;
        let system = Self::build(connection.clone(), settings).map_err(|e| {
            ConnectorError::new(
                e.kind(),
                Operation::Configure,
                format!("connection {connection}: {}", e.message()),
            )
        })?;
        self.built.record(connection, system.clone());
        Ok(Arc::new(system))
    }
}
