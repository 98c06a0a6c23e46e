//! Connection-level failures: refused credentials, an unreachable service, bad settings, and
//! no secret in `Debug` or errors.

use autoprov_connector::{Connector, ErrorKind, PackageRegistry};
use autoprov_scim::test_fixtures::*;
use autoprov_scim::{ScimConnector, ScimPackage, ScimSettings};

#[tokio::test]
async fn refused_token_is_unauthenticated() {
    let Some(env) = scim_env("refused_token_is_unauthenticated") else {
        return;
    };
    let mut settings = env.settings();
    settings.auth = autoprov_scim::AuthSettings::BearerToken {
        token: "not-the-token".into(),
    };
    let result = ScimConnector::connect("scim-bad-token", settings).await;
    let e = match result {
        // The discovery endpoints may be public (RFC 7644 §4): then `check` refuses.
        Ok(scim) => scim.check().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.is_temporary());
    assert!(!format!("{e} {e:?}").contains("not-the-token"));
    let scim = connector(&env).await;
    scim.check().await.expect("the right token passes check");
    let shown = format!("{scim:?}");
    assert!(
        !shown.contains(&env.token),
        "Debug shows the token: {shown}"
    );
}

#[tokio::test]
async fn unreachable_service_is_temporary() {
    let mut settings = ScimSettings::bearer("http://127.0.0.1:9/v2", "t");
    settings.allow_plain_http_for_tests = true;
    settings.request_timeout_ms = 2_000;
    let e = ScimConnector::connect("scim-nowhere", settings)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e}"
    );
    assert!(e.is_temporary(), "{e}");
}

#[tokio::test]
async fn settings_errors_name_the_setting() {
    let mut registry = PackageRegistry::new();
    registry.register(ScimPackage);
    let connect = |settings: serde_json::Value| {
        let config = serde_json::from_value(serde_json::json!({
            "Id": "scim-x", "Package": "autoprov.scim", "Settings": settings
        }))
        .unwrap();
        let registry = &registry;
        async move { registry.connect(&config).await.unwrap_err() }
    };
    let e = connect(serde_json::json!({
        "BaseUrl": "http://scim.example.test/v2",
        "Auth": {"BearerToken": {"Token": "secret-token-1"}}
    }))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(e.to_string().contains("BaseUrl"), "{e}");
    assert!(!e.to_string().contains("secret-token-1"));
    let e = connect(serde_json::json!({
        "BaseUrl": "https://scim.example.test/v2",
        "Auth": {"BearerToken": {"Token": "secret-token-1"}},
        "PageSise": 10
    }))
    .await;
    assert!(e.to_string().contains("PageSise"), "{e}");
    let e = connect(serde_json::json!({
        "BaseUrl": "https://scim.example.test/v2",
        "Auth": {"OAuth2": {"TokenUrl": "https://login.example.test/token",
                            "ClientId": "c", "ClientSecret": ""}}
    }))
    .await;
    assert!(e.to_string().contains("ClientSecret"), "{e}");
    let s: ScimSettings = serde_json::from_value(serde_json::json!({
        "BaseUrl": "https://scim.example.test/v2",
        "Auth": {"OAuth2": {"TokenUrl": "https://login.example.test/token",
                            "ClientId": "c", "ClientSecret": "client-secret-2"}}
    }))
    .unwrap();
    assert!(!format!("{s:?}").contains("client-secret-2"));
}
