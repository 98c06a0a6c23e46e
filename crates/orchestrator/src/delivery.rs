//! Delivery of generated initial passwords (the reference system mails them to the manager).
//!
//! By default an initial password does not travel in the order at all: the connector generates
//! it at fulfilment time from the resource type's password settings and hands it back
//! ([`autoprov_connector::Executed::initial_password`]); the dispatcher hands it to the host's
//! [`PasswordDelivery`] and then drops it. It is never stored, logged, or put in an event.
//!
//! The order is not Executed until the delivery is confirmed: a failed delivery is a temporary
//! failure of the order, which is sent again — the connector sets a *new* password, delivered
//! in turn. After a crash between setting and delivering, the resumed run does the same, so a
//! person never waits for a password nobody received.

use async_trait::async_trait;
use autoprov_core::{ProvisioningOrder, ResourceId, Secret};

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

/// Where generated initial passwords go (an SMTP mail to the owner's manager, a vault, a
/// ticket). Called once per password set; `Ok` means the person can receive it.
#[async_trait]
pub trait PasswordDelivery: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `password`, set on `target` by `order`.
    async fn deliver(
        &self,
        order: &ProvisioningOrder,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<(), DeliveryError>;
}
