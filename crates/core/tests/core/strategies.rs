//! Generators shared by the property tests.

use autoprov_core::{
    ChangeType, Changes, EntityTypeRef, NavigationChange, Owner, PropertyChange, PropertyValue,
    ProvisioningOrder, ProvisioningOrdersList, Reference, Resource, ResourceTypeRef, ScalarValue,
};
use chrono::{DateTime, Utc};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashSet;

/// Strings that sit on the edges of the JSON mapping: look-alike dates, numbers, tags, suffixes.
const TRICKY: &[&str] = &[
    "",
    " ",
    "null",
    "true",
    "512",
    "-0",
    "1e3",
    "$base64",
    "$secret",
    "********",
    "memberOf_add",
    "_remove",
    "{\"dn\":\"CN=x\"}",
    "CN=Doe\\, John,OU=Sales,DC=example,DC=test",
    "2026-01-31 08:00:00",
    "2026-01-31T08:00:00+00:00",
    "2026-01-31T08:00:00.000Z",
    "2026-01-31T08:00:00z",
    "2026-02-30T08:00:00Z",
    "Zoë Ångström 山田 🚀",
    "\u{0}\u{7f}\u{feff}",
];

fn is_canonical_datetime(s: &str) -> bool {
    // The documented mapping reads a canonical RFC 3339 UTC string back as a date-time.
    matches!(
        serde_json::from_value::<ScalarValue>(Value::String(s.to_owned())),
        Ok(ScalarValue::DateTime(_))
    )
}

/// Any unicode text, control characters and newlines included, kept short so that a whole
/// generated file stays cheap to build.
pub fn any_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s).{0,16}").expect("valid regex")
}

/// Arbitrary unicode text (plus edge cases) that is not a canonical RFC 3339 timestamp.
pub fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_text(),
        1 => proptest::sample::select(TRICKY).prop_map(str::to_owned),
    ]
    .prop_filter("canonical timestamps read back as date-times", |s| {
        !is_canonical_datetime(s)
    })
}

/// Arbitrary unicode keys.
pub fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any_text(),
        1 => proptest::sample::select(TRICKY).prop_map(str::to_owned),
        1 => "[a-zA-Z][a-zA-Z0-9]{0,12}",
    ]
}

/// Keys worth inserting into or renaming within an orders file.
pub fn interesting_key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "ProvisioningOrdersList",
                "OrderId",
                "AssignedResourceTypeId",
                "ChangeType",
                "WorkflowInstanceId",
                "Owner",
                "ResourceType",
                "SourceEntityType",
                "TargetEntityType",
                "Connection",
                "Changes",
                "Resource",
                "DependsOn",
                "NotBefore",
                "Id",
                "Identifier",
                "EntityType",
                "StableId",
                "dn",
                "memberOf",
                "memberOf_add",
                "memberOf_remove",
                "parentdn",
                "$base64",
                "$secret",
            ][..]
        )
        .prop_map(str::to_owned),
        arb_key(),
    ]
}

/// Arbitrary JSON, biased towards values that mean something in an orders file.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(
            &[
                "Added",
                "Modified",
                "Deleted",
                "Renamed",
                "2026-01-31T08:00:00Z",
                "AQL/",
                "not base64!",
                "ord-2026-0001",
                "Executed",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
        arb_key().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(interesting_key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any instant between 0000-01-01 and 9999-12-31 (the RFC 3339 range), with sub-seconds of
/// every precision.
pub fn arb_datetime() -> impl Strategy<Value = DateTime<Utc>> {
    let secs = -62_167_219_200_i64..=253_402_300_799;
    let nanos = prop_oneof![
        Just(0_u32),
        (0..1000_u32).prop_map(|ms| ms * 1_000_000),
        (0..1_000_000_u32).prop_map(|us| us * 1000),
        0..1_000_000_000_u32,
    ];
    (secs, nanos).prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

/// Every scalar kind but `Secret`.
pub fn arb_scalar() -> impl Strategy<Value = ScalarValue> {
    prop_oneof![
        arb_text().prop_map(ScalarValue::String),
        any::<i64>().prop_map(ScalarValue::Integer),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)]
            .prop_map(ScalarValue::Integer),
        any::<bool>().prop_map(ScalarValue::Bool),
        arb_datetime().prop_map(ScalarValue::DateTime),
        vec(any::<u8>(), 0..48).prop_map(ScalarValue::Binary),
    ]
}

/// A reference: zero to three keys. `$base64` and `$secret` are the tags of binary and secret
/// values, so a reference cannot use them as keys.
pub fn arb_reference() -> impl Strategy<Value = Reference> {
    btree_map(
        arb_key().prop_filter("tags are reserved", |k| k != "$base64" && k != "$secret"),
        any_text(),
        0..3,
    )
    .prop_map(|keys| {
        keys.into_iter()
            .fold(Reference::default(), |r, (k, v)| r.with(k, v))
    })
}

/// A property value of an owner or a resource.
pub fn arb_property_value() -> impl Strategy<Value = PropertyValue> {
    prop_oneof![
        3 => arb_scalar().prop_map(PropertyValue::Scalar),
        1 => arb_reference().prop_map(PropertyValue::Reference),
        1 => btree_set(arb_reference(), 0..3).prop_map(PropertyValue::References),
    ]
}

fn properties(
    reserved: &'static [&'static str],
) -> impl Strategy<Value = Vec<(String, PropertyValue)>> {
    vec(
        (
            arb_key().prop_filter("reserved keys hold the fields", move |k| {
                !reserved.contains(&k.as_str())
            }),
            arb_property_value(),
        ),
        0..5,
    )
}

