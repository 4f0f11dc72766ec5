//! SMTP delivery: the transport built from the `email:` settings, and the
//! task that drains the mail queue, retrying with exponential backoff while
//! the server is unreachable.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hafront_config::{Email, Secret, SmtpSecurity};
use lettre::address::{Address, Envelope};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::AlertsError;
use super::mail::MailText;
use super::spool::{QueuedMail, Spool};

/// First retry delay after a failed delivery.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest last delivery attempt at shutdown.
const SHUTDOWN_DELIVERY_LIMIT: Duration = Duration::from_secs(10);

/// Builds and sends the alert mails of one node.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    node: String,
    session_timeout: Duration,
}

impl Mailer {
    /// The mailer for the `email:` settings. Reads the password and CA files
    /// now, so a problem shows at start rather than at the first outage.
    pub(crate) fn new(node: &str, email: &Email) -> Result<Self, AlertsError> {
        let from = parse_mailbox(&email.from)?;
        let to = email
            .to
            .iter()
            .map(|to| parse_mailbox(to))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(AlertsError::NoRecipient);
        }
        let port = email.smtp_port.unwrap_or(match email.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        });
        let tls = match email.security {
            SmtpSecurity::Starttls => Tls::Required(tls_parameters(email)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(email)?),
            SmtpSecurity::Plain => Tls::None,
        };
        let hello = if !node.is_empty()
            && node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            ClientId::Domain(node.to_owned())
        } else {
            ClientId::default()
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.smtp_host)
            .port(port)
            .tls(tls)
            .hello_name(hello)
            .timeout(Some(email.timeout));
        match (&email.username, &email.password) {
            (Some(username), Some(password)) => {
                builder =
                    builder.credentials(Credentials::new(username.clone(), read_secret(password)?));
            }
            (None, None) => {}
            _ => return Err(AlertsError::IncompleteAuth),
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
            node: node.to_owned(),
            session_timeout: email.timeout,
        })
    }

    /// The queued form of a mail with this text.
    pub(crate) fn build(&self, text: MailText, now: SystemTime) -> Result<QueuedMail, AlertsError> {
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let id_host: String = self
            .node
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            .collect();
        let id_host = if id_host.is_empty() {
            "hafront"
        } else {
            &id_host
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(text.subject)
            .date(now)
            .message_id(Some(format!(
                "<hafront.{nanos}.{}@{id_host}>",
                std::process::id()
            )))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(text.body)
            .map_err(|e| AlertsError::Compose(e.to_string()))?;
        let envelope = message.envelope();
        Ok(QueuedMail {
            from: envelope.from().map(ToString::to_string).unwrap_or_default(),
            to: envelope.to().iter().map(ToString::to_string).collect(),
            message: message.formatted(),
        })
    }

    /// Hands one queued mail to the SMTP server.
    async fn send(&self, mail: &QueuedMail) -> Result<(), SendError> {
        let address = |text: &str| {
            text.parse::<Address>()
                .map_err(|e| SendError::Permanent(format!("bad address {text:?}: {e}")))
        };
        let from = if mail.from.is_empty() {
            None
        } else {
            Some(address(&mail.from)?)
        };
        let to = mail
            .to
            .iter()
            .map(|to| address(to))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(from, to).map_err(|e| SendError::Permanent(e.to_string()))?;
        match tokio::time::timeout(
            self.session_timeout,
            self.transport.send_raw(&envelope, &mail.message),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
            Err(_) => Err(SendError::Transient("SMTP session timed out".to_owned())),
        }
    }
}

/// Why a mail did not go out.
#[derive(Debug)]
enum SendError {
    /// Worth retrying: the server is down, slow, or said 4xx.
    Transient(String),
    /// The server refused this mail for good (5xx) or it is malformed.
    Permanent(String),
}

fn parse_mailbox(text: &str) -> Result<Mailbox, AlertsError> {
    text.parse().map_err(|e| AlertsError::Address {
        address: text.to_owned(),
        detail: format!("{e}"),
    })
}

fn tls_parameters(email: &Email) -> Result<TlsParameters, AlertsError> {
    let tls_error = |detail: String| AlertsError::Tls(detail);
    let mut builder = TlsParameters::builder(email.smtp_host.clone());
    if let Some(ca_file) = &email.ca_file {
        let pem = fs::read(ca_file).map_err(|e| AlertsError::File {
            path: ca_file.clone(),
            source: e,
        })?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| tls_error(format!("{}: {e}", ca_file.display())))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| tls_error(e.to_string()))
}

/// The secret's text; a file's trailing newline is not part of it.
fn read_secret(secret: &Secret) -> Result<String, AlertsError> {
    match secret {
        Secret::Value(value) => Ok(value.clone()),
        Secret::File(path) => fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| AlertsError::File {
                path: path.clone(),
                source: e,
            }),
    }
}

