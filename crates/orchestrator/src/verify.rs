//! Verification: after an export is synchronized, Executed and Transmitted orders whose effect
//! is observed in the managed system become Verified; those still unobserved after the resource
//! type's `TransmittedStateValidityPeriod` become Errored.
//!
//! An order's effect is observed when its target (found by stable id, then by key) holds every
//! value the order set, holds every membership it added and none it removed, and, for a Deleted
//! order, is gone (or disabled, for connections that disable instead of deleting). Write-only
//! values (secrets, the must-change-password flag, and the properties the role model writes
//! but does not map back: the reference system's `IsMapped = false`) are never compared.

use crate::clock::Clock;
use crate::events::{EventSink, JobEvent};
use crate::store::{OrderRecord, OrderUpdate, Store, StoreError};
use autoprov_connector::schema;
use autoprov_core::{
    ChangeType, ConnectionId, PropertyChange, PropertyValue, ProvisioningEvent, ProvisioningState,
    Reference, Resource, ResourceTypeId, ScalarValue,
};
use futures::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Verification updates sent to the store at once.
const UPDATES_IN_FLIGHT: usize = 64;

/// What verification did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerificationReport {
    /// Orders now Verified.
    pub verified: Vec<autoprov_core::OrderId>,
    /// Orders still waiting for their effect to be seen, with what is missing.
    pub waiting: Vec<(autoprov_core::OrderId, String)>,
    /// Orders Errored because their validity period passed unverified.
    pub timed_out: Vec<autoprov_core::OrderId>,
    /// The owners of the verified and timed-out orders: their plans are re-evaluated.
    pub owners: std::collections::BTreeSet<autoprov_core::OwnerId>,
}

fn same_text(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn same_reference(a: &Reference, b: &Reference) -> bool {
    match (a.dn_value(), b.dn_value()) {
        (Some(x), Some(y)) => same_text(x, y),
        _ => a == b,
    }
}

fn same_scalar(expected: &ScalarValue, actual: &ScalarValue) -> bool {
    match (expected, actual) {
        (ScalarValue::String(a), ScalarValue::String(b)) => same_text(a, b),
        (a, b) => a == b,
    }
}

fn write_only(property: &str, value: Option<&ScalarValue>) -> bool {
    property == schema::PASSWORD
        || property == schema::MUST_CHANGE_PASSWORD
        || value.is_some_and(ScalarValue::is_secret)
}

/// Where `record`'s target stands in the store's synchronized resources: found by its stable
/// id first (a rename or move keeps it), then by its key.
async fn find_target(
    store: &dyn Store,
    conn: &ConnectionId,
    record: &OrderRecord,
) -> Result<Option<Resource>, StoreError> {
    let order = &record.order;
    let stable = record
        .stable_id
        .as_ref()
        .or_else(|| order.resource.as_ref().and_then(|r| r.stable_id.as_ref()));
    if let Some(stable) = stable
        && let Some(key) = store.key_of_stable(conn, stable).await?
        && let Some(found) = store.resource(conn, &key).await?
    {
        return Ok(Some(found));
    }
    let key = record
        .resource_id
        .as_ref()
        .or_else(|| order.resource.as_ref().map(|r| &r.id));
    match key {
        Some(key) => store.resource(conn, key).await,
        None => Ok(None),
    }
}

/// Whether the effect of `record`'s order is visible on `target` (its target as last
/// synchronized, if any); `Err` says what is missing.
/// `unmapped` says which properties are written but not mapped back: they are not compared.
pub fn observe(
    record: &OrderRecord,
    target: Option<&Resource>,
    unmapped: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let order = &record.order;
    if order.change_type == ChangeType::Deleted {
        return match target {
            None => Ok(()),
            Some(t)
                if t.get(schema::ENABLED)
                    .and_then(PropertyValue::as_scalar)
                    .and_then(ScalarValue::as_bool)
                    == Some(false) =>
            {
                Ok(())
            }
            Some(t) => Err(format!("target {} still exists", t.id)),
        };
    }
    let Some(target) = target else {
        return Err("target not found".into());
    };
    for (property, change) in &order.changes.properties {
        if unmapped(property) {
            continue;
        }
        let actual = target.get(property);
        match change {
            PropertyChange::Set(v) if write_only(property, Some(v)) => {}
            PropertyChange::Set(v) => match actual.and_then(PropertyValue::as_scalar) {
                Some(a) if same_scalar(v, a) => {}
                other => {
                    return Err(format!(
                        "{property}: expected {v}, found {}",
                        other
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "nothing".into())
                    ));
                }
            },
            PropertyChange::SetReference(r) => match actual.and_then(PropertyValue::as_reference) {
                Some(a) if same_reference(r, a) => {}
                other => {
                    return Err(format!(
                        "{property}: expected {r}, found {}",
                        other
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "nothing".into())
                    ));
                }
            },
            PropertyChange::Clear if write_only(property, None) => {}
            PropertyChange::Clear => {
                if actual.is_some() {
                    return Err(format!("{property}: expected no value"));
                }
            }
        }
    }
    for (property, nav) in &order.changes.navigations {
        let empty = Default::default();
        let actual = target
            .get(property)
            .and_then(PropertyValue::as_references)
            .unwrap_or(&empty);
        for r in &nav.add {
            if !actual.iter().any(|a| same_reference(r, a)) {
                return Err(format!("{property}: {r} missing"));
            }
        }
        for r in &nav.remove {
            if actual.iter().any(|a| same_reference(r, a)) {
                return Err(format!("{property}: {r} still present"));
            }
        }
    }
    Ok(())
}

