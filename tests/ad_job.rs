//! The provisioning job against the Samba domain controller: joiners, review, verification at
//! the next synchronization, and the seed's verification scenario — a manual assignment request
//! changes a test user's permission, the job provisions it automatically, the directory holds
//! the change (checked with `ldapsearch`, an independent client), and the assignment is
//! Verified.
//!
//! Needs the test server of `scripts/ad-test-server.sh` (its env file sourced). Without it the
//! test prints that it skipped, and fails when `CI=true`.
#![cfg(feature = "ad")]
#![allow(clippy::disallowed_methods)] // examples, benchmarks and tests may read the wall clock

use autoprov::core::{
    ApprovalWorkflowType, AssignmentRequest, ChangeType, Owner, OwnerId, PasswordResetSettings,
    ProvisioningState, RequestKind, RequestedAssignment, Secret,
};
use autoprov::orchestrator::Planner;
use autoprov::orchestrator::clock::ManualClock;
use autoprov::orchestrator::delivery::{DeliveryError, PasswordDelivery, PasswordNotice};
use autoprov::orchestrator::demo::{self, ACCOUNT, ADMIN_ACCOUNT};
use autoprov::orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov::orchestrator::store::{JobStatus, MemoryStore, Store, StoreExt};
use autoprov_ad::test_fixtures::{self, AdEnv, ad_env};
use chrono::{TimeDelta, Utc};
use futures::TryStreamExt as _;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[path = "support/demo_ad.rs"]
mod demo_ad;

