//! Entity types, resource types, resources and owners (SPEC §2).

use crate::config::{self, ConfigError};
use crate::found::NonConformingPolicy;
use crate::ids::{ConnectionId, EntityTypeId, OwnerId, ResourceId, ResourceTypeId, StableId};
use crate::value::{PropertyValue, json_kind};
use crate::workflow::{ApprovalWorkflowType, ImplicitApproval};
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// The kind of a property of an entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub enum PropertyKind {
    /// Text.
    String,
    /// Signed integer.
    Integer,
    /// Boolean.
    Bool,
    /// Date-time, UTC.
    DateTime,
    /// Raw bytes.
    Binary,
    /// Write-only secret (password).
    Secret,
    /// Mono-valued navigation (e.g. `manager`, `parentdn`).
    MonoReference {
        /// The entity type referenced.
        target: EntityTypeId,
    },
    /// Multi-valued navigation (e.g. `memberOf`).
    MultiReference {
        /// The entity type referenced.
        target: EntityTypeId,
    },
}

impl PropertyKind {
    /// Whether the property is a navigation.
    pub fn is_navigation(&self) -> bool {
        matches!(
            self,
            Self::MonoReference { .. } | Self::MultiReference { .. }
        )
    }
}

/// A property of an entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PropertyDefinition {
    /// The property's kind.
    pub kind: PropertyKind,
    /// Whether a created resource must have it.
    #[serde(default)]
    pub required: bool,
    /// Whether the value must be unique among resources of the entity type (e.g.
    /// `sAMAccountName`).
    #[serde(default)]
    pub unique: bool,
}

impl PropertyDefinition {
    /// A property of the given kind, optional and not unique.
    pub fn new(kind: PropertyKind) -> Self {
        Self {
            kind,
            required: false,
            unique: false,
        }
    }

    /// Marks the property required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the property unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
}

/// A kind of resource, such as `Directory_User` or `AD_Entry`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EntityType {
    /// Its id.
    pub id: EntityTypeId,
    /// Its readable identifier.
    pub identifier: String,
    /// Its properties by name.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyDefinition>,
}

impl EntityType {
    /// An entity type with no property yet.
    pub fn new(id: impl Into<EntityTypeId>, identifier: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
            properties: BTreeMap::new(),
        }
    }

    /// Adds a property.
    pub fn with_property(mut self, name: impl Into<String>, def: PropertyDefinition) -> Self {
        self.properties.insert(name.into(), def);
        self
    }
}

/// Limits on how many orders of one kind a generation may hold for a resource type before it
/// is blocked (SPEC §2 `MaximumInsert/Update/Delete` and the `...Percent` variants).
///
/// **On by default, with the reference system's defaults**: no absolute limit, and 30 % of the
/// resource type's existing targets for each of inserts, updates and deletes. As in the
/// reference system, `0` (or `null`) switches a limit off.
///
/// Percentages apply only once the resource type has at least
/// [`minimum_existing_targets`](Self::minimum_existing_targets) existing targets (default
/// 100), so a first load into an empty system, or a small test system, is not blocked; the
/// absolute limits always apply.
///
/// ```
/// use autoprov_core::Thresholds;
/// let t = Thresholds::default();
/// assert_eq!(t.maximum_delete_percent, Some(30));
/// assert_eq!(t.minimum_existing_targets, 100);
/// // 0 switches a limit off, as in the reference system.
/// let off: Thresholds = serde_json::from_str(r#"{"MaximumDeletePercent": 0}"#).unwrap();
/// assert_eq!(off.delete_percent(), None);
/// assert_eq!(off.insert_percent(), Some(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Thresholds {
    /// At most this many Added orders. Default: none (`0` = none).
    #[serde(default)]
    pub maximum_insert: Option<u32>,
    /// At most this many Modified orders. Default: none (`0` = none).
    #[serde(default)]
    pub maximum_update: Option<u32>,
    /// At most this many Deleted orders. Default: none (`0` = none).
    #[serde(default)]
    pub maximum_delete: Option<u32>,
    /// At most this percentage of existing targets as Added orders. Default: 30 (`0` = none).
    #[serde(default = "thirty")]
    pub maximum_insert_percent: Option<u8>,
    /// At most this percentage of existing targets as Modified orders. Default: 30 (`0` =
    /// none).
    #[serde(default = "thirty")]
    pub maximum_update_percent: Option<u8>,
    /// At most this percentage of existing targets as Deleted orders. Default: 30 (`0` =
    /// none).
    #[serde(default = "thirty")]
    pub maximum_delete_percent: Option<u8>,
    /// Percent limits apply only when the resource type has at least this many existing
    /// targets. Default: 100.
    #[serde(default = "hundred")]
    pub minimum_existing_targets: u32,
}

