//! A custom connector package written from scratch, registered from JSON settings and proven
//! with the conformance kit.
//!
//! The managed system is a toy badge system (door badges of a site) kept in a `BTreeMap`:
//! flat names (no containers), no groups. The package shows everything a real one needs:
//! declared capabilities, validation before any write, AD-like idempotency, stable ids,
//! write-only secrets (the badge PIN), complete and incremental export with cookies, errors
//! classified once with the order named.
//!
//! Run it: `cargo run --example custom_connector` (it prints each check and exits non-zero if
//! one fails). `cargo test -p autoprov-connector` runs the same kit against it as tests.

use autoprov_connector::testkit::{self, KitProfile};
use autoprov_connector::{
    ADOPTION_REVIEW_ARGUMENT, Capabilities, ConnectionConfig, Connector, ConnectorError,
    ConnectorInfo, ErrorKind, Executed, ExportCookie, ExportItem, ExportMode, ExportRequest,
    ExportStream, Fulfillment, Operation, Package, PackageRegistry, RESENT_ARGUMENT, SettingsError,
    async_trait, parse_settings,
};
use autoprov_core::{
    ChangeType, ConnectionId, PackageId, PropertyChange, ProvisioningOrder, Resource, ResourceId,
    ScalarValue, Secret, StableId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

/// The package id: what connection files name in `Package`.
pub const PACKAGE_ID: &str = "acme.badges";
/// The one entity type of the system.
pub const BADGE_HOLDER: &str = "badge_holder";

/// The properties a badge holder takes: the name, the unique badge number (required), a note,
/// whether the badge opens doors, and the PIN (write-only).
const NAME: &str = "name";
const BADGE: &str = "badge";
const NOTE: &str = "note";
const ENABLED: &str = autoprov_connector::schema::ENABLED;
const PIN: &str = autoprov_connector::schema::PASSWORD;

/// One badge holder as the system stores it.
#[derive(Clone)]
struct Holder {
    name: String,
    badge: String,
    note: Option<String>,
    enabled: bool,
    /// Only a fingerprint of the PIN is kept; it is never exported.
    pin: Option<u64>,
    /// The change number of its last write.
    version: u64,
    /// The order that created it: sent again, that order adopts it without review.
    created_by: String,
}

#[derive(Default)]
struct Site {
    holders: BTreeMap<StableId, Holder>,
    next_id: u64,
    version: u64,
    /// Deletions, by change number, for incremental exports.
    deleted: BTreeMap<u64, StableId>,
}

/// A connection to one site's badge system.
#[derive(Clone)]
pub struct BadgeConnector {
    info: ConnectorInfo,
    site: String,
    state: Arc<Mutex<Site>>,
}

impl std::fmt::Debug for BadgeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the holders: a Debug line ends up in logs.
        f.debug_struct("BadgeConnector")
            .field("connection", &self.info.connection)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

fn pin_fingerprint(id: &StableId, pin: &Secret) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    // A redacted PIN never gets here: reading the order refuses it.
    (id.as_str(), pin.expose().ok()).hash(&mut h);
    h.finish()
}

/// What an order asks for, validated before anything is written.
#[derive(Default)]
struct Wanted {
    name: Option<String>,
    badge: Option<String>,
    note: Option<Option<String>>,
    enabled: Option<bool>,
    pin: Option<Secret>,
}

fn invalid(order: &ProvisioningOrder, operation: Operation, message: String) -> ConnectorError {
    ConnectorError::invalid_order(operation, message).for_order(order)
}

impl BadgeConnector {
    /// An empty site.
    pub fn new(connection: impl Into<ConnectionId>, site: impl Into<String>) -> Self {
        let mut capabilities = Capabilities::none();
        capabilities.create = true;
        capabilities.update = true;
        capabilities.delete = true;
        capabilities.rename = true;
        capabilities.enable_disable = true;
        capabilities.password = true;
        capabilities.export = true;
        capabilities.incremental_export = true;
        capabilities.special_characters = true;
        Self {
            info: ConnectorInfo::new(PACKAGE_ID, connection, capabilities),
            site: site.into(),
            state: Arc::new(Mutex::new(Site::default())),
        }
    }

