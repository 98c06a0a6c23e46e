//! Property values: scalars, references (navigations) and their JSON mapping.
//!
//! The interchange JSON of SPEC §6 is untyped, so the mapping is fixed here once:
//!
//! | Rust | JSON |
//! |---|---|
//! | [`ScalarValue::String`] | string |
//! | [`ScalarValue::Integer`] | integer number |
//! | [`ScalarValue::Bool`] | `true` / `false` |
//! | [`ScalarValue::DateTime`] | RFC 3339 UTC string, e.g. `"2026-01-31T08:00:00Z"` |
//! | [`ScalarValue::Binary`] | `{"$base64": "..."}` |
//! | [`ScalarValue::Secret`] | `{"$secret": "********"}` (masked on output; read in clear) |
//! | [`Reference`] | object of string keys, e.g. `{"dn": "CN=..."}` or `{"Id": "r-1"}` |
//! | several references | array of reference objects |
//!
//! A string that is exactly a canonical RFC 3339 UTC timestamp (the form autoprov writes) is read
//! back as a date-time; every other string stays a string. An object with a `$base64` or
//! `$secret` key is a binary or secret value and holds no other key; so a mono-valued reference
//! cannot use those two tags as keys.

use crate::secret::Secret;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

const BINARY_TAG: &str = "$base64";
const SECRET_TAG: &str = "$secret";

/// One scalar property value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScalarValue {
    /// Text.
    String(String),
    /// A signed integer.
    Integer(i64),
    /// A boolean.
    Bool(bool),
    /// A point in time, UTC.
    DateTime(DateTime<Utc>),
    /// Raw bytes (e.g. a photo, a SID).
    Binary(Vec<u8>),
    /// A write-only secret (a password); never compared, never exported.
    Secret(Secret),
}

impl ScalarValue {
    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an integer, when it is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Self::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether the value is a secret.
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret(_))
    }

    /// The name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::String(_) => "string",
            Self::Integer(_) => "integer",
            Self::Bool(_) => "bool",
            Self::DateTime(_) => "date-time",
            Self::Binary(_) => "binary",
            Self::Secret(_) => "secret",
        }
    }

    /// A text rendering for reports and diffs; secrets are masked.
    pub fn display_text(&self) -> String {
        self.to_string()
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::String(s) => serde_json::Value::String(s.clone()),
            Self::Integer(i) => serde_json::Value::from(*i),
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::DateTime(d) => serde_json::Value::String(format_datetime(d)),
            Self::Binary(b) => {
                let mut map = serde_json::Map::new();
                map.insert(
                    BINARY_TAG.into(),
                    base64::engine::general_purpose::STANDARD.encode(b).into(),
                );
                serde_json::Value::Object(map)
            }
            Self::Secret(s) => {
                let mut map = serde_json::Map::new();
                map.insert(SECRET_TAG.into(), s.to_string().into());
                serde_json::Value::Object(map)
            }
        }
    }
}

impl fmt::Debug for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "String({s:?})"),
            Self::Integer(i) => write!(f, "Integer({i})"),
            Self::Bool(b) => write!(f, "Bool({b})"),
            Self::DateTime(d) => write!(f, "DateTime({})", format_datetime(d)),
            Self::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
            Self::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::DateTime(d) => f.write_str(&format_datetime(d)),
            Self::Binary(b) => write!(
                f,
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
            Self::Secret(s) => write!(f, "{s}"),
        }
    }
}

impl From<&str> for ScalarValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}
impl From<String> for ScalarValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}
impl From<i64> for ScalarValue {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}
impl From<bool> for ScalarValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}
impl From<DateTime<Utc>> for ScalarValue {
    fn from(value: DateTime<Utc>) -> Self {
        Self::DateTime(value)
    }
}
impl From<Vec<u8>> for ScalarValue {
    fn from(value: Vec<u8>) -> Self {
        Self::Binary(value)
    }
}
impl From<Secret> for ScalarValue {
    fn from(value: Secret) -> Self {
        Self::Secret(value)
    }
}

/// Formats a date-time the way autoprov writes it (RFC 3339, UTC, `Z`, sub-seconds only when
/// present).
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_canonical_datetime(s: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (format_datetime(&parsed) == s).then_some(parsed)
}

impl Serialize for ScalarValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ScalarValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        match PropertyValue::from_json(json).map_err(D::Error::custom)? {
            PropertyValue::Scalar(s) => Ok(s),
            other => Err(D::Error::custom(format!(
                "expected a scalar value, found {}",
                other.kind_name()
            ))),
        }
    }
}

