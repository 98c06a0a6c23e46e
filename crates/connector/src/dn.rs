//! Distinguished names (RFC 4514): escaping, parsing and comparison — the one DN module of
//! autoprov, used by the in-memory package, the conformance kit and the Active Directory
//! package alike.
//!
//! Directory-shaped connectors name objects `CN=<value>,OU=<value>,DC=example,DC=test`. Every
//! value placed in a DN is escaped here, never concatenated raw, so a name such as
//! `Smith, John` or `#admins` stays one RDN value; DNs that arrive whole (a `parentdn` or a
//! group reference) are parsed with [`Dn::parse`] and refused when they are not well-formed.
//!
//! ```
//! use autoprov_connector::dn::{Dn, Rdn, escape_rdn_value};
//! assert_eq!(escape_rdn_value("Smith, John"), r"Smith\, John");
//! assert_eq!(escape_rdn_value("#x "), r"\#x\ ");
//! let dn = Dn::parse(r"CN=Smith\, John,OU=Sales,DC=example,DC=test").unwrap();
//! assert_eq!(dn.rdns()[0], Rdn::new("CN", "Smith, John"));
//! assert_eq!(dn.rdn_value(), Some("Smith, John"));
//! assert_eq!(dn.parent().unwrap().to_string(), "OU=Sales,DC=example,DC=test");
//! // Comparison ignores case and escaping style, as Active Directory does.
//! assert!(dn.same_as(&Dn::parse(r"cn=SMITH\2C JOHN, ou=sales,dc=EXAMPLE,dc=test").unwrap()));
//! assert!(dn.is_within(&Dn::parse("dc=example,dc=TEST").unwrap()));
//! ```

use std::fmt;

/// One attribute-value assertion of an RDN: `attribute=value`, the value unescaped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ava {
    /// The attribute type as written, e.g. `CN`.
    pub attribute: String,
    /// The value, unescaped, exactly as the object's name property holds it.
    pub value: String,
}

impl Ava {
    /// The normalized form used for comparisons: lower-case type and value, one escaping style.
    fn key(&self) -> String {
        format!(
            "{}={}",
            self.attribute.to_ascii_lowercase(),
            escape_rdn_value(&self.value.to_lowercase())
        )
    }
}

/// One relative distinguished name: one attribute-value assertion, or several joined by `+`
/// (a multi-valued RDN, which directories rarely use; [`Dn::rdn_value`] ignores them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rdn {
    /// Never empty.
    avas: Vec<Ava>,
}

impl Rdn {
    /// A single-valued RDN of an attribute type and an (unescaped) value.
    pub fn new(attribute: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            avas: vec![Ava {
                attribute: attribute.into(),
                value: value.into(),
            }],
        }
    }

    /// A multi-valued RDN; `None` when `avas` is empty.
    pub fn from_avas(avas: Vec<Ava>) -> Option<Self> {
        (!avas.is_empty()).then_some(Self { avas })
    }

    /// Its attribute-value assertions (one unless the RDN is multi-valued).
    pub fn avas(&self) -> &[Ava] {
        &self.avas
    }

    /// The one assertion of a single-valued RDN; `None` for a multi-valued one.
    pub fn single(&self) -> Option<&Ava> {
        match self.avas.as_slice() {
            [ava] => Some(ava),
            _ => None,
        }
    }

    /// The normalized form used for comparisons and map keys: lower-case types and values,
    /// one escaping style, assertions sorted.
    pub fn key(&self) -> String {
        let mut parts: Vec<String> = self.avas.iter().map(Ava::key).collect();
        parts.sort();
        parts.join("+")
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ava) in self.avas.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}={}", ava.attribute, escape_rdn_value(&ava.value))?;
        }
        Ok(())
    }
}

/// A DN (or an escaped RDN value) that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid distinguished name `{dn}`: {reason}")]
#[non_exhaustive]
pub struct DnError {
    /// The text (NUL and control characters shown escaped).
    pub dn: String,
    /// What is wrong.
    pub reason: String,
}

impl DnError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            dn: text.escape_debug().to_string(),
            reason: reason.into(),
        }
    }
}

