//! What a check works with: the connection, the profile, its namespace, order building, and
//! what it created (to clean up).

use crate::connector::{Connector, ConnectorExt, Executed, ExportRequest, Fulfillment};
use crate::dn::same_name;
use crate::error::ConnectorError;
use crate::schema::{DN_KEY, PARENT};
use crate::testkit::KitProfile;
use autoprov_core::{
    ChangeType, Changes, EntityTypeId, EntityTypeRef, OrderId, Owner, PropertyValue,
    ProvisioningOrder, Reference, Resource, ResourceId, ResourceTypeRef, ScalarValue, StableId,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A check's failure message.
pub(crate) type Fail = String;

/// Fails the check with a message.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(format!($($arg)*))
    };
}

/// Fails the check unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

pub(crate) use {ensure, fail};

/// An object the check created: where it is now.
#[derive(Clone, Debug)]
pub(crate) struct Created {
    pub(crate) entity_type: EntityTypeId,
    pub(crate) id: ResourceId,
    pub(crate) stable_id: StableId,
    pub(crate) container: bool,
}

impl Created {
    pub(crate) fn reference(&self) -> Reference {
        Reference::key(DN_KEY, self.id.as_str())
    }
}

#[derive(Debug)]
struct Tracked {
    created: Created,
    deleted: bool,
}

struct Shared {
    run: String,
    counter: AtomicU64,
    namespace: Option<Created>,
    tracked: Mutex<Vec<Tracked>>,
}

/// The check's working context. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ctx<'a> {
    pub(crate) conn: &'a dyn Connector,
    pub(crate) profile: &'a KitProfile,
    pub(crate) check: &'static str,
    shared: Arc<Shared>,
}

