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

/// The allow-list: only declared properties, no sensitive attribute unless the mapping names it
/// explicitly, no attribute option, no name that is not an attribute name; each refusal names
/// the property, and one refused property refuses the whole order.
#[test]
fn only_declared_properties_are_written() {
    let m = EntityMapping::user();
    let refused = |property: &str| {
        let mut c = Changes::default();
        c.set("cn", "Ann")
            .set("sAMAccountName", "ann")
            .set("description", "fine")
            .set(property, "x");
        desired(&order(c), &m).map(|_| ())
    };
    let cases: &[(&str, &str)] = &[
        ("member", "sensitive"),
        ("MEMBER", "sensitive"),
        ("userAccountControl", "sensitive"),
        ("useraccountcontrol", "sensitive"),
        ("servicePrincipalName", "sensitive"),
        ("msDS-KeyCredentialLink", "sensitive"),
        ("msDS-AllowedToActOnBehalfOfOtherIdentity", "sensitive"),
        ("nTSecurityDescriptor", "sensitive"),
        ("primaryGroupID", "sensitive"),
        ("adminCount", "sensitive"),
        ("sIDHistory", "sensitive"),
        ("userCertificate;binary", "attribute option"),
        ("member;range=0-1", "attribute option"),
        ("member;range=0-*", "attribute option"),
        ("description;lang-en", "attribute option"),
        ("cn=x,dc=example,dc=test", "not a valid LDAP attribute name"),
        ("with space", "not a valid LDAP attribute name"),
        ("nul\0name", "not a valid LDAP attribute name"),
        ("", "not a valid LDAP attribute name"),
        ("objectClass", "cannot be written"),
        ("OBJECTCLASS", "cannot be written"),
        ("unicodePwd", "cannot be written"),
        ("memberOf", "cannot be written"),
        ("uSNChanged", "maintained by the directory"),
        ("favoriteColour", "not declared"),
        ("homeDirectory", "not declared"),
    ];
    for (property, reason) in cases {
        let e = refused(property).expect_err(property);
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{property}: {e}");
        assert!(!e.is_temporary(), "{property}: {e}");
        let text = e.to_string();
        assert!(text.contains(reason), "{property}: {text} lacks {reason}");
        if !property.contains('\0') {
            assert!(
                text.contains(&format!("`{property}`")),
                "{text} names the property"
            );
        }
    }
    // Declared names match without case, and keep the order's spelling in `changed`.
    let mut c = Changes::default();
    c.set("cn", "Ann")
        .set("sAMAccountName", "ann")
        .set("DESCRIPTION", "fine")
        .set("Mail", "ann@example.test")
        .set("Enabled", true);
    let d = desired(&order(c), &m).unwrap();
    assert_eq!(d.enabled, Some(("Enabled".into(), true)));
    let attrs: Vec<_> = d.scalars.iter().map(|w| w.attribute.as_str()).collect();
    assert!(
        attrs.contains(&"description") && attrs.contains(&"mail"),
        "{attrs:?}"
    );
}

/// The opt-in: a mapping that names a sensitive attribute in `Properties` (or `Attributes`)
/// lets orders write it; `Kinds` (export typing) opts nothing in; `Writable: false` is
/// read-only; the declared schema says the same.
#[test]
fn sensitive_attributes_need_an_explicit_opt_in() {
    use autoprov_connector::schema::{PropertySchema, ValueType};
    let mut m = EntityMapping::user();
    let spn = |m: &EntityMapping| {
        let mut c = Changes::default();
        c.set("servicePrincipalName", "HTTP/web.example.test");
        desired(&order(c), m).map(|d| d.scalars.len())
    };
    assert!(spn(&m).is_err());
    m.properties.insert(
        "servicePrincipalName".into(),
        PropertySchema::new(ValueType::String),
    );
    assert_eq!(spn(&m).unwrap(), 1);
    assert!(
        m.schema("user")
            .property("servicePrincipalName")
            .unwrap()
            .writable
    );

    let mut m = EntityMapping::user();
    m.attributes
        .insert("uac".into(), "userAccountControl".into());
    let mut c = Changes::default();
    c.set("uac", 66048i64);
    assert_eq!(
        desired(&order(c), &m).unwrap().scalars[0].attribute,
        "userAccountControl"
    );
    // userAccountControl is typed by Kinds in the default mapping, and not writable there.
    let user = EntityMapping::user().schema("user");
    for sensitive in ["userAccountControl", "primaryGroupID"] {
        assert!(!user.property(sensitive).unwrap().writable, "{sensitive}");
    }
    assert!(user.property("description").unwrap().writable);
    assert!(user.property("mail").unwrap().writable);

    let mut m = EntityMapping::user();
    m.properties.insert(
        "description".into(),
        PropertySchema::new(ValueType::String).read_only(),
    );
    let mut c = Changes::default();
    c.set("description", "x");
    let e = desired(&order(c), &m).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(!m.schema("user").property("description").unwrap().writable);

    // A mapping cannot declare a name with an option.
    let mut m = EntityMapping::user();
    m.properties.insert(
        "userCertificate;binary".into(),
        PropertySchema::new(ValueType::Binary),
    );
    assert_eq!(
        m.validate("u").unwrap_err().setting,
        "u.Properties.userCertificate;binary"
    );
    let mut m = EntityMapping::user();
    m.attributes
        .insert("cert".into(), "userCertificate;binary".into());
    assert_eq!(m.validate("u").unwrap_err().setting, "u.Attributes.cert");
}

