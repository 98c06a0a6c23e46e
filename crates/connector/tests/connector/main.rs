//! The integration tests of autoprov-connector: the conformance kit against every shipped
//! implementation (directly, as `Arc<dyn Connector>` / `Box<dyn Connector>`, through each
//! wrapper), the corpus of broken packages the kit must catch, the wrappers, the registry, an integrator's mock-based test, and the custom
//! connector of `examples/custom_connector.rs`.

mod corpus;
mod custom;
mod kit;
mod mock;
mod registry;
mod wrappers;
