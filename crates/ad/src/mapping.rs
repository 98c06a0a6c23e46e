//! The resource-type mapping: how the orders of one entity type become LDAP entries.
//!
//! Keyed by entity type id (the order's `ResourceType.TargetEntityType.Id`, falling back to its
//! `Identifier`). The defaults cover `user`, `group` and `organizationalUnit`:
//!
//! | | `user` | `group` | `organizationalUnit` |
//! |---|---|---|---|
//! | object classes | `user` | `group` | `organizationalUnit` |
//! | RDN | `CN` from `cn`, else `sAMAccountName` | `CN` from `cn`, else `sAMAccountName` | `OU` from `ou`, else `name` |
//! | required | `sAMAccountName` | `sAMAccountName` | — |
//! | parent | `parentdn`, default `CN=Users,<base>` | `parentdn`, default `CN=Users,<base>` | `parentdn` (required) |
//! | `enabled` ⇒ `userAccountControl` | yes | — | — |
//! | password | `password` from the order, else generated (16: 3 lower, 3 upper, 3 digits, 2 symbols) | — | — |
//! | membership `memberOf` ⇒ group `member` | yes | yes (nested groups) | — |
//! | DN-valued properties | `manager` | `managedBy` | `managedBy` |
//! | delete | delete | delete | tree delete |
//!
//! Permissive modify is on everywhere. Property names map to LDAP attributes through
//! `Attributes` (identity for any property not listed).
//!
//! **An allow-list.** An order writes only the properties its mapping declares (the schema
//! below: `Properties`, `Attributes`, `References`, the RDN and required properties, `Kinds`)
//! and those the package manages itself (parent, `enabled`, password, must-change,
//! membership); names are compared without case, as LDAP does. Anything else is refused
//! before any write with a permanent `InvalidOrder` naming the order and the property:
//! an undeclared property, an attribute option (`userCertificate;binary`,
//! `member;range=0-1`), a name that is no attribute name (`cn=x,dc=…`, spaces, NUL), a
//! protected or directory-maintained attribute, and a **sensitive** attribute
//! ([`SENSITIVE_ATTRIBUTES`]: `member`, `userAccountControl`, `servicePrincipalName`,
//! `msDS-KeyCredentialLink`, `msDS-AllowedToActOnBehalfOfOtherIdentity`,
//! `nTSecurityDescriptor`, `primaryGroupID`, `adminCount`, `sIDHistory`, …) unless the mapping
//! names that property explicitly in `Properties` or `Attributes` (the per-mapping opt-in;
//! `Kinds` only types exports and opts nothing in).
//!
//! Each mapping declares its entity type's schema ([`EntityMapping::schema`], one
//! [`EntitySchema`] per type; [`AdConnector`](crate::AdConnector) returns them all from
//! `Connector::schema`): the properties it names — RDN, required, parent, `enabled`, the
//! write-only password, `memberOf`, the mapped attributes, the DN-valued references and the
//! typed ones — with their type and flags.

use crate::settings::SettingsError;
use autoprov_connector::schema::{self, EntitySchema, PropertySchema, ValueType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Attributes an order may not write directly (lower case).
pub(crate) const PROTECTED: &[&str] = &[
    "objectclass",
    "objectguid",
    "objectsid",
    "distinguishedname",
    "unicodepwd",
    "userpassword",
    "memberof",
    "name",
];

/// Attributes an order may write only when its mapping names the property explicitly in
/// [`EntityMapping::properties`] or [`EntityMapping::attributes`] (lower case): they grant
/// rights, change group membership behind the membership rules, or take over an account.
/// `userAccountControl` is written by the package itself from the enabled property.
pub const SENSITIVE_ATTRIBUTES: &[&str] = &[
    "member",
    "useraccountcontrol",
    "serviceprincipalname",
    "msds-keycredentiallink",
    "msds-allowedtoactonbehalfofotheridentity",
    "msds-allowedtodelegateto",
    "altsecurityidentities",
    "ntsecuritydescriptor",
    "primarygroupid",
    "admincount",
    "sidhistory",
];

/// Attributes the directory maintains itself (lower case): exported, never written.
const SYSTEM_MAINTAINED: &[&str] = &[
    "usnchanged",
    "usncreated",
    "badpwdcount",
    "logoncount",
    "whenchanged",
    "whencreated",
];

/// How the AD package generates an initial password when the order carries none: the fallback
/// for resource types without `PasswordResetSettings` (with them, the dispatcher generates the
/// password and passes it in the order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Total length (at least the sum of the minimums).
    pub length: usize,
    /// Minimum count of lower-case letters.
    pub lower: usize,
    /// Minimum count of upper-case letters.
    pub upper: usize,
    /// Minimum count of digits.
    pub digits: usize,
    /// Minimum count of symbols.
    pub symbols: usize,
}

