//! Sending one order: permits, the breaker, the deadline, retries; the intent recorded before
//! each call and the outcome after, through the store.
//!
//! One attempt ([`Core::attempt`]) is shared by the in-process dispatcher ([`Core::run_order`],
//! which waits and retries in place) and by the worker loop (`crate::worker`, which records
//! the retry time and releases its claim): the call, its deadline, password delivery, the
//! classification of the result and the retry decision exist once. Where an attempt writes is a
//! [`Writer`]: the store directly, or under a worker's claim (fenced by its token).

use super::{Core, DispatchError, Lane, Outcome, operation_of, value_changes};
use crate::delivery::PasswordNotice;
use crate::events::JobEvent;
use crate::store::{AdoptionReview, Claim, ClaimStore, OrderRecord, OrderUpdate, StoreError};
use autoprov_connector::schema::{MUST_CHANGE_PASSWORD, NO_GENERATED_PASSWORD, PASSWORD};
use autoprov_connector::{
    ADOPTION_REVIEW_ARGUMENT, ConnectorError, ErrorKind, Executed, Fulfillment, Operation,
    RESENT_ARGUMENT,
};
use autoprov_core::{
    ChangeType, ConnectionId, ConnectionMode, PasswordResetSettings, PropertyChange,
    ProvisioningEvent, ProvisioningOrder, ScalarValue, Secret,
};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the writes of one order go.
pub(crate) enum Writer {
    /// Straight to the store ([`crate::store::Store::update_order`]): one dispatcher.
    Direct,
    /// Under a claim ([`ClaimStore::record_outcome`]): a worker sharing the store.
    Claimed(Box<ClaimWriter>),
}

/// The writes of a worker under its claim: the token checked by the store in every write,
/// temporary store failures retried while the lease lasts, the lease renewed during calls.
pub(crate) struct ClaimWriter {
    pub(crate) store: Arc<dyn ClaimStore>,
    /// Where writes go: together with the worker's other orders' writes (group commit).
    pub(crate) recorder: Arc<crate::worker::recorder::Recorder>,
    pub(crate) claim: Claim,
    /// The lease length asked for at each claim and renewal.
    pub(crate) lease: Duration,
    /// When the lease ends by this process's clock: measured from *before* the request that
    /// set it was sent, so never later than the store's own end (clocks need not agree).
    pub(crate) expires: Instant,
    /// Told of every renewal (true: renewed; false: failed other than by a lost lease).
    pub(crate) on_renew: Arc<dyn Fn(bool) + Send + Sync>,
}

impl ClaimWriter {
    /// Renews the lease now.
    pub(crate) async fn renew(&mut self) -> Result<(), StoreError> {
        let sent = Instant::now();
        match self.store.renew(&self.claim, self.lease).await {
            Ok(claim) => {
                self.claim = claim;
                self.expires = super::policy::instant_after(sent, self.lease);
                (self.on_renew)(true);
                Ok(())
            }
            Err(e) => {
                if !matches!(e, StoreError::LeaseLost { .. }) {
                    (self.on_renew)(false);
                }
                Err(e)
            }
        }
    }

