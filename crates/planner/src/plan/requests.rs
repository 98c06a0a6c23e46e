//! Assignment requests (SPEC §2: manual assignments, approved or declined) and kept values
//! (Found / Historic, SPEC §3: never overwritten automatically).

use super::{OwnerSlot, Planner};
use crate::error::PlanError;
use crate::policy::{
    CompiledKept, CompiledRequest, KeptTarget, OwnerExtras, RemovalTarget, RequestTarget,
};
use autoprov_core::{
    AssignmentRequest, FoundValue, OwnerId, Reference, RequestId, RequestKind, ResourceTypeId,
    ScalarValue, WorkflowState,
};
use serde::Serialize;

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

impl Planner {
    pub(super) fn slot_mut(&mut self, owner: &OwnerId) -> Result<&mut OwnerSlot, PlanError> {
        self.owners
            .get_mut(owner)
            .map(|slot| &mut **slot)
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
        slot.rare_mut().requests.insert(request.id.clone(), request);
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
        self.slot_mut(owner)?.rare_mut().requests.remove(request);
        self.recompile_extras(owner);
        self.dirty.insert(owner.clone());
        Ok(())
    }

    pub(super) fn check_governed(
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
        let slot = self.slot_mut(&owner)?.rare_mut();
        if !slot.kept.contains(&kept) {
            slot.kept.push(kept);
        }
        self.recompile_extras(&owner);
        self.dirty.insert(owner);
        Ok(())
    }

    pub(super) fn recompile_extras(&mut self, owner: &OwnerId) {
        let Some(slot) = self.owners.get(owner).map(|s| s.rare()) else {
            return;
        };
        let mut extras = OwnerExtras::default();
        for req in slot.requests.values() {
            let add = match req.workflow_state() {
                WorkflowState::Approved => true,
                WorkflowState::Cancellation => false,
                // A declined request for the resource type itself removes the assignment
                // that waited for it (a `RequestedAutomatically` rule's).
                WorkflowState::Declined
                    if req.kind == RequestKind::Add
                        && req.assignment.scalar.is_none()
                        && req.assignment.navigation.is_none() =>
                {
                    if let Ok(rt) = self.rt_index(&req.assignment.resource_type) {
                        extras.declined.push(rt);
                    }
                    continue;
                }
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
        for (rt_id, value) in &slot.found_removals {
            let Ok(rt) = self.rt_index(rt_id) else {
                continue;
            };
            let what = match value {
                FoundValue::Account => RemovalTarget::Account,
                FoundValue::Scalar { property, value } => {
                    RemovalTarget::Scalar(self.syms.intern(property), value.clone())
                }
                FoundValue::Navigation { property, value } => {
                    RemovalTarget::Navigation(self.syms.intern(property), self.refs.intern(value))
                }
            };
            extras.removals.push((rt, what));
        }
        if let Some(slot) = self.owners.get_mut(owner) {
            slot.rare_mut().extras = extras;
        }
    }
}
