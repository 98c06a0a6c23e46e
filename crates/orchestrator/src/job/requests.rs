//! Manual assignment requests through the job (SPEC §2, §3; the reference system's
//! `ApprovalWorkflowType` and `ImplicitApproval`): stored durably with who requested and who
//! approved each step, audited, and loaded back into the planner by a restarted process.

use crate::PlanError;
use crate::store::{AuditAction, AuditEntry, StoreError, StoreExt as _};
use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, RequestError, RequestId, RequestState, ResourceTypeId,
};
use futures::TryStreamExt as _;

use super::ProvisioningJob;

/// A refused request operation: nothing was stored or planned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestOpError {
    /// The request's workflow refused it (not submitted, wrong step, self-approval, a type
    /// that allows no manual assignment, already decided).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request names a workflow other than its resource type's.
    #[error(
        "request {request}: resource type {resource_type} needs approval workflow {expected:?}, the request says {given:?}"
    )]
    WorkflowMismatch {
        /// The request.
        request: RequestId,
        /// Its resource type.
        resource_type: ResourceTypeId,
        /// The resource type's `ApprovalWorkflowType`.
        expected: ApprovalWorkflowType,
        /// The request's.
        given: ApprovalWorkflowType,
    },
    /// No such request in the store.
    #[error("request {request} is unknown")]
    UnknownRequest {
        /// The request.
        request: RequestId,
    },
    /// The planner refused it (unknown owner or resource type, an ungoverned property).
    #[error("request {request}: {source}")]
    Plan {
        /// The request.
        request: RequestId,
        /// The cause.
        source: PlanError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProvisioningJob {
    /// Submits a manual assignment request made by `requester`: its workflow must be its
    /// resource type's `ApprovalWorkflowType` (a type with `ManualAssignmentNotAllowed`
    /// refuses it), it is stored with its requester, audited, and — once approved (at once
    /// with no approval step) — planned by the next run.
    pub async fn submit_request(
        &mut self,
        request: AssignmentRequest,
        requester: &str,
    ) -> Result<RequestState, RequestOpError> {
        let rt = self
            .planner
            .resource_types()
            .iter()
            .find(|rt| rt.id == request.assignment.resource_type)
            .cloned();
        let Some(rt) = rt else {
            return Err(RequestOpError::Plan {
                request: request.id.clone(),
                source: PlanError::UnknownResourceType {
                    resource_type: request.assignment.resource_type.clone(),
                },
            });
        };
        if request.approval != rt.approval_workflow_type {
            return Err(RequestOpError::WorkflowMismatch {
                request: request.id.clone(),
                resource_type: rt.id.clone(),
                expected: rt.approval_workflow_type,
                given: request.approval,
            });
        }
        let mut request = request.requested_by(requester);
        let state = request.submit()?;
        // The planner checks the owner and what is requested before anything is stored.
        let id = request.id.clone();
        self.planner
            .upsert_request(request.clone())
            .map_err(|source| RequestOpError::Plan {
                request: id.clone(),
                source,
            })?;
        let owner = request.owner.clone();
        self.store.put_request(request).await?;
        let mut entry = AuditEntry::new(
            self.clock.now(),
            requester,
            AuditAction::Requested,
            id.as_str(),
        )
        .owner(owner);
        if state == RequestState::Approved {
            entry = entry.because("approved on submission: no approval step");
        }
        self.store.append_audit(entry).await?;
        Ok(state)
    }

    /// Approves `step` of a request as `approver`, recording who approved it and when. The
    /// requester approving their own request is refused unless the resource type's
    /// `ImplicitApproval` is `Implicit`.
    pub async fn approve_request(
        &mut self,
        request: &RequestId,
        step: u8,
        approver: &str,
    ) -> Result<RequestState, RequestOpError> {
        let mut r = self.stored_request(request).await?;
        let implicit = self
            .planner
            .resource_types()
            .iter()
            .find(|rt| rt.id == r.assignment.resource_type)
            .map(|rt| rt.implicit_approval)
            .unwrap_or_default();
        let now = self.clock.now();
        let state = r.approve_by(step, approver, now, implicit)?;
        self.record_request(
            r,
            approver,
            AuditAction::Approved,
            Some(format!("step {step}")),
        )
        .await?;
        Ok(state)
    }

    /// Declines a request as `by`: it gives nothing, and an assignment it was the reason
    /// for is removed at the next run.
    pub async fn decline_request(
        &mut self,
        request: &RequestId,
        by: &str,
        reason: Option<&str>,
    ) -> Result<RequestState, RequestOpError> {
        let mut r = self.stored_request(request).await?;
        let state = r.decline()?;
        self.record_request(r, by, AuditAction::Declined, reason.map(str::to_owned))
            .await?;
        Ok(state)
    }

    async fn stored_request(&self, id: &RequestId) -> Result<AssignmentRequest, RequestOpError> {
        self.store
            .request(id)
            .await?
            .ok_or_else(|| RequestOpError::UnknownRequest {
                request: id.clone(),
            })
    }

    async fn record_request(
        &mut self,
        request: AssignmentRequest,
        by: &str,
        action: AuditAction,
        reason: Option<String>,
    ) -> Result<(), RequestOpError> {
        let id = request.id.clone();
        let owner = request.owner.clone();
        self.store.put_request(request.clone()).await?;
        self.planner
            .upsert_request(request)
            .map_err(|source| RequestOpError::Plan {
                request: id.clone(),
                source,
            })?;
        let mut entry = AuditEntry::new(self.clock.now(), by, action, id.as_str()).owner(owner);
        if let Some(r) = reason {
            entry = entry.because(r);
        }
        self.store.append_audit(entry).await?;
        Ok(())
    }

    /// Loads the stored requests into the planner, once per process: a restarted process
    /// plans with the requests and approvals the last one recorded. A request the planner
    /// no longer accepts (its owner or resource type gone) is skipped.
    pub(super) async fn load_requests(&mut self) -> Result<(), StoreError> {
        if self.requests_loaded {
            return Ok(());
        }
        let requests: Vec<AssignmentRequest> = self
            .store
            .requests_stream(crate::store::DEFAULT_PAGE)
            .try_collect()
            .await?;
        for r in requests {
            if let Err(e) = self.planner.upsert_request(r) {
                tracing::warn!(error = %e, "a stored request is not planned");
            }
        }
        self.requests_loaded = true;
        Ok(())
    }
}
