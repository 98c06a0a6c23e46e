//! Fulfilment of Added, Modified and Deleted orders.
//!
//! Every order is first turned into a [`Desired`] state without writing: an unknown or
//! read-only property, a value of the wrong kind, a masked password or a group that does not
//! exist fails there with a permanent `InvalidOrder`. Then the target is read, compared, and
//! only what differs is written as one PATCH (with `If-Match` when the service advertises
//! ETags), so re-applying an order changes nothing. Memberships are value-level PATCHes on
//! the groups (`add members` / `remove members[value eq "…"]`), never a replacement.

use crate::connector::{ScimConnector, kind_name, literal, resource_path};
use crate::discovery::{Attr, Kind, ResourceType};
use autoprov_connector::schema::{DN_KEY, MEMBER_OF, PASSWORD, STABLE_ID_KEY};
use autoprov_connector::{ConnectorError, ErrorKind, Executed, Operation, ValueType};
use autoprov_core::{PropertyChange, ProvisioningOrder, Reference, ScalarValue, Secret, StableId};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What an order wants, validated.
struct Desired {
    set: BTreeMap<String, (Attr, Value)>,
    clear: BTreeMap<String, Attr>,
    password: Option<Secret>,
    add_groups: BTreeSet<String>,
    remove_groups: BTreeSet<String>,
}

fn invalid(op: Operation, message: String) -> ConnectorError {
    ConnectorError::invalid_order(op, message)
}

/// The SCIM id a reference names: its stable id, else its key.
fn reference_id(r: &Reference) -> Option<&str> {
    r.get(STABLE_ID_KEY)
        .or_else(|| r.get(DN_KEY))
        .filter(|v| !v.is_empty())
}

