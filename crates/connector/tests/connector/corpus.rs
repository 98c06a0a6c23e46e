//! The kit's corpus of broken packages: the in-memory system with one bug each — every miss
//! of the first kit (a rename onto a taken name, a password silently not stored, a Modified
//! order wiping what it did not mention, `changed` leaving out memberships, a Modified order
//! on a missing target reported done, stale memberships after a rename in an incremental
//! export, paging off by one, parallel orders on one connection, `check` writing) and the bugs
//! a package written from the guide is likely to have. Each must fail the whole kit, and fail
//! the check written for it; the same wrapper without a bug passes every check.
//!
//! `cargo test -p autoprov-connector --test connector corpus -- --nocapture` prints the
//! detection table and rate.

use autoprov_connector::testkit::{self, CheckOutcome, KitProfile};
use autoprov_connector::{
    ADOPTION_REVIEW_ARGUMENT, Connector, ConnectorError, ConnectorInfo, ErrorKind, ExportCookie,
    ExportItem, ExportMode, ExportRequest, ExportStream, Fulfillment, InMemoryConnector, Operation,
    Preview, async_trait,
};
use autoprov_core::{
    ChangeType, Changes, PropertyChange, PropertyValue, ProvisioningOrder, Reference, ResourceId,
    ScalarValue, Secret, StableId,
};
use futures::StreamExt as _;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One bug each; `None` is the honest package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// `check` creates a probe account each time it runs.
    CheckWrites,
    /// A Modified order of a missing target is reported done.
    MissingTargetIsDone,
    /// A refused rename onto a taken name is reported done.
    SwallowsRenameConflicts,
    /// A Modified order replaces the account like a PUT: `description` is cleared unless named.
    WipesUnmentioned,
    /// `changed` never names `memberOf`.
    ChangedOmitsMemberships,
    /// Orders go through one shared request slot: one sent while another waits takes its place.
    SharedRequestSlot,
    /// The password of every order is dropped, still reported written.
    DropsPasswords,
    /// Any password checks as right.
    AcceptsAnyPassword,
    /// With one resource per page, the second resource is lost.
    PagingLosesOne,
    /// With one resource per page, the second resource comes twice.
    PagingRepeatsOne,
    /// An incremental export sends only what orders wrote: a rename leaves the other side of
    /// its memberships naming the old name.
    StaleMembershipsAfterRename,
    /// A Modified order is reported done without being applied.
    LosesUpdates,
    /// The preview shows the password.
    PreviewShowsPassword,
    /// The preview does not list the orders it refuses.
    PreviewForgetsRefusals,
    /// Properties the schema does not know are dropped silently.
    IgnoresUnknownProperties,
    /// A missing required property is filled in instead of refused.
    FillsMissingRequired,
    /// A membership of a missing group is dropped and the order applied without it.
    DropsBadReferences,
    /// A masked secret is written as the text `********`.
    WritesRedactedSecret,
    /// The adoption-review argument is ignored: an account it did not create is adopted.
    IgnoresAdoptionReview,
    /// The stable id is ignored: the order acts on whatever holds the key.
    IgnoresStableId,
    /// A changed parent is ignored, still reported written.
    IgnoresMoves,
    /// Disabling is ignored, still reported written.
    IgnoresDisable,
    /// Values lose every character outside ASCII.
    MangledCharacters,
    /// Deleting a missing target fails with NotFound.
    DeleteOfMissingFails,
    /// An Added order for an existing identical account fails instead of adopting it.
    CreateIsNotIdempotent,
    /// A rename reports another stable id.
    RenameChangesStableId,
    /// An order applied again reports changes.
    ReapplyReportsChanges,
    /// An error message quotes the order's password.
    ErrorShowsPassword,
    /// The export holds the password property.
    ExportsPassword,
    /// A complete export ends without its cookie.
    NoCookie,
    /// An incremental export leaves out deletions.
    MissesDeletions,
    /// An unusable cookie falls back to a complete export instead of a Conflict.
    AcceptsForeignCookie,
    /// Adding a present member fails.
    AddingAPresentMemberFails,
    /// `Debug` prints the objects the connection holds.
    DebugShowsObjects,
    /// A membership may name an account as if it were a group.
    AccountsAsGroups,
    /// The latest cookie is read once and kept: later ones start before writes already made.
    KeepsItsFirstLatestCookie,
}

