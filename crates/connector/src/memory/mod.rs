//! The embedded default managed system: a directory held in memory.
//!
//! [`InMemoryConnector`] behaves like a small Active Directory: hierarchical DN-shaped names
//! below naming contexts, entity types with required and unique properties, stable ids that
//! survive renames and moves, group membership stored on the group (`member`) with the back-link
//! (`memberOf`) derived on the member, enable/disable, write-only passwords, the AD idempotency
//! rules, and complete and incremental export with cookies. Tests inspect it through
//! [`InMemoryConnector::snapshot`] and the [`operation log`](InMemoryConnector::operation_log).
//!
//! ```
//! use autoprov_connector::memory::InMemoryConnector;
//! use autoprov_connector::{Connector, ConnectorExt, ExportRequest};
//! use autoprov_core::*;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let system = InMemoryConnector::new("ad-test");
//! let sales = system.ensure_container("OU=Sales,DC=example,DC=test").unwrap();
//!
//! let mut changes = Changes::default();
//! changes
//!     .set("cn", "Smith, John")
//!     .set("sAMAccountName", "jsmith")
//!     .set("enabled", true)
//!     .set("password", Secret::new("Initial-Passw0rd"))
//!     .set_reference("parentdn", Reference::dn(sales.as_str()));
//! let order = ProvisioningOrder {
//!     order_id: "o-1".into(),
//!     assigned_resource_type_id: None,
//!     change_type: ChangeType::Added,
//!     workflow_instance_id: None,
//!     owner: Some(Owner::new("u-7", "jsmith")),
//!     resource_type: ResourceTypeRef::of(&ResourceType::new(
//!         "rt-1", "AD_User", "Directory_User", "user", "ad-test")),
//!     connection: None,
//!     changes,
//!     resource: None,
//!     depends_on: vec![],
//!     not_before: None,
//!     arguments: Default::default(),
//! };
//! let done = system.fulfill(&order).await.unwrap();
//! let done = done.executed().unwrap();
//! assert_eq!(done.resource_id.as_str(), r"CN=Smith\, John,OU=Sales,DC=example,DC=test");
//!
//! // Re-applying the same order changes nothing.
//! let again = system.fulfill(&order).await.unwrap();
//! assert!(again.executed().unwrap().is_noop());
//!
//! // The export holds the account, never its password.
//! let batch = system.export_all(ExportRequest::complete()).await.unwrap();
//! let user = batch.resources.iter().find(|r| r.stable_id == done.stable_id).unwrap();
//! assert_eq!(user.get("sAMAccountName"), Some(&PropertyValue::from("jsmith")));
//! assert!(user.get("password").is_none());
//! # });
//! ```

mod apply;
mod package;
mod plan;
mod schema;
mod state;

pub use package::{InMemorySettings, MemoryPackage};
pub use schema::{EntityTypeSchema, InMemorySchema, ObjectKind};
pub use state::OperationRecord;

use crate::capability::Capabilities;
use crate::connector::{
    Connector, ConnectorInfo, Executed, ExportCookie, ExportItem, ExportMode, ExportRequest,
    ExportStream, Fulfillment,
};
use crate::dn::{Dn, Rdn};
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::schema::{ConnectionSchema, PARENT};
use async_trait::async_trait;
use autoprov_core::{
    ChangeType, Changes, ConnectionId, EntityTypeId, OrderId, ProvisioningOrder, Reference,
    Resource, ResourceId, Secret, StableId,
};
use plan::Request;
use schema::CompiledSchema;
use state::{ObjKey, PasswordHash, Slot, State};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The package id of the in-memory system.
pub const PACKAGE_ID: &str = "autoprov.memory";

/// How many objects an export reads under one lock.
const EXPORT_PAGE: usize = 256;

/// The embedded default managed system (package `autoprov.memory`).
///
/// Cheap to clone: clones share the same system, so a test can keep one clone for inspection
/// and hand another to the code under test. Thread-safe: every order is validated and applied
/// under one write lock, so an invalid order writes nothing and a valid one is applied whole.
///
/// Behaviour beyond the [`Connector`] contract:
/// - objects are named `<RDN attribute>=<escaped name>,<parentdn>`; `parentdn` is required
///   on creation and must name a container or a naming context;
/// - stable ids are GUID-shaped and counter-based (`00000000-0000-4000-8000-000000000001`, ...),
///   so tests are deterministic;
/// - an Added order whose name is held by an object of the same type with the same unique keys
///   adopts it (and converges its attributes); a different object holding the name or one of
///   the unique keys is `AlreadyExists`;
/// - a Deleted container that still holds objects is a permanent `Conflict`, unless the system
///   was built with [`InMemoryBuilder::tree_delete`];
/// - deleting an object removes it from its groups and clears references to it (as AD does
///   for linked attributes);
/// - removing a membership of a group that does not exist succeeds (the wanted state holds);
/// - the `changed` set of an executed delete is `{"deleted"}`;
/// - export cookies are `<connection>@<change number>`; a cookie of another connection, from
///   the future, or older than [`InMemoryConnector::purge_tombstones`] is a `Conflict`.
#[derive(Clone)]
pub struct InMemoryConnector {
    inner: Arc<Inner>,
}

