//! The demo organization's subtree in the Samba test domain, shared by the job tests against
//! AD (`#[path]`-included: each test binary compiles its own copy).

use autoprov::connector::Connector;
use autoprov::core::{ChangeType, Changes, Owner, ProvisioningOrder, Reference};
use autoprov::orchestrator::demo;
use autoprov_ad::AdConnector;
use autoprov_ad::test_fixtures::{self, AdEnv};
use chrono::{DateTime, Utc};

/// A token unique to this test, for names in the shared domain: distinct for every call in one
/// process (tests of one binary run at the same time and once drew the same clock value), and
/// drawn from the process id and clock across processes.
pub fn token() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        (std::process::id() as u64).wrapping_mul(0x9e37_79b9) ^ Utc::now().timestamp_micros() as u64
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:06x}",
        base.wrapping_add(n.wrapping_mul(0x1000)) & 0xffffff
    )
}

/// An Added order for a container or group, written through the connector.
fn seed_order(prefix: &str, entity: &str, changes: Changes, n: usize) -> ProvisioningOrder {
    let mut order = test_fixtures::order(ChangeType::Added, entity, changes, None);
    order.order_id = format!("{prefix}-seed-{n}").as_str().into();
    order.owner = Some(Owner::new("seed", "seed"));
    order.connection = Some(demo::CONNECTION.into());
    order
}

/// Creates `OU=<prefix>-<token>` below the base DN with the demo organization's OUs and
/// groups (group logins start with `group_login`), and returns its DN.
pub async fn subtree(
    ad: &AdConnector,
    env: &AdEnv,
    prefix: &str,
    group_login: &str,
    token: &str,
) -> String {
    let root = format!("OU={prefix}-{token},{}", env.base_dn);
    let mut n = 0;
    let mut seed = |entity: &str, changes: Changes| {
        n += 1;
        seed_order(prefix, entity, changes, n)
    };
    let mut c = Changes::default();
    c.set("ou", format!("{prefix}-{token}"))
        .set_reference("parentdn", Reference::dn(&env.base_dn));
    ad.fulfill(&seed("organizationalUnit", c)).await.unwrap();
    for ou in demo::ous() {
        let mut c = Changes::default();
        c.set("ou", ou)
            .set_reference("parentdn", Reference::dn(&root));
        ad.fulfill(&seed("organizationalUnit", c)).await.unwrap();
    }
    for (i, g) in demo::groups().enumerate() {
        let mut c = Changes::default();
        c.set("cn", g)
            .set("sAMAccountName", format!("{group_login}{token}{i}"))
            .set_reference("parentdn", Reference::dn(format!("OU=Groups,{root}")));
        ad.fulfill(&seed("group", c)).await.unwrap();
    }
    root
}

/// `n` demo employees with logins unique to this run.
pub fn people(n: usize, now: DateTime<Utc>, token: &str) -> Vec<Owner> {
    demo::people(n, now)
        .into_iter()
        .map(|o| {
            let login = format!("{}{token}", o.identifier);
            let mut o = o.with("login", login.clone());
            o.identifier = login;
            o
        })
        .collect()
}
