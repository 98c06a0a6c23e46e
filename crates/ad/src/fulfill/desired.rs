//! An order turned into the LDAP values it wants, without any I/O.

use super::{UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT, invalid, ldap_value, nul, reference_dn};
use crate::mapping::EntityMapping;
use autoprov_connector::dn::Dn;
use autoprov_connector::{ConnectorError, Operation};
use autoprov_core::{PropertyChange, ProvisioningOrder, ScalarValue, Secret};
use std::collections::BTreeMap;

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
    /// A `userAccountControl` value the order writes through a mapped property, as the
    /// reference system's rules do (512, 514, 66048, …): (property, value).
    pub uac: Option<(String, i64)>,
}

/// What an order wants. Every property is checked against the mapping's allow-list
/// ([`EntityMapping::writable_attribute`]) before anything is written: one refused property
/// refuses the whole order.
pub(crate) fn desired(
    order: &ProvisioningOrder,
    m: &EntityMapping,
) -> Result<Desired, ConnectorError> {
    let op = Operation::from(order.change_type);
    let entity_type = order.resource_type.target_entity_type.id.as_str();
    let mut d = Desired::default();
    let pw = m.password.as_ref();
    // The managed properties are recognised without case, as every other property is.
    let is = |p: &str, name: &str| p.eq_ignore_ascii_case(name);
    // Two properties that land on the same thing (`description` and `DESCRIPTION`, or a
    // mapped `login` and `sAMAccountName`) would make the outcome depend on their order.
    let managed = [
        Some(m.parent_property.as_str()),
        m.enabled_property.as_deref(),
        pw.map(|p| p.property.as_str()),
        pw.map(|p| p.must_change_property.as_str()),
    ];
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for property in order.changes.properties.keys() {
        let p = property.as_str();
        let slot = match managed.iter().flatten().find(|n| is(p, n)) {
            Some(n) => n.to_ascii_lowercase(),
            None => match m.writable_attribute(p) {
                Ok((_, attribute)) => attribute.to_ascii_lowercase(),
                Err(_) => continue,
            },
        };
        if let Some(first) = seen.insert(slot.clone(), p) {
            return Err(invalid(
                op,
                format!(
                    "properties `{}` and `{}` both write `{slot}`: give it once",
                    first.escape_debug(),
                    p.escape_debug()
                ),
            ));
        }
    }
    for (property, change) in &order.changes.properties {
        let p = property.as_str();
        if is(p, &m.parent_property) {
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
        if m.enabled_property.as_deref().is_some_and(|e| is(p, e)) {
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
            if is(p, &pw.property) {
                match change {
                    PropertyChange::Set(ScalarValue::Secret(s)) if s.is_redacted() => {
                        return Err(invalid(
                            op,
                            format!(
                                "property `{p}` is a masked secret read back from a file: it has no value and is never sent"
                            ),
                        ));
                    }
                    PropertyChange::Set(ScalarValue::Secret(s))
                        if s.expose().is_ok_and(|c| c.contains('\0')) =>
                    {
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
            if is(p, &pw.must_change_property) {
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
        let (declared, attribute) = m
            .writable_attribute(p)
            .map_err(|why| invalid(op, why.describe(p, entity_type)))?;
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
        if attribute.eq_ignore_ascii_case("userAccountControl")
            && let PropertyChange::Set(v) = change
        {
            let text = v.to_string();
            let value = text.trim().parse::<i64>().map_err(|_| {
                invalid(
                    op,
                    format!(
                        "`{p}` writes userAccountControl: it must be an integer, found `{}`",
                        text.escape_debug()
                    ),
                )
            })?;
            d.uac = Some((p.to_owned(), value));
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
                is_dn: m.is_reference(declared),
            },
        };
        d.scalars.push(write);
    }
    for (nav, change) in &order.changes.navigations {
        if change.is_empty() {
            continue;
        }
        match &m.membership {
            Some(ms) if is(nav, &ms.property) => {
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
/// order's scalars, and `userAccountControl` disabled: the order's own value (a rule's 512,
/// 66048, …) plus ACCOUNTDISABLE, or 514 when the type has an enabled flag. The order's value
/// itself is applied by [`activation`], once the password is set.
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
        if let Some(v) = &w.value
            && !w.attribute.eq_ignore_ascii_case("userAccountControl")
        {
            attrs.insert(w.attribute.clone(), vec![v.clone()]);
        }
    }
    if let Some((_, uac)) = &d.uac {
        attrs.insert(
            "userAccountControl".into(),
            vec![(uac | UF_ACCOUNTDISABLE).to_string().into_bytes()],
        );
    } else if m.enabled_property.is_some() {
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

/// What follows the creation (and so the initial password), in one modify: the order's own
/// `userAccountControl` value (its disabled bit following the enabled flag when the order
/// also gives one), or enabling (512) when the order asks for it; and `pwdLastSet=0` when the
/// user must change an initial password at first logon. Each write with the order property it
/// fulfils.
pub(crate) fn activation(
    m: &EntityMapping,
    d: &Desired,
    has_password: bool,
) -> Vec<(&'static str, Vec<u8>, Option<String>)> {
    let mut writes = Vec::new();
    if let Some((p, uac)) = &d.uac {
        let value = match &d.enabled {
            Some((_, true)) => uac & !UF_ACCOUNTDISABLE,
            Some((_, false)) => uac | UF_ACCOUNTDISABLE,
            None => *uac,
        };
        // Created with `value | ACCOUNTDISABLE`: nothing to write when that is the value.
        if value != uac | UF_ACCOUNTDISABLE {
            writes.push((
                "userAccountControl",
                value.to_string().into_bytes(),
                Some(p.clone()),
            ));
        }
    } else if let Some((p, true)) = &d.enabled {
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
