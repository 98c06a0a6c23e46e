//! The one error type of every connector: a kind, a retry status, the operation and what it was
//! applied to.
//!
//! Connectors classify their errors once, at the source; the orchestrator retries on
//! [`ConnectorError::is_temporary`] alone.

use autoprov_core::{OrderId, OwnerId};
use std::fmt;
use std::time::Duration;

/// What went wrong, independent of the managed system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target (or a referenced object) does not exist.
    NotFound,
    /// The target already exists and is not the same object.
    AlreadyExists,
    /// A conflicting state (a unique value held by another object, a concurrent change, an
    /// expired export cookie).
    Conflict,
    /// The service account may not do this.
    PermissionDenied,
    /// The credentials were refused.
    Unauthenticated,
    /// The order cannot be applied as given (missing required attribute, unknown property, bad
    /// reference, value refused by the system's constraints).
    InvalidOrder,
    /// The connection settings are wrong.
    InvalidConfiguration,
    /// The system asked us to slow down.
    RateLimited,
    /// The system is unreachable or busy.
    Unavailable,
    /// The call did not finish in time.
    Timeout,
    /// The connection does not support this operation.
    Unsupported,
    /// Anything else.
    Unexpected,
    /// The order met something a person must decide on first, and nothing was written: an
    /// Added order carrying [`ADOPTION_REVIEW_ARGUMENT`](crate::ADOPTION_REVIEW_ARGUMENT) found
    /// an existing matching account that autoprov did not create. The dispatcher moves the order
    /// to AwaitingApproval instead of Errored.
    NeedsReview,
}

impl ErrorKind {
    /// The retry status a kind has unless the connector says otherwise.
    pub fn default_status(self) -> ErrorStatus {
        match self {
            Self::RateLimited | Self::Unavailable | Self::Timeout => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }

    /// A stable short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::Conflict => "conflict",
            Self::PermissionDenied => "permission denied",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidOrder => "invalid order",
            Self::InvalidConfiguration => "invalid configuration",
            Self::RateLimited => "rate limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Unsupported => "unsupported",
            Self::Unexpected => "unexpected",
            Self::NeedsReview => "needs review",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying again may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// Retrying cannot help.
    Permanent,
    /// Retrying later may help.
    Temporary,
    /// It was temporary, but retries gave up.
    Persistent,
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
            Self::Persistent => "persistent",
        })
    }
}

/// The operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Connection check.
    Check,
    /// Creating a target.
    Create,
    /// Changing scalars of a target.
    Update,
    /// Renaming or moving a target.
    Rename,
    /// Adding or removing memberships.
    Membership,
    /// Setting a password.
    SetPassword,
    /// Enabling or disabling.
    Enable,
    /// Deleting (or disabling instead).
    Delete,
    /// Reading a target.
    Read,
    /// Exporting resources.
    Export,
    /// Building a connection from settings.
    Configure,
    /// Handing an order to a human.
    Transmit,
}

/// The operation an order mainly performs: Added creates, Modified updates, Deleted deletes.
impl From<autoprov_core::ChangeType> for Operation {
    fn from(change: autoprov_core::ChangeType) -> Self {
        match change {
            autoprov_core::ChangeType::Added => Self::Create,
            autoprov_core::ChangeType::Modified => Self::Update,
            autoprov_core::ChangeType::Deleted => Self::Delete,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Check => "check",
            Self::Create => "create",
            Self::Update => "update",
            Self::Rename => "rename/move",
            Self::Membership => "membership",
            Self::SetPassword => "set password",
            Self::Enable => "enable/disable",
            Self::Delete => "delete",
            Self::Read => "read",
            Self::Export => "export",
            Self::Configure => "configure",
            Self::Transmit => "transmit",
        })
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every connector operation.
///
/// Its message names the kind, the status, the operation, and, when known, the order, the
/// owner and the target; [`std::error::Error::source`] gives the underlying error. It never
/// contains a secret: connectors must not put one in a message.
///
/// ```
/// use autoprov_connector::{ConnectorError, ErrorKind, Operation};
/// let e = ConnectorError::new(ErrorKind::Unavailable, Operation::Update, "server busy")
///     .with_order("o-1")
///     .with_owner("u-7")
///     .with_target("CN=jdoe,OU=Sales,DC=example,DC=test");
/// assert!(e.is_temporary());
/// let text = e.to_string();
/// assert!(text.contains("o-1") && text.contains("u-7") && text.contains("CN=jdoe"));
/// assert!(!e.persistent().is_temporary());
/// ```
pub struct ConnectorError {
    kind: ErrorKind,
    status: ErrorStatus,
    operation: Operation,
    message: String,
    order: Option<OrderId>,
    owner: Option<OwnerId>,
    target: Option<String>,
    retry_after: Option<Duration>,
    source: Option<Source>,
}

impl ConnectorError {
    /// An error of `kind` during `operation`, with the kind's default retry status.
    pub fn new(kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.default_status(),
            operation,
            message: message.into(),
            order: None,
            owner: None,
            target: None,
            retry_after: None,
            source: None,
        }
    }

