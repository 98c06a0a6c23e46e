//! The shape of a connection's resources: the naming conventions every connector follows, and
//! the declared schema ([`ConnectionSchema`]) of a connection's entity types.
//!
//! Orders are generic ([`autoprov_core::ProvisioningOrder`]); the names below fix how the
//! common directory concepts appear in them, so the planner, the conformance kit and every
//! package agree. A package may map them to its own attributes (the AD package maps [`ENABLED`]
//! to `userAccountControl`), and may accept further properties of its own.
//!
//! A connection declares which properties each of its entity types takes — their type, and
//! whether they are multi-valued, required, a key, secret or writable — as one
//! [`ConnectionSchema`] ([`crate::Connector::schema`]). Both packages of the workspace derive
//! theirs from their own configuration: the AD package from its entity mappings, the in-memory
//! package from its [`InMemorySchema`](crate::memory::InMemorySchema).
//!
//! The schema drives three things: [`ConnectionSchema::validate`] checks an order before any
//! write (a [`SchemaViolation`] that becomes an `InvalidOrder`), [`ConnectionSchema::to_markdown`]
//! renders it as a table for a package's docs, and the conformance kit reads its profile from
//! it (`KitProfile::from_schema`, feature `testkit`).
//!
//! ```
//! use autoprov_connector::schema::{ConnectionSchema, EntitySchema, PropertySchema, ValueType};
//! let schema = ConnectionSchema::new().with_entity(
//!     EntitySchema::new("user")
//!         .with_property("sAMAccountName", PropertySchema::new(ValueType::String).required().key())
//!         .with_property("password", PropertySchema::new(ValueType::String).secret())
//!         .with_property("memberOf", PropertySchema::reference(Some("group".into())).multi_valued())
//!         .with_property("uSNChanged", PropertySchema::new(ValueType::Integer).read_only()),
//! );
//! let user = schema.entity("user").unwrap();
//! assert!(user.property("sAMAccountName").unwrap().required);
//! assert_eq!(user.keys().collect::<Vec<_>>(), ["sAMAccountName"]);
//! assert!(schema.property("user", "memberOf").unwrap().multi_valued);
//! assert!(!schema.property("user", "uSNChanged").unwrap().writable);
//! assert!(schema.property("user", "nope").is_none());
//! ```

mod markdown;
mod validate;

pub use validate::{SchemaViolation, Violation};

use autoprov_core::EntityTypeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Mono-valued navigation to the parent container (a reference with key [`DN_KEY`]).
pub const PARENT: &str = "parentdn";
/// Multi-valued navigation: the groups an account is a member of. Written as
/// `memberOf_add` / `memberOf_remove` deltas; the connector applies them on the groups.
pub const MEMBER_OF: &str = "memberOf";
/// Multi-valued navigation of a group: its members (the back-link of [`MEMBER_OF`]). A
/// connection declares whether orders may write it as `member_add` / `member_remove` deltas
/// on the group (the in-memory system does) or only export it (AD writes memberships through
/// [`MEMBER_OF`]).
pub const MEMBERS: &str = "member";
/// Boolean scalar: the account is enabled.
pub const ENABLED: &str = "enabled";
/// Secret scalar: the password, write-only, never exported.
pub const PASSWORD: &str = "password";
/// Boolean scalar: the user must change the password at first logon.
pub const MUST_CHANGE_PASSWORD: &str = "mustChangePassword";
/// Order argument (value `true`) the dispatcher sets when the resource type's password
/// settings (`PasswordResetSettings`) say no password is generated (`Mode` 0, or
/// `AutoGenerate` off) and the order carries none: a connector that would otherwise generate
/// one itself (the AD package's per-mapping fallback) must not.
pub const NO_GENERATED_PASSWORD: &str = "autoprov.noGeneratedPassword";
/// The key of a reference that holds a target's name (its DN for directories; the resource id
/// of its export).
pub const DN_KEY: &str = "dn";
/// The key of a reference that holds a target's stable id.
pub const STABLE_ID_KEY: &str = "StableId";

/// The type of a property's values.
///
/// `#[non_exhaustive]`: match it with a fallback (text is a safe one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ValueType {
    /// Text (the default).
    #[default]
    String,
    /// A signed integer.
    Integer,
    /// A boolean.
    Bool,
    /// A date-time, UTC.
    DateTime,
    /// Raw bytes.
    Binary,
    /// A navigation: another resource's name (a DN for directories).
    Reference,
}

