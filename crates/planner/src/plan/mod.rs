//! Correlation and planning (SPEC §5): from owners, the role model, approved requests and the
//! actual targets to the exact orders that close the gap, with provisioning review, thresholds,
//! incremental re-planning and simulation.
//!
//! The [`Planner`] holds the inputs (owners, targets, requests, kept values) and, per owner, the
//! last plan fragment ([`OwnerPlan`]) — only for owners that have something to say (an order, a
//! wait, an error); an owner whose targets already conform costs nothing after planning. Marking
//! an owner dirty and calling [`Planner::plan_incremental`] re-evaluates that owner alone.

mod correlate;
mod expected;
mod found;
mod generate;
mod incremental;
mod inputs;
mod items;
mod lookups;
mod order_states;
mod orders;
mod owned;
mod query_index;
mod requests;
mod review;
mod thresholds;

pub use correlate::CorrelationKey;
pub use expected::ExpectedAssignments;
pub use found::{DeducedRole, Disposition, FoundScope, NonConforming, NonConformingKind};
pub use items::{OwnerPlan, Plan, PlanDelta, PlanOptions, PlannedItem, WaitReason};
pub use order_states::OrderStates;
pub use requests::{KeptAssignment, KeptValue};
pub use thresholds::{GenerationStatus, LimitKind, OrderCounts, ThresholdBreach, ThresholdForce};

use crate::error::{ConfigError, PlanError};
use crate::few::Few;
use crate::owners::{CompactOwner, OwnerScratch, StringPool};
use crate::policy::{CompiledPolicy, Lookups, OwnerExtras, RoleModel};
use crate::targets::{References, Symbols, TargetIdx, TargetStore};
use autoprov_core::{
    AssignmentRequest, EntityTypeId, OwnerId, RequestId, Resource, ResourceId, ResourceType,
    ResourceTypeId,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::sync::Arc;

use orders::{error_plan, orphan_item};

/// Everything the planner needs to be built.
#[derive(Clone, Debug, Default)]
pub struct PlannerConfig {
    /// The resource types.
    pub resource_types: Vec<ResourceType>,
    /// The role model.
    pub role_model: RoleModel,
    /// Correlation keys per resource type, tried in order: the first key that finds a target
    /// decides. A resource type without keys never finds existing targets.
    pub correlation: BTreeMap<ResourceTypeId, Vec<CorrelationKey>>,
}

impl PlannerConfig {
    /// A configuration with these resource types and role model, no correlation yet.
    pub fn new(resource_types: Vec<ResourceType>, role_model: RoleModel) -> Self {
        Self {
            resource_types,
            role_model,
            correlation: BTreeMap::new(),
        }
    }

    /// Adds a correlation key for a resource type.
    pub fn correlate(
        mut self,
        resource_type: impl Into<ResourceTypeId>,
        key: CorrelationKey,
    ) -> Self {
        self.correlation
            .entry(resource_type.into())
            .or_default()
            .push(key);
        self
    }
}

struct OwnerSlot {
    /// Its id (the key it is filed under).
    id: OwnerId,
    /// The owner, compact: rebuilt into a scratch `Owner` to be evaluated.
    owner: CompactOwner,
    /// Requests, kept values and confirmed removals: few owners have any.
    rare: Option<Box<OwnerRare>>,
    /// What the last plan expected: the values that are autoprov's to change.
    established: found::Established,
    /// A full plan changed `established` since [`Planner::take_owned_changes`] (a flag, not an
    /// id in a set: a full plan of a million owners allocates nothing for it).
    owned_changed: bool,
    /// Targets this owner correlates with, per resource type.
    claims: Claims,
    /// The owner's normalized correlation key values, per resource type and key.
    keys: correlate::OwnerKeys,
    /// Whether `fragments` holds an entry for this owner (saves a map lookup per owner
    /// during a full plan, where most owners have none).
    has_fragment: bool,
}

/// What few owners have: requests, kept values, confirmed removals. Boxed in an `Option`
/// (8 bytes instead of about 170 per owner).
#[derive(Default)]
struct OwnerRare {
    requests: BTreeMap<RequestId, AssignmentRequest>,
    extras: OwnerExtras,
    kept: Vec<KeptAssignment>,
    /// Found values whose removal a person confirmed.
    found_removals: Vec<(ResourceTypeId, autoprov_core::FoundValue)>,
}

/// The parts of an owner without requests, kept values or removals.
static NO_RARE: OwnerRare = OwnerRare {
    requests: BTreeMap::new(),
    extras: OwnerExtras::EMPTY,
    kept: Vec::new(),
    found_removals: Vec::new(),
};

impl OwnerSlot {
    fn rare(&self) -> &OwnerRare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }

    fn rare_mut(&mut self) -> &mut OwnerRare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn extras(&self) -> &OwnerExtras {
        &self.rare().extras
    }
}

