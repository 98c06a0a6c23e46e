//! Planning off the runtime: a plan of a million identities takes seconds of CPU, which must
//! not hold a runtime worker (nor the only thread of a current-thread runtime). The planner
//! is synchronous (`autoprov-planner`); this is where the async runtime hands it to tokio's
//! blocking pool.

use autoprov_planner::{Planner, PlannerConfig, RoleModel};
use std::sync::mpsc::{Receiver, sync_channel};

/// Runs `work` on `planner` on tokio's blocking pool. The planner moves into the blocking
/// task and comes back through a channel, also when the caller's future is dropped while
/// planning (the drop then waits for the plan to finish), so its owner never loses it; a
/// panic while planning resumes here, as it did when planning ran inline.
pub(crate) async fn off_runtime<R: Send + 'static>(
    planner: &mut Planner,
    work: impl FnOnce(&mut Planner) -> R + Send + 'static,
) -> R {
    let empty = Planner::new(PlannerConfig::new(Vec::new(), RoleModel::new()))
        .expect("an empty planner configuration is valid");
    let mut moved = std::mem::replace(planner, empty);
    let (back, returned) = sync_channel(1);
    let mut home = PlannerHome {
        slot: planner,
        returned: Some(returned),
    };
    let done = tokio::task::spawn_blocking(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut moved)));
        let _ = back.send(moved);
        out
    })
    .await;
    home.take_back();
    match done {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // The blocking pool cancels a task only at runtime shutdown, before it started.
        Err(e) => panic!("planning task cancelled: {e}"),
    }
}

/// Where the planner returns after planning on the blocking pool; dropped early (the
/// caller's future dropped while planning), it waits for the planner so its owner keeps it.
struct PlannerHome<'a> {
    slot: &'a mut Planner,
    returned: Option<Receiver<Planner>>,
}

impl PlannerHome<'_> {
    /// Puts the planner back; the blocking task sent it before finishing, so this does not
    /// wait once the task's handle resolved.
    fn take_back(&mut self) {
        if let Some(planner) = self.returned.take().and_then(|r| r.recv().ok()) {
            *self.slot = planner;
        }
    }
}

impl Drop for PlannerHome<'_> {
    fn drop(&mut self) {
        self.take_back();
    }
}
