//! [`AdConnector`]: the `Connector` of the AD package, its builder, and [`AdPackage`].

use crate::errors::LdapFailure;
use crate::mapping::EntityMapping;
use crate::pool::{ConnectSpec, Entry, ServerPool};
use crate::settings::{
    AdSettings, BindSettings, CaCertificate, ServerSettings, SettingsError, TlsMode,
};
use async_trait::async_trait;
use autoprov_connector::dn::Dn;
use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind, ExportCookie, ExportRequest,
    ExportStream, Fulfillment, Operation, Package, Preview,
};
use autoprov_core::{ChangeType, ConnectionId, PackageId, ProvisioningOrder, Secret};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The package id of the AD package.
pub const PACKAGE_ID: &str = "autoprov.ad";

/// A connection to one or more Active Directory domains.
///
/// Built with [`AdConnector::builder`] (or from JSON settings through [`AdPackage`]). Cheap to
/// clone: clones share the connection pools.
///
/// ```no_run
/// # async fn demo() -> Result<(), autoprov_connector::ConnectorError> {
/// use autoprov_ad::AdConnector;
/// use autoprov_connector::Connector;
/// let ad = AdConnector::builder()
///     .connection("ad-main")
///     .server("ldaps://dc1.example.test:636", "DC=example,DC=test")
///     .bind("svc-autoprov@EXAMPLE.TEST", "secret")
///     .ca_certificate_file("/etc/autoprov/ad-ca.pem")
///     .build()
///     .await?;
/// ad.check().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AdConnector {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub info: ConnectorInfo,
    pub settings: AdSettings,
    pub servers: Vec<Arc<ServerPool>>,
    /// Lower-case attribute names of each server's schema, loaded on first use; `None` when
    /// the server answered without a readable schema. A read that failed is not kept, so the
    /// next use reads again.
    pub schemas: Vec<tokio::sync::OnceCell<Option<HashSet<String>>>>,
    /// Groups and parents found lately (`ExistenceCacheMs`).
    pub confirmed: crate::existence::Confirmed,
    /// Membership writes in flight per group, and the values waiting for them
    /// (`MembershipBatch`).
    pub members: crate::members::MemberWrites,
}

impl fmt::Debug for AdConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdConnector")
            .field("info", &self.inner.info)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl AdConnector {
    /// Starts a builder.
    pub fn builder() -> AdConnectorBuilder {
        AdConnectorBuilder::default()
    }

    /// The validated settings (the password stays masked in `Debug`).
    pub fn settings(&self) -> &AdSettings {
        &self.inner.settings
    }

    /// The capabilities the AD package declares: everything (create, update, delete, rename,
    /// move, membership, enable/disable, password, complete and incremental export, special
    /// characters, containers), automated.
    pub fn capabilities() -> Capabilities {
        Capabilities::full()
    }
}

/// Builds an [`AdConnector`].
#[derive(Default)]
pub struct AdConnectorBuilder {
    connection: Option<ConnectionId>,
    settings: Option<AdSettings>,
    servers: Vec<ServerSettings>,
    bind: Option<BindSettings>,
    tls_mode: Option<TlsMode>,
    ca: Option<CaCertificate>,
    verify: Option<bool>,
    allow_plain_for_tests: Option<bool>,
    danger_accept_invalid_certs_for_tests: Option<bool>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    retry_delay: Option<Duration>,
    page_size: Option<u32>,
    connections: Option<usize>,
    existence_cache: Option<Duration>,
    membership_batch: Option<usize>,
    entity_types: BTreeMap<String, EntityMapping>,
    lazy: bool,
}

