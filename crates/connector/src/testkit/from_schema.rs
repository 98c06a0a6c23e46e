//! A [`KitProfile`] read from a connection's declared schema ([`KitProfile::from_schema`]).

use super::KitProfile;
use crate::schema::{
    ConnectionSchema, ENABLED, EntitySchema, MEMBER_OF, MEMBERS, PARENT, PropertySchema, ValueType,
};
use autoprov_core::{EntityTypeId, ScalarValue};
use std::collections::BTreeMap;
use std::fmt;

/// Why [`KitProfile::from_schema`] could not read a profile from a schema: what it looked
/// for, and the candidates it found (none, or several it cannot choose between). Set that
/// field of the profile by hand instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileFromSchemaError {
    /// The profile field it could not fill (`account_type`, `name_property`, ...).
    pub field: &'static str,
    /// What it found.
    pub message: String,
}

impl fmt::Display for ProfileFromSchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KitProfile::from_schema cannot choose `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ProfileFromSchemaError {}

fn fail<T>(field: &'static str, message: impl Into<String>) -> Result<T, ProfileFromSchemaError> {
    Err(ProfileFromSchemaError {
        field,
        message: message.into(),
    })
}

/// A writable, single-valued, non-secret text property.
fn plain_text(p: &PropertySchema) -> bool {
    p.kind == ValueType::String && p.writable && !p.multi_valued && !p.secret
}

/// The property that names objects of `entity`: its only required plain-text property that is
/// not a key, else its only required plain-text key (SCIM's `userName`).
fn name_property(
    entity: &EntitySchema,
    field: &'static str,
) -> Result<String, ProfileFromSchemaError> {
    let required: Vec<(&String, &PropertySchema)> = entity
        .properties
        .iter()
        .filter(|(_, p)| p.required && plain_text(p))
        .collect();
    for keys in [false, true] {
        let names: Vec<&String> = required
            .iter()
            .filter(|(_, p)| p.key == keys)
            .map(|(n, _)| *n)
            .collect();
        match names.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            several => {
                return fail(
                    field,
                    format!(
                        "`{}` has several required text properties ({several:?})",
                        entity.entity_type
                    ),
                );
            }
        }
    }
    fail(
        field,
        format!(
            "`{}` has no required text property to name its objects",
            entity.entity_type
        ),
    )
}

/// A value of `kind` for a required property the kit has no role for.
fn filler(kind: ValueType) -> Option<ScalarValue> {
    Some(match kind {
        ValueType::String => ScalarValue::String("autoprov-kit".into()),
        ValueType::Integer => ScalarValue::Integer(1),
        ValueType::Bool => ScalarValue::Bool(true),
        ValueType::DateTime => ScalarValue::DateTime(chrono::DateTime::UNIX_EPOCH),
        ValueType::Binary => ScalarValue::Binary(vec![0]),
        _ => return None,
    })
}

/// Values for the required scalars of `entity` that the kit does not already give.
fn fillers(
    entity: &EntitySchema,
    given: &[Option<&String>],
    field: &'static str,
) -> Result<BTreeMap<String, ScalarValue>, ProfileFromSchemaError> {
    let mut values = BTreeMap::new();
    for (name, p) in &entity.properties {
        if !p.required || name == PARENT || given.contains(&Some(name)) {
            continue;
        }
        if p.key || p.secret || p.multi_valued {
            return fail(
                field,
                format!(
                    "`{}` requires `{name}`, which the kit cannot fill (a key, secret or \
                     multi-valued property)",
                    entity.entity_type
                ),
            );
        }
        match filler(p.kind) {
            Some(v) => values.insert(name.clone(), v),
            None => {
                return fail(
                    field,
                    format!(
                        "`{}` requires the reference `{name}`, which the kit cannot fill",
                        entity.entity_type
                    ),
                );
            }
        };
    }
    Ok(values)
}

impl KitProfile {
    /// A profile read from a connection's declared schema, so a package need not write one by
    /// hand. `account_type` names the accounts' entity type; `None` picks the only type that
    /// declares a writable secret property (the password). From there:
    ///
    /// - **group type**: another type that declares a writable, multi-valued `member`
    ///   ([`MEMBERS`]), else the target of the accounts' `memberOf`; none: no group;
    /// - **name properties** (accounts, groups, containers): the type's only required plain
    ///   text property that is not a key, else its only required text key;
    /// - **key**: a required (else optional) text key of accounts beside the name, declared
    ///   a key by the group type too;
    /// - **required property**: the key when it is required, else another required property,
    ///   else the name;
    /// - **text property**: `description` when declared, else the first optional plain text
    ///   property of accounts;
    /// - **container type**: with `parentdn` declared on accounts, the one remaining type
    ///   that declares a name; none when no type remains;
    /// - **values** for the other required scalars of accounts and groups (`autoprov-kit`,
    ///   `1`, `true`, ...).
    ///
    /// Everything else keeps the defaults of [`KitProfile::new`]: set the root container
    /// ([`KitProfile::with_root_container`]), the password, the rejected characters, the
    /// expected skips and the one-per-page connection yourself. An error names the field it
    /// cannot choose (no candidate, or several): set that one by hand.
    ///
    /// ```
    /// use autoprov_connector::memory::InMemorySchema;
    /// use autoprov_connector::testkit::KitProfile;
    /// let profile = KitProfile::from_schema(&InMemorySchema::ad_like().declared(), None)
    ///     .unwrap()
    ///     .with_root_container("DC=example,DC=test");
    /// assert_eq!(profile.account_type.as_str(), "user");
    /// assert_eq!(profile.group_type.as_ref().map(|t| t.as_str()), Some("group"));
    /// assert_eq!(profile.container_type.as_ref().map(|t| t.as_str()), Some("organizationalUnit"));
    /// assert_eq!((profile.name_property.as_str(), profile.container_name_property.as_str()), ("cn", "ou"));
    /// assert_eq!(profile.key_property.as_deref(), Some("sAMAccountName"));
    /// assert_eq!(profile.text_property, "description");
    /// ```
    pub fn from_schema(
        schema: &ConnectionSchema,
        account_type: Option<&str>,
    ) -> Result<Self, ProfileFromSchemaError> {
        let account = match account_type {
            Some(t) => match schema.entity(t) {
                Some(e) => e,
                None => return fail("account_type", format!("the schema declares no `{t}`")),
            },
            None => {
                let with_secret: Vec<&EntitySchema> = schema
                    .entities
                    .values()
                    .filter(|e| e.properties.values().any(|p| p.secret && p.writable))
                    .collect();
                match with_secret.as_slice() {
                    [one] => *one,
                    [] => return fail("account_type", "no entity type declares a password"),
                    several => {
                        let names: Vec<&str> =
                            several.iter().map(|e| e.entity_type.as_str()).collect();
                        return fail(
                            "account_type",
                            format!("several entity types declare a secret: {names:?}"),
                        );
                    }
                }
            }
        };
        let name = name_property(account, "name_property")?;
        let mut profile = KitProfile::new(account.entity_type.clone(), name.clone());

        let group = schema
            .entities
            .values()
            .find(|e| {
                e.entity_type != account.entity_type
                    && e.property(MEMBERS)
                        .is_some_and(|p| p.writable && p.multi_valued)
            })
            .or_else(|| {
                let target = account.property(MEMBER_OF)?.target.as_ref()?;
                schema.entity(target.as_str())
            });
        if let Some(group) = group {
            profile.group_type = Some(group.entity_type.clone());
            let group_name = name_property(group, "group_name_property")?;
            if group_name != name {
                profile.group_name_property = Some(group_name);
            }
        }

        let keys: Vec<(&String, &PropertySchema)> = account
            .properties
            .iter()
            .filter(|(n, p)| {
                p.key
                    && plain_text(p)
                    && **n != name
                    && group.is_none_or(|g| g.property(n).is_some_and(|gp| gp.key))
            })
            .collect();
        let key = keys
            .iter()
            .find(|(_, p)| p.required)
            .or(keys.first())
            .map(|(n, _)| (*n).clone());
        profile.required_property = match &key {
            Some(k) if account.property(k).is_some_and(|p| p.required) => Some(k.clone()),
            _ => account
                .required()
                .find(|n| *n != PARENT && *n != name)
                .map(str::to_owned)
                .or_else(|| Some(name.clone())),
        };
        profile.key_property = key;

        let text = if account
            .property("description")
            .is_some_and(|p| plain_text(p) && !p.required && !p.key)
        {
            Some("description".to_owned())
        } else {
            account
                .properties
                .iter()
                .find(|(n, p)| plain_text(p) && !p.required && !p.key && **n != ENABLED)
                .map(|(n, _)| n.clone())
        };
        let Some(text) = text else {
            return fail(
                "text_property",
                format!("`{}` has no optional text property", account.entity_type),
            );
        };
        profile.text_property = text;
        if profile.unknown_property == name || account.property(&profile.unknown_property).is_some()
        {
            return fail(
                "unknown_property",
                format!(
                    "`{}` declares `{}`",
                    account.entity_type, profile.unknown_property
                ),
            );
        }

        if account.property(PARENT).is_some() {
            let taken = |t: &EntityTypeId| {
                *t == account.entity_type || group.is_some_and(|g| g.entity_type == *t)
            };
            let rest: Vec<&EntitySchema> = schema
                .entities
                .values()
                .filter(|e| !taken(&e.entity_type))
                .collect();
            match rest.as_slice() {
                [] => {}
                [container] => {
                    profile.container_name_property =
                        name_property(container, "container_name_property")?;
                    profile.container_type = Some(container.entity_type.clone());
                }
                several => {
                    let names: Vec<&str> = several.iter().map(|e| e.entity_type.as_str()).collect();
                    return fail(
                        "container_type",
                        format!("several entity types could be containers: {names:?}"),
                    );
                }
            }
        }

        let key = profile.key_property.as_ref();
        profile.account_values = fillers(account, &[Some(&name), key], "account_values")?;
        if let Some(group) = group {
            let group_name = profile.group_name_property.as_ref().unwrap_or(&name);
            profile.group_values = fillers(group, &[Some(group_name), key], "group_values")?;
        }
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemorySchema;
    use crate::schema::PASSWORD;

    fn text() -> PropertySchema {
        PropertySchema::new(ValueType::String)
    }

    /// A SCIM-like schema: no containers, users named by a required key, groups by another
    /// property, an optional correlation key on both.
    fn scim_like() -> ConnectionSchema {
        ConnectionSchema::new()
            .with_entity(
                EntitySchema::new("User")
                    .with_property("userName", text().required().key())
                    .with_property("externalId", text().key())
                    .with_property("title", text())
                    .with_property("active", PropertySchema::new(ValueType::Bool))
                    .with_property(PASSWORD, text().secret())
                    .with_property(
                        MEMBER_OF,
                        PropertySchema::reference(Some("Group".into())).multi_valued(),
                    ),
            )
            .with_entity(
                EntitySchema::new("Group")
                    .with_property("displayName", text().required())
                    .with_property("externalId", text().key())
                    .with_property(
                        "ranking",
                        PropertySchema::new(ValueType::Integer).required(),
                    ),
            )
    }

    #[test]
    fn the_ad_like_schema_gives_the_directory_profile() {
        let p = KitProfile::from_schema(&InMemorySchema::ad_like().declared(), None).unwrap();
        let t = |t: &Option<EntityTypeId>| t.as_ref().map(|t| t.as_str().to_owned());
        assert_eq!(p.account_type.as_str(), "user");
        assert_eq!(t(&p.group_type).as_deref(), Some("group"));
        assert_eq!(t(&p.container_type).as_deref(), Some("organizationalUnit"));
        assert_eq!(p.name_property, "cn");
        assert_eq!(p.group_name_property, None, "groups are named by `cn` too");
        assert_eq!(p.container_name_property, "ou");
        assert_eq!(p.key_property.as_deref(), Some("sAMAccountName"));
        assert_eq!(p.required_property.as_deref(), Some("sAMAccountName"));
        assert_eq!(p.text_property, "description");
        assert!(p.account_values.is_empty() && p.group_values.is_empty());
        assert_eq!(p.root_container, None, "the schema does not know it");
    }

    #[test]
    fn a_scim_like_schema_gives_names_keys_and_fillers() {
        let p = KitProfile::from_schema(&scim_like(), None).unwrap();
        assert_eq!(p.account_type.as_str(), "User");
        assert_eq!(p.name_property, "userName");
        assert_eq!(p.group_type.as_ref().map(|t| t.as_str()), Some("Group"));
        assert_eq!(p.group_name_property.as_deref(), Some("displayName"));
        assert_eq!(p.key_property.as_deref(), Some("externalId"));
        assert_eq!(p.required_property.as_deref(), Some("userName"));
        assert_eq!(p.text_property, "title");
        assert_eq!(p.container_type, None, "no parentdn: no containers");
        assert_eq!(
            p.group_values.get("ranking"),
            Some(&ScalarValue::Integer(1))
        );
    }

    #[test]
    fn ambiguity_and_absence_name_the_field() {
        let no_password = ConnectionSchema::new()
            .with_entity(EntitySchema::new("user").with_property("cn", text().required()));
        let e = KitProfile::from_schema(&no_password, None).unwrap_err();
        assert_eq!(e.field, "account_type");
        // Naming the type is enough to get further: then it has no free-text property.
        let e = KitProfile::from_schema(&no_password, Some("user")).unwrap_err();
        assert_eq!(e.field, "text_property", "{e}");
        let e = KitProfile::from_schema(&no_password, Some("robot")).unwrap_err();
        assert!(e.to_string().contains("`robot`"), "{e}");

        let two_names = ConnectionSchema::new().with_entity(
            EntitySchema::new("user")
                .with_property("cn", text().required())
                .with_property("sn", text().required())
                .with_property(PASSWORD, text().secret()),
        );
        let e = KitProfile::from_schema(&two_names, None).unwrap_err();
        assert_eq!(e.field, "name_property");
        assert!(e.message.contains("cn") && e.message.contains("sn"), "{e}");

        let required_key = ConnectionSchema::new().with_entity(
            EntitySchema::new("user")
                .with_property("cn", text().required())
                .with_property("description", text())
                .with_property(
                    "badge",
                    PropertySchema::new(ValueType::Integer).required().key(),
                )
                .with_property(PASSWORD, text().secret()),
        );
        let e = KitProfile::from_schema(&required_key, None).unwrap_err();
        assert_eq!(e.field, "account_values", "{e}");
    }
}
