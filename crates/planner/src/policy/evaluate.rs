//! Policy evaluation (SPEC §1, §5): one owner's roles, period, rules, approved requests and
//! kept values become its expected values per resource type.

use super::{
    BindingFailure, CompiledPolicy, Multiplicity, OwnerView, RuleKind, TimeOffset,
    TimeOffsetReference, criteria_match,
};
use crate::error::EvaluationError;
use crate::targets::{RefId, Sym, TargetIdx};
use autoprov_core::{Owner, Period, RoleId, ScalarValue, WorkflowState};
use chrono::{DateTime, TimeDelta, Utc};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::BTreeSet;

fn push_multi(multi: &mut Multis, sym: Sym, r: RefId) {
    // Navigation rules mostly fill one property (the memberships): the last list first.
    if let Some((s, list)) = multi.last_mut()
        && *s == sym
    {
        list.push(r);
        return;
    }
    match multi.iter_mut().find(|(s, _)| *s == sym) {
        Some((_, list)) => list.push(r),
        None => {
            let mut list = RefList::new();
            list.push(r);
            multi.push((sym, list));
        }
    }
}

// An owner's expectation is built and dropped owner after owner, on every full plan: its
// references, multi-valued properties and their lists live inline (on the stack) for the
// usual sizes instead of costing three heap blocks per owner. The scalars and the list of
// resource types stay on the heap: inline, they made the expectation so large that copying
// it cost more than the allocation saved (callgrind, one steady plan of 20,000 identities:
// 15,371 instructions per owner with every list on the heap, 15,227 with the scalars inline
// too, 15,018 with the scalars on the heap; with the resource types on the heap as well,
// 14,528 → 14,400).
/// An expectation's scalar values (sorted by symbol).
pub(crate) type Scalars<'a> = Vec<(Sym, Cow<'a, ScalarValue>)>;
/// An expectation's mono-valued references (sorted by symbol).
pub(crate) type Monos = SmallVec<[(Sym, RefId); 4]>;
/// The references of one multi-valued property (sorted, without duplicates).
pub(crate) type RefList = SmallVec<[RefId; 16]>;
/// An expectation's multi-valued properties (sorted by symbol).
pub(crate) type Multis = SmallVec<[(Sym, RefList); 2]>;

/// What a compiled approved request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestTarget {
    ResourceType,
    Scalar(Sym, ScalarValue),
    Navigation(Sym, RefId),
}

/// An approved assignment request, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledRequest {
    pub(crate) rt: usize,
    pub(crate) add: bool,
    pub(crate) what: RequestTarget,
}

/// What a kept (Found/Historic) value protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeptTarget {
    Account,
    Scalar(Sym),
    Navigation(Sym, RefId),
}

/// A Found/Historic value, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledKept {
    pub(crate) rt: usize,
    pub(crate) what: KeptTarget,
    pub(crate) workflow: WorkflowState,
}

/// A found value whose removal a person confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemovalTarget {
    Account,
    /// Only while the target still holds this value.
    Scalar(Sym, ScalarValue),
    /// A mono-valued reference or one reference of a multi-valued navigation.
    Navigation(Sym, RefId),
}

/// Approved requests, kept values and confirmed removals of one owner.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnerExtras {
    pub(crate) requests: Vec<CompiledRequest>,
    pub(crate) kept: Vec<CompiledKept>,
    /// Per resource type index.
    pub(crate) removals: Vec<(usize, RemovalTarget)>,
    /// Resource types whose request was declined.
    pub(crate) declined: Vec<usize>,
}

impl OwnerExtras {
    /// None of them.
    pub(crate) const EMPTY: Self = Self {
        requests: Vec::new(),
        kept: Vec::new(),
        removals: Vec::new(),
        declined: Vec::new(),
    };
}

/// Query-rule lookups: for each query rule, normalized value ⇒ references.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookups {
    pub(crate) per_rule: Vec<FxHashMap<String, Vec<RefId>>>,
}

