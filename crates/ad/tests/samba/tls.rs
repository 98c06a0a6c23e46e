//! TLS and settings hardening: the package's own rustls configuration on every path (no
//! process-wide crypto provider needed), a configured CA as the only trust root, separate
//! explicit flags for plain LDAP and for unverified TLS, and settings errors that never echo
//! the bind password.

use crate::support::*;
use autoprov_ad::{AdConnector, AdSettings, TlsMode};
use autoprov_connector::{Connector, ConnectorError, ErrorKind};
use serde_json::json;

const PASSWORD: &str = "Very-Secret-1";

fn settings_json() -> serde_json::Value {
    json!({
        "Servers": [{"Url": "ldaps://127.0.0.1:636", "BaseDn": "DC=example,DC=test"}],
        "Bind": {"Login": "svc@EXAMPLE.TEST", "Password": PASSWORD},
    })
}

/// Asserts that neither the error's text nor its `Debug` shows `secret`.
fn assert_hidden(e: &autoprov_ad::SettingsError, secret: &str) {
    let shown = format!("{e} {e:?} {e:#?}");
    assert!(!shown.contains(secret), "the password leaked: {shown}");
}

#[test]
fn a_settings_error_never_echoes_the_bind_password() {
    let mut cases: Vec<(serde_json::Value, &str, &str)> = Vec::new();
    let mut v = settings_json();
    v["Bind"]["Pasword"] = json!(PASSWORD);
    cases.push((v, "Bind", PASSWORD));
    let mut v = settings_json();
    v["Bind"]["Extra"] = json!(1);
    cases.push((v, "Bind", PASSWORD));
    let mut v = settings_json();
    v["Bind"]["Login"] = json!(42);
    cases.push((v, "Bind.Login", PASSWORD));
    let mut v = settings_json();
    v["Bind"]["Password"] = json!(31415926);
    cases.push((v, "Bind.Password", "31415926"));
    let mut v = settings_json();
    v["Bind"] = json!(format!("svc@EXAMPLE.TEST:{PASSWORD}"));
    cases.push((v, "Bind", PASSWORD));
    let mut v = settings_json();
    v["Bind"]["Password"] = json!([PASSWORD]);
    cases.push((v, "Bind.Password", PASSWORD));
    let mut v = settings_json();
    v["Tls"] = json!({"Mode": "Ldaps", "Verify": "no"});
    cases.push((v, "Tls.Verify", PASSWORD));
    let mut v = settings_json();
    v["PageSize"] = json!(0);
    cases.push((v, "PageSize", PASSWORD));
    for (json, setting, secret) in cases {
        let e = AdSettings::from_json(json.clone()).unwrap_err();
        assert!(
            e.setting.starts_with(setting),
            "{e} names {setting} for {json}"
        );
        assert_hidden(&e, secret);
    }
}

#[test]
fn plain_and_unverified_tls_need_their_own_flags() {
    let plain = |v: &mut serde_json::Value| {
        v["Servers"][0]["Url"] = json!("ldap://127.0.0.1:389");
        v["Tls"]["Mode"] = json!("Plain");
    };
    // Plain needs AllowPlainForTests; the other flag does not allow it.
    let mut v = settings_json();
    plain(&mut v);
    v["Tls"]["DangerAcceptInvalidCertsForTests"] = json!(true);
    let e = AdSettings::from_json(v.clone()).unwrap_err();
    assert_eq!(e.setting, "Tls.Mode", "{e}");
    v["Tls"]["AllowPlainForTests"] = json!(true);
    AdSettings::from_json(v).expect("plain with its flag");

    // Verify: false needs DangerAcceptInvalidCertsForTests; AllowPlainForTests does not allow it.
    let mut v = settings_json();
    v["Tls"] = json!({"Verify": false, "AllowPlainForTests": true});
    let e = AdSettings::from_json(v.clone()).unwrap_err();
    assert_eq!(e.setting, "Tls.Verify", "{e}");
    assert!(
        e.message.contains("DangerAcceptInvalidCertsForTests"),
        "{e}"
    );
    v["Tls"] = json!({"Verify": false, "DangerAcceptInvalidCertsForTests": true});
    let s = AdSettings::from_json(v).expect("unverified TLS with its flag");
    assert!(!s.tls.verify);
    assert!(!s.tls.allow_plain_for_tests);
}

/// A connection with the wrong trust: refused as a certificate problem, permanently, not a panic.
fn assert_certificate_refused(e: &ConnectorError) {
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
}

