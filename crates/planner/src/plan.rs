//! Correlation and planning (SPEC §5): from owners, the role model, approved requests and the
//! actual targets to the exact orders that close the gap, with provisioning review, thresholds,
//! incremental re-planning and simulation.
//!
//! The [`Planner`] holds the inputs (owners, targets, requests, kept values) and, per owner, the
//! last plan fragment ([`OwnerPlan`]) — only for owners that have something to say (an order, a
//! wait, an error); an owner whose targets already conform costs nothing after planning. Marking
//! an owner dirty and calling [`Planner::plan_incremental`] re-evaluates that owner alone.

use crate::compare::ComparisonType;
use crate::error::{ConfigError, EvaluationError, PlanError};
use crate::policy::{
    CompiledKept, CompiledPolicy, CompiledRequest, KeptTarget, Lookups, OwnerExpectation,
    OwnerExtras, RequestTarget, RoleModel, RtExpectation,
};
use crate::targets::{
    RefId, References, Symbols, Target, TargetIdx, TargetStore, sorted_difference,
};
use autoprov_core::{
    AssignedResourceNavigation, AssignedResourceScalar, AssignedResourceType, AssignmentId,
    AssignmentRequest, AssignmentStatus, ChangeType, Changes, ConnectionMode, EntityTypeId,
    NavigationChange, OrderId, Owner, OwnerId, Period, PropertyChange, PropertyValue,
    ProvisioningEvent, ProvisioningOrder, ProvisioningOrdersList, ProvisioningState, Reference,
    RequestId, RequestKind, Resource, ResourceId, ResourceType, ResourceTypeId, ResourceTypeRef,
    RoleId, ScalarValue, WorkflowState,
};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How an owner is matched with an existing target: the owner property's value equals the
/// target property's value under `comparison` (e.g. `employeeId` ⇄ `employeeID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationKey {
    /// The owner property.
    pub owner_property: String,
    /// The target property (`Id` means the target's resource id).
    pub target_property: String,
    /// How the values are compared.
    pub comparison: ComparisonType,
}

impl CorrelationKey {
    /// A key compared case-insensitively (as directories compare names).
    pub fn new(owner_property: impl Into<String>, target_property: impl Into<String>) -> Self {
        Self {
            owner_property: owner_property.into(),
            target_property: target_property.into(),
            comparison: ComparisonType::IgnoreCase,
        }
    }

    /// Sets the comparison.
    pub fn comparison(mut self, comparison: ComparisonType) -> Self {
        self.comparison = comparison;
        self
    }
}

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

/// A value found in a target that no rule explains and that an operator decided to keep
/// (workflow state Found or Historic): the planner never turns it into an order — neither
/// removes it nor re-adds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeptAssignment {
    /// The owner.
    pub owner: OwnerId,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// What is kept.
    pub value: KeptValue,
    /// Found or Historic.
    pub workflow_state: WorkflowState,
}

/// What a [`KeptAssignment`] keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum KeptValue {
    /// The target itself: never deleted automatically.
    Account,
    /// A scalar property: its actual value is never overwritten.
    Scalar(String),
    /// One reference of a navigation: never removed.
    Navigation(String, Reference),
}

/// Why an expected change produced no order yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum WaitReason {
    /// The resource type does not allow automatic creation (`AllowAdd = false`).
    AllowAddDisabled,
    /// The resource type does not allow automatic removal (`AllowRemove = false`): an operator
    /// decides.
    AllowRemoveDisabled,
    /// A target without owner, kept because `RemoveOrphans` is off.
    OrphanKept,
    /// The resource type it depends on is not provisioned and not being provisioned.
    DependsOn {
        /// That resource type.
        resource_type: ResourceTypeId,
    },
    /// `DependsOnOwnerProperty` is empty on the owner.
    OwnerPropertyEmpty {
        /// The property.
        property: String,
    },
    /// The assignment waits for a person's validation (`RequestedAutomatically`).
    AwaitingValidation,
    /// Provisioning review declined this order; it is not generated again while the same
    /// change is computed.
    DeclinedInReview,
}

/// One planned item: the state of one owner's assignment of one resource type (or of one
/// orphan target), with its order when one is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlannedItem {
    /// The owner, none for an orphan.
    pub owner: Option<OwnerId>,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The assignment (`<owner>/<resource type>`), none for an orphan.
    pub assigned_resource_type_id: Option<AssignmentId>,
    /// Where the assignment comes from.
    pub workflow_state: WorkflowState,
    /// How far its fulfilment went.
    pub provisioning_state: ProvisioningState,
    /// The correlated target, if any.
    pub target: Option<ResourceId>,
    /// The order (Pending, AwaitingApproval, or in flight).
    pub order: Option<ProvisioningOrder>,
    /// Why nothing is sent, when an order is due but cannot be generated.
    pub waiting: Option<WaitReason>,
    /// The evaluation failure, for `Error` items.
    pub error: Option<String>,
}

impl PlannedItem {
    /// Whether the item's order is released for dispatch (Pending).
    pub fn is_released(&self) -> bool {
        self.provisioning_state == ProvisioningState::Pending && self.order.is_some()
    }

    /// Whether the order counts against thresholds (Pending or AwaitingApproval).
    fn counts(&self) -> Option<ChangeType> {
        match self.provisioning_state {
            ProvisioningState::Pending | ProvisioningState::AwaitingApproval => {
                self.order.as_ref().map(|o| o.change_type)
            }
            _ => None,
        }
    }
}

/// The plan fragment of one owner: its items that are not simply Verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerPlan {
    /// The owner.
    pub owner: OwnerId,
    /// Items in resource-type dependency order.
    pub items: Vec<PlannedItem>,
    /// The evaluation failure, when policy evaluation failed for the owner (every item is
    /// then `Error` and no order is produced).
    pub error: Option<EvaluationError>,
}

impl OwnerPlan {
    /// Whether the owner has nothing to report (everything Verified).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.error.is_none()
    }
}

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
    fn add(&mut self, change: ChangeType, sign: isize) {
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

/// Options of one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// An operator forces the generation despite threshold breaches. Default: false.
    pub force_thresholds: bool,
}

impl PlanOptions {
    /// Options forcing the generation past threshold breaches.
    pub fn forced() -> Self {
        Self {
            force_thresholds: true,
        }
    }
}

/// A whole plan: every owner with something to report, every orphan, and whether the orders
/// may go out. Deterministic: the same inputs give the same plan, byte for byte once
/// serialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Plan {
    /// Threshold verdict.
    pub status: GenerationStatus,
    /// Owners with something to report, sorted by owner id (shared with the planner, so
    /// handing out a plan does not copy its orders).
    pub owners: Vec<Arc<OwnerPlan>>,
    /// Targets without owner that need a decision or an order, sorted by resource type and id.
    pub orphans: Vec<PlannedItem>,
    /// Order counts per resource type.
    pub counts: BTreeMap<ResourceTypeId, OrderCounts>,
}

impl Plan {
    /// Every item, owners first (by owner), then orphans.
    pub fn items(&self) -> impl Iterator<Item = &PlannedItem> {
        self.owners
            .iter()
            .flat_map(|o| o.items.iter())
            .chain(self.orphans.iter())
    }

    /// The released orders (Pending), in plan order; none while the generation is blocked.
    pub fn orders(&self) -> impl Iterator<Item = &ProvisioningOrder> {
        let released = self.status.is_released();
        self.items()
            .filter(move |i| released && i.is_released())
            .filter_map(|i| i.order.as_ref())
    }

    /// Every order computed, released or not (what a simulation shows).
    pub fn all_orders(&self) -> impl Iterator<Item = &ProvisioningOrder> {
        self.items().filter_map(|i| i.order.as_ref())
    }

    /// Items waiting in provisioning review.
    pub fn awaiting_approval(&self) -> impl Iterator<Item = &PlannedItem> {
        self.items()
            .filter(|i| i.provisioning_state == ProvisioningState::AwaitingApproval)
    }

    /// Owners whose evaluation failed.
    pub fn errors(&self) -> impl Iterator<Item = &EvaluationError> {
        self.owners.iter().filter_map(|o| o.error.as_ref())
    }

    /// Whether the plan holds no order at all (released or awaiting review).
    pub fn has_no_orders(&self) -> bool {
        self.all_orders().next().is_none()
    }

    /// The released orders as an interchange file (SPEC §6).
    pub fn to_orders_list(&self) -> ProvisioningOrdersList {
        ProvisioningOrdersList {
            provisioning_orders_list: self.orders().cloned().collect(),
        }
    }

