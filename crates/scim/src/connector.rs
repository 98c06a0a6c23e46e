//! The SCIM connection: [`ScimConnector`], and [`ScimPackage`] that builds it from settings.

use crate::discovery::{Kind, ResourceType, Service};
use crate::export::CookieStates;
use crate::http::{Http, Response};
use crate::settings::ScimSettings;
use autoprov_connector::{
    Capabilities, ConnectionSchema, Connector, ConnectorError, ConnectorInfo, ErrorKind,
    ExportCookie, ExportRequest, ExportStream, Fulfillment, Operation, Package, async_trait,
    parse_settings,
};
use autoprov_core::{ChangeType, ConnectionId, PackageId, ProvisioningOrder};
use reqwest::Method;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// The package id: `autoprov.scim`.
pub const PACKAGE_ID: &str = "autoprov.scim";

/// A connection to one SCIM 2.0 service (RFC 7643/7644): Users and Groups.
///
/// Built with [`ScimConnector::connect`], which reads the service's configuration
/// (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`) to declare its capabilities and
/// schema. Entity types are the service's resource type ids (`User`, `Group`); a resource's
/// key and stable id are both its SCIM `id`. `Debug` shows no secret.
#[derive(Clone)]
pub struct ScimConnector {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) info: ConnectorInfo,
    pub(crate) http: Http,
    pub(crate) service: Service,
    pub(crate) schema: ConnectionSchema,
    pub(crate) settings: ScimSettings,
    pub(crate) cookies: CookieStates,
}

impl fmt::Debug for ScimConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConnector")
            .field("connection", &self.inner.info.connection)
            .field("base_url", &self.inner.settings.base_url)
            .field("capabilities", &self.inner.info.capabilities)
            .finish_non_exhaustive()
    }
}

impl ScimConnector {
    /// Validates the settings, reads the service's configuration and builds the connection.
    ///
    /// Fails with `InvalidConfiguration` naming the setting for bad settings, `Unavailable` /
    /// `Timeout` (temporary) when the service cannot be reached, and `Unsupported` when it
    /// serves neither Users nor Groups.
    pub async fn connect(
        connection: impl Into<ConnectionId>,
        settings: ScimSettings,
    ) -> Result<Self, ConnectorError> {
        let connection = connection.into();
        settings
            .validate()
            .map_err(|e| e.for_connection(&connection))?;
        let http = Http::new(&settings)?;
        let service = Service::discover(&http).await?;
        let capabilities = service.capabilities(true);
        let schema = service.schema(&capabilities);
        Ok(Self {
            inner: Arc::new(Inner {
                info: ConnectorInfo::new(PACKAGE_ID, connection, capabilities),
                http,
                service,
                schema,
                settings,
                cookies: CookieStates::new(),
            }),
        })
    }

    /// The declared capabilities (as in [`Connector::info`]).
    pub fn capabilities(&self) -> Capabilities {
        self.inner.info.capabilities
    }

    /// Whether the service advertised ETags (writes then send `If-Match`).
    pub fn uses_etags(&self) -> bool {
        self.inner.service.etag
    }

    /// How many OAuth2 access tokens this connection requested so far (0 with a bearer token).
    pub fn oauth2_token_requests(&self) -> u64 {
        self.inner.http.token_requests()
    }

