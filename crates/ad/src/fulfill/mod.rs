//! Fulfilment of Added, Modified and Deleted orders (SPEC §7).
//!
//! Every order is first turned into a [`Desired`] state without any I/O: a value of the wrong
//! kind, a malformed DN, an unmapped navigation or a password over an unencrypted connection
//! fails there, before anything is written. Then the target is read, compared, and only what
//! differs is written, so re-applying an order changes nothing.

mod added;
mod converge;
mod deleted;
mod desired;
mod modified;
#[cfg(test)]
mod tests;

pub(crate) use desired::{
    Desired, NewEntry, Relocation, activation, creation_attributes, desired, relocation,
};

use crate::connector::Inner;
use crate::errors::LdapFailure;
use crate::mapping::EntityMapping;
use crate::pool::{Entry, PERMISSIVE_MODIFY_OID, ServerPool, TREE_DELETE_OID, control};
use autoprov_connector::dn::{Dn, Rdn};
use autoprov_connector::{ConnectorError, ErrorKind, Executed, Operation};
use autoprov_core::{PropertyChange, ProvisioningOrder, Reference, ScalarValue, StableId};
use ldap3::Mod;
use ldap3::ldap_escape;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// `userAccountControl` flag: the account is disabled.
pub const UF_ACCOUNTDISABLE: i64 = 0x2;
/// `userAccountControl` flag: a normal user account.
pub const UF_NORMAL_ACCOUNT: i64 = 0x200;

fn invalid(op: Operation, message: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid_order(op, message)
}

/// A NUL has no place in a directory string (and Samba mishandles it in names): refused.
fn nul(property: &str, op: Operation) -> ConnectorError {
    invalid(op, format!("`{property}` contains a NUL character"))
}

fn reference_dn(property: &str, r: &Reference, op: Operation) -> Result<Dn, ConnectorError> {
    let text = r.dn_value().ok_or_else(|| {
        invalid(
            op,
            format!("`{property}`: the reference has no `dn` key ({r})"),
        )
    })?;
    let dn = Dn::parse(text).map_err(|e| invalid(op, format!("`{property}`: {e}")))?;
    if dn.is_empty() {
        return Err(invalid(op, format!("`{property}`: the DN is empty")));
    }
    if text.contains('\0') || dn.key().contains("\\00") {
        return Err(nul(property, op));
    }
    Ok(dn)
}

/// The LDAP text of a scalar. `None` for an empty string (LDAP has no empty values: clear).
fn ldap_value(
    property: &str,
    v: &ScalarValue,
    op: Operation,
) -> Result<Option<Vec<u8>>, ConnectorError> {
    Ok(Some(match v {
        ScalarValue::String(s) if s.is_empty() => return Ok(None),
        ScalarValue::String(s) if s.contains('\0') => return Err(nul(property, op)),
        ScalarValue::String(s) => s.as_bytes().to_vec(),
        ScalarValue::Integer(i) => i.to_string().into_bytes(),
        ScalarValue::Bool(b) => {
            if *b {
                b"TRUE".to_vec()
            } else {
                b"FALSE".to_vec()
            }
        }
        ScalarValue::DateTime(d) => d.format("%Y%m%d%H%M%S.0Z").to_string().into_bytes(),
        ScalarValue::Binary(b) => b.clone(),
        ScalarValue::Secret(_) => {
            return Err(invalid(
                op,
                format!("`{property}` holds a secret; only the password property may"),
            ));
        }
    }))
}

fn set(values: impl IntoIterator<Item = Vec<u8>>) -> HashSet<Vec<u8>> {
    values.into_iter().collect()
}

/// Where writes to an entry go: `<GUID=...>` when its objectGUID was read (always, for the
/// targets of orders), so they reach the object that was read and no other, wherever it is
/// now; its DN otherwise.
fn address(entry: &Entry) -> String {
    entry
        .guid()
        .map_or_else(|| entry.dn.clone(), |g| crate::connector::guid_dn(&g))
}

fn uac_of(entry: &Entry) -> Option<i64> {
    entry.text("userAccountControl")?.trim().parse().ok()
}

