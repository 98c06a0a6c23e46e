//! The [`Connector`] trait and the types of its calls.

use crate::capability::Capabilities;
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::schema::ConnectionSchema;
use async_trait::async_trait;
use autoprov_core::{
    ConnectionId, EntityTypeId, PackageId, ProvisioningOrder, Resource, ResourceId, Secret,
    StableId,
};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// What a connection is: its package, its id and its declared capabilities.
///
/// `#[non_exhaustive]`: build it with [`ConnectorInfo::new`]; it may gain fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectorInfo {
    /// The package (implementation), e.g. `autoprov.memory`, `autoprov.ad`.
    pub package: PackageId,
    /// The connection (configured instance).
    pub connection: ConnectionId,
    /// What it can do.
    pub capabilities: Capabilities,
}

impl ConnectorInfo {
    /// Describes a connection.
    pub fn new(
        package: impl Into<PackageId>,
        connection: impl Into<ConnectionId>,
        capabilities: Capabilities,
    ) -> Self {
        Self {
            package: package.into(),
            connection: connection.into(),
            capabilities,
        }
    }
}

/// What fulfilling an order achieved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Fulfillment {
    /// The connector applied the order.
    Executed(Executed),
    /// The order was handed to a human (manual connection); they will confirm or report.
    Transmitted {
        /// The ticket reference in the human queue.
        ticket: String,
    },
}

impl Fulfillment {
    /// The executed outcome, if the order was applied.
    pub fn executed(&self) -> Option<&Executed> {
        match self {
            Self::Executed(e) => Some(e),
            Self::Transmitted { .. } => None,
        }
    }
}
/// The order argument ([`ProvisioningOrder::arguments`]) the dispatcher sets, with the value
/// `"true"`, on an Added order it sends again after an earlier attempt of the same order
/// whose outcome is unknown (the process stopped during the call) or that failed (a step
/// after the creation, or the delivery of the initial password): the target that the order
/// then finds may be the one its own earlier attempt created, with an initial password that
/// nobody received.
///
/// A connector that generates initial passwords ([`Executed::initial_password`]) and adopts
/// an existing identical target for an Added order carrying this argument sets a new
/// password on it and hands it back, so that the person receives a password that works.
/// Without the argument an adopted target keeps its password: it may belong to someone.
///
/// [`ProvisioningOrder::arguments`]: autoprov_core::ProvisioningOrder::arguments
pub const RESENT_ARGUMENT: &str = "autoprov.resent";

/// The order argument ([`ProvisioningOrder::arguments`]) the dispatcher sets on an Added order
/// of a resource type that reviews adoptions (`ReviewAdoption`, on by default for privileged
/// types) until a person approved adopting: its value is the time of the order's first attempt
/// (RFC 3339).
///
/// A connector that finds an existing account matching such an order (the case where it would
/// otherwise adopt it) writes nothing and fails with
/// [`ConnectorError::adoption_needs_review`] ([`ErrorKind::NeedsReview`]) — unless the order also
/// carries [`RESENT_ARGUMENT`] and the package can tell that the account is the order's own: it
/// was created by an earlier attempt of the same order (the in-memory system records this), or
/// at or after the argument's time less the package's clock tolerance (a directory's creation
/// time). A package that cannot tell treats every existing account as not its own.
///
/// [`ProvisioningOrder::arguments`]: autoprov_core::ProvisioningOrder::arguments
/// [`ConnectorError::adoption_needs_review`]: crate::ConnectorError::adoption_needs_review
/// [`ErrorKind::NeedsReview`]: crate::ErrorKind::NeedsReview
pub const ADOPTION_REVIEW_ARGUMENT: &str = "autoprov.adoption-review";

