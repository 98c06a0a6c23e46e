#![doc = include_str!("../README.md")]

pub use autoprov_core as core;

#[cfg(feature = "connector")]
pub use autoprov_connector as connector;

#[cfg(feature = "ad")]
pub use autoprov_ad as ad;

#[cfg(feature = "scim")]
pub use autoprov_scim as scim;

#[cfg(feature = "planner")]
pub use autoprov_planner as planner;

#[cfg(feature = "orchestrator")]
pub use autoprov_orchestrator as orchestrator;
