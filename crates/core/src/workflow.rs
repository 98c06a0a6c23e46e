//! Assignment requests and their approval workflow (SPEC §2, §3).
//!
//! A request moves through `Requested → PendingApproval (x of n) → Approved | Declined`. The
//! approver names the step they approve, so a skipped or repeated step is caught.

use crate::ids::{OwnerId, RequestId, ResourceTypeId};
use crate::states::WorkflowState;
use crate::value::{Reference, ScalarValue};
use serde::{Deserialize, Serialize};

/// How many approval steps a manual request needs (`ApprovalWorkflowType`).
///
/// Read from its name or from the reference system's numeric code: `0` None, `1` One, `2` Two,
/// `3` Three, `4` ManualAssignmentNotAllowed.
///
/// ```
/// use autoprov_core::ApprovalWorkflowType;
/// let t: ApprovalWorkflowType = serde_json::from_str("2").unwrap();
/// assert_eq!(t, ApprovalWorkflowType::Two);
/// let t: ApprovalWorkflowType = serde_json::from_str("\"ManualAssignmentNotAllowed\"").unwrap();
/// assert_eq!(t.code(), 4);
/// assert!(serde_json::from_str::<ApprovalWorkflowType>("5").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ApprovalWorkflowType {
    /// No approval: the request is approved when submitted.
    #[default]
    None,
    /// One approval.
    One,
    /// Two approvals, in order.
    Two,
    /// Three approvals, in order.
    Three,
    /// Manual requests of this type are refused: only rules assign it.
    ManualAssignmentNotAllowed,
}

impl ApprovalWorkflowType {
    const NAMES: [&'static str; 5] = ["None", "One", "Two", "Three", "ManualAssignmentNotAllowed"];

    /// The number of steps (0 for a type that allows no manual request).
    pub fn steps(self) -> u8 {
        match self {
            Self::None | Self::ManualAssignmentNotAllowed => 0,
            Self::One => 1,
            Self::Two => 2,
            Self::Three => 3,
        }
    }

    /// The reference system's numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::One => 1,
            Self::Two => 2,
            Self::Three => 3,
            Self::ManualAssignmentNotAllowed => 4,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::None,
            1 => Self::One,
            2 => Self::Two,
            3 => Self::Three,
            4 => Self::ManualAssignmentNotAllowed,
            _ => return None,
        })
    }

    /// The workflow state that waits for `step` (1-based).
    fn pending_state(self, step: u8) -> WorkflowState {
        match (self, step) {
            (Self::One, _) => WorkflowState::PendingApproval,
            (Self::Two, 1) => WorkflowState::PendingApproval1Of2,
            (Self::Two, _) => WorkflowState::PendingApproval2Of2,
            (Self::Three, 1) => WorkflowState::PendingApproval1Of3,
            (Self::Three, 2) => WorkflowState::PendingApproval2Of3,
            (Self::Three, _) => WorkflowState::PendingApproval3Of3,
            (Self::None | Self::ManualAssignmentNotAllowed, _) => WorkflowState::Approved,
        }
    }
}

impl<'de> Deserialize<'de> for ApprovalWorkflowType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = NameOrCode::deserialize(d)?;
        match value {
            NameOrCode::Code(c) => Self::from_code(c).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "ApprovalWorkflowType {c} is not a code (0 None, 1 One, 2 Two, 3 Three, \
                     4 ManualAssignmentNotAllowed)"
                ))
            }),
            NameOrCode::Name(n) => Self::NAMES
                .iter()
                .position(|k| *k == n)
                .and_then(|i| Self::from_code(i as u64))
                .ok_or_else(|| serde::de::Error::unknown_variant(&n, &Self::NAMES)),
        }
    }
}

/// Whether a requester may approve their own request (`ImplicitApproval`).
///
/// Read from its name or from the reference system's numeric code: `0` Inherited, `1`
/// Explicit, `2` Implicit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum ImplicitApproval {
    /// Inherited from the policy; autoprov's policy default is [`Explicit`](Self::Explicit).
    #[default]
    Inherited,
    /// Every step needs an approver other than the requester.
    Explicit,
    /// A requester who may approve a step approves it by approving their own request.
    Implicit,
}

