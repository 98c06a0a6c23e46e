//! The file: its lock, its pragmas and its versioned schema migrations.

use crate::OpenError;
use rusqlite::{Connection, OpenFlags, ffi};
use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema migrations, in order: migration `i` takes a file from schema version `i` to
/// `i + 1` (`PRAGMA user_version`). Released migrations never change; a schema change is a
/// new script at the end (and `tests/fixtures/schema-v1.sqlite` must still open and resume).
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_found_decisions.sql"),
    include_str!("../migrations/0003_owned_values.sql"),
];

/// The schema version this version writes.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn io_error(path: &Path, operation: &'static str, e: std::io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_owned(),
        operation,
        source: Arc::new(e),
    }
}

/// Takes the OS lock of the sidecar lock file, held as long as the returned file is open.
pub(crate) fn lock(path: &Path) -> Result<File, OpenError> {
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, "opening the lock file", e))?;
    // A lock the same process just released can still be held for a moment by a child being
    // spawned (between its fork and its exec it shares the open file): look again a few times
    // before refusing. A store another process uses stays refused.
    for attempt in 0..LOCK_ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempt + 1 < LOCK_ATTEMPTS => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error(&lock_path, "locking the lock file", e));
            }
        }
    }
    Err(OpenError::InUse {
        path: path.to_owned(),
        lock_path,
    })
}

/// How many times [`lock`] tries, 50 ms apart.
const LOCK_ATTEMPTS: u32 = 10;

/// Refuses a file that is not empty and does not start with the SQLite header, before
/// SQLite sees it.
pub(crate) fn check_header(path: &Path) -> Result<(), OpenError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, "reading the header", e)),
    };
    let mut header = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut header)
        .map_err(|e| io_error(path, "reading the header", e))?;
    if header.is_empty() || header == SQLITE_HEADER {
        return Ok(());
    }
    Err(OpenError::NotADatabase {
        path: path.to_owned(),
    })
}

/// Maps an SQLite error met while opening to the typed refusal it means.
pub(crate) fn open_error(path: &Path, operation: &'static str, e: rusqlite::Error) -> OpenError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => OpenError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => OpenError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        _ => OpenError::Sqlite {
            path: path.to_owned(),
            operation,
            source: Arc::new(e),
        },
    }
}

/// Settings every connection needs.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;",
    )
}

/// Opens the write connection: WAL, FULL synchronous commits, secure delete, foreign keys;
/// checks the file and applies the migrations it lacks.
pub(crate) fn open_writer(path: &Path, check: bool) -> Result<Connection, OpenError> {
    let err = |op| move |e| open_error(path, op, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("opening"))?;
    configure(&conn).map_err(err("configuring"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Sqlite {
            path: path.to_owned(),
            operation: "switching to WAL",
            source: Arc::new(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_CANTOPEN),
                Some(format!("journal mode is {mode}")),
            )),
        });
    }
    if check {
        let result: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(err("checking"))?;
        if result != "ok" {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                detail: result,
            });
        }
    }
    migrate(path, &conn)?;
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {};",
        crate::checkpoint::WRITER_AUTOCHECKPOINT_PAGES
    ))
    .map_err(err("configuring"))?;
    Ok(conn)
}

/// Opens the checkpointer's connection (it writes the database file, so it fsyncs it).
pub(crate) fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
    Ok(conn)
}

/// Applies the migrations the file lacks, each in its own transaction with its version.
fn migrate(path: &Path, conn: &Connection) -> Result<(), OpenError> {
    let err = |op| move |e| open_error(path, op, e);
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = i + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {to};\nCOMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            open_error(path, "migrating the schema", e)
        })?;
    }
    Ok(())
}

/// Opens a read connection (WAL lets readers run beside the writer).
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}
