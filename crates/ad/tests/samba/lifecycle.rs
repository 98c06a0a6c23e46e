//! Joiner, mover, leaver, re-application and adoption against the real directory.

use crate::support::*;
use autoprov_ad::{AdConnector, EntityMapping};
use autoprov_connector::{Connector, ErrorKind, Operation};
use autoprov_core::{ChangeType, Changes, Reference, Secret, StableId};

const PASSWORD: &str = "Init-Passw0rd-42!";

fn joiner_changes(ou: &str, name: &str, sam: &str, groups: &[&str]) -> Changes {
    let mut c = Changes::default();
    c.set("cn", name)
        .set("sAMAccountName", sam)
        .set("userPrincipalName", format!("{sam}@example.test"))
        .set("givenName", "Jane")
        .set("sn", name)
        .set("department", "Sales")
        .set("password", Secret::new(PASSWORD))
        .set("enabled", true)
        .set_reference("parentdn", Reference::dn(ou));
    for g in groups {
        c.add_reference("memberOf", Reference::dn(*g));
    }
    c
}

/// Binds as a user over LDAPS with a password: `Ok` or the LDAP result code.
async fn bind_as(env: &AdEnv, login: &str, password: &str) -> Result<(), u32> {
    let admin = Admin::connect(env).await;
    drop(admin);
    let pem = std::fs::read(&env.ca_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let settings = ldap3::LdapConnSettings::new().set_config(std::sync::Arc::new(config));
    let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &env.url)
        .await
        .unwrap();
    ldap3::drive!(conn);
    let res = ldap.simple_bind(login, password).await.unwrap();
    let _ = ldap.unbind().await;
    if res.rc == 0 { Ok(()) } else { Err(res.rc) }
}

#[tokio::test]
async fn joiner_is_created_disabled_then_enabled_with_password_and_groups() {
    let Some(env) = ad_env("joiner_is_created_disabled_then_enabled_with_password_and_groups")
    else {
        return;
    };
    in_ou(&env.clone(), "joiner", |admin, ou| async move {
        let ad = connector(&env).await;
        let g1 = admin.create_group(&ou, &format!("g1-{}", token())).await;
        let g2 = admin.create_group(&ou, &format!("g2-{}", token())).await;
        let sam = format!("j{}", token());
        let order = order(
            ChangeType::Added,
            "user",
            joiner_changes(&ou, "Jane Joiner", &sam, &[&g1, &g2]),
            None,
        );
        let done = apply(&ad, &order).await;
        let dn = format!("CN=Jane Joiner,{ou}");
        assert_eq!(done.resource_id.as_str(), dn);
        assert!(!done.adopted);
        let guid = done.stable_id.clone().expect("a stable id");
        for p in [
            "cn",
            "sAMAccountName",
            "password",
            "enabled",
            "memberOf",
            "parentdn",
        ] {
            assert!(done.changed.contains(p), "{p} not in {:?}", done.changed);
        }

        // Independent checks through plain ldap3.
        let entry = admin
            .read(&dn, &["memberOf", "objectGUID"])
            .await
            .expect("created");
        assert_eq!(entry.attrs["userAccountControl"], vec!["512"]);
        assert_eq!(entry.attrs["department"], vec!["Sales"]);
        assert_ne!(entry.attrs["pwdLastSet"], vec!["0"], "a password was set");
        let mut member_of = entry.attrs["memberOf"].clone();
        member_of.sort();
        let mut expected = vec![g1.clone(), g2.clone()];
        expected.sort();
        assert_eq!(member_of, expected);
        assert!(admin.members(&g1).await.contains(&dn.to_ascii_lowercase()));
        let guid_bytes = &entry.bin_attrs["objectGUID"][0];
        assert_eq!(
            autoprov_ad::guid::guid_to_string(guid_bytes).unwrap(),
            guid.as_str()
        );

        // The user can bind with the initial password over LDAPS (by UPN and by DN).
        bind_as(&env, &format!("{sam}@example.test"), PASSWORD)
            .await
            .expect("the new user binds with the initial password");
        bind_as(&env, &dn, PASSWORD).await.expect("bind by DN");
        assert_eq!(bind_as(&env, &dn, "Wrong-Passw0rd!").await, Err(49));

        // Independent client: ldapsearch over LDAPS with the test CA.
        let out = std::process::Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", &env.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-H", &env.url, "-x", "-LLL", "-o", "ldif-wrap=no"])
            .args(["-D", &env.bind_dn, "-w", &env.password, "-b", &ou])
            .arg(format!("(sAMAccountName={sam})"))
            .args(["userAccountControl", "memberOf", "distinguishedName"])
            .output()
            .expect("ldapsearch (ldap-utils) is installed by the test-server script");
        assert!(
            out.status.success(),
            "ldapsearch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("dn: {dn}")), "{text}");
        assert!(text.contains("userAccountControl: 512"), "{text}");
        assert!(text.contains(&format!("memberOf: {g1}")), "{text}");
        assert!(text.contains(&format!("memberOf: {g2}")), "{text}");

        // Re-applying the same Added order adopts the account and writes nothing.
        let before = usn(&admin, &dn).await;
        let again = apply(&ad, &order).await;
        assert!(again.adopted);
        assert!(again.changed.is_empty(), "{:?}", again.changed);
        assert_eq!(again.stable_id.as_ref(), Some(&guid));
        assert_eq!(usn(&admin, &dn).await, before, "nothing was written");
        assert_eq!(
            bind_as(&env, &dn, PASSWORD).await,
            Ok(()),
            "password untouched"
        );
    })
    .await;
}

