//! What the tests and the example against a real SCIM service share: the test server's
//! environment (written by `scripts/scim-test-server.sh`), a connector for it, order building,
//! and plain `curl` requests that check outcomes without this package's code.
//!
//! Behind the `test-fixtures` feature and hidden from the docs: not part of the package's API.
//! It panics on every failure, as tests want.

#![allow(missing_docs)]

use crate::{ScimConnector, ScimSettings};
use autoprov_connector::{Connector, ConnectorError, Executed, Fulfillment};
use autoprov_core::{
    ChangeType, Changes, EntityTypeRef, OrderId, Owner, ProvisioningOrder, Resource,
    ResourceTypeRef, StableId,
};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The test server's settings, from the environment written by `scripts/scim-test-server.sh`.
#[derive(Clone, Debug)]
pub struct ScimEnv {
    /// `AUTOPROV_SCIM_URL`: the base URL (`http://127.0.0.1:58080/v2`).
    pub url: String,
    /// `AUTOPROV_SCIM_TOKEN`: the bearer token.
    pub token: String,
}

impl ScimEnv {
    /// The settings, when `AUTOPROV_SCIM_URL` and `AUTOPROV_SCIM_TOKEN` are set.
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Self {
            url: get("AUTOPROV_SCIM_URL")?,
            token: get("AUTOPROV_SCIM_TOKEN")?,
        })
    }

    /// The connection settings: bearer token, plain HTTP allowed (loopback test server).
    pub fn settings(&self) -> ScimSettings {
        let mut s = ScimSettings::bearer(&self.url, self.token.as_str());
        s.allow_plain_http_for_tests = true;
        s.request_timeout_ms = 20_000;
        s
    }

    /// One plain HTTP request with curl: `(status, body)`.
    pub fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-m", "30", "-X", method, "-w", "\n%{http_code}"])
            .args(["-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-H", "Accept: application/scim+json"]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/scim+json", "--data-binary"])
                .arg(b.to_string());
        }
        cmd.arg(&url);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running curl {method} {url}: {e}"));
        assert!(
            out.status.success(),
            "curl {method} {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
        let status = code.trim().parse().expect("an HTTP status");
        let json = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {url}: {e}: {body}"))
        };
        (status, json)
    }

    /// GET a path with curl; the body of a 200, `None` for a 404.
    pub fn get(&self, path: &str) -> Option<Value> {
        match self.curl("GET", path, None) {
            (200, v) => Some(v),
            (404, _) => None,
            (s, v) => panic!("GET {path}: HTTP {s}: {v}"),
        }
    }

    /// The resources of a filtered query, with curl (URL-encoding the filter).
    pub fn query(&self, endpoint: &str, filter: &str) -> Vec<Value> {
        let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let (s, v) = self.curl(
            "GET",
            &format!("{endpoint}?filter={encoded}&count=1000"),
            None,
        );
        assert_eq!(s, 200, "GET {endpoint} filter {filter}: {v}");
        v.get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The users named `user_name`, with curl.
    pub fn users_named(&self, user_name: &str) -> Vec<Value> {
        self.query(
            "/Users",
            &format!("userName eq {}", serde_json::to_string(user_name).unwrap()),
        )
    }

    /// The member ids of a group, with curl (`None` if it does not exist).
    pub fn members_of(&self, group_id: &str) -> Option<Vec<String>> {
        let g = self.get(&format!("/Groups/{group_id}"))?;
        Some(
            g.get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect(),
        )
    }
}

/// Whether the tests must have the server (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The server's settings when it is configured and answers, or `None` after printing that the
/// test skipped. With `CI=true` a missing or unreachable server fails the test instead.
pub fn scim_env(test: &str) -> Option<ScimEnv> {
    let why = match ScimEnv::from_env() {
        None => "no SCIM test server (set AUTOPROV_SCIM_URL and AUTOPROV_SCIM_TOKEN: run \
                 `bash scripts/scim-test-server.sh start` and source its env file)"
            .to_owned(),
        Some(env) => {
            let ok = Command::new("curl")
                .args(["-fsS", "-m", "10", "-o", "/dev/null"])
                .arg(format!("{}/ServiceProviderConfig", env.url))
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(env);
            }
            format!("the SCIM test server at {} does not answer", env.url)
        }
    };
    if in_ci() {
        panic!("{test}: {why}");
    }
    println!("SKIPPED {test}: {why}");
    None
}

/// A connector for the test server.
pub async fn connector(env: &ScimEnv) -> ScimConnector {
    ScimConnector::connect("scim-test", env.settings())
        .await
        .expect("connecting to the SCIM test server")
}

/// Tests share the service; the one that deletes hundreds of users at once takes it alone.
/// SCIM pages by index (`startIndex`), so resources deleted during another test's export
/// shift the pages under it and the export may miss a resource: RFC 7644 §3.4.2.4 leaves
/// index paging inconsistent under concurrent change.
static SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Shared use of the test service (most tests).
pub async fn shared_use() -> tokio::sync::RwLockReadGuard<'static, ()> {
    SERVER.read().await
}

/// Exclusive use of the test service (the 1,000-member group).
pub async fn exclusive_use() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    SERVER.write().await
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for this run: `label-<random>-<n>`.
pub fn unique(label: &str) -> String {
    static RUN: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| rand::random::<u32>() & 0xff_ffff);
    format!(
        "{label}-{run:06x}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An order of `change` on entity type `entity_type` (`User`, `Group`).
pub fn order(
    change: ChangeType,
    entity_type: &str,
    changes: Changes,
    target: Option<&str>,
) -> ProvisioningOrder {
    ProvisioningOrder {
        order_id: OrderId::new(unique("order")),
        assigned_resource_type_id: None,
        change_type: change,
        workflow_instance_id: None,
        owner: Some(Owner::new("owner-1", "test owner").with_entity_type("Directory_User")),
        resource_type: ResourceTypeRef {
            id: format!("SCIM_{entity_type}").as_str().into(),
            identifier: format!("SCIM_{entity_type}"),
            source_entity_type: EntityTypeRef {
                id: "Directory_User".into(),
                identifier: "Directory_User".into(),
            },
            target_entity_type: EntityTypeRef {
                id: entity_type.into(),
                identifier: entity_type.into(),
            },
        },
        connection: Some("scim-test".into()),
        changes,
        resource: target.map(|id| {
            let mut r = Resource::new(id).with_entity_type(entity_type);
            r.stable_id = Some(StableId::new(id));
            r
        }),
        depends_on: Vec::new(),
        not_before: None,
        arguments: Default::default(),
    }
}

/// Applies an order that must be executed.
pub async fn apply(conn: &impl Connector, order: &ProvisioningOrder) -> Executed {
    match try_apply(conn, order).await {
        Ok(done) => done,
        Err(e) => panic!(
            "order {} ({}) failed: {e}",
            order.order_id, order.change_type
        ),
    }
}

/// Applies an order; the error if it failed.
pub async fn try_apply(
    conn: &impl Connector,
    order: &ProvisioningOrder,
) -> Result<Executed, ConnectorError> {
    match conn.fulfill(order).await? {
        Fulfillment::Executed(e) => Ok(e),
        other => panic!("not executed: {other:?}"),
    }
}
