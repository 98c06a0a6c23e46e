//! Compiling the role model once per planner: rules resolved to resource type indexes and
//! interned names, indexed by their criteria, and resource types sorted by `DependsOn`.

use super::{
    CompiledNav, CompiledPolicy, Criteria, CriteriaIndex, Multiplicity, QueryRule, RoleModel,
    RtPolicy, ScalarBinding,
};
use crate::compare::ComparisonType;
use crate::error::ConfigError;
use crate::targets::{References, Sym, Symbols};
use autoprov_core::{ResourceType, ResourceTypeId, RoleId};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

impl RtPolicy {
    pub(crate) fn multiplicity(&self, sym: Sym) -> Option<Multiplicity> {
        if self.multi.binary_search(&sym).is_ok() {
            Some(Multiplicity::Multi)
        } else if self.mono.binary_search(&sym).is_ok() {
            Some(Multiplicity::Mono)
        } else {
            None
        }
    }

    pub(crate) fn scalar(&self, sym: Sym) -> Option<(ComparisonType, bool)> {
        self.scalars
            .binary_search_by_key(&sym, |(s, _, _)| *s)
            .ok()
            .map(|i| (self.scalars[i].1, self.scalars[i].2))
    }
}

pub(super) fn dependency_order(
    rts: &[ResourceType],
    ids: &FxHashMap<ResourceTypeId, usize>,
) -> Result<Vec<usize>, ConfigError> {
    // Depth-first with colouring; resource types sorted by id for a deterministic order.
    let mut sorted: Vec<usize> = (0..rts.len()).collect();
    sorted.sort_by(|a, b| rts[*a].id.cmp(&rts[*b].id));
    let mut state = vec![0u8; rts.len()];
    let mut order = Vec::with_capacity(rts.len());
    fn visit(
        i: usize,
        rts: &[ResourceType],
        ids: &FxHashMap<ResourceTypeId, usize>,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<(), ConfigError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(ConfigError::DependencyCycle {
                    resource_type: rts[i].id.clone(),
                });
            }
            _ => {}
        }
        state[i] = 1;
        if let Some(dep) = &rts[i].depends_on {
            visit(ids[dep], rts, ids, state, order)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in sorted {
        visit(i, rts, ids, &mut state, &mut order)?;
    }
    Ok(order)
}

