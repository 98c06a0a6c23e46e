//! Deleted orders: a missing target is success; an account may be disabled instead. The
//! target is addressed by its objectGUID (`<GUID=...>`), so the delete can only ever remove the
//! object the order means, even when another object took its DN in the meantime.

use super::*;
use crate::connector::Located;

impl Inner {
    /// The one-operation path of a Deleted order that carries its target's objectGUID, on a
    /// mapping that deletes: delete `<GUID=...>` on the server of the order's key. Only that
    /// object can be removed, wherever it is now. When the server does not find it (gone, or
    /// in another domain) nothing was written and `None` sends the order down the read path,
    /// which tells those cases apart. The outcome reports the order's key.
    async fn delete_by_guid(
        &self,
        resource: &autoprov_core::Resource,
        m: &EntityMapping,
    ) -> Result<Option<Executed>, ConnectorError> {
        if m.disable_instead_of_delete {
            return Ok(None);
        }
        let Some(stable) = &resource.stable_id else {
            return Ok(None);
        };
        let Some(guid) = crate::guid::guid_from_str(stable.as_str())
            .and_then(|b| crate::guid::guid_to_string(&b))
        else {
            // Not an objectGUID: the read path refuses the order.
            return Ok(None);
        };
        let Ok(key) = Dn::parse(resource.id.as_str()) else {
            return Ok(None);
        };
        let Some((_, server)) = self.server_for(&key) else {
            return Ok(None);
        };
        let controls = if m.tree_delete {
            vec![control(TREE_DELETE_OID)]
        } else {
            Vec::new()
        };
        // Whatever the outcome, it may be gone: the next order naming it reads it.
        self.confirmed.forget(&key.key());
        match server
            .delete(&crate::connector::guid_dn(&guid), &controls)
            .await
        {
            Ok(()) => {
                let mut executed =
                    Executed::new(resource.id.clone()).with_stable_id(Some(StableId::new(guid)));
                executed.changed.insert("deleted".into());
                Ok(Some(executed))
            }
            // Not found there (32), or in another domain (a referral, 10): read first.
            Err(LdapFailure::Result { rc: 32 | 10, .. }) => Ok(None),
            Err(f) => Err(f.into_error(Operation::Delete, resource.id.as_str())),
        }
    }

    pub(crate) async fn deleted(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Delete;
        let resource = order
            .resource
            .as_ref()
            .ok_or_else(|| invalid(op, "a Deleted order needs `Resource`"))?;
        let key = resource.id.as_str();
        if let Some(done) = self.delete_by_guid(resource, m).await? {
            return Ok(done);
        }
        let attrs = ["objectGUID".to_owned(), "userAccountControl".to_owned()];
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
            // Already gone: the wanted state holds.
            Located::Missing => {
                let mut e = Executed::new(resource.id.clone());
                e.stable_id = resource.stable_id.clone();
                return Ok(e);
            }
            // Gone, and its DN now names another object: that one is never touched.
            Located::HeldByAnother { stable_id, holder } => {
                let note = format!(
                    "nothing deleted: the target (objectGUID {stable_id}) no longer exists, and \
                     its DN {key} now names another object (objectGUID {holder}), which is left \
                     untouched"
                );
                tracing::info!(order = %order.order_id, "{note}");
                return Ok(Executed::new(resource.id.clone())
                    .with_stable_id(resource.stable_id.clone())
                    .with_note(note));
            }
        };
        let server = &self.servers[server_index];
        let target = address(&entry);
        let mut executed = Executed::new(entry.dn.clone());
        executed.stable_id = entry.guid().map(StableId::new);
        if m.disable_instead_of_delete {
            let current = uac_of(&entry).unwrap_or(UF_NORMAL_ACCOUNT);
            if current & UF_ACCOUNTDISABLE == 0 {
                let mods = [Mod::Replace(
                    b"userAccountControl".to_vec(),
                    set([(current | UF_ACCOUNTDISABLE).to_string().into_bytes()]),
                )];
                server
                    .modify(&target, &mods, &[])
                    .await
                    .map_err(|f| f.into_error(Operation::Enable, &entry.dn))?;
                executed.changed.insert(
                    m.enabled_property
                        .clone()
                        .unwrap_or_else(|| "enabled".into()),
                );
            }
            return Ok(executed);
        }
        let controls = if m.tree_delete {
            vec![control(TREE_DELETE_OID)]
        } else {
            Vec::new()
        };
        // Whatever the outcome, it may be gone: the next order naming it reads it.
        if let Ok(dn) = Dn::parse(&entry.dn) {
            self.confirmed.forget(&dn.key());
        }
        match server.delete(&target, &controls).await {
            Ok(()) => {
                executed.changed.insert("deleted".into());
                Ok(executed)
            }
            Err(LdapFailure::Result { rc: 32, .. }) => Ok(executed),
            Err(f) => Err(f.into_error(op, &entry.dn)),
        }
    }
}
