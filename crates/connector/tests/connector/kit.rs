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

autoprov_connector::connector_conformance_tests!(
    in_memory,
    async fn make() -> (impl Connector, KitProfile) {
        (
            system(),
            KitProfile::ad_like().expect_skips(IN_MEMORY_SKIPS),
        )
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

/// A connector that says it applied an update but did not fails the kit: it reads back.
#[tokio::test]
async fn a_connector_that_loses_updates_fails_the_kit() {
    use async_trait::async_trait;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, Executed, ExportRequest, ExportStream, Fulfillment,
    };
    use autoprov_core::{ChangeType, ProvisioningOrder};

    #[derive(Debug)]
    struct LosesUpdates(InMemoryConnector);

    #[async_trait]
    impl Connector for LosesUpdates {
        fn info(&self) -> &ConnectorInfo {
            self.0.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            self.0.check().await
        }
        async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            match (&order.change_type, &order.resource) {
                (ChangeType::Modified, Some(r)) => {
                    let mut done = Executed::new(r.id.clone());
                    done.stable_id = r.stable_id.clone();
                    done.changed = order.changes.properties.keys().cloned().collect();
                    Ok(Fulfillment::Executed(done))
                }
                _ => self.0.fulfill(order).await,
            }
        }
        async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.0.export(request).await
        }
    }

    let liar = LosesUpdates(system());
    let failure = testkit::create_read_update_delete(&liar, &KitProfile::ad_like())
        .await
        .unwrap_err();
    assert!(failure.message.contains("after the update"), "{failure}");
    assert!(liar.0.is_empty(), "the kit cleaned up after the failure");
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

/// A connector with a preview: honest, or leaking the password, or not listing what it refuses.
mod previews {
    use super::*;
    use async_trait::async_trait;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, ExportRequest, ExportStream, Fulfillment, Operation, Preview,
    };
    use autoprov_core::{ChangeType, PropertyChange, ProvisioningOrder, ScalarValue};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        Honest,
        Leaky,
        ForgetsRefusals,
    }

    #[derive(Debug)]
    struct Previewing(InMemoryConnector, Mode);

    #[async_trait]
    impl Connector for Previewing {
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
        fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
            let mut text = String::new();
            let mut refused = Vec::new();
            for o in orders {
                if o.change_type != ChangeType::Added && o.resource.is_none() {
                    if self.1 != Mode::ForgetsRefusals {
                        refused.push(
                            ConnectorError::invalid_order(Operation::Delete, "no target")
                                .for_order(o),
                        );
                    }
                    continue;
                }
                text.push_str(&format!("{} {:?}", o.order_id, o.change_type));
                for (p, c) in &o.changes.properties {
                    match c {
                        PropertyChange::Set(ScalarValue::Secret(s)) if self.1 == Mode::Leaky => {
                            text.push_str(&format!(" {p}={}", s.expose().unwrap_or("<redacted>")))
                        }
                        PropertyChange::Set(v) => text.push_str(&format!(" {p}={v:?}")),
                        _ => {}
                    }
                }
                text.push('\n');
            }
            Some(Preview::new("lines", text).with_refused(refused))
        }
    }

    async fn check(mode: Mode) -> Result<CheckOutcome, testkit::KitFailure> {
        let c = Previewing(system(), mode);
        testkit::preview_is_offline_and_shows_no_secret(&c, &KitProfile::ad_like()).await
    }

    #[tokio::test]
    async fn an_honest_preview_passes() {
        assert!(matches!(
            check(Mode::Honest).await,
            Ok(CheckOutcome::Passed)
        ));
    }

    #[tokio::test]
    async fn a_preview_that_shows_the_password_fails() {
        let e = check(Mode::Leaky).await.unwrap_err();
        assert!(e.message.contains("shows the password"), "{e}");
    }

    #[tokio::test]
    async fn a_preview_that_does_not_list_a_refused_order_fails() {
        let e = check(Mode::ForgetsRefusals).await.unwrap_err();
        assert!(e.message.contains("not listed as refused"), "{e}");
    }
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