    fn wanted(order: &ProvisioningOrder, operation: Operation) -> Result<Wanted, ConnectorError> {
        let mut w = Wanted::default();
        for (property, change) in &order.changes.properties {
            let bad = |what: &str| invalid(order, operation, format!("`{property}`: {what}"));
            match (property.as_str(), change) {
                (NAME, PropertyChange::Set(ScalarValue::String(s))) if !s.is_empty() => {
                    w.name = Some(s.clone());
                }
                (BADGE, PropertyChange::Set(ScalarValue::String(s))) if !s.is_empty() => {
                    w.badge = Some(s.clone());
                }
                (NOTE, PropertyChange::Set(ScalarValue::String(s))) => {
                    w.note = Some(Some(s.clone()))
                }
                (NOTE, PropertyChange::Clear) => w.note = Some(None),
                (ENABLED, PropertyChange::Set(ScalarValue::Bool(b))) => w.enabled = Some(*b),
                (PIN, PropertyChange::Set(ScalarValue::Secret(s))) if s.is_redacted() => {
                    return Err(bad("a masked secret read back from a file"));
                }
                (PIN, PropertyChange::Set(ScalarValue::Secret(s))) if !s.is_empty() => {
                    w.pin = Some(s.clone());
                }
                (NAME | BADGE | NOTE | ENABLED | PIN, _) => {
                    return Err(bad("a value of the wrong kind"));
                }
                _ => {
                    return Err(invalid(
                        order,
                        operation,
                        format!("unknown property `{property}`"),
                    ));
                }
            }
        }
        if let Some((navigation, _)) = order
            .changes
            .navigations
            .iter()
            .find(|(_, d)| !d.is_empty())
        {
            return Err(invalid(
                order,
                operation,
                format!("unknown navigation `{navigation}`"),
            ));
        }
        Ok(w)
    }