impl Lookups {
    pub(super) fn find(&self, rule: usize, key: &str) -> &[RefId] {
        self.per_rule
            .get(rule)
            .and_then(|m| m.get(key))
            .map_or(&[], Vec::as_slice)
    }
}

/// What one owner should have in one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtExpectation<'a> {
    pub(crate) rt: usize,
    pub(crate) workflow: WorkflowState,
    pub(crate) window: Period,
    /// A Found/Historic account: never deleted automatically.
    pub(crate) kept_account: bool,
    /// Sorted by symbol.
    pub(crate) scalars: Scalars<'a>,
    /// Sorted by symbol.
    pub(crate) mono: Monos,
    /// Sorted by symbol; each list sorted, without duplicates.
    pub(crate) multi: Multis,
    /// Scalar and mono-valued properties whose manually approved value is kept although the
    /// rules now compute another (`DiscardManualAssignments` off): ApprovedQuestioned.
    pub(crate) questioned: Vec<Sym>,
}

impl RtExpectation<'_> {
    fn normalize(&mut self) {
        self.scalars.sort_by_key(|(s, _)| *s);
        self.mono.sort_by_key(|(s, _)| *s);
        self.multi.sort_by_key(|(s, _)| *s);
        for (_, list) in &mut self.multi {
            list.sort_unstable();
            list.dedup();
        }
        self.questioned.sort_unstable();
        self.questioned.dedup();
    }

    /// Whether the assignment produces orders (approval complete).
    pub(crate) fn active(&self) -> bool {
        self.workflow.produces_orders()
    }

    /// Whether the assignment's period has passed (workflow state Inactive).
    pub(crate) fn expired(&self) -> bool {
        self.workflow == WorkflowState::Inactive
    }
}

/// The evaluation of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerExpectation<'a> {
    pub(crate) roles: BTreeSet<RoleId>,
    /// Sorted by resource type index.
    pub(crate) rts: Vec<RtExpectation<'a>>,
    pub(crate) suggested: Vec<usize>,
    /// Resource types whose evaluation failed (sorted): each is left out of `rts` and becomes
    /// an `Error` item alone; the owner's other resource types are planned as usual.
    pub(crate) failed: Vec<(usize, EvaluationError)>,
}

impl OwnerExpectation<'_> {
    /// The failure of resource type `rt`, if its evaluation failed.
    pub(crate) fn failure(&self, rt: usize) -> Option<&EvaluationError> {
        self.failed.iter().find(|(r, _)| *r == rt).map(|(_, e)| e)
    }
}

/// A handful of resource type indexes, sorted: an evaluation builds several per owner (denied,
/// suggested, cancelled, kept), usually empty, and an empty `BTreeSet` still runs its
/// iterator when dropped.
#[derive(Default)]
struct RtSet(SmallVec<[usize; 4]>);

impl RtSet {
    fn insert(&mut self, rt: usize) {
        if let Err(pos) = self.0.binary_search(&rt) {
            self.0.insert(pos, rt);
        }
    }

    fn contains(&self, rt: usize) -> bool {
        self.0.binary_search(&rt).is_ok()
    }
}

/// A resource type some rule or request gives the owner, with its workflow state and window.
#[derive(Clone, Copy)]
struct Candidate {
    workflow: WorkflowState,
    rank: u8,
    window: Period,
    eval_at: DateTime<Utc>,
}

/// The buffers one thread's evaluations reuse, owner after owner.
#[derive(Default)]
struct EvalScratch {
    /// Candidate rules of a criteria index.
    rules: Vec<u32>,
    /// The resource types given, sorted by index.
    chosen: Vec<(usize, Candidate)>,
    /// A query rule's key, normalized.
    key: String,
}

