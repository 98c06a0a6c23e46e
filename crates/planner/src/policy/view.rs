//! The owner being evaluated, with its properties found by interned name.
//!
//! Rules name owner properties (`department`, `login`); an `Owner` keeps its properties in a
//! `BTreeMap<String, _>`, where each lookup compares the name with the keys one after the
//! other. Evaluating one owner reads a dozen properties that way. The planner knows the
//! interned name of every property of the owner it rebuilt, in the map's order, and the rules'
//! property names are interned once when the role model is compiled: a lookup is then a scan
//! of a few integers.

use crate::targets::Sym;
use autoprov_core::{Owner, PropertyValue};

/// How many properties an owner may have to be indexed (more: found by name, as before).
const INDEXED: usize = 32;

/// An owner's properties with their interned names (the first `.1` slots are used).
type Indexed<'a> = ([(Sym, Option<&'a PropertyValue>); INDEXED], usize);

/// An owner being evaluated (it dereferences to the [`Owner`], which computed rules read).
pub(crate) struct OwnerView<'a> {
    owner: &'a Owner,
    /// The owner's properties with their interned names, in the owner's order; `None` when
    /// the names are not known (then properties are found by name).
    by_sym: Option<Indexed<'a>>,
}

impl<'a> OwnerView<'a> {
    /// An owner whose properties are found by name.
    pub(crate) fn new(owner: &'a Owner) -> Self {
        Self {
            owner,
            by_sym: None,
        }
    }

    /// An owner with the interned names of its properties, in the order of
    /// `owner.properties` (one per property, as the compact owner it was rebuilt from lists
    /// them). Anything else falls back to finding properties by name.
    pub(crate) fn indexed(owner: &'a Owner, syms: impl ExactSizeIterator<Item = Sym>) -> Self {
        if syms.len() != owner.properties.len() || syms.len() > INDEXED {
            return Self::new(owner);
        }
        let mut by_sym = [(Sym::MAX, None); INDEXED];
        let mut len = 0;
        for (slot, (sym, value)) in by_sym.iter_mut().zip(syms.zip(owner.properties.values())) {
            *slot = (sym, Some(value));
            len += 1;
        }
        Self {
            owner,
            by_sym: Some((by_sym, len)),
        }
    }

    /// The owner.
    pub(crate) fn owner(&self) -> &'a Owner {
        self.owner
    }

    /// The value of property `name`, whose interned name is `sym` when the role model knows
    /// it.
    pub(crate) fn get(&self, sym: Option<Sym>, name: &str) -> Option<&'a PropertyValue> {
        match (&self.by_sym, sym) {
            (Some((by_sym, len)), Some(sym)) => by_sym[..*len]
                .iter()
                .find(|(s, _)| *s == sym)
                .and_then(|(_, v)| *v),
            _ => self.owner.get(name),
        }
    }
}

impl std::ops::Deref for OwnerView<'_> {
    type Target = Owner;

    fn deref(&self) -> &Owner {
        self.owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Symbols;

    #[test]
    fn indexed_and_by_name_lookups_agree() {
        let mut syms = Symbols::default();
        let owner = Owner::new("u1", "u1")
            .with("department", "Sales")
            .with("login", "jdoe")
            .with("site", "Paris");
        let names: Vec<Sym> = owner.properties.keys().map(|k| syms.intern(k)).collect();
        let absent = syms.intern("title");
        let indexed = OwnerView::indexed(&owner, names.iter().copied());
        let by_name = OwnerView::new(&owner);
        for name in ["department", "login", "site", "title"] {
            let sym = syms.get(name);
            assert_eq!(indexed.get(sym, name), owner.get(name), "{name}");
            assert_eq!(by_name.get(sym, name), owner.get(name), "{name}");
        }
        assert_eq!(indexed.get(Some(absent), "title"), None);
        // A property the role model does not know is found by name.
        assert_eq!(indexed.get(None, "login"), owner.get("login"));
        // Names that do not match the owner's properties: found by name.
        let wrong = OwnerView::indexed(&owner, [absent].into_iter());
        assert_eq!(wrong.get(syms.get("site"), "site"), owner.get("site"));
    }
}
