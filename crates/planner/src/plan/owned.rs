//! What the planner holds as autoprov's own, by name ([`OwnedValues`]), for a store to keep:
//! a restarted planner restores it before its first plan, so that it does not take a leaver's
//! account or a mover's old groups for values that predate autoprov.

use super::Planner;
use super::found::Established;
use autoprov_core::{OwnedValues, OwnerId};

impl Planner {
    /// What the plans so far established as autoprov's own for `owner` (the resource types,
    /// properties and references they gave a value); `None` for an unknown owner.
    pub fn owned_values(&self, owner: &OwnerId) -> Option<OwnedValues> {
        let slot = self.owners.get(owner)?;
        let established = &slot.established;
        let rt_id = |rt: u32| self.policy.rts[rt as usize].id.clone();
        let mut v = OwnedValues::new(owner.clone());
        v.resource_types = established.rts().iter().map(|rt| rt_id(*rt)).collect();
        v.properties = established
            .props()
            .map(|(rt, sym)| (rt_id(rt), self.syms.name(sym).to_owned()))
            .collect();
        v.references = established
            .refs()
            .map(|(rt, sym, r)| {
                (
                    rt_id(rt),
                    self.syms.name(sym).to_owned(),
                    self.refs.get(r).clone(),
                )
            })
            .collect();
        Some(v)
    }

    /// Restores what a store kept for an owner already loaded (before the first plan of a
    /// restarted planner), and marks it dirty. Resource types the configuration no longer has
    /// are dropped. Returns whether the owner is known.
    pub fn restore_owned_values(&mut self, values: &OwnedValues) -> bool {
        if !self.owners.contains_key(&values.owner) {
            return false;
        }
        let rt_ids = &self.policy.rt_ids;
        let rt = |id| rt_ids.get(id).map(|i| *i as u32);
        let rts = values.resource_types.iter().filter_map(rt).collect();
        let props = values
            .properties
            .iter()
            .filter_map(|(t, p)| Some((rt(t)?, self.syms.intern(p))))
            .collect();
        let refs = values
            .references
            .iter()
            .filter_map(|(t, p, r)| Some((rt(t)?, self.syms.intern(p), self.refs.intern(r))))
            .collect();
        let established = Established::from_parts(rts, props, refs, &self.established_pool);
        if let Some(slot) = self.owners.get_mut(&values.owner) {
            slot.established = established;
            slot.owned_changed = false;
        }
        self.dirty.insert(values.owner.clone());
        true
    }

    /// Reports these owners again at the next [`Planner::take_owned_changes`] (their values
    /// could not be written).
    pub fn requeue_owned_changes(&mut self, owners: impl IntoIterator<Item = OwnerId>) {
        self.owned_changed.extend(owners);
    }

    /// The owners whose owned values changed since the last call (planned with a different
    /// expectation, or removed), sorted: what a store must write again
    /// ([`Planner::owned_values`]; an owner now unknown has nothing left).
    pub fn take_owned_changes(&mut self) -> Vec<OwnerId> {
        let mut v: Vec<OwnerId> = std::mem::take(&mut self.owned_changed)
            .into_iter()
            .collect();
        // Only a full plan flags slots (an incremental one files ids): scan them only then.
        if std::mem::take(&mut self.owned_scan) {
            for (id, slot) in self.owners.iter_mut() {
                if std::mem::take(&mut slot.owned_changed) {
                    v.push(id.clone());
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use crate::demo;
    use crate::plan::{PlanOptions, Planner};
    use chrono::{TimeZone, Utc};

    #[test]
    fn owned_values_round_trip_and_changes_are_reported_once() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
        let new_planner = || {
            let mut p = Planner::new(demo::planner_config()).unwrap();
            for ou in demo::ous() {
                p.upsert_lookup(
                    "organizationalUnit",
                    autoprov_core::Resource::new(demo::ou_dn(ou)).with("ou", ou),
                );
            }
            p
        };
        let mut planner = new_planner();
        let people = demo::people(3, now);
        for p in &people {
            planner.upsert_owner(p.clone());
        }
        let plan = planner.plan_full(now, PlanOptions::default(), &Default::default());
        assert!(plan.errors().next().is_none(), "{:?}", plan.errors().next());
        assert!(plan.orders().next().is_some());
        let changed = planner.take_owned_changes();
        assert_eq!(changed.len(), 3, "{changed:?}");
        assert!(planner.take_owned_changes().is_empty(), "reported once");
        let owned = planner.owned_values(&people[0].id).unwrap();
        assert!(!owned.resource_types.is_empty() && !owned.references.is_empty());

        // A restarted planner restores it and plans the same; nothing changed to write.
        let mut again = new_planner();
        for p in &people {
            again.upsert_owner(p.clone());
        }
        for p in &people {
            assert!(again.restore_owned_values(&planner.owned_values(&p.id).unwrap()));
        }
        assert_eq!(again.owned_values(&people[0].id).unwrap(), owned);
        let _ = again.plan_incremental(now, PlanOptions::default(), &Default::default());
        assert_eq!(again.owned_values(&people[0].id).unwrap(), owned);
        assert!(
            again.take_owned_changes().is_empty(),
            "restored values the plan confirms are not written again"
        );
        assert!(!again.restore_owned_values(&autoprov_core::OwnedValues::new("nobody")));

        // A removed owner is reported, with nothing left.
        planner.remove_owner(&people[1].id);
        assert_eq!(planner.take_owned_changes(), vec![people[1].id.clone()]);
        assert!(planner.owned_values(&people[1].id).is_none());
    }
}
