//! Password settings of a resource type, in the reference system's model
//! (`PasswordResetSettings`), and the one password generator of the codebase.
//!
//! A resource type with settings whose [`PasswordResetSettings::auto_generate`] is on (and
//! whose [`PasswordMode`] is not `Disabled`) gets an initial password generated at fulfilment
//! time when an Added order carries none; the generated value is handed to a delivery hook and
//! never stored. This module is pure: the random source is an argument ([`rand::RngCore`]).
//!
//! ```
//! use autoprov_core::password::{PasswordMode, PasswordResetSettings};
//! let settings: PasswordResetSettings = autoprov_core::config::from_json(serde_json::json!({
//!     "Mode": 1, "AutoGenerate": true, "MustChange": true,
//!     "StrengthCheck": ["[A-Z].*[A-Z]", "^.{12,}$"]
//! })).unwrap();
//! assert_eq!(settings.mode, PasswordMode::OneWay);
//! let password = settings.generate(&mut rand::thread_rng()).unwrap();
//! assert_eq!(password.expose().unwrap().chars().count(), 12);
//! assert!(settings.check_strength(&password).is_ok());
//! ```

use crate::secret::Secret;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Lower-case letters a generated password draws from (no `l`: it looks like `1` and `I`).
pub const LOWER: &str = "abcdefghijkmnopqrstuvwxyz";
/// Upper-case letters a generated password draws from (no `I`, `O`).
pub const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Digits a generated password draws from (no `0`, `1`).
pub const DIGITS: &str = "23456789";
/// Symbols a generated password draws from (none that needs quoting in LDIF, CSV or a shell).
pub const SYMBOLS: &str = "!#%+-.:=?@_";

/// How many generated passwords are tried against the strength checks before giving up.
pub const GENERATION_TRIES: usize = 100;

/// What a password generator must produce: at least these counts of each class, filled up
/// to `length` from all classes. When the counts add up to more than `length`, the length
/// is their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GeneratorRule {
    /// Requested length.
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

impl GeneratorRule {
    /// The length of what is generated: `length`, or the sum of the counts when larger.
    pub fn effective_length(&self) -> usize {
        let sum = self
            .lower
            .saturating_add(self.upper)
            .saturating_add(self.digits)
            .saturating_add(self.symbols);
        self.length.max(sum)
    }
}

impl Default for GeneratorRule {
    /// The reference system's defaults: 12 characters, at least 6 lower-case, 2 upper-case,
    /// 2 digits and 2 symbols.
    fn default() -> Self {
        Self {
            length: 12,
            lower: 6,
            upper: 2,
            digits: 2,
            symbols: 2,
        }
    }
}

/// Generates a password following `rule`: the minimum count of each class, filled up to the
/// [effective length](GeneratorRule::effective_length) from all classes, shuffled. Look-alike
/// characters (`l`, `I`, `O`, `0`, `1`) are left out. The one generator of the codebase (the
/// dispatcher's fulfilment-time generation and the AD package's fallback both call it).
///
/// ```
/// use autoprov_core::password::{GeneratorRule, generate};
/// let rule = GeneratorRule { length: 4, lower: 3, upper: 3, digits: 0, symbols: 0 };
/// let p = generate(&rule, &mut rand::thread_rng());
/// assert_eq!(p.expose().unwrap().len(), 6); // the counts exceed the length
/// ```
pub fn generate<R: RngCore + ?Sized>(rule: &GeneratorRule, rng: &mut R) -> Secret {
    let length = rule.effective_length();
    let mut chars: Vec<u8> = Vec::with_capacity(length);
    for (count, set) in [
        (rule.lower, LOWER),
        (rule.upper, UPPER),
        (rule.digits, DIGITS),
        (rule.symbols, SYMBOLS),
    ] {
        for _ in 0..count {
            chars.push(pick(set.as_bytes(), rng));
        }
    }
    let all = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    while chars.len() < length {
        chars.push(pick(all.as_bytes(), rng));
    }
    // Fisher–Yates.
    for i in (1..chars.len()).rev() {
        let j = below(i as u64 + 1, rng) as usize;
        chars.swap(i, j);
    }
    // Every byte comes from the ASCII sets above.
    Secret::new(chars.into_iter().map(char::from).collect::<String>())
}

fn pick<R: RngCore + ?Sized>(set: &[u8], rng: &mut R) -> u8 {
    set[below(set.len() as u64, rng) as usize]
}

/// A uniform number below `n` (`n > 0`), without modulo bias.
fn below<R: RngCore + ?Sized>(n: u64, rng: &mut R) -> u64 {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return v % n;
        }
    }
}

