//! Checking an order against the declared schema before any write
//! ([`ConnectionSchema::validate`]).

use super::{ConnectionSchema, EntitySchema, PropertySchema, ValueType};
use crate::error::{ConnectorError, ErrorKind, Operation};
use autoprov_core::{
    ChangeType, Changes, EntityTypeId, OrderId, PropertyChange, ProvisioningOrder, ScalarValue,
};
use std::fmt;

/// What is wrong with an order against the declared schema (see [`SchemaViolation`]).
///
/// `#[non_exhaustive]`: the schema may gain rules.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The order's entity type is not declared; `known` lists the declared ones.
    UnknownEntityType {
        /// The declared entity types.
        known: Vec<EntityTypeId>,
    },
    /// The property is not declared for the entity type.
    UnknownProperty,
    /// The property is declared read-only (exported, never written by orders).
    ReadOnly,
    /// A multi-valued property was given one value (or cleared) instead of `_add` / `_remove`
    /// deltas.
    MultiValuedWithoutDelta,
    /// `_add` / `_remove` deltas on a single-valued property.
    DeltaOnSingleValued,
    /// The same reference is both added to and removed from a multi-valued property.
    AddedAndRemoved,
    /// The value is not of the declared type.
    WrongType {
        /// The declared type.
        expected: ValueType,
        /// What the order gave (`string`, `integer`, `reference`, ...; never the value).
        found: &'static str,
    },
    /// A required property is missing from an Added order.
    MissingRequired,
    /// A Modified order clears a required property.
    ClearsRequired,
    /// A secret property given a value that is not a [`autoprov_core::Secret`].
    SecretNotSecret,
    /// A secret given to a property that is not declared secret.
    SecretOnPlainProperty,
    /// A masked secret read back from a file: it has no value to write.
    MaskedSecret,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownEntityType { known } => {
                let known: Vec<&str> = known.iter().map(EntityTypeId::as_str).collect();
                write!(
                    f,
                    "the entity type is not declared by the connection (known: {})",
                    known.join(", ")
                )
            }
            Self::UnknownProperty => f.write_str("is not declared for this entity type"),
            Self::ReadOnly => f.write_str("is read-only: orders may not write it"),
            Self::MultiValuedWithoutDelta => f.write_str(
                "is multi-valued: change it with `_add` / `_remove` deltas, not one value",
            ),
            Self::DeltaOnSingleValued => {
                f.write_str("is single-valued: `_add` / `_remove` deltas are refused")
            }
            Self::AddedAndRemoved => f.write_str("the same reference is both added and removed"),
            Self::WrongType { expected, found } => {
                write!(f, "expected {}, found {found}", expected.describe())
            }
            Self::MissingRequired => f.write_str("is required and missing"),
            Self::ClearsRequired => f.write_str("is required and cannot be cleared"),
            Self::SecretNotSecret => f.write_str("is secret: its value must be given as a secret"),
            Self::SecretOnPlainProperty => {
                f.write_str("is not secret: a secret value is refused here")
            }
            Self::MaskedSecret => f.write_str(
                "is a masked secret read back from a file: it has no value and is never sent",
            ),
        }
    }
}

impl ValueType {
    /// A short name for messages and docs (`string`, `integer`, `bool`, `date-time`, `binary`,
    /// `reference`).
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Bool => "bool",
            Self::DateTime => "date-time",
            Self::Binary => "binary",
            Self::Reference => "reference",
        }
    }

    /// Whether a scalar is of this type (a secret is a string here; whether it may be a
    /// secret is the property's `secret` flag).
    fn accepts(self, value: &ScalarValue) -> bool {
        matches!(
            (self, value),
            (
                Self::String,
                ScalarValue::String(_) | ScalarValue::Secret(_)
            ) | (Self::Integer, ScalarValue::Integer(_))
                | (Self::Bool, ScalarValue::Bool(_))
                | (Self::DateTime, ScalarValue::DateTime(_))
                | (Self::Binary, ScalarValue::Binary(_))
        )
    }
}