fn random_run() -> String {
    format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

impl<'a> Ctx<'a> {
    /// Opens the check's namespace: a container created through the connector when the
    /// profile and capabilities allow, else only a unique prefix.
    pub(crate) async fn open(
        conn: &'a dyn Connector,
        profile: &'a KitProfile,
        check: &'static str,
        with_namespace: bool,
    ) -> Result<Ctx<'a>, Fail> {
        let mut ctx = Ctx {
            conn,
            profile,
            check,
            shared: Arc::new(Shared {
                run: random_run(),
                counter: AtomicU64::new(0),
                namespace: None,
                tracked: Mutex::new(Vec::new()),
            }),
        };
        if with_namespace && ctx.uses_containers() {
            let container_type = profile.container_type.clone().expect("checked");
            let mut changes = Changes::default();
            changes.set(
                profile.container_name_property.clone(),
                format!(
                    "autoprov-kit-{}-{}",
                    ctx.shared.run,
                    check.replace('_', "-")
                ),
            );
            if let Some(root) = &profile.root_container {
                changes.set_reference(PARENT, Reference::key(DN_KEY, root.clone()));
            }
            let ns = ctx
                .create(&container_type, changes, true)
                .await
                .map_err(|e| format!("creating the namespace container: {e}"))?;
            Arc::get_mut(&mut ctx.shared)
                .expect("not shared yet")
                .namespace = Some(ns);
        }
        Ok(ctx)
    }

    /// Whether objects live in a namespace container.
    pub(crate) fn uses_containers(&self) -> bool {
        self.profile.container_type.is_some() && self.conn.info().capabilities.containers
    }

    /// The namespace container, if any.
    pub(crate) fn namespace(&self) -> Option<&Created> {
        self.shared.namespace.as_ref()
    }

    fn next(&self) -> u64 {
        self.shared.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A unique token for names and values: the run id and a counter.
    pub(crate) fn token(&self) -> String {
        format!("kit{}x{}", self.shared.run, self.next())
    }

    /// A unique, short, plain key value.
    pub(crate) fn key(&self) -> String {
        format!("k{}{}", self.shared.run, self.next())
    }

    /// A unique object name for a label.
    pub(crate) fn name(&self, label: &str) -> String {
        format!("{}-{label}", self.token())
    }

    fn base(&self, name: String, parent: Option<&Created>) -> Changes {
        let mut c = Changes::default();
        c.set(self.profile.name_property.clone(), name);
        if let Some(parent) = parent.or(self.namespace()) {
            c.set_reference(PARENT, parent.reference());
        }
        c
    }

    /// The changes of a new account named `name` (in `parent`, else the namespace).
    pub(crate) fn account_named(&self, name: String, parent: Option<&Created>) -> Changes {
        let mut c = self.base(name, parent);
        if let Some(key) = &self.profile.key_property {
            c.set(key.clone(), self.key());
        }
        for (k, v) in &self.profile.account_values {
            c.set(k.clone(), v.clone());
        }
        c
    }

    /// The changes of a new account.
    pub(crate) fn account(&self, label: &str) -> Changes {
        self.account_named(self.name(label), None)
    }

    /// Creates an account.
    pub(crate) async fn create_account(&self, changes: Changes) -> Result<Created, Fail> {
        let t = self.profile.account_type.clone();
        self.create(&t, changes, false).await
    }

    /// Creates a group (the profile has a group type).
    pub(crate) async fn create_group(&self, label: &str) -> Result<Created, Fail> {
        let t = self
            .profile
            .group_type
            .clone()
            .ok_or("the profile has no group type")?;
        let mut c = self.base(self.name(label), None);
        if let Some(property) = &self.profile.group_name_property {
            let name = c
                .properties
                .remove(&self.profile.name_property)
                .expect("base sets the name");
            c.properties.insert(property.clone(), name);
        }
        if let Some(key) = &self.profile.key_property {
            c.set(key.clone(), self.key());
        }
        for (k, v) in &self.profile.group_values {
            c.set(k.clone(), v.clone());
        }
        self.create(&t, c, false).await
    }

    /// Creates a container in the namespace (the profile has a container type).
    pub(crate) async fn create_container(&self, label: &str) -> Result<Created, Fail> {
        let t = self
            .profile
            .container_type
            .clone()
            .ok_or("the profile has no container type")?;
        let mut c = Changes::default();
        c.set(
            self.profile.container_name_property.clone(),
            self.name(label),
        );
        if let Some(ns) = self.namespace() {
            c.set_reference(PARENT, ns.reference());
        }
        self.create(&t, c, true).await
    }

    /// An order of the kit.
    pub(crate) fn order(
        &self,
        change_type: ChangeType,
        entity_type: &EntityTypeId,
        changes: Changes,
        target: Option<(&ResourceId, Option<&StableId>)>,
    ) -> ProvisioningOrder {
        let resource_type = self.profile.resource_type_for(entity_type);
        ProvisioningOrder {
            order_id: OrderId::new(format!(
                "kit-{}-{}-{}",
                self.shared.run,
                self.check,
                self.next()
            )),
            assigned_resource_type_id: None,
            change_type,
            workflow_instance_id: None,
            owner: Some(
                Owner::new(format!("kit-owner-{}", self.shared.run), "autoprov-kit")
                    .with_entity_type(self.profile.owner_type.clone()),
            ),
            resource_type: ResourceTypeRef {
                id: resource_type.clone(),
                identifier: resource_type.to_string(),
                source_entity_type: EntityTypeRef {
                    id: self.profile.owner_type.clone(),
                    identifier: self.profile.owner_type.to_string(),
                },
                target_entity_type: EntityTypeRef {
                    id: entity_type.clone(),
                    identifier: entity_type.to_string(),
                },
            },
            connection: Some(self.conn.info().connection.clone()),
            changes,
            resource: target.map(|(id, stable)| {
                let mut r = Resource::new(id.clone()).with_entity_type(entity_type.clone());
                r.stable_id = stable.cloned();
                r
            }),
            depends_on: Vec::new(),
            not_before: None,
            arguments: Default::default(),
        }
    }

    /// Sends an order; an automated connection must execute it.
    pub(crate) async fn send(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<Result<Executed, ConnectorError>, Fail> {
        match self.conn.fulfill(order).await {
            Ok(Fulfillment::Executed(e)) => Ok(Ok(e)),
            Ok(other) => fail!(
                "order {} ({}) of an automated connection was not executed: {other:?}",
                order.order_id,
                order.change_type
            ),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Sends an order that must succeed.
    pub(crate) async fn apply(&self, order: &ProvisioningOrder) -> Result<Executed, Fail> {
        match self.send(order).await? {
            Ok(e) => Ok(e),
            Err(e) => fail!(
                "order {} ({} of a `{}`) failed: {e}",
                order.order_id,
                order.change_type,
                order.resource_type.target_entity_type.id
            ),
        }
    }

    /// Creates an object and tracks it for clean-up.
    pub(crate) async fn create(
        &self,
        entity_type: &EntityTypeId,
        changes: Changes,
        container: bool,
    ) -> Result<Created, Fail> {
        let order = self.order(ChangeType::Added, entity_type, changes, None);
        let done = self.apply(&order).await?;
        self.track_created(entity_type, &done, container)
    }

    /// Tracks the outcome of an Added order.
    pub(crate) fn track_created(
        &self,
        entity_type: &EntityTypeId,
        done: &Executed,
        container: bool,
    ) -> Result<Created, Fail> {
        ensure!(
            !done.resource_id.as_str().is_empty(),
            "an Added order returned an empty key"
        );
        let Some(stable_id) = done.stable_id.clone() else {
            fail!(
                "an Added order returned no stable id for {} (the contract requires one for \
                 creates and adoptions)",
                done.resource_id
            );
        };
        let created = Created {
            entity_type: entity_type.clone(),
            id: done.resource_id.clone(),
            stable_id,
            container,
        };
        let mut tracked = self.tracked();
        if !tracked
            .iter()
            .any(|t| t.created.stable_id == created.stable_id)
        {
            tracked.push(Tracked {
                created: created.clone(),
                deleted: false,
            });
        }
        Ok(created)
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Vec<Tracked>> {
        self.shared
            .tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A Modified order of a created object (found by stable id and key).
    pub(crate) fn modify_order(&self, target: &Created, changes: Changes) -> ProvisioningOrder {
        self.order(
            ChangeType::Modified,
            &target.entity_type,
            changes,
            Some((&target.id, Some(&target.stable_id))),
        )
    }

    /// Applies a Modified order and follows the target's new key.
    pub(crate) async fn modify(
        &self,
        target: &mut Created,
        changes: Changes,
    ) -> Result<Executed, Fail> {
        let order = self.modify_order(target, changes);
        let done = self.apply(&order).await?;
        self.follow(target, &done)?;
        Ok(done)
    }

    /// Follows a target's key after an executed order.
    pub(crate) fn follow(&self, target: &mut Created, done: &Executed) -> Result<(), Fail> {
        if let Some(stable) = &done.stable_id {
            ensure!(
                *stable == target.stable_id,
                "the order on {} reported stable id {stable}, expected {}",
                target.id,
                target.stable_id
            );
        }
        target.id = done.resource_id.clone();
        for t in self.tracked().iter_mut() {
            if t.created.stable_id == target.stable_id {
                t.created.id = done.resource_id.clone();
            }
        }
        Ok(())
    }

    /// A Deleted order of a created object.
    pub(crate) fn delete_order(&self, target: &Created) -> ProvisioningOrder {
        self.order(
            ChangeType::Deleted,
            &target.entity_type,
            Changes::default(),
            Some((&target.id, Some(&target.stable_id))),
        )
    }

    /// Deletes a created object.
    pub(crate) async fn delete(&self, target: &Created) -> Result<Executed, Fail> {
        let done = self.apply(&self.delete_order(target)).await?;
        self.mark_deleted(target);
        Ok(done)
    }

    pub(crate) fn mark_deleted(&self, target: &Created) {
        for t in self.tracked().iter_mut() {
            if t.created.stable_id == target.stable_id {
                t.deleted = true;
            }
        }
    }

    /// A complete export of the namespace (or of everything, without one).
    pub(crate) fn export_request(&self) -> ExportRequest {
        match self.namespace() {
            Some(ns) => ExportRequest::complete().within(ns.id.as_str()),
            None => ExportRequest::complete(),
        }
    }

    /// Every exported resource of the namespace (or everything, without one).
    pub(crate) async fn export(&self) -> Result<Vec<Resource>, Fail> {
        let batch = self
            .conn
            .export_all(self.export_request())
            .await
            .map_err(|e| format!("complete export: {e}"))?;
        Ok(batch.resources)
    }

    /// The exported resource of a created object, by stable id.
    pub(crate) async fn read(&self, target: &Created) -> Result<Resource, Fail> {
        self.export()
            .await?
            .into_iter()
            .find(|r| r.stable_id.as_ref() == Some(&target.stable_id))
            .ok_or_else(|| {
                format!(
                    "{} (stable id {}) is missing from the export",
                    target.id, target.stable_id
                )
            })
    }

    /// Whether an exported resource has a name.
    pub(crate) async fn find_named(&self, name: &str) -> Result<Option<Resource>, Fail> {
        let property = self.profile.name_property.clone();
        Ok(self
            .export()
            .await?
            .into_iter()
            .find(|r| string_of(r, &property) == Some(name)))
    }

    /// Deletes what the check created and did not delete: objects first, then containers,
    /// newest first; the namespace container last.
    pub(crate) async fn cleanup(&self) -> Result<(), Fail> {
        let pending: Vec<Created> = self
            .tracked()
            .iter()
            .filter(|t| !t.deleted)
            .map(|t| t.created.clone())
            .collect();
        let (containers, objects): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|c| c.container);
        let mut errors = Vec::new();
        for target in objects.iter().rev().chain(containers.iter().rev()) {
            match self.send(&self.delete_order(target)).await {
                Ok(Ok(_)) => self.mark_deleted(target),
                Ok(Err(e)) => errors.push(format!("deleting {}: {e}", target.id)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The string value of a property, if it is one.
pub(crate) fn string_of<'r>(r: &'r Resource, property: &str) -> Option<&'r str> {
    match r.get(property) {
        Some(PropertyValue::Scalar(ScalarValue::String(s))) => Some(s),
        _ => None,
    }
}

/// The names a multi-valued navigation holds (empty when absent).
pub(crate) fn names_of(r: &Resource, property: &str) -> Vec<String> {
    match r.get(property) {
        Some(PropertyValue::References(set)) => set
            .iter()
            .filter_map(|r| r.get(DN_KEY).map(str::to_owned))
            .collect(),
        Some(PropertyValue::Reference(r)) => r.get(DN_KEY).map(str::to_owned).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Whether a navigation names the object.
pub(crate) fn names(r: &Resource, property: &str, target: &Created) -> bool {
    let by_stable = match r.get(property) {
        Some(PropertyValue::References(set)) => set
            .iter()
            .any(|x| x.get(crate::schema::STABLE_ID_KEY) == Some(target.stable_id.as_str())),
        Some(PropertyValue::Reference(x)) => {
            x.get(crate::schema::STABLE_ID_KEY) == Some(target.stable_id.as_str())
        }
        _ => false,
    };
    by_stable
        || names_of(r, property)
            .iter()
            .any(|n| same_name(n, target.id.as_str()))
}
