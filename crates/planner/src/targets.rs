//! Compact, indexed storage of actual targets (the planner's working copy).
//!
//! A `Resource` keeps every reference as its own map, which costs about half a kilobyte per
//! group membership. An organization of a million accounts with ten groups each would not fit,
//! so the planner interns property names and references once and keeps targets as sorted
//! arrays of small ids. `Resource`s are rebuilt only for the targets an order touches.

use crate::compare::ComparisonType;
use crate::few::Few;
use crate::owners::{PooledText, SharedStr, StringPool};
use autoprov_core::{
    EntityTypeId, PropertyValue, Reference, Resource, ResourceId, ScalarValue, StableId,
};
use rustc_hash::FxHashMap;
use smol_str::SmolStr;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// An interned property name.
pub(crate) type Sym = u32;
/// An interned reference.
pub(crate) type RefId = u32;

/// Interned property names.
#[derive(Debug, Default, Clone)]
pub(crate) struct Symbols {
    map: FxHashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
    /// Per [`Sequence`]: the symbols of the last owner's or target's properties, in order.
    last: [Vec<Sym>; 2],
    /// The symbols of the target being compacted ([`Target::compact`]), reused.
    scratch: Vec<Sym>,
}

/// Which kind of property list is being interned: owners and targets of one source list the
/// same names in the same (sorted) order, one after the other.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sequence {
    Owner = 0,
    Target = 1,
}

impl Symbols {
    /// [`Symbols::intern`] for the `i`-th property of an owner or a target: when it is named
    /// like the `i`-th property of the previous one (the usual case during a load), the name is
    /// compared once instead of hashed and looked up.
    pub(crate) fn intern_at(&mut self, seq: Sequence, i: usize, name: &str) -> Sym {
        let last = &self.last[seq as usize];
        if let Some(&sym) = last.get(i)
            && *self.names[sym as usize] == *name
        {
            return sym;
        }
        let sym = self.intern(name);
        let last = &mut self.last[seq as usize];
        if i < last.len() {
            last[i] = sym;
        } else if i == last.len() {
            last.push(sym);
        }
        sym
    }

    pub(crate) fn intern(&mut self, name: &str) -> Sym {
        if let Some(s) = self.map.get(name) {
            return *s;
        }
        let s = self.names.len() as Sym;
        self.names.push(name.into());
        self.map.insert(name.into(), s);
        s
    }

    pub(crate) fn get(&self, name: &str) -> Option<Sym> {
        self.map.get(name).copied()
    }

    pub(crate) fn name(&self, sym: Sym) -> &str {
        &self.names[sym as usize]
    }
}

/// Interned references.
#[derive(Debug, Clone)]
pub(crate) struct References {
    map: FxHashMap<Reference, RefId>,
    list: Vec<Reference>,
    /// The last references interned, by their shared address: an export hands over the same
    /// shared group references target after target, and hashing a reference's keys (and
    /// comparing them) cost more than the rest of a membership's load. Each entry holds a
    /// clone, so its address cannot be reused by another reference while it is cached.
    recent: Box<[Option<(Reference, RefId)>]>,
}

/// Entries of [`References::recent`] (a power of two; 64 KiB). With 512, a load of the
/// synthetic organization (371 shared group and OU references) missed the cache on 19% of its
/// references, colliding ones evicting each other; with 4,096 on 1.5%, and the load ran 7%
/// fewer instructions (callgrind, 30,000 identities).
const RECENT: usize = 4096;

impl Default for References {
    fn default() -> Self {
        Self {
            map: FxHashMap::default(),
            list: Vec::new(),
            recent: vec![None; RECENT].into_boxed_slice(),
        }
    }
}

