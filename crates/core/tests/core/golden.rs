//! Golden tests: the realistic orders and results files of `tests/data`.

use crate::{assert_golden, read_data};
use autoprov_core::{
    ChangeType, OrderId, PropertyChange, PropertyValue, ProvisioningOrdersList,
    ProvisioningResultsList, ProvisioningState, Reference, SECRET_MASK, ScalarValue,
};
use chrono::{DateTime, TimeZone, Utc};

const SECRET_TEXT: &str = "Init-Passw0rd!x7";

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn orders() -> ProvisioningOrdersList {
    ProvisioningOrdersList::from_json(&read_data("orders.json")).expect("orders.json parses")
}

fn scalar<'a>(changes: &'a autoprov_core::Changes, property: &str) -> &'a ScalarValue {
    changes
        .scalar(property)
        .unwrap_or_else(|| panic!("no scalar `{property}` in {changes:?}"))
}

#[test]
fn added_order_has_typed_owner_resource_type_and_changes() {
    let file = orders();
    assert_eq!(file.provisioning_orders_list.len(), 5);
    let o = &file.provisioning_orders_list[0];

    assert_eq!(o.order_id, OrderId::new("ord-2026-0001"));
    assert_eq!(
        o.assigned_resource_type_id.as_ref().unwrap().as_str(),
        "art-42"
    );
    assert_eq!(o.change_type, ChangeType::Added);
    assert_eq!(o.workflow_instance_id, None);
    assert_eq!(o.connection.as_ref().unwrap().as_str(), "ad-main");
    assert_eq!(o.resource, None);
    assert!(o.depends_on.is_empty());
    assert_eq!(o.not_before, Some(utc(2026, 1, 31, 22, 0, 0)));

    // Owner: reserved keys become fields, everything else a typed property.
    let owner = o.owner.as_ref().unwrap();
    assert_eq!(owner.id.as_str(), "u-7");
    assert_eq!(owner.identifier, "jdoe");
    assert_eq!(
        owner.entity_type.as_ref().unwrap().as_str(),
        "Directory_User"
    );
    assert_eq!(owner.get("Department"), Some(&PropertyValue::from("Sales")));
    assert_eq!(
        owner.get("EmployeeNumber"),
        Some(&PropertyValue::from(100_742))
    );
    assert_eq!(owner.get("IsExternal"), Some(&PropertyValue::from(false)));
    assert_eq!(
        owner.get("HireDate"),
        Some(&PropertyValue::Scalar(ScalarValue::DateTime(utc(
            2026, 2, 1, 0, 0, 0
        ))))
    );
    // Documented mapping: only the canonical UTC form is a date-time; an offset stays text.
    assert_eq!(
        owner.get("ContractEndLocal"),
        Some(&PropertyValue::from("2027-01-31T18:00:00+01:00"))
    );
    let manager = owner
        .get("Manager")
        .and_then(PropertyValue::as_reference)
        .unwrap();
    assert_eq!(manager.get("Id"), Some("u-3"));
    assert_eq!(
        manager.dn_value(),
        Some("CN=Mary Major,OU=Sales,DC=example,DC=test")
    );
    assert_eq!(
        owner.get("Badge"),
        Some(&PropertyValue::Scalar(ScalarValue::Binary(vec![
            1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0
        ])))
    );
    assert_eq!(owner.get("Phone"), None, "a null owner property is absent");

    // ResourceType with its entity types.
    let rt = &o.resource_type;
    assert_eq!(rt.id.as_str(), "rt-1");
    assert_eq!(rt.identifier, "AD_Entry_NominativeUser");
    assert_eq!(rt.source_entity_type.id.as_str(), "et-1");
    assert_eq!(rt.source_entity_type.identifier, "Directory_User");
    assert_eq!(rt.target_entity_type.id.as_str(), "et-2");
    assert_eq!(rt.target_entity_type.identifier, "AD_Entry");

    // Changes: every scalar kind, mono-valued navigations and a multi-valued delta.
    let c = &o.changes;
    assert_eq!(scalar(c, "sAMAccountName").as_str(), Some("jdoe"));
    assert_eq!(scalar(c, "displayName").as_str(), Some("Doe, John"));
    assert_eq!(
        scalar(c, "employeeID").as_str(),
        Some("100742"),
        "quoted digits stay text"
    );
    assert_eq!(scalar(c, "userAccountControl").as_integer(), Some(512));
    assert_eq!(scalar(c, "pwdLastSetRequired").as_bool(), Some(true));
    assert_eq!(
        scalar(c, "accountExpires"),
        &ScalarValue::DateTime(utc(2027, 1, 31, 17, 0, 0))
    );
    assert_eq!(
        scalar(c, "thumbnailPhoto"),
        &ScalarValue::Binary(vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'])
    );
    match scalar(c, "password") {
        ScalarValue::Secret(s) => assert_eq!(s.expose(), Ok(SECRET_TEXT)),
        other => panic!("password should be a secret, is {other:?}"),
    }
    assert_eq!(
        c.reference("parentdn"),
        Some(&Reference::dn("OU=Sales,OU=Users,DC=example,DC=test"))
    );
    assert_eq!(
        c.reference("manager").and_then(Reference::dn_value),
        Some("CN=Mary Major,OU=Sales,OU=Users,DC=example,DC=test")
    );
    let member_of = &c.navigations["memberOf"];
    assert_eq!(
        member_of.add.iter().cloned().collect::<Vec<_>>(),
        vec![
            // BTreeSet order: the references sort by their keys and values.
            Reference::dn("CN=All Staff,OU=Groups,DC=example,DC=test"),
            Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test"),
        ]
    );
    assert!(member_of.remove.is_empty());
    assert_eq!(c.navigations.len(), 1);
    assert_eq!(c.properties.len(), 13);
}

#[test]
fn modified_order_carries_resource_clear_and_dependencies() {
    let file = orders();
    let o = &file.provisioning_orders_list[1];
    assert_eq!(o.change_type, ChangeType::Modified);
    assert_eq!(o.workflow_instance_id.as_deref(), Some("wf-9001"));
    assert_eq!(o.depends_on, vec![OrderId::new("ord-2026-0001")]);
    assert_eq!(o.not_before, Some(utc(2026, 2, 1, 6, 0, 0)));
    assert_eq!(
        o.owner.as_ref().unwrap().get("DisplayName"),
        Some(&PropertyValue::from("Roe, Zoë Ångström"))
    );

    let c = &o.changes;
    assert_eq!(
        c.properties.get("telephoneNumber"),
        Some(&PropertyChange::Clear)
    );
    assert_eq!(scalar(c, "title").as_str(), Some("Head of Marketing"));
    let reviewed =
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 45).unwrap() + chrono::Duration::milliseconds(250);
    assert_eq!(scalar(c, "lastReviewed"), &ScalarValue::DateTime(reviewed));
    let nav = &c.navigations["memberOf"];
    assert!(
        nav.add
            .contains(&Reference::dn("CN=Marketing,OU=Groups,DC=example,DC=test"))
    );
    assert!(
        nav.remove
            .contains(&Reference::dn("CN=Sales,OU=Groups,DC=example,DC=test"))
    );

    let r = o.resource.as_ref().unwrap();
    assert_eq!(
        r.id.as_str(),
        "CN=Jane Roe,OU=Sales,OU=Users,DC=example,DC=test"
    );
    assert_eq!(r.entity_type.as_ref().unwrap().as_str(), "AD_Entry");
    assert_eq!(
        r.stable_id.as_ref().unwrap().as_str(),
        "5f1c2a0e-8d3b-4c1f-9a7e-2b6d4e8f0a13"
    );
    assert_eq!(r.get("userAccountControl"), Some(&PropertyValue::from(512)));
    assert_eq!(
        r.get("parentdn").and_then(PropertyValue::as_reference),
        Some(&Reference::dn("OU=Sales,OU=Users,DC=example,DC=test"))
    );
    assert_eq!(
        r.get("memberOf")
            .and_then(PropertyValue::as_references)
            .map(|s| s.len()),
        Some(2)
    );
}

