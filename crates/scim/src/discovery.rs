//! What the service says it can do: `/ServiceProviderConfig` (PATCH, ETags, password changes,
//! filters and their page limit), `/ResourceTypes` (the endpoints of Users and Groups and their
//! schema extensions) and `/Schemas` (each attribute's type, mutability and uniqueness). The
//! package's capabilities, its declared [`ConnectionSchema`] and the property ↔ SCIM attribute
//! mapping are derived from them.

use crate::http::Http;
use autoprov_connector::schema::{ENABLED, MEMBER_OF, MEMBERS, PASSWORD, ValueType};
use autoprov_connector::{
    Capabilities, ConnectionSchema, ConnectorError, EntitySchema, ErrorKind, Operation,
    PropertySchema,
};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;

/// The core User schema (RFC 7643 §4.1).
pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema (RFC 7643 §4.2).
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Which of the two resource kinds an entity type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Users (`/Users`).
    User,
    /// Groups (`/Groups`).
    Group,
}

/// How one property maps to a SCIM attribute.
#[derive(Clone, Debug)]
pub(crate) struct Attr {
    /// The schema URN of an extension attribute (`None` for the core schema).
    pub(crate) extension: Option<String>,
    /// The top-level attribute (`title`, `name`, `active`).
    pub(crate) attribute: String,
    /// The sub-attribute of a complex attribute (`givenName` of `name`).
    pub(crate) sub: Option<String>,
    /// Its value type.
    pub(crate) kind: ValueType,
    /// Write-only (`password`).
    pub(crate) secret: bool,
    /// Orders may write it.
    pub(crate) writable: bool,
    /// Unique (`server` or `global` uniqueness).
    pub(crate) unique: bool,
}

impl Attr {
    /// The PATCH path of the attribute (`name.givenName`,
    /// `urn:…:enterprise:2.0:User:department`).
    pub(crate) fn path(&self) -> String {
        let mut p = match &self.extension {
            Some(urn) => format!("{urn}:{}", self.attribute),
            None => self.attribute.clone(),
        };
        if let Some(sub) = &self.sub {
            p.push('.');
            p.push_str(sub);
        }
        p
    }

    /// The attribute's value in a resource's JSON.
    pub(crate) fn get<'v>(&self, resource: &'v Value) -> Option<&'v Value> {
        let holder = match &self.extension {
            Some(urn) => resource.get(urn)?,
            None => resource,
        };
        let v = holder.get(&self.attribute)?;
        let v = match &self.sub {
            Some(sub) => v.get(sub)?,
            None => v,
        };
        (!v.is_null()).then_some(v)
    }
}

/// One resource type of the service.
#[derive(Clone, Debug)]
pub(crate) struct ResourceType {
    /// User or Group.
    pub(crate) kind: Kind,
    /// The entity type id orders name (the resource type's id: `User`, `Group`).
    pub(crate) entity_type: String,
    /// The endpoint below the base URL (`/Users`).
    pub(crate) endpoint: String,
    /// The core schema URN.
    pub(crate) schema: String,
    /// The properties, by name.
    pub(crate) attrs: BTreeMap<String, Attr>,
}

impl ResourceType {
    /// The property that names resources of this type: `userName` or `displayName`.
    pub(crate) fn name_property(&self) -> &'static str {
        match self.kind {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
}

/// The service's configuration, as discovered.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    /// PATCH is supported (needed for updates and memberships).
    pub(crate) patch: bool,
    /// ETags are supported: writes send `If-Match`.
    pub(crate) etag: bool,
    /// Passwords can be changed.
    pub(crate) change_password: bool,
    /// Filters are supported (needed for adoption, memberships and incremental exports).
    pub(crate) filter: bool,
    /// The most resources a filtered query returns.
    pub(crate) max_results: Option<u32>,
    /// Users, when the service has them.
    pub(crate) user: Option<ResourceType>,
    /// Groups, when the service has them.
    pub(crate) group: Option<ResourceType>,
}

