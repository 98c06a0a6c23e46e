//! The retry budget (after tower's): retries may be at most a ratio of first attempts plus a
//! steady allowance, so a sick system cannot cause a retry storm.

use super::Core;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub(super) struct BudgetState {
    pub(super) tokens: f64,
    pub(super) last_refill: Instant,
}

impl Core {
    pub(super) fn deposit(&self) {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut b);
        b.tokens = (b.tokens + self.policy.budget.ratio).min(self.policy.budget.capacity);
    }

    pub(super) fn refill(&self, b: &mut BudgetState) {
        let now = Instant::now();
        let earned =
            now.duration_since(b.last_refill).as_secs_f64() * self.policy.budget.min_per_second;
        b.tokens = (b.tokens + earned).min(self.policy.budget.capacity);
        b.last_refill = now;
    }

    /// Takes one retry token if one is there now (a worker, which does not wait while it
    /// holds a claim: the retry happens later, from a new claim).
    pub(crate) fn try_withdraw(&self) -> bool {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut b);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one retry token, waiting for the budget to refill until `deadline`.
    pub(super) async fn withdraw(&self, deadline: Instant, cancel: &CancellationToken) -> bool {
        loop {
            let wait = {
                let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
                self.refill(&mut b);
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return true;
                }
                let rate = self.policy.budget.min_per_second;
                // A NaN rate never refills (and would otherwise make a zero wait: a busy loop).
                if rate.is_nan() || rate <= 0.0 {
                    return false;
                }
                super::policy::saturating_secs((1.0 - b.tokens) / rate)
            };
            let until = super::policy::instant_after(Instant::now(), wait);
            if until > deadline {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = cancel.cancelled() => return false,
            }
        }
    }
}