struct Inner {
    info: ConnectorInfo,
    schema: CompiledSchema,
    tree_delete: bool,
    state: RwLock<State>,
}

impl fmt::Debug for InMemoryConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("InMemoryConnector")
            .field("connection", &self.inner.info.connection)
            .field("objects", &state.objects.len())
            .field("change_number", &state.usn)
            .finish_non_exhaustive()
    }
}

/// Builds an [`InMemoryConnector`].
#[derive(Debug, Clone)]
pub struct InMemoryBuilder {
    connection: ConnectionId,
    schema: InMemorySchema,
    capabilities: Capabilities,
    tree_delete: bool,
    containers: Vec<String>,
}

impl InMemoryBuilder {
    /// Uses another schema (default: [`InMemorySchema::ad_like`]).
    pub fn schema(mut self, schema: InMemorySchema) -> Self {
        self.schema = schema;
        self
    }

    /// Declares other capabilities (default: [`Capabilities::full`]). The system still does
    /// everything; this changes what it claims, e.g. to see the conformance kit skip checks.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// A Deleted container takes everything below it (default: false, a non-empty container
    /// cannot be deleted).
    pub fn tree_delete(mut self, tree_delete: bool) -> Self {
        self.tree_delete = tree_delete;
        self
    }

    /// Containers to create at build time (DNs; missing parents are created too).
    pub fn containers<I, S>(mut self, dns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.containers.extend(dns.into_iter().map(Into::into));
        self
    }

    /// Builds the system. An invalid schema or container is an `InvalidConfiguration` error.
    pub fn build(self) -> Result<InMemoryConnector, ConnectorError> {
        let schema = self.schema.compile()?;
        let system = InMemoryConnector {
            inner: Arc::new(Inner {
                info: ConnectorInfo::new(PACKAGE_ID, self.connection, self.capabilities),
                schema,
                tree_delete: self.tree_delete,
                state: RwLock::new(State::new()),
            }),
        };
        for dn in &self.containers {
            system.ensure_container(dn).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::InvalidConfiguration,
                    Operation::Configure,
                    format!("container {dn}: {}", e.message()),
                )
            })?;
        }
        Ok(system)
    }
}

impl InMemoryConnector {
    /// An empty system with the [AD-like schema](InMemorySchema::ad_like) below
    /// `DC=example,DC=test`.
    pub fn new(connection: impl Into<ConnectionId>) -> Self {
        Self::builder(connection)
            .build()
            .expect("the built-in schema is valid")
    }

