//! Generating the plan (SPEC §5, §8): a full plan evaluates every owner in parallel and
//! installs the result in owner order; a simulation computes the same without installing it.

use super::found::Established;
use super::{
    Claims, OrderCounts, OrderStates, OwnerOutcome, OwnerPlan, OwnerSlot, Plan, PlanOptions,
    PlannedItem, Planner, error_plan, orphan_item,
};
use crate::error::EvaluationError;
use crate::owners::OwnerScratch;
use crate::policy::OwnerView;
use crate::targets::TargetIdx;
use autoprov_core::{OwnerId, ResourceId};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use rustc_hash::FxHashSet;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// How many owners a full plan plans before it installs them, unless set otherwise
/// ([`Planner::set_full_plan_chunk`]).
pub(super) const FULL_PLAN_CHUNK: usize = 32 * 1024;

impl Planner {
    /// Re-evaluates every owner and every target, installs the result and returns the whole
    /// plan. Owners are evaluated in parallel; the result does not depend on scheduling.
    /// `orders` is the store's view of the orders not done with (see [`OrderStates`]).
    pub fn plan_full(
        &mut self,
        now: DateTime<Utc>,
        options: PlanOptions,
        orders: &OrderStates,
    ) -> Plan {
        // Everyone is planned: the dirty sets are done with. Fresh sets rather than `clear()`:
        // after a load they hold a million slots, which the next incremental run would
        // otherwise walk; dropped first, they make room for the plan.
        self.dirty = FxHashSet::default();
        self.dirty_targets = FxHashSet::default();
        self.fresh = false;
        let mut claimed: Vec<Vec<bool>> = self
            .targets
            .iter()
            .map(|s| vec![false; s.claimed_by.len()])
            .collect();
        let mut fragments = BTreeMap::new();
        let mut old = std::mem::take(&mut self.fragments);
        let mut changed_any = false;
        // Planned and installed a chunk of owners at a time: the outcomes of a whole
        // organization are never all held at once (some 90 bytes per owner), and a chunk
        // installs while its owners are still in cache. Installing touches only what planning
        // does not read (claims, established values, fragments), so the result is the same as
        // planning everyone first.
        let mut after: Option<OwnerId> = None;
        loop {
            let range = match &after {
                Some(id) => (Bound::Excluded(id), Bound::Unbounded),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            let slots: Vec<(&OwnerId, &OwnerSlot)> = self
                .owners
                .range::<OwnerId, _>(range)
                .take(self.full_plan_chunk)
                .map(|(id, slot)| (id, &**slot))
                .collect();
            let Some(&(last, _)) = slots.last() else {
                break;
            };
            let last = last.clone();
            let outcomes = self.compute_slots(&slots, &old, now, orders);
            drop(slots);
            let range = match &after {
                Some(id) => (Bound::Excluded(id), Bound::Included(&last)),
                None => (Bound::Unbounded, Bound::Included(&last)),
            };
            let targets = &mut self.targets;
            for ((id, slot), outcome) in self.owners.range_mut::<OwnerId, _>(range).zip(outcomes) {
                for (rt, idx) in outcome.claims.iter() {
                    claimed[rt][idx as usize] = true;
                    let claim = &mut targets[rt].claimed_by[idx as usize];
                    if claim.as_ref() != Some(id) {
                        *claim = Some(id.clone());
                    }
                }
                slot.claims = outcome.claims;
                if let Some(established) = outcome.established {
                    slot.established = established;
                    slot.owned_changed = true;
                    changed_any = true;
                }
                slot.has_fragment = if outcome.same {
                    // Unchanged: the installed fragment moves over.
                    match old.remove_entry(id) {
                        Some((id, plan)) => {
                            fragments.insert(id, plan);
                            true
                        }
                        None => false,
                    }
                } else if let Some(plan) = outcome.plan {
                    fragments.insert(id.clone(), Arc::new(*plan));
                    true
                } else {
                    false
                };
            }
            after = Some(last);
        }
        drop(old);
        self.owned_scan |= changed_any;
        let mut orphans = BTreeMap::new();
        for (rt, store) in self.targets.iter_mut().enumerate() {
            for (idx, claim) in store.claimed_by.iter_mut().enumerate() {
                if !claimed[rt][idx] {
                    *claim = None;
                }
            }
            for (idx, t) in store.iter() {
                if claimed[rt][idx as usize] {
                    continue;
                }
                let key = (rt, t.id.clone());
                if let Some(item) =
                    orphan_item(&self.policy.rts[rt], t, orders, &self.syms, &self.refs)
                {
                    orphans.insert(key, item);
                }
            }
        }
        self.fragments = fragments;
        self.orphans = orphans;
        self.reindex();
        self.established_pool.sweep_if_grown();
        self.current_plan(options)
    }

    /// Sets how many owners a full plan plans before it installs them (default 32,768; at
    /// least 1). Each owner planned and not yet installed holds about 90 bytes: a larger chunk
    /// costs memory, a smaller one more pauses where the threads wait for each other. The
    /// plan is the same whatever the chunk.
    pub fn set_full_plan_chunk(&mut self, owners: usize) {
        self.full_plan_chunk = owners.max(1);
    }

    /// Rebuilds the order counts from the installed items.
    fn reindex(&mut self) {
        self.counts = vec![OrderCounts::default(); self.policy.rts.len()];
        for fragment in self.fragments.values() {
            for item in &fragment.items {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, 1);
                }
            }
        }
        for ((rt, _), item) in &self.orphans {
            if let Some(c) = item.counts() {
                self.counts[*rt].add(c, 1);
            }
        }
    }

    /// Computes the whole plan without installing anything (a simulation): the planner's state
    /// is left as it was.
    pub fn simulate(&self, now: DateTime<Utc>, options: PlanOptions, orders: &OrderStates) -> Plan {
        let outcomes = self.compute_all(now, orders);
        let mut claimed: Vec<Vec<bool>> = self
            .targets
            .iter()
            .map(|s| vec![false; s.claimed_by.len()])
            .collect();
        let mut counts = vec![OrderCounts::default(); self.policy.rts.len()];
        let mut owners = Vec::new();
        for (id, outcome) in self.owners.keys().zip(outcomes) {
            for (rt, idx) in outcome.claims.iter() {
                claimed[rt][idx as usize] = true;
            }
            // Unchanged: the installed fragment is the plan.
            let plan = match (outcome.same, outcome.plan) {
                (true, _) => match self.fragments.get(id) {
                    Some(plan) => plan.clone(),
                    None => continue,
                },
                (false, Some(plan)) => Arc::new(*plan),
                (false, None) => continue,
            };
            for item in &plan.items {
                if let Some(c) = item.counts() {
                    counts[self.policy.rt_ids[&item.resource_type]].add(c, 1);
                }
            }
            owners.push(plan);
        }
        let mut orphans = Vec::new();
        for (rt, store) in self.targets.iter().enumerate() {
            for (idx, t) in store.iter() {
                if !claimed[rt][idx as usize]
                    && let Some(item) =
                        orphan_item(&self.policy.rts[rt], t, orders, &self.syms, &self.refs)
                {
                    if let Some(c) = item.counts() {
                        counts[rt].add(c, 1);
                    }
                    orphans.push(((rt, t.id.clone()), item));
                }
            }
        }
        orphans.sort_by(|a, b| a.0.cmp(&b.0));
        for (rt, c) in counts.iter_mut().enumerate() {
            c.existing_targets = self.targets[rt].len();
        }
        Plan {
            status: self.status_for(&counts, options),
            owners,
            orphans: orphans.into_iter().map(|(_, i)| i).collect(),
            counts: self.counts_map(&counts),
        }
    }

    /// The plan as currently installed (after [`Planner::plan_full`] /
    /// [`Planner::plan_incremental`]).
    pub fn current_plan(&self, options: PlanOptions) -> Plan {
        Plan {
            status: self.status(options),
            owners: self.fragments.values().cloned().collect(),
            orphans: self.orphans.values().cloned().collect(),
            counts: self.counts_map(&self.current_counts()),
        }
    }

    /// The installed fragment of one owner (`None` when everything is Verified).
    pub fn owner_plan(&self, owner: &OwnerId) -> Option<&OwnerPlan> {
        self.fragments.get(owner).map(Arc::as_ref)
    }

    pub(super) fn compute_owners<'a>(
        &self,
        ids: impl Iterator<Item = &'a OwnerId>,
        now: DateTime<Utc>,
        orders: &OrderStates,
    ) -> Vec<(OwnerId, OwnerOutcome)> {
        let slots: Vec<(&OwnerId, &OwnerSlot)> = ids
            .filter_map(|id| self.owners.get_key_value(id))
            .map(|(id, slot)| (id, &**slot))
            .collect();
        let work = |scratch: &mut OwnerScratch, (id, slot): &(&OwnerId, &OwnerSlot)| {
            let prev = self.fragments.get(*id).map(Arc::as_ref);
            (
                (*id).clone(),
                self.plan_owner(slot, scratch, prev, now, orders),
            )
        };
        // A handful of dirty owners is not worth a thread hop; a lookup change that dirties
        // everyone is.
        if slots.len() < 1024 {
            let mut scratch = OwnerScratch::default();
            slots.iter().map(|s| work(&mut scratch, s)).collect()
        } else {
            slots
                .par_iter()
                .with_min_len(1024)
                .map_init(OwnerScratch::default, work)
                .collect()
        }
    }

    /// Plans every owner, in parallel; the outcomes are in owner order.
    fn compute_all(&self, now: DateTime<Utc>, orders: &OrderStates) -> Vec<OwnerOutcome> {
        let slots: Vec<(&OwnerId, &OwnerSlot)> =
            self.owners.iter().map(|(id, slot)| (id, &**slot)).collect();
        self.compute_slots(&slots, &self.fragments, now, orders)
    }

    /// Plans these owners, in parallel, against their fragments in `previous`; the outcomes
    /// are in the order of `slots`.
    fn compute_slots(
        &self,
        slots: &[(&OwnerId, &OwnerSlot)],
        previous: &BTreeMap<OwnerId, Arc<OwnerPlan>>,
        now: DateTime<Utc>,
        orders: &OrderStates,
    ) -> Vec<OwnerOutcome> {
        slots
            .par_iter()
            // Pieces of at most 512 owners: rayon otherwise splits a chunk into a handful of
            // large pieces, and the thread that finishes first waits for the other's last
            // piece (thousands of owners) at every chunk.
            .with_max_len(512)
            // One scratch owner per piece, refilled owner after owner.
            .map_init(OwnerScratch::default, |scratch, (id, slot)| {
                let prev = if slot.has_fragment {
                    previous.get(*id).map(Arc::as_ref)
                } else {
                    None
                };
                let mut outcome = self.plan_owner(slot, scratch, prev, now, orders);
                // Unchanged since the last plan: the installed fragment stays, and the new copy
                // is freed at once (a full re-plan would otherwise hold both until installed).
                if let (Some(new), Some(prev)) = (outcome.plan.as_deref(), prev)
                    && new == prev
                {
                    outcome.plan = None;
                    outcome.same = true;
                }
                outcome
            })
            .collect()
    }

    pub(super) fn install_outcome(&mut self, id: OwnerId, mut outcome: OwnerOutcome) {
        let old_claims = self
            .owners
            .get_mut(&id)
            .map(|s| {
                if let Some(established) = outcome.established.take() {
                    s.established = established;
                    // Few owners change per incremental plan: filed by id, so that taking the
                    // changes scans no slot.
                    self.owned_changed.insert(id.clone());
                }
                std::mem::replace(&mut s.claims, outcome.claims.clone())
            })
            .unwrap_or_default();
        for (rt, idx) in old_claims.iter() {
            if !outcome.claims.contains((rt, idx)) {
                self.release_claim(rt, idx, &id);
            }
        }
        for (rt, idx) in outcome.claims.iter() {
            let store = &mut self.targets[rt];
            let claim = &mut store.claimed_by[idx as usize];
            if claim.as_ref() != Some(&id) {
                *claim = Some(id.clone());
                if let Some(t) = store.get(idx) {
                    self.dirty_targets.insert((rt, t.id.clone()));
                }
            }
        }
        self.install_fragment(id, outcome.plan.map(|p| *p));
        self.established_pool.sweep_if_grown();
    }

    pub(super) fn install_fragment(&mut self, id: OwnerId, plan: Option<OwnerPlan>) {
        if let Some(old) = self.fragments.remove(&id) {
            for item in &old.items {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, -1);
                }
            }
        }
        if let Some(plan) = plan {
            for item in &plan.items {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, 1);
                }
            }
            if let Some(slot) = self.owners.get_mut(&id) {
                slot.has_fragment = true;
            }
            self.fragments.insert(id, Arc::new(plan));
        } else if let Some(slot) = self.owners.get_mut(&id) {
            slot.has_fragment = false;
        }
    }

    /// Re-checks whether a target is an orphan and installs its item.
    pub(super) fn recheck_orphan(
        &mut self,
        key: (usize, ResourceId),
        orders: &OrderStates,
    ) -> Option<PlannedItem> {
        let (rt, id) = &key;
        let store = &self.targets[*rt];
        let item = store.find(id).and_then(|idx| {
            if store.claimed_by[idx as usize].is_some() {
                return None;
            }
            let t = store.get(idx)?;
            orphan_item(&self.policy.rts[*rt], t, orders, &self.syms, &self.refs)
        });
        if let Some(old) = self.orphans.remove(&key)
            && let Some(c) = old.counts()
        {
            self.counts[*rt].add(c, -1);
        }
        if let Some(item) = &item {
            if let Some(c) = item.counts() {
                self.counts[*rt].add(c, 1);
            }
            self.orphans.insert(key, item.clone());
        }
        item
    }

    /// Plans one owner: correlation, evaluation, comparison, gating, states. Pure.
    /// `scratch` receives the owner, rebuilt from its compact form (any owner will do: its
    /// allocations are reused).
    fn plan_owner(
        &self,
        slot: &OwnerSlot,
        scratch: &mut OwnerScratch,
        prev: Option<&OwnerPlan>,
        now: DateTime<Utc>,
        orders: &OrderStates,
    ) -> OwnerOutcome {
        slot.owner.fill(&slot.id, &self.syms, scratch);
        let view = OwnerView::indexed(&scratch.owner, slot.owner.syms());
        let owner = &scratch.owner;
        let mut claims = Claims::default();
        // On the stack for the usual handful of resource types.
        let mut inline = [None; 8];
        let mut heap = Vec::new();
        let correlated: &mut [Option<TargetIdx>] = match inline.get_mut(..self.policy.rts.len()) {
            Some(inline) => inline,
            None => {
                heap.resize(self.policy.rts.len(), None);
                &mut heap
            }
        };
        // A correlation failure concerns its resource type only.
        let mut failed: Vec<(usize, EvaluationError)> = Vec::new();
        for (rt, correlated_target) in correlated.iter_mut().enumerate() {
            match self.correlate(slot, rt) {
                Ok(found) => {
                    *correlated_target = found;
                    if let Some(i) = found {
                        claims.push((rt, i));
                    }
                }
                Err(boxed) => {
                    let (err, protect) = *boxed;
                    // Protect every candidate so an unclear correlation never makes a target
                    // look orphaned.
                    for i in protect {
                        claims.push((rt, i));
                    }
                    failed.push((rt, err));
                }
            }
        }
        let expectation =
            self.policy
                .evaluate(&view, slot.extras(), &self.lookups, now, correlated);
        let (plan, established) = match expectation {
            Ok(mut exp) => {
                if !failed.is_empty() {
                    exp.rts
                        .retain(|e| !failed.iter().any(|(rt, _)| *rt == e.rt));
                    exp.failed
                        .retain(|(rt, _)| !failed.iter().any(|(f, _)| f == rt));
                    exp.failed.append(&mut failed);
                    exp.failed.sort_by_key(|(rt, _)| *rt);
                }
                let mut held = Vec::new();
                let plan = self.compare(slot, owner, &exp, correlated, orders, &mut held);
                let plan = self.with_failures(owner, plan, prev, &exp.failed, orders);
                let plan = self.with_expired(owner, plan, prev, &exp, correlated, orders);
                // What this plan expects becomes autoprov's to change, except found values it
                // keeps; unchanged in the common case, then nothing is allocated. A type whose
                // evaluation failed says nothing: what was established stays as it was.
                let established = (exp.failed.is_empty() && !slot.established.matches(&exp, &held))
                    .then(|| Established::of(&exp, &held, &self.established_pool));
                (plan, established)
            }
            Err(error) => (Some(error_plan(owner, prev, error, orders)), None),
        };
        OwnerOutcome {
            plan: plan.map(Box::new),
            same: false,
            claims,
            established,
        }
    }
}
