//! A small pool of ldap3 connections per server.
//!
//! Each pooled connection is an ldap3 handle that multiplexes concurrent operations, so a few
//! connections serve many concurrent orders. Every operation has a deadline. A connection that
//! fails at the transport level, or leaves a request unanswered past its deadline (a stalled or
//! half-open connection), is dropped and the next use reconnects (no more often than the retry
//! delay). After a transport failure the operation is tried once more on a fresh connection,
//! which is safe because every fulfilment step is idempotent; after a timeout it is not, since
//! the deadline is spent, and the caller's retry policy decides.
//!
//! Each connection of a slot has a generation number, so a late failure on a connection that
//! was already replaced does not drop its healthy successor.

use crate::errors::LdapFailure;
use crate::settings::{AdSettings, ServerSettings, TlsMode};
use autoprov_connector::dn::Dn;
use autoprov_core::{SECRET_MASK, Secret};
use futures::future::BoxFuture;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::StructureTag;
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, ResultEntry, Scope};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// AD's permissive-modify control: adding a present value or removing an absent one succeeds.
pub(crate) const PERMISSIVE_MODIFY_OID: &str = "1.2.840.113556.1.4.1413";
/// AD's tree-delete control: delete the entry and its subtree.
pub(crate) const TREE_DELETE_OID: &str = "1.2.840.113556.1.4.805";
/// AD's show-deleted control: searches see tombstones.
pub(crate) const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";

/// A request control (OID, critical, no value).
pub(crate) fn control(oid: &str) -> RawControl {
    RawControl {
        ctype: oid.to_owned(),
        crit: true,
        val: None,
    }
}

/// One entry of a search result: its DN and its attributes as raw values. Attribute names
/// are matched without regard to case, as LDAP does; each name appears once, as the server
/// spelled it. A list rather than a map: an entry has a few dozen attributes, read a few times
/// each, and building a map of lower-cased names cost more than the lookups it saved.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    pub dn: String,
    /// (name as the server spelled it, values)
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// An entry as the server sent it: what `SearchEntry::construct` gives, without building
    /// its two maps, checking every value's UTF-8 and copying it (values stay bytes until a
    /// property's type reads them). A malformed entry is an I/O error (`InvalidData`, the
    /// connection is not trusted further), where `construct` would panic.
    pub(crate) fn from_result(re: ResultEntry) -> Result<Self, LdapError> {
        fn parse(tag: StructureTag) -> Option<Entry> {
            let mut tags = tag.match_id(4)?.expect_constructed()?.into_iter();
            let dn = String::from_utf8(tags.next()?.expect_primitive()?).ok()?;
            let parts = tags.next()?.expect_constructed()?;
            let mut attrs = Vec::with_capacity(parts.len());
            for part in parts {
                let mut part = part.expect_constructed()?.into_iter();
                let name = String::from_utf8(part.next()?.expect_primitive()?).ok()?;
                let values = part
                    .next()?
                    .expect_constructed()?
                    .into_iter()
                    .map(StructureTag::expect_primitive)
                    .collect::<Option<Vec<Vec<u8>>>>()?;
                // Attributes are returned at most once in an entry (RFC 4511 §4.5.1.8).
                attrs.push((name, values));
            }
            Some(Entry { dn, attrs })
        }
        parse(re.0).ok_or_else(|| LdapError::Io {
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server sent a malformed search result entry",
            ),
        })
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.attrs
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Adds values to an attribute, creating it under `name` when the entry has none.
    pub(crate) fn add(&mut self, name: String, values: Vec<Vec<u8>>) {
        match self.position(&name) {
            Some(i) => self.attrs[i].1.extend(values),
            None => self.attrs.push((name, values)),
        }
    }

    /// Takes an attribute out: its name as spelled and its values.
    pub(crate) fn remove(&mut self, name: &str) -> Option<(String, Vec<Vec<u8>>)> {
        self.position(name).map(|i| self.attrs.swap_remove(i))
    }

    /// The values of an attribute (case-insensitive name).
    pub(crate) fn values(&self, name: &str) -> &[Vec<u8>] {
        self.position(name)
            .map(|i| self.attrs[i].1.as_slice())
            .unwrap_or(&[])
    }

    /// The first value as text.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.values(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// All values as text.
    pub(crate) fn texts(&self, name: &str) -> Vec<String> {
        self.values(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The `objectGUID` as text.
    pub(crate) fn guid(&self) -> Option<String> {
        self.values("objectGUID")
            .first()
            .and_then(|b| crate::guid::guid_to_string(b))
    }
}

/// What a connection is made with.
#[cfg_attr(
    not(any(feature = "tls-rustls", feature = "tls-native")),
    allow(dead_code)
)]
pub(crate) struct ConnectSpec {
    pub mode: TlsMode,
    pub verify: bool,
    pub login: String,
    pub password: Secret,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_delay: Duration,
    #[cfg(feature = "tls-rustls")]
    pub rustls: Option<Arc<rustls::ClientConfig>>,
    #[cfg(feature = "tls-native")]
    pub native: Option<native_tls::TlsConnector>,
}

