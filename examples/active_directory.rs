//! Provisions a small organisation into an Active Directory given in the environment, printing
//! every order and what the connector did, then cleans up.
//!
//! ```text
//! bash scripts/ad-test-server.sh start        # a throwaway Samba AD on loopback
//! source /var/tmp/autoprov-ad/env
//! cargo run --example active_directory --features ad
//! ```
//!
//! Environment: `AUTOPROV_AD_URL` (ldaps://...), `AUTOPROV_AD_BASE_DN`, `AUTOPROV_AD_BIND_DN`,
//! `AUTOPROV_AD_PASSWORD`, and `AUTOPROV_AD_CA_FILE` (the CA that signed the server's
//! certificate; without it the system roots are used). `AUTOPROV_EXAMPLE_KEEP=1` keeps what was
//! created.
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

use autoprov::ad::{AdConnector, TlsMode};
use autoprov::connector::{
    Connector, ConnectorError, ConnectorExt, ExportMode, ExportRequest, Fulfillment,
};
use autoprov::core::{
    ChangeType, Changes, OrderId, Owner, PropertyValue, ProvisioningOrder, Reference, Resource,
    Secret, StableId,
};
use autoprov_ad::test_fixtures;
use std::process::ExitCode;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An order as a planner writes it; the AD package's test fixtures fill in the resource type
/// (`AD_<entity type>`) and the target resource.
fn order(
    id: &str,
    change: ChangeType,
    entity_type: &str,
    changes: Changes,
    target: Option<(&str, Option<&StableId>)>,
) -> ProvisioningOrder {
    let mut order = test_fixtures::order(change, entity_type, changes, target);
    order.order_id = OrderId::new(id);
    order.owner = Some(Owner::new("hr-1042", "jdoe").with_entity_type("Directory_User"));
    order.connection = Some("ad".into());
    order
}

/// Fulfils an order and prints it and its outcome.
async fn run(
    ad: &AdConnector,
    order: &ProvisioningOrder,
) -> Result<(String, Option<StableId>), ConnectorError> {
    println!(
        "→ {} {} {}",
        order.order_id,
        order.change_type,
        serde_json::to_string(&order.changes).unwrap_or_default()
    );
    match ad.fulfill(order).await? {
        Fulfillment::Executed(done) => {
            println!(
                "  executed: {} (objectGUID {}), wrote {:?}{}",
                done.resource_id,
                done.stable_id.as_ref().map(|s| s.as_str()).unwrap_or("-"),
                done.changed,
                if done.adopted {
                    ", adopted an existing entry"
                } else {
                    ""
                }
            );
            Ok((done.resource_id.to_string(), done.stable_id))
        }
        other => {
            println!("  {other:?}");
            Ok((String::new(), None))
        }
    }
}

fn show(r: &Resource) -> String {
    let mut parts = vec![format!(
        "{} [{}]",
        r.id,
        r.entity_type.as_ref().map(|e| e.as_str()).unwrap_or("?")
    )];
    for key in ["enabled", "department", "memberOf", "member"] {
        match r.get(key) {
            Some(PropertyValue::References(refs)) => parts.push(format!("{key}: {}", refs.len())),
            Some(v) => parts.push(format!(
                "{key}: {}",
                serde_json::to_string(v).unwrap_or_default()
            )),
            None => {}
        }
    }
    parts.join(", ")
}

