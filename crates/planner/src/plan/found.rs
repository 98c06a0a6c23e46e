//! What predates autoprov (SPEC §3 Found, §10; the reference system's non-conforming values and
//! "rules in reverse"): values found in a correlated target that no rule, approved manual
//! assignment or kept value explains are classified ([`NonConforming`]) and, by default,
//! listed for review instead of being removed.
//!
//! A value is *established* — autoprov's to change — once a plan of this planner expected it
//! (for a scalar or mono-valued property: once a rule gave the property a value; for a
//! membership: that reference; for an account: the resource type). Established values follow
//! the rules as before: a mover loses the groups the rules no longer give, a leaver's account
//! is deleted, a drifted value is set back (SPEC §4: a later difference reopens a Verified
//! item). Everything else that differs is non-conforming and goes by the resource type's
//! [`NonConformingPolicy`] and the decisions made on it ([`Planner::decide_found`]).
//! Established values live in memory: after a restart the first plan treats every difference
//! as non-conforming again, which only ever holds back a removal, never adds one.

use super::Planner;
use crate::error::PlanError;
use crate::policy::OwnerExpectation;
use crate::targets::{RefId, Sym};
use autoprov_core::{
    FoundDecision, FoundValue, FoundVerdict, NonConformingPolicy, OwnerId, PropertyValue,
    Reference, ResourceId, ResourceTypeId, RoleId, WorkflowState,
};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};

use super::{KeptAssignment, KeptValue};

/// Why a found value does not conform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum NonConformingKind {
    /// A reference of a multi-valued navigation that no rule gives (an extra membership).
    ExtraValue,
    /// A governed property holds a value while no rule gives it one.
    UnexpectedValue,
    /// A governed property holds another value than the one the rules give.
    DifferentValue {
        /// What the rules give.
        expected: PropertyValue,
    },
    /// An account correlates with the owner while the owner is not expected to have one.
    UnexpectedAccount,
}

/// What becomes of a non-conforming value in this plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Disposition {
    /// Kept as it is and listed until a person keeps it or confirms its removal
    /// (`KeepAndReview`).
    AwaitingReview,
    /// Kept as a Found value without review (`AdoptAsFound`).
    Adopted,
    /// The plan's order removes it (or overwrites it, or deletes the account): a person
    /// confirmed its removal, or the resource type's setting is `Remove`.
    Removing,
}

/// One non-conforming value: a value found in an owner's correlated target that no rule,
/// approved manual assignment or kept value explains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NonConforming {
    /// The owner the target correlates with.
    pub owner: OwnerId,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The target.
    pub target: ResourceId,
    /// The value found (the property is in it).
    pub value: FoundValue,
    /// Why it does not conform.
    pub kind: NonConformingKind,
    /// What this plan does with it.
    pub disposition: Disposition,
}

impl NonConforming {
    /// The decision that keeps this value, by `by` at `at`.
    pub fn keep(&self, by: &str, at: chrono::DateTime<chrono::Utc>) -> FoundDecision {
        self.decision(FoundVerdict::Keep, by, at)
    }

    /// The decision that confirms this value's removal, by `by` at `at`.
    pub fn remove(&self, by: &str, at: chrono::DateTime<chrono::Utc>) -> FoundDecision {
        self.decision(FoundVerdict::Remove, by, at)
    }

    /// A decision on this value.
    pub fn decision(
        &self,
        verdict: FoundVerdict,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> FoundDecision {
        FoundDecision::new(
            self.owner.clone(),
            self.resource_type.clone(),
            self.value.clone(),
            verdict,
            by,
            at,
        )
    }
}

/// A role deduced from what is found ("rules in reverse"): the owner's unexplained memberships
/// include a group that exactly one role grants. Proposed, never assigned by the planner: a
/// person gives the role (or requests its groups); its missing memberships then become orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeducedRole {
    /// The owner.
    pub owner: OwnerId,
    /// The role deduced.
    pub role: RoleId,
    /// The resource type of the memberships.
    pub resource_type: ResourceTypeId,
    /// The navigation property (e.g. `memberOf`).
    pub property: String,
    /// The role's groups the owner already has.
    pub found: Vec<Reference>,
    /// The role's groups the owner lacks: the orders giving the role would produce.
    pub missing: Vec<Reference>,
}

