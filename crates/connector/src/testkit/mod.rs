//! The conformance kit (feature `testkit`): one async check per behaviour of the
//! [`Connector`] contract, and [`connector_conformance_tests!`](crate::connector_conformance_tests)
//! that expands them into one named test each.
//!
//! The kit is strictly black-box: it speaks to the connection only through the trait, and
//! learns what it needs from a [`KitProfile`] (which entity types and properties to use).
//! Checks are selected by the connection's declared [`Capabilities`](crate::Capabilities):
//! a check the connection cannot pass by declaration is [`CheckOutcome::Skipped`] with the
//! reason, never counted as passed. Each check works in its own namespace — a container
//! created through the connector (an Added order of [`KitProfile::container_type`] below
//! [`KitProfile::root_container`]) or, without a container type, a unique name prefix — and
//! deletes what it created at the end, even when it fails.
//!
//! ```
//! use autoprov_connector::InMemoryConnector;
//! use autoprov_connector::testkit::{self, KitProfile};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let system = InMemoryConnector::new("kit");
//! let report = testkit::run_all(&system, &KitProfile::ad_like()).await;
//! println!("{report}");
//! assert!(report.is_success(), "{report}");
//! assert!(system.is_empty(), "every check cleaned up");
//! # });
//! ```

mod checks;
mod context;
mod from_schema;

pub use checks::*;
pub use from_schema::ProfileFromSchemaError;

use crate::connector::Connector;
use autoprov_core::{EntityTypeId, ResourceTypeId, ScalarValue, Secret};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How the kit speaks to the connection under test.
///
/// Build it with [`KitProfile::new`] (or [`KitProfile::ad_like`]) and set the public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KitProfile {
    /// The entity type of accounts (`user`).
    pub account_type: EntityTypeId,
    /// The entity type of groups (`group`); membership checks are skipped without one.
    pub group_type: Option<EntityTypeId>,
    /// The entity type of containers (`organizationalUnit`). With one (and the `containers`
    /// capability) each check runs in its own container created through the connector;
    /// without, objects get a unique name prefix and the move check is skipped.
    pub container_type: Option<EntityTypeId>,
    /// The property that names accounts and groups (their RDN value: `cn`).
    pub name_property: String,
    /// The property that names groups when it is not [`KitProfile::name_property`] (SCIM:
    /// users are named by `userName`, groups by `displayName`); `None`: groups are named by
    /// `name_property` too, as in a directory.
    pub group_name_property: Option<String>,
    /// The property that names containers (`ou`).
    pub container_name_property: String,
    /// The unique key of accounts and groups (`sAMAccountName`), if any. The kit keeps its
    /// values short (at most 16 characters) and plain.
    pub key_property: Option<String>,
    /// A property without which an Added account is invalid (for the missing-required check).
    pub required_property: Option<String>,
    /// A free-text scalar of accounts (`description`): written, changed, cleared and used for
    /// the special-character values.
    pub text_property: String,
    /// A property name the connection does not know (for the unknown-property check).
    pub unknown_property: String,
    /// Where the kit creates its namespace containers (`DC=example,DC=test`); none creates
    /// them without `parentdn`.
    pub root_container: Option<String>,
    /// Extra values every created account carries (e.g. a `userPrincipalName` suffix is not
    /// generated: give fixed values only).
    pub account_values: BTreeMap<String, ScalarValue>,
    /// Extra values every created group carries.
    pub group_values: BTreeMap<String, ScalarValue>,
    /// A password the connection's policy accepts.
    pub password: Secret,
    /// Characters the system refuses in names and values: for these, the special-character
    /// check expects a permanent `InvalidOrder` that writes nothing instead of a round trip.
    pub rejected_characters: Vec<char>,
    /// The resource type id orders carry for each entity type (default: the entity type id).
    pub resource_types: BTreeMap<EntityTypeId, ResourceTypeId>,
    /// The owners' entity type orders name (default `Directory_User`).
    pub owner_type: EntityTypeId,
    /// The same managed system through a second connection that exports one resource per
    /// page (a page size setting of 1), for `paging_one_per_page`; `None` skips that check.
    pub one_per_page: Option<std::sync::Arc<dyn Connector>>,
    /// The checks this connection is expected to skip, by name. `None` (the default): a
    /// skipped check is reported as skipped, and its generated test prints `SKIPPED` and
    /// passes. `Some(names)`: a check that is skipped but not named fails (so a changed
    /// capability or profile cannot silently take checks out of CI), a named check that runs
    /// fails too (so the list stays true), and a name the kit does not know fails every check.
    /// Enforced by [`Check::run`], [`run_all`] and the generated tests.
    pub expected_skips: Option<BTreeSet<String>>,
}

