#![doc = include_str!("../README.md")]

mod claims;
mod error;
mod migrate;
mod orders;
mod records;
mod store;

pub use autoprov_store::seal::SealingKey;

use autoprov_store::StoreError;
use autoprov_store::seal::Sealer;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// A [`Store`](autoprov_store::Store) and [`ClaimStore`](autoprov_store::ClaimStore) on
/// PostgreSQL. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: String,
    sealer: Arc<Sealer>,
}

impl fmt::Debug for PgStore {
    // The pool's config holds the password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.status().max_size)
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A builder: `PgStore::builder().url(url).build().await`.
    pub fn builder() -> PgStoreBuilder {
        PgStoreBuilder::default()
    }

    /// Connects to `url` (`postgres://user:password@host:port/database`) with the default
    /// settings and migrates the `public` schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().url(url).build().await
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema version this build migrates to.
    pub fn schema_version() -> i64 {
        migrate::latest_version()
    }

    /// Opens every connection of the pool now (up to its size; those open already count),
    /// instead of on first use: a worker calls it when it starts, so that its first claims
    /// and writes do not wait for connections (each one a login) and an unreachable server
    /// shows at once. Returns how many connections the pool holds.
    pub async fn open_connections(&self) -> Result<usize, StoreError> {
        let size = self.pool.status().max_size;
        let mut clients = Vec::with_capacity(size);
        // One at a time, each held: the pool opens a new one for every request while all it
        // has are in use.
        for _ in 0..size {
            clients.push(self.client().await?);
        }
        Ok(clients.len())
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| error::classify_pool("connect", e))
    }
}

/// Settings of a [`PgStore`]; each has a documented default.
#[derive(Clone, Default)]
pub struct PgStoreBuilder {
    url: Option<String>,
    schema: Option<String>,
    pool_size: Option<usize>,
    connect_timeout: Option<Duration>,
    create_schema: bool,
    keys: Vec<SealingKey>,
    current_key: Option<String>,
}

impl fmt::Debug for PgStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStoreBuilder")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("keys", &self.keys)
            .field("current_key", &self.current_key)
            .finish_non_exhaustive()
    }
}

impl PgStoreBuilder {
    /// The connection URL (`postgres://user:password@host:port/database`). Required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The schema the store's tables live in (default `public`): lowercase letters, digits
    /// and `_`. Several stores can share a database in separate schemas.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Creates the schema if it does not exist (default: no).
    pub fn create_schema(mut self, yes: bool) -> Self {
        self.create_schema = yes;
        self
    }

    /// The most connections the pool opens (default 8).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = Some(n.max(1));
        self
    }

    /// How long opening one connection may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Adds `key` and seals new secrets with it (XChaCha20-Poly1305; the key id is stored
    /// beside each sealed value, the order id and the property are bound as associated data).
    /// Without a current key, an order holding a secret is refused
    /// ([`StoreError::SecretWithoutKey`]), never stored in clear.
    ///
    /// ```
    /// use autoprov_store_postgres::{PgStore, SealingKey};
    /// let builder = PgStore::builder()
    ///     .url("postgres://autoprov@localhost/autoprov")
    ///     .current_key(SealingKey::new("2026-02", [2u8; 32]))
    ///     .old_key(SealingKey::new("2026-01", [1u8; 32]));
    /// assert!(format!("{builder:?}").contains("2026-02"));
    /// ```
    pub fn current_key(mut self, key: SealingKey) -> Self {
        self.current_key = Some(key.id().to_owned());
        self.keys.retain(|k| k.id() != key.id());
        self.keys.push(key);
        self
    }

    /// Adds `key` to open secrets sealed earlier with it (a rotated-out key: keep it until no
    /// order sealed with it is left open).
    pub fn old_key(mut self, key: SealingKey) -> Self {
        self.keys.retain(|k| k.id() != key.id());
        self.keys.push(key);
        self
    }

    /// Connects, creates the schema if asked, and applies the migrations it lacks.
    pub async fn build(self) -> Result<PgStore, StoreError> {
        let url = self
            .url
            .ok_or_else(|| StoreError::backend("configure", ConfigError::NoUrl))?;
        let sealer = Sealer::new(self.keys, self.current_key.as_deref()).ok_or_else(|| {
            StoreError::backend(
                "configure",
                ConfigError::UnknownCurrentKey {
                    key_id: self.current_key.clone().unwrap_or_default(),
                },
            )
        })?;
        let schema = self.schema.unwrap_or_else(|| "public".to_owned());
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::backend(
                "configure",
                ConfigError::BadSchema { schema },
            ));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend("configure: parse the URL", e))?;
        config.options(format!("-c search_path={schema}"));
        config.connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)));
        config.application_name("autoprov");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size.unwrap_or(8))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::backend("configure: pool", e))?;
        let store = PgStore {
            pool,
            schema,
            sealer: Arc::new(sealer),
        };
        let mut client = store.client().await?;
        if self.create_schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", store.schema))
                .await
                .map_err(db("create schema"))?;
        }
        migrate::migrate(&mut client).await?;
        Ok(store)
    }
}

/// What a [`PgStoreBuilder`] refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No URL was given.
    #[error("no PostgreSQL URL given")]
    NoUrl,
    /// The schema name is not lowercase letters, digits and `_`.
    #[error("schema name {schema:?} must be lowercase letters, digits and `_`")]
    BadSchema {
        /// The name given.
        schema: String,
    },
    /// The current sealing key names no key given.
    #[error("the current sealing key {key_id} is not among the keys given")]
    UnknownCurrentKey {
        /// The key id.
        key_id: String,
    },
}

/// Maps a driver error to a [`StoreError`] naming the operation: temporary failures
/// (connection lost, server shutting down, serialization failure, deadlock) are
/// [`StoreError::Unavailable`], the others [`StoreError::Backend`] (see `error.rs`).
pub(crate) fn db(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| error::classify(operation, e)
}

pub(crate) fn to_json<T: Serialize>(
    operation: &'static str,
    value: &T,
) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::backend(operation, e))
}

pub(crate) fn from_json<T: DeserializeOwned>(
    operation: &'static str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::backend(operation, e))
}

/// `u64` ↔ PostgreSQL `bigint` (versions and tokens stay far below `i64::MAX`).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
