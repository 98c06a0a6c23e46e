//! The writer thread's cache of the records of orders in dispatch.
//!
//! Only the writer thread writes orders, so the records it wrote last are the stored ones:
//! an update finds the current record here instead of reading and decoding its row. Only
//! orders that dispatch has not finished (Pending, AwaitingApproval) are kept — the ones
//! about to be updated, which their dispatcher holds in memory anyway; an order leaves the
//! cache when it is finished. Entries
//! put by a write are *staged* until the write succeeds (its savepoint released) and dropped
//! if it fails; the whole cache is emptied when a commit fails or rows are deleted (purge,
//! erasure), so a cached record is never one the file does not hold.

use autoprov_core::OrderId;
use autoprov_store::OrderRecord;
use std::collections::HashMap;

/// A cached record and how many sealed secrets its row counts.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub record: OrderRecord,
    pub secrets: i64,
}

#[derive(Debug, Default)]
pub(crate) struct OrderCache {
    kept: HashMap<String, Cached>,
    staged: Vec<(String, Option<Cached>)>,
}

impl OrderCache {
    /// A bound for safety: past it the cache starts again empty.
    const CAPACITY: usize = 250_000;

    pub fn get(&self, id: &OrderId) -> Option<Cached> {
        self.staged
            .iter()
            .rev()
            .find(|(k, _)| k == id.as_str())
            .map(|(_, c)| c.as_ref())
            .unwrap_or_else(|| self.kept.get(id.as_str()))
            .cloned()
    }

    /// Stages the record the current write stored (or the removal of a finished one).
    pub fn put(&mut self, record: OrderRecord, secrets: i64) {
        let id = record.id().as_str().to_owned();
        let entry = (!record.is_finished()).then_some(Cached { record, secrets });
        self.staged.push((id, entry));
    }

    /// The current write succeeded: its entries stand.
    pub fn keep(&mut self) {
        for (id, c) in self.staged.drain(..) {
            match c {
                Some(c) => {
                    if self.kept.len() >= Self::CAPACITY && !self.kept.contains_key(&id) {
                        self.kept.clear();
                    }
                    self.kept.insert(id, c);
                }
                None => {
                    self.kept.remove(&id);
                }
            }
        }
    }

    /// The current write failed: its entries go.
    pub fn discard(&mut self) {
        self.staged.clear();
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.kept.clear();
        self.staged.clear();
    }
}
