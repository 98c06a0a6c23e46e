//! How an order is described to people and in errors.

use crate::events::ValueChange;
use autoprov_connector::Operation;
use autoprov_core::{PropertyChange, PropertyValue, ProvisioningOrder};

/// The operation an order mainly performs, for errors raised around the connector call.
pub fn operation_of(order: &ProvisioningOrder) -> Operation {
    order.change_type.into()
}

/// What an order changes, old → new, rendered for people (secrets masked).
pub fn value_changes(order: &ProvisioningOrder) -> Vec<ValueChange> {
    let old_of = |property: &str| -> String {
        order
            .resource
            .as_ref()
            .and_then(|r| r.get(property))
            .map(render)
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for (property, change) in &order.changes.properties {
        let new = match change {
            PropertyChange::Set(v) => v.to_string(),
            PropertyChange::SetReference(r) => r.to_string(),
            PropertyChange::Clear => String::new(),
            #[allow(unreachable_patterns)]
            _ => String::new(),
        };
        out.push(ValueChange {
            property: property.clone(),
            old: old_of(property),
            new,
        });
    }
    for (property, nav) in &order.changes.navigations {
        for r in &nav.add {
            out.push(ValueChange {
                property: format!("{property} +"),
                old: String::new(),
                new: r.to_string(),
            });
        }
        for r in &nav.remove {
            out.push(ValueChange {
                property: format!("{property} -"),
                old: r.to_string(),
                new: String::new(),
            });
        }
    }
    if order.change_type == autoprov_core::ChangeType::Deleted {
        out.push(ValueChange {
            property: "(target)".into(),
            old: order
                .resource
                .as_ref()
                .map(|r| r.id.to_string())
                .unwrap_or_default(),
            new: "(deleted)".into(),
        });
    }
    out
}

fn render(v: &PropertyValue) -> String {
    match v {
        PropertyValue::Scalar(s) => s.to_string(),
        PropertyValue::Reference(r) => r.to_string(),
        PropertyValue::References(rs) => rs
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
