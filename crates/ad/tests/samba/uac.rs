//! `userAccountControl` written by a rule, as the reference system's rules do (512, 66048 =
//! enabled + password never expires): the account is created with the rule's bits plus
//! ACCOUNTDISABLE, the password set, then the rule's value applied; and `accountExpires`
//! from an inclusive departure date read in a time zone.

use crate::support::*;
use autoprov_ad::{AdConnector, EntityMapping};
use autoprov_core::{ChangeType, Changes, Reference, Secret};

const PASSWORD: &str = "Init-Passw0rd-42!";

fn ldapsearch_uac(env: &AdEnv, base: &str, sam: &str) -> String {
    let out = std::process::Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &env.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-H", &env.url, "-x", "-LLL", "-o", "ldif-wrap=no"])
        .args(["-D", &env.bind_dn, "-w", &env.password, "-b", base])
        .arg(format!("(sAMAccountName={sam})"))
        .args(["userAccountControl", "pwdLastSet"])
        .output()
        .expect("ldapsearch (ldap-utils) is installed by the test-server script");
    assert!(
        out.status.success(),
        "ldapsearch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_rule_written_user_account_control_is_applied_after_the_password() {
    let Some(env) = ad_env("a_rule_written_user_account_control_is_applied_after_the_password")
    else {
        return;
    };
    in_ou(&env.clone(), "refuac", |admin, ou| async move {
        let mut mapping = EntityMapping::user();
        // The per-mapping opt-in for a sensitive attribute.
        mapping
            .attributes
            .insert("uac".into(), "userAccountControl".into());
        let ad = AdConnector::builder()
            .server(&env.url, &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .entity_type("user", mapping)
            .build()
            .await
            .unwrap();
        for (rule, expected) in [("66048", "66048"), ("512", "512"), ("514", "514")] {
            let sam = format!("u{}", token());
            let mut c = Changes::default();
            c.set("cn", format!("Uac {sam}"))
                .set("sAMAccountName", sam.as_str())
                .set("password", Secret::new(PASSWORD))
                // As an orders file carries it: a string.
                .set("uac", rule)
                .set_reference("parentdn", Reference::dn(&ou));
            let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
            assert!(done.changed.contains("uac"), "{:?}", done.changed);
            let text = ldapsearch_uac(&env, &ou, &sam);
            assert!(
                text.contains(&format!("userAccountControl: {expected}\n")),
                "rule {rule}: {text}"
            );
            // The password was set (pwdLastSet is not 0), so enabling came after it.
            assert!(!text.contains("pwdLastSet: 0\n"), "{text}");
            let entry = admin.read(done.resource_id.as_str(), &[]).await.unwrap();
            assert_eq!(entry.attrs["userAccountControl"], vec![expected]);
            if rule != "66048" {
                continue;
            }
            // A Modified order with a new rule value and a new password: one modify, the
            // value after the password; then the enabled flag disables it, keeping the bits.
            let dn = done.resource_id.to_string();
            let guid = done.stable_id.clone();
            let mut c = Changes::default();
            c.set("uac", 512i64)
                .set("password", Secret::new("Next-Passw0rd-43!"));
            let again = apply(
                &ad,
                &order(ChangeType::Modified, "user", c, Some((&dn, guid.as_ref()))),
            )
            .await;
            assert!(again.changed.contains("uac"), "{:?}", again.changed);
            let text = ldapsearch_uac(&env, &ou, &sam);
            assert!(text.contains("userAccountControl: 512\n"), "{text}");
            let mut c = Changes::default();
            c.set("uac", 66048i64).set("enabled", false);
            apply(
                &ad,
                &order(ChangeType::Modified, "user", c, Some((&dn, guid.as_ref()))),
            )
            .await;
            let text = ldapsearch_uac(&env, &ou, &sam);
            assert!(text.contains("userAccountControl: 66050\n"), "{text}");
        }
    })
    .await;
}

#[tokio::test]
async fn account_expires_from_an_inclusive_departure_date_in_paris() {
    let Some(env) = ad_env("account_expires_from_an_inclusive_departure_date_in_paris") else {
        return;
    };
    in_ou(&env.clone(), "refexp", |admin, ou| async move {
        let ad = connector(&env).await;
        // Leaving on 2026-03-29 in Europe/Paris: expired from the next local midnight (CEST).
        let paris: autoprov_core::LocalTimeZone = "Europe/Paris".parse().unwrap();
        let end = paris
            .read_date(
                &autoprov_core::ScalarValue::from("2026-03-29"),
                autoprov_core::DateBound::End,
            )
            .unwrap();
        let expires = autoprov_core::time_zone::file_time(end);
        let sam = format!("x{}", token());
        let mut c = Changes::default();
        c.set("cn", format!("Exp {sam}"))
            .set("sAMAccountName", sam.as_str())
            .set("password", Secret::new(PASSWORD))
            .set("enabled", true)
            .set("accountExpires", expires)
            .set_reference("parentdn", Reference::dn(&ou));
        let done = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let entry = admin.read(done.resource_id.as_str(), &[]).await.unwrap();
        assert_eq!(entry.attrs["accountExpires"], vec!["134192952000000000"]);
        assert_eq!(entry.attrs["userAccountControl"], vec!["512"]);
    })
    .await;
}