/// Verifies every Executed or Transmitted order of the store against the synchronized
/// resources of its connection.
///
/// `validity` gives each resource type's `TransmittedStateValidityPeriod` (`None`: never times
/// out); types not listed use `default_validity`. `unmapped` lists, per resource type, the
/// properties written but not mapped back (`IsMapped = false`): never compared
/// ([`Planner::unmapped_properties`](crate::Planner::unmapped_properties)).
pub async fn verify(
    store: &dyn Store,
    clock: &dyn Clock,
    events: &dyn EventSink,
    validity: &BTreeMap<ResourceTypeId, Option<Duration>>,
    default_validity: Option<Duration>,
    unmapped: &BTreeSet<(ResourceTypeId, String)>,
) -> Result<VerificationReport, StoreError> {
    let mut report = VerificationReport::default();
    let now = clock.now();
    let in_flight = [ProvisioningState::Executed, ProvisioningState::Transmitted];
    // What each order's target shows decides its update; the updates then go to the store
    // together (in order, at most `UPDATES_IN_FLIGHT` at a time), so that a store with group
    // commit writes many of them per transaction instead of one commit (and fsync) each.
    let mut updates: Vec<(OrderRecord, OrderUpdate)> = Vec::new();
    for record in store.orders_in(&in_flight).await? {
        let Some(conn) = record.order.connection.clone() else {
            continue;
        };
        let target = find_target(store, &conn, &record).await?;
        let rt = &record.order.resource_type.id;
        let skip = |p: &str| unmapped.contains(&(rt.clone(), p.to_owned()));
        let event = match observe(&record, target.as_ref(), &skip) {
            Ok(()) => OrderUpdate::event(ProvisioningEvent::SynchronizationMatched, now),
            Err(missing) => {
                let period = validity
                    .get(&record.order.resource_type.id)
                    .copied()
                    .unwrap_or(default_validity);
                let since = record
                    .dispatch
                    .finished_at
                    .unwrap_or(record.dispatch.updated_at);
                // No period: never times out (the reference system's `0`).
                let expired = period
                    .and_then(|p| chrono::TimeDelta::from_std(p).ok())
                    .is_some_and(|p| now - since > p);
                if !expired {
                    report
                        .waiting
                        .push((record.order.order_id.clone(), missing));
                    continue;
                }
                OrderUpdate::event(ProvisioningEvent::VerificationTimedOut, now).error(format!(
                    "{}: not verified within {:?}: {missing}",
                    record.order.label(),
                    period
                ))
            }
        };
        updates.push((record, event));
    }
    let mut written = futures::stream::iter(updates)
        .map(|(record, event)| async move {
            store.update_order(record.id(), record.version, event).await
        })
        .buffered(UPDATES_IN_FLIGHT);
    while let Some(record) = written.next().await {
        let record = record?;
        let next = record.state;
        if let Some(owner) = record.order.owner_id() {
            report.owners.insert(owner.clone());
        }
        if next == ProvisioningState::Verified {
            events.emit(JobEvent::Verified {
                order: record.order.order_id.clone(),
            });
            report.verified.push(record.order.order_id.clone());
        } else {
            report.timed_out.push(record.order.order_id.clone());
        }
    }
    Ok(report)
}
