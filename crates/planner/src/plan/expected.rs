//! An owner's expected assignments (SPEC §2) as the core assignment types, with their
//! workflow and provisioning states.

use super::Planner;
use crate::error::PlanError;
use crate::policy::{KeptTarget, RequestTarget};
use crate::targets::ScalarRef;
use autoprov_core::{
    AssignedResourceNavigation, AssignedResourceScalar, AssignedResourceType, AssignmentId,
    AssignmentStatus, OwnerId, Period, ProvisioningState, ResourceTypeId, RoleId, WorkflowState,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;

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

impl Planner {
    /// The properties rules write but that are not mapped back (`IsMapped = false`,
    /// [`ScalarRule::write_only`](crate::ScalarRule::write_only)), per resource type:
    /// verification never compares them (the managed system does not show them back).
    pub fn unmapped_properties(&self) -> std::collections::BTreeSet<(ResourceTypeId, String)> {
        self.policy
            .rts
            .iter()
            .zip(&self.policy.per_rt)
            .flat_map(|(rt, p)| {
                p.scalars
                    .iter()
                    .filter(|(_, _, mapped)| !mapped)
                    .map(|(sym, _, _)| (rt.id.clone(), self.syms.name(*sym).to_owned()))
            })
            .collect()
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
        let whole = slot.owner.to_owner(&slot.id, &self.syms);
        let exp = self.policy.evaluate(
            &crate::policy::OwnerView::new(&whole),
            slot.extras(),
            &self.lookups,
            now,
            &[],
        )?;
        // Expected assignments are all or nothing: a resource type that cannot be evaluated
        // is reported rather than left out.
        if let Some((_, e)) = exp.failed.first() {
            return Err(e.clone().into());
        }
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
            let conforming = if e.expired() && target.is_none() {
                // Its period has passed and nothing is left to do (SPEC §4: Inactive).
                ProvisioningState::Inactive
            } else if target.is_some() {
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
                // A manually approved value keeps its origin; kept against the rules, it is
                // ApprovedQuestioned.
                let manual = slot.extras().requests.iter().any(|q| {
                    q.add
                        && q.rt == e.rt
                        && matches!(&q.what, RequestTarget::Scalar(s, v) if s == sym && v == value.as_ref())
                });
                let workflow = if e.questioned.contains(sym) {
                    WorkflowState::ApprovedQuestioned
                } else if manual {
                    WorkflowState::Approved
                } else {
                    e.workflow
                };
                out.scalars.push(AssignedResourceScalar {
                    id: AssignmentId::new(format!("{art}/{name}")),
                    assigned_resource_type: art.clone(),
                    property: name.to_owned(),
                    value: value.as_ref().clone(),
                    status: status(workflow, touched),
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
                    slot.extras().requests.iter().any(|q| {
                        q.add && q.rt == e.rt && q.what == RequestTarget::Navigation(sym, r)
                    });
                let questioned =
                    e.questioned.contains(&sym) && e.mono.iter().any(|(s, _)| *s == sym);
                let workflow = if questioned {
                    WorkflowState::ApprovedQuestioned
                } else if manual {
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
        for k in &slot.extras().kept {
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
                        .and_then(|t| t.scalar(*sym).map(ScalarRef::to_value));
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
}
