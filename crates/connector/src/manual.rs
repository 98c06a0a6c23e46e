//! A manual (ticket) connection: orders go to a human queue, a human confirms or reports.
//!
//! [`ManualConnector::fulfill`](crate::Connector::fulfill) opens a ticket and returns
//! [`Fulfillment::Transmitted`]; the provisioning item waits in Transmitted. A human lists the
//! [open tickets](ManualConnector::open_tickets), does the work, then
//! [confirms](ManualConnector::confirm) it (optionally applying it to a backing
//! [`InMemoryConnector`] so that the next export verifies it) or
//! [reports an error](ManualConnector::report_error). The host polls
//! [`resolutions`](ManualConnector::resolutions), awaits one ticket with
//! [`wait_for`](ManualConnector::wait_for), or follows [`subscribe`](ManualConnector::subscribe).
//!
//! ```
//! use autoprov_connector::manual::{ManualConnector, Resolution};
//! use autoprov_connector::{Connector, Fulfillment, InMemoryConnector};
//! # use autoprov_core::*;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let system = InMemoryConnector::new("hr-app");
//! let ou = system.ensure_container("OU=People,DC=example,DC=test").unwrap();
//! let desk = ManualConnector::with_backing("hr-app-manual", system.clone());
//! # let mut changes = Changes::default();
//! # changes.set("cn", "Ann").set("sAMAccountName", "ann")
//! #     .set_reference("parentdn", Reference::dn(ou.as_str()));
//! # let order = ProvisioningOrder { order_id: "o-1".into(), assigned_resource_type_id: None,
//! #     change_type: ChangeType::Added, workflow_instance_id: None,
//! #     owner: Some(Owner::new("u-1", "ann")),
//! #     resource_type: ResourceTypeRef::of(&ResourceType::new("rt", "rt", "Directory_User", "user", "hr-app-manual")),
//! #     connection: None, changes, resource: None, depends_on: vec![], not_before: None,
//! #     arguments: Default::default() };
//! let Fulfillment::Transmitted { ticket } = desk.fulfill(&order).await.unwrap() else {
//!     panic!("a manual connection transmits")
//! };
//! assert_eq!(desk.open_tickets().len(), 1);
//! assert!(system.get("CN=Ann,OU=People,DC=example,DC=test").is_none(), "not applied yet");
//!
//! // The human does the work and confirms.
//! let resolution = desk.confirm(&ticket).await.unwrap();
//! assert!(matches!(resolution, Resolution::Confirmed { .. }));
//! assert!(system.get("CN=Ann,OU=People,DC=example,DC=test").is_some());
//! assert_eq!(desk.wait_for(&ticket).await, resolution);
//! # });
//! ```

use crate::capability::Capabilities;
use crate::connector::{
    Connector, ConnectorInfo, Executed, ExportRequest, ExportStream, Fulfillment,
};
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::memory::{InMemoryConnector, InMemorySettings, MemoryPackage};
use crate::registry::{BuiltConnections, Package};
use crate::schema::ConnectionSchema;
use crate::settings::parse_settings_or_default;
use async_trait::async_trait;
use autoprov_core::{ConnectionId, ConnectionMode, OrderId, PackageId, ProvisioningOrder};
use futures::channel::mpsc;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The package id of manual connections.
pub const PACKAGE_ID: &str = "autoprov.manual";

/// Where a ticket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    /// Waiting for a human.
    Open,
    /// The human confirmed the work.
    Confirmed,
    /// The human reported an error.
    Failed,
}

/// One order in the human queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket reference (returned in [`Fulfillment::Transmitted`]).
    pub id: String,
    /// The order to carry out (its secrets stay masked in `Debug`).
    pub order: ProvisioningOrder,
    /// Where it is.
    pub status: TicketStatus,
}

