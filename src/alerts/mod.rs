//! Alerts: every server, pool, VRRP and relay change reaches the operator's
//! notify scripts and mailbox, once each, in order, and never silently lost.
//!
//! Producers hand events to [`AlertSender::send`], which never waits: the
//! event goes into a bounded channel (a full channel drops and counts it).
//! One dispatcher task derives pool events and outage durations, feeds a
//! queue per notify script, and gathers mails; a delivery task drains the
//! on-disk mail queue, so a slow or dead SMTP server delays nothing else.

mod event;
mod mail;
mod notify;
mod smtp;
mod spool;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use hafront_config::{Config, Email, Pool};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use event::{
    Event, EventKind, ServerTransition, VrrpState, VrrpTransition, counted, format_duration,
};
pub use notify::event_environment;

use event::{Membership, Tracker, membership};
use mail::{Batch, Batcher};
use notify::ScriptQueues;
use smtp::Mailer;
use spool::Spool;

/// Events waiting for the dispatcher; more are dropped (and counted).
const EVENT_QUEUE_CAPACITY: usize = 4096;

/// Name of the mail queue directory under `global.state_dir`.
pub const MAIL_QUEUE_DIR: &str = "mail-queue";

/// Renders the current state of every pool and VRRP instance, for mails.
pub type Snapshot = Arc<dyn Fn() -> String + Send + Sync>;

/// Why alerts could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// A mail address does not parse.
    #[error("invalid mail address {address:?}: {detail}")]
    Address {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        detail: String,
    },
    /// `email.to` is empty.
    #[error("email: no recipient in `to`")]
    NoRecipient,
    /// Only one of `email.username` and `email.password` is set.
    #[error("email: `username` and `password` go together")]
    IncompleteAuth,
    /// A password or CA file cannot be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The TLS settings for SMTP are unusable.
    #[error("email TLS: {0}")]
    Tls(String),
    /// The mail queue directory cannot be created or read.
    #[error("mail queue {path}: {source}")]
    Spool {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A notify entry has an empty `command`.
    #[error("notify: empty command")]
    EmptyCommand,
    /// A notify `user` cannot be resolved.
    #[error("notify user {user:?}: {detail}")]
    User {
        /// The user name.
        user: String,
        /// What went wrong.
        detail: String,
    },
    /// A mail could not be put together.
    #[error("cannot compose mail: {0}")]
    Compose(String),
}

/// The entry point of the alerts subsystem.
pub enum Alerts {}

impl Alerts {
    /// Starts the dispatcher, one worker per notify script and, when
    /// `alerts.email` is set, the mail delivery task (which first sends what
    /// a previous run left queued in `state_dir/mail-queue`). Must be called
    /// within a Tokio runtime. `snapshot` renders the node's current state
    /// for the end of each mail.
    pub fn start(
        node: String,
        cfg: &Config,
        snapshot: Snapshot,
    ) -> Result<AlertsHandle, AlertsError> {
        let scripts = ScriptQueues::start(&node, &cfg.notify)?;
        let (stop_delivery, delivery_stopped) = watch::channel(false);
        let email = match &cfg.alerts.email {
            Some(email) => {
                let mailer = Arc::new(Mailer::new(&node, email)?);
                let queue_dir = cfg.global.state_dir.join(MAIL_QUEUE_DIR);
                let spool = Arc::new(Spool::open(queue_dir.clone()).map_err(|source| {
                    AlertsError::Spool {
                        path: queue_dir,
                        source,
                    }
                })?);
                let queued = Arc::new(Notify::new());
                let delivery = tokio::spawn(smtp::deliver(
                    Arc::clone(&mailer),
                    Arc::clone(&spool),
                    Arc::clone(&queued),
                    delivery_stopped,
                ));
                Some(EmailState {
                    mailer,
                    spool,
                    queued,
                    batcher: Batcher::new(email.coalesce, email.max_per_hour),
                    max_per_hour: email.max_per_hour,
                    delivery,
                })
            }
            None => None,
        };
        let (events, received) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let (stop, stopped) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        let pools: Membership = Arc::new(Mutex::new(membership(&cfg.pools)));
        let dispatcher = Dispatcher {
            node,
            tracker: Tracker::new(Arc::clone(&pools)),
            scripts,
            email,
            snapshot,
            dropped: Arc::clone(&dropped),
            dropped_reported: 0,
        };
        let task = tokio::spawn(dispatcher.run(received, stopped, stop_delivery));
        Ok(AlertsHandle {
            sender: AlertSender { events, dropped },
            pools,
            stop,
            task,
        })
    }
}

/// Checks the `email:` settings as [`Alerts::start`] would use them
/// (addresses, AUTH pairing, password and CA files, TLS setup), for the
/// configuration check. Needs no runtime and sends nothing.
pub fn check_email(email: &Email) -> Result<(), AlertsError> {
    Mailer::new("localhost", email).map(drop)
}