/// Two properties of one order that write the same attribute (or the same managed property),
/// whatever their case or mapping, are refused: the outcome would depend on their order.
#[test]
fn one_attribute_is_written_by_one_property() {
    let mut m = EntityMapping::user();
    m.attributes.insert("login".into(), "sAMAccountName".into());
    let pairs = [
        ("description", "DESCRIPTION"),
        ("login", "sAMAccountName"),
        ("enabled", "Enabled"),
    ];
    for (a, b) in pairs {
        let mut c = Changes::default();
        c.set(a, "x").set(b, "y");
        let e = desired(&order(c), &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(e.to_string().contains("both write"), "{a}/{b}: {e}");
    }
}

#[test]
fn a_mapped_user_account_control_is_applied_after_the_password_never_before() {
    // The reference system's rules write userAccountControl itself (512, 514, 66048 =
    // enabled + password never expires); the mapping opts that property in.
    let mut m = EntityMapping::user();
    m.attributes
        .insert("uac".into(), "userAccountControl".into());
    let uac_of = |attrs: &BTreeMap<String, Vec<Vec<u8>>>| {
        String::from_utf8(attrs["userAccountControl"][0].clone()).unwrap()
    };
    let activation_uac = |d: &Desired| {
        activation(&m, d, true)
            .into_iter()
            .find(|(a, _, _)| *a == "userAccountControl")
            .map(|(_, v, p)| (String::from_utf8(v).unwrap(), p))
    };
    for (rule, created, applied) in [
        (66048i64, "66050", Some("66048")),
        (512, "514", Some("512")),
        // A rule that says disabled: created as it is, nothing to apply later.
        (514, "514", None),
        (66050, "66050", None),
    ] {
        let mut c = Changes::default();
        c.set("cn", "jdoe")
            .set("uac", rule)
            .set("password", Secret::new("Init-Passw0rd!"));
        let d = desired(&order(c), &m).unwrap();
        let attrs = creation_attributes(&m, &d, "jdoe");
        assert_eq!(uac_of(&attrs), created, "rule {rule}: created with");
        assert_eq!(
            activation_uac(&d),
            applied.map(|v| (v.to_owned(), Some("uac".to_owned()))),
            "rule {rule}: applied after the password"
        );
    }
    // As a string (orders files carry scalars as strings), and with the enabled flag: the
    // flag decides the disabled bit of the rule's value.
    let mut c = Changes::default();
    c.set("cn", "jdoe")
        .set("uac", "66048")
        .set("enabled", false);
    let d = desired(&order(c), &m).unwrap();
    assert_eq!(uac_of(&creation_attributes(&m, &d, "jdoe")), "66050");
    assert_eq!(activation_uac(&d), None);
    let mut c = Changes::default();
    c.set("cn", "jdoe").set("uac", "66050").set("enabled", true);
    let d = desired(&order(c), &m).unwrap();
    assert_eq!(activation_uac(&d).unwrap().0, "66048");
    // A value that is no integer is refused before any write, naming the property.
    let mut c = Changes::default();
    c.set("cn", "jdoe").set("uac", "enabled");
    let e = desired(&order(c), &m).unwrap_err();
    assert!(e.to_string().contains("`uac`"), "{e}");
    assert!(e.to_string().contains("userAccountControl"), "{e}");
}
