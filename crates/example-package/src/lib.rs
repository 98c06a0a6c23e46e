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

use autoprov_connector::ErrorKind::{AlreadyExists, InvalidOrder, NotFound};
use autoprov_connector::converge::converge_properties;
use autoprov_connector::schema::{
    ConnectionSchema, DN_KEY, ENABLED, EntitySchema, MEMBER_OF, PASSWORD, PropertySchema, ValueType,
};
use autoprov_connector::{
    ADOPTION_REVIEW_ARGUMENT, Capabilities, Connector, ConnectorError, ConnectorInfo, Executed,
    ExportCookie, ExportItem, ExportRequest, ExportStream, Fulfillment, Operation, Package, Page,
    async_trait, counter_cookie, counter_since, paged_export, parse_settings,
};
use autoprov_core::{
    ChangeType, ConnectionId, EntityTypeId, PackageId, PropertyValue, ProvisioningOrder, Reference,
    Resource, ResourceId, ScalarValue as Value, Secret, StableId,
};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

/// The package id: what connection files name in `Package`.
pub const PACKAGE_ID: &str = "acme.badges";
/// The entity type of badge holders.
pub const USER: &str = "user";
/// The entity type of door groups. Users and groups are members of groups (`memberOf`).
pub const GROUP: &str = "group";
/// The name of a user or group, unique within its type: required, changed by a rename.
pub const NAME: &str = "name";
/// A free-text note.
pub const NOTE: &str = "note";

/// One user or group as the system stores it: its type, its values as exported (and its
/// password), its groups, and the change number of its last write.
#[derive(Default)]
struct Object {
    kind: String,
    values: BTreeMap<String, PropertyValue>,
    groups: BTreeSet<Reference>,
    version: u64,
}

/// A site's store.
#[derive(Default)]
struct Site {
    objects: BTreeMap<u64, Object>,
    /// Who created each object, by id (ids are ranks in it: never reused): sent again, that
    /// order adopts it without review.
    created_by: HashMap<u64, autoprov_core::OrderId>,
    /// The deletions by change number, for incremental exports.
    deleted: BTreeMap<u64, ExportItem>,
    version: u64,
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
        write!(f, "BadgeConnector({})", self.info.connection) // never the objects
    }
}

/// What orders may write, checked before anything is written; also the kit's profile and
/// the docs (`SCHEMA.to_markdown()`).
static SCHEMA: LazyLock<ConnectionSchema> = LazyLock::new(|| {
    let text = || PropertySchema::new(ValueType::String);
    let entity = |kind| {
        let groups = PropertySchema::reference(Some(GROUP.into())).multi_valued();
        let entity = EntitySchema::new(kind).with_property(NAME, text().required());
        entity
            .with_property(NOTE, text())
            .with_property(MEMBER_OF, groups)
    };
    let user = entity(USER).with_property(ENABLED, PropertySchema::new(ValueType::Bool));
    let user = user.with_property(PASSWORD, text().secret());
    ConnectionSchema::new()
        .with_entity(user)
        .with_entity(entity(GROUP))
});

type Result<T, E = ConnectorError> = std::result::Result<T, E>;
/// An order's membership changes: the groups added, and those removed.
type Groups = [BTreeSet<Reference>; 2];

/// The id a key or stable id names (`u64::MAX`, which no object has, for a foreign one).
fn id_of(text: &str) -> u64 {
    text.parse().unwrap_or(u64::MAX)
}

/// The key and stable id of the object `id`: both its id.
fn ids(id: u64) -> (ResourceId, Option<StableId>) {
    (id.to_string().into(), Some(StableId::new(id.to_string())))
}

impl Site {
    /// The order's membership changes, each naming a group of the store (the schema has
    /// checked the rest before this).
    fn groups(&self, order: &ProvisioningOrder) -> Result<Groups, String> {
        let mut groups = Groups::default();
        for change in order.changes.navigations.values() {
            for (i, references) in [&change.add, &change.remove].into_iter().enumerate() {
                for group in references {
                    let key = group.get(DN_KEY).unwrap_or_default();
                    let found = self.objects.get(&id_of(key));
                    if found.is_none_or(|o| o.kind.as_str() != GROUP) {
                        return Err(format!("`{MEMBER_OF}`: no group {group:?}"));
                    }
                    groups[i].insert(Reference::key(DN_KEY, key));
                }
            }
        }
        Ok(groups)
    }

