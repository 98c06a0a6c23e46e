//! Secrets: read in clear, written masked, never shown.

use autoprov_core::{
    ChangeType, Changes, Owner, PropertyValue, ProvisioningOrder, ProvisioningOrdersList,
    Reference, Resource, ResourceType, ResourceTypeRef, SECRET_MASK, ScalarValue, Secret,
};
use proptest::prelude::*;

fn order_with_secret(secret: &str) -> ProvisioningOrder {
    let rt = ResourceType::new(
        "rt-1",
        "AD_Entry_NominativeUser",
        "Directory_User",
        "AD_Entry",
        "ad",
    );
    let mut changes = Changes::default();
    changes
        .set("sAMAccountName", "jdoe")
        .set("unicodePwd", Secret::new(secret))
        .set_reference("parentdn", Reference::dn("OU=Sales,DC=example,DC=test"));
    ProvisioningOrder {
        order_id: "o-1".into(),
        assigned_resource_type_id: Some("art-42".into()),
        change_type: ChangeType::Modified,
        workflow_instance_id: None,
        owner: Some(Owner::new("u-7", "jdoe").with(
            "InitialPassword",
            PropertyValue::Scalar(Secret::new(secret).into()),
        )),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("ad".into()),
        changes,
        resource: Some(Resource::new("CN=jdoe,OU=Sales,DC=example,DC=test").with(
            "unicodePwd",
            PropertyValue::Scalar(Secret::new(secret).into()),
        )),
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

/// Every rendering of an order a log line, an error or a file might carry.
fn renderings(order: &ProvisioningOrder) -> Vec<(&'static str, String)> {
    let list = ProvisioningOrdersList {
        provisioning_orders_list: vec![order.clone()],
    };
    let password = order.changes.scalar("unicodePwd").unwrap();
    vec![
        ("Debug", format!("{order:?}")),
        ("pretty Debug", format!("{order:#?}")),
        ("list Debug", format!("{list:#?}")),
        ("label", order.label()),
        ("pretty JSON", list.to_json_pretty()),
        ("compact JSON", serde_json::to_string(&list).unwrap()),
        (
            "changes JSON",
            serde_json::to_string(&order.changes).unwrap(),
        ),
        ("scalar Display", password.to_string()),
        ("scalar display_text", password.display_text()),
        ("scalar Debug", format!("{password:?}")),
    ]
}

#[test]
fn a_secret_read_from_a_file_is_exposed_only_explicitly() {
    let text = r#"{"ProvisioningOrdersList":[{"OrderId":"o-1","ChangeType":"Added",
        "Owner":{"Id":"u-7","Identifier":"jdoe"},
        "ResourceType":{"Id":"rt","SourceEntityType":{"Id":"s"},"TargetEntityType":{"Id":"t"}},
        "Changes":{"unicodePwd":{"$secret":"Hunter2-Sup3r"}}}]}"#;
    let list = ProvisioningOrdersList::from_json(text).unwrap();
    let order = &list.provisioning_orders_list[0];
    match order.changes.scalar("unicodePwd") {
        Some(ScalarValue::Secret(s)) => assert_eq!(s.expose(), Ok("Hunter2-Sup3r")),
        other => panic!("{other:?}"),
    }
    for (what, shown) in renderings(order) {
        assert!(
            !shown.contains("Hunter2"),
            "{what} shows the secret: {shown}"
        );
    }
}

#[test]
fn a_secret_round_trips_as_the_mask() {
    let order = order_with_secret("Init-Passw0rd!x7");
    let list = ProvisioningOrdersList {
        provisioning_orders_list: vec![order],
    };
    let json = list.to_json_pretty();
    assert!(
        json.contains(&format!("\"$secret\": \"{SECRET_MASK}\"")),
        "{json}"
    );
    let back = ProvisioningOrdersList::from_json(&json).unwrap();
    let back_order = &back.provisioning_orders_list[0];
    // What comes back is still a secret, but the mask: the clear text never left.
    for value in [
        back_order.changes.scalar("unicodePwd").cloned(),
        back_order
            .owner
            .as_ref()
            .and_then(|o| o.get("InitialPassword"))
            .and_then(PropertyValue::as_scalar)
            .cloned(),
        back_order
            .resource
            .as_ref()
            .and_then(|r| r.get("unicodePwd"))
            .and_then(PropertyValue::as_scalar)
            .cloned(),
    ] {
        match value {
            // Read back, the mask is a redacted secret: no value, never sendable
            // (not the password "********").
            Some(ScalarValue::Secret(s)) => {
                assert!(s.is_redacted());
                assert!(s.expose().is_err());
            }
            other => panic!("expected a masked secret, found {other:?}"),
        }
    }
    assert_ne!(back, list, "the clear text does not survive a write");
    assert_eq!(
        back.to_json_pretty(),
        json,
        "the masked form is a fixed point"
    );
}

proptest! {
    #[test]
    fn no_rendering_of_an_order_contains_its_secret(
        secret in "[A-Za-z0-9!#%&+=?@^_~-]{12,40}",
    ) {
        let order = order_with_secret(&secret);
        for (what, shown) in renderings(&order) {
            prop_assert!(!shown.contains(&secret), "{} shows the secret: {}", what, shown);
            if what != "label" {
                prop_assert!(shown.contains(SECRET_MASK), "{} shows no mask: {}", what, shown);
            }
        }
        // The one way out.
        match order.changes.scalar("unicodePwd") {
            Some(ScalarValue::Secret(s)) => prop_assert_eq!(s.expose(), Ok(secret.as_str())),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn errors_about_a_file_with_a_secret_do_not_show_it(
        secret in "[A-Za-z0-9]{16,32}",
        broken in 0..4_usize,
    ) {
        let mut order = serde_json::json!({
            "OrderId": "o-1", "ChangeType": "Added",
            "Owner": {"Id": "u-7", "Identifier": "jdoe"},
            "ResourceType": {"Id": "rt", "SourceEntityType": {"Id": "s"}, "TargetEntityType": {"Id": "t"}},
            "Changes": {"unicodePwd": {"$secret": secret}},
        });
        match broken {
            0 => order["ChangeType"] = "Renamed".into(),
            1 => order["Changes"]["parentdn"] = serde_json::json!({"dn": 1}),
            2 => order["Changes"]["unicodePwd"]["extra"] = "x".into(),
            _ => order["ChangeType"] = "Modified".into(),
        }
        let text = serde_json::json!({"ProvisioningOrdersList": [order]}).to_string();
        let err = ProvisioningOrdersList::from_json(&text).unwrap_err();
        prop_assert!(!err.to_string().contains(&secret), "{}", err);
        prop_assert!(!format!("{err:?}").contains(&secret), "{:?}", err);
    }
}