#[tokio::test]
async fn joiner_disabled_with_must_change_password() {
    let Some(env) = ad_env("joiner_disabled_with_must_change_password") else {
        return;
    };
    in_ou(&env.clone(), "mustchange", |admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("m{}", token());
        let mut c = joiner_changes(&ou, "Max Mustchange", &sam, &[]);
        c.set("enabled", false).set("mustChangePassword", true);
        let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let entry = admin.read(done.resource_id.as_str(), &[]).await.unwrap();
        assert_eq!(
            entry.attrs["userAccountControl"],
            vec!["514"],
            "stays disabled"
        );
        assert_eq!(
            entry.attrs["pwdLastSet"],
            vec!["0"],
            "must change at first logon"
        );
    })
    .await;
}

#[tokio::test]
async fn generated_password_when_the_order_has_none() {
    let Some(env) = ad_env("generated_password_when_the_order_has_none") else {
        return;
    };
    in_ou(&env.clone(), "genpw", |admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("p{}", token());
        let mut c = Changes::default();
        c.set("cn", "Gen Password")
            .set("sAMAccountName", sam.as_str())
            .set("enabled", true)
            .set_reference("parentdn", Reference::dn(ou.as_str()));
        let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert!(done.changed.contains("password"), "{:?}", done.changed);
        let entry = admin.read(done.resource_id.as_str(), &[]).await.unwrap();
        assert_eq!(entry.attrs["userAccountControl"], vec!["512"]);
        assert_ne!(
            entry.attrs["pwdLastSet"],
            vec!["0"],
            "a generated password was set"
        );
        // It is handed back for delivery (and nowhere else), and it is the one that works.
        let password = done
            .initial_password
            .clone()
            .expect("the generated password is handed back for delivery");
        assert!(
            !format!("{done:?}").contains(password.expose().unwrap()),
            "Debug masks it"
        );
        assert!(
            can_bind(&env, done.resource_id.as_str(), password.expose().unwrap()).await,
            "the account binds with the delivered password"
        );
        assert!(!can_bind(&env, done.resource_id.as_str(), "Not-The-Passw0rd!").await);
    })
    .await;
}

