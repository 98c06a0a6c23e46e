//! The orchestrator's integration tests, as one test binary: dispatch, the job end
//! to end, and chaos.

// Tests may read the wall clock; the library takes time as a parameter.
#![allow(clippy::disallowed_methods)]

mod chaos;
mod delivery;
mod dispatch;
mod job;
mod planning_off_runtime;
mod retry;
mod worker;
mod workers_pg;