impl ImplicitApproval {
    const NAMES: [&'static str; 3] = ["Inherited", "Explicit", "Implicit"];

    /// Whether the requester may approve their own request.
    pub fn allows_self_approval(self) -> bool {
        self == Self::Implicit
    }
}

impl<'de> Deserialize<'de> for ImplicitApproval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let index = match NameOrCode::deserialize(d)? {
            NameOrCode::Code(c) => c as usize,
            NameOrCode::Name(n) => Self::NAMES
                .iter()
                .position(|k| *k == n)
                .ok_or_else(|| serde::de::Error::unknown_variant(&n, &Self::NAMES))?,
        };
        match index {
            0 => Ok(Self::Inherited),
            1 => Ok(Self::Explicit),
            2 => Ok(Self::Implicit),
            c => Err(serde::de::Error::custom(format!(
                "ImplicitApproval {c} is not a code (0 Inherited, 1 Explicit, 2 Implicit)"
            ))),
        }
    }
}

/// An enumeration as the reference system writes it: a name or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrCode {
    Code(u64),
    Name(String),
}

/// Who approved one step of a request, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepApproval {
    /// The 1-based step.
    pub step: u8,
    /// Who approved it.
    pub by: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Whether a request adds or removes an assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RequestKind {
    /// Give the owner the assignment.
    Add,
    /// Take the assignment away.
    Remove,
}

/// What is requested: a resource type, optionally with one scalar value or one navigation
/// (e.g. a group membership).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestedAssignment {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// A scalar property and its value, for `AssignedResourceScalar` requests.
    #[serde(default)]
    pub scalar: Option<(String, ScalarValue)>,
    /// A navigation property and its reference, for `AssignedResourceNavigation` requests.
    #[serde(default)]
    pub navigation: Option<(String, Reference)>,
}

/// The state of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestState {
    /// Created, not submitted.
    Requested,
    /// Waiting for approval `step` of `of`.
    PendingApproval {
        /// 1-based step waited for.
        step: u8,
        /// Number of steps.
        of: u8,
    },
    /// Every step approved.
    Approved,
    /// A step declined it.
    Declined,
}

/// A refused request operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request was already decided.
    #[error("request {request} for owner {owner} is already {state:?}: cannot {operation}")]
    AlreadyDecided {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
        /// Its state.
        state: RequestState,
        /// What was attempted.
        operation: &'static str,
    },
    /// The approver named another step than the one waited for.
    #[error(
        "request {request} for owner {owner}: approval step {given} given, step {expected} is waited for"
    )]
    WrongStep {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
        /// The step waited for.
        expected: u8,
        /// The step given.
        given: u8,
    },
    /// An approval or decline before submission.
    #[error("request {request} for owner {owner} was not submitted: cannot {operation}")]
    NotSubmitted {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
        /// What was attempted.
        operation: &'static str,
    },
    /// Submitted twice.
    #[error("request {request} for owner {owner} was already submitted")]
    AlreadySubmitted {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
    },
    /// The resource type allows no manual request (`ManualAssignmentNotAllowed`).
    #[error(
        "request {request} for owner {owner}: resource type {resource_type} allows no manual assignment"
    )]
    ManualAssignmentNotAllowed {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
    },
    /// The requester approved their own request, and the resource type's `ImplicitApproval`
    /// does not allow it.
    #[error(
        "request {request} for owner {owner}: {approver} requested it and cannot approve step {step} (ImplicitApproval is not Implicit)"
    )]
    SelfApproval {
        /// The request.
        request: RequestId,
        /// Its owner.
        owner: OwnerId,
        /// The requester who tried to approve.
        approver: String,
        /// The step.
        step: u8,
    },
}

/// A person's request to add or remove an assignment for an owner.
///
/// ```
/// use autoprov_core::{ApprovalWorkflowType, AssignmentRequest, RequestKind, RequestedAssignment, WorkflowState};
/// let mut r = AssignmentRequest::new(
///     "req-1", "u-7", RequestKind::Add,
///     RequestedAssignment { resource_type: "rt-ad".into(), scalar: None, navigation: None },
///     ApprovalWorkflowType::Two,
/// );
/// r.submit().unwrap();
/// assert_eq!(r.workflow_state(), WorkflowState::PendingApproval1Of2);
/// assert!(r.approve(2).is_err()); // skipping step 1 is refused
/// r.approve(1).unwrap();
/// r.approve(2).unwrap();
/// assert_eq!(r.workflow_state(), WorkflowState::Approved);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", try_from = "StoredRequest")]
pub struct AssignmentRequest {
    /// Its id.
    pub id: RequestId,
    /// The owner the request is for.
    pub owner: OwnerId,
    /// Add or remove.
    pub kind: RequestKind,
    /// What is requested.
    pub assignment: RequestedAssignment,
    /// The approval steps.
    pub approval: ApprovalWorkflowType,
    /// Who requested it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Who approved each step, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<StepApproval>,
    state: RequestState,
}