#[tokio::test]
async fn a_resent_added_order_that_adopts_its_account_sets_a_new_password() {
    let Some(env) = ad_env("a_resent_added_order_that_adopts_its_account_sets_a_new_password")
    else {
        return;
    };
    in_ou(&env.clone(), "resent", |_admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("r{}", token());
        let mut c = Changes::default();
        c.set("cn", "Resent Order")
            .set("sAMAccountName", sam.as_str())
            .set("enabled", true)
            .set_reference("parentdn", Reference::dn(ou.as_str()));
        let order = order(ChangeType::Added, "user", c, None);
        // The first attempt created the account; its password was never delivered (the
        // process stopped before).
        let first = apply(&ad, &order).await;
        let lost = first.initial_password.clone().expect("generated");
        let dn = first.resource_id.as_str().to_owned();

        // The same order again, without the argument: adopted, the password untouched.
        let again = apply(&ad, &order).await;
        assert!(
            again.adopted && again.initial_password.is_none(),
            "{again:?}"
        );
        assert!(can_bind(&env, &dn, lost.expose().unwrap()).await);

        // Sent again by the dispatcher after that attempt: a new password, handed back, that
        // works; the lost one no longer does.
        let mut resent = order.clone();
        resent.arguments.insert(
            autoprov_connector::RESENT_ARGUMENT.to_owned(),
            "true".to_owned(),
        );
        let done = apply(&ad, &resent).await;
        assert!(done.adopted, "{done:?}");
        let fresh = done
            .initial_password
            .clone()
            .expect("a new password is handed back for delivery");
        assert_ne!(fresh.expose(), lost.expose());
        assert!(can_bind(&env, &dn, fresh.expose().unwrap()).await);
        assert!(!can_bind(&env, &dn, lost.expose().unwrap()).await);
    })
    .await;
}

#[tokio::test]
async fn mover_changes_ou_and_groups_keeping_object_guid() {
    let Some(env) = ad_env("mover_changes_ou_and_groups_keeping_object_guid") else {
        return;
    };
    in_ou(&env.clone(), "mover", |admin, ou| async move {
        let ad = connector(&env).await;
        let sales = format!("OU=Sales,{ou}");
        let marketing = format!("OU=Marketing,{ou}");
        admin
            .add(&sales, vec![("objectClass", vec!["organizationalUnit"])])
            .await;
        admin
            .add(
                &marketing,
                vec![("objectClass", vec!["organizationalUnit"])],
            )
            .await;
        let sales_g = admin.create_group(&ou, &format!("sales-{}", token())).await;
        let marketing_g = admin.create_group(&ou, &format!("mkt-{}", token())).await;
        let sam = format!("v{}", token());
        let created = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&sales, "Max Mover", &sam, &[&sales_g]),
                None,
            ),
        )
        .await;
        let guid = created.stable_id.clone().unwrap();
        assert!(
            admin
                .members(&sales_g)
                .await
                .contains(&created.resource_id.as_str().to_ascii_lowercase())
        );

        // Department change: move to the Marketing OU and swap the groups, in one order.
        let mut c = Changes::default();
        c.set("department", "Marketing")
            .set_reference("parentdn", Reference::dn(marketing.as_str()))
            .add_reference("memberOf", Reference::dn(marketing_g.as_str()))
            .remove_reference("memberOf", Reference::dn(sales_g.as_str()));
        let move_order = order(
            ChangeType::Modified,
            "user",
            c,
            Some((created.resource_id.as_str(), Some(&guid))),
        );
        let moved = apply(&ad, &move_order).await;
        let new_dn = format!("CN=Max Mover,{marketing}");
        assert_eq!(moved.resource_id.as_str(), new_dn);
        assert_eq!(
            moved.stable_id.as_ref(),
            Some(&guid),
            "objectGUID unchanged"
        );
        for p in ["department", "parentdn", "memberOf"] {
            assert!(moved.changed.contains(p), "{p} in {:?}", moved.changed);
        }
        assert!(
            admin
                .read(created.resource_id.as_str(), &[])
                .await
                .is_none(),
            "old DN is gone"
        );
        let entry = admin
            .read(&new_dn, &["memberOf", "objectGUID"])
            .await
            .unwrap();
        assert_eq!(
            autoprov_ad::guid::guid_to_string(&entry.bin_attrs["objectGUID"][0]).unwrap(),
            guid.as_str()
        );
        assert_eq!(entry.attrs["department"], vec!["Marketing"]);
        assert_eq!(
            entry.attrs["memberOf"],
            vec![marketing_g.clone()],
            "memberOf follows"
        );
        assert!(
            !admin
                .members(&sales_g)
                .await
                .contains(&new_dn.to_ascii_lowercase())
        );
        assert!(
            admin
                .members(&marketing_g)
                .await
                .contains(&new_dn.to_ascii_lowercase())
        );

        // The same order again (its Resource still names the old DN): found by objectGUID,
        // nothing to do.
        let before = usn(&admin, &new_dn).await;
        let again = apply(&ad, &move_order).await;
        assert!(again.changed.is_empty(), "{:?}", again.changed);
        assert_eq!(again.resource_id.as_str(), new_dn);
        assert_eq!(usn(&admin, &new_dn).await, before);

        // A rename keeps the objectGUID too.
        let mut c = Changes::default();
        c.set("cn", "Max Renamed");
        let renamed = apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((new_dn.as_str(), Some(&guid))),
            ),
        )
        .await;
        assert_eq!(
            renamed.resource_id.as_str(),
            format!("CN=Max Renamed,{marketing}")
        );
        assert_eq!(renamed.stable_id.as_ref(), Some(&guid));
        assert!(
            admin
                .members(&marketing_g)
                .await
                .contains(&renamed.resource_id.as_str().to_ascii_lowercase())
        );
    })
    .await;
}

