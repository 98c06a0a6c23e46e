//! Compact storage of owners (the planner's working copy).
//!
//! An `Owner` keeps its properties in a `BTreeMap<String, PropertyValue>`: a tree node of about
//! 600 bytes plus a name and a value string per property, about 1.3 KB for an identity of nine
//! properties. A planner of a million owners would spend more than a gigabyte on them, most of
//! it on copies of the same names and of the same few values (departments, sites, titles).
//! The planner keeps each owner as a sorted array of interned property names and values
//! instead; a value that most owners share (a department) is one shared string, a value of its
//! own (a login) one boxed string. An `Owner` is rebuilt only where the role model needs one
//! (evaluation, whose computed rules read `&Owner`), into a scratch owner that is refilled in
//! place, owner after owner, without allocating when the owners have the same properties.

use crate::targets::{Sequence, Sym, Symbols, range};
use autoprov_core::{EntityTypeId, Owner, OwnerId, PropertyValue, ScalarValue};
use rustc_hash::FxHashSet;
use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A pooled string: one pointer (an `Arc<str>` is two), hashed and compared as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SharedStr(Arc<String>);

impl SharedStr {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a holder other than the pool is left.
    fn is_held(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// One property value of a compact owner (16 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnerValue {
    /// A string shared with the owners holding the same value (see [`StringPool`]).
    Shared(SharedStr),
    /// A string of its own (a property whose values are mostly distinct, such as a login):
    /// its range in the owner's text.
    Text(u32, u32),
    /// Any other value (numbers, dates, references, secrets): rare on owners, kept as is.
    Other(Box<PropertyValue>),
}

impl OwnerValue {
    fn as_text<'a>(&'a self, text: &'a str) -> Option<&'a str> {
        match self {
            Self::Shared(s) => Some(s.as_str()),
            Self::Text(start, end) => text.get(*start as usize..*end as usize),
            Self::Other(_) => None,
        }
    }

    fn to_property(&self, text: &str) -> PropertyValue {
        match (self, self.as_text(text)) {
            (Self::Other(v), _) => (**v).clone(),
            (_, Some(s)) => PropertyValue::Scalar(ScalarValue::String(s.to_owned())),
            (_, None) => PropertyValue::Scalar(ScalarValue::String(String::new())),
        }
    }