    /// A builder, to choose the schema, capabilities and options.
    pub fn builder(connection: impl Into<ConnectionId>) -> InMemoryBuilder {
        InMemoryBuilder {
            connection: connection.into(),
            schema: InMemorySchema::ad_like(),
            capabilities: Capabilities::full(),
            tree_delete: false,
            containers: Vec::new(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn compiled(&self) -> &CompiledSchema {
        &self.inner.schema
    }

    /// Validates and applies one request under the write lock.
    fn apply(&self, request: &Request<'_>) -> Result<Executed, ConnectorError> {
        let mut state = self.write();
        let plan = state.plan(self.compiled(), request)?;
        Ok(state.apply(self.compiled(), plan, request.order))
    }

    /// Creates an object out of band (no order): the same rules as an Added order. For
    /// tests that need pre-existing objects (e.g. accounts found before go-live).
    pub fn seed(
        &self,
        entity_type: impl Into<EntityTypeId>,
        changes: &Changes,
    ) -> Result<Executed, ConnectorError> {
        let entity_type = entity_type.into();
        self.apply(&Request {
            change_type: ChangeType::Added,
            entity_type: &entity_type,
            target: None,
            changes,
            order: None,
            adoption_review: None,
            tree_delete: self.inner.tree_delete,
        })
    }

    /// Changes an object out of band (drift): the same rules as a Modified order. The target
    /// is a DN or a stable id.
    pub fn modify(&self, target: &str, changes: &Changes) -> Result<Executed, ConnectorError> {
        let (key, entity_type, stable) = self.target_of(target, Operation::Update)?;
        self.apply(&Request {
            change_type: ChangeType::Modified,
            entity_type: &entity_type,
            target: Some((&key, Some(&stable))),
            changes,
            order: None,
            adoption_review: None,
            tree_delete: self.inner.tree_delete,
        })
    }

    /// Deletes an object out of band. The target is a DN or a stable id; a missing one is not
    /// an error.
    pub fn remove(&self, target: &str) -> Result<Executed, ConnectorError> {
        let Ok((key, entity_type, stable)) = self.target_of(target, Operation::Delete) else {
            return Ok(Executed::new(target));
        };
        self.apply(&Request {
            change_type: ChangeType::Deleted,
            entity_type: &entity_type,
            target: Some((&key, Some(&stable))),
            changes: &Changes::default(),
            order: None,
            adoption_review: None,
            tree_delete: self.inner.tree_delete,
        })
    }

    fn target_of(
        &self,
        target: &str,
        operation: Operation,
    ) -> Result<(ResourceId, EntityTypeId, StableId), ConnectorError> {
        let state = self.read();
        let key = self.key_of(&state, target).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::NotFound,
                operation,
                format!("{target} does not exist"),
            )
        })?;
        let o = &state.objects[&key];
        Ok((
            state.dn(self.compiled(), key).to_string().into(),
            o.entity_type.clone(),
            o.stable_id.clone(),
        ))
    }

    fn key_of(&self, state: &State, target: &str) -> Option<ObjKey> {
        if let Some(k) = state.by_stable.get(target) {
            return Some(*k);
        }
        match state.resolve(self.compiled(), &Dn::parse(target).ok()?)? {
            Slot::Object(k) => Some(k),
            Slot::Root(_) => None,
        }
    }

    /// Creates a container and its missing parents (the first container type whose RDN
    /// attribute matches each RDN), and returns its DN. Existing ones are kept.
    pub fn ensure_container(&self, dn: &str) -> Result<ResourceId, ConnectorError> {
        let parsed = Dn::parse(dn)
            .map_err(|e| ConnectorError::invalid_order(Operation::Create, e.to_string()))?;
        let schema = self.compiled();
        let Some(root) = schema
            .roots
            .iter()
            .filter(|r| parsed.is_within(r))
            .max_by_key(|r| r.rdns().len())
        else {
            return Err(ConnectorError::invalid_order(
                Operation::Create,
                format!("{dn} is not below a naming context"),
            ));
        };
        let below = parsed.rdns().len() - root.rdns().len();
        let mut parent = root.clone();
        for rdn in parsed.rdns()[..below].iter().rev() {
            let rdn = rdn.single().ok_or_else(|| {
                ConnectorError::invalid_order(
                    Operation::Create,
                    format!("{dn}: multi-valued RDNs are not supported"),
                )
            })?;
            let container_type = schema
                .types
                .values()
                .find(|t| {
                    t.kind == ObjectKind::Container
                        && t.rdn_attribute.eq_ignore_ascii_case(&rdn.attribute)
                })
                .ok_or_else(|| {
                    ConnectorError::invalid_order(
                        Operation::Create,
                        format!("no container type is named by `{}=`", rdn.attribute),
                    )
                })?;
            let mut changes = Changes::default();
            changes
                .set(container_type.name_property.clone(), rdn.value.clone())
                .set_reference(PARENT, Reference::dn(parent.to_string()));
            let done = self.seed(container_type.id.clone(), &changes)?;
            parent = Dn::parse(done.resource_id.as_str()).map_err(|e| {
                ConnectorError::new(ErrorKind::Unexpected, Operation::Create, e.to_string())
            })?;
        }
        Ok(parent.to_string().into())
    }

    /// Every object as an export shows it, in creation order.
    pub fn snapshot(&self) -> Vec<Resource> {
        let state = self.read();
        state
            .objects
            .keys()
            .map(|k| state.resource(self.compiled(), *k))
            .collect()
    }

    /// One object by DN or stable id, as an export shows it.
    pub fn get(&self, target: &str) -> Option<Resource> {
        let state = self.read();
        let key = self.key_of(&state, target)?;
        Some(state.resource(self.compiled(), key))
    }