fn json_value(
    op: Operation,
    property: &str,
    attr: &Attr,
    v: &ScalarValue,
) -> Result<Value, ConnectorError> {
    let wrong = || {
        invalid(
            op,
            format!(
                "`{property}` takes a {:?} value, not a {}",
                attr.kind,
                v.kind_name()
            ),
        )
    };
    Ok(match (attr.kind, v) {
        (ValueType::Bool, ScalarValue::Bool(b)) => Value::Bool(*b),
        (ValueType::Integer, ScalarValue::Integer(i)) => json!(i),
        (ValueType::DateTime, ScalarValue::DateTime(d)) => {
            Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        (ValueType::DateTime | ValueType::String | ValueType::Binary, ScalarValue::String(s)) => {
            Value::String(s.clone())
        }
        _ => return Err(wrong()),
    })
}

impl ScimConnector {
    /// Validates an order's changes against the resource type, writing nothing; checks that
    /// every group it adds exists.
    async fn desired(
        &self,
        order: &ProvisioningOrder,
        rt: &ResourceType,
        op: Operation,
    ) -> Result<Desired, ConnectorError> {
        let mut d = Desired {
            set: BTreeMap::new(),
            clear: BTreeMap::new(),
            password: None,
            add_groups: BTreeSet::new(),
            remove_groups: BTreeSet::new(),
        };
        let caps = self.inner.info.capabilities;
        for (property, change) in &order.changes.properties {
            let Some(attr) = rt.attrs.get(property) else {
                return Err(invalid(
                    op,
                    format!(
                        "unknown property `{property}` for a SCIM {} (known: {})",
                        kind_name(rt.kind),
                        rt.attrs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            if !attr.writable {
                return Err(invalid(
                    op,
                    format!("`{property}` is read-only in this service"),
                ));
            }
            if attr.secret {
                if property != PASSWORD || !caps.password {
                    return Err(ConnectorError::unsupported(
                        Operation::SetPassword,
                        format!("the service does not support setting `{property}`"),
                    ));
                }
                match change {
                    PropertyChange::Set(ScalarValue::Secret(s)) => {
                        if s_is_unusable(s) {
                            return Err(invalid(
                                Operation::SetPassword,
                                "the password is masked or empty (a redacted secret read back \
                                 from a file has no value)"
                                    .into(),
                            ));
                        }
                        d.password = Some(s.clone());
                    }
                    _ => {
                        return Err(invalid(
                            Operation::SetPassword,
                            "`password` must be set from a secret value".into(),
                        ));
                    }
                }
                continue;
            }
            match change {
                PropertyChange::Set(v) => {
                    if let ScalarValue::String(s) = v
                        && s.is_empty()
                    {
                        // An empty string clears, as in the reference system.
                        d.clear.insert(property.clone(), attr.clone());
                        continue;
                    }
                    let value = json_value(op, property, attr, v)?;
                    d.set.insert(property.clone(), (attr.clone(), value));
                }
                PropertyChange::Clear => {
                    d.clear.insert(property.clone(), attr.clone());
                }
                PropertyChange::SetReference(_) => {
                    return Err(invalid(
                        op,
                        format!("`{property}` is a scalar, not a navigation"),
                    ));
                }
            }
        }
        let name = rt.name_property();
        if d.clear.contains_key(name) {
            return Err(invalid(
                op,
                format!("`{name}` is required and cannot be cleared"),
            ));
        }
        for (nav, change) in &order.changes.navigations {
            if nav != MEMBER_OF || rt.kind != Kind::User {
                return Err(invalid(
                    op,
                    format!(
                        "unknown navigation `{nav}` for a SCIM {} (memberships are written as \
                         `{MEMBER_OF}_add` / `{MEMBER_OF}_remove` on users)",
                        kind_name(rt.kind)
                    ),
                ));
            }
            if !caps.membership {
                return Err(ConnectorError::unsupported(
                    Operation::Membership,
                    "the service does not support PATCH and filters, needed for memberships",
                ));
            }
            for (refs, into) in [
                (&change.add, &mut d.add_groups),
                (&change.remove, &mut d.remove_groups),
            ] {
                for r in refs {
                    let id = reference_id(r).ok_or_else(|| {
                        invalid(
                            Operation::Membership,
                            format!("a `{MEMBER_OF}` reference without `{DN_KEY}` or `{STABLE_ID_KEY}`: {r}"),
                        )
                    })?;
                    into.insert(id.to_owned());
                }
            }
        }
        if let Some(both) = d.add_groups.intersection(&d.remove_groups).next() {
            return Err(invalid(
                Operation::Membership,
                format!("group {both} is both added and removed"),
            ));
        }
        if !d.add_groups.is_empty() {
            let groups = self.groups().expect("membership needs groups");
            for g in &d.add_groups {
                if self
                    .get(Operation::Membership, groups, g, Some("id"))
                    .await?
                    .is_none()
                {
                    return Err(invalid(
                        Operation::Membership,
                        format!("`{MEMBER_OF}_add` names group {g}, which does not exist"),
                    ));
                }
            }
        }
        Ok(d)
    }

    /// The body of a POST: the attributes nested as SCIM wants them.
    fn create_body(&self, rt: &ResourceType, d: &Desired) -> Result<Value, ConnectorError> {
        let mut body = Map::new();
        let mut schemas = vec![Value::String(rt.schema.clone())];
        for (attr, value) in d.set.values() {
            let holder = match &attr.extension {
                Some(urn) => {
                    if !schemas.iter().any(|s| s == urn.as_str()) {
                        schemas.push(Value::String(urn.clone()));
                    }
                    body.entry(urn.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut()
                        .expect("an object")
                }
                None => &mut body,
            };
            match &attr.sub {
                Some(sub) => {
                    holder
                        .entry(attr.attribute.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut()
                        .expect("an object")
                        .insert(sub.clone(), value.clone());
                }
                None => {
                    holder.insert(attr.attribute.clone(), value.clone());
                }
            }
        }
        if let Some(p) = &d.password {
            body.insert("password".into(), Value::String(expose(p)?.to_owned()));
        }
        body.insert("schemas".into(), Value::Array(schemas));
        Ok(Value::Object(body))
    }

    /// Resources of a type whose name equals `name` (the service compares it).
    async fn find_named(
        &self,
        op: Operation,
        rt: &ResourceType,
        name: &str,
    ) -> Result<Vec<Value>, ConnectorError> {
        let filter = format!("{} eq {}", rt.name_property(), literal(name));
        self.list_all(op, rt, &filter, None).await
    }

    pub(crate) async fn fulfill_added(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Create;
        let rt = self.resource_type_of(order)?;
        let d = self.desired(order, rt, op).await?;
        let name_property = rt.name_property();
        let Some(Value::String(name)) = d.set.get(name_property).map(|(_, v)| v.clone()) else {
            return Err(invalid(
                op,
                format!("an Added {} needs `{name_property}`", kind_name(rt.kind)),
            ));
        };
        if !d.remove_groups.is_empty() {
            return Err(invalid(
                Operation::Membership,
                format!("an Added order cannot `{MEMBER_OF}_remove`"),
            ));
        }
        let name_unique = rt.attrs.get(name_property).is_some_and(|a| a.unique);
        // A name the service does not keep unique (group names, usually) is looked up first,
        // so that a re-sent order never creates a second group.
        if !name_unique && let Some(existing) = self.correlate(order, rt, &d, &name).await? {
            return self.adopt(order, rt, existing, d).await;
        }
        let body = self.create_body(rt, &d)?;
        let created = match self
            .send(op, Method::POST, &rt.endpoint, &[], Some(&body), None)
            .await
        {
            Ok(r) => r.body,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // 409 uniqueness: adopt the holder only when it is the same identity.
                return match self.correlate(order, rt, &d, &name).await? {
                    Some(existing) => self.adopt(order, rt, existing, d).await,
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let id = scim_id(&created, op)?;
        let mut changed: BTreeSet<String> = d.set.keys().cloned().collect();
        if d.password.is_some() {
            changed.insert(PASSWORD.into());
        }
        if !d.add_groups.is_empty() {
            for g in &d.add_groups {
                self.add_member(g, &id).await?;
            }
            changed.insert(MEMBER_OF.into());
        }
        Ok(Executed::new(id.clone())
            .with_stable_id(Some(StableId::new(id)))
            .with_changed(changed))
    }

    /// The existing resource an Added order may adopt: one named like it whose `externalId`
    /// does not contradict the order's. Another identity holding the name is `AlreadyExists`.
    async fn correlate(
        &self,
        order: &ProvisioningOrder,
        rt: &ResourceType,
        d: &Desired,
        name: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let op = Operation::Create;
        let found = self.find_named(op, rt, name).await?;
        let wanted = d.set.get("externalId").and_then(|(_, v)| v.as_str());
        let mut candidates = Vec::new();
        for r in found {
            let theirs = r.get("externalId").and_then(Value::as_str);
            match (wanted, theirs) {
                (Some(w), Some(t)) if w != t => {
                    return Err(ConnectorError::new(
                        ErrorKind::AlreadyExists,
                        op,
                        format!(
                            "the {} {name:?} is held by another identity (externalId {t:?}, \
                             the order's is {w:?}); not adopted",
                            kind_name(rt.kind)
                        ),
                    )
                    .for_order(order));
                }
                _ => candidates.push(r),
            }
        }
        match candidates.len() {
            0 => Ok(None),
            1 => Ok(candidates.pop()),
            n => Err(ConnectorError::new(
                ErrorKind::Conflict,
                op,
                format!(
                    "{n} {}s are named {name:?}: cannot tell which to adopt",
                    kind_name(rt.kind)
                ),
            )),
        }
    }

    /// Adopts the same identity found by an Added order and converges it — unless the order
    /// asks for review before adopting one autoprov did not create
    /// ([`ADOPTION_REVIEW_ARGUMENT`](autoprov_connector::ADOPTION_REVIEW_ARGUMENT)): the order's
    /// own creation is one it finds when sent again, created (`meta.created`) at or after its
    /// first attempt less [`autoprov_connector::ADOPTION_CLOCK_TOLERANCE`].
    async fn adopt(
        &self,
        order: &ProvisioningOrder,
        rt: &ResourceType,
        existing: Value,
        d: Desired,
    ) -> Result<Executed, ConnectorError> {
        let id = scim_id(&existing, Operation::Create)?;
        let created = existing
            .pointer("/meta/created")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc());
        if autoprov_connector::adoption_needs_review(order, created) {
            let location = existing
                .pointer("/meta/location")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{} {id}", kind_name(rt.kind)), str::to_owned);
            return Err(ConnectorError::adoption_needs_review(
                location,
                Some(&StableId::new(id.clone())),
            )
            .for_order(order));
        }
        let changed = self
            .converge(rt, &id, existing, &d, Operation::Create)
            .await?;
        Ok(Executed::new(id.clone())
            .with_stable_id(Some(StableId::new(id)))
            .with_changed(changed)
            .with_adopted(true))
    }

    /// Writes what differs between `current` and `d`: one PATCH of the resource, then the
    /// membership deltas. Returns the properties written.
    async fn converge(
        &self,
        rt: &ResourceType,
        id: &str,
        current: Value,
        d: &Desired,
        op: Operation,
    ) -> Result<BTreeSet<String>, ConnectorError> {
        let mut changed = BTreeSet::new();
        let mut ops = Vec::new();
        for (property, (attr, value)) in &d.set {
            if attr.get(&current) != Some(value) {
                ops.push(json!({"op": "replace", "path": attr.path(), "value": value}));
                changed.insert(property.clone());
            }
        }
        for (property, attr) in &d.clear {
            if attr.get(&current).is_some() {
                ops.push(json!({"op": "remove", "path": attr.path()}));
                changed.insert(property.clone());
            }
        }
        if let Some(p) = &d.password {
            ops.push(json!({"op": "replace", "path": "password", "value": expose(p)?}));
            changed.insert(PASSWORD.into());
        }
        if !ops.is_empty() {
            if !self.inner.service.patch {
                return Err(ConnectorError::unsupported(
                    Operation::Update,
                    "the service does not support PATCH",
                ));
            }
            let version = if self.inner.service.etag {
                current
                    .get("meta")
                    .and_then(|m| m.get("version"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            } else {
                None
            };
            let body = json!({"schemas": [PATCH_OP], "Operations": ops});
            self.send(
                op,
                Method::PATCH,
                &resource_path(rt, id),
                &[],
                Some(&body),
                version.as_deref(),
            )
            .await?;
        }
        if !d.add_groups.is_empty() || !d.remove_groups.is_empty() {
            let now = self.groups_of(id).await?;
            let mut wrote = false;
            for g in d.add_groups.difference(&now) {
                self.add_member(g, id).await?;
                wrote = true;
            }
            for g in d.remove_groups.intersection(&now) {
                self.remove_member(g, id).await?;
                wrote = true;
            }
            if wrote {
                changed.insert(MEMBER_OF.into());
            }
        }
        Ok(changed)
    }

    /// The ids of the groups that list `member` among their members.
    pub(crate) async fn groups_of(&self, member: &str) -> Result<BTreeSet<String>, ConnectorError> {
        let groups = self.groups().expect("membership needs groups");
        let filter = format!("members[value eq {}]", literal(member));
        Ok(self
            .list_all(Operation::Membership, groups, &filter, Some("id"))
            .await?
            .iter()
            .filter_map(|g| g.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    async fn add_member(&self, group: &str, member: &str) -> Result<(), ConnectorError> {
        let groups = self.groups().expect("membership needs groups");
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": member}]}
        ]});
        self.member_patch(groups, group, &body).await
    }

    async fn remove_member(&self, group: &str, member: &str) -> Result<(), ConnectorError> {
        let groups = self.groups().expect("membership needs groups");
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": format!("members[value eq {}]", literal(member))}
        ]});
        self.member_patch(groups, group, &body).await
    }

    async fn member_patch(
        &self,
        groups: &ResourceType,
        group: &str,
        body: &Value,
    ) -> Result<(), ConnectorError> {
        match self
            .send(
                Operation::Membership,
                Method::PATCH,
                &resource_path(groups, group),
                &[],
                Some(body),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(ConnectorError::invalid_order(
                Operation::Membership,
                format!("group {group} does not exist"),
            )),
            Err(e) => Err(e.with_target(format!("group {group}"))),
        }
    }

    /// The SCIM id of an order's target: its stable id, else its key.
    fn target_id(order: &ProvisioningOrder, op: Operation) -> Result<String, ConnectorError> {
        let Some(r) = &order.resource else {
            return Err(invalid(
                op,
                format!("a {} order names no target", order.change_type),
            ));
        };
        Ok(r.stable_id
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| r.id.as_str().to_owned()))
    }

    pub(crate) async fn fulfill_modified(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Update;
        let rt = self.resource_type_of(order)?;
        let id = Self::target_id(order, op)?;
        if id.is_empty() {
            return Err(invalid(op, "the target's key is empty".into()));
        }
        let d = self.desired(order, rt, op).await?;
        let Some(current) = self.get(op, rt, &id, None).await? else {
            let stale = Self::other_key(order, &id)
                .map(|key| format!(" (the order's key {key} was not used)"))
                .unwrap_or_default();
            return Err(ConnectorError::new(
                ErrorKind::NotFound,
                op,
                format!("the {} {id} does not exist{stale}", kind_name(rt.kind)),
            ));
        };
        let changed = self.converge(rt, &id, current, &d, op).await?;
        Ok(Executed::new(id.clone())
            .with_stable_id(Some(StableId::new(id)))
            .with_changed(changed))
    }

    pub(crate) async fn fulfill_deleted(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Delete;
        let rt = self.resource_type_of(order)?;
        let id = Self::target_id(order, op)?;
        if id.is_empty() {
            return Err(invalid(op, "the target's key is empty".into()));
        }
        let done = Executed::new(id.clone()).with_stable_id(Some(StableId::new(id.clone())));
        // Services need not drop a deleted user's values from the groups' `members`
        // (scim2-server keeps them): the package removes the user from its groups first, so
        // no group keeps a dangling member. A dropped call leaves fewer memberships, and the
        // re-sent order finishes the job.
        let mut left_groups = false;
        if rt.kind == Kind::User && self.inner.info.capabilities.membership {
            for g in self.groups_of(&id).await? {
                match self.remove_member(&g, &id).await {
                    Ok(()) => left_groups = true,
                    // The group went meanwhile: nothing to remove.
                    Err(e) if e.kind() == ErrorKind::InvalidOrder => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match self
            .send(op, Method::DELETE, &resource_path(rt, &id), &[], None, None)
            .await
        {
            Ok(_) => Ok(done.with_changed(["deleted"])),
            // Already gone: the order is done.
            Err(e) if e.kind() == ErrorKind::NotFound && left_groups => {
                Ok(done.with_changed([MEMBER_OF]))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(match Self::other_key(order, &id) {
                // The order's key names something else than the id it acts on: say that
                // nothing was written to it.
                Some(key) => done.with_note(format!(
                    "the {} with stable id {id} is already gone; nothing written (the order's \
                     key {key} was not used)",
                    kind_name(rt.kind)
                )),
                None => done,
            }),
            Err(e) => Err(e),
        }
    }

    /// The order's key when it differs from the SCIM id the order acts on (a stale key).
    fn other_key(order: &ProvisioningOrder, id: &str) -> Option<String> {
        let key = order.resource.as_ref()?.id.as_str();
        (!key.is_empty() && key != id).then(|| key.to_owned())
    }
}

fn s_is_unusable(s: &Secret) -> bool {
    s.is_redacted() || s.is_empty()
}

fn expose(s: &Secret) -> Result<&str, ConnectorError> {
    s.expose().map_err(|_| {
        invalid(
            Operation::SetPassword,
            "the password is masked (a redacted secret has no value)".into(),
        )
    })
}

fn scim_id(resource: &Value, op: Operation) -> Result<String, ConnectorError> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Unexpected,
                op,
                "the service answered a resource without `id`",
            )
        })
}
