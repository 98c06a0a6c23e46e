//! Sending one order: permits, the breaker, the deadline, retries; the intent recorded before
//! each call and the outcome after, through the store.

use super::{Core, DispatchError, Outcome, operation_of, value_changes};
use crate::events::JobEvent;
use crate::store::{OrderRecord, OrderUpdate};
use autoprov_connector::{
    ConnectorError, ErrorKind, Executed, Fulfillment, Operation, RESENT_ARGUMENT,
};
use autoprov_core::{ChangeType, ProvisioningEvent, ProvisioningOrder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl Core {
    /// Sends one order until it succeeds, fails permanently, runs out of retries, or the
    /// dispatch is cancelled. Returns its outcome and the calls made.
    pub(super) async fn run_order(
        &self,
        mut record: OrderRecord,
        cancel: &CancellationToken,
    ) -> Result<(Outcome, u32), DispatchError> {
        let order_id = record.order.order_id.clone();
        let Some(conn) = record.order.connection.clone() else {
            let msg = format!("{}: the order names no connection", record.order.label());
            self.errored(&mut record, &msg).await?;
            return Ok((Outcome::Failed(msg), 0));
        };
        let Some(lane) = self.lanes.get(&conn) else {
            let msg = format!(
                "{}: connection {conn} is not configured",
                record.order.label()
            );
            self.errored(&mut record, &msg).await?;
            return Ok((Outcome::Failed(msg), 0));
        };
        if let Some(property) = record.order.redacted_secret() {
            // Not a convention each connector must remember: no connector ever sees it.
            let msg = format!(
                "{}: property `{property}` is a masked secret read back from a file; it has no value and is never sent",
                record.order.label()
            );
            self.errored(&mut record, &msg).await?;
            return Ok((Outcome::Failed(msg), 0));
        }
        let started = Instant::now();
        let mut calls = 0u32;
        loop {
            if cancel.is_cancelled() {
                return Ok((Outcome::NotStarted, calls));
            }
            let window = super::policy::instant_after(started, self.policy.retry.max_total);
            let ready = self.breaker_ready(lane, &conn, cancel, window).await;
            if cancel.is_cancelled() {
                return Ok((Outcome::NotStarted, calls));
            }
            if !ready {
                let msg = format!(
                    "{}: connection {conn} stayed unavailable (circuit open) past the retry window of {:?} ({calls} attempts)",
                    record.order.label(),
                    self.policy.retry.max_total
                );
                self.errored_after_retries(&mut record, &msg, true).await?;
                return Ok((Outcome::Failed(msg), calls));
            }
            let permit = tokio::select! {
                p = lane.semaphore.acquire() => p.ok(),
                () = cancel.cancelled() => None,
            };
            let Some(permit) = permit else {
                return Ok((Outcome::NotStarted, calls));
            };
            calls += 1;
            // The intent is recorded before the call: an attempt without an outcome is an
            // unknown outcome, sent again after a restart.
            record = self
                .store
                .update_order(
                    &order_id,
                    record.version,
                    OrderUpdate::at(self.clock.now()).attempt_started(),
                )
                .await?;
            if record.dispatch.attempts == 1 || calls == 1 {
                self.deposit();
            }
            if self.events.enabled() {
                self.events.emit(JobEvent::OrderAttempt {
                    order: order_id.clone(),
                    attempt: record.dispatch.attempts,
                });
            }
            // An Added order sent again after an earlier attempt (outcome unknown, or failed
            // after the creation or at the password's delivery) tells the connector so: the
            // target it finds may be its own, with a password nobody received.
            let resent = (record.order.change_type == ChangeType::Added
                && record.dispatch.total_attempts > 1)
                .then(|| {
                    let mut order = (*record.order).clone();
                    order
                        .arguments
                        .insert(RESENT_ARGUMENT.to_owned(), "true".to_owned());
                    order
                });
            let call = tokio::time::timeout(
                self.policy.call_deadline,
                lane.connector
                    .fulfill(resent.as_ref().unwrap_or(&record.order)),
            )
            .await;
            drop(permit);
            let result = match call {
                Ok(Ok(Fulfillment::Executed(executed))) if executed.initial_password.is_some() => {
                    self.deliver(&record.order, executed).await
                }
                Ok(r) => r,
                Err(_) => Err(ConnectorError::new(
                    ErrorKind::Timeout,
                    operation_of(&record.order),
                    format!(
                        "no answer within the call deadline of {:?}",
                        self.policy.call_deadline
                    ),
                )),
            };
            match result {
                Ok(Fulfillment::Executed(executed)) => {
                    self.breaker_success(lane, &conn);
                    let update =
                        OrderUpdate::event(ProvisioningEvent::ConnectorSucceeded, self.clock.now())
                            .learned(
                                Some(executed.resource_id.clone()),
                                executed.stable_id.clone(),
                            );
                    self.settle(&mut record, update, None).await?;
                    return Ok((Outcome::Succeeded(record.state), calls));
                }
                Ok(Fulfillment::Transmitted { ticket }) => {
                    self.breaker_success(lane, &conn);
                    let msg = format!("handed to a human: ticket {ticket}");
                    let update =
                        OrderUpdate::event(ProvisioningEvent::HandedToHuman, self.clock.now())
                            .ticket(ticket);
                    self.settle(&mut record, update, Some(msg)).await?;
                    return Ok((Outcome::Succeeded(record.state), calls));
                }
                Ok(_) => {
                    let msg = format!("{}: unknown fulfilment outcome", record.order.label());
                    self.errored(&mut record, &msg).await?;
                    return Ok((Outcome::Failed(msg), calls));
                }
                Err(error) => {
                    let error = error.for_order(&record.order);
                    if error.is_temporary() {
                        self.breaker_failure(lane, &conn);
                    }
                    let attempts = record.dispatch.attempts;
                    let delay = {
                        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                        self.policy.retry.backoff(attempts, &mut rng)
                    };
                    let can_retry = error.is_temporary()
                        && attempts < self.policy.retry.max_attempts
                        && started.elapsed().saturating_add(delay) <= self.policy.retry.max_total;
                    if can_retry {
                        let deadline =
                            super::policy::instant_after(started, self.policy.retry.max_total);
                        let now = self.clock.now();
                        let retry_at = chrono::TimeDelta::from_std(delay)
                            .ok()
                            .and_then(|d| now.checked_add_signed(d))
                            .unwrap_or(now);
                        record = self
                            .store
                            .update_order(
                                &order_id,
                                record.version,
                                OrderUpdate::at(now)
                                    .retry_at(retry_at)
                                    .error(error.to_string()),
                            )
                            .await?;
                        self.events.emit(JobEvent::OrderRetrying {
                            order: order_id.clone(),
                            attempt: attempts,
                            delay,
                            error: error.to_string(),
                        });
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = cancel.cancelled() => return Ok((Outcome::NotStarted, calls)),
                        }
                        if self.withdraw(deadline, cancel).await {
                            continue;
                        }
                        if cancel.is_cancelled() {
                            return Ok((Outcome::NotStarted, calls));
                        }
                        let error = error.persistent();
                        let msg =
                            format!("{error} (retry budget exhausted after {attempts} attempts)");
                        self.errored_after_retries(&mut record, &msg, true).await?;
                        return Ok((Outcome::Failed(msg), calls));
                    }
                    let error = error.persistent();
                    let exhausted = error.status() == autoprov_connector::ErrorStatus::Persistent;
                    let msg = if exhausted {
                        format!("{error} (gave up after {attempts} attempts)")
                    } else {
                        error.to_string()
                    };
                    self.errored_after_retries(&mut record, &msg, exhausted)
                        .await?;
                    return Ok((Outcome::Failed(msg), calls));
                }
            }
        }
    }

    /// Applies a state-machine event, stores the record and its result, and emits the event.
    /// Ends an order as Errored (the connector failed it, or it cannot be sent), recording
    /// why.
    pub(super) async fn errored(
        &self,
        record: &mut OrderRecord,
        message: &str,
    ) -> Result<(), DispatchError> {
        self.errored_after_retries(record, message, false).await
    }

    /// Ends an order as Errored; `exhausted` when retries of temporary failures ran out (the
    /// next job reopens it once the connection is healthy again).
    pub(super) async fn errored_after_retries(
        &self,
        record: &mut OrderRecord,
        message: &str,
        exhausted: bool,
    ) -> Result<(), DispatchError> {
        let mut update =
            OrderUpdate::event(ProvisioningEvent::ConnectorFailed, self.clock.now()).error(message);
        if exhausted {
            update = update.retries_exhausted();
        }
        self.settle(record, update, Some(message.to_owned())).await
    }

    /// Records an outcome through the store (the one place an order's state changes) and
    /// emits it.
    pub(super) async fn settle(
        &self,
        record: &mut OrderRecord,
        update: OrderUpdate,
        message: Option<String>,
    ) -> Result<(), DispatchError> {
        *record = self
            .store
            .update_order(record.id(), record.version, update)
            .await?;
        let next = record.state;
        if !self.events.enabled() {
            return Ok(());
        }
        self.events.emit(JobEvent::OrderFinished {
            order: record.order.order_id.clone(),
            owner: record.order.owner_id().cloned(),
            change_type: record.order.change_type,
            state: next,
            message,
            changes: value_changes(&record.order),
        });
        Ok(())
    }

    /// Hands a generated initial password to the delivery hook, then drops it. A failed
    /// delivery fails the attempt (temporary): the order is sent again and a new password is
    /// set and delivered. Without a hook the password is dropped, with a warning that names
    /// the order only.
    async fn deliver(
        &self,
        order: &ProvisioningOrder,
        mut executed: Executed,
    ) -> Result<Fulfillment, ConnectorError> {
        let Some(password) = executed.initial_password.take() else {
            return Ok(Fulfillment::Executed(executed));
        };
        let Some(hook) = &self.delivery else {
            tracing::warn!(
                order = %order.order_id,
                "a generated initial password was set but no password delivery is configured"
            );
            return Ok(Fulfillment::Executed(executed));
        };
        match hook.deliver(order, &executed.resource_id, &password).await {
            Ok(()) => Ok(Fulfillment::Executed(executed)),
            Err(e) => Err(ConnectorError::new(
                ErrorKind::Unavailable,
                Operation::SetPassword,
                format!(
                    "the initial password set on {} could not be delivered: {e}; the order is sent again with a new password",
                    executed.resource_id
                ),
            )),
        }
    }
}
