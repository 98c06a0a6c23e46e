//! Provisioning orders and results, and their interchange JSON (SPEC §6).
//!
//! The JSON is the reference system's: PascalCase keys, a `ProvisioningOrdersList` root,
//! `Changes` as one flat object where multi-valued navigations are written as `<nav>_add` /
//! `<nav>_remove` lists (value-level deltas, never a full replacement). autoprov adds its own
//! fields: `OrderId` (unique; the idempotency key), `DependsOn` (order ids) and `NotBefore`.
//! A file without `OrderId`s gets ids derived from `AssignedResourceTypeId` and `ChangeType`.
//!
//! Files as the reference system writes them are read as they are: `Resource` (the target's
//! current values) needs no `Id` (its key comes from `dn`, then `objectGUID`, then the resource
//! type's key property when the reader knows it, see [`ResourceKeys`]), reference objects may
//! hold numbers and booleans (read as their text), and an order's `Arguments` (the output of
//! its `ArgumentsExpression`) travel with it.

use crate::ids::{
    AssignmentId, ConnectionId, EntityTypeId, OrderId, OwnerId, ResourceId, ResourceTypeId,
    StableId,
};
use crate::model::{Owner, Resource, ResourceType};
use crate::states::ProvisioningState;
use crate::value::{PropertyValue, Reference, ScalarValue};
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod file;

pub use file::{OrderFileError, ProvisioningOrdersList, ResourceKeys};

/// What an order does to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChangeType {
    /// Create the target.
    Added,
    /// Change the target.
    Modified,
    /// Remove (or disable, when configured) the target.
    Deleted,
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Added => "Added",
            Self::Modified => "Modified",
            Self::Deleted => "Deleted",
        })
    }
}

/// A change to one mono-valued property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyChange {
    /// Set a scalar value.
    Set(ScalarValue),
    /// Set a mono-valued navigation (e.g. `parentdn`, `manager`).
    SetReference(Reference),
    /// Clear the property (JSON `null`).
    Clear,
}

/// Value-level changes to one multi-valued navigation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NavigationChange {
    /// References to add.
    pub add: BTreeSet<Reference>,
    /// References to remove.
    pub remove: BTreeSet<Reference>,
}

impl NavigationChange {
    /// Whether nothing is added or removed.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The typed `Changes` of an order.
///
/// ```
/// use autoprov_core::{Changes, Reference};
/// let mut c = Changes::default();
/// c.set("sAMAccountName", "jdoe");
/// c.set_reference("parentdn", Reference::dn("OU=Sales,DC=example,DC=test"));
/// c.add_reference("memberOf", Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test"));
/// let json = serde_json::to_value(&c).unwrap();
/// assert_eq!(json["memberOf_add"][0]["dn"], "CN=Sales,OU=Groups,DC=example,DC=test");
/// assert_eq!(json["memberOf_remove"], serde_json::json!([]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Mono-valued properties (scalars and mono-valued navigations).
    pub properties: BTreeMap<String, PropertyChange>,
    /// Multi-valued navigations as deltas.
    pub navigations: BTreeMap<String, NavigationChange>,
}

impl Changes {
    /// Whether `other` holds the same changes, a secret's value aside: like an order id, which
    /// is computed with secrets masked, a stored order whose secret was masked or erased is
    /// the same change as the one that carried it.
    pub fn same_as(&self, other: &Self) -> bool {
        self.navigations == other.navigations
            && self.properties.len() == other.properties.len()
            && self
                .properties
                .iter()
                .zip(&other.properties)
                .all(|((ka, a), (kb, b))| {
                    ka == kb
                        && match (a, b) {
                            (
                                PropertyChange::Set(ScalarValue::Secret(_)),
                                PropertyChange::Set(ScalarValue::Secret(_)),
                            ) => true,
                            _ => a == b,
                        }
                })
    }

    /// Sets a scalar.
    pub fn set(&mut self, property: impl Into<String>, value: impl Into<ScalarValue>) -> &mut Self {
        self.properties
            .insert(property.into(), PropertyChange::Set(value.into()));
        self
    }

