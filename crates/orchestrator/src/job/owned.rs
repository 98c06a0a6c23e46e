//! What autoprov holds as its own ([`OwnedValues`]), kept by the store across restarts: read
//! back into the planner before a restarted job plans, written after each plan that changed it.
//! Without it a restarted planner would take a leaver's account or a mover's old groups for
//! values that predate autoprov and keep them for review instead of following the rules.

use super::ProvisioningJob;
use crate::store::{StoreError, StoreExt as _};
use autoprov_core::OwnedValues;
use futures::TryStreamExt as _;

/// Owners per store write.
const BATCH: usize = 1000;

impl ProvisioningJob {
    /// Restores the stored owned values into the planner: all of them the first time, then
    /// those of owners the planner did not hold yet.
    pub(super) async fn load_owned(&mut self) -> Result<(), StoreError> {
        if !self.owned_loaded {
            let stored: Vec<OwnedValues> = self
                .store
                .owned_values_stream(crate::store::DEFAULT_PAGE)
                .try_collect()
                .await?;
            for v in stored {
                self.owned_pending.insert(v.owner.clone(), v);
            }
            self.owned_loaded = true;
        }
        if !self.owned_pending.is_empty() {
            let planner = &mut self.planner;
            // Restoring is not a change to write back: it clears the owner's flag only, so
            // changes still to write (a removed owner, a failed write) are kept.
            self.owned_pending
                .retain(|_, v| !planner.restore_owned_values(v));
        }
        Ok(())
    }

    /// Writes the owned values the last plan changed (a removed owner's are forgotten).
    pub(super) async fn save_owned(&mut self) -> Result<(), StoreError> {
        let changed = self.planner.take_owned_changes();
        for chunk in changed.chunks(BATCH) {
            let values: Vec<OwnedValues> = chunk
                .iter()
                .map(|o| {
                    self.planner
                        .owned_values(o)
                        .unwrap_or_else(|| OwnedValues::new(o.clone()))
                })
                .collect();
            if let Err(e) = self.store.put_owned_values(&values).await {
                // Not written: written at the next plan instead.
                self.planner.requeue_owned_changes(changed.iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }
}
