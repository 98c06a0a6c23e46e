//! The conformance kit against every shipped implementation.

use autoprov_connector::manual::ManualConnector;
use autoprov_connector::testkit::{self, CheckOutcome, KitProfile};
use autoprov_connector::wrappers::{ConcurrencyLimiter, FaultInjector, FaultPlan, Recorder};
use autoprov_connector::{Capabilities, Connector, InMemoryConnector};
use std::sync::Arc;

fn system() -> InMemoryConnector {
    InMemoryConnector::new("kit")
}

/// What the in-memory system skips: it is automated, it has no preview language, and these
/// profiles give no second connection with one resource per page.
const IN_MEMORY_SKIPS: [&str; 3] = [
    "manual_transmits",
    "preview_is_offline_and_shows_no_secret",
    "paging_one_per_page",
];

// The profile read from the connection's own declared schema: only the root container and the
// expected skips are written by hand.
autoprov_connector::connector_conformance_tests!(
    in_memory,
    async fn make() -> (impl Connector, KitProfile) {
        let system = system();
        let schema = system
            .schema()
            .expect("the in-memory system declares its schema");
        let profile = KitProfile::from_schema(&schema, None)
            .expect("a profile from the schema")
            .with_root_container("DC=example,DC=test")
            .expect_skips(IN_MEMORY_SKIPS);
        (system, profile)
    }
);

autoprov_connector::connector_conformance_tests!(
    in_memory_arc_dyn,
    async fn make() -> (Arc<dyn Connector>, KitProfile) {
        (Arc::new(system()), KitProfile::ad_like())
    }
);

autoprov_connector::connector_conformance_tests!(
    in_memory_box_dyn,
    async fn make() -> (Box<dyn Connector>, KitProfile) {
        (Box::new(system()), KitProfile::ad_like())
    }
);

autoprov_connector::connector_conformance_tests!(
    through_fault_injector,
    async fn make() -> (impl Connector, KitProfile) {
        (
            FaultInjector::new(system(), FaultPlan::new()),
            KitProfile::ad_like(),
        )
    }
);

autoprov_connector::connector_conformance_tests!(
    through_limiter,
    async fn make() -> (impl Connector, KitProfile) {
        (ConcurrencyLimiter::new(system(), 1), KitProfile::ad_like())
    }
);

autoprov_connector::connector_conformance_tests!(
    through_recorder,
    async fn make() -> (impl Connector, KitProfile) {
        (Recorder::new(system()), KitProfile::ad_like())
    }
);

autoprov_connector::connector_conformance_tests!(
    through_stacked_wrappers,
    async fn make() -> (impl Connector, KitProfile) {
        let stacked = Recorder::new(ConcurrencyLimiter::new(
            FaultInjector::new(Arc::new(system()) as Arc<dyn Connector>, FaultPlan::new()),
            2,
        ));
        (stacked, KitProfile::ad_like())
    }
);

async fn manual_desk() -> (ManualConnector, KitProfile) {
    (
        ManualConnector::with_backing("desk", system()),
        KitProfile::ad_like(),
    )
}

// Most checks are skipped here by the manual capabilities; manual_transmits runs.
autoprov_connector::connector_conformance_tests!(manual_with_backing, manual_desk);

/// The whole kit, as a report: every check passes on the in-memory system, which is left
/// empty by the clean-ups.
#[tokio::test]
async fn run_all_passes_and_cleans_up() {
    let s = system();
    let report = testkit::run_all(&s, &KitProfile::ad_like()).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.skipped(),
        3,
        "only manual_transmits, the preview (the in-memory system has no preview language) \
         and paging (no second connection) are skipped: {report}"
    );
    assert_eq!(report.passed(), testkit::checks().len() - 3);
    assert!(s.is_empty(), "{:?}", s.snapshot());
    assert!(s.repeated_effects().is_empty());
}

