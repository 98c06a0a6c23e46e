//! Values to and from their stored form, and backend errors into [`StoreError`].

use autoprov_store::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, de::DeserializeOwned};

/// Adds the operation to a backend error.
pub(crate) trait Context<T> {
    fn during(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn during(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::backend(operation, e))
    }
}

pub(crate) fn to_json<T: Serialize + ?Sized>(
    operation: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).during(operation)
}

pub(crate) fn from_json<T: DeserializeOwned>(
    operation: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).during(operation)
}

/// A time as fixed-width RFC 3339 text, so that text order is time order in SQL.
pub(crate) fn time_key(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// SQLite integers are signed; counts and versions never reach 2^63.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The page size as an SQL limit.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
