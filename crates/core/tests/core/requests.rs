//! Assignment requests with 0–3 approval steps under random operations.

use autoprov_core::{
    ApprovalWorkflowType, AssignmentRequest, Reference, RequestError, RequestKind, RequestState,
    RequestedAssignment, WorkflowState,
};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Submit,
    /// Approve the given step (often a wrong one).
    Approve(u8),
    /// Approve the step the request waits for, if any (drives requests to the end).
    ApproveExpected,
    Decline,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Submit),
        3 => (0..=4_u8).prop_map(Op::Approve),
        4 => Just(Op::ApproveExpected),
        1 => Just(Op::Decline),
    ]
}

fn arb_workflow() -> impl Strategy<Value = ApprovalWorkflowType> {
    proptest::sample::select(
        &[
            ApprovalWorkflowType::None,
            ApprovalWorkflowType::One,
            ApprovalWorkflowType::Two,
            ApprovalWorkflowType::Three,
        ][..],
    )
}

fn request(kind: RequestKind, approval: ApprovalWorkflowType) -> AssignmentRequest {
    AssignmentRequest::new(
        "req-1",
        "u-7",
        kind,
        RequestedAssignment {
            resource_type: "rt-ad".into(),
            scalar: None,
            navigation: Some((
                "memberOf".into(),
                Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test"),
            )),
        },
        approval,
    )
}

/// How far a request went: states only ever move to a higher rank.
fn rank(state: RequestState) -> u8 {
    match state {
        RequestState::Requested => 0,
        RequestState::PendingApproval { step, .. } => step,
        RequestState::Approved | RequestState::Declined => u8::MAX,
    }
}

fn is_decided(state: RequestState) -> bool {
    matches!(state, RequestState::Approved | RequestState::Declined)
}

