//! Job runs, review decisions and assignments: the records besides orders that a restarted
//! process needs.

use autoprov_core::{
    AssignedResourceNavigation, AssignedResourceScalar, AssignedResourceType, AssignmentId,
    OrderId, ProvisioningState,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kind of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Export everything, evaluate everyone.
    Complete,
    /// Export changes since the cookies, evaluate dirty owners.
    Incremental,
}

/// How a job run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Every step ran.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Cancelled: in-flight calls finished, nothing new started.
    Cancelled,
    /// A threshold blocked the generation.
    Blocked,
}

/// The record of one job run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobRun {
    /// Its id.
    pub id: String,
    /// Complete or incremental.
    pub kind: JobKind,
    /// Simulation: everything up to the orders, no write.
    pub simulation: bool,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: JobStatus,
    /// Orders generated.
    pub orders_total: u64,
    /// Orders per provisioning state at the end of the run.
    pub counts: BTreeMap<ProvisioningState, u64>,
    /// A message (the error, the threshold breach).
    pub message: Option<String>,
}

impl JobRun {
    /// A run that starts now.
    pub fn started(
        id: impl Into<String>,
        kind: JobKind,
        simulation: bool,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            kind,
            simulation,
            started_at: at,
            finished_at: None,
            status: JobStatus::Running,
            orders_total: 0,
            counts: BTreeMap::new(),
            message: None,
        }
    }
}

/// What provisioning review decided for an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReviewVerdict {
    /// Send it: AwaitingApproval ⇒ Pending.
    Approved,
    /// Cancel it: AwaitingApproval ⇒ Inactive; the same change is not generated again.
    Declined,
    /// Decide later: it stays AwaitingApproval.
    Postponed,
}

impl ReviewVerdict {
    /// The state-machine event of the verdict.
    pub fn event(self) -> autoprov_core::ProvisioningEvent {
        use autoprov_core::ProvisioningEvent as E;
        match self {
            Self::Approved => E::ReviewApproved,
            Self::Declined => E::ReviewDeclined,
            Self::Postponed => E::ReviewPostponed,
        }
    }
}

/// One provisioning-review decision: who decided what about which order, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReviewDecision {
    /// The order reviewed.
    pub order_id: OrderId,
    /// The verdict.
    pub verdict: ReviewVerdict,
    /// Who decided.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, if they said.
    pub reason: Option<String>,
}

impl ReviewDecision {
    /// A decision without a reason.
    pub fn new(
        order_id: OrderId,
        verdict: ReviewVerdict,
        by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            verdict,
            by: by.into(),
            at,
            reason: None,
        }
    }

    /// With the reason given.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The audit-trail entry of this decision (every store appends it with the decision).
    pub fn audit_entry(&self, owner: Option<autoprov_core::OwnerId>) -> crate::AuditEntry {
        let action = match self.verdict {
            ReviewVerdict::Approved => crate::AuditAction::Approved,
            ReviewVerdict::Declined => crate::AuditAction::Declined,
            ReviewVerdict::Postponed => crate::AuditAction::Postponed,
        };
        let mut entry = crate::AuditEntry::new(self.at, &self.by, action, self.order_id.as_str());
        entry.owner = owner;
        entry.reason = self.reason.clone();
        entry
    }
}

/// The three kinds of assignments, keyed by id: a batch to write, or a page read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    /// `AssignedResourceType`s.
    pub resource_types: BTreeMap<AssignmentId, AssignedResourceType>,
    /// `AssignedResourceScalar`s.
    pub scalars: BTreeMap<AssignmentId, AssignedResourceScalar>,
    /// `AssignedResourceNavigation`s.
    pub navigations: BTreeMap<AssignmentId, AssignedResourceNavigation>,
}

impl Assignments {
    /// How many assignments it holds.
    pub fn len(&self) -> usize {
        self.resource_types.len() + self.scalars.len() + self.navigations.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One stored assignment, of any kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Assignment {
    /// An `AssignedResourceType`.
    ResourceType(AssignedResourceType),
    /// An `AssignedResourceScalar`.
    Scalar(AssignedResourceScalar),
    /// An `AssignedResourceNavigation`.
    Navigation(AssignedResourceNavigation),
}