    /// Applies what an order wants to one holder; returns the properties written.
    fn converge(id: &StableId, holder: &mut Holder, w: &Wanted) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        if let Some(name) = &w.name
            && *name != holder.name
        {
            holder.name = name.clone();
            changed.insert(NAME.to_owned());
        }
        if let Some(badge) = &w.badge
            && *badge != holder.badge
        {
            holder.badge = badge.clone();
            changed.insert(BADGE.to_owned());
        }
        if let Some(note) = &w.note
            && *note != holder.note
        {
            holder.note = note.clone();
            changed.insert(NOTE.to_owned());
        }
        if let Some(enabled) = w.enabled
            && enabled != holder.enabled
        {
            holder.enabled = enabled;
            changed.insert(ENABLED.to_owned());
        }
        if let Some(pin) = &w.pin {
            let fingerprint = Some(pin_fingerprint(id, pin));
            if fingerprint != holder.pin {
                holder.pin = fingerprint;
                changed.insert(PIN.to_owned());
            }
        }
        changed
    }

    fn resource(id: &StableId, h: &Holder) -> Resource {
        let mut r = Resource::new(id.as_str())
            .with_entity_type(BADGE_HOLDER)
            .with(NAME, h.name.clone())
            .with(BADGE, h.badge.clone())
            .with(ENABLED, h.enabled);
        if let Some(note) = &h.note {
            r = r.with(NOTE, note.clone());
        }
        r.stable_id = Some(id.clone());
        r
    }

    fn apply(&self, order: &ProvisioningOrder) -> Result<Executed, ConnectorError> {
        let operation = Operation::from(order.change_type);
        if order.resource_type.target_entity_type.id.as_str() != BADGE_HOLDER {
            return Err(invalid(
                order,
                operation,
                "only badge holders live here".into(),
            ));
        }
        let wanted = Self::wanted(order, operation)?;
        // One lock for validation and writes: an invalid order writes nothing.
        let mut site = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let holder_of = |site: &Site, f: &dyn Fn(&Holder) -> bool| {
            site.holders
                .iter()
                .find(|(_, h)| f(h))
                .map(|(id, _)| id.clone())
        };
        let target = order.resource.as_ref().map(|r| {
            // By stable id first, then by key (both are the stable id here).
            r.stable_id
                .clone()
                .unwrap_or_else(|| StableId::new(r.id.as_str()))
        });
        // The holder the order's key names, when it is not the target: a stale key. It is never
        // touched; the outcome names it.
        let other_at_key = order
            .resource
            .as_ref()
            .map(|r| StableId::new(r.id.as_str()))
            .filter(|k| Some(k) != target.as_ref() && site.holders.contains_key(k));
        match order.change_type {
            ChangeType::Added => {
                let (Some(name), Some(badge)) = (&wanted.name, &wanted.badge) else {
                    return Err(invalid(
                        order,
                        operation,
                        format!("`{NAME}` and `{BADGE}` are required"),
                    ));
                };
                let by_name = holder_of(&site, &|h| h.name == *name);
                let by_badge = holder_of(&site, &|h| h.badge == *badge);
                let id = match (by_name, by_badge) {
                    // The same holder: adopt it and converge — unless the order asks for review
                    // before adopting a holder it did not create (ADOPTION_REVIEW_ARGUMENT).
                    (Some(a), Some(b)) if a == b => {
                        let args = &order.arguments;
                        let own = args.contains_key(RESENT_ARGUMENT)
                            && site.holders[&a].created_by == order.order_id.as_str();
                        if args.contains_key(ADOPTION_REVIEW_ARGUMENT) && !own {
                            return Err(ConnectorError::adoption_needs_review(&a, Some(&a)));
                        }
                        a
                    }
                    (None, None) => {
                        site.next_id += 1;
                        let id = StableId::new(format!("{}-{:04}", self.site, site.next_id));
                        site.holders.insert(
                            id.clone(),
                            Holder {
                                name: name.clone(),
                                badge: badge.clone(),
                                note: None,
                                enabled: false,
                                pin: None,
                                version: 0,
                                created_by: order.order_id.to_string(),
                            },
                        );
                        let holder = site.holders.get_mut(&id).expect("just inserted");
                        let mut changed = Self::converge(&id, holder, &wanted);
                        changed.extend([NAME.to_owned(), BADGE.to_owned()]);
                        site.version += 1;
                        let version = site.version;
                        site.holders.get_mut(&id).expect("just inserted").version = version;
                        let mut done = Executed::new(id.as_str());
                        done.stable_id = Some(id);
                        done.changed = changed;
                        return Ok(done);
                    }
                    _ => {
                        return Err(ConnectorError::new(
                            ErrorKind::AlreadyExists,
                            operation,
                            format!("{name:?} or badge {badge:?} is held by another holder"),
                        )
                        .for_order(order));
                    }
                };
                self.update(&mut site, &id, &wanted, true)
            }
            ChangeType::Modified => {
                let Some(id) = target.clone().filter(|id| site.holders.contains_key(id)) else {
                    let message = match (&target, &other_at_key) {
                        (Some(id), Some(other)) => format!(
                            "no such holder {id}; its key names holder {other}, left untouched"
                        ),
                        _ => "no such holder".to_owned(),
                    };
                    return Err(ConnectorError::new(ErrorKind::NotFound, operation, message)
                        .for_order(order));
                };
                for (value, get) in [
                    (
                        &wanted.name,
                        (|h: &Holder| h.name.clone()) as fn(&Holder) -> String,
                    ),
                    (&wanted.badge, |h: &Holder| h.badge.clone()),
                ] {
                    if let Some(value) = value
                        && holder_of(&site, &|h| get(h) == *value).is_some_and(|other| other != id)
                    {
                        return Err(ConnectorError::new(
                            ErrorKind::AlreadyExists,
                            operation,
                            format!("{value:?} is held by another holder"),
                        )
                        .for_order(order));
                    }
                }
                self.update(&mut site, &id, &wanted, false)
            }
            ChangeType::Deleted => {
                let key = order
                    .resource
                    .as_ref()
                    .map(|r| r.id.clone())
                    .unwrap_or_else(|| ResourceId::new(""));
                let mut done = Executed::new(key);
                let Some(id) = target.clone().filter(|id| site.holders.contains_key(id)) else {
                    // Deleting a missing holder succeeds; one the key names is left alone.
                    if let (Some(id), Some(other)) = (&target, &other_at_key) {
                        done = done.with_note(format!(
                            "nothing deleted: holder {id} is gone; its key names holder {other}, \
                             left untouched"
                        ));
                    }
                    return Ok(done);
                };
                site.holders.remove(&id);
                site.version += 1;
                let version = site.version;
                site.deleted.insert(version, id.clone());
                done.stable_id = Some(id);
                done.changed.insert("deleted".into());
                Ok(done)
            }
        }
    }

    fn update(
        &self,
        site: &mut Site,
        id: &StableId,
        wanted: &Wanted,
        adopted: bool,
    ) -> Result<Executed, ConnectorError> {
        let holder = site.holders.get_mut(id).expect("checked");
        let changed = Self::converge(id, holder, wanted);
        if !changed.is_empty() {
            site.version += 1;
            let version = site.version;
            site.holders.get_mut(id).expect("checked").version = version;
        }
        let mut done = Executed::new(id.as_str());
        done.stable_id = Some(id.clone());
        done.changed = changed;
        done.adopted = adopted;
        Ok(done)
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
        if !request.entity_types.is_empty()
            && !request
                .entity_types
                .iter()
                .any(|t| t.as_str() == BADGE_HOLDER)
        {
            let cookie = ExportCookie(format!(
                "{}:{}",
                self.site,
                self.state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .version
            ));
            return Ok(Box::pin(futures::stream::iter([Ok(
                ExportItem::Complete { cookie },
            )])));
        }
        let site = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let since = match &request.mode {
            ExportMode::Complete => None,
            ExportMode::Incremental(cookie) => {
                let version = cookie
                    .0
                    .strip_prefix(&format!("{}:", self.site))
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|v| *v <= site.version);
                match version {
                    Some(v) => Some(v),
                    None => {
                        return Err(ConnectorError::new(
                            ErrorKind::Conflict,
                            Operation::Export,
                            format!(
                                "{cookie:?} is not a cookie of site {}; run a complete export",
                                self.site
                            ),
                        ));
                    }
                }
            }
            other => {
                return Err(ConnectorError::new(
                    ErrorKind::Unsupported,
                    Operation::Export,
                    format!("export mode {other:?}"),
                ));
            }
        };
        // A toy system: the items are copied out under the lock. A real package pages through
        // the system here instead (see `InMemoryConnector` or the AD package).
        let mut items: Vec<Result<ExportItem, ConnectorError>> = site
            .holders
            .iter()
            .filter(|(_, h)| since.is_none_or(|v| h.version > v))
            .map(|(id, h)| Ok(ExportItem::Resource(Self::resource(id, h))))
            .collect();
        if let Some(v) = since {
            items.extend(site.deleted.range(v + 1..).map(|(_, id)| {
                Ok(ExportItem::Deleted {
                    id: id.as_str().into(),
                    stable_id: Some(id.clone()),
                })
            }));
        }
        items.push(Ok(ExportItem::Complete {
            cookie: ExportCookie(format!("{}:{}", self.site, site.version)),
        }));
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