impl PasswordPolicy {
    /// The rule of the codebase's one generator ([`autoprov_core::password::generate`]).
    pub fn rule(&self) -> autoprov_core::password::GeneratorRule {
        autoprov_core::password::GeneratorRule {
            length: self.length,
            lower: self.lower,
            upper: self.upper,
            digits: self.digits,
            symbols: self.symbols,
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: 16,
            lower: 3,
            upper: 3,
            digits: 3,
            symbols: 2,
        }
    }
}

/// Password settings of an entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct PasswordSettings {
    /// The order property holding the initial password (a `Secret`). Default `password`.
    pub property: String,
    /// Generate a password when an Added order carries none. `None`: create without one.
    pub generate: Option<PasswordPolicy>,
    /// The order property (bool) saying the user must change the password at first logon.
    /// Default `mustChangePassword`.
    pub must_change_property: String,
    /// Must-change when the order does not say (default `false`). Applies to created accounts.
    pub must_change_by_default: bool,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            property: schema::PASSWORD.to_owned(),
            generate: Some(PasswordPolicy::default()),
            must_change_property: schema::MUST_CHANGE_PASSWORD.to_owned(),
            must_change_by_default: false,
        }
    }
}

/// Group membership written on the groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct MembershipSettings {
    /// The multi-valued navigation on the account (`memberOf`): its `_add`/`_remove` deltas.
    pub property: String,
    /// The attribute written on each group (`member`): value-level add/delete, never replace.
    pub group_attribute: String,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        Self {
            property: schema::MEMBER_OF.to_owned(),
            group_attribute: schema::MEMBERS.to_owned(),
        }
    }
}

