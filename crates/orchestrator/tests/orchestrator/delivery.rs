//! Generated initial passwords (SPEC §10): set by the connector at fulfilment, handed to the
//! delivery hook, never stored; an order is not Executed until its password was delivered, and
//! a failed or lost delivery sets and delivers a new one.

use async_trait::async_trait;
use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, Executed, ExportRequest, ExportStream,
    Fulfillment, Operation, RESENT_ARGUMENT,
};
use autoprov_core::{
    ChangeType, Changes, ConnectionMode, Owner, ProvisioningOrder, ProvisioningState, ResourceType,
    ResourceTypeRef, Secret,
};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::delivery::{DeliveryError, PasswordDelivery, PasswordNotice};
use autoprov_orchestrator::dispatch::{DispatchPolicy, Dispatcher, RetryPolicy};
use autoprov_orchestrator::events::CollectEvents;
use autoprov_orchestrator::store::{MemoryStore, OrderRecord, OrderUpdate, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A directory that generates each account's initial password itself.
#[derive(Debug)]
struct Generating {
    info: ConnectorInfo,
    generated: Mutex<u32>,
    current: Mutex<Option<String>>,
    /// For each call, whether the order said it was sent again ([`RESENT_ARGUMENT`]).
    resent: Mutex<Vec<bool>>,
}

#[async_trait]
impl Connector for Generating {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        let n = {
            let mut g = self.generated.lock().unwrap();
            *g += 1;
            *g
        };
        self.resent
            .lock()
            .unwrap()
            .push(o.arguments.get(RESENT_ARGUMENT).map(String::as_str) == Some("true"));
        let password = format!("Gen-Pa55-{n}!");
        *self.current.lock().unwrap() = Some(password.clone());
        Ok(Fulfillment::Executed(
            Executed::new(format!("CN={}", o.order_id))
                .with_changed(["password"])
                .with_initial_password(Secret::new(password)),
        ))
    }
    async fn export(&self, _r: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(
            Operation::Export,
            "test connector",
        ))
    }
}

/// Records deliveries; fails the first `fail_first` of them.
#[derive(Debug, Default)]
struct Mailbox {
    fail_first: Mutex<u32>,
    delivered: Mutex<Vec<String>>,
}

#[async_trait]
impl PasswordDelivery for Mailbox {
    async fn deliver(
        &self,
        _notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        let mut fail = self.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(DeliveryError::new("the mail server refused the message"));
        }
        self.delivered
            .lock()
            .unwrap()
            .push(password.expose().unwrap().to_owned());
        Ok(())
    }
}

fn setup(
    fail_first: u32,
) -> (
    Arc<Generating>,
    Arc<Mailbox>,
    Dispatcher,
    Arc<MemoryStore>,
    CollectEvents,
) {
    let dir = Arc::new(Generating {
        info: ConnectorInfo::new("test.generating", "conn", Capabilities::full()),
        generated: Mutex::new(0),
        current: Mutex::new(None),
        resent: Mutex::new(Vec::new()),
    });
    let mailbox = Arc::new(Mailbox {
        fail_first: Mutex::new(fail_first),
        delivered: Mutex::new(Vec::new()),
    });
    let store = Arc::new(MemoryStore::new());
    let events = CollectEvents::new();
    let policy = DispatchPolicy {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        ..DispatchPolicy::default()
    };
    let d = Dispatcher::new(
        [dir.clone() as Arc<dyn Connector>],
        policy,
        store.clone(),
        Arc::new(SystemClock),
    )
    .with_events(Arc::new(events.clone()))
    .with_password_delivery(mailbox.clone());
    (dir, mailbox, d, store, events)
}

fn order(id: &str) -> ProvisioningOrder {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    let mut changes = Changes::default();
    changes.set("sAMAccountName", id);
    ProvisioningOrder {
        order_id: id.into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("owner-{id}"), id)),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("conn".into()),
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

async fn no_password_anywhere(store: &MemoryStore, events: &CollectEvents, id: &str) {
    let record = store.order(&id.into()).await.unwrap().unwrap();
    let history = store.order_history(&id.into()).await.unwrap();
    let texts = [
        format!("{record:?}"),
        serde_json::to_string(&record).unwrap(),
        format!("{history:?}"),
        format!("{:?}", events.events()),
    ];
    for t in texts {
        assert!(!t.contains("Gen-Pa55"), "a password leaked: {t}");
    }
}

#[tokio::test]
async fn a_failed_delivery_sets_and_delivers_a_new_password_before_the_order_is_executed() {
    let (dir, mailbox, d, store, events) = setup(1);
    let report = d
        .dispatch(vec![order("u1")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1, "{report:?}");
    let delivered = mailbox.delivered.lock().unwrap().clone();
    assert_eq!(
        delivered,
        vec!["Gen-Pa55-2!".to_owned()],
        "only the second password was delivered"
    );
    assert_eq!(
        dir.current.lock().unwrap().as_deref(),
        Some("Gen-Pa55-2!"),
        "the account holds the delivered password"
    );
    let record = store.order(&"u1".into()).await.unwrap().unwrap();
    assert_eq!(record.state, ProvisioningState::Executed);
    assert_eq!(record.dispatch.total_attempts, 2);
    assert_eq!(
        *dir.resent.lock().unwrap(),
        vec![false, true],
        "the second attempt tells the connector the order is sent again"
    );
    assert!(
        !record.order.arguments.contains_key(RESENT_ARGUMENT),
        "the stored order is unchanged"
    );
    no_password_anywhere(&store, &events, "u1").await;
}

#[tokio::test]
async fn after_a_crash_between_set_and_delivery_the_resumed_run_delivers_a_new_password() {
    let (dir, mailbox, d, store, events) = setup(0);
    // The previous process set a password and died before delivering it.
    *dir.current.lock().unwrap() = Some("Gen-Pa55-lost!".to_owned());
    let now = chrono::Utc::now();
    store
        .insert_orders(&[OrderRecord::pending(
            order("u2"),
            ConnectionMode::Automated,
            now,
        )])
        .await
        .unwrap();
    store
        .update_order(&"u2".into(), 1, OrderUpdate::at(now).attempt_started())
        .await
        .unwrap();
    let report = d.resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.executed.len(), 1);
    let delivered = mailbox.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        dir.current.lock().unwrap().as_deref(),
        Some(delivered[0].as_str())
    );
    assert_ne!(delivered[0], "Gen-Pa55-lost!");
    assert_eq!(
        *dir.resent.lock().unwrap(),
        vec![true],
        "an attempt of unknown outcome makes the resumed call a resend"
    );
    no_password_anywhere(&store, &events, "u2").await;
}

#[tokio::test]
async fn undelivered_passwords_keep_the_order_out_of_executed() {
    let (_dir, mailbox, d, store, _events) = setup(u32::MAX);
    let report = d
        .dispatch(vec![order("u3")], &CancellationToken::new())
        .await
        .unwrap();
    assert!(report.executed.is_empty());
    assert_eq!(report.errored.len(), 1);
    assert!(
        report.errored[0].1.contains("could not be delivered"),
        "{report:?}"
    );
    assert!(mailbox.delivered.lock().unwrap().is_empty());
    let record = store.order(&"u3".into()).await.unwrap().unwrap();
    assert_eq!(record.state, ProvisioningState::Errored);
    assert!(
        record.dispatch.retries_exhausted,
        "reopened once delivery works again"
    );
}
