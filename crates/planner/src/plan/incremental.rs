//! Incremental evaluation (SPEC §5): only the owners marked dirty since the last run are
//! re-evaluated, with cost proportional to the change.

use super::{OrderStates, OwnerPlan, PlanDelta, PlanOptions, Planner};
use crate::error::PlanError;
use autoprov_core::{OwnerId, ResourceId};
use chrono::{DateTime, Utc};

impl Planner {
    /// Marks an owner dirty: the next [`Planner::plan_incremental`] re-evaluates it.
    pub fn mark_dirty(&mut self, id: &OwnerId) -> Result<(), PlanError> {
        if !self.owners.contains_key(id) {
            return Err(PlanError::UnknownOwner { owner: id.clone() });
        }
        self.dirty.insert(id.clone());
        Ok(())
    }

    /// Marks every owner dirty.
    pub fn mark_all_dirty(&mut self) {
        if self.fresh {
            return;
        }
        self.dirty.extend(self.owners.keys().cloned());
    }

    /// How many owners are dirty.
    pub fn dirty_count(&self) -> usize {
        if self.fresh {
            self.owners.len()
        } else {
            self.dirty.len()
        }
    }

    /// Files every owner and every target as dirty, when nothing was planned yet (see
    /// `Planner::fresh`); from then on changes are filed one by one.
    pub(super) fn end_fresh(&mut self) {
        if !std::mem::take(&mut self.fresh) {
            return;
        }
        self.dirty.extend(self.owners.keys().cloned());
        for (rt, store) in self.targets.iter().enumerate() {
            self.dirty_targets
                .extend(store.iter().map(|(_, t)| (rt, t.id.clone())));
        }
    }

    pub(super) fn mark_target_owners_dirty(
        &mut self,
        rt: usize,
        key_values: &[Option<smol_str::SmolStr>],
    ) {
        for (k, v) in key_values.iter().enumerate() {
            if let Some(v) = v
                && let Some(owners) = self.owner_keys[rt][k].get(v.as_str())
            {
                self.dirty.extend(owners.as_slice().iter().cloned());
            }
        }
    }

    /// Re-evaluates only the dirty owners (and the targets whose owner changed) and returns
    /// what changed. Cost is proportional to the change, not to the organization. `orders` is
    /// the store's view of the orders not done with; an owner whose orders changed state in
    /// the store since the last plan must be marked dirty to see it.
    pub fn plan_incremental(
        &mut self,
        now: DateTime<Utc>,
        options: PlanOptions,
        orders: &OrderStates,
    ) -> PlanDelta {
        self.end_fresh();
        let mut dirty: Vec<OwnerId> = std::mem::take(&mut self.dirty).into_iter().collect();
        dirty.sort_unstable();
        let outcomes = self.compute_owners(dirty.iter(), now, orders);
        let mut owners = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            let plan = outcome
                .plan
                .as_deref()
                .cloned()
                .unwrap_or_else(|| OwnerPlan::new(id.clone()));
            self.install_outcome(id, outcome);
            owners.push(plan);
        }
        let mut dirty_targets: Vec<(usize, ResourceId)> = std::mem::take(&mut self.dirty_targets)
            .into_iter()
            .collect();
        dirty_targets.sort_unstable();
        let mut orphans = Vec::new();
        for key in dirty_targets {
            let item = self.recheck_orphan(key.clone(), orders);
            orphans.push((self.policy.rts[key.0].id.clone(), key.1, item));
        }
        PlanDelta {
            status: self.status(options),
            owners,
            orphans,
        }
    }
}