impl ConnectSpec {
    /// Builds the TLS configuration from the settings (reads the CA certificate).
    pub(crate) fn from_settings(
        settings: &AdSettings,
    ) -> Result<Self, crate::settings::SettingsError> {
        let encrypted = settings.tls.mode.is_encrypted();
        let ca = match &settings.tls.ca_certificate {
            Some(ca) if encrypted => Some(ca.pem()?),
            _ => None,
        };
        #[cfg(feature = "tls-rustls")]
        let rustls = if encrypted {
            Some(rustls_config(ca.as_deref(), settings.tls.verify)?)
        } else {
            None
        };
        #[cfg(feature = "tls-native")]
        let native = if encrypted {
            Some(native_connector(ca.as_deref(), settings.tls.verify)?)
        } else {
            None
        };
        #[cfg(not(any(feature = "tls-rustls", feature = "tls-native")))]
        {
            let _ = ca;
            if encrypted {
                return Err(crate::settings::SettingsError::new(
                    "Tls.Mode",
                    "this build has no TLS (enable the `tls-rustls` or `tls-native` feature)",
                ));
            }
        }
        Ok(Self {
            mode: settings.tls.mode,
            verify: settings.tls.verify,
            login: settings.bind.login.clone(),
            password: settings.bind.password.clone(),
            connect_timeout: settings.connect_timeout,
            request_timeout: settings.request_timeout,
            retry_delay: settings.retry_delay,
            #[cfg(feature = "tls-rustls")]
            rustls,
            #[cfg(feature = "tls-native")]
            native,
        })
    }
}

/// The system's trust roots, read once per process (reading them scans the certificate store).
#[cfg(feature = "tls-rustls")]
static SYSTEM_ROOTS: std::sync::LazyLock<Arc<rustls::RootCertStore>> =
    std::sync::LazyLock::new(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("reading the system's TLS trust roots: {e}");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(added, ignored, "some system TLS trust roots are unusable");
        }
        Arc::new(roots)
    });