    /// The object of the order's type with the name the order gives, if any.
    fn named(&self, order: &ProvisioningOrder) -> Option<u64> {
        let kind = &order.resource_type.target_entity_type.id;
        let name: Option<PropertyValue> = order.changes.scalar(NAME).map(|n| n.clone().into());
        let mut same = self.objects.iter().filter(|(_, o)| o.kind == kind.as_str());
        let found = same.find(|(_, o)| o.values.get(NAME) == name.as_ref());
        found.map(|(id, _)| *id)
    }

    /// Applies an order to an existing object.
    fn update(&mut self, id: u64, order: &ProvisioningOrder, [add, remove]: Groups) -> Executed {
        let o = self.objects.get_mut(&id).expect("the caller found it");
        let mut changed = converge_properties(&mut o.values, &order.changes);
        let before = o.groups.clone();
        o.groups.extend(add);
        o.groups.retain(|g| !remove.contains(g));
        changed.extend((o.groups != before).then(|| MEMBER_OF.to_owned()));
        if !changed.is_empty() {
            self.version += 1;
            o.version = self.version;
        }
        let (key, stable_id) = ids(id);
        let done = Executed::new(key).with_stable_id(stable_id);
        done.with_changed(changed)
    }
}

impl BadgeConnector {
    fn lock(&self) -> MutexGuard<'_, Site> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, order: &ProvisioningOrder) -> Result<Executed> {
        let op = Operation::from(order.change_type);
        let error = |kind, message: String| ConnectorError::new(kind, op, message);
        SCHEMA.validate(order)?;
        // One lock for validation and writes: an invalid order writes nothing.
        let site = &mut *self.lock();
        let groups = site.groups(order).map_err(|m| error(InvalidOrder, m))?;
        let key = order.resource.as_ref().map_or("", |r| r.id.as_str());
        // By stable id when the order carries one, else by key; never the object of a stale key.
        let stable_id = order.resource.as_ref().and_then(|r| r.stable_id.as_ref());
        let target = stable_id.map_or(key, |s| s.as_str());
        let found = Some(id_of(target)).filter(|id| site.objects.contains_key(id));
        match (order.change_type, found) {
            (ChangeType::Added, _) => {
                if let Some(id) = site.named(order) {
                    // Adopt, unless the order asks for review of an account it did not create.
                    let review = order.arguments.contains_key(ADOPTION_REVIEW_ARGUMENT);
                    if review && site.created_by.get(&id) != Some(&order.order_id) {
                        return Err(ConnectorError::adoption_needs_review(id, None));
                    }
                    return Ok(site.update(id, order, groups).with_adopted(true));
                }
                // Its id is the number of objects created before it: never reused.
                let id = site.created_by.len() as u64;
                let object = site.objects.entry(id).or_default();
                (object.kind, object.version) =
                    (order.resource_type.target_entity_type.id.to_string(), id);
                object.values.insert(ENABLED.to_owned(), true.into());
                site.created_by.insert(id, order.order_id.clone());
                Ok(site.update(id, order, groups))
            }
            (ChangeType::Modified, Some(id)) if site.named(order).is_some_and(|o| o != id) => {
                Err(error(AlreadyExists, "the name is taken".into()))
            }
            (ChangeType::Modified, Some(id)) => Ok(site.update(id, order, groups)),
            (ChangeType::Modified, None) => Err(error(NotFound, format!("no {target}, key {key}"))),
            (ChangeType::Deleted, Some(id)) => {
                site.objects.remove(&id);
                let group = Reference::key(DN_KEY, id.to_string());
                site.objects
                    .values_mut()
                    .for_each(|o| _ = o.groups.remove(&group));
                site.version += 1;
                let (key, stable_id) = ids(id);
                let done = Executed::new(key.clone()).with_stable_id(stable_id.clone());
                let gone = ExportItem::Deleted { id: key, stable_id };
                site.deleted.insert(site.version, gone);
                Ok(done.with_changed(["deleted"]))
            }
            (ChangeType::Deleted, None) => {
                Ok(Executed::new(key).with_note(format!("no {target} to delete, key {key}")))
            }
        }
    }

    /// One page of an export: up to `page_size` objects from id `from`, those changed since
    /// `since` (an incremental export) and of the requested types; the last page adds the
    /// deletions since `since` and the cookie of `start`, the change number when it began.
    fn page(&self, from: u64, since: Option<u64>, types: &[EntityTypeId], start: u64) -> Page<u64> {
        let site = self.lock();
        let objects: Vec<_> = site.objects.range(from..).take(self.page_size).collect();
        let changed = |o: &Object| since.is_none_or(|v| o.version > v);
        let of_type = |o: &Object| types.is_empty() || types.contains(&o.kind.as_str().into());
        let wanted = |o: &Object| changed(o) && of_type(o);
        let items = objects.iter().filter(|(_, o)| wanted(o)).map(|(id, o)| {
            let (key, stable_id) = ids(**id);
            let mut r = Resource::new(key).with_entity_type(o.kind.as_str());
            (r.values, r.stable_id) = (o.values.clone(), stable_id);
            r.values.remove(PASSWORD);
            ExportItem::Resource(r.with(MEMBER_OF, o.groups.clone()))
        });
        if objects.len() == self.page_size {
            return Page::more(items, objects[objects.len() - 1].0 + 1);
        }
        let deleted = since.map(|v| site.deleted.range(v + 1..));
        let deleted = deleted.into_iter().flatten().map(|(_, d)| d.clone());
        Page::last(items.chain(deleted), counter_cookie(&self.site, start))
    }
}