/// A reference to another resource: a navigation value.
///
/// References are identified by one or more keys; `dn` for directory objects, `Id` for
/// autoprov's own resource ids, or any key a connector understands.
///
/// Shared (`Arc`): cloning one, which exports, planners and orders do for every membership,
/// costs no allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reference(Arc<BTreeMap<String, String>>);

impl Reference {
    /// A reference by distinguished name.
    pub fn dn(dn: impl Into<String>) -> Self {
        Self::key("dn", dn)
    }

    /// A reference by autoprov resource id.
    pub fn id(id: impl Into<String>) -> Self {
        Self::key("Id", id)
    }

    /// A reference by one named key.
    pub fn key(key: impl Into<String>, value: impl Into<String>) -> Self {
        let mut map = BTreeMap::new();
        map.insert(key.into(), value.into());
        Self(Arc::new(map))
    }

    /// Adds a further key.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.0).insert(key.into(), value.into());
        self
    }

    /// The value of one key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The `dn` key, if any.
    pub fn dn_value(&self) -> Option<&str> {
        self.get("dn")
    }

    /// All keys and values.
    pub fn keys(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether the reference has no key at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both are the same shared reference (one is a clone of the other): then they
    /// are equal, without comparing keys. Different shared references may still be equal.
    ///
    /// ```
    /// use autoprov_core::Reference;
    /// let a = Reference::dn("CN=g");
    /// assert!(a.same_as(&a.clone()));
    /// assert!(!a.same_as(&Reference::dn("CN=g")));
    /// ```
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the shared reference (see [`Reference::same_as`]), to find a clone
    /// quickly, e.g. in a cache keyed by address; meaningless once every clone is dropped.
    pub fn shared_address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference{:?}", self.0)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.0.iter() {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// A property value of a resource: a scalar, one reference (mono-valued navigation such as
/// `manager` or `parentdn`) or a set of references (multi-valued navigation such as `memberOf`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PropertyValue {
    /// A scalar value.
    Scalar(ScalarValue),
    /// A mono-valued navigation.
    Reference(Reference),
    /// A multi-valued navigation.
    References(BTreeSet<Reference>),
}

impl PropertyValue {
    /// The name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Scalar(s) => s.kind_name(),
            Self::Reference(_) => "reference",
            Self::References(_) => "reference list",
        }
    }

    /// The scalar, when it is one.
    pub fn as_scalar(&self) -> Option<&ScalarValue> {
        match self {
            Self::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The reference, when it is a mono-valued navigation.
    pub fn as_reference(&self) -> Option<&Reference> {
        match self {
            Self::Reference(r) => Some(r),
            _ => None,
        }
    }

    /// The references, when it is a multi-valued navigation.
    pub fn as_references(&self) -> Option<&BTreeSet<Reference>> {
        match self {
            Self::References(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Scalar(s) => s.to_json(),
            Self::Reference(r) => serde_json::to_value(r).unwrap_or_default(),
            Self::References(rs) => serde_json::Value::Array(
                rs.iter()
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
                    .collect(),
            ),
        }
    }

    pub(crate) fn from_json(json: serde_json::Value) -> Result<Self, String> {
        use serde_json::Value as J;
        match json {
            J::String(s) => Ok(Self::Scalar(match parse_canonical_datetime(&s) {
                Some(d) => ScalarValue::DateTime(d),
                None => ScalarValue::String(s),
            })),
            J::Bool(b) => Ok(Self::Scalar(ScalarValue::Bool(b))),
            J::Number(n) => n
                .as_i64()
                .map(|i| Self::Scalar(ScalarValue::Integer(i)))
                .ok_or_else(|| format!("expected an integer that fits in 64 bits, found {n}")),
            J::Object(map) => {
                // A tag stands alone: `{"$base64": "..", "dn": ".."}` is neither a binary value
                // nor a reference, and reading either would silently drop the rest.
                for (tag, kind) in [(BINARY_TAG, "binary"), (SECRET_TAG, "secret")] {
                    if map.contains_key(tag)
                        && let Some(other) = map.keys().find(|k| k.as_str() != tag)
                    {
                        return Err(format!(
                            "expected only `{tag}` in a {kind} value, found `{other}` too"
                        ));
                    }
                }
                if let Some(v) = map.get(BINARY_TAG) {
                    let text = v
                        .as_str()
                        .ok_or_else(|| format!("expected a base64 string in {BINARY_TAG}"))?;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| format!("invalid base64 in {BINARY_TAG}: {e}"))?;
                    return Ok(Self::Scalar(ScalarValue::Binary(bytes)));
                }
                if let Some(v) = map.get(SECRET_TAG) {
                    let text = v
                        .as_str()
                        .ok_or_else(|| format!("expected a string in {SECRET_TAG}"))?;
                    return Ok(Self::Scalar(ScalarValue::Secret(Secret::from(text))));
                }
                Ok(Self::Reference(reference_from_map(map)?))
            }
            J::Array(items) => {
                let mut set = BTreeSet::new();
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        J::Object(map) => {
                            set.insert(reference_from_map(map).map_err(|e| format!("[{i}]: {e}"))?);
                        }
                        other => {
                            return Err(format!(
                                "[{i}]: expected a reference object, found {}",
                                json_kind(&other)
                            ));
                        }
                    }
                }
                Ok(Self::References(set))
            }
            J::Null => Err("expected a value, found null".into()),
        }
    }
}

