//! Modified orders: a compare-and-swap fast path, else read, rename or move, and converge.
//! Every write addresses the target by objectGUID (`<GUID=...>`): the object the order means
//! (by its stable id, or the one read at its key), never whatever holds its DN by then.

use super::*;
use crate::connector::{Located, guid_dn};

impl Inner {
    /// The one-operation path of a Modified order that only sets scalars and whose `Resource`
    /// carries their current values (as the planner's orders do): one modify of the order's
    /// key that deletes each old value and adds the new one. The server applies it atomically
    /// and only if every old value is still there, so it is a compare-and-swap: when anything
    /// differs (a re-applied order, drift, a stale `Resource`, a target that moved or
    /// vanished) it writes nothing and `None` sends the order down the read, compare and write
    /// path. It addresses `<GUID=...>` when the order carries a stable id (so it can only
    /// change that object), else the key. The outcome reports the order's key: a target moved
    /// out of band keeps its stale key until the next export.
    pub(super) async fn compare_and_swap(
        &self,
        d: &Desired,
        m: &EntityMapping,
        resource: &autoprov_core::Resource,
    ) -> Result<Option<Executed>, ConnectorError> {
        let only_scalars = d.parent.is_none()
            && d.rdn.is_none()
            && d.enabled.is_none()
            && d.password.is_none()
            && d.must_change.is_none()
            && d.groups_add.is_empty()
            && d.groups_remove.is_empty()
            && !d.scalars.is_empty();
        if !only_scalars {
            return Ok(None);
        }
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        let mut unchanged = true;
        for w in &d.scalars {
            let (Some(new), false) = (&w.value, w.is_dn || m.is_reference(&w.property)) else {
                return Ok(None);
            };
            // Only when the order says what the value is now: a missing one may mean "empty"
            // or "not exported", and guessing costs a failed operation.
            let old = match resource.get(&w.property) {
                Some(autoprov_core::PropertyValue::Scalar(v)) if !v.is_secret() => {
                    match ldap_value(&w.property, v, Operation::Update) {
                        Ok(Some(old)) => old,
                        _ => return Ok(None),
                    }
                }
                _ => return Ok(None),
            };
            let attr = w.attribute.as_bytes().to_vec();
            if old != *new {
                unchanged = false;
            }
            mods.push(Mod::Delete(attr.clone(), set([old])));
            mods.push(Mod::Add(attr, set([new.clone()])));
        }
        if unchanged {
            // By the order's own account there is nothing to do: check the directory.
            return Ok(None);
        }
        let Ok(key) = Dn::parse(resource.id.as_str()) else {
            return Ok(None);
        };
        let Some((server_index, server)) = self.server_for(&key) else {
            return Ok(None);
        };
        let (target, stable_id) = match &resource.stable_id {
            Some(s) => match crate::guid::guid_from_str(s.as_str())
                .and_then(|b| crate::guid::guid_to_string(&b))
            {
                Some(g) => (guid_dn(&g), Some(StableId::new(g))),
                // Not an objectGUID: the read path refuses the order.
                None => return Ok(None),
            },
            None => (resource.id.to_string(), None),
        };
        self.check_attributes(server_index, d, Operation::Update)
            .await
            .map_err(|e| e.with_target(resource.id.as_str()))?;
        match server.modify(&target, &mods, &[]).await {
            Ok(()) => Ok(Some(
                Executed::new(resource.id.clone())
                    .with_stable_id(stable_id)
                    .with_changed(d.scalars.iter().map(|w| w.property.clone())),
            )),
            Err(LdapFailure::Result { .. }) => Ok(None),
            Err(f) => Err(f.into_error(Operation::Update, resource.id.as_str())),
        }
    }

