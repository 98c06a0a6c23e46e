//! Workflow states (SPEC §3) and provisioning states (SPEC §4) with the provisioning state
//! machine.
//!
//! Both state enums serialize by name and accept either the name or the reference system's
//! numeric code on input, so files exported by the reference system can be read.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every state, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The reference system's numeric code.
            pub fn code(self) -> u16 {
                match self { $($name::$variant => $code),+ }
            }

            /// The state for a numeric code.
            pub fn from_code(code: u16) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The state's name, as serialized.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// The state for a name (exact, as serialized).
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $(stringify!($variant) => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} name or numeric code", stringify!($name))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_name(v)
                            .ok_or_else(|| E::custom(format!("unknown {} `{v}`", stringify!($name))))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        u16::try_from(v).ok().and_then($name::from_code)
                            .ok_or_else(|| E::custom(format!("unknown {} code {v}", stringify!($name))))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        u64::try_from(v)
                            .map_err(|_| E::custom(format!("unknown {} code {v}", stringify!($name))))
                            .and_then(|v| self.visit_u64(v))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

coded_enum! {
    /// Where an assignment came from and how far its approval went (SPEC §3).
    WorkflowState {
        /// No workflow.
        None = 0,
        /// Seen in the target, no rule explains it (non-conforming).
        Found = 1,
        /// Requested, parameters missing.
        RequestedMissingParameters = 2,
        /// Pre-existing before go-live.
        Historic = 3,
        /// Requested manually.
        Requested = 4,
        /// Given by a rule, parameters missing.
        CalculatedMissingParameters = 5,
        /// Waiting for the one approval.
        PendingApproval = 8,
        /// Waiting for approval 1 of 2.
        PendingApproval1Of2 = 9,
        /// Waiting for approval 2 of 2.
        PendingApproval2Of2 = 10,
        /// Waiting for approval 1 of 3.
        PendingApproval1Of3 = 11,
        /// Waiting for approval 2 of 3.
        PendingApproval2Of3 = 12,
        /// Waiting for approval 3 of 3.
        PendingApproval3Of3 = 13,
        /// Approved.
        Approved = 16,
        /// Declined.
        Declined = 17,
        /// Given by a rule.
        Calculated = 18,
        /// Expired.
        Inactive = 19,
        /// Removal requested and approved.
        Cancellation = 20,
        /// Suggested by a rule.
        Suggested = 21,
        /// Suggested by a rule (alternative code).
        SuggestedAlternative = 22,
        /// Automatic, but validated by a person.
        AutomaticButWithValidation = 23,
        /// A manual value kept although the rules now say otherwise.
        ApprovedQuestioned = 24,
        /// Waiting for a risk approval.
        PendingApprovalRisk = 25,
        /// Blocked by a risk.
        Blocked = 26,
        /// Grace period.
        Prolonged = 27,
        /// Approved despite a risk.
        ApprovedRisk = 116,
        /// Given by a role.
        GivenByRole = 118,
    }
}

impl WorkflowState {
    /// Whether the approval is complete, so the assignment may produce orders (SPEC §3:
    /// Calculated, Approved, GivenByRole, Cancellation for removal; plus the risk-approved and
    /// questioned-but-kept variants).
    pub fn produces_orders(self) -> bool {
        matches!(
            self,
            Self::Calculated
                | Self::Approved
                | Self::GivenByRole
                | Self::Cancellation
                | Self::ApprovedRisk
                | Self::ApprovedQuestioned
                | Self::Prolonged
        )
    }

    /// Found and Historic values are never overwritten automatically.
    pub fn is_reconciliation_only(self) -> bool {
        matches!(self, Self::Found | Self::Historic)
    }

    /// Whether the state waits for an approval step.
    pub fn is_pending_approval(self) -> bool {
        matches!(
            self,
            Self::PendingApproval
                | Self::PendingApproval1Of2
                | Self::PendingApproval2Of2
                | Self::PendingApproval1Of3
                | Self::PendingApproval2Of3
                | Self::PendingApproval3Of3
                | Self::PendingApprovalRisk
        )
    }
}