impl References {
    pub(crate) fn intern(&mut self, r: &Reference) -> RefId {
        // Allocations are 16-byte aligned: the low bits say nothing.
        let slot = (r.shared_address() >> 4) % RECENT;
        if let Some((cached, id)) = &self.recent[slot]
            && cached.same_as(r)
        {
            return *id;
        }
        let id = match self.map.get(r) {
            Some(id) => *id,
            None => {
                let id = self.list.len() as RefId;
                self.list.push(r.clone());
                self.map.insert(r.clone(), id);
                id
            }
        };
        self.recent[slot] = Some((r.clone(), id));
        id
    }

    pub(crate) fn get(&self, id: RefId) -> &Reference {
        &self.list[id as usize]
    }
}

/// One value of a compact target (16 bytes: strings, the common scalars, are pooled; a
/// target's own strings and references are ranges of its blocks).
#[derive(Debug, Clone)]
pub(crate) enum CompactValue {
    /// A string shared with the other holders of the same value ([`StringPool`]).
    Shared(SharedStr),
    /// A string of its own: its range in the target's text.
    Text(u32, u32),
    /// Any other scalar.
    Scalar(Box<ScalarValue>),
    Ref(RefId),
    /// Its range in the target's references: sorted, without duplicates.
    Refs(u32, u32),
}

/// A scalar value of a compact target, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScalarRef<'a> {
    /// A string.
    Text(&'a str),
    /// Any other scalar.
    Value(&'a ScalarValue),
}

impl<'a> ScalarRef<'a> {
    /// The value, owned.
    pub(crate) fn to_value(self) -> ScalarValue {
        match self {
            Self::Text(s) => ScalarValue::String(s.to_owned()),
            Self::Value(v) => v.clone(),
        }
    }

    /// Whether `expected` equals this value under `comparison`
    /// ([`ComparisonType::scalar_equals`]`(expected, self)`).
    pub(crate) fn equals(self, comparison: ComparisonType, expected: &ScalarValue) -> bool {
        match (self, expected) {
            (Self::Text(a), ScalarValue::String(x)) => comparison.text_equals(x, a),
            (Self::Text(_), _) => false,
            (Self::Value(a), x) => comparison.scalar_equals(x, a),
        }
    }

    /// Whether this is exactly `value`.
    pub(crate) fn is(self, value: &ScalarValue) -> bool {
        match (self, value) {
            (Self::Text(a), ScalarValue::String(v)) => a == v,
            (Self::Text(_), _) => false,
            (Self::Value(a), v) => a == v,
        }
    }

    /// The value's key under `comparison` ([`ComparisonType::key_of`]), inline when short
    /// ([`ComparisonType::key_smol`]).
    pub(crate) fn key_smol(self, comparison: ComparisonType) -> Option<SmolStr> {
        match self {
            Self::Text(s) => Some(comparison.key_smol(s)),
            Self::Value(v) => comparison.key_of_smol(v),
        }
    }
}

/// A target as the planner keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) id: ResourceId,
    pub(crate) entity_type: Option<EntityTypeId>,
    pub(crate) stable_id: Option<StableId>,
    /// Sorted by symbol.
    pub(crate) values: Box<[(Sym, CompactValue)]>,
    /// The strings of its own values, one block ([`CompactValue::Text`] ranges).
    text: Box<str>,
    /// The references of its multi-valued values, one block ([`CompactValue::Refs`] ranges).
    ids: Box<[RefId]>,
}

/// The blocks a target's values are written into while it is compacted.
struct Blocks {
    text: String,
    ids: Vec<RefId>,
}

