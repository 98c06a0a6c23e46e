//! Applying a plan to the state: it cannot fail, because planning checked everything.

use super::plan::{CreatePlan, DeletePlan, Plan, UpdatePlan};
use crate::connector::Executed;
use crate::error::Operation;
use crate::memory::schema::CompiledSchema;
use crate::memory::state::{ObjKey, Object, Slot, State, stable_id_of};
use crate::schema::{ENABLED, MEMBERS, PARENT, PASSWORD};
use autoprov_core::{OrderId, SECRET_MASK, ScalarValue};
use std::collections::{BTreeMap, BTreeSet};

impl State {
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
                created_by: p.created_by,
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
            self.password_written(schema, key, order, &mut done);
        }
        self.link_all(schema, p.memberships, true, usn, order, &mut done);
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
    /// Logs a password write (masked) and reports it.
    fn password_written(
        &mut self,
        schema: &CompiledSchema,
        key: ObjKey,
        order: Option<&OrderId>,
        done: &mut Executed,
    ) {
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

    /// Adds (or removes) each (group, member) link, reporting the navigation it came through.
    fn link_all(
        &mut self,
        schema: &CompiledSchema,
        links: Vec<(ObjKey, ObjKey, &'static str)>,
        add: bool,
        usn: u64,
        order: Option<&OrderId>,
        done: &mut Executed,
    ) {
        for (group, member, via) in links {
            self.link(schema, group, member, add, usn, order);
            done.changed.insert(via.to_owned());
        }
    }

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
            self.touch_renamed(key, usn);
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
            self.password_written(schema, key, order, &mut done);
        }
        self.link_all(schema, p.add, true, usn, order, &mut done);
        self.link_all(schema, p.remove, false, usn, order, &mut done);
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