/// How far a managed system's clock may be from this host's when a package decides whether an
/// account is the creation of an earlier attempt of the same order: Kerberos's default maximum
/// skew, which an Active Directory domain keeps its members within.
pub const ADOPTION_CLOCK_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// For a package that found an existing account matching an Added order: whether adopting it
/// must wait for review ([`ADOPTION_REVIEW_ARGUMENT`]). `created` is when the managed system
/// says the account was created, if it says.
///
/// `false` when the order does not ask for review. Otherwise `true` unless the order was sent
/// again ([`RESENT_ARGUMENT`]) and the account was created at or after the order's first
/// attempt less [`ADOPTION_CLOCK_TOLERANCE`]: then it is the order's own creation. An unknown
/// creation time or an unreadable argument means review.
///
/// ```
/// use autoprov_connector::{ADOPTION_REVIEW_ARGUMENT, RESENT_ARGUMENT, adoption_needs_review};
/// let mut order: autoprov_core::ProvisioningOrder = serde_json::from_value(serde_json::json!({
///     "OrderId": "o-1", "ChangeType": "Added", "Changes": {},
///     "ResourceType": {"Id": "rt", "Identifier": "rt", "SourceEntityType": {"Id": "u", "Identifier": "u"},
///                      "TargetEntityType": {"Id": "user", "Identifier": "user"}}
/// })).unwrap();
/// let created = "2026-12-01T20:00:01Z".parse().ok();
/// assert!(!adoption_needs_review(&order, created));
/// order.arguments.insert(ADOPTION_REVIEW_ARGUMENT.into(), "2026-12-01T20:00:00Z".into());
/// assert!(adoption_needs_review(&order, created));
/// order.arguments.insert(RESENT_ARGUMENT.into(), "true".into());
/// assert!(!adoption_needs_review(&order, created));
/// ```
pub fn adoption_needs_review(
    order: &ProvisioningOrder,
    created: Option<chrono::DateTime<chrono::Utc>>,
) -> bool {
    let Some(first_attempt) = order.arguments.get(ADOPTION_REVIEW_ARGUMENT) else {
        return false;
    };
    let resent = order.arguments.get(RESENT_ARGUMENT).map(String::as_str) == Some("true");
    let since = chrono::DateTime::parse_from_rfc3339(first_attempt).ok();
    let own = resent
        && matches!((created, since), (Some(c), Some(s))
            if c >= s.to_utc() - ADOPTION_CLOCK_TOLERANCE);
    !own
}

/// The outcome of an applied order.
///
/// `#[non_exhaustive]`: build it with [`Executed::new`] and the `with_*` setters; it may gain
/// fields.
///
/// ```
/// use autoprov_connector::Executed;
/// use autoprov_core::StableId;
/// let done = Executed::new("CN=jdoe,OU=Sales,DC=example,DC=test")
///     .with_stable_id(Some(StableId::new("c5c26e30-35d3-43ca-9ea4-44c41a57ea9c")))
///     .with_changed(["sn", "givenName"]);
/// assert!(!done.is_noop() && !done.adopted);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Executed {
    /// The target's key after the order (its DN after a create, rename or move). For a delete,
    /// the key it had.
    pub resource_id: ResourceId,
    /// The target's stable id, when known (always for creates and adoptions).
    pub stable_id: Option<StableId>,
    /// The properties the connector actually wrote. Empty when the managed system already held
    /// everything (an idempotent re-apply).
    pub changed: BTreeSet<String>,
    /// An Added order found an existing identical target and adopted it.
    pub adopted: bool,
    /// The initial password the connector generated and set (the order carried none): handed
    /// to the host's delivery hook and then dropped. Never serialized, never stored, shown
    /// masked in `Debug`.
    #[serde(skip)]
    pub initial_password: Option<Secret>,
    /// Why the connector wrote nothing on purpose, when that is not plain idempotence: e.g. a
    /// Deleted order whose stable id no longer exists while its key now names another object
    /// ("done, nothing written, the key is held by another object"). For the operator's eyes
    /// (logs, the order's history); never carries a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Executed {
    /// An outcome for the target `resource_id` with nothing written yet.
    pub fn new(resource_id: impl Into<ResourceId>) -> Self {
        Self {
            resource_id: resource_id.into(),
            stable_id: None,
            changed: BTreeSet::new(),
            adopted: false,
            initial_password: None,
            note: None,
        }
    }

    /// Attaches a note for the operator (see [`Executed::note`]).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Hands back the initial password the connector generated and set.
    pub fn with_initial_password(mut self, password: Secret) -> Self {
        self.initial_password = Some(password);
        self
    }

    /// Sets the target's stable id.
    pub fn with_stable_id(mut self, stable_id: Option<StableId>) -> Self {
        self.stable_id = stable_id;
        self
    }

    /// Sets the properties the connector wrote.
    pub fn with_changed(mut self, changed: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.changed = changed.into_iter().map(Into::into).collect();
        self
    }

    /// Marks an Added order that adopted an existing identical target.
    pub fn with_adopted(mut self, adopted: bool) -> Self {
        self.adopted = adopted;
        self
    }

    /// Whether nothing was written.
    pub fn is_noop(&self) -> bool {
        self.changed.is_empty()
    }
}

/// An opaque export cookie: where an incremental export resumes. It lives in
/// `autoprov-core` so that stores keep it without depending on the connector crate.
pub use autoprov_core::ExportCookie;

