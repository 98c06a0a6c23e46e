//! The provisioning state machine of SPEC §4 under random event sequences.

use autoprov_core::{
    ConnectionMode, IllegalTransition, ProvisioningEvent as E, ProvisioningState as S,
};
use proptest::prelude::*;
use std::collections::{BTreeSet, VecDeque};

const MODES: [ConnectionMode; 2] = [ConnectionMode::Automated, ConnectionMode::Manual];

/// Every event (the enum is `#[non_exhaustive]`; `event_index` keeps this list complete).
const EVENTS: [E; 17] = [
    E::DifferenceFound {
        review_required: false,
    },
    E::DifferenceFound {
        review_required: true,
    },
    E::FoundEqualAtEvaluation,
    E::ReviewApproved,
    E::ReviewDeclined,
    E::ReviewPostponed,
    E::ConnectorSucceeded,
    E::ConnectorFailed,
    E::HandedToHuman,
    E::HumanConfirmed,
    E::HumanReportedError,
    E::SynchronizationMatched,
    E::VerificationTimedOut,
    E::OperatorRetried,
    E::PeriodPassed,
    E::EvaluationFailed,
    E::AdoptionNeedsReview,
];

/// Position of an event in `EVENTS`; a new variant fails to compile here until listed.
fn event_index(e: E) -> usize {
    match e {
        E::DifferenceFound {
            review_required: false,
        } => 0,
        E::DifferenceFound {
            review_required: true,
        } => 1,
        E::FoundEqualAtEvaluation => 2,
        E::ReviewApproved => 3,
        E::ReviewDeclined => 4,
        E::ReviewPostponed => 5,
        E::ConnectorSucceeded => 6,
        E::ConnectorFailed => 7,
        E::HandedToHuman => 8,
        E::HumanConfirmed => 9,
        E::HumanReportedError => 10,
        E::SynchronizationMatched => 11,
        E::VerificationTimedOut => 12,
        E::OperatorRetried => 13,
        E::PeriodPassed => 14,
        E::EvaluationFailed => 15,
        E::AdoptionNeedsReview => 16,
        // `#[non_exhaustive]` forces a wildcard outside the defining crate.
        _ => usize::MAX,
    }
}

/// SPEC §4, read as "which events may lead into each state" (self-loops included): a check
/// written from the spec's bullets, independent of how `apply` is organised.
fn may_enter(to: S, from: S, event: E, mode: ConnectionMode) -> bool {
    use ConnectionMode::{Automated, Manual};
    match to {
        S::None => false,
        S::Pending => matches!(
            event,
            E::DifferenceFound {
                review_required: false
            } | E::ReviewApproved
                | E::OperatorRetried
        ),
        S::AwaitingApproval => {
            matches!(
                event,
                E::DifferenceFound {
                    review_required: true
                } | E::ReviewPostponed
            ) || (event == E::AdoptionNeedsReview && mode == Automated && from == S::Pending)
        }
        S::Transmitted => event == E::HandedToHuman && mode == Manual && from == S::Pending,
        S::Executed => matches!(
            (event, mode, from),
            (E::ConnectorSucceeded, Automated, S::Pending)
                | (E::HumanConfirmed, Manual, S::Transmitted)
        ),
        S::Errored => match event {
            // SPEC §4 names this for automated connections; a manual connection may fail the
            // same way before anything reached a human (the ticket system refused the order).
            E::ConnectorFailed => from == S::Pending,
            E::HumanReportedError => mode == Manual && from == S::Transmitted,
            E::VerificationTimedOut => matches!(from, S::Executed | S::Transmitted),
            _ => false,
        },
        S::Verified => match event {
            E::SynchronizationMatched => matches!(from, S::Executed | S::Transmitted),
            E::FoundEqualAtEvaluation => true,
            _ => false,
        },
        S::Inactive => matches!(event, E::PeriodPassed | E::ReviewDeclined),
        S::Error => event == E::EvaluationFailed,
    }
}

/// The states reachable from `from` on a connection of `mode` (BFS over every event).
fn reachable(from: S, mode: ConnectionMode) -> BTreeSet<S> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(s) = queue.pop_front() {
        for e in EVENTS {
            if let Ok(next) = s.apply(e, mode)
                && seen.insert(next)
            {
                queue.push_back(next);
            }
        }
    }
    seen
}

#[test]
fn the_event_list_is_complete_and_ordered() {
    for (i, e) in EVENTS.iter().enumerate() {
        assert_eq!(event_index(*e), i);
    }
}

