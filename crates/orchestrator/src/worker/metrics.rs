//! The worker's metrics, through the [`metrics`] facade: the host installs the exporter it
//! uses (Prometheus, StatsD, …); without one they cost next to nothing. Every name is a
//! constant here, and the crate's README lists them for operators.

use crate::dispatch::send::CallHealth;
use autoprov_core::{ConnectionId, ProvisioningState};
use std::time::Duration;

/// Counter: orders claimed (label `worker`).
pub const CLAIMS: &str = "autoprov_worker_claims_total";
/// Counter: what became of claimed orders (labels `worker`, `outcome` = `executed`,
/// `transmitted`, `errored`, `retry` (temporary failure: released with a retry time),
/// `deferred` (the connection's shared breaker is open: released untried), `released`
/// (shutdown before the call)).
pub const OUTCOMES: &str = "autoprov_worker_outcomes_total";
/// Counter: writes refused because another worker took the lease over (label `worker`).
/// The order is dropped, never retried over its new holder.
pub const LEASE_LOST: &str = "autoprov_worker_lease_lost_total";
/// Counter: lease renewals (labels `worker`, `result` = `ok` | `failed`).
pub const RENEWALS: &str = "autoprov_worker_lease_renewals_total";
/// Counter: claimed orders that another worker had started without recording an outcome
/// (its lease expired: it died or stalled), sent again (label `worker`).
pub const TAKEOVERS: &str = "autoprov_worker_lease_takeovers_total";
/// Counter: store failures seen by the loop (labels `worker`, `kind` = `temporary` |
/// `permanent`).
pub const STORE_ERRORS: &str = "autoprov_worker_store_errors_total";
/// Gauge: connector calls in flight in this worker (label `worker`).
pub const IN_FLIGHT: &str = "autoprov_worker_in_flight";
/// Histogram: connector call latency in seconds (labels `connection`, `result` = `ok` |
/// `temporary_error` | `refused`).
pub const CALL_SECONDS: &str = "autoprov_connector_call_seconds";
/// Counter: connector call errors (labels `connection`, `kind` = `temporary` | `refused`).
pub const CALL_ERRORS: &str = "autoprov_connector_errors_total";
/// Gauge: 1 while a connection's shared circuit breaker is open or probing, else 0 (label
/// `connection`).
pub const BREAKER_OPEN: &str = "autoprov_breaker_open";
/// Gauge: orders in each provisioning state, as the store counts them (label `state`),
/// published by every worker every [`WorkerSettings::stats_every`](super::WorkerSettings).
pub const ORDERS: &str = "autoprov_orders";

/// Every metric name, for documentation checks.
pub const ALL: &[&str] = &[
    CLAIMS,
    OUTCOMES,
    LEASE_LOST,
    RENEWALS,
    TAKEOVERS,
    STORE_ERRORS,
    IN_FLIGHT,
    CALL_SECONDS,
    CALL_ERRORS,
    BREAKER_OPEN,
    ORDERS,
];

pub(crate) fn call_finished(conn: &ConnectionId, health: CallHealth, took: Duration) {
    let result = match health {
        CallHealth::Good => "ok",
        CallHealth::TemporaryFailure => "temporary_error",
        CallHealth::Refused => "refused",
        CallHealth::NotCalled => return,
    };
    metrics::histogram!(CALL_SECONDS, "connection" => conn.to_string(), "result" => result)
        .record(took.as_secs_f64());
    if health != CallHealth::Good {
        let kind = if health == CallHealth::Refused {
            "refused"
        } else {
            "temporary"
        };
        metrics::counter!(CALL_ERRORS, "connection" => conn.to_string(), "kind" => kind)
            .increment(1);
    }
}

pub(crate) fn claimed(worker: &str, n: usize) {
    metrics::counter!(CLAIMS, "worker" => worker.to_owned()).increment(n as u64);
}

pub(crate) fn outcome(worker: &str, outcome: &'static str) {
    metrics::counter!(OUTCOMES, "worker" => worker.to_owned(), "outcome" => outcome).increment(1);
}

pub(crate) fn lease_lost(worker: &str) {
    metrics::counter!(LEASE_LOST, "worker" => worker.to_owned()).increment(1);
}

pub(crate) fn renewal(worker: &str, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!(RENEWALS, "worker" => worker.to_owned(), "result" => result).increment(1);
}

pub(crate) fn takeover(worker: &str) {
    metrics::counter!(TAKEOVERS, "worker" => worker.to_owned()).increment(1);
}

pub(crate) fn store_error(worker: &str, temporary: bool) {
    let kind = if temporary { "temporary" } else { "permanent" };
    metrics::counter!(STORE_ERRORS, "worker" => worker.to_owned(), "kind" => kind).increment(1);
}

pub(crate) fn in_flight(worker: &str, n: usize) {
    metrics::gauge!(IN_FLIGHT, "worker" => worker.to_owned()).set(n as f64);
}

pub(crate) fn breaker_open(conn: &ConnectionId, open: bool) {
    metrics::gauge!(BREAKER_OPEN, "connection" => conn.to_string()).set(if open {
        1.0
    } else {
        0.0
    });
}

pub(crate) fn orders(state: ProvisioningState, n: u64) {
    metrics::gauge!(ORDERS, "state" => state.name()).set(n as f64);
}
