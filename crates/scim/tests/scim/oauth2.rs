//! OAuth2 client credentials: a token endpoint on loopback (a few lines of HTTP over a tokio
//! listener) hands out the SCIM service's token with a short lifetime; the package requests
//! one, uses it, and requests a new one before it expires.

use autoprov_connector::{Connector, ErrorKind};
use autoprov_scim::test_fixtures::*;
use autoprov_scim::{AuthSettings, OAuth2Settings, ScimConnector};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `POST /token`: checks the client's credentials and grant, answers `token` valid for
/// `expires_in` seconds (or 401 for a wrong secret). Returns its URL and a request counter.
async fn token_endpoint(token: String, expires_in: u64) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            // Basic base64("kit-client:kit-secret").
            let authorized = text.contains("Basic a2l0LWNsaWVudDpraXQtc2VjcmV0")
                && text.contains("grant_type=client_credentials");
            let (status, body) = if authorized {
                (
                    "200 OK",
                    format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#
                    ),
                )
            } else {
                (
                    "401 Unauthorized",
                    r#"{"error":"invalid_client"}"#.to_owned(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
        }
    });
    (url, count)
}

fn oauth2(env: &ScimEnv, token_url: String, secret: &str) -> autoprov_scim::ScimSettings {
    let mut s = env.settings();
    s.auth = AuthSettings::OAuth2(OAuth2Settings {
        token_url,
        client_id: "kit-client".into(),
        client_secret: secret.into(),
        scope: Some("scim".into()),
        refresh_margin_secs: 60,
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_client_credentials_refresh_before_expiry() {
    let Some(env) = scim_env("oauth2_client_credentials_refresh_before_expiry") else {
        return;
    };
    let _server = shared_use().await;
    // Valid for 2 s: refreshed once half of it has passed (the margin is capped at half).
    let (url, served) = token_endpoint(env.token.clone(), 2).await;
    let scim = ScimConnector::connect("scim-oauth2", oauth2(&env, url.clone(), "kit-secret"))
        .await
        .expect("connecting with OAuth2 client credentials");
    scim.check().await.expect("check with the OAuth2 token");
    assert_eq!(
        scim.oauth2_token_requests(),
        1,
        "the token is reused while valid"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    scim.check().await.expect("check after the refresh");
    assert_eq!(scim.oauth2_token_requests(), 2, "a new token before expiry");
    assert_eq!(served.load(Ordering::SeqCst), 2);

    let e = ScimConnector::connect("scim-oauth2-bad", oauth2(&env, url, "wrong-secret"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-secret"));
}