#[tokio::test]
async fn leaver_is_disabled_then_deleted() {
    let Some(env) = ad_env("leaver_is_disabled_then_deleted") else {
        return;
    };
    in_ou(&env.clone(), "leaver", |admin, ou| async move {
        let ad = connector(&env).await;
        let g = admin.create_group(&ou, &format!("g-{}", token())).await;
        let sam = format!("l{}", token());
        let created = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Lee Leaver", &sam, &[&g]),
                None,
            ),
        )
        .await;
        let dn = created.resource_id.to_string();
        let guid = created.stable_id.clone().unwrap();

        let mut c = Changes::default();
        c.set("enabled", false);
        let disabled = apply(
            &ad,
            &order(ChangeType::Modified, "user", c, Some((&dn, Some(&guid)))),
        )
        .await;
        assert_eq!(disabled.changed.iter().collect::<Vec<_>>(), vec!["enabled"]);
        assert_eq!(admin.values(&dn, "userAccountControl").await, vec!["514"]);
        assert_eq!(
            bind_as(&env, &dn, PASSWORD).await,
            Err(49),
            "a disabled account cannot bind"
        );

        let delete = order(
            ChangeType::Deleted,
            "user",
            Changes::default(),
            Some((&dn, Some(&guid))),
        );
        let deleted = apply(&ad, &delete).await;
        assert!(!deleted.is_noop());
        assert!(admin.read(&dn, &[]).await.is_none(), "deleted");
        assert!(!admin.members(&g).await.contains(&dn.to_ascii_lowercase()));
        // Deleting a missing entry succeeds and changes nothing.
        let again = apply(&ad, &delete).await;
        assert!(again.is_noop());
    })
    .await;
}

#[tokio::test]
async fn leaver_disabled_instead_of_deleted_when_configured() {
    let Some(env) = ad_env("leaver_disabled_instead_of_deleted_when_configured") else {
        return;
    };
    in_ou(&env.clone(), "disable", |admin, ou| async move {
        let mut mapping = EntityMapping::user();
        mapping.disable_instead_of_delete = true;
        let ad = AdConnector::builder()
            .server(&env.url, &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .entity_type("user", mapping)
            .build()
            .await
            .unwrap();
        let sam = format!("d{}", token());
        let created = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Dee Disable", &sam, &[]),
                None,
            ),
        )
        .await;
        let dn = created.resource_id.to_string();
        let delete = order(
            ChangeType::Deleted,
            "user",
            Changes::default(),
            Some((&dn, created.stable_id.as_ref())),
        );
        let done = apply(&ad, &delete).await;
        assert!(done.changed.contains("enabled"));
        assert_eq!(
            admin.values(&dn, "userAccountControl").await,
            vec!["514"],
            "disabled, not deleted"
        );
        assert!(apply(&ad, &delete).await.is_noop(), "already disabled");
    })
    .await;
}

