//! The AD package against a real directory: the Samba domain controller that
//! `scripts/ad-test-server.sh start` runs on loopback. Each test works in its own OU and deletes
//! it; without the server's environment a test prints `SKIPPED` (and fails when `CI=true`).

// The adoption tests compare with the directory's own clock (whenCreated).
#![allow(clippy::disallowed_methods)]
mod conformance;
mod export;
mod groups;
mod injection;
mod ldif;
mod lifecycle;
mod resilience;
mod safety;
mod support;
mod tls;
