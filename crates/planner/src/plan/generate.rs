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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
        // Per target, set by the workers: CLAIMED, and MANY once a second owner claims it.
        let claimed: Vec<Vec<AtomicU8>> = self
            .targets
            .iter()
            .map(|s| s.claimed_by.iter().map(|_| AtomicU8::new(0)).collect())
            .collect();
        let mut fragments = BTreeMap::new();
        let mut old = std::mem::take(&mut self.fragments);
        // The owners are taken out while they are planned, so that each worker can install
        // its owners' own outcome in their slots (claims, established values) while they are
        // in its cache, the rest of the planner shared read-only: planning reads no other
        // owner's slot. A panic (a computed rule's) puts them back before it goes on.
        let mut owners = std::mem::take(&mut self.owners);
        let planned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan_owners_full(&mut owners, &mut old, &claimed, &mut fragments, now, orders)
        }));
        self.owners = owners;
        let changed_any = match planned {
            Ok(changed_any) => changed_any,
            Err(panic) => {
                // The fragments of the chunks installed before the panic, and the others'.
                old.append(&mut fragments);
                self.fragments = old;
                std::panic::resume_unwind(panic)
            }
        };
        drop(old);
        self.owned_scan |= changed_any;
        let is_claimed = |rt: usize, idx: usize| claimed[rt][idx].load(Ordering::Relaxed) != 0;
        let mut orphans = BTreeMap::new();
        for (rt, store) in self.targets.iter_mut().enumerate() {
            for (idx, claim) in store.claimed_by.iter_mut().enumerate() {
                if !is_claimed(rt, idx) {
                    *claim = None;
                }
            }
            for (idx, t) in store.iter() {
                if is_claimed(rt, idx as usize) {
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

    /// Plans every owner of `owners` a chunk at a time ([`Planner::set_full_plan_chunk`]),
    /// the owners of a chunk in parallel. The worker that plans an owner installs what
    /// concerns the owner alone while it is in its cache (its slot's claims and established
    /// values, the claimed marks of its targets) and hands over only what changes shared
    /// state: a target claimed by another owner before, a fragment. Those are installed in
    /// owner order on this thread; in a re-plan where little changed they are a few percent
    /// of the owners. The outcomes of a whole organization are never all held at once.
    /// Returns whether any owner's established values changed.
    fn plan_owners_full(
        &mut self,
        owners: &mut BTreeMap<OwnerId, Box<OwnerSlot>>,
        old: &mut BTreeMap<OwnerId, Arc<OwnerPlan>>,
        claimed: &[Vec<AtomicU8>],
        fragments: &mut BTreeMap<OwnerId, Arc<OwnerPlan>>,
        now: DateTime<Utc>,
        orders: &OrderStates,
    ) -> bool {
        let changed_any = AtomicBool::new(false);
        let many_any = AtomicBool::new(false);
        let mut all = owners.iter_mut();
        loop {
            let mut slots: Vec<(&OwnerId, &mut OwnerSlot)> = all
                .by_ref()
                .take(self.full_plan_chunk)
                .map(|(id, slot)| (id, &mut **slot))
                .collect();
            if slots.is_empty() {
                break;
            }
            let this = &*self;
            let previous = &*old;
            // Collected in order into one vector sized at once (indexed: an unindexed collect
            // goes through a list of per-piece vectors that the workers allocate and this
            // thread frees, which cost the first plan of 100,000 a fifth of its time).
            let installed: Vec<Option<Installed>> = slots
                .par_iter_mut()
                // Pieces of at most 512 owners: rayon otherwise splits a chunk into a handful
                // of large pieces, and the thread that finishes first waits for the other's
                // last piece (thousands of owners) at every chunk.
                .with_max_len(512)
                // One scratch owner per piece, refilled owner after owner.
                .map_init(OwnerScratch::default, |scratch, (id, slot)| {
                    let outcome = this.plan_against(id, slot, previous, scratch, now, orders);
                    let (same, plan) = (outcome.same, outcome.plan);
                    slot.has_fragment = same || plan.is_some();
                    if let Some(established) = outcome.established {
                        slot.established = established;
                        slot.owned_changed = true;
                        // Read first: a line every owner stores to would bounce between
                        // the threads.
                        if !changed_any.load(Ordering::Relaxed) {
                            changed_any.store(true, Ordering::Relaxed);
                        }
                    }
                    let mut reclaims = false;
                    for (rt, idx) in outcome.claims.iter() {
                        let mark = &claimed[rt][idx as usize];
                        if mark.fetch_or(CLAIMED, Ordering::Relaxed) & CLAIMED != 0 {
                            mark.fetch_or(MANY, Ordering::Relaxed);
                            many_any.store(true, Ordering::Relaxed);
                        }
                        reclaims |= this.targets[rt].claimed_by[idx as usize].as_ref() != Some(*id);
                    }
                    let shared = reclaims || same || plan.is_some();
                    // Without its id, which is the chunk's at the same position: cloning it
                    // here would bounce its reference count between the threads.
                    let installed = shared.then(|| Installed {
                        claims: reclaims.then(|| outcome.claims.clone()),
                        plan,
                        same,
                    });
                    slot.claims = outcome.claims;
                    installed
                })
                .collect();
            let targets = &mut self.targets;
            for (&(id, _), installed) in slots.iter().zip(installed) {
                let Some(installed) = installed else {
                    continue;
                };
                for (rt, idx) in installed.claims.iter().flat_map(Claims::iter) {
                    let claim = &mut targets[rt].claimed_by[idx as usize];
                    if claim.as_ref() != Some(id) {
                        *claim = Some(id.clone());
                    }
                }
                if installed.same {
                    // Unchanged: the installed fragment moves over.
                    if let Some((id, plan)) = old.remove_entry(id) {
                        fragments.insert(id, plan);
                    }
                } else if let Some(plan) = installed.plan {
                    fragments.insert(id.clone(), Arc::new(*plan));
                }
            }
        }
        // A target several owners claim (an ambiguous correlation protects every candidate)
        // goes to the last of them in owner order, as if everyone were installed one by one.
        if many_any.into_inner() {
            for (id, slot) in owners.iter() {
                for (rt, idx) in slot.claims.iter() {
                    if claimed[rt][idx as usize].load(Ordering::Relaxed) & MANY != 0 {
                        let claim = &mut self.targets[rt].claimed_by[idx as usize];
                        if claim.as_ref() != Some(id) {
                            *claim = Some(id.clone());
                        }
                    }
                }
            }
        }
        changed_any.into_inner()
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
                self.plan_against(id, slot, previous, scratch, now, orders)
            })
            .collect()
    }

    /// Plans one owner against its fragment in `previous`. Unchanged since then, the outcome
    /// says `same` and holds no plan: the installed fragment stays, and the new copy is freed
    /// at once (a full re-plan would otherwise hold both until installed).
    fn plan_against(
        &self,
        id: &OwnerId,
        slot: &OwnerSlot,
        previous: &BTreeMap<OwnerId, Arc<OwnerPlan>>,
        scratch: &mut OwnerScratch,
        now: DateTime<Utc>,
        orders: &OrderStates,
    ) -> OwnerOutcome {
        let prev = if slot.has_fragment {
            previous.get(id).map(Arc::as_ref)
        } else {
            None
        };
        let mut outcome = self.plan_owner(slot, scratch, prev, now, orders);
        if let (Some(new), Some(prev)) = (outcome.plan.as_deref(), prev)
            && new == prev
        {
            outcome.plan = None;
            outcome.same = true;
        }
        outcome
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

/// Marks of a target during a full plan: claimed by an owner, and by more than one.
const CLAIMED: u8 = 1;
const MANY: u8 = 2;

/// What a worker hands over of an owner's outcome: what changes state shared with other
/// owners.
struct Installed {
    /// Its claims, when a target it claims was not claimed by it before.
    claims: Option<Claims>,
    plan: Option<Box<OwnerPlan>>,
    /// The plan equals the installed fragment, which moves over.
    same: bool,
}

#[cfg(test)]
mod tests {
    use crate::synthetic::{ACCOUNT_TYPE, Drift, SyntheticOrg};
    use crate::{OrderStates, PlanOptions, Planner, ScalarRule};
    use autoprov_core::OwnerId;

    /// A computed rule that panics (a bug in the host's rule) fails the full plan, and the
    /// planner keeps its owners: without the owner that makes the rule panic, the next full
    /// plan is that of a planner that never held it.
    #[test]
    fn a_rule_that_panics_leaves_the_planner_its_owners() {
        let org = SyntheticOrg::new(30);
        let build = || {
            let mut config = org.config();
            let victim = org.login(3);
            config.role_model = config.role_model.scalar_rule(ScalarRule::computed(
                ACCOUNT_TYPE,
                "info",
                move |o| {
                    assert_ne!(o.identifier, victim, "a bug in a computed rule");
                    None
                },
            ));
            let mut planner = Planner::new(config).expect("a valid configuration");
            org.load(&mut planner);
            planner
        };
        let plan = |planner: &mut Planner| {
            planner
                .plan_full(org.now(), PlanOptions::default(), &OrderStates::new())
                .to_json()
        };
        let mut planner = build();
        planner.set_full_plan_chunk(7);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan(&mut planner)));
        assert!(caught.is_err(), "the rule panics");
        assert_eq!(planner.owner_count(), 30);
        planner.remove_owner(&org.owner_id(3));
        let mut reference = build();
        reference.remove_owner(&org.owner_id(3));
        assert_eq!(plan(&mut planner), plan(&mut reference));
    }

    /// Owners sharing a correlation key value all claim its target (an ambiguous correlation
    /// protects every candidate). Whatever the chunk layout and whoever held the target
    /// before, a full plan leaves it to the last claimant in owner order, as installing the
    /// owners one by one in that order does.
    #[test]
    fn a_target_claimed_by_several_owners_goes_to_the_last_in_owner_order() {
        let org = SyntheticOrg::new(40);
        let i = (0..org.identities)
            .find(|&i| org.drift(i) != Drift::Missing)
            .expect("an identity with an account");
        let target = org.actual_target(i).expect("an account").id;
        let twin = |id: &str| {
            let mut o = org.owner(i);
            o.id = OwnerId::new(id);
            o
        };
        let holder = |planner: &crate::Planner| {
            let rt = planner
                .rt_index(&ACCOUNT_TYPE.into())
                .expect("a configured type");
            let idx = planner.targets[rt].find(&target).expect("loaded");
            planner.targets[rt].claimed_by[idx as usize].clone()
        };
        let plan = |planner: &mut crate::Planner| {
            drop(planner.plan_full(org.now(), PlanOptions::default(), &OrderStates::new()));
        };
        // Just before and after owner `i`, and after everyone.
        let before = org.owner_id(i).as_str().replace('u', "t");
        let between = format!("{}a", org.owner_id(i).as_str());
        let after = "v".to_owned();
        for chunk in [1, 2, 7, 1_000] {
            for twins in [
                vec![before.as_str()],
                vec![between.as_str()],
                vec![after.as_str()],
                vec![before.as_str(), after.as_str()],
            ] {
                let mut planner = org.planner();
                planner.set_full_plan_chunk(chunk);
                plan(&mut planner);
                assert_eq!(holder(&planner), Some(org.owner_id(i)), "alone");
                for id in &twins {
                    planner.upsert_owner(twin(id));
                }
                let mut claimants: Vec<OwnerId> = twins.iter().map(|t| OwnerId::new(*t)).collect();
                claimants.push(org.owner_id(i));
                let last = claimants.iter().max().cloned();
                // Twice: the second plan starts from the first one's holder.
                for round in 0..2 {
                    plan(&mut planner);
                    assert_eq!(
                        holder(&planner),
                        last,
                        "chunk {chunk}, {twins:?}, round {round}"
                    );
                }
                // The last claimant leaves: the target goes to the last one left.
                if let Some(last) = &last {
                    planner.remove_owner(last);
                }
                claimants.retain(|c| Some(c) != last.as_ref());
                plan(&mut planner);
                assert_eq!(
                    holder(&planner),
                    claimants.iter().max().cloned(),
                    "chunk {chunk}, {twins:?}, after a removal"
                );
            }
        }
    }
}