/// The workflow code SPEC §3 gives a request state.
fn expected_code(state: RequestState, kind: RequestKind) -> WorkflowState {
    use WorkflowState as W;
    match state {
        RequestState::Requested => W::Requested,
        RequestState::PendingApproval { step, of } => match (step, of) {
            (1, 1) => W::PendingApproval,
            (1, 2) => W::PendingApproval1Of2,
            (2, 2) => W::PendingApproval2Of2,
            (1, 3) => W::PendingApproval1Of3,
            (2, 3) => W::PendingApproval2Of3,
            (3, 3) => W::PendingApproval3Of3,
            other => panic!("no request waits for step {other:?}"),
        },
        RequestState::Approved if kind == RequestKind::Remove => W::Cancellation,
        RequestState::Approved => W::Approved,
        RequestState::Declined => W::Declined,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn requests_only_move_forward_and_approve_exactly_after_every_step_in_order(
        approval in arb_workflow(),
        kind in prop_oneof![Just(RequestKind::Add), Just(RequestKind::Remove)],
        ops in proptest::collection::vec(arb_op(), 0..16),
    ) {
        let n = approval.steps();
        let mut r = request(kind, approval);
        let mut submitted = false;
        let mut approved_steps: Vec<u8> = Vec::new();
        let mut declined = false;

        for op in ops {
            let before = r.clone();
            let state = before.state();
            let result = match op {
                Op::Submit => r.submit(),
                Op::Approve(step) => r.approve(step),
                Op::ApproveExpected => match state {
                    RequestState::PendingApproval { step, .. } => r.approve(step),
                    _ => r.approve(1),
                },
                Op::Decline => r.decline(),
            };
            match result {
                Ok(new_state) => {
                    prop_assert_eq!(new_state, r.state());
                    prop_assert!(!is_decided(state), "{:?} changed a decided request", op);
                    prop_assert!(rank(new_state) > rank(state), "{:?} -> {:?} goes backwards", state, new_state);
                    match op {
                        Op::Submit => {
                            prop_assert_eq!(state, RequestState::Requested);
                            submitted = true;
                        }
                        Op::Decline => declined = true,
                        Op::Approve(_) | Op::ApproveExpected => {
                            let RequestState::PendingApproval { step, of } = state else {
                                return Err(TestCaseError::fail(format!("approved in {state:?}")));
                            };
                            prop_assert_eq!(of, n);
                            approved_steps.push(step);
                        }
                    }
                }
                Err(err) => {
                    // A refusal is typed, names the request and its owner, and changes nothing.
                    prop_assert_eq!(&r, &before, "{:?} was refused but changed the request", op);
                    let shown = err.to_string();
                    prop_assert!(shown.contains("req-1") && shown.contains("u-7"), "{}", shown);
                    match (&err, state) {
                        (RequestError::AlreadyDecided { state: s, .. }, decided) => {
                            prop_assert!(is_decided(decided));
                            prop_assert_eq!(*s, decided);
                        }
                        (RequestError::NotSubmitted { .. }, RequestState::Requested) => {
                            prop_assert!(!matches!(op, Op::Submit));
                        }
                        (RequestError::AlreadySubmitted { .. }, RequestState::PendingApproval { .. }) => {
                            prop_assert!(matches!(op, Op::Submit));
                        }
                        (
                            RequestError::WrongStep { expected, given, .. },
                            RequestState::PendingApproval { step, .. },
                        ) => {
                            prop_assert_eq!(*expected, step);
                            prop_assert_ne!(*given, step);
                            prop_assert!(matches!(op, Op::Approve(g) if g == *given));
                        }
                        (err, state) => {
                            return Err(TestCaseError::fail(format!("{op:?} in {state:?}: unexpected {err:?}")));
                        }
                    }
                }
            }
            prop_assert_eq!(r.workflow_state(), expected_code(r.state(), kind));
            prop_assert_eq!(r.is_approved(), r.state() == RequestState::Approved);
        }

        // Approved exactly when submitted and every step 1..=n was approved, in order, with no
        // decline; declined requests never approve.
        let all_steps: Vec<u8> = (1..=n).collect();
        let expect_approved = submitted && !declined && approved_steps == all_steps;
        prop_assert_eq!(r.is_approved(), expect_approved, "steps approved: {:?}", approved_steps);
        prop_assert!(approved_steps.iter().copied().eq(1..=approved_steps.len() as u8));
        if declined {
            prop_assert_eq!(r.state(), RequestState::Declined);
            prop_assert!(approved_steps.len() < usize::from(n));
        }
        prop_assert_eq!(r.workflow_state().produces_orders(), r.is_approved());
    }
}

#[test]
fn every_workflow_reaches_approved_only_after_its_last_step() {
    for approval in [
        ApprovalWorkflowType::None,
        ApprovalWorkflowType::One,
        ApprovalWorkflowType::Two,
        ApprovalWorkflowType::Three,
    ] {
        let mut r = request(RequestKind::Add, approval);
        let mut state = r.submit().unwrap();
        for step in 1..=approval.steps() {
            assert_eq!(
                state,
                RequestState::PendingApproval {
                    step,
                    of: approval.steps()
                }
            );
            assert!(r.workflow_state().is_pending_approval());
            state = r.approve(step).unwrap();
        }
        assert_eq!(state, RequestState::Approved, "{approval:?}");
        assert!(matches!(
            r.approve(1),
            Err(RequestError::AlreadyDecided { .. })
        ));
        assert!(matches!(
            r.decline(),
            Err(RequestError::AlreadyDecided { .. })
        ));
    }
}

#[test]
fn a_request_read_back_from_json_keeps_its_place() {
    let mut r = request(RequestKind::Remove, ApprovalWorkflowType::Three);
    r.submit().unwrap();
    r.approve(1).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    let mut back: AssignmentRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    assert!(matches!(
        back.approve(3),
        Err(RequestError::WrongStep {
            expected: 2,
            given: 3,
            ..
        })
    ));
    back.approve(2).unwrap();
    back.approve(3).unwrap();
    assert_eq!(back.workflow_state(), WorkflowState::Cancellation);
}

#[test]
fn a_request_whose_stored_state_contradicts_its_workflow_is_refused() {
    let r = request(RequestKind::Add, ApprovalWorkflowType::Two);
    let mut json = serde_json::to_value(&r).unwrap();
    for bad in [
        serde_json::json!({"PendingApproval": {"step": 3, "of": 2}}),
        serde_json::json!({"PendingApproval": {"step": 0, "of": 2}}),
        serde_json::json!({"PendingApproval": {"step": 1, "of": 3}}),
        serde_json::json!({"PendingApproval": {"step": 255, "of": 0}}),
    ] {
        json["State"] = bad.clone();
        let parsed = serde_json::from_value::<AssignmentRequest>(json.clone());
        let err = parsed.expect_err(&format!("{bad} accepted for a two-step workflow"));
        assert!(err.to_string().contains("approval step"), "{err}");
    }
}