    /// Sets a mono-valued navigation.
    pub fn set_reference(&mut self, property: impl Into<String>, value: Reference) -> &mut Self {
        self.properties
            .insert(property.into(), PropertyChange::SetReference(value));
        self
    }

    /// Clears a property.
    pub fn clear(&mut self, property: impl Into<String>) -> &mut Self {
        self.properties
            .insert(property.into(), PropertyChange::Clear);
        self
    }

    /// Adds a reference to a multi-valued navigation.
    pub fn add_reference(&mut self, property: impl Into<String>, value: Reference) -> &mut Self {
        self.navigations
            .entry(property.into())
            .or_default()
            .add
            .insert(value);
        self
    }

    /// Removes a reference from a multi-valued navigation.
    pub fn remove_reference(&mut self, property: impl Into<String>, value: Reference) -> &mut Self {
        self.navigations
            .entry(property.into())
            .or_default()
            .remove
            .insert(value);
        self
    }

    /// The scalar set for a property, if any.
    pub fn scalar(&self, property: &str) -> Option<&ScalarValue> {
        match self.properties.get(property) {
            Some(PropertyChange::Set(v)) => Some(v),
            _ => None,
        }
    }

    /// The reference set for a mono-valued navigation, if any.
    pub fn reference(&self, property: &str) -> Option<&Reference> {
        match self.properties.get(property) {
            Some(PropertyChange::SetReference(r)) => Some(r),
            _ => None,
        }
    }

    /// Whether there is no change at all.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty() && self.navigations.values().all(NavigationChange::is_empty)
    }
}

// Collected in a `BTreeMap`, not a `serde_json::Map`: that map's order depends on whether any
// crate in the build enables serde_json's `preserve_order`, and files must come out the same
// byte for byte whatever else is linked in. Keys are written sorted, so `<nav>_add` and
// `<nav>_remove` sit next to each other. A mono-valued property named `<nav>_add` or
// `<nav>_remove` cannot be written (the flat object reserves those names for deltas): the
// navigation wins.
impl Serialize for Changes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Values are written as they are, not converted into a `serde_json::Value` first (the
        // planner hashes this JSON for every order id): the bytes are those of
        // `PropertyValue::to_json`, pinned by `changes_serialize_as_their_json_values`.
        let mut map: BTreeMap<std::borrow::Cow<'_, str>, ChangeJson<'_>> = BTreeMap::new();
        for (k, v) in &self.properties {
            let json = match v {
                PropertyChange::Set(s) => ChangeJson::Scalar(s),
                PropertyChange::SetReference(r) => ChangeJson::Reference(r),
                PropertyChange::Clear => ChangeJson::Null,
            };
            map.insert(k.as_str().into(), json);
        }
        for (k, v) in &self.navigations {
            map.insert(format!("{k}_add").into(), ChangeJson::References(&v.add));
            map.insert(
                format!("{k}_remove").into(),
                ChangeJson::References(&v.remove),
            );
        }
        map.serialize(serializer)
    }
}

