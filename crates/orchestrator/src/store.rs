//! Where the orchestrator keeps provisioning state: the [`autoprov_store`] crate, re-exported
//! so that `autoprov_orchestrator::store::…` paths keep working.

pub use autoprov_store::*;
