//! The job plans on tokio's blocking pool: a long plan leaves the runtime free for other tasks,
//! even on a current-thread runtime, and a run dropped while planning keeps its planner.

use autoprov_connector::InMemoryConnector;
use autoprov_core::{Owner, Reference, ResourceType};
use autoprov_orchestrator::job::{JobOptions, ProvisioningJob};
use autoprov_orchestrator::store::MemoryStore;
use autoprov_orchestrator::{
    CorrelationKey, Criteria, Multiplicity, NavigationRule, Planner, PlannerConfig, RoleModel,
    ScalarRule, TypeRule,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PEOPLE: usize = 3;

/// What the slow rule observes.
#[derive(Default)]
struct Probe {
    /// Raised when planning starts.
    planning: AtomicBool,
    /// Ticks of a task on the runtime.
    ticks: AtomicUsize,
    /// Raised when the runtime ticked while the rule was computing.
    runtime_ran_meanwhile: AtomicBool,
}

/// A job whose planning takes 100 ms per owner.
fn slow_job(probe: Arc<Probe>) -> ProvisioningJob {
    let system = InMemoryConnector::new("ad-main");
    system
        .ensure_container("OU=Staff,DC=example,DC=test")
        .unwrap();
    let account = ResourceType::new("ad", "AD_Entry", "Directory_User", "user", "ad-main");
    let model = RoleModel::new()
        .type_rule(TypeRule::new("ad", Criteria::always()))
        .scalar_rule(ScalarRule::from_owner("ad", "cn", "login"))
        .scalar_rule(ScalarRule::from_owner("ad", "sAMAccountName", "login"))
        .scalar_rule(ScalarRule::computed("ad", "description", move |_| {
            probe.planning.store(true, Ordering::SeqCst);
            let before = probe.ticks.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            if probe.ticks.load(Ordering::SeqCst) > before {
                probe.runtime_ran_meanwhile.store(true, Ordering::SeqCst);
            }
            Some("slow".into())
        }))
        .navigation_rule(NavigationRule::new(
            "ad",
            "parentdn",
            Reference::dn("OU=Staff,DC=example,DC=test"),
        ))
        .declare_navigation("ad", "parentdn", Multiplicity::Mono);
    let config = PlannerConfig::new(vec![account], model)
        .correlate("ad", CorrelationKey::new("login", "sAMAccountName"));
    let mut planner = Planner::new(config).unwrap();
    for i in 0..PEOPLE {
        let login = format!("user{i}");
        planner.upsert_owner(Owner::new(login.as_str(), login.as_str()).with("login", login));
    }
    ProvisioningJob::builder(planner, Arc::new(MemoryStore::new()))
        .connector(Arc::new(system))
        .build()
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_plan_leaves_a_current_thread_runtime_free() {
    let probe = Arc::new(Probe::default());
    let mut job = slow_job(probe.clone());
    let ticker = tokio::spawn({
        let probe = probe.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                probe.ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let report = job
        .run_complete(JobOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    ticker.abort();
    assert_eq!(report.dispatch.executed.len(), PEOPLE);
    assert!(
        probe.runtime_ran_meanwhile.load(Ordering::SeqCst),
        "the only runtime thread was blocked while planning"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_run_dropped_while_planning_keeps_its_planner() {
    let probe = Arc::new(Probe::default());
    let mut job = slow_job(probe.clone());
    let cancel = CancellationToken::new();
    tokio::select! {
        _ = job.run_complete(JobOptions::default(), &cancel) => {
            panic!("the run finished before it was dropped")
        }
        _ = async {
            while !probe.planning.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => {}
    }
    assert_eq!(job.planner().owner_count(), PEOPLE);
    // And the job still works.
    let report = job
        .run_complete(JobOptions::default(), &cancel)
        .await
        .unwrap();
    assert_eq!(report.dispatch.executed.len(), PEOPLE);
}
