#![doc = include_str!("../README.md")]

pub mod capability;
pub mod connector;
pub mod converge;
pub mod dn;
pub mod error;
pub mod manual;
pub mod memory;
pub mod paging;
pub mod registry;
pub mod schema;
pub mod settings;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wrappers;

/// Re-exported so a package implements [`Connector`] and [`Package`] without its own
/// dependency on `async-trait`.
pub use async_trait::async_trait;
pub use capability::Capabilities;
#[cfg(feature = "mock")]
pub use connector::MockConnector;
pub use connector::{
    ADOPTION_CLOCK_TOLERANCE, ADOPTION_REVIEW_ARGUMENT, Connector, ConnectorExt, ConnectorInfo,
    Executed, ExportBatch, ExportCookie, ExportItem, ExportMode, ExportRequest, ExportStream,
    Fulfillment, Preview, RESENT_ARGUMENT, adoption_needs_review,
};
pub use error::{ConnectorError, ErrorKind, ErrorStatus, Operation};
/// Re-exported: [`ExportStream`] is a boxed [`futures::Stream`], and a package builds one with
/// `futures::stream` (`iter`, `unfold`, `StreamExt`) without its own dependency on `futures`.
pub use futures;
pub use memory::{InMemoryConnector, MemoryPackage};
pub use paging::{Page, counter_cookie, counter_since, paged_export};
pub use registry::{ConnectionConfig, Package, PackageRegistry};
pub use schema::{
    ConnectionSchema, EntitySchema, PropertySchema, SchemaViolation, ValueType, Violation,
};
/// Re-exported: [`Package::connect`] takes its settings as a [`serde_json::Value`].
pub use serde_json;
pub use settings::{SettingsError, parse_settings, parse_settings_or_default};
