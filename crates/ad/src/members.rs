//! Membership writes to one group, coalesced ("group commit"): while one write to a group's
//! member attribute is in flight, the orders that want to add (or remove) a member of the same
//! group wait, and the next of them writes all their values in one modify. A mass onboarding
//! adds thousands of accounts to the same few groups; the directory pays its per-write cost
//! (a transaction, the group's replication metadata) once per batch instead of once per
//! member. Nothing waits for a batch to fill: a write goes out as soon as the one before it on
//! the group is done, so a lone order is never slowed.
//!
//! The outcome stays per order. A batch the directory refuses is not attributed to anyone:
//! each value is then written alone and each order gets its own result (a missing member, a
//! missing group, a refused write name that order only). A batch that times out or loses its
//! connection fails every order in it alike, with that temporary failure. Membership writes
//! are value-level and idempotent (permissive modify, or "already a member" taken as
//! success), so writing a value again after a batch whose outcome is unknown is safe. An order
//! that is cancelled while it leads a batch hands the batch on; its waiters that were already
//! in flight write their values alone.

use crate::errors::LdapFailure;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// A value waiting for the write in flight on its group.
struct Waiter {
    value: Vec<u8>,
    tx: oneshot::Sender<Turn>,
}

/// What a waiter is told.
enum Turn {
    /// Its value was written (or failed) in a batch led by another order.
    Done(Result<(), LdapFailure>),
    /// It leads the next batch: its own value with these.
    Lead(Vec<Waiter>),
}