/// Runs one of OpenLDAP's tools as the admin; its output.
fn ldap(env: &AdEnv, tool: &str, args: &[&str]) -> String {
    let out = env.ldap_tool(tool, args);
    assert!(
        out.status.success() || tool == "ldapdelete",
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ldapsearch` for one account by login below `root`, returning one attribute (LDIF).
fn account_search(env: &AdEnv, root: &str, login: &str, attribute: &str) -> String {
    ldap(
        env,
        "ldapsearch",
        &[
            "-LLL",
            "-b",
            root,
            &format!("(sAMAccountName={login})"),
            attribute,
        ],
    )
}

#[tokio::test]
async fn the_job_provisions_and_verifies_a_requested_permission_in_samba() {
    let Some(env) = ad_env("the_job_provisions_and_verifies_a_requested_permission_in_samba")
    else {
        return;
    };
    let token = demo_ad::token();
    let ad = env
        .builder(demo::CONNECTION)
        .connections(2)
        .build()
        .await
        .expect("connecting to the AD test server over LDAPS");

    // The test's own subtree: OUs and groups, written through the connector.
    let root = demo_ad::subtree(&ad, &env, "e2e", "g", &token).await;

    // Six employees (one IT administrator), with logins unique to this run.
    let now = Utc::now();
    let people: Vec<Owner> = demo_ad::people(6, now, &token);
    let mut planner = Planner::new(demo::planner_config_in(&root)).unwrap();
    for p in &people {
        planner.upsert_owner(p.clone());
    }
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(now));
    let mut job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(ad))
        .clock(clock.clone())
        .export_scope(demo::CONNECTION, root.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .build();
    let cancel = CancellationToken::new();
    let run = async |job: &mut ProvisioningJob| {
        clock.advance(TimeDelta::minutes(5));
        let r = job
            .run_incremental(JobOptions::default(), &cancel)
            .await
            .expect("job");
        assert_eq!(r.run.status, JobStatus::Succeeded, "{:?}", r.run.message);
        assert!(r.dispatch.errored.is_empty(), "{:?}", r.dispatch.errored);
        r
    };

    // A simulation first: nothing written, the orders shown, also as LDIF.
    clock.advance(TimeDelta::minutes(5));
    let sim = job
        .run_incremental(JobOptions::simulation(), &cancel)
        .await
        .expect("simulation");
    assert_eq!(
        sim.run.status,
        JobStatus::Succeeded,
        "{:?}",
        sim.run.message
    );
    assert!(sim.dispatch.executed.is_empty());
    let preview = sim
        .previews
        .get(demo::CONNECTION)
        .expect("the AD connection renders LDIF");
    assert_eq!(preview.format, "ldif");
    assert!(preview.refused.is_empty(), "{:?}", preview.refused);
    for p in &people {
        assert!(
            preview.text.contains(&format!(
                ": Added AD_Entry_NominativeUser for owner {} (",
                p.id
            )),
            "{}",
            preview.text
        );
    }
    assert_eq!(
        preview.text.matches("changetype: add").count(),
        sim.orders
            .iter()
            .filter(|o| o.change_type == ChangeType::Added)
            .count()
    );
    for p in &people {
        let out = account_search(&env, &root, &p.identifier, "dn");
        assert!(
            out.trim().is_empty(),
            "the simulation wrote {}: {out}",
            p.identifier
        );
    }

    // Joiners, review, verification.
    let r1 = run(&mut job).await;
    assert_eq!(r1.dispatch.executed.len(), 6, "{:?}", r1.orders);
    assert_eq!(r1.awaiting_review.len(), 1);
    let review = r1.awaiting_review[0].clone();
    job.approve(&review, "ad-test").await.unwrap();
    let r2 = run(&mut job).await;
    assert_eq!(
        r2.verification.verified.len(),
        6,
        "{:?}",
        r2.verification.waiting
    );
    assert_eq!(r2.dispatch.executed, vec![review]);
    let r3 = run(&mut job).await;
    assert_eq!(
        r3.verification.verified.len(),
        1,
        "{:?}",
        r3.verification.waiting
    );
    assert!(r3.orders.is_empty(), "{:?}", r3.orders);

    // The request: one approval, then automatic provisioning.
    let owner = OwnerId::new("E0001");
    let login = people[1].identifier.clone();
    let mut request = AssignmentRequest::new(
        format!("REQ-{token}"),
        owner,
        RequestKind::Add,
        RequestedAssignment {
            resource_type: ACCOUNT.into(),
            scalar: None,
            navigation: Some(("memberOf".into(), demo::group_in(&root, "VPN-Users"))),
        },
        ApprovalWorkflowType::One,
    );
    request.submit().unwrap();
    request.approve(1).unwrap();
    job.planner_mut().upsert_request(request).unwrap();
    let r4 = run(&mut job).await;
    assert_eq!(r4.dispatch.executed.len(), 1, "{:?}", r4.orders);
    let order = r4.orders[0].clone();
    assert_eq!(order.change_type, ChangeType::Modified);

    // The directory holds the change: an independent client says so.
    let out = account_search(&env, &root, &login, "memberOf");
    assert!(
        out.to_lowercase().contains(&format!(
            "memberof: cn=vpn-users,ou=groups,{}",
            root.to_lowercase()
        )),
        "ldapsearch says:\n{out}"
    );

    // The next synchronization verifies it.
    let r5 = run(&mut job).await;
    assert_eq!(r5.verification.verified, vec![order.order_id.clone()]);
    let rec = store.order(&order.order_id).await.unwrap().unwrap();
    assert_eq!(rec.state, ProvisioningState::Verified);
    assert!(
        store
            .orders_stream(100)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .all(|r| r.state == ProvisioningState::Verified)
    );

    ldap(&env, "ldapdelete", &["-r", &root]);
}

/// One delivered password and what the hook was told: (password, target, resource type,
/// owner, must change).
type Delivered = (String, String, String, Option<String>, bool);

/// Records every delivered password with what the hook was told.
#[derive(Debug, Default)]
struct Mailbox {
    delivered: std::sync::Mutex<Vec<Delivered>>,
}

#[async_trait::async_trait]
impl PasswordDelivery for Mailbox {
    async fn deliver(
        &self,
        notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        self.delivered.lock().unwrap().push((
            password.expose().unwrap().to_owned(),
            notice.target.to_string(),
            notice.resource_type().id.to_string(),
            notice.owner().map(|o| o.id.to_string()),
            notice.must_change,
        ));
        Ok(())
    }
}

/// The resource type's `PasswordResetSettings` drive the initial password: the dispatcher
/// generates it at fulfilment time (12 characters by the reference defaults, passing the
/// strength checks), the AD package sets it over LDAPS, the hook receives it, and it binds.
#[tokio::test]
async fn a_joiner_gets_a_generated_password_that_binds_in_samba() {
    let Some(env) = ad_env("a_joiner_gets_a_generated_password_that_binds_in_samba") else {
        return;
    };
    let token = demo_ad::token();
    let ad = env
        .builder(demo::CONNECTION)
        .connections(2)
        .build()
        .await
        .expect("connecting to the AD test server over LDAPS");
    let root = demo_ad::subtree(&ad, &env, "pwd", "p", &token).await;
    let now = Utc::now();
    let people: Vec<Owner> = demo_ad::people(3, now, &token);
    let mut config = demo::planner_config_in(&root);
    let settings: PasswordResetSettings = autoprov::core::config::from_json(serde_json::json!({
        "Mode": 1, "AutoGenerate": true, "MustChange": false,
        "StrengthCheck": ["[A-Z]", "[0-9]", "^.{12}$"]
    }))
    .unwrap();
    for rt in &mut config.resource_types {
        if rt.id.as_str() == ACCOUNT {
            rt.password_reset_settings = Some(settings.clone());
        }
    }
    // The demo policy computes an initial password into the orders; here none travels in
    // them: it is generated at fulfilment time.
    config.role_model.scalar_rules.retain(|r| {
        r.resource_type.as_str() != ACCOUNT
            || !matches!(r.property.as_str(), "password" | "mustChangePassword")
    });
    let mut planner = Planner::new(config).unwrap();
    for p in &people {
        planner.upsert_owner(p.clone());
    }
    let store = Arc::new(MemoryStore::new());
    let mailbox = Arc::new(Mailbox::default());
    let mut job = ProvisioningJob::builder(planner, store.clone())
        .connector(Arc::new(ad))
        .clock(Arc::new(ManualClock::new(now)))
        .export_scope(demo::CONNECTION, root.clone())
        .target_filter(ACCOUNT, |r| !demo::is_admin_account(r))
        .target_filter(ADMIN_ACCOUNT, demo::is_admin_account)
        .password_delivery(mailbox.clone())
        .build();
    let r = job
        .run_incremental(JobOptions::default(), &CancellationToken::new())
        .await
        .expect("job");
    assert_eq!(r.run.status, JobStatus::Succeeded, "{:?}", r.run.message);
    assert!(r.dispatch.errored.is_empty(), "{:?}", r.dispatch.errored);
    let accounts: Vec<_> = r
        .orders
        .iter()
        .filter(|o| o.resource_type.id.as_str() == ACCOUNT && o.change_type == ChangeType::Added)
        .collect();
    assert!(!accounts.is_empty(), "{:?}", r.orders);
    let delivered = mailbox.delivered.lock().unwrap().clone();
    for order in &accounts {
        assert!(
            r.dispatch.executed.contains(&order.order_id),
            "{:?}",
            r.dispatch
        );
        let owner = order.owner_id().map(|o| o.to_string());
        let (password, dn, _, _, must_change) = delivered
            .iter()
            .find(|d| d.2 == ACCOUNT && d.3 == owner)
            .unwrap_or_else(|| panic!("no delivery for {owner:?}: {delivered:?}"));
        assert_eq!(password.chars().count(), 12, "generated by the settings");
        assert!(
            settings
                .check_strength(&Secret::new(password.clone()))
                .is_ok()
        );
        assert!(!must_change);
        assert!(
            test_fixtures::can_bind(&env, dn, password).await,
            "{dn} binds with its delivered password"
        );
        assert!(!test_fixtures::can_bind(&env, dn, "Not-The-Passw0rd!").await);
        // Nothing the store keeps holds it.
        let record = store.order(&order.order_id).await.unwrap().unwrap();
        let history = store.order_history(&order.order_id).await.unwrap();
        let kept = format!(
            "{record:?}{history:?}{}",
            serde_json::to_string(&record).unwrap()
        );
        assert!(!kept.contains(password.as_str()), "{kept}");
    }

    ldap(&env, "ldapdelete", &["-r", &root]);
}
