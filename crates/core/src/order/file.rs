//! The orders file (SPEC §6): reading `{"ProvisioningOrdersList": [...]}` as autoprov and the
//! reference system write it, and writing it back.

use super::{ChangeType, Changes, ProvisioningOrder, ResourceTypeRef};
use crate::ids::{AssignmentId, ConnectionId, EntityTypeId, OrderId, ResourceId, StableId};
use crate::model::{Owner, Resource};
use crate::value::{PropertyValue, ScalarValue, json_kind};
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A malformed orders file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderFileError {
    /// The JSON does not have the expected shape.
    #[error("malformed orders file at `{path}`: {message}")]
    Malformed {
        /// The JSON path (e.g. `ProvisioningOrdersList[3].Changes`).
        path: String,
        /// What was expected.
        message: String,
    },
    /// Two orders share an id.
    #[error("duplicate order id {order_id} at ProvisioningOrdersList[{first}] and [{second}]")]
    DuplicateOrderId {
        /// The id.
        order_id: OrderId,
        /// Index of the first occurrence.
        first: usize,
        /// Index of the second occurrence.
        second: usize,
    },
    /// An order is inconsistent.
    #[error("invalid order {order_id} at ProvisioningOrdersList[{index}]: {reason}")]
    InvalidOrder {
        /// Its index.
        index: usize,
        /// Its id.
        order_id: OrderId,
        /// What is wrong.
        reason: String,
    },
    /// A Modified or Deleted order's `Resource` holds nothing to key the target by.
    #[error(
        "order {order_id} at ProvisioningOrdersList[{index}] (AssignedResourceTypeId {}): \
         `Resource` has no key; tried {tried}",
        assigned_resource_type_id.as_ref().map_or("none", AssignmentId::as_str)
    )]
    ResourceWithoutKey {
        /// Its index.
        index: usize,
        /// Its id (given, or derived from `AssignedResourceTypeId` and `ChangeType`).
        order_id: OrderId,
        /// Its `AssignedResourceTypeId`, if any.
        assigned_resource_type_id: Option<AssignmentId>,
        /// The keys looked for, e.g. `` `Id`, `dn`, `objectGUID` ``.
        tried: String,
    },
}

/// The key property of each resource type, for orders files whose `Resource` has neither
/// `Id`, `dn` nor `objectGUID` (SPEC §6: "the key comes from `dn`, `objectGUID` or the type's
/// key property").
///
/// A resource type is looked up by its id, then by its identifier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceKeys {
    by_type: BTreeMap<String, String>,
}

impl ResourceKeys {
    /// No key property known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the key property of a resource type (its id or identifier).
    pub fn with(mut self, resource_type: impl Into<String>, property: impl Into<String>) -> Self {
        self.by_type.insert(resource_type.into(), property.into());
        self
    }

    /// The key property of a resource type, if known.
    pub fn property_for(&self, resource_type: &ResourceTypeRef) -> Option<&str> {
        self.by_type
            .get(resource_type.id.as_str())
            .or_else(|| self.by_type.get(&resource_type.identifier))
            .map(String::as_str)
    }
}

/// The key of a directory entry in the reference system's `Resource`.
const DN_KEY: &str = "dn";
/// The stable id of a directory entry in the reference system's `Resource`.
const GUID_KEY: &str = "objectGUID";

enum ResourceFault {
    Malformed { key: String, message: String },
    NoKey { tried: String },
}

/// A `Resource` as the reference system writes it: the target's current values, keyed by
/// `Id` when there is one (autoprov's own files), else by `dn`, `objectGUID` or the type's
/// key property. `objectGUID` is the stable id when no `StableId` is given. The keys stay
/// among the values: connectors read them there.
fn resource_from_file(
    mut map: serde_json::Map<String, serde_json::Value>,
    resource_type: &ResourceTypeRef,
    keys: &ResourceKeys,
) -> Result<Resource, ResourceFault> {
    let mut field = |key: &str| match map.remove(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ResourceFault::Malformed {
            key: key.into(),
            message: format!("expected a string, found {}", json_kind(&other)),
        }),
    };
    let id = field("Id")?;
    let entity_type = field("EntityType")?;
    let stable_id = field("StableId")?;
    let mut values = BTreeMap::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match PropertyValue::from_json(reference_values_as_text(value)) {
            Ok(v) => {
                values.insert(key, v);
            }
            Err(message) => return Err(ResourceFault::Malformed { key, message }),
        }
    }
    for key in [DN_KEY, GUID_KEY] {
        match values.get(key) {
            None | Some(PropertyValue::Scalar(ScalarValue::String(_))) => {}
            Some(other) => {
                return Err(ResourceFault::Malformed {
                    key: key.into(),
                    message: format!("expected a string, found {}", other.kind_name()),
                });
            }
        }
    }
    let text = |key: &str| match values.get(key) {
        Some(PropertyValue::Scalar(s @ (ScalarValue::String(_) | ScalarValue::Integer(_)))) => {
            Some(s.to_string()).filter(|s| !s.is_empty())
        }
        _ => None,
    };
    let guid = text(GUID_KEY);
    let key_property = keys.property_for(resource_type);
    let id = id
        .or_else(|| text(DN_KEY))
        .or_else(|| guid.clone())
        .or_else(|| key_property.and_then(text));
    let Some(id) = id else {
        let mut tried = format!("`Id`, `{DN_KEY}`, `{GUID_KEY}`");
        match key_property {
            Some(p) => tried.push_str(&format!(" and the key property `{p}`")),
            None => tried.push_str(&format!(
                " (no key property known for resource type {})",
                resource_type.identifier
            )),
        }
        return Err(ResourceFault::NoKey { tried });
    };
    Ok(Resource {
        id: ResourceId::from(id),
        entity_type: entity_type.map(EntityTypeId::from),
        stable_id: stable_id.or(guid).map(StableId::from),
        values,
    })
}

