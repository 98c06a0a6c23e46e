//! The entity types an [`InMemoryConnector`](super::InMemoryConnector) holds.

use crate::dn::Dn;
use crate::error::{ConnectorError, ErrorKind, Operation};
use crate::schema::{
    ConnectionSchema, ENABLED, EntitySchema, MEMBER_OF, MEMBERS, MUST_CHANGE_PASSWORD, PARENT,
    PASSWORD, PropertySchema, ValueType,
};
use autoprov_core::{EntityTypeId, PropertyDefinition, PropertyKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the objects of an entity type are, which decides the built-in properties they take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A user account: `enabled`, write-only `password`, `mustChangePassword`, member of
    /// groups (`memberOf`).
    Account,
    /// A group: holds its members (`member`), and can itself be a member (`memberOf`).
    Group,
    /// A container (an OU): other objects live below it.
    Container,
    /// Anything else: a named object in a container with scalars and references only.
    Other,
}

impl ObjectKind {
    /// Whether objects of this kind can be members of groups.
    pub fn can_be_member(self) -> bool {
        matches!(self, Self::Account | Self::Group)
    }
}

/// One entity type of an in-memory system.
///
/// Every type has a name property (the RDN value, e.g. `cn`) and the `parentdn` navigation;
/// the kind adds its built-in properties (see [`ObjectKind`]). Every other property must be
/// declared in [`EntityTypeSchema::properties`] — an order naming an undeclared one is an
/// `InvalidOrder` error. A property declared `unique` is unique across every entity type that
/// declares it unique under the same name (like `sAMAccountName` in a domain), compared without
/// case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EntityTypeSchema {
    /// The entity type id orders name in `ResourceType.TargetEntityType.Id`.
    pub id: EntityTypeId,
    /// What its objects are.
    pub kind: ObjectKind,
    /// The RDN attribute type, e.g. `CN` or `OU`.
    pub rdn_attribute: String,
    /// The property that holds the RDN value, e.g. `cn`.
    pub name_property: String,
    /// The declared properties (scalars and mono-valued references) beyond the built-in ones.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyDefinition>,
    /// Accounts created without `enabled` start enabled (default: false, as in Active
    /// Directory, where a new account is disabled until it is enabled).
    #[serde(default)]
    pub enabled_by_default: bool,
}

impl EntityTypeSchema {
    /// An entity type with no declared property yet.
    pub fn new(
        id: impl Into<EntityTypeId>,
        kind: ObjectKind,
        rdn_attribute: impl Into<String>,
        name_property: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind,
            rdn_attribute: rdn_attribute.into(),
            name_property: name_property.into(),
            properties: BTreeMap::new(),
            enabled_by_default: false,
        }
    }

    /// Declares a property.
    pub fn property(mut self, name: impl Into<String>, definition: PropertyDefinition) -> Self {
        self.properties.insert(name.into(), definition);
        self
    }

    /// Declares optional string properties.
    pub fn strings<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for name in names {
            self.properties.insert(
                name.to_owned(),
                PropertyDefinition::new(PropertyKind::String),
            );
        }
        self
    }

    /// Sets whether accounts created without `enabled` start enabled.
    pub fn enabled_by_default(mut self, enabled: bool) -> Self {
        self.enabled_by_default = enabled;
        self
    }

    /// The built-in properties of this type's kind (beside the name property).
    pub fn builtin_properties(&self) -> &'static [&'static str] {
        match self.kind {
            ObjectKind::Account => &[PARENT, ENABLED, PASSWORD, MUST_CHANGE_PASSWORD, MEMBER_OF],
            ObjectKind::Group => &[PARENT, MEMBER_OF, MEMBERS],
            ObjectKind::Container | ObjectKind::Other => &[PARENT],
        }
    }

    /// This type as a declared [`EntitySchema`]: the name property and `parentdn` (both
    /// required), the built-in properties of its kind (`memberOf` and a group's `member`
    /// written by deltas), and the declared ones (`unique` ones are keys). Orders are
    /// validated against it ([`ConnectionSchema::validate`]) before anything else.
    pub fn declared(&self) -> EntitySchema {
        let mut entity = EntitySchema::new(self.id.clone()).with_property(
            self.name_property.clone(),
            PropertySchema::new(ValueType::String).required(),
        );
        for &builtin in self.builtin_properties() {
            let property = match builtin {
                ENABLED | MUST_CHANGE_PASSWORD => PropertySchema::new(ValueType::Bool),
                PASSWORD => PropertySchema::new(ValueType::String).secret(),
                // Both sides of a membership take deltas: `memberOf` on the member, `member`
                // on the group.
                MEMBER_OF | MEMBERS => PropertySchema::reference(None).multi_valued(),
                // Every object is created in a container or a naming context.
                _ => PropertySchema::reference(None).required(),
            };
            entity = entity.with_property(builtin, property);
        }
        for (name, definition) in &self.properties {
            let mut property = match &definition.kind {
                PropertyKind::Integer => PropertySchema::new(ValueType::Integer),
                PropertyKind::Bool => PropertySchema::new(ValueType::Bool),
                PropertyKind::DateTime => PropertySchema::new(ValueType::DateTime),
                PropertyKind::Binary => PropertySchema::new(ValueType::Binary),
                PropertyKind::Secret => PropertySchema::new(ValueType::String).secret(),
                PropertyKind::MonoReference { target } => {
                    PropertySchema::reference(Some(target.clone()))
                }
                PropertyKind::MultiReference { target } => {
                    PropertySchema::reference(Some(target.clone())).multi_valued()
                }
                _ => PropertySchema::new(ValueType::String),
            };
            property.required = definition.required;
            property.key = definition.unique;
            entity = entity.with_property(name.clone(), property);
        }
        entity
    }

    /// Whether the type knows a property (declared, built-in or the name property).
    pub fn knows(&self, property: &str) -> bool {
        property == self.name_property
            || self.properties.contains_key(property)
            || self.builtin_properties().contains(&property)
    }
}

