//! A small, complete organization on the in-memory managed system: what the quickstart runs
//! and what the end-to-end tests check. Copy it as the starting point of your own setup.
//!
//! The identities and the policy are the planner's demo organization
//! ([`autoprov_planner::demo`], re-exported here); this module adds the in-memory directory
//! ([`seed_directory`]) with the OUs and groups, and a job over them ([`build`]).

pub use autoprov_planner::demo::*;

use crate::clock::Clock;
use crate::job::ProvisioningJob;
use crate::plan::Planner;
use crate::store::Store;
use autoprov_connector::{ConnectorError, InMemoryConnector};
use autoprov_core::{Changes, Owner, Reference};
use std::sync::Arc;

/// Creates the OUs and groups the policy refers to.
pub fn seed_directory(system: &InMemoryConnector) -> Result<(), ConnectorError> {
    for ou in ous() {
        system.ensure_container(&ou_dn(ou))?;
    }
    for g in groups() {
        let mut c = Changes::default();
        c.set("cn", g)
            .set("sAMAccountName", format!("grp-{}", g.to_lowercase()))
            .set_reference("parentdn", Reference::dn(ou_dn("Groups")));
        system.seed("group", &c)?;
    }
    Ok(())
}

/// The demo directory, its planner with `people` loaded, and a job over them.
pub fn build(
    people: Vec<Owner>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn crate::events::EventSink>,
) -> Result<(InMemoryConnector, ProvisioningJob), Box<dyn std::error::Error + Send + Sync>> {
    let system = InMemoryConnector::new(CONNECTION);
    seed_directory(&system)?;
    let mut planner = Planner::new(planner_config())?;
    for p in people {
        planner.upsert_owner(p);
    }
    let job = ProvisioningJob::builder(planner, store)
        .connector(Arc::new(system.clone()))
        .clock(clock)
        .events(events)
        .target_filter(ACCOUNT, |r| !is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, is_admin_account)
        .build();
    Ok((system, job))
}