/// Per group (and direction): the values waiting behind the write in flight. A group is in
/// the map exactly while a write to it is in flight.
#[derive(Default)]
pub(crate) struct MemberWrites {
    /// At most this many values per write (`MembershipBatch`; 1 writes each alone).
    max: usize,
    queues: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl std::fmt::Debug for MemberWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberWrites")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl MemberWrites {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            queues: Mutex::default(),
        }
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiter>>> {
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `value` to the group named by `key` (one key per group, attribute and
    /// direction), alone or in a batch with the values of other orders: `send` writes a list of
    /// values in one modify. Returns this value's own outcome.
    pub(crate) async fn write<F, Fut>(
        &self,
        key: &str,
        value: Vec<u8>,
        send: F,
    ) -> Result<(), LdapFailure>
    where
        F: Fn(Vec<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<(), LdapFailure>>,
    {
        if self.max == 1 {
            return send(vec![value]).await;
        }
        let rx = {
            let mut queues = self.queues();
            match queues.get_mut(key) {
                None => {
                    queues.insert(key.to_owned(), Vec::new());
                    None
                }
                Some(waiting) => {
                    let (tx, rx) = oneshot::channel();
                    waiting.push(Waiter {
                        value: value.clone(),
                        tx,
                    });
                    Some(rx)
                }
            }
        };
        let others = match rx {
            None => Vec::new(),
            Some(rx) => match rx.await {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead(others)) => others,
                // The order leading the batch went away (cancelled) before answering: the
                // value may or may not be written; writing it alone is safe (idempotent).
                Err(_) => return send(vec![value]).await,
            },
        };
        // Handed on when dropped: after the write below, or when this order is cancelled.
        let lead = Lead { writes: self, key };
        let result = if others.is_empty() {
            send(vec![value]).await
        } else {
            let mut values = Vec::with_capacity(others.len() + 1);
            values.push(value.clone());
            values.extend(others.iter().map(|w| w.value.clone()));
            match send(values).await {
                Ok(()) => {
                    for w in others {
                        let _ = w.tx.send(Turn::Done(Ok(())));
                    }
                    Ok(())
                }
                // The directory refused the write: which value it refused is not said, so each
                // value is written alone and each order gets its own outcome.
                Err(LdapFailure::Result { .. }) => {
                    for w in others {
                        let result = send(vec![w.value]).await;
                        let _ = w.tx.send(Turn::Done(result));
                    }
                    send(vec![value]).await
                }
                // A timeout or a broken connection concerns every value alike (temporary: each
                // order is retried); writing them one by one against a server that does not
                // answer would make the last order wait for all the others' deadlines.
                Err(failure) => {
                    for w in others {
                        let _ = w.tx.send(Turn::Done(Err(failure.clone())));
                    }
                    Err(failure)
                }
            }
        };
        drop(lead);
        result
    }
}

/// The lead of a group's writes: handed on to the next waiters when the write is done, or
/// when the leading order is dropped mid-write.
struct Lead<'a> {
    writes: &'a MemberWrites,
    key: &'a str,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut queues = self.writes.queues();
        loop {
            let Some(waiting) = queues.get_mut(self.key) else {
                return;
            };
            if waiting.is_empty() {
                queues.remove(self.key);
                return;
            }
            let take = waiting.len().min(self.writes.max);
            let mut batch: Vec<Waiter> = waiting.drain(..take).collect();
            let first = batch.remove(0);
            match first.tx.send(Turn::Lead(batch)) {
                Ok(()) => return,
                // That order is gone: the others go back to the front of the line.
                Err(Turn::Lead(batch)) => {
                    waiting.splice(0..0, batch);
                }
                Err(Turn::Done(_)) => unreachable!("a lead was sent"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A fake group: records each write's values; fails any write that holds `bad`.
    #[derive(Default)]
    struct Group {
        writes: Mutex<Vec<Vec<Vec<u8>>>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Group {
        async fn send(&self, values: Vec<Vec<u8>>) -> Result<(), LdapFailure> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let bad = values.iter().any(|v| v.as_slice() == b"bad");
            self.writes.lock().unwrap().push(values);
            if bad {
                Err(LdapFailure::Result {
                    rc: 32,
                    text: "no such object".into(),
                    matched: String::new(),
                })
            } else {
                Ok(())
            }
        }
    }

    async fn many(max: usize, values: &[&str]) -> (Vec<Result<(), LdapFailure>>, Arc<Group>) {
        let writes = Arc::new(MemberWrites::new(max));
        let group = Arc::new(Group::default());
        let tasks: Vec<_> = values
            .iter()
            .map(|v| {
                let (writes, group) = (writes.clone(), group.clone());
                let v = v.as_bytes().to_vec();
                tokio::spawn(async move {
                    writes
                        .write("g", v, |values| {
                            let group = group.clone();
                            async move { group.send(values).await }
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert!(writes.queues().is_empty(), "every lead was handed back");
        (results, group)
    }

    fn written(group: &Group) -> Vec<String> {
        let mut all: Vec<String> = group
            .writes
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|v| String::from_utf8(v.clone()).unwrap())
            .collect();
        all.sort();
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_to_one_group_are_batched_one_write_at_a_time() {
        let values: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let (results, group) = many(16, &refs).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(written(&group), values, "every value written once");
        let writes = group.writes.lock().unwrap().len();
        assert!(writes < 40, "batched: {writes} writes for 40 values");
        assert!(group.writes.lock().unwrap().iter().all(|w| w.len() <= 16));
        assert_eq!(
            group.most_in_flight.load(Ordering::SeqCst),
            1,
            "one write at a time per group"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_written_value_by_value_and_only_the_bad_value_fails() {
        let values = ["a", "b", "bad", "c", "d", "e", "f", "g"];
        let (results, group) = many(64, &values).await;
        for (v, r) in values.iter().zip(&results) {
            assert_eq!(r.is_err(), *v == "bad", "{v}: {r:?}");
        }
        // Each good value is written (in a batch or alone, maybe both: idempotent).
        let all = written(&group);
        for v in values {
            assert!(all.iter().any(|w| w == v), "{v} written");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_times_out_fails_every_order_in_it_at_once() {
        let writes = Arc::new(MemberWrites::new(64));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (writes, calls) = (writes.clone(), calls.clone());
                tokio::spawn(async move {
                    writes
                        .write("g", vec![i], |_| {
                            let calls = calls.clone();
                            async move {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Err(LdapFailure::Timeout("no answer".into()))
                            }
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert!(matches!(r, Err(LdapFailure::Timeout(_))), "{r:?}");
        }
        // No value-by-value retries: one write per batch.
        assert!(calls.load(Ordering::SeqCst) < 12, "{calls:?}");
        assert!(writes.queues().is_empty());
    }

    #[tokio::test]
    async fn batch_of_one_writes_every_value_alone() {
        let (results, group) = many(1, &["a", "b", "c"]).await;
        assert!(results.iter().all(Result::is_ok));
        assert!(group.writes.lock().unwrap().iter().all(|w| w.len() == 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_hands_the_group_on() {
        let writes = Arc::new(MemberWrites::new(8));
        let group = Arc::new(Group::default());
        let send = |group: Arc<Group>| {
            move |values| {
                let group = group.clone();
                async move { group.send(values).await }
            }
        };
        // The leader's write never finishes: it is cancelled while in flight.
        let (w, g) = (writes.clone(), group.clone());
        let leader = tokio::spawn(async move {
            w.write("g", b"slow".to_vec(), |_| async {
                std::future::pending::<Result<(), LdapFailure>>().await
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiters: Vec<_> = ["x", "y"]
            .iter()
            .map(|v| {
                let (w, g) = (writes.clone(), g.clone());
                let v = v.as_bytes().to_vec();
                tokio::spawn(async move { w.write("g", v, send(g)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        for t in waiters {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("the waiters are not stranded")
                .unwrap()
                .unwrap();
        }
        assert_eq!(written(&group), ["x", "y"]);
        assert!(writes.queues().is_empty());
    }
}