/// The targets an owner correlates with: one inline (the common case, no allocation), more on
/// the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Claims {
    first: Option<(usize, TargetIdx)>,
    rest: Vec<(usize, TargetIdx)>,
}

impl Claims {
    fn push(&mut self, claim: (usize, TargetIdx)) {
        if self.first.is_none() {
            self.first = Some(claim);
        } else {
            self.rest.push(claim);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (usize, TargetIdx)> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }

    fn contains(&self, claim: (usize, TargetIdx)) -> bool {
        self.iter().any(|c| c == claim)
    }
}

/// The result of planning one owner, before it is installed.
///
/// Boxed parts: a full plan holds one outcome per owner at once, and most have no plan and
/// unchanged established values (8 bytes each instead of a few hundred).
struct OwnerOutcome {
    /// `None` when everything is Verified, or when `same` says it is the installed fragment.
    plan: Option<Box<OwnerPlan>>,
    /// The plan equals the owner's installed fragment, which stays (only [`Planner::plan_full`]
    /// and [`Planner::simulate`] ask for this: a re-plan then holds one copy of an unchanged
    /// fragment instead of two, and installs nothing for it).
    same: bool,
    claims: Claims,
    /// The new established values, when they changed.
    established: Option<found::Established>,
}

/// The planner: inputs, per-owner fragments and the indexes that keep re-planning cheap.
///
/// Time is always passed in (`now`), never read from the clock.
pub struct Planner {
    policy: CompiledPolicy,
    syms: Symbols,
    refs: References,
    /// The owners' shared strings.
    pool: StringPool,
    /// An owner rebuilt from its compact form where an `Owner` is needed outside planning
    /// (its allocations reused from one upsert to the next).
    scratch: OwnerScratch,
    /// The owners' shared established values.
    established_pool: found::EstablishedPool,
    /// Per resource type: its keys with the target property symbol.
    keys: Vec<Vec<(CorrelationKey, u32)>>,
    /// Per resource type and key: normalized owner key value ⇒ owners holding it.
    owner_keys: Vec<Vec<FxHashMap<Box<str>, Few<OwnerId>>>>,
    /// Per resource type: where its keys start in an owner's [`correlate::OwnerKeys`].
    key_offsets: Vec<usize>,
    /// Per resource type and key: how many values of `owner_keys` two owners or more hold
    /// (while none does, correlation has no conflict to look up).
    shared_owner_keys: Vec<Vec<usize>>,
    targets: Vec<TargetStore>,
    /// Boxed: the map's nodes are half empty after an ordered load, and a slot is a few
    /// hundred bytes.
    owners: BTreeMap<OwnerId, Box<OwnerSlot>>,
    lookup_resources: BTreeMap<EntityTypeId, BTreeMap<ResourceId, Resource>>,
    lookups: Lookups,
    /// Per query rule: the owners searching with each key (a lookup change re-plans them).
    query_owners: query_index::QueryOwners,
    fragments: BTreeMap<OwnerId, Arc<OwnerPlan>>,
    orphans: BTreeMap<(usize, ResourceId), PlannedItem>,
    counts: Vec<OrderCounts>,
    role_grants: found::RoleGrants,
    /// Hash sets (sorted when drained): loading a million owners marks a million of them.
    dirty: FxHashSet<OwnerId>,
    dirty_targets: FxHashSet<(usize, ResourceId)>,
    /// Nothing was planned yet: every owner and every target is dirty, and the sets above are
    /// not kept (a first load of a million identities would otherwise file each twice, and
    /// look up, for every target, the owners it correlates with only to mark them again).
    fresh: bool,
    /// Owners removed, or whose values could not be written, since
    /// [`Planner::take_owned_changes`] (the others are flagged in their slot).
    owned_changed: FxHashSet<OwnerId>,
    /// A full plan flagged owners in their slots since [`Planner::take_owned_changes`].
    owned_scan: bool,
    /// Owners a full plan plans before it installs them.
    full_plan_chunk: usize,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("resource_types", &self.policy.rts.len())
            .field("owners", &self.owners.len())
            .field(
                "targets",
                &self.targets.iter().map(TargetStore::len).sum::<usize>(),
            )
            .field("fragments", &self.fragments.len())
            .field("dirty", &self.dirty_count())
            .finish()
    }
}

