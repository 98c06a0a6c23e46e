//! The checkpointer: copies committed pages from the WAL into the database on its own
//! thread and connection, so that the writer thread's commits never wait for a checkpoint
//! (with SQLite's automatic checkpoint, every ~1,000 pages one commit would copy them and
//! fsync the database).

use rusqlite::Connection;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// How often the WAL is copied into the database. A page rewritten by many commits in this
/// interval is copied once.
const INTERVAL: Duration = Duration::from_millis(250);

/// The writer's automatic checkpoint, kept as a bound on the WAL should this thread fall
/// behind: 16,384 pages (64 MiB).
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every [`INTERVAL`] until `stop` is dropped.
/// PASSIVE never blocks the writer or the readers; what it cannot copy yet it copies next
/// time.
pub(crate) fn run(conn: Connection, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