/// On a manual connection everything that needs an automated one is skipped, never passed.
#[tokio::test]
async fn manual_connection_skips_what_it_cannot_do() {
    let desk = ManualConnector::new("desk");
    let report = testkit::run_all(&desk, &KitProfile::ad_like()).await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.passed(),
        2,
        "connection_check and manual_transmits: {report}"
    );
    assert_eq!(report.skipped(), testkit::checks().len() - 2);
    for (name, result) in &report.results {
        if let Ok(CheckOutcome::Skipped { reason }) = result {
            assert!(!reason.is_empty(), "{name}");
        }
    }
    assert_eq!(
        desk.open_tickets().len(),
        1,
        "the same order twice opens one ticket"
    );
}

/// A connection that declares less is checked for less, and the report says what it skipped.
#[tokio::test]
async fn checks_follow_declared_capabilities() {
    let mut caps = Capabilities::full();
    caps.rename = false;
    caps.incremental_export = false;
    caps.membership = false;
    let s = InMemoryConnector::builder("kit")
        .capabilities(caps)
        .build()
        .unwrap();
    let report = testkit::run_all(&s, &KitProfile::ad_like()).await;
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(CheckOutcome::Skipped { .. })))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        skipped,
        [
            "membership_add_twice_remove_absent",
            "rename_keeps_stable_id",
            "incremental_export",
            "latest_cookie_starts_after_writes",
            "manual_transmits",
            "preview_is_offline_and_shows_no_secret",
            "rename_onto_taken_name",
            "changed_names_memberships",
            "incremental_export_after_rename",
            "paging_one_per_page"
        ]
    );
    assert!(report.is_success(), "{report}");
    assert!(
        report
            .to_string()
            .contains("SKIPPED rename_keeps_stable_id: ")
    );
}

/// A connector that fails its orders fails the kit, naming the check and the error.
#[tokio::test]
async fn a_failing_connector_fails_the_kit() {
    use autoprov_connector::wrappers::{Call, Fault};
    // The namespace is created, then every fulfilment fails.
    let plan = FaultPlan::new().script(
        Call::Fulfill,
        std::iter::once(Fault::Pass).chain(std::iter::repeat_n(
            Fault::fail(autoprov_connector::ErrorKind::Unavailable),
            50,
        )),
    );
    let broken = FaultInjector::new(system(), plan);
    let failure = testkit::create_read_update_delete(&broken, &KitProfile::ad_like())
        .await
        .unwrap_err();
    assert_eq!(failure.check, "create_read_update_delete");
    assert!(failure.message.contains("unavailable"), "{failure}");
}

/// A `make` that finds no connection skips every check (e.g. no test server here).
mod unavailable {
    use super::*;

    autoprov_connector::connector_conformance_tests!(
        no_server,
        async fn make() -> Option<(impl Connector, KitProfile)> {
            None::<(InMemoryConnector, KitProfile)>
        }
    );
}

/// With declared skips, a skip that is not declared fails, a declared one that runs fails, and
/// an unknown name fails; the declared ones pass.
#[tokio::test]
async fn declared_skips_are_held_to() {
    let run = |profile: KitProfile| async move { testkit::run_all(&system(), &profile).await };
    let report = run(KitProfile::ad_like().expect_skips(IN_MEMORY_SKIPS)).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(report.skipped(), 3);

    let report =
        run(KitProfile::ad_like().expect_skips(["manual_transmits", "paging_one_per_page"])).await;
    assert_eq!(report.failed(), 1, "{report}");
    let failure = report
        .results
        .iter()
        .find_map(|(_, r)| r.as_ref().err())
        .unwrap();
    assert_eq!(failure.check, "preview_is_offline_and_shows_no_secret");
    assert!(failure.message.contains("does not expect it"), "{failure}");

    let mut too_many = IN_MEMORY_SKIPS.to_vec();
    too_many.push("disable_enable");
    let report = run(KitProfile::ad_like().expect_skips(too_many)).await;
    assert_eq!(report.failed(), 1, "{report}");
    assert!(
        report.results.iter().any(|(n, r)| *n == "disable_enable"
            && r.as_ref().is_err_and(|f| f.message.contains("remove it"))),
        "{report}"
    );

    let report = run(KitProfile::ad_like().expect_skips(["no_such_check"])).await;
    assert_eq!(report.failed(), testkit::checks().len(), "{report}");
}