fn thirty() -> Option<u8> {
    Some(30)
}

fn hundred() -> u32 {
    100
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            maximum_insert: None,
            maximum_update: None,
            maximum_delete: None,
            maximum_insert_percent: thirty(),
            maximum_update_percent: thirty(),
            maximum_delete_percent: thirty(),
            minimum_existing_targets: hundred(),
        }
    }
}

impl Thresholds {
    /// No limit at all (every threshold off): what a system that must never be blocked, or a
    /// test, asks for explicitly.
    pub fn off() -> Self {
        Self {
            maximum_insert: None,
            maximum_update: None,
            maximum_delete: None,
            maximum_insert_percent: None,
            maximum_update_percent: None,
            maximum_delete_percent: None,
            minimum_existing_targets: hundred(),
        }
    }

    /// The absolute insert limit in force (`0` is none).
    pub fn insert_limit(&self) -> Option<u32> {
        self.maximum_insert.filter(|v| *v > 0)
    }

    /// The absolute update limit in force (`0` is none).
    pub fn update_limit(&self) -> Option<u32> {
        self.maximum_update.filter(|v| *v > 0)
    }

    /// The absolute delete limit in force (`0` is none).
    pub fn delete_limit(&self) -> Option<u32> {
        self.maximum_delete.filter(|v| *v > 0)
    }

    /// The insert percentage in force (`0` is none).
    pub fn insert_percent(&self) -> Option<u8> {
        self.maximum_insert_percent.filter(|v| *v > 0)
    }

    /// The update percentage in force (`0` is none).
    pub fn update_percent(&self) -> Option<u8> {
        self.maximum_update_percent.filter(|v| *v > 0)
    }

    /// The delete percentage in force (`0` is none).
    pub fn delete_percent(&self) -> Option<u8> {
        self.maximum_delete_percent.filter(|v| *v > 0)
    }
}

/// The JSON names of the [`Thresholds`] settings.
const THRESHOLD_SETTINGS: [&str; 7] = [
    "MaximumInsert",
    "MaximumUpdate",
    "MaximumDelete",
    "MaximumInsertPercent",
    "MaximumUpdatePercent",
    "MaximumDeletePercent",
    "MinimumExistingTargets",
];

