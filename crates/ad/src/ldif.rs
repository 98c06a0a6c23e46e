//! LDIF (RFC 2849) rendering of orders: what the connector would write, computed offline.
//!
//! [`AdConnector`](crate::AdConnector)'s [`Connector::preview`](autoprov_connector::Connector::preview)
//! renders each order as the change records the connector's fulfilment issues, through the same
//! checks (an order the connector would refuse is listed, not rendered):
//!
//! - **Added**: an `add` record of the entry, created disabled (`userAccountControl: 514`); then a
//!   `modify` that enables it and sets `pwdLastSet: 0` (must change at first logon) when the
//!   order asks; then one `modify` per group adding the `member` value, with AD's
//!   permissive-modify control when the mapping uses it.
//! - **Modified**: a `modrdn` when the parent or the name changes, then one `modify` with a
//!   `replace` per changed attribute (an empty `replace` clears one), then the group `member`
//!   adds and deletes.
//! - **Deleted**: a `delete` (with the tree-delete control when configured), or a `modify` that
//!   sets the disabled flag when the mapping disables instead of deleting.
//!
//! Passwords never appear: a comment says that one is set. Values that are not safe LDIF
//! strings (non-ASCII, leading space, colon or `<`, trailing space, control characters) are
//! base64 (`attr:: ...`), and lines are folded at 76 columns.
//!
//! The connector itself reads the target first and writes only what differs (and flips only the
//! disabled bit of `userAccountControl`), so the preview shows what the orders ask for; applied
//! with `ldapmodify`, it reaches the same end state, except for passwords, which it cannot carry.

use crate::connector::Inner;
use crate::fulfill::{
    NewEntry, Relocation, UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT, activation, creation_attributes,
    desired, relocation,
};
use crate::mapping::EntityMapping;
use crate::pool::{PERMISSIVE_MODIFY_OID, TREE_DELETE_OID};
use autoprov_connector::dn::{Dn, Rdn};
use autoprov_connector::{ConnectorError, Operation, Preview};
use autoprov_core::{ChangeType, PropertyValue, ProvisioningOrder, ScalarValue};
use base64::Engine as _;

/// The longest line written; longer ones are folded (RFC 2849 §2, "SHOULD NOT exceed 76").
const WIDTH: usize = 76;

/// An LDIF document being written.
#[derive(Default)]
pub(crate) struct Ldif {
    out: String,
}

impl Ldif {
    /// A comment line; line breaks in `text` are flattened so it cannot end the comment.
    pub(crate) fn comment(&mut self, text: &str) {
        self.out.push_str("# ");
        for c in text.chars() {
            self.out.push(if c.is_control() { ' ' } else { c });
        }
        self.out.push('\n');
    }

    /// `name: value`, or `name:: base64` when the value is not a safe string; folded.
    pub(crate) fn value(&mut self, name: &str, value: &[u8]) {
        let line = if is_safe(value) {
            // Safe means ASCII, so this is the text itself.
            format!("{name}: {}", String::from_utf8_lossy(value))
        } else {
            format!(
                "{name}:: {}",
                base64::engine::general_purpose::STANDARD.encode(value)
            )
        };
        self.folded(&line);
    }

    /// A line without a value (`-`, `replace: description` with no values to clear it).
    pub(crate) fn bare(&mut self, line: &str) {
        self.folded(line);
    }

    fn folded(&mut self, line: &str) {
        // Only ASCII reaches here (unsafe values are base64, names are attribute names).
        let mut rest = line;
        let mut width = WIDTH;
        loop {
            if rest.len() <= width || !rest.is_char_boundary(width) {
                self.out.push_str(rest);
                self.out.push('\n');
                return;
            }
            let (head, tail) = rest.split_at(width);
            self.out.push_str(head);
            self.out.push_str("\n ");
            rest = tail;
            // A continuation line starts with the one space that folding adds.
            width = WIDTH - 1;
        }
    }