pub(crate) fn reference_from_map(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<Reference, String> {
    let mut keys = BTreeMap::new();
    for (k, v) in map {
        match v {
            serde_json::Value::String(s) => {
                keys.insert(k, s);
            }
            other => {
                return Err(format!(
                    "reference key `{k}`: expected a string, found {}",
                    json_kind(&other)
                ));
            }
        }
    }
    Ok(Reference(Arc::new(keys)))
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Serialize for PropertyValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        Self::from_json(json).map_err(D::Error::custom)
    }
}

impl From<ScalarValue> for PropertyValue {
    fn from(value: ScalarValue) -> Self {
        Self::Scalar(value)
    }
}
impl From<Reference> for PropertyValue {
    fn from(value: Reference) -> Self {
        Self::Reference(value)
    }
}
impl From<BTreeSet<Reference>> for PropertyValue {
    fn from(value: BTreeSet<Reference>) -> Self {
        Self::References(value)
    }
}
impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        Self::Scalar(value.into())
    }
}
impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        Self::Scalar(value.into())
    }
}
impl From<bool> for PropertyValue {
    fn from(value: bool) -> Self {
        Self::Scalar(value.into())
    }
}
impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        Self::Scalar(value.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn scalar_json_mapping() {
        let d = Utc.with_ymd_and_hms(2026, 1, 31, 8, 0, 0).unwrap();
        let cases: Vec<(ScalarValue, &str)> = vec![
            ("x".into(), "\"x\""),
            (ScalarValue::Integer(-3), "-3"),
            (ScalarValue::Bool(true), "true"),
            (ScalarValue::DateTime(d), "\"2026-01-31T08:00:00Z\""),
            (
                ScalarValue::Binary(vec![1, 2, 255]),
                "{\"$base64\":\"AQL/\"}",
            ),
        ];
        for (v, json) in cases {
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
            let back: ScalarValue = serde_json::from_str(json).unwrap();
            assert_eq!(back, v);
        }
        // A date written another way stays a string: only the canonical form is a date-time.
        let s: ScalarValue = serde_json::from_str("\"2026-01-31 08:00:00\"").unwrap();
        assert_eq!(s, ScalarValue::String("2026-01-31 08:00:00".into()));
    }

    #[test]
    fn secret_scalar_is_masked_on_output_and_read_in_clear() {
        let v: ScalarValue = serde_json::from_str("{\"$secret\":\"Init-Pass1\"}").unwrap();
        match &v {
            ScalarValue::Secret(s) => assert_eq!(s.expose(), Ok("Init-Pass1")),
            other => panic!("{other:?}"),
        }
        let out = serde_json::to_string(&v).unwrap();
        assert!(!out.contains("Init-Pass1"));
        assert!(!format!("{v:?}").contains("Init-Pass1"));
        assert!(!v.to_string().contains("Init-Pass1"));
    }

    #[test]
    fn references_map_to_objects() {
        let r = Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test");
        assert_eq!(
            serde_json::to_string(&PropertyValue::Reference(r.clone())).unwrap(),
            "{\"dn\":\"CN=Sales,OU=Groups,DC=example,DC=test\"}"
        );
        let list: PropertyValue = serde_json::from_str("[{\"dn\":\"a\"},{\"dn\":\"b\"}]").unwrap();
        assert_eq!(list.as_references().unwrap().len(), 2);
        let err = serde_json::from_str::<PropertyValue>("[{\"dn\":1}]").unwrap_err();
        assert!(err.to_string().contains("[0]"), "{err}");
    }
}