fn supported(spc: &Value, feature: &str) -> bool {
    spc.get(feature)
        .and_then(|f| f.get("supported"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn resources(list: &Value) -> Vec<Value> {
    match list {
        // RFC 7644 §4 lists them as a ListResponse; some services answer a bare array.
        Value::Array(a) => a.clone(),
        other => other
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    }
}

fn value_type(attr: &Value) -> Option<ValueType> {
    Some(match attr.get("type").and_then(Value::as_str)? {
        "string" | "reference" | "decimal" => ValueType::String,
        "boolean" => ValueType::Bool,
        "integer" => ValueType::Integer,
        "dateTime" => ValueType::DateTime,
        "binary" => ValueType::Binary,
        _ => return None,
    })
}

fn flag(attr: &Value, key: &str) -> bool {
    attr.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn text<'v>(attr: &'v Value, key: &str) -> &'v str {
    attr.get(key).and_then(Value::as_str).unwrap_or("")
}

fn attr_of(extension: Option<&str>, attribute: &str, sub: Option<&str>, a: &Value) -> Option<Attr> {
    let mutability = text(a, "mutability");
    Some(Attr {
        extension: extension.map(str::to_owned),
        attribute: attribute.to_owned(),
        sub: sub.map(str::to_owned),
        kind: value_type(a)?,
        secret: mutability == "writeOnly",
        writable: matches!(mutability, "readWrite" | "writeOnly" | "immutable" | ""),
        unique: matches!(text(a, "uniqueness"), "server" | "global"),
    })
}

/// The properties of one schema: singular simple attributes by their name, singular complex
/// ones by `attribute.sub`; `active` as `enabled`; multi-valued ones are left out (members
/// and groups are navigations).
fn schema_attrs(schema: &Value, extension: Option<&str>, into: &mut BTreeMap<String, Attr>) {
    let Some(attrs) = schema.get("attributes").and_then(Value::as_array) else {
        return;
    };
    for a in attrs {
        let name = text(a, "name");
        if name.is_empty() || flag(a, "multiValued") || name == "id" {
            continue;
        }
        if text(a, "type") == "complex" {
            for s in a
                .get("subAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let sub = text(s, "name");
                if sub.is_empty() || flag(s, "multiValued") {
                    continue;
                }
                if let Some(attr) = attr_of(extension, name, Some(sub), s) {
                    into.entry(format!("{name}.{sub}")).or_insert(attr);
                }
            }
            continue;
        }
        let Some(attr) = attr_of(extension, name, None, a) else {
            continue;
        };
        let property = match name {
            "active" => ENABLED.to_owned(),
            "password" => PASSWORD.to_owned(),
            other => other.to_owned(),
        };
        // A core attribute wins over an extension attribute of the same name.
        into.entry(property).or_insert(attr);
    }
}

impl Service {
    /// Reads the three discovery endpoints.
    pub(crate) async fn discover(http: &Http) -> Result<Self, ConnectorError> {
        let get = |path: &'static str| async move {
            http.send(Operation::Configure, Method::GET, path, &[], None, None)
                .await
                .map(|r| r.body)
                .map_err(|e| {
                    let kind = e.kind();
                    let temp = e.is_temporary();
                    let e = ConnectorError::new(
                        kind,
                        Operation::Configure,
                        format!("discovering the service: {}", e.message()),
                    );
                    if temp { e.temporary() } else { e }
                })
        };
        let spc = get("/ServiceProviderConfig").await?;
        let types = get("/ResourceTypes").await?;
        let schemas = get("/Schemas").await?;
        let schemas: BTreeMap<String, Value> = resources(&schemas)
            .into_iter()
            .filter_map(|s| Some((s.get("id")?.as_str()?.to_owned(), s)))
            .collect();
        let mut user = None;
        let mut group = None;
        for t in resources(&types) {
            let schema = text(&t, "schema").to_owned();
            let kind = match schema.as_str() {
                USER_SCHEMA => Kind::User,
                GROUP_SCHEMA => Kind::Group,
                _ => continue,
            };
            let mut attrs = BTreeMap::new();
            if let Some(s) = schemas.get(&schema) {
                schema_attrs(s, None, &mut attrs);
            }
            for ext in t
                .get("schemaExtensions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let urn = text(ext, "schema");
                if let Some(s) = schemas.get(urn) {
                    schema_attrs(s, Some(urn), &mut attrs);
                }
            }
            // A common attribute (RFC 7643 §3.1), not listed in /Schemas.
            attrs.insert(
                "externalId".into(),
                Attr {
                    extension: None,
                    attribute: "externalId".into(),
                    sub: None,
                    kind: ValueType::String,
                    secret: false,
                    writable: true,
                    unique: false,
                },
            );
            let name = match kind {
                Kind::User => "userName",
                Kind::Group => "displayName",
            };
            if !attrs.contains_key(name) {
                return Err(ConnectorError::new(
                    ErrorKind::Unsupported,
                    Operation::Configure,
                    format!("the service's `{schema}` schema has no `{name}` attribute"),
                ));
            }
            let rt = ResourceType {
                kind,
                entity_type: if text(&t, "id").is_empty() {
                    text(&t, "name")
                } else {
                    text(&t, "id")
                }
                .to_owned(),
                endpoint: text(&t, "endpoint").to_owned(),
                schema,
                attrs,
            };
            match kind {
                Kind::User => user = Some(rt),
                Kind::Group => group = Some(rt),
            }
        }
        if user.is_none() && group.is_none() {
            return Err(ConnectorError::new(
                ErrorKind::Unsupported,
                Operation::Configure,
                "the service lists neither a User nor a Group resource type",
            ));
        }
        Ok(Self {
            patch: supported(&spc, "patch"),
            etag: supported(&spc, "etag"),
            change_password: supported(&spc, "changePassword"),
            filter: supported(&spc, "filter"),
            max_results: spc
                .get("filter")
                .and_then(|f| f.get("maxResults"))
                .and_then(Value::as_u64)
                .map(|n| n.min(u64::from(u32::MAX)) as u32),
            user,
            group,
        })
    }

    /// The resource type of an entity type id (exact, then without case).
    pub(crate) fn resource_type(&self, entity_type: &str) -> Option<&ResourceType> {
        [&self.user, &self.group]
            .into_iter()
            .flatten()
            .find(|t| t.entity_type == entity_type)
            .or_else(|| {
                [&self.user, &self.group]
                    .into_iter()
                    .flatten()
                    .find(|t| t.entity_type.eq_ignore_ascii_case(entity_type))
            })
    }

    /// The declared capabilities.
    pub(crate) fn capabilities(&self, incremental: bool) -> Capabilities {
        let mut c = Capabilities::none();
        c.create = true;
        c.delete = true;
        c.export = true;
        c.update = self.patch;
        c.rename = self.patch;
        c.membership = self.patch && self.filter && self.group.is_some() && self.user.is_some();
        let user_has = |p: &str| self.user.as_ref().is_some_and(|u| u.attrs.contains_key(p));
        c.enable_disable = self.patch && user_has(ENABLED);
        c.password = self.change_password && user_has(PASSWORD);
        c.incremental_export = incremental && self.filter;
        c.special_characters = true;
        c
    }

    /// The declared schema of the connection.
    pub(crate) fn schema(&self, capabilities: &Capabilities) -> ConnectionSchema {
        let mut schema = ConnectionSchema::new();
        for t in [&self.user, &self.group].into_iter().flatten() {
            let mut e = EntitySchema::new(t.entity_type.as_str());
            for (name, a) in &t.attrs {
                if a.secret && !capabilities.password {
                    continue;
                }
                let mut p = PropertySchema::new(a.kind);
                if a.secret {
                    p = p.secret();
                }
                if !a.writable || (!capabilities.update && name != t.name_property()) {
                    p = p.read_only();
                }
                if name == t.name_property() {
                    p = p.required();
                }
                if a.unique {
                    p = p.key();
                }
                e = e.with_property(name.clone(), p);
            }
            match t.kind {
                Kind::User => {
                    if let Some(g) = &self.group {
                        let mut p = PropertySchema::reference(Some(g.entity_type.as_str().into()))
                            .multi_valued();
                        if !capabilities.membership {
                            p = p.read_only();
                        }
                        e = e.with_property(MEMBER_OF, p);
                    }
                }
                Kind::Group => {
                    e = e.with_property(
                        MEMBERS,
                        PropertySchema::reference(None).multi_valued().read_only(),
                    );
                }
            }
            schema = schema.with_entity(e);
        }
        schema
    }
}