async fn provision(ad: &AdConnector, base_dn: &str) -> Result<(), ConnectorError> {
    ad.check().await?;
    println!("connected: {:?}", ad.settings().servers);
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xffff_ffff)
            .unwrap_or(0)
    );

    let mut c = Changes::default();
    c.set("ou", format!("autoprov-example-{tag}"))
        .set_reference("parentdn", Reference::dn(base_dn));
    let (root, root_id) = run(
        ad,
        &order("ou-root", ChangeType::Added, "organizationalUnit", c, None),
    )
    .await?;
    let mut dns = Vec::new();
    for dept in ["Sales", "Marketing"] {
        let mut c = Changes::default();
        c.set("ou", dept)
            .set_reference("parentdn", Reference::dn(root.as_str()));
        let (ou, _) = run(
            ad,
            &order(
                &format!("ou-{dept}"),
                ChangeType::Added,
                "organizationalUnit",
                c,
                None,
            ),
        )
        .await?;
        let mut c = Changes::default();
        c.set("cn", format!("{dept} team"))
            .set("sAMAccountName", format!("{}-{tag}", dept.to_lowercase()))
            .set_reference("parentdn", Reference::dn(root.as_str()));
        let (group, _) = run(
            ad,
            &order(&format!("grp-{dept}"), ChangeType::Added, "group", c, None),
        )
        .await?;
        dns.push((ou, group));
    }
    let ((sales_ou, sales_group), (marketing_ou, marketing_group)) =
        (dns[0].clone(), dns[1].clone());

    // The joiner: created disabled with its initial password, enabled, in the Sales group.
    let mut c = Changes::default();
    c.set("cn", "Doe, Jane")
        .set("sAMAccountName", format!("jdoe{tag}"))
        .set("givenName", "Jane")
        .set("sn", "Doe")
        .set("department", "Sales")
        .set("password", Secret::new("Example-Passw0rd-1!"))
        .set("mustChangePassword", true)
        .set("enabled", true)
        .set_reference("parentdn", Reference::dn(sales_ou.as_str()))
        .add_reference("memberOf", Reference::dn(sales_group.as_str()));
    let joiner = order("joiner", ChangeType::Added, "user", c, None);
    // What it will write, as LDIF (a simulation shows this; the password is never shown).
    if let Some(preview) = ad.preview(std::slice::from_ref(&joiner)) {
        println!("LDIF preview of the joiner:\n{}", preview.text);
    }
    let (user, guid) = run(ad, &joiner).await?;
    // The same order again: adopted, nothing written.
    run(ad, &joiner).await?;

    // The mover: another department moves the account and swaps its group.
    let cookie = ad
        .export_all(ExportRequest::complete().within(root.as_str()))
        .await?
        .cookie;
    let mut c = Changes::default();
    c.set("department", "Marketing")
        .set_reference("parentdn", Reference::dn(marketing_ou.as_str()))
        .add_reference("memberOf", Reference::dn(marketing_group.as_str()))
        .remove_reference("memberOf", Reference::dn(sales_group.as_str()));
    let (user, _) = run(
        ad,
        &order(
            "mover",
            ChangeType::Modified,
            "user",
            c,
            Some((&user, guid.as_ref())),
        ),
    )
    .await?;

    let batch = ad
        .export_all(ExportRequest::complete().within(root.as_str()))
        .await?;
    println!(
        "complete export of {root}: {} entries",
        batch.resources.len()
    );
    for r in &batch.resources {
        println!("  {}", show(r));
    }
    if let Some(cookie) = cookie {
        let mut since = ExportRequest::complete().within(root.as_str());
        since.mode = ExportMode::Incremental(cookie);
        let delta = ad.export_all(since).await?;
        println!(
            "incremental export since before the move: {} changed",
            delta.resources.len()
        );
        for r in &delta.resources {
            println!("  {}", show(r));
        }
    }

    // The leaver: disabled, then deleted.
    let mut c = Changes::default();
    c.set("enabled", false);
    run(
        ad,
        &order(
            "leaver-disable",
            ChangeType::Modified,
            "user",
            c,
            Some((&user, guid.as_ref())),
        ),
    )
    .await?;
    if env("AUTOPROV_EXAMPLE_KEEP").is_some() {
        println!("kept {root}");
        return Ok(());
    }
    run(
        ad,
        &order(
            "leaver-delete",
            ChangeType::Deleted,
            "user",
            Changes::default(),
            Some((&user, guid.as_ref())),
        ),
    )
    .await?;
    // The OU goes with a tree delete (the default for organizational units).
    run(
        ad,
        &order(
            "cleanup",
            ChangeType::Deleted,
            "organizationalUnit",
            Changes::default(),
            Some((&root, root_id.as_ref())),
        ),
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let (Some(url), Some(base_dn), Some(login), Some(password)) = (
        env("AUTOPROV_AD_URL"),
        env("AUTOPROV_AD_BASE_DN"),
        env("AUTOPROV_AD_BIND_DN"),
        env("AUTOPROV_AD_PASSWORD"),
    ) else {
        eprintln!(
            "set AUTOPROV_AD_URL, AUTOPROV_AD_BASE_DN, AUTOPROV_AD_BIND_DN, AUTOPROV_AD_PASSWORD \
             (and AUTOPROV_AD_CA_FILE); for a throwaway Samba AD: \
             `bash scripts/ad-test-server.sh start && source /var/tmp/autoprov-ad/env`"
        );
        return ExitCode::from(2);
    };
    let mut builder = AdConnector::builder()
        .connection("ad")
        .server(&url, &base_dn)
        .bind(login, password.as_str());
    if url.starts_with("ldap://") {
        builder = builder.tls_mode(TlsMode::StartTls);
    }
    if let Some(ca) = env("AUTOPROV_AD_CA_FILE") {
        builder = builder.ca_certificate_file(ca);
    }
    let result = match builder.build().await {
        Ok(ad) => provision(&ad, &base_dn).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
