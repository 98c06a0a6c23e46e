//! Malformed orders files: a typed error that names the JSON path and what was expected, never
//! a panic.

use crate::read_data;
use crate::strategies::{arb_json, interesting_key};
use autoprov_core::{OrderFileError, ProvisioningOrdersList};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A valid order at index `i` of a generated file, in the reference system's shape.
fn order(i: usize) -> Value {
    json!({
        "OrderId": format!("ord-{i}"),
        "AssignedResourceTypeId": format!("art-{i}"),
        "ChangeType": "Added",
        "WorkflowInstanceId": null,
        "Owner": {"Id": format!("u-{i}"), "Identifier": format!("user{i}"), "Department": "Sales"},
        "ResourceType": {
            "Id": "rt-1",
            "Identifier": "AD_Entry_NominativeUser",
            "SourceEntityType": {"Id": "et-1", "Identifier": "Directory_User"},
            "TargetEntityType": {"Id": "et-2", "Identifier": "AD_Entry"}
        },
        "Changes": {
            "sAMAccountName": format!("user{i}"),
            "userAccountControl": 512,
            "parentdn": {"dn": "OU=Sales,DC=example,DC=test"},
            "memberOf_add": [{"dn": "CN=Sales,OU=Groups,DC=example,DC=test"}],
            "memberOf_remove": []
        }
    })
}

/// A file of three valid orders, with `edit` applied to the second one (index 1).
fn file_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut orders = vec![order(0), order(1), order(2)];
    edit(orders[1].as_object_mut().unwrap());
    json!({ "ProvisioningOrdersList": orders }).to_string()
}

fn changes(o: &mut serde_json::Map<String, Value>) -> &mut serde_json::Map<String, Value> {
    o.get_mut("Changes").unwrap().as_object_mut().unwrap()
}