impl KitProfile {
    /// A profile for accounts of `account_type` named by `name_property`, with no group, no
    /// container, no key and no required property.
    pub fn new(account_type: impl Into<EntityTypeId>, name_property: impl Into<String>) -> Self {
        Self {
            account_type: account_type.into(),
            group_type: None,
            container_type: None,
            name_property: name_property.into(),
            group_name_property: None,
            container_name_property: "ou".into(),
            key_property: None,
            required_property: None,
            text_property: "description".into(),
            unknown_property: "autoprovKitNoSuchProperty".into(),
            root_container: None,
            account_values: BTreeMap::new(),
            group_values: BTreeMap::new(),
            password: Secret::new("Kit-Passw0rd-1!"),
            rejected_characters: Vec::new(),
            resource_types: BTreeMap::new(),
            owner_type: "Directory_User".into(),
            one_per_page: None,
            expected_skips: None,
        }
    }

    /// Declares the checks this connection is expected to skip (see
    /// [`KitProfile::expected_skips`]); an empty list expects every check to run.
    pub fn expect_skips<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expected_skips = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The Active Directory shape, below `DC=example,DC=test`: `user` / `group` /
    /// `organizationalUnit`, named by `cn` / `ou`, key and required property `sAMAccountName`,
    /// text `description`. Fits [`InMemoryConnector::new`](crate::InMemoryConnector::new); a
    /// real domain changes [`KitProfile::root_container`].
    ///
    /// Read from [`InMemorySchema::ad_like`](crate::memory::InMemorySchema::ad_like) by
    /// [`KitProfile::from_schema`].
    pub fn ad_like() -> Self {
        let schema = crate::memory::InMemorySchema::ad_like().declared();
        Self::from_schema(&schema, Some("user"))
            .expect("the AD-like schema names every role of the profile")
            .with_root_container("DC=example,DC=test")
    }

    /// Sets the root container.
    pub fn with_root_container(mut self, dn: impl Into<String>) -> Self {
        self.root_container = Some(dn.into());
        self
    }

    /// The resource type id orders carry for an entity type.
    pub fn resource_type_for(&self, entity_type: &EntityTypeId) -> ResourceTypeId {
        self.resource_types
            .get(entity_type)
            .cloned()
            .unwrap_or_else(|| entity_type.as_str().into())
    }
}

/// How a check ended, when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Every expectation held.
    Passed,
    /// The check did not run: the connection does not declare what it needs.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// A failed check: which one, and what did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitFailure {
    /// The check.
    pub check: &'static str,
    /// What did not hold.
    pub message: String,
}

impl fmt::Display for KitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for KitFailure {}

/// The result of one check.
pub type CheckResult = Result<CheckOutcome, KitFailure>;

type CheckFn = for<'a> fn(&'a dyn Connector, &'a KitProfile) -> BoxFuture<'a, CheckResult>;

/// One check of the kit.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its name (also the test name the macro generates).
    pub name: &'static str,
    /// The behaviour it checks.
    pub behaviour: &'static str,
    run: CheckFn,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("behaviour", &self.behaviour)
            .finish()
    }
}

impl Check {
    /// Runs the check, holding a skip against the profile's
    /// [`expected_skips`](KitProfile::expected_skips) when it has them.
    pub async fn run(&self, connector: &dyn Connector, profile: &KitProfile) -> CheckResult {
        let fail = |message: String| {
            Err(KitFailure {
                check: self.name,
                message,
            })
        };
        if let Some(expected) = &profile.expected_skips
            && let Some(unknown) = expected.iter().find(|n| check(n).is_none())
        {
            return fail(format!(
                "the profile expects `{unknown}` to be skipped, but the kit has no such check"
            ));
        }
        let outcome = (self.run)(connector, profile).await;
        let Some(expected) = &profile.expected_skips else {
            return outcome;
        };
        match outcome {
            Ok(CheckOutcome::Skipped { reason }) if !expected.contains(self.name) => fail(format!(
                "skipped ({reason}), but the profile does not expect it to be skipped"
            )),
            Ok(CheckOutcome::Passed) if expected.contains(self.name) => fail(
                "ran and passed, but the profile expects it to be skipped: remove it from \
                 `expected_skips`"
                    .into(),
            ),
            other => other,
        }
    }
}

/// Every check, in a stable order.
pub fn checks() -> &'static [Check] {
    checks::ALL
}

/// One check by name.
pub fn check(name: &str) -> Option<&'static Check> {
    checks().iter().find(|c| c.name == name)
}

/// The results of a whole run.
#[derive(Clone, Debug, Default)]
pub struct KitReport {
    /// Each check and its result, in [`checks`] order.
    pub results: Vec<(&'static str, CheckResult)>,
}

impl KitReport {
    /// How many passed.
    pub fn passed(&self) -> usize {
        self.count(|r| matches!(r, Ok(CheckOutcome::Passed)))
    }