/// The mapping of one entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EntityMapping {
    /// The `objectClass` values written on creation (`["user"]`).
    pub object_classes: Vec<String>,
    /// The search filter that selects this type in exports, e.g.
    /// `(&(objectCategory=person)(objectClass=user))`. From configuration, not from orders.
    pub filter: String,
    /// The RDN attribute (`CN`, `OU`).
    pub rdn_attribute: String,
    /// The order properties that give the RDN value, first present wins (`["cn",
    /// "sAMAccountName"]`). A change of the one mapped to the RDN attribute renames the entry.
    pub rdn_properties: Vec<String>,
    /// Properties an Added order must give (`sAMAccountName` for accounts and groups: AD would
    /// otherwise invent one).
    #[serde(default)]
    pub required_properties: Vec<String>,
    /// The mono-valued navigation holding the parent DN (`parentdn`).
    #[serde(default = "default_parent_property")]
    pub parent_property: String,
    /// The parent when an Added order gives none: a DN, or a DN relative to the server's base
    /// DN (`CN=Users`). `None`: the parent is required.
    #[serde(default)]
    pub default_parent: Option<String>,
    /// The bool property that drives `userAccountControl` (`enabled`). `None`: not an account.
    #[serde(default)]
    pub enabled_property: Option<String>,
    /// Password settings. `None`: no password (groups, OUs).
    #[serde(default)]
    pub password: Option<PasswordSettings>,
    /// Membership written on the groups. `None`: no membership.
    #[serde(default)]
    pub membership: Option<MembershipSettings>,
    /// Send AD's permissive-modify control (1.2.840.113556.1.4.1413) with membership changes,
    /// so adding a present member or removing an absent one succeeds (default `true`).
    #[serde(default = "yes")]
    pub permissive_modify: bool,
    /// Delete with AD's tree-delete control (1.2.840.113556.1.4.805): the entry and everything
    /// below it (default `false`).
    #[serde(default)]
    pub tree_delete: bool,
    /// A Deleted order disables the account instead of deleting it (default `false`).
    #[serde(default)]
    pub disable_instead_of_delete: bool,
    /// Order property ⇒ LDAP attribute. Properties not listed map to the attribute of the same
    /// name.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// DN-valued properties, written from a reference's `dn` and exported as references
    /// (`manager`).
    #[serde(default)]
    pub references: BTreeSet<String>,
    /// The attributes an export reads (default `["*"]`: every user attribute).
    #[serde(default = "default_export_attributes")]
    pub export_attributes: Vec<String>,
    /// The typing of exported values by property (default: text).
    #[serde(default)]
    pub kinds: BTreeMap<String, ValueType>,
    /// The allow-list: properties orders may write beyond those the other fields name, each
    /// with its declared type and flags (`Writable: false` declares it export-only). Naming a
    /// sensitive attribute ([`SENSITIVE_ATTRIBUTES`]) here is the explicit opt-in that lets
    /// orders write it. The defaults declare the usual person and group attributes
    /// ([`EntityMapping::user`]).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertySchema>,
}

/// Why an order may not write a property ([`EntityMapping::writable_attribute`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WriteRefusal {
    /// `name;option`.
    AttributeOption,
    /// Not an attribute name at all (`cn=x,dc=y`, spaces, NUL).
    NotAnAttributeName,
    /// `objectClass`, `unicodePwd`, `memberOf`, ... (the attribute).
    Protected(String),
    /// `uSNChanged`, `whenChanged`, ... (the attribute).
    SystemMaintained(String),
    /// A sensitive attribute the mapping does not name explicitly (the attribute).
    Sensitive(String),
    /// The mapping does not declare the property.
    Undeclared,
    /// Declared export-only (`Writable: false`).
    ReadOnly,
}

impl WriteRefusal {
    /// The reason, for an error that names the property.
    pub(crate) fn describe(&self, property: &str, entity_type: &str) -> String {
        // Shown escaped: a name may hold a NUL or a line break.
        let property = property.escape_debug();
        match self {
            Self::AttributeOption => {
                format!("property `{property}` has an attribute option (`name;option`): refused")
            }
            Self::NotAnAttributeName => {
                format!("property `{property}` is not a valid LDAP attribute name")
            }
            Self::Protected(a) => {
                format!("property `{property}` (LDAP `{a}`) cannot be written by an order")
            }
            Self::SystemMaintained(a) => format!(
                "property `{property}` (LDAP `{a}`) is maintained by the directory: read-only"
            ),
            Self::Sensitive(a) => format!(
                "property `{property}` writes the sensitive attribute `{a}`: refused unless the \
                 `{entity_type}` mapping names it explicitly (Properties or Attributes)"
            ),
            Self::Undeclared => format!(
                "property `{property}` is not declared by the `{entity_type}` mapping (its \
                 allow-list: Properties, Attributes, References, RdnProperties, \
                 RequiredProperties)"
            ),
            Self::ReadOnly => format!(
                "property `{property}` is declared read-only by the `{entity_type}` mapping"
            ),
        }
    }
}

fn yes() -> bool {
    true
}

/// The export typing of the directory-maintained attributes every default mapping types.
const SYSTEM_KINDS: &[(&str, ValueType)] = &[
    ("uSNChanged", ValueType::Integer),
    ("uSNCreated", ValueType::Integer),
];