impl CompiledPolicy {
    /// Evaluates the role model for one owner.
    /// `targets[rt]` is the owner's correlated target of that type, if any: an existing
    /// target never receives write-only values, so they are not computed (an empty slice
    /// computes everything).
    pub(crate) fn evaluate<'a>(
        &'a self,
        owner: &OwnerView<'a>,
        extras: &'a OwnerExtras,
        lookups: &Lookups,
        now: DateTime<Utc>,
        targets: &[Option<TargetIdx>],
    ) -> Result<OwnerExpectation<'a>, EvaluationError> {
        // The candidate rules' buffer, one per thread: an owner's evaluation allocates only
        // what it returns.
        thread_local! {
            static SCRATCH: std::cell::Cell<EvalScratch> = const {
                std::cell::Cell::new(EvalScratch {
                    rules: Vec::new(),
                    chosen: Vec::new(),
                    key: String::new(),
                })
            };
        }
        let mut scratch = SCRATCH.take();
        let result = self.evaluate_with(owner, extras, lookups, now, targets, &mut scratch);
        SCRATCH.set(scratch);
        result
    }

    fn evaluate_with<'a>(
        &'a self,
        owner: &OwnerView<'a>,
        extras: &'a OwnerExtras,
        lookups: &Lookups,
        now: DateTime<Utc>,
        targets: &[Option<TargetIdx>],
        scratch: &mut EvalScratch,
    ) -> Result<OwnerExpectation<'a>, EvaluationError> {
        let EvalScratch {
            rules: scratch,
            chosen,
            key,
        } = scratch;
        chosen.clear();
        let roles = self.roles_of(owner, scratch);
        let period = self.owner_period(owner)?;

        // Type rules ⇒ which resource types, with which workflow state and window (`chosen`,
        // sorted by resource type).
        let mut denied = RtSet::default();
        let mut suggested = RtSet::default();
        // Resource types whose assignment period has passed (SPEC §3: 19 Inactive).
        let mut expired: SmallVec<[(usize, Period); 2]> = SmallVec::new();
        self.type_index.candidates(owner, scratch);
        for &i in scratch.iter() {
            let (rt, rule) = &self.type_rules[i as usize];
            if !self.type_index.matches(i, &rule.criteria, owner, &roles) {
                continue;
            }
            let Some(window) = rule.time_offset.window_in(period, &self.time_zone) else {
                continue;
            };
            let ahead = TimeDelta::hours(i64::from(self.rts[*rt].fulfill_hours_ahead_of_time));
            let eval_at = if window.contains(now) {
                now
            } else if let Some(start) = window.start.filter(|s| *s > now && *s - ahead <= now) {
                start
            } else {
                if window.is_past(now) && !rule.is_denied && rule.kind != RuleKind::Suggested {
                    match expired.binary_search_by_key(rt, |(r, _)| *r) {
                        Ok(pos) => expired[pos].1 = window,
                        Err(pos) => expired.insert(pos, (*rt, window)),
                    }
                }
                continue;
            };
            if rule.is_denied {
                denied.insert(*rt);
                continue;
            }
            let (workflow, rank) = match rule.kind {
                RuleKind::Required if rule.criteria.single_role.is_some() => {
                    (WorkflowState::GivenByRole, 3)
                }
                RuleKind::Required => (WorkflowState::Calculated, 3),
                RuleKind::RequestedAutomatically => (WorkflowState::AutomaticButWithValidation, 2),
                RuleKind::Suggested => {
                    suggested.insert(*rt);
                    continue;
                }
            };
            let candidate = Candidate {
                workflow,
                rank,
                window,
                eval_at,
            };
            match chosen.binary_search_by_key(rt, |(r, _)| *r) {
                Ok(pos) => {
                    if rank > chosen[pos].1.rank {
                        chosen[pos].1 = candidate;
                    }
                }
                Err(pos) => chosen.insert(pos, (*rt, candidate)),
            }
        }

        // Approved manual requests.
        let mut manual_scalars: Vec<(usize, Sym, Option<&'a ScalarValue>)> = Vec::new();
        let mut manual_navs: Vec<(usize, Sym, RefId, bool)> = Vec::new();
        let mut cancelled = RtSet::default();
        for req in &extras.requests {
            if req.add {
                // Any approved addition (of the account, a value or a membership) means the
                // owner has the account.
                let pos = match chosen.binary_search_by_key(&req.rt, |(r, _)| *r) {
                    Ok(pos) => pos,
                    Err(pos) => {
                        let approved = Candidate {
                            workflow: WorkflowState::Approved,
                            rank: 1,
                            window: Period::ALWAYS,
                            eval_at: now,
                        };
                        chosen.insert(pos, (req.rt, approved));
                        pos
                    }
                };
                let c = &mut chosen[pos].1;
                if !c.workflow.produces_orders() {
                    c.workflow = WorkflowState::Approved;
                }
            } else if req.what == RequestTarget::ResourceType {
                // A computed assignment wins over its manual cancellation under
                // `DiscardManualAssignments`.
                let computed = chosen.iter().any(|(r, c)| *r == req.rt && c.rank > 1);
                if !(computed && self.rts[req.rt].discard_manual_assignments) {
                    cancelled.insert(req.rt);
                }
            }
            match &req.what {
                RequestTarget::ResourceType => {}
                RequestTarget::Scalar(sym, value) => {
                    manual_scalars.push((req.rt, *sym, req.add.then_some(value)));
                }
                RequestTarget::Navigation(sym, r) => manual_navs.push((req.rt, *sym, *r, req.add)),
            }
        }

        let mut out = OwnerExpectation {
            roles,
            rts: Vec::with_capacity(chosen.len()),
            suggested: suggested.0.into_vec(),
            failed: Vec::new(),
        };
        let mut kept_accounts = RtSet::default();
        for k in &extras.kept {
            if matches!(k.what, KeptTarget::Account) {
                kept_accounts.insert(k.rt);
            }
        }
        for &(rt, ref c) in chosen.iter() {
            if denied.contains(rt) || cancelled.contains(rt) {
                continue;
            }
            // An assignment waiting for a person's validation whose request was declined is
            // removed (the reference system: declined ⇒ the assignment is removed).
            if !c.workflow.produces_orders() && extras.declined.contains(&rt) {
                continue;
            }
            // Pushed first and filled where it is kept, rather than filled and then moved
            // in: an expectation is a few hundred bytes, its lists inline.
            out.rts.push(RtExpectation {
                rt,
                workflow: c.workflow,
                window: c.window,
                kept_account: kept_accounts.contains(rt),
                scalars: Scalars::with_capacity(self.per_rt[rt].scalars.len()),
                mono: Monos::with_capacity(self.per_rt[rt].mono.len()),
                multi: Multis::with_capacity(self.per_rt[rt].multi.len()),
                questioned: Vec::new(),
            });
            let Some(exp) = out.rts.last_mut() else {
                continue;
            };
            if c.workflow.produces_orders() {
                let skip_write_only = targets.get(rt).is_some_and(Option::is_some);
                // A failure concerns this resource type only (SPEC §4: evaluation failure ⇒
                // Error for the item): the owner's other types are evaluated as usual.
                if let Err(e) = self.fill_values(
                    owner,
                    &out.roles,
                    rt,
                    period,
                    c.eval_at,
                    lookups,
                    skip_write_only,
                    exp,
                    scratch,
                    key,
                ) {
                    out.failed.push((rt, e));
                    out.rts.pop();
                    continue;
                }
                // The reference system's `DiscardManualAssignments`: on, a value the rules
                // compute replaces the manually approved one; off, the manual value is kept and
                // becomes ApprovedQuestioned when the rules now say otherwise.
                let discard = self.rts[rt].discard_manual_assignments;
                for (mrt, sym, value) in &manual_scalars {
                    if *mrt != rt {
                        continue;
                    }
                    let computed = exp.scalars.iter().find(|(s, _)| s == sym).map(|(_, v)| v);
                    if let Some(computed) = computed {
                        if discard {
                            continue;
                        }
                        let cmp = self.per_rt[rt]
                            .scalar(*sym)
                            .map(|(c, _)| c)
                            .unwrap_or_default();
                        let same = value.is_some_and(|v| cmp.scalar_equals(v, computed));
                        if !same {
                            exp.questioned.push(*sym);
                        }
                    }
                    exp.scalars.retain(|(s, _)| s != sym);
                    if let Some(v) = value {
                        exp.scalars.push((*sym, Cow::Borrowed(*v)));
                    }
                }
                for (mrt, sym, r, add) in &manual_navs {
                    if *mrt != rt {
                        continue;
                    }
                    let multi = self.per_rt[rt].multiplicity(*sym) == Some(Multiplicity::Multi);
                    let computed = if multi {
                        exp.multi
                            .iter()
                            .any(|(s, l)| s == sym && l.contains(r))
                            .then_some(*r)
                    } else {
                        exp.mono.iter().find(|(s, _)| s == sym).map(|(_, c)| *c)
                    };
                    // An addition never conflicts with a membership the rules give; a value
                    // or a removal the rules contradict does.
                    if let Some(computed) = computed
                        && (!multi || !*add)
                    {
                        if discard {
                            continue;
                        }
                        if !multi && (computed != *r || !*add) {
                            exp.questioned.push(*sym);
                        }
                    }
                    if multi {
                        let entry = match exp.multi.iter_mut().find(|(s, _)| s == sym) {
                            Some(e) => e,
                            None => {
                                exp.multi.push((*sym, RefList::new()));
                                exp.multi.last_mut().expect("just pushed")
                            }
                        };
                        if *add {
                            entry.1.push(*r);
                        } else {
                            entry.1.retain(|x| x != r);
                        }
                    } else {
                        exp.mono.retain(|(s, _)| s != sym);
                        if *add {
                            exp.mono.push((*sym, *r));
                        }
                    }
                }
                exp.normalize();
            }
        }
        // Found/Historic accounts no rule explains are kept as they are.
        for &rt in &kept_accounts.0 {
            if !out.rts.iter().any(|e| e.rt == rt) {
                let workflow = extras
                    .kept
                    .iter()
                    .find(|k| k.rt == rt && matches!(k.what, KeptTarget::Account))
                    .map_or(WorkflowState::Found, |k| k.workflow);
                out.rts.push(RtExpectation {
                    rt,
                    workflow,
                    window: Period::ALWAYS,
                    kept_account: true,
                    scalars: Scalars::new(),
                    mono: Monos::new(),
                    multi: Multis::new(),
                    questioned: Vec::new(),
                });
            }
        }
        // An assignment whose period has passed and that nothing else gives is Inactive: it
        // produces no order of its own (a target still there is removed as unexpected).
        for (rt, window) in expired {
            if !out.rts.iter().any(|e| e.rt == rt)
                && !denied.contains(rt)
                && !out.failed.iter().any(|(f, _)| *f == rt)
            {
                out.rts.push(RtExpectation {
                    rt,
                    workflow: WorkflowState::Inactive,
                    window,
                    kept_account: false,
                    scalars: Scalars::new(),
                    mono: Monos::new(),
                    multi: Multis::new(),
                    questioned: Vec::new(),
                });
            }
        }
        out.rts.sort_unstable_by_key(|e| e.rt);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_values<'a>(
        &'a self,
        owner: &OwnerView<'a>,
        roles: &BTreeSet<RoleId>,
        rt: usize,
        period: Period,
        at: DateTime<Utc>,
        lookups: &Lookups,
        skip_write_only: bool,
        exp: &mut RtExpectation<'a>,
        scratch: &mut Vec<u32>,
        key_buf: &mut String,
    ) -> Result<(), EvaluationError> {
        let policy = &self.per_rt[rt];
        // A value rule with the default offset holds as long as the resource type does (its
        // window may be wider than the period, e.g. an account prepared before arrival).
        let holds = |offset: &TimeOffset| {
            offset.reference == TimeOffsetReference::Default
                || offset
                    .window_in(period, &self.time_zone)
                    .is_some_and(|w| w.contains(at))
        };
        for (sym, rules) in &policy.scalar_rules {
            if skip_write_only && policy.scalar(*sym).is_some_and(|(_, mapped)| !mapped) {
                continue;
            }
            for &i in rules {
                let rule = &self.scalar_rules[i];
                if !holds(&rule.time_offset) || !criteria_match(&rule.criteria, owner, roles) {
                    continue;
                }
                let value = rule
                    .binding
                    .evaluate_in(owner, self.scalar_syms[i], period)
                    .map_err(|f| self.binding_error(owner, rt, &rule.property, f))?;
                if let Some(v) = value {
                    exp.scalars.push((*sym, v));
                    break;
                }
            }
        }
        policy.nav_index.candidates(owner, scratch);
        for &i in scratch.iter() {
            let nav = &policy.navs[i as usize];
            if !holds(&nav.time_offset) || !policy.nav_index.matches(i, &nav.criteria, owner, roles)
            {
                continue;
            }
            if nav.multi {
                push_multi(&mut exp.multi, nav.sym, nav.reference);
            } else if !exp.mono.iter().any(|(s, _)| *s == nav.sym) {
                exp.mono.push((nav.sym, nav.reference));
            }
        }
        for &(qi, sym, multi) in &policy.queries {
            let rule = &self.query_rules[qi];
            if !multi && exp.mono.iter().any(|(s, _)| *s == sym) {
                continue;
            }
            if !holds(&rule.time_offset) || !criteria_match(&rule.criteria, owner, roles) {
                continue;
            }
            let Some(value) = rule
                .source
                .evaluate_in(owner, self.query_syms[qi], period)
                .map_err(|f| self.binding_error(owner, rt, &rule.property, f))?
            else {
                continue;
            };
            let Some(key) = rule.comparison.key_in(&value, key_buf) else {
                continue;
            };
            let found = lookups.find(qi, key);
            match (found.len(), multi) {
                (0, _) => {
                    return Err(EvaluationError::QueryNoMatch {
                        owner: owner.id.clone(),
                        resource_type: self.rts[rt].id.clone(),
                        property: rule.property.clone(),
                        value: value.to_string(),
                    });
                }
                (1, false) => exp.mono.push((sym, found[0])),
                (n, false) => {
                    return Err(EvaluationError::QueryAmbiguous {
                        owner: owner.id.clone(),
                        resource_type: self.rts[rt].id.clone(),
                        property: rule.property.clone(),
                        value: value.to_string(),
                        matches: n,
                    });
                }
                (_, true) => {
                    for r in found {
                        push_multi(&mut exp.multi, sym, *r);
                    }
                }
            }
        }
        Ok(())
    }

    fn binding_error(
        &self,
        owner: &Owner,
        rt: usize,
        property: &str,
        failure: BindingFailure,
    ) -> EvaluationError {
        match failure {
            BindingFailure::Kind {
                property: owner_property,
                found,
            } => EvaluationError::InvalidRuleInput {
                owner: owner.id.clone(),
                resource_type: self.rts[rt].id.clone(),
                property: property.to_owned(),
                owner_property,
                expected: "a scalar",
                found,
            },
            BindingFailure::Rule(reason) => EvaluationError::RuleFailed {
                owner: owner.id.clone(),
                resource_type: self.rts[rt].id.clone(),
                property: property.to_owned(),
                reason,
            },
        }
    }
}