/// "An owner of source type S owns one resource of target type T in managed system C"
/// (SPEC §2), with every setting and its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResourceType {
    /// Its id.
    pub id: ResourceTypeId,
    /// Its readable identifier, e.g. `AD_Entry_NominativeUser`.
    pub identifier: String,
    /// The owners' entity type (e.g. `Directory_User`).
    pub source_entity_type: EntityTypeId,
    /// The targets' entity type (e.g. `AD_Entry`).
    pub target_entity_type: EntityTypeId,
    /// The connection that holds the targets.
    pub connection: ConnectionId,
    /// May create targets automatically. Default: true.
    #[serde(default = "yes")]
    pub allow_add: bool,
    /// May deprovision targets automatically. Default: true.
    #[serde(default = "yes")]
    pub allow_remove: bool,
    /// Deletes targets that have no owner. Default: false; needs `allow_remove`.
    #[serde(default)]
    pub remove_orphans: bool,
    /// Every order for this type waits in provisioning review. Default: false. The
    /// reference system's name, `BlockProvisioning`, is accepted too.
    #[serde(default, alias = "BlockProvisioning")]
    pub require_provisioning_review: bool,
    /// Another resource type that must be provisioned (Verified or Executed) first.
    #[serde(default)]
    pub depends_on: Option<ResourceTypeId>,
    /// An owner property that must be non-empty before a target is created.
    #[serde(default)]
    pub depends_on_owner_property: Option<String>,
    /// Orders for an assignment that starts in the future are generated this many hours ahead.
    /// Default: 0.
    #[serde(default)]
    pub fulfill_hours_ahead_of_time: u32,
    /// How long an Executed/Transmitted item may stay unverified before it becomes Errored;
    /// `None`: never (the reference system's default). Written as the reference system does:
    /// whole **minutes**, `0` = never times out.
    #[serde(default, with = "validity_minutes")]
    pub transmitted_state_validity_period: Option<Duration>,
    /// Generation thresholds. Default: the reference system's (30 % of existing targets for
    /// each kind of order, once the type has 100 existing targets); see [`Thresholds`].
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Drops manual assignments of this type at evaluation. Default: false.
    #[serde(default)]
    pub discard_manual_assignments: bool,
    /// Approval steps for manual requests of this type, or none allowed. Default: none (0
    /// steps). Names or the reference system's codes 0–4.
    #[serde(default)]
    pub approval_workflow_type: ApprovalWorkflowType,
    /// What the planner does with values found in this type's targets that no rule, approved
    /// manual assignment or kept value explains (`NonConforming`: `KeepAndReview` / 0,
    /// `AdoptAsFound` / 1, `Remove` / 2). Default: keep them and list them for review.
    #[serde(default)]
    pub non_conforming: NonConformingPolicy,
    /// Whether a requester may approve their own request. Default: inherited (autoprov's
    /// policy: no). Names or the reference system's codes 0–2.
    #[serde(default)]
    pub implicit_approval: ImplicitApproval,
    /// Password settings (`PasswordResetSettings`): how an initial password is generated at
    /// fulfilment time and delivered. Default: none (no password is generated by the
    /// dispatcher; a connector may still have its own fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_reset_settings: Option<crate::password::PasswordResetSettings>,
    /// The type grants privileged access (administrator accounts, admin groups). Default:
    /// false. Privileged types ask for review before adopting an account autoprov did not
    /// create unless [`Self::review_adoption`] says otherwise.
    #[serde(default)]
    pub privileged: bool,
    /// Whether an Added order that finds an existing matching account autoprov did not create
    /// waits in review (AwaitingApproval) before adopting it. Default (`None`): yes for
    /// [`Self::privileged`] types, no for others. See [`Self::reviews_adoption`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_adoption: Option<bool>,
}

fn yes() -> bool {
    true
}

mod validity_minutes {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        // Whole minutes, rounded up so that a period is never written shorter than it is.
        s.serialize_u64(d.map_or(0, |d| d.as_secs().div_ceil(60)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let minutes = u64::deserialize(d)?;
        Ok((minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60))))
    }
}

/// A resource-type setting that contradicts another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceTypeError {
    /// `RemoveOrphans` without `AllowRemove`.
    #[error("resource type {resource_type}: RemoveOrphans needs AllowRemove")]
    RemoveOrphansWithoutAllowRemove {
        /// The resource type.
        resource_type: ResourceTypeId,
    },
    /// A percentage above 100.
    #[error("resource type {resource_type}: {setting} is {value}%, above 100%")]
    PercentOutOfRange {
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The setting.
        setting: &'static str,
        /// Its value.
        value: u8,
    },
    /// `DependsOn` names the type itself.
    #[error("resource type {resource_type}: DependsOn names the type itself")]
    DependsOnItself {
        /// The resource type.
        resource_type: ResourceTypeId,
    },
}

