#![doc = include_str!("../README.md")]

pub mod connector;
pub mod errors;
mod existence;
mod export;
mod export_links;
mod fulfill;
pub mod guid;
mod ldif;
pub mod mapping;
mod members;
pub mod password;
mod pool;
pub mod settings;
#[cfg(feature = "test-fixtures")]
#[doc(hidden)]
pub mod test_fixtures;

pub use connector::{AdConnector, AdConnectorBuilder, AdPackage, PACKAGE_ID};
pub use fulfill::{UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT};
pub use mapping::{EntityMapping, MembershipSettings, PasswordPolicy, PasswordSettings};
pub use settings::{
    AdSettings, BindSettings, CaCertificate, ServerSettings, SettingsError, TlsMode, TlsSettings,
};