/// What a human decided about a ticket.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    /// The work is done.
    Confirmed {
        /// The ticket.
        ticket: String,
        /// Its order.
        order: OrderId,
        /// What was done (from the backing system, or as the human stated it).
        executed: Executed,
    },
    /// The work could not be done.
    Failed {
        /// The ticket.
        ticket: String,
        /// Its order.
        order: OrderId,
        /// The reported error (permanent, naming the order).
        error: ConnectorErrorEq,
    },
}

impl Resolution {
    /// The ticket.
    pub fn ticket(&self) -> &str {
        match self {
            Self::Confirmed { ticket, .. } | Self::Failed { ticket, .. } => ticket,
        }
    }

    /// The order.
    pub fn order(&self) -> &OrderId {
        match self {
            Self::Confirmed { order, .. } | Self::Failed { order, .. } => order,
        }
    }
}

/// A [`ConnectorError`] compared by its text (so resolutions can be compared in tests).
#[derive(Clone, Debug)]
pub struct ConnectorErrorEq(pub ConnectorError);

impl PartialEq for ConnectorErrorEq {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl fmt::Display for ConnectorErrorEq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Default)]
struct Desk {
    next: u64,
    tickets: BTreeMap<String, Ticket>,
    by_order: HashMap<OrderId, String>,
    resolutions: Vec<Resolution>,
    subscribers: Vec<mpsc::UnboundedSender<Resolution>>,
}

struct Inner {
    info: ConnectorInfo,
    backing: Option<InMemoryConnector>,
    desk: Mutex<Desk>,
}

/// A manual connection (package `autoprov.manual`, [`ConnectionMode::Manual`]).
///
/// Cheap to clone; clones share the queue. Behaviour:
/// - `fulfill` checks the order's own consistency (an inconsistent one is a permanent
///   `InvalidOrder`), opens a ticket and returns [`Fulfillment::Transmitted`]; sending the same
///   order (same order id) again returns the same ticket, never a second one;
/// - `export` forwards to the backing system, and is `Unsupported` without one;
/// - `check` always succeeds.
#[derive(Clone)]
pub struct ManualConnector {
    inner: Arc<Inner>,
}

impl fmt::Debug for ManualConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desk = self.desk();
        f.debug_struct("ManualConnector")
            .field("connection", &self.inner.info.connection)
            .field("tickets", &desk.tickets.len())
            .field("backing", &self.inner.backing)
            .finish()
    }
}

impl ManualConnector {
    /// A manual connection with no backing system (no export).
    pub fn new(connection: impl Into<ConnectionId>) -> Self {
        Self::build(connection.into(), None)
    }

    /// A manual connection whose confirmations are applied to `backing`, which its exports
    /// read.
    pub fn with_backing(connection: impl Into<ConnectionId>, backing: InMemoryConnector) -> Self {
        Self::build(connection.into(), Some(backing))
    }

    fn build(connection: ConnectionId, backing: Option<InMemoryConnector>) -> Self {
        let mut capabilities = Capabilities::none();
        capabilities.mode = ConnectionMode::Manual;
        capabilities.create = true;
        capabilities.update = true;
        capabilities.delete = true;
        capabilities.export = backing.is_some();
        Self {
            inner: Arc::new(Inner {
                info: ConnectorInfo::new(PACKAGE_ID, connection, capabilities),
                backing,
                desk: Mutex::new(Desk::default()),
            }),
        }
    }

    fn desk(&self) -> MutexGuard<'_, Desk> {
        self.inner
            .desk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The backing system, if any.
    pub fn backing(&self) -> Option<&InMemoryConnector> {
        self.inner.backing.as_ref()
    }

    /// The tickets waiting for a human, oldest first.
    pub fn open_tickets(&self) -> Vec<Ticket> {
        let desk = self.desk();
        let mut open: Vec<Ticket> = desk
            .tickets
            .values()
            .filter(|t| t.status == TicketStatus::Open)
            .cloned()
            .collect();
        open.sort_by_key(|t| ticket_number(&t.id));
        open
    }

    /// One ticket.
    pub fn ticket(&self, id: &str) -> Option<Ticket> {
        self.desk().tickets.get(id).cloned()
    }

