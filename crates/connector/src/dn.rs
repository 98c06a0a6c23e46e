//! Distinguished names (RFC 4514): escaping, parsing and comparison.
//!
//! Directory-shaped connectors name objects `CN=<value>,OU=<value>,DC=example,DC=test`. Every
//! value placed in a DN is escaped here, never concatenated raw, so a name such as
//! `Smith, John` or `#admins` stays one RDN value:
//!
//! ```
//! use autoprov_connector::dn::{Dn, Rdn, escape_rdn_value};
//! assert_eq!(escape_rdn_value("Smith, John"), r"Smith\, John");
//! assert_eq!(escape_rdn_value("#x "), r"\#x\ ");
//! let dn = Dn::parse(r"CN=Smith\, John,OU=Sales,DC=example,DC=test").unwrap();
//! assert_eq!(dn.rdns()[0], Rdn::new("CN", "Smith, John"));
//! assert_eq!(dn.parent().unwrap().to_string(), "OU=Sales,DC=example,DC=test");
//! // Comparison ignores case, as Active Directory does.
//! assert!(dn.same_as(&Dn::parse(r"cn=SMITH\, JOHN,ou=sales,dc=EXAMPLE,dc=test").unwrap()));
//! ```

use std::fmt;

/// One relative distinguished name: `attribute=value` (the value unescaped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rdn {
    /// The attribute type, e.g. `CN`.
    pub attribute: String,
    /// The value, unescaped, exactly as the object's name property holds it.
    pub value: String,
}

impl Rdn {
    /// An RDN of an attribute type and an (unescaped) value.
    pub fn new(attribute: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            attribute: attribute.into(),
            value: value.into(),
        }
    }

    /// The case-folded form used for comparisons.
    pub fn normalized(&self) -> (String, String) {
        (self.attribute.to_lowercase(), self.value.to_lowercase())
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.attribute, escape_rdn_value(&self.value))
    }
}

/// A DN that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid distinguished name `{dn}`: {reason}")]
pub struct DnError {
    /// The text (NUL and control characters shown escaped).
    pub dn: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed distinguished name, leaf first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// A DN from its RDNs, leaf first.
    pub fn from_rdns(rdns: Vec<Rdn>) -> Self {
        Self { rdns }
    }

    /// Parses a DN. Multi-valued RDNs (`CN=a+UID=b`) and BER-encoded values (`CN=#04...`)
    /// are refused.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        parse(text).map_err(|reason| DnError {
            dn: text.escape_default().to_string(),
            reason,
        })
    }

    /// The RDNs, leaf first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The leaf RDN.
    pub fn leaf(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// The parent DN (none for a single RDN or the empty DN).
    pub fn parent(&self) -> Option<Dn> {
        (self.rdns.len() > 1).then(|| Dn {
            rdns: self.rdns[1..].to_vec(),
        })
    }

    /// A child of this DN.
    pub fn child(&self, rdn: Rdn) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn);
        rdns.extend(self.rdns.iter().cloned());
        Dn { rdns }
    }

    /// Whether it has no RDN.
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The case-folded RDNs, leaf first.
    pub fn normalized(&self) -> Vec<(String, String)> {
        self.rdns.iter().map(Rdn::normalized).collect()
    }

    /// Whether two DNs name the same object (attribute types and values compared without
    /// case).
    pub fn same_as(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(a, b)| a.normalized() == b.normalized())
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        if ancestor.rdns.len() > self.rdns.len() {
            return false;
        }
        let skip = self.rdns.len() - ancestor.rdns.len();
        self.rdns[skip..]
            .iter()
            .zip(&ancestor.rdns)
            .all(|(a, b)| a.normalized() == b.normalized())
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rdn}")?;
        }
        Ok(())
    }
}

/// Whether two strings name the same object: equal, or both DNs that are [`Dn::same_as`].
pub fn same_name(a: &str, b: &str) -> bool {
    a == b
        || match (Dn::parse(a), Dn::parse(b)) {
            (Ok(a), Ok(b)) => !a.is_empty() && a.same_as(&b),
            _ => false,
        }
}