impl CompiledPolicy {
    pub(crate) fn compile(
        resource_types: Vec<ResourceType>,
        model: RoleModel,
        syms: &mut Symbols,
        refs: &mut References,
    ) -> Result<Self, ConfigError> {
        let mut rt_ids = FxHashMap::default();
        for (i, rt) in resource_types.iter().enumerate() {
            rt.validate()?;
            if rt_ids.insert(rt.id.clone(), i).is_some() {
                return Err(ConfigError::DuplicateResourceType {
                    resource_type: rt.id.clone(),
                });
            }
        }
        let rt_of = |id: &ResourceTypeId, context: &str| {
            rt_ids
                .get(id)
                .copied()
                .ok_or_else(|| ConfigError::UnknownResourceType {
                    context: context.to_owned(),
                    resource_type: id.clone(),
                })
        };
        for rt in &resource_types {
            if let Some(dep) = &rt.depends_on {
                rt_of(dep, &format!("DependsOn of {}", rt.id))?;
            }
        }
        let dependency_order = dependency_order(&resource_types, &rt_ids)?;

        // Roles.
        let mut known_roles: BTreeSet<RoleId> =
            model.single_roles.iter().map(|r| r.id.clone()).collect();
        let mut composites = FxHashMap::default();
        for c in &model.composite_roles {
            for s in &c.single_roles {
                if !known_roles.contains(s) {
                    return Err(ConfigError::UnknownRole {
                        context: format!("composite role {}", c.id),
                        role: s.clone(),
                    });
                }
            }
            composites.insert(c.id.clone(), c.single_roles.iter().cloned().collect());
        }
        known_roles.extend(model.composite_roles.iter().map(|c| c.id.clone()));
        let check_role = |c: &Criteria, context: &str| -> Result<(), ConfigError> {
            match &c.single_role {
                Some(r) if !known_roles.contains(r) => Err(ConfigError::UnknownRole {
                    context: context.to_owned(),
                    role: r.clone(),
                }),
                _ => Ok(()),
            }
        };
        for r in &model.role_rules {
            if !known_roles.contains(&r.role) {
                return Err(ConfigError::UnknownRole {
                    context: "role rule".into(),
                    role: r.role.clone(),
                });
            }
            if r.criteria.single_role.is_some() {
                return Err(ConfigError::RoleCriterionInRoleRule {
                    role: r.role.clone(),
                });
            }
        }

        // Type rules.
        let mut type_rules = Vec::new();
        for r in &model.type_rules {
            let rt = rt_of(&r.resource_type, "type rule")?;
            check_role(&r.criteria, &format!("type rule for {}", r.resource_type))?;
            type_rules.push((rt, r.clone()));
        }

        // Per resource type properties.
        let mut per_rt = vec![RtPolicy::default(); resource_types.len()];
        let mut multiplicity: BTreeMap<(usize, Sym), Multiplicity> = BTreeMap::new();
        let mut scalar_props: BTreeMap<(usize, Sym), (ComparisonType, bool)> = BTreeMap::new();
        for ((rt_id, prop), cmp) in &model.scalars {
            let rt = rt_of(rt_id, &format!("declared scalar `{prop}`"))?;
            scalar_props.insert((rt, syms.intern(prop)), (*cmp, true));
        }
        for (i, r) in model.scalar_rules.iter().enumerate() {
            let rt = rt_of(
                &r.resource_type,
                &format!("scalar rule for `{}`", r.property),
            )?;
            check_role(&r.criteria, &format!("scalar rule for `{}`", r.property))?;
            let sym = syms.intern(&r.property);
            // The first rule of a property sets its comparison and mapping.
            scalar_props
                .entry((rt, sym))
                .or_insert((r.comparison, r.is_mapped));
            let rules = &mut per_rt[rt].scalar_rules;
            match rules.iter_mut().find(|(s, _)| *s == sym) {
                Some((_, list)) => list.push(i),
                None => rules.push((sym, vec![i])),
            }
        }
        // Explicit declarations first so that they win over rule defaults.
        for ((rt_id, prop), m) in &model.navigations {
            let rt = rt_of(rt_id, &format!("declared navigation `{prop}`"))?;
            multiplicity.insert((rt, syms.intern(prop)), *m);
        }
        for r in &model.navigation_rules {
            let rt = rt_of(
                &r.resource_type,
                &format!("navigation rule for `{}`", r.property),
            )?;
            check_role(
                &r.criteria,
                &format!("navigation rule for `{}`", r.property),
            )?;
            let sym = syms.intern(&r.property);
            multiplicity.entry((rt, sym)).or_insert(Multiplicity::Multi);
        }
        for r in &model.query_rules {
            let rt = rt_of(
                &r.resource_type,
                &format!("query rule for `{}`", r.property),
            )?;
            check_role(&r.criteria, &format!("query rule for `{}`", r.property))?;
            let sym = syms.intern(&r.property);
            multiplicity.entry((rt, sym)).or_insert(Multiplicity::Mono);
        }
        for (&(rt, sym), m) in &multiplicity {
            if scalar_props.contains_key(&(rt, sym)) {
                return Err(ConfigError::PropertyKindConflict {
                    resource_type: resource_types[rt].id.clone(),
                    property: syms.name(sym).to_owned(),
                });
            }
            match m {
                Multiplicity::Mono => per_rt[rt].mono.push(sym),
                Multiplicity::Multi => per_rt[rt].multi.push(sym),
            }
        }
        for (&(rt, sym), &(cmp, mapped)) in &scalar_props {
            per_rt[rt].scalars.push((sym, cmp, mapped));
        }
        for r in &model.navigation_rules {
            let rt = rt_ids[&r.resource_type];
            let sym = syms.intern(&r.property);
            per_rt[rt].navs.push(CompiledNav {
                sym,
                reference: refs.intern(&r.value),
                multi: multiplicity[&(rt, sym)] == Multiplicity::Multi,
                criteria: r.criteria.clone(),
                time_offset: r.time_offset,
            });
        }
        for (i, r) in model.query_rules.iter().enumerate() {
            let rt = rt_ids[&r.resource_type];
            let sym = syms.intern(&r.property);
            let multi = multiplicity[&(rt, sym)] == Multiplicity::Multi;
            per_rt[rt].queries.push((i, sym, multi));
        }
        // Time-offset precedence (the reference system's): among the rules of one property
        // that hold at the same time, an `After` rule wins over a `Before` one, then `Around`,
        // then `Default`; the configured order decides among rules of the same reference.
        for p in &mut per_rt {
            for (_, rules) in &mut p.scalar_rules {
                rules.sort_by_key(|&i| model.scalar_rules[i].time_offset.reference.precedence());
            }
            p.navs.sort_by_key(|n| n.time_offset.reference.precedence());
            p.queries
                .sort_by_key(|&(i, _, _)| model.query_rules[i].time_offset.reference.precedence());
        }
        for p in &mut per_rt {
            p.mono.sort_unstable();
            p.multi.sort_unstable();
            p.scalars.sort_unstable_by_key(|(s, _, _)| *s);
            p.scalar_rules.sort_unstable_by_key(|(s, _)| *s);
            p.nav_index = CriteriaIndex::build(p.navs.iter().map(|n| &n.criteria), syms);
        }

        let role_index = CriteriaIndex::build(model.role_rules.iter().map(|r| &r.criteria), syms);
        let type_index = CriteriaIndex::build(type_rules.iter().map(|(_, r)| &r.criteria), syms);
        // The owner properties the rules read, interned once: evaluation finds them by symbol.
        let mut source_sym = |b: &ScalarBinding| match b {
            ScalarBinding::OwnerProperty(p) => Some(syms.intern(p)),
            _ => None,
        };
        let scalar_syms = model
            .scalar_rules
            .iter()
            .map(|r| source_sym(&r.binding))
            .collect();
        let query_syms = model
            .query_rules
            .iter()
            .map(|r| source_sym(&r.source))
            .collect();
        Ok(Self {
            rts: resource_types,
            rt_ids,
            dependency_order,
            per_rt,
            composites,
            role_rules: model.role_rules,
            role_index,
            type_rules,
            type_index,
            scalar_rules: model.scalar_rules,
            scalar_syms,
            query_rules: model.query_rules,
            query_syms,
            owner_period: model.owner_period,
            time_zone: model.time_zone,
        })
    }

