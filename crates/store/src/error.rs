//! What a store refuses, and how a backend failure keeps its cause.

use autoprov_core::{ConnectionId, IllegalTransition, OrderId};
use std::sync::Arc;

/// A backend's own error, kept as the source of [`StoreError::Backend`].
pub type BackendError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A store failure. Every variant names the order (or operation) it concerns.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An order id is already stored with different content.
    #[error("order {order_id} is already stored with a different content")]
    ConflictingOrder {
        /// The order.
        order_id: OrderId,
    },
    /// No such order.
    #[error("order {order_id} is not in the store")]
    UnknownOrder {
        /// The order.
        order_id: OrderId,
    },
    /// The order changed since the caller read it: its version is not the one the update
    /// names. Read it again and decide again.
    #[error("order {order_id} changed meanwhile: expected version {expected}, found {actual}")]
    StaleVersion {
        /// The order.
        order_id: OrderId,
        /// The version the caller read.
        expected: u64,
        /// The stored version.
        actual: u64,
    },
    /// A state change the provisioning state machine refuses; nothing was written.
    #[error("order {order_id}: {source}")]
    IllegalTransition {
        /// The order.
        order_id: OrderId,
        /// The refused (state, event) pair.
        #[source]
        source: IllegalTransition,
    },
    /// The same order id appears twice in one batch.
    #[error("order {order_id} appears twice in one batch")]
    DuplicateInBatch {
        /// The order.
        order_id: OrderId,
    },
    /// The same found value (owner, resource type, value) is decided twice in one batch;
    /// nothing of the batch was written.
    #[error(
        "found value of owner {owner}, resource type {resource_type} ({value}) decided twice in one batch"
    )]
    DuplicateFoundDecision {
        /// The owner.
        owner: autoprov_core::OwnerId,
        /// The resource type.
        resource_type: autoprov_core::ResourceTypeId,
        /// The value, as text.
        value: String,
    },
    /// The same owner appears twice in one batch of [`OwnedValues`](autoprov_core::OwnedValues);
    /// nothing of the batch was written.
    #[error("the values autoprov holds for owner {owner} appear twice in one batch")]
    DuplicateOwnedValues {
        /// The owner.
        owner: autoprov_core::OwnerId,
    },
    /// A write under a claim whose lease another worker took over (its fencing token is not
    /// the order's latest); nothing was written. Drop the order: its new holder sends it.
    #[error("order {order_id}: lease lost (token {token} was taken over)")]
    LeaseLost {
        /// The order.
        order_id: OrderId,
        /// The token of the lost claim.
        token: u64,
    },
    /// A write under a connection permit whose lease another worker took over; nothing was
    /// written. Drop the permit and acquire another.
    #[error("connection {connection}: permit slot {slot} lost (token {token} was taken over)")]
    PermitLost {
        /// The connection.
        connection: ConnectionId,
        /// The slot.
        slot: u32,
        /// The token of the lost permit.
        token: u64,
    },
    /// Orders inserted under a planning epoch that a newer planner superseded; nothing was
    /// written.
    #[error("planning epoch {epoch} is stale (current epoch: {current})")]
    StalePlanningEpoch {
        /// The epoch the caller holds.
        epoch: u64,
        /// The current epoch.
        current: u64,
    },
    /// The order holds a secret value and the store has no key to seal it with: a durable
    /// store never keeps a secret in clear, so it refuses the order (nothing of the batch is
    /// written).
    #[error(
        "order {order_id}: property {property} holds a secret and the store has no sealing key"
    )]
    SecretWithoutKey {
        /// The order.
        order_id: OrderId,
        /// The property holding the secret.
        property: String,
    },
    /// A sealed secret of the order cannot be opened: the key it was sealed with is not among
    /// the store's keys, or the key given under that id is not the one that sealed it.
    #[error(
        "order {order_id}: the secret of property {property} cannot be unsealed with key {key_id}"
    )]
    SecretUnreadable {
        /// The order.
        order_id: OrderId,
        /// The property holding the secret.
        property: String,
        /// The id of the key the secret was sealed with.
        key_id: String,
    },
    /// The backend is unavailable for a passing reason — the connection was lost or refused,
    /// the server is shutting down or restarting, a transaction lost a serialization
    /// conflict or a deadlock — and nothing was written. Retry later (with backoff): the
    /// same call may succeed ([`StoreError::is_temporary`]).
    #[error("store backend unavailable during {operation} (temporary; retry later)")]
    Unavailable {
        /// What was attempted.
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: BackendError,
    },
    /// A secret value in a record that never keeps one (a synchronized resource, an
    /// assignment, a request; see [`crate::secrets`]): refused, nothing of the call written.
    #[error(
        "{table} {key}: property {property} holds a secret; a store keeps secrets only in orders, sealed"
    )]
    SecretNotStorable {
        /// The kind of record (`resources`, `assignments`, `requests`).
        table: &'static str,
        /// Its key (`connection/resource id` for a resource).
        key: String,
        /// The property holding the secret.
        property: String,
    },
    /// The backend failed in a way a retry does not fix (a constraint violation, data it
    /// cannot read or store, a misconfiguration).
    #[error("store backend failed during {operation}")]
    Backend {
        /// What was attempted.
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: BackendError,
    },
}

impl StoreError {
    /// A backend failure during `operation`, keeping `source`.
    pub fn backend(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            operation,
            source: Arc::new(source),
        }
    }

    /// A temporary backend failure during `operation` ([`StoreError::Unavailable`]),
    /// keeping `source`.
    pub fn unavailable(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: Arc::new(source),
        }
    }

    /// Whether retrying the same call later may succeed: true only for
    /// [`StoreError::Unavailable`]. Every other error is an answer (a refused write, a lost
    /// lease, a stale version) or a permanent backend failure.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The order the error concerns, if any.
    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            Self::ConflictingOrder { order_id }
            | Self::UnknownOrder { order_id }
            | Self::StaleVersion { order_id, .. }
            | Self::IllegalTransition { order_id, .. }
            | Self::DuplicateInBatch { order_id }
            | Self::LeaseLost { order_id, .. }
            | Self::SecretWithoutKey { order_id, .. }
            | Self::SecretUnreadable { order_id, .. } => Some(order_id),
            Self::Backend { .. }
            | Self::Unavailable { .. }
            | Self::PermitLost { .. }
            | Self::StalePlanningEpoch { .. }
            | Self::DuplicateFoundDecision { .. }
            | Self::DuplicateOwnedValues { .. }
            | Self::SecretNotStorable { .. } => None,
        }
    }
}