/// Delivers queued mails with the latest of `mailer` until told to stop, then
/// makes one last attempt (bounded by [`SHUTDOWN_DELIVERY_LIMIT`]). The only
/// task that sends from `spool`.
pub(crate) async fn deliver(
    mailer: watch::Receiver<Arc<Mailer>>,
    spool: Arc<Spool>,
    queued: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delivery = Delivery {
        mailer,
        spool,
        sent_not_removed: HashSet::new(),
    };
    let mut backoff = INITIAL_BACKOFF;
    loop {
        // Mails are queued before stop is set, so a pass that starts after
        // seeing stop includes the last of them.
        let stopping = *stop.borrow_and_update() || stop.has_changed().is_err();
        if stopping {
            if tokio::time::timeout(SHUTDOWN_DELIVERY_LIMIT, delivery.pass())
                .await
                .is_err()
            {
                warn!("SMTP server too slow at shutdown; mails stay queued");
            }
            break;
        }
        let wait = if delivery.pass().await {
            backoff = INITIAL_BACKOFF;
            None
        } else {
            let wait = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            Some(wait)
        };
        tokio::select! {
            () = queued.notified(), if wait.is_none() => {}
            () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            _ = stop.changed() => {}
        }
    }
    match delivery.on_disk(|spool| spool.list()).await {
        Ok(left) if !left.is_empty() => warn!(
            count = left.len(),
            queue = %delivery.spool.dir().display(),
            "alert mails left queued; they will be sent after the next start"
        ),
        Ok(_) => {}
        Err(e) => {
            error!(queue = %delivery.spool.dir().display(), error = %e, "cannot list mail queue")
        }
    }
}

/// The delivery task's state.
struct Delivery {
    /// The mailer of the settings in force (replaced by a reload).
    mailer: watch::Receiver<Arc<Mailer>>,
    spool: Arc<Spool>,
    /// Mails the server accepted whose queue file could not be deleted:
    /// never sent again by this process.
    sent_not_removed: HashSet<PathBuf>,
}

impl Delivery {
    /// Runs a queue operation off the async workers (it syncs the disk).
    async fn on_disk<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Spool) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let spool = Arc::clone(&self.spool);
        tokio::task::spawn_blocking(move || operation(&spool))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    }

    /// Sends every queued mail, oldest first; false when the server could
    /// not be reached (or the queue not read) and a retry is due.
    async fn pass(&mut self) -> bool {
        let paths = match self.on_disk(|spool| spool.list()).await {
            Ok(paths) => paths,
            Err(e) => {
                error!(queue = %self.spool.dir().display(), error = %e, "cannot list mail queue");
                return false;
            }
        };
        for path in paths {
            if self.sent_not_removed.contains(&path) {
                self.remove_sent(path).await;
                continue;
            }
            let load_path = path.clone();
            let mail = match self.on_disk(move |spool| spool.load(&load_path)).await {
                Ok(Some(mail)) => mail,
                Ok(None) => {
                    self.set_aside(path, "not a queued mail".to_owned()).await;
                    continue;
                }
                Err(e) => {
                    error!(mail = %path.display(), error = %e, "cannot read queued mail");
                    return false;
                }
            };
            let mailer = Arc::clone(&self.mailer.borrow());
            match mailer.send(&mail).await {
                Ok(()) => {
                    info!(mail = %path.display(), "alert mail sent");
                    self.sent_not_removed.insert(path.clone());
                    self.remove_sent(path).await;
                }
                Err(SendError::Permanent(reason)) => self.set_aside(path, reason).await,
                Err(SendError::Transient(reason)) => {
                    warn!(mail = %path.display(), %reason, "alert mail not sent; will retry");
                    return false;
                }
            }
        }
        true
    }

    /// Deletes the queue file of a sent mail.
    async fn remove_sent(&mut self, path: PathBuf) {
        let remove_path = path.clone();
        match self.on_disk(move |spool| spool.remove(&remove_path)).await {
            Ok(()) => {
                self.sent_not_removed.remove(&path);
            }
            Err(e) => error!(
                mail = %path.display(), error = %e,
                "cannot remove sent mail from queue; it may be sent again after a restart"
            ),
        }
    }

    /// Keeps a mail the server refused for good where the operator finds it.
    async fn set_aside(&self, path: PathBuf, reason: String) {
        let aside_path = path.clone();
        match self
            .on_disk(move |spool| spool.set_aside(&aside_path))
            .await
        {
            Ok(kept) => error!(
                mail = %kept.display(), %reason,
                "alert mail refused for good; kept for the operator"
            ),
            Err(e) => error!(
                mail = %path.display(), %reason, error = %e,
                "alert mail refused for good and cannot be moved aside"
            ),
        }
    }
}
