//! What predates autoprov (SPEC §10): decisions on values found in the managed systems that
//! nothing explains — one at a time, in bulk, or as a one-step baseline — stored durably with
//! who decided (audited), then given to the planner. A restarted process reads them back
//! before its first plan.

use super::{JobError, JobOptions, ProvisioningJob};
use crate::PlanError;
use crate::plan::{FoundScope, NonConforming};
use crate::store::StoreError;
use autoprov_core::{FoundDecision, FoundVerdict, ResourceTypeId};
use tokio_util::sync::CancellationToken;

/// A decision on found values that was refused; nothing of it was recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoundDecisionError {
    /// The planner refused a decision (unknown owner or resource type, a property the
    /// resource type does not govern).
    #[error(
        "decision on found value {value} of owner {owner}, resource type {resource_type} refused: {source}"
    )]
    Refused {
        /// The owner.
        owner: autoprov_core::OwnerId,
        /// The resource type.
        resource_type: ResourceTypeId,
        /// The value, as text.
        value: String,
        /// The planner's reason.
        #[source]
        source: PlanError,
    },
    /// The store failed (or refused the batch).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The simulation a baseline runs first failed.
    #[error("baseline: {0}")]
    Job(#[from] Box<JobError>),
}

impl ProvisioningJob {
    /// The values found that nothing explains, as the last plan classified them.
    pub fn non_conforming(&self) -> Vec<NonConforming> {
        self.planner.non_conforming().cloned().collect()
    }

    /// Records decisions on found values (keep ⇒ a Found value, never removed or
    /// overwritten automatically; remove ⇒ the next run removes it): every decision is checked
    /// by the planner first, then the batch is stored in one write with an audit entry per
    /// decision (who, what, why), then the planner applies it. A refused decision or a store
    /// failure records nothing.
    pub async fn decide_found(
        &mut self,
        decisions: &[FoundDecision],
    ) -> Result<(), FoundDecisionError> {
        for d in decisions {
            self.planner
                .check_found(d)
                .map_err(|source| FoundDecisionError::Refused {
                    owner: d.owner.clone(),
                    resource_type: d.resource_type.clone(),
                    value: d.value.to_string(),
                    source,
                })?;
        }
        self.store.put_found_decisions(decisions).await?;
        for d in decisions {
            // Checked above; the planner's state did not change in between (`&mut self`).
            if let Err(e) = self.planner.decide_found(d) {
                tracing::warn!(owner = %d.owner, error = %e, "found decision not applied");
            }
        }
        Ok(())
    }

    /// Decides in bulk every value of the last plan that `scope` covers (by resource type, by
    /// group, by value): one decision per value, by `by`, with `reason` (audited for each);
    /// returns the decisions recorded.
    pub async fn decide_found_in_bulk(
        &mut self,
        scope: &FoundScope,
        verdict: FoundVerdict,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<FoundDecision>, FoundDecisionError> {
        let listed = self.non_conforming();
        self.decide_listed(&listed, scope, verdict, by, reason)
            .await
    }

    /// The go-live baseline, in one step: runs a simulation (an export and a plan, nothing
    /// written to any managed system) and keeps every value found that nothing explains in
    /// `resource_type` (or in every type) as a Found value, recorded with who did it and the
    /// reason "baseline". Returns the decisions recorded.
    pub async fn baseline(
        &mut self,
        resource_type: Option<&ResourceTypeId>,
        by: &str,
    ) -> Result<Vec<FoundDecision>, FoundDecisionError> {
        let report = self
            .run_complete(JobOptions::simulation(), &CancellationToken::new())
            .await
            .map_err(Box::new)?;
        let scope = match resource_type {
            Some(rt) => FoundScope::ResourceType(rt.clone()),
            None => FoundScope::All,
        };
        let reason = format!("baseline of {scope}");
        self.decide_listed(
            &report.non_conforming,
            &scope,
            FoundVerdict::Keep,
            by,
            Some(&reason),
        )
        .await
    }

    async fn decide_listed(
        &mut self,
        listed: &[NonConforming],
        scope: &FoundScope,
        verdict: FoundVerdict,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<FoundDecision>, FoundDecisionError> {
        let now = self.clock.now();
        let decisions: Vec<FoundDecision> = listed
            .iter()
            .filter(|n| scope.covers(n))
            .map(|n| {
                let d = n.decision(verdict, by, now);
                match reason {
                    Some(r) => d.because(r),
                    None => d.because(format!("in bulk: {scope}")),
                }
            })
            .collect();
        if !decisions.is_empty() {
            self.decide_found(&decisions).await?;
        }
        Ok(decisions)
    }

    /// Gives the planner the decisions stored by earlier processes, once per process (the
    /// decisions made through this job are given to it as they are made).
    pub(super) async fn load_found_decisions(&mut self) -> Result<(), StoreError> {
        if self.found_loaded {
            return Ok(());
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .found_decisions_page(after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key());
            for d in &page {
                // An owner who left, a resource type or property no longer governed: the
                // decision has nothing left to apply to.
                if let Err(e) = self.planner.decide_found(d) {
                    tracing::debug!(owner = %d.owner, error = %e, "stored found decision skipped");
                }
            }
        }
        self.found_loaded = true;
        Ok(())
    }
}