/// `Mode` of the password settings: what happens with a password once set. Written as its
/// reference code (`0`, `1`, `2`) or its name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PasswordMode {
    /// `0`: no password is set by provisioning (no generation).
    Disabled,
    /// `1`: one-way: the password is sent to the notified person.
    #[default]
    OneWay,
    /// `2`: two-way: a message with a link or token to set it.
    TwoWay,
}

impl PasswordMode {
    /// The reference code.
    pub fn code(self) -> u8 {
        match self {
            Self::Disabled => 0,
            Self::OneWay => 1,
            Self::TwoWay => 2,
        }
    }

    /// The mode of a reference code.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Disabled),
            1 => Some(Self::OneWay),
            2 => Some(Self::TwoWay),
            _ => None,
        }
    }
}

impl Serialize for PasswordMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for PasswordMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["Disabled", "OneWay", "TwoWay"];
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PasswordMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("0 (disabled), 1 (one-way) or 2 (two-way)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PasswordMode, E> {
                PasswordMode::from_code(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PasswordMode, E> {
                u64::try_from(v)
                    .ok()
                    .and_then(PasswordMode::from_code)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PasswordMode, E> {
                match v {
                    "0" | "Disabled" => Ok(PasswordMode::Disabled),
                    "1" | "OneWay" => Ok(PasswordMode::OneWay),
                    "2" | "TwoWay" => Ok(PasswordMode::TwoWay),
                    other => Err(E::unknown_variant(other, NAMES)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One `StrengthCheck`: a regular expression (the `regex` crate's syntax) a password must
/// match. An invalid expression is refused when the settings are read, naming it.
#[derive(Clone)]
pub struct StrengthCheck(regex::Regex);

impl StrengthCheck {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern).map(Self)
    }

    /// The expression as written.
    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `password` matches.
    pub fn is_match(&self, password: &str) -> bool {
        self.0.is_match(password)
    }
}

impl fmt::Debug for StrengthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StrengthCheck({:?})", self.pattern())
    }
}

impl PartialEq for StrengthCheck {
    fn eq(&self, other: &Self) -> bool {
        self.pattern() == other.pattern()
    }
}

impl Eq for StrengthCheck {}

impl Serialize for StrengthCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.pattern())
    }
}

impl<'de> Deserialize<'de> for StrengthCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        Self::new(&pattern).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid regular expression `{pattern}`: {}",
                // The regex crate's message spans several lines; keep its last one.
                e.to_string().lines().last().unwrap_or_default().trim()
            ))
        })
    }
}

/// A password refused by the strength checks. Names the check, never the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password does not match a `StrengthCheck`.
    #[error("the password does not satisfy StrengthCheck `{pattern}`")]
    TooWeak {
        /// The expression it fails.
        pattern: String,
    },
    /// No generated password satisfied the strength checks (they contradict the generator's
    /// counts or character sets).
    #[error(
        "no generated password satisfied StrengthCheck `{pattern}` in {tries} tries: the checks contradict the generation settings"
    )]
    CannotGenerate {
        /// The expression the last try failed.
        pattern: String,
        /// How many passwords were tried.
        tries: usize,
    },
    /// A redacted secret (a masked value read back from a file) has no value to check.
    #[error("the password is a masked secret read back from a file and has no value")]
    Redacted,
}

fn twelve() -> usize {
    12
}
fn six() -> usize {
    6
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}

/// The password settings of a resource type (the reference system's
/// `PasswordResetSettings`), attached as [`ResourceType::password_reset_settings`].
///
/// Defaults: `Mode` 1 (one-way), `AutoGenerate` on, `MustChange` off, a generated length of
/// 12 with at least 6 lower-case letters, 2 upper-case letters, 2 digits and 2 symbols, no
/// strength check, notifications on, no copy.
///
/// [`ResourceType::password_reset_settings`]: crate::ResourceType::password_reset_settings
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PasswordResetSettings {
    /// `Mode`: 0 disabled (nothing generated), 1 one-way, 2 two-way.
    #[serde(default)]
    pub mode: PasswordMode,
    /// `AutoGenerate`: generate an initial password when an Added order carries none.
    #[serde(default = "yes")]
    pub auto_generate: bool,
    /// `MustChange`: the user must change the password at first logon, unless the order says
    /// otherwise.
    #[serde(default)]
    pub must_change: bool,
    /// `GeneratedLength`: length of a generated password (default 12).
    #[serde(default = "twelve")]
    pub generated_length: usize,
    /// `GeneratedLowerCaseMinimum`: at least this many lower-case letters (default 6).
    #[serde(default = "six")]
    pub generated_lower_case_minimum: usize,
    /// `GeneratedUpperCaseMinimum`: at least this many upper-case letters (default 2).
    #[serde(default = "two")]
    pub generated_upper_case_minimum: usize,
    /// `GeneratedDigitMinimum`: at least this many digits (default 2).
    #[serde(default = "two")]
    pub generated_digit_minimum: usize,
    /// `GeneratedSymbolMinimum`: at least this many symbols (default 2).
    #[serde(default = "two")]
    pub generated_symbol_minimum: usize,
    /// `StrengthCheck`: regular expressions a generated or given password must all match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strength_check: Vec<StrengthCheck>,
    /// `DisableNotifications`: the password is set but nobody is notified (the delivery hook
    /// is not called).
    #[serde(default)]
    pub disable_notifications: bool,
    /// `NotificationCC`: addresses notified in copy, passed to the delivery hook.
    #[serde(
        default,
        rename = "NotificationCC",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub notification_cc: Vec<String>,
}