    /// Every resolution so far, in order.
    pub fn resolutions(&self) -> Vec<Resolution> {
        self.desk().resolutions.clone()
    }

    /// The resolutions from now on, as they happen.
    pub fn subscribe(&self) -> impl Stream<Item = Resolution> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.desk().subscribers.push(tx);
        rx
    }

    /// Waits until a ticket is resolved (returns at once if it already is).
    pub async fn wait_for(&self, ticket: &str) -> Resolution {
        let mut stream = {
            let mut desk = self.desk();
            if let Some(r) = desk.resolutions.iter().find(|r| r.ticket() == ticket) {
                return r.clone();
            }
            let (tx, rx) = mpsc::unbounded();
            desk.subscribers.push(tx);
            rx
        };
        loop {
            match stream.next().await {
                Some(r) if r.ticket() == ticket => return r,
                Some(_) => {}
                None => return futures::future::pending().await,
            }
        }
    }

    fn open(
        &self,
        ticket: &str,
        operation: Operation,
    ) -> Result<ProvisioningOrder, ConnectorError> {
        let desk = self.desk();
        match desk.tickets.get(ticket) {
            None => Err(ConnectorError::new(
                ErrorKind::NotFound,
                operation,
                format!("no ticket {ticket}"),
            )),
            Some(t) if t.status != TicketStatus::Open => Err(ConnectorError::new(
                ErrorKind::Conflict,
                operation,
                format!("ticket {ticket} is already {:?}", t.status),
            )
            .for_order(&t.order)),
            Some(t) => Ok(t.order.clone()),
        }
    }

    fn resolve(
        &self,
        ticket: &str,
        status: TicketStatus,
        resolution: Resolution,
    ) -> Result<Resolution, ConnectorError> {
        let mut desk = self.desk();
        let t = desk.tickets.get_mut(ticket).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::NotFound,
                Operation::Transmit,
                format!("no ticket {ticket}"),
            )
        })?;
        if t.status != TicketStatus::Open {
            return Err(ConnectorError::new(
                ErrorKind::Conflict,
                Operation::Transmit,
                format!("ticket {ticket} is already {:?}", t.status),
            ));
        }
        t.status = status;
        desk.resolutions.push(resolution.clone());
        desk.subscribers
            .retain(|tx| tx.unbounded_send(resolution.clone()).is_ok());
        Ok(resolution)
    }

    /// A human confirms the work. With a backing system the order is applied to it first; if
    /// that fails, the ticket stays open and the error is returned (the human may fix the
    /// order's target and confirm again, or report the error).
    pub async fn confirm(&self, ticket: &str) -> Result<Resolution, ConnectorError> {
        let order = self.open(ticket, Operation::Transmit)?;
        let executed = match &self.inner.backing {
            Some(backing) => match backing.fulfill(&order).await? {
                Fulfillment::Executed(e) => e,
                Fulfillment::Transmitted { .. } => {
                    return Err(ConnectorError::new(
                        ErrorKind::Unexpected,
                        Operation::Transmit,
                        "the backing system transmitted instead of executing",
                    ));
                }
            },
            None => Executed::new(
                order
                    .resource
                    .as_ref()
                    .map(|r| r.id.to_string())
                    .unwrap_or_else(|| ticket.to_owned()),
            ),
        };
        self.confirm_with(ticket, executed)
    }

    /// A human confirms the work and states its outcome (the key and stable id of what they
    /// created); nothing is applied to a backing system.
    pub fn confirm_with(
        &self,
        ticket: &str,
        executed: Executed,
    ) -> Result<Resolution, ConnectorError> {
        let order = self.open(ticket, Operation::Transmit)?;
        self.resolve(
            ticket,
            TicketStatus::Confirmed,
            Resolution::Confirmed {
                ticket: ticket.to_owned(),
                order: order.order_id,
                executed,
            },
        )
    }

    /// A human reports that the work could not be done: a permanent error naming the order.
    pub fn report_error(
        &self,
        ticket: &str,
        message: impl Into<String>,
    ) -> Result<Resolution, ConnectorError> {
        let order = self.open(ticket, Operation::Transmit)?;
        let error = ConnectorError::new(ErrorKind::Unexpected, Operation::Transmit, message)
            .permanent()
            .for_order(&order);
        self.resolve(
            ticket,
            TicketStatus::Failed,
            Resolution::Failed {
                ticket: ticket.to_owned(),
                order: order.order_id,
                error: ConnectorErrorEq(error),
            },
        )
    }
}

