//! Computing orders (SPEC §5, §6): expected values against the correlated target give Added,
//! Modified (value-level deltas) or Deleted orders, each item moved through the provisioning
//! state machine (SPEC §4).

use super::{
    DeducedRole, Disposition, NonConforming, NonConformingKind, OrderStates, OwnerPlan, OwnerSlot,
    PlannedItem, Planner, WaitReason,
};
use crate::error::EvaluationError;
use crate::policy::{KeptTarget, OwnerExpectation, RemovalTarget, RtExpectation};
use crate::targets::{RefId, References, Sym, Symbols, Target, TargetIdx, sorted_difference};
use autoprov_core::{
    AssignmentId, ChangeType, Changes, FoundValue, NavigationChange, OrderId, Owner, OwnerId,
    PropertyChange, PropertyValue, ProvisioningOrder, ProvisioningState, ResourceType,
    ResourceTypeId, ResourceTypeRef, RoleId, ScalarValue, WorkflowState,
};
use std::collections::BTreeSet as RoleSet;

/// What one owner's plan found that nothing explains.
pub(super) struct Found<'a> {
    pub(super) values: Vec<NonConforming>,
    pub(super) deduced: Vec<DeducedRole>,
    /// Properties whose differing found value this plan keeps (not established).
    pub(super) held: &'a mut Vec<(u32, Sym)>,
    pub(super) roles: &'a RoleSet<RoleId>,
}
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

