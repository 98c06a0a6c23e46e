//! Sealing of secret values at rest, shared by the durable stores (feature `seal`):
//! XChaCha20-Poly1305 under a host key, the key id stored beside the ciphertext (rotation: new
//! values are sealed with the current key, a stored value is opened with the key it names),
//! the order id and the secret's slot bound as associated data (a sealed value copied to
//! another order or property does not open). A store erases an order's sealed values in the
//! write that takes the order out of [`STATES_KEEPING_SECRETS`].
//!
//! ```
//! use autoprov_store::seal::{SealingKey, Sealer};
//! let sealer = Sealer::new(vec![SealingKey::new("k1", [9u8; 32])], Some("k1")).unwrap();
//! let sealed = sealer.seal(&"o-1".into(), "password", "Pa55word!").unwrap();
//! assert_eq!(sealed.key_id, "k1");
//! assert_eq!(sealer.open(&"o-1".into(), "password", &sealed).unwrap(), "Pa55word!");
//! assert!(sealer.open(&"o-2".into(), "password", &sealed).is_err());
//! ```

use crate::StoreError;
use autoprov_core::{
    OrderId, PropertyChange, PropertyValue, ProvisioningOrder, ProvisioningState, ScalarValue,
    Secret,
};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use zeroize::Zeroizing;

/// A sealed value as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The 192-bit nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

/// A store's keys: the current one seals, any of them opens.
#[derive(Debug, Default)]
pub struct Sealer {
    keys: Vec<SealingKey>,
    current: Option<usize>,
}