    fn end_record(&mut self) {
        self.out.push('\n');
    }

    pub(crate) fn into_string(self) -> String {
        self.out
    }
}

/// RFC 2849 SAFE-STRING, and no trailing space (which readers may strip).
pub(crate) fn is_safe(value: &[u8]) -> bool {
    let Some(&first) = value.first() else {
        return true;
    };
    if matches!(first, b' ' | b':' | b'<') || value.last() == Some(&b' ') {
        return false;
    }
    value
        .iter()
        .all(|&b| b.is_ascii() && !matches!(b, 0 | b'\n' | b'\r'))
}

/// Renders orders as LDIF change records.
pub(crate) fn render(inner: &Inner, orders: &[ProvisioningOrder]) -> Preview {
    let mut ldif = Ldif::default();
    ldif.bare("version: 1");
    ldif.comment(&format!(
        "autoprov preview of {} order(s) for connection `{}` (package {}).",
        orders.len(),
        inner.info.connection,
        inner.info.package
    ));
    ldif.comment(
        "The connector reads each target first and writes only what differs; passwords are \
         never shown.",
    );
    ldif.end_record();
    let mut refused = Vec::new();
    for order in orders {
        let mut records = Ldif::default();
        match render_order(inner, order, &mut records) {
            Ok(()) => {
                ldif.comment(&order_title(order));
                ldif.out.push_str(&records.out);
            }
            Err(e) => {
                let e = e.for_order(order);
                ldif.comment(&format!(
                    "{}: REFUSED, not rendered: {e}",
                    order_title(order)
                ));
                ldif.end_record();
                refused.push(e);
            }
        }
    }
    Preview::new("ldif", ldif.into_string()).with_refused(refused)
}

fn order_title(order: &ProvisioningOrder) -> String {
    let owner = order
        .owner
        .as_ref()
        .map(|o| format!(" for owner {} ({})", o.id, o.identifier))
        .unwrap_or_default();
    let rt = &order.resource_type;
    let kind = if rt.identifier.is_empty() {
        rt.id.as_str()
    } else {
        rt.identifier.as_str()
    };
    format!(
        "order {}: {:?} {kind}{owner}",
        order.order_id, order.change_type
    )
}

fn render_order(
    inner: &Inner,
    order: &ProvisioningOrder,
    out: &mut Ldif,
) -> Result<(), ConnectorError> {
    order
        .validate()
        .map_err(|m| ConnectorError::invalid_order(Operation::from(order.change_type), m))?;
    let (_, m) = inner.mapping_for(order)?;
    match order.change_type {
        ChangeType::Added => added(inner, order, m, out),
        ChangeType::Modified => modified(inner, order, m, out),
        ChangeType::Deleted => deleted(order, m, out),
    }
}

fn added(
    inner: &Inner,
    order: &ProvisioningOrder,
    m: &EntityMapping,
    out: &mut Ldif,
) -> Result<(), ConnectorError> {
    let d = desired(order, m)?;
    let NewEntry {
        rdn_value,
        parent,
        dn,
        ..
    } = inner.new_entry(order, m, &d)?;
    inner.server_of(&parent, Operation::Create)?;
    let dn_text = dn.to_string();
    let password = match (
        &d.password,
        m.password.as_ref().and_then(|p| p.generate.as_ref()),
    ) {
        (Some(_), _) => Some("the order's initial password"),
        (None, Some(_)) => Some("a generated initial password"),
        (None, None) => None,
    };
    if password.is_some() && !inner.encrypted() {
        return Err(inner.refuse_plain_password(&dn_text));
    }
    for g in &d.groups_add {
        inner
            .server_of(g, Operation::Membership)
            .map_err(|e| e.with_target(dn_text.clone()))?;
    }

    out.value("dn", dn_text.as_bytes());
    out.bare("changetype: add");
    for (attribute, values) in creation_attributes(m, &d, &rdn_value) {
        for v in values {
            out.value(&attribute, &v);
        }
    }
    if let Some(what) = password {
        out.comment(&format!("unicodePwd: {what} (not shown)"));
    }
    out.end_record();

    let writes = activation(m, &d, password.is_some());
    if !writes.is_empty() {
        out.value("dn", dn_text.as_bytes());
        out.bare("changetype: modify");
        for (attribute, value, _) in writes {
            replace(out, attribute, Some(&value));
        }
        out.end_record();
    }
    members(m, &dn_text, &d.groups_add, true, out);
    Ok(())
}