/// Escapes a value for use in an RDN (RFC 4514 §2.4): `, + " \ < > ; =` are backslash-escaped,
/// a leading space or `#` and a trailing space are escaped, NUL becomes `\00`. Everything else
/// (unicode included) is kept as is.
pub fn escape_rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_rdn_value`] (also accepts `\XX` hex escapes of any byte sequence that is
/// UTF-8).
pub fn unescape_rdn_value(escaped: &str) -> Result<String, DnError> {
    let mut value = RawValue::default();
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            read_escape(&mut chars, &mut value).map_err(|reason| DnError {
                dn: escaped.escape_default().to_string(),
                reason,
            })?;
        } else {
            value.push_char(c, false);
        }
    }
    value.finish().map_err(|reason| DnError {
        dn: escaped.escape_default().to_string(),
        reason,
    })
}

/// A value being read: bytes (hex escapes may split a UTF-8 sequence) plus where the last
/// escaped byte ends, so unescaped trailing spaces can be dropped and escaped ones kept.
#[derive(Default)]
struct RawValue {
    bytes: Vec<u8>,
    significant: usize,
}

impl RawValue {
    fn push_char(&mut self, c: char, escaped: bool) {
        let mut buf = [0; 4];
        self.bytes
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        if escaped || c != ' ' {
            self.significant = self.bytes.len();
        }
    }

    fn push_byte(&mut self, b: u8) {
        self.bytes.push(b);
        self.significant = self.bytes.len();
    }

    fn finish(mut self) -> Result<String, String> {
        self.bytes.truncate(self.significant);
        String::from_utf8(self.bytes).map_err(|_| "a hex escape is not UTF-8".to_owned())
    }
}

fn read_escape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    value: &mut RawValue,
) -> Result<(), String> {
    let Some(next) = chars.next() else {
        return Err("a trailing backslash escapes nothing".into());
    };
    if next.is_ascii_hexdigit() {
        let Some(low) = chars.next().filter(char::is_ascii_hexdigit) else {
            return Err(format!("`\\{next}` is not a two-digit hex escape"));
        };
        let byte = u8::from_str_radix(&format!("{next}{low}"), 16)
            .map_err(|e| format!("bad hex escape: {e}"))?;
        value.push_byte(byte);
    } else {
        value.push_char(next, true);
    }
    Ok(())
}

fn parse(text: &str) -> Result<Dn, String> {
    let mut rdns = Vec::new();
    if text.trim().is_empty() {
        return Ok(Dn { rdns });
    }
    let mut chars = text.chars().peekable();
    loop {
        // Attribute type, up to `=`.
        let mut attribute = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c @ (',' | '+' | '\\' | '"')) => {
                    return Err(format!("unexpected `{c}` in an attribute type"));
                }
                Some(c) => attribute.push(c),
                None => return Err(format!("`{}` has no `=`", attribute.trim())),
            }
        }
        let attribute = attribute.trim().to_owned();
        if attribute.is_empty() {
            return Err("an RDN has an empty attribute type".into());
        }
        // Value, up to an unescaped `,` or the end. Unescaped leading spaces are dropped.
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'#') {
            return Err(format!(
                "{attribute}: BER-encoded (`#...`) values are not supported"
            ));
        }
        let mut value = RawValue::default();
        let mut ended_by_comma = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => read_escape(&mut chars, &mut value)?,
                ',' => {
                    ended_by_comma = true;
                    break;
                }
                '+' => {
                    return Err(format!("{attribute}: multi-valued RDNs are not supported"));
                }
                '"' | '<' | '>' | ';' | '\0' => {
                    return Err(format!(
                        "{attribute}: `{}` must be escaped in a value",
                        c.escape_default()
                    ));
                }
                _ => value.push_char(c, false),
            }
        }
        let value = value.finish()?;
        if value.is_empty() {
            return Err(format!("{attribute}: empty value"));
        }
        rdns.push(Rdn { attribute, value });
        if !ended_by_comma {
            break;
        }
    }
    Ok(Dn { rdns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_character_round_trips() {
        let cases = [
            "plain",
            "Smith, John",
            "a+b",
            "quote\"d",
            r"back\slash",
            "<angle>",
            "semi;colon",
            "eq=ual",
            "#hash",
            "mid#hash",
            "star*(paren)",
            "nul\0inside",
            " leading",
            "trailing ",
            "  both  ",
            "Zoë Ångström 日本語 😀",
            r#",+"\<>;=#*() "#,
        ];
        for value in cases {
            let dn = Dn::from_rdns(vec![
                Rdn::new("CN", value),
                Rdn::new("OU", value),
                Rdn::new("DC", "test"),
            ]);
            let text = dn.to_string();
            assert!(!text.contains('\0'), "{text:?}");
            let back = Dn::parse(&text).unwrap_or_else(|e| panic!("{value:?}: {e}"));
            assert_eq!(back, dn, "{text:?}");
            assert_eq!(unescape_rdn_value(&escape_rdn_value(value)).unwrap(), value);
        }
    }

    #[test]
    fn parses_lenient_spacing_and_hex() {
        let dn = Dn::parse("CN=J\\C3\\A9r\\C3\\B4me, OU = Sales ,DC=test").unwrap();
        assert_eq!(dn.rdns()[0].value, "Jérôme");
        assert_eq!(dn.rdns()[1], Rdn::new("OU", "Sales"));
        assert!(Dn::parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        for bad in [
            "CN",
            "CN=a+UID=b,DC=x",
            "CN=#0401,DC=x",
            "CN=,DC=x",
            "=x",
            "CN=a\\",
            "CN=a\\4",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compares_without_case_and_by_ancestry() {
        let a = Dn::parse("CN=Jo,OU=Sales,DC=example,DC=test").unwrap();
        let ou = Dn::parse("ou=SALES,dc=example,dc=test").unwrap();
        assert!(a.is_within(&ou) && ou.is_within(&ou) && !ou.is_within(&a));
        assert!(same_name("CN=Jo,DC=x", "cn=jo,dc=X"));
        assert!(!same_name("CN=Jo,DC=x", "CN=Jo2,DC=x"));
        assert!(same_name("not a dn", "not a dn"));
    }
}