/// Reference objects in the reference system's files hold the referenced resource's
/// properties, numbers and booleans included; a [`Reference`](crate::Reference) keys by text, so those are read
/// as their text (`42`, `true`; the reference system's numeric `Id`s too) and null ones are
/// dropped. A directory entry's identifying keys (`dn`, `objectGUID`) are left alone: one that
/// is not text names nothing, and stays an error.
/// Tagged values (`$base64`, `$secret`) and everything that is not a reference object are left
/// as they are.
pub(super) fn reference_values_as_text(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    const IDENTIFYING: [&str; 2] = [DN_KEY, GUID_KEY];
    fn object(map: serde_json::Map<String, J>) -> J {
        if map.contains_key("$base64") || map.contains_key("$secret") {
            return J::Object(map);
        }
        J::Object(
            map.into_iter()
                .filter(|(k, v)| IDENTIFYING.contains(&k.as_str()) || !v.is_null())
                .map(|(k, v)| match v {
                    _ if IDENTIFYING.contains(&k.as_str()) => (k, v),
                    J::Number(n) => (k, J::String(n.to_string())),
                    J::Bool(b) => (k, J::String(b.to_string())),
                    other => (k, other),
                })
                .collect(),
        )
    }
    match value {
        J::Object(map) => object(map),
        J::Array(items) => J::Array(
            items
                .into_iter()
                .map(|item| match item {
                    J::Object(map) => object(map),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

/// Reads `Arguments`: an object of texts; numbers and booleans are read as their text, null
/// entries are dropped, `null` or no `Arguments` is none.
pub(super) fn arguments_from_json<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let Some(map) =
        Option::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?
    else {
        return Ok(BTreeMap::new());
    };
    let mut arguments = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(D::Error::custom(format!(
                    "`{key}`: expected a string, number or boolean, found {}",
                    json_kind(&other)
                )));
            }
        };
        arguments.insert(key, text);
    }
    Ok(arguments)
}

/// The root of an orders file: `{"ProvisioningOrdersList": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisioningOrdersList {
    /// The orders.
    pub provisioning_orders_list: Vec<ProvisioningOrder>,
}

const ROOT_KEY: &str = "ProvisioningOrdersList";

struct RawOrdersList {
    provisioning_orders_list: Vec<RawOrder>,
}

// Hand-written rather than derived: a derived struct also accepts a JSON array (serde's
// positional form), so `[[...]]` would pass for an orders file. The root must be the object
// of SPEC §6.
impl<'de> Deserialize<'de> for RawOrdersList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Root;
        impl<'de> serde::de::Visitor<'de> for Root {
            type Value = RawOrdersList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an object `{{\"{ROOT_KEY}\": [...]}}`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawOrdersList, A::Error> {
                let mut list = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != ROOT_KEY {
                        return Err(A::Error::unknown_field(&key, &[ROOT_KEY]));
                    }
                    if list.is_some() {
                        return Err(A::Error::duplicate_field(ROOT_KEY));
                    }
                    list = Some(map.next_value()?);
                }
                Ok(RawOrdersList {
                    provisioning_orders_list: list
                        .ok_or_else(|| A::Error::missing_field(ROOT_KEY))?,
                })
            }
        }
        deserializer.deserialize_map(Root)
    }
}

#[derive(Deserialize)]
#[serde(
    rename_all = "PascalCase",
    expecting = "an order object",
    deny_unknown_fields
)]
struct RawOrder {
    #[serde(default)]
    order_id: Option<OrderId>,
    #[serde(default)]
    assigned_resource_type_id: Option<AssignmentId>,
    change_type: ChangeType,
    #[serde(default)]
    workflow_instance_id: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
    resource_type: ResourceTypeRef,
    #[serde(default)]
    connection: Option<ConnectionId>,
    #[serde(default)]
    changes: Changes,
    #[serde(default)]
    resource: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    depends_on: Vec<OrderId>,
    #[serde(default)]
    not_before: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "arguments_from_json")]
    arguments: BTreeMap<String, String>,
}

