//! The dependency graph of one dispatch: an order waits for the orders it depends on, and a
//! failed dependency blocks its dependants.

use super::Outcome;
use autoprov_core::OrderId;
use std::collections::VecDeque;

/// The orders of one dispatch, their dependencies and their outcomes so far.
pub(super) struct Graph {
    pub(super) ids: Vec<OrderId>,
    /// Orders waiting for each order.
    pub(super) dependants: Vec<Vec<usize>>,
    /// Dependencies each order still waits for.
    pub(super) waiting_on: Vec<usize>,
    /// Orders whose dependencies are all settled.
    pub(super) ready: VecDeque<usize>,
    /// Orders that must not run: the dependency that failed, and why.
    pub(super) failed_early: Vec<Option<(OrderId, String)>>,
    pub(super) outcomes: Vec<Option<Outcome>>,
    pub(super) done: usize,
    pub(super) failed: usize,
}

impl Graph {
    /// Records order `i`'s outcome and releases its dependants (a failure blocks them).
    pub(super) fn settle(&mut self, i: usize, outcome: Outcome) {
        match &outcome {
            Outcome::Succeeded(_) => self.done += 1,
            Outcome::Failed(_) => {
                self.done += 1;
                self.failed += 1;
            }
            Outcome::AwaitingReview(_) => self.done += 1,
            Outcome::NotStarted => {}
        }
        for &d in &self.dependants[i] {
            match &outcome {
                Outcome::Succeeded(_) => {}
                Outcome::Failed(reason) => {
                    if self.failed_early[d].is_none() {
                        self.failed_early[d] =
                            Some((self.ids[i].clone(), format!("failed: {reason}")));
                    }
                }
                // Dependants wait (Pending) until the review is decided.
                Outcome::NotStarted | Outcome::AwaitingReview(_) => continue,
            }
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 {
                self.ready.push_back(d);
            }
        }
        self.outcomes[i] = Some(outcome);
    }
}
