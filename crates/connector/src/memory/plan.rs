//! Validating an order against the current state into a plan (applied by `apply`).
//!
//! Planning reads only; applying cannot fail. Both run under the same write lock, so an order
//! that is invalid anywhere writes nothing, and a valid one is applied whole.

use crate::connector::Executed;
use crate::dn::{Dn, Rdn};
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::memory::schema::{CompiledSchema, EntityTypeSchema, ObjectKind};
use crate::memory::state::{ObjKey, PasswordHash, Slot, State, stable_id_of, unique_form};
use crate::schema::{
    DN_KEY, ENABLED, MEMBER_OF, MEMBERS, MUST_CHANGE_PASSWORD, PARENT, PASSWORD, STABLE_ID_KEY,
};
use autoprov_core::{
    ChangeType, Changes, EntityTypeId, OrderId, PropertyChange, PropertyKind, Reference,
    ResourceId, ScalarValue, Secret, StableId,
};
use std::collections::{BTreeMap, BTreeSet};

/// One request to change the system: an order, or an out-of-band change.
pub(crate) struct Request<'a> {
    pub(crate) change_type: ChangeType,
    pub(crate) entity_type: &'a EntityTypeId,
    /// The existing target (Modified, Deleted): its key and stable id.
    pub(crate) target: Option<(&'a ResourceId, Option<&'a StableId>)>,
    pub(crate) changes: &'a Changes,
    pub(crate) order: Option<&'a OrderId>,
    /// The order asks for review before adopting an account it did not create
    /// ([`ADOPTION_REVIEW_ARGUMENT`](crate::ADOPTION_REVIEW_ARGUMENT)); `Some(true)` when it
    /// was also sent again, so an account its own earlier attempt created is adopted.
    pub(crate) adoption_review: Option<bool>,
    /// A Deleted container takes its subtree with it (else a non-empty one is a conflict).
    pub(crate) tree_delete: bool,
}

pub(crate) enum Plan {
    Create(CreatePlan),
    Update(UpdatePlan),
    Delete(DeletePlan),
    Nothing(Executed),
}

