//! Reading configuration from JSON so that bad input is refused before anything is written.
//!
//! Configuration types (resource types, thresholds, connection settings) refuse unknown fields
//! (`#[serde(deny_unknown_fields)]`): a typo such as `MaximumDeletePercnt` would otherwise be
//! dropped and silently switch a threshold off. [`from_json`] reads such a type and reports an
//! unknown name as a [`ConfigError::UnknownField`] naming the field, its JSON path and the
//! closest known name. This module is the one home of that suggestion ([`closest_name`]); the
//! connector crate's settings parser uses it too. Property bags (owner properties, `Changes`,
//! resource values) stay open and are not read through here.
//!
//! ```
//! use autoprov_core::config::{ConfigError, from_json};
//! use autoprov_core::ResourceType;
//!
//! let json = serde_json::json!({
//!     "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
//!     "TargetEntityType": "AD_Entry", "Connection": "ad",
//!     "Thresholds": {"MaximumDeletePercnt": 5}
//! });
//! let err = from_json::<ResourceType>(json).unwrap_err();
//! assert!(matches!(
//!     &err,
//!     ConfigError::UnknownField { field, suggestion: Some(s), .. }
//!         if field == "MaximumDeletePercnt" && s == "MaximumDeletePercent"
//! ));
//! assert_eq!(err.path(), "Thresholds.MaximumDeletePercnt");
//! assert!(err.to_string().contains("did you mean `MaximumDeletePercent`?"));
//! ```

use serde::de::DeserializeOwned;
use std::fmt;

/// A configuration value that cannot be read. Both variants name the place by its JSON path
/// (`Thresholds.MaximumDelete`, `Servers[1].Url`; `.` for the whole value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field (or enum variant) the type does not know.
    #[error("unknown setting `{path}`: `{field}` is not a known name{}", Hint(suggestion.as_deref()))]
    UnknownField {
        /// Where, as a JSON path ending in the unknown field.
        path: String,
        /// The unknown name as written.
        field: String,
        /// The known name closest to it, when one is close enough to be a likely typo.
        suggestion: Option<String>,
        /// Every known name at that place.
        expected: Vec<String>,
    },
    /// Any other wrong shape: a wrong type, a missing field, a value out of range.
    #[error("invalid setting `{path}`: {message}")]
    Invalid {
        /// Where, as a JSON path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The JSON path of the wrong setting.
    pub fn path(&self) -> &str {
        match self {
            Self::UnknownField { path, .. } | Self::Invalid { path, .. } => path,
        }
    }

    /// The closest known name, for an unknown field.
    pub fn suggestion(&self) -> Option<&str> {
        match self {
            Self::UnknownField { suggestion, .. } => suggestion.as_deref(),
            Self::Invalid { .. } => None,
        }
    }
}

/// Displays `; did you mean `X`?` when there is a suggestion.
struct Hint<'a>(Option<&'a str>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

/// Reads a configuration type from JSON. An unknown field of a type that refuses them is a
/// [`ConfigError::UnknownField`] with the closest known name; every other error is a
/// [`ConfigError::Invalid`]. Both name the setting by its JSON path.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        error_at(path, &e.inner().to_string())
    })
}

/// As [`from_json`], from JSON text.
pub fn from_json_str<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        error_at(path, &e.inner().to_string())
    })?;
    de.end().map_err(|e| ConfigError::Invalid {
        path: ".".to_owned(),
        message: e.to_string(),
    })?;
    Ok(value)
}

impl ConfigError {
    /// The typed error for serde's error `message` at the JSON `path` (as
    /// `serde_path_to_error` reports it): an unknown field or variant becomes
    /// [`ConfigError::UnknownField`] with the closest known name. For parsers that keep their
    /// own error type (the connector crate's settings parser).
    pub fn from_serde(path: impl Into<String>, message: &str) -> Self {
        error_at(path.into(), message)
    }
}

/// The typed error for serde's `message` at `path`.
fn error_at(path: String, message: &str) -> ConfigError {
    match UnknownName::parse(message) {
        Some(unknown) => ConfigError::UnknownField {
            path,
            suggestion: closest_name(&unknown.name, unknown.expected.iter().map(String::as_str))
                .map(str::to_owned),
            field: unknown.name,
            expected: unknown.expected,
        },
        None => ConfigError::Invalid {
            path,
            message: message.to_owned(),
        },
    }
}