/// Every bug, with the check written for it.
const CORPUS: &[(Bug, &str)] = &[
    (Bug::CheckWrites, "check_writes_nothing"),
    (Bug::MissingTargetIsDone, "modified_missing_target_fails"),
    (Bug::SwallowsRenameConflicts, "rename_onto_taken_name"),
    (Bug::WipesUnmentioned, "modified_keeps_unmentioned"),
    (Bug::ChangedOmitsMemberships, "changed_names_memberships"),
    (Bug::SharedRequestSlot, "parallel_orders"),
    (Bug::DropsPasswords, "password_is_stored"),
    (Bug::AcceptsAnyPassword, "password_is_stored"),
    (Bug::PagingLosesOne, "paging_one_per_page"),
    (Bug::PagingRepeatsOne, "paging_one_per_page"),
    (
        Bug::StaleMembershipsAfterRename,
        "incremental_export_after_rename",
    ),
    (Bug::LosesUpdates, "create_read_update_delete"),
    (
        Bug::PreviewShowsPassword,
        "preview_is_offline_and_shows_no_secret",
    ),
    (
        Bug::PreviewForgetsRefusals,
        "preview_is_offline_and_shows_no_secret",
    ),
    (
        Bug::IgnoresUnknownProperties,
        "invalid_order_unknown_property",
    ),
    (Bug::FillsMissingRequired, "invalid_order_missing_required"),
    (Bug::DropsBadReferences, "invalid_order_bad_reference"),
    (Bug::WritesRedactedSecret, "redacted_secret_is_refused"),
    (Bug::IgnoresAdoptionReview, "adoption_review_is_honoured"),
    (
        Bug::IgnoresStableId,
        "stale_key_never_touches_another_object",
    ),
    (Bug::IgnoresMoves, "move_keeps_stable_id"),
    (Bug::IgnoresDisable, "disable_enable"),
    (Bug::MangledCharacters, "special_characters_round_trip"),
    (Bug::DeleteOfMissingFails, "idempotent_delete"),
    (Bug::CreateIsNotIdempotent, "idempotent_create"),
    (Bug::RenameChangesStableId, "rename_keeps_stable_id"),
    (Bug::ReapplyReportsChanges, "reapply_changes_nothing"),
    (Bug::ErrorShowsPassword, "password_write_only"),
    (Bug::ExportsPassword, "password_write_only"),
    (Bug::NoCookie, "export_sees_fulfilment"),
    (Bug::MissesDeletions, "incremental_export"),
    (Bug::AcceptsForeignCookie, "incremental_export"),
    (
        Bug::AddingAPresentMemberFails,
        "membership_add_twice_remove_absent",
    ),
    (Bug::DebugShowsObjects, "debug_shows_no_held_data"),
    (Bug::AccountsAsGroups, "invalid_order_bad_reference"),
    (
        Bug::KeepsItsFirstLatestCookie,
        "latest_cookie_starts_after_writes",
    ),
];

const PASSWORD: &str = "password";
const MEMBER_OF: &str = "memberOf";

/// The in-memory system with one bug; `paged` is the handle configured with one resource per
/// page (where the paging bugs live).
struct Broken {
    inner: InMemoryConnector,
    bug: Bug,
    paged: bool,
    probes: AtomicUsize,
    slot: Mutex<Option<ProvisioningOrder>>,
    written: Mutex<BTreeSet<StableId>>,
    first_latest: Mutex<Option<ExportCookie>>,
}

impl std::fmt::Debug for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Broken");
        d.field("inner", &self.inner).field("bug", &self.bug);
        if self.bug == Bug::DebugShowsObjects {
            d.field("objects", &self.inner.snapshot());
        }
        d.finish_non_exhaustive()
    }
}

impl Broken {
    fn new(inner: InMemoryConnector, bug: Bug, paged: bool) -> Self {
        Self {
            inner,
            bug,
            paged,
            probes: AtomicUsize::new(0),
            slot: Mutex::new(None),
            written: Mutex::new(BTreeSet::new()),
            first_latest: Mutex::new(None),
        }
    }

