//! The objects of an in-memory system and the primitive changes on them.
//!
//! Everything here runs under the system's one write lock, after validation: nothing in this
//! file can fail.

use crate::dn::{Dn, Rdn};
use crate::error::Operation;
use crate::memory::schema::{CompiledSchema, ObjectKind};
use crate::schema::{ENABLED, MEMBER_OF, MEMBERS, PARENT};
use autoprov_core::{
    EntityTypeId, OrderId, PropertyValue, Reference, Resource, ScalarValue, StableId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// An object's internal key: a counter, never reused.
pub(crate) type ObjKey = u64;

/// Where an object lives: directly below a naming context, or below a container object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Slot {
    Root(usize),
    Object(ObjKey),
}

/// A password as the system keeps it: a salted hash, never the text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PasswordHash(u64);

impl PasswordHash {
    /// Hashes with the stable id as salt. Not a cryptographic hash: this is a test system, and
    /// the point is that the clear text is not retained.
    pub(crate) fn of(salt: &StableId, password: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        salt.as_str().hash(&mut h);
        password.hash(&mut h);
        Self(h.finish())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Object {
    pub(crate) stable_id: StableId,
    pub(crate) entity_type: EntityTypeId,
    pub(crate) kind: ObjectKind,
    pub(crate) parent: Slot,
    pub(crate) name: String,
    pub(crate) scalars: BTreeMap<String, ScalarValue>,
    pub(crate) references: BTreeMap<String, ObjKey>,
    pub(crate) password: Option<PasswordHash>,
    /// Groups: their members.
    pub(crate) members: BTreeSet<ObjKey>,
    /// The back-link of `members`, kept in step with it.
    pub(crate) member_of: BTreeSet<ObjKey>,
    /// Containers: the objects directly below.
    pub(crate) children: BTreeSet<ObjKey>,
    /// Objects whose mono-valued references point here, and through which property.
    pub(crate) referenced_by: BTreeSet<(ObjKey, String)>,
    /// The change sequence number of the last write.
    pub(crate) usn: u64,
    /// The order that created it (none for seeded objects): an Added order sent again
    /// adopts its own creation without review.
    pub(crate) created_by: Option<OrderId>,
}

/// A deleted object, kept for incremental exports.
#[derive(Clone, Debug)]
pub(crate) struct Tombstone {
    pub(crate) dn: Dn,
    pub(crate) stable_id: StableId,
    pub(crate) entity_type: EntityTypeId,
}

/// One write applied to the system, for tests.
///
/// Secrets never appear: a password write shows [`autoprov_core::SECRET_MASK`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRecord {
    /// Its position in the log, from 1.
    pub seq: u64,
    /// The order that caused it; none for out-of-band changes (`seed`, `modify`, `remove`).
    pub order: Option<OrderId>,
    /// What kind of write.
    pub operation: Operation,
    /// The object written (for a membership: the group).
    pub target: StableId,
    /// The object's name after the write.
    pub target_name: String,
    /// The property written, if the write is about one.
    pub property: Option<String>,
    /// What was written, e.g. `= Sales`, `add CN=jdoe,...`, `from CN=a,... to CN=b,...`.
    pub detail: String,
}

impl OperationRecord {
    /// The identity of the effect: the same order writing the same thing to the same target.
    pub fn effect(&self) -> (Option<&OrderId>, Operation, &StableId, Option<&str>, &str) {
        (
            self.order.as_ref(),
            self.operation,
            &self.target,
            self.property.as_deref(),
            &self.detail,
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) objects: BTreeMap<ObjKey, Object>,
    pub(crate) by_stable: HashMap<StableId, ObjKey>,
    /// (parent, case-folded RDN) ⇒ object.
    pub(crate) by_name: HashMap<(Slot, String), ObjKey>,
    /// (property, case-folded value) ⇒ object holding it.
    pub(crate) unique: HashMap<(String, String), ObjKey>,
    /// (usn, object) of every live object.
    pub(crate) by_usn: BTreeSet<(u64, ObjKey)>,
    pub(crate) tombstones: BTreeMap<(u64, ObjKey), Tombstone>,
    pub(crate) next_key: ObjKey,
    pub(crate) usn: u64,
    /// Cookies older than this are expired (tombstones before it were purged).
    pub(crate) oldest_usn: u64,
    pub(crate) log: Vec<OperationRecord>,
}

/// The stable id of a key: GUID-shaped, deterministic.
pub(crate) fn stable_id_of(key: ObjKey) -> StableId {
    StableId::new(format!("00000000-0000-4000-8000-{key:012x}"))
}

/// The case-folded form of a unique value.
pub(crate) fn unique_form(value: &ScalarValue) -> String {
    match value {
        ScalarValue::String(s) => format!("s:{}", s.to_lowercase()),
        other => format!("{}:{other}", other.kind_name()),
    }
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            next_key: 1,
            ..Self::default()
        }
    }

