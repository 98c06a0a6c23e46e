//! Distinguished names, RDN-value and filter-value escaping, and `objectGUID` text.
//!
//! Nothing that comes from an order is ever concatenated raw into LDAP syntax: a value placed in
//! a DN goes through [`escape_rdn_value`], a value placed in a filter through
//! [`escape_filter_value`] (or [`escape_filter_bytes`] for binary values), and DNs that arrive
//! whole (a `parentdn` or group reference) are parsed with [`Dn::parse`] and rejected when they
//! are not well-formed.
//!
//! ```
//! use autoprov_ad::dn::{Dn, escape_filter_value, escape_rdn_value};
//! assert_eq!(escape_rdn_value("Doe, John"), "Doe\\, John");
//! assert_eq!(escape_filter_value("*)(objectClass=*"), "\\2a\\29\\28objectClass=\\2a");
//! let dn = Dn::parse("CN=Doe\\, John,OU=Sales,DC=example,DC=test").unwrap();
//! assert_eq!(dn.rdn_value(), Some("Doe, John"));
//! assert_eq!(dn.parent().unwrap().to_string(), "OU=Sales,DC=example,DC=test");
//! assert!(dn.is_within(&Dn::parse("dc=EXAMPLE, dc=test").unwrap()));
//! ```

use std::fmt;

/// A malformed distinguished name or GUID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} `{input}`: {reason}")]
pub struct DnError {
    what: &'static str,
    input: String,
    reason: String,
}

impl DnError {
    fn dn(input: &str, reason: impl Into<String>) -> Self {
        Self {
            what: "distinguished name",
            input: input.escape_debug().to_string(),
            reason: reason.into(),
        }
    }
}

/// One attribute-value assertion of an RDN (`CN=Doe\, John`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ava {
    /// The attribute type as written (`CN`).
    attr: String,
    /// The value, unescaped.
    value: String,
}

/// A parsed distinguished name (RFC 4514), most specific RDN first.
///
/// Comparison ([`Dn::same_as`], [`Dn::key`]) ignores the case of types and values and the
/// escaping style, the way Active Directory compares names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn {
    /// Each RDN is one or more AVAs (multi-valued RDNs are joined by `+`).
    rdns: Vec<Vec<Ava>>,
}

