//! Convergence of a resource kept as a property map (a simulator, a cache, a toy system like
//! the guide's example package) towards what an order asks.

use autoprov_core::{Changes, PropertyChange, PropertyValue};
use std::collections::{BTreeMap, BTreeSet};

/// Writes an order's mono-valued properties ([`Changes::properties`]) into `values` — a set
/// scalar or reference replaces the value, a clear removes it — and returns the names of the
/// properties whose value changed (what [`Executed::changed`](crate::Executed::changed)
/// reports): none when `values` already held everything. Validate the order first: this
/// writes whatever it is given. Multi-valued navigations ([`Changes::navigations`]) are left
/// to the caller.
///
/// ```
/// use autoprov_connector::converge::converge_properties;
/// use autoprov_core::{Changes, PropertyValue};
/// use std::collections::BTreeMap;
/// let mut values = BTreeMap::from([("note".to_owned(), PropertyValue::from("old"))]);
/// let mut changes = Changes::default();
/// changes.set("name", "ann").clear("note");
/// let changed = converge_properties(&mut values, &changes);
/// assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["name", "note"]);
/// assert!(converge_properties(&mut values, &changes).is_empty(), "already converged");
/// ```
pub fn converge_properties(
    values: &mut BTreeMap<String, PropertyValue>,
    changes: &Changes,
) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    for (property, change) in &changes.properties {
        let new = match change {
            PropertyChange::Set(value) => Some(PropertyValue::Scalar(value.clone())),
            PropertyChange::SetReference(value) => Some(PropertyValue::Reference(value.clone())),
            PropertyChange::Clear => None,
        };
        if values.get(property) != new.as_ref() {
            match new {
                Some(value) => values.insert(property.clone(), value),
                None => values.remove(property),
            };
            changed.insert(property.clone());
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoprov_core::{Reference, ScalarValue};

    #[test]
    fn sets_references_clears_and_reports_only_what_changed() {
        let mut values = BTreeMap::from([
            ("kept".to_owned(), PropertyValue::from("same")),
            ("gone".to_owned(), PropertyValue::from(true)),
        ]);
        let mut c = Changes::default();
        c.set("kept", "same")
            .set("new", ScalarValue::Integer(3))
            .clear("gone")
            .clear("absent")
            .set_reference("manager", Reference::dn("CN=boss"));
        let changed = converge_properties(&mut values, &c);
        assert_eq!(
            changed.iter().map(String::as_str).collect::<Vec<_>>(),
            ["gone", "manager", "new"]
        );
        assert_eq!(values.get("kept"), Some(&PropertyValue::from("same")));
        assert_eq!(
            values.get("new"),
            Some(&PropertyValue::from(ScalarValue::Integer(3)))
        );
        assert_eq!(
            values.get("manager"),
            Some(&PropertyValue::Reference(Reference::dn("CN=boss")))
        );
        assert!(!values.contains_key("gone") && !values.contains_key("absent"));
        assert!(converge_properties(&mut values, &c).is_empty());
    }
}
