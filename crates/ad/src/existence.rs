//! Objects an order names (its groups, a new parent) that were read and found lately: they are
//! not read again for every order within `ExistenceCacheMs` (a mass onboarding names the same
//! few groups thousands of times). The check only refuses early, before anything is written,
//! an order that names a missing object; the write itself still fails with a typed error when
//! the object was deleted meanwhile, and then forgets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many remembered objects, those older than the window are dropped.
const PRUNE_ABOVE: usize = 4096;

/// Normalized DN (`Dn::key`) ⇒ when it was last found.
#[derive(Debug, Default)]
pub(crate) struct Confirmed {
    ttl: Duration,
    found: Mutex<HashMap<String, Instant>>,
}

impl Confirmed {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            found: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        self.found.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` was found within the window before `now`.
    pub(crate) fn holds(&self, key: &str, now: Instant) -> bool {
        !self.ttl.is_zero()
            && self
                .map()
                .get(key)
                .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    /// `key` was read and found at `now`.
    pub(crate) fn found(&self, key: String, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map();
        if map.len() >= PRUNE_ABOVE {
            let ttl = self.ttl;
            map.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        }
        map.insert(key, now);
    }

    /// `key`, and everything below it, is missing or may be (a write met it missing; the
    /// package deleted, moved or renamed it).
    pub(crate) fn forget(&self, key: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let below = format!(",{key}");
        self.map()
            .retain(|k, _| k != key && !k.ends_with(below.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_objects_are_trusted_within_the_window_only() {
        let c = Confirmed::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!c.holds("cn=g,dc=x", t0), "nothing read yet");
        c.found("cn=g,dc=x".into(), t0);
        assert!(c.holds("cn=g,dc=x", t0 + Duration::from_secs(9)));
        assert!(!c.holds("cn=g,dc=x", t0 + Duration::from_secs(10)));
        assert!(!c.holds("cn=other,dc=x", t0));
        c.forget("cn=g,dc=x");
        assert!(!c.holds("cn=g,dc=x", t0), "forgotten");
        c.found("cn=g,ou=a,dc=x".into(), t0);
        c.found("ou=a,dc=x".into(), t0);
        c.found("cn=g,ou=ba,dc=x".into(), t0);
        c.forget("ou=a,dc=x");
        assert!(!c.holds("ou=a,dc=x", t0));
        assert!(!c.holds("cn=g,ou=a,dc=x", t0), "below a forgotten OU");
        assert!(
            c.holds("cn=g,ou=ba,dc=x", t0),
            "a sibling whose name ends alike stays"
        );
    }

    #[test]
    fn a_zero_window_reads_every_time() {
        let c = Confirmed::new(Duration::ZERO);
        let t0 = Instant::now();
        c.found("cn=g,dc=x".into(), t0);
        assert!(!c.holds("cn=g,dc=x", t0));
    }

    #[test]
    fn old_entries_are_pruned_when_many() {
        let c = Confirmed::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..PRUNE_ABOVE {
            c.found(format!("cn=g{i}"), t0);
        }
        let later = t0 + Duration::from_secs(2);
        c.found("cn=new".into(), later);
        assert_eq!(c.map().len(), 1, "only the fresh one stays");
        assert!(c.holds("cn=new", later));
    }
}