fn associated_data(order_id: &OrderId, property: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(order_id.as_str().len() + property.len() + 1);
    aad.extend_from_slice(order_id.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(property.as_bytes());
    aad
}

impl Sealer {
    /// The sealer of `keys`, sealing with the one named `current` (none: every seal is
    /// refused with [`StoreError::SecretWithoutKey`]). `None` when `current` names no key given.
    pub fn new(keys: Vec<SealingKey>, current: Option<&str>) -> Option<Self> {
        let current = match current {
            Some(id) => Some(keys.iter().position(|k| k.id == id)?),
            None => None,
        };
        Some(Self { keys, current })
    }

    /// Whether a current key is set (secrets can be sealed).
    pub fn can_seal(&self) -> bool {
        self.current.is_some()
    }

    /// Seals `plain` for `property` of `order_id` with the current key.
    pub fn seal(
        &self,
        order_id: &OrderId,
        property: &str,
        plain: &str,
    ) -> Result<Sealed, StoreError> {
        let without_key = || StoreError::SecretWithoutKey {
            order_id: order_id.clone(),
            property: property.to_owned(),
        };
        let key = &self.keys[self.current.ok_or_else(without_key)?];
        let cipher = XChaCha20Poly1305::new(key.key.as_ref().into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(order_id, property);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| without_key())?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a sealed value with the key its row names.
    pub fn open(
        &self,
        order_id: &OrderId,
        property: &str,
        sealed: &Sealed,
    ) -> Result<String, StoreError> {
        let unreadable = || StoreError::SecretUnreadable {
            order_id: order_id.clone(),
            property: property.to_owned(),
            key_id: sealed.key_id.clone(),
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(unreadable)?;
        if sealed.nonce.len() != 24 {
            return Err(unreadable());
        }
        let cipher = XChaCha20Poly1305::new(key.key.as_ref().into());
        let aad = associated_data(order_id, property);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| unreadable())?;
        String::from_utf8(plain).map_err(|_| unreadable())
    }
}

/// States in which an order keeps its sealed secrets: not yet delivered (Pending, in review)
/// or possibly to be sent again (Errored: an operator retry makes it Pending). Any other state
/// means the secret was delivered (Executed, Transmitted, Verified) or will never be
/// (Inactive, Error): its sealed value is deleted in the write that reaches that state.
pub const STATES_KEEPING_SECRETS: &[ProvisioningState] = &[
    ProvisioningState::Pending,
    ProvisioningState::AwaitingApproval,
    ProvisioningState::Errored,
];

/// The prefix of the slot of a secret among the current values of the order's target.
pub const RESOURCE_SLOT: &str = "Resource:";

/// The secrets an order holds, by slot (the slot is what the associated data binds) (property name; `Resource:<name>` for the current
/// values of its target).
pub fn secrets_of(order: &ProvisioningOrder) -> Vec<(String, &Secret)> {
    let mut out: Vec<(String, &Secret)> = order
        .changes
        .properties
        .iter()
        .filter_map(|(name, change)| match change {
            PropertyChange::Set(ScalarValue::Secret(s)) => Some((name.clone(), s)),
            _ => None,
        })
        .collect();
    if let Some(resource) = &order.resource {
        out.extend(resource.values.iter().filter_map(|(name, v)| match v {
            PropertyValue::Scalar(ScalarValue::Secret(s)) => {
                Some((format!("{RESOURCE_SLOT}{name}"), s))
            }
            _ => None,
        }));
    }
    out
}

/// Puts an opened secret back into its slot of `order` (the inverse of [`secrets_of`]).
pub fn restore(order: &mut ProvisioningOrder, slot: &str, secret: Secret) {
    match slot.strip_prefix(RESOURCE_SLOT) {
        Some(name) => {
            if let Some(resource) = &mut order.resource {
                resource.values.insert(
                    name.to_owned(),
                    PropertyValue::Scalar(ScalarValue::Secret(secret)),
                );
            }
        }
        None => {
            order.changes.properties.insert(
                slot.to_owned(),
                PropertyChange::Set(ScalarValue::Secret(secret)),
            );
        }
    }
}

/// A key that seals secrets at rest (XChaCha20-Poly1305, 256 bits), with the id stored beside
/// every value it seals. Its `Debug` prints the id only; the key bytes are zeroized on drop.
///
/// ```
/// use autoprov_store::seal::SealingKey;
/// let key = SealingKey::new("2026-01", [7u8; 32]);
/// assert_eq!(format!("{key:?}"), r#"SealingKey { id: "2026-01", key: "********" }"#);
/// ```
#[derive(Clone)]
pub struct SealingKey {
    pub(crate) id: String,
    pub(crate) key: Zeroizing<[u8; 32]>,
}

impl SealingKey {
    /// A key named `id` (what the host calls it; stored with each sealed value, so choose a
    /// new id for every new key).
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            key: Zeroizing::new(key),
        }
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &autoprov_core::SECRET_MASK)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(vec![SealingKey::new("k", [5; 32])], Some("k")).expect("current key")
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let s = sealer();
        let (o1, o2): (OrderId, OrderId) = ("o-1".into(), "o-2".into());
        let sealed = s.seal(&o1, "unicodePwd", "Pw-1!").expect("seal");
        assert_eq!(s.open(&o1, "unicodePwd", &sealed).expect("open"), "Pw-1!");
        for (order, property) in [(&o2, "unicodePwd"), (&o1, "otherPwd")] {
            assert!(
                matches!(
                    s.open(order, property, &sealed),
                    Err(StoreError::SecretUnreadable { .. })
                ),
                "moved to {order}/{property}"
            );
        }
        let mut tampered = Sealed {
            key_id: sealed.key_id.clone(),
            nonce: sealed.nonce.clone(),
            ciphertext: sealed.ciphertext.clone(),
        };
        tampered.ciphertext[0] ^= 1;
        assert!(s.open(&o1, "unicodePwd", &tampered).is_err(), "tampered");
        assert!(!sealed.ciphertext.windows(5).any(|w| w == b"Pw-1!"));
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let s = sealer();
        let o: OrderId = "o-1".into();
        let a = s.seal(&o, "p", "same").expect("seal");
        let b = s.seal(&o, "p", "same").expect("seal");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn an_unknown_current_key_is_refused() {
        assert!(Sealer::new(vec![SealingKey::new("k", [5; 32])], Some("other")).is_none());
        let none = Sealer::new(Vec::new(), None).expect("no key");
        assert!(matches!(
            none.seal(&"o".into(), "p", "x"),
            Err(StoreError::SecretWithoutKey { .. })
        ));
    }
}