/// What a plan of this planner expected of one owner: the values that are autoprov's to
/// change. Compared with the next expectation without allocating, replaced only when it
/// differs.
///
/// One block of words: the number of resource types, the number of properties, the resource
/// type indexes, the (type, property) pairs and the (type, property, reference) triples of
/// multi-valued references. Owners with the same rules applied establish the same values, so
/// the blocks are shared through an [`EstablishedPool`] (a million owners of a few thousand
/// departments × sites × titles hold a few thousand blocks).
/// `None` when nothing is established (a new owner: no allocation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Established {
    words: Option<Arc<[u32]>>,
}

/// The shared blocks of [`Established`] values. Planning threads intern what they build
/// (one short lock per owner whose values changed). The set is split into shards, each with
/// its own lock, chosen by the block's hash: with one lock, the planning threads of a first
/// full plan (where every owner's values change) queued on it and the plan ran on about one
/// core.
#[derive(Debug)]
pub(super) struct EstablishedPool {
    shards: Box<[Mutex<Blocks>]>,
    /// The pool's size after its last sweep.
    swept: usize,
}

/// One shard of the [`EstablishedPool`].
type Blocks = FxHashSet<Arc<[u32]>>;

/// Shards of the [`EstablishedPool`] (a power of two).
const SHARDS: usize = 64;

impl Default for EstablishedPool {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            swept: 0,
        }
    }
}

impl EstablishedPool {
    fn intern(&self, words: &[u32]) -> Arc<[u32]> {
        use std::hash::BuildHasher;
        let hash = rustc_hash::FxBuildHasher.hash_one(words);
        // The high bits: hashbrown picks buckets from the low ones.
        let shard = (hash >> 58) as usize % SHARDS;
        let mut blocks = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = blocks.get(words) {
            return shared.clone();
        }
        let shared: Arc<[u32]> = Arc::from(words);
        blocks.insert(shared.clone());
        shared
    }

