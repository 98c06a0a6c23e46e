//! What the tests, the example and the benchmark against a real directory share: the test
//! server's environment, an independent ldap3 admin handle (verifying TLS with the test CA
//! through the connector's own rustls setup), OpenLDAP's command-line tools, a private OU per
//! test, and order building.
//!
//! Behind the `test-fixtures` feature and hidden from the docs: it is not part of the
//! package's API, and it hands out ldap3 types (the admin handle checks outcomes without our
//! code), which the package's API never does. It panics on every failure, as tests want.

#![allow(missing_docs)]

use crate::AdConnector;
use crate::connector::AdConnectorBuilder;
use crate::settings::TlsMode;
use autoprov_connector::{Connector, ConnectorError, Executed, Fulfillment};
use autoprov_core::{
    ChangeType, Changes, EntityTypeRef, OrderId, Owner, ProvisioningOrder, Resource,
    ResourceTypeRef, StableId,
};
use futures::{FutureExt as _, StreamExt as _};
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use std::collections::{BTreeSet, HashSet};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

/// The test server's settings, from the environment written by `scripts/ad-test-server.sh`.
#[derive(Clone, Debug)]
pub struct AdEnv {
    pub url: String,
    pub plain_url: String,
    pub starttls_url: String,
    pub base_dn: String,
    pub bind_dn: String,
    pub bind_dn_full: String,
    pub password: String,
    pub ca_file: String,
}

impl AdEnv {
    /// The settings, when `AUTOPROV_AD_URL`, `AUTOPROV_AD_BASE_DN`, `AUTOPROV_AD_BIND_DN`,
    /// `AUTOPROV_AD_PASSWORD` and `AUTOPROV_AD_CA_FILE` are all set.
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let bind_dn = get("AUTOPROV_AD_BIND_DN")?;
        Some(Self {
            url: get("AUTOPROV_AD_URL")?,
            base_dn: get("AUTOPROV_AD_BASE_DN")?,
            password: get("AUTOPROV_AD_PASSWORD")?,
            ca_file: get("AUTOPROV_AD_CA_FILE")?,
            plain_url: get("AUTOPROV_AD_PLAIN_URL")
                .unwrap_or_else(|| "ldap://127.0.0.1:389".into()),
            starttls_url: get("AUTOPROV_AD_STARTTLS_URL")
                .unwrap_or_else(|| "ldap://127.0.0.1:389".into()),
            bind_dn_full: get("AUTOPROV_AD_BIND_DN_FULL").unwrap_or_else(|| bind_dn.clone()),
            bind_dn,
        })
    }

    /// A connector builder over LDAPS that verifies the server with the test CA.
    pub fn builder(&self, connection: &str) -> AdConnectorBuilder {
        AdConnector::builder()
            .connection(connection)
            .server(&self.url, &self.base_dn)
            .bind(&self.bind_dn, self.password.as_str())
            .ca_certificate_file(&self.ca_file)
    }

    /// Runs one of OpenLDAP's tools (`ldapsearch`, `ldapmodify`, `ldapdelete`) over LDAPS as
    /// the admin, verifying the server with the test CA.
    pub fn ldap_tool(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .env("LDAPTLS_CACERT", &self.ca_file)
            .args([
                "-x",
                "-H",
                &self.url,
                "-D",
                &self.bind_dn,
                "-w",
                &self.password,
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool} (ldap-utils): {e}"))
    }
}

/// The server's settings, or `None` after printing that the test skipped. With `CI=true` a
/// missing server fails the test instead: CI must run the real-AD suite.
pub fn ad_env(test: &str) -> Option<AdEnv> {
    let found = AdEnv::from_env();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: no AD test server in CI (AUTOPROV_AD_URL, AUTOPROV_AD_BASE_DN, \
                 AUTOPROV_AD_BIND_DN, AUTOPROV_AD_PASSWORD and AUTOPROV_AD_CA_FILE must be \
                 set: run `bash scripts/ad-test-server.sh start` and source its env file)"
            );
        }
        println!(
            "SKIPPED {test}: no AD test server (set AUTOPROV_AD_URL, run scripts/ad-test-server.sh start)"
        );
    }
    found
}