    /// The plan as JSON (stable: the same plan gives the same bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What an incremental run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanDelta {
    /// Threshold verdict of the whole generation after the change.
    pub status: GenerationStatus,
    /// The new fragment of every re-evaluated owner (empty = everything Verified), sorted.
    pub owners: Vec<OwnerPlan>,
    /// Orphans re-checked: the new item, or `None` when the target is no longer an orphan to
    /// report.
    pub orphans: Vec<(ResourceTypeId, ResourceId, Option<PlannedItem>)>,
}

/// The expected assignments of one owner (SPEC §2) as the core assignment types, each with its
/// workflow state (where it comes from) and provisioning state (how far its fulfilment went).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExpectedAssignments {
    /// The owner.
    pub owner: OwnerId,
    /// The roles the owner holds (composite roles and the single roles they grant).
    pub roles: BTreeSet<RoleId>,
    /// One per resource type the owner has (or keeps as Found/Historic, or waits to have
    /// validated).
    pub resource_types: Vec<AssignedResourceType>,
    /// Expected scalar values, and kept Found/Historic ones.
    pub scalars: Vec<AssignedResourceScalar>,
    /// Expected references (one per membership), and kept Found/Historic ones.
    pub navigations: Vec<AssignedResourceNavigation>,
    /// Resource types a rule suggests (never provisioned without a request).
    pub suggested: Vec<ResourceTypeId>,
}

/// Where an order lives in the planner.
#[derive(Clone, Debug)]
enum OrderHome {
    Owner(OwnerId, usize),
    Orphan(usize, ResourceId),
}