    /// Drops the blocks no owner holds any more, once the pool has doubled since the last
    /// sweep.
    pub(super) fn sweep_if_grown(&mut self) {
        let len: usize = self
            .shards
            .iter_mut()
            .map(|s| s.get_mut().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        if len <= 2 * self.swept.max(1024) {
            return;
        }
        let mut kept = 0;
        for shard in self.shards.iter_mut() {
            let blocks = shard.get_mut().unwrap_or_else(PoisonError::into_inner);
            blocks.retain(|b| Arc::strong_count(b) > 1);
            kept += blocks.len();
        }
        self.swept = kept;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

thread_local! {
    /// The buffer each thread builds blocks in: most owners find their block in the pool, and
    /// a temporary per owner would leave a million small blocks on glibc's fast lists for the
    /// next large allocation to consolidate (15 ms, paid by the first incremental plan).
    static WORDS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// In `held`, with a resource type's index: the whole account is held (an adoption waiting for
/// review), so the type is not established by this plan. No interned symbol reaches it.
pub(super) const WHOLE_ACCOUNT: Sym = Sym::MAX;

impl Established {
    fn entries<'a>(
        exp: &'a OwnerExpectation<'_>,
        held: &'a [(u32, Sym)],
    ) -> (
        impl Iterator<Item = u32> + 'a,
        impl Iterator<Item = (u32, Sym)> + 'a,
        impl Iterator<Item = (u32, Sym, RefId)> + 'a,
    ) {
        // An expired assignment establishes nothing: what it had is removed as before.
        let live = || exp.rts.iter().filter(|e| !e.expired());
        let rts = live()
            .map(|e| e.rt as u32)
            .filter(|rt| !held.contains(&(*rt, WHOLE_ACCOUNT)));
        let props = live().flat_map(|e| {
            let rt = e.rt as u32;
            e.scalars
                .iter()
                .map(move |(s, _)| (rt, *s))
                .chain(e.mono.iter().map(move |(s, _)| (rt, *s)))
                .filter(|p| !held.contains(p))
        });
        let refs = live().flat_map(|e| {
            let rt = e.rt as u32;
            e.multi
                .iter()
                .flat_map(move |(s, l)| l.iter().map(move |r| (rt, *s, *r)))
        });
        (rts, props, refs)
    }

    /// The expectation as established values, less the properties whose found value this
    /// plan keeps (`held`: a value that differs and waits for review or was adopted).
    pub(super) fn of(
        exp: &OwnerExpectation<'_>,
        held: &[(u32, Sym)],
        pool: &EstablishedPool,
    ) -> Self {
        let (rts, props, refs) = Self::entries(exp, held);
        Self::build(rts, props, refs, pool)
    }

    fn build(
        rts: impl Iterator<Item = u32>,
        props: impl Iterator<Item = (u32, Sym)>,
        refs: impl Iterator<Item = (u32, Sym, RefId)>,
        pool: &EstablishedPool,
    ) -> Self {
        WORDS.with(|words| {
            let mut words = words.borrow_mut();
            Self::build_in(&mut words, rts, props, refs, pool)
        })
    }

    fn build_in(
        words: &mut Vec<u32>,
        rts: impl Iterator<Item = u32>,
        props: impl Iterator<Item = (u32, Sym)>,
        refs: impl Iterator<Item = (u32, Sym, RefId)>,
        pool: &EstablishedPool,
    ) -> Self {
        Self::write(words, rts, props, refs);
        if words.len() == 2 {
            return Self::default();
        }
        Self {
            words: Some(pool.intern(words)),
        }
    }

    /// Writes the block of these values in `words` (`[n_rts, n_props]` alone: nothing).
    fn write(
        words: &mut Vec<u32>,
        rts: impl Iterator<Item = u32>,
        props: impl Iterator<Item = (u32, Sym)>,
        refs: impl Iterator<Item = (u32, Sym, RefId)>,
    ) {
        words.clear();
        words.extend([0, 0]);
        words.extend(rts);
        let n_rts = words.len() - 2;
        for (rt, sym) in props {
            words.extend([rt, sym]);
        }
        let n_props = (words.len() - 2 - n_rts) / 2;
        for (rt, sym, r) in refs {
            words.extend([rt, sym, r]);
        }
        if words.len() > 2 {
            words[0] = n_rts as u32;
            words[1] = n_props as u32;
        }
    }

    /// Whether the expectation establishes exactly these values.
    pub(super) fn matches(&self, exp: &OwnerExpectation<'_>, held: &[(u32, Sym)]) -> bool {
        // Walked against the block word by word, in the order `entries` writes it: no
        // iterator adapters and nothing written (this runs for every owner of every plan).
        let words = self.words();
        let (n_rts, n_props) = self.counts();
        let mut pos = 2;
        let live = || exp.rts.iter().filter(|e| !e.expired());
        for e in live() {
            let rt = e.rt as u32;
            if held.contains(&(rt, WHOLE_ACCOUNT)) {
                continue;
            }
            if words.get(pos) != Some(&rt) {
                return false;
            }
            pos += 1;
        }
        if pos != 2 + n_rts {
            return false;
        }
        for e in live() {
            let rt = e.rt as u32;
            let syms = e
                .scalars
                .iter()
                .map(|(s, _)| *s)
                .chain(e.mono.iter().map(|(s, _)| *s));
            for sym in syms {
                if held.contains(&(rt, sym)) {
                    continue;
                }
                if words.get(pos..pos + 2) != Some(&[rt, sym][..]) {
                    return false;
                }
                pos += 2;
            }
        }
        if pos != 2 + n_rts + 2 * n_props {
            return false;
        }
        for e in live() {
            let rt = e.rt as u32;
            for (sym, list) in &e.multi {
                for r in list {
                    if words.get(pos..pos + 3) != Some(&[rt, *sym, *r][..]) {
                        return false;
                    }
                    pos += 3;
                }
            }
        }
        // An empty block (nothing established) is no block at all.
        let matches = if words.is_empty() {
            pos == 2
        } else {
            pos == words.len()
        };
        debug_assert_eq!(
            matches,
            WORDS.with(|block| {
                let mut block = block.borrow_mut();
                let (rts, props, refs) = Self::entries(exp, held);
                Self::write(&mut block, rts, props, refs);
                if block.len() == 2 {
                    words.is_empty()
                } else {
                    **block == *words
                }
            }),
            "the walk agrees with the block the expectation writes"
        );
        matches
    }

    fn words(&self) -> &[u32] {
        self.words.as_deref().unwrap_or_default()
    }

    fn counts(&self) -> (usize, usize) {
        match self.words() {
            [n_rts, n_props, ..] => (*n_rts as usize, *n_props as usize),
            _ => (0, 0),
        }
    }

    /// The resource type indexes.
    pub(super) fn rts(&self) -> &[u32] {
        let (n_rts, _) = self.counts();
        self.words().get(2..2 + n_rts).unwrap_or_default()
    }

    /// The (resource type, property) pairs.
    pub(super) fn props(&self) -> impl Iterator<Item = (u32, Sym)> + '_ {
        let (n_rts, n_props) = self.counts();
        self.words()
            .get(2 + n_rts..2 + n_rts + 2 * n_props)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| (c[0], c[1]))
    }

    /// The (resource type, property, reference) triples.
    pub(super) fn refs(&self) -> impl Iterator<Item = (u32, Sym, RefId)> + '_ {
        let (n_rts, n_props) = self.counts();
        self.words()
            .get(2 + n_rts + 2 * n_props..)
            .unwrap_or_default()
            .chunks_exact(3)
            .map(|c| (c[0], c[1], c[2]))
    }

