//! How an expected value is compared with the actual one (`ComparisonType`, SPEC §2).

use autoprov_core::ScalarValue;
use serde::{Deserialize, Serialize};
use smol_str::{SmolStr, StrExt};
use std::borrow::Cow;

/// How two text values are compared when the planner decides whether a target already holds
/// the expected value, and when correlation keys and query rules match values.
///
/// Non-text values (integers, booleans, dates, binaries) are always compared exactly. Secrets
/// are never equal to anything: they are write-only.
///
/// ```
/// use autoprov_planner::ComparisonType;
/// assert!(ComparisonType::IgnoreCase.text_equals("JDoe", "jdoe"));
/// assert!(!ComparisonType::CaseSensitive.text_equals("JDoe", "jdoe"));
/// assert!(ComparisonType::Approximate.text_equals(" Hélène  Dupont", "helene dupont"));
/// assert!(ComparisonType::IgnoreDiacritics.text_equals("Hélène", "HELENE"));
/// assert!(!ComparisonType::IgnoreDiacritics.text_equals("Jean-Luc", "Jean Luc"));
/// assert!(ComparisonType::Simplified.text_equals("O'Brien-Smith", "obriensmith"));
/// assert!(ComparisonType::Simplified.text_equals("Zoë  Lefèvre", "zoe-lefevre"));
/// assert!(!ComparisonType::Simplified.text_equals("Zoe", "Zoé2"));
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[non_exhaustive]
pub enum ComparisonType {
    /// Exact text (the default).
    #[default]
    CaseSensitive,
    /// Text equal when lower-cased (Unicode lower case).
    IgnoreCase,
    /// Text equal once leading/trailing whitespace is trimmed and inner runs of whitespace are
    /// collapsed to one space; case matters.
    IgnoreWhitespace,
    /// Ignore case, whitespace as in `IgnoreWhitespace`, and the common Latin diacritics
    /// (`é` = `e`, `ß` = `ss`, ...).
    Approximate,
    /// The reference system's `IgnoreDiacritics`: ignore case and the common Latin
    /// diacritics; whitespace and punctuation matter (`Hélène` = `helene`, `Jean-Luc` ≠
    /// `Jean Luc`).
    IgnoreDiacritics,
    /// The reference system's `Simplified`: ignore case, diacritics, and every character that
    /// is not a letter or a digit (`O'Brien-Smith` = `obriensmith`).
    Simplified,
}

impl ComparisonType {
    /// The canonical form of a text under this comparison: two texts are equal exactly when
    /// their canonical forms are. Borrowed when nothing changes.
    pub fn normalize(self, text: &str) -> Cow<'_, str> {
        match self {
            Self::CaseSensitive => Cow::Borrowed(text),
            Self::IgnoreCase => {
                if text.chars().any(char::is_uppercase) {
                    Cow::Owned(text.to_lowercase())
                } else {
                    Cow::Borrowed(text)
                }
            }
            Self::IgnoreWhitespace => collapse_whitespace(text),
            Self::IgnoreDiacritics => fold(text, false),
            Self::Simplified => fold(text, true),
            Self::Approximate => {
                let collapsed = collapse_whitespace(text);
                let mut out = String::with_capacity(collapsed.len());
                for c in collapsed.chars() {
                    for lower in c.to_lowercase() {
                        match fold_diacritic(lower) {
                            Some(folded) => out.push_str(folded),
                            None => out.push(lower),
                        }
                    }
                }
                if out == text {
                    Cow::Borrowed(text)
                } else {
                    Cow::Owned(out)
                }
            }
        }
    }

    /// Whether two texts are equal under this comparison.
    pub fn text_equals(self, a: &str, b: &str) -> bool {
        // Equal texts are equal under every comparison (each compares canonical forms), and
        // most values a plan compares are equal: no case folding for them.
        if a == b {
            return true;
        }
        match self {
            Self::CaseSensitive => false,
            // The hot path of every comparison: no allocation.
            Self::IgnoreCase if a.is_ascii() && b.is_ascii() => a.eq_ignore_ascii_case(b),
            Self::IgnoreCase => a
                .chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase)),
            _ => self.normalize(a) == self.normalize(b),
        }
    }

    /// Whether two scalar values are equal under this comparison. Secrets are never equal.
    pub fn scalar_equals(self, a: &ScalarValue, b: &ScalarValue) -> bool {
        match (a, b) {
            (ScalarValue::Secret(_), _) | (_, ScalarValue::Secret(_)) => false,
            (ScalarValue::String(a), ScalarValue::String(b)) => self.text_equals(a, b),
            (a, b) => a == b,
        }
    }

    /// The canonical text of a scalar used as a key (correlation, query rules): strings are
    /// normalized, other values use their display form. Secrets have no key.
    pub fn key_of(self, value: &ScalarValue) -> Option<Cow<'_, str>> {
        match value {
            ScalarValue::Secret(_) => None,
            ScalarValue::String(s) => Some(self.normalize(s)),
            other => Some(Cow::Owned(other.to_string())),
        }
    }
}