/// Complete or incremental export.
///
/// `#[non_exhaustive]`: a package answers a mode it does not know with an `Unsupported`
/// error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExportMode {
    /// Every resource.
    Complete,
    /// Only what changed since the cookie (created, changed, deleted).
    Incremental(ExportCookie),
}

/// What to export.
///
/// `#[non_exhaustive]`: build it with [`ExportRequest::complete`],
/// [`ExportRequest::incremental`] or [`ExportRequest::new`] and the setters; it may gain
/// fields (a package ignores none it does not know: new fields default to "no restriction").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportRequest {
    /// Complete or incremental.
    pub mode: ExportMode,
    /// Only these entity types; empty means every type the connection holds.
    pub entity_types: Vec<EntityTypeId>,
    /// Only resources below this container (a DN, or the connector's own container key).
    pub scope: Option<String>,
}

impl ExportRequest {
    /// An export of everything in `mode`.
    pub fn new(mode: ExportMode) -> Self {
        Self {
            mode,
            entity_types: Vec::new(),
            scope: None,
        }
    }

    /// A complete export of everything.
    pub fn complete() -> Self {
        Self::new(ExportMode::Complete)
    }

    /// An incremental export of everything since `cookie`.
    pub fn incremental(cookie: ExportCookie) -> Self {
        Self::new(ExportMode::Incremental(cookie))
    }

    /// Sets the mode, keeping the restrictions.
    pub fn with_mode(mut self, mode: ExportMode) -> Self {
        self.mode = mode;
        self
    }

    /// Restricts the export to some entity types.
    pub fn of_types(mut self, types: impl IntoIterator<Item = EntityTypeId>) -> Self {
        self.entity_types = types.into_iter().collect();
        self
    }

    /// Restricts the export to a container.
    pub fn within(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// One item of an export stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportItem {
    /// A resource as the managed system holds it now (never with a password).
    Resource(Resource),
    /// A resource that was deleted since the cookie (incremental exports only).
    Deleted {
        /// Its key.
        id: ResourceId,
        /// Its stable id, when known.
        stable_id: Option<StableId>,
    },
    /// The export finished; resume the next incremental export from this cookie. Always the
    /// last item of a stream that ran to its end.
    Complete {
        /// The cookie to store.
        cookie: ExportCookie,
    },
}

impl From<Resource> for ExportItem {
    fn from(resource: Resource) -> Self {
        Self::Resource(resource)
    }
}

/// A stream of export items. It is never buffered whole by the connector.
pub type ExportStream = BoxStream<'static, Result<ExportItem, ConnectorError>>;

/// Orders rendered in a managed system's own change language, for simulations and reviews:
/// LDIF for Active Directory. See [`Connector::preview`].
///
/// `#[non_exhaustive]`: build it with [`Preview::new`] and [`Preview::with_refused`]; it may
/// gain fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Preview {
    /// The language, e.g. `"ldif"`.
    pub format: &'static str,
    /// The rendering. It never holds a secret.
    pub text: String,
    /// The orders the connector would refuse as given, with why (they are not rendered).
    pub refused: Vec<ConnectorError>,
}

impl Preview {
    /// A rendering in the language `format` (e.g. `"ldif"`), refusing nothing.
    pub fn new(format: &'static str, text: impl Into<String>) -> Self {
        Self {
            format,
            text: text.into(),
            refused: Vec::new(),
        }
    }

    /// Sets the orders refused as given.
    pub fn with_refused(mut self, refused: Vec<ConnectorError>) -> Self {
        self.refused = refused;
        self
    }
}