impl Planner {
    pub(super) fn compare(
        &self,
        slot: &OwnerSlot,
        owner: &Owner,
        exp: &OwnerExpectation,
        correlated: &[Option<TargetIdx>],
        view: &OrderStates,
        held: &mut Vec<(u32, Sym)>,
    ) -> Option<OwnerPlan> {
        let mut items: Vec<PlannedItem> = Vec::new();
        let mut found = Found {
            values: Vec::new(),
            deduced: Vec::new(),
            held,
            roles: &exp.roles,
        };
        // Orders of this plan per resource type, for DependsOn.
        let mut added_orders: FxHashMap<usize, Option<OrderId>> = FxHashMap::default();
        let mut deleted_at: FxHashMap<usize, usize> = FxHashMap::default();
        for &rt in &self.policy.dependency_order {
            if exp.failure(rt).is_some() {
                // Planned as an Error item alone (`with_failures`).
                continue;
            }
            let rtype = &self.policy.rts[rt];
            let expected = exp.rts.iter().find(|e| e.rt == rt);
            let target = correlated[rt].and_then(|i| self.targets[rt].get(i));
            // The common case — the target already conforms — costs no allocation: the item is
            // Verified and reported by nobody.
            let mut diff = match (expected, target) {
                (Some(e), Some(t)) if e.active() => {
                    // `None` when the target conforms: no change set is built (nor dropped).
                    let changes = self.diff(slot, e, t, &mut found);
                    if changes.as_ref().is_none_or(Changes::is_empty) {
                        continue;
                    }
                    changes
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
                stored: false,
            };
            let review = rtype.require_provisioning_review;
            match (expected, target) {
                (Some(_), Some(t)) if diff.is_some() => {
                    let changes = diff.take().unwrap_or_default();
                    let order = self.order(owner, rtype, ChangeType::Modified, changes, Some(t));
                    // An account found by correlation that autoprov has not yet made its own
                    // is adopted only after review when the type asks for it (`ReviewAdoption`,
                    // on by default for privileged types).
                    let adopting = rtype.reviews_adoption() && !slot.established.has_rt(rt);
                    with_order(&mut item, order, review || adopting, view);
                    if adopting && item.provisioning_state != ProvisioningState::Executed {
                        // Not ours until the adoption is approved and applied: the next plan
                        // reviews a changed order again.
                        found.held.push((rt as u32, super::found::WHOLE_ACCOUNT));
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
                        with_order(&mut item, order, review, view);
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
                (Some(e), target) if !e.active() && !e.expired() => {
                    // Waiting for validation, or a kept Found/Historic account: nothing is
                    // created and nothing is removed.
                    if e.kept_account || (target.is_none() && e.workflow.is_reconciliation_only()) {
                        continue;
                    }
                    item.waiting = Some(WaitReason::AwaitingValidation);
                }
                (_, Some(t)) => {
                    if slot
                        .extras()
                        .kept
                        .iter()
                        .any(|k| k.rt == rt && k.what == KeptTarget::Account)
                    {
                        continue;
                    }
                    // An account no plan expected predates us (or was made by hand): it is
                    // deleted only after a person confirmed it, or under the `Remove` setting.
                    if !slot.established.has_rt(rt) {
                        let approved = slot
                            .extras()
                            .removals
                            .iter()
                            .any(|(r, w)| *r == rt && *w == RemovalTarget::Account);
                        let disposition = self.disposition(rt, approved);
                        found.values.push(NonConforming {
                            owner: owner.id.clone(),
                            resource_type: rtype.id.clone(),
                            target: t.id.clone(),
                            value: FoundValue::Account,
                            kind: NonConformingKind::UnexpectedAccount,
                            disposition,
                        });
                        if disposition != Disposition::Removing {
                            continue;
                        }
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
                        with_order(&mut item, order, review, view);
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
        if items.is_empty() && found.values.is_empty() && found.deduced.is_empty() {
            return None;
        }
        // Sorted by value, not by interning order: the same inputs give the same plan.
        found
            .values
            .sort_by(|a, b| (&a.resource_type, &a.value).cmp(&(&b.resource_type, &b.value)));
        found.deduced.sort_by(|a, b| {
            (&a.resource_type, &a.property, &a.role).cmp(&(&b.resource_type, &b.property, &b.role))
        });
        Some(OwnerPlan {
            items,
            non_conforming: found.values,
            deduced_roles: found.deduced,
            ..OwnerPlan::new(owner.id.clone())
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

    /// The Modified order's changes: only what differs; memberships as deltas. A value found
    /// that nothing explains and that is not autoprov's to change (see `plan/found.rs`) is
    /// classified in `found` and changed only when its disposition is `Removing`.
    fn diff(
        &self,
        slot: &OwnerSlot,
        e: &RtExpectation,
        t: &Target,
        found: &mut Found,
    ) -> Option<Changes> {
        let rt = e.rt;
        let policy = &self.policy.per_rt[rt];
        let kept = &slot.extras().kept;
        let established = &slot.established;
        let removals = &slot.extras().removals;
        let scalar_kept = |sym| {
            kept.iter()
                .any(|k| k.rt == rt && k.what == KeptTarget::Scalar(sym))
        };
        // Whether a differing value may be changed; classifies it when it is not ours.
        let classify = |sym: Sym,
                        value: FoundValue,
                        kind: NonConformingKind,
                        approved: bool,
                        found: &mut Found|
         -> bool {
            if established.has_prop(rt, sym) {
                return true;
            }
            let disposition = self.disposition(rt, approved);
            if disposition != Disposition::Removing
                && matches!(kind, NonConformingKind::DifferentValue { .. })
            {
                found.held.push((rt as u32, sym));
            }
            found.values.push(NonConforming {
                owner: slot.id.clone(),
                resource_type: self.policy.rts[rt].id.clone(),
                target: t.id.clone(),
                value,
                kind,
                disposition,
            });
            disposition == Disposition::Removing
        };
        // Made at the first change: most targets conform, and an empty `Changes` (two maps)
        // still costs its drop.
        let mut changes: Option<Changes> = None;
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
                (Some(x), Some(a)) if a.equals(comparison, x) => None,
                (Some(x), None) => Some(PropertyChange::Set(x.as_ref().clone())),
                (expected, Some(a)) => {
                    let approved = removals.iter().any(|(r, w)| {
                        *r == rt && matches!(w, RemovalTarget::Scalar(s, v) if *s == sym && a.is(v))
                    });
                    let value = FoundValue::Scalar {
                        property: self.syms.name(sym).to_owned(),
                        value: a.to_value(),
                    };
                    let kind = match expected {
                        Some(x) => NonConformingKind::DifferentValue {
                            expected: PropertyValue::Scalar(x.as_ref().clone()),
                        },
                        None => NonConformingKind::UnexpectedValue,
                    };
                    classify(sym, value, kind, approved, found).then(|| match expected {
                        Some(x) => PropertyChange::Set(x.as_ref().clone()),
                        None => PropertyChange::Clear,
                    })
                }
                (None, None) => None,
            };
            if let Some(c) = change {
                changes
                    .get_or_insert_with(Changes::default)
                    .properties
                    .insert(self.syms.name(sym).to_owned(), c);
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
                (Some(x), None) => Some(PropertyChange::SetReference(self.refs.get(x).clone())),
                (expected, Some(a)) => {
                    let approved = removals.iter().any(|(r, w)| {
                        *r == rt
                            && matches!(w, RemovalTarget::Navigation(s, v) if *s == sym && *v == a)
                    });
                    let value = FoundValue::Navigation {
                        property: self.syms.name(sym).to_owned(),
                        value: self.refs.get(a).clone(),
                    };
                    let kind = match expected {
                        Some(x) => NonConformingKind::DifferentValue {
                            expected: PropertyValue::Reference(self.refs.get(x).clone()),
                        },
                        None => NonConformingKind::UnexpectedValue,
                    };
                    classify(sym, value, kind, approved, found).then(|| match expected {
                        Some(x) => PropertyChange::SetReference(self.refs.get(x).clone()),
                        None => PropertyChange::Clear,
                    })
                }
                (None, None) => None,
            };
            if let Some(c) = change {
                changes
                    .get_or_insert_with(Changes::default)
                    .properties
                    .insert(self.syms.name(sym).to_owned(), c);
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
            // Memberships no plan expected: classified, removed only when decided so.
            let mut unexplained: Vec<RefId> = Vec::new();
            remove.retain(|&r| {
                if established.has_ref(rt, sym, r) {
                    return true;
                }
                unexplained.push(r);
                let approved = removals.iter().any(|(q, w)| {
                    *q == rt && matches!(w, RemovalTarget::Navigation(s, v) if *s == sym && *v == r)
                });
                let disposition = self.disposition(rt, approved);
                found.values.push(NonConforming {
                    owner: slot.id.clone(),
                    resource_type: self.policy.rts[rt].id.clone(),
                    target: t.id.clone(),
                    value: FoundValue::Navigation {
                        property: self.syms.name(sym).to_owned(),
                        value: self.refs.get(r).clone(),
                    },
                    kind: NonConformingKind::ExtraValue,
                    disposition,
                });
                disposition == Disposition::Removing
            });
            if !unexplained.is_empty() && !self.role_grants.is_empty() {
                found.deduced.extend(self.deduce_roles(
                    &slot.id,
                    found.roles,
                    rt,
                    sym,
                    &unexplained,
                    actual,
                ));
            }
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            changes
                .get_or_insert_with(Changes::default)
                .navigations
                .insert(
                    self.syms.name(sym).to_owned(),
                    NavigationChange {
                        add: add.iter().map(|r| self.refs.get(*r).clone()).collect(),
                        remove: remove.iter().map(|r| self.refs.get(*r).clone()).collect(),
                    },
                );
        }
        changes
    }

    pub(super) fn order(
        &self,
        owner: &Owner,
        rtype: &ResourceType,
        change_type: ChangeType,
        changes: Changes,
        target: Option<&Target>,
    ) -> ProvisioningOrder {
        let target_id = target.map(|t| t.id.as_str()).unwrap_or("");
        // The changes' JSON is hashed as it is written, not collected first; a change that
        // cannot be serialized counts as no bytes, as it always has.
        let mut json = Fnv1a::default();
        let json = match serde_json::to_writer(&mut json, &changes) {
            Ok(()) => json,
            Err(_) => Fnv1a::default(),
        };
        let digest = json.with(target_id.as_bytes());
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
            arguments: Default::default(),
        }
    }
}

/// Gives the item its order and its state as the store knows it (SPEC §4; the store is the
/// one owner of provisioning state, `view` its read-only copy for this plan):
/// - an order the store holds open (Pending, AwaitingApproval, Transmitted, Executed, Errored)
///   keeps its state: it is in flight, waiting or failed, and is not planned again;
/// - an order review declined is not generated again while the same change is computed;
/// - any other order is a new difference: Pending, or AwaitingApproval under review. (The
///   store reopens a finished order with the same id through its state machine when the job
///   sends it again.)
fn with_order(
    item: &mut PlannedItem,
    order: ProvisioningOrder,
    review_required: bool,
    view: &OrderStates,
) {
    item.provisioning_state = if view.is_declined(&order.order_id) {
        item.waiting = Some(WaitReason::DeclinedInReview);
        ProvisioningState::Inactive
    } else {
        match view.state(&order.order_id) {
            Some(
                s @ (ProvisioningState::Pending
                | ProvisioningState::AwaitingApproval
                | ProvisioningState::Transmitted
                | ProvisioningState::Executed
                | ProvisioningState::Errored),
            ) => {
                item.stored = true;
                s
            }
            _ if review_required => ProvisioningState::AwaitingApproval,
            _ => ProvisioningState::Pending,
        }
    };
    item.order = Some(order);
}

/// An item in `Error` because evaluation failed (SPEC §4): it releases nothing — except an
/// order already handed over (Executed, Transmitted in the store), which keeps its state: its
/// effect is out of our hands and verification decides.
fn error_item(mut i: PlannedItem, reason: &str, view: &OrderStates) -> PlannedItem {
    let handed_over = i
        .order
        .as_ref()
        .and_then(|o| view.state(&o.order_id))
        .filter(|s| {
            matches!(
                s,
                ProvisioningState::Executed | ProvisioningState::Transmitted
            )
        });
    match handed_over {
        Some(s) => i.provisioning_state = s,
        None => {
            i.provisioning_state = ProvisioningState::Error;
            i.order = None;
            i.waiting = None;
        }
    }
    i.error = Some(reason.to_owned());
    i
}

/// A new `Error` item of an owner's resource type.
fn new_error_item(owner: &OwnerId, rt: &ResourceTypeId, reason: &str) -> PlannedItem {
    PlannedItem {
        owner: Some(owner.clone()),
        resource_type: rt.clone(),
        assigned_resource_type_id: Some(AssignmentId::new(format!("{owner}/{rt}"))),
        workflow_state: WorkflowState::None,
        provisioning_state: ProvisioningState::Error,
        target: None,
        order: None,
        waiting: None,
        error: Some(reason.to_owned()),
        stored: false,
    }
}

/// The owner's plan when its evaluation failed as a whole (its period cannot be read): every
/// item it had is in Error (see [`error_item`]).
pub(super) fn error_plan(
    owner: &Owner,
    prev: Option<&OwnerPlan>,
    error: EvaluationError,
    view: &OrderStates,
) -> OwnerPlan {
    let reason = error.to_string();
    let mut items: Vec<PlannedItem> = prev
        .map(|p| p.items.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| error_item(i, &reason, view))
        .collect();
    if let Some(rt) = error.resource_type()
        && !items.iter().any(|i| &i.resource_type == rt)
    {
        items.push(new_error_item(&owner.id, rt, &reason));
    }
    OwnerPlan {
        items,
        error: Some(error),
        ..OwnerPlan::new(owner.id.clone())
    }
}

impl Planner {
    /// SPEC §4, "the order's period passed before it was sent ⇒ Inactive": an assignment
    /// whose period has passed, with no target, whose previous plan held an order not yet
    /// sent (Pending or AwaitingApproval in the store), is reported once as an Inactive item
    /// carrying that order, so the store moves it to Inactive too (event `PeriodPassed`).
    /// Nothing is reported otherwise: a past assignment with nothing pending costs nothing.
    pub(super) fn with_expired(
        &self,
        owner: &Owner,
        plan: Option<OwnerPlan>,
        prev: Option<&OwnerPlan>,
        exp: &OwnerExpectation,
        correlated: &[Option<TargetIdx>],
        view: &OrderStates,
    ) -> Option<OwnerPlan> {
        let Some(prev) = prev else { return plan };
        let mut plan = plan;
        for e in exp.rts.iter().filter(|e| e.expired()) {
            if correlated[e.rt].is_some() {
                continue;
            }
            let id = &self.policy.rts[e.rt].id;
            let Some(order) = prev
                .items
                .iter()
                .find(|i| &i.resource_type == id)
                .and_then(|i| i.order.as_ref())
                .filter(|o| {
                    matches!(
                        view.state(&o.order_id),
                        Some(ProvisioningState::Pending | ProvisioningState::AwaitingApproval)
                    )
                })
            else {
                continue;
            };
            let plan = plan.get_or_insert_with(|| OwnerPlan::new(owner.id.clone()));
            plan.items.push(PlannedItem {
                owner: Some(owner.id.clone()),
                resource_type: id.clone(),
                assigned_resource_type_id: Some(AssignmentId::new(format!("{}/{id}", owner.id))),
                workflow_state: WorkflowState::Inactive,
                provisioning_state: ProvisioningState::Inactive,
                target: None,
                order: Some(order.clone()),
                waiting: None,
                error: None,
                stored: true,
            });
        }
        if let Some(plan) = plan.as_mut() {
            let position = |id: &ResourceTypeId| {
                let rt = self.policy.rt_ids[id];
                self.policy.dependency_order.iter().position(|&r| r == rt)
            };
            plan.items.sort_by_key(|i| position(&i.resource_type));
        }
        plan
    }

    /// Adds the resource types whose evaluation failed to an owner's plan, each as one `Error`
    /// item (its previous item's order kept only when handed over), in dependency order.
    pub(super) fn with_failures(
        &self,
        owner: &Owner,
        plan: Option<OwnerPlan>,
        prev: Option<&OwnerPlan>,
        failed: &[(usize, EvaluationError)],
        view: &OrderStates,
    ) -> Option<OwnerPlan> {
        if failed.is_empty() {
            return plan;
        }
        let mut plan = plan.unwrap_or_else(|| OwnerPlan::new(owner.id.clone()));
        for (rt, error) in failed {
            let id = &self.policy.rts[*rt].id;
            let reason = error.to_string();
            let item = match prev.and_then(|p| p.items.iter().find(|i| &i.resource_type == id)) {
                Some(i) => error_item(i.clone(), &reason, view),
                None => new_error_item(&owner.id, id, &reason),
            };
            plan.items.push(item);
            plan.item_errors.push(error.clone());
        }
        let position = |id: &ResourceTypeId| {
            let rt = self.policy.rt_ids[id];
            self.policy.dependency_order.iter().position(|&r| r == rt)
        };
        plan.items.sort_by_key(|i| position(&i.resource_type));
        Some(plan)
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
/// FNV-1a (64 bits) of the bytes written, the digest in order ids (pinned by the
/// `order_ids_are_pinned` test: stored ids must keep their meaning).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// The digest of what was written, then `bytes`.
    fn with(mut self, bytes: &[u8]) -> u64 {
        self.add(bytes);
        self.0
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The item of a target without owner: a Deleted order when `RemoveOrphans` allows it, else
/// a report that waits for an operator.
pub(super) fn orphan_item(
    rtype: &ResourceType,
    t: &Target,
    view: &OrderStates,
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
        stored: false,
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
        arguments: Default::default(),
    };
    with_order(&mut item, order, rtype.require_provisioning_review, view);
    Some(item)
}