/// An owner with arbitrary properties.
pub fn arb_owner() -> impl Strategy<Value = Owner> {
    (
        any_text(),
        any_text(),
        option::of(any_text()),
        properties(&["Id", "Identifier", "EntityType"]),
    )
        .prop_map(|(id, identifier, entity_type, props)| {
            let mut owner = Owner::new(id, identifier);
            if let Some(e) = entity_type {
                owner = owner.with_entity_type(e);
            }
            props.into_iter().fold(owner, |o, (k, v)| o.with(k, v))
        })
}

/// An existing target with arbitrary values.
pub fn arb_resource() -> impl Strategy<Value = Resource> {
    (
        any_text(),
        option::of(any_text()),
        option::of(any_text()),
        properties(&["Id", "EntityType", "StableId"]),
    )
        .prop_map(|(id, entity_type, stable_id, values)| {
            let mut r = Resource::new(id);
            if let Some(e) = entity_type {
                r = r.with_entity_type(e);
            }
            r.stable_id = stable_id.map(Into::into);
            // A directory entry's `dn` and `objectGUID` are text: the orders file reader refuses
            // any other value under them with a typed error (`expected a string`), so a
            // resource holding one is not a file autoprov writes to read back.
            values
                .into_iter()
                .filter(|(k, v)| {
                    !matches!(k.as_str(), "dn" | "objectGUID")
                        || matches!(v, PropertyValue::Scalar(ScalarValue::String(_)))
                })
                .fold(r, |r, (k, v)| r.with(k, v))
        })
}

fn arb_property_change() -> impl Strategy<Value = PropertyChange> {
    prop_oneof![
        4 => arb_scalar().prop_map(PropertyChange::Set),
        1 => arb_reference().prop_map(PropertyChange::SetReference),
        1 => Just(PropertyChange::Clear),
    ]
}

fn arb_navigation_change() -> impl Strategy<Value = NavigationChange> {
    (
        btree_set(arb_reference(), 0..3),
        btree_set(arb_reference(), 0..3),
    )
        .prop_map(|(add, remove)| NavigationChange { add, remove })
}

/// Typed changes. A mono-valued property cannot be named `<x>_add` / `<x>_remove`: the flat
/// format reserves those names for navigation deltas.
pub fn arb_changes() -> impl Strategy<Value = Changes> {
    (
        btree_map(
            arb_key().prop_filter("delta suffixes are reserved", |k| {
                !k.ends_with("_add") && !k.ends_with("_remove")
            }),
            arb_property_change(),
            0..6,
        ),
        btree_map(arb_key(), arb_navigation_change(), 0..3),
    )
        .prop_map(|(properties, navigations)| Changes {
            properties,
            navigations,
        })
}

fn arb_entity_type_ref() -> impl Strategy<Value = EntityTypeRef> {
    (any_text(), any_text()).prop_map(|(id, identifier)| EntityTypeRef {
        id: id.into(),
        identifier,
    })
}

fn arb_resource_type_ref() -> impl Strategy<Value = ResourceTypeRef> {
    (
        any_text(),
        any_text(),
        arb_entity_type_ref(),
        arb_entity_type_ref(),
    )
        .prop_map(|(id, identifier, source, target)| ResourceTypeRef {
            id: id.into(),
            identifier,
            source_entity_type: source,
            target_entity_type: target,
        })
}

/// A consistent order: Added has an owner, Modified and Deleted have the existing target, and it
/// never depends on itself.
pub fn arb_order() -> impl Strategy<Value = ProvisioningOrder> {
    let head = (
        arb_key(),
        option::of(any_text()),
        prop_oneof![
            Just(ChangeType::Added),
            Just(ChangeType::Modified),
            Just(ChangeType::Deleted)
        ],
        option::of(any_text()),
        option::of(arb_owner()),
        arb_owner(),
    );
    let tail = (
        arb_resource_type_ref(),
        option::of(any_text()),
        arb_changes(),
        option::of(arb_resource()),
        arb_resource(),
        vec(arb_key(), 0..3),
        option::of(arb_datetime()),
        proptest::collection::btree_map(arb_key(), any_text(), 0..3),
    );
    (head, tail).prop_map(
        |(
            (order_id, art, change_type, workflow, owner, fallback_owner),
            (
                resource_type,
                connection,
                changes,
                resource,
                fallback_resource,
                depends_on,
                not_before,
                arguments,
            ),
        )| {
            let owner = match change_type {
                ChangeType::Added => Some(owner.unwrap_or(fallback_owner)),
                _ => owner,
            };
            let resource = match change_type {
                ChangeType::Added => resource,
                _ => Some(resource.unwrap_or(fallback_resource)),
            };
            let depends_on = depends_on
                .into_iter()
                .filter(|d| *d != order_id)
                .map(Into::into)
                .collect();
            ProvisioningOrder {
                order_id: order_id.into(),
                assigned_resource_type_id: art.map(Into::into),
                change_type,
                workflow_instance_id: workflow,
                owner,
                resource_type,
                connection: connection.map(Into::into),
                changes,
                resource,
                depends_on,
                not_before,
                arguments,
            }
        },
    )
}

/// A list of consistent orders with unique ids.
pub fn arb_orders_list() -> impl Strategy<Value = ProvisioningOrdersList> {
    vec(arb_order(), 0..5).prop_map(|orders| {
        let mut seen = HashSet::new();
        let orders = orders
            .into_iter()
            .filter(|o| seen.insert(o.order_id.clone()))
            .collect();
        ProvisioningOrdersList {
            provisioning_orders_list: orders,
        }
    })
}