impl fmt::Debug for AdConnectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdConnectorBuilder")
            .field("connection", &self.connection)
            .field("servers", &self.servers)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl AdConnectorBuilder {
    /// The connection id (default `ad`).
    pub fn connection(mut self, id: impl Into<ConnectionId>) -> Self {
        self.connection = Some(id.into());
        self
    }

    /// Starts from complete settings; the other builder calls override parts of them.
    pub fn settings(mut self, settings: AdSettings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Adds a server (URL and the base DN of its domain).
    pub fn server(mut self, url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        self.servers.push(ServerSettings::new(url, base_dn));
        self
    }

    /// Adds a domain controller of the last added server's domain to fail over to (see
    /// [`ServerSettings::fallback_urls`]). Without a server added first it does nothing.
    pub fn fallback(mut self, url: impl Into<String>) -> Self {
        if let Some(last) = self.servers.last_mut() {
            last.fallback_urls.push(url.into());
        }
        self
    }

    /// The service account: a UPN or DN, and its password.
    pub fn bind(mut self, login: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.bind = Some(BindSettings::new(login, password));
        self
    }

    /// The TLS mode (default Ldaps).
    pub fn tls_mode(mut self, mode: TlsMode) -> Self {
        self.tls_mode = Some(mode);
        self
    }

    /// Verifies the server with the CA certificates of a PEM file.
    pub fn ca_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca = Some(CaCertificate::File(path.into()));
        self
    }

    /// Verifies the server with inline PEM certificates.
    pub fn ca_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca = Some(CaCertificate::Pem(pem.into()));
        self
    }

    /// Turns certificate verification off (needs
    /// [`Self::danger_accept_invalid_certs_for_tests`]).
    pub fn verify_certificates(mut self, verify: bool) -> Self {
        self.verify = Some(verify);
        self
    }

    /// Allows `TlsMode::Plain` (and not unverified TLS). For tests against a throwaway server
    /// only.
    pub fn allow_plain_for_tests(mut self, allow: bool) -> Self {
        self.allow_plain_for_tests = Some(allow);
        self
    }

    /// Allows turning certificate verification off with [`Self::verify_certificates`] (and
    /// not `TlsMode::Plain`). For tests against a throwaway server only.
    pub fn danger_accept_invalid_certs_for_tests(mut self, allow: bool) -> Self {
        self.danger_accept_invalid_certs_for_tests = Some(allow);
        self
    }

    /// Deadline of a new connection (TCP, TLS and bind).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Deadline of every LDAP operation.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Minimum delay between reconnection attempts of one pooled connection.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    /// Entries per page of paged searches.
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Connections per server.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = Some(n);
        self
    }

    /// At most this many members changed in one group write (`MembershipBatch`; 1 writes
    /// each membership alone).
    pub fn membership_batch(mut self, n: usize) -> Self {
        self.membership_batch = Some(n);
        self
    }

    /// How long a group or new parent found by one order is not read again for the next
    /// (`ExistenceCacheMs`; `Duration::ZERO` reads it for every order).
    pub fn existence_cache(mut self, window: Duration) -> Self {
        self.existence_cache = Some(window);
        self
    }

    /// Maps (or re-maps) an entity type.
    pub fn entity_type(mut self, name: impl Into<String>, mapping: EntityMapping) -> Self {
        self.entity_types.insert(name.into(), mapping);
        self
    }

    /// Do not connect in [`Self::build`]: the first operation (or `check`) connects.
    pub fn connect_lazily(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Assembles and validates the settings without connecting.
    pub fn build_settings(self) -> Result<(ConnectionId, AdSettings, bool), SettingsError> {
        let mut settings = match (self.settings, self.bind) {
            (Some(mut s), bind) => {
                if let Some(bind) = bind {
                    s.bind = bind;
                }
                if !self.servers.is_empty() {
                    s.servers = self.servers;
                }
                s
            }
            (None, Some(bind)) => {
                let mut servers = self.servers.into_iter();
                let first = servers.next().ok_or_else(|| {
                    SettingsError::new("Servers", "at least one server is required")
                })?;
                let mut s = AdSettings::new(first, bind);
                s.servers.extend(servers);
                s
            }
            (None, None) => {
                return Err(SettingsError::new(
                    "Bind",
                    "the service account is required (builder: .bind(login, password))",
                ));
            }
        };
        if let Some(mode) = self.tls_mode {
            settings.tls.mode = mode;
        }
        if let Some(ca) = self.ca {
            settings.tls.ca_certificate = Some(ca);
        }
        if let Some(v) = self.verify {
            settings.tls.verify = v;
        }
        if let Some(v) = self.allow_plain_for_tests {
            settings.tls.allow_plain_for_tests = v;
        }
        if let Some(v) = self.danger_accept_invalid_certs_for_tests {
            settings.tls.danger_accept_invalid_certs_for_tests = v;
        }
        if let Some(v) = self.connect_timeout {
            settings.connect_timeout = v;
        }
        if let Some(v) = self.request_timeout {
            settings.request_timeout = v;
        }
        if let Some(v) = self.retry_delay {
            settings.retry_delay = v;
        }
        if let Some(v) = self.page_size {
            settings.page_size = v;
        }
        if let Some(v) = self.connections {
            settings.connections = v;
        }
        if let Some(v) = self.existence_cache {
            settings.existence_cache = v;
        }
        if let Some(v) = self.membership_batch {
            settings.membership_batch = v;
        }
        settings.entity_types.extend(self.entity_types);
        settings.validate()?;
        Ok((
            self.connection.unwrap_or_else(|| ConnectionId::new("ad")),
            settings,
            self.lazy,
        ))
    }

    /// Validates the settings, reads the CA certificate and, unless lazy, connects and binds
    /// one connection to every server. Invalid settings are `InvalidConfiguration` naming the
    /// setting; refused credentials `Unauthenticated`; an unreachable server `Unavailable`.
    pub async fn build(self) -> Result<AdConnector, ConnectorError> {
        let (connection, settings, lazy) = self.build_settings().map_err(ConnectorError::from)?;
        AdConnector::from_settings(connection, settings, lazy).await
    }
}

