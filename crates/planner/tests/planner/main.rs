//! The planner's integration tests, as one test binary: SPEC scenarios, one test per rule or
//! setting, the planner's invariants (proptest) and the synthetic organization.

mod found;
mod identity;
mod properties;
mod reference;
mod rules;
mod scenario;
mod synthetic;
