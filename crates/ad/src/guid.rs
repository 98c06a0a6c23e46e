//! `objectGUID`: the stable id of Active Directory entries, as the text form that
//! [`autoprov_core::StableId`] holds and as the 16 bytes the directory stores (read back with
//! `<GUID=...>` DNs, which are Active Directory's own).

/// Formats the 16 bytes of an `objectGUID` as its usual text form
/// (`c5c26e30-35d3-43ca-9ea4-44c41a57ea9c`): the first three fields are little-endian on the
/// wire.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    // The first three fields are little-endian, the last two as stored.
    const ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (i, &at) in ORDER.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let b = bytes[at];
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Some(text)
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
        fn guid_round_trips(bytes in proptest::array::uniform16(any::<u8>())) {
            let text = guid_to_string(&bytes).unwrap();
            prop_assert_eq!(guid_from_str(&text), Some(bytes));
        }
    }
}
