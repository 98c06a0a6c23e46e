use super::*;
use autoprov_core::{ChangeType, Changes, EntityTypeRef, OrderId, Owner, ResourceTypeRef, Secret};

fn order(changes: Changes) -> ProvisioningOrder {
    ProvisioningOrder {
        order_id: OrderId::new("o-1"),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new("u-1", "jdoe")),
        resource_type: ResourceTypeRef {
            id: "rt".into(),
            identifier: "rt".into(),
            source_entity_type: EntityTypeRef {
                id: "person".into(),
                identifier: "person".into(),
            },
            target_entity_type: EntityTypeRef {
                id: "user".into(),
                identifier: "user".into(),
            },
        },
        connection: None,
        changes,
        resource: None,
        depends_on: Vec::new(),
        not_before: None,
        arguments: Default::default(),
    }
}

#[test]
fn desired_state_is_checked_without_io() {
    let m = EntityMapping::user();
    let mut c = Changes::default();
    c.set("cn", "Doe, John")
        .set("sAMAccountName", "jdoe")
        .set("description", "")
        .set("enabled", true)
        .set("password", Secret::new("Init-Passw0rd!"))
        .set_reference("parentdn", Reference::dn("OU=Sales,DC=example,DC=test"))
        .set_reference(
            "manager",
            Reference::dn("CN=Boss,OU=Sales,DC=example,DC=test"),
        )
        .add_reference(
            "memberOf",
            Reference::dn("CN=G,OU=Groups,DC=example,DC=test"),
        );
    let d = desired(&order(c), &m).unwrap();
    assert_eq!(d.rdn, Some(("cn".into(), "Doe, John".into())));
    assert_eq!(d.enabled, Some(("enabled".into(), true)));
    assert!(d.password.is_some());
    assert_eq!(d.groups_add.len(), 1);
    let desc = d
        .scalars
        .iter()
        .find(|w| w.property == "description")
        .unwrap();
    assert_eq!(desc.value, None, "an empty string clears");
    let manager = d.scalars.iter().find(|w| w.property == "manager").unwrap();
    assert!(manager.is_dn);
    assert!(!format!("{d:?}").contains("Init-Passw0rd!"));
}

#[test]
fn invalid_orders_are_refused_before_any_write() {
    let m = EntityMapping::user();
    let cases: Vec<(Changes, &str)> = vec![
        (
            {
                let mut c = Changes::default();
                c.set("enabled", "yes");
                c
            },
            "enabled",
        ),
        (
            {
                let mut c = Changes::default();
                c.clear("parentdn");
                c
            },
            "parentdn",
        ),
        (
            {
                let mut c = Changes::default();
                c.set_reference("parentdn", Reference::dn("CN=a,,DC=x"));
                c
            },
            "parentdn",
        ),
        (
            {
                let mut c = Changes::default();
                c.set_reference("manager", Reference::id("r-1"));
                c
            },
            "manager",
        ),
        (
            {
                let mut c = Changes::default();
                c.set("description", Secret::new("x"));
                c
            },
            "secret",
        ),
        (
            {
                let mut c = Changes::default();
                c.set("unicodePwd", "x");
                c
            },
            "unicodePwd",
        ),
        (
            {
                let mut c = Changes::default();
                c.set("bad attr", "x");
                c
            },
            "bad attr",
        ),
        (
            {
                let mut c = Changes::default();
                c.clear("password");
                c
            },
            "password",
        ),
        (
            {
                let mut c = Changes::default();
                c.add_reference("directReports", Reference::dn("CN=x,DC=y"));
                c
            },
            "directReports",
        ),
        (
            {
                let mut c = Changes::default();
                c.set("cn", 5i64);
                c
            },
            "cn",
        ),
    ];
    for (changes, needle) in cases {
        let e = desired(&order(changes), &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
}

#[test]
fn ldap_values() {
    use chrono::TimeZone;
    let d = chrono::Utc.with_ymd_and_hms(2026, 1, 31, 8, 0, 0).unwrap();
    let op = Operation::Update;
    assert_eq!(
        ldap_value("x", &ScalarValue::DateTime(d), op)
            .unwrap()
            .unwrap(),
        b"20260131080000.0Z"
    );
    assert_eq!(
        ldap_value("x", &ScalarValue::Bool(true), op)
            .unwrap()
            .unwrap(),
        b"TRUE"
    );
    assert_eq!(
        ldap_value("x", &ScalarValue::Integer(-1), op)
            .unwrap()
            .unwrap(),
        b"-1"
    );
    assert_eq!(ldap_value("x", &"".into(), op).unwrap(), None);
}

/// Filter values go through `ldap3::ldap_escape` (RFC 4515): the filter's own syntax and NUL
/// never reach the server raw.
#[test]
fn filter_values_are_escaped() {
    let cases = [
        ("plain", "plain"),
        ("*)(objectClass=*", "\\2a\\29\\28objectClass=\\2a"),
        ("a\\b", "a\\5cb"),
        ("nul\0", "nul\\00"),
        ("René", "René"),
    ];
    for (raw, escaped) in cases {
        assert_eq!(ldap_escape(raw), escaped, "{raw:?}");
    }
}

proptest::proptest! {
    #[test]
    fn filter_value_has_no_special_characters(value in "\\PC{0,24}|[*()\\\\\0a-z]{0,12}") {
        let e = ldap_escape(value.as_str());
        proptest::prop_assert!(!e.contains(['*', '(', ')', '\0']));
        // every backslash starts a two-digit hex escape
        let bytes = e.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\\' {
                proptest::prop_assert!(bytes.len() > i + 2);
                proptest::prop_assert!(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit());
            }
        }
    }
}