#[test]
fn deletions_with_and_without_owner_and_derived_order_id() {
    let file = orders();
    let deleted = &file.provisioning_orders_list[2];
    assert_eq!(deleted.change_type, ChangeType::Deleted);
    assert_eq!(deleted.owner_id().unwrap().as_str(), "u-31");
    assert!(deleted.changes.is_empty());
    assert!(deleted.resource.is_some());

    let orphan = &file.provisioning_orders_list[3];
    assert_eq!(orphan.order_id.as_str(), "orphan-ad-main-7d3e");
    assert_eq!(orphan.change_type, ChangeType::Deleted);
    assert_eq!(orphan.owner, None);
    assert_eq!(orphan.assigned_resource_type_id, None);
    assert_eq!(
        orphan.resource.as_ref().unwrap().get("whenCreated"),
        Some(&PropertyValue::Scalar(ScalarValue::DateTime(utc(
            2019, 5, 4, 9, 12, 0
        ))))
    );
    assert!(orphan.label().contains("no owner"), "{}", orphan.label());

    // No `OrderId`: derived from `AssignedResourceTypeId` and `ChangeType`.
    let manual = &file.provisioning_orders_list[4];
    assert_eq!(manual.order_id.as_str(), "art-77:Added");
    assert_eq!(manual.connection.as_ref().unwrap().as_str(), "sap-manual");
    assert_eq!(manual.depends_on, vec![OrderId::new("ord-2026-0001")]);
    assert_eq!(manual.not_before, None);
    assert_eq!(
        manual.changes.navigations["roles"].add.first(),
        Some(&Reference::id("sap-role-SD01"))
    );
    assert!(manual.changes.navigations["roles"].remove.is_empty());
}

