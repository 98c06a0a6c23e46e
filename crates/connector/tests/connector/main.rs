//! The integration tests of autoprov-connector: the conformance kit against every shipped
//! implementation (directly, as `Arc<dyn Connector>` / `Box<dyn Connector>`, through each
//! wrapper), the corpus of broken packages the kit must catch, the wrappers, the registry and
//! an integrator's mock-based test. The guide's example package has its kit tests in
//! `crates/example-package/tests/kit.rs`.

mod corpus;
mod kit;
mod mock;
mod registry;
mod wrappers;