/// Every TLS path of the test server: LDAPS and StartTLS.
fn tls_paths(env: &AdEnv) -> [(TlsMode, &str); 2] {
    [
        (TlsMode::Ldaps, env.url.as_str()),
        (TlsMode::StartTls, env.starttls_url.as_str()),
    ]
}

fn builder(env: &AdEnv, mode: TlsMode, url: &str) -> autoprov_ad::AdConnectorBuilder {
    AdConnector::builder()
        .connection("ad-tls")
        .server(url, &env.base_dn)
        .bind(&env.bind_dn, env.password.as_str())
        .tls_mode(mode)
        .connections(1)
}

/// Installs, for the whole test process, a default crypto provider that can make no TLS
/// connection at all: anything that still took the process default (as ldap3's own rustls
/// setup does) would fail or panic, while the package, bringing its own, is unaffected.
fn install_a_useless_default_provider() {
    let mut useless = rustls::crypto::ring::default_provider();
    useless.cipher_suites.clear();
    useless.kx_groups.clear();
    // Another test of this binary may have installed it already.
    let _ = useless.install_default();
}

#[tokio::test]
async fn the_test_ca_verifies_the_dc_on_every_tls_path() {
    let Some(env) = ad_env("the_test_ca_verifies_the_dc_on_every_tls_path") else {
        return;
    };
    install_a_useless_default_provider();
    for (mode, url) in tls_paths(&env) {
        let ad = builder(&env, mode, url)
            .ca_certificate_file(&env.ca_file)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{mode:?} with the test CA: {e}"));
        ad.check().await.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    }
}

#[tokio::test]
async fn another_ca_is_refused_on_every_tls_path() {
    let Some(env) = ad_env("another_ca_is_refused_on_every_tls_path") else {
        return;
    };
    install_a_useless_default_provider();
    let other = throwaway_ca_pem();
    for (mode, url) in tls_paths(&env) {
        let e = builder(&env, mode, url)
            .ca_certificate_pem(other.clone())
            .build()
            .await
            .expect_err("a CA that did not sign the DC's certificate");
        assert_certificate_refused(&e);
    }
}

#[tokio::test]
async fn a_ca_bundle_is_trusted_as_a_whole() {
    let Some(env) = ad_env("a_ca_bundle_is_trusted_as_a_whole") else {
        return;
    };
    let test_ca = std::fs::read_to_string(&env.ca_file).expect("the test CA");
    let bundle = format!("{}{test_ca}", throwaway_ca_pem());
    let ad = builder(&env, TlsMode::Ldaps, &env.url)
        .ca_certificate_pem(bundle)
        .build()
        .await
        .expect("the test CA is one of the bundle's");
    ad.check().await.expect("healthy");
}

#[tokio::test]
async fn without_a_ca_the_system_roots_do_not_vouch_for_the_test_dc() {
    let Some(env) = ad_env("without_a_ca_the_system_roots_do_not_vouch_for_the_test_dc") else {
        return;
    };
    install_a_useless_default_provider();
    // ldap3 would build this configuration itself from the process default provider.
    for (mode, url) in tls_paths(&env) {
        let e = builder(&env, mode, url)
            .build()
            .await
            .expect_err("the test CA is not a system root");
        assert_certificate_refused(&e);
    }
}

#[tokio::test]
async fn unverified_tls_needs_its_own_flag_and_still_encrypts() {
    let Some(env) = ad_env("unverified_tls_needs_its_own_flag_and_still_encrypts") else {
        return;
    };
    install_a_useless_default_provider();
    let other = throwaway_ca_pem();
    for (mode, url) in tls_paths(&env) {
        // The plain-LDAP flag does not allow skipping certificate checks.
        let e = builder(&env, mode, url)
            .verify_certificates(false)
            .allow_plain_for_tests(true)
            .build()
            .await
            .expect_err("Verify: false without its flag");
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
        assert!(e.to_string().contains("Tls.Verify"), "{e}");

        // With its flag, any certificate is accepted, even with a CA that did not sign it.
        for ca in [None, Some(other.clone())] {
            let mut b = builder(&env, mode, url)
                .verify_certificates(false)
                .danger_accept_invalid_certs_for_tests(true);
            if let Some(ca) = ca {
                b = b.ca_certificate_pem(ca);
            }
            let ad = b
                .build()
                .await
                .unwrap_or_else(|e| panic!("{mode:?} unverified: {e}"));
            ad.check().await.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        }
    }
    // ...and it does not allow plain LDAP.
    let e = builder(&env, TlsMode::Plain, &env.plain_url)
        .danger_accept_invalid_certs_for_tests(true)
        .build()
        .await
        .expect_err("Plain without its flag");
    assert!(e.to_string().contains("Tls.Mode"), "{e}");
}