    /// Shortcut for an [`ErrorKind::InvalidOrder`] error (permanent).
    pub fn invalid_order(operation: Operation, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidOrder, operation, message)
    }

    /// Shortcut for an [`ErrorKind::NeedsReview`] error: an Added order found `found` (its key
    /// and, when known, its stable id), an existing account that matches it but that autoprov
    /// did not create, and wrote nothing.
    pub fn adoption_needs_review(
        found: impl fmt::Display,
        stable_id: Option<&autoprov_core::StableId>,
    ) -> Self {
        let id = stable_id.map_or(String::new(), |s| format!(" (stable id {s})"));
        Self::new(
            ErrorKind::NeedsReview,
            Operation::Create,
            format!(
                "an existing account {found}{id} matches the order but was not created by \
                 autoprov: adopting it waits for review (approve the order to adopt it, decline \
                 it to leave the account alone); nothing was written"
            ),
        )
        .with_target(found.to_string())
    }

    /// Shortcut for an [`ErrorKind::Unsupported`] error (permanent).
    pub fn unsupported(operation: Operation, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, operation, message)
    }

    /// Marks the error temporary.
    pub fn temporary(mut self) -> Self {
        self.status = ErrorStatus::Temporary;
        self
    }

    /// Marks the error permanent.
    pub fn permanent(mut self) -> Self {
        self.status = ErrorStatus::Permanent;
        self
    }

    /// Marks a temporary error persistent: retries gave up. Others are unchanged.
    pub fn persistent(mut self) -> Self {
        if self.status == ErrorStatus::Temporary {
            self.status = ErrorStatus::Persistent;
        }
        self
    }

    /// Names the order.
    pub fn with_order(mut self, order: impl Into<OrderId>) -> Self {
        self.order = Some(order.into());
        self
    }

    /// Names the owner.
    pub fn with_owner(mut self, owner: impl Into<OwnerId>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Names the target (e.g. its DN).
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Names the order, owner and target of an order, keeping what is already set.
    pub fn for_order(mut self, order: &autoprov_core::ProvisioningOrder) -> Self {
        if self.order.is_none() {
            self.order = Some(order.order_id.clone());
        }
        if self.owner.is_none() {
            self.owner = order.owner_id().cloned();
        }
        if self.target.is_none() {
            self.target = order.resource.as_ref().map(|r| r.id.to_string());
        }
        self
    }

    /// Says how long the managed system asked us to wait before trying again (an HTTP
    /// `Retry-After`): a retry should not come sooner.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// How long the managed system asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The retry status.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// Whether a retry may help.
    pub fn is_temporary(&self) -> bool {
        self.status == ErrorStatus::Temporary
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The order, if named.
    pub fn order(&self) -> Option<&OrderId> {
        self.order.as_ref()
    }

    /// The owner, if named.
    pub fn owner(&self) -> Option<&OwnerId> {
        self.owner.as_ref()
    }

    /// The target, if named.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) during {}",
            self.kind, self.status, self.operation
        )?;
        if let Some(order) = &self.order {
            write!(f, " of order {order}")?;
        }
        if let Some(owner) = &self.owner {
            write!(f, " for owner {owner}")?;
        }
        if let Some(target) = &self.target {
            write!(f, " on {target}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(delay) = self.retry_after {
            write!(f, " (retry after {} s)", delay.as_secs_f64())?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorError")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("operation", &self.operation)
            .field("message", &self.message)
            .field("order", &self.order)
            .field("owner", &self.owner)
            .field("target", &self.target)
            .field("retry_after", &self.retry_after)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl Clone for ConnectorError {
    /// Clones the error; the source is kept as its text.
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            status: self.status,
            operation: self.operation,
            message: self.message.clone(),
            order: self.order.clone(),
            owner: self.owner.clone(),
            target: self.target.clone(),
            retry_after: self.retry_after,
            source: self
                .source
                .as_ref()
                .map(|s| Box::new(SourceText(s.to_string())) as Source),
        }
    }
}

#[derive(Debug)]
struct SourceText(String);

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_statuses() {
        assert!(ConnectorError::new(ErrorKind::Timeout, Operation::Create, "x").is_temporary());
        assert!(!ConnectorError::new(ErrorKind::NotFound, Operation::Create, "x").is_temporary());
        let e = ConnectorError::new(ErrorKind::NotFound, Operation::Create, "x").persistent();
        assert_eq!(
            e.status(),
            ErrorStatus::Permanent,
            "only temporary becomes persistent"
        );
        let e = ConnectorError::new(ErrorKind::Unavailable, Operation::Create, "x").persistent();
        assert_eq!(e.status(), ErrorStatus::Persistent);
    }

    #[test]
    fn retry_after_is_kept_and_shown() {
        let e = ConnectorError::new(ErrorKind::RateLimited, Operation::Update, "slow down")
            .with_retry_after(Duration::from_secs(7));
        assert_eq!(e.clone().retry_after(), Some(Duration::from_secs(7)));
        assert!(e.to_string().contains("retry after 7 s"), "{e}");
        assert!(e.is_temporary());
    }

    #[test]
    fn clone_keeps_source_text() {
        let io = std::io::Error::other("socket closed");
        let e =
            ConnectorError::new(ErrorKind::Unavailable, Operation::Export, "lost").with_source(io);
        let c = e.clone();
        assert!(c.to_string().contains("socket closed"));
        assert!(std::error::Error::source(&c).is_some());
    }
}
