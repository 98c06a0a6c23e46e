//! Export and synchronization: each connection's export feeds the store (synchronized
//! resources, cookies) and the planner (targets, lookups), page by page.

use crate::PlanError;
use crate::store::{JobKind, StoreError};
use autoprov_connector::{Connector, ConnectorError, ExportItem, ExportRequest};
use autoprov_core::{ConnectionId, EntityTypeId, Resource, ResourceId, ResourceTypeId};
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};

/// Page and batch size for synchronized resources.
const RESOURCE_PAGE: usize = 1000;

/// How the resources of one connection feed the planner.
struct Routing {
    /// Resource types of the connection by target entity type.
    by_entity: BTreeMap<EntityTypeId, Vec<ResourceTypeId>>,
}

use super::{JobError, ProvisioningJob};

impl ProvisioningJob {
    fn routing(&self, conn: &ConnectionId) -> Routing {
        let mut by_entity: BTreeMap<EntityTypeId, Vec<ResourceTypeId>> = BTreeMap::new();
        for rt in self.planner.resource_types() {
            if &rt.connection == conn {
                by_entity
                    .entry(rt.target_entity_type.clone())
                    .or_default()
                    .push(rt.id.clone());
            }
        }
        Routing { by_entity }
    }

    /// Feeds one exported resource to the planner: as a target of every resource type of the
    /// connection that accepts it, otherwise as a lookup (OUs, groups for query rules).
    fn feed(&mut self, routing: &Routing, resource: &Resource) -> Result<(), PlanError> {
        let entity = resource.entity_type.clone();
        let types = entity.as_ref().and_then(|e| routing.by_entity.get(e));
        let mut target_of_some = false;
        if let Some(types) = types {
            for rt in types {
                let accepted = self.filters.get(rt).is_none_or(|f| f(resource));
                if accepted {
                    self.planner.upsert_target(rt, resource)?;
                    target_of_some = true;
                } else {
                    self.planner.remove_target(rt, &resource.id)?;
                }
            }
        }
        if !target_of_some && let Some(entity) = entity {
            self.planner.upsert_lookup(entity, resource.clone());
        }
        Ok(())
    }

    fn forget(
        &mut self,
        routing: &Routing,
        id: &ResourceId,
        entity: Option<&EntityTypeId>,
    ) -> Result<(), PlanError> {
        for types in routing.by_entity.values() {
            for rt in types {
                self.planner.remove_target(rt, id)?;
            }
        }
        if let Some(entity) = entity {
            self.planner.remove_lookup(entity, id);
        }
        Ok(())
    }

