//! Manual assignment requests through the job, as the reference system documents them:
//! `ApprovalWorkflowType` enforced per resource type (number of steps; manual assignment not
//! allowed), who approved each step recorded, self-approval refused unless `ImplicitApproval`
//! allows it, a declined request gives nothing, and everything survives a restart.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, ImplicitApproval, OwnerId, PropertyValue,
    RequestError, RequestKind, RequestState, RequestedAssignment, Resource,
};
use autoprov_orchestrator::clock::ManualClock;
use autoprov_orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob, RequestOpError};
use autoprov_orchestrator::store::{AuditAction, MemoryStore, Store};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn job(
    store: Arc<MemoryStore>,
    system: &InMemoryConnector,
    clock: Arc<ManualClock>,
    workflow: ApprovalWorkflowType,
    implicit: ImplicitApproval,
) -> ProvisioningJob {
    let mut config = demo::planner_config();
    for rt in &mut config.resource_types {
        if rt.id.as_str() == ACCOUNT {
            rt.approval_workflow_type = workflow;
            rt.implicit_approval = implicit;
        }
    }
    let mut planner = autoprov_orchestrator::Planner::new(config).unwrap();
    for p in demo::people(6, now()) {
        planner.upsert_owner(p);
    }
    ProvisioningJob::builder(planner, store)
        .connector(Arc::new(system.clone()))
        .clock(clock)
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build()
}

fn vpn_request(id: &str, workflow: ApprovalWorkflowType) -> AssignmentRequest {
    AssignmentRequest::new(
        id,
        OwnerId::new("E0001"),
        RequestKind::Add,
        RequestedAssignment {
            resource_type: ACCOUNT.into(),
            scalar: None,
            navigation: Some(("memberOf".into(), demo::group("VPN-Users"))),
        },
        workflow,
    )
}

fn in_vpn(system: &InMemoryConnector) -> bool {
    let login = demo::people(6, now())
        .into_iter()
        .find(|o| o.id.as_str() == "E0001")
        .unwrap()
        .identifier;
    system.snapshot().iter().any(|r: &Resource| {
        r.get("sAMAccountName")
            .and_then(PropertyValue::as_scalar)
            .is_some_and(|v| v.to_string() == login)
            && r.get("memberOf")
                .and_then(PropertyValue::as_references)
                .is_some_and(|g| {
                    g.iter()
                        .any(|g| g.dn_value().is_some_and(|d| d.starts_with("CN=VPN-Users,")))
                })
    })
}

fn world(
    workflow: ApprovalWorkflowType,
    implicit: ImplicitApproval,
) -> (
    Arc<MemoryStore>,
    InMemoryConnector,
    Arc<ManualClock>,
    ProvisioningJob,
) {
    let store = Arc::new(MemoryStore::new());
    let system = InMemoryConnector::new(demo::CONNECTION);
    demo::seed_directory(&system).unwrap();
    let clock = Arc::new(ManualClock::new(now()));
    let job = job(store.clone(), &system, clock.clone(), workflow, implicit);
    (store, system, clock, job)
}

async fn run(job: &mut ProvisioningJob, clock: &ManualClock) {
    clock.advance(TimeDelta::minutes(10));
    let r = job
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(r.dispatch.errored.is_empty(), "{:?}", r.dispatch);
}

