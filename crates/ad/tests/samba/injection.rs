//! Values shaped like LDAP syntax are stored literally (or refused with a typed error), never
//! interpreted.

use crate::support::*;
use autoprov_connector::dn::Dn;
use autoprov_connector::{Connector, ConnectorExt, ErrorKind, ExportRequest};
use autoprov_core::{ChangeType, Changes, PropertyValue, Reference, ScalarValue};

const SHAPES: &[&str] = &[
    "*)(objectClass=*",
    ",OU=Admins",
    "x,OU=Admins,DC=example,DC=test",
    "back\\slash",
    "#hash",
    "a+b",
    "semi;colon",
    "quote\"d",
    "<angle>",
    " lead and trail ",
    "eq=ual",
    "René Ünïcode 東京",
];

#[tokio::test]
async fn injection_shaped_names_and_values_are_stored_literally() {
    let Some(env) = ad_env("injection_shaped_names_and_values_are_stored_literally") else {
        return;
    };
    in_ou(&env.clone(), "inject", |admin, ou| async move {
        let ad = connector(&env).await;
        let ou_dn = Dn::parse(&ou).unwrap();
        let mut created = Vec::new();
        for (i, shape) in SHAPES.iter().enumerate() {
            let mut c = Changes::default();
            c.set("cn", *shape)
                .set("sAMAccountName", format!("i{}{i}", token()))
                .set("description", *shape)
                .set("enabled", false)
                .set_reference("parentdn", Reference::dn(ou.as_str()));
            let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
            let dn = Dn::parse(done.resource_id.as_str()).unwrap();
            assert_eq!(
                dn.rdn_value(),
                Some(*shape),
                "the RDN value is the literal name"
            );
            assert!(
                dn.parent().unwrap().same_as(&ou_dn),
                "{dn} stays in the test OU"
            );
            let entry = admin
                .read(done.resource_id.as_str(), &[])
                .await
                .expect("readable by its DN");
            assert_eq!(entry.attrs["cn"], vec![shape.to_string()]);
            assert_eq!(entry.attrs["description"], vec![shape.to_string()]);
            created.push((shape, done));
        }
        // Nothing was created anywhere else (e.g. in an `OU=Admins`).
        let batch = ad
            .export_all(
                ExportRequest::complete()
                    .of_types(["user".into()])
                    .within(ou.as_str()),
            )
            .await
            .unwrap();
        assert_eq!(batch.resources.len(), SHAPES.len());
        for (shape, done) in &created {
            let r = batch
                .resources
                .iter()
                .find(|r| r.stable_id == done.stable_id)
                .expect("exported");
            assert_eq!(
                r.get("cn"),
                Some(&PropertyValue::Scalar(ScalarValue::String(
                    shape.to_string()
                )))
            );
            assert_eq!(r.id, done.resource_id);
        }
        // Modify and rename with shaped values, found again by stable id.
        for (shape, done) in &created {
            let mut c = Changes::default();
            c.set("cn", format!("{shape} 2"))
                .set("description", format!("{shape}*"));
            let moved = apply(
                &ad,
                &order(
                    ChangeType::Modified,
                    "user",
                    c,
                    Some((done.resource_id.as_str(), done.stable_id.as_ref())),
                ),
            )
            .await;
            let entry = admin.read(moved.resource_id.as_str(), &[]).await.unwrap();
            assert_eq!(entry.attrs["cn"], vec![format!("{shape} 2")]);
            assert_eq!(entry.attrs["description"], vec![format!("{shape}*")]);
        }
    })
    .await;
}

#[tokio::test]
async fn nul_and_filter_shaped_keys_are_literal_or_refused() {
    let Some(env) = ad_env("nul_and_filter_shaped_keys_are_literal_or_refused") else {
        return;
    };
    in_ou(&env.clone(), "nul", |admin, ou| async move {
        let ad = connector(&env).await;
        // A NUL in a name or value: refused with a typed, permanent error, nothing written.
        // (Samba would store it, but then cannot delete the entry a second time: its tombstone
        // name is cut at the NUL.)
        for (property, value) in [("cn", "nul\0byte"), ("description", "nul\0value")] {
            let mut c = Changes::default();
            c.set("cn", "Nul Test")
                .set("sAMAccountName", format!("z{}", token()))
                .set("enabled", false)
                .set_reference("parentdn", Reference::dn(ou.as_str()));
            c.set(property, value);
            let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
            assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
            assert!(!e.is_temporary());
            assert!(e.to_string().contains("NUL"), "{e}");
        }
        let users = ad
            .export_all(
                ExportRequest::complete()
                    .of_types(["user".into()])
                    .within(ou.as_str()),
            )
            .await
            .unwrap();
        assert!(users.resources.is_empty(), "nothing written");

        // A filter-shaped sAMAccountName: the adoption path searches for its holder with an
        // escaped filter, so it finds exactly that account and nothing else.
        let holder_sam = format!("h{})(x", &token()[..6]);
        let mut c = Changes::default();
        c.set("cn", "Holder")
            .set("sAMAccountName", holder_sam.as_str())
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(ou.as_str()));
        match ad.fulfill(&order(ChangeType::Added, "user", c, None)).await {
            Ok(done) => {
                let done = done.executed().unwrap().clone();
                assert_eq!(
                    admin
                        .values(done.resource_id.as_str(), "sAMAccountName")
                        .await,
                    vec![holder_sam.clone()]
                );
                let mut c = Changes::default();
                c.set("cn", "Claimant")
                    .set("sAMAccountName", holder_sam.as_str())
                    .set("enabled", false)
                    .set_reference("parentdn", Reference::dn(ou.as_str()));
                let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                assert!(
                    e.to_string().contains("CN=Holder"),
                    "the escaped search found the holder: {e}"
                );
            }
            Err(e) => {
                println!("filter-shaped sAMAccountName: refused: {e}");
                assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
            }
        }

        // A group reference that is not a DN of an existing group: refused, nothing written.
        let sam = format!("r{}", token());
        let mut c = Changes::default();
        c.set("cn", "Ref Injection")
            .set("sAMAccountName", sam.as_str())
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(ou.as_str()))
            .add_reference("memberOf", Reference::dn(format!("CN=x)(|(cn=*,{ou}")));
        let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(
            admin
                .read(&format!("CN=Ref Injection,{ou}"), &[])
                .await
                .is_none()
        );
        // A malformed one too.
        let mut c = Changes::default();
        c.set("cn", "Ref Injection")
            .set("sAMAccountName", sam.as_str())
            .set_reference("parentdn", Reference::dn(ou.as_str()))
            .add_reference("memberOf", Reference::dn("CN=a,,OU=Admins"));
        let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert!(
            admin
                .read(&format!("CN=Ref Injection,{ou}"), &[])
                .await
                .is_none()
        );
    })
    .await;
}