fn ticket_number(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[async_trait]
impl Connector for ManualConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.inner.info
    }

    /// The backing system's schema, when there is one.
    fn schema(&self) -> Option<ConnectionSchema> {
        self.inner.backing.as_ref()?.schema()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        order.validate().map_err(|reason| {
            ConnectorError::invalid_order(Operation::Transmit, reason).for_order(order)
        })?;
        let mut desk = self.desk();
        if let Some(ticket) = desk.by_order.get(&order.order_id) {
            return Ok(Fulfillment::Transmitted {
                ticket: ticket.clone(),
            });
        }
        desk.next += 1;
        let id = format!("{}-{:04}", self.inner.info.connection, desk.next);
        desk.by_order.insert(order.order_id.clone(), id.clone());
        desk.tickets.insert(
            id.clone(),
            Ticket {
                id: id.clone(),
                order: order.clone(),
                status: TicketStatus::Open,
            },
        );
        tracing::info!(ticket = %id, order = %order.order_id, "order handed to a human");
        Ok(Fulfillment::Transmitted { ticket: id })
    }

    async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        match &self.inner.backing {
            Some(backing) => backing.export(request).await,
            None => Err(ConnectorError::unsupported(
                Operation::Export,
                "a manual connection without a backing system cannot export",
            )),
        }
    }
}

/// The settings of a manual connection: `{"Backing": {...}}` gives it a backing in-memory
/// system built from [`InMemorySettings`]; `{}` (or no settings) gives none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManualSettings {
    /// The backing system, if any.
    #[serde(default)]
    pub backing: Option<InMemorySettings>,
}

/// The `autoprov.manual` package. Clones share the record of the desks they built, so the
/// host can reach a connection's queue ([`ManualPackage::desk`]) to confirm tickets.
///
/// ```
/// use autoprov_connector::PackageRegistry;
/// use autoprov_connector::manual::ManualPackage;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let package = ManualPackage::new();
/// let mut registry = PackageRegistry::new();
/// registry.register(package.clone());
/// let json = r#"[{"Id": "badges", "Package": "autoprov.manual", "Settings": {"Backing": {}}}]"#;
/// let connections = registry.connect_all_from_json(json).await.unwrap();
/// assert!(connections["badges"].info().capabilities.is_manual());
/// assert!(package.desk(&"badges".into()).unwrap().backing().is_some());
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualPackage {
    built: BuiltConnections<ManualConnector>,
}

impl ManualPackage {
    /// The package.
    pub fn new() -> Self {
        Self::default()
    }

    /// The connection built for an id, if any (its queue, for the humans' side).
    pub fn desk(&self, connection: &ConnectionId) -> Option<ManualConnector> {
        self.built.get(connection)
    }
}

#[async_trait]
impl Package for ManualPackage {
    fn id(&self) -> PackageId {
        PACKAGE_ID.into()
    }

