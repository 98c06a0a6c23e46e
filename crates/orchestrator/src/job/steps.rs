//! The steps of one run (SPEC §8): export and synchronize, verify, evaluate and plan,
//! review gate and thresholds, fulfil.

use crate::dispatch::{DispatchError, DispatchReport};
use crate::events::JobEvent;
use crate::plan::{Plan, PlanOptions};
use crate::store::{JobKind, JobRun, JobStatus, OrderRecord, OrderUpdate};
use crate::verify::{VerificationReport, verify};
use autoprov_connector::Connector;
use autoprov_core::{
    ConnectionId, OrderId, OwnerId, ProvisioningEvent, ProvisioningOrder, ProvisioningState,
    ResourceTypeId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{JobError, JobOptions, JobReport, ProvisioningJob};

impl ProvisioningJob {
    pub(super) async fn steps(
        &mut self,
        run: &mut JobRun,
        kind: JobKind,
        options: JobOptions,
        cancel: &CancellationToken,
    ) -> Result<JobReport, JobError> {
        let job = run.id.clone();
        let store_err = |source| JobError::Store {
            job: job.clone(),
            source,
        };
        let mut report = JobReport {
            run: run.clone(),
            exported: BTreeMap::new(),
            verification: VerificationReport::default(),
            orders: Vec::new(),
            previews: BTreeMap::new(),
            awaiting_review: Vec::new(),
            breaches: Vec::new(),
            evaluation_errors: Vec::new(),
            dispatch: DispatchReport::default(),
            resumed: DispatchReport::default(),
            non_conforming: Vec::new(),
            deduced_roles: Vec::new(),
        };

        // The requests recorded by an earlier process, before anything is planned.
        self.load_requests().await.map_err(store_err)?;

        // 1–2. Export every connection and synchronize what it holds.
        self.events.emit(JobEvent::StepStarted { step: "export" });
        let connections: Vec<(ConnectionId, Arc<dyn Connector>)> = self
            .connectors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (conn, connector) in connections {
            if cancel.is_cancelled() {
                run.status = JobStatus::Cancelled;
                return Ok(report);
            }
            let span = tracing::info_span!("connection", connection = %conn);
            let n = self
                .export_and_sync(&job, &conn, connector.as_ref(), kind)
                .instrument(span)
                .await?;
            report.exported.insert(conn, n);
        }
        self.events.emit(JobEvent::StepFinished {
            step: "export",
            summary: format!(
                "{} resources from {} connections",
                report.exported.values().sum::<usize>(),
                report.exported.len()
            ),
        });

        // 3. Verify what earlier runs executed, against what was just synchronized.
        self.events.emit(JobEvent::StepStarted { step: "verify" });
        let validity: BTreeMap<ResourceTypeId, Option<Duration>> = self
            .planner
            .resource_types()
            .iter()
            .map(|rt| (rt.id.clone(), rt.transmitted_state_validity_period))
            .collect();
        report.verification = verify(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.events.as_ref(),
            &validity,
            self.default_validity,
        )
        .await
        .map_err(store_err)?;
        self.owners_changed(&report.verification.owners);
        self.events.emit(JobEvent::StepFinished {
            step: "verify",
            summary: format!(
                "{} verified, {} waiting, {} timed out",
                report.verification.verified.len(),
                report.verification.waiting.len(),
                report.verification.timed_out.len()
            ),
        });

        // 4. Evaluate and plan.
        self.events.emit(JobEvent::StepStarted { step: "plan" });
        let now = self.clock.now();
        // Forces are applied to the plan below, per resource type; the planner itself never
        // forces a job's generation.
        let plan_options = PlanOptions::default();
        let simulation = options.simulation;
        let in_store = self.order_states().await.map_err(store_err)?;
        self.load_found_decisions().await.map_err(store_err)?;
        self.load_owned().await.map_err(store_err)?;
        let mut plan: Plan = crate::planning::off_runtime(&mut self.planner, move |planner| {
            if kind == JobKind::Complete {
                planner.mark_all_dirty();
            }
            if simulation {
                planner.simulate(now, plan_options, &in_store)
            } else {
                match kind {
                    JobKind::Complete => planner.plan_full(now, plan_options, &in_store),
                    JobKind::Incremental => {
                        planner.plan_incremental(now, plan_options, &in_store);
                        planner.current_plan(plan_options)
                    }
                }
            }
        })
        .await;
        if !simulation {
            // What the plan established as autoprov's own survives a restart.
            self.save_owned().await.map_err(store_err)?;
        }
        let uncovered = plan.force(&options.forces);
        report.orders = plan.all_orders().cloned().collect();
        report.awaiting_review = plan
            .awaiting_approval()
            .filter_map(|i| i.order.as_ref().map(|o| o.order_id.clone()))
            .collect();
        report.evaluation_errors = plan.errors().cloned().collect();
        report.non_conforming = plan.non_conforming().cloned().collect();
        report.deduced_roles = plan.deduced_roles().cloned().collect();
        run.orders_total = report.orders.len() as u64;
        let released: Vec<ProvisioningOrder> = plan.orders().cloned().collect();
        self.events.emit(JobEvent::StepFinished {
            step: "plan",
            summary: format!(
                "{} orders ({} released, {} awaiting review), {} evaluation errors, {} values found that nothing explains",
                report.orders.len(),
                released.len(),
                report.awaiting_review.len(),
                report.evaluation_errors.len(),
                report.non_conforming.len()
            ),
        });

        // 5. Thresholds and simulation stop here. A simulation shows the previews even when
        //    thresholds block the generation: that is when an operator wants to see it.
        if options.simulation {
            report.previews = self.previews(&report.orders);
        }
        match &plan.status {
            crate::plan::GenerationStatus::Blocked { breaches } => {
                report.breaches = breaches.clone();
                run.status = JobStatus::Blocked;
                let mut message = breaches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if !options.forces.is_empty() {
                    message.push_str(&format!(
                        " ({} of them not covered by the forces given)",
                        uncovered.len()
                    ));
                }
                run.message = Some(message);
                return Ok(report);
            }
            crate::plan::GenerationStatus::Forced { breaches } => {
                report.breaches = breaches.clone();
                if !options.simulation {
                    self.audit_forces(&options.forces, breaches, now)
                        .await
                        .map_err(store_err)?;
                }
            }
            _ => {}
        }
        if options.simulation {
            run.status = JobStatus::Succeeded;
            return Ok(report);
        }
        // Orders waiting in provisioning review are stored as AwaitingApproval: the review
        // decision is the store's to record (and survives a restart), never asked twice.
        let awaiting: Vec<OrderRecord> = plan
            .awaiting_approval()
            .filter_map(|i| i.order.as_ref())
            .map(|o| {
                let mode = o
                    .connection
                    .as_ref()
                    .and_then(|c| self.dispatcher.mode_of(c))
                    .unwrap_or_default();
                OrderRecord::new(o.clone(), mode, ProvisioningState::AwaitingApproval, now)
            })
            .collect();
        if !awaiting.is_empty() {
            self.store
                .insert_orders(&awaiting)
                .await
                .map_err(store_err)?;
        }
        if cancel.is_cancelled() {
            run.status = JobStatus::Cancelled;
            return Ok(report);
        }

        // 6. Fulfil the released orders. An order already verified by an earlier run that is
        //    due again (drift back to an old value) reopens through the state machine.
        self.events.emit(JobEvent::StepStarted { step: "fulfil" });
        let mut to_send = Vec::with_capacity(released.len());
        for order in released {
            if order.not_before.is_some_and(|t| t > now) {
                continue;
            }
            if let Some(rec) = self.store.order(&order.order_id).await.map_err(store_err)?
                && matches!(
                    rec.state,
                    ProvisioningState::Verified | ProvisioningState::Inactive
                )
            {
                // Reopened through the store: a new round of attempts, the history kept.
                let event = ProvisioningEvent::DifferenceFound {
                    review_required: false,
                };
                self.store
                    .update_order(rec.id(), rec.version, OrderUpdate::event(event, now))
                    .await
                    .map_err(store_err)?;
            }
            to_send.push(order);
        }
        let dispatch_err = |e| match e {
            DispatchError::Store(source) => store_err(source),
            source => JobError::Dispatch {
                job: job.clone(),
                source,
            },
        };
        // Orders sent before and Pending again — an attempt started whose outcome was never
        // recorded (the process stopped during the call), or an order reopened by a retry —
        // are sent again, before this
        // plan's orders, so that a newer order for the same target comes after them
        // (connectors are idempotent, so an effect already applied is not applied twice).
        // Orders whose retries ran out while their connection was down are reopened once it
        // checks healthy, and sent again with them; so are orders an operator retried.
        self.reopen_after_outage().await.map_err(store_err)?;
        let planned: BTreeSet<&OrderId> = to_send.iter().map(|o| &o.order_id).collect();
        let mut sent_owners: BTreeSet<OwnerId> = to_send
            .iter()
            .filter_map(|o| o.owner_id().cloned())
            .collect();
        let unknown: Vec<ProvisioningOrder> = self
            .store
            .unfinished_orders()
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|r| {
                (r.dispatch.total_attempts > 0 || r.dispatch.reopened > 0)
                    && !planned.contains(r.id())
            })
            .map(|r| (*r.order).clone())
            .collect();
        drop(planned);
        sent_owners.extend(unknown.iter().filter_map(|o| o.owner_id().cloned()));
        if !unknown.is_empty() {
            let resumed = self
                .dispatcher
                .dispatch(unknown, cancel)
                .await
                .map_err(dispatch_err)?;
            report.resumed = resumed;
        }
        let dispatch = self
            .dispatcher
            .dispatch(to_send, cancel)
            .await
            .map_err(dispatch_err)?;
        // The store recorded every outcome; the owners of what was sent are re-evaluated
        // next time (their orders are in hand: no store read per order).
        self.owners_changed(&sent_owners);
        self.events.emit(JobEvent::StepFinished {
            step: "fulfil",
            summary: format!(
                "{} executed, {} transmitted, {} errored, {} awaiting adoption review, {} not \
                 sent",
                dispatch.executed.len(),
                dispatch.transmitted.len(),
                dispatch.errored.len(),
                dispatch.awaiting_review.len(),
                dispatch.pending.len()
            ),
        });
        // Accounts found that autoprov did not create wait in review with the rest.
        for (id, _) in report
            .resumed
            .awaiting_review
            .iter()
            .chain(&dispatch.awaiting_review)
        {
            if !report.awaiting_review.contains(id) {
                report.awaiting_review.push(id.clone());
            }
        }
        run.status = if cancel.is_cancelled() {
            JobStatus::Cancelled
        } else {
            JobStatus::Succeeded
        };
        report.dispatch = dispatch;
        Ok(report)
    }
}

impl ProvisioningJob {
    /// Records in the audit trail each force that let a breach through: who forced which
    /// resource type, up to how many orders, and what it let through.
    async fn audit_forces(
        &self,
        forces: &[crate::plan::ThresholdForce],
        breaches: &[crate::plan::ThresholdBreach],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), crate::store::StoreError> {
        for force in forces {
            let passed: Vec<String> = breaches
                .iter()
                .filter(|b| force.covers(b))
                .map(ToString::to_string)
                .collect();
            if passed.is_empty() {
                continue;
            }
            let mut why = format!(
                "forced up to {} orders: {}",
                force.maximum_count,
                passed.join("; ")
            );
            if let Some(reason) = &force.reason {
                why.push_str(&format!("; reason: {reason}"));
            }
            let entry = crate::store::AuditEntry::new(
                now,
                force.by.clone(),
                crate::store::AuditAction::Forced,
                force.resource_type.to_string(),
            )
            .because(why);
            self.store.append_audit(entry).await?;
        }
        Ok(())
    }
}