#[async_trait]
impl Connector for BadgeConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment> {
        let done = self.apply(order).map_err(|e| e.for_order(order))?;
        Ok(Fulfillment::Executed(done))
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream> {
        if let Some(scope) = &request.scope {
            let message = format!("no containers, no scope {scope:?}");
            return Err(ConnectorError::unsupported(Operation::Export, message));
        }
        let start = self.lock().version;
        let since = counter_since(&request.mode, &self.site, start)?;
        let (this, types) = (self.clone(), request.entity_types);
        let fetch = move |from| std::future::ready(Ok(this.page(from, since, &types, start)));
        Ok(paged_export(0, fetch))
    }

    fn schema(&self) -> Option<ConnectionSchema> {
        Some(SCHEMA.clone())
    }

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>> {
        Ok(Some(counter_cookie(&self.site, self.lock().version)))
    }

    async fn check_password(&self, target: &ResourceId, password: &Secret) -> Result<bool> {
        let site = self.lock();
        let object = site.objects.get(&id_of(target.as_str()));
        let stored = object.and_then(|o| o.values.get(PASSWORD));
        Ok(stored == Some(&Value::Secret(password.clone()).into()))
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
    page_size: Option<NonZeroUsize>,
}

#[async_trait]
impl Package for BadgePackage {
    fn id(&self) -> PackageId {
        PACKAGE_ID.into()
    }

    async fn connect(&self, connection: ConnectionId, json: Json) -> Result<Arc<dyn Connector>> {
        let settings = parse_settings::<Settings>(json).map_err(|e| e.for_connection(&connection));
        let settings = settings?;
        let mut sites = self.sites.lock().unwrap_or_else(PoisonError::into_inner);
        let store = sites.entry(settings.site.clone()).or_default().clone();
        let mut capabilities = Capabilities::full();
        (capabilities.move_parent, capabilities.containers) = (false, false);
        Ok(Arc::new(BadgeConnector {
            info: ConnectorInfo::new(PACKAGE_ID, connection, capabilities),
            site: settings.site,
            page_size: settings.page_size.map_or(100, NonZeroUsize::get),
            store,
        }))
    }
}