coded_enum! {
    /// How far an assignment's fulfilment went (SPEC §4).
    ProvisioningState {
        /// Internal: nothing due.
        None = 0,
        /// An order is due and will be sent.
        Pending = 1,
        /// Handed to a human (manual connection); waiting for confirmation.
        Transmitted = 2,
        /// The connector or the human reported a failure, or verification timed out.
        Errored = 3,
        /// The value was seen in the managed system by a synchronization.
        Verified = 4,
        /// Blocked in provisioning review.
        AwaitingApproval = 5,
        /// The order became useless (its period is in the past, or review declined it).
        Inactive = 6,
        /// Policy evaluation failed for this item.
        Error = 7,
        /// The connector reported success; not yet seen by a synchronization.
        Executed = 8,
    }
}

/// How a connection fulfils orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ConnectionMode {
    /// A connector applies the order itself. Automated provisioning skips Transmitted.
    #[default]
    Automated,
    /// The order is handed to a human, who confirms or reports an error.
    Manual,
}

/// What happened to a provisioning item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProvisioningEvent {
    /// Evaluation found a difference between expected and actual.
    DifferenceFound {
        /// The resource type requires provisioning review.
        review_required: bool,
    },
    /// Evaluation found the target already equal to what is expected.
    FoundEqualAtEvaluation,
    /// Provisioning review approved the order.
    ReviewApproved,
    /// Provisioning review declined the order: it is cancelled.
    ReviewDeclined,
    /// Provisioning review postponed the decision.
    ReviewPostponed,
    /// An automated connector applied the order.
    ConnectorSucceeded,
    /// The connector failed permanently, or retries were exhausted (for a manual connection:
    /// the order could not be handed over).
    ConnectorFailed,
    /// A manual connection handed the order to a human.
    HandedToHuman,
    /// The human confirmed the order was carried out.
    HumanConfirmed,
    /// The human reported an error.
    HumanReportedError,
    /// A synchronization saw the expected value in the managed system.
    SynchronizationMatched,
    /// The item stayed Executed/Transmitted longer than `TransmittedStateValidityPeriod`.
    VerificationTimedOut,
    /// An operator asked to retry an Errored item.
    OperatorRetried,
    /// The order's period passed before it was sent.
    PeriodPassed,
    /// Policy evaluation failed for this item.
    EvaluationFailed,
    /// An automated connector found an existing account that matches an Added order but that
    /// autoprov did not create, and the resource type asks for review before adopting one
    /// (`ReviewAdoption`): nothing was written; the order waits for a person's decision.
    AdoptionNeedsReview,
}

/// A (state, event) pair that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal provisioning transition: {event:?} in state {state} on a {mode:?} connection")]
pub struct IllegalTransition {
    /// The state the item was in (and stays in).
    pub state: ProvisioningState,
    /// The event that was refused.
    pub event: ProvisioningEvent,
    /// The connection mode.
    pub mode: ConnectionMode,
}