    /// The order as the buggy package reads it.
    async fn misread(&self, order: &ProvisioningOrder) -> ProvisioningOrder {
        let mut order = if self.bug == Bug::SharedRequestSlot {
            *self.slot.lock().unwrap() = Some(order.clone());
            tokio::task::yield_now().await;
            let taken = self.slot.lock().unwrap().take();
            taken.unwrap_or_else(|| order.clone())
        } else {
            order.clone()
        };
        let modified = order.change_type == ChangeType::Modified;
        let entity_type = order.resource_type.target_entity_type.id.clone();
        let schema = self
            .inner
            .schema()
            .expect("the in-memory system has a schema");
        let c = &mut order.changes;
        match self.bug {
            Bug::DropsPasswords => {
                c.properties.remove(PASSWORD);
            }
            Bug::WipesUnmentioned if modified && !c.properties.contains_key("description") => {
                c.clear("description");
            }
            Bug::IgnoresUnknownProperties => c
                .properties
                .retain(|p, _| schema.property(entity_type.as_str(), p).is_some()),
            Bug::FillsMissingRequired if order.change_type == ChangeType::Added => {
                if let Some(entity) = schema.entity(entity_type.as_str()) {
                    for required in entity.required() {
                        if !c.properties.contains_key(required) {
                            let n = self.probes.fetch_add(1, Ordering::Relaxed);
                            c.set(required, format!("filled{n}"));
                        }
                    }
                }
            }
            Bug::WritesRedactedSecret => {
                if let Some(PropertyChange::Set(ScalarValue::Secret(s))) =
                    c.properties.get_mut(PASSWORD)
                    && s.is_redacted()
                {
                    *s = Secret::new("********");
                }
            }
            Bug::IgnoresAdoptionReview => {
                order.arguments.remove(ADOPTION_REVIEW_ARGUMENT);
            }
            Bug::IgnoresStableId => {
                if let Some(r) = &mut order.resource {
                    r.stable_id = None;
                }
            }
            Bug::IgnoresMoves if modified => {
                c.properties.remove("parentdn");
            }
            Bug::IgnoresDisable
                if modified && c.scalar("enabled") == Some(&ScalarValue::Bool(false)) =>
            {
                c.properties.remove("enabled");
            }
            Bug::MangledCharacters => {
                for change in c.properties.values_mut() {
                    if let PropertyChange::Set(ScalarValue::String(s)) = change {
                        s.retain(|ch| ch.is_ascii());
                    }
                }
            }
            _ => {}
        }
        order
    }