impl ComparisonType {
    /// [`ComparisonType::normalize`] as a [`SmolStr`]: a short ASCII text compared ignoring
    /// case is lower-cased inline, without the `String` `normalize` would allocate (and the
    /// caller free) — a load of a million targets and owners does it for each.
    pub(crate) fn key_smol(self, text: &str) -> SmolStr {
        match self {
            Self::IgnoreCase if text.is_ascii() => {
                if text.bytes().any(|b| b.is_ascii_uppercase()) {
                    text.to_ascii_lowercase_smolstr()
                } else {
                    SmolStr::new(text)
                }
            }
            _ => SmolStr::new(self.normalize(text)),
        }
    }

    /// [`ComparisonType::key_of`] as a [`SmolStr`] (see [`ComparisonType::key_smol`]).
    pub(crate) fn key_of_smol(self, value: &ScalarValue) -> Option<SmolStr> {
        match value {
            ScalarValue::Secret(_) => None,
            ScalarValue::String(s) => Some(self.key_smol(s)),
            other => Some(SmolStr::new(other.to_string())),
        }
    }

    /// [`ComparisonType::key_of`] without allocating for the common case: a changed key is
    /// written in `buf` (an ASCII text compared ignoring case is lower-cased there).
    pub(crate) fn key_in<'b>(self, value: &'b ScalarValue, buf: &'b mut String) -> Option<&'b str> {
        match value {
            ScalarValue::Secret(_) => None,
            ScalarValue::String(s) if self == Self::IgnoreCase && s.is_ascii() => {
                if !s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Some(s);
                }
                buf.clear();
                buf.push_str(s);
                buf.make_ascii_lowercase();
                Some(buf)
            }
            _ => match self.key_of(value)? {
                Cow::Borrowed(key) => Some(key),
                Cow::Owned(key) => {
                    *buf = key;
                    Some(buf)
                }
            },
        }
    }
}

/// Lower case and diacritics folded; with `simplify`, only letters and digits kept.
fn fold(text: &str, simplify: bool) -> Cow<'_, str> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if simplify && !c.is_alphanumeric() {
            continue;
        }
        for lower in c.to_lowercase() {
            match fold_diacritic(lower) {
                Some(folded) => out.push_str(folded),
                None => out.push(lower),
            }
        }
    }
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

fn collapse_whitespace(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    let needs_work = trimmed.len() != text.len()
        || trimmed
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        || trimmed.chars().any(|c| c.is_whitespace() && c != ' ');
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut in_space = false;
    for c in trimmed.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    Cow::Owned(out)
}

/// Folds the Latin-1 / Latin Extended-A letters people type in names; enough for identity data
/// without pulling a Unicode normalization table.
fn fold_diacritic(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ř' => "r",
        'ś' | 'ş' | 'š' | 'ŝ' => "s",
        'ß' => "ss",
        'ţ' | 'ť' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ł' => "l",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoprov_core::Secret;

    #[test]
    fn keys_written_in_a_buffer_are_the_keys() {
        use ComparisonType::*;
        let values: Vec<ScalarValue> = vec![
            "D001".into(),
            "d001".into(),
            "Élodie Müller".into(),
            " Jean-Luc  O'Brien ".into(),
            "".into(),
            "ΟΔΥΣΣΕΥΣ".into(),
            "EMPLOYEE-ID-0000000000000000042".into(),
            "E00000042".into(),
            ScalarValue::Integer(42),
            Secret::new("x").into(),
        ];
        let mut buf = String::from("left over");
        for c in [
            CaseSensitive,
            IgnoreCase,
            IgnoreWhitespace,
            Approximate,
            IgnoreDiacritics,
            Simplified,
        ] {
            for v in &values {
                let expected = c.key_of(v).map(Cow::into_owned);
                assert_eq!(
                    c.key_in(v, &mut buf).map(str::to_owned),
                    expected,
                    "{c:?} {v:?}"
                );
                // Inline when short, lower-cased without a `String`: the same key.
                assert_eq!(
                    c.key_of_smol(v).map(|k| k.to_string()),
                    expected,
                    "{c:?} {v:?}"
                );
            }
        }
    }

    #[test]
    fn comparisons_follow_their_names() {
        use ComparisonType::*;
        assert!(CaseSensitive.text_equals("a b", "a b"));
        assert!(!CaseSensitive.text_equals("A", "a"));
        assert!(IgnoreCase.text_equals("ÉLODIE", "élodie"));
        assert!(!IgnoreCase.text_equals("elodie", "élodie"));
        assert!(IgnoreWhitespace.text_equals("  a \t b ", "a b"));
        assert!(!IgnoreWhitespace.text_equals("A b", "a b"));
        assert!(Approximate.text_equals("Straße  Œuvre", "strasse oeuvre"));
    }

    #[test]
    fn secrets_are_never_equal_and_non_text_is_exact() {
        let s = ScalarValue::Secret(Secret::new("x"));
        assert!(!ComparisonType::CaseSensitive.scalar_equals(&s, &s));
        assert!(ComparisonType::IgnoreCase.scalar_equals(&1i64.into(), &1i64.into()));
        assert!(!ComparisonType::IgnoreCase.scalar_equals(&1i64.into(), &"1".into()));
        assert_eq!(ComparisonType::IgnoreCase.key_of(&s), None);
        assert_eq!(
            ComparisonType::IgnoreCase.key_of(&"AbC".into()).as_deref(),
            Some("abc")
        );
    }
}
