//! Dispatch settings: retries, the retry budget, the circuit breaker, concurrency and deadlines.

use rand::Rng as _;
use rand::rngs::StdRng;
use std::time::Duration;
use tokio::time::Instant;

/// Seconds as a `Duration`, saturating: not a number or negative is zero, too large is
/// `Duration::MAX`. (`Duration::from_secs_f64` panics on all three.)
pub(super) fn saturating_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// `base + wait`, or about 30 years after `base` when that instant cannot be represented
/// (`Instant + Duration` panics on overflow; a policy may hold `Duration::MAX`).
pub(crate) fn instant_after(base: Instant, wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    base.checked_add(wait)
        .or_else(|| base.checked_add(FAR))
        .unwrap_or(base)
}

/// The most calls in flight per connection a policy may ask for (tokio's semaphore limit).
pub(super) const MAX_CONCURRENCY: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// A dispatch policy setting out of its range, named by its field path (`retry.multiplier`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A setting outside the values that make sense.
    #[error("dispatch policy: `{setting}` is {value}; it must be {expected}")]
    OutOfRange {
        /// The setting, as a field path (`retry.max_attempts`, `budget.ratio`).
        setting: &'static str,
        /// Its value as written.
        value: String,
        /// The range it must be in.
        expected: &'static str,
    },
}

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
    ///
    /// Never panics, whatever the policy: a wait that is not a number or negative (a NaN or
    /// negative multiplier) is zero, one too large for a `Duration` is `Duration::MAX`
    /// ([`DispatchPolicy::validate`] refuses such policies).
    pub fn base_backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.powi(exponent);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        saturating_secs(secs.min(self.max_backoff.as_secs_f64()))
    }

    /// The wait before retry number `retry`, with jitter drawn from `rng`. Never panics, as
    /// [`Self::base_backoff`]; a jitter outside `[0, 1]` is clamped, a NaN one is none.
    pub fn backoff(&self, retry: u32, rng: &mut StdRng) -> Duration {
        let base = self.base_backoff(retry).as_secs_f64();
        let spread = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let factor = if spread > 0.0 {
            rng.gen_range(1.0 - spread..=1.0 + spread)
        } else {
            1.0
        };
        saturating_secs((base * factor).min(self.max_backoff.as_secs_f64()))
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

impl DispatchPolicy {
    /// Checks every setting; the error names the first one out of range:
    /// `concurrency_per_connection` in 1..=[`tokio::sync::Semaphore::MAX_PERMITS`],
    /// `call_deadline` > 0, `retry.max_attempts` ≥ 1, `retry.multiplier` finite and ≥ 1,
    /// `retry.jitter` in [0, 1], `retry.initial_backoff` ≤ `retry.max_backoff`, the budget's
    /// `ratio`, `min_per_second` and `capacity` finite and ≥ 0, and
    /// `breaker.failure_threshold` ≥ 1.
    ///
    /// Dispatch never panics on a policy that fails this check (waits saturate), but it would
    /// not behave as meant: [`crate::job::ProvisioningJobBuilder::try_build`] refuses it.
    ///
    /// ```
    /// use autoprov_orchestrator::dispatch::{DispatchPolicy, PolicyError};
    /// assert_eq!(DispatchPolicy::default().validate(), Ok(()));
    /// let mut policy = DispatchPolicy::default();
    /// policy.retry.multiplier = f64::NAN;
    /// assert!(matches!(
    ///     policy.validate(),
    ///     Err(PolicyError::OutOfRange { setting: "retry.multiplier", .. })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), PolicyError> {
        fn out(
            setting: &'static str,
            value: impl std::fmt::Debug,
            expected: &'static str,
        ) -> PolicyError {
            PolicyError::OutOfRange {
                setting,
                value: format!("{value:?}"),
                expected,
            }
        }
        fn non_negative(setting: &'static str, value: f64) -> Result<(), PolicyError> {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(out(setting, value, "a finite number ≥ 0"))
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency_per_connection) {
            return Err(out(
                "concurrency_per_connection",
                self.concurrency_per_connection,
                "at least 1 (and at most tokio's Semaphore::MAX_PERMITS)",
            ));
        }
        if self.call_deadline.is_zero() {
            return Err(out("call_deadline", self.call_deadline, "longer than zero"));
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 {
            return Err(out(
                "retry.max_attempts",
                retry.max_attempts,
                "at least 1 (the first call)",
            ));
        }
        if !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
            return Err(out(
                "retry.multiplier",
                retry.multiplier,
                "a finite number ≥ 1",
            ));
        }
        if !(0.0..=1.0).contains(&retry.jitter) {
            return Err(out("retry.jitter", retry.jitter, "between 0 and 1"));
        }
        if retry.initial_backoff > retry.max_backoff {
            return Err(out(
                "retry.initial_backoff",
                retry.initial_backoff,
                "at most retry.max_backoff",
            ));
        }
        non_negative("budget.ratio", self.budget.ratio)?;
        non_negative("budget.min_per_second", self.budget.min_per_second)?;
        non_negative("budget.capacity", self.budget.capacity)?;
        if self.breaker.failure_threshold == 0 {
            return Err(out(
                "breaker.failure_threshold",
                self.breaker.failure_threshold,
                "at least 1",
            ));
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn hostile_retries() -> Vec<RetryPolicy> {
        let mut out = Vec::new();
        for multiplier in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0, 0.0, 1e300] {
            for jitter in [f64::NAN, -1.0, 0.5, 7.0, f64::INFINITY] {
                for (initial, max) in [
                    (Duration::MAX, Duration::MAX),
                    (Duration::from_millis(100), Duration::MAX),
                    (Duration::MAX, Duration::ZERO),
                    (Duration::ZERO, Duration::ZERO),
                ] {
                    out.push(RetryPolicy {
                        max_attempts: u32::MAX,
                        initial_backoff: initial,
                        max_backoff: max,
                        multiplier,
                        jitter,
                        max_total: Duration::MAX,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn backoff_never_panics_whatever_the_policy() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in hostile_retries() {
            for n in [0, 1, 2, 3, 64, 1 << 20, u32::MAX] {
                let base = retry.base_backoff(n);
                let wait = retry.backoff(n, &mut rng);
                assert!(base <= retry.max_backoff && wait <= retry.max_backoff);
            }
            let sane = retry.multiplier.is_finite()
                && retry.multiplier >= 1.0
                && (0.0..=1.0).contains(&retry.jitter)
                && retry.initial_backoff <= retry.max_backoff;
            let policy = DispatchPolicy {
                retry,
                ..DispatchPolicy::default()
            };
            // Huge but consistent durations are allowed; they saturate.
            assert_eq!(policy.validate().is_ok(), sane, "{policy:?}");
        }
        assert_eq!(saturating_secs(f64::NAN), Duration::ZERO);
        assert_eq!(saturating_secs(-1.0), Duration::ZERO);
        assert_eq!(saturating_secs(1e300), Duration::MAX);
        assert_eq!(saturating_secs(1.5), Duration::from_millis(1500));
        let now = Instant::now();
        assert!(instant_after(now, Duration::MAX) > now);
    }

    #[test]
    fn backoff_of_a_sane_policy_is_unchanged() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.base_backoff(1), Duration::from_millis(100));
        assert_eq!(retry.base_backoff(2), Duration::from_millis(200));
        assert_eq!(retry.base_backoff(30), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        for n in 1..10 {
            let wait = retry.backoff(n, &mut rng).as_secs_f64();
            let base = retry.base_backoff(n).as_secs_f64();
            assert!(wait >= base * 0.8 - 1e-9 && wait <= (base * 1.2).min(10.0) + 1e-9);
        }
    }

    #[test]
    fn validate_names_the_setting_out_of_range() {
        DispatchPolicy::default().validate().unwrap();
        type Spoil = fn(&mut DispatchPolicy);
        let cases: Vec<(&str, Spoil)> = vec![
            ("concurrency_per_connection", |p| {
                p.concurrency_per_connection = 0
            }),
            ("concurrency_per_connection", |p| {
                p.concurrency_per_connection = usize::MAX
            }),
            ("call_deadline", |p| p.call_deadline = Duration::ZERO),
            ("retry.max_attempts", |p| p.retry.max_attempts = 0),
            ("retry.multiplier", |p| p.retry.multiplier = 0.5),
            ("retry.multiplier", |p| p.retry.multiplier = f64::NAN),
            ("retry.multiplier", |p| p.retry.multiplier = f64::INFINITY),
            ("retry.jitter", |p| p.retry.jitter = -0.1),
            ("retry.jitter", |p| p.retry.jitter = 1.5),
            ("retry.jitter", |p| p.retry.jitter = f64::NAN),
            ("retry.initial_backoff", |p| {
                p.retry.initial_backoff = Duration::from_secs(60)
            }),
            ("budget.ratio", |p| p.budget.ratio = -1.0),
            ("budget.min_per_second", |p| {
                p.budget.min_per_second = f64::NAN
            }),
            ("budget.capacity", |p| p.budget.capacity = f64::INFINITY),
            ("breaker.failure_threshold", |p| {
                p.breaker.failure_threshold = 0
            }),
        ];
        for (setting, spoil) in cases {
            let mut policy = DispatchPolicy::default();
            spoil(&mut policy);
            let err = policy.validate().unwrap_err();
            assert!(
                matches!(&err, PolicyError::OutOfRange { setting: s, .. } if *s == setting),
                "{err} for {setting}"
            );
            assert!(err.to_string().contains(setting), "{err}");
        }
        // Edges that are fine.
        let mut policy = DispatchPolicy::default();
        policy.retry.multiplier = 1.0;
        policy.retry.jitter = 0.0;
        policy.retry.initial_backoff = policy.retry.max_backoff;
        policy.budget = RetryBudget {
            ratio: 0.0,
            min_per_second: 0.0,
            capacity: 0.0,
        };
        policy.validate().unwrap();
    }
}
