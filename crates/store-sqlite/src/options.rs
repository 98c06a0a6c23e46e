//! How a store is opened: its sealing keys (the shared [`SealingKey`] of `autoprov-store`).

use autoprov_store::seal::SealingKey;

/// Options of [`SqliteStore::open`](crate::SqliteStore::open).
///
/// Without a key the store refuses every order holding a secret
/// ([`StoreError::SecretWithoutKey`](autoprov_store::StoreError::SecretWithoutKey)). With keys,
/// new secrets are sealed with the *current* key and a stored secret is opened with the key
/// its row names, so a key is rotated by making a new key current and keeping the old one
/// until no order sealed with it is left.
///
/// ```
/// use autoprov_store_sqlite::{SealingKey, SqliteOptions};
/// let options = SqliteOptions::new()
///     .with_current_key(SealingKey::new("2026-02", [2u8; 32]))
///     .with_old_key(SealingKey::new("2026-01", [1u8; 32]));
/// assert_eq!(options.current_key_id(), Some("2026-02"));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SqliteOptions {
    pub(crate) keys: Vec<SealingKey>,
    pub(crate) current: Option<String>,
    pub(crate) check_on_open: bool,
}

impl SqliteOptions {
    /// No sealing key; the file is checked on open.
    pub fn new() -> Self {
        Self {
            keys: Vec::new(),
            current: None,
            check_on_open: true,
        }
    }

    /// Adds `key` and seals new secrets with it.
    pub fn with_current_key(mut self, key: SealingKey) -> Self {
        self.current = Some(key.id().to_owned());
        self.keys.retain(|k| k.id() != key.id());
        self.keys.push(key);
        self
    }

    /// Adds `key` to open secrets sealed earlier with it (a rotated-out key).
    pub fn with_old_key(mut self, key: SealingKey) -> Self {
        self.keys.retain(|k| k.id() != key.id());
        self.keys.push(key);
        self
    }

    /// Whether to run `PRAGMA quick_check` on open (default: yes). A damaged file is then
    /// refused at open rather than failing at some later read; the check reads the whole
    /// file once, which a host opening a large file often may want to skip.
    pub fn check_on_open(mut self, check: bool) -> Self {
        self.check_on_open = check;
        self
    }

    /// The id of the key new secrets are sealed with, if any.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_deref()
    }
}