    /// How many objects the system holds.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether the system holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `password` is the password of the account (by DN or stable id): what a bind
    /// would check. The system keeps only a salted hash.
    pub fn verify_password(&self, target: &str, password: &str) -> bool {
        let state = self.read();
        let Some(key) = self.key_of(&state, target) else {
            return false;
        };
        let o = &state.objects[&key];
        o.password.is_some() && o.password == Some(PasswordHash::of(&o.stable_id, password))
    }

    /// Every write applied so far, in order.
    pub fn operation_log(&self) -> Vec<OperationRecord> {
        self.read().log.clone()
    }

    /// The writes an order caused.
    pub fn operations_of(&self, order: &OrderId) -> Vec<OperationRecord> {
        self.read()
            .log
            .iter()
            .filter(|r| r.order.as_ref() == Some(order))
            .cloned()
            .collect()
    }

    /// Writes that repeat an earlier effect of the same order (same operation, target,
    /// property and value): proof that an effect was applied twice. Empty when every order
    /// was applied at most once, however often it was sent.
    pub fn repeated_effects(&self) -> Vec<OperationRecord> {
        let state = self.read();
        let mut seen = BTreeSet::new();
        let mut repeated = Vec::new();
        for record in state.log.iter().filter(|r| r.order.is_some()) {
            let (order, operation, target, property, detail) = record.effect();
            let effect = (
                order.cloned(),
                operation.to_string(),
                target.clone(),
                property.map(str::to_owned),
                detail.to_owned(),
            );
            if !seen.insert(effect) {
                repeated.push(record.clone());
            }
        }
        repeated
    }

    /// The current change number (what a complete export's cookie holds).
    pub fn change_number(&self) -> u64 {
        self.read().usn
    }

    /// Forgets deletions made so far; cookies issued before now become expired (`Conflict`),
    /// as when a directory's tombstone lifetime has passed.
    pub fn purge_tombstones(&self) {
        let mut state = self.write();
        state.tombstones.clear();
        state.oldest_usn = state.usn;
    }

    fn cookie(&self, usn: u64) -> ExportCookie {
        crate::paging::counter_cookie(self.inner.info.connection.as_str(), usn)
    }

    /// Where an export in `mode` starts: `None` (complete) or the change number of its cookie.
    fn since(&self, mode: &ExportMode) -> Result<Option<u64>, ConnectorError> {
        let connection = self.inner.info.connection.as_str();
        let (latest, oldest) = {
            let state = self.read();
            (state.usn, state.oldest_usn)
        };
        let since = crate::paging::counter_since(mode, connection, latest)?;
        if let Some(usn) = since.filter(|usn| *usn < oldest) {
            return Err(ConnectorError::new(
                ErrorKind::Conflict,
                Operation::Export,
                format!(
                    "the cookie of change {usn} has expired (deletions before change {oldest} \
                     were purged); run a complete export"
                ),
            ));
        }
        Ok(since)
    }
}

#[async_trait]
impl Connector for InMemoryConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.inner.info
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        Some(self.compiled().declared.clone())
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        Ok(Some(self.cookie(self.change_number())))
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        let Ok(p) = password.expose() else {
            return Err(ConnectorError::invalid_order(
                Operation::Read,
                "a masked password cannot be checked",
            ));
        };
        if self.get(target.as_str()).is_none() {
            return Err(ConnectorError::new(
                ErrorKind::NotFound,
                Operation::Read,
                format!("no account {target}"),
            )
            .with_target(target.to_string()));
        }
        Ok(InMemoryConnector::verify_password(self, target.as_str(), p))
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let target = order
            .resource
            .as_ref()
            .map(|r| (&r.id, r.stable_id.as_ref()));
        let request = Request {
            change_type: order.change_type,
            entity_type: &order.resource_type.target_entity_type.id,
            target,
            changes: &order.changes,
            order: Some(&order.order_id),
            adoption_review: order
                .arguments
                .contains_key(crate::ADOPTION_REVIEW_ARGUMENT)
                .then(|| order.arguments.contains_key(crate::RESENT_ARGUMENT)),
            tree_delete: self.inner.tree_delete,
        };
        self.apply(&request)
            .map(Fulfillment::Executed)
            .map_err(|e| e.for_order(order))
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        let scope = match &request.scope {
            None => None,
            Some(scope) => {
                let dn = Dn::parse(scope).map_err(|e| {
                    ConnectorError::new(ErrorKind::NotFound, Operation::Export, e.to_string())
                })?;
                let state = self.read();
                let exists = state.resolve(self.compiled(), &dn).is_some()
                    || self.compiled().roots.iter().any(|r| r.is_within(&dn));
                if !exists {
                    return Err(ConnectorError::new(
                        ErrorKind::NotFound,
                        Operation::Export,
                        format!("the export scope {scope} does not exist"),
                    ));
                }
                Some(dn)
            }
        };
        let since = self.since(&request.mode)?;
        let start = self.read().usn;
        let cursor = ExportCursor {
            system: self.clone(),
            filter: Filter {
                types: request.entity_types.iter().cloned().collect(),
                scope,
            },
            start,
            since: since.unwrap_or(0),
        };
        let first = match since {
            None => Phase::Objects(0),
            Some(since) => Phase::Changed((since + 1, 0)),
        };
        Ok(crate::paging::paged_export(first, move |phase| {
            std::future::ready(Ok(cursor.page(phase)))
        }))
    }
}

