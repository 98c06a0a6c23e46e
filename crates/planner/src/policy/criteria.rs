//! Criteria (SPEC §2): the owner dimensions (department, site, ...) and the single role a rule
//! requires, and the index that lets an owner check only the rules that can match it.

use super::view::OwnerView;
use crate::targets::{Sym, Symbols};
use autoprov_core::{Owner, PropertyValue, RoleId, ScalarValue};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Owner criteria of a rule: every listed dimension must hold one of its accepted values, and
/// the owner must hold `single_role` when set. Empty criteria match every owner.
///
/// Dimension values are compared with the owner property's text form (case-sensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Owner property ⇒ accepted values.
    pub dimensions: BTreeMap<String, BTreeSet<String>>,
    /// A role the owner must hold (single or composite).
    pub single_role: Option<RoleId>,
}

impl Criteria {
    /// Criteria that match every owner.
    pub fn always() -> Self {
        Self::default()
    }

    /// Adds an accepted value for a dimension (several calls on one dimension accept any of
    /// the values).
    pub fn dimension(mut self, property: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions
            .entry(property.into())
            .or_default()
            .insert(value.into());
        self
    }

    /// Requires a role.
    pub fn role(mut self, role: impl Into<RoleId>) -> Self {
        self.single_role = Some(role.into());
        self
    }
}

/// Rules indexed by one dimension of their criteria, so an owner only checks the rules whose
/// first dimension accepts its value (plus the rules without dimensions).
#[derive(Debug, Default, Clone)]
pub(super) struct CriteriaIndex {
    /// Per dimension: its owner property, interned, and accepted value ⇒ rules.
    by_dimension: Vec<(String, Sym, FxHashMap<String, Vec<u32>>)>,
    unindexed: Vec<u32>,
    /// Rules whose criteria the index lookup fully decides (at most one dimension, no role):
    /// being a candidate means matching.
    decided: Vec<bool>,
}

impl CriteriaIndex {
    pub(super) fn build<'a>(
        criteria: impl Iterator<Item = &'a Criteria>,
        syms: &mut Symbols,
    ) -> Self {
        let mut index = Self::default();
        for (i, c) in criteria.enumerate() {
            let i = i as u32;
            index
                .decided
                .push(c.dimensions.len() <= 1 && c.single_role.is_none());
            match c.dimensions.iter().next() {
                None => index.unindexed.push(i),
                Some((dim, values)) => {
                    let pos = match index.by_dimension.iter().position(|(d, _, _)| d == dim) {
                        Some(p) => p,
                        None => {
                            let sym = syms.intern(dim);
                            index
                                .by_dimension
                                .push((dim.clone(), sym, FxHashMap::default()));
                            index.by_dimension.len() - 1
                        }
                    };
                    for v in values {
                        index.by_dimension[pos]
                            .2
                            .entry(v.clone())
                            .or_default()
                            .push(i);
                    }
                }
            }
        }
        index
    }

    /// Rule indices that may match, in declaration order.
    pub(super) fn candidates(&self, owner: &OwnerView<'_>, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.unindexed);
        for (dim, sym, values) in &self.by_dimension {
            if let Some(text) = owner.get(Some(*sym), dim).and_then(value_text)
                && let Some(rules) = values.get(text.as_ref())
            {
                out.extend_from_slice(rules);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Whether candidate `i` matches: decided by the index, or by checking its criteria.
    pub(super) fn matches(
        &self,
        i: u32,
        c: &Criteria,
        owner: &Owner,
        roles: &BTreeSet<RoleId>,
    ) -> bool {
        self.decided[i as usize] || criteria_match(c, owner, roles)
    }
}

fn value_text(value: &PropertyValue) -> Option<Cow<'_, str>> {
    match value {
        PropertyValue::Scalar(ScalarValue::String(s)) => Some(Cow::Borrowed(s)),
        PropertyValue::Scalar(other) => Some(Cow::Owned(other.to_string())),
        PropertyValue::Reference(r) => Some(Cow::Owned(r.to_string())),
        PropertyValue::References(_) => None,
    }
}

pub(super) fn criteria_match(c: &Criteria, owner: &Owner, roles: &BTreeSet<RoleId>) -> bool {
    if let Some(role) = &c.single_role
        && !roles.contains(role)
    {
        return false;
    }
    c.dimensions.iter().all(|(dim, accepted)| {
        owner
            .get(dim)
            .and_then(value_text)
            .is_some_and(|v| accepted.contains(v.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_need_every_dimension_and_the_role() {
        let owner = Owner::new("u1", "u1")
            .with("department", "Sales")
            .with("site", "Paris");
        let roles: BTreeSet<RoleId> = [RoleId::new("r1")].into_iter().collect();
        let c = Criteria::always()
            .dimension("department", "Sales")
            .dimension("department", "HR");
        assert!(criteria_match(&c, &owner, &roles));
        assert!(!criteria_match(
            &c.clone().dimension("site", "Lyon"),
            &owner,
            &roles
        ));
        assert!(criteria_match(&c.clone().role("r1"), &owner, &roles));
        assert!(!criteria_match(&c.role("r2"), &owner, &roles));
    }
}
