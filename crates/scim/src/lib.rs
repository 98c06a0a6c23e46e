#![doc = include_str!("../README.md")]

pub mod connector;
mod discovery;
mod export;
mod fulfill;
mod http;
pub mod settings;
#[cfg(feature = "test-fixtures")]
#[doc(hidden)]
pub mod test_fixtures;

pub use connector::{PACKAGE_ID, ScimConnector, ScimPackage};
pub use settings::{AuthSettings, OAuth2Settings, ScimSettings, SettingsError};
