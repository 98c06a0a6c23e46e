//! The conformance kit of `autoprov-connector` against the real directory: one test per check.
//!
//! The kit's `connector_conformance_tests!` macro builds the connection inside each test with
//! no way to skip, so a machine without the AD test server would either fail every check or
//! need a stand-in connection that "passes" `connection_check` without a directory. These tests
//! run the same checks through the kit's public API ([`testkit::check`]) instead, with the
//! skip-or-fail rule of the other real-AD tests, and `kit_covers_every_check` keeps the list
//! in step with the kit.

use crate::support::*;
use autoprov_connector::Connector;
use autoprov_connector::testkit::{self, CheckOutcome, KitProfile};
use std::sync::Arc;

/// The AD shape of the kit's profile, below a fresh OU of the test; `paged` the same directory
/// with one entry per page.
fn profile(root: &str, paged: Arc<dyn Connector>) -> KitProfile {
    let mut p = KitProfile::ad_like().with_root_container(root);
    p.one_per_page = Some(paged);
    // The connector refuses NUL in names and values (Samba would store it, but cannot delete
    // such an entry a second time).
    p.rejected_characters = vec!['\0'];
    // Every check runs against Samba, except the one for manual (ticket) connections.
    p.expect_skips(["manual_transmits"])
}

async fn run_check(name: &'static str) {
    let Some(env) = ad_env(name) else {
        return;
    };
    in_ou(&env.clone(), "kit", |_admin, ou| async move {
        let ad = connector(&env).await;
        let paged = env
            .builder("ad-test-paged")
            .page_size(1)
            .connections(1)
            .build()
            .await
            .expect("connecting to the AD test server with one entry per page");
        let check = testkit::check(name).unwrap_or_else(|| panic!("the kit has no check `{name}`"));
        match check.run(&ad, &profile(&ou, Arc::new(paged))).await {
            Ok(CheckOutcome::Passed) => println!("PASSED {name}"),
            Ok(CheckOutcome::Skipped { reason }) => println!("SKIPPED {name}: {reason}"),
            Err(failure) => panic!("{failure}"),
        }
    })
    .await;
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