    /// Directories keep group membership on the group (`member`); the member's `memberOf` is a
    /// back-link whose change does not make an incremental export return the member. So when
    /// an incremental export returns a group whose members changed, the stored members get
    /// their `memberOf` updated here (and are fed to the planner like any change).
    async fn maintain_back_links(
        &self,
        conn: &ConnectionId,
        upserts: &mut Vec<Resource>,
        deleted: &[ResourceId],
    ) -> Result<(), StoreError> {
        use autoprov_connector::schema::{MEMBER_OF, MEMBERS};
        use autoprov_core::{PropertyValue, Reference};
        // Exported now (under its new key after a rename or move) or deleted: nothing to derive.
        let mut fresh: BTreeSet<ResourceId> = upserts.iter().map(|r| r.id.clone()).collect();
        fresh.extend(deleted.iter().cloned());
        let fresh_stable: BTreeSet<autoprov_core::StableId> =
            upserts.iter().filter_map(|r| r.stable_id.clone()).collect();
        let mut touched: BTreeMap<ResourceId, Resource> = BTreeMap::new();
        let members_of = |r: &Resource| -> BTreeSet<String> {
            r.get(MEMBERS)
                .and_then(PropertyValue::as_references)
                .map(|s| {
                    s.iter()
                        .filter_map(|m| m.dn_value().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for group in upserts.iter() {
            if group.get(MEMBERS).is_none() {
                continue;
            }
            let old = self
                .store
                .resource(conn, &group.id)
                .await?
                .map(|g| members_of(&g))
                .unwrap_or_default();
            let new = members_of(group);
            let group_ref = Reference::dn(group.id.as_str());
            for (dn, added) in new
                .difference(&old)
                .map(|d| (d, true))
                .chain(old.difference(&new).map(|d| (d, false)))
            {
                let id = ResourceId::new(dn.as_str());
                if fresh.contains(&id) {
                    continue; // exported now: its memberOf is fresh already
                }
                let member = match touched.remove(&id) {
                    Some(m) => Some(m),
                    None => self.store.resource(conn, &id).await?,
                };
                let Some(mut member) = member else { continue };
                if member
                    .stable_id
                    .as_ref()
                    .is_some_and(|s| fresh_stable.contains(s))
                {
                    continue;
                }
                let mut groups = member
                    .get(MEMBER_OF)
                    .and_then(PropertyValue::as_references)
                    .cloned()
                    .unwrap_or_default();
                if added {
                    groups.insert(group_ref.clone());
                } else {
                    groups.retain(|g| {
                        !g.dn_value()
                            .is_some_and(|d| d.eq_ignore_ascii_case(group.id.as_str()))
                    });
                }
                member
                    .values
                    .insert(MEMBER_OF.to_owned(), PropertyValue::References(groups));
                touched.insert(id, member);
            }
        }
        upserts.extend(touched.into_values());
        Ok(())
    }

    pub(super) async fn export_and_sync(
        &mut self,
        job: &str,
        conn: &ConnectionId,
        connector: &dyn Connector,
        kind: JobKind,
    ) -> Result<usize, JobError> {
        let store_err = |source| JobError::Store {
            job: job.to_owned(),
            source,
        };
        let export_err = |source| JobError::Export {
            job: job.to_owned(),
            connection: conn.clone(),
            source,
        };
        let plan_err = |source| JobError::Plan {
            job: job.to_owned(),
            source,
        };
        let cookie = match kind {
            JobKind::Incremental => self.store.cookie(conn).await.map_err(store_err)?,
            JobKind::Complete => None,
        };
        let incremental = cookie.is_some();
        let scope = self.scopes.get(conn).cloned();
        let scoped = |r: ExportRequest| match &scope {
            Some(s) => r.within(s.clone()),
            None => r,
        };
        let request = scoped(match cookie {
            Some(c) => ExportRequest::incremental(c),
            None => ExportRequest::complete(),
        });
        let mut stream = match connector.export(request).await {
            Ok(s) => s,
            Err(e) if incremental && e.kind() == autoprov_connector::ErrorKind::Conflict => {
                // The cookie expired: fall back to a complete export.
                connector
                    .export(scoped(ExportRequest::complete()))
                    .await
                    .map_err(export_err)?
            }
            Err(e) => return Err(export_err(e)),
        };
        let mut upserts = Vec::new();
        let mut deleted = Vec::new();
        let mut new_cookie = None;
        while let Some(item) = stream.next().await {
            match item.map_err(export_err)? {
                ExportItem::Resource(r) => upserts.push(r),
                ExportItem::Deleted { id, .. } => deleted.push(id),
                ExportItem::Complete { cookie } => new_cookie = Some(cookie),
                _ => {}
            }
        }
        let Some(new_cookie) = new_cookie else {
            return Err(export_err(ConnectorError::new(
                autoprov_connector::ErrorKind::Unexpected,
                autoprov_connector::Operation::Export,
                "the export ended without its cookie",
            )));
        };
        let routing = self.routing(conn);
        let n = upserts.len();
        if incremental {
            for id in &deleted {
                // Its entity type, from the synchronized copy, so a deleted lookup resource
                // (an OU) leaves the query index now rather than at the next complete run.
                let entity = self
                    .store
                    .resource(conn, id)
                    .await
                    .map_err(store_err)?
                    .and_then(|r| r.entity_type);
                self.forget(&routing, id, entity.as_ref())
                    .map_err(plan_err)?;
            }
            // A renamed or moved object comes back under a new key: forget the old one.
            for r in &upserts {
                if let Some(stable) = &r.stable_id
                    && let Some(old) = self
                        .store
                        .key_of_stable(conn, stable)
                        .await
                        .map_err(store_err)?
                    && old != r.id
                {
                    self.forget(&routing, &old, r.entity_type.as_ref())
                        .map_err(plan_err)?;
                }
            }
            self.maintain_back_links(conn, &mut upserts, &deleted)
                .await
                .map_err(store_err)?;
            for r in &upserts {
                self.feed(&routing, r).map_err(plan_err)?;
            }
            self.store
                .delete_resources(conn, &deleted)
                .await
                .map_err(store_err)?;
            self.store
                .upsert_resources(conn, upserts)
                .await
                .map_err(store_err)?;
        } else {
            // What the store holds that the complete export no longer shows is gone: found
            // page by page, so a connection of millions of objects never loads at once.
            let now_present: BTreeSet<&ResourceId> = upserts.iter().map(|r| &r.id).collect();
            let mut gone: Vec<ResourceId> = Vec::new();
            let mut after: Option<ResourceId> = None;
            loop {
                let page = self
                    .store
                    .resources_page(conn, after.as_ref(), RESOURCE_PAGE)
                    .await
                    .map_err(store_err)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for old in &page {
                    if !now_present.contains(&old.id) {
                        self.forget(&routing, &old.id, old.entity_type.as_ref())
                            .map_err(plan_err)?;
                        gone.push(old.id.clone());
                    }
                }
            }
            for r in &upserts {
                self.feed(&routing, r).map_err(plan_err)?;
            }
            self.store
                .delete_resources(conn, &gone)
                .await
                .map_err(store_err)?;
            for batch in upserts.chunks(RESOURCE_PAGE) {
                self.store
                    .upsert_resources(conn, batch.to_vec())
                    .await
                    .map_err(store_err)?;
            }
        }
        self.store
            .set_cookie(conn, new_cookie)
            .await
            .map_err(store_err)?;
        Ok(n)
    }
}