    /// Writes this value over `slot`, reusing its string's buffer when both are strings.
    fn write_into(&self, slot: &mut PropertyValue, text: &str) {
        if let Some(text) = self.as_text(text)
            && let PropertyValue::Scalar(ScalarValue::String(s)) = slot
        {
            s.clear();
            s.push_str(text);
            return;
        }
        *slot = self.to_property(text);
    }
}

/// The length of a property map's string values (an upper bound of an owner's own text).
fn text_len(properties: &BTreeMap<String, PropertyValue>) -> usize {
    properties
        .values()
        .map(|v| match v {
            PropertyValue::Scalar(ScalarValue::String(s)) => s.len(),
            _ => 0,
        })
        .sum()
}

/// An owner as the planner keeps it (its id is the key it is filed under).
#[derive(Debug, Clone)]
pub(crate) struct CompactOwner {
    /// The identifier, then the strings of the owner's own values (one heap block).
    text: Box<str>,
    identifier_len: u32,
    entity_type: Option<EntityTypeId>,
    /// In the order of the owner's property names (a `BTreeMap`'s order).
    values: Box<[(Sym, OwnerValue)]>,
}

impl CompactOwner {
    /// Compacts an owner, taking it by value: its shared strings move into the pool.
    pub(crate) fn new(owner: Owner, syms: &mut Symbols, pool: &mut StringPool) -> Self {
        let Owner {
            id: _,
            identifier,
            entity_type,
            properties,
        } = owner;
        let capacity = identifier.len() + text_len(&properties);
        Self::build(
            &identifier,
            entity_type,
            (properties.len(), capacity),
            properties
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v))),
            syms,
            pool,
        )
    }

    /// [`CompactOwner::new`] from a borrowed owner: only what the planner keeps is copied (a
    /// caller streaming owners through one buffer allocates nothing per owner for them).
    pub(crate) fn new_ref(owner: &Owner, syms: &mut Symbols, pool: &mut StringPool) -> Self {
        Self::build(
            &owner.identifier,
            owner.entity_type.clone(),
            (
                owner.properties.len(),
                owner.identifier.len() + text_len(&owner.properties),
            ),
            owner
                .properties
                .iter()
                .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v))),
            syms,
            pool,
        )
    }

    fn build<'a>(
        identifier: &str,
        entity_type: Option<EntityTypeId>,
        (len, capacity): (usize, usize),
        properties: impl Iterator<Item = (Cow<'a, str>, Cow<'a, PropertyValue>)>,
        syms: &mut Symbols,
        pool: &mut StringPool,
    ) -> Self {
        let mut text = String::with_capacity(capacity);
        text.push_str(identifier);
        let identifier_len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        let mut values = Vec::with_capacity(len);
        for (i, (name, value)) in properties.enumerate() {
            let sym = syms.intern_at(Sequence::Owner, i, &name);
            let value = match value {
                Cow::Owned(PropertyValue::Scalar(ScalarValue::String(s))) => {
                    Self::text_value(sym, Cow::Owned(s), &mut text, pool)
                }
                Cow::Borrowed(PropertyValue::Scalar(ScalarValue::String(s))) => {
                    Self::text_value(sym, Cow::Borrowed(s), &mut text, pool)
                }
                other => OwnerValue::Other(Box::new(other.into_owned())),
            };
            values.push((sym, value));
        }
        Self {
            text: text.into_boxed_str(),
            identifier_len,
            entity_type: entity_type.map(|e| pool.entity_type(e)),
            values: values.into_boxed_slice(),
        }
    }

    fn text_value(
        sym: Sym,
        s: Cow<'_, str>,
        text: &mut String,
        pool: &mut StringPool,
    ) -> OwnerValue {
        match pool.text(sym, s) {
            PooledText::Shared(s) => OwnerValue::Shared(s),
            PooledText::Own(s) => {
                let start = text.len();
                text.push_str(&s);
                match range(start, text.len()) {
                    Some((a, b)) => OwnerValue::Text(a, b),
                    // Beyond 4 GiB of text: kept whole.
                    None => OwnerValue::Other(Box::new(s.into_owned().into())),
                }
            }
        }
    }

    fn identifier(&self) -> &str {
        self.text
            .get(..self.identifier_len as usize)
            .unwrap_or_default()
    }

    /// The interned names of the owner's properties, in the order of its `Owner` form.
    pub(crate) fn syms(&self) -> impl ExactSizeIterator<Item = Sym> + '_ {
        self.values.iter().map(|(sym, _)| *sym)
    }

    /// The owner, rebuilt.
    pub(crate) fn to_owner(&self, id: &OwnerId, syms: &Symbols) -> Owner {
        let mut scratch = OwnerScratch::default();
        self.fill(id, syms, &mut scratch);
        scratch.owner
    }

    /// Makes `out` equal to this owner, reusing its allocations: when `out` holds the same
    /// property names (the owners of one source usually do), only the value strings are
    /// rewritten in their buffers.
    pub(crate) fn fill(&self, id: &OwnerId, syms: &Symbols, out: &mut OwnerScratch) {
        let OwnerScratch { owner: out, names } = out;
        if out.id != *id {
            out.id = id.clone();
        }
        out.identifier.clear();
        out.identifier.push_str(self.identifier());
        if out.entity_type != self.entity_type {
            out.entity_type.clone_from(&self.entity_type);
        }
        // The names are compared as symbols: the scratch remembers those it was filled with.
        let same_names = names.len() == self.values.len()
            && out.properties.len() == self.values.len()
            && names
                .iter()
                .zip(self.values.iter())
                .all(|(name, (sym, _))| name == sym);
        if same_names {
            for (slot, (_, value)) in out.properties.values_mut().zip(self.values.iter()) {
                value.write_into(slot, &self.text);
            }
        } else {
            out.properties = self
                .values
                .iter()
                .map(|(sym, value)| (syms.name(*sym).to_owned(), value.to_property(&self.text)))
                .collect();
            names.clear();
            names.extend(self.values.iter().map(|(sym, _)| *sym));
        }
    }
}

/// An owner rebuilt from its compact form ([`CompactOwner::fill`]), refilled owner after
/// owner: it remembers the interned names of its properties, so that an owner with the same
/// names only rewrites the values.
#[derive(Debug)]
pub(crate) struct OwnerScratch {
    /// The owner last filled in.
    pub(crate) owner: Owner,
    /// The interned names of `owner`'s properties, in order.
    names: Vec<Sym>,
}

impl Default for OwnerScratch {
    fn default() -> Self {
        Self {
            owner: Owner::new("", ""),
            names: Vec::new(),
        }
    }
}

/// How often a property's values were seen and how many were new: a property whose values
/// are mostly distinct (a login, an employee number) is not worth sharing.
#[derive(Debug, Clone, Copy, Default)]
struct SymStats {
    seen: u32,
    new: u32,
    unshared: bool,
}

/// Values seen before a property's sharing is judged.
const JUDGE_AFTER: u32 = 1024;

/// The shared strings of owners and targets, and the owners' entity types.
#[derive(Debug, Default)]
pub(crate) struct StringPool {
    strings: FxHashSet<SharedStr>,
    stats: Vec<SymStats>,
    entity_types: FxHashSet<EntityTypeId>,
    /// The pool's size after its last sweep.
    swept: usize,
}

/// A string kept by the pool: shared, or its own.
pub(crate) enum PooledText<'a> {
    /// Shared with the other holders of the same value.
    Shared(SharedStr),
    /// Its own (its property's values are mostly distinct), handed back.
    Own(Cow<'a, str>),
}

