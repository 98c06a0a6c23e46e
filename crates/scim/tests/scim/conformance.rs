//! The conformance kit of `autoprov-connector` against the real SCIM service: one test per
//! check, with the skip-or-fail rule of the other tests (as the AD package runs it), and
//! `kit_covers_every_check` keeping the list in step with the kit.

use autoprov_connector::Connector;
use autoprov_connector::testkit::{self, CheckOutcome, KitProfile};
use autoprov_scim::ScimConnector;
use autoprov_scim::test_fixtures::*;
use std::sync::Arc;

/// The SCIM shape of the kit's profile: `User` named by `userName`, `Group` by `displayName`,
/// `externalId` as the correlation key, `title` as free text; no containers; `paged` the same
/// service with one resource per page.
pub fn profile(paged: Arc<dyn Connector>) -> KitProfile {
    let mut p = KitProfile::new("User", "userName");
    p.group_type = Some("Group".into());
    p.group_name_property = Some("displayName".into());
    p.key_property = Some("externalId".into());
    p.required_property = Some("userName".into());
    p.text_property = "title".into();
    p.one_per_page = Some(paged);
    p.expect_skips([
        // SCIM has no containers: nothing to move between.
        "move_keeps_stable_id",
        // An automated connection.
        "manual_transmits",
        // SCIM has no change language of its own to preview in.
        "preview_is_offline_and_shows_no_secret",
        // SCIM has no way to check a password (RFC 7643 never returns it).
        "password_is_stored",
    ])
}

/// The same service through a connection that reads one resource per page.
async fn one_per_page(env: &ScimEnv) -> ScimConnector {
    let mut settings = env.settings();
    settings.page_size = 1;
    ScimConnector::connect("scim-test-paged", settings)
        .await
        .expect("connecting with one resource per page")
}

async fn run_check(name: &'static str) {
    let Some(env) = scim_env(name) else {
        return;
    };
    // Index paging shifts under concurrent deletions (RFC 7644 §3.4.2.4): the paging check
    // has the service alone. So does the check that `check` writes nothing: SCIM has no
    // container to scope it, it compares everything the service holds.
    let (_shared, _alone) = if matches!(name, "paging_one_per_page" | "check_writes_nothing") {
        (None, Some(exclusive_use().await))
    } else {
        (Some(shared_use().await), None)
    };
    let scim = connector(&env).await;
    let paged = one_per_page(&env).await;
    let check = testkit::check(name).unwrap_or_else(|| panic!("the kit has no check `{name}`"));
    match check.run(&scim, &profile(Arc::new(paged))).await {
        Ok(CheckOutcome::Passed) => println!("PASSED {name}"),
        Ok(CheckOutcome::Skipped { reason }) => println!("SKIPPED {name}: {reason}"),
        Err(failure) => panic!("{failure}"),
    }
}

macro_rules! kit {
    ($($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                run_check(stringify!($check)).await;
            }
        )+

        #[test]
        fn kit_covers_every_check() {
            let ours = [$(stringify!($check)),+];
            let kit: Vec<&str> = testkit::checks().iter().map(|c| c.name).collect();
            assert_eq!(ours.as_slice(), kit.as_slice(), "run every check of this kit version");
        }
    };
}

autoprov_connector::for_each_conformance_check!(kit!());

/// The whole kit at once, as a package author runs it (`testkit::run_all`): the report the
/// SCIM README shows. It has the service alone (its paging and `check` checks need that).
#[tokio::test]
async fn kit_report() {
    let Some(env) = scim_env("kit_report") else {
        return;
    };
    let _alone = exclusive_use().await;
    let scim = connector(&env).await;
    let paged = one_per_page(&env).await;
    let report = testkit::run_all(&scim, &profile(Arc::new(paged))).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(report.failed(), 0);
    assert_eq!(report.skipped(), 4, "{report}");
}