impl AdConnector {
    /// Builds a connector from validated settings.
    pub async fn from_settings(
        connection: ConnectionId,
        settings: AdSettings,
        connect_lazily: bool,
    ) -> Result<Self, ConnectorError> {
        settings.validate().map_err(ConnectorError::from)?;
        let spec = Arc::new(ConnectSpec::from_settings(&settings).map_err(ConnectorError::from)?);
        let servers: Vec<Arc<ServerPool>> = settings
            .servers
            .iter()
            .map(|s| Arc::new(ServerPool::new(s, spec.clone(), settings.connections)))
            .collect();
        let connector = Self {
            inner: Arc::new(Inner {
                info: ConnectorInfo::new(
                    PackageId::new(PACKAGE_ID),
                    connection,
                    Self::capabilities(),
                ),
                schemas: servers
                    .iter()
                    .map(|_| tokio::sync::OnceCell::new())
                    .collect(),
                confirmed: crate::existence::Confirmed::new(settings.existence_cache),
                members: crate::members::MemberWrites::new(settings.membership_batch),
                servers,
                settings,
            }),
        };
        if !connect_lazily {
            for server in &connector.inner.servers {
                server
                    .handle()
                    .await
                    .map_err(|f| f.into_error(Operation::Configure, &server.url))?;
            }
        }
        Ok(connector)
    }
}

