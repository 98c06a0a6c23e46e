//! The connector guide's example package (`acme.badges`): the badge system of a site, with
//! users and groups, written from scratch on `autoprov-connector` alone.
//!
//! The managed system is a toy kept in memory by the package, one store per site, so that two
//! connections to the same site (e.g. one with `"PageSize": 1`) see the same objects. It shows
//! what a real package needs: declared capabilities; the whole order validated before the
//! first write; AD-like idempotency (adoption, with review when the order asks for it);
//! stable ids; value-level memberships (`memberOf_add` / `memberOf_remove`); renames refused
//! onto a taken name; write-only passwords that [`Connector::check_password`] verifies;
//! complete and incremental export, paged with [`paged_export`]; and the latest cookie
//! without an export. Every behaviour is observable through the [`Connector`] trait, so the
//! conformance kit (`tests/kit.rs`) catches a bug in any of it.

use autoprov_connector::schema::{DN_KEY, ENABLED, MEMBER_OF, PASSWORD};
use autoprov_connector::{
    ADOPTION_REVIEW_ARGUMENT, Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind,
    Executed, ExportCookie, ExportMode, ExportRequest, ExportStream, Fulfillment, Operation,
    Package, Page, async_trait, paged_export, parse_settings,
};
use autoprov_core::{
    ChangeType, ConnectionId, EntityTypeId, OrderId, PackageId, PropertyChange, ProvisioningOrder,
    Reference, Resource, ResourceId, ScalarValue, Secret, StableId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The package id: what connection files name in `Package`.
pub const PACKAGE_ID: &str = "acme.badges";
/// The entity type of badge holders.
pub const USER: &str = "user";
/// The entity type of groups (door groups). Users and groups are members of groups.
pub const GROUP: &str = "group";
/// The name of a user or group, unique within its type: required, changed by a rename.
pub const NAME: &str = "name";
/// A free-text note.
pub const NOTE: &str = "note";

/// One user or group as the system stores it.
struct Object {
    kind: EntityTypeId,
    name: String,
    note: Option<String>,
    enabled: bool,
    password: Option<Secret>,
    groups: BTreeSet<u64>,
    /// The change number of its last write.
    version: u64,
    /// The order that created it: sent again, that order adopts it without review.
    created_by: OrderId,
}

/// A site's store. Ids are the change number of the creation, so they are never reused.
#[derive(Default)]
struct Site {
    objects: BTreeMap<u64, Object>,
    /// The deleted ids by change number, for incremental exports.
    deleted: BTreeMap<u64, u64>,
    version: u64,
}

/// What an order asks for, validated before anything is written.
#[derive(Default)]
struct Wanted {
    name: Option<String>,
    note: Option<Option<String>>,
    enabled: Option<bool>,
    password: Option<Secret>,
    add: Vec<u64>,
    remove: Vec<u64>,
}

/// A connection to one site's badge system.
#[derive(Clone)]
pub struct BadgeConnector {
    info: ConnectorInfo,
    site: String,
    page_size: usize,
    store: Arc<Mutex<Site>>,
}

impl std::fmt::Debug for BadgeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the objects: a Debug line ends up in logs.
        f.debug_struct("BadgeConnector")
            .field("connection", &self.info.connection)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// Sets `field` to the wanted value, if any and different, and names it in `changed`.
fn converge<T: PartialEq + Clone>(
    field: &mut T,
    wanted: &Option<T>,
    name: &str,
    changed: &mut BTreeSet<String>,
) {
    if let Some(value) = wanted
        && value != field
    {
        *field = value.clone();
        changed.insert(name.to_owned());
    }
}

/// The id a key or stable id names (0, which no object has, for a foreign one).
fn id_of(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

impl Site {
    /// Reads and validates an order's changes against the store.
    fn wanted(&self, order: &ProvisioningOrder) -> Result<Wanted, String> {
        let mut w = Wanted::default();
        for (property, change) in &order.changes.properties {
            match (property.as_str(), change) {
                (NAME, PropertyChange::Set(ScalarValue::String(s))) => w.name = Some(s.clone()),
                (NOTE, PropertyChange::Set(ScalarValue::String(s))) => {
                    w.note = Some(Some(s.clone()))
                }
                (NOTE, PropertyChange::Clear) => w.note = Some(None),
                (ENABLED, PropertyChange::Set(ScalarValue::Bool(b))) => w.enabled = Some(*b),
                (PASSWORD, PropertyChange::Set(ScalarValue::Secret(s))) if !s.is_redacted() => {
                    w.password = Some(s.clone());
                }
                _ => {
                    return Err(format!(
                        "`{property}` is unknown or has a value of the wrong kind (a masked secret?)"
                    ));
                }
            }
        }
        for (navigation, change) in &order.changes.navigations {
            if navigation != MEMBER_OF {
                return Err(format!("unknown navigation `{navigation}`"));
            }
            for (references, ids) in [(&change.add, &mut w.add), (&change.remove, &mut w.remove)] {
                for reference in references {
                    let id = id_of(reference.get(DN_KEY).unwrap_or_default());
                    match self.objects.get(&id) {
                        Some(o) if o.kind.as_str() == GROUP => ids.push(id),
                        _ => return Err(format!("`{MEMBER_OF}`: no group {reference:?}")),
                    }
                }
            }
        }
        Ok(w)
    }

    /// Applies what an order wants to an existing object.
    fn update(
        &mut self,
        id: u64,
        w: &Wanted,
        order: &ProvisioningOrder,
    ) -> Result<Executed, ConnectorError> {
        let kind = &self.objects[&id].kind;
        if let Some(name) = &w.name
            && self
                .objects
                .iter()
                .any(|(other, o)| *other != id && o.kind == *kind && o.name == *name)
        {
            let message = format!("the name {name:?} is held by another {kind}");
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                order.change_type.into(),
                message,
            )
            .for_order(order));
        }
        let version = self.version + 1;
        let o = self.objects.get_mut(&id).expect("the caller found it");
        let mut changed = BTreeSet::new();
        converge(&mut o.name, &w.name, NAME, &mut changed);
        converge(&mut o.note, &w.note, NOTE, &mut changed);
        converge(&mut o.enabled, &w.enabled, ENABLED, &mut changed);
        converge(
            &mut o.password,
            &w.password.clone().map(Some),
            PASSWORD,
            &mut changed,
        );
        for g in &w.add {
            if o.groups.insert(*g) {
                changed.insert(MEMBER_OF.to_owned());
            }
        }
        for g in &w.remove {
            if o.groups.remove(g) {
                changed.insert(MEMBER_OF.to_owned());
            }
        }
        if !changed.is_empty() {
            o.version = version;
            self.version = version;
        }
        Ok(Executed::new(id.to_string())
            .with_stable_id(Some(StableId::new(id.to_string())))
            .with_changed(changed))
    }

    fn resource(id: u64, o: &Object) -> Resource {
        let groups: BTreeSet<Reference> = o
            .groups
            .iter()
            .map(|g| Reference::key(DN_KEY, g.to_string()))
            .collect();
        let mut r = Resource::new(id.to_string())
            .with_entity_type(o.kind.clone())
            .with(NAME, o.name.clone())
            .with(ENABLED, o.enabled)
            .with(MEMBER_OF, groups);
        if let Some(note) = &o.note {
            r = r.with(NOTE, note.clone());
        }
        r.stable_id = Some(StableId::new(id.to_string()));
        r
    }
}

