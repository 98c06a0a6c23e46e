//! Dispatch settings: retries, the retry budget, the circuit breaker, concurrency and deadlines.

use rand::Rng as _;
use rand::rngs::StdRng;
use std::time::Duration;

/// When and how often temporary failures are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Calls at most per order, the first included. Default: 8.
    pub max_attempts: u32,
    /// The wait after the first failure. Default: 100 ms.
    pub initial_backoff: Duration,
    /// The longest wait. Default: 10 s.
    pub max_backoff: Duration,
    /// The growth of the wait per retry. Default: 2.
    pub multiplier: f64,
    /// Random spread of each wait, as a fraction (0.2 ⇒ ±20%). Default: 0.2.
    pub jitter: f64,
    /// No retry starts later than this after the first attempt. Default: 5 minutes.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), without jitter.
    pub fn base_backoff(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(retry.saturating_sub(1) as i32);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_backoff.as_secs_f64()))
    }

    /// The wait before retry number `retry`, with jitter drawn from `rng`.
    pub fn backoff(&self, retry: u32, rng: &mut StdRng) -> Duration {
        let base = self.base_backoff(retry).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = if spread > 0.0 {
            rng.gen_range(1.0 - spread..=1.0 + spread)
        } else {
            1.0
        };
        Duration::from_secs_f64((base * factor).min(self.max_backoff.as_secs_f64()))
    }
}

/// A retry budget (after tower's): retries may be at most `ratio` of first attempts, plus a
/// small steady allowance, so a sick system cannot cause a retry storm. When the budget is
/// empty, retries wait for it to refill (bounded by [`RetryPolicy::max_total`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retry tokens earned per first attempt. Default: 0.5.
    pub ratio: f64,
    /// Retry tokens earned per second regardless of traffic. Default: 10.
    pub min_per_second: f64,
    /// Most tokens kept. Default: 100.
    pub capacity: f64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.5,
            min_per_second: 10.0,
            capacity: 100.0,
        }
    }
}

/// When a connection's circuit breaker opens.
#[derive(Clone, Debug, PartialEq)]
pub struct CircuitBreakerPolicy {
    /// Consecutive temporary failures that open the breaker. Default: 10.
    pub failure_threshold: u32,
    /// How long dispatch to the connection pauses before a probe. Default: 5 s.
    pub open_for: Duration,
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            open_for: Duration::from_secs(5),
        }
    }
}

/// Dispatch settings. `Default` gives documented, conservative values.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchPolicy {
    /// Calls in flight at most per connection. Default: 8.
    pub concurrency_per_connection: usize,
    /// The deadline of every connector call (fulfil and probe). Default: 60 s.
    pub call_deadline: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Retry budget.
    pub budget: RetryBudget,
    /// Circuit breakers.
    pub breaker: CircuitBreakerPolicy,
    /// Seed of the jitter's random numbers (deterministic tests). Default: 0.
    pub jitter_seed: u64,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        Self {
            concurrency_per_connection: 8,
            call_deadline: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            budget: RetryBudget::default(),
            breaker: CircuitBreakerPolicy::default(),
            jitter_seed: 0,
        }
    }
}
