//! The integration tests of autoprov-store-sqlite, in one binary: the store conformance kit,
//! sealing of secrets, open errors, the schema-v1 fixture and the crash test.

mod common;
mod conformance;
mod crash;
mod fixture;
mod group_commit;
mod open_errors;
mod secrets;
