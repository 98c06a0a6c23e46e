//! Packages and the registry that builds connections from settings.
//!
//! A host keeps its connections in a file (`[{"Id": "ad-main", "Package": "autoprov.ad",
//! "Settings": {...}}]`), registers the built-in packages and its own, and builds every
//! connection by package id.

use crate::connector::Connector;
use crate::error::{ConnectorError, ErrorKind, Operation};
use async_trait::async_trait;
use autoprov_core::{ConnectionId, PackageId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A connector package: builds connections from serde settings.
#[async_trait]
pub trait Package: Send + Sync + 'static {
    /// The package id, e.g. `autoprov.ad`.
    fn id(&self) -> PackageId;

    /// Builds a connection from its settings. Invalid settings are an
    /// [`ErrorKind::InvalidConfiguration`] error naming the setting.
    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// The connections a package built, by id. Clones share them, so a host that registered one
/// clone of a package reaches, through another, what the registry built (an in-memory system,
/// a manual desk).
#[derive(Debug)]
pub(crate) struct BuiltConnections<T> {
    built: Arc<Mutex<BTreeMap<ConnectionId, T>>>,
}

impl<T> Default for BuiltConnections<T> {
    fn default() -> Self {
        Self {
            built: Arc::default(),
        }
    }
}

impl<T> Clone for BuiltConnections<T> {
    fn clone(&self) -> Self {
        Self {
            built: self.built.clone(),
        }
    }
}

impl<T: Clone> BuiltConnections<T> {
    /// Records what was built for `connection` (replacing an earlier build).
    pub(crate) fn record(&self, connection: ConnectionId, built: T) {
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(connection, built);
    }

    /// What was built for `connection`, if anything.
    pub(crate) fn get(&self, connection: &ConnectionId) -> Option<T> {
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(connection)
            .cloned()
    }
}

/// One configured connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The connection id.
    pub id: ConnectionId,
    /// The package that serves it.
    pub package: PackageId,
    /// The package's settings.
    #[serde(default)]
    pub settings: serde_json::Value,
}

/// The packages a host knows, by id.
#[derive(Default, Clone)]
pub struct PackageRegistry {
    packages: BTreeMap<PackageId, Arc<dyn Package>>,
}

impl std::fmt::Debug for PackageRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageRegistry")
            .field("packages", &self.packages.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PackageRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a package, replacing one with the same id.
    pub fn register(&mut self, package: impl Package) -> &mut Self {
        self.packages.insert(package.id(), Arc::new(package));
        self
    }

    /// The registered package ids.
    pub fn package_ids(&self) -> impl Iterator<Item = &PackageId> {
        self.packages.keys()
    }

    /// Builds one connection.
    pub async fn connect(
        &self,
        config: &ConnectionConfig,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let package = self.packages.get(&config.package).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::InvalidConfiguration,
                Operation::Configure,
                format!(
                    "connection {}: no package `{}` is registered (known: {})",
                    config.id,
                    config.package,
                    self.packages
                        .keys()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        package
            .connect(config.id.clone(), config.settings.clone())
            .await
    }

    /// Builds every connection of a JSON list of [`ConnectionConfig`]s.
    pub async fn connect_all_from_json(
        &self,
        json: &str,
    ) -> Result<BTreeMap<ConnectionId, Arc<dyn Connector>>, ConnectorError> {
        // A misspelt `Settings` would otherwise build the connection with no settings at all.
        let configs: Vec<ConnectionConfig> =
            autoprov_core::config::from_json_str(json).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::InvalidConfiguration,
                    Operation::Configure,
                    format!("connections file: {e}"),
                )
            })?;
        let mut out = BTreeMap::new();
        for config in &configs {
            if out.contains_key(&config.id) {
                return Err(ConnectorError::new(
                    ErrorKind::InvalidConfiguration,
                    Operation::Configure,
                    format!(
                        "connections file: connection {} is configured twice",
                        config.id
                    ),
                ));
            }
            out.insert(config.id.clone(), self.connect(config).await?);
        }
        Ok(out)
    }
}