impl BadgeConnector {
    fn lock(&self) -> MutexGuard<'_, Site> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cookie(&self, version: u64) -> ExportCookie {
        ExportCookie(format!("{}:{version}", self.site))
    }

    fn apply(&self, order: &ProvisioningOrder) -> Result<Executed, ConnectorError> {
        let operation = Operation::from(order.change_type);
        let error =
            |kind, message: String| ConnectorError::new(kind, operation, message).for_order(order);
        let kind = &order.resource_type.target_entity_type.id;
        if ![USER, GROUP].contains(&kind.as_str()) {
            return Err(error(
                ErrorKind::InvalidOrder,
                format!("no entity type `{kind}` here"),
            ));
        }
        // One lock for validation and writes: an invalid order writes nothing.
        let mut site = self.lock();
        let w = site
            .wanted(order)
            .map_err(|m| error(ErrorKind::InvalidOrder, m))?;
        let key = order.resource.as_ref().map_or("", |r| r.id.as_str());
        // By stable id when the order carries one, else by key; never the object of a stale key.
        let target = order
            .resource
            .as_ref()
            .and_then(|r| r.stable_id.as_ref())
            .map_or(key, |s| s.as_str());
        let found = Some(id_of(target)).filter(|id| site.objects.contains_key(id));
        match (order.change_type, found) {
            (ChangeType::Added, _) => {
                let Some(name) = &w.name else {
                    return Err(error(
                        ErrorKind::InvalidOrder,
                        format!("`{NAME}` is required"),
                    ));
                };
                let same = site
                    .objects
                    .iter()
                    .find(|(_, o)| o.kind == *kind && o.name == *name);
                if let Some((&id, o)) = same {
                    // Adopt, unless the order asks for review of an account it did not create.
                    if order.arguments.contains_key(ADOPTION_REVIEW_ARGUMENT)
                        && o.created_by != order.order_id
                    {
                        return Err(ConnectorError::adoption_needs_review(&id.to_string(), None)
                            .for_order(order));
                    }
                    return site
                        .update(id, &w, order)
                        .map(|done| done.with_adopted(true));
                }
                let id = site.version + 1;
                let o = Object {
                    kind: kind.clone(),
                    name: String::new(),
                    note: None,
                    enabled: true,
                    password: None,
                    groups: BTreeSet::new(),
                    version: id,
                    created_by: order.order_id.clone(),
                };
                site.objects.insert(id, o);
                site.update(id, &w, order)
            }
            (ChangeType::Modified, Some(id)) => site.update(id, &w, order),
            (ChangeType::Modified, None) => Err(error(
                ErrorKind::NotFound,
                format!("no object {target}; the order's key {key} is left untouched"),
            )),
            (ChangeType::Deleted, Some(id)) => {
                site.objects.remove(&id);
                site.version += 1;
                let version = site.version;
                site.deleted.insert(version, id);
                for o in site.objects.values_mut() {
                    o.groups.remove(&id);
                }
                Ok(Executed::new(key)
                    .with_stable_id(Some(StableId::new(target)))
                    .with_changed(["deleted"]))
            }
            (ChangeType::Deleted, None) => Ok(Executed::new(key).with_note(format!(
                "nothing deleted: no object {target}; the order's key {key} is left untouched"
            ))),
        }
    }

    /// One page of an export: up to `page_size` objects from id `from`, those changed since
    /// `since` (an incremental export) and of the requested types; the last page adds the
    /// deletions since `since` and the cookie of `start`, the change number when it began.
    fn page(&self, from: u64, since: Option<u64>, types: &[EntityTypeId], start: u64) -> Page<u64> {
        let site = self.lock();
        let objects: Vec<_> = site.objects.range(from..).take(self.page_size).collect();
        let items = objects
            .iter()
            .filter(|(_, o)| {
                since.is_none_or(|v| o.version > v) && (types.is_empty() || types.contains(&o.kind))
            })
            .map(|(id, o)| Site::resource(**id, o).into());
        if objects.len() == self.page_size {
            return Page::more(items, objects[objects.len() - 1].0 + 1);
        }
        let deleted = since
            .map(|v| site.deleted.range(v + 1..))
            .into_iter()
            .flatten();
        let deleted = deleted.map(|(_, id)| autoprov_connector::ExportItem::Deleted {
            id: ResourceId::new(id.to_string()),
            stable_id: Some(StableId::new(id.to_string())),
        });
        Page::last(items.chain(deleted), self.cookie(start))
    }
}

