//! Connection settings of the AD package (serde, validated with errors naming the setting).
//!
//! The JSON form, as it appears under `Settings` in a host's connections file:
//!
//! ```json
//! {
//!   "Servers": [{"Url": "ldaps://dc1.example.test:636", "BaseDn": "DC=example,DC=test"}],
//!   "Bind": {"Login": "svc-autoprov@EXAMPLE.TEST", "Password": "..."},
//!   "Tls": {"Mode": "Ldaps", "CaCertificate": {"File": "/etc/autoprov/ad-ca.pem"}},
//!   "ConnectTimeoutMs": 10000, "RequestTimeoutMs": 30000, "RetryDelayMs": 1000,
//!   "PageSize": 500, "Connections": 4, "ExistenceCacheMs": 10000
//! }
//! ```
//!
//! `EntityTypes` (the resource-type mapping, see [`crate::mapping`]) may be added; without it the
//! defaults for `user`, `group` and `organizationalUnit` apply.

use crate::mapping::{EntityMapping, default_entity_types};
use autoprov_connector::dn::Dn;
use autoprov_core::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A setting that is missing or wrong, naming the setting (`Servers[1].Url`): the one type
/// every package reports its settings with.
pub use autoprov_connector::settings::SettingsError;

/// One directory server (domain): where to connect and the naming context it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServerSettings {
    /// `ldaps://host:636` (TLS mode Ldaps) or `ldap://host:389` (StartTls or Plain).
    pub url: String,
    /// The domain's naming context, e.g. `DC=example,DC=test`. Orders whose target DN lies
    /// below it go to this server; exports search below it.
    pub base_dn: String,
    /// Other domain controllers of the same domain, tried in order when a connection to the
    /// current one cannot be made; the pool stays on the one that answered. (An incremental
    /// export's cookie belongs to one DC: after a failover the next incremental export is
    /// refused as `Conflict` and the job runs a complete one.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_urls: Vec<String>,
}

impl ServerSettings {
    /// A server.
    pub fn new(url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            base_dn: base_dn.into(),
            fallback_urls: Vec::new(),
        }
    }

    /// Adds a domain controller of the same domain to fail over to.
    pub fn with_fallback(mut self, url: impl Into<String>) -> Self {
        self.fallback_urls.push(url.into());
        self
    }

    /// The URLs in the order they are tried: `url`, then `fallback_urls`.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.fallback_urls.iter().map(String::as_str))
    }
}

/// Simple bind credentials of the service account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BindSettings {
    /// A user principal name (`svc@EXAMPLE.TEST`) or a DN.
    pub login: String,
    /// The password. Masked in `Debug` and when serialized.
    pub password: Secret,
}

impl BindSettings {
    /// Credentials.
    pub fn new(login: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            login: login.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for BindSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindSettings")
            .field("login", &self.login)
            .field("password", &autoprov_core::SECRET_MASK)
            .finish()
    }
}

/// How the connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsMode {
    /// TLS from the first byte (`ldaps://`, port 636). The default.
    #[default]
    Ldaps,
    /// Plain `ldap://` upgraded with the StartTLS extended operation before the bind.
    StartTls,
    /// No encryption at all. Only for tests, and only with
    /// [`TlsSettings::allow_plain_for_tests`]; passwords are then never sent.
    Plain,
}

impl TlsMode {
    /// Whether the connection is encrypted.
    pub fn is_encrypted(self) -> bool {
        !matches!(self, Self::Plain)
    }
}

/// A CA certificate to verify the server with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub enum CaCertificate {
    /// A PEM file (one or more certificates).
    File(std::path::PathBuf),
    /// PEM text (one or more certificates).
    Pem(String),
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Pem(p) => write!(f, "Pem(<{} bytes>)", p.len()),
        }
    }
}

impl CaCertificate {
    /// Reads the PEM text (from the file, or inline).
    pub(crate) fn pem(&self) -> Result<Vec<u8>, SettingsError> {
        match self {
            Self::Pem(text) => Ok(text.as_bytes().to_vec()),
            Self::File(path) => std::fs::read(path).map_err(|e| {
                SettingsError::new(
                    "Tls.CaCertificate.File",
                    format!("cannot read {}: {e}", path.display()),
                )
            }),
        }
    }
}

