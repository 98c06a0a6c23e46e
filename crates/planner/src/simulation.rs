//! Simulation output: a plan rendered as a readable per-owner diff (old → new values), with
//! secrets masked. Nothing is written anywhere; see [`Planner::simulate`](crate::Planner::simulate).

use crate::plan::{GenerationStatus, Plan, PlannedItem};
use autoprov_core::{ChangeType, PropertyChange, PropertyValue, Reference, Resource};
use std::fmt::Write as _;

const NONE: &str = "(none)";

/// Renders a plan as a per-owner diff.
///
/// ```text
/// owner u-7 (jdoe)
///   AD_Entry_NominativeUser: Added [Pending] order u-7/ad/Added/…
///     sAMAccountName: (none) → jdoe
///     password: (none) → ********
///     memberOf: + CN=Sales,OU=Groups,DC=example,DC=test
/// ```
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    match &plan.status {
        GenerationStatus::Released => {}
        GenerationStatus::Blocked { breaches } => {
            let _ = writeln!(
                out,
                "generation BLOCKED by thresholds (an operator must force it):"
            );
            for b in breaches {
                let _ = writeln!(out, "  {b}");
            }
        }
        GenerationStatus::Forced { breaches } => {
            let _ = writeln!(out, "generation FORCED past thresholds:");
            for b in breaches {
                let _ = writeln!(out, "  {b}");
            }
        }
    }
    for owner in &plan.owners {
        let identifier = owner
            .items
            .iter()
            .find_map(|i| i.order.as_ref().and_then(|o| o.owner.as_ref()))
            .map(|o| format!(" ({})", o.identifier))
            .unwrap_or_default();
        let _ = writeln!(out, "owner {}{identifier}", owner.owner);
        for e in owner.error.iter().chain(owner.item_errors.iter()) {
            let _ = writeln!(out, "  ERROR {e}");
        }
        for item in &owner.items {
            render_item(&mut out, item);
        }
    }
    if !plan.orphans.is_empty() {
        let _ = writeln!(out, "orphans (no owner)");
        for item in &plan.orphans {
            render_item(&mut out, item);
        }
    }
    out
}

fn render_item(out: &mut String, item: &PlannedItem) {
    let target = item
        .target
        .as_ref()
        .map(|t| format!(" target {t}"))
        .unwrap_or_default();
    match &item.order {
        Some(order) => {
            let _ = writeln!(
                out,
                "  {}: {} [{}]{target} order {}",
                item.resource_type, order.change_type, item.provisioning_state, order.order_id
            );
            if !order.depends_on.is_empty() {
                let ids: Vec<&str> = order.depends_on.iter().map(|d| d.as_str()).collect();
                let _ = writeln!(out, "    after: {}", ids.join(", "));
            }
            if order.change_type == ChangeType::Deleted {
                let _ = writeln!(out, "    (the target is removed)");
            }
            render_changes(out, order.resource.as_ref(), &order.changes);
        }
        None => {
            let _ = writeln!(
                out,
                "  {}: [{}]{target}",
                item.resource_type, item.provisioning_state
            );
        }
    }
    if let Some(w) = &item.waiting {
        let _ = writeln!(out, "    waiting: {w:?}");
    }
    if let Some(e) = &item.error {
        let _ = writeln!(out, "    error: {e}");
    }
}

fn render_changes(out: &mut String, old: Option<&Resource>, changes: &autoprov_core::Changes) {
    for (property, change) in &changes.properties {
        let before = old
            .and_then(|r| r.get(property))
            .map_or_else(|| NONE.to_owned(), value_text);
        let after = match change {
            PropertyChange::Set(v) => v.display_text(),
            PropertyChange::SetReference(r) => reference_text(r),
            PropertyChange::Clear => NONE.to_owned(),
        };
        let _ = writeln!(out, "    {property}: {before} → {after}");
    }
    for (property, delta) in &changes.navigations {
        let mut parts: Vec<String> = delta
            .add
            .iter()
            .map(|r| format!("+ {}", reference_text(r)))
            .collect();
        parts.extend(
            delta
                .remove
                .iter()
                .map(|r| format!("- {}", reference_text(r))),
        );
        if !parts.is_empty() {
            let _ = writeln!(out, "    {property}: {}", parts.join("; "));
        }
    }
}

fn value_text(v: &PropertyValue) -> String {
    match v {
        PropertyValue::Scalar(s) => s.display_text(),
        PropertyValue::Reference(r) => reference_text(r),
        PropertyValue::References(rs) => {
            rs.iter().map(reference_text).collect::<Vec<_>>().join("; ")
        }
    }
}

/// A reference with a single key shows its value alone (`CN=...` rather than `dn=CN=...`).
fn reference_text(r: &Reference) -> String {
    match r.keys().values().next() {
        Some(v) if r.keys().len() == 1 => v.clone(),
        _ => r.to_string(),
    }
}
