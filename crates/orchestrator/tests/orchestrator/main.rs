//! The orchestrator's integration tests, as one test binary: dispatch, the job end
//! to end, and chaos.

mod chaos;
mod dispatch;
mod job;
mod planning_off_runtime;
