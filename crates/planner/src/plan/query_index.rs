//! The reverse index of query rules: per rule, the normalized key each owner searches the
//! lookups with ⇒ those owners. A lookup resource that is added, renamed or removed changes
//! the result of exactly the searches for its old and new keys, so only the owners filed
//! under them are re-planned (instead of everyone).
//!
//! An owner's key is computed from the owner alone (its source binding, ignoring criteria and
//! time offsets, which only narrow who searches), so the owners whose plan reads a key are
//! always among those filed under it. A literal source is the same for everyone and is not
//! filed: a change under its key concerns every owner.

use super::Planner;
use autoprov_core::{Owner, OwnerId};
use rustc_hash::{FxHashMap, FxHashSet};

/// Per query rule: normalized key ⇒ owners searching with it.
#[derive(Debug, Default)]
pub(super) struct QueryOwners {
    per_rule: Vec<FxHashMap<String, FxHashSet<OwnerId>>>,
}

impl QueryOwners {
    pub(super) fn new(rules: usize) -> Self {
        Self {
            per_rule: vec![FxHashMap::default(); rules],
        }
    }

    /// The owners filed under `key` for rule `rule`.
    pub(super) fn owners(&self, rule: usize, key: &str) -> impl Iterator<Item = &OwnerId> {
        self.per_rule
            .get(rule)
            .and_then(|m| m.get(key))
            .into_iter()
            .flatten()
    }
}

impl Planner {
    /// The query keys of `owner`, one per query rule (`None` for a literal source or no key).
    pub(super) fn query_keys(&self, owner: &Owner) -> Vec<Option<String>> {
        self.policy
            .query_rules()
            .iter()
            .map(|rule| {
                (!rule.is_literal())
                    .then(|| rule.owner_key(owner))
                    .flatten()
            })
            .collect()
    }

    /// Files owner `id` under its query keys (`insert`) or takes it out of them.
    pub(super) fn file_query_keys(&mut self, id: &OwnerId, keys: &[Option<String>], insert: bool) {
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let map = &mut self.query_owners.per_rule[i];
            if insert {
                if let Some(set) = map.get_mut(key.as_str()) {
                    set.insert(id.clone());
                } else {
                    map.entry(key.clone()).or_default().insert(id.clone());
                }
            } else if let Some(set) = map.get_mut(key.as_str()) {
                set.remove(id);
                if set.is_empty() {
                    map.remove(key.as_str());
                }
            }
        }
    }

    /// Marks dirty the owners whose search with query rule `rule` may find something else
    /// now that a lookup resource left `key` or came to it.
    pub(super) fn mark_query_key_dirty(&mut self, rule: usize, key: &str) {
        let literal = self.policy.query_rules()[rule].is_literal();
        if literal {
            let literal_key = self.policy.query_rules()[rule]
                .owner_key(&Owner::new("", ""))
                .unwrap_or_default();
            if literal_key == key {
                self.mark_all_dirty();
            }
            return;
        }
        let owners: Vec<OwnerId> = self.query_owners.owners(rule, key).cloned().collect();
        self.dirty.extend(owners);
    }

    /// The owners filed under a query key (tests check the index against the owners).
    #[cfg(test)]
    pub(super) fn query_key_owners(&self, rule: usize, key: &str) -> Vec<OwnerId> {
        let mut v: Vec<OwnerId> = self.query_owners.owners(rule, key).cloned().collect();
        v.sort();
        v
    }
}