impl Default for PasswordResetSettings {
    fn default() -> Self {
        Self {
            mode: PasswordMode::OneWay,
            auto_generate: true,
            must_change: false,
            generated_length: 12,
            generated_lower_case_minimum: 6,
            generated_upper_case_minimum: 2,
            generated_digit_minimum: 2,
            generated_symbol_minimum: 2,
            strength_check: Vec::new(),
            disable_notifications: false,
            notification_cc: Vec::new(),
        }
    }
}

impl PasswordResetSettings {
    /// Whether an Added order carrying no password gets a generated one: `AutoGenerate` on
    /// and `Mode` not disabled.
    pub fn generates(&self) -> bool {
        self.auto_generate && self.mode != PasswordMode::Disabled
    }

    /// The generator rule of these settings.
    pub fn rule(&self) -> GeneratorRule {
        GeneratorRule {
            length: self.generated_length,
            lower: self.generated_lower_case_minimum,
            upper: self.generated_upper_case_minimum,
            digits: self.generated_digit_minimum,
            symbols: self.generated_symbol_minimum,
        }
    }

    /// Checks `password` against every `StrengthCheck`.
    pub fn check_strength(&self, password: &Secret) -> Result<(), PasswordError> {
        let clear = password.expose().map_err(|_| PasswordError::Redacted)?;
        match self.strength_check.iter().find(|c| !c.is_match(clear)) {
            Some(c) => Err(PasswordError::TooWeak {
                pattern: c.pattern().to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Generates a password by these settings that passes the strength checks, trying up to
    /// [`GENERATION_TRIES`] times.
    pub fn generate<R: RngCore + ?Sized>(&self, rng: &mut R) -> Result<Secret, PasswordError> {
        let rule = self.rule();
        let mut failed = None;
        for _ in 0..GENERATION_TRIES {
            let password = generate(&rule, rng);
            match self.check_strength(&password) {
                Ok(()) => return Ok(password),
                Err(PasswordError::TooWeak { pattern }) => failed = Some(pattern),
                Err(e) => return Err(e),
            }
        }
        Err(PasswordError::CannotGenerate {
            pattern: failed.unwrap_or_default(),
            tries: GENERATION_TRIES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, from_json};
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn count(p: &str, set: &str) -> usize {
        p.chars().filter(|c| set.contains(*c)).count()
    }

    proptest! {
        #[test]
        fn generated_passwords_follow_the_counts_and_the_length_rule(
            length in 0usize..40, lower in 0usize..10, upper in 0usize..10,
            digits in 0usize..10, symbols in 0usize..10, seed: u64,
        ) {
            let rule = GeneratorRule { length, lower, upper, digits, symbols };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let p = generate(&rule, &mut rng);
            let p = p.expose().unwrap();
            prop_assert_eq!(p.chars().count(), length.max(lower + upper + digits + symbols));
            prop_assert!(count(p, LOWER) >= lower);
            prop_assert!(count(p, UPPER) >= upper);
            prop_assert!(count(p, DIGITS) >= digits);
            prop_assert!(count(p, SYMBOLS) >= symbols);
            let all = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
            prop_assert!(p.chars().all(|c| all.contains(c)));
        }
    }

    #[test]
    fn the_defaults_are_the_reference_ones() {
        let s = PasswordResetSettings::default();
        assert_eq!(
            s.rule(),
            GeneratorRule {
                length: 12,
                lower: 6,
                upper: 2,
                digits: 2,
                symbols: 2
            }
        );
        let read: PasswordResetSettings = from_json(serde_json::json!({})).unwrap();
        assert_eq!(read, s);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = s.generate(&mut rng).unwrap();
        let b = s.generate(&mut rng).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().unwrap().len(), 12);
    }

    #[test]
    fn reference_names_and_numeric_modes_are_read() {
        let s: PasswordResetSettings = from_json(serde_json::json!({
            "Mode": 2, "AutoGenerate": false, "MustChange": true, "GeneratedLength": 20,
            "GeneratedLowerCaseMinimum": 1, "GeneratedUpperCaseMinimum": 3,
            "GeneratedDigitMinimum": 4, "GeneratedSymbolMinimum": 0,
            "StrengthCheck": ["[0-9]"], "DisableNotifications": true,
            "NotificationCC": ["helpdesk@example.com"]
        }))
        .unwrap();
        assert_eq!(s.mode, PasswordMode::TwoWay);
        assert!(!s.auto_generate && s.must_change && s.disable_notifications);
        assert_eq!(s.rule().length, 20);
        assert_eq!(s.strength_check[0].pattern(), "[0-9]");
        assert_eq!(s.notification_cc, ["helpdesk@example.com"]);
        assert!(!s.generates());
        for (json, mode) in [
            (serde_json::json!(0), PasswordMode::Disabled),
            (serde_json::json!("1"), PasswordMode::OneWay),
            (serde_json::json!("TwoWay"), PasswordMode::TwoWay),
        ] {
            let s: PasswordResetSettings = from_json(serde_json::json!({ "Mode": json })).unwrap();
            assert_eq!(s.mode, mode);
        }
        let disabled: PasswordResetSettings = from_json(serde_json::json!({"Mode": 0})).unwrap();
        assert!(!disabled.generates(), "Mode 0 generates nothing");
        // Written back, the settings read the same.
        let again: PasswordResetSettings = from_json(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn a_resource_type_carries_its_password_settings() {
        let base = serde_json::json!({
            "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
            "TargetEntityType": "AD_Entry", "Connection": "ad",
        });
        let mut json = base.clone();
        json["PasswordResetSettings"] =
            serde_json::json!({"Mode": "1", "AutoGenerate": true, "MustChange": true});
        let rt = crate::ResourceType::from_json(json).unwrap();
        let s = rt.password_reset_settings.unwrap();
        assert!(s.generates() && s.must_change);
        let mut json = base;
        json["PasswordResetSettings"] = serde_json::json!({"AutoGenerat": true});
        let e = crate::ResourceType::from_json(json).unwrap_err();
        assert_eq!(e.path(), "PasswordResetSettings.AutoGenerat");
        assert_eq!(e.suggestion(), Some("AutoGenerate"));
    }

    #[test]
    fn bad_settings_are_refused_naming_them() {
        let e = from_json::<PasswordResetSettings>(serde_json::json!({"MustChnage": true}))
            .unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownField { field, suggestion: Some(s), .. }
                if field == "MustChnage" && s == "MustChange"),
            "{e}"
        );
        let e = from_json::<PasswordResetSettings>(serde_json::json!({"Mode": 3})).unwrap_err();
        assert_eq!(e.path(), "Mode");
        let e = from_json::<PasswordResetSettings>(
            serde_json::json!({"StrengthCheck": ["[a-z]", "[unclosed"]}),
        )
        .unwrap_err();
        assert_eq!(e.path(), "StrengthCheck[1]");
        assert!(e.to_string().contains("`[unclosed`"), "{e}");
    }

    #[test]
    fn the_strength_checks_refuse_weak_passwords_and_impossible_settings() {
        let s: PasswordResetSettings =
            from_json(serde_json::json!({"StrengthCheck": ["^.{14,}$", "[A-Z]"]})).unwrap();
        let weak = Secret::new("Short-Pa55");
        let e = s.check_strength(&weak).unwrap_err();
        assert_eq!(
            e,
            PasswordError::TooWeak {
                pattern: "^.{14,}$".into()
            }
        );
        assert!(!e.to_string().contains("Short-Pa55"));
        assert!(s.check_strength(&Secret::new("Long-Enough-Pa55")).is_ok());
        assert_eq!(
            s.check_strength(&Secret::redacted()),
            Err(PasswordError::Redacted)
        );
        // The generator makes 12 characters; a check for 14 can never pass.
        let e = s
            .generate(&mut rand::rngs::StdRng::seed_from_u64(3))
            .unwrap_err();
        assert!(
            matches!(e, PasswordError::CannotGenerate { ref pattern, .. } if pattern == "^.{14,}$")
        );
        // With a longer length it passes.
        let long = PasswordResetSettings {
            generated_length: 16,
            ..s
        };
        let p = long
            .generate(&mut rand::rngs::StdRng::seed_from_u64(3))
            .unwrap();
        assert!(long.check_strength(&p).is_ok());
    }
}