/// A request as stored, checked before it becomes an [`AssignmentRequest`]: the methods rely on
/// the state fitting the workflow (a stored `PendingApproval { step: 255, of: 0 }` would make
/// `approve(255)` overflow).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredRequest {
    id: RequestId,
    owner: OwnerId,
    kind: RequestKind,
    assignment: RequestedAssignment,
    approval: ApprovalWorkflowType,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    approvals: Vec<StepApproval>,
    state: RequestState,
}

impl TryFrom<StoredRequest> for AssignmentRequest {
    type Error = String;

    fn try_from(r: StoredRequest) -> Result<Self, String> {
        let steps = r.approval.steps();
        match r.state {
            RequestState::PendingApproval { step, of } if of != steps || step == 0 || step > of => {
                Err(format!(
                    "request {} for owner {}: approval step {step} of {of} does not fit its \
                     {:?} workflow of {steps} step(s)",
                    r.id, r.owner, r.approval
                ))
            }
            RequestState::Declined if steps == 0 => Err(format!(
                "request {} for owner {}: declined, but its workflow has no approval step",
                r.id, r.owner
            )),
            state => Ok(Self {
                id: r.id,
                owner: r.owner,
                kind: r.kind,
                assignment: r.assignment,
                approval: r.approval,
                requested_by: r.requested_by,
                approvals: r.approvals,
                state,
            }),
        }
    }
}

impl AssignmentRequest {
    /// A new request in state Requested.
    pub fn new(
        id: impl Into<RequestId>,
        owner: impl Into<OwnerId>,
        kind: RequestKind,
        assignment: RequestedAssignment,
        approval: ApprovalWorkflowType,
    ) -> Self {
        Self {
            id: id.into(),
            owner: owner.into(),
            kind,
            assignment,
            approval,
            requested_by: None,
            approvals: Vec::new(),
            state: RequestState::Requested,
        }
    }

    /// With who requested it.
    pub fn requested_by(mut self, requester: impl Into<String>) -> Self {
        self.requested_by = Some(requester.into());
        self
    }

    /// Its state.
    pub fn state(&self) -> RequestState {
        self.state
    }

    /// Its workflow state code (SPEC §3). An approved removal is `Cancellation`.
    pub fn workflow_state(&self) -> WorkflowState {
        match self.state {
            RequestState::Requested => WorkflowState::Requested,
            RequestState::PendingApproval { step, .. } => self.approval.pending_state(step),
            RequestState::Approved => match self.kind {
                RequestKind::Add => WorkflowState::Approved,
                RequestKind::Remove => WorkflowState::Cancellation,
            },
            RequestState::Declined => WorkflowState::Declined,
        }
    }

    /// Whether the request is approved.
    pub fn is_approved(&self) -> bool {
        self.state == RequestState::Approved
    }

    /// Submits the request: with no approval step it is approved at once. A resource type
    /// that allows no manual assignment refuses it.
    pub fn submit(&mut self) -> Result<RequestState, RequestError> {
        match self.state {
            RequestState::Requested
                if self.approval == ApprovalWorkflowType::ManualAssignmentNotAllowed =>
            {
                Err(RequestError::ManualAssignmentNotAllowed {
                    request: self.id.clone(),
                    owner: self.owner.clone(),
                    resource_type: self.assignment.resource_type.clone(),
                })
            }
            RequestState::Requested => {
                self.state = match self.approval.steps() {
                    0 => RequestState::Approved,
                    n => RequestState::PendingApproval { step: 1, of: n },
                };
                Ok(self.state)
            }
            RequestState::PendingApproval { .. } => Err(RequestError::AlreadySubmitted {
                request: self.id.clone(),
                owner: self.owner.clone(),
            }),
            state => Err(self.decided(state, "submit")),
        }
    }