/// An order the declared schema refuses: which order, change, entity type and property, and
/// what is wrong. Never holds a value, so never a secret.
///
/// Converts into a permanent [`ErrorKind::InvalidOrder`] [`ConnectorError`] naming the order.
///
/// ```
/// use autoprov_connector::schema::{ConnectionSchema, EntitySchema, PropertySchema, ValueType, Violation};
/// use autoprov_connector::{ConnectorError, ErrorKind};
/// use autoprov_core::{ChangeType, Changes};
/// let schema = ConnectionSchema::new().with_entity(
///     EntitySchema::new("user").with_property("age", PropertySchema::new(ValueType::Integer)),
/// );
/// let mut changes = Changes::default();
/// changes.set("age", "forty");
/// let e = schema.validate_changes("user", ChangeType::Modified, &changes).unwrap_err();
/// assert_eq!(e.property.as_deref(), Some("age"));
/// assert!(matches!(e.violation, Violation::WrongType { expected: ValueType::Integer, .. }));
/// assert_eq!(e.to_string(), "Modified `user`: property `age`: expected integer, found string");
/// let e = ConnectorError::from(e.with_order("o-1"));
/// assert_eq!(e.kind(), ErrorKind::InvalidOrder);
/// assert_eq!(e.order().map(|o| o.as_str()), Some("o-1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaViolation {
    /// The order, when known.
    pub order: Option<OrderId>,
    /// Its change type.
    pub change_type: ChangeType,
    /// The entity type it is for.
    pub entity_type: EntityTypeId,
    /// The property at fault; `None` when the entity type itself is.
    pub property: Option<String>,
    /// What is wrong.
    pub violation: Violation,
}

impl SchemaViolation {
    fn new(
        change_type: ChangeType,
        entity_type: &EntityTypeId,
        property: Option<&str>,
        violation: Violation,
    ) -> Self {
        Self {
            order: None,
            change_type,
            entity_type: entity_type.clone(),
            property: property.map(str::to_owned),
            violation,
        }
    }

    /// Names the order.
    pub fn with_order(mut self, order: impl Into<OrderId>) -> Self {
        self.order = Some(order.into());
        self
    }

    /// The operation the violation is reported under: membership for the deltas of a
    /// multi-valued property, else the order's ([`Operation::from`] its change type).
    pub fn operation(&self) -> Operation {
        match self.violation {
            Violation::DeltaOnSingleValued | Violation::AddedAndRemoved => Operation::Membership,
            _ => Operation::from(self.change_type),
        }
    }
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(order) = &self.order {
            write!(f, "order {order}: ")?;
        }
        write!(f, "{} `{}`: ", self.change_type, self.entity_type)?;
        if let Some(property) = &self.property {
            // Shown escaped: a name may hold a NUL or a line break.
            write!(f, "property `{}`: ", property.escape_debug())?;
        }
        write!(f, "{}", self.violation)
    }
}

impl std::error::Error for SchemaViolation {}

impl From<SchemaViolation> for ConnectorError {
    /// A permanent [`ErrorKind::InvalidOrder`] naming the order (when known).
    fn from(v: SchemaViolation) -> Self {
        // The order is named by the error itself; the message says the rest.
        let message = match &v.property {
            Some(property) => format!(
                "`{}` property `{}`: {}",
                v.entity_type,
                property.escape_debug(),
                v.violation
            ),
            None => format!("`{}`: {}", v.entity_type, v.violation),
        };
        let e = ConnectorError::new(ErrorKind::InvalidOrder, v.operation(), message);
        match v.order {
            Some(order) => e.with_order(order),
            None => e,
        }
    }
}

impl ConnectionSchema {
    /// Checks an order against the declared schema, before any write: its entity type
    /// (`ResourceType.TargetEntityType.Id`) is declared and, for Added and Modified orders,
    /// its changes are valid ([`EntitySchema::validate_changes`]). A Deleted order is checked
    /// for its entity type only. The error names the order.
    ///
    /// What it cannot know stays with the package: whether references resolve, uniqueness,
    /// the system's own value constraints.
    pub fn validate(&self, order: &ProvisioningOrder) -> Result<(), SchemaViolation> {
        self.validate_changes(
            order.resource_type.target_entity_type.id.as_str(),
            order.change_type,
            &order.changes,
        )
        .map_err(|v| v.with_order(order.order_id.clone()))
    }