    /// How many were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|r| matches!(r, Ok(CheckOutcome::Skipped { .. })))
    }

    /// How many failed.
    pub fn failed(&self) -> usize {
        self.count(Result::is_err)
    }

    /// Whether none failed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }

    fn count(&self, f: impl Fn(&CheckResult) -> bool) -> usize {
        self.results.iter().filter(|(_, r)| f(r)).count()
    }
}

impl fmt::Display for KitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, result) in &self.results {
            match result {
                Ok(CheckOutcome::Passed) => writeln!(f, "PASSED  {name}")?,
                Ok(CheckOutcome::Skipped { reason }) => writeln!(f, "SKIPPED {name}: {reason}")?,
                Err(e) => writeln!(f, "FAILED  {name}: {}", e.message)?,
            }
        }
        write!(
            f,
            "conformance: {} checks passed, {} skipped, {} failed",
            self.passed(),
            self.skipped(),
            self.failed()
        )
    }
}

/// Runs every check, one after the other.
pub async fn run_all(connector: &dyn Connector, profile: &KitProfile) -> KitReport {
    let mut report = KitReport::default();
    for check in checks() {
        let result = check.run(connector, profile).await;
        report.results.push((check.name, result));
    }
    report
}

/// What a `make` function of
/// [`connector_conformance_tests!`](crate::connector_conformance_tests) returns: a connection
/// and its profile, or `None` when no connection is available here (every check is then
/// reported skipped; fail instead in `make` where the connection is mandatory, e.g. in CI).
pub trait KitSubject {
    /// The connection type.
    type Connection: Connector;

    /// The connection and its profile, if available.
    fn into_subject(self) -> Option<(Self::Connection, KitProfile)>;
}

impl<C: Connector> KitSubject for (C, KitProfile) {
    type Connection = C;

    fn into_subject(self) -> Option<(C, KitProfile)> {
        Some(self)
    }
}

impl<C: Connector> KitSubject for Option<(C, KitProfile)> {
    type Connection = C;

    fn into_subject(self) -> Option<(C, KitProfile)> {
        self
    }
}

/// Where a conformance test was written: the file, line and module of the
/// [`connector_conformance_tests!`](crate::connector_conformance_tests) call that generated it,
/// so a failure points the package author at their own test. Built by `__kit_caller!()`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct __Caller {
    /// `file!()` at the call site.
    pub file: &'static str,
    /// `line!()` at the call site.
    pub line: u32,
    /// `module_path!()` of the generated test module.
    pub module: &'static str,
}

/// The panic message of a failed conformance test: the failure, the check's name and the
/// behaviour it checks (its doc line), and where the caller's test is.
fn failure_message(check: &Check, failure: &KitFailure, caller: __Caller) -> String {
    format!(
        "{failure}\n  check: `{}`: {}\n  test: `{}::{}`, generated by \
         connector_conformance_tests! at {}:{}",
        check.name, check.behaviour, caller.module, check.name, caller.file, caller.line
    )
}