/// A range of a block, as `u32`s (a target or an owner holds less than 4 GiB of text).
pub(crate) fn range(start: usize, end: usize) -> Option<(u32, u32)> {
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

impl Blocks {
    fn compact_value(
        &mut self,
        sym: Sym,
        value: Cow<'_, PropertyValue>,
        refs: &mut References,
        pool: &mut StringPool,
    ) -> CompactValue {
        let value = match value {
            Cow::Owned(PropertyValue::Scalar(ScalarValue::String(s))) => {
                return self.text_value(sym, Cow::Owned(s), pool);
            }
            Cow::Owned(PropertyValue::Scalar(s)) => return CompactValue::Scalar(Box::new(s)),
            other => other,
        };
        match value.as_ref() {
            PropertyValue::Scalar(ScalarValue::String(s)) => {
                self.text_value(sym, Cow::Borrowed(s.as_str()), pool)
            }
            PropertyValue::Scalar(s) => CompactValue::Scalar(Box::new(s.clone())),
            PropertyValue::Reference(r) => CompactValue::Ref(refs.intern(r)),
            PropertyValue::References(rs) => {
                let start = self.ids.len();
                self.ids.extend(rs.iter().map(|r| refs.intern(r)));
                let mine = &mut self.ids[start..];
                mine.sort_unstable();
                let mut kept = 0;
                for i in 0..mine.len() {
                    if i == 0 || mine[i] != mine[kept - 1] {
                        mine[kept] = mine[i];
                        kept += 1;
                    }
                }
                self.ids.truncate(start + kept);
                match range(start, self.ids.len()) {
                    Some((a, b)) => CompactValue::Refs(a, b),
                    None => CompactValue::Refs(0, 0),
                }
            }
        }
    }

    fn text_value(&mut self, sym: Sym, s: Cow<'_, str>, pool: &mut StringPool) -> CompactValue {
        match pool.text(sym, s) {
            PooledText::Shared(s) => CompactValue::Shared(s),
            PooledText::Own(s) => {
                let start = self.text.len();
                self.text.push_str(&s);
                match range(start, self.text.len()) {
                    Some((a, b)) => CompactValue::Text(a, b),
                    None => CompactValue::Scalar(Box::new(ScalarValue::String(s.into_owned()))),
                }
            }
        }
    }
}

impl Target {
    pub(crate) fn compact(
        resource: &Resource,
        syms: &mut Symbols,
        refs: &mut References,
        pool: &mut StringPool,
    ) -> Self {
        let (order, blocks) = Self::prepare(&resource.values, syms, pool);
        Self::finish(
            resource.id.clone(),
            resource.entity_type.clone(),
            resource.stable_id.clone(),
            (order, blocks),
            resource.values.values().map(Cow::Borrowed),
            syms,
            refs,
            pool,
        )
    }

    /// [`Target::compact`] taking the resource by value: its shared strings are moved into
    /// the pool, not copied.
    pub(crate) fn compact_owned(
        resource: Resource,
        syms: &mut Symbols,
        refs: &mut References,
        pool: &mut StringPool,
    ) -> Self {
        let Resource {
            id,
            entity_type,
            stable_id,
            values,
        } = resource;
        let prepared = Self::prepare(&values, syms, pool);
        Self::finish(
            id,
            entity_type,
            stable_id,
            prepared,
            values.into_values().map(Cow::Owned),
            syms,
            refs,
            pool,
        )
    }

    /// The symbols of a resource's names, in the map's order (interned by reference, into the
    /// reused `syms.scratch`), and blocks sized for its values: the text for the values of the
    /// properties judged not shared only, the references for every multi-valued value.
    fn prepare(
        values: &BTreeMap<String, PropertyValue>,
        syms: &mut Symbols,
        pool: &StringPool,
    ) -> (Vec<Sym>, Blocks) {
        let mut order = std::mem::take(&mut syms.scratch);
        order.clear();
        order.extend(
            values
                .keys()
                .enumerate()
                .map(|(i, name)| syms.intern_at(Sequence::Target, i, name)),
        );
        let (text_len, ids_len) =
            order
                .iter()
                .zip(values.values())
                .fold((0, 0), |(t, i), (sym, v)| match v {
                    PropertyValue::Scalar(ScalarValue::String(s)) if pool.owns(*sym) => {
                        (t + s.len(), i)
                    }
                    PropertyValue::References(rs) => (t, i + rs.len()),
                    _ => (t, i),
                });
        let blocks = Blocks {
            text: String::with_capacity(text_len),
            ids: Vec::with_capacity(ids_len),
        };
        (order, blocks)
    }

    /// Compacts `values` (in the order [`Target::prepare`] interned their names) straight
    /// into an array of the exact size, sorted by symbol last (a source's names are interned
    /// in no particular order), and hands the symbols' buffer back to `syms`.
    #[allow(clippy::too_many_arguments)]
    fn finish<'v>(
        id: ResourceId,
        entity_type: Option<EntityTypeId>,
        stable_id: Option<StableId>,
        (order, mut blocks): (Vec<Sym>, Blocks),
        values: impl Iterator<Item = Cow<'v, PropertyValue>>,
        syms: &mut Symbols,
        refs: &mut References,
        pool: &mut StringPool,
    ) -> Self {
        let mut compact: Box<[(Sym, CompactValue)]> = values
            .zip(order.iter())
            .map(|(value, &sym)| (sym, blocks.compact_value(sym, value, refs, pool)))
            .collect();
        syms.scratch = order;
        compact.sort_unstable_by_key(|(sym, _)| *sym);
        Self {
            id,
            entity_type,
            stable_id,
            values: compact,
            text: blocks.text.into_boxed_str(),
            ids: blocks.ids.into_boxed_slice(),
        }
    }

    pub(crate) fn get(&self, sym: Sym) -> Option<&CompactValue> {
        self.values
            .binary_search_by_key(&sym, |(s, _)| *s)
            .ok()
            .map(|i| &self.values[i].1)
    }

    pub(crate) fn scalar(&self, sym: Sym) -> Option<ScalarRef<'_>> {
        match self.get(sym)? {
            CompactValue::Shared(s) => Some(ScalarRef::Text(s.as_str())),
            CompactValue::Text(a, b) => {
                self.text.get(*a as usize..*b as usize).map(ScalarRef::Text)
            }
            CompactValue::Scalar(s) => Some(ScalarRef::Value(s)),
            _ => None,
        }
    }

    pub(crate) fn reference(&self, sym: Sym) -> Option<RefId> {
        match self.get(sym) {
            Some(CompactValue::Ref(r)) => Some(*r),
            // A multi-valued value holding exactly one reference is read as that reference.
            Some(CompactValue::Refs(..)) => match self.references(sym) {
                [one] => Some(*one),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn references(&self, sym: Sym) -> &[RefId] {
        match self.get(sym) {
            Some(CompactValue::Refs(a, b)) => {
                self.ids.get(*a as usize..*b as usize).unwrap_or_default()
            }
            Some(CompactValue::Ref(r)) => std::slice::from_ref(r),
            _ => &[],
        }
    }

    /// The target as a core `Resource` (for orders and diffs).
    pub(crate) fn to_resource(&self, syms: &Symbols, refs: &References) -> Resource {
        let values: BTreeMap<String, PropertyValue> = self
            .values
            .iter()
            .map(|(s, v)| {
                let v = match v {
                    CompactValue::Shared(s) => {
                        PropertyValue::Scalar(ScalarValue::String(s.as_str().to_owned()))
                    }
                    CompactValue::Text(..) => {
                        PropertyValue::Scalar(self.scalar(*s).map_or_else(
                            || ScalarValue::String(String::new()),
                            ScalarRef::to_value,
                        ))
                    }
                    CompactValue::Scalar(s) => PropertyValue::Scalar((**s).clone()),
                    CompactValue::Ref(r) => PropertyValue::Reference(refs.get(*r).clone()),
                    CompactValue::Refs(..) => PropertyValue::References(
                        self.references(*s)
                            .iter()
                            .map(|r| refs.get(*r).clone())
                            .collect::<BTreeSet<_>>(),
                    ),
                };
                (syms.name(*s).to_owned(), v)
            })
            .collect();
        Resource {
            id: self.id.clone(),
            entity_type: self.entity_type.clone(),
            stable_id: self.stable_id.clone(),
            values,
        }
    }
}

/// Index of a target inside its store.
pub(crate) type TargetIdx = u32;

/// The targets of one resource type, with one index per correlation key.
#[derive(Debug, Default, Clone)]
pub(crate) struct TargetStore {
    slots: Vec<Option<Target>>,
    free: Vec<TargetIdx>,
    by_id: FxHashMap<ResourceId, TargetIdx>,
    /// Per correlation key: normalized key value ⇒ targets holding it. The keys keep a heap
    /// block each: held inline (`SmolStr`), a load of a million targets ran 40% slower in
    /// glibc's allocator, and a re-plan rarely looks a key up ([`TargetStore::alone_on_first_key`]).
    key_index: Vec<FxHashMap<Box<str>, Few<TargetIdx>>>,
    /// The owner currently correlated with each slot.
    pub(crate) claimed_by: Vec<Option<autoprov_core::OwnerId>>,
    /// Per slot: its target is the only one holding its value of the first key (what
    /// [`TargetStore::candidates`] would answer for that value is this slot alone). Lets a
    /// re-plan confirm an owner's last correlation from the target itself, without a lookup.
    alone_on_first_key: Vec<bool>,
    len: usize,
}

impl TargetStore {
    pub(crate) fn new(keys: usize) -> Self {
        Self {
            key_index: vec![FxHashMap::default(); keys],
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `additional` more targets (see [`crate::Planner::reserve`]).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let more = additional.saturating_sub(self.free.len());
        self.slots.reserve(more);
        self.claimed_by.reserve(more);
        self.alone_on_first_key.reserve(more);
        self.by_id.reserve(additional);
        for index in &mut self.key_index {
            index.reserve(additional);
        }
    }

    pub(crate) fn get(&self, idx: TargetIdx) -> Option<&Target> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    pub(crate) fn find(&self, id: &ResourceId) -> Option<TargetIdx> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn candidates(&self, key: usize, value: &str) -> &[TargetIdx] {
        self.key_index[key].get(value).map_or(&[], Few::as_slice)
    }

    /// Inserts or replaces a target; returns its slot and the replaced target, if any.
    /// `keys` are the normalized correlation key values of the new target, one per key.
    pub(crate) fn upsert(
        &mut self,
        target: Target,
        keys: Vec<Option<SmolStr>>,
        old_keys: impl Fn(&Target) -> Vec<Option<SmolStr>>,
    ) -> (TargetIdx, Option<Target>) {
        let (idx, old) = match self.by_id.get(&target.id) {
            Some(&idx) => {
                let old = self.slots[idx as usize].take();
                if let Some(old) = &old {
                    self.unindex(idx, old_keys(old));
                }
                (idx, old)
            }
            None => {
                let idx = match self.free.pop() {
                    Some(i) => i,
                    None => {
                        self.slots.push(None);
                        self.claimed_by.push(None);
                        self.alone_on_first_key.push(false);
                        (self.slots.len() - 1) as TargetIdx
                    }
                };
                self.by_id.insert(target.id.clone(), idx);
                self.len += 1;
                (idx, None)
            }
        };
        for (k, v) in keys.into_iter().enumerate() {
            if let Some(v) = v {
                if let Some(list) = self.key_index[k].get_mut(v.as_str()) {
                    list.insert_sorted(idx);
                    // Two now: the one that was alone no longer is (this slot's flag is
                    // already down: a new or reused slot starts down, `unindex` lowers it).
                    if k == 0 && list.as_slice().len() == 2 {
                        for &other in list.as_slice() {
                            self.alone_on_first_key[other as usize] = false;
                        }
                    }
                } else {
                    self.key_index[k].insert(Box::from(v.as_str()), Few::One(idx));
                    if k == 0 {
                        self.alone_on_first_key[idx as usize] = true;
                    }
                }
            }
        }
        self.slots[idx as usize] = Some(target);
        (idx, old)
    }

    /// Removes a target; returns its slot and the target.
    pub(crate) fn remove(
        &mut self,
        id: &ResourceId,
        keys: impl Fn(&Target) -> Vec<Option<SmolStr>>,
    ) -> Option<(TargetIdx, Target)> {
        let idx = self.by_id.remove(id)?;
        let old = self.slots[idx as usize].take()?;
        self.unindex(idx, keys(&old));
        self.free.push(idx);
        self.len -= 1;
        Some((idx, old))
    }

    fn unindex(&mut self, idx: TargetIdx, keys: Vec<Option<SmolStr>>) {
        self.alone_on_first_key[idx as usize] = false;
        for (k, v) in keys.into_iter().enumerate() {
            if let Some(v) = v
                && let Some(list) = self.key_index[k].get_mut(v.as_str())
            {
                if list.remove(&idx) {
                    self.key_index[k].remove(v.as_str());
                } else if k == 0
                    && let [last] = list.as_slice()
                {
                    self.alone_on_first_key[*last as usize] = true;
                }
            }
        }
    }

    /// Whether slot `idx` holds the only target with its value of the first key.
    pub(crate) fn alone_on_first_key(&self, idx: TargetIdx) -> bool {
        self.alone_on_first_key
            .get(idx as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Every occupied slot, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TargetIdx, &Target)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i as TargetIdx, t)))
    }
}

