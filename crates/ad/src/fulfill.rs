//! Fulfilment of Added, Modified and Deleted orders (SPEC §7).
//!
//! Every order is first turned into a [`Desired`] state without any I/O: a value of the wrong
//! kind, a malformed DN, an unmapped navigation or a password over an unencrypted connection
//! fails there, before anything is written. Then the target is read, compared, and only what
//! differs is written, so re-applying an order changes nothing.

use crate::connector::{Inner, operation_of};
use crate::dn::{Dn, escape_filter_value, escape_rdn_value};
use crate::errors::LdapFailure;
use crate::mapping::{EntityMapping, is_attr_name};
use crate::pool::{Entry, PERMISSIVE_MODIFY_OID, ServerPool, TREE_DELETE_OID, control};
use autoprov_connector::{ConnectorError, ErrorKind, Executed, Operation};
use autoprov_core::{PropertyChange, ProvisioningOrder, Reference, ScalarValue, Secret, StableId};
use ldap3::Mod;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// `userAccountControl` flag: the account is disabled.
pub const UF_ACCOUNTDISABLE: i64 = 0x2;
/// `userAccountControl` flag: a normal user account.
pub const UF_NORMAL_ACCOUNT: i64 = 0x200;

/// Attributes an order may not write directly.
const PROTECTED: &[&str] = &[
    "objectclass",
    "objectguid",
    "objectsid",
    "distinguishedname",
    "unicodepwd",
    "userpassword",
    "memberof",
    "name",
];

/// One scalar attribute to write.
#[derive(Debug)]
pub(crate) struct ScalarWrite {
    pub property: String,
    pub attribute: String,
    /// `None`: clear the attribute.
    pub value: Option<Vec<u8>>,
    /// DN-valued: compared as DNs.
    pub is_dn: bool,
}