/// A `Kinds` map of the default mappings: `SYSTEM_KINDS` and `own`.
fn kinds(own: &[(&str, ValueType)]) -> BTreeMap<String, ValueType> {
    SYSTEM_KINDS
        .iter()
        .chain(own)
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect()
}

/// A `Properties` map of the default mappings: text properties and typed ones.
fn declared(texts: &[&str], typed: &[(&str, ValueType)]) -> BTreeMap<String, PropertySchema> {
    texts
        .iter()
        .map(|t| (*t, ValueType::String))
        .chain(typed.iter().copied())
        .map(|(name, kind)| (name.to_owned(), PropertySchema::new(kind)))
        .collect()
}

fn default_parent_property() -> String {
    schema::PARENT.to_owned()
}

fn default_export_attributes() -> Vec<String> {
    vec!["*".to_owned()]
}

impl EntityMapping {
    /// A mapping with the given classes, filter and RDN, and defaults for the rest.
    pub fn new(
        object_classes: impl IntoIterator<Item = impl Into<String>>,
        filter: impl Into<String>,
        rdn_attribute: impl Into<String>,
        rdn_properties: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            object_classes: object_classes.into_iter().map(Into::into).collect(),
            filter: filter.into(),
            rdn_attribute: rdn_attribute.into(),
            rdn_properties: rdn_properties.into_iter().map(Into::into).collect(),
            required_properties: Vec::new(),
            parent_property: default_parent_property(),
            default_parent: None,
            enabled_property: None,
            password: None,
            membership: None,
            permissive_modify: true,
            tree_delete: false,
            disable_instead_of_delete: false,
            attributes: BTreeMap::new(),
            references: BTreeSet::new(),
            export_attributes: default_export_attributes(),
            kinds: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// The default mapping of AD user accounts.
    pub fn user() -> Self {
        let mut m = Self::new(
            ["user"],
            "(&(objectCategory=person)(objectClass=user))",
            "CN",
            ["cn", "sAMAccountName"],
        );
        m.default_parent = Some("CN=Users".into());
        m.required_properties = vec!["sAMAccountName".into()];
        m.enabled_property = Some(schema::ENABLED.into());
        m.password = Some(PasswordSettings::default());
        m.membership = Some(MembershipSettings::default());
        m.references = ["manager".to_owned()].into();
        m.kinds = kinds(&[
            ("userAccountControl", ValueType::Integer),
            ("pwdLastSet", ValueType::Integer),
            ("accountExpires", ValueType::Integer),
            ("badPwdCount", ValueType::Integer),
            ("logonCount", ValueType::Integer),
            ("primaryGroupID", ValueType::Integer),
            ("objectSid", ValueType::Binary),
        ]);
        m.properties = declared(
            &[
                "description",
                "displayName",
                "givenName",
                "sn",
                "initials",
                "mail",
                "userPrincipalName",
                "title",
                "department",
                "company",
                "division",
                "employeeID",
                "employeeNumber",
                "employeeType",
                "telephoneNumber",
                "mobile",
                "physicalDeliveryOfficeName",
                "streetAddress",
                "l",
                "st",
                "postalCode",
                "c",
                "co",
                "info",
            ],
            &[("accountExpires", ValueType::Integer)],
        );
        m
    }

    /// The default mapping of AD groups.
    pub fn group() -> Self {
        let mut m = Self::new(
            ["group"],
            "(objectClass=group)",
            "CN",
            ["cn", "sAMAccountName"],
        );
        m.default_parent = Some("CN=Users".into());
        m.required_properties = vec!["sAMAccountName".into()];
        m.membership = Some(MembershipSettings::default());
        m.references = ["managedBy".to_owned()].into();
        m.kinds = kinds(&[
            ("groupType", ValueType::Integer),
            ("objectSid", ValueType::Binary),
        ]);
        m.properties = declared(&["description", "displayName", "mail", "info"], &[]);
        m
    }

    /// The default mapping of organizational units (deleted with tree delete).
    pub fn organizational_unit() -> Self {
        let mut m = Self::new(
            ["organizationalUnit"],
            "(objectClass=organizationalUnit)",
            "OU",
            ["ou", "name"],
        );
        m.tree_delete = true;
        m.references = ["managedBy".to_owned()].into();
        m.kinds = kinds(&[]);
        m.properties = declared(
            &["description", "l", "st", "street", "postalCode", "c", "co"],
            &[],
        );
        m
    }

    /// The LDAP attribute of an order property.
    pub fn attribute_of<'a>(&'a self, property: &'a str) -> &'a str {
        self.attributes
            .get(property)
            .map(String::as_str)
            .unwrap_or(property)
    }

    /// The order property of an LDAP attribute (the inverse of [`Self::attribute_of`]).
    pub fn property_of<'a>(&'a self, attribute: &'a str) -> &'a str {
        self.attributes
            .iter()
            .find(|(_, a)| a.eq_ignore_ascii_case(attribute))
            .map(|(p, _)| p.as_str())
            .unwrap_or(attribute)
    }

    /// The attribute on each group that memberships are written to (`member` by default).
    pub fn group_attribute(&self) -> &str {
        self.membership
            .as_ref()
            .map_or(schema::MEMBERS, |ms| ms.group_attribute.as_str())
    }

    /// Whether a property is DN-valued.
    pub fn is_reference(&self, property: &str) -> bool {
        self.references.contains(property)
    }

    /// The property whose change renames the entry: the first RDN property mapped to the RDN
    /// attribute.
    pub fn rename_property(&self) -> Option<&str> {
        self.rdn_properties
            .iter()
            .find(|p| {
                self.attribute_of(p)
                    .eq_ignore_ascii_case(&self.rdn_attribute)
            })
            .map(String::as_str)
    }

    /// The export typing of a property.
    pub fn kind_of(&self, property: &str) -> ValueType {
        self.kinds.get(property).copied().unwrap_or_default()
    }

    /// Every property name the mapping declares, the managed ones (parent, enabled, password,
    /// must-change, membership) included.
    fn declared_names(&self) -> impl Iterator<Item = &str> {
        let managed = [
            Some(self.parent_property.as_str()),
            self.enabled_property.as_deref(),
            self.password.as_ref().map(|p| p.property.as_str()),
            self.password
                .as_ref()
                .map(|p| p.must_change_property.as_str()),
            self.membership.as_ref().map(|m| m.property.as_str()),
        ];
        self.rdn_properties
            .iter()
            .chain(&self.required_properties)
            .chain(self.attributes.keys())
            .chain(&self.references)
            .chain(self.kinds.keys())
            .chain(self.properties.keys())
            .map(String::as_str)
            .chain(managed.into_iter().flatten())
    }

    /// The declared name of a property, compared without case (as LDAP compares attribute
    /// names).
    pub(crate) fn declared_name(&self, property: &str) -> Option<&str> {
        self.declared_names().find(|n| *n == property).or_else(|| {
            self.declared_names()
                .find(|n| n.eq_ignore_ascii_case(property))
        })
    }

    /// Whether the mapping names a property explicitly in `Properties` or `Attributes` (the
    /// opt-in for sensitive attributes).
    fn names_explicitly(&self, declared: &str) -> bool {
        self.properties
            .keys()
            .chain(self.attributes.keys())
            .any(|n| n.eq_ignore_ascii_case(declared))
    }

    /// Whether an order may write `property` as a plain attribute, and which attribute (with
    /// the property's declared name). Not for the managed properties (parent, enabled,
    /// password, must-change, membership), which the package writes itself.
    pub(crate) fn writable_attribute<'a>(
        &'a self,
        property: &'a str,
    ) -> Result<(&'a str, &'a str), WriteRefusal> {
        if property.contains(';') {
            return Err(WriteRefusal::AttributeOption);
        }
        if !is_attr_name(property) {
            return Err(WriteRefusal::NotAnAttributeName);
        }
        let declared = self.declared_name(property);
        let attribute = self.attribute_of(declared.unwrap_or(property));
        if attribute.contains(';') {
            return Err(WriteRefusal::AttributeOption);
        }
        let lower = attribute.to_ascii_lowercase();
        if PROTECTED.contains(&lower.as_str()) {
            return Err(WriteRefusal::Protected(attribute.to_owned()));
        }
        if SYSTEM_MAINTAINED.contains(&lower.as_str()) {
            return Err(WriteRefusal::SystemMaintained(attribute.to_owned()));
        }
        let explicit = declared.is_some_and(|d| self.names_explicitly(d));
        if SENSITIVE_ATTRIBUTES.contains(&lower.as_str()) && !explicit {
            return Err(WriteRefusal::Sensitive(attribute.to_owned()));
        }
        let Some(declared) = declared else {
            return Err(WriteRefusal::Undeclared);
        };
        if self
            .properties
            .iter()
            .any(|(n, p)| n.eq_ignore_ascii_case(declared) && !p.writable)
        {
            return Err(WriteRefusal::ReadOnly);
        }
        Ok((declared, attribute))
    }

