//! Password notifications through a real SMTP server (the aiosmtpd sink of
//! `scripts/smtp-test-server.sh`): each generated initial password is mailed to the owner's
//! manager with the configured copies, the mail is read back from the server's own mailbox on
//! disk, the password in it is the one the account holds, and it appears nowhere else (store,
//! history, events). A refused mail leaves the order to be sent again.
//!
//! Without the server the tests print that they skipped, and fail when `CI=true`.

use autoprov_connector::Connector;
use autoprov_connector::memory::InMemoryConnector;
use autoprov_core::password::PasswordResetSettings;
use autoprov_core::{
    ChangeType, Changes, Owner, ProvisioningOrder, ProvisioningState, Reference, ResourceType,
    ResourceTypeRef,
};
use autoprov_orchestrator::clock::SystemClock;
use autoprov_orchestrator::dispatch::{DispatchPolicy, Dispatcher, RetryPolicy};
use autoprov_orchestrator::events::CollectEvents;
use autoprov_orchestrator::smtp::{SmtpDelivery, SmtpSettings};
use autoprov_orchestrator::store::{MemoryStore, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CONN: &str = "ad-smtp";
const OU: &str = "OU=Staff,DC=example,DC=test";

struct Sink {
    host: String,
    port: u16,
    maildir: PathBuf,
}

fn sink(test: &str) -> Option<Sink> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("AUTOPROV_SMTP_HOST"),
        get("AUTOPROV_SMTP_PORT"),
        get("AUTOPROV_SMTP_MAILDIR"),
    ) {
        (Some(host), Some(port), Some(maildir)) => Some(Sink {
            host,
            port: port.parse().expect("AUTOPROV_SMTP_PORT is a port"),
            maildir: maildir.into(),
        }),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: CI=true and no SMTP test server (source the env of scripts/smtp-test-server.sh)"
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: no SMTP test server (run scripts/smtp-test-server.sh start and source its env)"
            );
            None
        }
    }
}

/// Every mail in the sink's Maildir.
fn mails(maildir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for e in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.push(text);
                }
            }
        }
    }
    out
}

fn resource_type() -> ResourceType {
    let mut rt = ResourceType::new("rt-smtp", "AD_User", "Directory_User", "user", CONN);
    rt.password_reset_settings = Some(
        autoprov_core::config::from_json::<PasswordResetSettings>(serde_json::json!({
            "Mode": 1, "AutoGenerate": true, "MustChange": true,
            "NotificationCC": ["helpdesk@example.test"]
        }))
        .unwrap(),
    );
    rt
}

