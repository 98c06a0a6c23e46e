//! Secrets (passwords) that never reach logs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// The text printed in place of a secret.
pub const SECRET_MASK: &str = "********";

/// A secret value such as an initial password.
///
/// `Debug`, `Display` and `Serialize` print [`SECRET_MASK`], so a secret that ends up in a log
/// line, an error message or a serialized order shows only the mask. A connector reads the value
/// through [`Secret::expose`], the one explicit way out. Deserialization accepts the plain text
/// (that is how a host hands a password in) — except the mask itself: a masked secret read back
/// from a file is a **redacted** secret, which holds no value, and which [`Secret::expose`]
/// refuses, so it can never be sent (the literal password `********`) by any connector. The
/// clear text is zeroized when the secret is dropped.
///
/// ```
/// use autoprov_core::Secret;
/// let s = Secret::new("Pa55word!");
/// assert_eq!(format!("{s:?}"), "Secret(********)");
/// assert_eq!(s.to_string(), "********");
/// assert_eq!(s.expose(), Ok("Pa55word!"));
/// // What a written file holds comes back redacted, never as the password "********".
/// let back: Secret = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
/// assert!(back.is_redacted());
/// assert!(back.expose().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Option<Zeroizing<String>>);

impl Secret {
    fn key(&self) -> Option<&str> {
        self.0.as_deref().map(String::as_str)
    }
}

impl PartialOrd for Secret {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Secret {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for Secret {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// A redacted secret was asked for its value: it was masked when written and holds none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a masked secret read back from a file has no value and cannot be sent")]
pub struct RedactedSecret;

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Some(Zeroizing::new(value.into())))
    }

    /// A redacted secret: what a masked secret read back from a file is.
    pub fn redacted() -> Self {
        Self(None)
    }

    /// Whether this is a redacted secret (no value).
    pub fn is_redacted(&self) -> bool {
        self.0.is_none()
    }

    /// The secret in clear. Call it only where the value is handed to the managed system. A
    /// redacted secret has no value: [`RedactedSecret`].
    pub fn expose(&self) -> Result<&str, RedactedSecret> {
        self.key().ok_or(RedactedSecret)
    }

    /// Whether the secret is empty (a redacted secret is not: its value is unknown).
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_empty())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => write!(f, "Secret({SECRET_MASK})"),
            None => f.write_str("Secret(redacted)"),
        }
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
        let text = String::deserialize(deserializer)?;
        Ok(Secret::from(text))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::from(value.to_owned())
    }
}

impl From<String> for Secret {
    /// The mask itself is never a password: it is what a written secret reads back as.
    fn from(value: String) -> Self {
        if value == SECRET_MASK {
            Self::redacted()
        } else {
            Self::new(value)
        }
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
        assert_eq!(s.expose(), Ok("hunter2-Secret"));
        let parsed: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(parsed.expose(), Ok("abc"));
        let masked: Secret = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(masked.is_redacted());
        assert_eq!(masked.expose(), Err(RedactedSecret));
        assert_eq!(format!("{masked:?}"), "Secret(redacted)");
        assert_ne!(masked, s);
    }
}
