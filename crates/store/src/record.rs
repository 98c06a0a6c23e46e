//! An order as the store keeps it: the order, its provisioning state, its version and its
//! dispatch record; and the one way to change it, an [`OrderUpdate`].

use crate::StoreError;
use autoprov_core::{
    ConnectionMode, OrderId, ProvisioningEvent, ProvisioningOrder, ProvisioningResult,
    ProvisioningState, ResourceId, StableId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The dispatch history of one order, as far as dispatch needs it to decide the next step.
/// The full history (every attempt and state change) is [`HistoryEntry`]s, kept by the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DispatchRecord {
    /// Calls made to the connector in the current round (since the order last became
    /// Pending); the retry policy counts these.
    pub attempts: u32,
    /// Calls made to the connector over the order's whole life, reopenings included.
    pub total_attempts: u32,
    /// How many times the order became Pending again after it had finished (drift, operator
    /// retry); 0 for an order sent in one round.
    pub reopened: u32,
    /// When the next attempt may start (after a temporary failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error's message.
    pub last_error: Option<String>,
    /// When the order was stored.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When the first attempt started.
    pub first_sent_at: Option<DateTime<Utc>>,
    /// When the order last reached Executed, Transmitted or Errored.
    pub finished_at: Option<DateTime<Utc>>,
    /// The order was last Errored because retries of temporary failures ran out (the
    /// connection was down or overloaded), not because it was refused: a job reopens it once
    /// the connection checks healthy again.
    #[serde(default)]
    pub retries_exhausted: bool,
    /// Where the order stands with adopting an account autoprov did not create
    /// (`ReviewAdoption`).
    #[serde(default, skip_serializing_if = "AdoptionReview::is_not_asked")]
    pub adoption: AdoptionReview,
}

/// Where an Added order stands with adopting an existing account autoprov did not create, for
/// a resource type that reviews adoptions (`ReviewAdoption`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdoptionReview {
    /// No account was found that needs review (the order creates, or adopts its own).
    #[default]
    NotAsked,
    /// The connector found one and wrote nothing; the order waits in AwaitingApproval.
    Waiting,
    /// A person approved adopting it: the order is sent without asking again.
    Approved,
}

impl AdoptionReview {
    fn is_not_asked(&self) -> bool {
        *self == Self::NotAsked
    }
}

impl DispatchRecord {
    /// A fresh record.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            attempts: 0,
            total_attempts: 0,
            reopened: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            first_sent_at: None,
            finished_at: None,
            retries_exhausted: false,
            adoption: AdoptionReview::NotAsked,
        }
    }
}

/// An order with its provisioning state, version and dispatch record.
///
/// The store owns it: callers read a copy and change it only through
/// [`Store::update_order`](crate::Store::update_order), a conditional write on
/// [`OrderRecord::version`] that applies the core state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrderRecord {
    /// The order (shared: records are copied on every state change, orders never are).
    pub order: Arc<ProvisioningOrder>,
    /// Automated or manual, from the connection's capabilities.
    pub mode: ConnectionMode,
    /// Its provisioning state.
    pub state: ProvisioningState,
    /// Incremented by every write; an update names the version it read.
    pub version: u64,
    /// Its dispatch record.
    pub dispatch: DispatchRecord,
    /// The target's key after fulfilment (e.g. the DN of a created account).
    pub resource_id: Option<ResourceId>,
    /// The target's stable id after fulfilment.
    pub stable_id: Option<StableId>,
    /// The ticket, for a manual connection.
    pub ticket: Option<String>,
}

