//! Password notifications by mail (feature `smtp`): the reference system mails a generated
//! initial password to the person to notify (usually the owner's manager), with copies to
//! `NotificationCC`. [`SmtpDelivery`] is a [`PasswordDelivery`] on `lettre`.
//!
//! The password appears in the mail body and nowhere else: not in errors (a refused mail is a
//! [`DeliveryError`] naming the server's answer and the recipient), not in logs, not in
//! `Debug`. The order is Executed only once the server accepted the mail; a refused or failed
//! mail makes the dispatcher send the order again, which sets a new password.
//!
//! ```no_run
//! use autoprov_orchestrator::smtp::{SmtpDelivery, SmtpSettings};
//! let settings: SmtpSettings = autoprov_core::config::from_json(serde_json::json!({
//!     "Host": "smtp.example.test", "Port": 587, "Tls": "StartTls",
//!     "Login": "autoprov@example.test", "Password": "from-your-vault",
//!     "From": "Identity team <iam@example.test>", "RecipientProperty": "ManagerMail"
//! })).unwrap();
//! let delivery = SmtpDelivery::new(settings).unwrap();
//! ```

use crate::delivery::{DeliveryError, PasswordDelivery, PasswordNotice};
use async_trait::async_trait;
use autoprov_core::{PasswordMode, PropertyValue, ScalarValue, Secret};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SmtpTls {
    /// STARTTLS, required (the default; port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: a local test sink only. The password would cross the network in
    /// clear, so it must be chosen explicitly.
    NoneForTests,
}

/// Where and how password mails are sent, with the reference system's binding of the
/// notified person (an owner property holding their address).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// The mail server.
    pub host: String,
    /// Its port. Default: 587.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Default: StartTls.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The login, if the server asks for one.
    #[serde(default)]
    pub login: Option<String>,
    /// Its password (a secret: masked in `Debug` and when serialized).
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender, e.g. `Identity team <iam@example.test>`.
    pub from: String,
    /// The owner property holding the notified person's address. Default: `ManagerMail`.
    #[serde(default = "default_recipient")]
    pub recipient_property: String,
    /// The owner property holding the beneficiary's full name. Default: `DisplayName` (the
    /// owner's identifier when absent).
    #[serde(default = "default_name")]
    pub beneficiary_name_property: String,
    /// The subject. Default: `Your new account`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Seconds before a mail server that does not answer is given up (the order is retried).
    /// Default: 30.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_port() -> u16 {
    587
}
fn default_recipient() -> String {
    "ManagerMail".into()
}
fn default_name() -> String {
    "DisplayName".into()
}
fn default_subject() -> String {
    "Your new account".into()
}
fn default_timeout() -> u64 {
    30
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("login", &self.login)
            .field(
                "password",
                &self.password.as_ref().map(|_| autoprov_core::SECRET_MASK),
            )
            .field("from", &self.from)
            .field("recipient_property", &self.recipient_property)
            .finish_non_exhaustive()
    }
}

/// A settings error: names the setting, never the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SMTP settings: `{setting}`: {message}")]
pub struct SmtpSettingsError {
    /// The setting.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Mails generated initial passwords (see the [module documentation](self)).
pub struct SmtpDelivery {
    settings: SmtpSettings,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for SmtpDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpDelivery")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SmtpDelivery {
    /// A delivery with `settings`; nothing is sent until the first password.
    pub fn new(settings: SmtpSettings) -> Result<Self, SmtpSettingsError> {
        let err = |setting, message: String| SmtpSettingsError { setting, message };
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| err("From", format!("not a mail address: {e}")))?;
        if settings.host.is_empty() {
            return Err(err("Host", "is required".into()));
        }
        let tls =
            |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| err("Tls", e.to_string()));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(Duration::from_secs(settings.timeout_seconds.max(1))));
        builder = match settings.tls {
            SmtpTls::StartTls => builder.tls(Tls::Required(tls(&settings.host)?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&settings.host)?)),
            SmtpTls::NoneForTests => builder.tls(Tls::None),
        };
        match (&settings.login, &settings.password) {
            (Some(login), Some(password)) => {
                let clear = password
                    .expose()
                    .map_err(|e| err("Password", e.to_string()))?;
                builder = builder.credentials(Credentials::new(login.clone(), clear.to_owned()));
            }
            (Some(_), None) => return Err(err("Password", "a login needs a password".into())),
            (None, Some(_)) => return Err(err("Login", "a password needs a login".into())),
            (None, None) => {}
        }
        Ok(Self {
            from,
            transport: builder.build(),
            settings,
        })
    }

    fn owner_text(notice: &PasswordNotice<'_>, property: &str) -> Option<String> {
        match notice.owner()?.get(property)? {
            PropertyValue::Scalar(ScalarValue::String(s)) if !s.trim().is_empty() => {
                Some(s.trim().to_owned())
            }
            _ => None,
        }
    }

    /// The mail for one password (without sending it).
    fn message(
        &self,
        notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<Message, DeliveryError> {
        let order = &notice.order.order_id;
        let owner = notice
            .owner()
            .map(|o| o.id.to_string())
            .unwrap_or_else(|| "(none)".into());
        if notice.mode == PasswordMode::TwoWay {
            return Err(DeliveryError::new(format!(
                "order {order}, owner {owner}: two-way password mode needs a reset link, which \
                 SmtpDelivery does not make; deliver through your own PasswordDelivery"
            )));
        }
        let to = Self::owner_text(notice, &self.settings.recipient_property).ok_or_else(|| {
            DeliveryError::new(format!(
                "order {order}: owner {owner} has no `{}` to notify",
                self.settings.recipient_property
            ))
        })?;
        let parse = |address: &str| {
            address.parse::<Mailbox>().map_err(|e| {
                DeliveryError::new(format!(
                    "order {order}, owner {owner}: `{address}` is not a mail address: {e}"
                ))
            })
        };
        let name = Self::owner_text(notice, &self.settings.beneficiary_name_property)
            .or_else(|| notice.owner().map(|o| o.identifier.clone()))
            .unwrap_or_default();
        let clear = password
            .expose()
            .map_err(|e| DeliveryError::new(format!("order {order}, owner {owner}: {e}")))?;
        let mut body = format!(
            "Hello,\n\nAn account was created for {name}.\n\nAccount: {}\nInitial password: {clear}\n",
            notice.target
        );
        if notice.must_change {
            body.push_str("\nThe password must be changed at the first logon.\n");
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(parse(&to)?)
            .subject(self.settings.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for cc in notice.notification_cc {
            builder = builder.cc(parse(cc)?);
        }
        builder.body(body).map_err(|e| {
            DeliveryError::new(format!(
                "order {order}, owner {owner}: building the mail: {e}"
            ))
        })
    }
}

#[async_trait]
impl PasswordDelivery for SmtpDelivery {
    async fn deliver(
        &self,
        notice: &PasswordNotice<'_>,
        password: &Secret,
    ) -> Result<(), DeliveryError> {
        let message = self.message(notice, password)?;
        let recipients: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        // lettre's errors name the server's answer, never the message body.
        self.transport.send(message).await.map_err(|e| {
            DeliveryError::new(format!(
                "order {}: mail to {} not accepted by {}:{}: {e}",
                notice.order.order_id,
                recipients.join(", "),
                self.settings.host,
                self.settings.port
            ))
        })?;
        Ok(())
    }
}