impl Inner {
    /// The server whose base DN holds `dn` (the most specific one).
    pub(crate) fn server_for(&self, dn: &Dn) -> Option<(usize, &Arc<ServerPool>)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| dn.is_within(&s.base))
            .max_by_key(|(_, s)| s.base.len())
    }

    /// The mapping of an order's target entity type.
    pub(crate) fn mapping_for(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<(&str, &EntityMapping), ConnectorError> {
        let et = &order.resource_type.target_entity_type;
        let candidates = [et.id.as_str(), et.identifier.as_str()];
        for c in candidates {
            if c.is_empty() {
                continue;
            }
            if let Some((k, m)) = self.settings.entity_types.get_key_value(c) {
                return Ok((k.as_str(), m));
            }
            if let Some((k, m)) = self
                .settings
                .entity_types
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(c))
            {
                return Ok((k.as_str(), m));
            }
        }
        Err(ConnectorError::invalid_order(
            Operation::from(order.change_type),
            format!(
                "entity type `{}` is not mapped by this AD connection (mapped: {})",
                et.id,
                self.settings
                    .entity_types
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    /// The lower-case attribute names of a server's schema, or `None` when they cannot be read
    /// (then attribute names are left to the server to check).
    pub(crate) async fn schema(&self, server: usize) -> Option<&HashSet<String>> {
        let pool = &self.servers[server];
        // A transient failure (connection lost, timeout, busy DC) is an `Err` and is not
        // cached; a server that answers but does not show its schema is cached as `None`.
        let read_one = |dn: String, attr: &'static str| async move {
            match pool.read(&dn, &[attr.to_owned()], &[]).await {
                Ok(entry) => Ok(entry),
                // Classified once, as everywhere else in the package.
                Err(f) if f.clone().into_error(Operation::Read, &dn).is_temporary() => Err(f),
                Err(_) => Ok(None),
            }
        };
        let read = || async {
            let Some(root) = read_one(String::new(), "subschemaSubentry").await? else {
                return Ok(None);
            };
            let Some(subschema) = root.text("subschemaSubentry") else {
                return Ok(None);
            };
            let Some(entry) = read_one(subschema, "attributeTypes").await? else {
                return Ok(None);
            };
            let names: HashSet<String> = entry
                .texts("attributeTypes")
                .iter()
                .flat_map(|def| attribute_type_names(def))
                .collect();
            Ok::<_, LdapFailure>((!names.is_empty()).then_some(names))
        };
        match self.schemas[server].get_or_try_init(read).await {
            Ok(names) => names.as_ref(),
            Err(failure) => {
                tracing::debug!(
                    server = %self.servers[server].url,
                    "the schema could not be read (read again on the next use): {}",
                    failure.text()
                );
                None
            }
        }
    }

    /// The target of a Modified or Deleted order. An order that carries a stable id is found
    /// by it alone (`<GUID=...>` on each domain): when no object has it, the key is read only
    /// to say whether another object holds it now, and that object is never the target. An
    /// order without a stable id is found by its key.
    pub(crate) async fn locate(
        &self,
        stable_id: Option<&str>,
        dn: &str,
        attrs: &[String],
        op: Operation,
    ) -> Result<Located, ConnectorError> {
        if let Some(stable) = stable_id {
            let Some(bytes) = crate::guid::guid_from_str(stable) else {
                return Err(ConnectorError::invalid_order(
                    op,
                    format!(
                        "the target's stable id `{stable}` is not an objectGUID \
                         (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                    ),
                )
                .with_target(dn));
            };
            // The canonical text (lower case, no braces), as the directory's GUIDs read back.
            let stable = crate::guid::guid_to_string(&bytes).unwrap_or_default();
            if let Some((i, entry)) = self.read_by_guid(&stable, attrs, dn).await? {
                return Ok(Located::Found(i, entry));
            }
            let holder = match self.read_by_dn(dn, &["objectGUID".to_owned()]).await {
                Ok(Some((_, entry))) => entry.guid(),
                // The key is only looked at to report: an unreadable one reports nothing.
                Ok(None) | Err(_) => None,
            };
            return Ok(match holder {
                Some(other) if other != stable => Located::HeldByAnother {
                    stable_id: stable,
                    holder: other,
                },
                _ => Located::Missing,
            });
        }
        Ok(match self.read_by_dn(dn, attrs).await? {
            Some((i, entry)) => Located::Found(i, entry),
            None => Located::Missing,
        })
    }

    /// Reads an entry by its objectGUID, on each domain in turn.
    pub(crate) async fn read_by_guid(
        &self,
        guid: &str,
        attrs: &[String],
        context: &str,
    ) -> Result<Option<(usize, Entry)>, ConnectorError> {
        let guid_dn = guid_dn(guid);
        for (i, server) in self.servers.iter().enumerate() {
            match server.read(&guid_dn, attrs, &[]).await {
                Ok(Some(entry)) => return Ok(Some((i, entry))),
                Ok(None) => {}
                // A GUID of another domain: the server answers with a referral.
                Err(LdapFailure::Result { rc: 10, .. }) => {}
                Err(f) => return Err(f.into_error(Operation::Read, context)),
            }
        }
        Ok(None)
    }

    /// Reads an entry by DN, on the domain that holds it.
    async fn read_by_dn(
        &self,
        dn: &str,
        attrs: &[String],
    ) -> Result<Option<(usize, Entry)>, ConnectorError> {
        let parsed = Dn::parse(dn).map_err(|e| {
            ConnectorError::invalid_order(Operation::Read, format!("the target's key: {e}"))
        })?;
        let Some((i, server)) = self.server_for(&parsed) else {
            return Err(ConnectorError::invalid_order(
                Operation::Read,
                format!("`{dn}` is outside every configured base DN"),
            ));
        };
        match server.read(dn, attrs, &[]).await {
            Ok(Some(entry)) => Ok(Some((i, entry))),
            Ok(None) => Ok(None),
            Err(f) => Err(f.into_error(Operation::Read, dn)),
        }
    }
}

/// Where the target of a Modified or Deleted order is.
pub(crate) enum Located {
    /// Found (on the server of that index).
    Found(usize, Entry),
    /// Neither its stable id nor (without one) its key names an object.
    Missing,
    /// No object has the order's stable id, and its key names another object.
    HeldByAnother {
        /// The order's stable id.
        stable_id: String,
        /// The objectGUID of the object that holds the key.
        holder: String,
    },
}

/// The extended DN that addresses an entry by objectGUID: `<GUID=...>`. Active Directory (and
/// Samba) accept it as the object of a modify, a delete and a modify-DN (Samba needs an
/// explicit new superior for the latter), and as a `member` value.
pub(crate) fn guid_dn(guid: &str) -> String {
    format!("<GUID={guid}>")
}

/// The names of an RFC 4512 attribute type definition: `( 1.2.3 NAME 'cn' ... )` or
/// `NAME ( 'a' 'b' )`.
pub(crate) fn attribute_type_names(def: &str) -> Vec<String> {
    let Some(pos) = def.find(" NAME ") else {
        return Vec::new();
    };
    let rest = def[pos + 6..].trim_start();
    let list = if let Some(inner) = rest.strip_prefix('(') {
        inner.split(')').next().unwrap_or_default()
    } else {
        rest.split_whitespace().next().unwrap_or_default()
    };
    list.split_whitespace()
        .map(|n| n.trim_matches('\'').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

#[async_trait]
impl Connector for AdConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.inner.info
    }

    /// The orders as LDIF change records, computed offline; see the crate's README ("LDIF
    /// preview").
    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        Some(crate::ldif::render(&self.inner, orders))
    }

    /// One entity schema per configured mapping ([`EntityMapping::schema`]).
    fn schema(&self) -> Option<autoprov_connector::ConnectionSchema> {
        let mappings = &self.inner.settings.entity_types;
        Some(mappings.iter().fold(
            autoprov_connector::ConnectionSchema::new(),
            |schema, (entity_type, m)| schema.with_entity(m.schema(entity_type)),
        ))
    }

    /// A simple bind as the account, on a connection of its own (see
    /// [`Connector::check_password`]).
    async fn check_password(
        &self,
        target: &autoprov_core::ResourceId,
        password: &autoprov_core::Secret,
    ) -> Result<bool, ConnectorError> {
        let op = Operation::Read;
        let dn = target.as_str();
        let Ok(secret) = password.expose() else {
            return Err(ConnectorError::invalid_order(
                op,
                "a masked password cannot be checked",
            ));
        };
        if secret.is_empty() {
            // An empty password is an anonymous bind, which succeeds for anyone.
            return Ok(false);
        }
        let parsed = Dn::parse(dn)
            .map_err(|e| ConnectorError::invalid_order(op, format!("the account's key: {e}")))?;
        let Some((_, server)) = self.inner.server_for(&parsed) else {
            return Err(ConnectorError::invalid_order(
                op,
                format!("`{dn}` is outside every configured base DN"),
            ));
        };
        match server.verify_bind(dn, secret).await {
            Ok(right) => Ok(right),
            Err(f) => Err(f.into_error(op, dn)),
        }
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        for server in &self.inner.servers {
            match server.read(&server.base_dn, &["1.1".to_owned()], &[]).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(ConnectorError::new(
                        ErrorKind::InvalidConfiguration,
                        Operation::Check,
                        format!(
                            "base DN `{}` does not exist on {}",
                            server.base_dn, server.url
                        ),
                    ));
                }
                Err(f) => return Err(f.into_error(Operation::Check, &server.url)),
            }
        }
        Ok(())
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let result = async {
            order.validate().map_err(|m| {
                ConnectorError::invalid_order(Operation::from(order.change_type), m)
            })?;
            let (entity_type, mapping) = self.inner.mapping_for(order)?;
            match order.change_type {
                ChangeType::Added => self.inner.added(order, entity_type, mapping).await,
                ChangeType::Modified => self.inner.modified(order, mapping).await,
                ChangeType::Deleted => self.inner.deleted(order, mapping).await,
            }
        }
        .await;
        match result {
            Ok(executed) => Ok(Fulfillment::Executed(executed)),
            Err(e) => {
                tracing::warn!(order = %order.order_id, "AD fulfilment failed: {e}");
                Err(e.for_order(order))
            }
        }
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        crate::export::export(self.inner.clone(), request).await
    }

    /// Every domain's rootDSE `highestCommittedUSN` and DC identity, in the export's cookie
    /// format.
    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        crate::export::latest_cookie(&self.inner).await.map(Some)
    }
}

