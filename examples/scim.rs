//! Provisions a joiner, a mover and a leaver into a SCIM 2.0 service given in the environment,
//! printing every order and what the connector did, and the service's capabilities; then
//! cleans up.
//!
//! ```text
//! bash scripts/scim-test-server.sh start      # a throwaway scim2-server on loopback
//! source /var/tmp/autoprov-scim/env
//! cargo run --example scim --features scim
//! ```
//!
//! Environment: `AUTOPROV_SCIM_URL` (the base URL, `https://…/scim/v2`) and
//! `AUTOPROV_SCIM_TOKEN` (a bearer token). An `http://` URL is accepted only for a test
//! service on loopback. `AUTOPROV_EXAMPLE_KEEP=1` keeps what was created.
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

use autoprov::connector::{Connector, ConnectorError, ConnectorExt, ExportRequest, Fulfillment};
use autoprov::core::{ChangeType, Changes, OrderId, ProvisioningOrder, Reference, Secret};
use autoprov::scim::{ScimConnector, ScimSettings};
use autoprov_scim::test_fixtures;
use std::process::ExitCode;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An order as a planner writes it (resource type `SCIM_<entity type>`).
fn order(
    id: &str,
    change: ChangeType,
    entity_type: &str,
    changes: Changes,
    target: Option<&str>,
) -> ProvisioningOrder {
    let mut order = test_fixtures::order(change, entity_type, changes, target);
    order.order_id = OrderId::new(id);
    order
}

/// Fulfils an order and prints it and its outcome; returns the target's SCIM id.
async fn run(scim: &ScimConnector, order: &ProvisioningOrder) -> Result<String, ConnectorError> {
    println!(
        "→ {} {} {}",
        order.order_id,
        order.change_type,
        serde_json::to_string(&order.changes).unwrap_or_default()
    );
    match scim.fulfill(order).await? {
        Fulfillment::Executed(done) => {
            println!(
                "  executed: id {} changed {:?}{}",
                done.resource_id,
                done.changed,
                if done.adopted { " (adopted)" } else { "" }
            );
            Ok(done.resource_id.to_string())
        }
        other => panic!("an automated connection returned {other:?}"),
    }
}

async fn demo(scim: &ScimConnector, keep: bool) -> Result<(), ConnectorError> {
    let suffix = format!("{:06x}", rand_suffix());
    let mut sales = Changes::default();
    sales.set("displayName", format!("Sales {suffix}"));
    let sales = run(scim, &order("o-1", ChangeType::Added, "Group", sales, None)).await?;
    let mut support = Changes::default();
    support.set("displayName", format!("Support {suffix}"));
    let support = run(
        scim,
        &order("o-2", ChangeType::Added, "Group", support, None),
    )
    .await?;

    let mut joiner = Changes::default();
    joiner
        .set("userName", format!("jdoe-{suffix}"))
        .set("externalId", format!("hr-1042-{suffix}"))
        .set("name.givenName", "Jane")
        .set("name.familyName", "Doe")
        .set("title", "Clerk")
        .set("enabled", true)
        .add_reference("memberOf", Reference::dn(sales.clone()));
    if scim.capabilities().password {
        joiner.set("password", Secret::new("Initial-Passw0rd!"));
    }
    let jdoe = run(
        scim,
        &order("o-3", ChangeType::Added, "User", joiner.clone(), None),
    )
    .await?;
    // Re-sent (a retry after a lost answer): adopted, never a duplicate.
    joiner.properties.remove("password");
    run(scim, &order("o-3", ChangeType::Added, "User", joiner, None)).await?;

    let mut mover = Changes::default();
    mover
        .set("title", "Team lead")
        .remove_reference("memberOf", Reference::dn(sales.clone()))
        .add_reference("memberOf", Reference::dn(support.clone()));
    run(
        scim,
        &order("o-4", ChangeType::Modified, "User", mover, Some(&jdoe)),
    )
    .await?;

    let batch = scim.export_all(ExportRequest::complete()).await?;
    println!(
        "complete export: {} resources, cookie {:?}",
        batch.resources.len(),
        batch.cookie
    );
    if let Some(r) = batch.resources.iter().find(|r| r.id.as_str() == jdoe) {
        println!(
            "  {} title={:?} memberOf={:?}",
            r.id,
            r.get("title"),
            r.get("memberOf")
        );
    }

    let mut leaver = Changes::default();
    leaver.set("enabled", false);
    run(
        scim,
        &order("o-5", ChangeType::Modified, "User", leaver, Some(&jdoe)),
    )
    .await?;
    if !keep {
        run(
            scim,
            &order(
                "o-6",
                ChangeType::Deleted,
                "User",
                Changes::default(),
                Some(&jdoe),
            ),
        )
        .await?;
        for (id, g) in [("o-7", &sales), ("o-8", &support)] {
            run(
                scim,
                &order(
                    id,
                    ChangeType::Deleted,
                    "Group",
                    Changes::default(),
                    Some(g),
                ),
            )
            .await?;
        }
    }
    Ok(())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() & 0xff_ffff)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let (Some(url), Some(token)) = (env("AUTOPROV_SCIM_URL"), env("AUTOPROV_SCIM_TOKEN")) else {
        eprintln!(
            "set AUTOPROV_SCIM_URL and AUTOPROV_SCIM_TOKEN (bash scripts/scim-test-server.sh \
             start; source /var/tmp/autoprov-scim/env)"
        );
        return ExitCode::from(2);
    };
    let mut settings = ScimSettings::bearer(&url, token.as_str());
    settings.allow_plain_http_for_tests =
        url.starts_with("http://127.") || url.starts_with("http://localhost");
    let scim = match ScimConnector::connect("scim", settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connecting: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("connected: {:?}", scim.info().capabilities);
    match demo(&scim, env("AUTOPROV_EXAMPLE_KEEP").is_some()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