    pub(crate) fn dn(&self, schema: &CompiledSchema, key: ObjKey) -> Dn {
        let mut rdns = Vec::new();
        let mut slot = Slot::Object(key);
        loop {
            match slot {
                Slot::Root(i) => {
                    rdns.extend(schema.roots[i].rdns().iter().cloned());
                    return Dn::from_rdns(rdns);
                }
                Slot::Object(k) => {
                    let o = &self.objects[&k];
                    rdns.push(Rdn::new(rdn_attribute(schema, o), o.name.clone()));
                    slot = o.parent;
                }
            }
        }
    }

    pub(crate) fn slot_dn(&self, schema: &CompiledSchema, slot: Slot) -> Dn {
        match slot {
            Slot::Root(i) => schema.roots[i].clone(),
            Slot::Object(k) => self.dn(schema, k),
        }
    }

    /// The slot a DN names, if it exists.
    pub(crate) fn resolve(&self, schema: &CompiledSchema, dn: &Dn) -> Option<Slot> {
        let (root, root_dn) = schema
            .roots
            .iter()
            .enumerate()
            .filter(|(_, r)| dn.is_within(r))
            .max_by_key(|(_, r)| r.rdns().len())?;
        let mut slot = Slot::Root(root);
        let below = dn.rdns().len() - root_dn.rdns().len();
        for rdn in dn.rdns()[..below].iter().rev() {
            slot = Slot::Object(*self.by_name.get(&(slot, rdn.key()))?);
        }
        Some(slot)
    }

    /// Whether `key` is `ancestor` or below it.
    pub(crate) fn is_below(&self, key: ObjKey, ancestor: ObjKey) -> bool {
        let mut slot = Slot::Object(key);
        while let Slot::Object(k) = slot {
            if k == ancestor {
                return true;
            }
            slot = self.objects[&k].parent;
        }
        false
    }

    pub(crate) fn name_key(
        schema: &CompiledSchema,
        entity_type: &EntityTypeId,
        name: &str,
    ) -> String {
        let attribute = &schema.types[entity_type].rdn_attribute;
        Rdn::new(attribute.clone(), name).key()
    }

    /// The resource as an export shows it (never a password).
    pub(crate) fn resource(&self, schema: &CompiledSchema, key: ObjKey) -> Resource {
        let o = &self.objects[&key];
        let t = &schema.types[&o.entity_type];
        let mut r =
            Resource::new(self.dn(schema, key).to_string()).with_entity_type(o.entity_type.clone());
        r.stable_id = Some(o.stable_id.clone());
        r.values.insert(
            t.name_property.clone(),
            PropertyValue::Scalar(ScalarValue::String(o.name.clone())),
        );
        r.values.insert(
            PARENT.to_owned(),
            PropertyValue::Reference(Reference::dn(self.slot_dn(schema, o.parent).to_string())),
        );
        for (k, v) in &o.scalars {
            r.values.insert(k.clone(), PropertyValue::Scalar(v.clone()));
        }
        for (k, target) in &o.references {
            r.values.insert(
                k.clone(),
                PropertyValue::Reference(Reference::dn(self.dn(schema, *target).to_string())),
            );
        }
        let refs = |keys: &BTreeSet<ObjKey>| {
            PropertyValue::References(
                keys.iter()
                    .map(|k| Reference::dn(self.dn(schema, *k).to_string()))
                    .collect(),
            )
        };
        if o.kind.can_be_member() {
            r.values.insert(MEMBER_OF.to_owned(), refs(&o.member_of));
        }
        if o.kind == ObjectKind::Group {
            r.values.insert(MEMBERS.to_owned(), refs(&o.members));
        }
        if o.kind == ObjectKind::Account && !o.scalars.contains_key(ENABLED) {
            r.values
                .insert(ENABLED.to_owned(), PropertyValue::Scalar(false.into()));
        }
        r
    }