impl ResourceType {
    /// A resource type with every setting at its default.
    pub fn new(
        id: impl Into<ResourceTypeId>,
        identifier: impl Into<String>,
        source_entity_type: impl Into<EntityTypeId>,
        target_entity_type: impl Into<EntityTypeId>,
        connection: impl Into<ConnectionId>,
    ) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
            source_entity_type: source_entity_type.into(),
            target_entity_type: target_entity_type.into(),
            connection: connection.into(),
            allow_add: true,
            allow_remove: true,
            remove_orphans: false,
            require_provisioning_review: false,
            depends_on: None,
            depends_on_owner_property: None,
            fulfill_hours_ahead_of_time: 0,
            transmitted_state_validity_period: None,
            thresholds: Thresholds::default(),
            discard_manual_assignments: false,
            approval_workflow_type: ApprovalWorkflowType::default(),
            non_conforming: NonConformingPolicy::default(),
            implicit_approval: ImplicitApproval::default(),
            password_reset_settings: None,
            privileged: false,
            review_adoption: None,
        }
    }

    /// Whether adopting an existing account autoprov did not create waits for review:
    /// `ReviewAdoption` when set, else `Privileged`.
    pub fn reviews_adoption(&self) -> bool {
        self.review_adoption.unwrap_or(self.privileged)
    }

    /// Reads a resource type from its JSON configuration and checks it ([`Self::validate`]).
    ///
    /// An unknown field is a [`ConfigError::UnknownField`] naming it and the closest known name;
    /// a threshold written at the top level (`MaximumDeletePercnt` next to `AllowRemove`) gets
    /// the closest threshold, as `Thresholds.MaximumDeletePercent`. A contradiction is a
    /// [`ConfigError::Invalid`] at the setting's path.
    ///
    /// ```
    /// use autoprov_core::ResourceType;
    /// let json = serde_json::json!({
    ///     "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
    ///     "TargetEntityType": "AD_Entry", "Connection": "ad", "MaximumDeletePercnt": 5
    /// });
    /// let err = ResourceType::from_json(json).unwrap_err();
    /// assert_eq!(err.suggestion(), Some("Thresholds.MaximumDeletePercent"));
    /// ```
    pub fn from_json(json: serde_json::Value) -> Result<Self, ConfigError> {
        let json = lift_flat_thresholds(json)?;
        let rt: Self = config::from_json(json).map_err(|e| match e {
            ConfigError::UnknownField {
                path,
                field,
                suggestion: None,
                expected,
            } if path == field => {
                let suggestion = config::closest_name(&field, THRESHOLD_SETTINGS)
                    .map(|t| format!("Thresholds.{t}"));
                ConfigError::UnknownField {
                    path,
                    field,
                    suggestion,
                    expected,
                }
            }
            other => other,
        })?;
        rt.validate().map_err(|e| {
            let path = match &e {
                ResourceTypeError::RemoveOrphansWithoutAllowRemove { .. } => {
                    "RemoveOrphans".to_owned()
                }
                ResourceTypeError::PercentOutOfRange { setting, .. } => {
                    format!("Thresholds.{setting}")
                }
                ResourceTypeError::DependsOnItself { .. } => "DependsOn".to_owned(),
            };
            ConfigError::Invalid {
                path,
                message: e.to_string(),
            }
        })?;
        Ok(rt)
    }

    /// Checks that the settings agree with each other.
    pub fn validate(&self) -> Result<(), ResourceTypeError> {
        if self.remove_orphans && !self.allow_remove {
            return Err(ResourceTypeError::RemoveOrphansWithoutAllowRemove {
                resource_type: self.id.clone(),
            });
        }
        if self.depends_on.as_ref() == Some(&self.id) {
            return Err(ResourceTypeError::DependsOnItself {
                resource_type: self.id.clone(),
            });
        }
        let t = &self.thresholds;
        for (setting, value) in [
            ("MaximumInsertPercent", t.maximum_insert_percent),
            ("MaximumUpdatePercent", t.maximum_update_percent),
            ("MaximumDeletePercent", t.maximum_delete_percent),
        ] {
            if let Some(value) = value.filter(|v| *v > 100) {
                return Err(ResourceTypeError::PercentOutOfRange {
                    resource_type: self.id.clone(),
                    setting,
                    value,
                });
            }
        }
        Ok(())
    }
}

/// The reference system writes thresholds flat on the resource type (`MaximumDeletePercent`
/// next to `AllowRemove`); autoprov groups them under `Thresholds`. Both are accepted: flat
/// settings are moved into `Thresholds`, and one setting given both ways is refused.
fn lift_flat_thresholds(mut json: serde_json::Value) -> Result<serde_json::Value, ConfigError> {
    let Some(object) = json.as_object_mut() else {
        return Ok(json);
    };
    let flat: Vec<(String, serde_json::Value)> = THRESHOLD_SETTINGS
        .iter()
        .filter_map(|name| object.remove(*name).map(|v| ((*name).to_owned(), v)))
        .collect();
    if flat.is_empty() {
        return Ok(json);
    }
    let nested = object
        .entry("Thresholds")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    let Some(nested) = nested.as_object_mut() else {
        return Err(ConfigError::Invalid {
            path: "Thresholds".to_owned(),
            message: "Thresholds must be an object".to_owned(),
        });
    };
    for (name, value) in flat {
        if nested.contains_key(&name) {
            return Err(ConfigError::Invalid {
                path: name.clone(),
                message: format!("{name} is given both flat and under Thresholds; give it once"),
            });
        }
        nested.insert(name, value);
    }
    Ok(json)
}

