//! Round trips: what autoprov writes, it reads back unchanged.

use crate::strategies::{
    arb_changes, arb_datetime, arb_key, arb_orders_list, arb_owner, arb_resource, arb_scalar,
};
use autoprov_core::{
    ChangeType, Changes, ProvisioningOrdersList, ProvisioningResult, ProvisioningResultsList,
    ProvisioningState, ScalarValue,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn arb_result() -> impl Strategy<Value = ProvisioningResult> {
    (
        (
            arb_key(),
            option::of(any::<String>()),
            proptest::sample::select(ProvisioningState::ALL),
            option::of(any::<String>()),
            prop_oneof![
                Just(ChangeType::Added),
                Just(ChangeType::Modified),
                Just(ChangeType::Deleted)
            ],
        ),
        (
            option::of(any::<String>()),
            option::of(any::<String>()),
            option::of(any::<String>()),
            option::of(any::<String>()),
            option::of(any::<String>()),
        ),
    )
        .prop_map(
            |(
                (order_id, assignment_id, provisioning_state, message, change_type),
                (owner_id, owner_type, resource_id, stable_id, ticket),
            )| ProvisioningResult {
                order_id: order_id.into(),
                assignment_id: assignment_id.map(Into::into),
                provisioning_state,
                message,
                change_type,
                owner_id: owner_id.map(Into::into),
                owner_type: owner_type.map(Into::into),
                resource_id: resource_id.map(Into::into),
                stable_id: stable_id.map(Into::into),
                ticket,
            },
        )
}

proptest! {

    #[test]
    fn orders_list_round_trips(list in arb_orders_list()) {
        let json = list.to_json_pretty();
        let back = ProvisioningOrdersList::from_json(&json)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        prop_assert_eq!(&back, &list);
        // Output is deterministic: writing the parsed list gives the same bytes.
        prop_assert_eq!(back.to_json_pretty(), json);
        // Compact JSON reads the same.
        let compact = serde_json::to_string(&list).unwrap();
        prop_assert_eq!(ProvisioningOrdersList::from_json(&compact).unwrap(), list);
    }

    #[test]
    fn changes_round_trip_alone(changes in arb_changes()) {
        let json = serde_json::to_string(&changes).unwrap();
        let back: Changes = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, changes);
    }

    #[test]
    fn owners_and_resources_round_trip(owner in arb_owner(), resource in arb_resource()) {
        let o: autoprov_core::Owner = serde_json::from_value(serde_json::to_value(&owner).unwrap()).unwrap();
        prop_assert_eq!(o, owner);
        let r: autoprov_core::Resource = serde_json::from_value(serde_json::to_value(&resource).unwrap()).unwrap();
        prop_assert_eq!(r, resource);
    }

    #[test]
    fn scalars_round_trip(value in arb_scalar()) {
        let json = serde_json::to_string(&value).unwrap();
        let back: ScalarValue = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, value);
    }

    #[test]
    fn date_times_are_written_canonically(at in arb_datetime()) {
        let value = ScalarValue::DateTime(at);
        let json = serde_json::to_value(&value).unwrap();
        let text = json.as_str().unwrap();
        prop_assert!(text.ends_with('Z'), "{}", text);
        prop_assert_eq!(chrono::DateTime::parse_from_rfc3339(text).unwrap(), at);
    }

    #[test]
    fn results_list_round_trips(results in vec(arb_result(), 0..5)) {
        let list = ProvisioningResultsList { provisioning_results_list: results };
        let json = serde_json::to_string_pretty(&list).unwrap();
        let back: ProvisioningResultsList = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, list);
    }
}

#[test]
fn a_property_named_like_a_field_never_replaces_the_field() {
    // The flat JSON has one `Id` key: it must stay the owner's (the order is addressed by it),
    // not become a property that happens to share the name.
    let owner = autoprov_core::Owner::new("u-7", "jdoe")
        .with("Id", "HR-00042")
        .with("Identifier", 7)
        .with("Department", "Sales");
    let json = serde_json::to_value(&owner).unwrap();
    assert_eq!(json["Id"], "u-7");
    assert_eq!(json["Identifier"], "jdoe");
    assert_eq!(json["Department"], "Sales");
    let resource = autoprov_core::Resource::new("CN=jdoe,DC=example,DC=test")
        .with("Id", "other")
        .with("StableId", "guid-from-a-property");
    let json = serde_json::to_value(&resource).unwrap();
    assert_eq!(json["Id"], "CN=jdoe,DC=example,DC=test");
    assert!(json.get("StableId").is_none(), "{json}");
}

#[test]
fn a_navigation_delta_wins_over_a_property_named_like_it() {
    let mut changes = Changes::default();
    changes
        .set("memberOf_add", "not a delta")
        .add_reference("memberOf", autoprov_core::Reference::dn("CN=Sales"));
    let json = serde_json::to_value(&changes).unwrap();
    assert_eq!(
        json["memberOf_add"],
        serde_json::json!([{"dn": "CN=Sales"}])
    );
    // And a lone property with a delta name is refused on reading, not misread.
    let mut lone = Changes::default();
    lone.set("roles_remove", "x");
    let text = serde_json::to_string(&lone).unwrap();
    let err = serde_json::from_str::<Changes>(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("`roles_remove`: expected an array of references"),
        "{err}"
    );
}

#[test]
fn changes_are_written_with_sorted_keys() {
    let mut changes = Changes::default();
    changes
        .set("zeta", 1)
        .add_reference("memberOf", autoprov_core::Reference::dn("CN=G"))
        .set("alpha", true)
        .clear("middle");
    let text = serde_json::to_string(&changes).unwrap();
    assert_eq!(
        text,
        r#"{"alpha":true,"memberOf_add":[{"dn":"CN=G"}],"memberOf_remove":[],"middle":null,"zeta":1}"#
    );
}