impl StringPool {
    /// Pools a string value of property `sym` (an owner's or a target's); a new shared value
    /// is copied only when borrowed.
    pub(crate) fn text<'a>(&mut self, sym: Sym, s: Cow<'a, str>) -> PooledText<'a> {
        let i = sym as usize;
        if self.stats.len() <= i {
            self.stats.resize(i + 1, SymStats::default());
        }
        let stats = &mut self.stats[i];
        if stats.unshared {
            return PooledText::Own(s);
        }
        stats.seen = stats.seen.saturating_add(1);
        if let Some(shared) = self.strings.get(s.as_ref()) {
            return PooledText::Shared(shared.clone());
        }
        stats.new = stats.new.saturating_add(1);
        // Mostly new values: each would cost a pool entry and save nothing.
        if stats.seen >= JUDGE_AFTER && u64::from(stats.new) * 2 > u64::from(stats.seen) {
            stats.unshared = true;
            return PooledText::Own(s);
        }
        let shared = SharedStr(Arc::new(s.into_owned()));
        self.strings.insert(shared.clone());
        PooledText::Shared(shared)
    }

    /// Whether the values of property `sym` are kept by their holders, not shared (judged
    /// mostly distinct): [`StringPool::text`] hands them back.
    pub(crate) fn owns(&self, sym: Sym) -> bool {
        self.stats.get(sym as usize).is_some_and(|s| s.unshared)
    }

    fn entity_type(&mut self, e: EntityTypeId) -> EntityTypeId {
        if let Some(shared) = self.entity_types.get(&e) {
            return shared.clone();
        }
        self.entity_types.insert(e.clone());
        e
    }

    /// Drops the strings no owner holds any more, once the pool has doubled since the last
    /// sweep (replaced and removed owners leave theirs behind).
    pub(crate) fn sweep_if_grown(&mut self) {
        if self.strings.len() <= 2 * self.swept.max(JUDGE_AFTER as usize) {
            return;
        }
        self.strings.retain(SharedStr::is_held);
        self.swept = self.strings.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoprov_core::Reference;

    #[test]
    fn owners_round_trip_through_the_compact_form() {
        let mut syms = Symbols::default();
        let mut pool = StringPool::default();
        let a = Owner::new("u1", "alice")
            .with_entity_type("Directory_User")
            .with("department", "Sales")
            .with("login", "alice")
            .with("manager", Reference::dn("CN=bob"))
            .with("level", 3i64);
        let b = Owner::new("u2", "bob")
            .with("department", "Sales")
            .with("site", "Paris");
        let ca = CompactOwner::new(a.clone(), &mut syms, &mut pool);
        let cb = CompactOwner::new(b.clone(), &mut syms, &mut pool);
        assert_eq!(ca.to_owner(&a.id, &syms), a);
        assert_eq!(cb.to_owner(&b.id, &syms), b);
        // Compacted from a borrowed owner: the same owner, sharing the same strings.
        let ra = CompactOwner::new_ref(&a, &mut syms, &mut pool);
        assert_eq!(ra.to_owner(&a.id, &syms), a);
        assert_eq!(ra.values, ca.values);
        assert_eq!(ra.text, ca.text);
        // One scratch owner refilled with owners of other shapes and the same shape.
        let mut scratch = OwnerScratch::default();
        for (c, o) in [(&ca, &a), (&cb, &b), (&cb, &b), (&ca, &a), (&ca, &a)] {
            c.fill(&o.id, &syms, &mut scratch);
            assert_eq!(&scratch.owner, o);
        }
        // The department is one shared string.
        let dept = |c: &CompactOwner| match &c.values[0].1 {
            OwnerValue::Shared(s) => Arc::as_ptr(&s.0),
            other => panic!("{other:?}"),
        };
        assert_eq!(dept(&ca), dept(&cb));
    }

    #[test]
    fn an_owner_value_is_two_words() {
        assert_eq!(std::mem::size_of::<OwnerValue>(), 16);
        assert_eq!(std::mem::size_of::<(Sym, OwnerValue)>(), 24);
    }

    #[test]
    fn mostly_distinct_values_stop_being_shared_and_the_pool_is_swept() {
        let mut syms = Symbols::default();
        let mut pool = StringPool::default();
        let owners: Vec<CompactOwner> = (0..3 * JUDGE_AFTER)
            .map(|i| {
                let o = Owner::new(format!("u{i}"), "x")
                    .with("login", format!("user{i}"))
                    .with("department", format!("D{}", i % 7));
                CompactOwner::new(o, &mut syms, &mut pool)
            })
            .collect();
        let login = |c: &CompactOwner| matches!(c.values[1].1, OwnerValue::Text(..));
        assert!(!login(&owners[0]), "shared until judged");
        assert!(
            login(owners.last().unwrap()),
            "logins are not shared once judged"
        );
        assert!(
            owners
                .iter()
                .all(|c| matches!(c.values[0].1, OwnerValue::Shared(_)))
        );
        assert_eq!(pool.strings.len(), JUDGE_AFTER as usize - 1 + 7);
        drop(owners);
        pool.swept = 0;
        pool.strings
            .extend((0..2 * JUDGE_AFTER).map(|i| SharedStr(Arc::new(format!("x{i}")))));
        pool.sweep_if_grown();
        assert!(pool.strings.is_empty(), "no owner holds them any more");
    }
}
