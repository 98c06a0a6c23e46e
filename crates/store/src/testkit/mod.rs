//! The store conformance kit: the behaviour every [`Store`](crate::Store) must show, as
//! tests a store crate generates with [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! ```
//! use autoprov_store::MemoryStore;
//! autoprov_store::store_conformance_tests!(memory, async fn make() -> MemoryStore {
//!     MemoryStore::new()
//! });
//! # fn main() {}
//! ```
//!
//! Each check gets a fresh store from the factory and runs on a multi-threaded runtime, so
//! the concurrency checks race for real.

pub mod checks;
pub mod claims;
mod fixtures;

pub use fixtures::{order, order_for, record, t0};

/// Runs one check: a fresh runtime, a fresh store from `make`, the check.
#[doc(hidden)]
pub fn __run<F: std::future::Future<Output = ()>>(name: &str, check: impl FnOnce() -> F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("store kit `{name}`: cannot build a runtime: {e}"));
    rt.block_on(check());
}

/// Generates one `#[test]` per conformance check, in a module, for the store the factory
/// makes (a fresh one per check).
///
/// ```
/// use autoprov_store::MemoryStore;
/// autoprov_store::store_conformance_tests!(memory, async fn make() -> MemoryStore {
///     MemoryStore::new()
/// });
/// # fn main() {}
/// ```
///
/// A store that needs a server may return `Option<Store>`: `None` means the server is not
/// there, and each check returns at once. The factory says so (prints that it skipped and
/// why, or panics where a missing server is a failure, as in CI).
///
/// ```
/// use autoprov_store::MemoryStore;
/// autoprov_store::store_conformance_tests!(maybe, async fn make() -> Option<MemoryStore> {
///     Some(MemoryStore::new())
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($module:ident, async fn $make:ident () -> Option<$ret:ty> $body:block) => {
        $crate::__store_conformance_module!(
            $module, $ret, { async fn $make() -> Option<$ret> $body }, $make().await
        );
    };
    ($module:ident, async fn $make:ident () -> $ret:ty $body:block) => {
        $crate::__store_conformance_module!(
            $module, $ret, { async fn $make() -> $ret $body }, Some($make().await)
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __kit_module {
    ($module:ident, $ret:ty, { $($item:item)* }, $made:expr, $checks:ident; $($check:ident),+) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $($item)*

            async fn __kit_make() -> ::std::option::Option<$ret> {
                $made
            }

            $crate::__conformance_fns!(__kit_make, $checks; $($check),+);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_module {
    ($module:ident, $ret:ty, $items:tt, $made:expr) => {
        $crate::__kit_module!(
            $module, $ret, $items, $made, checks;
            insert_and_reread,
            reinsert_is_noop_and_conflict_is_refused,
            illegal_transition_is_refused,
            stale_version_is_refused,
            state_index_agrees_with_scan,
            reopened_order_keeps_its_history,
            adoption_review_is_kept,
            results_follow_records,
            cookies,
            resources_by_key_and_stable_id,
            assignments_and_requests,
            secrets_outside_orders_are_refused,
            review_decisions,
            found_decisions,
            owned_values,
            job_runs,
            concurrent_updates_lose_nothing,
            concurrent_transitions_apply_once,
            audit_trail,
            retention_purges_finished_orders_only,
            erasure_removes_one_owner
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_fns {
    ($make:ident, $checks:ident; $($check:ident),+) => {
        $(
            #[test]
            fn $check() {
                $crate::testkit::__run(stringify!($check), || async {
                    let ::std::option::Option::Some(store) = $make().await else {
                        return;
                    };
                    let store = ::std::sync::Arc::new(store);
                    $crate::testkit::$checks::$check(store).await;
                });
            }
        )+

        #[test]
        fn kit_covers_every_check() {
            let generated: &[&str] = &[$(stringify!($check)),+];
            assert_eq!(
                generated,
                $crate::testkit::$checks::ALL,
                "the generated checks and {}::ALL disagree",
                stringify!($checks)
            );
        }
    };
}

/// Generates one `#[test]` per claim check ([`claims`]), in a module, for the
/// [`ClaimStore`](crate::ClaimStore) the factory makes (a fresh one per check). The factory may
/// return `Option<Store>` like [`store_conformance_tests!`](crate::store_conformance_tests).
#[macro_export]
macro_rules! claim_conformance_tests {
    ($module:ident, async fn $make:ident () -> Option<$ret:ty> $body:block) => {
        $crate::__claim_conformance_module!(
            $module, $ret, { async fn $make() -> Option<$ret> $body }, $make().await
        );
    };
    ($module:ident, async fn $make:ident () -> $ret:ty $body:block) => {
        $crate::__claim_conformance_module!(
            $module, $ret, { async fn $make() -> $ret $body }, Some($make().await)
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __claim_conformance_module {
    ($module:ident, $ret:ty, $items:tt, $made:expr) => {
        $crate::__kit_module!(
            $module, $ret, $items, $made, claims;
            concurrent_claimers_never_get_the_same_order,
            an_expired_lease_is_taken_over_and_the_old_holder_is_fenced,
            a_write_under_a_claim_checks_the_version_too,
            a_batch_of_writes_is_fenced_order_by_order,
            a_claim_never_returns_an_order_whose_dependency_is_not_done,
            a_stale_planning_epoch_cannot_insert,
            permits_bound_a_connection_across_workers,
            the_shared_breaker_opens_lets_one_probe_and_closes
        );
    };
}
