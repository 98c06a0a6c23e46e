//! Initial passwords generated at fulfilment time by the resource type's password settings
//! (`PasswordResetSettings`): the dispatcher generates one just before sending, the connector
//! sets it, the delivery hook receives it, and nothing durable ever holds it. A crash between
//! setting and delivering makes the resumed run set and deliver a new one.

use async_trait::async_trait;
use autoprov_connector::Connector;
use autoprov_connector::memory::InMemoryConnector;
use autoprov_core::password::{PasswordMode, PasswordResetSettings};
use autoprov_core::{
    ChangeType, Changes, Owner, PropertyChange, ProvisioningOrder, ProvisioningState, Reference,
    ResourceType, ResourceTypeRef, Secret,
};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::delivery::{DeliveryError, PasswordDelivery, PasswordNotice};
use autoprov_orchestrator::dispatch::{DispatchPolicy, Dispatcher};
use autoprov_orchestrator::events::CollectEvents;
use autoprov_orchestrator::store::{MemoryStore, Store};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

const CONN: &str = "ad-test";
const OU: &str = "OU=Staff,DC=example,DC=test";

/// One delivered password and what the hook was told with it.
#[derive(Clone, Debug)]
struct Delivered {
    password: String,
    owner: Option<String>,
    resource_type: String,
    target: String,
    must_change: bool,
    mode: PasswordMode,
    cc: Vec<String>,
}

/// Records deliveries. With `hang`, it takes the password and never confirms (the process
/// dies before the delivery completes).
#[derive(Debug, Default)]
struct Mailbox {
    hang: bool,
    delivered: Mutex<Vec<Delivered>>,
}