/// An unknown field or variant as serde reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownName {
    /// The name as written.
    pub name: String,
    /// The names serde expected there.
    pub expected: Vec<String>,
}

impl UnknownName {
    /// Reads serde's `unknown field `x`, expected one of `a`, `b`` (or `unknown variant ...`)
    /// message, as `serde::de::Error::unknown_field` and `unknown_variant` write it; `None` for
    /// any other message.
    pub fn parse(message: &str) -> Option<Self> {
        let rest = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("unknown variant `"))?;
        let (name, rest) = rest.split_once('`')?;
        // Serde writes each expected name between backticks after "expected"; a message with
        // "there are no fields" / "there are no variants" has none.
        let expected = match rest.split_once("expected ") {
            Some((_, list)) => list
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        Some(Self {
            name: name.to_owned(),
            expected,
        })
    }
}

/// The known name closest to `unknown`, when it is close enough to be a likely typo: at most
/// two edits, or a third of the name's length for long names, ignoring case. Ties go to the
/// first candidate.
///
/// ```
/// use autoprov_core::config::closest_name;
/// let known = ["MaximumDelete", "MaximumDeletePercent", "MaximumInsert"];
/// assert_eq!(closest_name("MaximumDeletePercnt", known), Some("MaximumDeletePercent"));
/// assert_eq!(closest_name("maximumdelete", known), Some("MaximumDelete"));
/// assert_eq!(closest_name("Colour", known), None);
/// ```
pub fn closest_name<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let unknown_chars: Vec<char> = unknown.chars().flat_map(char::to_lowercase).collect();
    let limit = (unknown_chars.len() / 3).max(2);
    let mut best: Option<(usize, &str)> = None;
    for candidate in known {
        let candidate_chars: Vec<char> = candidate.chars().flat_map(char::to_lowercase).collect();
        let distance = edit_distance(&unknown_chars, &candidate_chars);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// Levenshtein distance (insertions, deletions and substitutions each cost one).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("Percnt", "Percent"), 1);
    }

    #[test]
    fn serde_messages_are_read() {
        let u = UnknownName::parse("unknown field `Sise`, expected `Size` or `Names`").unwrap();
        assert_eq!(u.name, "Sise");
        assert_eq!(u.expected, ["Size", "Names"]);
        let u = UnknownName::parse("unknown field `x`, expected one of `a`, `b`, `c`").unwrap();
        assert_eq!(u.expected, ["a", "b", "c"]);
        let u = UnknownName::parse("unknown field `x`, there are no fields").unwrap();
        assert!(u.expected.is_empty());
        let u = UnknownName::parse(
            "unknown variant `Ssl`, expected one of `Ldaps`, `StartTls`, `Plain` at line 1 column 9",
        )
        .unwrap();
        assert_eq!(u.expected, ["Ldaps", "StartTls", "Plain"]);
        assert!(UnknownName::parse("missing field `Id`").is_none());
    }

    #[test]
    fn far_names_get_no_suggestion() {
        assert_eq!(closest_name("Unknown", ["Servers", "Bind", "Tls"]), None);
        assert_eq!(closest_name("x", std::iter::empty()), None);
        assert_eq!(
            closest_name("Bnd", ["Servers", "Bind", "Tls"]),
            Some("Bind")
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        page_size: u32,
    }

    #[test]
    fn errors_name_the_path_and_the_closest_name() {
        let e =
            from_json::<Outer>(serde_json::json!({"Inner": [{}, {"PageSise": 1}]})).unwrap_err();
        assert_eq!(e.path(), "Inner[1].PageSise");
        assert_eq!(e.suggestion(), Some("PageSize"));
        assert_eq!(
            e.to_string(),
            "unknown setting `Inner[1].PageSise`: `PageSise` is not a known name; did you mean \
             `PageSize`?"
        );
        let e = from_json_str::<Outer>(r#"{"Inner": [{"PageSize": "x"}]}"#).unwrap_err();
        assert!(matches!(&e, ConfigError::Invalid { path, .. } if path == "Inner[0].PageSize"));
        let ok = from_json_str::<Outer>(r#"{"Inner": [{"PageSize": 3}]}"#).unwrap();
        assert_eq!(ok.inner[0].page_size, 3);
        let e = from_json_str::<Outer>(r#"{} {}"#).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }));
    }
}