fn order(rt: &ResourceType, login: &str, manager: Option<&str>) -> ProvisioningOrder {
    let mut changes = Changes::default();
    changes
        .set("cn", login)
        .set("sAMAccountName", login)
        .set("enabled", true)
        .set_reference("parentdn", Reference::dn(OU));
    let mut owner =
        Owner::new(format!("u-{login}"), login).with("DisplayName", format!("Person {login}"));
    if let Some(m) = manager {
        owner = owner.with("ManagerMail", m);
    }
    ProvisioningOrder {
        order_id: format!("o-{login}").into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(owner),
        resource_type: ResourceTypeRef::of(rt),
        connection: Some(CONN.into()),
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

fn delivery(sink: &Sink) -> SmtpDelivery {
    let settings: SmtpSettings = autoprov_core::config::from_json(serde_json::json!({
        "Host": sink.host, "Port": sink.port, "Tls": "NoneForTests",
        "From": "Identity team <iam@example.test>", "TimeoutSeconds": 10
    }))
    .unwrap();
    SmtpDelivery::new(settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_passwords_are_mailed_to_the_manager_and_nowhere_else() {
    let Some(sink) = sink("generated_passwords_are_mailed_to_the_manager_and_nowhere_else") else {
        return;
    };
    let token = format!("{:x}", std::process::id() ^ rand::random::<u32>());
    let rt = resource_type();
    let system = InMemoryConnector::new(CONN);
    system.ensure_container(OU).unwrap();
    let system = Arc::new(system);
    let store = Arc::new(MemoryStore::new());
    let events = CollectEvents::new();
    let policy = DispatchPolicy {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            multiplier: 1.0,
            jitter: 0.0,
            max_total: Duration::from_millis(200),
        },
        ..DispatchPolicy::default()
    };
    let d = Dispatcher::new(
        [system.clone() as Arc<dyn Connector>],
        policy,
        store.clone(),
        Arc::new(SystemClock),
    )
    .with_resource_types([&rt])
    .with_events(Arc::new(events.clone()))
    .with_password_delivery(Arc::new(delivery(&sink)));

    let logins: Vec<String> = (0..3).map(|i| format!("m{token}{i}")).collect();
    let mut orders: Vec<ProvisioningOrder> = logins
        .iter()
        .map(|l| order(&rt, l, Some(&format!("boss-{l}@example.test"))))
        .collect();
    // An owner with no manager to notify: the delivery fails, so the order is not Executed.
    let orphan = format!("x{token}");
    orders.push(order(&rt, &orphan, None));
    let report = d.dispatch(orders, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.executed.len(), 3, "{report:?}");
    assert_eq!(report.errored.len(), 1, "{report:?}");
    assert!(
        report.errored[0].1.contains("ManagerMail"),
        "{:?}",
        report.errored[0]
    );

    let all = mails(&sink.maildir);
    for login in &logins {
        let mail = all
            .iter()
            .find(|m| m.contains(&format!("boss-{login}@example.test")))
            .unwrap_or_else(|| panic!("no mail for {login} in {}", sink.maildir.display()));
        assert!(mail.contains("helpdesk@example.test"), "the copy: {mail}");
        assert!(mail.contains(&format!("Person {login}")), "{mail}");
        assert!(
            mail.contains("must be changed at the first logon"),
            "{mail}"
        );
        let password = mail
            .lines()
            .find_map(|l| l.strip_prefix("Initial password: "))
            .unwrap_or_else(|| panic!("no password line: {mail}"))
            .trim()
            .to_owned();
        assert!(password.chars().count() >= 12, "{password}");
        // The account holds exactly the mailed password.
        let target = format!("CN={login},{OU}");
        assert!(
            system.verify_password(&target, &password),
            "{login}: the mailed password is the account's"
        );
        // And nothing durable or observable holds it.
        let id = format!("o-{login}");
        let record = store.order(&id.as_str().into()).await.unwrap().unwrap();
        assert_eq!(record.state, ProvisioningState::Executed);
        let history = store.order_history(&id.as_str().into()).await.unwrap();
        for text in [
            format!("{record:?}"),
            serde_json::to_string(&record).unwrap(),
            format!("{history:?}"),
            format!("{:?}", events.events()),
            format!("{report:?}"),
        ] {
            assert!(!text.contains(&password), "the password leaked: {text}");
        }
    }
    assert!(
        !all.iter().any(|m| m.contains(&orphan)),
        "no mail for the owner without a manager"
    );
}

#[test]
fn settings_never_show_the_smtp_password_and_unknown_fields_are_refused() {
    let settings: SmtpSettings = autoprov_core::config::from_json(serde_json::json!({
        "Host": "smtp.example.test", "Login": "svc", "Password": "Sm7p-S3cret!",
        "From": "iam@example.test"
    }))
    .unwrap();
    assert!(!format!("{settings:?}").contains("Sm7p-S3cret!"));
    let delivery = SmtpDelivery::new(settings).unwrap();
    assert!(!format!("{delivery:?}").contains("Sm7p-S3cret!"));
    let err = autoprov_core::config::from_json::<SmtpSettings>(serde_json::json!({
        "Host": "h", "From": "iam@example.test", "RecipientProprety": "x"
    }))
    .unwrap_err();
    assert_eq!(err.suggestion(), Some("RecipientProperty"));
}