/// A parsed distinguished name, most specific RDN first. The empty DN is the root.
///
/// Comparison ([`Dn::same_as`], [`Dn::key`], [`Dn::is_within`]) ignores the case of types and
/// values and the escaping style, the way Active Directory compares names. `==` compares the
/// parsed form exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// A DN from its RDNs, most specific first.
    pub fn from_rdns(rdns: Vec<Rdn>) -> Self {
        Self { rdns }
    }

    /// Parses a DN (RFC 4514). The empty string is the root DN.
    ///
    /// Lenient where directories are: spaces around `=`, `,` and `+` are ignored, and hex
    /// escapes may spell any UTF-8 value (`J\C3\A9r\C3\B4me`). Refused: an unescaped `"`, `<`,
    /// `>`, `;` or NUL in a value, an empty value or attribute type, and BER-encoded values
    /// (`CN=#04...`), which no directory we provision answers with.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        parse(text).map_err(|reason| DnError::new(text, reason))
    }

    /// The RDNs, most specific first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The most specific RDN (none for the root).
    pub fn leaf(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// The attribute type of the leaf RDN (`CN`), when it is single-valued.
    pub fn rdn_attribute(&self) -> Option<&str> {
        self.leaf()?.single().map(|a| a.attribute.as_str())
    }

    /// The unescaped value of the leaf RDN, when it is single-valued.
    pub fn rdn_value(&self) -> Option<&str> {
        self.leaf()?.single().map(|a| a.value.as_str())
    }

    /// The parent DN: the root for a single RDN, `None` for the root itself.
    pub fn parent(&self) -> Option<Dn> {
        (!self.rdns.is_empty()).then(|| Dn {
            rdns: self.rdns[1..].to_vec(),
        })
    }

    /// A child of this DN. Its value is escaped when the DN is displayed.
    pub fn child(&self, rdn: Rdn) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn);
        rdns.extend(self.rdns.iter().cloned());
        Dn { rdns }
    }

    /// The number of RDNs.
    pub fn len(&self) -> usize {
        self.rdns.len()
    }

    /// Whether it has no RDN (the root DN).
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// A normalized form for comparisons and map keys: lower-case types and values, one
    /// escaping style, no spaces around separators.
    pub fn key(&self) -> String {
        self.rdns.iter().map(Rdn::key).collect::<Vec<_>>().join(",")
    }

    /// Whether two DNs name the same object (types and values compared without case).
    pub fn same_as(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(a, b)| a.key() == b.key())
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        let Some(skip) = self.rdns.len().checked_sub(ancestor.rdns.len()) else {
            return false;
        };
        self.rdns[skip..]
            .iter()
            .zip(&ancestor.rdns)
            .all(|(a, b)| a.key() == b.key())
    }
}

