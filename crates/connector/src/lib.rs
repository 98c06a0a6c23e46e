#![doc = include_str!("../README.md")]

pub mod capability;
pub mod connector;
pub mod error;
pub mod registry;
pub mod schema;

pub use capability::Capabilities;
#[cfg(feature = "mock")]
pub use connector::MockConnector;
pub use connector::{
    Connector, ConnectorExt, ConnectorInfo, ExportBatch, ExportCookie, ExportItem, ExportMode,
    ExportRequest, ExportStream, Executed, Fulfillment,
};
pub use error::{ConnectorError, ErrorKind, ErrorStatus, Operation};
pub use registry::{ConnectionConfig, Package, PackageRegistry};
