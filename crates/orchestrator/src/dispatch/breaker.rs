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
    /// Returns false when `deadline` (the end of the order's retry window) passed first: an
    /// outage longer than the window ends the order's round instead of holding the dispatch
    /// (and its job) until the connection comes back.
    pub(super) async fn breaker_ready(
        &self,
        lane: &Lane,
        conn: &ConnectionId,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> bool {
        loop {
            if Instant::now() >= deadline {
                let closed = matches!(
                    *lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner()),
                    BreakerState::Closed { .. }
                );
                if !closed {
                    return false;
                }
            }
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
                Next::Go => return true,
                Next::Sleep(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until.min(deadline)) => {}
                        () = cancel.cancelled() => return true,
                    }
                }
                Next::Wait => {
                    let notified = lane.breaker.changed.notified();
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(
                            (super::policy::instant_after(Instant::now(), self.policy.breaker.open_for)).min(deadline),
                        ) => {}
                        () = cancel.cancelled() => return true,
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
                                until: super::policy::instant_after(
                                    Instant::now(),
                                    self.policy.breaker.open_for,
                                ),
                            }
                        };
                    }
                    lane.breaker.changed.notify_waiters();
                    if ok {
                        tracing::info!(connection = %conn, "circuit closed after a good probe");
                        self.events.emit(JobEvent::CircuitClosed {
                            connection: conn.clone(),
                        });
                        return true;
                    }
                }
            }
        }
    }

    /// A connection check succeeded outside dispatch (the job's health check): the breaker
    /// closes as after a good probe.
    pub(crate) fn breaker_close(&self, conn: &ConnectionId) {
        let Some(lane) = self.lanes.get(conn) else {
            return;
        };
        let mut s = lane.breaker.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*s, BreakerState::Closed { .. }) {
            *s = BreakerState::Closed { failures: 0 };
            drop(s);
            lane.breaker.changed.notify_waiters();
            self.events.emit(JobEvent::CircuitClosed {
                connection: conn.clone(),
            });
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
                    until: super::policy::instant_after(
                        Instant::now(),
                        self.policy.breaker.open_for,
                    ),
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