#[tokio::test]
async fn a_different_account_holding_the_name_is_not_adopted() {
    let Some(env) = ad_env("a_different_account_holding_the_name_is_not_adopted") else {
        return;
    };
    in_ou(&env.clone(), "adopt", |admin, ou| async move {
        let ad = connector(&env).await;
        let other = format!("o{}", token());
        admin
            .add(
                &format!("CN=Ann Adopt,{ou}"),
                vec![
                    ("objectClass", vec!["user"]),
                    ("sAMAccountName", vec![other.as_str()]),
                ],
            )
            .await;
        // Same DN, another sAMAccountName: not the same account.
        let sam = format!("a{}", token());
        let e = refuse(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Ann Adopt", &sam, &[]),
                None,
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains(&other), "{e}");
        // Another DN, same sAMAccountName: the holder is named.
        let e = refuse(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Ann Other", &other, &[]),
                None,
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("Ann Adopt"), "{e}");
        assert!(
            admin
                .read(&format!("CN=Ann Other,{ou}"), &[])
                .await
                .is_none()
        );

        // The same account created by hand (disabled, no groups) is adopted and converged.
        let g = admin.create_group(&ou, &format!("g-{}", token())).await;
        let sam2 = format!("b{}", token());
        admin
            .add(
                &format!("CN=Bob Adopt,{ou}"),
                vec![
                    ("objectClass", vec!["user"]),
                    ("sAMAccountName", vec![sam2.as_str()]),
                    ("userAccountControl", vec!["514"]),
                ],
            )
            .await;
        let mut c = joiner_changes(&ou, "Bob Adopt", &sam2, &[&g]);
        c.properties.remove("password");
        let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert!(done.adopted);
        assert!(
            done.changed.contains("memberOf") && done.changed.contains("givenName"),
            "{:?}",
            done.changed
        );
        let dn = format!("CN=Bob Adopt,{ou}");
        assert_eq!(admin.values(&dn, "givenName").await, vec!["Jane"]);
        assert!(admin.members(&g).await.contains(&dn.to_ascii_lowercase()));
    })
    .await;
}

#[tokio::test]
async fn weak_password_is_refused_with_nothing_created() {
    let Some(env) = ad_env("weak_password_is_refused_with_nothing_created") else {
        return;
    };
    in_ou(&env.clone(), "weakpw", |admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("w{}", token());
        let mut c = joiner_changes(&ou, "Wes Weak", &sam, &[]);
        c.set("password", Secret::new("abc"));
        let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert_eq!(e.operation(), Operation::SetPassword, "{e}");
        assert!(!e.is_temporary());
        let text = e.to_string();
        assert!(text.contains("0000052D"), "AD's diagnostic is kept: {text}");
        assert!(
            text.contains("owner-7") && text.contains("CN=Wes Weak"),
            "{text}"
        );
        assert!(!text.contains("abc\""), "{text}");
        assert!(
            admin
                .read(&format!("CN=Wes Weak,{ou}"), &[])
                .await
                .is_none(),
            "nothing written"
        );
    })
    .await;
}