/// The AD package (`autoprov.ad`): builds [`AdConnector`]s from JSON settings
/// ([`AdSettings`]) for a host's [`autoprov_connector::PackageRegistry`].
///
/// ```
/// use autoprov_connector::PackageRegistry;
/// let mut registry = PackageRegistry::new();
/// registry.register(autoprov_ad::AdPackage);
/// assert_eq!(registry.package_ids().next().unwrap().as_str(), "autoprov.ad");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AdPackage;

#[async_trait]
impl Package for AdPackage {
    fn id(&self) -> PackageId {
        PackageId::new(PACKAGE_ID)
    }

    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings =
            AdSettings::from_json(settings).map_err(|e| e.for_connection(&connection))?;
        let connector = AdConnector::from_settings(connection, settings, true).await?;
        Ok(Arc::new(connector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_type_names_are_parsed() {
        assert_eq!(
            attribute_type_names("( 2.5.4.3 NAME 'cn' SYNTAX '1.3.6.1.4.1.1466.115.121.1.15' )"),
            vec!["cn"]
        );
        assert_eq!(
            attribute_type_names("( 1.2 NAME ( 'a' 'bB' ) SUP name )"),
            vec!["a", "bb"]
        );
        assert!(attribute_type_names("( 1.2 SUP name )").is_empty());
    }

    #[tokio::test]
    async fn builder_reports_settings_errors() {
        let e = AdConnector::builder()
            .server("ldap://127.0.0.1:389", "DC=example,DC=test")
            .bind("admin@EXAMPLE.TEST", "x")
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains("Servers[0].Url"), "{e}");
        let e = AdConnector::builder()
            .server("ldaps://127.0.0.1:636", "DC=example,DC=test")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Bind"), "{e}");
    }

    #[tokio::test]
    async fn lazy_connector_has_the_package_id_and_never_prints_the_password() {
        let ad = AdConnector::builder()
            .connection("ad-test")
            .server("ldaps://127.0.0.1:1", "DC=example,DC=test")
            .bind("admin@EXAMPLE.TEST", "Do-Not-Print-1")
            .connect_lazily(true)
            .build()
            .await
            .unwrap();
        assert_eq!(ad.info().package.as_str(), "autoprov.ad");
        assert_eq!(ad.info().connection.as_str(), "ad-test");
        assert!(!format!("{ad:?}").contains("Do-Not-Print-1"));
        let e = ad.check().await.unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }

    /// A transient failure of the first schema read leaves nothing cached: the next use reads
    /// again. The directory is first unreachable (nothing listens on the port yet), then a
    /// relay on that port forwards to the test DC.
    #[cfg(feature = "test-fixtures")]
    #[tokio::test]
    async fn a_failed_schema_read_is_not_cached() {
        let Some(env) = crate::test_fixtures::ad_env("a_failed_schema_read_is_not_cached") else {
            return;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let ad = AdConnector::builder()
            .server(format!("ldaps://127.0.0.1:{port}"), &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .connections(1)
            .retry_delay(Duration::from_millis(1))
            .connect_lazily(true)
            .build()
            .await
            .unwrap();
        assert!(ad.inner.schema(0).await.is_none(), "unreachable");
        assert!(
            ad.inner.schemas[0].get().is_none(),
            "the failure was cached"
        );

        let upstream = env.url.trim_start_matches("ldaps://").trim_end_matches('/');
        let upstream = upstream.to_owned();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let relay = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let names = ad.inner.schema(0).await.expect("read on the next use");
        assert!(names.contains("samaccountname"), "{} names", names.len());
        assert!(
            ad.inner.schemas[0].get().is_some(),
            "a successful read is kept"
        );
        relay.abort();
    }
}
