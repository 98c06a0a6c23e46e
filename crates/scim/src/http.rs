//! The HTTP side: one reqwest client with rustls, authentication (a bearer token, or OAuth2
//! client credentials refreshed before expiry), a deadline per request, and the mapping of
//! HTTP statuses and SCIM errors (`scimType`) to [`ConnectorError`] kinds.

use crate::settings::{AuthSettings, OAuth2Settings, ScimSettings};
use autoprov_connector::{ConnectorError, ErrorKind, Operation};
use autoprov_core::Secret;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, IF_MATCH, RETRY_AFTER};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The SCIM media type (RFC 7644 §8.1).
pub(crate) const SCIM_JSON: &str = "application/scim+json";

/// A successful response.
#[derive(Debug)]
pub(crate) struct Response {
    /// The body (`Null` when empty).
    pub(crate) body: Value,
}

struct CachedToken {
    token: Secret,
    /// When to request a new one (the expiry less the refresh margin).
    refresh_at: Option<Instant>,
}

enum Auth {
    Bearer(Secret),
    OAuth2 {
        settings: OAuth2Settings,
        cached: Mutex<Option<CachedToken>>,
    },
}

/// The HTTP client of one connection. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    timeout: Duration,
    token_requests: std::sync::atomic::AtomicU64,
}

fn tls_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, ConnectorError> {
    let configure =
        |m: String| ConnectorError::new(ErrorKind::InvalidConfiguration, Operation::Configure, m);
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| configure(format!("CaCertificateFile `{file}`: {e}")))?;
        let mut found = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| configure(format!("CaCertificateFile `{file}`: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| configure(format!("CaCertificateFile `{file}`: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(configure(format!(
                "CaCertificateFile `{file}` holds no PEM certificate"
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| configure(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Http {
    /// A client for validated settings.
    pub(crate) fn new(settings: &ScimSettings) -> Result<Self, ConnectorError> {
        let tls = tls_config(settings.ca_certificate_file.as_deref())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.request_timeout())
            .connect_timeout(settings.request_timeout())
            .user_agent(concat!("autoprov-scim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConnectorError::new(
                    ErrorKind::InvalidConfiguration,
                    Operation::Configure,
                    "building the HTTP client",
                )
                .with_source(e)
            })?;
        let auth = match &settings.auth {
            AuthSettings::BearerToken { token } => Auth::Bearer(token.clone()),
            AuthSettings::OAuth2(o) => Auth::OAuth2 {
                settings: o.clone(),
                cached: Mutex::new(None),
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                base: settings.base_url.trim_end_matches('/').to_owned(),
                auth,
                timeout: settings.request_timeout(),
                token_requests: Default::default(),
            }),
        })
    }

    /// How many OAuth2 tokens were requested (tests).
    pub(crate) fn token_requests(&self) -> u64 {
        self.inner
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current access token: the bearer token, or an OAuth2 token requested when there
    /// is none or it is about to expire.
    async fn token(&self, operation: Operation) -> Result<Secret, ConnectorError> {
        let (settings, cached) = match &self.inner.auth {
            Auth::Bearer(t) => return Ok(t.clone()),
            Auth::OAuth2 { settings, cached } => (settings, cached),
        };
        let mut cached = cached.lock().await;
        if let Some(c) = &*cached
            && c.refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(c.token.clone());
        }
        let fresh = self.request_token(settings, operation).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn request_token(
        &self,
        o: &OAuth2Settings,
        operation: Operation,
    ) -> Result<CachedToken, ConnectorError> {
        self.inner
            .token_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let secret = o.client_secret.expose().map_err(|_| {
            ConnectorError::new(
                ErrorKind::InvalidConfiguration,
                operation,
                "the OAuth2 client secret is masked",
            )
        })?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &o.scope {
            form.push(("scope", scope.as_str()));
        }
        let started = Instant::now();
        let sent = self
            .inner
            .client
            .post(&o.token_url)
            .basic_auth(&o.client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(e, operation, "POST", "the OAuth2 token endpoint"))?;
        let status = sent.status().as_u16();
        let body: Value = sent.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            // RFC 6749 §5.2: `error` is a code such as `invalid_client`; never the secret.
            let code = body.get("error").and_then(Value::as_str).unwrap_or("");
            let kind = match status {
                400 | 401 | 403 => ErrorKind::Unauthenticated,
                429 => ErrorKind::RateLimited,
                _ if status >= 500 => ErrorKind::Unavailable,
                _ => ErrorKind::Unexpected,
            };
            return Err(ConnectorError::new(
                kind,
                operation,
                format!("the OAuth2 token endpoint answered HTTP {status} {code}"),
            ));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Unauthenticated,
                    operation,
                    "the OAuth2 token endpoint answered without an access_token",
                )
            })?;
        let refresh_at = body.get("expires_in").and_then(Value::as_u64).map(|secs| {
            let margin = o.refresh_margin_secs.min(secs / 2);
            started + Duration::from_secs(secs - margin)
        });
        Ok(CachedToken {
            token: Secret::new(token),
            refresh_at,
        })
    }

    /// Forgets a cached OAuth2 token (after the service refused it).
    async fn forget_token(&self) {
        if let Auth::OAuth2 { cached, .. } = &self.inner.auth {
            *cached.lock().await = None;
        }
    }

    /// Sends one request below the base URL, within the request deadline. A status outside
    /// 2xx is an error classified by [`status_error`].
    pub(crate) async fn send(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response, ConnectorError> {
        let mut refused_once = false;
        loop {
            let token = self.token(operation).await?;
            let url = format!("{}{path}", self.inner.base);
            let mut request = self
                .inner
                .client
                .request(method.clone(), &url)
                .timeout(self.inner.timeout)
                .header("Accept", SCIM_JSON);
            let exposed = token.expose().map_err(|_| {
                ConnectorError::new(
                    ErrorKind::InvalidConfiguration,
                    operation,
                    "the bearer token is masked",
                )
            })?;
            request = request.header(AUTHORIZATION, format!("Bearer {exposed}"));
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, SCIM_JSON)
                    .body(serde_json::to_vec(body).expect("JSON values serialize"));
            }
            if let Some(etag) = if_match {
                request = request.header(IF_MATCH, etag);
            }
            let sent = request
                .send()
                .await
                .map_err(|e| transport(e, operation, method.as_str(), path))?;
            let status = sent.status().as_u16();
            let headers = sent.headers().clone();
            let bytes = sent
                .bytes()
                .await
                .map_err(|e| transport(e, operation, method.as_str(), path))?;
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            if (200..300).contains(&status) {
                return Ok(Response { body });
            }
            if status == 401 && !refused_once && matches!(self.inner.auth, Auth::OAuth2 { .. }) {
                // The token may have been revoked or expired early: one new token, once.
                refused_once = true;
                self.forget_token().await;
                continue;
            }
            return Err(status_error(
                operation,
                method.as_str(),
                path,
                status,
                &headers,
                &body,
            ));
        }
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A transport failure: a timeout is `Timeout`, anything else (refused, reset, DNS, TLS)
/// `Unavailable`; both temporary.
fn transport(e: reqwest::Error, operation: Operation, method: &str, path: &str) -> ConnectorError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    let what = if e.is_timeout() {
        "did not answer within the request deadline"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    // The URL is dropped from reqwest's error: it may hold a filter with user data.
    ConnectorError::new(kind, operation, format!("{method} {path} {what}"))
        .with_source(e.without_url())
}

/// The delay of a `Retry-After` header: delay-seconds, or an HTTP-date taken against the
/// response's own `Date` (so no local clock is read).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header(headers, RETRY_AFTER)?;
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let date =
        chrono::DateTime::parse_from_rfc2822(&header(headers, reqwest::header::DATE)?).ok()?;
    Some((at - date).to_std().unwrap_or(Duration::ZERO))
}