impl ProvisioningState {
    /// The provisioning state machine (SPEC §4): the state after `event`, or a typed error that
    /// leaves the item where it was.
    ///
    /// ```
    /// use autoprov_core::{ConnectionMode, ProvisioningEvent as E, ProvisioningState as S};
    /// let s = S::None.apply(E::DifferenceFound { review_required: false }, ConnectionMode::Automated);
    /// assert_eq!(s, Ok(S::Pending));
    /// // Automated provisioning never passes through Transmitted.
    /// assert!(S::Pending.apply(E::HandedToHuman, ConnectionMode::Automated).is_err());
    /// assert_eq!(S::Pending.apply(E::ConnectorSucceeded, ConnectionMode::Automated), Ok(S::Executed));
    /// ```
    pub fn apply(
        self,
        event: ProvisioningEvent,
        mode: ConnectionMode,
    ) -> Result<ProvisioningState, IllegalTransition> {
        use ConnectionMode::{Automated, Manual};
        use ProvisioningEvent as E;
        use ProvisioningState as S;
        let next = match (self, event, mode) {
            // Evaluation: a difference opens an item (new, drifted, re-evaluated after an
            // evaluation error, or revived after it became useless).
            (
                S::None | S::Verified | S::Error | S::Inactive,
                E::DifferenceFound { review_required },
                _,
            ) => {
                if review_required {
                    Some(S::AwaitingApproval)
                } else {
                    Some(S::Pending)
                }
            }
            // Evaluation: the target already holds the value.
            (
                S::None
                | S::Pending
                | S::AwaitingApproval
                | S::Errored
                | S::Error
                | S::Inactive
                | S::Verified,
                E::FoundEqualAtEvaluation,
                _,
            ) => Some(S::Verified),
            // Provisioning review.
            (S::AwaitingApproval, E::ReviewApproved, _) => Some(S::Pending),
            (S::AwaitingApproval, E::ReviewDeclined, _) => Some(S::Inactive),
            (S::AwaitingApproval, E::ReviewPostponed, _) => Some(S::AwaitingApproval),
            // Fulfilment, automated: Pending ⇒ Executed | Errored, never Transmitted.
            (S::Pending, E::ConnectorSucceeded, Automated) => Some(S::Executed),
            // An account found that autoprov did not create waits for review before adoption.
            (S::Pending, E::AdoptionNeedsReview, Automated) => Some(S::AwaitingApproval),
            // A connector failure before anything was applied or handed over (for a manual
            // connection: the ticket system refused the order) errs in either mode.
            (S::Pending, E::ConnectorFailed, _) => Some(S::Errored),
            // Fulfilment, manual: Pending ⇒ Transmitted ⇒ Executed | Errored.
            (S::Pending, E::HandedToHuman, Manual) => Some(S::Transmitted),
            (S::Transmitted, E::HumanConfirmed, Manual) => Some(S::Executed),
            (S::Transmitted, E::HumanReportedError, Manual) => Some(S::Errored),
            // Verification.
            (S::Executed | S::Transmitted, E::SynchronizationMatched, _) => Some(S::Verified),
            (S::Executed | S::Transmitted, E::VerificationTimedOut, _) => Some(S::Errored),
            // Operator.
            (S::Errored, E::OperatorRetried, _) => Some(S::Pending),
            // Expiry and evaluation failure.
            (S::Pending | S::AwaitingApproval, E::PeriodPassed, _) => Some(S::Inactive),
            (
                S::None
                | S::Pending
                | S::AwaitingApproval
                | S::Verified
                | S::Errored
                | S::Inactive
                | S::Error,
                E::EvaluationFailed,
                _,
            ) => Some(S::Error),
            _ => None,
        };
        next.ok_or(IllegalTransition {
            state: self,
            event,
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionMode::{Automated, Manual};
    use ProvisioningEvent as E;
    use ProvisioningState as S;

    #[test]
    fn workflow_states_serialize_by_name_and_read_codes() {
        for s in WorkflowState::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
            let by_name: WorkflowState = serde_json::from_str(&json).unwrap();
            let by_code: WorkflowState = serde_json::from_str(&s.code().to_string()).unwrap();
            assert_eq!(by_name, *s);
            assert_eq!(by_code, *s);
        }
        assert_eq!(WorkflowState::GivenByRole.code(), 118);
        assert_eq!(WorkflowState::PendingApproval2Of3.code(), 12);
        assert!(serde_json::from_str::<WorkflowState>("6").is_err());
        assert!(serde_json::from_str::<WorkflowState>("\"Nope\"").is_err());
    }

    #[test]
    fn provisioning_states_serialize_by_name_and_read_codes() {
        assert_eq!(S::ALL.len(), 9);
        for s in S::ALL {
            let back: S = serde_json::from_str(&s.code().to_string()).unwrap();
            assert_eq!(back, *s);
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!(S::Executed.code(), 8);
        assert_eq!(S::AwaitingApproval.code(), 5);
    }

    /// Every allowed (state, event, mode) triple and its result. Everything not listed must be
    /// an illegal transition.
    fn allowed() -> Vec<(S, E, ConnectionMode, S)> {
        let diff = E::DifferenceFound {
            review_required: false,
        };
        let diff_review = E::DifferenceFound {
            review_required: true,
        };
        let mut table = Vec::new();
        for mode in [Automated, Manual] {
            for from in [S::None, S::Verified, S::Error, S::Inactive] {
                table.push((from, diff, mode, S::Pending));
                table.push((from, diff_review, mode, S::AwaitingApproval));
            }
            for from in [
                S::None,
                S::Pending,
                S::AwaitingApproval,
                S::Errored,
                S::Error,
                S::Inactive,
                S::Verified,
            ] {
                table.push((from, E::FoundEqualAtEvaluation, mode, S::Verified));
            }
            table.push((S::AwaitingApproval, E::ReviewApproved, mode, S::Pending));
            table.push((S::AwaitingApproval, E::ReviewDeclined, mode, S::Inactive));
            table.push((
                S::AwaitingApproval,
                E::ReviewPostponed,
                mode,
                S::AwaitingApproval,
            ));
            for from in [S::Executed, S::Transmitted] {
                table.push((from, E::SynchronizationMatched, mode, S::Verified));
                table.push((from, E::VerificationTimedOut, mode, S::Errored));
            }
            table.push((S::Errored, E::OperatorRetried, mode, S::Pending));
            table.push((S::Pending, E::PeriodPassed, mode, S::Inactive));
            table.push((S::AwaitingApproval, E::PeriodPassed, mode, S::Inactive));
            for from in [
                S::None,
                S::Pending,
                S::AwaitingApproval,
                S::Verified,
                S::Errored,
                S::Inactive,
                S::Error,
            ] {
                table.push((from, E::EvaluationFailed, mode, S::Error));
            }
        }
        table.push((S::Pending, E::ConnectorSucceeded, Automated, S::Executed));
        table.push((
            S::Pending,
            E::AdoptionNeedsReview,
            Automated,
            S::AwaitingApproval,
        ));
        table.push((S::Pending, E::ConnectorFailed, Automated, S::Errored));
        table.push((S::Pending, E::ConnectorFailed, Manual, S::Errored));
        table.push((S::Pending, E::HandedToHuman, Manual, S::Transmitted));
        table.push((S::Transmitted, E::HumanConfirmed, Manual, S::Executed));
        table.push((S::Transmitted, E::HumanReportedError, Manual, S::Errored));
        table
    }

    pub(crate) fn all_events() -> Vec<E> {
        vec![
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
            E::AdoptionNeedsReview,
            E::OperatorRetried,
            E::PeriodPassed,
            E::EvaluationFailed,
        ]
    }

    #[test]
    fn transition_table_is_exact() {
        let table = allowed();
        for &state in S::ALL {
            for event in all_events() {
                for mode in [Automated, Manual] {
                    let expected = table
                        .iter()
                        .find(|(s, e, m, _)| *s == state && *e == event && *m == mode)
                        .map(|(_, _, _, to)| *to);
                    let got = state.apply(event, mode);
                    match expected {
                        Some(to) => assert_eq!(got, Ok(to), "{state} {event:?} {mode:?}"),
                        None => assert_eq!(
                            got,
                            Err(IllegalTransition { state, event, mode }),
                            "{state} {event:?} {mode:?} should be illegal"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn automated_never_transmits_and_manual_never_executes_directly() {
        for &state in S::ALL {
            for event in all_events() {
                if let Ok(next) = state.apply(event, Automated) {
                    assert_ne!(next, S::Transmitted, "{state} {event:?}");
                }
            }
        }
        assert!(S::Pending.apply(E::ConnectorSucceeded, Manual).is_err());
        assert!(S::Pending.apply(E::HandedToHuman, Automated).is_err());
    }
}
