//! The LDIF preview is what the connector would write: applied to Samba with OpenLDAP's
//! `ldapmodify` (an independent client), it reaches the state the orders ask for.

use crate::support::*;
use autoprov_connector::Connector;
use autoprov_core::{
    ChangeType, Changes, PropertyValue, ProvisioningOrder, Reference, ScalarValue, Secret,
};

/// Renders orders; none may be refused, and the password never shows.
fn preview(ad: &autoprov_ad::AdConnector, orders: &[ProvisioningOrder]) -> String {
    let p = ad.preview(orders).expect("the AD connector renders LDIF");
    assert_eq!(p.format, "ldif");
    assert!(p.refused.is_empty(), "refused: {:?}", p.refused);
    assert!(!p.text.contains("Preview-Passw0rd"), "{}", p.text);
    p.text
}

/// Applies LDIF with `ldapmodify` over LDAPS, verifying the server with the test CA.
fn ldapmodify(env: &AdEnv, ldif: &str) {
    let path = std::env::temp_dir().join(format!("autoprov-preview-{}.ldif", token()));
    std::fs::write(&path, ldif).unwrap();
    let out = env.ldap_tool("ldapmodify", &["-f", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "ldapmodify refused the preview: {}\n{ldif}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_ldif_preview_applied_with_ldapmodify_does_what_the_orders_ask() {
    let Some(env) = ad_env("the_ldif_preview_applied_with_ldapmodify_does_what_the_orders_ask")
    else {
        return;
    };
    in_ou(&env.clone(), "ldif", |admin, ou| async move {
        let ad = connector(&env).await;
        let group = admin.create_group(&ou, &format!("g-{}", token())).await;
        let moved_to = format!("OU=Moved,{ou}");
        admin
            .add(&moved_to, vec![("objectClass", vec!["organizationalUnit"])])
            .await;

        // A joiner: a non-ASCII name (base64 in LDIF), a DN-special comma, a password (never
        // shown), a group. Disabled: an account enabled without a password is refused by AD, and
        // the LDIF cannot carry the password.
        let login = format!("l{}", token());
        let mut c = Changes::default();
        c.set("cn", "Zoë Préview, Jr")
            .set("sAMAccountName", login.as_str())
            .set("description", "joined through ldapmodify")
            .set("password", Secret::new("Preview-Passw0rd-1!"))
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(ou.as_str()))
            .add_reference("memberOf", Reference::dn(group.as_str()));
        let joiner = order(ChangeType::Added, "user", c, None);
        let text = preview(&ad, std::slice::from_ref(&joiner));
        assert!(text.contains("changetype: add"), "{text}");
        assert!(
            text.to_lowercase().contains("\ncn:: "),
            "a non-ASCII value is base64: {text}"
        );
        assert!(
            text.contains("1.2.840.113556.1.4.1413"),
            "permissive modify: {text}"
        );
        assert!(text.contains("unicodePwd: the order's initial password (not shown)"));
        ldapmodify(&env, &text);
        let dn = format!("CN=Zoë Préview\\, Jr,{ou}");
        assert_eq!(
            admin.values(&dn, "description").await,
            vec!["joined through ldapmodify"]
        );
        assert_eq!(
            admin.values(&dn, "sAMAccountName").await,
            vec![login.clone()]
        );
        assert_eq!(admin.values(&dn, "userAccountControl").await, vec!["514"]);
        let members = admin.members(&group).await;
        assert!(
            members.iter().any(|m| m.eq_ignore_ascii_case(&dn)),
            "{members:?}"
        );

        // A mover: new OU, new description, out of the group, a cleared attribute. The order
        // carries the current userAccountControl, as the planner's orders do.
        let mut c = Changes::default();
        c.set("description", "moved through ldapmodify")
            .clear("title")
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(moved_to.as_str()))
            .remove_reference("memberOf", Reference::dn(group.as_str()));
        let mut mover = order(ChangeType::Modified, "user", c, Some((&dn, None)));
        if let Some(r) = mover.resource.as_mut() {
            r.values.insert(
                "userAccountControl".into(),
                PropertyValue::Scalar(ScalarValue::Integer(514)),
            );
        }
        let text = preview(&ad, std::slice::from_ref(&mover));
        assert!(text.contains("changetype: modrdn"), "{text}");
        assert!(
            !text.contains("replace: userAccountControl"),
            "already disabled: nothing to write: {text}"
        );
        ldapmodify(&env, &text);
        let moved = format!("CN=Zoë Préview\\, Jr,{moved_to}");
        assert!(admin.read(&dn, &["cn"]).await.is_none(), "left the old OU");
        assert_eq!(
            admin.values(&moved, "description").await,
            vec!["moved through ldapmodify"]
        );
        assert!(admin.members(&group).await.is_empty());

        // A leaver.
        let leaver = order(
            ChangeType::Deleted,
            "user",
            Changes::default(),
            Some((&moved, None)),
        );
        let text = preview(&ad, std::slice::from_ref(&leaver));
        assert!(text.contains("changetype: delete"), "{text}");
        ldapmodify(&env, &text);
        assert!(admin.read(&moved, &["cn"]).await.is_none(), "deleted");
    })
    .await;
}

#[tokio::test]
async fn orders_the_connector_would_refuse_are_listed_not_rendered() {
    let Some(env) = ad_env("orders_the_connector_would_refuse_are_listed_not_rendered") else {
        return;
    };
    let ad = connector(&env).await;
    let mut good = Changes::default();
    good.set("cn", "Fine")
        .set("sAMAccountName", "fine")
        .set_reference("parentdn", Reference::dn(env.base_dn.as_str()));
    let mut bad = Changes::default();
    bad.set("cn", "Bad")
        .set("noSuchThing;x", "value")
        .set_reference("parentdn", Reference::dn(env.base_dn.as_str()));
    let orders = [
        order(ChangeType::Added, "user", good, None),
        order(ChangeType::Added, "user", bad, None),
        order(ChangeType::Modified, "user", Changes::default(), None),
    ];
    let p = ad.preview(&orders).expect("LDIF");
    assert_eq!(p.refused.len(), 2, "{:?}", p.refused);
    for (e, o) in p.refused.iter().zip(&orders[1..]) {
        assert!(
            e.to_string().contains(o.order_id.as_str()),
            "the error names the order: {e}"
        );
    }
    assert!(p.text.contains("CN=Fine,"), "{}", p.text);
    assert_eq!(p.text.matches("REFUSED").count(), 2, "{}", p.text);
    // Nothing was written: the preview does no I/O.
    let admin = Admin::connect(&env).await;
    assert!(
        admin
            .read(&format!("CN=Fine,{}", env.base_dn), &["cn"])
            .await
            .is_none()
    );
}