#[test]
fn orders_file_writes_back_as_the_expected_file() {
    let written = format!("{}\n", orders().to_json_pretty());
    assert!(
        !written.contains(SECRET_TEXT),
        "the secret leaked into the output"
    );
    assert!(written.contains(&format!("\"$secret\": \"{SECRET_MASK}\"")));
    assert_golden("orders.expected.json", &written);

    // The expected file is itself a valid orders file, and a fixed point: reading and writing it
    // again changes nothing (the masked secret stays masked).
    let reread = ProvisioningOrdersList::from_json(&written).expect("the output parses");
    assert_eq!(format!("{}\n", reread.to_json_pretty()), written);
    // Everything but the secret survives the trip.
    let mut original = orders();
    let mut back = reread;
    for list in [&mut original, &mut back] {
        list.provisioning_orders_list[0]
            .changes
            .properties
            .remove("password");
    }
    assert_eq!(back, original);
}

#[test]
fn results_file_parses_codes_and_writes_back_as_the_expected_file() {
    let text = read_data("results.json");
    let results: ProvisioningResultsList =
        serde_json::from_str(&text).expect("results.json parses");
    let list = &results.provisioning_results_list;
    assert_eq!(list.len(), 5);

    assert_eq!(list[0].provisioning_state, ProvisioningState::Executed);
    assert_eq!(list[0].assignment_id.as_ref().unwrap().as_str(), "art-42");
    assert_eq!(
        list[0].owner_type.as_ref().unwrap().as_str(),
        "Directory_User"
    );
    assert_eq!(
        list[0].stable_id.as_ref().unwrap().as_str(),
        "3e0f6a1b-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
    );
    assert_eq!(
        list[0].resource_id.as_ref().unwrap().as_str(),
        "CN=John Doe,OU=Sales,OU=Users,DC=example,DC=test"
    );
    // The reference system's numeric codes are read; names are written.
    assert_eq!(list[1].provisioning_state, ProvisioningState::Executed);
    assert_eq!(list[1].change_type, ChangeType::Modified);
    assert_eq!(list[2].provisioning_state, ProvisioningState::Errored);
    assert!(
        list[2]
            .message
            .as_deref()
            .unwrap()
            .contains("insufficientAccessRights")
    );
    assert_eq!(list[3].owner_id, None);
    assert_eq!(list[3].assignment_id, None);
    assert_eq!(list[3].message, None);
    assert_eq!(list[4].provisioning_state, ProvisioningState::Transmitted);
    assert_eq!(list[4].ticket.as_deref(), Some("REQ-2026-004711"));
    assert_eq!(list[4].order_id.as_str(), "art-77:Added");

    let written = format!("{}\n", serde_json::to_string_pretty(&results).unwrap());
    assert!(
        !written.contains(": 8,") && !written.contains(": 2,"),
        "states are written by name"
    );
    assert_golden("results.expected.json", &written);
    let back: ProvisioningResultsList = serde_json::from_str(&written).unwrap();
    assert_eq!(back, results);
}

#[test]
fn every_result_refers_to_an_order_of_the_golden_orders_file() {
    let orders = orders();
    let results: ProvisioningResultsList =
        serde_json::from_str(&read_data("results.json")).unwrap();
    for r in &results.provisioning_results_list {
        let order = orders
            .provisioning_orders_list
            .iter()
            .find(|o| o.order_id == r.order_id)
            .unwrap_or_else(|| panic!("no order {}", r.order_id));
        assert_eq!(order.change_type, r.change_type, "{}", r.order_id);
        assert_eq!(order.owner_id(), r.owner_id.as_ref(), "{}", r.order_id);
        assert_eq!(
            order.assigned_resource_type_id, r.assignment_id,
            "{}",
            r.order_id
        );
    }
}