/// One object of an entity type, with its property values.
///
/// JSON: `{"Id": ..., "EntityType": ..., "StableId": ..., <property>: <value>, ...}`; the
/// property values follow the mapping of [`crate::value`]. The fields come first, then the
/// properties by name. A property cannot be named like a field (`Id`, `EntityType`,
/// `StableId`): the flat object has room for one of them, and the field wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// autoprov's id of the resource (for targets: the connector's key, e.g. the DN).
    pub id: ResourceId,
    /// Its entity type, when known.
    pub entity_type: Option<EntityTypeId>,
    /// The managed system's stable id (e.g. `objectGUID`), when known.
    pub stable_id: Option<StableId>,
    /// Its property values by name.
    pub values: BTreeMap<String, PropertyValue>,
}

impl Resource {
    /// A resource with no value yet.
    pub fn new(id: impl Into<ResourceId>) -> Self {
        Self {
            id: id.into(),
            entity_type: None,
            stable_id: None,
            values: BTreeMap::new(),
        }
    }

    /// Sets the entity type.
    pub fn with_entity_type(mut self, entity_type: impl Into<EntityTypeId>) -> Self {
        self.entity_type = Some(entity_type.into());
        self
    }

    /// Sets a value.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// A value by name.
    pub fn get(&self, name: &str) -> Option<&PropertyValue> {
        self.values.get(name)
    }
}

const RESOURCE_FIELDS: [&str; 3] = ["Id", "EntityType", "StableId"];

// Written entry by entry, not through `serde_json::Map`: that map's order depends on whether
// any crate in the build enables serde_json's `preserve_order`, and files must come out the
// same byte for byte whatever else is linked in.
impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("Id", self.id.as_str())?;
        if let Some(e) = &self.entity_type {
            map.serialize_entry("EntityType", e.as_str())?;
        }
        if let Some(s) = &self.stable_id {
            map.serialize_entry("StableId", s.as_str())?;
        }
        serialize_properties(&mut map, &self.values, &RESOURCE_FIELDS)?;
        map.end()
    }
}

fn serialize_properties<M: SerializeMap>(
    map: &mut M,
    properties: &BTreeMap<String, PropertyValue>,
    fields: &[&str],
) -> Result<(), M::Error> {
    for (k, v) in properties {
        if !fields.contains(&k.as_str()) {
            map.serialize_entry(k, v)?;
        }
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let id = take_string(&mut map, "Id")?.ok_or_else(|| D::Error::missing_field("Id"))?;
        let entity_type = take_string(&mut map, "EntityType")?.map(EntityTypeId::from);
        let stable_id = take_string(&mut map, "StableId")?.map(StableId::from);
        let values = values_from_map(map)?;
        Ok(Self {
            id: ResourceId::from(id),
            entity_type,
            stable_id,
            values,
        })
    }
}

fn take_string<E: serde::de::Error>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, E> {
    match map.remove(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(E::custom(format!(
            "`{key}`: expected a string, found {}",
            json_kind(&other)
        ))),
    }
}

fn values_from_map<E: serde::de::Error>(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, PropertyValue>, E> {
    let mut values = BTreeMap::new();
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        let value = PropertyValue::from_json(v).map_err(|e| E::custom(format!("`{k}`: {e}")))?;
        values.insert(k, value);
    }
    Ok(values)
}

