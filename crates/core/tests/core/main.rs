//! Integration tests of autoprov-core, one binary (STYLE: one `tests/` binary per crate).
//!
//! - `golden`: a realistic orders file and a results file, parsed, checked field by field and
//!   written back byte for byte as the checked-in expected files.
//! - `malformed`: broken files yield a typed `OrderFileError` naming the JSON path; fuzzed input
//!   never panics.
//! - `roundtrip`: generated orders survive serialize → parse unchanged.
//! - `secrets`: a secret never reaches `Debug`, `Display` or JSON.
//! - `state_machine`: the provisioning state machine of SPEC §4 under random event sequences.
//! - `requests`: assignment requests with 0–3 approval steps under random operations.
//! - `reference_files`: orders files as the reference system writes them (`fixtures/`).
//! - `results_csv`: results in the reference system's CSV, written and read.

mod golden;
mod malformed;
mod reference_files;
mod requests;
mod results_csv;
mod roundtrip;
mod secrets;
mod state_machine;
mod strategies;

use std::path::PathBuf;

/// A file under `tests/data`.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

/// The text of a file under `tests/data`.
pub fn read_data(name: &str) -> String {
    let path = data_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Compares `actual` with the checked-in golden file byte for byte. With `AUTOPROV_BLESS=1` the
/// file is rewritten instead, so a deliberate format change is one command and a reviewed diff.
pub fn assert_golden(name: &str, actual: &str) {
    if std::env::var_os("AUTOPROV_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(data_path(name), actual).expect("writing the golden file");
        return;
    }
    let expected = read_data(name);
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .map_or_else(
                || expected.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{name} differs from the output, first at line {line} \
             (rerun with AUTOPROV_BLESS=1 to accept the new output):\n{actual}"
        );
    }
}