impl fmt::Display for Dn {
    /// The DN with every value escaped by [`escape_rdn_value`].
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

impl std::str::FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
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

/// Escapes a value for use in an RDN (RFC 4514 §2.4), in the style Active Directory answers
/// with, so that a DN we build and the DN the server returns are the same text:
///
/// - `, + " \ < > ; =` and `#` get a backslash (RFC 4514 requires it for a leading `#` and
///   allows it anywhere; AD escapes every `#`);
/// - a leading or trailing space is escaped (`\ `);
/// - NUL and the other control characters (and DEL) become `\XX` hex pairs;
/// - everything else, unicode included, is kept as is.
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
            c if c.is_ascii_control() => out.push_str(&format!("\\{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_rdn_value`] (also accepts `\XX` hex escapes of any byte sequence that is
/// UTF-8). Unescaped leading and trailing spaces are dropped, as in a parsed DN.
pub fn unescape_rdn_value(escaped: &str) -> Result<String, DnError> {
    let mut value = RawValue::default();
    let mut chars = escaped.chars().peekable();
    while chars.peek() == Some(&' ') {
        chars.next();
    }
    while let Some(c) = chars.next() {
        if c == '\\' {
            read_escape(&mut chars, &mut value).map_err(|r| DnError::new(escaped, r))?;
        } else {
            value.push_char(c, false);
        }
    }
    value.finish().map_err(|r| DnError::new(escaped, r))
}

/// A value being read: bytes (hex escapes may split a UTF-8 sequence) plus where the last
/// significant byte ends, so unescaped trailing spaces are dropped and escaped ones kept.
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

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn read_escape(chars: &mut Chars<'_>, value: &mut RawValue) -> Result<(), String> {
    let Some(next) = chars.next() else {
        return Err("a trailing backslash escapes nothing".into());
    };
    if let Some(high) = next.to_digit(16) {
        let Some(low) = chars.next().and_then(|c| c.to_digit(16)) else {
            return Err(format!("`\\{next}` is not a two-digit hex escape"));
        };
        value.push_byte((high * 16 + low) as u8);
    } else {
        value.push_char(next, true);
    }
    Ok(())
}

fn skip_spaces(chars: &mut Chars<'_>) {
    while chars.peek() == Some(&' ') {
        chars.next();
    }
}

/// What ended an attribute-value assertion.
#[derive(PartialEq)]
enum End {
    Rdn,
    Ava,
    Text,
}

fn parse(text: &str) -> Result<Dn, String> {
    let mut rdns = Vec::new();
    if text.trim().is_empty() {
        return Ok(Dn { rdns });
    }
    let mut chars = text.chars().peekable();
    let mut avas = Vec::new();
    loop {
        let (ava, end) = parse_ava(&mut chars)?;
        avas.push(ava);
        if end != End::Ava {
            rdns.push(Rdn {
                avas: std::mem::take(&mut avas),
            });
        }
        if end == End::Text {
            return Ok(Dn { rdns });
        }
    }
}

fn parse_ava(chars: &mut Chars<'_>) -> Result<(Ava, End), String> {
    // The attribute type, up to `=`: a name or an OID.
    let mut attribute = String::new();
    loop {
        match chars.next() {
            Some('=') => break,
            Some(c) => attribute.push(c),
            None if attribute.trim().is_empty() => {
                return Err("it ends with a separator".into());
            }
            None => return Err(format!("`{}` has no `=`", attribute.trim())),
        }
    }
    let attribute = attribute.trim().to_owned();
    if attribute.is_empty() {
        return Err("an RDN has an empty attribute type".into());
    }
    if !attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("invalid attribute type `{attribute}`"));
    }
    // The value, up to an unescaped `,` or `+` or the end. Unescaped leading and trailing
    // spaces are dropped.
    skip_spaces(chars);
    if chars.peek() == Some(&'#') {
        return Err(format!(
            "{attribute}: BER-encoded (`#...`) values are not supported"
        ));
    }
    let mut value = RawValue::default();
    let mut end = End::Text;
    while let Some(c) = chars.next() {
        match c {
            '\\' => read_escape(chars, &mut value)?,
            ',' => {
                end = End::Rdn;
                break;
            }
            '+' => {
                end = End::Ava;
                break;
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
        return Err(format!("`{attribute}=` has an empty value"));
    }
    if end != End::Text && chars.clone().all(|c| c == ' ') {
        return Err("it ends with a separator".into());
    }
    Ok((Ava { attribute, value }, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            "line\nfeed\ttab\u{7f}",
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

    /// RFC 4514 §2.4, one row per rule, in Active Directory's style.
    #[test]
    fn rdn_escape_table() {
        let cases = [
            ("plain", "plain"),
            ("Doe, John", "Doe\\, John"),
            ("a+b", "a\\+b"),
            ("#lead", "\\#lead"),
            ("mid#", "mid\\#"),
            (" lead and trail ", "\\ lead and trail\\ "),
            ("  two", "\\  two"),
            ("back\\slash", "back\\\\slash"),
            ("quote\"", "quote\\\""),
            ("<>;=", "\\<\\>\\;\\="),
            ("nul\0", "nul\\00"),
            ("line\nfeed", "line\\0Afeed"),
            ("\u{1}\u{1f}\u{7f}", "\\01\\1F\\7F"),
            (",OU=Admins", "\\,OU\\=Admins"),
            ("*)(objectClass=*", "*)(objectClass\\=*"),
            ("René", "René"),
            (" ", "\\ "),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_rdn_value(raw), escaped, "{raw:?}");
            assert_eq!(unescape_rdn_value(escaped).unwrap(), raw, "{escaped:?}");
        }
    }

    #[test]
    fn parses_lenient_spacing_and_hex() {
        let dn = Dn::parse("CN=J\\C3\\A9r\\C3\\B4me, OU = Sales ,DC=test").unwrap();
        assert_eq!(dn.rdn_value(), Some("Jérôme"));
        assert_eq!(dn.rdns()[1], Rdn::new("OU", "Sales"));
        assert!(Dn::parse("").unwrap().is_empty());
        let dn = Dn::parse("CN=Ren\\C3\\A9,DC=x").unwrap();
        assert_eq!(dn.rdn_value(), Some("René"));
    }

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
        assert_eq!(dn.key(), spaced.key());
    }

    #[test]
    fn multi_valued_rdns_parse_but_have_no_single_value() {
        let multi = Dn::parse("CN=a+UID=b,DC=x").unwrap();
        assert_eq!(multi.rdn_value(), None);
        assert_eq!(multi.rdn_attribute(), None);
        assert_eq!(multi.len(), 2);
        assert_eq!(multi.leaf().unwrap().avas().len(), 2);
        assert_eq!(multi.to_string(), "CN=a+UID=b,DC=x");
        assert!(multi.same_as(&Dn::parse("uid=B + cn=A,dc=X").unwrap()));
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        for bad in [
            "CN",
            "CN=#0401,DC=x",
            "CN=,DC=x",
            "CN=",
            "=x",
            "=a",
            "CN=a\\",
            "CN=a\\4",
            "CN=a,",
            "CN=a+",
            "C N=a",
            "CN=a,,DC=x",
            "CN=Probe, User+x,OU=a",
            "CN=a\"b",
            "CN=a<b",
            "CN=a;DC=x",
            "CN=a\0b",
            "CN=\\C3,DC=x",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn compares_without_case_and_by_ancestry() {
        let a = Dn::parse("CN=Jo,OU=Sales,DC=example,DC=test").unwrap();
        let ou = Dn::parse("ou=SALES,dc=example,dc=test").unwrap();
        assert!(a.is_within(&ou) && ou.is_within(&ou) && !ou.is_within(&a));
        assert!(!Dn::parse("CN=x,DC=other,DC=test").unwrap().is_within(&ou));
        assert!(same_name("CN=Jo,DC=x", "cn=jo,dc=X"));
        assert!(!same_name("CN=Jo,DC=x", "CN=Jo2,DC=x"));
        assert!(same_name("not a dn", "not a dn"));
    }

    #[test]
    fn parent_child_and_split() {
        let base = Dn::parse("DC=example,DC=test").unwrap();
        let dn = Dn::parse("CN=x,OU=y,DC=Example,DC=Test").unwrap();
        assert_eq!(dn.parent().unwrap().parent().unwrap().key(), base.key());
        assert_eq!(
            Dn::parse("DC=x").unwrap().parent(),
            Some(Dn::parse("").unwrap())
        );
        assert_eq!(Dn::parse("").unwrap().parent(), None);
        let child = base.child(Rdn::new("OU", ",OU=Admins"));
        assert_eq!(child.to_string(), "OU=\\,OU\\=Admins,DC=example,DC=test");
        assert_eq!(child.len(), 3);
        assert_eq!(
            split_rdn("CN=Doe\\, John,OU=Sales,DC=x"),
            Some(("CN=Doe\\, John", "OU=Sales,DC=x"))
        );
        assert_eq!(split_rdn("DC=x"), None);
    }

    proptest! {
        #[test]
        fn rdn_value_round_trips(value in "\\PC{1,24}|[ ,+\"\\\\<>;=#*()\0\n\x01\x7fa-z]{1,12}") {
            let base = Dn::parse("OU=x,DC=example,DC=test").unwrap();
            let dn = base.child(Rdn::new("CN", value.clone()));
            let text = dn.to_string();
            let back = Dn::parse(&text).unwrap();
            prop_assert_eq!(back.rdn_value(), Some(value.as_str()));
            prop_assert_eq!(back.len(), 4);
            prop_assert!(back.same_as(&dn));
            prop_assert!(back.is_within(&base));
            prop_assert_eq!(unescape_rdn_value(&escape_rdn_value(&value)).unwrap(), value);
        }

        #[test]
        fn escaped_values_hold_no_raw_special_character(value in "\\PC{1,24}|[ ,+\"\\\\<>;=#\0\n\x01a-z]{1,12}") {
            let e = escape_rdn_value(&value);
            prop_assert!(!e.chars().any(|c| c.is_ascii_control()), "{:?}", e);
            prop_assert!(!e.starts_with(' '), "{:?}", e);
            prop_assert!(!e.ends_with(' ') || e.ends_with("\\ "), "{:?}", e);
            // every special character is preceded by a backslash
            let chars: Vec<char> = e.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                if chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                prop_assert!(!",+\"<>;=#".contains(chars[i]), "{:?}", e);
                i += 1;
            }
        }
    }
}
