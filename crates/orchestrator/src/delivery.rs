//! Delivery of generated initial passwords (the reference system mails them to the manager).
//!
//! By default an initial password does not travel in the order at all. When the order's
//! resource type has password settings ([`autoprov_core::PasswordResetSettings`]) that
//! generate (`AutoGenerate`, `Mode` not 0) and an Added order carries no `password`, the
//! dispatcher generates one by those settings just before sending, puts it in the copy of the
//! order it hands the connector (in memory only: the stored order never holds it), and after
//! the connector reports success hands it to the host's [`PasswordDelivery`] with a
//! [`PasswordNotice`] (owner, resource type, must-change, copies). A connector that generates
//! a password itself (the AD package's per-mapping fallback) hands it back
//! ([`autoprov_connector::Executed::initial_password`]) and it is delivered the same way.
//! Either way it is then dropped: never stored, logged, or put in an event.
//!
//! The order is not Executed until the delivery is confirmed: a failed delivery is a temporary
//! failure of the order, which is sent again — the connector sets a *new* password, delivered
//! in turn. After a crash between setting and delivering, the resumed run does the same, so a
//! person never waits for a password nobody received.

use async_trait::async_trait;
use autoprov_core::{Owner, PasswordMode, ProvisioningOrder, ResourceId, ResourceTypeRef, Secret};

/// Why a delivery failed (the mail server refused, the owner has no manager, …). Its text
/// must never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong, without the password.
    pub message: String,
}

impl DeliveryError {
    /// A delivery failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// What a delivery hook is told about a password it delivers (the reference system's
/// notification bindings): whose account, of which resource type, where it was set, whether
/// it must be changed at first logon, the mode and the copies. Holds no password.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct PasswordNotice<'a> {
    /// The order that set the password (as stored: without the password).
    pub order: &'a ProvisioningOrder,
    /// The account the password was set on.
    pub target: &'a ResourceId,
    /// The user must change the password at first logon (the order's `mustChangePassword`,
    /// else the settings' `MustChange`).
    pub must_change: bool,
    /// The settings' `Mode` (one-way: send the password; two-way: send a link or token).
    pub mode: PasswordMode,
    /// The settings' `NotificationCC`.
    pub notification_cc: &'a [String],
}

impl<'a> PasswordNotice<'a> {
    /// A notice for `password` set on `target` by `order` (mode one-way, no copy).
    pub fn new(order: &'a ProvisioningOrder, target: &'a ResourceId, must_change: bool) -> Self {
        Self {
            order,
            target,
            must_change,
            mode: PasswordMode::OneWay,
            notification_cc: &[],
        }
    }

    /// The owner of the account (the beneficiary), if the order names one.
    pub fn owner(&self) -> Option<&'a Owner> {
        self.order.owner.as_ref()
    }

    /// The resource type of the account.
    pub fn resource_type(&self) -> &'a ResourceTypeRef {
        &self.order.resource_type
    }
}

/// Where generated initial passwords go (an SMTP mail to the owner's manager, a vault, a
/// ticket). Called once per password set; `Ok` means the person can receive it.
#[async_trait]
pub trait PasswordDelivery: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `password`, set as `notice` says.
    async fn deliver(
        &self,
        notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<(), DeliveryError>;
}
