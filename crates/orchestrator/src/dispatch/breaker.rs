//! The circuit breaker per connection: repeated failures pause dispatch; the connection check
//! probes before calls resume.

use super::{Core, Lane};
use crate::events::JobEvent;
use autoprov_core::ConnectionId;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub(super) enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

#[derive(Debug)]
pub(super) struct Breaker {
    pub(super) state: Mutex<BreakerState>,
    pub(super) changed: Notify,
}

impl Core {
    /// Waits until the connection's breaker lets calls through, probing when it is due.
    pub(super) async fn breaker_ready(
        &self,
        lane: &Lane,
        conn: &ConnectionId,
        cancel: &CancellationToken,
    ) {
        loop {
            enum Next {
                Go,
                Sleep(Instant),
                Probe,
                Wait,
            }
            let next = {
                let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
                match *s {
                    BreakerState::Closed { .. } => Next::Go,
                    BreakerState::Open { until, .. } if Instant::now() < until => {
                        Next::Sleep(until)
                    }
                    BreakerState::Open { .. } => {
                        *s = BreakerState::Probing;
                        Next::Probe
                    }
                    BreakerState::Probing => Next::Wait,
                }
            };
            match next {
                Next::Go => return,
                Next::Sleep(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = cancel.cancelled() => return,
                    }
                }
                Next::Wait => {
                    let notified = lane.breaker.changed.notified();
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(self.policy.breaker.open_for) => {}
                        () = cancel.cancelled() => return,
                    }
                }
                Next::Probe => {
                    let probe =
                        tokio::time::timeout(self.policy.call_deadline, lane.connector.check())
                            .await;
                    let ok = matches!(probe, Ok(Ok(())));
                    {
                        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
                        *s = if ok {
                            BreakerState::Closed { failures: 0 }
                        } else {
                            BreakerState::Open {
                                until: Instant::now() + self.policy.breaker.open_for,
                            }
                        };
                    }
                    lane.breaker.changed.notify_waiters();
                    if ok {
                        tracing::info!(connection = %conn, "circuit closed after a good probe");
                        self.events.emit(JobEvent::CircuitClosed {
                            connection: conn.clone(),
                        });
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn breaker_success(&self, lane: &Lane, _conn: &ConnectionId) {
        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
        if let BreakerState::Closed { failures } = &mut *s {
            *failures = 0;
        }
    }

    pub(super) fn breaker_failure(&self, lane: &Lane, conn: &ConnectionId) {
        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
        if let BreakerState::Closed { failures } = &mut *s {
            *failures += 1;
            if *failures >= self.policy.breaker.failure_threshold {
                let failures = *failures;
                *s = BreakerState::Open {
                    until: Instant::now() + self.policy.breaker.open_for,
                };
                drop(s);
                tracing::warn!(connection = %conn, failures, "circuit opened: dispatch paused");
                self.events.emit(JobEvent::CircuitOpened {
                    connection: conn.clone(),
                    failures,
                });
            }
        }
    }
}
