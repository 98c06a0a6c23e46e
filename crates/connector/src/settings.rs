//! Parsing a package's JSON settings: one way for every package, so that a wrong setting is
//! always reported the same way, naming the setting by its JSON path (`Servers[1].Url`).
//!
//! ```
//! use autoprov_connector::settings::{SettingsError, parse_settings};
//! #[derive(serde::Deserialize, Debug)]
//! #[serde(rename_all = "PascalCase", deny_unknown_fields)]
//! struct Settings { servers: Vec<Server> }
//! #[derive(serde::Deserialize, Debug)]
//! #[serde(rename_all = "PascalCase")]
//! struct Server { url: String }
//!
//! let e = parse_settings::<Settings>(serde_json::json!({"Servers": [{"Url": 1}]})).unwrap_err();
//! assert_eq!(e.setting, "Servers[0].Url");
//! let connector_error = e.for_connection(&"crm".into());
//! assert!(connector_error.to_string().contains("connection crm: invalid setting `Servers[0].Url`"));
//! ```

use crate::error::{ConnectorError, ErrorKind, Operation};
use autoprov_core::ConnectionId;
use autoprov_core::config::ConfigError;
use serde::de::DeserializeOwned;

/// A package setting that is missing or wrong. It names the setting as a JSON path
/// (`Tls.CaCertificate`, `Servers[1].Url`; `Settings` for the whole value).
///
/// An unknown setting (settings types refuse them with `#[serde(deny_unknown_fields)]`, so that
/// a typo is not silently dropped) carries the closest known name in `suggestion`, found by
/// [`autoprov_core::config::closest_name`], and the message ends in `did you mean `X`?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}{}", Hint(.suggestion.as_deref()))]
#[non_exhaustive]
pub struct SettingsError {
    /// The setting, as a JSON path.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
    /// For an unknown setting: the closest known name, when one is close enough to be a likely
    /// typo.
    pub suggestion: Option<String>,
}

/// Displays `; did you mean `X`?` when there is a suggestion.
struct Hint<'a>(Option<&'a str>);

impl std::fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

impl SettingsError {
    /// A wrong setting, for a package's own validation after parsing.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    /// The permanent `InvalidConfiguration` error of building `connection`, as
    /// [`crate::Package::connect`] returns it.
    pub fn for_connection(&self, connection: &ConnectionId) -> ConnectorError {
        ConnectorError::new(
            ErrorKind::InvalidConfiguration,
            Operation::Configure,
            format!("connection {connection}: {self}"),
        )
    }
}

impl From<SettingsError> for ConnectorError {
    /// The permanent `InvalidConfiguration` error of a build that names no connection.
    fn from(e: SettingsError) -> Self {
        ConnectorError::new(
            ErrorKind::InvalidConfiguration,
            Operation::Configure,
            e.to_string(),
        )
    }
}

/// Parses a package's settings from JSON. A value of the wrong shape (a wrong type, an unknown
/// or missing field) is a [`SettingsError`] naming the field by its JSON path; an unknown
/// field or variant also names the closest known one ([`SettingsError::suggestion`]).
pub fn parse_settings<T: DeserializeOwned>(
    settings: serde_json::Value,
) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let suggestion = ConfigError::from_serde(path.as_str(), &message)
            .suggestion()
            .map(str::to_owned);
        SettingsError {
            setting: if path == "." {
                "Settings".to_owned()
            } else {
                path
            },
            message,
            suggestion,
        }
    })
}

/// As [`parse_settings`], with `null` (a connection configured without settings) meaning
/// `T::default()`.
pub fn parse_settings_or_default<T: DeserializeOwned + Default>(
    settings: serde_json::Value,
) -> Result<T, SettingsError> {
    if settings.is_null() {
        Ok(T::default())
    } else {
        parse_settings(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize, Debug, Default, PartialEq)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
    struct S {
        size: u32,
        names: BTreeMap<String, u32>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_settings::<S>(serde_json::json!({"Names": {"a": "x"}})).unwrap_err();
        assert_eq!(e.setting, "Names.a");
        let e = parse_settings::<S>(serde_json::json!({"Sise": 1})).unwrap_err();
        assert_eq!(e.setting, "Sise");
        assert!(e.message.contains("unknown field"), "{e}");
        assert_eq!(e.suggestion.as_deref(), Some("Size"));
        assert!(e.to_string().ends_with("did you mean `Size`?"), "{e}");
        let e = parse_settings::<S>(serde_json::json!({"Colour": 1})).unwrap_err();
        assert_eq!(e.suggestion, None);
        assert!(!e.to_string().contains("did you mean"), "{e}");
        let e = parse_settings::<S>(serde_json::json!(3)).unwrap_err();
        assert_eq!(e.setting, "Settings");
        let c = e.for_connection(&"c1".into());
        assert_eq!(c.kind(), ErrorKind::InvalidConfiguration);
        assert!(!c.is_temporary());
        assert!(
            c.to_string()
                .contains("connection c1: invalid setting `Settings`"),
            "{c}"
        );
    }

    #[test]
    fn null_is_the_default() {
        assert_eq!(
            parse_settings_or_default::<S>(serde_json::Value::Null).unwrap(),
            S::default()
        );
        assert_eq!(
            parse_settings_or_default::<S>(serde_json::json!({"Size": 2}))
                .unwrap()
                .size,
            2
        );
    }
}