/// A connector over LDAPS that verifies the server with the test CA.
pub async fn connector(env: &AdEnv) -> AdConnector {
    env.builder("ad-test")
        .connections(2)
        .build()
        .await
        .expect("connecting to the AD test server over LDAPS")
}

/// A connector over plain LDAP (tests only).
pub async fn plain_connector(env: &AdEnv) -> AdConnector {
    AdConnector::builder()
        .connection("ad-test-plain")
        .server(&env.plain_url, &env.base_dn)
        .bind(&env.bind_dn, env.password.as_str())
        .tls_mode(TlsMode::Plain)
        .allow_plain_for_tests(true)
        .build()
        .await
        .expect("connecting to the AD test server over plain LDAP")
}

/// A bare ldap3 connection bound as the admin, verifying the server with the test CA through
/// the connector's own rustls setup.
pub async fn admin_ldap(env: &AdEnv) -> ldap3::Ldap {
    let pem = std::fs::read(&env.ca_file).expect("reading the test CA");
    let config = crate::pool::rustls_config(Some(&pem), true).expect("the test CA");
    let settings = LdapConnSettings::new().set_config(config);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &env.url)
        .await
        .expect("admin connection");
    ldap3::drive!(conn);
    ldap.simple_bind(&env.bind_dn, &env.password)
        .await
        .expect("admin bind")
        .success()
        .expect("admin bind");
    ldap
}

/// Whether `dn` can bind with `password` (over LDAPS, verifying the test CA): how a test
/// proves that a password set by the connector really works.
pub async fn can_bind(env: &AdEnv, dn: &str, password: &str) -> bool {
    let Ok(pem) = std::fs::read(&env.ca_file) else {
        return false;
    };
    let Ok(config) = crate::pool::rustls_config(Some(&pem), true) else {
        return false;
    };
    let settings = LdapConnSettings::new().set_config(config);
    let Ok((conn, mut ldap)) = LdapConnAsync::with_settings(settings, &env.url).await else {
        return false;
    };
    ldap3::drive!(conn);
    let ok = matches!(
        ldap.simple_bind(dn, password).await.map(|r| r.success()),
        Ok(Ok(_))
    );
    let _ = ldap.unbind().await;
    ok
}