fn modified(
    inner: &Inner,
    order: &ProvisioningOrder,
    m: &EntityMapping,
    out: &mut Ldif,
) -> Result<(), ConnectorError> {
    let op = Operation::Update;
    let d = desired(order, m)?;
    let resource = order
        .resource
        .as_ref()
        .ok_or_else(|| ConnectorError::invalid_order(op, "a Modified order needs `Resource`"))?;
    let key = resource.id.as_str();
    if d.password.is_some() && !inner.encrypted() {
        return Err(inner.refuse_plain_password(key));
    }
    let current = Dn::parse(key).map_err(|e| {
        ConnectorError::invalid_order(op, format!("`Resource` key: {e}")).with_target(key)
    })?;
    let mut dn_text = key.to_owned();

    // Move and/or rename.
    let Relocation {
        current_parent,
        current_rdn_value,
        new_parent,
        new_rdn_value,
    } = relocation(&d, &current);
    if new_parent.is_some() || new_rdn_value.is_some() {
        let parent = new_parent.clone().unwrap_or(current_parent);
        inner
            .server_of(&parent, Operation::Rename)
            .map_err(|e| e.with_target(key))?;
        let value = new_rdn_value.unwrap_or(current_rdn_value);
        let attr = current
            .rdn_attribute()
            .unwrap_or(&m.rdn_attribute)
            .to_owned();
        out.value("dn", key.as_bytes());
        out.bare("changetype: modrdn");
        out.value("newrdn", Rdn::new(&attr, &value).to_string().as_bytes());
        out.bare("deleteoldrdn: 1");
        if let Some(p) = &new_parent {
            out.value("newsuperior", p.to_string().as_bytes());
        }
        out.end_record();
        dn_text = parent.child(Rdn::new(&attr, &value)).to_string();
    }

    // Scalars, enabled, password, must-change: one modify.
    let mut body = Ldif::default();
    for w in &d.scalars {
        replace(&mut body, &w.attribute, w.value.as_deref());
    }
    if d.password.is_some() {
        body.comment("unicodePwd: replaced with the order's password (not shown)");
    }
    if let Some((_, enabled)) = &d.enabled {
        let known = current_uac(order);
        let base = known.unwrap_or(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE);
        let wanted = if *enabled {
            base & !UF_ACCOUNTDISABLE
        } else {
            base | UF_ACCOUNTDISABLE
        };
        if known != Some(wanted) {
            if known.is_none() {
                body.comment(
                    "userAccountControl: the connector flips only the disabled flag of the \
                     current value",
                );
            }
            replace(
                &mut body,
                "userAccountControl",
                Some(wanted.to_string().as_bytes()),
            );
        }
    }
    if let Some((_, must)) = &d.must_change {
        let value: &[u8] = if *must { b"0" } else { b"-1" };
        replace(&mut body, "pwdLastSet", Some(value));
    }
    if !body.out.is_empty() {
        out.value("dn", dn_text.as_bytes());
        out.bare("changetype: modify");
        out.out.push_str(&body.out);
        out.end_record();
    }
    members(m, &dn_text, &d.groups_add, true, out);
    members(m, &dn_text, &d.groups_remove, false, out);
    Ok(())
}

