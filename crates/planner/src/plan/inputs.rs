//! Loading the planner's inputs: owners (identities) and the actual targets exported from the
//! managed systems. Every change marks the owners it may concern dirty.

use super::{Claims, OwnerSlot, Planner};
use crate::error::PlanError;
use crate::owners::CompactOwner;
use crate::targets::Target;
use autoprov_core::{Owner, OwnerId, Resource, ResourceId, ResourceTypeId};

impl Planner {
    /// Adds or replaces an owner and marks it dirty.
    pub fn upsert_owner(&mut self, owner: Owner) {
        let new_keys = self.owner_key_values(&owner);
        let new_query = self.query_keys(&owner);
        let id = owner.id.clone();
        let compact = CompactOwner::new(owner, &mut self.syms, &mut self.pool);
        self.install_owner(id, compact, new_keys, new_query);
    }

    /// [`Planner::upsert_owner`] from a borrowed owner: only what the planner keeps is copied.
    /// A caller that streams many owners (a load from a store or an export) can fill one
    /// `Owner` in place, owner after owner, and hand each over by reference: neither side
    /// then allocates or frees the property map and its strings per owner.
    pub fn upsert_owner_ref(&mut self, owner: &Owner) {
        let new_keys = self.owner_key_values(owner);
        let new_query = self.query_keys(owner);
        let compact = CompactOwner::new_ref(owner, &mut self.syms, &mut self.pool);
        self.install_owner(owner.id.clone(), compact, new_keys, new_query);
    }

    fn install_owner(
        &mut self,
        id: OwnerId,
        compact: CompactOwner,
        new_keys: super::correlate::OwnerKeys,
        new_query: Vec<Option<String>>,
    ) {
        if let Some(slot) = self.owners.get_mut(&id) {
            let old = std::mem::replace(&mut slot.owner, compact);
            let old_keys = std::mem::replace(&mut slot.keys, new_keys.clone());
            if old_keys != new_keys {
                self.index_owner_keys(&id, &old_keys, false);
                self.index_owner_keys(&id, &new_keys, true);
            }
            // The old owner rebuilt in the planner's scratch owner (no allocation when its
            // properties have the same names as the last one's).
            old.fill(&id, &self.syms, &mut self.scratch);
            let old_query = self.query_keys(&self.scratch.owner);
            if old_query != new_query {
                self.file_query_keys(&id, &old_query, false);
                self.file_query_keys(&id, &new_query, true);
            }
            drop(old);
            self.pool.sweep_if_grown();
        } else {
            self.file_query_keys(&id, &new_query, true);
            self.index_owner_keys(&id, &new_keys, true);
            self.owners.insert(
                id.clone(),
                Box::new(OwnerSlot {
                    id: id.clone(),
                    owner: compact,
                    rare: None,
                    established: Default::default(),
                    owned_changed: false,
                    claims: Claims::default(),
                    keys: new_keys,
                    has_fragment: false,
                }),
            );
        }
        if !self.fresh {
            self.dirty.insert(id);
        }
    }

    /// Removes an owner (it left the source). Its targets become orphans at the next planning
    /// and are deleted only where `RemoveOrphans` is set.
    pub fn remove_owner(&mut self, id: &OwnerId) -> Option<Owner> {
        let slot = self.owners.remove(id)?;
        let owner = slot.owner.to_owner(&slot.id, &self.syms);
        self.index_owner_keys(id, &slot.keys, false);
        let query = self.query_keys(&owner);
        self.file_query_keys(id, &query, false);
        for (rt, idx) in slot.claims.iter() {
            self.release_claim(rt, idx, id);
        }
        self.install_fragment(id.clone(), None);
        self.dirty.remove(id);
        if !slot.established.is_empty() {
            self.owned_changed.insert(id.clone());
        }
        drop(slot);
        self.pool.sweep_if_grown();
        Some(owner)
    }

    /// Adds or replaces an actual target of a resource type (what a synchronization saw) and
    /// marks the owners it concerns dirty.
    pub fn upsert_target(
        &mut self,
        resource_type: &ResourceTypeId,
        resource: &Resource,
    ) -> Result<(), PlanError> {
        let rt = self.rt_index(resource_type)?;
        let target = Target::compact(resource, &mut self.syms, &mut self.refs, &mut self.pool);
        self.insert_target(rt, target);
        self.pool.sweep_if_grown();
        Ok(())
    }

    /// Makes room for `owners` more owners and, per resource type, `targets` more targets,
    /// ahead of a load whose size the caller knows (a store's counts, an export's estimate):
    /// the planner's indexes are then sized once instead of growing step by step, each step
    /// rehashing every entry so far. Only a hint: a load of another size is still correct.
    ///
    /// The correlation key indexes are sized for one value per owner and per target, which is
    /// what a correlation key (an identifier) holds; an index of fewer values keeps the room
    /// until the planner is dropped. The synthetic organization's load reserves: the planner's
    /// share of a load of 300,000 identities fell from 1.67 to 1.52 s (median of five
    /// interleaved pairs), of a million from 5.8 to 5.2 s.
    pub fn reserve(&mut self, owners: usize, targets: usize) {
        for per_key in &mut self.owner_keys {
            for map in per_key {
                map.reserve(owners);
            }
        }
        // Until the first plan every owner is dirty without being filed in `dirty`.
        if !self.fresh {
            self.dirty.reserve(owners);
        }
        for store in &mut self.targets {
            store.reserve(targets);
        }
    }

    /// Adds or replaces many owners, as [`Planner::upsert_owner`] does one by one.
    pub fn upsert_owners(&mut self, owners: impl IntoIterator<Item = Owner>) {
        for owner in owners {
            self.upsert_owner(owner);
        }
    }

    /// Adds or replaces many actual targets of one resource type (a bulk load after an
    /// export), as [`Planner::upsert_target`] does one by one, taking them by value: their
    /// values are moved into the planner's compact form instead of copied. Returns how many
    /// were loaded. An unknown resource type is an error and loads nothing.
    pub fn upsert_targets(
        &mut self,
        resource_type: &ResourceTypeId,
        resources: impl IntoIterator<Item = Resource>,
    ) -> Result<usize, PlanError> {
        let rt = self.rt_index(resource_type)?;
        let mut loaded = 0;
        for resource in resources {
            let target =
                Target::compact_owned(resource, &mut self.syms, &mut self.refs, &mut self.pool);
            self.insert_target(rt, target);
            loaded += 1;
        }
        self.pool.sweep_if_grown();
        Ok(loaded)
    }

    fn insert_target(&mut self, rt: usize, target: Target) {
        let keys = &self.keys[rt];
        let new_keys = Self::target_key_values(keys, &target);
        // Until the first plan everything is dirty: only the target store is filed.
        if !self.fresh {
            self.mark_target_owners_dirty(rt, &new_keys);
        }
        let keys = &self.keys[rt];
        let (idx, old) =
            self.targets[rt].upsert(target, new_keys, |old| Self::target_key_values(keys, old));
        if self.fresh {
            return;
        }
        if let Some(old) = old {
            let old_keys = Self::target_key_values(&self.keys[rt], &old);
            self.mark_target_owners_dirty(rt, &old_keys);
        }
        if let Some(owner) = self.targets[rt].claimed_by[idx as usize].clone() {
            self.dirty.insert(owner);
        }
        if let Some(t) = self.targets[rt].get(idx) {
            self.dirty_targets.insert((rt, t.id.clone()));
        }
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
        drop(old);
        self.pool.sweep_if_grown();
        Ok(true)
    }
}