#[derive(Debug)]
enum Expect {
    /// `Malformed` at exactly this path, with a message containing this text.
    Malformed {
        path: &'static str,
        message: &'static str,
    },
    /// `Malformed` at a path starting with this prefix, with a message containing this text.
    MalformedUnder {
        prefix: &'static str,
        message: &'static str,
    },
    /// `InvalidOrder` at this index, with a reason containing this text.
    Invalid { index: usize, reason: &'static str },
    /// `DuplicateOrderId` of this id at these indices.
    Duplicate {
        order_id: &'static str,
        first: usize,
        second: usize,
    },
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    use Expect::*;
    vec![
        (
            "not JSON",
            "ProvisioningOrdersList: - jdoe".into(),
            Malformed {
                path: ".",
                message: "expected value at line 1 column 1",
            },
        ),
        (
            "empty file",
            String::new(),
            Malformed {
                path: ".",
                message: "EOF while parsing",
            },
        ),
        (
            "truncated file",
            r#"{"ProvisioningOrdersList": [{"OrderId": "ord-0", "ChangeType": "Add"#.into(),
            Malformed {
                path: "ProvisioningOrdersList[0].ChangeType",
                message: "EOF while parsing a string at line 1 column 67",
            },
        ),
        (
            "trailing data after the root object",
            format!("{} {{\"ProvisioningOrdersList\": []}}", file_with(|_| {})),
            Malformed {
                path: ".",
                message: "trailing characters",
            },
        ),
        (
            "wrong root key",
            json!({ "ProvisioningOrders": [order(0)] }).to_string(),
            Malformed {
                path: ".",
                message: "unknown field `ProvisioningOrders`, expected `ProvisioningOrdersList`",
            },
        ),
        (
            "no root key",
            "{}".into(),
            Malformed {
                path: ".",
                message: "missing field `ProvisioningOrdersList`",
            },
        ),
        (
            "root is an array",
            json!([order(0)]).to_string(),
            Malformed {
                path: ".",
                message: "expected an object `{\"ProvisioningOrdersList\": [...]}`",
            },
        ),
        (
            "list is null",
            r#"{"ProvisioningOrdersList": null}"#.into(),
            Malformed {
                path: "ProvisioningOrdersList",
                message: "expected a sequence",
            },
        ),
        (
            "an order is not an object",
            file_with(|o| {
                o.clear();
            })
            .replace("{}", "\"ord-1\""),
            Malformed {
                path: "ProvisioningOrdersList[1]",
                message: "expected an order object",
            },
        ),
        (
            "ChangeType Renamed",
            file_with(|o| {
                o.insert("ChangeType".into(), json!("Renamed"));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].ChangeType",
                message: "unknown variant `Renamed`, expected one of `Added`, `Modified`, `Deleted`",
            },
        ),
        (
            "ChangeType missing",
            file_with(|o| {
                o.remove("ChangeType");
            }),
            Malformed {
                path: "ProvisioningOrdersList[1]",
                message: "missing field `ChangeType`",
            },
        ),
        (
            "memberOf_add is a string",
            file_with(|o| {
                changes(o).insert("memberOf_add".into(), json!("CN=Sales,OU=Groups"));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`memberOf_add`: expected an array of references, found string",
            },
        ),
        (
            "memberOf_remove holds a string",
            file_with(|o| {
                changes(o).insert("memberOf_remove".into(), json!(["CN=Sales"]));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`memberOf_remove`: [0]: expected a reference object, found a string",
            },
        ),
        (
            "a multi-valued navigation replaced whole",
            file_with(|o| {
                changes(o).insert("memberOf".into(), json!([{"dn": "CN=Sales"}]));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`memberOf`: a multi-valued navigation is changed through `memberOf_add`",
            },
        ),
        (
            "reference with a number value",
            file_with(|o| {
                changes(o).insert("parentdn".into(), json!({"dn": 5}));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`parentdn`: reference key `dn`: expected a string, found a number",
            },
        ),
        (
            "owner property reference with a bool value",
            file_with(|o| {
                o["Owner"]["Manager"] = json!({"dn": true});
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Owner",
                message: "`Manager`: reference key `dn`: expected a string, found a boolean",
            },
        ),
        (
            "owner without Id",
            file_with(|o| {
                o["Owner"].as_object_mut().unwrap().remove("Id");
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Owner",
                message: "missing field `Id`",
            },
        ),
        (
            "missing ResourceType",
            file_with(|o| {
                o.remove("ResourceType");
            }),
            Malformed {
                path: "ProvisioningOrdersList[1]",
                message: "missing field `ResourceType`",
            },
        ),
        (
            "ResourceType without TargetEntityType",
            file_with(|o| {
                o["ResourceType"]
                    .as_object_mut()
                    .unwrap()
                    .remove("TargetEntityType");
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].ResourceType",
                message: "missing field `TargetEntityType`",
            },
        ),
        (
            "invalid base64",
            file_with(|o| {
                changes(o).insert("thumbnailPhoto".into(), json!({"$base64": "not base64!"}));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`thumbnailPhoto`: invalid base64 in $base64",
            },
        ),
        (
            "a secret that is not a string",
            file_with(|o| {
                changes(o).insert("password".into(), json!({"$secret": 1234}));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`password`: expected a string in $secret",
            },
        ),
        (
            "a tagged binary with another key",
            file_with(|o| {
                changes(o).insert(
                    "thumbnailPhoto".into(),
                    json!({"$base64": "AQL/", "dn": "CN=x"}),
                );
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`thumbnailPhoto`: expected only `$base64` in a binary value, found `dn` too",
            },
        ),
        (
            "NotBefore is not a date",
            file_with(|o| {
                o.insert("NotBefore".into(), json!("next Tuesday"));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].NotBefore",
                message: "input contains invalid characters",
            },
        ),
        (
            "DependsOn is a string",
            file_with(|o| {
                o.insert("DependsOn".into(), json!("ord-0"));
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].DependsOn",
                message: "expected a sequence",
            },
        ),
        (
            "integer overflow",
            file_with(|o| {
                o["Changes"]["userAccountControl"] = json!(9_223_372_036_854_775_808_u64);
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`userAccountControl`: expected an integer that fits in 64 bits, found 9223372036854775808",
            },
        ),
        (
            "integer overflow beyond u64",
            file_with(|o| {
                o["Changes"]["userAccountControl"] = json!(0);
            })
            .replace(
                "\"userAccountControl\":0",
                "\"userAccountControl\":123456789012345678901234567890",
            ),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`userAccountControl`: expected an integer that fits in 64 bits",
            },
        ),
        (
            "a fraction where an integer is expected",
            file_with(|o| {
                o["Changes"]["userAccountControl"] = json!(512.5);
            }),
            Malformed {
                path: "ProvisioningOrdersList[1].Changes",
                message: "`userAccountControl`: expected an integer that fits in 64 bits, found 512.5",
            },
        ),
        (
            "nesting deeper than the parser allows",
            file_with(|o| {
                o["Changes"]["deep"] = json!("DEEP");
            })
            .replace(
                "\"DEEP\"",
                &format!("{}{}", "[".repeat(4096), "]".repeat(4096)),
            ),
            MalformedUnder {
                prefix: "ProvisioningOrdersList[1].Changes.deep[0][0]",
                message: "recursion limit exceeded",
            },
        ),
        (
            "Modified without Resource",
            file_with(|o| {
                o.insert("ChangeType".into(), json!("Modified"));
            }),
            Invalid {
                index: 1,
                reason: "a Modified order needs `Resource`",
            },
        ),
        (
            "Deleted without Resource",
            file_with(|o| {
                o.insert("ChangeType".into(), json!("Deleted"));
                o.insert("Owner".into(), Value::Null);
            }),
            Invalid {
                index: 1,
                reason: "a Deleted order needs `Resource`",
            },
        ),
        (
            "Added without Owner",
            file_with(|o| {
                o.remove("Owner");
            }),
            Invalid {
                index: 1,
                reason: "an Added order needs `Owner`",
            },
        ),
        (
            "an order depending on itself",
            file_with(|o| {
                o.insert("DependsOn".into(), json!(["ord-0", "ord-1"]));
            }),
            Invalid {
                index: 1,
                reason: "`DependsOn` names the order itself",
            },
        ),
        (
            "duplicate OrderId",
            {
                let mut orders = vec![order(0), order(1), order(2)];
                orders[2]["OrderId"] = json!("ord-0");
                json!({ "ProvisioningOrdersList": orders }).to_string()
            },
            Duplicate {
                order_id: "ord-0",
                first: 0,
                second: 2,
            },
        ),
        (
            "duplicate derived order id",
            {
                let mut orders = vec![order(0), order(1), order(2)];
                for o in &mut orders[1..] {
                    o.as_object_mut().unwrap().remove("OrderId");
                    o["AssignedResourceTypeId"] = json!("art-9");
                }
                json!({ "ProvisioningOrdersList": orders }).to_string()
            },
            Duplicate {
                order_id: "art-9:Added",
                first: 1,
                second: 2,
            },
        ),
        (
            "neither OrderId nor AssignedResourceTypeId",
            file_with(|o| {
                o.remove("OrderId");
                o.insert("AssignedResourceTypeId".into(), Value::Null);
            }),
            Malformed {
                path: "ProvisioningOrdersList[1]",
                message: "expected `OrderId` or `AssignedResourceTypeId`",
            },
        ),
    ]
}

#[test]
fn every_malformed_file_yields_its_typed_error_with_path_and_expectation() {
    let mut failures = Vec::new();
    for (name, text, expect) in cases() {
        let result = std::panic::catch_unwind(|| ProvisioningOrdersList::from_json(&text));
        let err = match result {
            Err(_) => {
                failures.push(format!("{name}: panicked"));
                continue;
            }
            Ok(Ok(_)) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Ok(Err(err)) => err,
        };
        let shown = err.to_string();
        let ok = match (&expect, &err) {
            (
                Expect::Malformed { path, message },
                OrderFileError::Malformed {
                    path: p,
                    message: m,
                },
            ) => {
                p == path
                    && m.contains(message)
                    && shown.contains(&format!("`{path}`"))
                    && shown.contains(message)
            }
            (
                Expect::MalformedUnder { prefix, message },
                OrderFileError::Malformed {
                    path: p,
                    message: m,
                },
            ) => p.starts_with(prefix) && m.contains(message) && shown.contains(p.as_str()),
            (
                Expect::Invalid { index, reason },
                OrderFileError::InvalidOrder {
                    index: i,
                    reason: r,
                    ..
                },
            ) => {
                i == index
                    && r.contains(reason)
                    && shown.contains(&format!("ProvisioningOrdersList[{index}]"))
            }
            (
                Expect::Duplicate {
                    order_id,
                    first,
                    second,
                },
                OrderFileError::DuplicateOrderId {
                    order_id: o,
                    first: f,
                    second: s,
                },
            ) => {
                o.as_str() == *order_id
                    && f == first
                    && s == second
                    && shown.contains(&format!("ProvisioningOrdersList[{first}]"))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{name}: expected {expect:?}, got {err:?}\n    shown: {shown}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_base_file_of_the_table_is_valid() {
    let list = ProvisioningOrdersList::from_json(&file_with(|_| {})).unwrap();
    assert_eq!(list.provisioning_orders_list.len(), 3);
}

/// The node reached by walking `path` (each step picks a child modulo the number of children;
/// the walk stops at a leaf).
fn target<'a>(node: &'a mut Value, path: &[usize]) -> &'a mut Value {
    let Some((&step, rest)) = path.split_first() else {
        return node;
    };
    let children = match node {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    };
    if children == 0 {
        return node;
    }
    let child = match node {
        Value::Array(items) => &mut items[step % children],
        Value::Object(map) => map.values_mut().nth(step % children).expect("in range"),
        leaf => return leaf,
    };
    target(child, rest)
}

/// Applies one mutation to a JSON document, at the node `path` leads to.
fn mutate(doc: &mut Value, path: &[usize], kind: u8, key: &str, value: Value) {
    let node = target(doc, path);
    match (kind % 6, node) {
        (1, Value::Object(map)) => {
            map.insert(key.to_owned(), value);
        }
        (2, Value::Object(map)) => {
            if let Some(k) = map.keys().find(|k| k.as_str() >= key).cloned() {
                map.remove(&k);
            }
        }
        (3, Value::Object(map)) => {
            // Rename a key, keeping its value: e.g. `memberOf_add` becomes `Id`.
            if let Some(k) = map.keys().find(|k| k.as_str() >= key).cloned()
                && let Some(v) = map.remove(&k)
            {
                map.insert(key.to_owned(), v);
            }
        }
        (4, Value::Array(items)) => items.push(value),
        (5, Value::Array(items)) if !items.is_empty() => {
            let first = items[0].clone();
            items.push(first);
        }
        (_, node) => *node = value,
    }
}

fn golden_value() -> Value {
    serde_json::from_str(&read_data("orders.json")).unwrap()
}

/// Whatever `from_json` accepts, it writes in a form it accepts again, and that form is a
/// fixed point (a masked secret stays masked).
fn assert_accepted_output_is_stable(list: &ProvisioningOrdersList) {
    let written = list.to_json_pretty();
    let reread = ProvisioningOrdersList::from_json(&written)
        .unwrap_or_else(|e| panic!("accepted input written back is refused: {e}\n{written}"));
    assert_eq!(reread.to_json_pretty(), written);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(list) = ProvisioningOrdersList::from_json(&text) {
            assert_accepted_output_is_stable(&list);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(list) = ProvisioningOrdersList::from_json(&text) {
            assert_accepted_output_is_stable(&list);
        }
    }

    #[test]
    fn text_edits_of_the_golden_file_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<char>()), 1..6),
    ) {
        let mut chars: Vec<char> = read_data("orders.json").chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(chars.len());
            match kind {
                0 => { chars.remove(i); }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(list) = ProvisioningOrdersList::from_json(&text) {
            assert_accepted_output_is_stable(&list);
        }
    }

    #[test]
    fn json_mutations_of_the_golden_file_never_panic(
        mutations in proptest::collection::vec(
            // Paths of two steps or more land inside an order, where the typed parsing is.
            (proptest::collection::vec(any::<usize>(), 2..8), any::<u8>(), interesting_key(), arb_json()),
            1..4,
        ),
    ) {
        let mut doc = golden_value();
        for (path, kind, key, value) in mutations {
            mutate(&mut doc, &path, kind, &key, value);
        }
        let text = serde_json::to_string(&doc).unwrap();
        match ProvisioningOrdersList::from_json(&text) {
            Ok(list) => assert_accepted_output_is_stable(&list),
            Err(err) => {
                // Every refusal says where it happened.
                let shown = err.to_string();
                let located = match &err {
                    OrderFileError::Malformed { path, .. } => shown.contains(&format!("`{path}`")),
                    _ => shown.contains("ProvisioningOrdersList["),
                };
                prop_assert!(located, "{shown}");
            }
        }
    }
}

/// Unknown fields in the order envelope are refused, naming the field, where it is, and the
/// closest known name (issue 13: a typo never silently drops a part of an order); property
/// bags (owner properties, `Changes`, `Resource` values) stay open.
#[test]
fn unknown_envelope_fields_are_refused_with_the_closest_name() {
    let file = |order: &str| format!(r#"{{"ProvisioningOrdersList":[{order}]}}"#);
    let rt = r#""ResourceType":{"Id":"rt","Identifier":"AD_User","SourceEntityType":{"Id":"s","Identifier":"User"},"TargetEntityType":{"Id":"t","Identifier":"AD_Entry"}}"#;
    for (order, path, field, meant) in [
        (
            format!(r#"{{"ChangeType":"Added",{rt},"Chnges":{{"sAMAccountName":"jdoe"}}}}"#),
            "ProvisioningOrdersList[0]",
            "Chnges",
            "Changes",
        ),
        (
            format!(r#"{{"ChangeType":"Added",{rt},"DependOn":["o-1"]}}"#),
            "ProvisioningOrdersList[0]",
            "DependOn",
            "DependsOn",
        ),
        (
            r#"{"ChangeType":"Added","ResourceType":{"Id":"rt","Identifer":"AD_User","SourceEntityType":{"Id":"s","Identifier":"User"},"TargetEntityType":{"Id":"t","Identifier":"AD_Entry"}}}"#.to_owned(),
            "ProvisioningOrdersList[0].ResourceType",
            "Identifer",
            "Identifier",
        ),
    ] {
        let err = ProvisioningOrdersList::from_json(&file(&order)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OrderFileError::Malformed { .. }), "{text}");
        assert!(text.contains(path), "{text}");
        assert!(text.contains(&format!("`{field}`")), "{text}");
        assert!(text.contains(&format!("did you mean `{meant}`?")), "{text}");
    }
    // Bags stay open: any owner property and any change name.
    let open = file(&format!(
        r#"{{"AssignedResourceTypeId":"art-1","ChangeType":"Added",{rt},"Owner":{{"Id":"u-1","Identifier":"jdoe","AnyHrField":"x"}},"Changes":{{"anyAttribute":"y"}}}}"#
    ));
    ProvisioningOrdersList::from_json(&open).expect("owner properties and changes stay open");
}