/// A connector package's connection to one managed system.
///
/// Dyn-compatible: hosts hold connections as `Arc<dyn Connector>`. Forwarded for `Arc<T>` and
/// `Box<T>`. The behaviours listed under each method are what the conformance kit
/// (`testkit` feature) checks; each names the kit checks that cover it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    /// Package id, connection id and capabilities.
    ///
    /// Behaviour:
    /// - MUST return the same value for the life of the connection. (kit: `connection_check`)
    fn info(&self) -> &ConnectorInfo;

    /// Checks that the managed system answers and the credentials work.
    ///
    /// Behaviour:
    /// - MUST NOT write anything. (kit: `connection_check`)
    /// - MUST return `Unauthenticated` for refused credentials and `Unavailable`/`Timeout`
    ///   (temporary) when the system cannot be reached.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Applies one order (automated) or hands it to a human (manual).
    ///
    /// Behaviour:
    /// - An Added order creates the target with its scalars, password and initial memberships
    ///   (`memberOf_add`), and returns its key and stable id. (kit: `create_read_update_delete`,
    ///   `membership_add_twice_remove_absent`, `password_write_only`)
    /// - An Added order whose target already exists as the same account (same key) MUST adopt
    ///   it, converge its attributes, and report `adopted`; a different object holding the name
    ///   is `AlreadyExists`. (kit: `idempotent_create`)
    /// - A Modified order writes only the given properties; membership changes are value-level
    ///   adds and removes on the groups, never a replacement; adding a present member or
    ///   removing an absent one succeeds. A changed name or parent renames/moves the target and
    ///   keeps its stable id. (kit: `membership_add_twice_remove_absent`,
    ///   `rename_keeps_stable_id`, `move_keeps_stable_id`, `disable_enable`,
    ///   `modified_keeps_unmentioned`)
    /// - A rename onto a name another object holds fails with `AlreadyExists` (or `Conflict`)
    ///   and changes neither object. (kit: `rename_onto_taken_name`)
    /// - A Modified order of a missing target fails with `NotFound`; it is never reported
    ///   done and creates nothing. (kit: `modified_missing_target_fails`)
    /// - A Deleted order of a missing target succeeds. (kit: `idempotent_delete`)
    /// - Modified and Deleted orders that carry a stable id (`order.resource.stable_id`) act
    ///   on the object with that id only, wherever it is now; their key is never followed to
    ///   another object. When no object has the id and the key names another object, a
    ///   Deleted order succeeds writing nothing and says so in [`Executed::note`], and a
    ///   Modified order fails `NotFound` naming both stable ids. Orders without a stable id
    ///   find their target by key. (kit: `stale_key_never_touches_another_object`;
    ///   `special_characters_round_trip` sends the key alone)
    /// - An order the connector cannot apply as given (missing required attribute, unknown
    ///   property, a reference to a missing object, a value of the wrong kind) MUST fail with
    ///   a permanent `InvalidOrder` error and MUST NOT write anything. (kit:
    ///   `invalid_order_missing_required`, `invalid_order_unknown_property`,
    ///   `invalid_order_bad_reference`)
    /// - Re-applying an order already applied MUST succeed and change nothing (`changed` empty).
    ///   (kit: `reapply_changes_nothing`)
    /// - A password is written and never exported; it never appears in an error or log. (kit:
    ///   `password_write_only`)
    /// - Errors name the order, owner and target ([`ConnectorError::for_order`]). (kit: the
    ///   `invalid_order_*` checks)
    /// - A manual connection returns [`Fulfillment::Transmitted`] with a ticket. (kit:
    ///   `manual_transmits`)
    ///
    /// Cancel safety: the host's dispatcher drops the returned future when the order's deadline
    /// passes (and may drop it at any `.await` on shutdown), then re-sends the same order
    /// later, possibly to a new connection. So a package MUST guarantee that a call dropped at
    /// any point leaves the managed system either untouched, or with effects that the re-sent
    /// order converges: each write it issues is complete in itself (one LDAP operation, one API
    /// request; never a half-written value) and idempotent under the rules above (an Added
    /// order adopts what a dropped call created, membership deltas tolerate present and absent
    /// values, a Deleted order of a missing target succeeds). It MUST NOT hold state across the
    /// drop that a re-send depends on (a lock, a half-consumed stream, a pending local
    /// transaction), and MUST NOT spawn work that keeps writing after the future is dropped.
    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError>;

    /// Exports resources as a stream.
    ///
    /// Behaviour:
    /// - A complete export yields every resource of the requested types (in scope), then one
    ///   [`ExportItem::Complete`] with a cookie. (kit: `export_sees_fulfilment`)
    /// - An incremental export yields only resources created or changed since the cookie,
    ///   [`ExportItem::Deleted`] for deleted ones, then a new cookie.
    /// - An unusable cookie (expired, foreign) is a `Conflict` error; the caller runs a
    ///   complete export. (kit: `incremental_export`)
    /// - Exported resources carry the stable id, the key as `id`, `parentdn` and `memberOf`
    ///   navigations where the system has them, and never a password. (kit: every check reads
    ///   back through export; `password_write_only`)
    /// - MUST NOT buffer the whole system in memory.
    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError>;

    /// Renders orders in the managed system's own change language, writing and reading
    /// nothing; a job's simulation shows it next to the orders. The default, `None`, means the
    /// connector has no such language. The AD package renders LDIF.
    ///
    /// Behaviour:
    /// - A connector with a preview language returns `Some`, even for no orders.
    /// - MUST NOT write to, or read from, the managed system; MUST NOT render a secret.
    ///   (kit: `preview_is_offline_and_shows_no_secret`)
    /// - An order the connector would refuse as given goes to [`Preview::refused`] (an error
    ///   naming the order) instead of the text. (same check)
    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        let _ = orders;
        None
    }

    /// The declared schema of the connection's entity types: which properties each takes and
    /// how (type, multi-valued, required, key, secret, writable). The default, `None`, means
    /// the connection declares none.
    ///
    /// Behaviour:
    /// - MUST return the same value for the life of the connection, and MUST NOT do I/O.
    /// - A property it declares `secret` is never exported; one it declares read-only is
    ///   refused in orders. [`ConnectionSchema::validate`] checks an order against it (the
    ///   in-memory system runs it on every order before anything else).
    fn schema(&self) -> Option<ConnectionSchema> {
        None
    }

    /// The cookie an incremental export started now would start from, read without a full
    /// export (a directory's highest committed change number): a host that just loaded the
    /// system some other way (a bulk import, a restored backup) stores it and exports
    /// incrementally from then on. The default, `Ok(None)`, means the connection cannot tell:
    /// run a complete export and keep its cookie.
    ///
    /// Behaviour:
    /// - MUST NOT write anything.
    /// - The cookie has the format the connection's own exports emit: an incremental export
    ///   from it succeeds, holds nothing written before the call and everything written after
    ///   it. (kit: `latest_cookie_starts_after_writes`)
    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        Ok(None)
    }

    /// Whether `password` is the password of the account `target` (its key), for a connection
    /// that declares [`Capabilities::password_check`](crate::Capabilities::password_check)
    /// (like ConnId's `authenticate`). The default is an `Unsupported` error.
    ///
    /// Behaviour:
    /// - `Ok(true)` for the account's password, `Ok(false)` for another, also for an account
    ///   that is disabled or must change its password; MUST NOT change the account.
    /// - A password an order wrote verifies afterwards. (kit: `password_is_stored`)
    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        let _ = (target, password);
        Err(ConnectorError::unsupported(
            Operation::Read,
            "the connection cannot check passwords",
        ))
    }
}