    /// From its parts (a restored copy), in the order [`Self::rts`], [`Self::props`] and
    /// [`Self::refs`] gave them: the order a plan writes them in, so that the next plan finds
    /// them unchanged.
    pub(super) fn from_parts(
        rts: Vec<u32>,
        props: Vec<(u32, Sym)>,
        refs: Vec<(u32, Sym, RefId)>,
        pool: &EstablishedPool,
    ) -> Self {
        Self::build(rts.into_iter(), props.into_iter(), refs.into_iter(), pool)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.words.is_none()
    }

    pub(super) fn has_rt(&self, rt: usize) -> bool {
        self.rts().contains(&(rt as u32))
    }

    pub(super) fn has_prop(&self, rt: usize, sym: Sym) -> bool {
        self.props().any(|p| p == (rt as u32, sym))
    }

    pub(super) fn has_ref(&self, rt: usize, sym: Sym, r: RefId) -> bool {
        self.refs().any(|x| x == (rt as u32, sym, r))
    }
}

#[cfg(test)]
mod established_tests {
    use super::{Established, EstablishedPool};

    #[test]
    fn established_parts_round_trip_through_one_shared_block() {
        let pool = EstablishedPool::default();
        let e = Established::from_parts(vec![0, 2], vec![(0, 5), (2, 7)], vec![(0, 9, 11)], &pool);
        assert_eq!(e.rts(), &[0, 2]);
        assert_eq!(e.props().collect::<Vec<_>>(), vec![(0, 5), (2, 7)]);
        assert_eq!(e.refs().collect::<Vec<_>>(), vec![(0, 9, 11)]);
        assert!(e.has_rt(2) && !e.has_rt(1));
        assert!(e.has_prop(2, 7) && !e.has_prop(0, 7));
        assert!(e.has_ref(0, 9, 11) && !e.has_ref(0, 9, 12));
        let only_refs = Established::from_parts(vec![], vec![], vec![(1, 2, 3)], &pool);
        assert_eq!(only_refs.rts(), &[] as &[u32]);
        assert_eq!(only_refs.refs().collect::<Vec<_>>(), vec![(1, 2, 3)]);
        assert!(Established::from_parts(vec![], vec![], vec![], &pool).is_empty());
        assert!(!only_refs.is_empty());
        let again = Established::from_parts(vec![], vec![], vec![(1, 2, 3)], &pool);
        assert!(std::sync::Arc::ptr_eq(
            again.words.as_ref().unwrap(),
            only_refs.words.as_ref().unwrap()
        ));
        assert_eq!(pool.len(), 2);
    }
}