    /// The resource type of an order, or an `InvalidOrder` error naming it.
    pub(crate) fn resource_type_of(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<&ResourceType, ConnectorError> {
        let id = order.resource_type.target_entity_type.id.as_str();
        self.inner.service.resource_type(id).ok_or_else(|| {
            ConnectorError::invalid_order(
                Operation::from(order.change_type),
                format!(
                    "entity type `{id}` is not served by this SCIM service (it has {})",
                    self.entity_types().join(", ")
                ),
            )
            .for_order(order)
        })
    }

    pub(crate) fn entity_types(&self) -> Vec<String> {
        [&self.inner.service.user, &self.inner.service.group]
            .into_iter()
            .flatten()
            .map(|t| format!("`{}`", t.entity_type))
            .collect()
    }

    /// A request below the base URL.
    pub(crate) async fn send(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response, ConnectorError> {
        self.inner
            .http
            .send(operation, method, path, query, body, if_match)
            .await
    }

    /// Reads one resource by id; `None` when the service answers 404.
    pub(crate) async fn get(
        &self,
        operation: Operation,
        rt: &ResourceType,
        id: &str,
        attributes: Option<&str>,
    ) -> Result<Option<Value>, ConnectorError> {
        let query: Vec<(&str, String)> = attributes
            .map(|a| vec![("attributes", a.to_owned())])
            .unwrap_or_default();
        match self
            .send(
                operation,
                Method::GET,
                &resource_path(rt, id),
                &query,
                None,
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every resource of a type matching a filter (paged), with only `attributes` if given.
    pub(crate) async fn list_all(
        &self,
        operation: Operation,
        rt: &ResourceType,
        filter: &str,
        attributes: Option<&str>,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut out = Vec::new();
        let mut start = 1u64;
        let count = self.page_size();
        loop {
            let mut query = vec![
                ("filter", filter.to_owned()),
                ("startIndex", start.to_string()),
                ("count", count.to_string()),
            ];
            if let Some(a) = attributes {
                query.push(("attributes", a.to_owned()));
            }
            let page = self
                .send(operation, Method::GET, &rt.endpoint, &query, None, None)
                .await?;
            let items = page
                .body
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = page.body.get("totalResults").and_then(Value::as_u64);
            let n = items.len() as u64;
            out.extend(items);
            if n == 0 || total.is_none_or(|t| start - 1 + n >= t) {
                return Ok(out);
            }
            start += n;
        }
    }

    /// The page size: the setting, at most the service's `filter.maxResults`.
    pub(crate) fn page_size(&self) -> u32 {
        let s = self.inner.settings.page_size;
        self.inner
            .service
            .max_results
            .map_or(s, |m| s.min(m.max(1)))
    }

    /// The Users type, for memberships.
    pub(crate) fn users(&self) -> Option<&ResourceType> {
        self.inner.service.user.as_ref()
    }

    /// The Groups type, for memberships.
    pub(crate) fn groups(&self) -> Option<&ResourceType> {
        self.inner.service.group.as_ref()
    }
}

/// The path of one resource: `/Users/{id}`, the id percent-encoded.
pub(crate) fn resource_path(rt: &ResourceType, id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("{}/{}", rt.endpoint, encoded.replace('+', "%20"))
}

/// A SCIM filter string literal (RFC 7644 §3.4.2.2: a JSON string).
pub(crate) fn literal(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

/// Which resource kind is which (for messages).
pub(crate) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user",
        Kind::Group => "group",
    }
}

#[async_trait]
impl Connector for ScimConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.inner.info
    }

    /// Reads one id of the first resource type: an authenticated request that writes nothing.
    async fn check(&self) -> Result<(), ConnectorError> {
        let rt = self
            .users()
            .or(self.groups())
            .expect("discovery found a resource type");
        self.send(
            Operation::Check,
            Method::GET,
            &rt.endpoint,
            &[("count", "1".into()), ("attributes", "id".into())],
            None,
            None,
        )
        .await
        .map(|_| ())
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let result = match order.change_type {
            ChangeType::Added => self.fulfill_added(order).await,
            ChangeType::Modified => self.fulfill_modified(order).await,
            ChangeType::Deleted => self.fulfill_deleted(order).await,
        };
        result
            .map(Fulfillment::Executed)
            .map_err(|e| e.for_order(order))
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        self.export_stream(request).await
    }

    /// The greatest `meta.lastModified` and the ids known now, from an ids-only sweep (see
    /// the crate's export module).
    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        self.latest_cookie_now().await
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        Some(self.inner.schema.clone())
    }
}

/// Builds [`ScimConnector`]s from JSON settings ([`ScimSettings`]) in a
/// [`PackageRegistry`](autoprov_connector::PackageRegistry).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScimPackage;

#[async_trait]
impl Package for ScimPackage {
    fn id(&self) -> PackageId {
        PACKAGE_ID.into()
    }

    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings: ScimSettings =
            parse_settings(settings).map_err(|e| e.for_connection(&connection))?;
        Ok(Arc::new(
            ScimConnector::connect(connection, settings).await?,
        ))
    }
}