impl Dn {
    /// Parses a DN. The empty string is the root DN (no RDN).
    pub fn parse(input: &str) -> Result<Self, DnError> {
        let mut rdns = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { rdns });
        }
        let bytes = input.as_bytes();
        let mut i = 0;
        let mut current_rdn: Vec<Ava> = Vec::new();
        loop {
            // attribute type
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && bytes[i] != b'=' {
                if matches!(bytes[i], b',' | b'+' | b'\\' | b'"') {
                    return Err(DnError::dn(
                        input,
                        "an attribute type holds a special character",
                    ));
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(DnError::dn(input, "an RDN has no `=`"));
            }
            let attr = input[start..i].trim();
            if attr.is_empty()
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(DnError::dn(
                    input,
                    format!("invalid attribute type `{attr}`"),
                ));
            }
            i += 1; // '='
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            // value
            let mut value: Vec<u8> = Vec::new();
            let mut trailing_unescaped_spaces = 0usize;
            if i < bytes.len() && bytes[i] == b'#' {
                // BER-encoded value: keep its hex text as the value.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                value.extend_from_slice(&bytes[start..i]);
            } else {
                while i < bytes.len() && !matches!(bytes[i], b',' | b'+' | b';') {
                    let b = bytes[i];
                    if b == b'\\' {
                        let Some(&next) = bytes.get(i + 1) else {
                            return Err(DnError::dn(input, "a trailing `\\` escapes nothing"));
                        };
                        if next.is_ascii_hexdigit() {
                            let Some(&low) = bytes.get(i + 2) else {
                                return Err(DnError::dn(input, "a `\\` hex pair is cut short"));
                            };
                            let pair = [next, low];
                            let pair = std::str::from_utf8(&pair)
                                .ok()
                                .and_then(|p| u8::from_str_radix(p, 16).ok())
                                .ok_or_else(|| DnError::dn(input, "invalid `\\` hex pair"))?;
                            value.push(pair);
                            i += 3;
                        } else {
                            value.push(next);
                            i += 2;
                        }
                        trailing_unescaped_spaces = 0;
                    } else if b == b'"' {
                        return Err(DnError::dn(input, "an unescaped `\"` in a value"));
                    } else {
                        if b == b' ' {
                            trailing_unescaped_spaces += 1;
                        } else {
                            trailing_unescaped_spaces = 0;
                        }
                        value.push(b);
                        i += 1;
                    }
                }
                value.truncate(value.len() - trailing_unescaped_spaces);
            }
            let value = String::from_utf8(value)
                .map_err(|_| DnError::dn(input, "a value is not valid UTF-8"))?;
            if value.is_empty() {
                return Err(DnError::dn(input, format!("`{attr}=` has an empty value")));
            }
            current_rdn.push(Ava {
                attr: attr.to_owned(),
                value,
            });
            if i >= bytes.len() {
                rdns.push(std::mem::take(&mut current_rdn));
                break;
            }
            match bytes[i] {
                b'+' => {}
                _ => rdns.push(std::mem::take(&mut current_rdn)),
            }
            i += 1;
            if i >= bytes.len() {
                return Err(DnError::dn(input, "it ends with a separator"));
            }
        }
        Ok(Self { rdns })
    }

    /// A DN made of one RDN `attr=value` below `parent`. The value is escaped here.
    pub fn child(parent: &Dn, attr: &str, value: &str) -> Self {
        let mut rdns = Vec::with_capacity(parent.rdns.len() + 1);
        rdns.push(vec![Ava {
            attr: attr.to_owned(),
            value: value.to_owned(),
        }]);
        rdns.extend(parent.rdns.iter().cloned());
        Self { rdns }
    }

    /// Whether this is the root (empty) DN.
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The number of RDNs.
    pub fn len(&self) -> usize {
        self.rdns.len()
    }

    /// Whether the DN has no RDN (same as [`Dn::is_root`]).
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The parent DN, or `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        if self.rdns.is_empty() {
            return None;
        }
        Some(Self {
            rdns: self.rdns[1..].to_vec(),
        })
    }

    /// The attribute type of the first RDN (`CN`), when it is single-valued.
    pub fn rdn_attribute(&self) -> Option<&str> {
        match self.rdns.first() {
            Some(rdn) if rdn.len() == 1 => Some(&rdn[0].attr),
            _ => None,
        }
    }

    /// The unescaped value of the first RDN, when it is single-valued.
    pub fn rdn_value(&self) -> Option<&str> {
        match self.rdns.first() {
            Some(rdn) if rdn.len() == 1 => Some(&rdn[0].value),
            _ => None,
        }
    }

    /// The first RDN as text (`CN=Doe\, John`), escaped.
    pub fn rdn_string(&self) -> String {
        self.rdns
            .first()
            .map(|r| rdn_to_string(r))
            .unwrap_or_default()
    }

    /// Whether this DN equals `base` or lies below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        if base.rdns.len() > self.rdns.len() {
            return false;
        }
        let offset = self.rdns.len() - base.rdns.len();
        self.rdns[offset..]
            .iter()
            .zip(&base.rdns)
            .all(|(a, b)| rdn_key(a) == rdn_key(b))
    }

    /// Whether two DNs name the same entry (case- and escaping-insensitive).
    pub fn same_as(&self, other: &Dn) -> bool {
        self.key() == other.key()
    }

    /// A normalized form for comparisons and map keys: lower-case types and values, one escaping
    /// style, no spaces around separators.
    pub fn key(&self) -> String {
        self.rdns
            .iter()
            .map(|r| rdn_key(r))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn rdn_to_string(rdn: &[Ava]) -> String {
    rdn.iter()
        .map(|a| format!("{}={}", a.attr, escape_rdn_value(&a.value)))
        .collect::<Vec<_>>()
        .join("+")
}

fn rdn_key(rdn: &[Ava]) -> String {
    let mut parts: Vec<String> = rdn
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a.attr.to_ascii_lowercase(),
                escape_rdn_value(&a.value.to_lowercase())
            )
        })
        .collect();
    parts.sort();
    parts.join("+")
}

impl fmt::Display for Dn {
    /// The DN with every value escaped in Active Directory's style (`\,` rather than `\2C`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for rdn in &self.rdns {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(&rdn_to_string(rdn))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits a DN's text at its first unescaped comma: `(rdn, parent)`, keeping the server's own
/// spelling of the parent. `None` when the DN has a single RDN.
pub fn split_rdn(dn: &str) -> Option<(&str, &str)> {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return Some((dn[..i].trim(), dn[i + 1..].trim())),
            _ => i += 1,
        }
    }
    None
}

/// Escapes a value for use as an RDN value (RFC 4514), in the style Active Directory answers
/// with: `, + " \ < > ; = #` get a backslash, a leading or trailing space is escaped, NUL and
/// other control characters become `\XX` hex pairs.
pub fn escape_rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for use in a search filter (RFC 4515): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`. Other characters, including non-ASCII, are kept.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes binary data (an `objectGUID`) for a search filter: every byte as `\xx`.
pub fn escape_filter_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Formats the 16 bytes of an `objectGUID` as its usual text form
/// (`c5c26e30-35d3-43ca-9ea4-44c41a57ea9c`): the first three fields are little-endian on the
/// wire.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let b = bytes;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

/// Parses the text form of a GUID (with or without braces) into the 16 bytes of an
/// `objectGUID`. The inverse of [`guid_to_string`].
pub fn guid_from_str(text: &str) -> Option<[u8; 16]> {
    let t = text.trim().trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = t.split('-').collect();
    if groups.len() != 5
        || [8, 4, 4, 4, 12]
            .iter()
            .zip(&groups)
            .any(|(n, g)| g.len() != *n || !g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    let hex: String = groups.concat();
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    let mut out = raw;
    out[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    out[4..6].copy_from_slice(&[raw[5], raw[4]]);
    out[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_unescapes() {
        let dn = Dn::parse("CN=Probe\\, User\\+x\\#,OU=probe1,DC=example,DC=test").unwrap();
        assert_eq!(dn.rdn_value(), Some("Probe, User+x#"));
        assert_eq!(dn.len(), 4);
        let hex = Dn::parse("CN=Probe\\2c User\\2bx\\23,OU=probe1,DC=example,DC=test").unwrap();
        assert!(dn.same_as(&hex));
        assert_eq!(
            hex.to_string(),
            "CN=Probe\\, User\\+x\\#,OU=probe1,DC=example,DC=test"
        );
        let spaced =
            Dn::parse("cn = probe\\, user\\+X\\# , ou=PROBE1, dc=example,dc=test").unwrap();
        assert!(dn.same_as(&spaced), "{} vs {}", dn.key(), spaced.key());
        let multi = Dn::parse("CN=a+UID=b,DC=x").unwrap();
        assert_eq!(multi.rdn_value(), None);
        assert_eq!(multi.len(), 2);
        assert!(Dn::parse("").unwrap().is_root());
    }

    #[test]
    fn utf8_hex_pairs() {
        let dn = Dn::parse("CN=Ren\\C3\\A9,DC=x").unwrap();
        assert_eq!(dn.rdn_value(), Some("René"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "CN=Probe, User+x,OU=a",
            "CN",
            "CN=a,",
            "=a",
            "CN=a\\",
            "CN=a\\4",
            "CN=",
            "C N=a",
            "CN=a,,DC=x",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn split_keeps_the_parent_text() {
        assert_eq!(
            split_rdn("CN=Doe\\, John,OU=Sales,DC=x"),
            Some(("CN=Doe\\, John", "OU=Sales,DC=x"))
        );
        assert_eq!(split_rdn("DC=x"), None);
    }

    #[test]
    fn within_and_parent() {
        let base = Dn::parse("DC=example,DC=test").unwrap();
        let dn = Dn::parse("CN=x,OU=y,DC=Example,DC=Test").unwrap();
        assert!(dn.is_within(&base));
        assert!(base.is_within(&base));
        assert!(!base.is_within(&dn));
        assert!(!Dn::parse("CN=x,DC=other,DC=test").unwrap().is_within(&base));
        assert_eq!(dn.parent().unwrap().parent().unwrap().key(), base.key());
        let child = Dn::child(&base, "OU", ",OU=Admins");
        assert_eq!(child.to_string(), "OU=\\,OU\\=Admins,DC=example,DC=test");
        assert_eq!(child.len(), 3);
    }

    #[test]
    fn rdn_escape_table() {
        let cases = [
            ("plain", "plain"),
            ("Doe, John", "Doe\\, John"),
            ("a+b", "a\\+b"),
            ("#lead", "\\#lead"),
            (" lead and trail ", "\\ lead and trail\\ "),
            ("back\\slash", "back\\\\slash"),
            ("quote\"", "quote\\\""),
            ("<>;=", "\\<\\>\\;\\="),
            ("nul\0", "nul\\00"),
            ("line\nfeed", "line\\0Afeed"),
            (",OU=Admins", "\\,OU\\=Admins"),
            ("*)(objectClass=*", "*)(objectClass\\=*"),
            ("René", "René"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_rdn_value(raw), escaped, "{raw:?}");
        }
    }

    #[test]
    fn filter_escape_table() {
        let cases = [
            ("plain", "plain"),
            ("*)(objectClass=*", "\\2a\\29\\28objectClass=\\2a"),
            ("a\\b", "a\\5cb"),
            ("nul\0", "nul\\00"),
            ("René", "René"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_filter_value(raw), escaped, "{raw:?}");
        }
        assert_eq!(escape_filter_bytes(&[0, 0xab, 0x2a]), "\\00\\ab\\2a");
    }

    #[test]
    fn guid_text() {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode("MG7CxdM1ykOepETEGlfqnA==")
            .unwrap();
        let text = guid_to_string(&bytes).unwrap();
        assert_eq!(text, "c5c26e30-35d3-43ca-9ea4-44c41a57ea9c");
        assert_eq!(guid_from_str(&text).unwrap().to_vec(), bytes);
        assert_eq!(
            guid_from_str(&format!("{{{text}}}")).unwrap().to_vec(),
            bytes
        );
        assert!(guid_from_str("c5c26e30-35d3-43ca-9ea4").is_none());
        assert!(guid_from_str("x5c26e30-35d3-43ca-9ea4-44c41a57ea9c").is_none());
        assert!(guid_to_string(&[1, 2]).is_none());
    }

    proptest! {
        #[test]
        fn rdn_value_round_trips(value in "\\PC{1,24}|[ ,+\"\\\\<>;=#*()\0a-z]{1,12}") {
            let base = Dn::parse("OU=x,DC=example,DC=test").unwrap();
            let dn = Dn::child(&base, "CN", &value);
            let text = dn.to_string();
            let back = Dn::parse(&text).unwrap();
            prop_assert_eq!(back.rdn_value(), Some(value.as_str()));
            prop_assert_eq!(back.len(), 4);
            prop_assert!(back.same_as(&dn));
            prop_assert!(back.is_within(&base));
        }

        #[test]
        fn filter_value_has_no_special_characters(value in "\\PC{0,24}|[*()\\\\\0a-z]{0,12}") {
            let e = escape_filter_value(&value);
            prop_assert!(!e.contains(['*', '(', ')', '\0']));
            // every backslash starts a two-digit hex escape
            let bytes = e.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\\' {
                    prop_assert!(bytes.len() > i + 2);
                    prop_assert!(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit());
                }
            }
        }

        #[test]
        fn guid_round_trips(bytes in proptest::array::uniform16(any::<u8>())) {
            let text = guid_to_string(&bytes).unwrap();
            prop_assert_eq!(guid_from_str(&text), Some(bytes));
        }
    }
}
