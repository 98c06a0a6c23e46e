//! Orders files as the reference system writes them (`fixtures/reference_*.json`): `Resource`
//! without `Id` (keyed by `dn`, `objectGUID` or the type's key property), reference objects
//! holding numbers and booleans, and order `Arguments`.

use autoprov_core::{
    AssignmentId, ChangeType, OrderFileError, OrderId, PropertyChange, PropertyValue,
    ProvisioningOrdersList, Reference, ResourceKeys, ScalarValue,
};
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/core/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse(name: &str) -> ProvisioningOrdersList {
    ProvisioningOrdersList::from_json(&fixture(name))
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

#[test]
fn added_order_keeps_its_arguments_and_non_string_reference_values() {
    let file = parse("reference_added.json");
    let o = &file.provisioning_orders_list[0];
    assert_eq!(o.order_id, OrderId::from("23150:Added"));
    assert_eq!(o.change_type, ChangeType::Added);
    assert!(o.resource.is_none());
    assert_eq!(
        o.arguments
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [
            ("NotifyManager", "true"),
            ("Priority", "2"),
            ("TicketQueue", "IAM-Sales")
        ]
    );
    let owner = o.owner.as_ref().unwrap();
    assert_eq!(owner.properties["EmployeeId"], PropertyValue::from(104_233));
    assert_eq!(
        o.changes.scalar("userAccountControl"),
        Some(&ScalarValue::Integer(512))
    );
    assert_eq!(
        o.changes.reference("manager"),
        Some(
            &Reference::dn("CN=Smith\\, John,OU=Sales,DC=example,DC=test")
                .with("employeeId", "100017")
                .with("isEnabled", "true")
        )
    );
    let members = &o.changes.navigations["memberOf"];
    assert!(members.remove.is_empty());
    assert!(members.add.contains(
        &Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test").with("groupType", "-2147483646")
    ));
    assert!(members.add.contains(
        &Reference::dn("CN=VPN Users,OU=Groups,DC=example,DC=test").with("isSecurity", "true")
    ));
}

#[test]
fn modified_and_deleted_orders_are_keyed_by_dn_then_object_guid() {
    let file = parse("reference_modified_deleted.json");
    let [modified, deleted] = &file.provisioning_orders_list[..] else {
        panic!("two orders expected: {file:?}");
    };

    let target = modified.resource.as_ref().unwrap();
    assert_eq!(
        target.id.as_str(),
        "CN=Bob Martin,OU=Sales,DC=example,DC=test"
    );
    assert_eq!(
        target.stable_id.as_ref().map(|s| s.as_str()),
        Some("5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b")
    );
    // The keys stay among the current values; a null value is no value.
    assert!(target.get("dn").is_some() && target.get("objectGUID").is_some());
    assert!(target.get("whenChanged").is_none());
    assert_eq!(
        target.get("userAccountControl"),
        Some(&PropertyValue::from(512))
    );
    assert_eq!(
        target.get("manager").and_then(PropertyValue::as_reference),
        Some(
            &Reference::dn("CN=Alice Roy,OU=Sales,DC=example,DC=test").with("employeeId", "100002")
        )
    );
    assert_eq!(
        modified.changes.properties["telephoneNumber"],
        PropertyChange::Clear
    );
    assert!(modified.arguments.is_empty());

    let target = deleted.resource.as_ref().unwrap();
    assert_eq!(target.id.as_str(), "9e8d7c6b-5a49-3827-1605-f4e3d2c1b0a9");
    assert_eq!(
        target.stable_id.as_ref().map(|s| s.as_str()),
        Some(target.id.as_str())
    );
    assert_eq!(target.get("isEnabled"), Some(&PropertyValue::from(false)));
    assert_eq!(deleted.workflow_instance_id.as_deref(), Some("wf-8812"));
    assert_eq!(deleted.arguments["Reason"], "Left the company");
}

#[test]
fn a_resource_with_no_key_is_refused_naming_its_order_unless_the_key_property_is_known() {
    let text = fixture("reference_app_account.json");
    let err = ProvisioningOrdersList::from_json(&text).unwrap_err();
    match &err {
        OrderFileError::ResourceWithoutKey {
            index,
            order_id,
            assigned_resource_type_id,
            tried,
            ..
        } => {
            assert_eq!(*index, 0);
            assert_eq!(order_id, &OrderId::from("40017:Modified"));
            assert_eq!(
                assigned_resource_type_id,
                &Some(AssignmentId::from("40017"))
            );
            assert!(tried.contains("SAP_Account"), "{tried}");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("ProvisioningOrdersList[0]"), "{message}");
    assert!(
        message.contains("AssignedResourceTypeId 40017"),
        "{message}"
    );

    // By identifier or by id.
    for keys in [
        ResourceKeys::new().with("SAP_Account", "login"),
        ResourceKeys::new().with("2040", "login"),
    ] {
        let file = ProvisioningOrdersList::from_json_with_keys(&text, &keys).unwrap();
        let o = &file.provisioning_orders_list[0];
        let target = o.resource.as_ref().unwrap();
        assert_eq!(target.id.as_str(), "DKIM01");
        assert!(target.stable_id.is_none());
        assert!(
            o.changes.navigations["roles"]
                .add
                .contains(&Reference::id("88").with("code", "Z_SALES"))
        );
    }

    // A known key property that the resource lacks is named in the error.
    let keys = ResourceKeys::new().with("SAP_Account", "accountId");
    let err = ProvisioningOrdersList::from_json_with_keys(&text, &keys).unwrap_err();
    assert!(err.to_string().contains("`accountId`"), "{err}");
}

#[test]
fn reference_files_round_trip_through_autoprov_output() {
    for name in ["reference_added.json", "reference_modified_deleted.json"] {
        let file = parse(name);
        let written = file.to_json_pretty();
        let back = ProvisioningOrdersList::from_json(&written)
            .unwrap_or_else(|e| panic!("{name} written back does not parse: {e}\n{written}"));
        assert_eq!(back, file, "{name}");
    }
    let written = parse("reference_added.json").to_json_pretty();
    assert!(written.contains("\"Arguments\""), "{written}");
}

#[test]
fn identifying_keys_and_arguments_of_the_wrong_kind_are_malformed() {
    let base = serde_json::json!({
        "AssignedResourceTypeId": "1", "ChangeType": "Deleted",
        "Owner": {"Id": "u", "Identifier": "u"},
        "ResourceType": {"Id": "rt", "SourceEntityType": {"Id": "s"}, "TargetEntityType": {"Id": "t"}},
        "Resource": {"dn": "CN=x"},
    });
    let cases = [
        (
            "Resource",
            serde_json::json!({"dn": 5}),
            "ProvisioningOrdersList[0].Resource.dn",
        ),
        (
            "Resource",
            serde_json::json!({"Id": true}),
            "ProvisioningOrdersList[0].Resource.Id",
        ),
        (
            "Arguments",
            serde_json::json!({"k": [1]}),
            "ProvisioningOrdersList[0].Arguments",
        ),
        (
            "Arguments",
            serde_json::json!(["k"]),
            "ProvisioningOrdersList[0].Arguments",
        ),
    ];
    for (key, value, path) in cases {
        let mut order = base.clone();
        order[key] = value.clone();
        let text = serde_json::json!({ "ProvisioningOrdersList": [order] }).to_string();
        match ProvisioningOrdersList::from_json(&text) {
            Err(OrderFileError::Malformed { path: p, .. }) => assert_eq!(p, path, "{value}"),
            other => panic!("{key} = {value}: {other:?}"),
        }
    }
}
