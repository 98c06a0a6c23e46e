//! Progress and audit: a stream of typed events.
//!
//! Every job step, every order attempt and its outcome is an event. A host shows progress from
//! them (orders total / done / failed) and keeps the per-order log for audit. Events never hold a
//! secret: values are rendered through [`autoprov_core::ScalarValue`]'s masking `Display`.

use autoprov_core::{ChangeType, ConnectionId, OrderId, OwnerId, ProvisioningState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One property change of an order, rendered for people: old → new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueChange {
    /// The property.
    pub property: String,
    /// Its value before (rendered; empty when absent).
    pub old: String,
    /// Its value after (rendered; secrets masked).
    pub new: String,
}

/// Something that happened during a job.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// A job step started (`export`, `synchronize`, `evaluate`, `plan`, `review`, `fulfil`,
    /// `verify`).
    StepStarted {
        /// The step.
        step: &'static str,
    },
    /// A job step finished.
    StepFinished {
        /// The step.
        step: &'static str,
        /// A short summary.
        summary: String,
    },
    /// Orders are about to be dispatched.
    DispatchStarted {
        /// How many.
        total: usize,
    },
    /// An attempt of an order starts.
    OrderAttempt {
        /// The order.
        order: OrderId,
        /// 1-based attempt number.
        attempt: u32,
    },
    /// An attempt failed temporarily; the order will be retried.
    OrderRetrying {
        /// The order.
        order: OrderId,
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// The error.
        error: String,
    },
    /// An order reached Executed, Transmitted or Errored.
    OrderFinished {
        /// The order.
        order: OrderId,
        /// Its owner.
        owner: Option<OwnerId>,
        /// Its change type.
        change_type: ChangeType,
        /// The state reached.
        state: ProvisioningState,
        /// The error or the ticket.
        message: Option<String>,
        /// What the order changed, old → new.
        changes: Vec<ValueChange>,
    },
    /// An order cannot run because an order it depends on failed.
    OrderBlocked {
        /// The order.
        order: OrderId,
        /// The failed dependency.
        dependency: OrderId,
    },
    /// Progress counts.
    Progress {
        /// Orders in the batch.
        total: usize,
        /// Finished (any outcome).
        done: usize,
        /// Finished Errored.
        failed: usize,
    },
    /// A connection's circuit breaker opened: dispatch to it pauses.
    CircuitOpened {
        /// The connection.
        connection: ConnectionId,
        /// Consecutive failures seen.
        failures: u32,
    },
    /// A connection's circuit breaker closed after a good probe.
    CircuitClosed {
        /// The connection.
        connection: ConnectionId,
    },
    /// An item became Verified.
    Verified {
        /// The order whose effect was seen.
        order: OrderId,
    },
}

/// Receives events.
pub trait EventSink: Send + Sync + 'static {
    /// Handles one event. Must not block for long.
    fn emit(&self, event: JobEvent);

    /// Whether the sink wants events at all. A sink that answers `false` spares the
    /// dispatcher the cost of rendering them. Default: true.
    fn enabled(&self) -> bool {
        true
    }
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: JobEvent) {}

    fn enabled(&self) -> bool {
        false
    }
}

/// Keeps every event in memory: for tests and reports.
#[derive(Clone, Debug, Default)]
pub struct CollectEvents {
    events: Arc<Mutex<Vec<JobEvent>>>,
}

impl CollectEvents {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<JobEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for CollectEvents {
    fn emit(&self, event: JobEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

impl<F: Fn(JobEvent) + Send + Sync + 'static> EventSink for F {
    fn emit(&self, event: JobEvent) {
        self(event)
    }
}
