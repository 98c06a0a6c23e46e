//! Results in the reference system's CSV: round trip, RFC 4180 quoting, CRLF files.

use autoprov_core::results_csv::{self, HEADER};
use autoprov_core::{ChangeType, OrderId, ProvisioningResult, ProvisioningState, ResultsCsvError};
use proptest::prelude::*;

fn result(
    art: &str,
    state: ProvisioningState,
    message: Option<&str>,
    change: ChangeType,
) -> ProvisioningResult {
    ProvisioningResult {
        order_id: OrderId::new(format!("{art}:{change}")),
        assignment_id: Some(art.into()),
        provisioning_state: state,
        message: message.map(str::to_owned),
        change_type: change,
        owner_id: Some("u-7".into()),
        owner_type: Some("Directory_User".into()),
        resource_id: None,
        stable_id: None,
        ticket: None,
    }
}

fn write(results: &[ProvisioningResult]) -> String {
    let mut out = Vec::new();
    results_csv::write(&mut out, results).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn awkward_messages_round_trip_and_are_quoted_as_rfc_4180_says() {
    let messages = [
        "plain",
        "a, comma",
        "a \"quoted\" word",
        "two\nlines",
        "crlf\r\nlines",
        "unicodé — 名前 ✓",
        " leading and trailing spaces ",
        "=SUM(A1)",
    ];
    let results: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let state = if i % 2 == 0 {
                ProvisioningState::Executed
            } else {
                ProvisioningState::Errored
            };
            result(&format!("art-{i}"), state, Some(m), ChangeType::Modified)
        })
        .collect();
    let text = write(&results);
    assert!(
        text.starts_with(&format!("{}\r\n", HEADER.join(","))),
        "{text}"
    );
    assert!(
        text.contains("art-0,Executed,plain,Modified,u-7,Directory_User\r\n"),
        "{text}"
    );
    assert!(text.contains("\"a, comma\""), "{text}");
    assert!(text.contains("\"a \"\"quoted\"\" word\""), "{text}");
    assert!(text.contains("\"two\nlines\""), "{text}");
    assert_eq!(results_csv::read(text.as_bytes()).unwrap(), results);
}

#[test]
fn a_file_as_the_reference_system_writes_it_is_read() {
    // CRLF line endings, a byte-order mark, an empty message, a quoted multi-line message.
    let text = "\u{feff}AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType\r\n\
                23150,Executed,,Added,1a6d9b1e-66c3-4b5f-9d0a-4f3c8e2b7a01,16\r\n\
                23151,Errored,\"LDAP 19 (constraint):\r\n0000052D: password, \"\"complexity\"\"\",Modified,7c0e4a52,16\r\n\
                23152,Executed,Disabled instead of deleted,Deleted,0b9a8c7d,16\r\n";
    let results = results_csv::read(text.as_bytes()).unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].order_id, OrderId::from("23150:Added"));
    assert_eq!(results[0].provisioning_state, ProvisioningState::Executed);
    assert_eq!(results[0].message, None);
    assert_eq!(
        results[0].owner_type.as_ref().map(|t| t.as_str()),
        Some("16")
    );
    assert_eq!(results[1].provisioning_state, ProvisioningState::Errored);
    assert_eq!(
        results[1].message.as_deref(),
        Some("LDAP 19 (constraint):\r\n0000052D: password, \"complexity\"")
    );
    assert_eq!(results[1].change_type, ChangeType::Modified);
    assert_eq!(results[2].change_type, ChangeType::Deleted);
    assert_eq!(
        results[2].assignment_id.as_ref().map(|a| a.as_str()),
        Some("23152")
    );
    // Written back, the same rows (the byte-order mark aside).
    assert_eq!(write(&results), text.trim_start_matches('\u{feff}'));
}