/// Which non-conforming values a decision in bulk covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum FoundScope {
    /// Every value found in the targets of every resource type (a baseline of everything).
    All,
    /// Every value found in the targets of one resource type.
    ResourceType(ResourceTypeId),
    /// One value across owners: a group (a `memberOf` reference), a scalar value, or the
    /// unexpected accounts ([`FoundValue::Account`]) of one resource type.
    Value {
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The value.
        value: FoundValue,
    },
}

impl FoundScope {
    /// Every membership of one group found in one resource type's targets.
    pub fn group(
        resource_type: impl Into<ResourceTypeId>,
        property: impl Into<String>,
        group: Reference,
    ) -> Self {
        Self::Value {
            resource_type: resource_type.into(),
            value: FoundValue::Navigation {
                property: property.into(),
                value: group,
            },
        }
    }

    /// Whether the scope covers this value.
    pub fn covers(&self, found: &NonConforming) -> bool {
        match self {
            Self::All => true,
            Self::ResourceType(rt) => &found.resource_type == rt,
            Self::Value {
                resource_type,
                value,
            } => &found.resource_type == resource_type && &found.value == value,
        }
    }
}

impl std::fmt::Display for FoundScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("every resource type"),
            Self::ResourceType(rt) => write!(f, "resource type {rt}"),
            Self::Value {
                resource_type,
                value,
            } => write!(f, "resource type {resource_type}, {value}"),
        }
    }
}

/// "Rules in reverse": which roles grant which memberships, from the navigation rules that
/// require a single role.
#[derive(Clone, Debug, Default)]
pub(super) struct RoleGrants {
    /// (resource type, property, reference) ⇒ roles granting it.
    by_value: FxHashMap<(usize, Sym, RefId), Vec<RoleId>>,
    /// role ⇒ (resource type, property, reference) it grants, sorted.
    by_role: FxHashMap<RoleId, Vec<(usize, Sym, RefId)>>,
}

impl RoleGrants {
    pub(super) fn new(grants: Vec<(usize, Sym, RefId, RoleId)>) -> Self {
        let mut out = Self::default();
        for (rt, sym, r, role) in grants {
            let roles = out.by_value.entry((rt, sym, r)).or_default();
            if !roles.contains(&role) {
                roles.push(role.clone());
            }
            let values = out.by_role.entry(role).or_default();
            if !values.contains(&(rt, sym, r)) {
                values.push((rt, sym, r));
            }
        }
        for v in out.by_role.values_mut() {
            v.sort_unstable();
        }
        out
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }
}

impl Planner {
    /// The roles deduced from an owner's unexplained memberships of one resource type and
    /// property (the reference system's deduction): a found group that exactly one role grants
    /// deduces that role, with the role's other groups listed as missing; a group that several
    /// roles grant deduces nothing. Roles the owner already holds are not proposed.
    pub(super) fn deduce_roles(
        &self,
        owner: &OwnerId,
        held: &std::collections::BTreeSet<RoleId>,
        rt: usize,
        sym: Sym,
        found: &[RefId],
        actual: &[RefId],
    ) -> Vec<DeducedRole> {
        let grants = &self.role_grants;
        let mut roles: Vec<&RoleId> = found
            .iter()
            .filter_map(|r| grants.by_value.get(&(rt, sym, *r)))
            .filter(|roles| roles.len() == 1)
            .map(|roles| &roles[0])
            .filter(|role| !held.contains(*role))
            .collect();
        roles.sort();
        roles.dedup();
        roles
            .into_iter()
            .map(|role| {
                let (mut has, mut lacks) = (Vec::new(), Vec::new());
                for &(grt, gsym, r) in grants.by_role.get(role).map_or(&[][..], Vec::as_slice) {
                    if grt != rt || gsym != sym {
                        continue;
                    }
                    let reference = self.refs.get(r).clone();
                    if actual.binary_search(&r).is_ok() {
                        has.push(reference);
                    } else {
                        lacks.push(reference);
                    }
                }
                has.sort();
                lacks.sort();
                DeducedRole {
                    owner: owner.clone(),
                    role: role.clone(),
                    resource_type: self.policy.rts[rt].id.clone(),
                    property: self.syms.name(sym).to_owned(),
                    found: has,
                    missing: lacks,
                }
            })
            .collect()
    }