    /// The declared schema of `entity_type` under this mapping: every property the mapping
    /// names, with its type (from `Kinds`, `References` and the built-in roles) and flags.
    /// `sAMAccountName` is a key (unique in a domain); protected and directory-maintained
    /// attributes are read-only; the password is secret.
    pub fn schema(&self, entity_type: &str) -> EntitySchema {
        let mut properties: BTreeMap<String, PropertySchema> = BTreeMap::new();
        let typed = |name: &str| {
            let kind = if self.is_reference(name) {
                ValueType::Reference
            } else {
                self.kind_of(name)
            };
            let attribute = self.attribute_of(name).to_ascii_lowercase();
            let mut p = self
                .properties
                .get(name)
                .cloned()
                .unwrap_or_else(|| PropertySchema::new(kind));
            p.writable = self.writable_attribute(name).is_ok();
            p.key = p.key || attribute == "samaccountname";
            p
        };
        let names = self
            .rdn_properties
            .iter()
            .chain(&self.required_properties)
            .chain(self.attributes.keys())
            .chain(&self.references)
            .chain(self.kinds.keys())
            .chain(self.properties.keys());
        for name in names {
            properties.insert(name.clone(), typed(name));
        }
        for name in &self.required_properties {
            if let Some(p) = properties.get_mut(name) {
                p.required = true;
            }
        }
        let mut parent = PropertySchema::reference(None);
        parent.required = self.default_parent.is_none();
        properties.insert(self.parent_property.clone(), parent);
        if let Some(enabled) = &self.enabled_property {
            properties.insert(enabled.clone(), PropertySchema::new(ValueType::Bool));
        }
        if let Some(pw) = &self.password {
            properties.insert(
                pw.property.clone(),
                PropertySchema::new(ValueType::String).secret(),
            );
            properties.insert(
                pw.must_change_property.clone(),
                PropertySchema::new(ValueType::Bool),
            );
        }
        if let Some(ms) = &self.membership {
            properties.insert(
                ms.property.clone(),
                PropertySchema::reference(Some("group".into())).multi_valued(),
            );
        }
        properties
            .into_iter()
            .fold(EntitySchema::new(entity_type), |e, (name, p)| {
                e.with_property(name, p)
            })
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), SettingsError> {
        let err = |field: &str, msg: &str| SettingsError::new(format!("{at}.{field}"), msg);
        if self.object_classes.is_empty() || self.object_classes.iter().any(|c| !is_attr_name(c)) {
            return Err(err(
                "ObjectClasses",
                "at least one valid object class is required",
            ));
        }
        let f = self.filter.trim();
        if !(f.starts_with('(') && f.ends_with(')'))
            || f.matches('(').count() != f.matches(')').count()
        {
            return Err(err("Filter", "expected a parenthesized LDAP filter"));
        }
        if !is_attr_name(&self.rdn_attribute) {
            return Err(err(
                "RdnAttribute",
                "expected an attribute name such as CN or OU",
            ));
        }
        if self.rdn_properties.is_empty() {
            return Err(err("RdnProperties", "at least one property is required"));
        }
        if let Some(parent) = &self.default_parent {
            autoprov_connector::dn::Dn::parse(parent)
                .map_err(|e| err("DefaultParent", &e.to_string()))?;
        }
        if let Some(pw) = &self.password
            && let Some(policy) = &pw.generate
        {
            let min = policy.lower + policy.upper + policy.digits + policy.symbols;
            if policy.length == 0 || policy.length > 256 || policy.length < min {
                return Err(err(
                    "Password.Generate.Length",
                    "must be between 1 and 256 and at least Lower + Upper + Digits + Symbols",
                ));
            }
        }
        if self.disable_instead_of_delete && self.enabled_property.is_none() {
            return Err(err(
                "DisableInsteadOfDelete",
                "needs EnabledProperty (only accounts can be disabled)",
            ));
        }
        for (property, attribute) in &self.attributes {
            if !is_attr_name(attribute) {
                return Err(err(
                    &format!("Attributes.{property}"),
                    "expected an LDAP attribute name, without options (`name;option`)",
                ));
            }
        }
        let names = self
            .properties
            .keys()
            .map(|p| (p, "Properties"))
            .chain(self.attributes.keys().map(|p| (p, "Attributes")));
        for (property, field) in names {
            if !is_attr_name(property) {
                return Err(err(
                    &format!("{field}.{property}"),
                    "expected a property name made of letters, digits, `-` and `.`, without \
                     options (`name;option`)",
                ));
            }
        }
        if self.export_attributes.is_empty() {
            return Err(err(
                "ExportAttributes",
                "at least one attribute (or `*`) is required",
            ));
        }
        Ok(())
    }
}