/// One value of [`Changes`]' JSON, written as [`PropertyValue::to_json`] writes it.
enum ChangeJson<'a> {
    Scalar(&'a ScalarValue),
    Reference(&'a Reference),
    References(&'a BTreeSet<Reference>),
    Null,
}

impl Serialize for ChangeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Scalar(ScalarValue::String(s)) => serializer.serialize_str(s),
            Self::Scalar(ScalarValue::Integer(i)) => serializer.serialize_i64(*i),
            Self::Scalar(ScalarValue::Bool(b)) => serializer.serialize_bool(*b),
            Self::Scalar(ScalarValue::DateTime(d)) => {
                serializer.serialize_str(&crate::value::format_datetime(d))
            }
            Self::Scalar(other) => other.to_json().serialize(serializer),
            // A reference is a map of keys, written sorted, as `to_json` writes it.
            Self::Reference(r) => r.serialize(serializer),
            Self::References(set) => serializer.collect_seq(set.iter()),
            Self::Null => serializer.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::deserialize(deserializer)?;
        let mut changes = Changes::default();
        for (key, value) in map {
            let delta = key
                .strip_suffix("_add")
                .map(|p| (p, true))
                .or_else(|| key.strip_suffix("_remove").map(|p| (p, false)));
            let value = file::reference_values_as_text(value);
            if let Some((property, is_add)) = delta {
                let refs = match PropertyValue::from_json(value) {
                    Ok(PropertyValue::References(refs)) => refs,
                    Ok(other) => {
                        return Err(D::Error::custom(format!(
                            "`{key}`: expected an array of references, found {}",
                            other.kind_name()
                        )));
                    }
                    Err(e) => return Err(D::Error::custom(format!("`{key}`: {e}"))),
                };
                let entry = changes.navigations.entry(property.to_owned()).or_default();
                if is_add {
                    entry.add = refs;
                } else {
                    entry.remove = refs;
                }
                continue;
            }
            let change = match value {
                serde_json::Value::Null => PropertyChange::Clear,
                serde_json::Value::Array(_) => {
                    return Err(D::Error::custom(format!(
                        "`{key}`: a multi-valued navigation is changed through `{key}_add` / \
                         `{key}_remove`, never replaced whole"
                    )));
                }
                other => match PropertyValue::from_json(other) {
                    Ok(PropertyValue::Scalar(s)) => PropertyChange::Set(s),
                    Ok(PropertyValue::Reference(r)) => PropertyChange::SetReference(r),
                    Ok(other) => {
                        return Err(D::Error::custom(format!(
                            "`{key}`: unexpected {}",
                            other.kind_name()
                        )));
                    }
                    Err(e) => return Err(D::Error::custom(format!("`{key}`: {e}"))),
                },
            };
            changes.properties.insert(key, change);
        }
        Ok(changes)
    }
}

/// An entity type as named in an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EntityTypeRef {
    /// Its id.
    pub id: EntityTypeId,
    /// Its identifier.
    #[serde(default)]
    pub identifier: String,
}

/// A resource type as named in an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResourceTypeRef {
    /// Its id.
    pub id: ResourceTypeId,
    /// Its identifier, e.g. `AD_Entry_NominativeUser`.
    #[serde(default)]
    pub identifier: String,
    /// The owners' entity type.
    pub source_entity_type: EntityTypeRef,
    /// The targets' entity type.
    pub target_entity_type: EntityTypeRef,
}

impl ResourceTypeRef {
    /// The reference to a resource type (entity type identifiers are their ids).
    pub fn of(rt: &ResourceType) -> Self {
        Self {
            id: rt.id.clone(),
            identifier: rt.identifier.clone(),
            source_entity_type: EntityTypeRef {
                id: rt.source_entity_type.clone(),
                identifier: rt.source_entity_type.to_string(),
            },
            target_entity_type: EntityTypeRef {
                id: rt.target_entity_type.clone(),
                identifier: rt.target_entity_type.to_string(),
            },
        }
    }
}

/// One provisioning order: what a connector must do to one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisioningOrder {
    /// Unique id; the idempotency key of the order.
    pub order_id: OrderId,
    /// The `AssignedResourceType` the order fulfils (none for orphan deletions).
    #[serde(default)]
    pub assigned_resource_type_id: Option<AssignmentId>,
    /// Added, Modified or Deleted.
    pub change_type: ChangeType,
    /// The workflow instance that produced it, if any.
    #[serde(default)]
    pub workflow_instance_id: Option<String>,
    /// The owner (none for orphans).
    #[serde(default)]
    pub owner: Option<Owner>,
    /// The resource type.
    pub resource_type: ResourceTypeRef,
    /// The connection that must fulfil it.
    #[serde(default)]
    pub connection: Option<ConnectionId>,
    /// What to change.
    #[serde(default)]
    pub changes: Changes,
    /// The current values of the existing target (Modified and Deleted).
    #[serde(default)]
    pub resource: Option<Resource>,
    /// Orders that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<OrderId>,
    /// Not to be sent before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// The order's arguments (the reference system's `ArgumentsExpression` output), passed to
    /// the connector as they are. Numbers and booleans in a file are read as their text.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "file::arguments_from_json"
    )]
    pub arguments: BTreeMap<String, String>,
}