fn has_classes(entry: &Entry, m: &EntityMapping) -> bool {
    let classes: HashSet<String> = entry
        .texts("objectClass")
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    m.object_classes
        .iter()
        .all(|c| classes.contains(&c.to_ascii_lowercase()))
}

impl Inner {
    pub(crate) fn encrypted(&self) -> bool {
        self.settings.tls.mode.is_encrypted()
    }

    pub(crate) fn refuse_plain_password(&self, dn: &str) -> ConnectorError {
        ConnectorError::new(
            ErrorKind::InvalidConfiguration,
            Operation::SetPassword,
            "refusing to send a password over an unencrypted connection (Tls.Mode is Plain); \
             nothing was written",
        )
        .with_target(dn)
    }

    /// Checks that attribute names exist in the server's schema (when it could be read).
    async fn check_attributes(
        &self,
        server: usize,
        d: &Desired,
        op: Operation,
    ) -> Result<(), ConnectorError> {
        let Some(schema) = self.schema(server).await else {
            return Ok(());
        };
        for w in &d.scalars {
            let base = w.attribute.split(';').next().unwrap_or_default();
            if !schema.contains(&base.to_ascii_lowercase()) {
                return Err(invalid(
                    op,
                    format!(
                        "unknown property `{}`: LDAP attribute `{}` is not in the directory schema",
                        w.property, w.attribute
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that referenced objects (groups, a new parent) exist; nothing is written before.
    /// One found within `ExistenceCacheMs` is not read again.
    async fn check_exist(
        &self,
        pool: &ServerPool,
        what: &str,
        dns: &[&Dn],
        op: Operation,
    ) -> Result<(), ConnectorError> {
        let attrs = ["1.1".to_owned()];
        let started = std::time::Instant::now();
        let reads = dns
            .iter()
            .map(|dn| dn.key())
            .zip(dns)
            .filter(|(key, _)| !self.confirmed.holds(key, started))
            .map(|(key, dn)| {
                let text = dn.to_string();
                let attrs = &attrs;
                async move { (pool.read(&text, attrs, &[]).await, text, key) }
            });
        for (result, text, key) in futures::future::join_all(reads).await {
            match result {
                Ok(Some(_)) => self.confirmed.found(key, started),
                Ok(None) | Err(LdapFailure::Result { rc: 10, .. }) => {
                    self.confirmed.forget(&key);
                    return Err(invalid(op, format!("{what} `{text}` does not exist")));
                }
                Err(f) => return Err(f.into_error(Operation::Read, &text)),
            }
        }
        Ok(())
    }

    pub(crate) fn server_of(
        &self,
        dn: &Dn,
        op: Operation,
    ) -> Result<(usize, Arc<ServerPool>), ConnectorError> {
        self.server_for(dn)
            .map(|(i, s)| (i, s.clone()))
            .ok_or_else(|| invalid(op, format!("`{dn}` is outside every configured base DN")))
    }

    /// The attributes to read of a target before converging it.
    fn read_list(&self, d: &Desired, m: &EntityMapping) -> Vec<String> {
        let mut attrs: BTreeSet<String> = [
            "objectGUID",
            "objectClass",
            "sAMAccountName",
            m.rdn_attribute.as_str(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        if m.enabled_property.is_some() {
            attrs.insert("userAccountControl".into());
            attrs.insert("pwdLastSet".into());
        }
        if d.membership_property.is_some() {
            attrs.insert("memberOf".into());
        }
        for w in &d.scalars {
            attrs.insert(w.attribute.clone());
        }
        attrs.into_iter().collect()
    }
}

/// Whether an unwilling-to-perform (53) answer to removing a value means "it is not there":
/// AD's `00002035`, or Samba's "already deleted" for a value removed before.
fn is_absent_value(text: &str) -> bool {
    text.contains("00002035") || text.to_ascii_lowercase().contains("already deleted")
}

trait PipeStatus {
    fn pipe_status(self, temporary: bool) -> Self;
}

impl PipeStatus for ConnectorError {
    fn pipe_status(self, temporary: bool) -> Self {
        if temporary {
            self.temporary()
        } else {
            self.permanent()
        }
    }
}