impl OrderRecord {
    /// A new order in `state` (Pending, or AwaitingApproval when review is required), not yet
    /// stored (version 0; the store gives it version 1).
    pub fn new(
        order: impl Into<Arc<ProvisioningOrder>>,
        mode: ConnectionMode,
        state: ProvisioningState,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            order: order.into(),
            mode,
            state,
            version: 0,
            dispatch: DispatchRecord::new(now),
            resource_id: None,
            stable_id: None,
            ticket: None,
        }
    }

    /// A new Pending order.
    pub fn pending(
        order: impl Into<Arc<ProvisioningOrder>>,
        mode: ConnectionMode,
        now: DateTime<Utc>,
    ) -> Self {
        Self::new(order, mode, ProvisioningState::Pending, now)
    }

    /// The order's id.
    pub fn id(&self) -> &OrderId {
        &self.order.order_id
    }

    /// Its result (SPEC §6): the state, the error for Errored orders, the ticket for orders
    /// handed to a human, and what the connector learned.
    pub fn result(&self) -> ProvisioningResult {
        let message = match self.state {
            ProvisioningState::Errored => self.dispatch.last_error.clone(),
            _ => self
                .ticket
                .as_ref()
                .map(|t| format!("handed to a human: ticket {t}")),
        };
        ProvisioningResult {
            order_id: self.order.order_id.clone(),
            assignment_id: self.order.assigned_resource_type_id.clone(),
            provisioning_state: self.state,
            message,
            change_type: self.order.change_type,
            owner_id: self.order.owner_id().cloned(),
            owner_type: self
                .order
                .owner
                .as_ref()
                .and_then(|o| o.entity_type.clone())
                .or_else(|| Some(self.order.resource_type.source_entity_type.id.clone())),
            resource_id: self.resource_id.clone(),
            stable_id: self.stable_id.clone(),
            ticket: self.ticket.clone(),
        }
    }

    /// Whether dispatch is done with it (anything but Pending and AwaitingApproval).
    pub fn is_finished(&self) -> bool {
        !matches!(
            self.state,
            ProvisioningState::Pending | ProvisioningState::AwaitingApproval
        )
    }

    /// Applies `update` to a copy of this record: the state machine for its event, the
    /// dispatch bookkeeping, version + 1. Returns the new record and the history entry the
    /// store appends. Every store applies updates through this one function, so they all
    /// agree on what an update means.
    pub fn applied(&self, update: &OrderUpdate) -> Result<(Self, HistoryEntry), StoreError> {
        let mut next = self.clone();
        let d = &mut next.dispatch;
        d.updated_at = update.at;
        if update.attempt_started {
            d.attempts += 1;
            d.total_attempts += 1;
            d.first_sent_at.get_or_insert(update.at);
            d.next_attempt_at = None;
        }
        if let Some(t) = update.retry_at {
            d.next_attempt_at = Some(t);
        }
        if let Some(e) = &update.error {
            d.last_error = Some(e.clone());
        }
        if let Some(r) = &update.resource_id {
            next.resource_id = Some(r.clone());
        }
        if let Some(s) = &update.stable_id {
            next.stable_id = Some(s.clone());
        }
        if let Some(t) = &update.ticket {
            next.ticket = Some(t.clone());
        }
        if update.retries_exhausted {
            next.dispatch.retries_exhausted = true;
        }
        if let Some(event) = update.event {
            let to = self.state.apply(event, self.mode).map_err(|source| {
                StoreError::IllegalTransition {
                    order_id: self.order.order_id.clone(),
                    source,
                }
            })?;
            next.state = to;
            let d = &mut next.dispatch;
            match to {
                ProvisioningState::Executed
                | ProvisioningState::Transmitted
                | ProvisioningState::Errored => d.finished_at = Some(update.at),
                ProvisioningState::AwaitingApproval
                    if update.event == Some(ProvisioningEvent::AdoptionNeedsReview) =>
                {
                    d.adoption = AdoptionReview::Waiting;
                }
                ProvisioningState::Pending
                    if d.adoption == AdoptionReview::Waiting
                        && self.state == ProvisioningState::AwaitingApproval
                        && update.event == Some(ProvisioningEvent::ReviewApproved) =>
                {
                    // Adoption approved: a new round of attempts that adopts.
                    d.adoption = AdoptionReview::Approved;
                    d.attempts = 0;
                    d.next_attempt_at = None;
                }
                ProvisioningState::Pending if self.state != ProvisioningState::AwaitingApproval => {
                    // Reopened (drift, operator retry): a new round of attempts; the history
                    // of the earlier rounds stays in `total_attempts` and the store's entries.
                    d.reopened += 1;
                    d.attempts = 0;
                    d.next_attempt_at = None;
                    d.finished_at = None;
                    d.retries_exhausted = false;
                    if d.adoption == AdoptionReview::Waiting {
                        // Declined, then reopened: the account found still needs a decision.
                        d.adoption = AdoptionReview::NotAsked;
                    }
                }
                _ => {}
            }
        }
        next.version = self.version + 1;
        let entry = HistoryEntry {
            order_id: self.order.order_id.clone(),
            version: next.version,
            at: update.at,
            from: self.state,
            to: next.state,
            event: update.event,
            attempt: update
                .attempt_started
                .then_some(next.dispatch.total_attempts),
            message: update.error.clone().or_else(|| update.note.clone()),
        };
        Ok((next, entry))
    }
}

