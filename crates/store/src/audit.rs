//! The audit trail: who approved, declined, postponed, forced, retried, adopted or erased
//! what, when and why. Append-only; only an erasure on request removes entries (those about
//! the erased owner), and says so in a new entry.

use autoprov_core::OwnerId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a person (or the engine on a person's setting) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditAction {
    /// Approved an order in provisioning review, or a request step.
    Approved,
    /// Submitted a manual assignment request.
    Requested,
    /// Declined an order in review, or a request.
    Declined,
    /// Postponed a review decision.
    Postponed,
    /// Forced a generation past its thresholds.
    Forced,
    /// Retried an Errored order.
    Retried,
    /// Adopted an existing object (or kept a found value) as ours.
    Adopted,
    /// Erased an owner's data on request.
    Erased,
    /// Purged finished orders past their retention period.
    Purged,
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (a person's or a service's name).
    pub actor: String,
    /// What they did.
    pub action: AuditAction,
    /// What it was done to: an order id, a resource type, a request id.
    pub subject: String,
    /// The owner concerned, if any (what an erasure looks for).
    pub owner: Option<OwnerId>,
    /// Why, if they said.
    pub reason: Option<String>,
}

impl AuditEntry {
    /// An entry without owner or reason.
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: AuditAction,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action,
            subject: subject.into(),
            owner: None,
            reason: None,
        }
    }

    /// With the owner concerned.
    pub fn owner(mut self, owner: impl Into<OwnerId>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// With the reason given.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// What an erasure removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Erasure {
    /// Orders (with their history and review decisions).
    pub orders: u64,
    /// Assignments.
    pub assignments: u64,
    /// Assignment requests.
    pub requests: u64,
    /// Audit entries about the owner.
    pub audit_entries: u64,
}