#[async_trait]
impl Connector for BadgeConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        self.apply(order).map(Fulfillment::Executed)
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        let error =
            |kind, message: String| Err(ConnectorError::new(kind, Operation::Export, message));
        if let Some(scope) = &request.scope {
            return error(
                ErrorKind::Unsupported,
                format!("no containers: the scope {scope:?}"),
            );
        }
        let start = self.lock().version;
        let since = match &request.mode {
            ExportMode::Complete => None,
            ExportMode::Incremental(cookie) => {
                let prefix = format!("{}:", self.site);
                match cookie.0.strip_prefix(&prefix).and_then(|v| v.parse().ok()) {
                    Some(version) if version <= start => Some(version),
                    _ => {
                        return error(
                            ErrorKind::Conflict,
                            format!(
                                "{cookie:?} is not a cookie of site {}; run a complete export",
                                self.site
                            ),
                        );
                    }
                }
            }
            other => return error(ErrorKind::Unsupported, format!("export mode {other:?}")),
        };
        let this = self.clone();
        let types = request.entity_types;
        Ok(paged_export(0, move |from| {
            std::future::ready(Ok(this.page(from, since, &types, start)))
        }))
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        Ok(Some(self.cookie(self.lock().version)))
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        let site = self.lock();
        let object = site.objects.get(&id_of(target.as_str()));
        Ok(object.is_some_and(|o| o.password.as_ref() == Some(password)))
    }
}

/// The package: builds badge connections from `{"Site": "HQ"}` (and an optional
/// `"PageSize"`, default 100). Connections to the same site share its store.
#[derive(Default)]
pub struct BadgePackage {
    sites: Mutex<HashMap<String, Arc<Mutex<Site>>>>,
}

/// The package's settings.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Settings {
    /// The site whose badges the connection manages.
    site: String,
    /// How many objects an export reads at a time.
    #[serde(default = "default_page_size")]
    page_size: NonZeroUsize,
}

fn default_page_size() -> NonZeroUsize {
    NonZeroUsize::new(100).expect("not zero")
}

#[async_trait]
impl Package for BadgePackage {
    fn id(&self) -> PackageId {
        PACKAGE_ID.into()
    }

    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings: Settings =
            parse_settings(settings).map_err(|e| e.for_connection(&connection))?;
        let mut sites = self.sites.lock().unwrap_or_else(PoisonError::into_inner);
        let store = sites.entry(settings.site.clone()).or_default().clone();
        let mut capabilities = Capabilities::full();
        capabilities.move_parent = false;
        capabilities.containers = false;
        Ok(Arc::new(BadgeConnector {
            info: ConnectorInfo::new(PACKAGE_ID, connection, capabilities),
            site: settings.site,
            page_size: settings.page_size.get(),
            store,
        }))
    }
}