    /// The query rules (for building lookups).
    pub(crate) fn query_rules(&self) -> &[QueryRule] {
        &self.query_rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{NavigationRule, ScalarRule, TypeRule};
    use autoprov_core::Reference;

    #[test]
    fn configuration_errors_name_what_is_wrong() {
        let rt = ResourceType::new("ad", "AD", "User", "AD_Entry", "c");
        let model = RoleModel::new().type_rule(TypeRule::new("nope", Criteria::always()));
        let err = CompiledPolicy::compile(
            vec![rt.clone()],
            model,
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::UnknownResourceType { .. }),
            "{err}"
        );
        let mut a = rt.clone();
        a.depends_on = Some("mbx".into());
        let mut b = ResourceType::new("mbx", "MBX", "User", "Mailbox", "c");
        b.depends_on = Some("ad".into());
        let err = CompiledPolicy::compile(
            vec![a, b],
            RoleModel::new(),
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::DependencyCycle { .. }), "{err}");
        let model = RoleModel::new()
            .scalar_rule(ScalarRule::literal("ad", "x", "1"))
            .navigation_rule(NavigationRule::new("ad", "x", Reference::dn("CN=g")));
        let err = CompiledPolicy::compile(
            vec![rt],
            model,
            &mut Symbols::default(),
            &mut References::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::PropertyKindConflict { .. }),
            "{err}"
        );
    }
}