/// Kit v2: one broken package per new check (a wrapper around the in-memory system with one
/// bug), each caught by its check; the honest system passes all three.
mod v2_broken_packages {
    use super::*;
    use async_trait::async_trait;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, ErrorKind, Executed, ExportRequest, ExportStream,
        Fulfillment,
    };
    use autoprov_core::{ChangeType, ProvisioningOrder};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Bug {
        /// Reports a Modified order of a missing target as done.
        MissingTargetIsDone,
        /// A refused rename onto a taken name is reported as done.
        SwallowsRenameConflicts,
        /// Replaces the account like a PUT: clears `description` unless the order names it.
        WipesUnmentioned,
    }

    #[derive(Debug)]
    struct Broken(InMemoryConnector, Bug);

    #[async_trait]
    impl Connector for Broken {
        fn info(&self) -> &ConnectorInfo {
            self.0.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            self.0.check().await
        }
        async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            if order.change_type != ChangeType::Modified {
                return self.0.fulfill(order).await;
            }
            let mut order = order.clone();
            if self.1 == Bug::WipesUnmentioned
                && !order.changes.properties.contains_key("description")
            {
                order.changes.clear("description");
            }
            match self.0.fulfill(&order).await {
                Err(e)
                    if (self.1 == Bug::MissingTargetIsDone && e.kind() == ErrorKind::NotFound)
                        || (self.1 == Bug::SwallowsRenameConflicts
                            && e.kind() == ErrorKind::AlreadyExists) =>
                {
                    let r = order
                        .resource
                        .as_ref()
                        .expect("a Modified order has a target");
                    Ok(Fulfillment::Executed(
                        Executed::new(r.id.clone()).with_stable_id(r.stable_id.clone()),
                    ))
                }
                other => other,
            }
        }
        async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.0.export(request).await
        }
    }

    async fn run(bug: Bug, check: &str) -> Result<CheckOutcome, testkit::KitFailure> {
        let broken = Broken(system(), bug);
        let result = testkit::check(check)
            .unwrap()
            .run(&broken, &KitProfile::ad_like())
            .await;
        assert!(broken.0.is_empty(), "the kit cleaned up after {bug:?}");
        result
    }

    #[tokio::test]
    async fn a_modified_order_of_a_missing_target_reported_done_fails() {
        let e = run(Bug::MissingTargetIsDone, "modified_missing_target_fails")
            .await
            .unwrap_err();
        assert!(e.message.contains("reported done"), "{e}");
    }

    #[tokio::test]
    async fn a_swallowed_rename_conflict_fails() {
        let e = run(Bug::SwallowsRenameConflicts, "rename_onto_taken_name")
            .await
            .unwrap_err();
        assert!(e.message.contains("succeeded"), "{e}");
    }

    #[tokio::test]
    async fn a_modified_order_that_wipes_what_it_did_not_mention_fails() {
        let e = run(Bug::WipesUnmentioned, "modified_keeps_unmentioned")
            .await
            .unwrap_err();
        assert!(e.message.contains("did not mention `description`"), "{e}");
    }

    #[tokio::test]
    async fn the_honest_system_passes_the_v2_checks() {
        for check in [
            "rename_onto_taken_name",
            "modified_keeps_unmentioned",
            "modified_missing_target_fails",
        ] {
            let honest = system();
            let outcome = testkit::check(check)
                .unwrap()
                .run(&honest, &KitProfile::ad_like())
                .await;
            assert_eq!(outcome, Ok(CheckOutcome::Passed), "{check}");
        }
    }
}