#[test]
fn every_state_can_still_reach_verified_on_both_connection_modes() {
    for mode in MODES {
        for &s in S::ALL {
            assert!(
                reachable(s, mode).contains(&S::Verified),
                "{s} cannot reach Verified on a {mode:?} connection"
            );
        }
    }
}

#[test]
fn automated_connections_never_reach_transmitted_and_manual_ones_do() {
    for &s in S::ALL {
        if s != S::Transmitted {
            assert!(
                !reachable(s, ConnectionMode::Automated).contains(&S::Transmitted),
                "{s}"
            );
        }
    }
    assert!(reachable(S::None, ConnectionMode::Manual).contains(&S::Transmitted));
    // A manual connection reaches Executed only through Transmitted.
    for e in EVENTS {
        if let Ok(S::Executed) = S::Pending.apply(e, ConnectionMode::Manual) {
            panic!("manual Pending ⇒ Executed on {e:?}, skipping Transmitted");
        }
    }
}

#[test]
fn the_happy_paths_of_the_spec() {
    use ConnectionMode::{Automated, Manual};
    let run = |events: &[E], mode| {
        events
            .iter()
            .try_fold(vec![S::None], |mut path, e| {
                let next = path.last().unwrap().apply(*e, mode)?;
                path.push(next);
                Ok::<_, IllegalTransition>(path)
            })
            .unwrap()
    };
    let diff = E::DifferenceFound {
        review_required: false,
    };
    assert_eq!(
        run(
            &[diff, E::ConnectorSucceeded, E::SynchronizationMatched],
            Automated
        ),
        [S::None, S::Pending, S::Executed, S::Verified]
    );
    assert_eq!(
        run(
            &[
                diff,
                E::HandedToHuman,
                E::HumanConfirmed,
                E::SynchronizationMatched
            ],
            Manual
        ),
        [
            S::None,
            S::Pending,
            S::Transmitted,
            S::Executed,
            S::Verified
        ]
    );
    assert_eq!(
        run(
            &[
                E::DifferenceFound {
                    review_required: true
                },
                E::ReviewPostponed,
                E::ReviewApproved,
                E::ConnectorFailed,
                E::OperatorRetried,
                E::ConnectorSucceeded,
                E::VerificationTimedOut,
                E::OperatorRetried,
                E::ConnectorSucceeded,
                E::SynchronizationMatched,
                diff,
            ],
            Automated
        ),
        [
            S::None,
            S::AwaitingApproval,
            S::AwaitingApproval,
            S::Pending,
            S::Errored,
            S::Pending,
            S::Executed,
            S::Errored,
            S::Pending,
            S::Executed,
            S::Verified,
            S::Pending,
        ]
    );
}

fn arb_event() -> impl Strategy<Value = E> {
    proptest::sample::select(&EVENTS[..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_follow_the_spec(
        start in proptest::sample::select(S::ALL),
        mode in proptest::sample::select(&MODES[..]),
        events in proptest::collection::vec(arb_event(), 0..64),
    ) {
        let mut state = start;
        let mut visited = BTreeSet::from([start]);
        for event in events {
            let before = state;
            match state.apply(event, mode) {
                Ok(next) => {
                    prop_assert!(
                        may_enter(next, before, event, mode),
                        "{} --{:?}/{:?}--> {} is not a transition of SPEC §4", before, event, mode, next
                    );
                    if next == S::Verified {
                        prop_assert!(
                            matches!(event, E::SynchronizationMatched | E::FoundEqualAtEvaluation),
                            "Verified entered through {:?}", event
                        );
                    }
                    if mode == ConnectionMode::Automated {
                        prop_assert_ne!(next, S::Transmitted);
                    }
                    state = next;
                }
                Err(err) => {
                    // The error names exactly what was refused; the caller keeps the old state.
                    prop_assert_eq!(&err, &IllegalTransition { state: before, event, mode });
                    prop_assert!(err.to_string().contains(before.name()), "{}", err);
                    prop_assert_eq!(state, before);
                }
            }
            // Pure: the same question gets the same answer.
            prop_assert_eq!(before.apply(event, mode), before.apply(event, mode));
            visited.insert(state);
        }
        for s in visited {
            prop_assert!(
                reachable(s, mode).contains(&S::Verified),
                "{} reached on a {:?} connection can no longer reach Verified", s, mode
            );
        }
    }
}