    /// Whether the account already holds a membership the order adds.
    fn holds_added_membership(&self, order: &ProvisioningOrder) -> bool {
        let (Some(target), Some(nav)) = (&order.resource, order.changes.navigations.get(MEMBER_OF))
        else {
            return false;
        };
        let Some(current) = self.inner.get(target.id.as_str()) else {
            return false;
        };
        let Some(PropertyValue::References(held)) = current.get(MEMBER_OF) else {
            return false;
        };
        nav.add.iter().any(|r| {
            held.iter().any(|h| {
                h.get("dn")
                    .zip(r.get("dn"))
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            })
        })
    }
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
        let modified = order.change_type == ChangeType::Modified;
        if self.bug == Bug::LosesUpdates
            && modified
            && let Some(r) = &order.resource
        {
            let done = autoprov_connector::Executed::new(r.id.clone())
                .with_stable_id(r.stable_id.clone())
                .with_changed(order.changes.properties.keys().cloned());
            return Ok(Fulfillment::Executed(done));
        }
        if self.bug == Bug::AddingAPresentMemberFails && self.holds_added_membership(order) {
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                Operation::Update,
                "the member is already there",
            ));
        }
        let mut read = self.misread(order).await;
        if self.bug == Bug::AccountsAsGroups
            && let Some(nav) = read.changes.navigations.get_mut(MEMBER_OF)
        {
            // Takes the account for a group, and "adds" the member nowhere.
            nav.add.retain(|r| {
                let target = r.get("dn").and_then(|dn| self.inner.get(dn));
                target.is_none_or(|t| t.entity_type.as_ref().is_none_or(|e| e.as_str() != "user"))
            });
        }
        let mut result = self.inner.fulfill(&read).await;
        if self.bug == Bug::DropsBadReferences
            && matches!(&result, Err(e) if e.kind() == ErrorKind::InvalidOrder)
            && !read.changes.navigations.is_empty()
        {
            let mut without = read.clone();
            without.changes.navigations.clear();
            result = self.inner.fulfill(&without).await;
        }
        let mut done = match result {
            Ok(done) => done,
            Err(e) => {
                let lies = match self.bug {
                    Bug::MissingTargetIsDone => modified && e.kind() == ErrorKind::NotFound,
                    Bug::SwallowsRenameConflicts => {
                        modified && e.kind() == ErrorKind::AlreadyExists
                    }
                    _ => false,
                };
                if lies && let Some(r) = &order.resource {
                    let done = autoprov_connector::Executed::new(r.id.clone())
                        .with_stable_id(r.stable_id.clone());
                    return Ok(Fulfillment::Executed(done));
                }
                if self.bug == Bug::ErrorShowsPassword
                    && let Some(ScalarValue::Secret(s)) = order.changes.scalar(PASSWORD)
                {
                    let shown = s.expose().unwrap_or_default();
                    return Err(ConnectorError::new(
                        e.kind(),
                        Operation::Create,
                        format!("{e} (password {shown})"),
                    ));
                }
                return Err(e);
            }
        };
        if let Fulfillment::Executed(e) = &mut done {
            if let Some(s) = &e.stable_id {
                self.written.lock().unwrap().insert(s.clone());
            }
            let renamed = order.changes.properties.contains_key("cn");
            match self.bug {
                Bug::DropsPasswords if order.changes.properties.contains_key(PASSWORD) => {
                    e.changed.insert(PASSWORD.to_owned());
                }
                Bug::ChangedOmitsMemberships => {
                    e.changed.remove(MEMBER_OF);
                }
                Bug::IgnoresMoves if order.changes.properties.contains_key("parentdn") => {
                    e.changed.insert("parentdn".to_owned());
                }
                Bug::IgnoresDisable if order.changes.properties.contains_key("enabled") => {
                    e.changed.insert("enabled".to_owned());
                }
                Bug::DeleteOfMissingFails
                    if order.change_type == ChangeType::Deleted && e.is_noop() =>
                {
                    return Err(ConnectorError::new(
                        ErrorKind::NotFound,
                        Operation::Delete,
                        "no such object",
                    ));
                }
                Bug::CreateIsNotIdempotent
                    if order.change_type == ChangeType::Added && e.adopted =>
                {
                    return Err(ConnectorError::new(
                        ErrorKind::AlreadyExists,
                        Operation::Create,
                        "the name is taken",
                    ));
                }
                Bug::RenameChangesStableId if modified && renamed => {
                    e.stable_id = Some(StableId::new("a-new-object"));
                }
                Bug::ReapplyReportsChanges if modified && e.is_noop() => {
                    e.changed.insert("description".to_owned());
                }
                _ => {}
            }
        }
        Ok(done)
    }

    async fn export(&self, mut request: ExportRequest) -> Result<ExportStream, ConnectorError> {
        let incremental = matches!(request.mode, ExportMode::Incremental(_));
        let written = if incremental {
            self.written.lock().unwrap().clone()
        } else {
            std::mem::take(&mut *self.written.lock().unwrap())
        };
        let stream = match self.inner.export(request.clone()).await {
            Err(e) if self.bug == Bug::AcceptsForeignCookie && e.kind() == ErrorKind::Conflict => {
                request.mode = ExportMode::Complete;
                self.inner.export(request).await?
            }
            other => other?,
        };
        let (bug, paged) = (self.bug, self.paged);
        let mut resources = 0;
        let stream = stream.flat_map(move |item| {
            let mut times = 1;
            match &item {
                Ok(ExportItem::Resource(r)) => {
                    resources += 1;
                    times = match bug {
                        Bug::PagingLosesOne if paged && resources == 2 => 0,
                        Bug::PagingRepeatsOne if paged && resources == 2 => 2,
                        Bug::StaleMembershipsAfterRename
                            if incremental
                                && !r.stable_id.as_ref().is_some_and(|s| written.contains(s)) =>
                        {
                            0
                        }
                        _ => 1,
                    };
                }
                Ok(ExportItem::Complete { .. }) if bug == Bug::NoCookie => times = 0,
                Ok(ExportItem::Deleted { .. }) if bug == Bug::MissesDeletions => times = 0,
                _ => {}
            }
            let item = match item {
                Ok(ExportItem::Resource(mut r))
                    if bug == Bug::ExportsPassword && r.get("sAMAccountName").is_some() =>
                {
                    r.values.insert(
                        PASSWORD.to_owned(),
                        PropertyValue::Scalar(ScalarValue::String("set".into())),
                    );
                    Ok(ExportItem::Resource(r))
                }
                other => other,
            };
            futures::stream::iter(std::iter::repeat_n(item, times))
        });
        Ok(Box::pin(stream))
    }

    fn preview(&self, orders: &[ProvisioningOrder]) -> Option<Preview> {
        let mut text = String::new();
        let mut refused = Vec::new();
        for o in orders {
            if o.change_type != ChangeType::Added && o.resource.is_none() {
                if self.bug != Bug::PreviewForgetsRefusals {
                    refused.push(
                        ConnectorError::invalid_order(Operation::Delete, "no target").for_order(o),
                    );
                }
                continue;
            }
            text.push_str(&format!("{} {:?}", o.order_id, o.change_type));
            for (p, c) in &o.changes.properties {
                match c {
                    PropertyChange::Set(ScalarValue::Secret(s))
                        if self.bug == Bug::PreviewShowsPassword =>
                    {
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

    async fn latest_cookie(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        let latest = self.inner.latest_cookie().await?;
        if self.bug != Bug::KeepsItsFirstLatestCookie {
            return Ok(latest);
        }
        Ok(self
            .first_latest
            .lock()
            .unwrap()
            .get_or_insert_with(|| latest.expect("the in-memory system has latest cookies"))
            .clone()
            .into())
    }

    async fn check_password(
        &self,
        target: &ResourceId,
        password: &Secret,
    ) -> Result<bool, ConnectorError> {
        let right = self.inner.check_password(target, password).await?;
        Ok(right || self.bug == Bug::AcceptsAnyPassword)
    }
}

/// Runs the whole kit on the system with a bug: the failed checks, and whether it cleaned up.
async fn run(bug: Bug) -> (testkit::KitReport, bool) {
    let system = InMemoryConnector::new("corpus");
    let conn = Broken::new(system.clone(), bug, false);
    let mut profile = KitProfile::ad_like();
    profile.one_per_page = Some(Arc::new(Broken::new(system.clone(), bug, true)));
    let report = testkit::run_all(&conn, &profile).await;
    (report, system.is_empty())
}

fn failed(report: &testkit::KitReport) -> Vec<&'static str> {
    report
        .results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test]
async fn the_package_without_a_bug_passes_every_check_it_can_run() {
    let (report, clean) = run(Bug::None).await;
    assert!(report.is_success(), "{report}");
    assert!(clean, "the kit left objects behind");
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(CheckOutcome::Skipped { .. })))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(skipped, ["manual_transmits"], "{report}");
}

#[tokio::test]
async fn the_kit_catches_every_broken_package_with_its_check() {
    let mut caught = 0;
    let mut missed = Vec::new();
    println!("{:<32} {:<42} also failed", "bug", "its check");
    for (bug, check) in CORPUS {
        assert!(testkit::check(check).is_some(), "no check named {check}");
        let (report, _) = run(*bug).await;
        let failed = failed(&report);
        let by_its_check = failed.contains(check);
        if by_its_check {
            caught += 1;
        } else {
            missed.push(format!("{bug:?} (failed: {failed:?})"));
        }
        let others: Vec<&&str> = failed.iter().filter(|f| *f != check).collect();
        println!(
            "{:<32} {:<42} {others:?}",
            format!("{bug:?}"),
            if by_its_check {
                check.to_string()
            } else {
                format!("MISSED {check}")
            }
        );
    }
    let rate = 100.0 * caught as f64 / CORPUS.len() as f64;
    println!(
        "FIGURE kit_corpus: the kit catches {caught} of {} broken packages ({rate:.0} %), each \
         with the check written for it",
        CORPUS.len()
    );
    assert!(missed.is_empty(), "the kit missed: {missed:?}");
}

#[test]
fn every_bug_is_in_the_corpus_once() {
    let bugs: BTreeSet<String> = CORPUS.iter().map(|(b, _)| format!("{b:?}")).collect();
    assert_eq!(bugs.len(), CORPUS.len());
    assert!(!bugs.contains("None"));
}