/// The source resource (usually an identity) that owns target resources.
///
/// JSON: `{"Id": ..., "Identifier": ..., "EntityType": ..., <property>: <value>, ...}`. The fields
/// come first, then the properties by name. A property cannot be named like a field (`Id`,
/// `Identifier`, `EntityType`): the flat object has room for one of them, and the field wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its id.
    pub id: OwnerId,
    /// Its readable identifier (e.g. a login or employee number).
    pub identifier: String,
    /// Its entity type, when known.
    pub entity_type: Option<EntityTypeId>,
    /// Its properties (dimensions such as department, dates, names).
    pub properties: BTreeMap<String, PropertyValue>,
}

impl Owner {
    /// An owner with no property yet.
    pub fn new(id: impl Into<OwnerId>, identifier: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            identifier: identifier.into(),
            entity_type: None,
            properties: BTreeMap::new(),
        }
    }

    /// Sets the entity type.
    pub fn with_entity_type(mut self, entity_type: impl Into<EntityTypeId>) -> Self {
        self.entity_type = Some(entity_type.into());
        self
    }

    /// Sets a property.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// A property by name.
    pub fn get(&self, name: &str) -> Option<&PropertyValue> {
        self.properties.get(name)
    }
}

const OWNER_FIELDS: [&str; 3] = ["Id", "Identifier", "EntityType"];

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("Id", self.id.as_str())?;
        map.serialize_entry("Identifier", &self.identifier)?;
        if let Some(e) = &self.entity_type {
            map.serialize_entry("EntityType", e.as_str())?;
        }
        serialize_properties(&mut map, &self.properties, &OWNER_FIELDS)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let id = take_string(&mut map, "Id")?.ok_or_else(|| D::Error::missing_field("Id"))?;
        let identifier = take_string(&mut map, "Identifier")?.unwrap_or_default();
        let entity_type = take_string(&mut map, "EntityType")?.map(EntityTypeId::from);
        let properties = values_from_map(map)?;
        Ok(Self {
            id: OwnerId::from(id),
            identifier,
            entity_type,
            properties,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Reference;

    #[test]
    fn resource_type_defaults_follow_the_spec() {
        let rt = ResourceType::new(
            "rt-1",
            "AD_Entry_NominativeUser",
            "Directory_User",
            "AD_Entry",
            "ad",
        );
        assert!(rt.allow_add && rt.allow_remove);
        assert!(!rt.remove_orphans && !rt.require_provisioning_review);
        assert_eq!(rt.approval_workflow_type, ApprovalWorkflowType::None);
        rt.validate().unwrap();
        let json = r#"{"Id":"rt-1","Identifier":"x","SourceEntityType":"s","TargetEntityType":"t","Connection":"c"}"#;
        let parsed: ResourceType = serde_json::from_str(json).unwrap();
        assert!(parsed.allow_add);
        assert_eq!(parsed.transmitted_state_validity_period, None);
        // The reference system's names and units: BlockProvisioning, minutes with 0 = never.
        let json = r#"{"Id":"rt-1","Identifier":"x","SourceEntityType":"s","TargetEntityType":"t","Connection":"c","BlockProvisioning":true,"TransmittedStateValidityPeriod":90}"#;
        let parsed = ResourceType::from_json(serde_json::from_str(json).unwrap()).unwrap();
        assert!(parsed.require_provisioning_review);
        assert_eq!(
            parsed.transmitted_state_validity_period,
            Some(Duration::from_secs(90 * 60))
        );
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["TransmittedStateValidityPeriod"], 90);
        let json = r#"{"Id":"rt-1","Identifier":"x","SourceEntityType":"s","TargetEntityType":"t","Connection":"c","TransmittedStateValidityPeriod":0}"#;
        let parsed: ResourceType = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.transmitted_state_validity_period, None);
    }

    #[test]
    fn contradictory_settings_are_rejected() {
        let mut rt = ResourceType::new("rt-1", "x", "s", "t", "c");
        rt.allow_remove = false;
        rt.remove_orphans = true;
        assert!(matches!(
            rt.validate(),
            Err(ResourceTypeError::RemoveOrphansWithoutAllowRemove { .. })
        ));
        let mut rt = ResourceType::new("rt-1", "x", "s", "t", "c");
        rt.thresholds.maximum_delete_percent = Some(150);
        let err = rt.validate().unwrap_err();
        assert!(err.to_string().contains("MaximumDeletePercent"), "{err}");
    }

    #[test]
    fn a_resource_type_written_in_the_reference_system_form_loads() {
        // Names, units and numeric codes as the reference system's configuration has them.
        let json = serde_json::json!({
            "Id": "23150", "Identifier": "AD_Entry_NominativeUser",
            "SourceEntityType": "Directory_User", "TargetEntityType": "AD_Entry",
            "Connection": "ADExport",
            "AllowAdd": true, "AllowRemove": false, "RemoveOrphans": false,
            "BlockProvisioning": true,
            "ApprovalWorkflowType": 2, "ImplicitApproval": 2,
            "TransmittedStateValidityPeriod": 1440,
            "MaximumInsert": 0, "MaximumDelete": 50, "MaximumDeletePercent": 10,
            "DiscardManualAssignments": false
        });
        let rt = ResourceType::from_json(json).unwrap();
        assert!(rt.require_provisioning_review);
        assert_eq!(rt.approval_workflow_type, ApprovalWorkflowType::Two);
        assert_eq!(rt.implicit_approval, ImplicitApproval::Implicit);
        assert_eq!(
            rt.transmitted_state_validity_period,
            Some(Duration::from_secs(24 * 3600))
        );
        assert_eq!(rt.thresholds.insert_limit(), None);
        assert_eq!(rt.thresholds.delete_limit(), Some(50));
        assert_eq!(rt.thresholds.delete_percent(), Some(10));
        // A code that is not one names the setting and what it may be.
        let json = serde_json::json!({
            "Id": "x", "Identifier": "x", "SourceEntityType": "s", "TargetEntityType": "t",
            "Connection": "c", "ApprovalWorkflowType": 7
        });
        let err = ResourceType::from_json(json).unwrap_err();
        assert!(err.to_string().contains("ApprovalWorkflowType"), "{err}");
        assert!(
            err.to_string().contains("ManualAssignmentNotAllowed"),
            "{err}"
        );
    }

    #[test]
    fn thresholds_default_to_the_reference_system_and_are_accepted_flat() {
        let base = serde_json::json!({
            "Id": "rt-1", "Identifier": "x", "SourceEntityType": "s",
            "TargetEntityType": "t", "Connection": "c"
        });
        // Not given: the reference system's defaults, 30 % each, absolute limits off.
        let rt = ResourceType::from_json(base.clone()).unwrap();
        assert_eq!(rt.thresholds, Thresholds::default());
        assert_eq!(rt.thresholds.insert_percent(), Some(30));
        assert_eq!(rt.thresholds.delete_limit(), None);
        // A Thresholds object that names one setting keeps the others' defaults.
        let mut json = base.clone();
        json["Thresholds"] = serde_json::json!({"MaximumDelete": 10});
        let rt = ResourceType::from_json(json).unwrap();
        assert_eq!(rt.thresholds.delete_limit(), Some(10));
        assert_eq!(rt.thresholds.update_percent(), Some(30));
        // Flat, as the reference system writes them; 0 is off there, and here.
        let mut json = base.clone();
        json["MaximumInsert"] = serde_json::json!(0);
        json["MaximumDeletePercent"] = serde_json::json!(5);
        json["MaximumUpdatePercent"] = serde_json::json!(0);
        json["AllowRemove"] = serde_json::json!(true);
        let rt = ResourceType::from_json(json).unwrap();
        assert_eq!(rt.thresholds.insert_limit(), None);
        assert_eq!(rt.thresholds.delete_percent(), Some(5));
        assert_eq!(rt.thresholds.update_percent(), None);
        assert_eq!(rt.thresholds.insert_percent(), Some(30));
        // Flat and nested at once: refused, naming the setting.
        let mut json = base.clone();
        json["MaximumDelete"] = serde_json::json!(1);
        json["Thresholds"] = serde_json::json!({"MaximumDelete": 2});
        let err = ResourceType::from_json(json).unwrap_err();
        assert_eq!(err.path(), "MaximumDelete");
        // A flat percentage above 100 names its place.
        let mut json = base.clone();
        json["MaximumDeletePercent"] = serde_json::json!(150);
        let err = ResourceType::from_json(json).unwrap_err();
        assert_eq!(err.path(), "Thresholds.MaximumDeletePercent");
    }

    #[test]
    fn unknown_settings_are_refused_with_the_closest_name() {
        use crate::config::{ConfigError, from_json};
        let base = serde_json::json!({
            "Id": "rt-1", "Identifier": "x", "SourceEntityType": "s",
            "TargetEntityType": "t", "Connection": "c"
        });
        // A typo at the top level of a resource type.
        let mut json = base.clone();
        json["MaximumDeletePercnt"] = serde_json::json!(5);
        let err = from_json::<ResourceType>(json).unwrap_err();
        match &err {
            ConfigError::UnknownField {
                path,
                field,
                suggestion,
                expected,
            } => {
                assert_eq!(path, "MaximumDeletePercnt");
                assert_eq!(field, "MaximumDeletePercnt");
                // Not a resource-type field: the closest one there is suggested, if any.
                assert!(expected.iter().any(|e| e == "Thresholds"), "{expected:?}");
                assert!(suggestion.as_deref() != Some("MaximumDeletePercnt"));
            }
            other => panic!("expected an unknown field, got {other}"),
        }
        let mut json = base.clone();
        json["MaximumDeletePercnt"] = serde_json::json!(5);
        let err = ResourceType::from_json(json).unwrap_err();
        assert_eq!(err.path(), "MaximumDeletePercnt");
        assert_eq!(err.suggestion(), Some("Thresholds.MaximumDeletePercent"));
        assert!(err.to_string().contains("`MaximumDeletePercnt`"), "{err}");
        let mut json = base.clone();
        json["Thresholds"] = serde_json::json!({"MaximumDeletePercent": 150});
        let err = ResourceType::from_json(json).unwrap_err();
        assert_eq!(err.path(), "Thresholds.MaximumDeletePercent");
        ResourceType::from_json(base.clone()).unwrap();
        // A typo in a threshold: it used to switch the threshold off silently.
        let mut json = base.clone();
        json["Thresholds"] = serde_json::json!({"MaximumDeletePercnt": 5});
        let err = from_json::<ResourceType>(json).unwrap_err();
        assert_eq!(err.path(), "Thresholds.MaximumDeletePercnt");
        assert_eq!(err.suggestion(), Some("MaximumDeletePercent"));
        assert!(err.to_string().contains("MaximumDeletePercnt"), "{err}");
        assert!(err.to_string().contains("MaximumDeletePercent`?"), "{err}");
        let err = from_json::<Thresholds>(serde_json::json!({"MaximumDelte": 1})).unwrap_err();
        assert_eq!(err.suggestion(), Some("MaximumDelete"));
        // A typo of a resource-type setting.
        let mut json = base.clone();
        json["AllowRemvoe"] = serde_json::json!(false);
        let err = from_json::<ResourceType>(json).unwrap_err();
        assert_eq!(err.suggestion(), Some("AllowRemove"));
        // Entity types and property definitions too; property names stay open.
        let err = from_json::<EntityType>(serde_json::json!({
            "Id": "e", "Identifier": "E",
            "Properties": {"anyName": {"Kind": "String", "Requried": true}}
        }))
        .unwrap_err();
        assert_eq!(err.path(), "Properties.anyName.Requried");
        assert_eq!(err.suggestion(), Some("Required"));
        let err = from_json::<PropertyKind>(serde_json::json!({"MonoReference": {"Traget": "x"}}))
            .unwrap_err();
        assert_eq!(err.suggestion(), Some("target"));
        let err = from_json::<PropertyKind>(serde_json::json!("Strnig")).unwrap_err();
        assert_eq!(err.suggestion(), Some("String"));
        // The written form reads back.
        let rt = ResourceType::new("rt-1", "x", "s", "t", "c");
        let back: ResourceType = from_json(serde_json::to_value(&rt).unwrap()).unwrap();
        assert_eq!(back, rt);
    }

    #[test]
    fn resource_json_is_flat() {
        let r = Resource::new("CN=jdoe,OU=Sales,DC=example,DC=test")
            .with("sAMAccountName", "jdoe")
            .with("parentdn", Reference::dn("OU=Sales,DC=example,DC=test"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sAMAccountName"], "jdoe");
        assert_eq!(json["parentdn"]["dn"], "OU=Sales,DC=example,DC=test");
        let back: Resource = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