#[tokio::test]
async fn a_two_step_request_needs_two_approvers_other_than_the_requester_and_survives_a_restart() {
    let (store, system, clock, mut job) =
        world(ApprovalWorkflowType::Two, ImplicitApproval::Inherited);
    run(&mut job, &clock).await;
    assert!(!in_vpn(&system));

    // The request must name its type's workflow.
    let err = job
        .submit_request(vpn_request("req-1", ApprovalWorkflowType::One), "bob")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestOpError::WorkflowMismatch { .. }),
        "{err}"
    );
    assert!(store.request(&"req-1".into()).await.unwrap().is_none());

    let state = job
        .submit_request(vpn_request("req-1", ApprovalWorkflowType::Two), "bob")
        .await
        .unwrap();
    assert_eq!(state, RequestState::PendingApproval { step: 1, of: 2 });
    // The requester cannot approve it (ImplicitApproval inherited = explicit).
    let err = job
        .approve_request(&"req-1".into(), 1, "bob")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestOpError::Request(RequestError::SelfApproval { .. })
        ),
        "{err}"
    );
    job.approve_request(&"req-1".into(), 1, "alice")
        .await
        .unwrap();
    // Not approved yet: nothing provisioned.
    run(&mut job, &clock).await;
    assert!(!in_vpn(&system));

    // A restart: a new process on the same store plans with the stored request.
    drop(job);
    let mut job = self::job(
        store.clone(),
        &system,
        clock.clone(),
        ApprovalWorkflowType::Two,
        ImplicitApproval::Inherited,
    );
    let state = job
        .approve_request(&"req-1".into(), 2, "carol")
        .await
        .unwrap();
    assert_eq!(state, RequestState::Approved);
    let stored = store.request(&"req-1".into()).await.unwrap().unwrap();
    assert_eq!(stored.requested_by.as_deref(), Some("bob"));
    let approvers: Vec<(u8, &str)> = stored
        .approvals
        .iter()
        .map(|a| (a.step, a.by.as_str()))
        .collect();
    assert_eq!(approvers, [(1, "alice"), (2, "carol")]);
    let mut restarted = self::job(
        store.clone(),
        &system,
        clock.clone(),
        ApprovalWorkflowType::Two,
        ImplicitApproval::Inherited,
    );
    run(&mut restarted, &clock).await;
    assert!(in_vpn(&system), "the approved request is provisioned");

    // Audited: who requested, who approved each step.
    let audit = store.audit_page(None, 100).await.unwrap();
    let trail: Vec<(AuditAction, &str)> = audit
        .iter()
        .filter(|(_, e)| e.subject == "req-1")
        .map(|(_, e)| (e.action, e.actor.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            (AuditAction::Requested, "bob"),
            (AuditAction::Approved, "alice"),
            (AuditAction::Approved, "carol")
        ]
    );
}

#[tokio::test]
async fn implicit_approval_lets_the_requester_approve_their_own_request() {
    let (_, system, clock, mut job) = world(ApprovalWorkflowType::One, ImplicitApproval::Implicit);
    run(&mut job, &clock).await;
    job.submit_request(vpn_request("req-2", ApprovalWorkflowType::One), "bob")
        .await
        .unwrap();
    let state = job
        .approve_request(&"req-2".into(), 1, "bob")
        .await
        .unwrap();
    assert_eq!(state, RequestState::Approved);
    run(&mut job, &clock).await;
    assert!(in_vpn(&system));
}

#[tokio::test]
async fn a_type_that_allows_no_manual_assignment_refuses_requests_and_a_declined_one_gives_nothing()
{
    let (store, _, _, mut job) = world(
        ApprovalWorkflowType::ManualAssignmentNotAllowed,
        ImplicitApproval::Inherited,
    );
    let err = job
        .submit_request(
            vpn_request("req-3", ApprovalWorkflowType::ManualAssignmentNotAllowed),
            "bob",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestOpError::Request(RequestError::ManualAssignmentNotAllowed { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(ACCOUNT), "{err}");
    assert!(store.request(&"req-3".into()).await.unwrap().is_none());

    let (store, system, clock, mut job) =
        world(ApprovalWorkflowType::One, ImplicitApproval::Inherited);
    run(&mut job, &clock).await;
    job.submit_request(vpn_request("req-4", ApprovalWorkflowType::One), "bob")
        .await
        .unwrap();
    let state = job
        .decline_request(&"req-4".into(), "alice", Some("not needed"))
        .await
        .unwrap();
    assert_eq!(state, RequestState::Declined);
    run(&mut job, &clock).await;
    assert!(!in_vpn(&system));
    let err = job
        .approve_request(&"req-4".into(), 1, "carol")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestOpError::Request(RequestError::AlreadyDecided { .. })
        ),
        "{err}"
    );
    let audit = store.audit_page(None, 100).await.unwrap();
    assert!(audit.iter().any(|(_, e)| e.action == AuditAction::Declined
        && e.actor == "alice"
        && e.reason.as_deref() == Some("not needed")));
}
