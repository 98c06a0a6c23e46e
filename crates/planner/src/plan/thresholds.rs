//! Thresholds (SPEC §2, §5): `MaximumInsert/Update/Delete` and their percentages block a
//! generation until an operator forces it.

use super::{PlanOptions, Planner};
use autoprov_core::{ChangeType, ResourceTypeId};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many orders a generation holds for one resource type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderCounts {
    /// Added orders.
    pub added: usize,
    /// Modified orders.
    pub modified: usize,
    /// Deleted orders.
    pub deleted: usize,
    /// Existing targets of the resource type (the base of percentage thresholds).
    pub existing_targets: usize,
}

impl OrderCounts {
    pub(super) fn add(&mut self, change: ChangeType, sign: isize) {
        let slot = match change {
            ChangeType::Added => &mut self.added,
            ChangeType::Modified => &mut self.modified,
            ChangeType::Deleted => &mut self.deleted,
        };
        *slot = slot.checked_add_signed(sign).unwrap_or(0);
    }
}

/// Which limit a threshold breach passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum LimitKind {
    /// `MaximumInsert/Update/Delete`.
    Absolute,
    /// `Maximum...Percent` of the existing targets.
    Percent {
        /// The percentage configured.
        percent: u8,
        /// The existing targets it applies to.
        existing_targets: usize,
    },
}

/// One threshold passed by a generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThresholdBreach {
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// Which kind of order (Added = inserts, Modified = updates, Deleted = deletes).
    pub change_type: ChangeType,
    /// How many orders of that kind the generation holds.
    pub count: usize,
    /// The most allowed.
    pub limit: usize,
    /// Which setting gave the limit.
    pub limit_kind: LimitKind,
}

impl std::fmt::Display for ThresholdBreach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.change_type {
            ChangeType::Added => "inserts",
            ChangeType::Modified => "updates",
            ChangeType::Deleted => "deletes",
        };
        write!(
            f,
            "resource type {}: {} {kind} exceed the limit of {}",
            self.resource_type, self.count, self.limit
        )?;
        if let LimitKind::Percent {
            percent,
            existing_targets,
        } = self.limit_kind
        {
            write!(f, " ({percent}% of {existing_targets} existing targets)")?;
        }
        Ok(())
    }
}

/// Whether a generation's orders may go out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum GenerationStatus {
    /// No threshold passed: the orders are released.
    Released,
    /// Thresholds passed: nothing is released until an operator forces the generation.
    Blocked {
        /// Every limit passed.
        breaches: Vec<ThresholdBreach>,
    },
    /// Thresholds passed, and an operator forced the generation: the orders are released.
    Forced {
        /// Every limit passed.
        breaches: Vec<ThresholdBreach>,
    },
}

impl GenerationStatus {
    /// Whether orders are released.
    pub fn is_released(&self) -> bool {
        !matches!(self, Self::Blocked { .. })
    }
}

impl Planner {
    pub(super) fn current_counts(&self) -> Vec<OrderCounts> {
        let mut counts = self.counts.clone();
        for (rt, c) in counts.iter_mut().enumerate() {
            c.existing_targets = self.targets[rt].len();
        }
        counts
    }

    pub(super) fn counts_map(
        &self,
        counts: &[OrderCounts],
    ) -> BTreeMap<ResourceTypeId, OrderCounts> {
        counts
            .iter()
            .enumerate()
            .map(|(rt, c)| (self.policy.rts[rt].id.clone(), *c))
            .collect()
    }

    /// The threshold verdict for the installed generation.
    pub fn status(&self, options: PlanOptions) -> GenerationStatus {
        self.status_for(&self.current_counts(), options)
    }

    pub(super) fn status_for(
        &self,
        counts: &[OrderCounts],
        options: PlanOptions,
    ) -> GenerationStatus {
        let mut breaches = Vec::new();
        for (rt, c) in counts.iter().enumerate() {
            let rtype = &self.policy.rts[rt];
            let t = &rtype.thresholds;
            let percents_apply = c.existing_targets >= t.minimum_existing_targets as usize;
            for (change, count, absolute, percent) in [
                (
                    ChangeType::Added,
                    c.added,
                    t.insert_limit(),
                    t.insert_percent(),
                ),
                (
                    ChangeType::Modified,
                    c.modified,
                    t.update_limit(),
                    t.update_percent(),
                ),
                (
                    ChangeType::Deleted,
                    c.deleted,
                    t.delete_limit(),
                    t.delete_percent(),
                ),
            ] {
                let percent = percent.filter(|_| percents_apply);
                if let Some(limit) = absolute.map(|l| l as usize)
                    && count > limit
                {
                    breaches.push(ThresholdBreach {
                        resource_type: rtype.id.clone(),
                        change_type: change,
                        count,
                        limit,
                        limit_kind: LimitKind::Absolute,
                    });
                }
                if let Some(percent) = percent {
                    let limit = c.existing_targets * usize::from(percent) / 100;
                    if count > limit {
                        breaches.push(ThresholdBreach {
                            resource_type: rtype.id.clone(),
                            change_type: change,
                            count,
                            limit,
                            limit_kind: LimitKind::Percent {
                                percent,
                                existing_targets: c.existing_targets,
                            },
                        });
                    }
                }
            }
        }
        match (breaches.is_empty(), options.force_thresholds) {
            (true, _) => GenerationStatus::Released,
            (false, false) => GenerationStatus::Blocked { breaches },
            (false, true) => GenerationStatus::Forced { breaches },
        }
    }
}

/// An operator's decision to let one resource type's generation pass its thresholds: it names
/// the resource type and the most orders of each kind it allows, and who decided (recorded in
/// the audit trail by the job that uses it).
///
/// A force never covers more than it names: a breach of another resource type, or a count
/// above `maximum_count`, keeps the generation blocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThresholdForce {
    /// The resource type forced.
    pub resource_type: ResourceTypeId,
    /// The most orders of any one kind (inserts, updates, deletes) it lets through.
    pub maximum_count: usize,
    /// Who forced it.
    pub by: String,
    /// Why, if they said.
    pub reason: Option<String>,
}

impl ThresholdForce {
    /// `by` forces `resource_type` for up to `maximum_count` orders of each kind.
    pub fn new(
        resource_type: impl Into<ResourceTypeId>,
        maximum_count: usize,
        by: impl Into<String>,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            maximum_count,
            by: by.into(),
            reason: None,
        }
    }

    /// With the reason given.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Whether this force lets `breach` through.
    pub fn covers(&self, breach: &ThresholdBreach) -> bool {
        self.resource_type == breach.resource_type && breach.count <= self.maximum_count
    }
}

impl super::Plan {
    /// Applies operators' forces to a blocked plan: when every breach is covered by a force
    /// (same resource type, count within its maximum), the plan becomes
    /// [`GenerationStatus::Forced`] and its orders are released. Returns the breaches left
    /// uncovered (empty when the plan was released or is now forced); with any left, the plan
    /// stays blocked.
    pub fn force(&mut self, forces: &[ThresholdForce]) -> Vec<ThresholdBreach> {
        let GenerationStatus::Blocked { breaches } = &self.status else {
            return Vec::new();
        };
        let uncovered: Vec<ThresholdBreach> = breaches
            .iter()
            .filter(|b| !forces.iter().any(|f| f.covers(b)))
            .cloned()
            .collect();
        if uncovered.is_empty() {
            self.status = GenerationStatus::Forced {
                breaches: breaches.clone(),
            };
        }
        uncovered
    }
}
