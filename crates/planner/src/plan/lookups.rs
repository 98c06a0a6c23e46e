//! The resources query rules search (SPEC §2, e.g. the OU named after the department),
//! indexed per rule by their normalized key; a change re-evaluates only the owners it may
//! concern.

use super::Planner;
#[cfg(test)]
use crate::targets::RefId;
use autoprov_core::{EntityTypeId, PropertyValue, Reference, Resource, ResourceId, ScalarValue};
#[cfg(test)]
use rustc_hash::FxHashMap;
use std::borrow::Cow;

impl Planner {
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
#[allow(clippy::disallowed_methods)] // tests may read the wall clock
mod lookup_tests {
    use super::*;
    use crate::demo;
    use crate::plan::PlanOptions;
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
        let _ = p.plan_incremental(
            chrono::Utc::now(),
            PlanOptions::default(),
            &crate::OrderStates::new(),
        );
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
