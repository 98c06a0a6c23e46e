//! The SCIM package against a real SCIM service: the `scim2-server` that
//! `scripts/scim-test-server.sh start` runs on loopback. Every outcome is checked with plain
//! HTTP requests (curl), not through the package. Without the server's environment a test
//! prints `SKIPPED` (and fails when `CI=true`).

#![allow(clippy::disallowed_methods)]

mod big_group;
mod conformance;
mod errors;
mod lifecycle;
mod oauth2;
mod paging;
mod protocol;