/// Whether a name is a plausible attribute name or OID (`sAMAccountName`, `1.2.3`), without
/// options (`name;option` is not one).
pub(crate) fn is_attr_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The default mapping: `user`, `group` and `organizationalUnit`.
pub fn default_entity_types() -> BTreeMap<String, EntityMapping> {
    [
        ("user".to_owned(), EntityMapping::user()),
        ("group".to_owned(), EntityMapping::group()),
        (
            "organizationalUnit".to_owned(),
            EntityMapping::organizational_unit(),
        ),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of the default mappings' declared schema is
    /// `ConnectionSchema::to_markdown` of them, so it cannot drift from the code.
    #[test]
    fn readme_schema_table_is_the_default_schema() {
        let schema = default_entity_types().iter().fold(
            autoprov_connector::ConnectionSchema::new(),
            |schema, (entity_type, m)| schema.with_entity(m.schema(entity_type)),
        );
        let table = schema.to_markdown();
        let readme = include_str!("../README.md");
        let (start, end) = ("<!-- schema-table:start -->\n", "<!-- schema-table:end -->");
        let from = readme
            .find(start)
            .expect("the README marks its schema table")
            + start.len();
        let to = readme[from..]
            .find(end)
            .expect("the README ends its schema table")
            + from;
        assert!(
            readme[from..to] == table,
            "the README's schema table is stale; replace it with:\n{table}"
        );
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_json() {
        let map = default_entity_types();
        for (name, m) in &map {
            m.validate(name).unwrap();
        }
        let json = serde_json::to_value(&map).unwrap();
        let back: BTreeMap<String, EntityMapping> = serde_json::from_value(json).unwrap();
        assert_eq!(back, map);
        assert_eq!(map["user"].rename_property(), Some("cn"));
        assert_eq!(map["organizationalUnit"].rename_property(), Some("ou"));
    }

    #[test]
    fn attribute_mapping_is_identity_unless_listed() {
        let mut m = EntityMapping::user();
        m.attributes.insert("login".into(), "sAMAccountName".into());
        assert_eq!(m.attribute_of("login"), "sAMAccountName");
        assert_eq!(m.attribute_of("mail"), "mail");
        assert_eq!(m.property_of("samaccountname"), "login");
        assert_eq!(m.property_of("mail"), "mail");
    }

    #[test]
    fn invalid_mappings_name_the_field() {
        let mut m = EntityMapping::user();
        m.password.as_mut().unwrap().generate = Some(PasswordPolicy {
            length: 4,
            ..PasswordPolicy::default()
        });
        let e = m.validate("EntityTypes.user").unwrap_err();
        assert_eq!(e.setting, "EntityTypes.user.Password.Generate.Length");
        let mut m = EntityMapping::group();
        m.disable_instead_of_delete = true;
        assert_eq!(
            m.validate("g").unwrap_err().setting,
            "g.DisableInsteadOfDelete"
        );
        let mut m = EntityMapping::group();
        m.filter = "objectClass=group".into();
        assert_eq!(m.validate("g").unwrap_err().setting, "g.Filter");
        let mut m = EntityMapping::group();
        m.attributes.insert("x".into(), "bad attr)".into());
        assert_eq!(m.validate("g").unwrap_err().setting, "g.Attributes.x");
    }

    #[test]
    fn mappings_declare_their_schema() {
        let user = EntityMapping::user().schema("user");
        assert_eq!(user.entity_type.as_str(), "user");
        let sam = user.property("sAMAccountName").unwrap();
        assert!(sam.required && sam.key && sam.writable);
        assert_eq!(user.secrets().collect::<Vec<_>>(), [schema::PASSWORD]);
        assert!(user.property(schema::MEMBER_OF).unwrap().multi_valued);
        assert_eq!(user.property("manager").unwrap().kind, ValueType::Reference);
        assert_eq!(
            user.property(schema::ENABLED).unwrap().kind,
            ValueType::Bool
        );
        assert!(!user.property(schema::PARENT).unwrap().required);
        let usn = user.property("uSNChanged").unwrap();
        assert!(usn.kind == ValueType::Integer && !usn.writable);
        assert!(!user.property("objectSid").unwrap().writable);
        let ou = EntityMapping::organizational_unit().schema("organizationalUnit");
        assert!(ou.property(schema::PARENT).unwrap().required);
        assert!(ou.property(schema::PASSWORD).is_none());
        assert_eq!(ou.keys().count(), 0);
    }

    /// The opt-in as configuration writes it (the README's example): `Properties` takes the
    /// declared-schema type, and naming a sensitive attribute there makes it writable.
    #[test]
    fn properties_are_read_from_json_and_opt_in_sensitive_attributes() {
        let m: EntityMapping = serde_json::from_str(
            r#"{"ObjectClasses": ["user"], "Filter": "(&(objectClass=user)(servicePrincipalName=*))",
                "RdnAttribute": "CN", "RdnProperties": ["cn"],
                "Properties": {"servicePrincipalName": {"Kind": "String"},
                               "employeeID": {"Kind": "String", "Writable": false}}}"#,
        )
        .unwrap();
        m.validate("EntityTypes.serviceAccount").unwrap();
        assert!(m.writable_attribute("servicePrincipalName").is_ok());
        assert!(m.writable_attribute("serviceprincipalname").is_ok());
        assert_eq!(
            m.writable_attribute("employeeID"),
            Err(WriteRefusal::ReadOnly)
        );
        assert_eq!(
            m.writable_attribute("nTSecurityDescriptor"),
            Err(WriteRefusal::Sensitive("nTSecurityDescriptor".into()))
        );
        assert_eq!(m.writable_attribute("mail"), Err(WriteRefusal::Undeclared));
        let schema = m.schema("serviceAccount");
        assert!(schema.property("servicePrincipalName").unwrap().writable);
        assert!(!schema.property("employeeID").unwrap().writable);
        let e = serde_json::from_str::<EntityMapping>(
            r#"{"ObjectClasses": ["user"], "Filter": "(objectClass=user)", "RdnAttribute": "CN",
                "RdnProperties": ["cn"], "Properties": {"x": {"Kind": "String", "Writeable": true}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Writeable"), "{e}");
    }
}
