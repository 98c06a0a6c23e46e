//! Validating an order against the current state into a plan, then applying the plan.
//!
//! Planning reads only; applying cannot fail. Both run under the same write lock, so an order
//! that is invalid anywhere writes nothing, and a valid one is applied whole.

use crate::connector::Executed;
use crate::dn::{Dn, Rdn};
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::memory::schema::{CompiledSchema, EntityTypeSchema, ObjectKind};
use crate::memory::state::{ObjKey, Object, PasswordHash, Slot, State, stable_id_of, unique_form};
use crate::schema::{
    DN_KEY, ENABLED, MEMBER_OF, MEMBERS, MUST_CHANGE_PASSWORD, PARENT, PASSWORD, STABLE_ID_KEY,
};
use autoprov_core::{
    ChangeType, Changes, EntityTypeId, OrderId, PropertyChange, PropertyKind, Reference,
    ResourceId, SECRET_MASK, ScalarValue, Secret, StableId,
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
    key: ObjKey,
    entity_type: EntityTypeId,
    kind: ObjectKind,
    parent: Slot,
    name: String,
    scalars: BTreeMap<String, ScalarValue>,
    references: BTreeMap<String, ObjKey>,
    password: Option<PasswordHash>,
    /// (group, member) pairs; the new object is one side of each.
    memberships: Vec<(ObjKey, ObjKey, &'static str)>,
}

pub(crate) struct UpdatePlan {
    key: ObjKey,
    adopted: bool,
    rename: Option<String>,
    move_to: Option<Slot>,
    name_property: String,
    scalars: Vec<(String, Option<ScalarValue>)>,
    references: Vec<(String, Option<ObjKey>)>,
    password: Option<PasswordHash>,
    add: Vec<(ObjKey, ObjKey, &'static str)>,
    remove: Vec<(ObjKey, ObjKey, &'static str)>,
}

pub(crate) struct DeletePlan {
    /// Deepest first.
    keys: Vec<ObjKey>,
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

fn op_of(change_type: ChangeType) -> Operation {
    match change_type {
        ChangeType::Added => Operation::Create,
        ChangeType::Modified => Operation::Update,
        ChangeType::Deleted => Operation::Delete,
    }
}

fn kind_matches(kind: &PropertyKind, value: &ScalarValue) -> bool {
    matches!(
        (kind, value),
        (PropertyKind::String, ScalarValue::String(_))
            | (PropertyKind::Integer, ScalarValue::Integer(_))
            | (PropertyKind::Bool, ScalarValue::Bool(_))
            | (PropertyKind::DateTime, ScalarValue::DateTime(_))
            | (PropertyKind::Binary, ScalarValue::Binary(_))
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
                    PropertyChange::Set(ScalarValue::String(_)) | PropertyChange::Clear => {
                        return Err(wrong("the name cannot be empty"));
                    }
                    PropertyChange::Set(v) => {
                        return Err(wrong(&format!(
                            "expected a string, found {}",
                            v.kind_name()
                        )));
                    }
                    PropertyChange::SetReference(_) => {
                        return Err(wrong("expected a string, found a reference"));
                    }
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
                    PropertyChange::Set(ScalarValue::String(s)) if !s.is_empty() => {
                        out.password = Some(Secret::new(s.clone()));
                    }
                    _ => return Err(wrong("expected a non-empty secret")),
                }
                continue;
            }
            if t.kind == ObjectKind::Account
                && (property == ENABLED || property == MUST_CHANGE_PASSWORD)
            {
                match change {
                    PropertyChange::Set(v @ ScalarValue::Bool(_)) => {
                        out.scalars.insert(property.to_owned(), Some(v.clone()));
                    }
                    PropertyChange::Clear if property == MUST_CHANGE_PASSWORD => {
                        out.scalars.insert(property.to_owned(), None);
                    }
                    _ => return Err(wrong("expected a boolean")),
                }
                continue;
            }
            let Some(def) = t.properties.get(property) else {
                return Err(invalid(
                    operation,
                    format!("unknown property `{property}` for a `{}`", t.id),
                ));
            };
            match (&def.kind, change) {
                (PropertyKind::MonoReference { target }, PropertyChange::SetReference(r)) => {
                    let k = self.required_object(schema, operation, property, r)?;
                    if self.objects[&k].entity_type != *target {
                        return Err(wrong(&format!("{r} is not a `{target}`")));
                    }
                    out.references.insert(property.to_owned(), Some(k));
                }
                (PropertyKind::MonoReference { .. }, PropertyChange::Clear) => {
                    out.references.insert(property.to_owned(), None);
                }
                (PropertyKind::MonoReference { .. }, PropertyChange::Set(v)) => {
                    return Err(wrong(&format!(
                        "expected a reference, found {}",
                        v.kind_name()
                    )));
                }
                (_, PropertyChange::Clear) if def.required => {
                    return Err(wrong("a required property cannot be cleared"));
                }
                (_, PropertyChange::Clear) => {
                    out.scalars.insert(property.to_owned(), None);
                }
                (kind, PropertyChange::Set(v)) if kind_matches(kind, v) => {
                    out.scalars.insert(property.to_owned(), Some(v.clone()));
                }
                (kind, PropertyChange::Set(v)) => {
                    return Err(wrong(&format!(
                        "expected {kind:?}, found {}",
                        v.kind_name()
                    )));
                }
                (_, PropertyChange::SetReference(_)) => {
                    return Err(wrong("expected a scalar, found a reference"));
                }
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
        match Dn::parse(key.as_str())
            .ok()
            .and_then(|dn| self.resolve(schema, &dn))
        {
            Some(Slot::Object(k)) => Some(k),
            _ => None,
        }
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
        let operation = op_of(request.change_type);
        let Some(t) = schema.types.get(request.entity_type) else {
            return Err(invalid(
                operation,
                format!(
                    "unknown entity type `{}` (known: {})",
                    request.entity_type,
                    schema
                        .types
                        .keys()
                        .map(EntityTypeId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        match request.change_type {
            ChangeType::Added => self.plan_added(schema, t, request),
            ChangeType::Modified => {
                let Some((key, stable)) = request.target else {
                    return Err(invalid(operation, "a Modified order needs `Resource`"));
                };
                let Some(k) = self.find_target(schema, key, stable) else {
                    return Err(ConnectorError::new(
                        ErrorKind::NotFound,
                        operation,
                        format!("the target {key} does not exist"),
                    ));
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
        for (property, def) in &t.properties {
            let given = match &def.kind {
                PropertyKind::MonoReference { .. } => interpreted
                    .references
                    .get(property)
                    .is_some_and(Option::is_some),
                _ => interpreted
                    .scalars
                    .get(property)
                    .is_some_and(Option::is_some),
            };
            if def.required && !given {
                return Err(invalid(
                    operation,
                    format!("missing the required property `{property}`"),
                ));
            }
        }
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
            // The same account: adopt it and converge its attributes.
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
                .map(|p| PasswordHash::of(&stable_id, p.expose())),
            memberships,
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
            .map(|p| PasswordHash::of(&o.stable_id, p.expose()))
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

    pub(crate) fn apply(
        &mut self,
        schema: &CompiledSchema,
        plan: Plan,
        order: Option<&OrderId>,
    ) -> Executed {
        match plan {
            Plan::Nothing(done) => done,
            Plan::Create(p) => self.apply_create(schema, p, order),
            Plan::Update(p) => self.apply_update(schema, p, order),
            Plan::Delete(p) => self.apply_delete(schema, p, order),
        }
    }

    fn apply_create(
        &mut self,
        schema: &CompiledSchema,
        p: CreatePlan,
        order: Option<&OrderId>,
    ) -> Executed {
        let usn = self.begin();
        let key = p.key;
        debug_assert_eq!(key, self.next_key);
        self.next_key += 1;
        let stable_id = stable_id_of(key);
        let name_property = schema.types[&p.entity_type].name_property.clone();
        let name_key = State::name_key(schema, &p.entity_type, &p.name);
        self.objects.insert(
            key,
            Object {
                stable_id: stable_id.clone(),
                entity_type: p.entity_type,
                kind: p.kind,
                parent: p.parent,
                name: p.name,
                scalars: BTreeMap::new(),
                references: BTreeMap::new(),
                password: p.password,
                members: BTreeSet::new(),
                member_of: BTreeSet::new(),
                children: BTreeSet::new(),
                referenced_by: BTreeSet::new(),
                usn,
            },
        );
        self.by_usn.insert((usn, key));
        self.by_stable.insert(stable_id.clone(), key);
        self.by_name.insert((p.parent, name_key), key);
        if let Slot::Object(parent) = p.parent
            && let Some(parent) = self.objects.get_mut(&parent)
        {
            parent.children.insert(key);
        }
        let dn = self.dn(schema, key).to_string();
        let mut done = Executed::new(dn.clone());
        done.stable_id = Some(stable_id);
        self.log(
            schema,
            order,
            Operation::Create,
            key,
            None,
            format!("create {dn}"),
        );
        done.changed.insert(name_property);
        done.changed.insert(PARENT.to_owned());
        for (property, value) in p.scalars {
            self.write_scalar(schema, key, &property, Some(value), order);
            done.changed.insert(property);
        }
        for (property, target) in p.references {
            self.write_reference(schema, key, &property, Some(target), order);
            done.changed.insert(property);
        }
        if p.password.is_some() {
            self.log(
                schema,
                order,
                Operation::SetPassword,
                key,
                Some(PASSWORD),
                SECRET_MASK.to_owned(),
            );
            done.changed.insert(PASSWORD.to_owned());
        }
        for (group, member, via) in p.memberships {
            self.link(schema, group, member, true, usn, order);
            done.changed.insert(via.to_owned());
        }
        done
    }

    fn write_scalar(
        &mut self,
        schema: &CompiledSchema,
        key: ObjKey,
        property: &str,
        value: Option<ScalarValue>,
        order: Option<&OrderId>,
    ) {
        let old = self.objects[&key].scalars.get(property).cloned();
        self.set_unique(schema, key, property, old.as_ref(), value.as_ref());
        let detail = match &value {
            Some(v) => format!("= {}", v.display_text()),
            None => "clear".to_owned(),
        };
        let o = self.objects.get_mut(&key).expect("planned object exists");
        match value {
            Some(v) => o.scalars.insert(property.to_owned(), v),
            None => o.scalars.remove(property),
        };
        let operation = if property == ENABLED {
            Operation::Enable
        } else {
            Operation::Update
        };
        self.log(schema, order, operation, key, Some(property), detail);
    }

    fn write_reference(
        &mut self,
        schema: &CompiledSchema,
        key: ObjKey,
        property: &str,
        target: Option<ObjKey>,
        order: Option<&OrderId>,
    ) {
        let o = self.objects.get_mut(&key).expect("planned object exists");
        let old = match target {
            Some(t) => o.references.insert(property.to_owned(), t),
            None => o.references.remove(property),
        };
        if let Some(old) = old.and_then(|k| self.objects.get_mut(&k)) {
            old.referenced_by.remove(&(key, property.to_owned()));
        }
        let detail = match target {
            Some(t) => {
                if let Some(t) = self.objects.get_mut(&t) {
                    t.referenced_by.insert((key, property.to_owned()));
                }
                format!("= {}", self.dn(schema, t))
            }
            None => "clear".to_owned(),
        };
        self.log(
            schema,
            order,
            Operation::Update,
            key,
            Some(property),
            detail,
        );
    }

    /// Adds or removes one membership; the group's `member` is what is written.
    fn link(
        &mut self,
        schema: &CompiledSchema,
        group: ObjKey,
        member: ObjKey,
        add: bool,
        usn: u64,
        order: Option<&OrderId>,
    ) {
        if let Some(g) = self.objects.get_mut(&group) {
            if add {
                g.members.insert(member);
            } else {
                g.members.remove(&member);
            }
        }
        if let Some(m) = self.objects.get_mut(&member) {
            if add {
                m.member_of.insert(group);
            } else {
                m.member_of.remove(&group);
            }
        }
        self.touch(group, usn);
        self.touch(member, usn);
        let detail = format!(
            "{} {}",
            if add { "add" } else { "remove" },
            self.dn(schema, member)
        );
        self.log(
            schema,
            order,
            Operation::Membership,
            group,
            Some(MEMBERS),
            detail,
        );
    }

    fn apply_update(
        &mut self,
        schema: &CompiledSchema,
        p: UpdatePlan,
        order: Option<&OrderId>,
    ) -> Executed {
        let key = p.key;
        let nothing = p.rename.is_none()
            && p.move_to.is_none()
            && p.scalars.is_empty()
            && p.references.is_empty()
            && p.password.is_none()
            && p.add.is_empty()
            && p.remove.is_empty();
        let mut done = Executed::new(self.dn(schema, key).to_string());
        done.stable_id = Some(self.objects[&key].stable_id.clone());
        done.adopted = p.adopted;
        if nothing {
            return done;
        }
        let usn = self.begin();
        self.touch(key, usn);
        if p.rename.is_some() || p.move_to.is_some() {
            let before = self.dn(schema, key);
            let o = &self.objects[&key];
            let (old_parent, entity_type) = (o.parent, o.entity_type.clone());
            let old_key = State::name_key(schema, &entity_type, &o.name);
            self.by_name.remove(&(old_parent, old_key));
            let o = self.objects.get_mut(&key).expect("planned object exists");
            if let Some(name) = p.rename {
                o.name = name;
                done.changed.insert(p.name_property.clone());
            }
            if let Some(parent) = p.move_to {
                o.parent = parent;
                done.changed.insert(PARENT.to_owned());
            }
            let (new_parent, name) = (o.parent, o.name.clone());
            self.by_name.insert(
                (new_parent, State::name_key(schema, &entity_type, &name)),
                key,
            );
            if new_parent != old_parent {
                if let Slot::Object(k) = old_parent
                    && let Some(o) = self.objects.get_mut(&k)
                {
                    o.children.remove(&key);
                }
                if let Slot::Object(k) = new_parent
                    && let Some(o) = self.objects.get_mut(&k)
                {
                    o.children.insert(key);
                }
            }
            let after = self.dn(schema, key);
            self.log(
                schema,
                order,
                Operation::Rename,
                key,
                None,
                format!("from {before} to {after}"),
            );
            done.resource_id = after.to_string().into();
        }
        for (property, value) in p.scalars {
            self.write_scalar(schema, key, &property, value, order);
            done.changed.insert(property);
        }
        for (property, target) in p.references {
            self.write_reference(schema, key, &property, target, order);
            done.changed.insert(property);
        }
        if let Some(hash) = p.password {
            if let Some(o) = self.objects.get_mut(&key) {
                o.password = Some(hash);
            }
            self.log(
                schema,
                order,
                Operation::SetPassword,
                key,
                Some(PASSWORD),
                SECRET_MASK.to_owned(),
            );
            done.changed.insert(PASSWORD.to_owned());
        }
        for (group, member, via) in p.add {
            self.link(schema, group, member, true, usn, order);
            done.changed.insert(via.to_owned());
        }
        for (group, member, via) in p.remove {
            self.link(schema, group, member, false, usn, order);
            done.changed.insert(via.to_owned());
        }
        done
    }

    fn apply_delete(
        &mut self,
        schema: &CompiledSchema,
        p: DeletePlan,
        order: Option<&OrderId>,
    ) -> Executed {
        let usn = self.begin();
        let top = *p.keys.last().expect("a delete plan names its target");
        let mut done = Executed::new(self.dn(schema, top).to_string());
        done.stable_id = Some(self.objects[&top].stable_id.clone());
        for key in p.keys {
            let dn = self.dn(schema, key);
            self.log(
                schema,
                order,
                Operation::Delete,
                key,
                None,
                format!("delete {dn}"),
            );
            self.remove_object(schema, key, usn);
        }
        done.changed.insert("deleted".to_owned());
        done
    }
}