    /// Approves `step` (1-based). It must be the step waited for.
    pub fn approve(&mut self, step: u8) -> Result<RequestState, RequestError> {
        match self.state {
            RequestState::PendingApproval { step: expected, of } => {
                if step != expected {
                    return Err(RequestError::WrongStep {
                        request: self.id.clone(),
                        owner: self.owner.clone(),
                        expected,
                        given: step,
                    });
                }
                self.state = if step == of {
                    RequestState::Approved
                } else {
                    RequestState::PendingApproval { step: step + 1, of }
                };
                Ok(self.state)
            }
            RequestState::Requested => Err(RequestError::NotSubmitted {
                request: self.id.clone(),
                owner: self.owner.clone(),
                operation: "approve",
            }),
            state => Err(self.decided(state, "approve")),
        }
    }

    /// Approves `step` as `approver` at `at`, recording who approved it. The requester may
    /// approve their own request only when `implicit` allows it.
    pub fn approve_by(
        &mut self,
        step: u8,
        approver: &str,
        at: chrono::DateTime<chrono::Utc>,
        implicit: ImplicitApproval,
    ) -> Result<RequestState, RequestError> {
        if self.requested_by.as_deref() == Some(approver) && !implicit.allows_self_approval() {
            return Err(RequestError::SelfApproval {
                request: self.id.clone(),
                owner: self.owner.clone(),
                approver: approver.to_owned(),
                step,
            });
        }
        let state = self.approve(step)?;
        self.approvals.push(StepApproval {
            step,
            by: approver.to_owned(),
            at,
        });
        Ok(state)
    }

    /// Declines the request at the step waited for.
    pub fn decline(&mut self) -> Result<RequestState, RequestError> {
        match self.state {
            RequestState::PendingApproval { .. } => {
                self.state = RequestState::Declined;
                Ok(self.state)
            }
            RequestState::Requested => Err(RequestError::NotSubmitted {
                request: self.id.clone(),
                owner: self.owner.clone(),
                operation: "decline",
            }),
            state => Err(self.decided(state, "decline")),
        }
    }

    fn decided(&self, state: RequestState, operation: &'static str) -> RequestError {
        RequestError::AlreadyDecided {
            request: self.id.clone(),
            owner: self.owner.clone(),
            state,
            operation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(approval: ApprovalWorkflowType) -> AssignmentRequest {
        AssignmentRequest::new(
            "req-1",
            "u-1",
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "rt".into(),
                scalar: None,
                navigation: Some(("memberOf".into(), Reference::dn("CN=G"))),
            },
            approval,
        )
    }

    #[test]
    fn zero_steps_approve_on_submit() {
        let mut r = request(ApprovalWorkflowType::None);
        assert_eq!(r.workflow_state(), WorkflowState::Requested);
        assert_eq!(r.submit(), Ok(RequestState::Approved));
        assert!(r.is_approved());
        assert!(matches!(
            r.approve(1),
            Err(RequestError::AlreadyDecided { .. })
        ));
    }

    #[test]
    fn three_steps_walk_the_codes() {
        let mut r = request(ApprovalWorkflowType::Three);
        r.submit().unwrap();
        assert_eq!(r.workflow_state().code(), 11);
        r.approve(1).unwrap();
        assert_eq!(r.workflow_state().code(), 12);
        assert!(matches!(
            r.approve(3),
            Err(RequestError::WrongStep {
                expected: 2,
                given: 3,
                ..
            })
        ));
        assert_eq!(
            r.workflow_state().code(),
            12,
            "a refused step changes nothing"
        );
        r.approve(2).unwrap();
        assert_eq!(r.workflow_state().code(), 13);
        r.approve(3).unwrap();
        assert_eq!(r.workflow_state(), WorkflowState::Approved);
    }

    #[test]
    fn declined_requests_cannot_be_approved() {
        let mut r = request(ApprovalWorkflowType::One);
        assert!(matches!(
            r.approve(1),
            Err(RequestError::NotSubmitted { .. })
        ));
        r.submit().unwrap();
        assert_eq!(r.workflow_state(), WorkflowState::PendingApproval);
        r.decline().unwrap();
        assert_eq!(r.workflow_state(), WorkflowState::Declined);
        let err = r.approve(1).unwrap_err();
        assert!(
            err.to_string().contains("req-1") && err.to_string().contains("u-1"),
            "{err}"
        );
        assert!(r.decline().is_err());
        assert!(r.submit().is_err());
    }

    #[test]
    fn approved_removal_is_a_cancellation() {
        let mut r = request(ApprovalWorkflowType::None);
        r.kind = RequestKind::Remove;
        r.submit().unwrap();
        assert_eq!(r.workflow_state(), WorkflowState::Cancellation);
    }
}
