//! Initial passwords: AD's `unicodePwd` encoding and a generator.

use crate::mapping::PasswordPolicy;
use autoprov_core::Secret;
use rand::Rng;
use rand::seq::SliceRandom;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%+-.:=?@_";

/// The value AD expects in `unicodePwd`: the password in double quotes, encoded as UTF-16LE.
///
/// ```
/// let v = autoprov_ad::password::unicode_pwd("Ab1!");
/// assert_eq!(v, b"\"\0A\0b\x001\0!\0\"\0");
/// ```
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The `unicodePwd` value of a secret; a redacted secret (a masked value read back from a
/// file) has none and is refused, naming the property.
pub(crate) fn unicode_pwd_of(
    property: &str,
    secret: &Secret,
    operation: autoprov_connector::Operation,
) -> Result<Vec<u8>, autoprov_connector::ConnectorError> {
    let clear = secret.expose().map_err(|e| {
        autoprov_connector::ConnectorError::invalid_order(
            operation,
            format!("property `{property}`: {e}"),
        )
    })?;
    Ok(unicode_pwd(clear))
}

/// Generates a password with at least the policy's counts of each class, filled up to its length
/// from all classes, shuffled. Look-alike characters (`l`, `I`, `O`, `0`, `1`) are left out.
///
/// ```
/// use autoprov_ad::mapping::PasswordPolicy;
/// let p = autoprov_ad::password::generate(&PasswordPolicy::default(), &mut rand::thread_rng());
/// assert_eq!(p.expose().unwrap().chars().count(), 16);
/// ```
pub fn generate(policy: &PasswordPolicy, rng: &mut impl Rng) -> Secret {
    let mut chars: Vec<u8> = Vec::with_capacity(policy.length);
    for (count, set) in [
        (policy.lower, LOWER),
        (policy.upper, UPPER),
        (policy.digits, DIGITS),
        (policy.symbols, SYMBOLS),
    ] {
        for _ in 0..count {
            chars.push(set[rng.gen_range(0..set.len())]);
        }
    }
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    while chars.len() < policy.length {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(rng);
    Secret::new(String::from_utf8(chars).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_passwords_follow_the_policy() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let policy = PasswordPolicy {
            length: 12,
            lower: 2,
            upper: 3,
            digits: 4,
            symbols: 1,
        };
        for _ in 0..200 {
            let p = generate(&policy, &mut rng);
            let p = p.expose().unwrap();
            assert_eq!(p.len(), 12);
            let count = |set: &[u8]| p.bytes().filter(|b| set.contains(b)).count();
            assert!(count(LOWER) >= 2, "{p}");
            assert!(count(UPPER) >= 3, "{p}");
            assert!(count(DIGITS) >= 4, "{p}");
            assert!(count(SYMBOLS) >= 1, "{p}");
        }
        let a = generate(&policy, &mut rng);
        let b = generate(&policy, &mut rng);
        assert_ne!(a, b);
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("é"), vec![b'"', 0, 0xe9, 0, b'"', 0]);
    }
}