/// A cloneable, never-waiting way to report events, for every producer.
#[derive(Debug, Clone)]
pub struct AlertSender {
    events: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl AlertSender {
    /// Queues an event without waiting. Returns false when the queue is
    /// full or alerts are shut down; the event is then counted as dropped
    /// (and the count logged by the dispatcher).
    pub fn send(&self, event: impl Into<Event>) -> bool {
        let sent = self.events.try_send(event.into()).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Events dropped so far because the queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The running alerts subsystem.
#[derive(Debug)]
pub struct AlertsHandle {
    sender: AlertSender,
    pools: Membership,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AlertsHandle {
    /// Queues an event without waiting; see [`AlertSender::send`].
    pub fn send(&self, event: impl Into<Event>) -> bool {
        self.sender.send(event)
    }

    /// A sender for a producer task.
    pub fn sender(&self) -> AlertSender {
        self.sender.clone()
    }

    /// Events dropped so far because the queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.sender.dropped()
    }

    /// Tells alerts which pools and servers are configured now; call it
    /// before the health monitor probes a changed set, so that a new pool's
    /// first verdict is known to be one.
    pub fn set_pools(&self, pools: &BTreeMap<String, Pool>) {
        *self.pools.lock().unwrap_or_else(PoisonError::into_inner) = membership(pools);
    }

    /// Tells alerts started while servers were already probed each pool's
    /// servers and their current statuses (by pool), so that the next
    /// change of a pool is reported as one.
    pub fn set_current(&self, pools: BTreeMap<String, Vec<(String, hafront_health::Status)>>) {
        *self.pools.lock().unwrap_or_else(PoisonError::into_inner) = pools;
    }

    /// Handles the events already queued, lets the notify scripts they
    /// started finish, turns pending mail into one last mail regardless of
    /// coalescing and rate limit, and tries once to deliver the mail queue.
    /// What cannot be delivered stays queued for the next start.
    pub async fn shutdown(self) {
        // Ignored error: the dispatcher is gone already, nothing to stop.
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            error!(error = %e, "alerts dispatcher ended abnormally");
        }
    }
}

/// Mail state owned by the dispatcher.
struct EmailState {
    mailer: Arc<Mailer>,
    spool: Arc<Spool>,
    queued: Arc<Notify>,
    batcher: Batcher,
    max_per_hour: u32,
    delivery: JoinHandle<()>,
}

/// The task that routes events to scripts and mail.
struct Dispatcher {
    node: String,
    tracker: Tracker,
    scripts: ScriptQueues,
    email: Option<EmailState>,
    snapshot: Snapshot,
    dropped: Arc<AtomicU64>,
    dropped_reported: u64,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut received: mpsc::Receiver<Event>,
        mut stopped: watch::Receiver<bool>,
        stop_delivery: watch::Sender<bool>,
    ) {
        loop {
            let mail_due = self.email.as_ref().and_then(|email| email.batcher.due());
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => self.dispatch(event),
                    None => break,
                },
                () = sleep_until_some(mail_due) => self.queue_due_mail().await,
                _ = stopped.changed() => break,
            }
        }
        received.close();
        while let Ok(event) = received.try_recv() {
            self.dispatch(event);
        }
        self.report_dropped();
        let Dispatcher {
            node,
            scripts,
            mut email,
            snapshot,
            ..
        } = self;
        if let Some(email) = &mut email {
            if let Some(batch) = email.batcher.take_all() {
                queue_mail(&node, email, batch, &snapshot).await;
            }
        }
        // Scripts first: their output is in the log before delivery ends.
        scripts.finish().await;
        // Ignored error: delivery ended already, nothing to stop.
        let _ = stop_delivery.send(true);
        if let Some(email) = email {
            if let Err(e) = email.delivery.await {
                error!(error = %e, "mail delivery task ended abnormally");
            }
        }
    }

    /// Routes one event and the pool events it causes.
    fn dispatch(&mut self, event: Event) {
        self.report_dropped();
        let now = Instant::now();
        for event in self.tracker.observe(event) {
            info!(event = event.name(), "{event}");
            let event = Arc::new(event);
            self.scripts.dispatch(&event);
            if let Some(email) = &mut self.email {
                if event.is_mail_worthy() {
                    email.batcher.push(Event::clone(&event), now);
                }
            }
        }
    }

    /// Queues the pending events as one mail if their time has come.
    async fn queue_due_mail(&mut self) {
        let Some(email) = &mut self.email else {
            return;
        };
        if let Some(batch) = email.batcher.take_due(Instant::now()) {
            queue_mail(&self.node, email, batch, &self.snapshot).await;
        }
    }

    fn report_dropped(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            warn!(
                dropped = dropped - self.dropped_reported,
                total = dropped,
                "alert queue was full; events were dropped"
            );
            self.dropped_reported = dropped;
        }
    }
}

/// Composes the mail for a batch and stores it in the queue for delivery;
/// if that fails, the events go back for the next mail.
async fn queue_mail(node: &str, email: &mut EmailState, batch: Batch, snapshot: &Snapshot) {
    let now = SystemTime::now();
    let state = snapshot();
    let text = mail::compose(node, &batch, email.max_per_hour, &state, now);
    let subject = text.subject.clone();
    let mail = match email.mailer.build(text, now) {
        Ok(mail) => mail,
        Err(e) => {
            error!(%subject, error = %e, "alert mail dropped");
            return;
        }
    };
    let spool = Arc::clone(&email.spool);
    let stored = tokio::task::spawn_blocking(move || spool.push(&mail)).await;
    match stored {
        Ok(Ok(path)) => {
            info!(%subject, mail = %path.display(), "alert mail queued");
            email.queued.notify_one();
        }
        Ok(Err(e)) => {
            error!(%subject, error = %e, "cannot queue alert mail; its events go into the next one");
            email.batcher.restore(batch, Instant::now());
        }
        Err(e) => {
            error!(%subject, error = %e, "alert mail queueing task failed; its events go into the next one");
            email.batcher.restore(batch, Instant::now());
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