/// The schema of an in-memory system: its naming contexts (the roots of its names, e.g.
/// `DC=example,DC=test`) and its entity types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InMemorySchema {
    /// The roots of the names; objects live below one of them. They exist implicitly.
    pub naming_contexts: Vec<String>,
    /// The entity types.
    pub entity_types: Vec<EntityTypeSchema>,
}

impl Default for InMemorySchema {
    /// [`InMemorySchema::ad_like`].
    fn default() -> Self {
        Self::ad_like()
    }
}

impl InMemorySchema {
    /// A schema with one naming context and no entity type yet.
    pub fn new(naming_context: impl Into<String>) -> Self {
        Self {
            naming_contexts: vec![naming_context.into()],
            entity_types: Vec::new(),
        }
    }

    /// Adds an entity type.
    pub fn with_type(mut self, entity_type: EntityTypeSchema) -> Self {
        self.entity_types.push(entity_type);
        self
    }

    /// An Active Directory-like schema below `DC=example,DC=test`:
    ///
    /// - `user` (account, `CN=<cn>`): `sAMAccountName` (required, unique), `userPrincipalName`
    ///   (unique), `givenName`, `sn`, `displayName`, `mail`, `description`, `department`,
    ///   `title`, `company`, `employeeID`, `employeeNumber`, `telephoneNumber` (strings),
    ///   `accountExpires` (date-time), `manager` (a reference to a `user`);
    /// - `group` (group, `CN=<cn>`): `sAMAccountName` (required, unique), `description`,
    ///   `displayName`, `mail` (strings), `groupType` (integer);
    /// - `organizationalUnit` (container, `OU=<ou>`): `description`.
    pub fn ad_like() -> Self {
        Self::ad_like_in("DC=example,DC=test")
    }

    /// [`InMemorySchema::ad_like`] below another naming context.
    pub fn ad_like_in(naming_context: impl Into<String>) -> Self {
        let unique_key = PropertyDefinition::new(PropertyKind::String)
            .required()
            .unique();
        Self::new(naming_context)
            .with_type(
                EntityTypeSchema::new("user", ObjectKind::Account, "CN", "cn")
                    .property("sAMAccountName", unique_key.clone())
                    .property(
                        "userPrincipalName",
                        PropertyDefinition::new(PropertyKind::String).unique(),
                    )
                    .strings([
                        "givenName",
                        "sn",
                        "displayName",
                        "mail",
                        "description",
                        "department",
                        "title",
                        "company",
                        "employeeID",
                        "employeeNumber",
                        "telephoneNumber",
                    ])
                    .property(
                        "accountExpires",
                        PropertyDefinition::new(PropertyKind::DateTime),
                    )
                    .property(
                        "manager",
                        PropertyDefinition::new(PropertyKind::MonoReference {
                            target: "user".into(),
                        }),
                    ),
            )
            .with_type(
                EntityTypeSchema::new("group", ObjectKind::Group, "CN", "cn")
                    .property("sAMAccountName", unique_key)
                    .strings(["description", "displayName", "mail"])
                    .property("groupType", PropertyDefinition::new(PropertyKind::Integer)),
            )
            .with_type(
                EntityTypeSchema::new("organizationalUnit", ObjectKind::Container, "OU", "ou")
                    .strings(["description"]),
            )
    }

    /// The declared schema of a connection with this schema (see
    /// [`EntityTypeSchema::declared`]).
    pub fn declared(&self) -> ConnectionSchema {
        self.entity_types
            .iter()
            .fold(ConnectionSchema::new(), |schema, t| {
                schema.with_entity(t.declared())
            })
    }

    /// An entity type by id.
    pub fn entity_type(&self, id: &str) -> Option<&EntityTypeSchema> {
        self.entity_types.iter().find(|t| t.id.as_str() == id)
    }

