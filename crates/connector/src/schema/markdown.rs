//! The declared schema as documentation ([`ConnectionSchema::to_markdown`]).

use super::{ConnectionSchema, PropertySchema, ValueType};
use std::fmt::Write as _;

impl ConnectionSchema {
    /// The schema as a Markdown table, one row per property, entity types and properties in
    /// name order: entity, property, type (a reference with its target: `reference → group`),
    /// then `yes` or nothing for multi-valued, required, key and secret, and `no` for a
    /// read-only property. A package's README can embed it, and a test compare it with the
    /// README so the two never drift.
    ///
    /// ```
    /// use autoprov_connector::schema::{ConnectionSchema, EntitySchema, PropertySchema, ValueType};
    /// let schema = ConnectionSchema::new().with_entity(
    ///     EntitySchema::new("user")
    ///         .with_property("uid", PropertySchema::new(ValueType::String).required().key())
    ///         .with_property("password", PropertySchema::new(ValueType::String).secret())
    ///         .with_property("memberOf", PropertySchema::reference(Some("group".into())).multi_valued())
    ///         .with_property("usn", PropertySchema::new(ValueType::Integer).read_only()),
    /// );
    /// assert_eq!(schema.to_markdown(), "\
    /// | entity | property | type | multi | required | key | secret | writable |
    /// |---|---|---|---|---|---|---|---|
    /// | `user` | `memberOf` | reference → `group` | yes |  |  |  | yes |
    /// | `user` | `password` | string |  |  |  | yes | yes |
    /// | `user` | `uid` | string |  | yes | yes |  | yes |
    /// | `user` | `usn` | integer |  |  |  |  | no |
    /// ");
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| entity | property | type | multi | required | key | secret | writable |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let flag = |b: bool| if b { "yes" } else { "" };
        for (entity_type, entity) in &self.entities {
            for (name, p) in &entity.properties {
                let _ = writeln!(
                    out,
                    "| `{entity_type}` | `{}` | {} | {} | {} | {} | {} | {} |",
                    name.replace('|', "\\|"),
                    type_cell(p),
                    flag(p.multi_valued),
                    flag(p.required),
                    flag(p.key),
                    flag(p.secret),
                    if p.writable { "yes" } else { "no" },
                );
            }
        }
        out
    }
}

fn type_cell(p: &PropertySchema) -> String {
    match (&p.kind, &p.target) {
        (ValueType::Reference, Some(target)) => format!("reference → `{target}`"),
        (kind, _) => kind.describe().to_owned(),
    }
}