    /// [`ConnectionSchema::validate`] for changes that need not come from an order (an
    /// out-of-band seed, a preview): the entity type, the change type and the changes.
    pub fn validate_changes(
        &self,
        entity_type: &str,
        change_type: ChangeType,
        changes: &Changes,
    ) -> Result<(), SchemaViolation> {
        let Some(entity) = self.entity(entity_type) else {
            return Err(SchemaViolation::new(
                change_type,
                &EntityTypeId::from(entity_type),
                None,
                Violation::UnknownEntityType {
                    known: self.entities.keys().cloned().collect(),
                },
            ));
        };
        entity.validate_changes(change_type, changes)
    }
}

impl EntitySchema {
    /// Checks the changes of an order for this entity type: every property it writes is
    /// declared (names compared exactly) and writable; a single-valued one gets one value
    /// of its type (a secret one a non-masked [`autoprov_core::Secret`], and only it a
    /// secret), a multi-valued one `_add` / `_remove` deltas of references, never both adding
    /// and removing one; an Added order gives every required property, a Modified one
    /// clears none. A Deleted order's changes are not checked.
    pub fn validate_changes(
        &self,
        change_type: ChangeType,
        changes: &Changes,
    ) -> Result<(), SchemaViolation> {
        if change_type == ChangeType::Deleted {
            return Ok(());
        }
        let fail = |property: &str, violation| {
            Err(SchemaViolation::new(
                change_type,
                &self.entity_type,
                Some(property),
                violation,
            ))
        };
        for (name, change) in &changes.properties {
            let Some(p) = self.property(name) else {
                return fail(name, Violation::UnknownProperty);
            };
            if let Some(violation) = single_value_violation(p, change) {
                return fail(name, violation);
            }
        }
        for (name, delta) in &changes.navigations {
            if delta.is_empty() {
                continue;
            }
            let Some(p) = self.property(name) else {
                return fail(name, Violation::UnknownProperty);
            };
            let violation = if !p.writable {
                Violation::ReadOnly
            } else if !p.multi_valued {
                Violation::DeltaOnSingleValued
            } else if p.kind != ValueType::Reference {
                Violation::WrongType {
                    expected: p.kind,
                    found: "reference",
                }
            } else if delta.add.iter().any(|r| delta.remove.contains(r)) {
                Violation::AddedAndRemoved
            } else {
                continue;
            };
            return fail(name, violation);
        }
        if change_type == ChangeType::Added {
            for name in self.required() {
                let given = match changes.properties.get(name) {
                    Some(PropertyChange::Clear) => false,
                    Some(_) => true,
                    None => changes
                        .navigations
                        .get(name)
                        .is_some_and(|d| !d.add.is_empty()),
                };
                if !given {
                    return fail(name, Violation::MissingRequired);
                }
            }
        }
        Ok(())
    }
}