    pub(crate) async fn modified(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Update;
        let d = desired(order, m)?;
        let resource = order
            .resource
            .as_ref()
            .ok_or_else(|| invalid(op, "a Modified order needs `Resource`"))?;
        let key = resource.id.as_str();
        if d.password.is_some() && !self.encrypted() {
            return Err(self.refuse_plain_password(key));
        }
        if let Some(done) = self.compare_and_swap(&d, m, resource).await? {
            return Ok(done);
        }
        let attrs = self.read_list(&d, m);
        let (server_index, entry) = match self
            .locate(
                resource.stable_id.as_ref().map(|s| s.as_str()),
                key,
                &attrs,
                op,
            )
            .await?
        {
            Located::Found(i, entry) => (i, entry),
            Located::Missing => {
                return Err(ConnectorError::new(
                    ErrorKind::NotFound,
                    op,
                    format!(
                        "the target does not exist (stable id {}, DN {key})",
                        resource
                            .stable_id
                            .as_ref()
                            .map(|s| s.as_str())
                            .unwrap_or("unknown")
                    ),
                )
                .with_target(key));
            }
            Located::HeldByAnother { stable_id, holder } => {
                return Err(ConnectorError::new(
                    ErrorKind::NotFound,
                    op,
                    format!(
                        "the target (objectGUID {stable_id}) does not exist; its DN {key} now \
                         names another object (objectGUID {holder}), which is left untouched"
                    ),
                )
                .with_target(key));
            }
        };
        let server = self.servers[server_index].clone();
        let current = Dn::parse(&entry.dn).map_err(|e| {
            ConnectorError::new(ErrorKind::Unexpected, Operation::Read, e.to_string())
        })?;

        // Move and/or rename.
        let Relocation {
            current_parent,
            current_rdn_value,
            new_parent,
            new_rdn_value,
        } = relocation(&d, &current);
        let mut entry = entry;
        let mut changed = BTreeSet::new();
        if new_parent.is_some() || new_rdn_value.is_some() {
            let parent = new_parent.clone().unwrap_or(current_parent.clone());
            let value = new_rdn_value.clone().unwrap_or(current_rdn_value.clone());
            let attr = current
                .rdn_attribute()
                .unwrap_or(&m.rdn_attribute)
                .to_owned();
            let new_dn = parent.child(Rdn::new(&attr, &value));
            let dn_text = entry.dn.clone();
            let fail = |e: ConnectorError| e.with_target(dn_text.clone());
            let (new_server, _) = self.server_of(&parent, Operation::Rename).map_err(fail)?;
            if new_server != server_index {
                return Err(ConnectorError::unsupported(
                    Operation::Rename,
                    format!("moving to `{parent}` would cross domains"),
                )
                .with_target(dn_text));
            }
            if new_parent.is_some() {
                self.check_exist(&server, "the new parent", &[&parent], Operation::Rename)
                    .await
                    .map_err(fail)?;
            }
            // No read of the new DN first: a rename onto a taken DN fails (68) and changes
            // nothing, and the target is then looked up by id below (a case-only rename is
            // not refused by the server).
            let rdn = Rdn::new(&attr, &value).to_string();
            // By objectGUID, with the new superior always given: Samba takes the parent of a
            // `<GUID=...>` DN as empty and answers 32 without it.
            let sup = parent.to_string();
            // Whatever the outcome, the old name may be gone, and a 32 may mean the parent is.
            self.confirmed.forget(&current.key());
            match server.modify_dn(&address(&entry), &rdn, Some(&sup)).await {
                Ok(()) => {}
                // Gone from where it was read (32), or the new DN taken (68): maybe by this
                // very rename, applied by an earlier attempt. Look the target up by id first.
                Err(f @ LdapFailure::Result { rc: 32 | 68, .. }) => {
                    self.confirmed.forget(&parent.key());
                    let now = match entry.guid() {
                        Some(g) => self
                            .read_by_guid(&g, &["1.1".to_owned()], &dn_text)
                            .await?
                            .map(|(_, e)| e.dn),
                        None => None,
                    };
                    let done = now
                        .as_deref()
                        .and_then(|n| Dn::parse(n).ok())
                        .is_some_and(|n| n.same_as(&new_dn));
                    if !done && f.rc() == Some(68) && now.is_some() {
                        // The target is where it was read: another object holds the new DN.
                        return Err(ConnectorError::new(
                            ErrorKind::AlreadyExists,
                            Operation::Rename,
                            format!("`{new_dn}` is already held by another object"),
                        )
                        .with_target(dn_text));
                    }
                    if !done {
                        let e = f.into_error(Operation::Rename, &dn_text);
                        let message = match (&now, entry.guid()) {
                            (Some(now), _) => {
                                format!("{} (the target is now at {now})", e.message())
                            }
                            (None, Some(g)) => format!(
                                "{} (no object has the target's objectGUID {g} any more)",
                                e.message()
                            ),
                            (None, None) => e.message().to_owned(),
                        };
                        let kind = if now.is_none() && e.kind() != ErrorKind::AlreadyExists {
                            ErrorKind::NotFound
                        } else {
                            e.kind()
                        };
                        return Err(ConnectorError::new(kind, Operation::Rename, message)
                            .with_target(dn_text)
                            .pipe_status(e.is_temporary()));
                    }
                }
                Err(f) => return Err(f.into_error(Operation::Rename, &dn_text)),
            }
            if let (Some(_), Some((p, _))) = (&new_parent, &d.parent) {
                changed.insert(p.clone());
            }
            if let (Some(_), Some((p, _))) = (&new_rdn_value, &d.rdn) {
                changed.insert(p.clone());
            }
            entry.dn = new_dn.to_string();
        }
        let mut executed = self
            .converge(&server, server_index, m, entry, d, op)
            .await?;
        executed.changed.extend(changed);
        Ok(executed)
    }
}