#[async_trait]
impl PasswordDelivery for Mailbox {
    async fn deliver(
        &self,
        notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        self.delivered.lock().unwrap().push(Delivered {
            password: password.expose().unwrap().to_owned(),
            owner: notice.owner().map(|o| o.id.to_string()),
            resource_type: notice.resource_type().id.to_string(),
            target: notice.target.to_string(),
            must_change: notice.must_change,
            mode: notice.mode,
            cc: notice.notification_cc.to_vec(),
        });
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

fn resource_type(settings: Option<PasswordResetSettings>) -> ResourceType {
    let mut rt = ResourceType::new("rt-ad", "AD_User", "Directory_User", "user", CONN);
    rt.password_reset_settings = settings;
    rt
}

fn settings(json: serde_json::Value) -> PasswordResetSettings {
    autoprov_core::config::from_json(json).unwrap()
}

fn system() -> Arc<InMemoryConnector> {
    let system = InMemoryConnector::new(CONN);
    system.ensure_container(OU).unwrap();
    Arc::new(system)
}

fn order(rt: &ResourceType, login: &str) -> ProvisioningOrder {
    let mut changes = Changes::default();
    changes
        .set("cn", login)
        .set("sAMAccountName", login)
        .set("enabled", true)
        .set_reference("parentdn", Reference::dn(OU));
    ProvisioningOrder {
        order_id: format!("o-{login}").into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("u-{login}"), login)),
        resource_type: ResourceTypeRef::of(rt),
        connection: Some(CONN.into()),
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

/// The in-memory system, recording the arguments of each order it is sent.
#[derive(Debug)]
struct Recording {
    inner: Arc<InMemoryConnector>,
    sent: Mutex<Vec<(String, std::collections::BTreeMap<String, String>)>>,
}

#[async_trait]
impl Connector for Recording {
    fn info(&self) -> &autoprov_connector::ConnectorInfo {
        self.inner.info()
    }
    async fn check(&self) -> Result<(), autoprov_connector::ConnectorError> {
        self.inner.check().await
    }
    async fn fulfill(
        &self,
        o: &ProvisioningOrder,
    ) -> Result<autoprov_connector::Fulfillment, autoprov_connector::ConnectorError> {
        self.sent
            .lock()
            .unwrap()
            .push((o.order_id.to_string(), o.arguments.clone()));
        self.inner.fulfill(o).await
    }
    async fn export(
        &self,
        r: autoprov_connector::ExportRequest,
    ) -> Result<autoprov_connector::ExportStream, autoprov_connector::ConnectorError> {
        self.inner.export(r).await
    }
}

fn dispatcher(
    system: &Arc<InMemoryConnector>,
    store: &Arc<MemoryStore>,
    rt: &ResourceType,
    mailbox: &Arc<Mailbox>,
    events: &CollectEvents,
) -> Dispatcher {
    Dispatcher::new(
        [system.clone() as Arc<dyn Connector>],
        DispatchPolicy::default(),
        store.clone(),
        Arc::new(SystemClock),
    )
    .with_resource_types([rt])
    .with_events(Arc::new(events.clone()))
    .with_password_delivery(mailbox.clone())
}

/// Every durable or observable trace of the order: its record (Debug and the store's serde
/// form), its history, the store's audit trail and the events.
async fn assert_nowhere(store: &MemoryStore, events: &CollectEvents, id: &str, passwords: &[&str]) {
    let record = store.order(&id.into()).await.unwrap().unwrap();
    assert!(
        !record.order.changes.properties.contains_key("password"),
        "the stored order holds no password property"
    );
    let history = store.order_history(&id.into()).await.unwrap();
    let texts = [
        format!("{record:?}"),
        serde_json::to_string(&record).unwrap(),
        format!("{history:?}"),
        serde_json::to_string(&history).unwrap(),
        format!("{:?}", events.events()),
    ];
    for text in texts {
        for p in passwords {
            assert!(!text.contains(p), "a generated password leaked: {text}");
        }
    }
}

#[tokio::test]
async fn a_generated_password_reaches_the_connector_and_the_hook_and_nothing_else() {
    let rt = resource_type(Some(settings(serde_json::json!({
        "Mode": 1, "AutoGenerate": true, "MustChange": true,
        "StrengthCheck": ["[A-Z].*[A-Z]"], "NotificationCC": ["helpdesk@example.test"]
    }))));
    let (system, store, mailbox, events) = (
        system(),
        Arc::new(MemoryStore::new()),
        Arc::new(Mailbox::default()),
        CollectEvents::new(),
    );
    let d = dispatcher(&system, &store, &rt, &mailbox, &events);
    let report = d
        .dispatch(vec![order(&rt, "jdoe")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1, "{report:?}");
    let delivered = mailbox.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    let got = &delivered[0];
    assert_eq!(got.owner.as_deref(), Some("u-jdoe"));
    assert_eq!(got.resource_type, "rt-ad");
    assert!(got.must_change, "MustChange comes from the settings");
    assert_eq!(got.mode, PasswordMode::OneWay);
    assert_eq!(got.cc, ["helpdesk@example.test"]);
    assert_eq!(got.password.chars().count(), 12, "the reference length");
    assert!(
        system.verify_password(&got.target, &got.password),
        "the connector set the delivered password"
    );
    let account = system.get(&got.target).unwrap();
    assert_eq!(
        account.get("mustChangePassword"),
        Some(&autoprov_core::PropertyValue::from(true)),
        "must-change from the settings reached the connector"
    );
    assert_nowhere(&store, &events, "o-jdoe", &[&got.password]).await;
}

#[tokio::test]
async fn the_order_overrides_must_change_and_a_given_password_is_not_replaced() {
    let rt = resource_type(Some(settings(serde_json::json!({"MustChange": true}))));
    let (system, store, mailbox, events) = (
        system(),
        Arc::new(MemoryStore::new()),
        Arc::new(Mailbox::default()),
        CollectEvents::new(),
    );
    let d = dispatcher(&system, &store, &rt, &mailbox, &events);
    let mut says_no = order(&rt, "no-change");
    says_no.changes.set("mustChangePassword", false);
    let mut given = order(&rt, "given");
    given
        .changes
        .set("password", Secret::new("Given-Pa55word!"));
    let report = d
        .dispatch(vec![says_no, given], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 2, "{report:?}");
    let delivered = mailbox.delivered.lock().unwrap().clone();
    assert_eq!(
        delivered.len(),
        1,
        "only the generated password is delivered"
    );
    assert!(!delivered[0].must_change, "the order said no");
    let target = system
        .snapshot()
        .into_iter()
        .find(|r| r.get("sAMAccountName") == Some(&"given".into()))
        .unwrap();
    assert!(system.verify_password(target.id.as_str(), "Given-Pa55word!"));
}

#[tokio::test]
async fn mode_0_generates_nothing_and_a_weak_given_password_is_refused() {
    let rt = resource_type(Some(settings(serde_json::json!({
        "Mode": 0, "StrengthCheck": ["^.{16,}$"]
    }))));
    let (system, store, mailbox) = (
        system(),
        Arc::new(MemoryStore::new()),
        Arc::new(Mailbox::default()),
    );
    let recording = Arc::new(Recording {
        inner: system.clone(),
        sent: Mutex::new(Vec::new()),
    });
    let d = Dispatcher::new(
        [recording.clone() as Arc<dyn Connector>],
        DispatchPolicy::default(),
        store.clone(),
        Arc::new(SystemClock),
    )
    .with_resource_types([&rt])
    .with_password_delivery(mailbox.clone());
    let mut weak = order(&rt, "weak");
    weak.changes.set("password", Secret::new("Weak-Pa55!"));
    let report = d
        .dispatch(vec![order(&rt, "plain"), weak], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1, "{report:?}");
    assert!(mailbox.delivered.lock().unwrap().is_empty());
    assert!(
        !system
            .operation_log()
            .iter()
            .any(|op| op.effect().1 == autoprov_connector::Operation::SetPassword),
        "no password was set"
    );
    // Connectors that could generate one themselves are told not to.
    let sent = recording.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "o-plain");
    assert_eq!(
        sent[0]
            .1
            .get(autoprov_connector::schema::NO_GENERATED_PASSWORD)
            .map(String::as_str),
        Some("true")
    );
    let stored = store.order(&"o-plain".into()).await.unwrap().unwrap();
    assert!(
        stored.order.arguments.is_empty(),
        "the stored order is as planned"
    );
    let (id, message) = &report.errored[0];
    assert_eq!(id.as_str(), "o-weak");
    assert!(message.contains("StrengthCheck `^.{16,}$`"), "{message}");
    assert!(!message.contains("Weak-Pa55"), "{message}");
    let record = store.order(&"o-weak".into()).await.unwrap().unwrap();
    assert_eq!(record.state, ProvisioningState::Errored);
    assert_eq!(record.dispatch.total_attempts, 0, "never sent");
    assert!(
        system
            .snapshot()
            .iter()
            .all(|r| r.get("sAMAccountName") != Some(&"weak".into()))
    );
    assert!(
        matches!(
            record.order.changes.properties.get("password"),
            Some(PropertyChange::Set(_))
        ),
        "the given password is the host's (a MemoryStore keeps it in memory)"
    );
}

#[tokio::test]
async fn with_notifications_disabled_the_password_is_set_and_nobody_is_told() {
    let rt = resource_type(Some(settings(
        serde_json::json!({"DisableNotifications": true}),
    )));
    let (system, store, mailbox, events) = (
        system(),
        Arc::new(MemoryStore::new()),
        Arc::new(Mailbox::default()),
        CollectEvents::new(),
    );
    let d = dispatcher(&system, &store, &rt, &mailbox, &events);
    let report = d
        .dispatch(vec![order(&rt, "quiet")], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.executed.len(), 1, "{report:?}");
    assert!(mailbox.delivered.lock().unwrap().is_empty());
    assert!(
        system
            .operation_log()
            .iter()
            .any(|op| op.effect().1 == autoprov_connector::Operation::SetPassword),
        "a generated password was set"
    );
}

/// The process dies after the connector set the password and while the hook is delivering
/// it; the resumed run sets a new password, delivers that, and only then is the order
/// Executed.
#[test]
fn after_a_crash_between_set_and_delivery_the_resumed_run_sets_and_delivers_a_new_one() {
    let rt = resource_type(Some(PasswordResetSettings::default()));
    let (system, store, events) = (system(), Arc::new(MemoryStore::new()), CollectEvents::new());

    // The first process: its hook takes the password and never confirms; the runtime is then
    // shut down, as a killed process would stop.
    let hanging = Arc::new(Mailbox {
        hang: true,
        ..Mailbox::default()
    });
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    {
        let d = dispatcher(&system, &store, &rt, &hanging, &events);
        let o = order(&rt, "crash");
        first.spawn(async move {
            let _ = d.dispatch(vec![o], &CancellationToken::new()).await;
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hanging.delivered.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the hook was never called"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    first.shutdown_background();
    let lost = hanging.delivered.lock().unwrap()[0].clone();
    assert!(system.verify_password(&lost.target, &lost.password));

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let record = store.order(&"o-crash".into()).await.unwrap().unwrap();
        assert_eq!(
            record.state,
            ProvisioningState::Pending,
            "not Executed before delivery"
        );
        assert_eq!(record.dispatch.attempts, 1, "an attempt without an outcome");
        let mailbox = Arc::new(Mailbox::default());
        let d = dispatcher(&system, &store, &rt, &mailbox, &events);
        let report = d.resume(&CancellationToken::new()).await.unwrap();
        assert_eq!(report.executed.len(), 1, "{report:?}");
        let delivered = mailbox.delivered.lock().unwrap().clone();
        assert_eq!(delivered.len(), 1);
        let new = &delivered[0];
        assert_ne!(new.password, lost.password, "a new password");
        assert!(
            system.verify_password(&new.target, &new.password),
            "the account holds the delivered password"
        );
        assert!(!system.verify_password(&lost.target, &lost.password));
        let record = store.order(&"o-crash".into()).await.unwrap().unwrap();
        assert_eq!(record.state, ProvisioningState::Executed);
        assert_nowhere(&store, &events, "o-crash", &[&new.password, &lost.password]).await;
    });
}
