//! Group commit of a worker's writes under its claims: the intents and outcomes its orders
//! record at about the same time (a claimed batch starting its calls, calls ending together)
//! go to the store together, through [`ClaimStore::record_outcomes`] (one statement on
//! PostgreSQL), instead of one round trip each.
//!
//! Every order still waits for its own write before it goes on (its intent is recorded
//! before its call starts), and every write is still fenced by its own claim's token in the
//! statement that writes it: batching changes the round trips, not what is written or when
//! an order may act on it.

use crate::store::{Claim, ClaimStore, OrderUpdate, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A worker's writes waiting for a flush, and the flushes running.
pub(crate) struct Recorder {
    store: Arc<dyn ClaimStore>,
    state: Mutex<State>,
    /// Writes per store call at most.
    max_batch: usize,
    /// Store calls in flight at most (each on its own pooled connection): while they run,
    /// new writes queue and go together in the next call.
    max_flushes: usize,
}

#[derive(Default)]
struct State {
    queue: Vec<Queued>,
    flushes: usize,
}

struct Queued {
    claim: Claim,
    update: OrderUpdate,
    reply: oneshot::Sender<Result<Claim, StoreError>>,
}

/// A flush ended without answering a write (its task was stopped, or the store panicked):
/// nothing is known of the write, so it is reported temporary and the writer tries again
/// (fenced as ever: a write that did happen makes the retry a stale version, never a second
/// write).
#[derive(Debug, thiserror::Error)]
#[error("the batched write was not answered")]
struct Unanswered;

impl Recorder {
    pub(crate) fn new(store: Arc<dyn ClaimStore>, max_batch: usize, max_flushes: usize) -> Self {
        Self {
            store,
            state: Mutex::new(State::default()),
            max_batch: max_batch.max(1),
            max_flushes: max_flushes.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `update` under `claim` ([`ClaimStore::record_outcome`]'s answer), together with
    /// whatever other writes of this worker are waiting.
    pub(crate) async fn record(
        self: &Arc<Self>,
        claim: Claim,
        update: OrderUpdate,
    ) -> Result<Claim, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start_flush = {
            let mut state = self.state();
            state.queue.push(Queued {
                claim,
                update,
                reply,
            });
            let start = state.flushes < self.max_flushes;
            if start {
                state.flushes += 1;
            }
            start
        };
        if start_flush {
            // Its own task: a flush answers every write it took even if this order's task
            // is dropped meanwhile.
            tokio::spawn(Arc::clone(self).flush());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("record outcome", Unanswered)))
    }

    /// Writes queued batches until the queue is empty.
    async fn flush(self: Arc<Self>) {
        let mut running = Running {
            recorder: &self,
            armed: true,
        };
        // Let the orders that are ready to write (a claimed batch starting, calls ending
        // together) queue their writes first.
        tokio::task::yield_now().await;
        loop {
            let batch: Vec<Queued> = {
                let mut state = self.state();
                if state.queue.is_empty() {
                    // Under the lock: a write queued after this sees the flush gone and
                    // starts one.
                    state.flushes -= 1;
                    running.armed = false;
                    return;
                }
                let n = state.queue.len().min(self.max_batch);
                state.queue.drain(..n).collect()
            };
            let mut replies = Vec::with_capacity(batch.len());
            let writes = batch
                .into_iter()
                .map(|q| {
                    replies.push(q.reply);
                    (q.claim, q.update)
                })
                .collect();
            let results = self.store.record_outcomes(writes).await;
            for (reply, result) in replies.into_iter().zip(results) {
                // The order's task may be gone (shut down): nothing waits for the answer.
                let _ = reply.send(result);
            }
        }
    }
}

/// Ends a flush that unwound (a panic in the store): it no longer counts, and the writes it
/// had not taken yet are answered as unanswered (their writers retry, starting a new flush).
struct Running<'a> {
    recorder: &'a Recorder,
    /// False once the flush ended normally (and stopped counting itself).
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.recorder.state();
            state.flushes -= 1;
            state.queue.clear();
        }
    }
}