#[test]
fn a_wrong_header_or_an_unknown_column_names_its_line_and_column() {
    let cases: [(&str, ResultsCsvError); 5] = [
        (
            "AssignmentId,State,Message,ChangeType,OwnerId,OwnerType\r\n",
            ResultsCsvError::WrongHeader {
                line: 1,
                column: 2,
                expected: "ProvisioningState",
                found: "State".into(),
            },
        ),
        (
            "AssignmentId,ProvisioningState,Message,ChangeType,OwnerId\r\n",
            ResultsCsvError::WrongHeader {
                line: 1,
                column: 6,
                expected: "OwnerType",
                found: String::new(),
            },
        ),
        (
            "AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType,Extra\r\n",
            ResultsCsvError::UnknownColumn {
                line: 1,
                column: 7,
                found: "Extra".into(),
            },
        ),
        (
            "AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType\r\n1,Executed,,Added,u,s\r\n2,Executed,,Added,u,s,x\r\n",
            ResultsCsvError::UnknownColumn {
                line: 3,
                column: 7,
                found: "x".into(),
            },
        ),
        (
            "",
            ResultsCsvError::WrongHeader {
                line: 1,
                column: 1,
                expected: "AssignmentId",
                found: String::new(),
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            results_csv::read(text.as_bytes()).unwrap_err(),
            expected,
            "{text:?}"
        );
    }
}

#[test]
fn bad_rows_are_typed_errors_naming_line_and_column() {
    let head = "AssignmentId,ProvisioningState,Message,ChangeType,OwnerId,OwnerType\n";
    let err = results_csv::read(
        format!("{head}1,Executed,,Added,u,s\n2,Pending,,Added,u,s\n").as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ResultsCsvError::InvalidValue { line: 3, column: 2, name: "ProvisioningState", found, .. } if found == "Pending"),
        "{err:?}"
    );
    let err = results_csv::read(format!("{head}1,Errored,,Renamed,u,s\n").as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            ResultsCsvError::InvalidValue {
                line: 2,
                column: 4,
                ..
            }
        ),
        "{err:?}"
    );
    // A record is named by its first line, whatever the line endings, line breaks inside
    // quoted fields and blank lines before it.
    let text = format!(
        "{}\r\n1,Errored,\"two\r\nlines\",Added,u,s\r\n\r\n2,Errored,,Renamed,u,s\r\n",
        HEADER.join(",")
    );
    let err = results_csv::read(text.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            ResultsCsvError::InvalidValue {
                line: 5,
                column: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let err = results_csv::read(format!("{head}1,Errored,,Added\n").as_bytes()).unwrap_err();
    assert_eq!(
        err,
        ResultsCsvError::MissingColumn {
            line: 2,
            column: 5,
            name: "OwnerId"
        }
    );
    // Numeric codes as the reference system stores them are accepted.
    let read =
        results_csv::read(format!("{head}1,8,,Added,u,s\n2,3,boom,Deleted,u,s\n").as_bytes())
            .unwrap();
    assert_eq!(read[0].provisioning_state, ProvisioningState::Executed);
    assert_eq!(read[1].provisioning_state, ProvisioningState::Errored);
}

#[test]
fn a_state_the_file_cannot_hold_is_refused_before_anything_is_written() {
    let results = [
        result("a", ProvisioningState::Executed, None, ChangeType::Added),
        result("b", ProvisioningState::Transmitted, None, ChangeType::Added),
    ];
    let mut out = Vec::new();
    let err = results_csv::write(&mut out, &results).unwrap_err();
    assert!(
        matches!(&err, ResultsCsvError::UnwritableState { index: 1, order_id, state: ProvisioningState::Transmitted } if order_id.as_str() == "b:Added"),
        "{err:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn a_result_with_no_assignment_gets_an_order_id_from_its_line() {
    let mut r = result(
        "x",
        ProvisioningState::Executed,
        Some("orphan removed"),
        ChangeType::Deleted,
    );
    r.assignment_id = None;
    r.owner_id = None;
    r.owner_type = None;
    let read = results_csv::read(write(&[r]).as_bytes()).unwrap();
    assert_eq!(read[0].order_id, OrderId::from("line-2:Deleted"));
    assert_eq!(read[0].assignment_id, None);
    assert_eq!(read[0].owner_id, None);
}

proptest! {
    #[test]
    fn any_message_round_trips(
        message in "\\PC{1,40}|[,\"\r\n a-z]{1,20}",
        art in "[A-Za-z0-9-]{1,12}",
        errored in any::<bool>(),
    ) {
        let state = if errored { ProvisioningState::Errored } else { ProvisioningState::Executed };
        let results = vec![result(&art, state, Some(&message), ChangeType::Added)];
        let back = results_csv::read(write(&results).as_bytes()).unwrap();
        prop_assert_eq!(back, results);
    }
}