/// Classifies an HTTP error status and its SCIM error body (RFC 7644 §3.12).
pub(crate) fn status_error(
    operation: Operation,
    method: &str,
    path: &str,
    status: u16,
    headers: &HeaderMap,
    body: &Value,
) -> ConnectorError {
    let scim_type = body.get("scimType").and_then(Value::as_str);
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(500)
        .collect::<String>();
    let kind = match (status, scim_type) {
        (409, Some("uniqueness")) | (400, Some("uniqueness")) => ErrorKind::AlreadyExists,
        (400, _) | (413, _) => ErrorKind::InvalidOrder,
        (401, _) => ErrorKind::Unauthenticated,
        (403, _) => ErrorKind::PermissionDenied,
        (404, _) => ErrorKind::NotFound,
        (409, _) | (412, _) => ErrorKind::Conflict,
        (429, _) => ErrorKind::RateLimited,
        (501, _) => ErrorKind::Unsupported,
        (500..=599, _) => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    let mut message = format!("{method} {path} answered HTTP {status}");
    if let Some(t) = scim_type {
        message.push_str(&format!(" (scimType `{t}`)"));
    }
    if !detail.is_empty() {
        message.push_str(&format!(": {detail}"));
    }
    let mut e = ConnectorError::new(kind, operation, message);
    if status == 412 {
        // A concurrent change between our read and our write: reading again helps.
        e = e.temporary();
    }
    if matches!(status, 429 | 503) {
        e = e.temporary();
        if let Some(delay) = retry_after(headers) {
            e = e.with_retry_after(delay);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn statuses_are_classified_with_scim_type() {
        let h = HeaderMap::new();
        let e = status_error(
            Operation::Create,
            "POST",
            "/Users",
            409,
            &h,
            &json!({"scimType": "uniqueness", "detail": "taken"}),
        );
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(!e.is_temporary());
        assert!(e.to_string().contains("scimType `uniqueness`"), "{e}");
        let e = status_error(
            Operation::Update,
            "PATCH",
            "/Users/1",
            400,
            &h,
            &json!({"scimType": "mutability"}),
        );
        assert_eq!(e.kind(), ErrorKind::InvalidOrder);
        assert!(!e.is_temporary() && e.to_string().contains("mutability"));
        for (status, kind) in [
            (401, ErrorKind::Unauthenticated),
            (403, ErrorKind::PermissionDenied),
            (404, ErrorKind::NotFound),
            (502, ErrorKind::Unavailable),
        ] {
            let e = status_error(Operation::Read, "GET", "/x", status, &h, &Value::Null);
            assert_eq!(e.kind(), kind, "{status}");
        }
    }

    #[test]
    fn rate_limits_are_temporary_with_their_delay() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        let e = status_error(
            Operation::Update,
            "PATCH",
            "/Users/1",
            429,
            &h,
            &Value::Null,
        );
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_temporary());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Tue, 01 Dec 2026 17:47:12 GMT"),
        );
        h.insert(
            reqwest::header::DATE,
            HeaderValue::from_static("Tue, 01 Dec 2026 17:46:12 GMT"),
        );
        let e = status_error(Operation::Export, "GET", "/Users", 503, &h, &Value::Null);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        let e = status_error(
            Operation::Export,
            "GET",
            "/Users",
            503,
            &HeaderMap::new(),
            &Value::Null,
        );
        assert!(e.is_temporary() && e.retry_after().is_none());
    }
}