struct Filter {
    types: BTreeSet<EntityTypeId>,
    scope: Option<Dn>,
}

impl Filter {
    fn matches(&self, entity_type: &EntityTypeId, dn: impl FnOnce() -> Dn) -> bool {
        (self.types.is_empty() || self.types.contains(entity_type))
            && self.scope.as_ref().is_none_or(|s| dn().is_within(s))
    }
}

enum Phase {
    /// Complete export: objects by key from here.
    Objects(ObjKey),
    /// Incremental export: changed objects by (change number, key) from here.
    Changed((u64, ObjKey)),
    /// Incremental export: deletions by (change number, key) from here.
    Deleted((u64, ObjKey)),
}

/// Reads an export page by page, each under a short read lock, so a large system is never
/// copied whole. Changes made while it runs have change numbers above `start`: the next
/// incremental export sees them.
struct ExportCursor {
    system: InMemoryConnector,
    filter: Filter,
    start: u64,
    since: u64,
}

impl ExportCursor {
    /// The page of `phase`, and the phase after it (none: the export ends with its cookie).
    fn page(&self, phase: Phase) -> crate::paging::Page<Phase> {
        let system = &self.system;
        let schema = system.compiled();
        let state = system.read();
        let mut page = Vec::new();
        let next = match phase {
            Phase::Objects(from) => {
                let mut last = None;
                for (key, o) in state.objects.range(from..).take(EXPORT_PAGE) {
                    last = Some(*key);
                    if self
                        .filter
                        .matches(&o.entity_type, || state.dn(schema, *key))
                    {
                        page.push(ExportItem::Resource(state.resource(schema, *key)));
                    }
                }
                last.map(|k| Phase::Objects(k + 1))
            }
            Phase::Changed(from) => {
                let mut last = None;
                let range = (from.0 <= self.start)
                    .then(|| state.by_usn.range(from..=(self.start, ObjKey::MAX)))
                    .into_iter()
                    .flatten();
                for &(usn, key) in range.take(EXPORT_PAGE) {
                    last = Some((usn, key));
                    let o = &state.objects[&key];
                    if self
                        .filter
                        .matches(&o.entity_type, || state.dn(schema, key))
                    {
                        page.push(ExportItem::Resource(state.resource(schema, key)));
                    }
                }
                Some(match last {
                    Some((usn, key)) => Phase::Changed((usn, key + 1)),
                    None => Phase::Deleted((self.since + 1, 0)),
                })
            }
            Phase::Deleted(from) => {
                let mut last = None;
                let range = (from.0 <= self.start)
                    .then(|| state.tombstones.range(from..=(self.start, ObjKey::MAX)))
                    .into_iter()
                    .flatten();
                for (&(usn, key), t) in range.take(EXPORT_PAGE) {
                    last = Some((usn, key));
                    if self.filter.matches(&t.entity_type, || t.dn.clone()) {
                        page.push(ExportItem::Deleted {
                            id: t.dn.to_string().into(),
                            stable_id: Some(t.stable_id.clone()),
                        });
                    }
                }
                last.map(|(usn, key)| Phase::Deleted((usn, key + 1)))
            }
        };
        crate::paging::Page::new(page, next, || system.cookie(self.start))
    }
}

/// Builds a DN of `rdn_attribute=name` below `parent`, escaped (a helper for tests and seeds).
pub fn child_dn(parent: &str, rdn_attribute: &str, name: &str) -> Result<String, ConnectorError> {
    let parent = Dn::parse(parent)
        .map_err(|e| ConnectorError::invalid_order(Operation::Create, e.to_string()))?;
    Ok(parent.child(Rdn::new(rdn_attribute, name)).to_string())
}

#[cfg(test)]
mod tests;