fn deleted(
    order: &ProvisioningOrder,
    m: &EntityMapping,
    out: &mut Ldif,
) -> Result<(), ConnectorError> {
    let resource = order.resource.as_ref().ok_or_else(|| {
        ConnectorError::invalid_order(Operation::Delete, "a Deleted order needs `Resource`")
    })?;
    let key = resource.id.as_str();
    out.value("dn", key.as_bytes());
    if m.disable_instead_of_delete {
        let current = current_uac(order).unwrap_or(UF_NORMAL_ACCOUNT);
        out.comment("disabled instead of deleted (mapping: DisableInsteadOfDelete)");
        out.bare("changetype: modify");
        replace(
            out,
            "userAccountControl",
            Some((current | UF_ACCOUNTDISABLE).to_string().as_bytes()),
        );
    } else {
        if m.tree_delete {
            out.bare(&format!("control: {TREE_DELETE_OID} true"));
        }
        out.bare("changetype: delete");
    }
    out.end_record();
    Ok(())
}

/// `replace: attr` with its value, or none to clear it; then `-`.
fn replace(out: &mut Ldif, attribute: &str, value: Option<&[u8]>) {
    out.bare(&format!("replace: {attribute}"));
    if let Some(v) = value {
        out.value(attribute, v);
    }
    out.bare("-");
}

/// One `modify` per group, adding or deleting the member value (never a replace).
fn members(m: &EntityMapping, member: &str, groups: &[Dn], add: bool, out: &mut Ldif) {
    let attribute = m.group_attribute();
    for g in groups {
        out.value("dn", g.to_string().as_bytes());
        if m.permissive_modify {
            out.bare(&format!("control: {PERMISSIVE_MODIFY_OID} true"));
        }
        out.bare("changetype: modify");
        out.bare(&format!(
            "{}: {attribute}",
            if add { "add" } else { "delete" }
        ));
        out.value(attribute, member.as_bytes());
        out.bare("-");
        out.end_record();
    }
}

/// The target's current `userAccountControl`, when the order's `Resource` carries it.
fn current_uac(order: &ProvisioningOrder) -> Option<i64> {
    let resource = order.resource.as_ref()?;
    let value = resource
        .values
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userAccountControl"))
        .map(|(_, v)| v)?;
    match value {
        PropertyValue::Scalar(ScalarValue::Integer(i)) => Some(*i),
        PropertyValue::Scalar(ScalarValue::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: impl FnOnce(&mut Ldif)) -> String {
        let mut l = Ldif::default();
        f(&mut l);
        l.into_string()
    }

    #[test]
    fn safe_values_are_plain_and_others_base64() {
        assert!(is_safe(b"Jane Doe"));
        assert!(is_safe(b""));
        assert!(is_safe(b"a:b<c"));
        for unsafe_value in [
            " lead".as_bytes(),
            b":colon",
            b"<angle",
            b"trail ",
            b"new\nline",
            b"cr\r",
            b"nul\0",
            "Zoë".as_bytes(),
        ] {
            assert!(!is_safe(unsafe_value), "{unsafe_value:?}");
        }
        assert_eq!(
            lines(|l| l.value("cn", "Zoë".as_bytes())),
            "cn:: Wm/Dqw==\n"
        );
        assert_eq!(lines(|l| l.value("cn", b"Jo")), "cn: Jo\n");
    }

    #[test]
    fn long_lines_fold_at_76_columns_and_unfold_to_the_value() {
        let value = "x".repeat(200);
        let text = lines(|l| l.value("description", value.as_bytes()));
        for line in text.lines() {
            assert!(line.len() <= WIDTH, "{line}");
        }
        // Unfolding (RFC 2849: drop each line break followed by one space) gives it back.
        let unfolded = text.trim_end().replace("\n ", "");
        assert_eq!(unfolded, format!("description: {value}"));
    }

    #[test]
    fn comments_cannot_break_out_of_their_line() {
        let text = lines(|l| l.comment("evil\ndn: CN=x\nchangetype: delete"));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("# "));
    }
}