impl ProvisioningOrder {
    /// Whether `other` asks for the same change: same id, change type, owner, resource type,
    /// connection, changes and target. The rest is context that may legitimately differ
    /// between two plans of the same change (the owner's and the target's current values, the
    /// orders it waits for, its not-before time), so a store treats such a re-insert as the
    /// same order, not as a conflict.
    ///
    /// ```
    /// # use autoprov_core::*;
    /// let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "ad");
    /// let mut a = ProvisioningOrder {
    ///     order_id: "o-1".into(), assigned_resource_type_id: None, change_type: ChangeType::Added,
    ///     workflow_instance_id: None, owner: None, resource_type: ResourceTypeRef::of(&rt),
    ///     connection: Some("ad".into()), changes: Changes::default(), resource: None,
    ///     depends_on: vec![], not_before: None, arguments: Default::default(),
    /// };
    /// let mut b = a.clone();
    /// b.depends_on.push("o-0".into());
    /// assert!(a.same_change(&b));
    /// b.changes.set("sAMAccountName", "jdoe");
    /// assert!(!a.same_change(&b));
    /// ```
    pub fn same_change(&self, other: &Self) -> bool {
        self.order_id == other.order_id
            && self.change_type == other.change_type
            && self.owner_id() == other.owner_id()
            && self.resource_type.id == other.resource_type.id
            && self.connection == other.connection
            && self.changes.same_as(&other.changes)
            && self.resource.as_ref().map(|r| &r.id) == other.resource.as_ref().map(|r| &r.id)
    }

    /// The first property whose value is a redacted secret (a masked value read back from a
    /// file): such an order can never be sent, whatever the connector.
    pub fn redacted_secret(&self) -> Option<&str> {
        self.changes.properties.iter().find_map(|(name, change)| {
            matches!(change, PropertyChange::Set(ScalarValue::Secret(s)) if s.is_redacted())
                .then_some(name.as_str())
        })
    }

    /// The owner id, if any.
    pub fn owner_id(&self) -> Option<&OwnerId> {
        self.owner.as_ref().map(|o| &o.id)
    }

    /// A short human label: order id, change type, owner and target, for messages.
    pub fn label(&self) -> String {
        let owner = self
            .owner
            .as_ref()
            .map(|o| format!("{} ({})", o.id, o.identifier))
            .unwrap_or_else(|| "no owner".into());
        let target = self
            .resource
            .as_ref()
            .map(|r| r.id.to_string())
            .unwrap_or_else(|| "new target".into());
        format!(
            "order {} ({} {}) for owner {owner}, target {target}",
            self.order_id, self.change_type, self.resource_type.identifier
        )
    }

    /// Checks the order's own consistency.
    pub fn validate(&self) -> Result<(), String> {
        match self.change_type {
            ChangeType::Modified | ChangeType::Deleted if self.resource.is_none() => Err(format!(
                "a {} order needs `Resource` (the existing target)",
                self.change_type
            )),
            ChangeType::Added if self.owner.is_none() => Err("an Added order needs `Owner`".into()),
            _ if self.depends_on.contains(&self.order_id) => {
                Err("`DependsOn` names the order itself".into())
            }
            _ => Ok(()),
        }
    }
}

