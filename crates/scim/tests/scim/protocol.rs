//! HTTP behaviour against a scripted service on loopback (a few lines of HTTP over a tokio
//! listener, serving the discovery documents of a minimal service and scripted answers):
//! `429` and `503` with `Retry-After` are temporary errors that carry the delay; a `400` is
//! permanent with its `scimType`; writes send `If-Match` with the version read and a `412` is
//! temporary; a service that never answers meets the request deadline.

use autoprov_connector::{Connector, ErrorKind};
use autoprov_core::{ChangeType, Changes};
use autoprov_scim::test_fixtures::{order, try_apply};
use autoprov_scim::{ScimConnector, ScimSettings};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const SPC: &str = r#"{"patch":{"supported":true},"filter":{"supported":true,"maxResults":100},
"etag":{"supported":true},"changePassword":{"supported":false}}"#;
const TYPES: &str = r#"{"Resources":[{"id":"User","name":"User","endpoint":"/Users",
"schema":"urn:ietf:params:scim:schemas:core:2.0:User"}]}"#;
const SCHEMAS: &str = r#"{"Resources":[{"id":"urn:ietf:params:scim:schemas:core:2.0:User",
"attributes":[{"name":"userName","type":"string","multiValued":false,"mutability":"readWrite",
"uniqueness":"server"}]}]}"#;

/// Serves discovery, and answers `/Users` with `status`, extra header lines and a body.
async fn service(status: &'static str, headers: &'static str, body: &'static str) -> String {
    recording_service(status, headers, body).await.0
}

/// [`service`], also handing out every request it received (its head).
async fn recording_service(
    status: &'static str,
    headers: &'static str,
    body: &'static str,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            log.lock().unwrap().push(request.clone());
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let method = request.split_whitespace().next().unwrap_or("").to_owned();
            let (status, headers, body) = if path.starts_with("/ServiceProviderConfig") {
                ("200 OK", "", SPC)
            } else if path.starts_with("/ResourceTypes") {
                ("200 OK", "", TYPES)
            } else if path.starts_with("/Schemas") {
                ("200 OK", "", SCHEMAS)
            } else if method == "GET" && path.starts_with("/Users/u1") {
                ("200 OK", "ETag: W/\"7\"\r\n", USER_U1)
            } else {
                (status, headers, body)
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/scim+json\r\n{headers}\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
        }
    });
    (url, seen)
}

const USER_U1: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"u1",
"userName":"alice","meta":{"resourceType":"User","version":"W/\"7\""}}"#;

async fn connect(url: String) -> ScimConnector {
    let mut s = ScimSettings::bearer(url, "t0ken");
    s.allow_plain_http_for_tests = true;
    ScimConnector::connect("scim-throttled", s)
        .await
        .expect("discovery")
}

#[tokio::test]
async fn too_many_requests_is_temporary_with_its_delay() {
    let url = service("429 Too Many Requests", "Retry-After: 7\r\n", "").await;
    let e = connect(url).await.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.is_temporary());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn unavailable_is_temporary_with_its_delay() {
    let url = service(
        "503 Service Unavailable",
        "Retry-After: Tue, 01 Dec 2026 10:00:30 GMT\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n",
        "",
    )
    .await;
    let e = connect(url).await.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_temporary());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn bad_request_is_permanent_with_its_scim_type() {
    let url = service(
        "400 Bad Request",
        "",
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"no"}"#,
    )
    .await;
    let e = connect(url).await.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
    assert!(!e.is_temporary());
    assert!(e.to_string().contains("invalidFilter"), "{e}");
}

#[tokio::test]
async fn a_hanging_service_meets_the_request_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and never answers.
    let held = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            socks.push(sock);
        }
    });
    let mut s = ScimSettings::bearer(url, "t0ken");
    s.allow_plain_http_for_tests = true;
    s.request_timeout_ms = 500;
    let started = std::time::Instant::now();
    let e = ScimConnector::connect("scim-hanging", s).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_temporary());
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn writes_send_if_match_and_a_precondition_failure_is_temporary() {
    let (url, seen) = recording_service(
        "412 Precondition Failed",
        "",
        r#"{"status":"412","detail":"changed meanwhile"}"#,
    )
    .await;
    let scim = connect(url).await;
    assert!(scim.uses_etags());
    let mut c = Changes::default();
    c.set("userName", "alice2");
    let e = try_apply(&scim, &order(ChangeType::Modified, "User", c, Some("u1")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.is_temporary(),
        "re-reading and re-sending may succeed: {e}"
    );
    let seen = seen.lock().unwrap();
    let patch = seen
        .iter()
        .find(|r| r.starts_with("PATCH /Users/u1"))
        .expect("a PATCH was sent");
    assert!(
        patch.to_ascii_lowercase().contains("if-match: w/\"7\""),
        "the PATCH carries no If-Match of the version read: {patch}"
    );
    assert!(!seen.iter().any(|r| r.starts_with("PUT")), "never a PUT");
}
