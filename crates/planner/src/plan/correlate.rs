//! Correlation (SPEC §5): owners are matched with existing targets through
//! [`CorrelationKey`]s; a target no owner claims is an orphan.

use super::{OwnerSlot, Planner};
use crate::compare::ComparisonType;
use crate::error::EvaluationError;
use crate::few::Few;
use crate::targets::{Target, TargetIdx};
use autoprov_core::{Owner, OwnerId, PropertyValue, ResourceId};
use smol_str::SmolStr;

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

/// An owner's normalized correlation key values, for every resource type and key in turn
/// (the planner's `keys` order), in one block: a million owners of one key would otherwise
/// hold a vector of vectors each (three heap blocks instead of one, and three dereferences per
/// correlation). A value of up to 23 bytes is held inline (`SmolStr`), without a block of its
/// own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct OwnerKeys(Box<[Option<SmolStr>]>);

impl Planner {
    pub(super) fn owner_key_values(&self, owner: &Owner) -> OwnerKeys {
        // Exactly as many as there are keys: the block is never grown nor shrunk.
        let mut values = Vec::with_capacity(self.keys.iter().map(Vec::len).sum());
        values.extend(self.keys.iter().flatten().map(
            |(k, _)| match owner.get(&k.owner_property) {
                Some(PropertyValue::Scalar(s)) => k.comparison.key_of_smol(s),
                _ => None,
            },
        ));
        OwnerKeys(values.into_boxed_slice())
    }

    /// The value of key `k` of resource type `rt` in `keys`.
    pub(super) fn owner_key<'k>(
        &self,
        keys: &'k OwnerKeys,
        rt: usize,
        k: usize,
    ) -> Option<&'k str> {
        keys.0.get(self.key_offsets[rt] + k)?.as_deref()
    }

    /// The target's normalized values of `keys` (inline when short: no allocation for most
    /// targets, which a load of a million makes one after the other).
    pub(super) fn target_key_values(
        keys: &[(CorrelationKey, u32)],
        target: &Target,
    ) -> Vec<Option<SmolStr>> {
        keys.iter()
            .map(|(k, sym)| Self::target_key_value(k, *sym, target))
            .collect()
    }

    /// The target's normalized value of key `k` (its property `sym`; `Id` is the target's id),
    /// as the key index files it.
    fn target_key_value(k: &CorrelationKey, sym: u32, target: &Target) -> Option<SmolStr> {
        if k.target_property == "Id" {
            return Some(k.comparison.key_smol(target.id.as_str()));
        }
        target.scalar(sym).and_then(|s| s.key_smol(k.comparison))
    }

    /// Marks the owners sharing a key value dirty (their correlation conflicts may change).
    pub(super) fn index_owner_keys(&mut self, id: &OwnerId, values: &OwnerKeys, insert: bool) {
        for rt in 0..self.keys.len() {
            for k in 0..self.keys[rt].len() {
                let Some(v) = self.owner_key(values, rt, k) else {
                    continue;
                };
                let map = &mut self.owner_keys[rt][k];
                let shared = &mut self.shared_owner_keys[rt][k];
                if insert {
                    if let Some(list) = map.get_mut(v) {
                        let before = list.as_slice().len();
                        list.push_unique(id.clone());
                        if before == 1 && list.as_slice().len() == 2 {
                            *shared += 1;
                        }
                        if list.as_slice().len() > 1 {
                            self.dirty.extend(list.as_slice().iter().cloned());
                        }
                    } else {
                        map.insert(v.into(), Few::One(id.clone()));
                    }
                } else if let Some(list) = map.get_mut(v) {
                    let before = list.as_slice().len();
                    if list.remove(id) {
                        map.remove(v);
                    } else {
                        if before == 2 && list.as_slice().len() == 1 {
                            *shared -= 1;
                        }
                        self.dirty.extend(list.as_slice().iter().cloned());
                    }
                }
            }
        }
    }

    pub(super) fn release_claim(&mut self, rt: usize, idx: TargetIdx, owner: &OwnerId) {
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

    #[allow(clippy::type_complexity)]
    pub(super) fn correlate(
        &self,
        slot: &OwnerSlot,
        rt: usize,
    ) -> Result<Option<TargetIdx>, Box<(EvaluationError, Vec<TargetIdx>)>> {
        let store = &self.targets[rt];
        if store.len() == 0 {
            return Ok(None);
        }
        if let Some(idx) = self.confirmed_claim(slot, rt) {
            debug_assert_eq!(
                self.correlate_by_lookup(slot, rt).ok(),
                Some(Some(idx)),
                "a confirmed claim is what the lookup finds"
            );
            return Ok(Some(idx));
        }
        self.correlate_by_lookup(slot, rt)
    }

    /// The owner's last correlated target of `rt`, when the target itself shows that a lookup
    /// would find it again, and it alone: it holds the owner's value of the first key (the
    /// first key that finds a target decides), no other target holds that value, and no other
    /// owner can hold it either (no value of the first key is held by two owners). A re-plan
    /// then reads the target it compares anyway instead of probing the key index.
    fn confirmed_claim(&self, slot: &OwnerSlot, rt: usize) -> Option<TargetIdx> {
        let (key, sym) = self.keys[rt].first()?;
        if self.shared_owner_keys[rt].first() != Some(&0) {
            return None;
        }
        let value = self.owner_key(&slot.keys, rt, 0)?;
        let (_, idx) = slot.claims.iter().find(|(r, _)| *r == rt)?;
        let store = &self.targets[rt];
        if !store.alone_on_first_key(idx) {
            return None;
        }
        let found = Self::target_key_value(key, *sym, store.get(idx)?)?;
        (found == value).then_some(idx)
    }

    #[allow(clippy::type_complexity)]
    fn correlate_by_lookup(
        &self,
        slot: &OwnerSlot,
        rt: usize,
    ) -> Result<Option<TargetIdx>, Box<(EvaluationError, Vec<TargetIdx>)>> {
        let store = &self.targets[rt];
        for k in 0..self.keys[rt].len() {
            // Normalized once, when the owner was upserted.
            let Some(value) = self.owner_key(&slot.keys, rt, k) else {
                continue;
            };
            let candidates = store.candidates(k, value);
            // Another owner holding the same value is a conflict; while no value of this key
            // is held by two owners, there is none to look for.
            if self.shared_owner_keys[rt][k] > 0
                && let Some(others) = self.owner_keys[rt][k].get(value)
                && let Some(other) = others.as_slice().iter().find(|o| **o != slot.id)
                && let Some(&first) = candidates.first()
            {
                return Err(Box::new((
                    EvaluationError::CorrelationConflict {
                        owner: slot.id.clone(),
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
                            owner: slot.id.clone(),
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
}