#[tokio::test]
async fn password_over_plain_ldap_is_refused_with_nothing_written() {
    let Some(env) = ad_env("password_over_plain_ldap_is_refused_with_nothing_written") else {
        return;
    };
    in_ou(&env.clone(), "plain", |admin, ou| async move {
        let ad = plain_connector(&env).await;
        ad.check().await.expect("plain LDAP works for tests");
        let sam = format!("n{}", token());
        let e = refuse(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Pat Plain", &sam, &[]),
                None,
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
        assert_eq!(e.operation(), Operation::SetPassword);
        assert!(!e.to_string().contains(PASSWORD));
        assert!(
            admin
                .read(&format!("CN=Pat Plain,{ou}"), &[])
                .await
                .is_none(),
            "nothing written"
        );

        // A generated password is refused the same way, and so is a password change.
        let mut c = joiner_changes(&ou, "Pat Plain", &sam, &[]);
        c.properties.remove("password");
        let e = refuse(&ad, &order(ChangeType::Added, "user", c, None)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
        assert!(
            admin
                .read(&format!("CN=Pat Plain,{ou}"), &[])
                .await
                .is_none()
        );

        let ldaps = connector(&env).await;
        let mut c = joiner_changes(&ou, "Pat Plain", &sam, &[]);
        c.set("enabled", false);
        let created = apply(&ldaps, &order(ChangeType::Added, "user", c, None)).await;
        let dn = created.resource_id.to_string();
        let before = usn(&admin, &dn).await;
        let mut c = Changes::default();
        c.set("password", Secret::new("Other-Passw0rd-9!"))
            .set("description", "x");
        let e = refuse(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, created.stable_id.as_ref())),
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
        assert_eq!(usn(&admin, &dn).await, before, "nothing written");
        assert!(admin.values(&dn, "description").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn starttls_connection_works() {
    let Some(env) = ad_env("starttls_connection_works") else {
        return;
    };
    let ad = AdConnector::builder()
        .server(&env.starttls_url, &env.base_dn)
        .bind(&env.bind_dn_full, env.password.as_str())
        .tls_mode(autoprov_ad::TlsMode::StartTls)
        .ca_certificate_file(&env.ca_file)
        .build()
        .await
        .expect("StartTLS with the test CA");
    ad.check().await.unwrap();
}

#[tokio::test]
async fn refused_credentials_and_untrusted_certificates_are_classified() {
    let Some(env) = ad_env("refused_credentials_and_untrusted_certificates_are_classified") else {
        return;
    };
    let e = AdConnector::builder()
        .server(&env.url, &env.base_dn)
        .bind(&env.bind_dn, "Not-The-Password-1")
        .ca_certificate_file(&env.ca_file)
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.is_temporary());
    assert!(e.to_string().contains("invalid credentials"), "{e}");

    let lazy = AdConnector::builder()
        .server(&env.url, &env.base_dn)
        .bind(&env.bind_dn, "Not-The-Password-1")
        .ca_certificate_file(&env.ca_file)
        .connect_lazily(true)
        .build()
        .await
        .unwrap();
    assert_eq!(
        lazy.check().await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );

    // A CA that did not sign the server's certificate: verification fails, permanently.
    let other_ca = std::env::temp_dir().join(format!("autoprov-other-ca-{}.pem", token()));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .args(["-keyout", "/dev/null", "-out"])
        .arg(&other_ca)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let e = AdConnector::builder()
        .server(&env.url, &env.base_dn)
        .bind(&env.bind_dn, env.password.as_str())
        .ca_certificate_file(&other_ca)
        .build()
        .await
        .unwrap_err();
    let _ = std::fs::remove_file(&other_ca);
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");

    // Nobody listening: temporary.
    let e = AdConnector::builder()
        .server("ldaps://127.0.0.1:1", &env.base_dn)
        .bind(&env.bind_dn, env.password.as_str())
        .ca_certificate_file(&env.ca_file)
        .build()
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn modified_and_deleted_orders_of_missing_targets() {
    let Some(env) = ad_env("modified_and_deleted_orders_of_missing_targets") else {
        return;
    };
    in_ou(&env.clone(), "missing", |_admin, ou| async move {
        let ad = connector(&env).await;
        let dn = format!("CN=Nobody,{ou}");
        let ghost = StableId::new("00000000-1111-2222-3333-444444444444");
        let mut c = Changes::default();
        c.set("description", "x");
        let e = refuse(
            &ad,
            &order(ChangeType::Modified, "user", c, Some((&dn, Some(&ghost)))),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains(&dn), "{e}");
        let done = apply(
            &ad,
            &order(
                ChangeType::Deleted,
                "user",
                Changes::default(),
                Some((&dn, Some(&ghost))),
            ),
        )
        .await;
        assert!(done.is_noop());
    })
    .await;
}

#[tokio::test]
async fn modified_orders_with_current_values_compare_and_swap() {
    let Some(env) = ad_env("modified_orders_with_current_values_compare_and_swap") else {
        return;
    };
    in_ou(&env.clone(), "cas", |admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("c{}", token());
        let mut c = joiner_changes(&ou, "Cas User", &sam, &[]);
        c.set("description", "one");
        let created = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let dn = created.resource_id.to_string();
        let guid = created.stable_id.clone().unwrap();
        // A Modified order as the planner writes it: Resource holds the values it compared.
        let modify = |from: Option<&str>, to: &str| {
            let mut c = Changes::default();
            c.set("description", to);
            let mut o = order(ChangeType::Modified, "user", c, Some((&dn, Some(&guid))));
            if let (Some(r), Some(from)) = (o.resource.as_mut(), from) {
                r.values.insert("description".into(), from.into());
            }
            o
        };
        let one_two = modify(Some("one"), "two");
        let done = apply(&ad, &one_two).await;
        assert_eq!(done.changed.iter().collect::<Vec<_>>(), vec!["description"]);
        assert_eq!(done.resource_id.as_str(), dn);
        assert_eq!(admin.values(&dn, "description").await, vec!["two"]);

        // Re-applied: the old value is gone, nothing is written.
        let before = usn(&admin, &dn).await;
        assert!(apply(&ad, &one_two).await.changed.is_empty());
        assert_eq!(usn(&admin, &dn).await, before);

        // Drift since the Resource was read: the swap does not apply, the order still wins.
        admin
            .modify(
                &dn,
                vec![ldap3::Mod::Replace(
                    "description".into(),
                    ["drift".to_owned()].into(),
                )],
            )
            .await;
        let done = apply(&ad, &modify(Some("two"), "three")).await;
        assert!(done.changed.contains("description"));
        assert_eq!(admin.values(&dn, "description").await, vec!["three"]);

        // No old value known: the read, compare and write path.
        let done = apply(&ad, &modify(None, "four")).await;
        assert!(done.changed.contains("description"));
        assert_eq!(admin.values(&dn, "description").await, vec!["four"]);
        // From empty.
        let mut c = Changes::default();
        c.set("title", "Engineer");
        let done = apply(
            &ad,
            &order(ChangeType::Modified, "user", c, Some((&dn, Some(&guid)))),
        )
        .await;
        assert!(done.changed.contains("title"));
        assert_eq!(admin.values(&dn, "title").await, vec!["Engineer"]);
    })
    .await;
}

#[tokio::test]
async fn manager_is_written_and_exported_as_a_dn() {
    let Some(env) = ad_env("manager_is_written_and_exported_as_a_dn") else {
        return;
    };
    in_ou(&env.clone(), "manager", |admin, ou| async move {
        use autoprov_connector::{ConnectorExt, ExportRequest};
        let ad = connector(&env).await;
        let boss = apply(
            &ad,
            &order(
                ChangeType::Added,
                "user",
                joiner_changes(&ou, "Bea Boss", &format!("b{}", token()), &[]),
                None,
            ),
        )
        .await;
        let mut c = joiner_changes(&ou, "Ed Employee", &format!("e{}", token()), &[]);
        c.set_reference("manager", Reference::dn(boss.resource_id.as_str()));
        let employee = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let dn = employee.resource_id.to_string();
        assert_eq!(
            admin.values(&dn, "manager").await,
            vec![boss.resource_id.to_string()]
        );
        let batch = ad
            .export_all(
                ExportRequest::complete()
                    .of_types(["user".into()])
                    .within(ou.as_str()),
            )
            .await
            .unwrap();
        let exported = batch
            .resources
            .iter()
            .find(|r| r.id.as_str() == dn)
            .unwrap();
        assert_eq!(
            exported
                .get("manager")
                .and_then(|v| v.as_reference())
                .and_then(|r| r.dn_value()),
            Some(boss.resource_id.as_str())
        );
        // The same manager spelled differently: no change.
        let mut c = Changes::default();
        c.set_reference(
            "manager",
            Reference::dn(boss.resource_id.as_str().to_ascii_lowercase()),
        );
        let same = apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, employee.stable_id.as_ref())),
            ),
        )
        .await;
        assert!(same.changed.is_empty(), "{:?}", same.changed);
        // A manager that does not exist: refused, nothing written.
        let before = usn(&admin, &dn).await;
        let mut c = Changes::default();
        c.set_reference("manager", Reference::dn(format!("CN=Nobody,{ou}")))
            .set("description", "with a ghost manager");
        let e = refuse(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, employee.stable_id.as_ref())),
            ),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert_eq!(usn(&admin, &dn).await, before);
        // Cleared.
        let mut c = Changes::default();
        c.clear("manager");
        let cleared = apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, employee.stable_id.as_ref())),
            ),
        )
        .await;
        assert!(cleared.changed.contains("manager"));
        assert!(admin.values(&dn, "manager").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn no_fallback_password_when_the_settings_generate_none() {
    let Some(env) = ad_env("no_fallback_password_when_the_settings_generate_none") else {
        return;
    };
    in_ou(&env.clone(), "nopw", |admin, ou| async move {
        let ad = connector(&env).await;
        let sam = format!("n{}", token());
        let mut c = Changes::default();
        c.set("cn", "No Password")
            .set("sAMAccountName", sam.as_str())
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(ou.as_str()));
        let mut o = order(ChangeType::Added, "user", c, None);
        // What the dispatcher says for a resource type whose password settings have Mode 0.
        o.arguments.insert(
            autoprov_connector::schema::NO_GENERATED_PASSWORD.to_owned(),
            "true".to_owned(),
        );
        let done = apply(&ad, &o).await;
        assert!(done.initial_password.is_none(), "nothing generated");
        assert!(!done.changed.contains("password"), "{:?}", done.changed);
        let entry = admin.read(done.resource_id.as_str(), &[]).await.unwrap();
        assert_eq!(entry.attrs["pwdLastSet"], vec!["0"], "no password was set");
    })
    .await;
}