/// What an order wants, checked and converted to LDAP values.
#[derive(Debug, Default)]
pub(crate) struct Desired {
    pub parent: Option<(String, Dn)>,
    /// (property, value) of the RDN.
    pub rdn: Option<(String, String)>,
    pub scalars: Vec<ScalarWrite>,
    pub enabled: Option<(String, bool)>,
    pub password: Option<(String, Secret)>,
    pub must_change: Option<(String, bool)>,
    pub groups_add: Vec<Dn>,
    pub groups_remove: Vec<Dn>,
    pub membership_property: Option<String>,
}

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
    if dn.is_root() {
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

pub(crate) fn desired(
    order: &ProvisioningOrder,
    m: &EntityMapping,
) -> Result<Desired, ConnectorError> {
    let op = operation_of(order.change_type);
    let mut d = Desired::default();
    let pw = m.password.as_ref();
    for (property, change) in &order.changes.properties {
        let p = property.as_str();
        if p == m.parent_property {
            let dn = match change {
                PropertyChange::SetReference(r) => reference_dn(p, r, op)?,
                PropertyChange::Set(ScalarValue::String(s)) => {
                    Dn::parse(s).map_err(|e| invalid(op, format!("`{p}`: {e}")))?
                }
                _ => {
                    return Err(invalid(
                        op,
                        format!(
                            "`{p}` must be a reference with a `dn` (an entry always has a parent)"
                        ),
                    ));
                }
            };
            d.parent = Some((p.to_owned(), dn));
            continue;
        }
        if m.enabled_property.as_deref() == Some(p) {
            match change {
                PropertyChange::Set(ScalarValue::Bool(b)) => d.enabled = Some((p.to_owned(), *b)),
                other => {
                    return Err(invalid(
                        op,
                        format!("`{p}` must be a bool, found {other:?}"),
                    ));
                }
            }
            continue;
        }
        if let Some(pw) = pw {
            if p == pw.property {
                match change {
                    PropertyChange::Set(ScalarValue::Secret(s)) if s.expose().contains('\0') => {
                        return Err(nul(p, op));
                    }
                    PropertyChange::Set(ScalarValue::Secret(s)) if !s.is_empty() => {
                        d.password = Some((p.to_owned(), s.clone()))
                    }
                    PropertyChange::Set(ScalarValue::String(s))
                        if !s.is_empty() && !s.contains('\0') =>
                    {
                        d.password = Some((p.to_owned(), Secret::new(s.clone())))
                    }
                    _ => {
                        return Err(invalid(
                            op,
                            format!(
                                "`{p}` must be a non-empty secret (a password cannot be cleared)"
                            ),
                        ));
                    }
                }
                continue;
            }
            if p == pw.must_change_property {
                match change {
                    PropertyChange::Set(ScalarValue::Bool(b)) => {
                        d.must_change = Some((p.to_owned(), *b))
                    }
                    PropertyChange::Clear => {}
                    other => {
                        return Err(invalid(
                            op,
                            format!("`{p}` must be a bool, found {other:?}"),
                        ));
                    }
                }
                continue;
            }
        }
        let attribute = m.attribute_of(p);
        if !is_attr_name(attribute) {
            return Err(invalid(
                op,
                format!("`{p}` is not a valid LDAP attribute name"),
            ));
        }
        if PROTECTED.contains(&attribute.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                op,
                format!("`{p}` (LDAP `{attribute}`) cannot be written by an order"),
            ));
        }
        if attribute.eq_ignore_ascii_case(&m.rdn_attribute) {
            match change {
                PropertyChange::Set(ScalarValue::String(s)) if s.contains('\0') => {
                    return Err(nul(p, op));
                }
                PropertyChange::Set(ScalarValue::String(s)) if !s.is_empty() => {
                    d.rdn = Some((p.to_owned(), s.clone()));
                    continue;
                }
                _ => {
                    return Err(invalid(
                        op,
                        format!("`{p}` names the entry (its RDN): it must be a non-empty string"),
                    ));
                }
            }
        }
        let write = match change {
            PropertyChange::Set(v) => ScalarWrite {
                property: p.to_owned(),
                attribute: attribute.to_owned(),
                value: ldap_value(p, v, op)?,
                is_dn: false,
            },
            PropertyChange::SetReference(r) => ScalarWrite {
                property: p.to_owned(),
                attribute: attribute.to_owned(),
                value: Some(reference_dn(p, r, op)?.to_string().into_bytes()),
                is_dn: true,
            },
            PropertyChange::Clear => ScalarWrite {
                property: p.to_owned(),
                attribute: attribute.to_owned(),
                value: None,
                is_dn: m.is_reference(p),
            },
        };
        d.scalars.push(write);
    }
    for (nav, change) in &order.changes.navigations {
        if change.is_empty() {
            continue;
        }
        match &m.membership {
            Some(ms) if ms.property == *nav => {
                d.membership_property = Some(nav.clone());
                for r in &change.add {
                    d.groups_add.push(reference_dn(nav, r, op)?);
                }
                for r in &change.remove {
                    d.groups_remove.push(reference_dn(nav, r, op)?);
                }
            }
            _ => {
                return Err(invalid(
                    op,
                    format!(
                        "navigation `{nav}` cannot be written on this entity type{}",
                        m.membership
                            .as_ref()
                            .map(|ms| format!(" (only `{}`)", ms.property))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(d)
}

/// How a Modified order moves or renames its target, from the target's current DN.
pub(crate) struct Relocation {
    pub current_parent: Dn,
    pub current_rdn_value: String,
    /// The new parent, when the order gives a different one.
    pub new_parent: Option<Dn>,
    /// The new RDN value, when the order gives a different one.
    pub new_rdn_value: Option<String>,
}

pub(crate) fn relocation(d: &Desired, current: &Dn) -> Relocation {
    let current_parent = current.parent().unwrap_or_else(|| current.clone());
    let current_rdn_value = current.rdn_value().unwrap_or_default().to_owned();
    let new_parent = d
        .parent
        .as_ref()
        .filter(|(_, p)| !p.same_as(&current_parent))
        .map(|(_, p)| p.clone());
    let new_rdn_value = d
        .rdn
        .as_ref()
        .filter(|(_, v)| *v != current_rdn_value)
        .map(|(_, v)| v.clone());
    Relocation {
        current_parent,
        current_rdn_value,
        new_parent,
        new_rdn_value,
    }
}

/// Where a new entry goes, and its name.
pub(crate) struct NewEntry {
    /// The property that gave the RDN value.
    pub rdn_property: String,
    pub rdn_value: String,
    pub parent: Dn,
    pub dn: Dn,
}

/// The attributes an entry is created with, without the password: object classes, RDN, the
/// order's scalars, and `userAccountControl` disabled (514) when the type has an enabled flag.
pub(crate) fn creation_attributes(
    m: &EntityMapping,
    d: &Desired,
    rdn_value: &str,
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut attrs: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    attrs.insert(
        "objectClass".into(),
        m.object_classes
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect(),
    );
    attrs.insert(m.rdn_attribute.clone(), vec![rdn_value.as_bytes().to_vec()]);
    for w in &d.scalars {
        if let Some(v) = &w.value {
            attrs.insert(w.attribute.clone(), vec![v.clone()]);
        }
    }
    if m.enabled_property.is_some() {
        attrs.insert(
            "userAccountControl".into(),
            vec![
                (UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)
                    .to_string()
                    .into_bytes(),
            ],
        );
    }
    attrs
}

/// What follows the creation, in one modify: enabling (512) when the order asks for it, and
/// `pwdLastSet=0` when the user must change an initial password at first logon. Each write
/// with the order property it fulfils.
pub(crate) fn activation(
    m: &EntityMapping,
    d: &Desired,
    has_password: bool,
) -> Vec<(&'static str, Vec<u8>, Option<String>)> {
    let mut writes = Vec::new();
    if let Some((p, true)) = &d.enabled {
        writes.push((
            "userAccountControl",
            UF_NORMAL_ACCOUNT.to_string().into_bytes(),
            Some(p.clone()),
        ));
    }
    let must_change = d
        .must_change
        .as_ref()
        .map(|(_, b)| *b)
        .or_else(|| m.password.as_ref().map(|p| p.must_change_by_default))
        .unwrap_or(false);
    if must_change && has_password {
        writes.push((
            "pwdLastSet",
            b"0".to_vec(),
            d.must_change.as_ref().map(|(p, _)| p.clone()),
        ));
    }
    writes
}

fn set(values: impl IntoIterator<Item = Vec<u8>>) -> HashSet<Vec<u8>> {
    values.into_iter().collect()
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
    /// The name and place of the entry an Added order creates, checked without I/O: the
    /// required properties, the RDN (the first RDN property the order gives) and the parent
    /// (the order's, or the mapping's default below the first server's base).
    pub(crate) fn new_entry(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
        d: &Desired,
    ) -> Result<NewEntry, ConnectorError> {
        let op = Operation::Create;
        for required in &m.required_properties {
            match order.changes.properties.get(required) {
                Some(PropertyChange::Set(ScalarValue::String(s))) if !s.is_empty() => {}
                Some(PropertyChange::Set(v)) if !matches!(v, ScalarValue::String(_)) => {}
                _ => {
                    return Err(invalid(
                        op,
                        format!("`{required}` is required to create this entry"),
                    ));
                }
            }
        }
        let (rdn_property, rdn_value) = match d.rdn.clone() {
            Some(r) => r,
            None => m
                .rdn_properties
                .iter()
                .find_map(|p| match order.changes.scalar(p) {
                    Some(ScalarValue::String(s)) if !s.is_empty() => Some((p.clone(), s.clone())),
                    _ => None,
                })
                .ok_or_else(|| {
                    invalid(
                        op,
                        format!(
                            "the entry needs a name: one of {} is required",
                            m.rdn_properties.join(", ")
                        ),
                    )
                })?,
        };
        let parent = match &d.parent {
            Some((_, dn)) => dn.clone(),
            None => {
                let default = m.default_parent.as_deref().ok_or_else(|| {
                    invalid(
                        op,
                        format!("`{}` (the parent DN) is required", m.parent_property),
                    )
                })?;
                let dn = Dn::parse(default).map_err(|e| invalid(op, e.to_string()))?;
                if self.server_for(&dn).is_some() {
                    dn
                } else {
                    let base = &self.servers[0].base_dn;
                    Dn::parse(&format!("{default},{base}"))
                        .map_err(|e| invalid(op, e.to_string()))?
                }
            }
        };
        let dn = Dn::child(&parent, &m.rdn_attribute, &rdn_value);
        Ok(NewEntry {
            rdn_property,
            rdn_value,
            parent,
            dn,
        })
    }

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
    async fn check_exist(
        &self,
        pool: &ServerPool,
        what: &str,
        dns: &[&Dn],
        op: Operation,
    ) -> Result<(), ConnectorError> {
        let attrs = ["1.1".to_owned()];
        let reads = dns.iter().map(|dn| {
            let text = dn.to_string();
            let attrs = &attrs;
            async move { (pool.read(&text, attrs, &[]).await, text) }
        });
        for (result, text) in futures::future::join_all(reads).await {
            match result {
                Ok(Some(_)) => {}
                Ok(None) | Err(LdapFailure::Result { rc: 10, .. }) => {
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

    pub(crate) async fn added(
        &self,
        order: &ProvisioningOrder,
        _entity_type: &str,
        m: &EntityMapping,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Create;
        let mut d = desired(order, m)?;
        let NewEntry {
            rdn_property,
            rdn_value,
            parent,
            dn,
        } = self.new_entry(order, m, &d)?;
        let (server_index, server) = self.server_of(&parent, op)?;
        let dn_text = dn.to_string();
        let fail = |e: ConnectorError| e.with_target(dn_text.clone());

        // The initial password: given, or generated.
        if d.password.is_none()
            && let Some(pw) = &m.password
            && let Some(policy) = &pw.generate
        {
            d.password = Some((
                pw.property.clone(),
                crate::password::generate(policy, &mut rand::thread_rng()),
            ));
        }
        if d.password.is_some() && !self.encrypted() {
            return Err(self.refuse_plain_password(&dn_text));
        }
        for g in d.groups_add.iter() {
            self.server_of(g, Operation::Membership).map_err(fail)?;
        }
        self.check_attributes(server_index, &d, op)
            .await
            .map_err(fail)?;
        let groups: Vec<&Dn> = d.groups_add.iter().collect();
        self.check_exist(&server, "group", &groups, Operation::Membership)
            .await
            .map_err(fail)?;

        // The entry, created disabled.
        let mut changed: BTreeSet<String> = BTreeSet::new();
        changed.insert(rdn_property.clone());
        for w in &d.scalars {
            if w.value.is_some() {
                changed.insert(w.property.clone());
            }
        }
        let mut attrs: BTreeMap<String, HashSet<Vec<u8>>> = creation_attributes(m, &d, &rdn_value)
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        if let Some((property, secret)) = &d.password {
            attrs.insert(
                "unicodePwd".into(),
                set([crate::password::unicode_pwd(secret.expose())]),
            );
            changed.insert(property.clone());
        }
        if let Some((p, _)) = &d.parent {
            changed.insert(p.clone());
        }
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        match server.add(&dn_text, &attrs).await {
            Ok(()) => {}
            Err(LdapFailure::Result { rc: 68, .. }) => {
                return self.adopt(order, m, &server, server_index, &dn, d).await;
            }
            Err(LdapFailure::Result { rc: 32, text, .. }) => {
                return Err(invalid(
                    op,
                    format!("the parent `{parent}` (or another referenced object) does not exist: {text}"),
                )
                .with_target(dn_text));
            }
            Err(f) => {
                let operation = match f.text() {
                    t if t.contains("0000052D") => Operation::SetPassword,
                    _ => op,
                };
                return Err(f.into_error(operation, &dn_text));
            }
        }

        // Enable, and must-change-at-first-logon, in one modify.
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        for (attribute, value, property) in activation(m, &d, d.password.is_some()) {
            mods.push(Mod::Replace(attribute.as_bytes().to_vec(), set([value])));
            changed.extend(property);
        }
        if !mods.is_empty() {
            server
                .modify(&dn_text, &mods, &[])
                .await
                .map_err(|f| f.into_error(Operation::Enable, &dn_text))?;
        }

        // Memberships, on the groups.
        if let Some(p) = &d.membership_property {
            self.change_members(&server, m, &dn_text, &d.groups_add, true)
                .await?;
            if !d.groups_add.is_empty() {
                changed.insert(p.clone());
            }
        }

        let entry = server
            .read(&dn_text, &["objectGUID".to_owned()], &[])
            .await
            .map_err(|f| f.into_error(Operation::Read, &dn_text))?;
        let (resource_id, stable_id) = match entry {
            Some(e) => (e.dn.clone(), e.guid()),
            None => (dn_text.clone(), None),
        };
        Ok(Executed {
            resource_id: resource_id.into(),
            stable_id: stable_id.map(StableId::new),
            changed,
            adopted: false,
        })
    }

    /// An Added order met an existing entry: adopt it when it is the same account, and converge.
    async fn adopt(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
        server: &Arc<ServerPool>,
        server_index: usize,
        dn: &Dn,
        d: Desired,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Create;
        let dn_text = dn.to_string();
        let attrs = self.read_list(&d, m);
        let existing = server
            .read(&dn_text, &attrs, &[])
            .await
            .map_err(|f| f.into_error(Operation::Read, &dn_text))?;
        let wanted_sam = order
            .changes
            .scalar(
                m.attributes
                    .iter()
                    .find(|(_, a)| a.eq_ignore_ascii_case("sAMAccountName"))
                    .map(|(p, _)| p.as_str())
                    .unwrap_or("sAMAccountName"),
            )
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let Some(entry) = existing else {
            // Something else holds a unique value (sAMAccountName): name it.
            let holder = match &wanted_sam {
                Some(sam) => server
                    .search_paged(
                        &server.base_dn,
                        &format!("(sAMAccountName={})", escape_filter_value(sam)),
                        &["1.1".to_owned()],
                        &[],
                        10,
                    )
                    .await
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|e| e.dn),
                None => None,
            };
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                match holder {
                    Some(h) => format!(
                        "sAMAccountName `{}` is already held by another object: {h}",
                        wanted_sam.unwrap_or_default()
                    ),
                    None => "another object already holds a unique value of this entry".into(),
                },
            )
            .with_target(dn_text));
        };
        if !has_classes(&entry, m) {
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                format!(
                    "an object of another kind ({}) already has this DN",
                    entry.texts("objectClass").join(", ")
                ),
            )
            .with_target(dn_text));
        }
        if let (Some(wanted), Some(actual)) = (&wanted_sam, entry.text("sAMAccountName"))
            && !wanted.eq_ignore_ascii_case(&actual)
        {
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                format!(
                    "a different account (sAMAccountName `{actual}`, not `{wanted}`) already has this DN"
                ),
            )
            .with_target(dn_text));
        }
        // The same account: converge. Its password, and whether it must be changed, belong to
        // the account's creation: an adopted account keeps them (they cannot be compared).
        let mut d = d;
        d.password = None;
        d.must_change = None;
        d.parent = None;
        d.rdn = None;
        let mut executed = self.converge(server, server_index, m, entry, d, op).await?;
        executed.adopted = true;
        Ok(executed)
    }

    /// Writes what differs between `entry` and `d` (scalars, enabled, password, memberships).
    async fn converge(
        &self,
        server: &Arc<ServerPool>,
        server_index: usize,
        m: &EntityMapping,
        entry: Entry,
        d: Desired,
        op: Operation,
    ) -> Result<Executed, ConnectorError> {
        let dn_text = entry.dn.clone();
        let fail = |e: ConnectorError| e.with_target(dn_text.clone());
        if d.password.is_some() && !self.encrypted() {
            return Err(self.refuse_plain_password(&dn_text));
        }
        self.check_attributes(server_index, &d, op)
            .await
            .map_err(fail)?;
        let mut changed = BTreeSet::new();

        // Memberships to change: compare with memberOf.
        let current_groups: HashSet<String> = entry
            .texts("memberOf")
            .iter()
            .filter_map(|g| Dn::parse(g).ok())
            .map(|g| g.key())
            .collect();
        let adds: Vec<Dn> = d
            .groups_add
            .iter()
            .filter(|g| !current_groups.contains(&g.key()))
            .cloned()
            .collect();
        let removes: Vec<Dn> = d
            .groups_remove
            .iter()
            .filter(|g| current_groups.contains(&g.key()))
            .cloned()
            .collect();
        for g in adds.iter().chain(&removes) {
            self.server_of(g, Operation::Membership).map_err(fail)?;
        }
        let add_refs: Vec<&Dn> = adds.iter().collect();
        self.check_exist(server, "group", &add_refs, Operation::Membership)
            .await
            .map_err(fail)?;

        // Scalars, enabled, password, must-change: one modify.
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        let mut kinds: HashSet<Operation> = HashSet::new();
        for w in &d.scalars {
            let current = entry.values(&w.attribute);
            let same = match &w.value {
                None => current.is_empty(),
                Some(v) if w.is_dn => {
                    current.len() == 1
                        && match (
                            Dn::parse(&String::from_utf8_lossy(&current[0])),
                            Dn::parse(&String::from_utf8_lossy(v)),
                        ) {
                            (Ok(a), Ok(b)) => a.same_as(&b),
                            _ => current[0] == *v,
                        }
                }
                Some(v) => current.len() == 1 && current[0] == *v,
            };
            if same {
                continue;
            }
            mods.push(match &w.value {
                Some(v) => Mod::Replace(w.attribute.as_bytes().to_vec(), set([v.clone()])),
                None => Mod::Delete(w.attribute.as_bytes().to_vec(), HashSet::new()),
            });
            changed.insert(w.property.clone());
            kinds.insert(Operation::Update);
        }
        if let Some((p, secret)) = &d.password {
            mods.push(Mod::Replace(
                b"unicodePwd".to_vec(),
                set([crate::password::unicode_pwd(secret.expose())]),
            ));
            changed.insert(p.clone());
            kinds.insert(Operation::SetPassword);
        }
        if let Some((p, enabled)) = &d.enabled {
            let current = uac_of(&entry).unwrap_or(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE);
            let wanted = if *enabled {
                current & !UF_ACCOUNTDISABLE
            } else {
                current | UF_ACCOUNTDISABLE
            };
            if wanted != current {
                mods.push(Mod::Replace(
                    b"userAccountControl".to_vec(),
                    set([wanted.to_string().into_bytes()]),
                ));
                changed.insert(p.clone());
                kinds.insert(Operation::Enable);
            }
        }
        if let Some((p, must)) = &d.must_change {
            let current_zero = entry.text("pwdLastSet").map(|v| v.trim() == "0");
            let value: Option<&[u8]> = match (must, current_zero) {
                (true, Some(false)) => Some(b"0"),
                (false, Some(true)) => Some(b"-1"),
                _ => None,
            };
            if let Some(v) = value {
                mods.push(Mod::Replace(b"pwdLastSet".to_vec(), set([v.to_vec()])));
                changed.insert(p.clone());
                kinds.insert(Operation::SetPassword);
            }
        }
        if !mods.is_empty() {
            let operation = if kinds.len() == 1 {
                kinds.into_iter().next().unwrap_or(Operation::Update)
            } else {
                Operation::Update
            };
            match server.modify(&dn_text, &mods, &[]).await {
                Ok(()) => {}
                Err(LdapFailure::Result { rc: 32, text, .. }) => {
                    return Err(invalid(
                        operation,
                        format!("a referenced object (e.g. the manager) does not exist: {text}"),
                    )
                    .with_target(dn_text));
                }
                Err(f) => return Err(f.into_error(operation, &dn_text)),
            }
        }

        if let Some(p) = &d.membership_property {
            self.change_members(server, m, &dn_text, &adds, true)
                .await?;
            self.change_members(server, m, &dn_text, &removes, false)
                .await?;
            if !adds.is_empty() || !removes.is_empty() {
                changed.insert(p.clone());
            }
        }
        Ok(Executed {
            resource_id: dn_text.clone().into(),
            stable_id: entry.guid().map(StableId::new),
            changed,
            adopted: false,
        })
    }

    /// Adds or removes `member_dn` on each group's member attribute: value-level, never a
    /// replace, with permissive modify (and a present member / absent member is success even
    /// without it).
    async fn change_members(
        &self,
        server: &ServerPool,
        m: &EntityMapping,
        member_dn: &str,
        groups: &[Dn],
        add: bool,
    ) -> Result<(), ConnectorError> {
        let attribute = m.group_attribute();
        let controls = if m.permissive_modify {
            vec![control(PERMISSIVE_MODIFY_OID)]
        } else {
            Vec::new()
        };
        let value = set([member_dn.as_bytes().to_vec()]);
        let writes = groups.iter().map(|g| {
            let g = g.to_string();
            let m = if add {
                Mod::Add(attribute.as_bytes().to_vec(), value.clone())
            } else {
                Mod::Delete(attribute.as_bytes().to_vec(), value.clone())
            };
            let controls = &controls;
            async move {
                let mods = [m];
                (server.modify(&g, &mods, controls).await, g)
            }
        });
        for (result, group) in futures::future::join_all(writes).await {
            match result {
                Ok(()) => {}
                // Already a member / not a member: the wanted state holds.
                Err(LdapFailure::Result { rc: 68 | 20, .. }) if add => {}
                Err(LdapFailure::Result { rc: 16, .. }) if !add => {}
                Err(LdapFailure::Result {
                    rc: 53, ref text, ..
                }) if !add && is_absent_value(text) => {}
                Err(LdapFailure::Result { rc: 32, text, .. }) => {
                    return Err(invalid(
                        Operation::Membership,
                        format!("group `{group}` does not exist: {text}"),
                    )
                    .with_target(member_dn));
                }
                Err(f) => {
                    let verb = if add { "adding to" } else { "removing from" };
                    let e = f.into_error(Operation::Membership, member_dn);
                    let message = format!("{verb} group `{group}`: {}", e.message());
                    return Err(
                        ConnectorError::new(e.kind(), Operation::Membership, message)
                            .with_target(member_dn)
                            .pipe_status(e.is_temporary()),
                    );
                }
            }
        }
        Ok(())
    }

    /// The one-operation path of a Modified order that only sets scalars and whose `Resource`
    /// carries their current values (as the planner's orders do): one modify of the order's
    /// key that deletes each old value and adds the new one. The server applies it atomically
    /// and only if every old value is still there, so it is a compare-and-swap: when anything
    /// differs (a re-applied order, drift, a stale `Resource`, a target that moved or
    /// vanished) it writes nothing and `None` sends the order down the read, compare and write
    /// path. The key rather than `<GUID=...>`: the same target the read path settles on when
    /// the stable id is gone, and a cheaper lookup for the server; so the outcome does not
    /// claim a stable id it did not see.
    async fn compare_and_swap(
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
        self.check_attributes(server_index, d, Operation::Update)
            .await
            .map_err(|e| e.with_target(resource.id.as_str()))?;
        match server.modify(resource.id.as_str(), &mods, &[]).await {
            Ok(()) => Ok(Some(Executed {
                resource_id: resource.id.clone(),
                stable_id: None,
                changed: d.scalars.iter().map(|w| w.property.clone()).collect(),
                adopted: false,
            })),
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
        let Some((server_index, entry)) = self
            .locate(resource.stable_id.as_ref().map(|s| s.as_str()), key, &attrs)
            .await?
        else {
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
            let new_dn = Dn::child(&parent, &attr, &value);
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
            // A case-only rename reads back the same entry: that is not a conflict.
            if let Some(other) = server
                .read(&new_dn.to_string(), &["objectGUID".to_owned()], &[])
                .await
                .map_err(|f| f.into_error(Operation::Read, &dn_text))?
                && other.guid() != entry.guid()
            {
                return Err(ConnectorError::new(
                    ErrorKind::AlreadyExists,
                    Operation::Rename,
                    format!("`{new_dn}` is already held by another object"),
                )
                .with_target(dn_text));
            }
            let rdn = format!("{attr}={}", escape_rdn_value(&value));
            let sup = new_parent.as_ref().map(|p| p.to_string());
            server
                .modify_dn(&entry.dn, &rdn, sup.as_deref())
                .await
                .map_err(|f| f.into_error(Operation::Rename, &dn_text))?;
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
        let attrs = ["objectGUID".to_owned(), "userAccountControl".to_owned()];
        let Some((server_index, entry)) = self
            .locate(resource.stable_id.as_ref().map(|s| s.as_str()), key, &attrs)
            .await?
        else {
            // Already gone: the wanted state holds.
            let mut e = Executed::new(resource.id.clone());
            e.stable_id = resource.stable_id.clone();
            return Ok(e);
        };
        let server = &self.servers[server_index];
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
                    .modify(&entry.dn, &mods, &[])
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
        match server.delete(&entry.dn, &controls).await {
            Ok(()) => {
                executed.changed.insert("deleted".into());
                Ok(executed)
            }
            Err(LdapFailure::Result { rc: 32, .. }) => Ok(executed),
            Err(f) => Err(f.into_error(op, &entry.dn)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use autoprov_core::{ChangeType, Changes, EntityTypeRef, OrderId, Owner, ResourceTypeRef};

    fn order(changes: Changes) -> ProvisioningOrder {
        ProvisioningOrder {
            order_id: OrderId::new("o-1"),
            assigned_resource_type_id: None,
            change_type: ChangeType::Added,
            workflow_instance_id: None,
            owner: Some(Owner::new("u-1", "jdoe")),
            resource_type: ResourceTypeRef {
                id: "rt".into(),
                identifier: "rt".into(),
                source_entity_type: EntityTypeRef {
                    id: "person".into(),
                    identifier: "person".into(),
                },
                target_entity_type: EntityTypeRef {
                    id: "user".into(),
                    identifier: "user".into(),
                },
            },
            connection: None,
            changes,
            resource: None,
            depends_on: Vec::new(),
            not_before: None,
        }
    }

    #[test]
    fn desired_state_is_checked_without_io() {
        let m = EntityMapping::user();
        let mut c = Changes::default();
        c.set("cn", "Doe, John")
            .set("sAMAccountName", "jdoe")
            .set("description", "")
            .set("enabled", true)
            .set("password", Secret::new("Init-Passw0rd!"))
            .set_reference("parentdn", Reference::dn("OU=Sales,DC=example,DC=test"))
            .set_reference(
                "manager",
                Reference::dn("CN=Boss,OU=Sales,DC=example,DC=test"),
            )
            .add_reference(
                "memberOf",
                Reference::dn("CN=G,OU=Groups,DC=example,DC=test"),
            );
        let d = desired(&order(c), &m).unwrap();
        assert_eq!(d.rdn, Some(("cn".into(), "Doe, John".into())));
        assert_eq!(d.enabled, Some(("enabled".into(), true)));
        assert!(d.password.is_some());
        assert_eq!(d.groups_add.len(), 1);
        let desc = d
            .scalars
            .iter()
            .find(|w| w.property == "description")
            .unwrap();
        assert_eq!(desc.value, None, "an empty string clears");
        let manager = d.scalars.iter().find(|w| w.property == "manager").unwrap();
        assert!(manager.is_dn);
        assert!(!format!("{d:?}").contains("Init-Passw0rd!"));
    }

    #[test]
    fn invalid_orders_are_refused_before_any_write() {
        let m = EntityMapping::user();
        let cases: Vec<(Changes, &str)> = vec![
            (
                {
                    let mut c = Changes::default();
                    c.set("enabled", "yes");
                    c
                },
                "enabled",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.clear("parentdn");
                    c
                },
                "parentdn",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set_reference("parentdn", Reference::dn("CN=a,,DC=x"));
                    c
                },
                "parentdn",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set_reference("manager", Reference::id("r-1"));
                    c
                },
                "manager",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set("description", Secret::new("x"));
                    c
                },
                "secret",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set("unicodePwd", "x");
                    c
                },
                "unicodePwd",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set("bad attr", "x");
                    c
                },
                "bad attr",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.clear("password");
                    c
                },
                "password",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.add_reference("directReports", Reference::dn("CN=x,DC=y"));
                    c
                },
                "directReports",
            ),
            (
                {
                    let mut c = Changes::default();
                    c.set("cn", 5i64);
                    c
                },
                "cn",
            ),
        ];
        for (changes, needle) in cases {
            let e = desired(&order(changes), &m).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn ldap_values() {
        use chrono::TimeZone;
        let d = chrono::Utc.with_ymd_and_hms(2026, 1, 31, 8, 0, 0).unwrap();
        let op = Operation::Update;
        assert_eq!(
            ldap_value("x", &ScalarValue::DateTime(d), op)
                .unwrap()
                .unwrap(),
            b"20260131080000.0Z"
        );
        assert_eq!(
            ldap_value("x", &ScalarValue::Bool(true), op)
                .unwrap()
                .unwrap(),
            b"TRUE"
        );
        assert_eq!(
            ldap_value("x", &ScalarValue::Integer(-1), op)
                .unwrap()
                .unwrap(),
            b"-1"
        );
        assert_eq!(ldap_value("x", &"".into(), op).unwrap(), None);
    }
}