struct OwnerSlot {
    owner: Owner,
    requests: BTreeMap<RequestId, AssignmentRequest>,
    extras: OwnerExtras,
    kept: Vec<KeptAssignment>,
    /// Targets this owner correlates with, per resource type.
    claims: Claims,
    /// The owner's normalized correlation key values, per resource type and key.
    keys: Vec<Vec<Option<String>>>,
    /// Whether `fragments` holds an entry for this owner (saves a map lookup per owner
    /// during a full plan, where most owners have none).
    has_fragment: bool,
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
struct OwnerOutcome {
    /// `None` when everything is Verified.
    plan: Option<OwnerPlan>,
    claims: Claims,
}

/// The planner: inputs, per-owner fragments and the indexes that keep re-planning cheap.
///
/// Time is always passed in (`now`), never read from the clock.
pub struct Planner {
    policy: CompiledPolicy,
    syms: Symbols,
    refs: References,
    /// Per resource type: its keys with the target property symbol.
    keys: Vec<Vec<(CorrelationKey, u32)>>,
    /// Per resource type and key: normalized owner key value ⇒ owners holding it.
    owner_keys: Vec<Vec<FxHashMap<String, Vec<OwnerId>>>>,
    targets: Vec<TargetStore>,
    owners: BTreeMap<OwnerId, OwnerSlot>,
    lookup_resources: BTreeMap<EntityTypeId, BTreeMap<ResourceId, Resource>>,
    lookups: Lookups,
    fragments: BTreeMap<OwnerId, Arc<OwnerPlan>>,
    orphans: BTreeMap<(usize, ResourceId), PlannedItem>,
    order_index: FxHashMap<OrderId, OrderHome>,
    counts: Vec<OrderCounts>,
    /// Hash sets (sorted when drained): loading a million owners marks a million of them.
    dirty: FxHashSet<OwnerId>,
    dirty_targets: FxHashSet<(usize, ResourceId)>,
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
            .field("dirty", &self.dirty.len())
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
        let targets = keys.iter().map(|k| TargetStore::new(k.len())).collect();
        let lookups = Lookups {
            per_rule: vec![FxHashMap::default(); policy.query_rules().len()],
        };
        let counts = vec![OrderCounts::default(); policy.rts.len()];
        Ok(Self {
            policy,
            syms,
            refs,
            keys,
            owner_keys,
            targets,
            owners: BTreeMap::new(),
            lookup_resources: BTreeMap::new(),
            lookups,
            fragments: BTreeMap::new(),
            orphans: BTreeMap::new(),
            order_index: FxHashMap::default(),
            counts,
            dirty: FxHashSet::default(),
            dirty_targets: FxHashSet::default(),
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

    // -- inputs -------------------------------------------------------------------------------

    fn owner_key_values(&self, owner: &Owner) -> Vec<Vec<Option<String>>> {
        self.keys
            .iter()
            .map(|keys| {
                keys.iter()
                    .map(|(k, _)| match owner.get(&k.owner_property) {
                        Some(PropertyValue::Scalar(s)) => {
                            k.comparison.key_of(s).map(Cow::into_owned)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    fn target_key_values(keys: &[(CorrelationKey, u32)], target: &Target) -> Vec<Option<String>> {
        keys.iter()
            .map(|(k, sym)| {
                if k.target_property == "Id" {
                    return Some(k.comparison.normalize(target.id.as_str()).into_owned());
                }
                target
                    .scalar(*sym)
                    .and_then(|s| k.comparison.key_of(s))
                    .map(Cow::into_owned)
            })
            .collect()
    }

    /// Marks the owners sharing a key value dirty (their correlation conflicts may change).
    fn index_owner_keys(&mut self, id: &OwnerId, values: &[Vec<Option<String>>], insert: bool) {
        for (rt, per_key) in values.iter().enumerate() {
            for (k, v) in per_key.iter().enumerate() {
                let Some(v) = v else { continue };
                let map = &mut self.owner_keys[rt][k];
                if insert {
                    let list = map.entry(v.clone()).or_default();
                    if !list.contains(id) {
                        list.push(id.clone());
                    }
                    if list.len() > 1 {
                        self.dirty.extend(list.iter().cloned());
                    }
                } else if let Some(list) = map.get_mut(v) {
                    list.retain(|o| o != id);
                    self.dirty.extend(list.iter().cloned());
                    if list.is_empty() {
                        map.remove(v);
                    }
                }
            }
        }
    }

    /// Adds or replaces an owner and marks it dirty.
    pub fn upsert_owner(&mut self, owner: Owner) {
        let id = owner.id.clone();
        let new_keys = self.owner_key_values(&owner);
        if let Some(slot) = self.owners.get_mut(&id) {
            slot.owner = owner;
            let old_keys = std::mem::replace(&mut slot.keys, new_keys.clone());
            if old_keys != new_keys {
                self.index_owner_keys(&id, &old_keys, false);
                self.index_owner_keys(&id, &new_keys, true);
            }
        } else {
            self.owners.insert(
                id.clone(),
                OwnerSlot {
                    owner,
                    requests: BTreeMap::new(),
                    extras: OwnerExtras::default(),
                    kept: Vec::new(),
                    claims: Claims::default(),
                    keys: new_keys.clone(),
                    has_fragment: false,
                },
            );
            self.index_owner_keys(&id, &new_keys, true);
        }
        self.dirty.insert(id);
    }

    /// Removes an owner (it left the source). Its targets become orphans at the next planning
    /// and are deleted only where `RemoveOrphans` is set.
    pub fn remove_owner(&mut self, id: &OwnerId) -> Option<Owner> {
        let slot = self.owners.remove(id)?;
        self.index_owner_keys(id, &slot.keys, false);
        for (rt, idx) in slot.claims.iter() {
            self.release_claim(rt, idx, id);
        }
        self.install_fragment(id.clone(), None);
        self.dirty.remove(id);
        Some(slot.owner)
    }

    fn release_claim(&mut self, rt: usize, idx: TargetIdx, owner: &OwnerId) {
        let store = &mut self.targets[rt];
        if let Some(claim) = store.claimed_by.get_mut(idx as usize)
            && claim.as_ref() == Some(owner)
        {
            *claim = None;
            if let Some(t) = store.get(idx) {
                self.dirty_targets.insert((rt, t.id.clone()));
            }
        }
    }

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
        self.dirty.extend(self.owners.keys().cloned());
    }

    /// How many owners are dirty.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    fn mark_target_owners_dirty(&mut self, rt: usize, key_values: &[Option<String>]) {
        for (k, v) in key_values.iter().enumerate() {
            if let Some(v) = v
                && let Some(owners) = self.owner_keys[rt][k].get(v)
            {
                self.dirty.extend(owners.iter().cloned());
            }
        }
    }

    /// Adds or replaces an actual target of a resource type (what a synchronization saw) and
    /// marks the owners it concerns dirty.
    pub fn upsert_target(
        &mut self,
        resource_type: &ResourceTypeId,
        resource: &Resource,
    ) -> Result<(), PlanError> {
        let rt = self.rt_index(resource_type)?;
        let target = Target::compact(resource, &mut self.syms, &mut self.refs);
        let keys = &self.keys[rt];
        let new_keys = Self::target_key_values(keys, &target);
        let (idx, old) = self.targets[rt].upsert(target, new_keys.clone(), |old| {
            Self::target_key_values(keys, old)
        });
        if let Some(old) = old {
            let old_keys = Self::target_key_values(&self.keys[rt], &old);
            self.mark_target_owners_dirty(rt, &old_keys);
        }
        if let Some(owner) = self.targets[rt].claimed_by[idx as usize].clone() {
            self.dirty.insert(owner);
        }
        self.mark_target_owners_dirty(rt, &new_keys);
        self.dirty_targets.insert((rt, resource.id.clone()));
        Ok(())
    }

    /// Removes an actual target (it disappeared from the managed system).
    pub fn remove_target(
        &mut self,
        resource_type: &ResourceTypeId,
        id: &ResourceId,
    ) -> Result<bool, PlanError> {
        let rt = self.rt_index(resource_type)?;
        let keys = &self.keys[rt];
        let Some((idx, old)) = self.targets[rt].remove(id, |t| Self::target_key_values(keys, t))
        else {
            return Ok(false);
        };
        let old_keys = Self::target_key_values(&self.keys[rt], &old);
        self.mark_target_owners_dirty(rt, &old_keys);
        if let Some(owner) = self.targets[rt].claimed_by[idx as usize].take() {
            self.dirty.insert(owner);
        }
        self.dirty_targets.insert((rt, id.clone()));
        Ok(true)
    }

    /// Adds or replaces a resource that query rules search (e.g. an OU, a group). When the
    /// value a query rule matches on changes (a new OU, a renamed one), query results may
    /// change for anyone, so every owner is marked dirty; re-exporting an unchanged lookup
    /// resource, or one whose other values changed (a group's members), changes nothing and
    /// marks nobody. Each call costs the query rules of its entity type, not a rebuild.
    pub fn upsert_lookup(&mut self, entity_type: impl Into<EntityTypeId>, resource: Resource) {
        let entity_type = entity_type.into();
        let id = resource.id.clone();
        let new_keys = self.lookup_keys(&entity_type, Some(&resource));
        let old = self
            .lookup_resources
            .entry(entity_type.clone())
            .or_default()
            .insert(id.clone(), resource);
        let old_keys = self.lookup_keys(&entity_type, old.as_ref());
        self.relink_lookup(&id, old_keys, new_keys);
    }

    /// Removes a lookup resource; when a query rule matched on it, every owner is marked dirty.
    pub fn remove_lookup(&mut self, entity_type: &EntityTypeId, id: &ResourceId) {
        let old = self
            .lookup_resources
            .get_mut(entity_type)
            .and_then(|m| m.remove(id));
        let old_keys = self.lookup_keys(entity_type, old.as_ref());
        let new_keys = self.lookup_keys(entity_type, None);
        self.relink_lookup(id, old_keys, new_keys);
    }

    /// For each query rule that searches `entity_type`: its index and the key it would file
    /// `resource` under (`None` without a resource or without a usable value).
    fn lookup_keys(
        &self,
        entity_type: &EntityTypeId,
        resource: Option<&Resource>,
    ) -> Vec<(usize, Option<String>)> {
        self.policy
            .query_rules()
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.target_entity_type == *entity_type)
            .map(|(i, rule)| (i, resource.and_then(|r| lookup_key(rule, r))))
            .collect()
    }

    /// Moves a lookup resource's reference from its old keys to its new ones (same rules, same
    /// order); marks every owner dirty when any key changed.
    fn relink_lookup(
        &mut self,
        id: &ResourceId,
        old: Vec<(usize, Option<String>)>,
        new: Vec<(usize, Option<String>)>,
    ) {
        let mut changed = false;
        for ((i, old_key), (_, new_key)) in old.into_iter().zip(new) {
            if old_key == new_key {
                continue;
            }
            changed = true;
            let reference = Reference::key(
                self.policy.query_rules()[i].reference_key.clone(),
                id.as_str(),
            );
            let rid = self.refs.intern(&reference);
            let map = &mut self.lookups.per_rule[i];
            if let Some(key) = old_key
                && let Some(found) = map.get_mut(&key)
            {
                found.retain(|r| *r != rid);
                if found.is_empty() {
                    map.remove(&key);
                }
            }
            if let Some(key) = new_key {
                let found = map.entry(key).or_default();
                // Kept in reference order, as a rebuild from the sorted resources gives.
                let refs = &self.refs;
                let at = found.partition_point(|r| refs.get(*r) < &reference);
                if found.get(at) != Some(&rid) {
                    found.insert(at, rid);
                }
            }
        }
        if changed {
            self.mark_all_dirty();
        }
    }

    /// The lookups computed from scratch from every lookup resource (tests compare the
    /// incremental index with it).
    #[cfg(test)]
    fn rebuilt_lookups(&mut self) -> Vec<FxHashMap<String, Vec<RefId>>> {
        let mut per_rule = Vec::new();
        for rule in self.policy.query_rules().to_vec() {
            let mut map: FxHashMap<String, Vec<RefId>> = FxHashMap::default();
            if let Some(resources) = self.lookup_resources.get(&rule.target_entity_type) {
                for r in resources.values() {
                    if let Some(key) = lookup_key(&rule, r) {
                        let reference = Reference::key(rule.reference_key.clone(), r.id.as_str());
                        map.entry(key)
                            .or_default()
                            .push(self.refs.intern(&reference));
                    }
                }
            }
            for refs in map.values_mut() {
                refs.sort_by(|a, b| self.refs.get(*a).cmp(self.refs.get(*b)));
            }
            per_rule.push(map);
        }
        per_rule
    }

    fn slot_mut(&mut self, owner: &OwnerId) -> Result<&mut OwnerSlot, PlanError> {
        self.owners
            .get_mut(owner)
            .ok_or_else(|| PlanError::UnknownOwner {
                owner: owner.clone(),
            })
    }

    /// Adds or replaces an assignment request. Only approved ones (Approved, or Cancellation
    /// for removals) change the expected assignments; the owner is marked dirty.
    pub fn upsert_request(&mut self, request: AssignmentRequest) -> Result<(), PlanError> {
        let rt = self.rt_index(&request.assignment.resource_type)?;
        self.check_governed(
            &request.owner,
            rt,
            &request.assignment.scalar,
            &request.assignment.navigation,
        )?;
        let owner = request.owner.clone();
        let slot = self.slot_mut(&owner)?;
        slot.requests.insert(request.id.clone(), request);
        self.recompile_extras(&owner);
        self.dirty.insert(owner);
        Ok(())
    }

    /// Removes an assignment request.
    pub fn remove_request(
        &mut self,
        owner: &OwnerId,
        request: &RequestId,
    ) -> Result<(), PlanError> {
        self.slot_mut(owner)?.requests.remove(request);
        self.recompile_extras(owner);
        self.dirty.insert(owner.clone());
        Ok(())
    }

    fn check_governed(
        &self,
        owner: &OwnerId,
        rt: usize,
        scalar: &Option<(String, ScalarValue)>,
        navigation: &Option<(String, Reference)>,
    ) -> Result<(), PlanError> {
        let policy = &self.policy.per_rt[rt];
        let unmanaged = |property: &str| PlanError::UnmanagedProperty {
            owner: owner.clone(),
            resource_type: self.policy.rts[rt].id.clone(),
            property: property.to_owned(),
        };
        if let Some((p, _)) = scalar
            && self.syms.get(p).and_then(|s| policy.scalar(s)).is_none()
        {
            return Err(unmanaged(p));
        }
        if let Some((p, _)) = navigation
            && self
                .syms
                .get(p)
                .and_then(|s| policy.multiplicity(s))
                .is_none()
        {
            return Err(unmanaged(p));
        }
        Ok(())
    }

    /// Records a Found or Historic value that must never be turned into an order.
    pub fn keep(&mut self, kept: KeptAssignment) -> Result<(), PlanError> {
        let rt = self.rt_index(&kept.resource_type)?;
        let (scalar, nav) = match &kept.value {
            KeptValue::Account => (None, None),
            KeptValue::Scalar(p) => (Some((p.clone(), ScalarValue::Bool(true))), None),
            KeptValue::Navigation(p, r) => (None, Some((p.clone(), r.clone()))),
        };
        self.check_governed(&kept.owner, rt, &scalar, &nav)?;
        let owner = kept.owner.clone();
        let slot = self.slot_mut(&owner)?;
        if !slot.kept.contains(&kept) {
            slot.kept.push(kept);
        }
        self.recompile_extras(&owner);
        self.dirty.insert(owner);
        Ok(())
    }

    fn recompile_extras(&mut self, owner: &OwnerId) {
        let Some(slot) = self.owners.get(owner) else {
            return;
        };
        let mut extras = OwnerExtras::default();
        for req in slot.requests.values() {
            let add = match req.workflow_state() {
                WorkflowState::Approved => true,
                WorkflowState::Cancellation => false,
                _ => continue,
            };
            debug_assert_eq!(add, req.kind == RequestKind::Add);
            let Ok(rt) = self.rt_index(&req.assignment.resource_type) else {
                continue;
            };
            let mut targets = Vec::new();
            if let Some((p, v)) = &req.assignment.scalar {
                targets.push(RequestTarget::Scalar(self.syms.intern(p), v.clone()));
            }
            if let Some((p, r)) = &req.assignment.navigation {
                targets.push(RequestTarget::Navigation(
                    self.syms.intern(p),
                    self.refs.intern(r),
                ));
            }
            if targets.is_empty() {
                targets.push(RequestTarget::ResourceType);
            }
            for what in targets {
                extras.requests.push(CompiledRequest { rt, add, what });
            }
        }
        for k in &slot.kept {
            let Ok(rt) = self.rt_index(&k.resource_type) else {
                continue;
            };
            let what = match &k.value {
                KeptValue::Account => KeptTarget::Account,
                KeptValue::Scalar(p) => KeptTarget::Scalar(self.syms.intern(p)),
                KeptValue::Navigation(p, r) => {
                    KeptTarget::Navigation(self.syms.intern(p), self.refs.intern(r))
                }
            };
            extras.kept.push(CompiledKept {
                rt,
                what,
                workflow: k.workflow_state,
            });
        }
        if let Some(slot) = self.owners.get_mut(owner) {
            slot.extras = extras;
        }
    }

    // -- planning -----------------------------------------------------------------------------

    /// Re-evaluates every owner and every target, installs the result and returns the whole
    /// plan. Owners are evaluated in parallel; the result does not depend on scheduling.
    pub fn plan_full(&mut self, now: DateTime<Utc>, options: PlanOptions) -> Plan {
        let outcomes = self.compute_all(now);
        let mut claimed: Vec<Vec<bool>> = self
            .targets
            .iter()
            .map(|s| vec![false; s.claimed_by.len()])
            .collect();
        let mut fragments = BTreeMap::new();
        let targets = &mut self.targets;
        for ((id, slot), outcome) in self.owners.iter_mut().zip(outcomes) {
            for (rt, idx) in outcome.claims.iter() {
                claimed[rt][idx as usize] = true;
                let claim = &mut targets[rt].claimed_by[idx as usize];
                if claim.as_ref() != Some(id) {
                    *claim = Some(id.clone());
                }
            }
            slot.claims = outcome.claims;
            slot.has_fragment = outcome.plan.is_some();
            if let Some(plan) = outcome.plan {
                fragments.insert(id.clone(), Arc::new(plan));
            }
        }
        let old_orphans = std::mem::take(&mut self.orphans);
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
                let prev = old_orphans.get(&key);
                if let Some(item) =
                    orphan_item(&self.policy.rts[rt], t, prev, &self.syms, &self.refs)
                {
                    orphans.insert(key, item);
                }
            }
        }
        self.fragments = fragments;
        self.orphans = orphans;
        self.reindex();
        // Fresh sets rather than `clear()`: after a load they hold a million slots, which the
        // next incremental run would otherwise walk.
        self.dirty = FxHashSet::default();
        self.dirty_targets = FxHashSet::default();
        self.current_plan(options)
    }

    /// Rebuilds the order counts and the order index from the installed items.
    fn reindex(&mut self) {
        self.order_index.clear();
        self.counts = vec![OrderCounts::default(); self.policy.rts.len()];
        for (id, fragment) in &self.fragments {
            for (i, item) in fragment.items.iter().enumerate() {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, 1);
                }
                if let Some(o) = &item.order {
                    self.order_index
                        .insert(o.order_id.clone(), OrderHome::Owner(id.clone(), i));
                }
            }
        }
        for ((rt, id), item) in &self.orphans {
            if let Some(c) = item.counts() {
                self.counts[*rt].add(c, 1);
            }
            if let Some(o) = &item.order {
                self.order_index
                    .insert(o.order_id.clone(), OrderHome::Orphan(*rt, id.clone()));
            }
        }
    }

    /// Re-evaluates only the dirty owners (and the targets whose owner changed) and returns
    /// what changed. Cost is proportional to the change, not to the organization.
    pub fn plan_incremental(&mut self, now: DateTime<Utc>, options: PlanOptions) -> PlanDelta {
        let mut dirty: Vec<OwnerId> = std::mem::take(&mut self.dirty).into_iter().collect();
        dirty.sort_unstable();
        let outcomes = self.compute_owners(dirty.iter(), now);
        let mut owners = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            let plan = outcome.plan.clone().unwrap_or_else(|| OwnerPlan {
                owner: id.clone(),
                items: Vec::new(),
                error: None,
            });
            self.install_outcome(id, outcome);
            owners.push(plan);
        }
        let mut dirty_targets: Vec<(usize, ResourceId)> = std::mem::take(&mut self.dirty_targets)
            .into_iter()
            .collect();
        dirty_targets.sort_unstable();
        let mut orphans = Vec::new();
        for key in dirty_targets {
            let item = self.recheck_orphan(key.clone());
            orphans.push((self.policy.rts[key.0].id.clone(), key.1, item));
        }
        PlanDelta {
            status: self.status(options),
            owners,
            orphans,
        }
    }