impl ProvisioningOrdersList {
    /// Parses an orders file, checking its shape, that order ids are unique and that each order
    /// is consistent. Never panics on bad input.
    ///
    /// ```
    /// use autoprov_core::{OrderFileError, ProvisioningOrdersList};
    /// let err = ProvisioningOrdersList::from_json(
    ///     r#"{"ProvisioningOrdersList":[{"ChangeType":"Renamed"}]}"#).unwrap_err();
    /// assert!(matches!(err, OrderFileError::Malformed { .. }));
    /// assert!(err.to_string().contains("ProvisioningOrdersList[0]"), "{err}");
    /// ```
    pub fn from_json(text: &str) -> Result<Self, OrderFileError> {
        Self::from_json_with_keys(text, &ResourceKeys::default())
    }

    /// Parses an orders file like [`from_json`](Self::from_json), taking the key of a
    /// `Resource` that has neither `Id`, `dn` nor `objectGUID` from its resource type's key
    /// property in `keys`.
    ///
    /// ```
    /// use autoprov_core::{ProvisioningOrdersList, ResourceKeys};
    /// let file = r#"{"ProvisioningOrdersList":[{"AssignedResourceTypeId":"art-1",
    ///   "ChangeType":"Deleted", "Owner":{"Id":"u-1","Identifier":"jdoe"},
    ///   "ResourceType":{"Id":"rt-1","Identifier":"App_Account",
    ///     "SourceEntityType":{"Id":"Directory_User"},"TargetEntityType":{"Id":"App_Account"}},
    ///   "Resource":{"login":"jdoe","enabled":true}}]}"#;
    /// assert!(ProvisioningOrdersList::from_json(file).is_err());
    /// let keys = ResourceKeys::new().with("App_Account", "login");
    /// let list = ProvisioningOrdersList::from_json_with_keys(file, &keys).unwrap();
    /// let target = list.provisioning_orders_list[0].resource.as_ref().unwrap();
    /// assert_eq!(target.id.as_str(), "jdoe");
    /// ```
    pub fn from_json_with_keys(text: &str, keys: &ResourceKeys) -> Result<Self, OrderFileError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawOrdersList =
            serde_path_to_error::deserialize(&mut *de).map_err(|e| OrderFileError::Malformed {
                path: e.path().to_string(),
                message: with_suggestion(e.inner().to_string()),
            })?;
        // Only whitespace may follow the root object: a second document or stray text means
        // the file is not what it claims to be.
        de.end().map_err(|e| OrderFileError::Malformed {
            path: ".".into(),
            message: e.to_string(),
        })?;
        let mut seen: HashMap<OrderId, usize> = HashMap::new();
        let mut orders = Vec::with_capacity(raw.provisioning_orders_list.len());
        for (index, raw) in raw.provisioning_orders_list.into_iter().enumerate() {
            let order_id = match (raw.order_id, &raw.assigned_resource_type_id) {
                (Some(id), _) => id,
                (None, Some(art)) => OrderId::new(format!("{art}:{}", raw.change_type)),
                (None, None) => {
                    return Err(OrderFileError::Malformed {
                        path: format!("ProvisioningOrdersList[{index}]"),
                        message: "expected `OrderId` or `AssignedResourceTypeId`".into(),
                    });
                }
            };
            if let Some(first) = seen.insert(order_id.clone(), index) {
                return Err(OrderFileError::DuplicateOrderId {
                    order_id,
                    first,
                    second: index,
                });
            }
            let resource = match raw.resource {
                None => None,
                Some(map) => Some(resource_from_file(map, &raw.resource_type, keys).map_err(
                    |e| match e {
                        ResourceFault::Malformed { key, message } => OrderFileError::Malformed {
                            path: format!("ProvisioningOrdersList[{index}].Resource.{key}"),
                            message,
                        },
                        ResourceFault::NoKey { tried } => OrderFileError::ResourceWithoutKey {
                            index,
                            order_id: order_id.clone(),
                            assigned_resource_type_id: raw.assigned_resource_type_id.clone(),
                            tried,
                        },
                    },
                )?),
            };
            let order = ProvisioningOrder {
                order_id,
                assigned_resource_type_id: raw.assigned_resource_type_id,
                change_type: raw.change_type,
                workflow_instance_id: raw.workflow_instance_id,
                owner: raw.owner,
                resource_type: raw.resource_type,
                connection: raw.connection,
                changes: raw.changes,
                resource,
                depends_on: raw.depends_on,
                not_before: raw.not_before,
                arguments: raw.arguments,
            };
            order
                .validate()
                .map_err(|reason| OrderFileError::InvalidOrder {
                    index,
                    order_id: order.order_id.clone(),
                    reason,
                })?;
            orders.push(order);
        }
        Ok(Self {
            provisioning_orders_list: orders,
        })
    }

    /// Writes the file as pretty JSON. Secrets are masked.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Serde's "unknown field `Chnges`, expected one of …" with the closest known name added, so a
/// typo in the envelope names what was meant.
fn with_suggestion(message: String) -> String {
    let Some(unknown) = crate::config::UnknownName::parse(&message) else {
        return message;
    };
    match crate::config::closest_name(&unknown.name, unknown.expected.iter().map(String::as_str)) {
        Some(known) => format!("{message}; did you mean `{known}`?"),
        None => message,
    }
}
