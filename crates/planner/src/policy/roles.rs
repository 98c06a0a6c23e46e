//! Roles (SPEC §2): single roles, composite roles that grant them, and role rules that give
//! roles to owners by their dimensions.

use super::{CompiledPolicy, Criteria};
use autoprov_core::RoleId;
use std::collections::BTreeSet;

/// A single role: a named set of entitlements that type and navigation rules can require.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleRole {
    /// Its id.
    pub id: RoleId,
    /// Its readable identifier.
    pub identifier: String,
}

impl SingleRole {
    /// A single role.
    pub fn new(id: impl Into<RoleId>, identifier: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
        }
    }
}

/// A composite role: holding it grants each of its single roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompositeRole {
    /// Its id.
    pub id: RoleId,
    /// Its readable identifier.
    pub identifier: String,
    /// The single roles it grants.
    pub single_roles: BTreeSet<RoleId>,
}

impl CompositeRole {
    /// A composite role granting the given single roles.
    pub fn new(
        id: impl Into<RoleId>,
        identifier: impl Into<String>,
        single_roles: impl IntoIterator<Item = RoleId>,
    ) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
            single_roles: single_roles.into_iter().collect(),
        }
    }
}

/// A rule that gives owners a role when its criteria match (or forbids it, when denied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRule {
    /// The role given (single or composite).
    pub role: RoleId,
    /// Dimensions only.
    pub criteria: Criteria,
    /// Forbids the role instead (`IsDenied`).
    pub is_denied: bool,
}

impl RoleRule {
    /// A rule giving `role` to owners matching `criteria`.
    pub fn new(role: impl Into<RoleId>, criteria: Criteria) -> Self {
        Self {
            role: role.into(),
            criteria,
            is_denied: false,
        }
    }

    /// Makes it a denying rule.
    pub fn denied(mut self) -> Self {
        self.is_denied = true;
        self
    }
}

impl CompiledPolicy {
    /// The roles an owner holds: role rules, composite roles expanded, denied roles removed.
    pub(crate) fn roles_of(
        &self,
        owner: &super::OwnerView<'_>,
        scratch: &mut Vec<u32>,
    ) -> BTreeSet<RoleId> {
        let mut granted = BTreeSet::new();
        let mut denied = BTreeSet::new();
        if self.role_rules.is_empty() {
            return granted;
        }
        self.role_index.candidates(owner, scratch);
        for &i in scratch.iter() {
            let rule = &self.role_rules[i as usize];
            if self.role_index.matches(i, &rule.criteria, owner, &granted) {
                if rule.is_denied {
                    denied.insert(rule.role.clone());
                } else {
                    granted.insert(rule.role.clone());
                }
            }
        }
        let expanded: Vec<RoleId> = granted
            .iter()
            .filter_map(|r| self.composites.get(r))
            .flatten()
            .cloned()
            .collect();
        granted.extend(expanded);
        for d in &denied {
            granted.remove(d);
            if let Some(singles) = self.composites.get(d) {
                for s in singles {
                    granted.remove(s);
                }
            }
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RoleModel;
    use crate::targets::{References, Symbols};
    use autoprov_core::Owner;

    #[test]
    fn composite_roles_grant_their_single_roles_and_denials_win() {
        let model = RoleModel::new()
            .single_role(SingleRole::new("s1", "S1"))
            .single_role(SingleRole::new("s2", "S2"))
            .composite_role(CompositeRole::new("c1", "C1", ["s1".into(), "s2".into()]))
            .role_rule(RoleRule::new(
                "c1",
                Criteria::always().dimension("department", "Sales"),
            ))
            .role_rule(RoleRule::new("s2", Criteria::always().dimension("site", "Lyon")).denied());
        let mut syms = Symbols::default();
        let mut refs = References::default();
        let p = CompiledPolicy::compile(vec![], model, &mut syms, &mut refs).unwrap();
        let mut scratch = Vec::new();
        let paris = Owner::new("u1", "u1")
            .with("department", "Sales")
            .with("site", "Paris");
        let roles = p.roles_of(&super::super::OwnerView::new(&paris), &mut scratch);
        assert_eq!(
            roles.iter().map(RoleId::as_str).collect::<Vec<_>>(),
            ["c1", "s1", "s2"]
        );
        let lyon = paris.clone().with("site", "Lyon");
        let roles = p.roles_of(&super::super::OwnerView::new(&lyon), &mut scratch);
        assert!(!roles.contains(&RoleId::new("s2")));
    }
}
