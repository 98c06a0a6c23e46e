//! Sealing of secret values at rest: XChaCha20-Poly1305 under a host key, the key id stored
//! beside the ciphertext, the order id and property bound as associated data (a sealed value
//! copied to another order or property does not open).

use crate::SealingKey;
use autoprov_core::OrderId;
use autoprov_store::StoreError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// A sealed value as stored.
pub(crate) struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The store's keys.
#[derive(Debug, Default)]
pub(crate) struct Sealer {
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
    pub fn new(keys: Vec<SealingKey>, current: Option<&str>) -> Option<Self> {
        let current = match current {
            Some(id) => Some(keys.iter().position(|k| k.id == id)?),
            None => None,
        };
        Some(Self { keys, current })
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