    pub(crate) fn compile(&self) -> Result<CompiledSchema, ConnectorError> {
        let bad = |message: String| {
            ConnectorError::new(
                ErrorKind::InvalidConfiguration,
                Operation::Configure,
                message,
            )
        };
        if self.naming_contexts.is_empty() {
            return Err(bad("schema: at least one naming context is needed".into()));
        }
        let mut roots = Vec::new();
        for nc in &self.naming_contexts {
            let dn = Dn::parse(nc).map_err(|e| bad(format!("schema: naming context: {e}")))?;
            if dn.is_empty() {
                return Err(bad("schema: a naming context is empty".into()));
            }
            roots.push(dn);
        }
        let mut types = BTreeMap::new();
        for t in &self.entity_types {
            let at = |m: &str| bad(format!("schema: entity type `{}`: {m}", t.id));
            if t.rdn_attribute.is_empty()
                || t.rdn_attribute
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || c == '-'))
            {
                return Err(at("the RDN attribute must be letters, digits or `-`"));
            }
            if t.name_property.is_empty() {
                return Err(at("the name property is empty"));
            }
            for (name, def) in &t.properties {
                if *name == t.name_property || t.builtin_properties().contains(&name.as_str()) {
                    return Err(at(&format!("`{name}` is built in and cannot be declared")));
                }
                match &def.kind {
                    PropertyKind::Secret => {
                        return Err(at(&format!(
                            "`{name}`: only the built-in `{PASSWORD}` holds a secret"
                        )));
                    }
                    PropertyKind::MultiReference { .. } => {
                        return Err(at(&format!(
                            "`{name}`: multi-valued navigations are the built-in memberships"
                        )));
                    }
                    PropertyKind::MonoReference { target }
                        if self.entity_type(target.as_str()).is_none() =>
                    {
                        return Err(at(&format!("`{name}` references unknown type `{target}`")));
                    }
                    _ => {}
                }
            }
            if types.insert(t.id.clone(), t.clone()).is_some() {
                return Err(at("declared twice"));
            }
        }
        if types.is_empty() {
            return Err(bad("schema: no entity type".into()));
        }
        let declared = types.values().fold(ConnectionSchema::new(), |schema, t| {
            schema.with_entity(t.declared())
        });
        Ok(CompiledSchema {
            roots,
            types,
            declared,
        })
    }
}

/// A validated schema.
#[derive(Clone, Debug)]
pub(crate) struct CompiledSchema {
    pub(crate) roots: Vec<Dn>,
    pub(crate) types: BTreeMap<EntityTypeId, EntityTypeSchema>,
    /// The declared schema of the types, which validates every request first.
    pub(crate) declared: ConnectionSchema,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_like_schema_declares_its_properties() {
        let declared = InMemorySchema::ad_like().declared();
        let user = declared.entity("user").unwrap();
        let sam = user.property("sAMAccountName").unwrap();
        assert!(sam.required && sam.key && sam.writable);
        assert_eq!(user.secrets().collect::<Vec<_>>(), [PASSWORD]);
        assert!(user.property(MEMBER_OF).unwrap().multi_valued);
        assert_eq!(
            user.property("manager")
                .unwrap()
                .target
                .as_ref()
                .map(|t| t.as_str()),
            Some("user")
        );
        assert!(user.property("cn").unwrap().required);
        let members = declared.property("group", MEMBERS).unwrap();
        assert!(members.multi_valued && members.writable);
        assert!(
            declared
                .property("organizationalUnit", PARENT)
                .unwrap()
                .required
        );
        assert!(declared.property("organizationalUnit", PASSWORD).is_none());
    }

    #[test]
    fn ad_like_schema_compiles_and_roundtrips_json() {
        let s = InMemorySchema::ad_like();
        s.compile().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: InMemorySchema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(s.entity_type("user").unwrap().knows("memberOf"));
        assert!(
            !s.entity_type("organizationalUnit")
                .unwrap()
                .knows("memberOf")
        );
    }

    #[test]
    fn bad_schemas_are_configuration_errors() {
        let cases = [
            InMemorySchema::new("not a dn").with_type(EntityTypeSchema::new(
                "x",
                ObjectKind::Other,
                "CN",
                "cn",
            )),
            InMemorySchema::new("DC=x").with_type(
                EntityTypeSchema::new("x", ObjectKind::Account, "CN", "cn")
                    .property("enabled", PropertyDefinition::new(PropertyKind::Bool)),
            ),
            InMemorySchema::new("DC=x").with_type(
                EntityTypeSchema::new("x", ObjectKind::Other, "CN", "cn").property(
                    "boss",
                    PropertyDefinition::new(PropertyKind::MonoReference {
                        target: "nobody".into(),
                    }),
                ),
            ),
            InMemorySchema::new("DC=x"),
        ];
        for s in cases {
            let e = s.compile().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
        }
    }
}