    async fn connect(
        &self,
        connection: ConnectionId,
        settings: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings: ManualSettings =
            parse_settings_or_default(settings).map_err(|e| e.for_connection(&connection))?;
        let desk = match settings.backing {
            None => ManualConnector::new(connection.clone()),
            Some(backing) => {
                let system = MemoryPackage::build(connection.clone(), backing)?;
                ManualConnector::with_backing(connection.clone(), system)
            }
        };
        self.built.record(connection, desk.clone());
        Ok(Arc::new(desk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectorExt;
    use autoprov_core::{ChangeType, Changes, Owner, Reference, ResourceType, ResourceTypeRef};

    fn order(id: &str, cn: &str) -> ProvisioningOrder {
        let mut changes = Changes::default();
        changes
            .set("cn", cn)
            .set("sAMAccountName", cn.to_lowercase())
            .set_reference("parentdn", Reference::dn("DC=example,DC=test"));
        ProvisioningOrder {
            order_id: id.into(),
            assigned_resource_type_id: None,
            change_type: ChangeType::Added,
            workflow_instance_id: None,
            owner: Some(Owner::new("u", "u")),
            resource_type: ResourceTypeRef::of(&ResourceType::new("rt", "rt", "s", "user", "m")),
            connection: None,
            changes,
            resource: None,
            depends_on: vec![],
            not_before: None,
            arguments: Default::default(),
        }
    }

    fn ticket_of(f: Fulfillment) -> String {
        match f {
            Fulfillment::Transmitted { ticket } => ticket,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn tickets_are_opened_once_and_resolved_once() {
        let desk = ManualConnector::new("desk");
        assert!(desk.info().capabilities.is_manual());
        let t1 = ticket_of(desk.fulfill(&order("o1", "A")).await.unwrap());
        let t1b = ticket_of(desk.fulfill(&order("o1", "A")).await.unwrap());
        let t2 = ticket_of(desk.fulfill(&order("o2", "B")).await.unwrap());
        assert_eq!(t1, t1b);
        assert_eq!(t1, "desk-0001");
        assert_eq!(desk.open_tickets().len(), 2);
        let mut events = desk.subscribe();
        let waiter = {
            let desk = desk.clone();
            let t2 = t2.clone();
            tokio::spawn(async move { desk.wait_for(&t2).await })
        };
        let r = desk
            .report_error(&t2, "the badge printer is broken")
            .unwrap();
        assert_eq!(waiter.await.unwrap(), r);
        let Resolution::Failed { error, .. } = &r else {
            panic!("{r:?}")
        };
        assert!(!error.0.is_temporary());
        assert_eq!(error.0.order().unwrap().as_str(), "o2");
        assert_eq!(events.next().await.unwrap(), r);
        let e = desk.confirm(&t2).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let ok = desk.confirm(&t1).await.unwrap();
        assert_eq!(ok.order().as_str(), "o1");
        assert_eq!(desk.resolutions(), vec![r, ok]);
        assert!(desk.open_tickets().is_empty());
        assert_eq!(
            desk.confirm("nope").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let e = desk.export(ExportRequest::complete()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn a_failed_backing_apply_keeps_the_ticket_open() {
        let system = InMemoryConnector::new("sys");
        let desk = ManualConnector::with_backing("desk", system.clone());
        let mut bad = order("o1", "A");
        bad.changes.set("noSuchAttribute", "x");
        let t = ticket_of(desk.fulfill(&bad).await.unwrap());
        let e = desk.confirm(&t).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder);
        assert_eq!(desk.ticket(&t).unwrap().status, TicketStatus::Open);
        let t2 = ticket_of(desk.fulfill(&order("o2", "B")).await.unwrap());
        desk.confirm(&t2).await.unwrap();
        let batch = desk.export_all(ExportRequest::complete()).await.unwrap();
        assert_eq!(batch.resources.len(), 1);
        // An inconsistent order is refused at once.
        let mut no_owner = order("o3", "C");
        no_owner.owner = None;
        let e = desk.fulfill(&no_owner).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder);
    }

    #[tokio::test]
    async fn the_package_names_bad_settings() {
        let package = ManualPackage::new();
        let e = package
            .connect(
                "m".into(),
                serde_json::json!({"Backing": {"TreeDelet": true}}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains("TreeDelet"), "{e}");
        let conn = package
            .connect("m".into(), serde_json::Value::Null)
            .await
            .unwrap();
        assert!(!conn.info().capabilities.export);
        assert!(package.desk(&"m".into()).is_some());
    }
}