/// A throwaway self-signed CA certificate (PEM) that signed nothing the test server holds,
/// made with `openssl` in a private temporary directory that is removed again.
pub fn throwaway_ca_pem() -> String {
    let dir = std::env::temp_dir().join(format!("autoprov-ad-throwaway-ca-{}", token()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (key, cert) = (dir.join("key.pem"), dir.join("ca.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=autoprov throwaway test CA",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&cert).expect("the throwaway CA");
    let _ = std::fs::remove_dir_all(&dir);
    pem
}

/// A short unique token for names (sAMAccountName allows 20 characters).
#[allow(clippy::disallowed_methods)] // a unique name for a test object, not domain time
pub fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:05x}{}",
        std::process::id() & 0xffff,
        nanos & 0xfffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An independent admin connection (plain ldap3): used to prepare fixtures and to check
/// outcomes without our code.
#[derive(Clone)]
pub struct Admin {
    pub ldap: ldap3::Ldap,
    pub env: AdEnv,
}

impl Admin {
    pub async fn connect(env: &AdEnv) -> Self {
        Self {
            ldap: admin_ldap(env).await,
            env: env.clone(),
        }
    }

    /// Reads one entry (all user attributes plus the named ones); `None` if absent.
    pub async fn read(&self, dn: &str, attrs: &[&str]) -> Option<SearchEntry> {
        let mut ldap = self.ldap.clone();
        let mut list: Vec<&str> = vec!["*"];
        list.extend_from_slice(attrs);
        let res = ldap
            .search(dn, Scope::Base, "(objectClass=*)", list)
            .await
            .expect("admin read");
        if res.1.rc == 32 {
            return None;
        }
        let (entries, _) = res.success().expect("admin read");
        entries
            .into_iter()
            .find(|e| !e.is_ref())
            .map(SearchEntry::construct)
    }

    /// The text values of one attribute of an entry.
    pub async fn values(&self, dn: &str, attr: &str) -> Vec<String> {
        match self.read(dn, &[attr]).await {
            Some(e) => e
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// All values of `member` of a group, following ranged retrieval if the server uses it.
    pub async fn members(&self, group_dn: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut low = 0usize;
        loop {
            let mut ldap = self.ldap.clone();
            let attr = format!("member;range={low}-*");
            let (entries, _) = ldap
                .search(
                    group_dn,
                    Scope::Base,
                    "(objectClass=*)",
                    vec![attr.as_str()],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
            let entry = SearchEntry::construct(entries.into_iter().next().expect("group"));
            let Some((name, values)) = entry
                .attrs
                .into_iter()
                .find(|(k, _)| k.to_ascii_lowercase().starts_with("member"))
            else {
                return out;
            };
            let n = values.len();
            out.extend(values.into_iter().map(|v| v.to_ascii_lowercase()));
            match name
                .split_once(";range=")
                .and_then(|(_, r)| r.split_once('-'))
            {
                Some((_, "*")) | None => return out,
                Some((_, high)) => {
                    let high: usize = high.parse().unwrap();
                    assert!(n > 0);
                    low = high + 1;
                }
            }
        }
    }

    pub async fn add(&self, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
        let mut ldap = self.ldap.clone();
        let attrs: Vec<(&str, HashSet<&str>)> = attrs
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        ldap.add(dn, attrs)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("admin add {dn}: {e}"));
    }

    pub async fn modify(&self, dn: &str, mods: Vec<Mod<String>>) {
        let mut ldap = self.ldap.clone();
        ldap.modify(dn, mods)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("admin modify {dn}: {e}"));
    }

    /// Deletes an entry and its subtree; absent is fine. Leaves go first, one by one (a tree
    /// delete of thousands of entries is one long transaction that stalls every other writer,
    /// i.e. the tests running in parallel); the tree-delete control covers what remains.
    pub async fn delete_tree(&self, dn: &str) {
        let mut ldap = self.ldap.clone();
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<&str, Vec<&str>>>> = vec![
            Box::new(ldap3::adapters::EntriesOnly::new()),
            Box::new(ldap3::adapters::PagedResults::new(500)),
        ];
        let mut below: Vec<String> = Vec::new();
        if let Ok(mut search) = ldap
            .streaming_search_with(
                adapters,
                dn,
                Scope::OneLevel,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .await
        {
            while let Ok(Some(entry)) = search.next().await {
                below.push(SearchEntry::construct(entry).dn);
            }
            let _ = search.finish().await;
        }
        futures::stream::iter(below)
            .for_each_concurrent(8, |child| async move {
                self.tree_delete(&child).await;
            })
            .await;
        self.tree_delete(dn).await;
    }

    async fn tree_delete(&self, dn: &str) {
        let mut ldap = self.ldap.clone();
        let res = ldap
            .with_controls(crate::pool::control(crate::pool::TREE_DELETE_OID))
            .delete(dn)
            .await
            .unwrap();
        assert!(res.rc == 0 || res.rc == 32, "deleting {dn}: {res}");
    }

    /// A fresh OU below the base DN.
    pub async fn create_ou(&self, label: &str) -> String {
        let dn = format!("OU=autoprov-test-{label}-{},{}", token(), self.env.base_dn);
        self.add(&dn, vec![("objectClass", vec!["organizationalUnit"])])
            .await;
        dn
    }

    pub async fn create_group(&self, parent: &str, name: &str) -> String {
        let dn = format!("CN={name},{parent}");
        self.add(
            &dn,
            vec![
                ("objectClass", vec!["group"]),
                ("sAMAccountName", vec![name]),
            ],
        )
        .await;
        dn
    }
}

/// Held shared by every [`in_ou`] test and exclusively by [`in_ou_alone`] ones.
///
/// Samba serializes writes behind one database transaction lock, so a test that loads the server
/// heavily (a 2,000-member group) can hold up a concurrent test's request for many seconds, and
/// a test that measures deadlines must not share the server with it. (Each `#[tokio::test]` has
/// its own runtime; tokio's locks work across runtimes.)
static SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs a test body in its own OU, deleting the OU afterwards even when the body panics.
pub async fn in_ou<F, Fut>(env: &AdEnv, label: &str, body: F)
where
    F: FnOnce(Admin, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _shared = SERVER.read().await;
    run_in_ou(env, label, body).await;
}

/// [`in_ou`] with the server to itself: for tests that load it heavily or measure deadlines.
pub async fn in_ou_alone<F, Fut>(env: &AdEnv, label: &str, body: F)
where
    F: FnOnce(Admin, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _exclusive = SERVER.write().await;
    run_in_ou(env, label, body).await;
}

async fn run_in_ou<F, Fut>(env: &AdEnv, label: &str, body: F)
where
    F: FnOnce(Admin, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let admin = Admin::connect(env).await;
    let ou = admin.create_ou(label).await;
    let outcome = std::panic::AssertUnwindSafe(body(admin.clone(), ou.clone()))
        .catch_unwind()
        .await;
    admin.delete_tree(&ou).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// An order for the connection `ad-test` with a unique id, owned by `jdoe`
/// (`Directory_User`), through the resource type `AD_<entity_type>`; `target` is the existing
/// resource (key and stable id) of Modified and Deleted orders. Callers change the fields they
/// need otherwise.
pub fn order(
    change_type: ChangeType,
    entity_type: &str,
    changes: Changes,
    target: Option<(&str, Option<&StableId>)>,
) -> ProvisioningOrder {
    ProvisioningOrder {
        order_id: OrderId::new(format!("test-{}", token())),
        assigned_resource_type_id: None,
        change_type,
        workflow_instance_id: None,
        owner: Some(Owner::new("owner-7", "jdoe").with_entity_type("Directory_User")),
        resource_type: ResourceTypeRef {
            id: format!("AD_{entity_type}").into(),
            identifier: format!("AD_{entity_type}"),
            source_entity_type: EntityTypeRef {
                id: "Directory_User".into(),
                identifier: "Directory_User".into(),
            },
            target_entity_type: EntityTypeRef {
                id: entity_type.into(),
                identifier: entity_type.into(),
            },
        },
        connection: Some("ad-test".into()),
        changes,
        resource: target.map(|(id, stable)| {
            let mut r = Resource::new(id).with_entity_type(entity_type);
            r.stable_id = stable.cloned();
            r
        }),
        depends_on: Vec::new(),
        not_before: None,
        arguments: Default::default(),
    }
}

/// Fulfils an order that must execute.
pub async fn apply(conn: &impl Connector, order: &ProvisioningOrder) -> Executed {
    match conn.fulfill(order).await {
        Ok(Fulfillment::Executed(e)) => e,
        Ok(other) => panic!("not executed: {other:?}"),
        Err(e) => panic!("order {} failed: {e}", order.order_id),
    }
}

/// Fulfils an order that must fail.
pub async fn refuse(conn: &impl Connector, order: &ProvisioningOrder) -> ConnectorError {
    match conn.fulfill(order).await {
        Ok(done) => panic!("order {} should have failed, got {done:?}", order.order_id),
        Err(e) => e,
    }
}

/// The `uSNChanged` of an entry: it moves on every write.
pub async fn usn(admin: &Admin, dn: &str) -> i64 {
    admin.values(dn, "uSNChanged").await[0].parse().unwrap()
}

/// Every entry of a subtree with all its user attributes and `whenChanged` / `uSNChanged`, as
/// OpenLDAP's `ldapsearch` prints it (LDIF, unwrapped, sorted by entry): a snapshot to compare
/// before and after, read without any of the package's code.
pub fn ldapsearch_snapshot(env: &AdEnv, base: &str) -> String {
    let out = env.ldap_tool(
        "ldapsearch",
        &[
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base,
            "-s",
            "sub",
            "(objectClass=*)",
            "*",
            "whenChanged",
            "uSNChanged",
            "memberOf",
        ],
    );
    assert!(
        out.status.success(),
        "ldapsearch -b {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut entries: Vec<String> = text
        .split("\n\n")
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    entries.sort();
    entries.join("\n\n")
}