/// Kit v2, continued: `check` writing, `changed` leaving out memberships, and orders sent at
/// once sharing one request buffer — each a broken package caught by its check.
mod v2_more_broken_packages {
    use super::*;
    use async_trait::async_trait;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, ExportRequest, ExportStream, Fulfillment,
    };
    use autoprov_core::{Changes, ProvisioningOrder, Reference};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Bug {
        /// `check` creates a probe account each time it runs.
        CheckWrites,
        /// `changed` never names `memberOf`.
        ChangedOmitsMemberships,
        /// Orders go through one shared slot: an order sent while another waits takes its
        /// place.
        SharedRequestSlot,
        /// Drops the password of every order, still reporting it written.
        DropsPasswords,
    }

    #[derive(Debug)]
    struct Broken {
        inner: InMemoryConnector,
        bug: Bug,
        probes: AtomicUsize,
        slot: Mutex<Option<ProvisioningOrder>>,
    }

    #[async_trait]
    impl Connector for Broken {
        fn info(&self) -> &ConnectorInfo {
            self.inner.info()
        }
        async fn check(&self) -> Result<(), ConnectorError> {
            if self.bug == Bug::CheckWrites {
                let n = self.probes.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .ensure_container("OU=Probes,DC=example,DC=test")?;
                let mut c = Changes::default();
                c.set("cn", format!("probe-{n}"))
                    .set("sAMAccountName", format!("probe{n}"))
                    .set_reference("parentdn", Reference::dn("OU=Probes,DC=example,DC=test"));
                self.inner.seed("user", &c)?;
            }
            self.inner.check().await
        }
        async fn fulfill(&self, order: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
            let order = if self.bug == Bug::SharedRequestSlot {
                *self.slot.lock().unwrap() = Some(order.clone());
                tokio::task::yield_now().await;
                let taken = self.slot.lock().unwrap().take();
                taken.unwrap_or_else(|| order.clone())
            } else {
                order.clone()
            };
            let mut order = order;
            let dropped = self.bug == Bug::DropsPasswords
                && order.changes.properties.remove("password").is_some();
            let mut done = self.inner.fulfill(&order).await?;
            if dropped && let Fulfillment::Executed(e) = &mut done {
                e.changed.insert("password".to_owned());
            }
            if self.bug == Bug::ChangedOmitsMemberships
                && let Fulfillment::Executed(e) = &mut done
            {
                e.changed.remove("memberOf");
            }
            Ok(done)
        }
        async fn export(&self, request: ExportRequest) -> Result<ExportStream, ConnectorError> {
            self.inner.export(request).await
        }
        async fn check_password(
            &self,
            target: &autoprov_core::ResourceId,
            password: &autoprov_core::Secret,
        ) -> Result<bool, ConnectorError> {
            self.inner.check_password(target, password).await
        }
    }

    #[tokio::test]
    async fn a_password_silently_not_stored_fails() {
        let e = run(Bug::DropsPasswords, "password_is_stored")
            .await
            .unwrap_err();
        assert!(e.message.contains("was not stored"), "{e}");
    }

    async fn run(bug: Bug, check: &str) -> Result<CheckOutcome, testkit::KitFailure> {
        let broken = Broken {
            inner: system(),
            bug,
            probes: AtomicUsize::new(0),
            slot: Mutex::new(None),
        };
        testkit::check(check)
            .unwrap()
            .run(&broken, &KitProfile::ad_like())
            .await
    }

    #[tokio::test]
    async fn a_check_that_writes_fails() {
        let e = run(Bug::CheckWrites, "check_writes_nothing")
            .await
            .unwrap_err();
        assert!(e.message.contains("check wrote"), "{e}");
    }

    #[tokio::test]
    async fn changed_without_memberships_fails() {
        let e = run(Bug::ChangedOmitsMemberships, "changed_names_memberships")
            .await
            .unwrap_err();
        assert!(e.message.contains("without `memberOf`"), "{e}");
    }

    #[tokio::test]
    async fn orders_that_take_each_others_place_fail() {
        let e = run(Bug::SharedRequestSlot, "parallel_orders")
            .await
            .unwrap_err();
        assert!(
            e.message.contains("wrong order")
                || e.message.contains("objects are named")
                || e.message.contains("failed"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_honest_system_passes_these_checks() {
        for check in [
            "check_writes_nothing",
            "changed_names_memberships",
            "password_is_stored",
            "parallel_orders",
        ] {
            let honest = system();
            let outcome = testkit::check(check)
                .unwrap()
                .run(&honest, &KitProfile::ad_like())
                .await;
            assert_eq!(outcome, Ok(CheckOutcome::Passed), "{check}");
            assert!(honest.is_empty(), "the kit cleaned up after {check}");
        }
    }
}

/// Paging: the in-memory system through a second handle passes; a connection that loses a
/// resource at a page boundary, or repeats one, fails.
mod paging {
    use super::*;
    use async_trait::async_trait;
    use autoprov_connector::{
        ConnectorError, ConnectorInfo, ExportItem, ExportRequest, ExportStream, Fulfillment,
    };
    use autoprov_core::ProvisioningOrder;
    use futures::StreamExt as _;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Bug {
        /// Loses the second resource of the export (an off-by-one at a page boundary).
        LosesOne,
        /// Yields the second resource twice.
        RepeatsOne,
    }

    #[derive(Debug)]
    struct Paged(InMemoryConnector, Bug);

    #[async_trait]
    impl Connector for Paged {
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
            let bug = self.1;
            let mut n = 0;
            let stream = self.0.export(request).await?.flat_map(move |item| {
                let resource = matches!(item, Ok(ExportItem::Resource(_)));
                if resource {
                    n += 1;
                }
                let times = match (resource && n == 2, bug) {
                    (true, Bug::LosesOne) => 0,
                    (true, Bug::RepeatsOne) => 2,
                    _ => 1,
                };
                futures::stream::iter(std::iter::repeat_n(item, times))
            });
            Ok(Box::pin(stream))
        }
    }

    fn profile(paged: Arc<dyn Connector>) -> KitProfile {
        let mut p = KitProfile::ad_like();
        p.one_per_page = Some(paged);
        p
    }

    #[tokio::test]
    async fn a_second_handle_on_the_same_system_passes() {
        let s = system();
        let outcome = testkit::paging_one_per_page(&s, &profile(Arc::new(s.clone()))).await;
        assert_eq!(outcome, Ok(CheckOutcome::Passed));
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn a_lost_resource_fails() {
        let s = system();
        let paged = Arc::new(Paged(s.clone(), Bug::LosesOne));
        let e = testkit::paging_one_per_page(&s, &profile(paged))
            .await
            .unwrap_err();
        assert!(e.message.contains("lost"), "{e}");
    }

    #[tokio::test]
    async fn a_repeated_resource_fails() {
        let s = system();
        let paged = Arc::new(Paged(s.clone(), Bug::RepeatsOne));
        let e = testkit::paging_one_per_page(&s, &profile(paged))
            .await
            .unwrap_err();
        assert!(e.message.contains("repeated"), "{e}");
    }
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