/// The package's own rustls configuration, used on every encrypted path (LDAPS and StartTLS)
/// so that ldap3 never builds one: ldap3's would take the process-wide default crypto provider,
/// which panics when the host links a second provider without installing one.
///
/// - The crypto provider is explicit (ring, the one this crate enables).
/// - Only TLS 1.3 and 1.2 are offered.
/// - A configured CA replaces the trust roots: only certificates it signed are accepted, even
///   ones a public CA would vouch for (an AD's certificates come from its own CA, and a public
///   root would let anyone with a certificate for the DC's name impersonate it). Without one,
///   the system's roots are used.
/// - `verify == false` (only with `Tls.DangerAcceptInvalidCertsForTests`) accepts any
///   certificate and name, but handshake signatures are still checked.
#[cfg(feature = "tls-rustls")]
pub(crate) fn rustls_config(
    ca_pem: Option<&[u8]>,
    verify: bool,
) -> Result<Arc<rustls::ClientConfig>, crate::settings::SettingsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            crate::settings::SettingsError::new("Tls", format!("TLS setup failed: {e}"))
        })?;
    let config = if !verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(trust_roots(ca_pem)?)
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The roots a server's certificate must chain to: the configured CA's certificates alone
/// (they replace the system's roots, they do not extend them), or the system's roots.
#[cfg(feature = "tls-rustls")]
fn trust_roots(
    ca_pem: Option<&[u8]>,
) -> Result<Arc<rustls::RootCertStore>, crate::settings::SettingsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let Some(pem) = ca_pem else {
        let roots = SYSTEM_ROOTS.clone();
        if roots.is_empty() {
            tracing::warn!(
                "no Tls.CaCertificate and no system TLS trust roots: no server can be verified"
            );
        }
        return Ok(roots);
    };
    let bad = |m: String| crate::settings::SettingsError::new("Tls.CaCertificate", m);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("unreadable PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(Arc::new(roots))
}

/// Accepts any server certificate and name (tests against a throwaway server only), while
/// still checking that the server holds the key of the certificate it sent.
#[cfg(feature = "tls-rustls")]
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "tls-rustls")]
impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The native-tls counterpart of [`rustls_config`]: TLS 1.2 or later, a configured CA
/// replaces the built-in roots, `verify == false` accepts any certificate and name.
#[cfg(feature = "tls-native")]
fn native_connector(
    pem: Option<&[u8]>,
    verify: bool,
) -> Result<native_tls::TlsConnector, crate::settings::SettingsError> {
    let bad = |m: String| crate::settings::SettingsError::new("Tls.CaCertificate", m);
    let mut builder = native_tls::TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(pem) = pem {
        let text = String::from_utf8_lossy(pem);
        let end = "-----END CERTIFICATE-----";
        for part in text.split_inclusive(end).filter(|p| p.contains(end)) {
            let cert = native_tls::Certificate::from_pem(part.trim().as_bytes())
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
            builder.add_root_certificate(cert);
        }
        builder.disable_built_in_roots(true);
    }
    if !verify {
        builder.danger_accept_invalid_certs(true);
        builder.danger_accept_invalid_hostnames(true);
    }
    builder
        .build()
        .map_err(|e| bad(format!("TLS setup failed: {e}")))
}

struct SlotState {
    ldap: Option<Ldap>,
    /// Counts the connections made in this slot; names the one in `ldap`.
    generation: u64,
    last_failure: Option<(Instant, LdapFailure)>,
}

/// A handle of one pooled connection, with what identifies it for [`ServerPool::failed`].
pub(crate) struct Handle {
    pub ldap: Ldap,
    slot: usize,
    generation: u64,
}

/// The connections to one server (domain), which may have several domain controllers.
pub(crate) struct ServerPool {
    /// The first URL (names the server in messages).
    pub url: String,
    /// Every URL, the first one first: connections are made to the preferred one and fail
    /// over to the next ones in turn.
    urls: Vec<String>,
    /// The index in `urls` of the last one that answered.
    preferred: AtomicUsize,
    pub base: Dn,
    pub base_dn: String,
    spec: Arc<ConnectSpec>,
    slots: Vec<tokio::sync::Mutex<SlotState>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for ServerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPool")
            .field("urls", &self.urls)
            .field("base_dn", &self.base_dn)
            .field("connections", &self.slots.len())
            .finish()
    }
}

/// The entries of a search.
pub(crate) type Entries = Vec<Entry>;