/// One declared property of an entity type.
///
/// `#[non_exhaustive]`: build it with [`PropertySchema::new`] or [`PropertySchema::reference`]
/// and the flag setters; it may gain fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PropertySchema {
    /// The type of its values.
    pub kind: ValueType,
    /// For a [`ValueType::Reference`]: the entity type it points to, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<EntityTypeId>,
    /// It holds several values, changed by `_add` / `_remove` deltas (`memberOf`).
    #[serde(default)]
    pub multi_valued: bool,
    /// An Added order must give it.
    #[serde(default)]
    pub required: bool,
    /// Its value identifies a resource among those of its type (`sAMAccountName`): unique,
    /// compared without case.
    #[serde(default)]
    pub key: bool,
    /// Write-only: written from a secret, never exported nor logged (`password`).
    #[serde(default)]
    pub secret: bool,
    /// Orders may write it (`false`: exported only, e.g. `uSNChanged`, a group's `member`).
    #[serde(default = "yes")]
    pub writable: bool,
}

fn yes() -> bool {
    true
}

impl PropertySchema {
    /// An optional, mono-valued, writable property of values of `kind`.
    pub fn new(kind: ValueType) -> Self {
        Self {
            kind,
            target: None,
            multi_valued: false,
            required: false,
            key: false,
            secret: false,
            writable: true,
        }
    }

    /// A navigation to resources of `target` (when known).
    pub fn reference(target: Option<EntityTypeId>) -> Self {
        Self {
            target,
            ..Self::new(ValueType::Reference)
        }
    }

    /// Marks it multi-valued.
    pub fn multi_valued(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    /// Marks it required on creation.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks it a key (unique among resources of its type).
    pub fn key(mut self) -> Self {
        self.key = true;
        self
    }

    /// Marks it secret (write-only, never exported).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Marks it read-only (exported, never written by orders).
    pub fn read_only(mut self) -> Self {
        self.writable = false;
        self
    }
}

/// The declared properties of one entity type.
///
/// `#[non_exhaustive]`: build it with [`EntitySchema::new`] and
/// [`EntitySchema::with_property`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct EntitySchema {
    /// The entity type orders name in `ResourceType.TargetEntityType.Id`.
    pub entity_type: EntityTypeId,
    /// Its properties by name.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertySchema>,
}

impl EntitySchema {
    /// An entity type with no property yet.
    pub fn new(entity_type: impl Into<EntityTypeId>) -> Self {
        Self {
            entity_type: entity_type.into(),
            properties: BTreeMap::new(),
        }
    }

    /// Declares a property (replacing one of the same name).
    pub fn with_property(mut self, name: impl Into<String>, property: PropertySchema) -> Self {
        self.properties.insert(name.into(), property);
        self
    }

    /// A property by name.
    pub fn property(&self, name: &str) -> Option<&PropertySchema> {
        self.properties.get(name)
    }

    /// The names of the required properties.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.names_where(|p| p.required)
    }

    /// The names of the key properties.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.names_where(|p| p.key)
    }

    /// The names of the secret properties.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.names_where(|p| p.secret)
    }

    fn names_where(&self, keep: impl Fn(&PropertySchema) -> bool) -> impl Iterator<Item = &str> {
        self.properties
            .iter()
            .filter(move |(_, p)| keep(p))
            .map(|(n, _)| n.as_str())
    }
}

/// The declared schema of a connection: its entity types by id.
///
/// `#[non_exhaustive]`: build it with [`ConnectionSchema::new`] and
/// [`ConnectionSchema::with_entity`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectionSchema {
    /// The entity types, by id.
    #[serde(default)]
    pub entities: BTreeMap<EntityTypeId, EntitySchema>,
}

impl ConnectionSchema {
    /// A schema with no entity type yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an entity type (replacing one with the same id).
    pub fn with_entity(mut self, entity: EntitySchema) -> Self {
        self.entities.insert(entity.entity_type.clone(), entity);
        self
    }

    /// An entity type by id.
    pub fn entity(&self, entity_type: &str) -> Option<&EntitySchema> {
        self.entities.get(entity_type)
    }

    /// A property of an entity type.
    pub fn property(&self, entity_type: &str, property: &str) -> Option<&PropertySchema> {
        self.entity(entity_type)?.property(property)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_with_defaults() {
        let schema = ConnectionSchema::new().with_entity(
            EntitySchema::new("group")
                .with_property("cn", PropertySchema::new(ValueType::String).required())
                .with_property(
                    MEMBERS,
                    PropertySchema::reference(None).multi_valued().read_only(),
                ),
        );
        let json = serde_json::to_value(&schema).unwrap();
        let back: ConnectionSchema = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, schema, "{json}");
        let short: PropertySchema = serde_json::from_str(r#"{"Kind": "Integer"}"#).unwrap();
        assert_eq!(short, PropertySchema::new(ValueType::Integer));
        assert!(short.writable);
    }
}
