//! Initial passwords: AD's `unicodePwd` encoding and a generator.

use crate::mapping::PasswordPolicy;
use autoprov_core::Secret;
use rand::Rng;

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

/// Generates a password by the mapping's fallback policy, through the codebase's one
/// generator ([`autoprov_core::password::generate`]): at least the policy's counts of each
/// class, filled up to its length (or the sum of the counts, when larger), shuffled.
///
/// The AD package uses it only as a fallback: when the resource type has
/// `PasswordResetSettings`, the dispatcher generates the password by them and passes it in
/// the order, so the package finds a password there and generates none.
///
/// ```
/// use autoprov_ad::mapping::PasswordPolicy;
/// let p = autoprov_ad::password::generate(&PasswordPolicy::default(), &mut rand::thread_rng());
/// assert_eq!(p.expose().unwrap().chars().count(), 16);
/// ```
pub fn generate(policy: &PasswordPolicy, rng: &mut impl Rng) -> Secret {
    autoprov_core::password::generate(&policy.rule(), rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoprov_core::password::{DIGITS, LOWER, SYMBOLS, UPPER};
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
            let count = |set: &str| p.chars().filter(|c| set.contains(*c)).count();
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
