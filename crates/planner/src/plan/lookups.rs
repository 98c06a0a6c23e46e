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
    /// value a query rule matches on changes (a new OU, a renamed one), the owners whose
    /// search key equals the old or the new value are marked dirty (a reverse index of the
    /// owners' query keys; for a rule with a literal source, every owner); re-exporting an
    /// unchanged lookup resource, or one whose other values changed (a group's members),
    /// changes nothing and marks nobody. Each call costs the query rules of its entity type
    /// and the owners concerned, not a rebuild.
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

    /// Removes a lookup resource; when a query rule matched on it, the owners searching with
    /// its key are marked dirty.
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
    /// order); marks the owners searching with a changed key dirty.
    fn relink_lookup(
        &mut self,
        id: &ResourceId,
        old: Vec<(usize, Option<String>)>,
        new: Vec<(usize, Option<String>)>,
    ) {
        for ((i, old_key), (_, new_key)) in old.into_iter().zip(new) {
            if old_key == new_key {
                continue;
            }
            // The searches with the old key lose this resource, those with the new key find
            // it: only their owners may plan differently.
            for key in [&old_key, &new_key].into_iter().flatten() {
                self.mark_query_key_dirty(i, key);
            }
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
    use autoprov_core::OwnerId;
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

    /// The owners of the demo people whose department is `department`.
    fn in_department(p: &Planner, department: &str) -> Vec<OwnerId> {
        let mut v: Vec<OwnerId> = p
            .owners
            .values()
            .filter(|s| {
                s.owner
                    .to_owner(&s.id, &p.syms)
                    .get("department")
                    .and_then(PropertyValue::as_scalar)
                    .and_then(ScalarValue::as_str)
                    .is_some_and(|d| d.eq_ignore_ascii_case(department))
            })
            .map(|s| s.id.clone())
            .collect();
        v.sort();
        v
    }

    fn dirty(p: &Planner) -> Vec<OwnerId> {
        let mut v: Vec<OwnerId> = p.dirty.iter().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn an_unchanged_or_irrelevantly_changed_lookup_marks_nobody_dirty() {
        let mut p = planner(10);
        let sales = in_department(&p, "Sales");
        assert_eq!(sales.len(), 3, "demo people 0, 4 and 8");
        clean(&mut p);
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales"));
        assert_eq!(
            dirty(&p),
            sales,
            "a new OU changes the searches for its name, and only those"
        );
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
            dirty(&p),
            sales,
            "a renamed OU changes the searches for its old and new names"
        );
        clean(&mut p);
        p.remove_lookup(&"group".into(), &"CN=nothing".into());
        assert_eq!(
            p.dirty_count(),
            0,
            "removing what no rule searches changes nothing"
        );
        p.remove_lookup(&"organizationalUnit".into(), &"OU=Sales,DC=x".into());
        assert_eq!(p.dirty_count(), 0, "nobody searches for Sales-EU");
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales"));
        clean(&mut p);
        p.remove_lookup(&"organizationalUnit".into(), &"OU=Sales,DC=x".into());
        assert_eq!(dirty(&p), sales);
        clean(&mut p);
        p.upsert_lookup("organizationalUnit", ou("OU=Admins,DC=x", "Admins"));
        assert_eq!(
            p.dirty_count(),
            10,
            "a rule with a literal source searches the same key for everyone"
        );
    }

    #[test]
    fn a_moved_owner_is_filed_under_its_new_department_only() {
        let mut p = planner(8);
        let now = chrono::Utc::now();
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales"));
        p.upsert_lookup("organizationalUnit", ou("OU=IT,DC=x", "IT"));
        clean(&mut p);
        let mover = demo::people(8, now).remove(0).with("department", "IT");
        let id = mover.id.clone();
        p.upsert_owner(mover);
        clean(&mut p);
        p.upsert_lookup("organizationalUnit", ou("OU=Sales,DC=x", "Sales-EU"));
        assert!(!p.dirty.contains(&id), "the mover no longer searches Sales");
        clean(&mut p);
        p.upsert_lookup("organizationalUnit", ou("OU=IT,DC=x", "IT-EU"));
        assert!(p.dirty.contains(&id), "the mover searches IT now");
        clean(&mut p);
        p.remove_owner(&id);
        p.upsert_lookup("organizationalUnit", ou("OU=IT,DC=x", "IT"));
        assert!(!p.dirty.contains(&id), "a removed owner is filed nowhere");
        assert_eq!(p.query_key_owners(0, "it"), in_department(&p, "IT"));
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

        /// Renaming, adding and removing OUs re-plans exactly the owners whose department
        /// (the query key) is the OU's old or new name, and the plan after re-planning only
        /// them equals the plan of a planner that re-planned everyone.
        #[test]
        fn a_lookup_change_replans_exactly_the_owners_searching_its_keys(
            ops in proptest::collection::vec(
                prop_oneof![
                    (0u8..6, 0u8..6).prop_map(|(i, n)| Op::Upsert(i, n)),
                    (0u8..6).prop_map(Op::Remove),
                ],
                1..25,
            )
        ) {
            let names = ["Sales", "IT", "sales", "Finance", "HR", "Nowhere"];
            let now = chrono::Utc::now();
            let mut p = planner(24);
            let mut everyone = Planner::new(demo::planner_config()).unwrap();
            for slot in p.owners.values() {
                everyone.upsert_owner(slot.owner.to_owner(&slot.id, &p.syms));
            }
            let mut current: Vec<Option<u8>> = vec![None; 6];
            let _ = p.plan_incremental(now, PlanOptions::default(), &crate::OrderStates::new());
            let _ = everyone.plan_incremental(now, PlanOptions::default(), &crate::OrderStates::new());
            for op in ops {
                let (i, new) = match op {
                    Op::Upsert(i, n) => (i, Some(n)),
                    Op::Remove(i) => (i, None),
                };
                let old = current[i as usize];
                let id = format!("OU=o{i},DC=x");
                match new {
                    Some(n) => p.upsert_lookup(
                        "organizationalUnit",
                        ou(&id, names[n as usize]),
                    ),
                    None => p.remove_lookup(&"organizationalUnit".into(), &id.as_str().into()),
                }
                current[i as usize] = new;
                let key = |n: Option<u8>| n.map(|n| names[n as usize].to_lowercase());
                let mut expected: Vec<OwnerId> = Vec::new();
                if key(old) != key(new) {
                    for k in [key(old), key(new)].into_iter().flatten() {
                        expected.extend(in_department(&p, &k));
                    }
                }
                expected.sort();
                expected.dedup();
                prop_assert_eq!(dirty(&p), expected);
                let _ = p.plan_incremental(now, PlanOptions::default(), &crate::OrderStates::new());

                // The same change, with every owner re-planned.
                match new {
                    Some(n) => everyone.upsert_lookup(
                        "organizationalUnit",
                        ou(&id, names[n as usize]),
                    ),
                    None => everyone.remove_lookup(&"organizationalUnit".into(), &id.as_str().into()),
                }
                everyone.mark_all_dirty();
                let _ = everyone.plan_incremental(now, PlanOptions::default(), &crate::OrderStates::new());
                let full = everyone.current_plan(PlanOptions::default());
                // Not `prop_assert_eq!`: the whole plan would be printed.
                prop_assert!(
                    p.current_plan(PlanOptions::default()) == full,
                    "re-planning the owners concerned differs from re-planning everyone"
                );
            }
        }
    }
}
