//! Connection settings of the SCIM package (serde, validated with errors naming the setting).
//!
//! The JSON form, as it appears under `Settings` in a host's connections file:
//!
//! ```json
//! {
//!   "BaseUrl": "https://scim.example.com/scim/v2",
//!   "Auth": {"BearerToken": {"Token": "..."}},
//!   "RequestTimeoutMs": 30000, "PageSize": 200, "FullSweepEvery": 1
//! }
//! ```
//!
//! or, with OAuth2 client credentials:
//!
//! ```json
//! {
//!   "BaseUrl": "https://scim.example.com/scim/v2",
//!   "Auth": {"OAuth2": {"TokenUrl": "https://login.example.com/token",
//!                       "ClientId": "autoprov", "ClientSecret": "...", "Scope": "scim"}}
//! }
//! ```

use autoprov_core::{SECRET_MASK, Secret};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A setting that is missing or wrong, naming the setting: the one type every package reports
/// its settings with.
pub use autoprov_connector::settings::SettingsError;

/// How the package authenticates to the SCIM service.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum AuthSettings {
    /// A static bearer token (`Authorization: Bearer …`).
    BearerToken {
        /// The token. Masked in `Debug` and when serialized.
        #[serde(rename = "Token")]
        token: Secret,
    },
    /// OAuth2 client credentials (RFC 6749 §4.4): a token is requested from `token_url` and
    /// requested again shortly before it expires.
    #[serde(rename = "OAuth2")]
    OAuth2(OAuth2Settings),
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BearerToken { .. } => f
                .debug_struct("BearerToken")
                .field("token", &SECRET_MASK)
                .finish(),
            Self::OAuth2(o) => f.debug_tuple("OAuth2").field(o).finish(),
        }
    }
}

/// OAuth2 client-credentials settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OAuth2Settings {
    /// The token endpoint (`https://…/token`).
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret. Masked in `Debug` and when serialized.
    pub client_secret: Secret,
    /// The scope to request, if the authorization server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Request a new token this many seconds before the current one expires (default 60).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin_secs: u64,
}

fn default_refresh_margin() -> u64 {
    60
}

impl fmt::Debug for OAuth2Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Settings")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &SECRET_MASK)
            .field("scope", &self.scope)
            .field("refresh_margin_secs", &self.refresh_margin_secs)
            .finish()
    }
}

/// The settings of one SCIM connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ScimSettings {
    /// The service's base URL, below which `/Users`, `/Groups` and `/ServiceProviderConfig`
    /// live (`https://host/scim/v2`).
    pub base_url: String,
    /// How to authenticate.
    pub auth: AuthSettings,
    /// A PEM file of CA certificates to verify the service with, in addition to the system's
    /// trust roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_file: Option<String>,
    /// The deadline of each HTTP request, in milliseconds (default 30000).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Resources per page of an export (`count`; default 200, at most the service's
    /// `filter.maxResults`).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Incremental exports (by `meta.lastModified`) sweep every id of the service to detect
    /// deletions every this many increments (default 1: every increment). Between sweeps an
    /// increment reports no deletions; the host's periodic complete export sees them too.
    #[serde(default = "default_full_sweep_every")]
    pub full_sweep_every: u32,
    /// Allow `http://` base URLs. Only for tests on loopback: the bearer token and passwords
    /// then travel in clear.
    #[serde(default)]
    pub allow_plain_http_for_tests: bool,
}

fn default_request_timeout() -> u64 {
    30_000
}

fn default_page_size() -> u32 {
    200
}

fn default_full_sweep_every() -> u32 {
    1
}

impl ScimSettings {
    /// Settings for `base_url` with a bearer token, every other setting at its default.
    pub fn bearer(base_url: impl Into<String>, token: impl Into<Secret>) -> Self {
        Self {
            base_url: base_url.into(),
            auth: AuthSettings::BearerToken {
                token: token.into(),
            },
            ca_certificate_file: None,
            request_timeout_ms: default_request_timeout(),
            page_size: default_page_size(),
            full_sweep_every: default_full_sweep_every(),
            allow_plain_http_for_tests: false,
        }
    }

    /// The deadline of each request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks the values serde cannot: the URL's scheme, positive numbers, a non-empty token.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = url::Url::parse(&self.base_url)
            .map_err(|e| SettingsError::new("BaseUrl", format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http_for_tests => {}
            "http" => {
                return Err(SettingsError::new(
                    "BaseUrl",
                    "plain http:// would send the token and passwords in clear; use https:// \
                     (or AllowPlainHttpForTests for a test server on loopback)",
                ));
            }
            other => {
                return Err(SettingsError::new(
                    "BaseUrl",
                    format!("scheme `{other}`: expected https"),
                ));
            }
        }
        if self.request_timeout_ms == 0 {
            return Err(SettingsError::new("RequestTimeoutMs", "must be positive"));
        }
        if self.page_size == 0 {
            return Err(SettingsError::new("PageSize", "must be positive"));
        }
        if self.full_sweep_every == 0 {
            return Err(SettingsError::new("FullSweepEvery", "must be positive"));
        }
        match &self.auth {
            AuthSettings::BearerToken { token } => {
                if token.is_empty() || token.is_redacted() {
                    return Err(SettingsError::new(
                        "Auth.BearerToken.Token",
                        "empty or masked",
                    ));
                }
            }
            AuthSettings::OAuth2(o) => {
                let token_url = url::Url::parse(&o.token_url).map_err(|e| {
                    SettingsError::new("Auth.OAuth2.TokenUrl", format!("not a URL: {e}"))
                })?;
                if token_url.scheme() != "https"
                    && !(token_url.scheme() == "http" && self.allow_plain_http_for_tests)
                {
                    return Err(SettingsError::new("Auth.OAuth2.TokenUrl", "expected https"));
                }
                if o.client_secret.is_empty() || o.client_secret.is_redacted() {
                    return Err(SettingsError::new(
                        "Auth.OAuth2.ClientSecret",
                        "empty or masked",
                    ));
                }
            }
        }
        Ok(())
    }
}