/// TLS settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct TlsSettings {
    /// Ldaps (default), StartTls, or Plain (tests only).
    pub mode: TlsMode,
    /// The CA that signed the server's certificate. It replaces the trust roots: only
    /// certificates it signed are accepted. Without it, the system's roots are used.
    pub ca_certificate: Option<CaCertificate>,
    /// Verify the server's certificate and name (default `true`). Turning it off is only
    /// accepted together with `DangerAcceptInvalidCertsForTests`, since it is as unsafe as no
    /// TLS at all.
    pub verify: bool,
    /// Explicitly allows `Mode: Plain`, and nothing else. For tests against a throwaway server.
    pub allow_plain_for_tests: bool,
    /// Explicitly allows `Verify: false`, and nothing else (not `Plain`). For tests against a
    /// throwaway server whose certificate cannot be verified.
    pub danger_accept_invalid_certs_for_tests: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: TlsMode::Ldaps,
            ca_certificate: None,
            verify: true,
            allow_plain_for_tests: false,
            danger_accept_invalid_certs_for_tests: false,
        }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Every setting of an AD connection.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AdSettings {
    /// The servers, one per domain (at least one).
    pub servers: Vec<ServerSettings>,
    /// The service account.
    pub bind: BindSettings,
    /// TLS.
    #[serde(default)]
    pub tls: TlsSettings,
    /// TCP + TLS + bind deadline of a new connection (default 10 s).
    #[serde(
        rename = "ConnectTimeoutMs",
        with = "duration_ms",
        default = "defaults::connect"
    )]
    pub connect_timeout: Duration,
    /// Deadline of every LDAP operation (default 30 s; for searches, of each reply).
    #[serde(
        rename = "RequestTimeoutMs",
        with = "duration_ms",
        default = "defaults::request"
    )]
    pub request_timeout: Duration,
    /// Minimum time between two reconnection attempts of one pooled connection (default 1 s).
    #[serde(
        rename = "RetryDelayMs",
        with = "duration_ms",
        default = "defaults::retry"
    )]
    pub retry_delay: Duration,
    /// Entries per page of a paged search (default 500, at most 1000: AD's `MaxPageSize`).
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// LDAP connections per server, each multiplexing concurrent operations (default 4).
    #[serde(default = "defaults::connections")]
    pub connections: usize,
    /// How long a group or a new parent an order names, once read and found, is taken to
    /// exist without being read again (default 10 s; 0 reads it for every order). The check
    /// only refuses early an order naming a missing object; a write that meets one deleted
    /// meanwhile still fails with a typed error, and forgets it.
    #[serde(
        rename = "ExistenceCacheMs",
        with = "duration_ms",
        default = "defaults::existence_cache"
    )]
    pub existence_cache: Duration,
    /// At most this many members added to (or removed from) one group in one write (default
    /// 64; 1 writes every membership alone). Concurrent orders that change the same group's
    /// members are written together while the write before them is in flight; nothing waits
    /// for a batch to fill, and each order still gets its own outcome.
    #[serde(rename = "MembershipBatch", default = "defaults::membership_batch")]
    pub membership_batch: usize,
    /// The resource-type mapping by entity type id. Defaults: `user`, `group`,
    /// `organizationalUnit` (see [`crate::mapping::default_entity_types`]).
    #[serde(default = "default_entity_types")]
    pub entity_types: BTreeMap<String, EntityMapping>,
}

mod defaults {
    use std::time::Duration;
    pub fn connect() -> Duration {
        Duration::from_secs(10)
    }
    pub fn request() -> Duration {
        Duration::from_secs(30)
    }
    pub fn retry() -> Duration {
        Duration::from_secs(1)
    }
    pub fn page_size() -> u32 {
        500
    }
    pub fn connections() -> usize {
        4
    }
    pub fn existence_cache() -> Duration {
        Duration::from_secs(10)
    }
    pub fn membership_batch() -> usize {
        64
    }
}

