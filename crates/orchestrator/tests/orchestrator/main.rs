//! The orchestrator's integration tests, as one test binary: dispatch, the job end
//! to end, and chaos.

// Tests may read the wall clock; the library takes time as a parameter.
#![allow(clippy::disallowed_methods)]

mod adoption;
mod chaos;
mod delivery;
mod dispatch;
mod found;
mod fulfil_file;
mod job;
mod owned;
mod password_settings;
mod planning_off_runtime;
mod requests;
mod retry;
mod smtp;
mod worker;
mod workers_pg;