/// What became of one order (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisioningResult {
    /// The order.
    pub order_id: OrderId,
    /// The assignment the order fulfilled.
    #[serde(default)]
    pub assignment_id: Option<AssignmentId>,
    /// Executed, Transmitted or Errored.
    pub provisioning_state: ProvisioningState,
    /// A readable message (the error, for Errored).
    #[serde(default)]
    pub message: Option<String>,
    /// The order's change type.
    pub change_type: ChangeType,
    /// The owner.
    #[serde(default)]
    pub owner_id: Option<OwnerId>,
    /// The owner's entity type.
    #[serde(default)]
    pub owner_type: Option<EntityTypeId>,
    /// The target's key after the order (e.g. its DN after a create, move or rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<ResourceId>,
    /// The target's stable id (e.g. `objectGUID` of a created object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_id: Option<StableId>,
    /// The ticket reference, for orders handed to a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// The root of a results file: `{"ProvisioningResultsList": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisioningResultsList {
    /// The results.
    pub provisioning_results_list: Vec<ProvisioningResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Changes` as it was written before values were streamed: each value converted with
    /// `PropertyValue::to_json` and collected in a sorted map.
    fn through_values(changes: &Changes) -> String {
        let mut map = BTreeMap::new();
        for (k, v) in &changes.properties {
            let json = match v {
                PropertyChange::Set(s) => PropertyValue::Scalar(s.clone()).to_json(),
                PropertyChange::SetReference(r) => PropertyValue::Reference(r.clone()).to_json(),
                PropertyChange::Clear => serde_json::Value::Null,
            };
            map.insert(k.clone(), json);
        }
        for (k, v) in &changes.navigations {
            let list = |set: &BTreeSet<Reference>| {
                PropertyValue::References(set.iter().cloned().collect()).to_json()
            };
            map.insert(format!("{k}_add"), list(&v.add));
            map.insert(format!("{k}_remove"), list(&v.remove));
        }
        serde_json::to_string(&map).expect("a map of JSON values serializes")
    }

    /// Order ids hash this JSON: streaming the values must not change one byte of it.
    #[test]
    fn changes_serialize_as_their_json_values() {
        let mut changes = Changes::default();
        let set = |c: &mut Changes, k: &str, v: PropertyChange| {
            c.properties.insert(k.to_owned(), v);
        };
        set(
            &mut changes,
            "title",
            PropertyChange::Set("Dév \"lead\"\n\u{1}".into()),
        );
        set(
            &mut changes,
            "count",
            PropertyChange::Set(ScalarValue::Integer(-42)),
        );
        set(
            &mut changes,
            "enabled",
            PropertyChange::Set(ScalarValue::Bool(false)),
        );
        set(
            &mut changes,
            "expires",
            PropertyChange::Set(ScalarValue::DateTime(
                DateTime::parse_from_rfc3339("2026-12-02T10:11:12.5+01:00")
                    .expect("a valid date")
                    .with_timezone(&Utc),
            )),
        );
        set(
            &mut changes,
            "photo",
            PropertyChange::Set(ScalarValue::Binary(vec![0, 159, 255])),
        );
        set(
            &mut changes,
            "password",
            PropertyChange::Set(ScalarValue::Secret(crate::Secret::new("Pa55word!"))),
        );
        set(&mut changes, "description", PropertyChange::Clear);
        set(
            &mut changes,
            "manager",
            PropertyChange::SetReference(Reference::dn("CN=Boss,DC=x").with("Id", "b1")),
        );
        // A property named like a navigation's delta: the navigation wins, as before.
        set(&mut changes, "member_add", PropertyChange::Clear);
        changes.navigations.insert(
            "member".into(),
            NavigationChange {
                add: [Reference::dn("CN=G1,DC=x"), Reference::id("g2")].into(),
                remove: [Reference::dn("CN=G0,DC=x")].into(),
            },
        );
        changes
            .navigations
            .insert("memberOf".into(), NavigationChange::default());
        let streamed = serde_json::to_string(&changes).expect("changes serialize");
        assert_eq!(streamed, through_values(&changes));
        assert!(streamed.contains("\"member_add\":[{"), "{streamed}");
        assert!(!streamed.contains("Pa55word!"), "{streamed}");
    }
}