impl Planner {
    /// Compiles the configuration.
    pub fn new(config: PlannerConfig) -> Result<Self, ConfigError> {
        let mut syms = Symbols::default();
        let mut refs = References::default();
        let policy = CompiledPolicy::compile(
            config.resource_types,
            config.role_model,
            &mut syms,
            &mut refs,
        )?;
        let mut keys = vec![Vec::new(); policy.rts.len()];
        for (rt_id, list) in config.correlation {
            let rt =
                *policy
                    .rt_ids
                    .get(&rt_id)
                    .ok_or_else(|| ConfigError::UnknownResourceType {
                        context: "correlation".into(),
                        resource_type: rt_id.clone(),
                    })?;
            keys[rt] = list
                .into_iter()
                .map(|k| {
                    let sym = syms.intern(&k.target_property);
                    (k, sym)
                })
                .collect();
        }
        let owner_keys = keys
            .iter()
            .map(|k| vec![FxHashMap::default(); k.len()])
            .collect();
        let shared_owner_keys = keys.iter().map(|k| vec![0; k.len()]).collect();
        let key_offsets = keys
            .iter()
            .scan(0, |start, k| {
                let offset = *start;
                *start += k.len();
                Some(offset)
            })
            .collect();
        let targets = keys.iter().map(|k| TargetStore::new(k.len())).collect();
        let lookups = Lookups {
            per_rule: vec![FxHashMap::default(); policy.query_rules().len()],
        };
        let query_owners = query_index::QueryOwners::new(policy.query_rules().len());
        let counts = vec![OrderCounts::default(); policy.rts.len()];
        let role_grants = found::RoleGrants::new(policy.role_grants());
        Ok(Self {
            policy,
            syms,
            refs,
            pool: StringPool::default(),
            scratch: OwnerScratch::default(),
            established_pool: Default::default(),
            keys,
            owner_keys,
            shared_owner_keys,
            key_offsets,
            targets,
            owners: BTreeMap::new(),
            lookup_resources: BTreeMap::new(),
            lookups,
            query_owners,
            fragments: BTreeMap::new(),
            orphans: BTreeMap::new(),
            counts,
            role_grants,
            dirty: FxHashSet::default(),
            dirty_targets: FxHashSet::default(),
            fresh: true,
            owned_changed: FxHashSet::default(),
            owned_scan: false,
            full_plan_chunk: generate::FULL_PLAN_CHUNK,
        })
    }

    fn rt_index(&self, id: &ResourceTypeId) -> Result<usize, PlanError> {
        self.policy
            .rt_ids
            .get(id)
            .copied()
            .ok_or_else(|| PlanError::UnknownResourceType {
                resource_type: id.clone(),
            })
    }

    /// The configured resource types.
    pub fn resource_types(&self) -> &[ResourceType] {
        &self.policy.rts
    }

    /// How many owners the planner holds.
    pub fn owner_count(&self) -> usize {
        self.owners.len()
    }

    /// How many targets the planner holds for a resource type.
    pub fn target_count(&self, resource_type: &ResourceTypeId) -> usize {
        self.rt_index(resource_type)
            .map(|rt| self.targets[rt].len())
            .unwrap_or(0)
    }
}