    /// What a non-conforming value of `rt` becomes: a person's removal decision or the
    /// resource type's setting.
    pub(super) fn disposition(&self, rt: usize, removal_approved: bool) -> Disposition {
        if removal_approved {
            return Disposition::Removing;
        }
        match self.policy.rts[rt].non_conforming {
            NonConformingPolicy::KeepAndReview => Disposition::AwaitingReview,
            NonConformingPolicy::AdoptAsFound => Disposition::Adopted,
            NonConformingPolicy::Remove => Disposition::Removing,
        }
    }

    /// Applies a person's decision on a found value (SPEC §10): `Keep` makes it a Found value
    /// that is never removed or overwritten automatically (see [`Planner::keep`]); `Remove`
    /// confirms its removal, which the next plan orders (for a scalar, only while the target
    /// still holds the value decided on). A later decision on the same value replaces the
    /// earlier one. The owner is marked dirty.
    ///
    /// An unknown owner or resource type, or a property the resource type does not govern, is
    /// an error and nothing changes.
    pub fn decide_found(&mut self, decision: &FoundDecision) -> Result<(), PlanError> {
        self.check_found(decision)?;
        let kept_value = match &decision.value {
            FoundValue::Account => KeptValue::Account,
            FoundValue::Scalar { property, .. } => KeptValue::Scalar(property.clone()),
            FoundValue::Navigation { property, value } => {
                KeptValue::Navigation(property.clone(), value.clone())
            }
        };
        let kept = KeptAssignment {
            owner: decision.owner.clone(),
            resource_type: decision.resource_type.clone(),
            value: kept_value,
            workflow_state: WorkflowState::Found,
        };
        let owner = decision.owner.clone();
        let slot = self.slot_mut(&owner)?.rare_mut();
        slot.found_removals
            .retain(|(r, v)| !(r == &decision.resource_type && v == &decision.value));
        match decision.verdict {
            FoundVerdict::Keep => {
                if !slot.kept.contains(&kept) {
                    slot.kept.push(kept);
                }
            }
            FoundVerdict::Remove => {
                slot.kept
                    .retain(|k| !(k == &kept && k.workflow_state == WorkflowState::Found));
                slot.found_removals
                    .push((decision.resource_type.clone(), decision.value.clone()));
            }
        }
        self.recompile_extras(&owner);
        self.dirty.insert(owner);
        Ok(())
    }

    /// Checks a decision as [`Planner::decide_found`] would, changing nothing: the owner and
    /// the resource type exist and the resource type governs the property.
    pub fn check_found(&self, decision: &FoundDecision) -> Result<(), PlanError> {
        let rt = self.rt_index(&decision.resource_type)?;
        if !self.owners.contains_key(&decision.owner) {
            return Err(PlanError::UnknownOwner {
                owner: decision.owner.clone(),
            });
        }
        let (scalar, nav) = match &decision.value {
            FoundValue::Account => (None, None),
            FoundValue::Scalar { property, value } => {
                (Some((property.clone(), value.clone())), None)
            }
            FoundValue::Navigation { property, value } => {
                (None, Some((property.clone(), value.clone())))
            }
        };
        self.check_governed(&decision.owner, rt, &scalar, &nav)
    }

    /// Every non-conforming value of the installed plan, in owner order.
    pub fn non_conforming(&self) -> impl Iterator<Item = &NonConforming> {
        self.fragments
            .values()
            .flat_map(|f| f.non_conforming.iter())
    }
}