    pub(crate) fn begin(&mut self) -> u64 {
        self.usn += 1;
        self.usn
    }

    pub(crate) fn touch(&mut self, key: ObjKey, usn: u64) {
        if let Some(o) = self.objects.get_mut(&key)
            && o.usn != usn
        {
            self.by_usn.remove(&(o.usn, key));
            o.usn = usn;
            self.by_usn.insert((usn, key));
        }
    }

    /// A changed name changes what other objects read: the names of the object's descendants
    /// and every membership or reference naming one of them. Those objects get the change
    /// number too, so an incremental export sends them again with the new names.
    pub(crate) fn touch_renamed(&mut self, key: ObjKey, usn: u64) {
        let mut stack = vec![key];
        let mut changed = Vec::new();
        while let Some(k) = stack.pop() {
            let Some(o) = self.objects.get(&k) else {
                continue;
            };
            stack.extend(o.children.iter().copied());
            changed.push(k);
            changed.extend(o.members.iter().chain(&o.member_of).copied());
            changed.extend(o.referenced_by.iter().map(|(by, _)| *by));
        }
        for k in changed {
            self.touch(k, usn);
        }
    }

    pub(crate) fn log(
        &mut self,
        schema: &CompiledSchema,
        order: Option<&OrderId>,
        operation: Operation,
        key: ObjKey,
        property: Option<&str>,
        detail: String,
    ) {
        let target_name = self.dn(schema, key).to_string();
        let seq = self.log.len() as u64 + 1;
        self.log.push(OperationRecord {
            seq,
            order: order.cloned(),
            operation,
            target: self.objects[&key].stable_id.clone(),
            target_name,
            property: property.map(str::to_owned),
            detail,
        });
    }

    pub(crate) fn set_unique(
        &mut self,
        schema: &CompiledSchema,
        key: ObjKey,
        property: &str,
        old: Option<&ScalarValue>,
        new: Option<&ScalarValue>,
    ) {
        let o = &self.objects[&key];
        let declared_unique = schema.types[&o.entity_type]
            .properties
            .get(property)
            .is_some_and(|d| d.unique);
        if !declared_unique {
            return;
        }
        if let Some(old) = old {
            let k = (property.to_owned(), unique_form(old));
            if self.unique.get(&k) == Some(&key) {
                self.unique.remove(&k);
            }
        }
        if let Some(new) = new {
            self.unique
                .insert((property.to_owned(), unique_form(new)), key);
        }
    }

    /// Removes an object that has no children, with its links. Returns its tombstone key.
    pub(crate) fn remove_object(&mut self, schema: &CompiledSchema, key: ObjKey, usn: u64) {
        let dn = self.dn(schema, key);
        let Some(o) = self.objects.get(&key).cloned() else {
            return;
        };
        for group in &o.member_of {
            if let Some(g) = self.objects.get_mut(group) {
                g.members.remove(&key);
            }
            self.touch(*group, usn);
        }
        for member in &o.members {
            if let Some(m) = self.objects.get_mut(member) {
                m.member_of.remove(&key);
            }
            self.touch(*member, usn);
        }
        for (referrer, property) in &o.referenced_by {
            if let Some(r) = self.objects.get_mut(referrer) {
                r.references.remove(property);
            }
            self.touch(*referrer, usn);
        }
        for (property, target) in &o.references {
            if let Some(t) = self.objects.get_mut(target) {
                t.referenced_by.remove(&(key, property.clone()));
            }
        }
        for (property, value) in &o.scalars {
            self.set_unique(schema, key, property, Some(value), None);
        }
        if let Slot::Object(parent) = o.parent
            && let Some(p) = self.objects.get_mut(&parent)
        {
            p.children.remove(&key);
        }
        self.by_name
            .remove(&(o.parent, State::name_key(schema, &o.entity_type, &o.name)));
        self.by_stable.remove(&o.stable_id);
        self.by_usn.remove(&(o.usn, key));
        self.objects.remove(&key);
        self.tombstones.insert(
            (usn, key),
            Tombstone {
                dn,
                stable_id: o.stable_id,
                entity_type: o.entity_type,
            },
        );
    }
}

pub(crate) fn rdn_attribute(schema: &CompiledSchema, o: &Object) -> String {
    schema.types[&o.entity_type].rdn_attribute.clone()
}