/// One change of an order record: an event for the state machine and/or dispatch
/// bookkeeping. Built with [`OrderUpdate::at`] and the setters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrderUpdate {
    /// When it happens.
    pub at: DateTime<Utc>,
    /// The state-machine event, if the state changes.
    pub event: Option<ProvisioningEvent>,
    /// A call to the connector starts now (recorded before the call).
    pub attempt_started: bool,
    /// The next attempt may start at this time (after a temporary failure).
    pub retry_at: Option<DateTime<Utc>>,
    /// The error of the last attempt.
    pub error: Option<String>,
    /// The target's key learned from the connector.
    pub resource_id: Option<ResourceId>,
    /// The target's stable id learned from the connector.
    pub stable_id: Option<StableId>,
    /// The ticket of a manual connection.
    pub ticket: Option<String>,
    /// The order errs because retries of temporary failures ran out.
    pub retries_exhausted: bool,
    /// What the connector said about a success (e.g. a stale Deleted order that found its DN
    /// held by another object and wrote nothing), kept in the history entry.
    pub note: Option<String>,
}

impl OrderUpdate {
    /// An update at `at` that changes nothing yet.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            at,
            event: None,
            attempt_started: false,
            retry_at: None,
            error: None,
            note: None,
            resource_id: None,
            stable_id: None,
            ticket: None,
            retries_exhausted: false,
        }
    }

    /// An update that applies `event` at `at`.
    pub fn event(event: ProvisioningEvent, at: DateTime<Utc>) -> Self {
        Self::at(at).with_event(event)
    }

    /// Applies `event` through the state machine.
    pub fn with_event(mut self, event: ProvisioningEvent) -> Self {
        self.event = Some(event);
        self
    }

    /// Records that a connector call starts.
    pub fn attempt_started(mut self) -> Self {
        self.attempt_started = true;
        self
    }

    /// Schedules the next attempt.
    pub fn retry_at(mut self, at: DateTime<Utc>) -> Self {
        self.retry_at = Some(at);
        self
    }

    /// Records an error message.
    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.error = Some(message.into());
        self
    }

    /// Records what the connector learned about the target.
    pub fn learned(mut self, resource_id: Option<ResourceId>, stable_id: Option<StableId>) -> Self {
        self.resource_id = resource_id;
        self.stable_id = stable_id;
        self
    }

    /// Records that retries of temporary failures ran out (see
    /// [`DispatchRecord::retries_exhausted`]).
    pub fn retries_exhausted(mut self) -> Self {
        self.retries_exhausted = true;
        self
    }

    /// Records a note about a success in the history (see [`OrderUpdate::note`]).
    pub fn noted(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// Records the ticket of a manual connection.
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.ticket = Some(ticket.into());
        self
    }
}

/// One entry of an order's history: every update the store applied, in order. An order that
/// is reopened keeps its earlier entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The order.
    pub order_id: OrderId,
    /// The record's version after this entry.
    pub version: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// The state before.
    pub from: ProvisioningState,
    /// The state after (equal to `from` for bookkeeping-only updates).
    pub to: ProvisioningState,
    /// The state-machine event, if any.
    pub event: Option<ProvisioningEvent>,
    /// For an attempt that started: its number over the order's life.
    pub attempt: Option<u32>,
    /// The error recorded with it.
    pub message: Option<String>,
}