pub(crate) struct CreatePlan {
    pub(super) key: ObjKey,
    pub(super) entity_type: EntityTypeId,
    pub(super) kind: ObjectKind,
    pub(super) parent: Slot,
    pub(super) name: String,
    pub(super) scalars: BTreeMap<String, ScalarValue>,
    pub(super) references: BTreeMap<String, ObjKey>,
    pub(super) password: Option<PasswordHash>,
    /// (group, member) pairs; the new object is one side of each.
    pub(super) memberships: Vec<(ObjKey, ObjKey, &'static str)>,
    /// The order that creates it.
    pub(super) created_by: Option<OrderId>,
}

pub(crate) struct UpdatePlan {
    pub(super) key: ObjKey,
    pub(super) adopted: bool,
    pub(super) rename: Option<String>,
    pub(super) move_to: Option<Slot>,
    pub(super) name_property: String,
    pub(super) scalars: Vec<(String, Option<ScalarValue>)>,
    pub(super) references: Vec<(String, Option<ObjKey>)>,
    pub(super) password: Option<PasswordHash>,
    pub(super) add: Vec<(ObjKey, ObjKey, &'static str)>,
    pub(super) remove: Vec<(ObjKey, ObjKey, &'static str)>,
}

pub(crate) struct DeletePlan {
    /// Deepest first.
    pub(super) keys: Vec<ObjKey>,
}

/// What the changes of a request say, checked against the schema and resolved.
#[derive(Default)]
struct Interpreted {
    name: Option<String>,
    parent: Option<Slot>,
    scalars: BTreeMap<String, Option<ScalarValue>>,
    references: BTreeMap<String, Option<ObjKey>>,
    password: Option<Secret>,
    member_of_add: BTreeSet<ObjKey>,
    member_of_remove: BTreeSet<ObjKey>,
    members_add: BTreeSet<ObjKey>,
    members_remove: BTreeSet<ObjKey>,
}

fn invalid(operation: Operation, message: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid_order(operation, message)
}

/// The stored hash of a password; a redacted secret (refused when the order is read) has no
/// value to hash.
fn password_hash(stable_id: &StableId, p: &Secret) -> Result<PasswordHash, ConnectorError> {
    let clear = p
        .expose()
        .map_err(|e| invalid(Operation::Update, format!("property `password`: {e}")))?;
    Ok(PasswordHash::of(stable_id, clear))
}

/// The note of a Deleted order whose target is gone while its key names another object.
fn stale_key_note(stable: &StableId, other: &StableId, key: &ResourceId) -> String {
    format!(
        "nothing deleted: the target (stable id {stable}) no longer exists, and its key {key} \
         now names another object (stable id {other}), which is left untouched"
    )
}

impl State {
    fn lookup_reference(
        &self,
        schema: &CompiledSchema,
        r: &Reference,
    ) -> Result<Option<Slot>, String> {
        if let Some(stable) = r.get(STABLE_ID_KEY) {
            return Ok(self.by_stable.get(stable).map(|k| Slot::Object(*k)));
        }
        if let Some(dn) = r.get(DN_KEY) {
            let dn = Dn::parse(dn).map_err(|e| e.to_string())?;
            return Ok(self.resolve(schema, &dn));
        }
        Err(format!(
            "reference {r} has neither `{DN_KEY}` nor `{STABLE_ID_KEY}`"
        ))
    }

    /// An object a reference must name (adds, mono-valued references).
    fn required_object(
        &self,
        schema: &CompiledSchema,
        operation: Operation,
        property: &str,
        r: &Reference,
    ) -> Result<ObjKey, ConnectorError> {
        match self.lookup_reference(schema, r) {
            Ok(Some(Slot::Object(k))) => Ok(k),
            Ok(Some(Slot::Root(_))) => Err(invalid(
                operation,
                format!("`{property}`: {r} is a naming context, not an object"),
            )),
            Ok(None) => Err(invalid(
                operation,
                format!("`{property}`: {r} does not exist"),
            )),
            Err(e) => Err(invalid(operation, format!("`{property}`: {e}"))),
        }
    }

    /// Resolves changes the declared schema already accepted
    /// ([`ConnectionSchema::validate_changes`](crate::ConnectionSchema::validate_changes), run
    /// by [`State::plan`]): declared, writable, of the right types, secrets as secrets. What
    /// is left is what only the system knows: references that resolve, to objects of the right
    /// kind, and its own value rules (a non-empty name and password, `enabled` never cleared).
    fn interpret(
        &self,
        schema: &CompiledSchema,
        t: &EntityTypeSchema,
        operation: Operation,
        changes: &Changes,
    ) -> Result<Interpreted, ConnectorError> {
        let mut out = Interpreted::default();
        for (property, change) in &changes.properties {
            let property = property.as_str();
            let wrong =
                |what: &str| invalid(operation, format!("`{property}` of a `{}`: {what}", t.id));
            if property == t.name_property {
                match change {
                    PropertyChange::Set(ScalarValue::String(s)) if !s.is_empty() => {
                        out.name = Some(s.clone());
                    }
                    _ => return Err(wrong("the name cannot be empty")),
                }
                continue;
            }
            if property == PARENT {
                let PropertyChange::SetReference(r) = change else {
                    return Err(wrong("expected a reference to a container"));
                };
                let slot = match self.lookup_reference(schema, r) {
                    Ok(Some(slot)) => slot,
                    Ok(None) => return Err(wrong(&format!("{r} does not exist"))),
                    Err(e) => return Err(wrong(&e)),
                };
                if let Slot::Object(k) = slot
                    && self.objects[&k].kind != ObjectKind::Container
                {
                    return Err(wrong(&format!("{r} is not a container")));
                }
                out.parent = Some(slot);
                continue;
            }
            if t.kind == ObjectKind::Account && property == PASSWORD {
                match change {
                    PropertyChange::Set(ScalarValue::Secret(s)) if !s.is_empty() => {
                        out.password = Some(s.clone());
                    }
                    _ => return Err(wrong("expected a non-empty secret")),
                }
                continue;
            }
            if t.kind == ObjectKind::Account
                && (property == ENABLED || property == MUST_CHANGE_PASSWORD)
            {
                match change {
                    PropertyChange::Set(v) => {
                        out.scalars.insert(property.to_owned(), Some(v.clone()));
                    }
                    PropertyChange::Clear if property == MUST_CHANGE_PASSWORD => {
                        out.scalars.insert(property.to_owned(), None);
                    }
                    _ => return Err(wrong("cannot be cleared")),
                }
                continue;
            }
            let target = match t.properties.get(property).map(|d| &d.kind) {
                Some(PropertyKind::MonoReference { target }) => Some(target),
                Some(_) => None,
                None => return Err(wrong("not declared")),
            };
            match (target, change) {
                (Some(target), PropertyChange::SetReference(r)) => {
                    let k = self.required_object(schema, operation, property, r)?;
                    if self.objects[&k].entity_type != *target {
                        return Err(wrong(&format!("{r} is not a `{target}`")));
                    }
                    out.references.insert(property.to_owned(), Some(k));
                }
                (Some(_), PropertyChange::Clear) => {
                    out.references.insert(property.to_owned(), None);
                }
                (None, PropertyChange::Clear) => {
                    out.scalars.insert(property.to_owned(), None);
                }
                (None, PropertyChange::Set(v)) => {
                    out.scalars.insert(property.to_owned(), Some(v.clone()));
                }
                _ => return Err(wrong("expected a reference or a scalar, not both")),
            }
        }
        for (navigation, delta) in &changes.navigations {
            if delta.is_empty() {
                continue;
            }
            let (wanted_kind, add, remove): (fn(ObjectKind) -> bool, _, _) =
                match navigation.as_str() {
                    MEMBER_OF if t.kind.can_be_member() => (
                        |k| k == ObjectKind::Group,
                        &mut out.member_of_add,
                        &mut out.member_of_remove,
                    ),
                    MEMBERS if t.kind == ObjectKind::Group => (
                        ObjectKind::can_be_member,
                        &mut out.members_add,
                        &mut out.members_remove,
                    ),
                    other => {
                        return Err(invalid(
                            operation,
                            format!("unknown navigation `{other}` for a `{}`", t.id),
                        ));
                    }
                };
            for r in &delta.add {
                let k = self.required_object(schema, Operation::Membership, navigation, r)?;
                if !wanted_kind(self.objects[&k].kind) {
                    return Err(invalid(
                        Operation::Membership,
                        format!("`{navigation}`: {r} cannot take part in this membership"),
                    ));
                }
                add.insert(k);
            }
            for r in &delta.remove {
                // Removing a membership of an object that no longer exists leaves the wanted
                // state: nothing to do.
                match self.lookup_reference(schema, r) {
                    Ok(Some(Slot::Object(k))) => {
                        remove.insert(k);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(invalid(
                            Operation::Membership,
                            format!("`{navigation}`: {e}"),
                        ));
                    }
                }
                if let Some(k) = add.iter().find(|k| remove.contains(k)) {
                    return Err(invalid(
                        Operation::Membership,
                        format!(
                            "`{navigation}`: {} is both added and removed",
                            self.dn(schema, *k)
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The object of a Modified or Deleted request: by stable id when given, else by key.
    fn find_target(
        &self,
        schema: &CompiledSchema,
        key: &ResourceId,
        stable_id: Option<&StableId>,
    ) -> Option<ObjKey> {
        if let Some(stable) = stable_id {
            // A key match holding another stable id is another object: never touch it.
            return self.by_stable.get(stable).copied();
        }
        self.at_key(schema, key)
    }

    /// The object that holds a key now, if any.
    fn at_key(&self, schema: &CompiledSchema, key: &ResourceId) -> Option<ObjKey> {
        match Dn::parse(key.as_str())
            .ok()
            .and_then(|dn| self.resolve(schema, &dn))
        {
            Some(Slot::Object(k)) => Some(k),
            _ => None,
        }
    }

    /// The stable id of another object that holds the key of a request whose own stable id
    /// is gone (a stale key), if any.
    fn other_holder(
        &self,
        schema: &CompiledSchema,
        key: &ResourceId,
        stable_id: Option<&StableId>,
    ) -> Option<&StableId> {
        stable_id?;
        self.at_key(schema, key)
            .map(|k| &self.objects[&k].stable_id)
            .filter(|other| Some(*other) != stable_id)
    }

    fn unique_holder(&self, property: &str, value: &ScalarValue) -> Option<ObjKey> {
        self.unique
            .get(&(property.to_owned(), unique_form(value)))
            .copied()
    }

    fn check_unique(
        &self,
        schema: &CompiledSchema,
        t: &EntityTypeSchema,
        operation: Operation,
        scalars: &BTreeMap<String, Option<ScalarValue>>,
        myself: Option<ObjKey>,
    ) -> Result<(), ConnectorError> {
        for (property, value) in scalars {
            let Some(value) = value else { continue };
            if !t.properties.get(property).is_some_and(|d| d.unique) {
                continue;
            }
            if let Some(holder) = self.unique_holder(property, value)
                && Some(holder) != myself
            {
                return Err(ConnectorError::new(
                    ErrorKind::AlreadyExists,
                    operation,
                    format!(
                        "{property}={value} is already held by {}",
                        self.dn(schema, holder)
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn plan(
        &self,
        schema: &CompiledSchema,
        request: &Request<'_>,
    ) -> Result<Plan, ConnectorError> {
        let operation = Operation::from(request.change_type);
        // The declared schema first: the entity type, and every change by name, type and
        // flags, before any lookup.
        schema
            .declared
            .validate_changes(
                request.entity_type.as_str(),
                request.change_type,
                request.changes,
            )
            .map_err(|v| match request.order {
                Some(order) => ConnectorError::from(v.with_order(order.clone())),
                None => ConnectorError::from(v),
            })?;
        let Some(t) = schema.types.get(request.entity_type) else {
            return Err(invalid(operation, "the entity type is not declared"));
        };
        match request.change_type {
            ChangeType::Added => self.plan_added(schema, t, request),
            ChangeType::Modified => {
                let Some((key, stable)) = request.target else {
                    return Err(invalid(operation, "a Modified order needs `Resource`"));
                };
                let Some(k) = self.find_target(schema, key, stable) else {
                    let message = match (stable, self.other_holder(schema, key, stable)) {
                        (Some(stable), Some(other)) => format!(
                            "the target (stable id {stable}) does not exist; its key {key} now \
                             names another object (stable id {other}), which is left untouched"
                        ),
                        (Some(stable), None) => {
                            format!("the target {key} (stable id {stable}) does not exist")
                        }
                        (None, _) => format!("the target {key} does not exist"),
                    };
                    return Err(ConnectorError::new(ErrorKind::NotFound, operation, message)
                        .with_target(key.as_str()));
                };
                let existing = &self.objects[&k];
                if existing.entity_type != t.id {
                    return Err(invalid(
                        operation,
                        format!(
                            "the target is a `{}`, the order is for a `{}`",
                            existing.entity_type, t.id
                        ),
                    ));
                }
                let interpreted = self.interpret(schema, t, operation, request.changes)?;
                self.plan_update(schema, t, k, interpreted, false)
                    .map(Plan::Update)
            }
            ChangeType::Deleted => {
                let Some((key, stable)) = request.target else {
                    return Err(invalid(operation, "a Deleted order needs `Resource`"));
                };
                let Some(k) = self.find_target(schema, key, stable) else {
                    let mut done = Executed::new(key.clone());
                    done.stable_id = stable.cloned();
                    if let (Some(stable), Some(other)) =
                        (stable, self.other_holder(schema, key, stable))
                    {
                        done = done.with_note(stale_key_note(stable, other, key));
                    }
                    return Ok(Plan::Nothing(done));
                };
                if !request.tree_delete && self.has_children(k) {
                    return Err(ConnectorError::new(
                        ErrorKind::Conflict,
                        operation,
                        format!(
                            "{} still holds objects (tree delete is off)",
                            self.dn(schema, k)
                        ),
                    )
                    .permanent());
                }
                Ok(Plan::Delete(self.plan_delete(k)))
            }
        }
    }

    fn plan_added(
        &self,
        schema: &CompiledSchema,
        t: &EntityTypeSchema,
        request: &Request<'_>,
    ) -> Result<Plan, ConnectorError> {
        let operation = Operation::Create;
        let interpreted = self.interpret(schema, t, operation, request.changes)?;
        let Some(name) = interpreted.name.clone() else {
            return Err(invalid(
                operation,
                format!("missing the name property `{}`", t.name_property),
            ));
        };
        let Some(parent) = interpreted.parent else {
            return Err(invalid(operation, format!("missing `{PARENT}`")));
        };
        let name_key = State::name_key(schema, &t.id, &name);
        if let Some(&existing) = self.by_name.get(&(parent, name_key)) {
            let o = &self.objects[&existing];
            let same_unique_keys = t.properties.iter().filter(|(_, d)| d.unique).all(|(p, _)| {
                match interpreted.scalars.get(p) {
                    Some(Some(v)) => o.scalars.get(p).map(unique_form) == Some(unique_form(v)),
                    _ => true,
                }
            });
            if o.entity_type != t.id || !same_unique_keys {
                return Err(ConnectorError::new(
                    ErrorKind::AlreadyExists,
                    operation,
                    format!(
                        "{} is held by a different object",
                        self.dn(schema, existing)
                    ),
                ));
            }
            // The same account. One autoprov did not create (not by an earlier attempt of this
            // very order) waits for review when the order asks for it; else adopt it and
            // converge its attributes.
            if let Some(resent) = request.adoption_review {
                let own =
                    resent && o.created_by.is_some() && o.created_by.as_ref() == request.order;
                if !own {
                    return Err(ConnectorError::adoption_needs_review(
                        self.dn(schema, existing),
                        Some(&o.stable_id),
                    ));
                }
            }
            return self
                .plan_update(schema, t, existing, interpreted, true)
                .map(Plan::Update);
        }
        let mut scalars: BTreeMap<String, ScalarValue> = interpreted
            .scalars
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        self.check_unique(schema, t, operation, &interpreted.scalars, None)?;
        if t.kind == ObjectKind::Account {
            scalars
                .entry(ENABLED.to_owned())
                .or_insert(ScalarValue::Bool(t.enabled_by_default));
        }
        let key = self.next_key;
        let stable_id = stable_id_of(key);
        let mut memberships = Vec::new();
        for g in &interpreted.member_of_add {
            memberships.push((*g, key, MEMBER_OF));
        }
        for m in &interpreted.members_add {
            memberships.push((key, *m, MEMBERS));
        }
        Ok(Plan::Create(CreatePlan {
            key,
            entity_type: t.id.clone(),
            kind: t.kind,
            parent,
            name,
            scalars,
            references: interpreted
                .references
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            password: interpreted
                .password
                .as_ref()
                .map(|p| password_hash(&stable_id, p))
                .transpose()?,
            memberships,
            created_by: request.order.cloned(),
        }))
    }

    fn plan_update(
        &self,
        schema: &CompiledSchema,
        t: &EntityTypeSchema,
        key: ObjKey,
        interpreted: Interpreted,
        adopted: bool,
    ) -> Result<UpdatePlan, ConnectorError> {
        let o = &self.objects[&key];
        let rename = interpreted.name.filter(|n| *n != o.name);
        let move_to = interpreted.parent.filter(|p| *p != o.parent);
        if let Some(Slot::Object(p)) = move_to
            && self.is_below(p, key)
        {
            return Err(invalid(
                Operation::Rename,
                "cannot move an object below itself",
            ));
        }
        if rename.is_some() || move_to.is_some() {
            let parent = move_to.unwrap_or(o.parent);
            let name = rename.as_deref().unwrap_or(&o.name);
            if let Some(&holder) = self
                .by_name
                .get(&(parent, State::name_key(schema, &t.id, name)))
                && holder != key
            {
                let target = self
                    .slot_dn(schema, parent)
                    .child(Rdn::new(t.rdn_attribute.clone(), name));
                return Err(ConnectorError::new(
                    ErrorKind::AlreadyExists,
                    Operation::Rename,
                    format!("{target} is held by a different object"),
                ));
            }
        }
        let scalars: Vec<(String, Option<ScalarValue>)> = interpreted
            .scalars
            .into_iter()
            .filter(|(k, v)| o.scalars.get(k) != v.as_ref())
            .collect();
        let changed: BTreeMap<String, Option<ScalarValue>> = scalars.iter().cloned().collect();
        self.check_unique(schema, t, Operation::Update, &changed, Some(key))?;
        let references = interpreted
            .references
            .into_iter()
            .filter(|(k, v)| o.references.get(k) != v.as_ref())
            .collect();
        let password = interpreted
            .password
            .map(|p| password_hash(&o.stable_id, &p))
            .transpose()?
            .filter(|h| o.password != Some(*h));
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for g in interpreted.member_of_add {
            if g == key {
                return Err(invalid(
                    Operation::Membership,
                    "a group cannot contain itself",
                ));
            }
            if !o.member_of.contains(&g) {
                add.push((g, key, MEMBER_OF));
            }
        }
        for g in interpreted.member_of_remove {
            if o.member_of.contains(&g) {
                remove.push((g, key, MEMBER_OF));
            }
        }
        for m in interpreted.members_add {
            if m == key {
                return Err(invalid(
                    Operation::Membership,
                    "a group cannot contain itself",
                ));
            }
            if !o.members.contains(&m) {
                add.push((key, m, MEMBERS));
            }
        }
        for m in interpreted.members_remove {
            if o.members.contains(&m) {
                remove.push((key, m, MEMBERS));
            }
        }
        Ok(UpdatePlan {
            key,
            adopted,
            rename,
            move_to,
            name_property: t.name_property.clone(),
            scalars,
            references,
            password,
            add,
            remove,
        })
    }

    fn plan_delete(&self, key: ObjKey) -> DeletePlan {
        // Deepest first, so every removed object is a leaf when it goes.
        let mut keys = Vec::new();
        let mut stack = vec![key];
        while let Some(k) = stack.pop() {
            keys.push(k);
            stack.extend(self.objects[&k].children.iter().copied());
        }
        keys.reverse();
        DeletePlan { keys }
    }

    pub(crate) fn has_children(&self, key: ObjKey) -> bool {
        !self.objects[&key].children.is_empty()
    }
}