/// The bind password as written in raw settings (a string, or a number given by mistake).
fn bind_password_text(json: &serde_json::Value) -> Option<String> {
    match json.get("Bind")?.get("Password")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A parse error with no value of `Bind` in it: serde echoes a wrongly typed value ("invalid
/// type: string \"...\""), and under `Bind` that value may be the password (or hold it, as in
/// `"Bind": "svc:password"`). The setting's name and what was expected stay.
fn without_bind_values(mut e: SettingsError, password: Option<&str>) -> SettingsError {
    if e.setting == "Bind" || e.setting.starts_with("Bind.") {
        let is_echo = ["invalid type", "invalid value", "invalid length"]
            .iter()
            .any(|p| e.message.starts_with(p));
        if is_echo {
            e.message = match e.message.split_once(", expected ") {
                Some((_, expected)) => {
                    format!("wrong value (not shown, it may be secret); expected {expected}")
                }
                None => "wrong value (not shown, it may be secret)".to_owned(),
            };
        }
    }
    if let Some(p) = password.filter(|p| !p.is_empty() && e.message.contains(*p)) {
        e.message = e.message.replace(p, autoprov_core::SECRET_MASK);
    }
    e
}

impl fmt::Debug for AdSettings {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdSettings")
            .field("servers", &self.servers)
            .field("bind", &self.bind)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry_delay", &self.retry_delay)
            .field("page_size", &self.page_size)
            .field("connections", &self.connections)
            .field("existence_cache", &self.existence_cache)
            .field("membership_batch", &self.membership_batch)
            .field(
                "entity_types",
                &self.entity_types.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AdSettings {
    /// Settings for one server with the defaults for everything else.
    pub fn new(server: ServerSettings, bind: BindSettings) -> Self {
        Self {
            servers: vec![server],
            bind,
            tls: TlsSettings::default(),
            connect_timeout: defaults::connect(),
            request_timeout: defaults::request(),
            retry_delay: defaults::retry(),
            page_size: defaults::page_size(),
            connections: defaults::connections(),
            existence_cache: defaults::existence_cache(),
            membership_batch: defaults::membership_batch(),
            entity_types: default_entity_types(),
        }
    }

    /// Parses settings from JSON; a wrong shape is reported with its JSON path.
    pub fn from_json(json: serde_json::Value) -> Result<Self, SettingsError> {
        let password = bind_password_text(&json);
        let settings: Self = autoprov_connector::settings::parse_settings(json)
            .map_err(|e| without_bind_values(e, password.as_deref()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every setting; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.servers.is_empty() {
            return Err(SettingsError::new(
                "Servers",
                "at least one server is required",
            ));
        }
        let mut bases: Vec<Dn> = Vec::new();
        for (i, server) in self.servers.iter().enumerate() {
            let at = |field: &str| format!("Servers[{i}].{field}");
            check_url(&at("Url"), &server.url, self.tls.mode)?;
            for (j, url) in server.fallback_urls.iter().enumerate() {
                check_url(&at(&format!("FallbackUrls[{j}]")), url, self.tls.mode)?;
            }
            let base = Dn::parse(&server.base_dn)
                .map_err(|e| SettingsError::new(at("BaseDn"), e.to_string()))?;
            if base.is_empty() {
                return Err(SettingsError::new(at("BaseDn"), "the base DN is required"));
            }
            if let Some(other) = bases.iter().position(|b| b.same_as(&base)) {
                return Err(SettingsError::new(
                    at("BaseDn"),
                    format!("the same base DN as Servers[{other}]: one server per domain"),
                ));
            }
            bases.push(base);
        }
        if self.bind.login.trim().is_empty() {
            return Err(SettingsError::new(
                "Bind.Login",
                "the login is required (UPN or DN)",
            ));
        }
        if !self.bind.login.contains('@') && Dn::parse(&self.bind.login).is_err() {
            return Err(SettingsError::new(
                "Bind.Login",
                "expected a user principal name (`svc@EXAMPLE.TEST`) or a DN",
            ));
        }
        if self.bind.password.is_empty() {
            return Err(SettingsError::new(
                "Bind.Password",
                "the password is required (an empty password would be an anonymous bind)",
            ));
        }
        if self.bind.password.is_redacted() {
            return Err(SettingsError::new(
                "Bind.Password",
                "is the mask `********` of a written file, not a password: give the password itself",
            ));
        }
        if self.tls.mode == TlsMode::Plain && !self.tls.allow_plain_for_tests {
            return Err(SettingsError::new(
                "Tls.Mode",
                "Plain sends everything unencrypted; it needs Tls.AllowPlainForTests: true",
            ));
        }
        if !self.tls.verify && !self.tls.danger_accept_invalid_certs_for_tests {
            return Err(SettingsError::new(
                "Tls.Verify",
                "turning certificate verification off needs \
                 Tls.DangerAcceptInvalidCertsForTests: true",
            ));
        }
        if let Some(ca) = &self.tls.ca_certificate {
            let pem = ca.pem()?;
            let text = String::from_utf8_lossy(&pem);
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                let setting = match ca {
                    CaCertificate::File(_) => "Tls.CaCertificate.File",
                    CaCertificate::Pem(_) => "Tls.CaCertificate.Pem",
                };
                return Err(SettingsError::new(setting, "holds no PEM certificate"));
            }
        }
        let ms = |d: Duration| d.as_millis();
        for (name, d) in [
            ("ConnectTimeoutMs", self.connect_timeout),
            ("RequestTimeoutMs", self.request_timeout),
        ] {
            if d.is_zero() || ms(d) > 3_600_000 {
                return Err(SettingsError::new(name, "must be between 1 ms and 1 hour"));
            }
        }
        if ms(self.existence_cache) > 600_000 {
            return Err(SettingsError::new(
                "ExistenceCacheMs",
                "must be at most 10 minutes",
            ));
        }
        if ms(self.retry_delay) > 600_000 {
            return Err(SettingsError::new(
                "RetryDelayMs",
                "must be at most 10 minutes",
            ));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(SettingsError::new(
                "PageSize",
                "must be between 1 and 1000 (AD's MaxPageSize)",
            ));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(SettingsError::new(
                "Connections",
                "must be between 1 and 64",
            ));
        }
        if !(1..=1000).contains(&self.membership_batch) {
            return Err(SettingsError::new(
                "MembershipBatch",
                "must be between 1 and 1000",
            ));
        }
        if self.entity_types.is_empty() {
            return Err(SettingsError::new(
                "EntityTypes",
                "at least one entity type is required",
            ));
        }
        for (name, mapping) in &self.entity_types {
            mapping.validate(&format!("EntityTypes.{name}"))?;
        }
        Ok(())
    }
}

/// Checks one server URL: ldap:// or ldaps:// as the TLS mode wants, with a host.
fn check_url(field: &str, url: &str, mode: TlsMode) -> Result<(), SettingsError> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        SettingsError::new(field, format!("`{url}` is not an ldap:// or ldaps:// URL"))
    })?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(SettingsError::new(field, format!("`{url}` names no host")));
    }
    match (scheme.to_ascii_lowercase().as_str(), mode) {
        ("ldaps", TlsMode::Ldaps) | ("ldap", TlsMode::StartTls | TlsMode::Plain) => {}
        ("ldaps", mode) => {
            return Err(SettingsError::new(
                field,
                format!("`{url}` is ldaps:// but Tls.Mode is {mode:?}; use ldap:// or Mode Ldaps"),
            ));
        }
        ("ldap", TlsMode::Ldaps) => {
            return Err(SettingsError::new(
                field,
                format!(
                    "`{url}` is plain ldap:// but Tls.Mode is Ldaps; use ldaps:// or Mode StartTls"
                ),
            ));
        }
        (other, _) => {
            return Err(SettingsError::new(
                field,
                format!("unsupported scheme `{other}` (ldap or ldaps)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "Servers": [{"Url": "ldaps://127.0.0.1:636", "BaseDn": "DC=example,DC=test"}],
            "Bind": {"Login": "Administrator@EXAMPLE.TEST", "Password": "Very-Secret-1"},
        })
    }

    fn with(
        mut v: serde_json::Value,
        path: &[&str],
        value: serde_json::Value,
    ) -> serde_json::Value {
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(p.to_string())
                .or_insert_with(|| json!({}));
        }
        cur[path[path.len() - 1]] = value;
        v
    }

    #[test]
    fn defaults_apply() {
        let s = AdSettings::from_json(base()).unwrap();
        assert_eq!(s.tls.mode, TlsMode::Ldaps);
        assert!(s.tls.verify);
        assert_eq!(s.page_size, 500);
        assert_eq!(s.connections, 4);
        assert_eq!(s.request_timeout, Duration::from_secs(30));
        assert_eq!(s.existence_cache, Duration::from_secs(10));
        let off = AdSettings::from_json(with(base(), &["ExistenceCacheMs"], json!(0))).unwrap();
        assert_eq!(off.existence_cache, Duration::ZERO);
        assert!(s.entity_types.contains_key("user"));
        assert!(s.entity_types.contains_key("group"));
        assert!(s.entity_types.contains_key("organizationalUnit"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = AdSettings::from_json(base()).unwrap();
        let shown = format!("{s:?} {s:#?} {:?}", s.bind);
        assert!(!shown.contains("Very-Secret-1"), "{shown}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("Very-Secret-1"), "{json}");
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (with(base(), &["Servers"], json!([])), "Servers"),
            (
                with(
                    base(),
                    &["Servers"],
                    json!([{"Url": "ldap://x", "BaseDn": "DC=x"}]),
                ),
                "Servers[0].Url",
            ),
            (
                with(
                    base(),
                    &["Servers"],
                    json!([{"Url": "http://x", "BaseDn": "DC=x"}]),
                ),
                "Servers[0].Url",
            ),
            (
                with(
                    base(),
                    &["Servers"],
                    json!([{"Url": "ldaps://x", "BaseDn": "DC=x,"}]),
                ),
                "Servers[0].BaseDn",
            ),
            (
                with(
                    base(),
                    &["Servers"],
                    json!([{"Url": "ldaps://x", "BaseDn": "DC=x"}, {"Url": "ldaps://y", "BaseDn": "dc=X"}]),
                ),
                "Servers[1].BaseDn",
            ),
            (
                with(base(), &["Bind", "Password"], json!("")),
                "Bind.Password",
            ),
            (
                with(base(), &["Bind", "Login"], json!("not a login")),
                "Bind.Login",
            ),
            (
                with(
                    with(base(), &["Tls", "Mode"], json!("Plain")),
                    &["Servers"],
                    json!([{"Url": "ldap://x", "BaseDn": "DC=x"}]),
                ),
                "Tls.Mode",
            ),
            (with(base(), &["Tls", "Verify"], json!(false)), "Tls.Verify"),
            (
                with(base(), &["Tls", "CaCertificate"], json!({"Pem": "nope"})),
                "Tls.CaCertificate.Pem",
            ),
            (
                with(
                    base(),
                    &["Tls", "CaCertificate"],
                    json!({"File": "/nonexistent/ca.pem"}),
                ),
                "Tls.CaCertificate.File",
            ),
            (with(base(), &["PageSize"], json!(0)), "PageSize"),
            (with(base(), &["PageSize"], json!(5000)), "PageSize"),
            (with(base(), &["Connections"], json!(0)), "Connections"),
            (
                with(base(), &["MembershipBatch"], json!(0)),
                "MembershipBatch",
            ),
            (
                with(base(), &["MembershipBatch"], json!(1001)),
                "MembershipBatch",
            ),
            (
                with(base(), &["ExistenceCacheMs"], json!(600_001)),
                "ExistenceCacheMs",
            ),
            (
                with(base(), &["ExistenceCacheMs"], json!(-1)),
                "ExistenceCacheMs",
            ),
            (
                with(base(), &["RequestTimeoutMs"], json!(0)),
                "RequestTimeoutMs",
            ),
            (with(base(), &["Unknown"], json!(1)), "Unknown"),
            (with(base(), &["Tls", "Mode"], json!("Ssl")), "Tls.Mode"),
            (with(base(), &["EntityTypes"], json!({})), "EntityTypes"),
        ];
        for (json, setting) in cases {
            let err = AdSettings::from_json(json.clone()).unwrap_err();
            assert_eq!(err.setting, setting, "{err} for {json}");
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn misspelt_settings_name_the_closest_setting() {
        for (json, setting, suggestion) in [
            (
                with(base(), &["RequestTimeoutMS"], json!(1000)),
                "RequestTimeoutMS",
                Some("RequestTimeoutMs"),
            ),
            (
                with(base(), &["PageSise"], json!(100)),
                "PageSise",
                Some("PageSize"),
            ),
            (
                with(base(), &["Tls", "AllowPlainForTest"], json!(true)),
                "Tls.AllowPlainForTest",
                Some("AllowPlainForTests"),
            ),
            (
                with(base(), &["Tls", "Mode"], json!("StartTLS")),
                "Tls.Mode",
                Some("StartTls"),
            ),
            (with(base(), &["Unknown"], json!(1)), "Unknown", None),
        ] {
            let err = AdSettings::from_json(json.clone()).unwrap_err();
            assert_eq!(err.setting, setting, "{err} for {json}");
            assert_eq!(err.suggestion.as_deref(), suggestion, "{err}");
            if let Some(s) = suggestion {
                assert!(
                    err.to_string().ends_with(&format!("did you mean `{s}`?")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn plain_needs_the_explicit_flag() {
        let json = with(
            with(
                with(base(), &["Tls", "Mode"], json!("Plain")),
                &["Tls", "AllowPlainForTests"],
                json!(true),
            ),
            &["Servers"],
            json!([{"Url": "ldap://127.0.0.1:389", "BaseDn": "DC=example,DC=test"}]),
        );
        let s = AdSettings::from_json(json).unwrap();
        assert!(!s.tls.mode.is_encrypted());
    }

    #[test]
    fn fallback_urls_are_checked_and_named() {
        let mut v = base();
        v["Servers"][0]["FallbackUrls"] = json!(["ldaps://dc2.example.test", "ldap://dc3"]);
        let e = AdSettings::from_json(v.clone()).unwrap_err();
        assert_eq!(e.setting, "Servers[0].FallbackUrls[1]", "{e}");
        v["Servers"][0]["FallbackUrls"] = json!(["ldaps://dc2.example.test"]);
        let s = AdSettings::from_json(v.clone()).unwrap();
        assert_eq!(
            s.servers[0].urls().collect::<Vec<_>>(),
            ["ldaps://127.0.0.1:636", "ldaps://dc2.example.test"]
        );
    }
}
