//! Provisioning results in the reference system's CSV (SPEC §6, REFERENCE-SYSTEM "Orders files
//! and results").
//!
//! The file has the header `AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType`
//! and one row per order; fields are quoted as RFC 4180 says (a field holding a comma, a quote
//! or a line break is quoted, quotes doubled). States written there are `Executed` or
//! `Errored`. autoprov writes CRLF line endings, as the reference system does, and reads CRLF
//! or LF, with or without a UTF-8 byte-order mark.
//!
//! The CSV carries less than a [`ProvisioningResult`]: read back, a result's order id is
//! derived as an orders file without `OrderId` derives it (`<AssignmentId>:<ChangeType>`, or
//! `line-<n>:<ChangeType>` for a row with no assignment), an empty field is none, and what the
//! connector learned (target key, stable id, ticket) is not in the file.
//!
//! Core does no I/O of its own: the functions take any [`std::io::Write`] / [`std::io::Read`].
//!
//! ```
//! use autoprov_core::{results_csv, ChangeType, ProvisioningResult, ProvisioningState};
//! let result = ProvisioningResult {
//!     order_id: "art-42:Added".into(), assignment_id: Some("art-42".into()),
//!     provisioning_state: ProvisioningState::Errored,
//!     message: Some("0000052D: weak password, \"try again\"".into()),
//!     change_type: ChangeType::Added, owner_id: Some("u-7".into()),
//!     owner_type: Some("Directory_User".into()),
//!     resource_id: None, stable_id: None, ticket: None,
//! };
//! let mut out = Vec::new();
//! results_csv::write(&mut out, &[result.clone()]).unwrap();
//! let text = String::from_utf8(out.clone()).unwrap();
//! assert!(text.starts_with("AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType\r\n"));
//! assert!(text.contains(r#""0000052D: weak password, ""try again""""#));
//! assert_eq!(results_csv::read(out.as_slice()).unwrap(), vec![result]);
//! ```

use crate::ids::{AssignmentId, EntityTypeId, OrderId, OwnerId};
use crate::order::{ChangeType, ProvisioningResult};
use crate::states::ProvisioningState;
use std::io::{Read, Write};

/// The header of a results file, column by column.
pub const HEADER: [&str; 6] = [
    "AssignmentId",
    "ProvisioningState",
    "Message",
    "ChangeType",
    "OwnerId",
    "OwnerType",
];

/// A results CSV that cannot be written or read.
///
/// Lines and columns count from 1; a line is where its record starts (a quoted field may span
/// several lines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsCsvError {
    /// The writer or reader failed, or the text is not valid CSV or UTF-8.
    #[error("results CSV, line {line}: {message}")]
    Io {
        /// The line, when known (0 when not).
        line: u64,
        /// What failed.
        message: String,
    },
    /// A header column is not the expected one (or is missing).
    #[error(
        "results CSV, line {line}, column {column}: expected header `{expected}`, found `{found}`"
    )]
    WrongHeader {
        /// The header's line.
        line: u64,
        /// The column.
        column: usize,
        /// The expected column name.
        expected: &'static str,
        /// What was there (empty when the column is missing).
        found: String,
    },
    /// A row or the header has a column beyond the six of the format.
    #[error("results CSV, line {line}, column {column}: unknown column `{found}`")]
    UnknownColumn {
        /// The line.
        line: u64,
        /// The column.
        column: usize,
        /// What was there.
        found: String,
    },
    /// A row has fewer columns than the header.
    #[error("results CSV, line {line}: missing column {column} (`{name}`)")]
    MissingColumn {
        /// The line.
        line: u64,
        /// The first missing column.
        column: usize,
        /// Its name.
        name: &'static str,
    },
    /// A field holds a value the format does not allow.
    #[error("results CSV, line {line}, column {column} (`{name}`): {reason}, found `{found}`")]
    InvalidValue {
        /// The line.
        line: u64,
        /// The column.
        column: usize,
        /// Its name.
        name: &'static str,
        /// What was there.
        found: String,
        /// What is allowed.
        reason: String,
    },
    /// A result in a state the results file cannot hold (only Executed and Errored).
    #[error(
        "result of order {order_id} (index {index}) is {state}: a results CSV holds only \
         Executed or Errored"
    )]
    UnwritableState {
        /// Its index in the slice.
        index: usize,
        /// Its order.
        order_id: OrderId,
        /// Its state.
        state: ProvisioningState,
    },
}

/// Whether the results file may hold a state.
fn writable(state: ProvisioningState) -> bool {
    matches!(
        state,
        ProvisioningState::Executed | ProvisioningState::Errored
    )
}