/// Runs one check by name in a new current-thread tokio runtime, prints `PASSED <name>` or
/// `SKIPPED <name>: <reason>`, and panics on failure with a message that names the check, its
/// behaviour and the caller's file and line. What each test generated by
/// [`connector_conformance_tests!`](crate::connector_conformance_tests) calls.
#[doc(hidden)]
pub fn __run_test<S, F>(name: &str, caller: __Caller, make: impl FnOnce() -> F)
where
    S: KitSubject,
    F: Future<Output = S>,
{
    let check = check(name).unwrap_or_else(|| panic!("the kit has no check `{name}`"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance test");
    runtime.block_on(async {
        let Some((connector, profile)) = make().await.into_subject() else {
            println!("SKIPPED {name}: no connection is available (`make` returned None)");
            return;
        };
        match check.run(&connector, &profile).await {
            Ok(CheckOutcome::Passed) => println!("PASSED {name}"),
            Ok(CheckOutcome::Skipped { reason }) => println!("SKIPPED {name}: {reason}"),
            Err(failure) => panic!("{}", failure_message(check, &failure, caller)),
        }
    });
}

/// Checks that a macro expansion names every check of this version of the kit.
#[doc(hidden)]
pub fn __assert_covers(names: &[&str]) {
    let kit: Vec<&str> = checks().iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        kit.as_slice(),
        "the macro and the kit list different checks"
    );
}

/// Expands the conformance kit into one named test per behaviour.
///
/// ```
/// use autoprov_connector::{Connector, InMemoryConnector};
/// use autoprov_connector::testkit::KitProfile;
///
/// autoprov_connector::connector_conformance_tests!(in_memory_conformance, async fn make() -> (impl Connector, KitProfile) {
///     (InMemoryConnector::new("kit"), KitProfile::ad_like())
/// });
/// # fn main() {}
/// ```
///
/// This generates `mod in_memory_conformance` with one `#[test]` per check
/// (`create_read_update_delete`, `idempotent_create`, ...), each calling `make()` for a fresh
/// connection in its own tokio runtime (your crate does not need tokio), plus
/// `kit_covers_every_check`. A skipped check passes as a test and prints
/// `SKIPPED <name>: <reason>` (see it with `cargo test -- --nocapture`). A failed check
/// panics with what did not hold, the check's name and behaviour, and the file and line of
/// this macro call, so the failure points at your test:
///
/// ```text
/// conformance check `create_read_update_delete` failed: <what did not hold>
///   check: `create_read_update_delete`: an account is created, read back, updated, cleared and deleted
///   test: `my_crate::in_memory_conformance::create_read_update_delete`, generated by connector_conformance_tests! at tests/kit.rs:4
/// ```
///
/// `make` may also return `Option<(impl Connector, KitProfile)>`: `None` (no test server on
/// this machine) reports every check skipped.
///
/// The second form takes the path of an async fn you wrote elsewhere:
/// `connector_conformance_tests!(my_kit, make_connection);`.
#[macro_export]
macro_rules! connector_conformance_tests {
    ($module:ident, async fn $make:ident () -> $ret:ty $body:block) => {
        pub(crate) mod $module {
            #[allow(unused_imports)]
            use super::*;

            async fn $make() -> $ret $body

            $crate::__conformance_tests!($make);
        }
    };
    ($module:ident, $make:path) => {
        pub(crate) mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::__conformance_tests!($make);
        }
    };
}

/// The list of checks the macro expands (keep in step with `checks::ALL`; the generated
/// `kit_covers_every_check` test verifies it).
/// Calls `$callback!(…)` with the name of every conformance check, in the kit's order, after
/// the tokens given: for a test file that runs each check its own way (a server shared by
/// several tests, a lock around some checks) and must not fall behind the kit.
///
/// ```ignore
/// macro_rules! kit {
///     ($($check:ident),+ $(,)?) => { $( #[tokio::test] async fn $check() { run_check(stringify!($check)).await } )+ };
/// }
/// autoprov_connector::for_each_conformance_check!(kit!());
/// ```
#[macro_export]
macro_rules! for_each_conformance_check {
    ($callback:ident ! ($($before:tt)*)) => {
        $crate::for_each_conformance_check!(@emit [$callback] ($($before)*));
    };
    // The one list of checks; `[...]` is the callback's path (`$crate::...` from this crate).
    (@emit [$($callback:tt)*] ($($before:tt)*)) => {
        $($callback)*!(
            $($before)*
            connection_check,
            create_read_update_delete,
            idempotent_create,
            adoption_review_is_honoured,
            idempotent_delete,
            reapply_changes_nothing,
            membership_add_twice_remove_absent,
            rename_keeps_stable_id,
            move_keeps_stable_id,
            stale_key_never_touches_another_object,
            disable_enable,
            password_write_only,
            export_sees_fulfilment,
            incremental_export,
            latest_cookie_starts_after_writes,
            invalid_order_missing_required,
            invalid_order_unknown_property,
            invalid_order_bad_reference,
            redacted_secret_is_refused,
            special_characters_round_trip,
            manual_transmits,
            preview_is_offline_and_shows_no_secret,
            rename_onto_taken_name,
            modified_keeps_unmentioned,
            modified_missing_target_fails,
            check_writes_nothing,
            changed_names_memberships,
            password_is_stored,
            parallel_orders,
            incremental_export_after_rename,
            debug_shows_no_held_data,
            paging_one_per_page
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($make:path) => {
        $crate::for_each_conformance_check!(@emit [$crate::__conformance_test_fns] ($make;));
    };
}

/// The [`testkit::__Caller`](crate::testkit) of the place it is written; inside a macro, of the
/// outermost macro call (`file!()` and `line!()` name the first macro invocation).
#[doc(hidden)]
#[macro_export]
macro_rules! __kit_caller {
    () => {
        $crate::testkit::__Caller {
            file: file!(),
            line: line!(),
            module: module_path!(),
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ($make:path; $($check:ident),+) => {
        $(
            #[test]
            pub(crate) fn $check() {
                $crate::testkit::__run_test(
                    stringify!($check),
                    $crate::__kit_caller!(),
                    $make,
                );
            }
        )+

        #[test]
        fn kit_covers_every_check() {
            $crate::testkit::__assert_covers(&[$(stringify!($check)),+]);
        }
    };
}