/// Safe adoption: while an Added order asks for review before adopting
/// (`ADOPTION_REVIEW_ARGUMENT`), an account made by hand before the order's first attempt is
/// never adopted, also when the order is sent again; nothing is written (checked with
/// `ldapsearch`). Approved (sent without the argument), it is adopted and converged. An account
/// the order itself created is adopted when the order is sent again.
#[tokio::test]
async fn an_account_made_by_hand_is_adopted_only_after_review() {
    let Some(env) = ad_env("an_account_made_by_hand_is_adopted_only_after_review") else {
        return;
    };
    in_ou(&env.clone(), "adoptrev", |admin, ou| async move {
        use autoprov_connector::{ADOPTION_REVIEW_ARGUMENT, RESENT_ARGUMENT};
        let ad = connector(&env).await;
        let g = admin.create_group(&ou, &format!("g-{}", token())).await;
        let sam = format!("r{}", token());
        let dn = format!("CN=Rita Review,{ou}");
        admin
            .add(
                &dn,
                vec![
                    ("objectClass", vec!["user"]),
                    ("sAMAccountName", vec![sam.as_str()]),
                    ("userAccountControl", vec!["514"]),
                ],
            )
            .await;
        let before = ldapsearch_snapshot(&env, &dn);
        let mut c = joiner_changes(&ou, "Rita Review", &sam, &[&g]);
        c.properties.remove("password");
        let mut o = order(ChangeType::Added, "user", c, None);
        // The order's first attempt comes an hour after the account was made.
        let first_attempt = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
        o.arguments
            .insert(ADOPTION_REVIEW_ARGUMENT.to_owned(), first_attempt);
        let e = refuse(&ad, &o).await;
        assert_eq!(e.kind(), ErrorKind::NeedsReview, "{e}");
        assert!(e.to_string().contains("Rita Review"), "{e}");
        assert_eq!(ldapsearch_snapshot(&env, &dn), before, "nothing written");
        o.arguments
            .insert(RESENT_ARGUMENT.to_owned(), "true".to_owned());
        let e = refuse(&ad, &o).await;
        assert_eq!(
            e.kind(),
            ErrorKind::NeedsReview,
            "an account older than the order's first attempt is not its own, also when the \
             order is sent again: {e}"
        );
        assert_eq!(ldapsearch_snapshot(&env, &dn), before, "nothing written");
        assert!(!admin.members(&g).await.contains(&dn.to_ascii_lowercase()));

        // Approved: sent without the argument, adopted and converged.
        o.arguments.remove(ADOPTION_REVIEW_ARGUMENT);
        let done = apply(&ad, &o).await;
        assert!(done.adopted, "{done:?}");
        let after = ldapsearch_snapshot(&env, &dn);
        assert!(after.contains("givenName: Jane"), "{after}");
        assert!(admin.members(&g).await.contains(&dn.to_ascii_lowercase()));

        // The order's own creation: created with the argument, adopted when sent again.
        let sam2 = format!("s{}", token());
        let mut c = joiner_changes(&ou, "Sam Self", &sam2, &[]);
        c.properties.remove("password");
        let mut own = order(ChangeType::Added, "user", c, None);
        let first_attempt = chrono::Utc::now().to_rfc3339();
        own.arguments
            .insert(ADOPTION_REVIEW_ARGUMENT.to_owned(), first_attempt);
        let created = apply(&ad, &own).await;
        assert!(!created.adopted);
        own.arguments
            .insert(RESENT_ARGUMENT.to_owned(), "true".to_owned());
        let again = apply(&ad, &own).await;
        assert!(again.adopted, "{again:?}");
        assert_eq!(again.stable_id, created.stable_id);
    })
    .await;
}