    /// Writes `update` under the claim; a temporary store failure (the database restarting,
    /// a lost connection) is retried with backoff while the lease lasts.
    pub(crate) async fn write(&mut self, update: OrderUpdate) -> Result<OrderRecord, StoreError> {
        let mut wait = Duration::from_millis(50);
        loop {
            match self
                .recorder
                .record(self.claim.clone(), update.clone())
                .await
            {
                Ok(claim) => {
                    self.claim = claim;
                    return Ok(self.claim.record.clone());
                }
                Err(e) if e.is_temporary() && Instant::now() + wait < self.expires => {
                    tracing::warn!(order = %self.claim.order_id(), error = %e,
                        "store unavailable while recording; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Renews the lease every third of its length, for as long as it is polled (during a
    /// connector call). A lost lease stops the renewals (the outcome will be refused); a
    /// temporary store failure is tried again at the next tick.
    async fn keep_alive(&mut self) -> Infallible {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            match self.renew().await {
                Ok(()) => {}
                Err(e @ StoreError::LeaseLost { .. }) => {
                    tracing::warn!(error = %e, "lease lost during a call");
                    return std::future::pending().await;
                }
                Err(e) => tracing::warn!(order = %self.claim.order_id(), error = %e,
                    "could not renew a lease; trying again"),
            }
        }
    }
}

impl Writer {
    async fn write(
        &mut self,
        core: &Core,
        record: &OrderRecord,
        update: OrderUpdate,
    ) -> Result<OrderRecord, StoreError> {
        match self {
            Writer::Direct => {
                core.store
                    .update_order(record.id(), record.version, update)
                    .await
            }
            Writer::Claimed(w) => w.write(update).await,
        }
    }

    async fn keep_alive(&mut self) -> Infallible {
        match self {
            Writer::Direct => std::future::pending().await,
            Writer::Claimed(w) => w.keep_alive().await,
        }
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempted {
    /// The order is settled (Executed, Transmitted or Errored) and recorded.
    Settled(Outcome),
    /// A temporary failure that may be retried after `delay`; the error and the retry time
    /// are recorded (the order stays Pending).
    Retry {
        /// The failure.
        error: ConnectorError,
        /// The backoff before the next attempt.
        delay: Duration,
        /// The order's attempts in this round so far.
        attempts: u32,
    },
}

/// How the connection behaved in one attempt (for circuit breakers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallHealth {
    /// The call answered.
    Good,
    /// The call failed temporarily (the connection is down or overloaded).
    TemporaryFailure,
    /// The call failed for the order's own reason.
    Refused,
    /// No call was made (the order was refused before it).
    NotCalled,
}

impl Core {
    /// The order's connection and lane, or why it cannot be sent at all (no connection, an
    /// unknown connection, a masked secret).
    pub(crate) fn route<'a>(
        &'a self,
        record: &OrderRecord,
    ) -> Result<(&'a Lane, ConnectionId), String> {
        let Some(conn) = record.order.connection.clone() else {
            return Err(format!(
                "{}: the order names no connection",
                record.order.label()
            ));
        };
        let Some(lane) = self.lanes.get(&conn) else {
            return Err(format!(
                "{}: connection {conn} is not configured",
                record.order.label()
            ));
        };
        if let Some(property) = record.order.redacted_secret() {
            // Not a convention each connector must remember: no connector ever sees it.
            return Err(format!(
                "{}: property `{property}` is a masked secret read back from a file; it has no value and is never sent",
                record.order.label()
            ));
        }
        Ok((lane, conn))
    }

    /// Sends one order until it succeeds, fails permanently, runs out of retries, or the
    /// dispatch is cancelled. Returns its outcome and the calls made.
    pub(super) async fn run_order(
        &self,
        mut record: OrderRecord,
        cancel: &CancellationToken,
    ) -> Result<(Outcome, u32), DispatchError> {
        let mut writer = Writer::Direct;
        let (lane, conn) = match self.route(&record) {
            Ok(route) => route,
            Err(msg) => {
                self.errored(&mut record, &msg).await?;
                return Ok((Outcome::Failed(msg), 0));
            }
        };
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
            let (attempted, health) = self
                .attempt(
                    lane,
                    &conn,
                    &mut record,
                    &mut writer,
                    started.elapsed(),
                    calls == 0,
                    permit,
                )
                .await?;
            if health != CallHealth::NotCalled {
                calls += 1;
            }
            match attempted {
                Attempted::Settled(outcome) => return Ok((outcome, calls)),
                Attempted::Retry {
                    error,
                    delay,
                    attempts,
                } => {
                    let deadline =
                        super::policy::instant_after(started, self.policy.retry.max_total);
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
                    let outcome = self
                        .budget_exhausted(&mut record, &mut writer, error, attempts)
                        .await?;
                    return Ok((outcome, calls));
                }
            }
        }
    }

    /// Ends an order whose retry the budget refused: Errored, retries exhausted.
    pub(crate) async fn budget_exhausted(
        &self,
        record: &mut OrderRecord,
        writer: &mut Writer,
        error: ConnectorError,
        attempts: u32,
    ) -> Result<Outcome, DispatchError> {
        let error = error.persistent();
        let msg = format!("{error} (retry budget exhausted after {attempts} attempts)");
        self.settle_with(
            record,
            writer,
            errored_update(self, &msg, true),
            Some(msg.clone()),
        )
        .await?;
        Ok(Outcome::Failed(msg))
    }

    /// One attempt: the intent recorded, the call under its deadline (the lease renewed
    /// meanwhile when the writer holds a claim), `permit` dropped when the call ends, the
    /// result classified and recorded. `elapsed` is the time since the order's first attempt
    /// of this round (the retry window); `first_call` deposits into the retry budget.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attempt<P>(
        &self,
        lane: &Lane,
        conn: &ConnectionId,
        record: &mut OrderRecord,
        writer: &mut Writer,
        elapsed: Duration,
        first_call: bool,
        permit: P,
    ) -> Result<(Attempted, CallHealth), DispatchError> {
        let order_id = record.order.order_id.clone();
        // A new password for every attempt: one set by an attempt whose outcome is unknown
        // (a crash, a lost answer) was never delivered.
        let (to_send, mut generated) = match self.password_for(&record.order) {
            Ok(Some((order, generated))) => (Arc::new(order), generated),
            Ok(None) => (record.order.clone(), None),
            Err(msg) => {
                drop(permit);
                self.settle_with(
                    record,
                    writer,
                    errored_update(self, &msg, false),
                    Some(msg.clone()),
                )
                .await?;
                return Ok((
                    Attempted::Settled(Outcome::Failed(msg)),
                    CallHealth::NotCalled,
                ));
            }
        };
        let began = Instant::now();
        // The intent is recorded before the call: an attempt without an outcome is an
        // unknown outcome, sent again after a restart.
        *record = writer
            .write(
                self,
                record,
                OrderUpdate::at(self.clock.now()).attempt_started(),
            )
            .await?;
        if record.dispatch.attempts == 1 || first_call {
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
        // target it finds may be its own, with a password nobody received
        // ([`RESENT_ARGUMENT`]).
        // An Added order of a type that reviews adoptions, not yet approved, asks the
        // connector not to adopt an account autoprov did not create; the argument carries the
        // time of its first attempt, so that a resent order still adopts its own creation
        // ([`ADOPTION_REVIEW_ARGUMENT`]).
        let resent =
            record.order.change_type == ChangeType::Added && record.dispatch.total_attempts > 1;
        let review_adoption = record.order.change_type == ChangeType::Added
            && record.mode == ConnectionMode::Automated
            && record.dispatch.adoption != AdoptionReview::Approved
            && self
                .review_adoption
                .contains(&record.order.resource_type.id);
        let to_send = if resent || review_adoption {
            let mut order = (*to_send).clone();
            if resent {
                order
                    .arguments
                    .insert(RESENT_ARGUMENT.to_owned(), "true".to_owned());
            }
            if review_adoption {
                let first = record
                    .dispatch
                    .first_sent_at
                    .unwrap_or(record.dispatch.updated_at);
                order.arguments.insert(
                    ADOPTION_REVIEW_ARGUMENT.to_owned(),
                    first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
            }
            Arc::new(order)
        } else {
            to_send
        };
        let call =
            tokio::time::timeout(self.policy.call_deadline, lane.connector.fulfill(&to_send));
        let call = tokio::select! {
            r = call => r,
            never = writer.keep_alive() => match never {},
        };
        drop(permit);
        drop(to_send);
        let result = match call {
            Ok(Ok(Fulfillment::Executed(executed)))
                if generated.is_some() || executed.initial_password.is_some() =>
            {
                self.deliver(&record.order, executed, generated.take())
                    .await
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
        let health = match &result {
            Ok(_) => CallHealth::Good,
            Err(e) if e.is_temporary() => CallHealth::TemporaryFailure,
            Err(_) => CallHealth::Refused,
        };
        crate::worker::metrics::call_finished(conn, health, began.elapsed());
        let attempted = match result {
            Ok(Fulfillment::Executed(executed)) => {
                self.breaker_success(lane, conn);
                let update =
                    OrderUpdate::event(ProvisioningEvent::ConnectorSucceeded, self.clock.now())
                        .learned(
                            Some(executed.resource_id.clone()),
                            executed.stable_id.clone(),
                        )
                        .noted(executed.note.clone());
                self.settle_with(record, writer, update, executed.note.clone())
                    .await?;
                Attempted::Settled(Outcome::Succeeded(record.state))
            }
            Ok(Fulfillment::Transmitted { ticket }) => {
                self.breaker_success(lane, conn);
                let msg = format!("handed to a human: ticket {ticket}");
                let update = OrderUpdate::event(ProvisioningEvent::HandedToHuman, self.clock.now())
                    .ticket(ticket);
                self.settle_with(record, writer, update, Some(msg)).await?;
                Attempted::Settled(Outcome::Succeeded(record.state))
            }
            Ok(_) => {
                let msg = format!("{}: unknown fulfilment outcome", record.order.label());
                self.settle_with(
                    record,
                    writer,
                    errored_update(self, &msg, false),
                    Some(msg.clone()),
                )
                .await?;
                Attempted::Settled(Outcome::Failed(msg))
            }
            Err(error)
                if error.kind() == ErrorKind::NeedsReview
                    && record.mode == ConnectionMode::Automated =>
            {
                // Nothing was written: the account found waits for a person's decision.
                self.breaker_success(lane, conn);
                let error = error.for_order(&record.order);
                let msg = error.to_string();
                let update =
                    OrderUpdate::event(ProvisioningEvent::AdoptionNeedsReview, self.clock.now())
                        .error(msg.clone());
                self.settle_with(record, writer, update, Some(msg.clone()))
                    .await?;
                Attempted::Settled(Outcome::AwaitingReview(msg))
            }
            Err(error) => {
                let error = error.for_order(&record.order);
                if error.is_temporary() {
                    self.breaker_failure(lane, conn);
                }
                let attempts = record.dispatch.attempts;
                let delay = {
                    let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                    let backoff = self.policy.retry.backoff(attempts, &mut rng);
                    // The managed system's own `Retry-After` (429, 503) is honoured: never
                    // retry sooner than it asked. A wait beyond the retry window ends the
                    // retries (the order is reopened once the connection checks healthy).
                    error
                        .retry_after()
                        .map_or(backoff, |asked| asked.max(backoff))
                };
                let can_retry = error.is_temporary()
                    && attempts < self.policy.retry.max_attempts
                    && elapsed
                        .saturating_add(began.elapsed())
                        .saturating_add(delay)
                        <= self.policy.retry.max_total;
                if can_retry {
                    let now = self.clock.now();
                    let retry_at = chrono::TimeDelta::from_std(delay)
                        .ok()
                        .and_then(|d| now.checked_add_signed(d))
                        .unwrap_or(now);
                    *record = writer
                        .write(
                            self,
                            record,
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
                    Attempted::Retry {
                        error,
                        delay,
                        attempts,
                    }
                } else {
                    let error = error.persistent();
                    let exhausted = error.status() == autoprov_connector::ErrorStatus::Persistent;
                    let msg = if exhausted {
                        format!("{error} (gave up after {attempts} attempts)")
                    } else {
                        error.to_string()
                    };
                    self.settle_with(
                        record,
                        writer,
                        errored_update(self, &msg, exhausted),
                        Some(msg.clone()),
                    )
                    .await?;
                    Attempted::Settled(Outcome::Failed(msg))
                }
            }
        };
        Ok((attempted, health))
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
        let update = errored_update(self, message, exhausted);
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
        self.settle_with(record, &mut Writer::Direct, update, message)
            .await
    }

    /// [`Core::settle`] through `writer`.
    pub(crate) async fn settle_with(
        &self,
        record: &mut OrderRecord,
        writer: &mut Writer,
        update: OrderUpdate,
        message: Option<String>,
    ) -> Result<(), DispatchError> {
        *record = writer.write(self, record, update).await?;
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

    /// The password settings of the order's resource type, if it has any.
    fn password_settings(&self, order: &ProvisioningOrder) -> Option<&Arc<PasswordResetSettings>> {
        self.passwords.get(&order.resource_type.id)
    }

    /// The order to send for one attempt, when it differs from the stored one, with the
    /// password the dispatcher generated for it. For an Added order of a resource type with
    /// password settings: a generated password when it carries none and the settings generate
    /// (`AutoGenerate`, `Mode` not 0); `mustChangePassword` from the settings when the order
    /// does not say; and, when the settings generate nothing, the
    /// [`NO_GENERATED_PASSWORD`] argument (so no connector falls back to its own generator).
    /// `None`: send the order as stored. The generated password lives only in the returned
    /// copy and in [`Generated`]: the stored order never holds it. A given password that
    /// fails a `StrengthCheck`, or settings no generated password can satisfy, refuse the
    /// order (the message names the check, never the password).
    fn password_for(
        &self,
        order: &ProvisioningOrder,
    ) -> Result<Option<(ProvisioningOrder, Option<Generated>)>, String> {
        let Some(settings) = self.password_settings(order) else {
            return Ok(None);
        };
        let given = match order.changes.properties.get(PASSWORD) {
            Some(PropertyChange::Set(ScalarValue::Secret(given))) => {
                settings
                    .check_strength(given)
                    .map_err(|e| format!("{}: property `{PASSWORD}`: {e}", order.label()))?;
                true
            }
            Some(_) => true,
            None => false,
        };
        if order.change_type != ChangeType::Added {
            return Ok(None);
        }
        let must_change = match order.changes.properties.get(MUST_CHANGE_PASSWORD) {
            Some(PropertyChange::Set(ScalarValue::Bool(b))) => *b,
            _ => settings.must_change,
        };
        let mut sent = order.clone();
        if !order.changes.properties.contains_key(MUST_CHANGE_PASSWORD)
            && (given || settings.generates())
        {
            sent.changes.set(MUST_CHANGE_PASSWORD, must_change);
        }
        if given {
            return Ok(Some((sent, None)));
        }
        if !settings.generates() {
            sent.arguments
                .insert(NO_GENERATED_PASSWORD.to_owned(), "true".to_owned());
            return Ok(Some((sent, None)));
        }
        // The operating system's generator (through the thread's CSPRNG), never the
        // dispatcher's seeded one, which is for jitter only.
        let password = settings
            .generate(&mut rand::thread_rng())
            .map_err(|e| format!("{}: generating the initial password: {e}", order.label()))?;
        sent.changes.set(PASSWORD, password.clone());
        Ok(Some((
            sent,
            Some(Generated {
                password,
                must_change,
            }),
        )))
    }

    /// Hands an initial password set by this attempt (generated by the dispatcher, or by the
    /// connector and handed back) to the delivery hook, then drops it. A failed delivery
    /// fails the attempt (temporary): the order is sent again and a new password is set and
    /// delivered. With `DisableNotifications` nobody is told (the reference system's
    /// behaviour). Without a hook the password is dropped, with a warning that names the
    /// order only.
    async fn deliver(
        &self,
        order: &ProvisioningOrder,
        mut executed: Executed,
        generated: Option<Generated>,
    ) -> Result<Fulfillment, ConnectorError> {
        let settings = self.password_settings(order);
        let order_must_change = match order.changes.properties.get(MUST_CHANGE_PASSWORD) {
            Some(PropertyChange::Set(ScalarValue::Bool(b))) => Some(*b),
            _ => None,
        };
        // A password the connector reports is the one it set.
        let (password, must_change) = match (executed.initial_password.take(), generated) {
            (Some(p), _) => (
                p,
                order_must_change
                    .or(settings.map(|s| s.must_change))
                    .unwrap_or(false),
            ),
            (None, Some(g)) => (g.password, g.must_change),
            (None, None) => return Ok(Fulfillment::Executed(executed)),
        };
        if settings.is_some_and(|s| s.disable_notifications) {
            return Ok(Fulfillment::Executed(executed));
        }
        let Some(hook) = &self.delivery else {
            tracing::warn!(
                order = %order.order_id,
                "an initial password was set but no password delivery is configured"
            );
            return Ok(Fulfillment::Executed(executed));
        };
        let mut notice = PasswordNotice::new(order, &executed.resource_id, must_change);
        if let Some(s) = settings {
            notice.mode = s.mode;
            notice.notification_cc = &s.notification_cc;
        }
        let delivered = hook.deliver(&notice, &password).await;
        drop(password);
        match delivered {
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

/// The update that ends an order as Errored with `message`; `exhausted` when retries of
/// temporary failures ran out.
pub(crate) fn errored_update(core: &Core, message: &str, exhausted: bool) -> OrderUpdate {
    let update =
        OrderUpdate::event(ProvisioningEvent::ConnectorFailed, core.clock.now()).error(message);
    if exhausted {
        update.retries_exhausted()
    } else {
        update
    }
}

/// A password the dispatcher generated for one attempt, with what its delivery needs. Its
/// `Debug` shows the mask only.
#[derive(Debug)]
pub(super) struct Generated {
    password: Secret,
    must_change: bool,
}