    /// Computes the whole plan without installing anything (a simulation): the planner's state
    /// is left as it was.
    pub fn simulate(&self, now: DateTime<Utc>, options: PlanOptions) -> Plan {
        let outcomes = self.compute_all(now);
        let mut claimed: Vec<Vec<bool>> = self
            .targets
            .iter()
            .map(|s| vec![false; s.claimed_by.len()])
            .collect();
        let mut counts = vec![OrderCounts::default(); self.policy.rts.len()];
        let mut owners = Vec::new();
        for outcome in outcomes {
            for (rt, idx) in outcome.claims.iter() {
                claimed[rt][idx as usize] = true;
            }
            let Some(plan) = outcome.plan else { continue };
            for item in &plan.items {
                if let Some(c) = item.counts() {
                    counts[self.policy.rt_ids[&item.resource_type]].add(c, 1);
                }
            }
            owners.push(Arc::new(plan));
        }
        let mut orphans = Vec::new();
        for (rt, store) in self.targets.iter().enumerate() {
            for (idx, t) in store.iter() {
                if !claimed[rt][idx as usize] {
                    let prev = self.orphans.get(&(rt, t.id.clone()));
                    if let Some(item) =
                        orphan_item(&self.policy.rts[rt], t, prev, &self.syms, &self.refs)
                    {
                        if let Some(c) = item.counts() {
                            counts[rt].add(c, 1);
                        }
                        orphans.push(((rt, t.id.clone()), item));
                    }
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
    /// [`Planner::plan_incremental`] and review decisions).
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

    fn current_counts(&self) -> Vec<OrderCounts> {
        let mut counts = self.counts.clone();
        for (rt, c) in counts.iter_mut().enumerate() {
            c.existing_targets = self.targets[rt].len();
        }
        counts
    }

    fn counts_map(&self, counts: &[OrderCounts]) -> BTreeMap<ResourceTypeId, OrderCounts> {
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

    fn status_for(&self, counts: &[OrderCounts], options: PlanOptions) -> GenerationStatus {
        let mut breaches = Vec::new();
        for (rt, c) in counts.iter().enumerate() {
            let rtype = &self.policy.rts[rt];
            let t = &rtype.thresholds;
            for (change, count, absolute, percent) in [
                (
                    ChangeType::Added,
                    c.added,
                    t.maximum_insert,
                    t.maximum_insert_percent,
                ),
                (
                    ChangeType::Modified,
                    c.modified,
                    t.maximum_update,
                    t.maximum_update_percent,
                ),
                (
                    ChangeType::Deleted,
                    c.deleted,
                    t.maximum_delete,
                    t.maximum_delete_percent,
                ),
            ] {
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

    fn compute_owners<'a>(
        &self,
        ids: impl Iterator<Item = &'a OwnerId>,
        now: DateTime<Utc>,
    ) -> Vec<(OwnerId, OwnerOutcome)> {
        let slots: Vec<(&OwnerId, &OwnerSlot)> =
            ids.filter_map(|id| self.owners.get_key_value(id)).collect();
        let work = |(id, slot): &(&OwnerId, &OwnerSlot)| {
            let prev = self.fragments.get(*id).map(Arc::as_ref);
            ((*id).clone(), self.plan_owner(slot, prev, now))
        };
        // A handful of dirty owners is not worth a thread hop; a lookup change that dirties
        // everyone is.
        if slots.len() < 1024 {
            slots.iter().map(work).collect()
        } else {
            slots.par_iter().with_min_len(1024).map(work).collect()
        }
    }

    /// Plans every owner, in parallel; the outcomes are in owner order.
    fn compute_all(&self, now: DateTime<Utc>) -> Vec<OwnerOutcome> {
        let slots: Vec<(&OwnerId, &OwnerSlot)> = self.owners.iter().collect();
        slots
            .par_iter()
            .with_min_len(1024)
            .map(|(id, slot)| {
                let prev = if slot.has_fragment {
                    self.fragments.get(*id).map(Arc::as_ref)
                } else {
                    None
                };
                self.plan_owner(slot, prev, now)
            })
            .collect()
    }

    fn install_outcome(&mut self, id: OwnerId, outcome: OwnerOutcome) {
        let old_claims = self
            .owners
            .get_mut(&id)
            .map(|s| std::mem::replace(&mut s.claims, outcome.claims.clone()))
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
        self.install_fragment(id, outcome.plan);
    }

    fn install_fragment(&mut self, id: OwnerId, plan: Option<OwnerPlan>) {
        if let Some(old) = self.fragments.remove(&id) {
            for item in &old.items {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, -1);
                }
                if let Some(o) = &item.order {
                    self.order_index.remove(&o.order_id);
                }
            }
        }
        if let Some(plan) = plan {
            for (i, item) in plan.items.iter().enumerate() {
                let rt = self.policy.rt_ids[&item.resource_type];
                if let Some(c) = item.counts() {
                    self.counts[rt].add(c, 1);
                }
                if let Some(o) = &item.order {
                    self.order_index
                        .insert(o.order_id.clone(), OrderHome::Owner(id.clone(), i));
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
    fn recheck_orphan(&mut self, key: (usize, ResourceId)) -> Option<PlannedItem> {
        let (rt, id) = &key;
        let store = &self.targets[*rt];
        let item = store.find(id).and_then(|idx| {
            if store.claimed_by[idx as usize].is_some() {
                return None;
            }
            let t = store.get(idx)?;
            orphan_item(
                &self.policy.rts[*rt],
                t,
                self.orphans.get(&key),
                &self.syms,
                &self.refs,
            )
        });
        if let Some(old) = self.orphans.remove(&key) {
            if let Some(c) = old.counts() {
                self.counts[*rt].add(c, -1);
            }
            if let Some(o) = &old.order {
                self.order_index.remove(&o.order_id);
            }
        }
        if let Some(item) = &item {
            if let Some(c) = item.counts() {
                self.counts[*rt].add(c, 1);
            }
            if let Some(o) = &item.order {
                self.order_index
                    .insert(o.order_id.clone(), OrderHome::Orphan(*rt, id.clone()));
            }
            self.orphans.insert(key, item.clone());
        }
        item
    }

    /// Plans one owner: correlation, evaluation, comparison, gating, states. Pure.
    fn plan_owner(
        &self,
        slot: &OwnerSlot,
        prev: Option<&OwnerPlan>,
        now: DateTime<Utc>,
    ) -> OwnerOutcome {
        let owner = &slot.owner;
        let mut claims = Claims::default();
        let mut correlated: Vec<Option<TargetIdx>> = vec![None; self.policy.rts.len()];
        let mut failure: Option<EvaluationError> = None;
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
                    failure.get_or_insert(err);
                }
            }
        }
        let expectation = match failure {
            Some(e) => Err(e),
            None => self
                .policy
                .evaluate(owner, &slot.extras, &self.lookups, now, &correlated),
        };
        let plan = match expectation {
            Ok(exp) => self.compare(slot, &exp, &correlated, prev),
            Err(error) => Some(error_plan(owner, prev, error)),
        };
        OwnerOutcome { plan, claims }
    }

    #[allow(clippy::type_complexity)]
    fn correlate(
        &self,
        slot: &OwnerSlot,
        rt: usize,
    ) -> Result<Option<TargetIdx>, Box<(EvaluationError, Vec<TargetIdx>)>> {
        let owner = &slot.owner;
        let store = &self.targets[rt];
        if store.len() == 0 {
            return Ok(None);
        }
        for k in 0..self.keys[rt].len() {
            // Normalized once, when the owner was upserted.
            let Some(value) = slot.keys.get(rt).and_then(|v| v[k].as_deref()) else {
                continue;
            };
            let candidates = store.candidates(k, value);
            if let Some(others) = self.owner_keys[rt][k].get(value)
                && let Some(other) = others.iter().find(|o| **o != owner.id)
                && let Some(&first) = candidates.first()
            {
                return Err(Box::new((
                    EvaluationError::CorrelationConflict {
                        owner: owner.id.clone(),
                        resource_type: self.policy.rts[rt].id.clone(),
                        target: store
                            .get(first)
                            .map(|t| t.id.clone())
                            .unwrap_or_else(|| ResourceId::new("?")),
                        other_owner: other.clone(),
                    },
                    candidates.to_vec(),
                )));
            }
            match candidates {
                [] => continue,
                [one] => return Ok(Some(*one)),
                many => {
                    let mut targets: Vec<ResourceId> = many
                        .iter()
                        .filter_map(|i| store.get(*i).map(|t| t.id.clone()))
                        .collect();
                    targets.sort();
                    return Err(Box::new((
                        EvaluationError::AmbiguousCorrelation {
                            owner: owner.id.clone(),
                            resource_type: self.policy.rts[rt].id.clone(),
                            targets,
                        },
                        many.to_vec(),
                    )));
                }
            }
        }
        Ok(None)
    }

    fn compare(
        &self,
        slot: &OwnerSlot,
        exp: &OwnerExpectation,
        correlated: &[Option<TargetIdx>],
        prev: Option<&OwnerPlan>,
    ) -> Option<OwnerPlan> {
        let owner = &slot.owner;
        let mut items: Vec<PlannedItem> = Vec::new();
        // Orders of this plan per resource type, for DependsOn.
        let mut added_orders: FxHashMap<usize, Option<OrderId>> = FxHashMap::default();
        let mut deleted_at: FxHashMap<usize, usize> = FxHashMap::default();
        for &rt in &self.policy.dependency_order {
            let rtype = &self.policy.rts[rt];
            let expected = exp.rts.iter().find(|e| e.rt == rt);
            let target = correlated[rt].and_then(|i| self.targets[rt].get(i));
            let prev_item = prev.and_then(|p| p.items.iter().find(|i| i.resource_type == rtype.id));
            // The common case — the target already conforms and nothing was pending — costs no
            // allocation.
            let mut diff = match (expected, target) {
                (Some(e), Some(t)) if e.active() => {
                    let changes = self.diff(slot, e, t);
                    if changes.is_empty() && prev_item.is_none() {
                        continue;
                    }
                    Some(changes)
                }
                _ => None,
            };
            let mut item = PlannedItem {
                owner: Some(owner.id.clone()),
                resource_type: rtype.id.clone(),
                assigned_resource_type_id: Some(AssignmentId::new(format!(
                    "{}/{}",
                    owner.id, rtype.id
                ))),
                workflow_state: expected.map_or(WorkflowState::None, |e| e.workflow),
                provisioning_state: ProvisioningState::None,
                target: target.map(|t| t.id.clone()),
                order: None,
                waiting: None,
                error: None,
            };
            let review = rtype.require_provisioning_review;
            match (expected, target) {
                (Some(_), Some(t)) if diff.is_some() => {
                    let changes = diff.take().unwrap_or_default();
                    if changes.is_empty() {
                        if verified(&mut item, prev_item) {
                            continue;
                        }
                    } else {
                        let order =
                            self.order(owner, rtype, ChangeType::Modified, changes, Some(t));
                        transition_with_order(&mut item, prev_item, order, review);
                    }
                }
                (Some(e), None) if e.active() => {
                    let gate = if !rtype.allow_add {
                        Some(WaitReason::AllowAddDisabled)
                    } else if let Some(p) = rtype
                        .depends_on_owner_property
                        .as_ref()
                        .filter(|p| owner_property_empty(owner, p))
                    {
                        Some(WaitReason::OwnerPropertyEmpty {
                            property: p.clone(),
                        })
                    } else if let Some(dep) = &rtype.depends_on {
                        let d = self.policy.rt_ids[dep];
                        match (correlated[d], added_orders.get(&d)) {
                            (Some(_), _) | (None, Some(_)) => None,
                            (None, None) => Some(WaitReason::DependsOn {
                                resource_type: dep.clone(),
                            }),
                        }
                    } else {
                        None
                    };
                    if let Some(reason) = gate {
                        item.waiting = Some(reason);
                    } else {
                        let changes = self.initial_values(e);
                        let mut order = self.order(owner, rtype, ChangeType::Added, changes, None);
                        if let Some(dep) = &rtype.depends_on
                            && let Some(Some(dep_order)) =
                                added_orders.get(&self.policy.rt_ids[dep])
                        {
                            order.depends_on.push(dep_order.clone());
                        }
                        transition_with_order(&mut item, prev_item, order, review);
                        let live = item.order.is_some()
                            && item.waiting.is_none()
                            && item.provisioning_state != ProvisioningState::Inactive;
                        added_orders.insert(
                            rt,
                            live.then(|| item.order.as_ref().map(|o| o.order_id.clone()))
                                .flatten(),
                        );
                    }
                }
                (Some(e), target) if !e.active() => {
                    // Waiting for validation, or a kept Found/Historic account: nothing is
                    // created and nothing is removed.
                    if e.kept_account || (target.is_none() && e.workflow.is_reconciliation_only()) {
                        continue;
                    }
                    item.waiting = Some(WaitReason::AwaitingValidation);
                }
                (_, Some(t)) => {
                    if slot
                        .extras
                        .kept
                        .iter()
                        .any(|k| k.rt == rt && k.what == KeptTarget::Account)
                    {
                        continue;
                    }
                    if !rtype.allow_remove {
                        item.waiting = Some(WaitReason::AllowRemoveDisabled);
                    } else {
                        let order = self.order(
                            owner,
                            rtype,
                            ChangeType::Deleted,
                            Changes::default(),
                            Some(t),
                        );
                        transition_with_order(&mut item, prev_item, order, review);
                        deleted_at.insert(rt, items.len());
                    }
                }
                _ => continue,
            }
            items.push(item);
        }
        // A target that others depend on is deleted after them (a mailbox before its account).
        for (&rt, &pos) in &deleted_at {
            let dependents: Vec<OrderId> = deleted_at
                .iter()
                .filter(|(d, _)| {
                    self.policy.rts[**d].depends_on.as_ref() == Some(&self.policy.rts[rt].id)
                })
                .filter_map(|(_, p)| items[*p].order.as_ref().map(|o| o.order_id.clone()))
                .collect();
            if let Some(order) = items[pos].order.as_mut() {
                order.depends_on.extend(dependents);
                order.depends_on.sort();
            }
        }
        if items.is_empty() {
            return None;
        }
        Some(OwnerPlan {
            owner: owner.id.clone(),
            items,
            error: None,
        })
    }

    /// The Added order's changes: every expected value, memberships as `<nav>_add`.
    fn initial_values(&self, e: &RtExpectation) -> Changes {
        let mut changes = Changes::default();
        for (sym, v) in &e.scalars {
            changes.properties.insert(
                self.syms.name(*sym).to_owned(),
                PropertyChange::Set(v.as_ref().clone()),
            );
        }
        for (sym, r) in &e.mono {
            changes.properties.insert(
                self.syms.name(*sym).to_owned(),
                PropertyChange::SetReference(self.refs.get(*r).clone()),
            );
        }
        for (sym, list) in &e.multi {
            if !list.is_empty() {
                changes.navigations.insert(
                    self.syms.name(*sym).to_owned(),
                    NavigationChange {
                        add: list.iter().map(|r| self.refs.get(*r).clone()).collect(),
                        remove: BTreeSet::new(),
                    },
                );
            }
        }
        changes
    }

    /// The Modified order's changes: only what differs; memberships as deltas.
    fn diff(&self, slot: &OwnerSlot, e: &RtExpectation, t: &Target) -> Changes {
        let rt = e.rt;
        let policy = &self.policy.per_rt[rt];
        let kept = &slot.extras.kept;
        let scalar_kept = |sym| {
            kept.iter()
                .any(|k| k.rt == rt && k.what == KeptTarget::Scalar(sym))
        };
        let mut changes = Changes::default();
        let mut exp_scalars = e.scalars.iter().peekable();
        for &(sym, comparison, mapped) in &policy.scalars {
            while exp_scalars.peek().is_some_and(|(s, _)| *s < sym) {
                exp_scalars.next();
            }
            let expected = exp_scalars
                .peek()
                .filter(|(s, _)| *s == sym)
                .map(|(_, v)| v);
            if !mapped || expected.is_some_and(|v| v.is_secret()) || scalar_kept(sym) {
                continue;
            }
            let actual = t.scalar(sym);
            let change = match (expected, actual) {
                (Some(x), Some(a)) if comparison.scalar_equals(x, a) => None,
                (Some(x), _) => Some(PropertyChange::Set(x.as_ref().clone())),
                (None, Some(_)) => Some(PropertyChange::Clear),
                (None, None) => None,
            };
            if let Some(c) = change {
                changes.properties.insert(self.syms.name(sym).to_owned(), c);
            }
        }
        for &sym in &policy.mono {
            if kept
                .iter()
                .any(|k| k.rt == rt && matches!(k.what, KeptTarget::Navigation(s, _) if s == sym))
            {
                continue;
            }
            let expected = e.mono.iter().find(|(s, _)| *s == sym).map(|(_, r)| *r);
            let actual = t.reference(sym);
            let change = match (expected, actual) {
                (Some(x), Some(a)) if x == a => None,
                (Some(x), _) => Some(PropertyChange::SetReference(self.refs.get(x).clone())),
                (None, Some(_)) => Some(PropertyChange::Clear),
                (None, None) => None,
            };
            if let Some(c) = change {
                changes.properties.insert(self.syms.name(sym).to_owned(), c);
            }
        }
        for &sym in &policy.multi {
            let expected: &[RefId] = e
                .multi
                .iter()
                .find(|(s, _)| *s == sym)
                .map_or(&[], |(_, l)| l.as_slice());
            let actual = t.references(sym);
            if expected == actual {
                continue;
            }
            let add = sorted_difference(expected, actual);
            let mut remove = sorted_difference(actual, expected);
            remove.retain(|r| {
                !kept.iter().any(|k| {
                    k.rt == rt
                        && matches!(k.what, KeptTarget::Navigation(s, kr) if s == sym && kr == *r)
                })
            });
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            changes.navigations.insert(
                self.syms.name(sym).to_owned(),
                NavigationChange {
                    add: add.iter().map(|r| self.refs.get(*r).clone()).collect(),
                    remove: remove.iter().map(|r| self.refs.get(*r).clone()).collect(),
                },
            );
        }
        changes
    }

    fn order(
        &self,
        owner: &Owner,
        rtype: &ResourceType,
        change_type: ChangeType,
        changes: Changes,
        target: Option<&Target>,
    ) -> ProvisioningOrder {
        let target_id = target.map(|t| t.id.as_str()).unwrap_or("");
        let digest = fnv1a(
            serde_json::to_vec(&changes)
                .unwrap_or_default()
                .iter()
                .chain(target_id.as_bytes()),
        );
        ProvisioningOrder {
            order_id: OrderId::new(format!(
                "{}/{}/{change_type}/{digest:016x}",
                owner.id, rtype.id
            )),
            assigned_resource_type_id: Some(AssignmentId::new(format!(
                "{}/{}",
                owner.id, rtype.id
            ))),
            change_type,
            workflow_instance_id: None,
            owner: Some(owner.clone()),
            resource_type: ResourceTypeRef::of(rtype),
            connection: Some(rtype.connection.clone()),
            changes,
            resource: target.map(|t| t.to_resource(&self.syms, &self.refs)),
            depends_on: Vec::new(),
            not_before: None,
        }
    }

    /// Evaluates the role model for one owner and returns its expected assignments with their
    /// states (from the installed plan, or Verified when the target already conforms).
    pub fn expected_assignments(
        &self,
        owner: &OwnerId,
        now: DateTime<Utc>,
    ) -> Result<ExpectedAssignments, PlanError> {
        let slot = self
            .owners
            .get(owner)
            .ok_or_else(|| PlanError::UnknownOwner {
                owner: owner.clone(),
            })?;
        let exp = self
            .policy
            .evaluate(&slot.owner, &slot.extras, &self.lookups, now, &[])?;
        let fragment = self.fragments.get(owner);
        let mut out = ExpectedAssignments {
            owner: owner.clone(),
            roles: exp.roles.clone(),
            resource_types: Vec::new(),
            scalars: Vec::new(),
            navigations: Vec::new(),
            suggested: exp
                .suggested
                .iter()
                .map(|rt| self.policy.rts[*rt].id.clone())
                .collect(),
        };
        for e in &exp.rts {
            let rtype = &self.policy.rts[e.rt];
            let art = AssignmentId::new(format!("{}/{}", owner, rtype.id));
            let item = fragment.and_then(|f| f.items.iter().find(|i| i.resource_type == rtype.id));
            let target = self
                .correlate(slot, e.rt)
                .ok()
                .flatten()
                .and_then(|i| self.targets[e.rt].get(i));
            let conforming = if target.is_some() {
                ProvisioningState::Verified
            } else {
                ProvisioningState::None
            };
            let rt_state = item.map_or(conforming, |i| i.provisioning_state);
            let changes = item.and_then(|i| i.order.as_ref()).map(|o| &o.changes);
            let status = |workflow: WorkflowState, touched: bool| AssignmentStatus {
                period: e.window,
                workflow_state: workflow,
                provisioning_state: if touched || item.is_some() && target.is_none() {
                    rt_state
                } else {
                    conforming
                },
            };
            out.resource_types.push(AssignedResourceType {
                id: art.clone(),
                owner: owner.clone(),
                resource_type: rtype.id.clone(),
                status: status(e.workflow, true),
            });
            for (sym, value) in &e.scalars {
                let name = self.syms.name(*sym);
                let touched = changes.is_some_and(|c| c.properties.contains_key(name));
                out.scalars.push(AssignedResourceScalar {
                    id: AssignmentId::new(format!("{art}/{name}")),
                    assigned_resource_type: art.clone(),
                    property: name.to_owned(),
                    value: value.as_ref().clone(),
                    status: status(e.workflow, touched),
                });
            }
            let refs = e.mono.iter().map(|(s, r)| (*s, *r)).chain(
                e.multi
                    .iter()
                    .flat_map(|(s, l)| l.iter().map(move |r| (*s, *r))),
            );
            for (sym, r) in refs {
                let name = self.syms.name(sym);
                let reference = self.refs.get(r);
                let touched = changes.is_some_and(|c| {
                    c.properties.contains_key(name)
                        || c.navigations
                            .get(name)
                            .is_some_and(|n| n.add.contains(reference))
                });
                // A membership an approved request added keeps its own origin.
                let manual =
                    slot.extras.requests.iter().any(|q| {
                        q.add && q.rt == e.rt && q.what == RequestTarget::Navigation(sym, r)
                    });
                let workflow = if manual {
                    WorkflowState::Approved
                } else {
                    e.workflow
                };
                out.navigations.push(AssignedResourceNavigation {
                    id: AssignmentId::new(format!("{art}/{name}/{reference}")),
                    assigned_resource_type: art.clone(),
                    property: name.to_owned(),
                    value: reference.clone(),
                    status: status(workflow, touched),
                });
            }
        }
        for k in &slot.extras.kept {
            let rtype = &self.policy.rts[k.rt];
            let art = AssignmentId::new(format!("{}/{}", owner, rtype.id));
            let status = AssignmentStatus {
                period: Period::ALWAYS,
                workflow_state: k.workflow,
                provisioning_state: ProvisioningState::Verified,
            };
            match &k.what {
                KeptTarget::Account => {}
                KeptTarget::Scalar(sym) => {
                    let name = self.syms.name(*sym);
                    let value = self
                        .correlate(slot, k.rt)
                        .ok()
                        .flatten()
                        .and_then(|i| self.targets[k.rt].get(i))
                        .and_then(|t| t.scalar(*sym).cloned());
                    if let Some(value) = value {
                        out.scalars.push(AssignedResourceScalar {
                            id: AssignmentId::new(format!("{art}/{name}")),
                            assigned_resource_type: art,
                            property: name.to_owned(),
                            value,
                            status,
                        });
                    }
                }
                KeptTarget::Navigation(sym, r) => {
                    let name = self.syms.name(*sym);
                    let reference = self.refs.get(*r);
                    out.navigations.push(AssignedResourceNavigation {
                        id: AssignmentId::new(format!("{art}/{name}/{reference}")),
                        assigned_resource_type: art,
                        property: name.to_owned(),
                        value: reference.clone(),
                        status,
                    });
                }
            }
        }
        Ok(out)
    }

    // -- review and events --------------------------------------------------------------------

    /// Items waiting in provisioning review, in plan order.
    pub fn pending_reviews(&self) -> Vec<&PlannedItem> {
        self.fragments
            .values()
            .flat_map(|f| f.items.iter())
            .chain(self.orphans.values())
            .filter(|i| i.provisioning_state == ProvisioningState::AwaitingApproval)
            .collect()
    }

    /// Review approves an order: AwaitingApproval ⇒ Pending (released).
    pub fn approve(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewApproved,
            ConnectionMode::Automated,
        )
    }

    /// Review declines an order: it is cancelled (Inactive) and not generated again while the
    /// same change is computed.
    pub fn decline(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewDeclined,
            ConnectionMode::Automated,
        )
    }

    /// Review postpones its decision: the item stays AwaitingApproval.
    pub fn postpone(&mut self, order: &OrderId) -> Result<ProvisioningState, PlanError> {
        self.apply_event(
            order,
            ProvisioningEvent::ReviewPostponed,
            ConnectionMode::Automated,
        )
    }

    /// Moves the item holding `order` through the state machine (review decisions, and the
    /// dispatcher's results). An illegal transition changes nothing and is reported.
    pub fn apply_event(
        &mut self,
        order: &OrderId,
        event: ProvisioningEvent,
        mode: ConnectionMode,
    ) -> Result<ProvisioningState, PlanError> {
        let home = self
            .order_index
            .get(order)
            .cloned()
            .ok_or_else(|| PlanError::UnknownOrder {
                order_id: order.clone(),
            })?;
        let (item, rt) = match &home {
            OrderHome::Owner(owner, i) => {
                let item = self
                    .fragments
                    .get_mut(owner)
                    .and_then(|f| Arc::make_mut(f).items.get_mut(*i))
                    .ok_or_else(|| PlanError::UnknownOrder {
                        order_id: order.clone(),
                    })?;
                let rt = self.policy.rt_ids[&item.resource_type];
                (item, rt)
            }
            OrderHome::Orphan(rt, id) => (
                self.orphans.get_mut(&(*rt, id.clone())).ok_or_else(|| {
                    PlanError::UnknownOrder {
                        order_id: order.clone(),
                    }
                })?,
                *rt,
            ),
        };
        let before = item.counts();
        let next = item
            .provisioning_state
            .apply(event, mode)
            .map_err(|source| PlanError::IllegalTransition {
                order_id: order.clone(),
                owner: item
                    .owner
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                resource_type: item.resource_type.clone(),
                source,
            })?;
        item.provisioning_state = next;
        if event == ProvisioningEvent::ReviewDeclined {
            item.waiting = Some(WaitReason::DeclinedInReview);
        }
        let after = item.counts();
        if let Some(c) = before {
            self.counts[rt].add(c, -1);
        }
        if let Some(c) = after {
            self.counts[rt].add(c, 1);
        }
        Ok(next)
    }
}

/// The item is equal to what is expected: Verified through the state machine. Returns true
/// when nothing needs to be kept for it.
fn verified(item: &mut PlannedItem, prev: Option<&PlannedItem>) -> bool {
    let from = prev.map_or(ProvisioningState::None, |p| p.provisioning_state);
    let event = match from {
        ProvisioningState::Executed | ProvisioningState::Transmitted => {
            ProvisioningEvent::SynchronizationMatched
        }
        _ => ProvisioningEvent::FoundEqualAtEvaluation,
    };
    item.provisioning_state = from.apply(event, ConnectionMode::Automated).unwrap_or(from);
    item.provisioning_state == ProvisioningState::Verified
}

/// Gives the item its order and the state the state machine says: an order already known (same
/// id) keeps its state (review decision, in flight, errored); a new one opens from None.
fn transition_with_order(
    item: &mut PlannedItem,
    prev: Option<&PlannedItem>,
    order: ProvisioningOrder,
    review_required: bool,
) {
    let same = prev.filter(|p| p.order.as_ref().map(|o| &o.order_id) == Some(&order.order_id));
    let event = ProvisioningEvent::DifferenceFound { review_required };
    match same {
        Some(p) if p.waiting == Some(WaitReason::DeclinedInReview) => {
            item.provisioning_state = p.provisioning_state;
            item.waiting = Some(WaitReason::DeclinedInReview);
        }
        Some(p) => {
            item.provisioning_state = match p.provisioning_state {
                s @ (ProvisioningState::Error
                | ProvisioningState::Inactive
                | ProvisioningState::None
                | ProvisioningState::Verified) => {
                    s.apply(event, ConnectionMode::Automated).unwrap_or(s)
                }
                // Pending, AwaitingApproval, Transmitted, Executed, Errored: nothing new
                // happened to this order.
                s => s,
            };
        }
        None => {
            item.provisioning_state = ProvisioningState::None
                .apply(event, ConnectionMode::Automated)
                .unwrap_or(ProvisioningState::Pending);
        }
    }
    item.order = Some(order);
}

fn error_plan(owner: &Owner, prev: Option<&OwnerPlan>, error: EvaluationError) -> OwnerPlan {
    let reason = error.to_string();
    let mut items: Vec<PlannedItem> = prev
        .map(|p| p.items.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|mut i| {
            i.provisioning_state = i
                .provisioning_state
                .apply(
                    ProvisioningEvent::EvaluationFailed,
                    ConnectionMode::Automated,
                )
                .unwrap_or(i.provisioning_state);
            if i.provisioning_state == ProvisioningState::Error {
                i.order = None;
                i.waiting = None;
            }
            i.error = Some(reason.clone());
            i
        })
        .collect();
    let resource_type = match &error {
        EvaluationError::RuleFailed { resource_type, .. }
        | EvaluationError::QueryNoMatch { resource_type, .. }
        | EvaluationError::QueryAmbiguous { resource_type, .. }
        | EvaluationError::AmbiguousCorrelation { resource_type, .. }
        | EvaluationError::CorrelationConflict { resource_type, .. } => Some(resource_type.clone()),
        _ => None,
    };
    if let Some(rt) = resource_type
        && !items.iter().any(|i| i.resource_type == rt)
    {
        items.push(PlannedItem {
            owner: Some(owner.id.clone()),
            resource_type: rt.clone(),
            assigned_resource_type_id: Some(AssignmentId::new(format!("{}/{}", owner.id, rt))),
            workflow_state: WorkflowState::None,
            provisioning_state: ProvisioningState::None
                .apply(
                    ProvisioningEvent::EvaluationFailed,
                    ConnectionMode::Automated,
                )
                .unwrap_or(ProvisioningState::Error),
            target: None,
            order: None,
            waiting: None,
            error: Some(reason),
        });
    }
    OwnerPlan {
        owner: owner.id.clone(),
        items,
        error: Some(error),
    }
}

fn owner_property_empty(owner: &Owner, property: &str) -> bool {
    match owner.get(property) {
        None => true,
        Some(PropertyValue::Scalar(ScalarValue::String(s))) => s.trim().is_empty(),
        Some(PropertyValue::References(r)) => r.is_empty(),
        Some(PropertyValue::Reference(r)) => r.is_empty(),
        Some(_) => false,
    }
}

/// 64-bit FNV-1a: a stable digest for order ids (the standard library's hasher is seeded).
fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The item of a target without owner: a Deleted order when `RemoveOrphans` allows it, else
/// a report that waits for an operator.
fn orphan_item(
    rtype: &ResourceType,
    t: &Target,
    prev: Option<&PlannedItem>,
    syms: &Symbols,
    refs: &References,
) -> Option<PlannedItem> {
    let mut item = PlannedItem {
        owner: None,
        resource_type: rtype.id.clone(),
        assigned_resource_type_id: None,
        workflow_state: WorkflowState::None,
        provisioning_state: ProvisioningState::None,
        target: Some(t.id.clone()),
        order: None,
        waiting: None,
        error: None,
    };
    if !(rtype.remove_orphans && rtype.allow_remove) {
        item.waiting = Some(WaitReason::OrphanKept);
        return Some(item);
    }
    let order = ProvisioningOrder {
        order_id: OrderId::new(format!("~orphan/{}/{}/Deleted", rtype.id, t.id)),
        assigned_resource_type_id: None,
        change_type: ChangeType::Deleted,
        workflow_instance_id: None,
        owner: None,
        resource_type: ResourceTypeRef::of(rtype),
        connection: Some(rtype.connection.clone()),
        changes: Changes::default(),
        resource: Some(t.to_resource(syms, refs)),
        depends_on: Vec::new(),
        not_before: None,
    };
    transition_with_order(&mut item, prev, order, rtype.require_provisioning_review);
    Some(item)
}

/// The key a query rule files a lookup resource under: its `target_property` (or its id for
/// `Id`) through the rule's comparison.
fn lookup_key(rule: &crate::policy::QueryRule, r: &Resource) -> Option<String> {
    let value = if rule.target_property == "Id" {
        Some(ScalarValue::String(r.id.to_string()))
    } else {
        r.get(&rule.target_property)
            .and_then(PropertyValue::as_scalar)
            .cloned()
    };
    value.and_then(|v| rule.comparison.key_of(&v).map(Cow::into_owned))
}

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::demo;
    use proptest::prelude::*;

    fn ou(id: &str, name: &str) -> Resource {
        Resource::new(id)
            .with_entity_type("organizationalUnit")
            .with("ou", name)
    }

    fn planner(people: usize) -> Planner {
        let now = chrono::Utc::now();
        let mut p = Planner::new(demo::planner_config()).unwrap();
        for o in demo::people(people, now) {
            p.upsert_owner(o);
        }
        p
    }

    fn clean(p: &mut Planner) {
        let _ = p.plan_incremental(chrono::Utc::now(), PlanOptions::default());
        assert_eq!(p.dirty_count(), 0);
    }

    #[test]
    fn an_unchanged_or_irrelevantly_changed_lookup_marks_nobody_dirty() {
        let mut p = planner(10);
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales"));
        assert_eq!(p.dirty_count(), 10, "a new OU may change anyone's query");
        clean(&mut p);
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales"));
        assert_eq!(p.dirty_count(), 0, "the same OU again changes nothing");
        p.upsert_lookup(
            "organizationalUnit",
            ou("OU=Sales,DC=x", "Sales").with("description", "new text"),
        );
        assert_eq!(
            p.dirty_count(),
            0,
            "a value no query rule reads changes nothing"
        );
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales-EU"));
        assert_eq!(
            p.dirty_count(),
            10,
            "a renamed OU may change anyone's query"
        );
        clean(&mut p);
        p.remove_lookup(&"group".into(), &"CN=nothing".into());
        assert_eq!(
            p.dirty_count(),
            0,
            "removing what no rule searches changes nothing"
        );
        p.remove_lookup(&"organizationalUnit".into(), &"OU=Sales,DC=x".into());
        assert_eq!(p.dirty_count(), 10);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Upsert(u8, u8),
        Remove(u8),
    }

    proptest! {
        /// Whatever the sequence, the incremental index equals a rebuild from scratch.
        #[test]
        fn the_incremental_lookup_index_equals_a_rebuild(
            ops in proptest::collection::vec(
                prop_oneof![
                    (0u8..12, 0u8..5).prop_map(|(i, n)| Op::Upsert(i, n)),
                    (0u8..12).prop_map(Op::Remove),
                ],
                1..50,
            )
        ) {
            let names = ["Sales", "IT", "sales", "Admins", "HR"];
            let mut p = planner(0);
            for op in ops {
                match op {
                    Op::Upsert(i, n) => p.upsert_lookup(
                        "organizationalUnit",
                        ou(&format!("OU=o{i},DC=x"), names[n as usize]),
                    ),
                    Op::Remove(i) => p.remove_lookup(
                        &"organizationalUnit".into(),
                        &format!("OU=o{i},DC=x").as_str().into(),
                    ),
                }
                let expected = p.rebuilt_lookups();
                prop_assert_eq!(&p.lookups.per_rule, &expected);
            }
        }
    }
}