impl ServerPool {
    pub(crate) fn new(server: &ServerSettings, spec: Arc<ConnectSpec>, connections: usize) -> Self {
        Self {
            url: server.url.trim().to_owned(),
            urls: server.urls().map(|u| u.trim().to_owned()).collect(),
            preferred: AtomicUsize::new(0),
            base: Dn::parse(&server.base_dn).unwrap_or_else(|_| Dn::parse("").expect("root")),
            base_dn: server.base_dn.clone(),
            spec,
            slots: (0..connections)
                .map(|_| {
                    tokio::sync::Mutex::new(SlotState {
                        ldap: None,
                        generation: 0,
                        last_failure: None,
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A new connection to the preferred domain controller, or, when it cannot be made, to
    /// the next ones in turn. All failing gives the last failure, naming every URL tried.
    async fn connect(&self) -> Result<Ldap, LdapFailure> {
        let n = self.urls.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures: Vec<String> = Vec::new();
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            match self.connect_to(&self.urls[i]).await {
                Ok(ldap) => {
                    if i != first {
                        tracing::warn!(
                            from = %self.urls[first],
                            to = %self.urls[i],
                            "failed over to another domain controller"
                        );
                        self.preferred.store(i, Ordering::Relaxed);
                    }
                    return Ok(ldap);
                }
                Err(f) => {
                    failures.push(format!("{}: {}", self.urls[i], f.text()));
                    last = Some(f);
                }
            }
        }
        let last = last.expect("at least one URL");
        if n == 1 {
            return Err(last);
        }
        let all = failures.join("; ");
        Err(match last {
            LdapFailure::Transport(_) => LdapFailure::Transport(all),
            LdapFailure::Timeout(_) => LdapFailure::Timeout(all),
            LdapFailure::Certificate(_) => LdapFailure::Certificate(all),
            LdapFailure::Result { rc, matched, .. } => LdapFailure::Result {
                rc,
                text: all,
                matched,
            },
        })
    }

    async fn connect_to(&self, url: &str) -> Result<Ldap, LdapFailure> {
        // Settings validation refuses a redacted bind password; should one reach here, it
        // binds with a value no directory accepts rather than anonymously.
        let password = self
            .spec
            .password
            .expose()
            .unwrap_or(SECRET_MASK)
            .to_owned();
        self.connect_as(url, self.spec.login.clone(), password)
            .await
    }

    /// Whether `password` is the password of the account `dn`: a simple bind as it on a
    /// connection of its own (the service account's connections are untouched). AD answers a
    /// right password of a disabled, expired or must-change account with its own sub-codes
    /// (`data 533`, `532`, `701`, `773`): the password is right all the same.
    pub(crate) async fn verify_bind(&self, dn: &str, password: &str) -> Result<bool, LdapFailure> {
        let url = &self.urls[self.preferred.load(Ordering::Relaxed) % self.urls.len()];
        match self
            .connect_as(url, dn.to_owned(), password.to_owned())
            .await
        {
            Ok(mut ldap) => {
                let _ = ldap.unbind().await;
                Ok(true)
            }
            Err(LdapFailure::Result { rc: 49, text, .. }) => {
                Ok(["data 533", "data 532", "data 701", "data 773"]
                    .iter()
                    .any(|code| text.contains(code)))
            }
            Err(f) => Err(f),
        }
    }

    async fn connect_as(
        &self,
        url: &str,
        login: String,
        password: String,
    ) -> Result<Ldap, LdapFailure> {
        let spec = &self.spec;
        #[cfg_attr(
            not(any(feature = "tls-rustls", feature = "tls-native")),
            allow(unused_mut)
        )]
        let mut settings = LdapConnSettings::new().set_conn_timeout(spec.connect_timeout);
        // A build without TLS only ever connects in Plain mode (`ConnectSpec` refuses others).
        #[cfg(any(feature = "tls-rustls", feature = "tls-native"))]
        {
            if spec.mode == TlsMode::StartTls {
                settings = settings.set_starttls(true);
            }
            if !spec.verify {
                settings = settings.set_no_tls_verify(true);
            }
        }
        #[cfg(feature = "tls-rustls")]
        if let Some(config) = &spec.rustls {
            settings = settings.set_config(config.clone());
        }
        #[cfg(feature = "tls-native")]
        if let Some(connector) = &spec.native {
            settings = settings.set_connector(connector.clone());
        }
        let target = url.to_owned();
        let timeout = spec.connect_timeout;
        let attempt = async move {
            let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &target).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.drive().await {
                    tracing::debug!("LDAP connection ended: {e}");
                }
            });
            ldap.with_timeout(timeout)
                .simple_bind(&login, &password)
                .await?
                .success()?;
            Ok::<_, LdapError>(ldap)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(ldap)) => Ok(ldap),
            Ok(Err(e)) => Err(LdapFailure::from(e)),
            Err(_) => Err(LdapFailure::Timeout(format!(
                "connecting to {url} took longer than {timeout:?}"
            ))),
        }
    }

    /// A handle of the next connection (round robin), connecting it when needed.
    pub(crate) async fn handle(&self) -> Result<Handle, LdapFailure> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.handle_of(index).await
    }

    async fn handle_of(&self, index: usize) -> Result<Handle, LdapFailure> {
        let mut slot = self.slots[index].lock().await;
        let generation = slot.generation;
        if let Some(ldap) = slot.ldap.as_mut() {
            if !ldap.is_closed() {
                return Ok(Handle {
                    ldap: ldap.clone(),
                    slot: index,
                    generation,
                });
            }
            slot.ldap = None;
        }
        if let Some((at, failure)) = &slot.last_failure
            && at.elapsed() < self.spec.retry_delay
        {
            return Err(failure.clone());
        }
        match self.connect().await {
            Ok(ldap) => {
                slot.generation += 1;
                slot.ldap = Some(ldap.clone());
                slot.last_failure = None;
                Ok(Handle {
                    ldap,
                    slot: index,
                    generation: slot.generation,
                })
            }
            Err(failure) => {
                // Refused credentials or certificates are not worth a quick retry either.
                slot.last_failure = Some((Instant::now(), failure.clone()));
                Err(failure)
            }
        }
    }

    /// Records that an operation on `handle`'s connection failed: when the failure means the
    /// connection cannot be trusted, it is dropped (unless it was already replaced), so the next
    /// use reconnects. Operations still running on it keep their own handle and finish.
    pub(crate) async fn failed(&self, handle: &Handle, failure: &LdapFailure) {
        if !failure.breaks_connection() {
            return;
        }
        let mut slot = self.slots[handle.slot].lock().await;
        if slot.generation == handle.generation && slot.ldap.is_some() {
            tracing::debug!(
                server = %self.url,
                slot = handle.slot,
                "dropping an LDAP connection after: {}",
                failure.text()
            );
            slot.ldap = None;
        }
    }

    /// Runs one LDAP operation with the request deadline; on a transport failure the connection
    /// is dropped and the operation tried once more on a fresh one.
    pub(crate) async fn call<'b, T>(
        &self,
        mut op: impl FnMut(Ldap) -> BoxFuture<'b, Result<T, LdapError>>,
    ) -> Result<T, LdapFailure> {
        let deadline = self.spec.request_timeout + Duration::from_millis(250);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let handle = self.handle().await?;
            let result = match tokio::time::timeout(deadline, op(handle.ldap.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => LdapFailure::from(e),
                Err(_) => LdapFailure::Timeout(format!(
                    "no answer from {} within {:?}",
                    self.url, self.spec.request_timeout
                )),
            };
            self.failed(&handle, &result).await;
            if attempt < 2 && matches!(result, LdapFailure::Transport(_)) {
                continue;
            }
            return Err(result);
        }
    }

    /// Reads one entry (base search). `Ok(None)` when it does not exist.
    pub(crate) async fn read(
        &self,
        dn: &str,
        attrs: &[String],
        controls: &[RawControl],
    ) -> Result<Option<Entry>, LdapFailure> {
        let t = self.spec.request_timeout;
        let found = self
            .call(|mut ldap| {
                Box::pin(async move {
                    if !controls.is_empty() {
                        ldap.with_controls(controls.to_vec());
                    }
                    let res = ldap
                        .with_timeout(t)
                        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
                        .await?;
                    Ok(res)
                })
            })
            .await?;
        let ldap3::SearchResult(entries, res) = found;
        match res.rc {
            0 => Ok(entries
                .into_iter()
                .find(|e| !e.is_ref() && !e.is_intermediate())
                .map(Entry::from_result)
                .transpose()?),
            32 => Ok(None),
            _ => Err(LdapFailure::Result {
                rc: res.rc,
                text: res.text,
                matched: res.matched,
            }),
        }
    }

    /// A paged subtree search, collected (for small result sets such as one lookup).
    pub(crate) async fn search_paged(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
        controls: &[RawControl],
        page_size: u32,
    ) -> Result<Entries, LdapFailure> {
        let t = self.spec.request_timeout;
        self.call(|mut ldap| {
            Box::pin(async move {
                let mut out = Vec::new();
                if !controls.is_empty() {
                    ldap.with_controls(controls.to_vec());
                }
                let adapters: Vec<Box<dyn Adapter<String, Vec<String>>>> = vec![
                    Box::new(EntriesOnly::new()),
                    Box::new(PagedResults::new(page_size as i32)),
                ];
                let mut stream = ldap
                    .with_timeout(t)
                    .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
                    .await?;
                while let Some(e) = stream.next().await? {
                    out.push(Entry::from_result(e)?);
                }
                let res = stream.finish().await;
                if res.rc == 32 {
                    return Ok(Vec::new());
                }
                res.success()?;
                Ok(out)
            })
        })
        .await
    }

    pub(crate) async fn add(
        &self,
        dn: &str,
        attrs: &[(Vec<u8>, HashSet<Vec<u8>>)],
    ) -> Result<(), LdapFailure> {
        let t = self.spec.request_timeout;
        self.call(|mut ldap| {
            Box::pin(async move {
                ldap.with_timeout(t)
                    .add(dn, attrs.to_vec())
                    .await?
                    .success()?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn modify(
        &self,
        dn: &str,
        mods: &[Mod<Vec<u8>>],
        controls: &[RawControl],
    ) -> Result<(), LdapFailure> {
        let t = self.spec.request_timeout;
        self.call(|mut ldap| {
            Box::pin(async move {
                if !controls.is_empty() {
                    ldap.with_controls(controls.to_vec());
                }
                ldap.with_timeout(t)
                    .modify(dn, mods.to_vec())
                    .await?
                    .success()?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn delete(
        &self,
        dn: &str,
        controls: &[RawControl],
    ) -> Result<(), LdapFailure> {
        let t = self.spec.request_timeout;
        self.call(|mut ldap| {
            Box::pin(async move {
                if !controls.is_empty() {
                    ldap.with_controls(controls.to_vec());
                }
                ldap.with_timeout(t).delete(dn).await?.success()?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn modify_dn(
        &self,
        dn: &str,
        new_rdn: &str,
        new_superior: Option<&str>,
    ) -> Result<(), LdapFailure> {
        let t = self.spec.request_timeout;
        self.call(|mut ldap| {
            Box::pin(async move {
                ldap.with_timeout(t)
                    .modifydn(dn, new_rdn, true, new_superior)
                    .await?
                    .success()?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(all(test, feature = "test-fixtures"))]
mod tls_tests {
    use super::*;
    use crate::test_fixtures::throwaway_ca_pem;

    #[test]
    fn a_configured_ca_replaces_the_trust_roots() {
        let one = throwaway_ca_pem();
        let two = format!("{one}{}", throwaway_ca_pem());
        assert_eq!(trust_roots(Some(one.as_bytes())).unwrap().len(), 1);
        assert_eq!(trust_roots(Some(two.as_bytes())).unwrap().len(), 2);
        // Not one more root, whatever the system holds.
        let system = trust_roots(None).unwrap().len();
        assert!(
            Arc::ptr_eq(&trust_roots(None).unwrap(), &SYSTEM_ROOTS),
            "without a CA the system's roots ({system}) are used"
        );
    }

    #[test]
    fn every_path_builds_without_a_process_default_provider() {
        // Nothing in this test binary installs a default provider; rustls would panic in
        // `ClientConfig::builder()` if one were needed and two were linked.
        let pem = throwaway_ca_pem();
        for (ca, verify) in [(Some(pem.as_bytes()), true), (None, true), (None, false)] {
            let config = rustls_config(ca, verify).unwrap();
            assert!(!config.crypto_provider().cipher_suites.is_empty());
        }
    }

    #[test]
    fn a_ca_without_a_certificate_is_a_settings_error() {
        let e = rustls_config(Some(b"no PEM here"), true).unwrap_err();
        assert_eq!(e.setting, "Tls.CaCertificate", "{e}");
    }
}

#[cfg(test)]
mod entry_tests {
    use super::*;
    use ldap3::asn1::{PL, TagClass, Types};

    fn octets(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: Types::OctetString as u64,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn constructed(id: Types, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: id as u64,
            payload: PL::C(inner),
        }
    }

    /// A SearchResultEntry (RFC 4511 §4.5.2) as the wire gives it.
    fn result_entry(dn: &str, attrs: &[(&str, Vec<&[u8]>)]) -> ResultEntry {
        let parts = attrs
            .iter()
            .map(|(name, values)| {
                constructed(
                    Types::Sequence,
                    vec![
                        octets(name.as_bytes()),
                        constructed(Types::Set, values.iter().map(|v| octets(v)).collect()),
                    ],
                )
            })
            .collect();
        ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                octets(dn.as_bytes()),
                constructed(Types::Sequence, parts),
            ]),
        })
    }

    #[test]
    fn an_entry_is_read_from_the_wire_with_names_matched_without_case() {
        let guid = [7u8; 16];
        let raw = result_entry(
            "CN=a,DC=example,DC=test",
            &[
                (
                    "memberOf",
                    vec![b"CN=g,DC=example,DC=test", b"CN=h,DC=example,DC=test"],
                ),
                ("cn", vec![b"a"]),
                ("objectGUID", vec![&guid]),
                // Not UTF-8: kept as bytes, as `SearchEntry` would put it in `bin_attrs`.
                ("thumbnailPhoto", vec![&[0xff, 0xfe]]),
            ],
        );
        let mut e = Entry::from_result(raw).expect("well formed");
        assert_eq!(e.dn, "CN=a,DC=example,DC=test");
        assert_eq!(e.attrs.len(), 4);
        assert_eq!(e.values("objectguid"), &[guid.to_vec()]);
        assert_eq!(e.values("CN"), &[b"a".to_vec()]);
        assert_eq!(e.values("thumbnailphoto"), &[vec![0xff, 0xfe]]);
        assert_eq!(e.values("MEMBEROF").len(), 2);
        assert!(e.values("sn").is_empty());
        let (name, values) = e.remove("MemberOf").expect("present");
        assert_eq!((name.as_str(), values.len()), ("memberOf", 2));
        assert!(e.remove("memberOf").is_none());
        e.add("Member".into(), vec![b"x".to_vec()]);
        e.add("member".into(), vec![b"y".to_vec()]);
        assert_eq!(e.values("MEMBER"), &[b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn a_malformed_entry_is_an_error_not_a_panic() {
        let wrong_tag = ResultEntry::new(octets(b"CN=a"));
        let mut no_attrs = result_entry("CN=a", &[]);
        if let PL::C(inner) = &mut no_attrs.0.payload {
            inner.pop();
        }
        let bad_dn = result_entry("CN=a", &[]);
        let bad_dn = ResultEntry::new(StructureTag {
            payload: match bad_dn.0.payload {
                PL::C(mut inner) => {
                    inner[0] = octets(&[0xff]);
                    PL::C(inner)
                }
                p => p,
            },
            ..bad_dn.0
        });
        for raw in [wrong_tag, no_attrs, bad_dn] {
            let e = Entry::from_result(raw).expect_err("malformed");
            assert!(
                e.to_string().contains("malformed search result entry"),
                "{e}"
            );
            assert!(matches!(LdapFailure::from(e), LdapFailure::Transport(_)));
        }
    }
}