/// Writes `results` as the reference system's results CSV: the header, then one row per
/// result, CRLF line endings. Nothing is written when a result is in a state the file cannot
/// hold (see [`ResultsCsvError::UnwritableState`]).
pub fn write<W: Write>(writer: W, results: &[ProvisioningResult]) -> Result<(), ResultsCsvError> {
    if let Some((index, r)) = results
        .iter()
        .enumerate()
        .find(|(_, r)| !writable(r.provisioning_state))
    {
        return Err(ResultsCsvError::UnwritableState {
            index,
            order_id: r.order_id.clone(),
            state: r.provisioning_state,
        });
    }
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(writer);
    let io = |e: csv::Error| ResultsCsvError::Io {
        line: 0,
        message: e.to_string(),
    };
    csv.write_record(HEADER).map_err(io)?;
    for r in results {
        let change_type = r.change_type.to_string();
        csv.write_record([
            r.assignment_id.as_ref().map_or("", AssignmentId::as_str),
            r.provisioning_state.name(),
            r.message.as_deref().unwrap_or(""),
            change_type.as_str(),
            r.owner_id.as_ref().map_or("", OwnerId::as_str),
            r.owner_type.as_ref().map_or("", EntityTypeId::as_str),
        ])
        .map_err(io)?;
    }
    csv.flush().map_err(|e| ResultsCsvError::Io {
        line: 0,
        message: e.to_string(),
    })
}

/// Reads a results CSV as the reference system (or [`write()`]) writes it. The header must be
/// exactly [`HEADER`]; every row has its six columns; states are `Executed` or `Errored` (by
/// name or numeric code), change types `Added`, `Modified` or `Deleted`.
///
/// The file is read whole before it is parsed (a results file is one row per order), so that
/// errors name the line where a record starts whatever the line endings.
pub fn read<R: Read>(mut reader: R) -> Result<Vec<ProvisioningResult>, ResultsCsvError> {
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .map_err(|e| ResultsCsvError::Io {
            line: 0,
            message: e.to_string(),
        })?;
    // The parser reports where it started looking for a record, which may be on the line
    // break (or blank lines) before it: skip those to the record's first line.
    let line_of = |position: Option<&csv::Position>| {
        let Some(position) = position else { return 0 };
        let start = usize::try_from(position.byte()).map_or(data.len(), |b| b.min(data.len()));
        let before = data[..start].iter().filter(|&&b| b == b'\n').count();
        let breaks = data[start..]
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .filter(|&&b| b == b'\n')
            .count();
        u64::try_from(1 + before + breaks).unwrap_or(u64::MAX)
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data.as_slice());
    let mut results = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut header_seen = false;
    loop {
        let more = csv
            .read_record(&mut record)
            .map_err(|e| ResultsCsvError::Io {
                line: line_of(e.position()),
                message: e.to_string(),
            })?;
        if !more {
            break;
        }
        let line = line_of(record.position());
        check_width(&record, line)?;
        if !header_seen {
            check_header(&record, line)?;
            header_seen = true;
            continue;
        }
        results.push(row(&record, line)?);
    }
    if !header_seen {
        return Err(ResultsCsvError::WrongHeader {
            line: 1,
            column: 1,
            expected: HEADER[0],
            found: String::new(),
        });
    }
    Ok(results)
}

fn check_width(record: &csv::StringRecord, line: u64) -> Result<(), ResultsCsvError> {
    if let Some(extra) = record.get(HEADER.len()) {
        return Err(ResultsCsvError::UnknownColumn {
            line,
            column: HEADER.len() + 1,
            found: extra.to_owned(),
        });
    }
    Ok(())
}

fn check_header(record: &csv::StringRecord, line: u64) -> Result<(), ResultsCsvError> {
    for (i, expected) in HEADER.iter().enumerate() {
        let found = record.get(i).unwrap_or("");
        if found != *expected {
            return Err(ResultsCsvError::WrongHeader {
                line,
                column: i + 1,
                expected,
                found: found.to_owned(),
            });
        }
    }
    Ok(())
}

fn row(record: &csv::StringRecord, line: u64) -> Result<ProvisioningResult, ResultsCsvError> {
    if record.len() < HEADER.len() {
        return Err(ResultsCsvError::MissingColumn {
            line,
            column: record.len() + 1,
            name: HEADER[record.len()],
        });
    }
    let field = |i: usize| record.get(i).filter(|s| !s.is_empty());
    let invalid = |i: usize, reason: &str| ResultsCsvError::InvalidValue {
        line,
        column: i + 1,
        name: HEADER[i],
        found: record.get(i).unwrap_or("").to_owned(),
        reason: reason.to_owned(),
    };
    let state_text = record.get(1).unwrap_or("");
    let state = ProvisioningState::from_name(state_text)
        .or_else(|| {
            state_text
                .parse::<u16>()
                .ok()
                .and_then(ProvisioningState::from_code)
        })
        .filter(|s| writable(*s))
        .ok_or_else(|| invalid(1, "expected `Executed` or `Errored`"))?;
    let change_type = match record.get(3).unwrap_or("") {
        "Added" => ChangeType::Added,
        "Modified" => ChangeType::Modified,
        "Deleted" => ChangeType::Deleted,
        _ => return Err(invalid(3, "expected `Added`, `Modified` or `Deleted`")),
    };
    let assignment_id = field(0).map(AssignmentId::from);
    let order_id = match &assignment_id {
        Some(art) => OrderId::new(format!("{art}:{change_type}")),
        None => OrderId::new(format!("line-{line}:{change_type}")),
    };
    Ok(ProvisioningResult {
        order_id,
        assignment_id,
        provisioning_state: state,
        message: field(2).map(str::to_owned),
        change_type,
        owner_id: field(4).map(OwnerId::from),
        owner_type: field(5).map(EntityTypeId::from),
        resource_id: None,
        stable_id: None,
        ticket: None,
    })
}