/// What is wrong with one value (or clear) of a property, if anything.
fn single_value_violation(p: &PropertySchema, change: &PropertyChange) -> Option<Violation> {
    if !p.writable {
        return Some(Violation::ReadOnly);
    }
    if p.multi_valued {
        return Some(Violation::MultiValuedWithoutDelta);
    }
    match change {
        PropertyChange::Clear if p.required => Some(Violation::ClearsRequired),
        PropertyChange::Clear => None,
        PropertyChange::SetReference(_) if p.kind == ValueType::Reference => None,
        PropertyChange::SetReference(_) => Some(Violation::WrongType {
            expected: p.kind,
            found: "reference",
        }),
        PropertyChange::Set(ScalarValue::Secret(s)) if p.secret && s.is_redacted() => {
            Some(Violation::MaskedSecret)
        }
        PropertyChange::Set(ScalarValue::Secret(_)) if !p.secret => {
            Some(Violation::SecretOnPlainProperty)
        }
        PropertyChange::Set(v) if !p.kind.accepts(v) => Some(Violation::WrongType {
            expected: p.kind,
            found: v.kind_name(),
        }),
        PropertyChange::Set(ScalarValue::Secret(_)) => None,
        PropertyChange::Set(_) if p.secret => Some(Violation::SecretNotSecret),
        PropertyChange::Set(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MEMBER_OF, MEMBERS, PASSWORD};
    use super::*;
    use autoprov_core::{Reference, ResourceType, ResourceTypeRef, Secret};

    fn schema() -> ConnectionSchema {
        ConnectionSchema::new().with_entity(
            EntitySchema::new("user")
                .with_property("cn", PropertySchema::new(ValueType::String).required())
                .with_property(
                    "uid",
                    PropertySchema::new(ValueType::String).required().key(),
                )
                .with_property("age", PropertySchema::new(ValueType::Integer))
                .with_property("active", PropertySchema::new(ValueType::Bool))
                .with_property("expires", PropertySchema::new(ValueType::DateTime))
                .with_property("photo", PropertySchema::new(ValueType::Binary))
                .with_property("manager", PropertySchema::reference(Some("user".into())))
                .with_property(
                    MEMBER_OF,
                    PropertySchema::reference(Some("group".into())).multi_valued(),
                )
                .with_property(
                    MEMBERS,
                    PropertySchema::reference(None).multi_valued().read_only(),
                )
                .with_property(PASSWORD, PropertySchema::new(ValueType::String).secret())
                .with_property("usn", PropertySchema::new(ValueType::Integer).read_only()),
        )
    }

    /// A valid Added order's changes.
    fn added() -> Changes {
        let mut c = Changes::default();
        c.set("cn", "Ann").set("uid", "ann");
        c
    }

    fn order(change_type: ChangeType, entity_type: &str, changes: Changes) -> ProvisioningOrder {
        let rt = ResourceType::new("rt", "RT_User", "Person", entity_type, "c");
        ProvisioningOrder {
            order_id: "o-7".into(),
            assigned_resource_type_id: None,
            change_type,
            workflow_instance_id: None,
            owner: None,
            resource_type: ResourceTypeRef::of(&rt),
            connection: None,
            changes,
            resource: None,
            depends_on: vec![],
            not_before: None,
            arguments: Default::default(),
        }
    }

    fn violation(change_type: ChangeType, changes: &Changes) -> (Option<String>, Violation) {
        let v = schema()
            .validate_changes("user", change_type, changes)
            .unwrap_err();
        (v.property, v.violation)
    }

    fn at(property: &str, violation: Violation) -> (Option<String>, Violation) {
        (Some(property.to_owned()), violation)
    }

    #[test]
    fn valid_orders_pass() {
        let s = schema();
        let mut c = added();
        c.set("age", 40_i64)
            .set("active", true)
            .set("expires", chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
            .set("photo", ScalarValue::Binary(vec![1, 2]))
            .set(PASSWORD, Secret::new("Passw0rd!"))
            .set_reference("manager", Reference::dn("CN=Boss"))
            .add_reference(MEMBER_OF, Reference::dn("CN=G1"));
        s.validate_changes("user", ChangeType::Added, &c).unwrap();
        let mut m = Changes::default();
        m.clear("age")
            .remove_reference(MEMBER_OF, Reference::dn("CN=G1"));
        s.validate_changes("user", ChangeType::Modified, &m)
            .unwrap();
        // An empty delta of a read-only navigation writes nothing.
        let mut empty = Changes::default();
        empty.navigations.insert(MEMBERS.into(), Default::default());
        s.validate_changes("user", ChangeType::Modified, &empty)
            .unwrap();
        s.validate(&order(ChangeType::Added, "user", added()))
            .unwrap();
    }

    #[test]
    fn unknown_entity_type_names_the_known_ones_and_the_order() {
        let v = schema()
            .validate(&order(ChangeType::Deleted, "printer", Changes::default()))
            .unwrap_err();
        assert_eq!(
            v.violation,
            Violation::UnknownEntityType {
                known: vec!["user".into()]
            }
        );
        assert_eq!(v.property, None);
        let text = v.to_string();
        assert!(
            text.contains("o-7") && text.contains("`printer`") && text.contains("known: user"),
            "{text}"
        );
        let e = ConnectorError::from(v);
        assert_eq!(
            (e.kind(), e.operation()),
            (ErrorKind::InvalidOrder, Operation::Delete)
        );
        assert!(!e.is_temporary());
    }

    #[test]
    fn a_deleted_order_checks_only_its_entity_type() {
        let mut c = Changes::default();
        c.set("nope", "x");
        schema()
            .validate_changes("user", ChangeType::Deleted, &c)
            .unwrap();
    }

    #[test]
    fn undeclared_property_is_refused() {
        let mut c = added();
        c.set("shoeSize", 44_i64);
        assert_eq!(
            violation(ChangeType::Added, &c),
            at("shoeSize", Violation::UnknownProperty)
        );
        let mut n = Changes::default();
        n.add_reference("friends", Reference::dn("CN=x"));
        assert_eq!(
            violation(ChangeType::Modified, &n),
            at("friends", Violation::UnknownProperty)
        );
    }

    #[test]
    fn names_are_compared_exactly() {
        let mut c = Changes::default();
        c.set("AGE", 1_i64);
        assert_eq!(
            violation(ChangeType::Modified, &c),
            at("AGE", Violation::UnknownProperty)
        );
    }

    #[test]
    fn read_only_property_is_refused() {
        let mut c = Changes::default();
        c.set("usn", 5_i64);
        assert_eq!(
            violation(ChangeType::Modified, &c),
            at("usn", Violation::ReadOnly)
        );
        let mut n = Changes::default();
        n.add_reference(MEMBERS, Reference::dn("CN=x"));
        assert_eq!(
            violation(ChangeType::Modified, &n),
            at(MEMBERS, Violation::ReadOnly)
        );
    }

    #[test]
    fn multi_valued_property_takes_deltas_only() {
        let mut c = Changes::default();
        c.set_reference(MEMBER_OF, Reference::dn("CN=G1"));
        assert_eq!(
            violation(ChangeType::Modified, &c),
            at(MEMBER_OF, Violation::MultiValuedWithoutDelta)
        );
        let mut cleared = Changes::default();
        cleared.clear(MEMBER_OF);
        assert_eq!(
            violation(ChangeType::Modified, &cleared),
            at(MEMBER_OF, Violation::MultiValuedWithoutDelta)
        );
    }

    #[test]
    fn single_valued_property_takes_no_delta() {
        let mut c = Changes::default();
        c.add_reference("manager", Reference::dn("CN=Boss"));
        let v = schema()
            .validate_changes("user", ChangeType::Modified, &c)
            .unwrap_err();
        assert_eq!(v.violation, Violation::DeltaOnSingleValued);
        assert_eq!(v.operation(), Operation::Membership);
    }

    #[test]
    fn a_delta_on_a_multi_valued_scalar_is_a_type_error() {
        let s = ConnectionSchema::new().with_entity(EntitySchema::new("user").with_property(
            "mails",
            PropertySchema::new(ValueType::String).multi_valued(),
        ));
        let mut c = Changes::default();
        c.add_reference("mails", Reference::dn("CN=x"));
        let v = s
            .validate_changes("user", ChangeType::Modified, &c)
            .unwrap_err();
        assert_eq!(
            v.violation,
            Violation::WrongType {
                expected: ValueType::String,
                found: "reference"
            }
        );
    }

    #[test]
    fn adding_and_removing_one_reference_is_refused() {
        let mut c = Changes::default();
        c.add_reference(MEMBER_OF, Reference::dn("CN=G1"))
            .remove_reference(MEMBER_OF, Reference::dn("CN=G1"));
        assert_eq!(
            violation(ChangeType::Modified, &c),
            at(MEMBER_OF, Violation::AddedAndRemoved)
        );
    }

    #[test]
    fn value_types_must_match() {
        let cases: [(&str, PropertyChange, ValueType, &str); 6] = [
            (
                "age",
                PropertyChange::Set("40".into()),
                ValueType::Integer,
                "string",
            ),
            (
                "active",
                PropertyChange::Set(1_i64.into()),
                ValueType::Bool,
                "integer",
            ),
            (
                "expires",
                PropertyChange::Set("2030".into()),
                ValueType::DateTime,
                "string",
            ),
            (
                "photo",
                PropertyChange::Set(true.into()),
                ValueType::Binary,
                "bool",
            ),
            (
                "cn",
                PropertyChange::SetReference(Reference::dn("CN=x")),
                ValueType::String,
                "reference",
            ),
            (
                "manager",
                PropertyChange::Set("CN=Boss".into()),
                ValueType::Reference,
                "string",
            ),
        ];
        for (property, change, expected, found) in cases {
            let mut c = Changes::default();
            c.properties.insert(property.into(), change);
            assert_eq!(
                violation(ChangeType::Modified, &c),
                at(property, Violation::WrongType { expected, found }),
                "{property}"
            );
        }
    }

    #[test]
    fn required_properties_must_be_given_on_added() {
        let mut c = Changes::default();
        c.set("cn", "Ann");
        assert_eq!(
            violation(ChangeType::Added, &c),
            at("uid", Violation::MissingRequired)
        );
        let mut cleared = added();
        cleared.clear("uid");
        assert_eq!(
            violation(ChangeType::Added, &cleared),
            at("uid", Violation::ClearsRequired)
        );
        // A Modified order need not repeat them, but cannot clear them.
        let mut m = Changes::default();
        m.set("age", 3_i64);
        schema()
            .validate_changes("user", ChangeType::Modified, &m)
            .unwrap();
        m.clear("cn");
        assert_eq!(
            violation(ChangeType::Modified, &m),
            at("cn", Violation::ClearsRequired)
        );
    }

    #[test]
    fn a_required_multi_valued_property_needs_an_added_reference() {
        let s = ConnectionSchema::new().with_entity(EntitySchema::new("group").with_property(
            "owners",
            PropertySchema::reference(None).multi_valued().required(),
        ));
        let v = s
            .validate_changes("group", ChangeType::Added, &Changes::default())
            .unwrap_err();
        assert_eq!(v.violation, Violation::MissingRequired);
        let mut c = Changes::default();
        c.add_reference("owners", Reference::dn("CN=Ann"));
        s.validate_changes("group", ChangeType::Added, &c).unwrap();
    }

    #[test]
    fn secrets_only_as_secrets_and_never_shown() {
        let mut plain = Changes::default();
        plain.set(PASSWORD, "Clear-Text-1!");
        assert_eq!(
            violation(ChangeType::Modified, &plain),
            at(PASSWORD, Violation::SecretNotSecret)
        );
        let mut misplaced = Changes::default();
        misplaced.set("cn", Secret::new("Hidden-Value-2!"));
        let v = schema()
            .validate(&order(ChangeType::Modified, "user", misplaced))
            .unwrap_err();
        assert_eq!(v.violation, Violation::SecretOnPlainProperty);
        let e = ConnectorError::from(v.clone());
        for text in [
            v.to_string(),
            format!("{v:?}"),
            e.to_string(),
            format!("{e:?}"),
        ] {
            assert!(!text.contains("Hidden-Value-2!"), "{text}");
        }
        let masked = Secret::redacted();
        let mut m = Changes::default();
        m.set(PASSWORD, masked);
        assert_eq!(
            violation(ChangeType::Modified, &m),
            at(PASSWORD, Violation::MaskedSecret)
        );
    }

    #[test]
    fn the_error_names_order_entity_type_and_property() {
        let mut c = added();
        c.set("age", "old");
        let e = ConnectorError::from(
            schema()
                .validate(&order(ChangeType::Added, "user", c))
                .unwrap_err(),
        );
        let text = e.to_string();
        assert!(
            text.contains("order o-7")
                && text.contains("`user`")
                && text.contains("`age`")
                && text.contains("expected integer, found string"),
            "{text}"
        );
        assert_eq!(e.operation(), Operation::Create);
    }
}