macro_rules! forward_connector {
    ($ptr:ident) => {
        #[async_trait]
        impl<T: Connector + ?Sized> Connector for $ptr<T> {
            fn info(&self) -> &ConnectorInfo {
                (**self).info()
            }

            async fn check(&self) -> Result<(), ConnectorError> {
                (**self).check().await
            }

            async fn fulfill(
                &self,
                order: &ProvisioningOrder,
            ) -> Result<Fulfillment, ConnectorError> {
                (**self).fulfill(order).await
            }

            async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
                (**self).export(request).await
            }

            fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
                (**self).preview(orders)
            }

            fn schema(&self) -> Option<ConnectionSchema> {
                (**self).schema()
            }

            async fn check_password(
                &self,
                target: &ResourceId,
                password: &Secret,
            ) -> Result<bool, ConnectorError> {
                (**self).check_password(target, password).await
            }

            async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
                (**self).latest_cookie().await
            }
        }
    };
}

forward_connector!(Arc);
forward_connector!(Box);

/// An export read to its end ([`ConnectorExt::export_all`]).
///
/// `#[non_exhaustive]`: it may gain fields; read it, or start from `Default`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportBatch {
    /// The resources.
    pub resources: Vec<Resource>,
    /// The deletions (incremental exports).
    pub deleted: Vec<(ResourceId, Option<StableId>)>,
    /// The cookie for the next incremental export.
    pub cookie: Option<ExportCookie>,
}

/// Conveniences on every connector.
#[async_trait]
pub trait ConnectorExt: Connector {
    /// Runs an export and collects it. For tests and small systems; hosts should consume the
    /// stream.
    async fn export_all(&self, request: ExportRequest) -> Result<ExportBatch, ConnectorError> {
        let mut stream = self.export(request).await?;
        let mut batch = ExportBatch::default();
        while let Some(item) = stream.next().await {
            match item? {
                ExportItem::Resource(r) => batch.resources.push(r),
                ExportItem::Deleted { id, stable_id } => batch.deleted.push((id, stable_id)),
                ExportItem::Complete { cookie } => batch.cookie = Some(cookie),
            }
        }
        if batch.cookie.is_none() {
            return Err(ConnectorError::new(
                ErrorKind::Unexpected,
                Operation::Export,
                "the export stream ended without its Complete item",
            ));
        }
        Ok(batch)
    }
}

impl<T: Connector + ?Sized> ConnectorExt for T {}