/// The package: builds badge connections from `{"Site": "HQ"}`.
pub struct BadgePackage;

/// The package's settings.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BadgeSettings {
    /// The site whose badges the connection manages.
    site: String,
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
        if !settings.is_object() {
            return Err(SettingsError::new(
                "Settings",
                "must be an object like {\"Site\": \"HQ\"}",
            )
            .for_connection(&connection));
        }
        // The one settings parser of autoprov-connector: a wrong shape names the setting.
        let settings: BadgeSettings =
            parse_settings(settings).map_err(|e| e.for_connection(&connection))?;
        if settings.site.is_empty() {
            return Err(SettingsError::new("Site", "must be a non-empty string")
                .for_connection(&connection));
        }
        let site = settings.site;
        Ok(Arc::new(BadgeConnector::new(connection, site)))
    }
}

/// How the kit speaks to a badge system.
pub fn kit_profile() -> KitProfile {
    let mut p = KitProfile::new(BADGE_HOLDER, NAME);
    p.key_property = Some(BADGE.into());
    p.required_property = Some(BADGE.into());
    p.text_property = NOTE.into();
    p
}

/// A connection built the way a host builds it: a registry with the package, and a JSON
/// connections file.
pub async fn connect_from_json() -> (Arc<dyn Connector>, KitProfile) {
    let mut registry = PackageRegistry::new();
    registry.register(BadgePackage);
    let config: ConnectionConfig = serde_json::from_str(
        r#"{"Id": "badges-hq", "Package": "acme.badges", "Settings": {"Site": "HQ"}}"#,
    )
    .expect("a valid connection entry");
    let connection = registry
        .connect(&config)
        .await
        .expect("the badge package connects");
    (connection, kit_profile())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(async {
        let (connection, profile) = connect_from_json().await;
        testkit::run_all(connection.as_ref(), &profile).await
    });
    println!("{report}");
    if !report.is_success() {
        std::process::exit(1);
    }
}