/// A failing test generated by `connector_conformance_tests!` names the check, its behaviour
/// and the file and line of the macro call, so a package author finds their test.
#[test]
fn a_failing_generated_test_points_at_the_callers_test() {
    let call_line = line!() + 6;
    // Not collected by the harness (an item inside a function): called below, where its
    // panic is caught.
    #[allow(unnameable_test_items)]
    mod generated {
        use super::*;
        autoprov_connector::connector_conformance_tests!(
            broken_kit,
            async fn make() -> (impl Connector, KitProfile) {
                use autoprov_connector::wrappers::{Call, Fault};
                // The namespace is created, then every fulfilment fails.
                let plan = FaultPlan::new().script(
                    Call::Fulfill,
                    std::iter::once(Fault::Pass).chain(std::iter::repeat_n(
                        Fault::fail(autoprov_connector::ErrorKind::Unavailable),
                        50,
                    )),
                );
                (FaultInjector::new(system(), plan), KitProfile::ad_like())
            }
        );
    }
    let panic = std::panic::catch_unwind(generated::broken_kit::create_read_update_delete)
        .expect_err("the broken package fails the check");
    let message = panic
        .downcast_ref::<String>()
        .expect("the kit panics with a message");
    let check = testkit::check("create_read_update_delete").unwrap();
    for part in [
        "conformance check `create_read_update_delete` failed: ",
        "unavailable",
        check.behaviour,
        "generated::broken_kit::create_read_update_delete",
        &format!("{}:{call_line}", file!()),
    ] {
        assert!(message.contains(part), "`{part}` is not in: {message}");
    }
    // A passing check does not panic.
    generated::broken_kit::connection_check();
}

/// `latest_cookie_starts_after_writes` catches a latest cookie that is not the latest, and
/// skips a connection that cannot tell it.
mod latest_cookie {
    use super::*;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, ExportCookie, ExportRequest, ExportStream, Fulfillment,
        async_trait,
    };
    use autoprov_core::ProvisioningOrder;

    /// The in-memory system, whose latest cookie is `cookie` (or none).
    #[derive(Debug)]
    struct Cookie(InMemoryConnector, Option<ExportCookie>);

    #[async_trait]
    impl Connector for Cookie {
        fn info(&self) -> &ConnectorInfo {
            self.0.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            self.0.check().await
        }
        async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            self.0.fulfill(order).await
        }
        async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.0.export(request).await
        }
        async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
            Ok(self.1.clone())
        }
    }

    async fn run(
        cookie: impl FnOnce(&InMemoryConnector) -> Option<ExportCookie>,
    ) -> testkit::CheckResult {
        let s = system();
        let cookie = cookie(&s);
        let conn = Cookie(s, cookie);
        testkit::check("latest_cookie_starts_after_writes")
            .unwrap()
            .run(&conn, &KitProfile::ad_like())
            .await
    }

    #[tokio::test]
    async fn a_stale_latest_cookie_fails() {
        // The cookie of the empty system: everything the check writes comes after it.
        let e = run(|s| Some(ExportCookie(format!("kit@{}", s.change_number()))))
            .await
            .unwrap_err();
        assert!(e.message.contains("written before"), "{e}");
    }

    #[tokio::test]
    async fn a_foreign_latest_cookie_fails() {
        let e = run(|_| Some(ExportCookie("other@0".into())))
            .await
            .unwrap_err();
        assert!(
            e.message
                .contains("incremental export from the latest cookie"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn no_latest_cookie_is_a_skip() {
        let outcome = run(|_| None).await.unwrap();
        assert!(
            matches!(outcome, CheckOutcome::Skipped { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn wrappers_forward_the_latest_cookie() {
        let s = system();
        let expected = s.latest_cookie().await.unwrap();
        assert!(expected.is_some());
        let arc: Arc<dyn Connector> = Arc::new(Recorder::new(FaultInjector::new(
            ConcurrencyLimiter::new(s, 1),
            FaultPlan::new(),
        )));
        assert_eq!(arc.latest_cookie().await.unwrap(), expected);
        let boxed: Box<dyn Connector> = Box::new(arc);
        assert_eq!(boxed.latest_cookie().await.unwrap(), expected);
    }
}