/// Merges two sorted id slices: what is in `a` and not in `b`.
pub(crate) fn sorted_difference(a: &[RefId], b: &[RefId]) -> Vec<RefId> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if j >= b.len() || a[i] < b[j] {
            out.push(a[i]);
            i += 1;
        } else if a[i] == b[j] {
            i += 1;
            j += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_the_compact_form() {
        let mut syms = Symbols::default();
        let mut refs = References::default();
        let r = Resource::new("CN=a")
            .with("sAMAccountName", "a")
            .with("parentdn", Reference::dn("OU=x"))
            .with(
                "memberOf",
                [Reference::dn("CN=g2"), Reference::dn("CN=g1")]
                    .into_iter()
                    .collect::<BTreeSet<_>>(),
            );
        let t = Target::compact(&r, &mut syms, &mut refs, &mut StringPool::default());
        assert_eq!(t.to_resource(&syms, &refs), r);
        let member_of = syms.get("memberOf").unwrap();
        // The next target with the same names reuses the same symbols by position; one named
        // otherwise at a position gets its own.
        let mut names = Symbols::default();
        let a = names.intern_at(Sequence::Target, 0, "a");
        assert_eq!(names.intern_at(Sequence::Target, 0, "a"), a);
        let b = names.intern_at(Sequence::Target, 0, "b");
        assert_ne!(a, b);
        assert_eq!(names.intern_at(Sequence::Owner, 3, "a"), a);
        assert_eq!(names.name(b), "b");
        assert_eq!(t.references(member_of).len(), 2);
    }

    /// A target compacted by value (its names interned out of symbol order, the values of a
    /// property judged not shared going to its text, every kind of value) is the target
    /// compacted by reference, and both round-trip.
    #[test]
    fn a_target_compacted_by_value_is_the_target_compacted_by_reference() {
        let mut syms = Symbols::default();
        let mut refs = References::default();
        let mut pool = StringPool::default();
        // Symbols in an order that is not the names' (as when owners were interned first).
        for name in ["zeta", "title", "memberOf", "login", "alpha"] {
            syms.intern(name);
        }
        let resource = |i: u32| {
            Resource::new(format!("CN=u{i}"))
                .with("alpha", i64::from(i))
                .with("login", format!("user{i}"))
                .with("title", format!("T{}", i % 3))
                .with("parentdn", Reference::dn("OU=x"))
                .with(
                    "memberOf",
                    [
                        Reference::dn(format!("CN=g{}", i % 5)),
                        Reference::dn("CN=all"),
                    ]
                    .into_iter()
                    .collect::<BTreeSet<_>>(),
                )
                .with("zeta", "")
        };
        // Beyond the judging threshold: `login` stops being shared and goes to the text.
        for i in 0..2 * 1024 + 10 {
            let r = resource(i);
            let by_value = Target::compact_owned(r.clone(), &mut syms, &mut refs, &mut pool);
            let by_ref = Target::compact(&r, &mut syms, &mut refs, &mut pool);
            assert!(by_value.values.windows(2).all(|w| w[0].0 < w[1].0), "{i}");
            assert_eq!(by_value.to_resource(&syms, &refs), r, "{i}");
            assert_eq!(by_ref.to_resource(&syms, &refs), r, "{i}");
            for name in r.values.keys() {
                let sym = syms.get(name).unwrap();
                assert_eq!(
                    format!("{:?}", by_value.scalar(sym)),
                    format!("{:?}", by_ref.scalar(sym)),
                    "{i} {name}"
                );
                assert_eq!(
                    by_value.references(sym),
                    by_ref.references(sym),
                    "{i} {name}"
                );
            }
        }
        let login = syms.get("login").unwrap();
        assert!(pool.owns(login), "logins are judged distinct");
        let last = Target::compact_owned(resource(5000), &mut syms, &mut refs, &mut pool);
        assert!(matches!(last.get(login), Some(CompactValue::Text(..))));
        assert_eq!(
            last.text.len(),
            "user5000".len(),
            "only the login, judged not shared, goes to the text"
        );
    }

    #[test]
    fn references_are_interned_by_content_whichever_clone_comes() {
        let mut refs = References::default();
        let groups: Vec<Reference> = (0..2000)
            .map(|i| Reference::dn(format!("CN=g{i}")))
            .collect();
        let ids: Vec<RefId> = groups.iter().map(|g| refs.intern(g)).collect();
        for round in 0..3 {
            for (i, g) in groups.iter().enumerate() {
                // A clone (found by its address), an equal reference of its own, a clone again.
                assert_eq!(refs.intern(&g.clone()), ids[i], "round {round}");
                assert_eq!(refs.intern(&Reference::dn(format!("CN=g{i}"))), ids[i]);
                assert_eq!(refs.get(ids[i]), g);
            }
        }
        // A reference dropped and another allocated (possibly at the same address) is not
        // mistaken for it: the cache holds a clone of what it remembers.
        let other = Reference::dn("CN=other");
        let id = refs.intern(&other);
        drop(other);
        let new = Reference::dn("CN=new");
        let new_id = refs.intern(&new);
        assert_ne!(new_id, id);
        assert_eq!(refs.get(new_id), &new);
    }

    #[test]
    fn a_compact_value_is_two_words() {
        assert_eq!(std::mem::size_of::<CompactValue>(), 16);
        assert_eq!(std::mem::size_of::<(Sym, CompactValue)>(), 24);
    }

    #[test]
    fn sorted_difference_is_a_set_difference() {
        assert_eq!(sorted_difference(&[1, 2, 4, 7], &[2, 3, 7]), vec![1, 4]);
        assert_eq!(sorted_difference(&[], &[1]), Vec::<RefId>::new());
    }

    /// The key indexes hash normalized key values such as `e00000123`, which differ in their
    /// last bytes; hash tables pick buckets from the low bits, so the hasher must carry those
    /// bytes down (the hand-written Fx hasher this replaced folded them with a finalizer;
    /// rustc-hash does it itself). A weak spread would make key lookups linear.
    #[test]
    fn keys_differing_in_their_last_bytes_spread_over_low_bits() {
        use std::hash::BuildHasher;
        let build = rustc_hash::FxBuildHasher;
        let buckets: std::collections::HashSet<u64> = (0..4096)
            .map(|i| build.hash_one(format!("e{i:08}")) & 0xfff)
            .collect();
        assert!(
            buckets.len() > 2500,
            "{} distinct buckets of 4096",
            buckets.len()
        );
    }
}
