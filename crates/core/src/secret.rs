//! Secrets (passwords) that never reach logs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The text printed in place of a secret.
pub const SECRET_MASK: &str = "********";

/// A secret value such as an initial password.
///
/// `Debug`, `Display` and `Serialize` print [`SECRET_MASK`], so a secret that ends up in a log
/// line, an error message or a serialized order shows only the mask. A connector reads the value
/// through [`Secret::expose`], the one explicit way out. Deserialization accepts the plain text
/// (that is how a host hands a password in).
///
/// ```
/// use autoprov_core::Secret;
/// let s = Secret::new("Pa55word!");
/// assert_eq!(format!("{s:?}"), "Secret(********)");
/// assert_eq!(s.to_string(), "********");
/// assert_eq!(s.expose(), "Pa55word!");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret in clear. Call it only where the value is handed to the managed system.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({SECRET_MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(SECRET_MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_masked_everywhere_but_expose() {
        let s = Secret::new("hunter2-Secret");
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            s.to_string(),
            serde_json::to_string(&s).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(SECRET_MASK));
        }
        assert_eq!(s.expose(), "hunter2-Secret");
        let parsed: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(parsed.expose(), "abc");
    }
}
