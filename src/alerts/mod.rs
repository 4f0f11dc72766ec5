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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use hafront_config::{Config, Email, Pool};
use tokio::sync::{Notify, mpsc, oneshot, watch};
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
        let in_force = Settings::of(cfg);
        let scripts = ScriptQueues::start(&node, &in_force.notify)?;
        let email = match &in_force.email {
            Some(email) => {
                let mailer = Arc::new(Mailer::new(&node, email)?);
                let spool = open_spool(&in_force.queue_dir)?;
                Some(EmailState::start(
                    mailer,
                    spool,
                    Batcher::new(email.coalesce, email.max_per_hour),
                    email.max_per_hour,
                ))
            }
            None => None,
        };
        let (events, received) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let (changes, changes_received) = mpsc::channel(1);
        let (stop, stopped) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        let pools: Membership = Arc::new(Mutex::new(membership(&cfg.pools)));
        let dispatcher = Dispatcher {
            node: node.clone(),
            tracker: Tracker::new(Arc::clone(&pools)),
            scripts,
            retired_scripts: Vec::new(),
            email,
            snapshot,
            dropped: Arc::clone(&dropped),
            dropped_reported: 0,
        };
        let task = tokio::spawn(dispatcher.run(received, changes_received, stopped));
        Ok(AlertsHandle {
            node,
            sender: AlertSender { events, dropped },
            pools,
            in_force: Mutex::new(in_force),
            changes,
            stop,
            task,
        })
    }
}

/// The parts of the configuration alerts run with.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    email: Option<Email>,
    notify: Vec<hafront_config::Notify>,
    queue_dir: PathBuf,
}

impl Settings {
    fn of(cfg: &Config) -> Settings {
        Settings {
            email: cfg.alerts.email.clone(),
            notify: cfg.notify.clone(),
            queue_dir: cfg.global.state_dir.join(MAIL_QUEUE_DIR),
        }
    }
}

fn open_spool(dir: &Path) -> Result<Arc<Spool>, AlertsError> {
    Spool::open(dir.to_path_buf())
        .map(Arc::new)
        .map_err(|source| AlertsError::Spool {
            path: dir.to_path_buf(),
            source,
        })
}

/// What a reload changes in the running dispatcher; `None` fields stay.
struct Change {
    /// New script queues (the old ones finish what they were given).
    scripts: Option<ScriptQueues>,
    /// New mail settings.
    email: Option<EmailChange>,
    /// Told once the change is in force.
    applied: oneshot::Sender<()>,
}

/// New mail settings.
enum EmailChange {
    /// No more mail: what is pending goes out as a last mail.
    Off,
    /// Mail with these settings; `spool` is set when the queue directory is
    /// another one than the running delivery's (or none runs).
    On {
        mailer: Arc<Mailer>,
        spool: Option<Arc<Spool>>,
        coalesce: std::time::Duration,
        max_per_hour: u32,
    },
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
    node: String,
    sender: AlertSender,
    pools: Membership,
    /// The settings the dispatcher runs with.
    in_force: Mutex<Settings>,
    changes: mpsc::Sender<Change>,
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

    /// Applies the `alerts`, `notify` and `global.state_dir` settings of
    /// `cfg` to the running subsystem, changing only what differs: what it
    /// knows of servers and outages, the events in flight and the mails
    /// pending or queued all stay, and one delivery task keeps working each
    /// mail queue (a new queue directory takes over the old one's mails).
    /// A setting that cannot be used is refused with nothing changed.
    pub async fn reconfigure(&self, cfg: &Config) -> Result<(), AlertsError> {
        let wanted = Settings::of(cfg);
        let current = self
            .in_force
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if wanted == current {
            return Ok(());
        }
        let email = match &wanted.email {
            _ if wanted.email == current.email && wanted.queue_dir == current.queue_dir => None,
            None => Some(EmailChange::Off),
            Some(email) => {
                let mailer = Arc::new(Mailer::new(&self.node, email)?);
                let new_queue = current.email.is_none() || wanted.queue_dir != current.queue_dir;
                let spool = new_queue
                    .then(|| open_spool(&wanted.queue_dir))
                    .transpose()?;
                Some(EmailChange::On {
                    mailer,
                    spool,
                    coalesce: email.coalesce,
                    max_per_hour: email.max_per_hour,
                })
            }
        };
        let scripts = (wanted.notify != current.notify)
            .then(|| ScriptQueues::start(&self.node, &wanted.notify))
            .transpose()?;
        let (applied, in_force) = oneshot::channel();
        let change = Change {
            scripts,
            email,
            applied,
        };
        // Either fails only when the dispatcher has ended: the daemon is stopping.
        if self.changes.send(change).await.is_ok() && in_force.await.is_ok() {
            *self.in_force.lock().unwrap_or_else(PoisonError::into_inner) = wanted;
        }
        Ok(())
    }

    /// Tells alerts which pools and servers are configured now; call it
    /// before the health monitor probes a changed set, so that a new pool's
    /// first verdict is known to be one.
    pub fn set_pools(&self, pools: &BTreeMap<String, Pool>) {
        *self.pools.lock().unwrap_or_else(PoisonError::into_inner) = membership(pools);
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
    /// The mailer the delivery task uses.
    delivery_mailer: watch::Sender<Arc<Mailer>>,
    stop_delivery: watch::Sender<bool>,
    delivery: JoinHandle<()>,
}

impl EmailState {
    /// Starts the one delivery task of `spool`.
    fn start(
        mailer: Arc<Mailer>,
        spool: Arc<Spool>,
        batcher: Batcher,
        max_per_hour: u32,
    ) -> EmailState {
        let queued = Arc::new(Notify::new());
        let (delivery_mailer, mailer_watch) = watch::channel(Arc::clone(&mailer));
        let (stop_delivery, delivery_stopped) = watch::channel(false);
        let delivery = tokio::spawn(smtp::deliver(
            mailer_watch,
            Arc::clone(&spool),
            Arc::clone(&queued),
            delivery_stopped,
        ));
        EmailState {
            mailer,
            spool,
            queued,
            batcher,
            max_per_hour,
            delivery_mailer,
            stop_delivery,
            delivery,
        }
    }

    /// Uses `mailer` from now on, for new mails and those queued.
    fn replace_mailer(&mut self, mailer: Arc<Mailer>) {
        self.delivery_mailer.send_replace(Arc::clone(&mailer));
        self.mailer = mailer;
        self.queued.notify_one();
    }

    /// Stops the delivery task after one last attempt and waits for it;
    /// returns the pending events' batcher.
    async fn stop(self) -> Batcher {
        // Ignored error: delivery ended already, nothing to stop.
        let _ = self.stop_delivery.send(true);
        if let Err(e) = self.delivery.await {
            error!(error = %e, "mail delivery task ended abnormally");
        }
        self.batcher
    }
}

/// The task that routes events to scripts and mail.
struct Dispatcher {
    node: String,
    tracker: Tracker,
    scripts: ScriptQueues,
    /// Script queues replaced by a reload, finishing what they were given.
    retired_scripts: Vec<JoinHandle<()>>,
    email: Option<EmailState>,
    snapshot: Snapshot,
    dropped: Arc<AtomicU64>,
    dropped_reported: u64,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut received: mpsc::Receiver<Event>,
        mut changes: mpsc::Receiver<Change>,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            let mail_due = self.email.as_ref().and_then(|email| email.batcher.due());
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => self.dispatch(event),
                    None => break,
                },
                Some(change) = changes.recv() => self.apply(change).await,
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
            retired_scripts,
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
        for retired in retired_scripts {
            let _ = retired.await;
        }
        if let Some(email) = email {
            email.stop().await;
        }
    }

    /// Puts a reload's change in force, keeping the tracker's state and the
    /// pending events.
    async fn apply(&mut self, change: Change) {
        if let Some(scripts) = change.scripts {
            let retired = std::mem::replace(&mut self.scripts, scripts);
            self.retired_scripts.retain(|task| !task.is_finished());
            self.retired_scripts.push(tokio::spawn(retired.finish()));
        }
        match change.email {
            None => {}
            Some(EmailChange::Off) => {
                if let Some(mut email) = self.email.take() {
                    if let Some(batch) = email.batcher.take_all() {
                        queue_mail(&self.node, &mut email, batch, &self.snapshot).await;
                    }
                    email.stop().await;
                    info!("alert mail turned off");
                }
            }
            Some(EmailChange::On {
                mailer,
                spool,
                coalesce,
                max_per_hour,
            }) => match (self.email.take(), spool) {
                (Some(mut email), None) => {
                    email.replace_mailer(mailer);
                    email.batcher.set_limits(coalesce, max_per_hour);
                    email.max_per_hour = max_per_hour;
                    self.email = Some(email);
                }
                (running, Some(spool)) => {
                    let mut batcher = match running {
                        Some(running) => {
                            let old_spool = Arc::clone(&running.spool);
                            let batcher = running.stop().await;
                            let adopt = Arc::clone(&spool);
                            match tokio::task::spawn_blocking(move || adopt.adopt(&old_spool)).await
                            {
                                Ok(Ok(0)) => {}
                                Ok(Ok(moved)) => {
                                    info!(moved, queue = %spool.dir().display(), "queued alert mails moved to the new mail queue")
                                }
                                Ok(Err(e)) => {
                                    error!(error = %e, "cannot move queued alert mails to the new mail queue; they stay in the old one")
                                }
                                Err(e) => error!(error = %e, "moving queued alert mails failed"),
                            }
                            batcher
                        }
                        None => Batcher::new(coalesce, max_per_hour),
                    };
                    batcher.set_limits(coalesce, max_per_hour);
                    self.email = Some(EmailState::start(mailer, spool, batcher, max_per_hour));
                }
                (None, None) => error!("alert mail settings without a mail queue; mail stays off"),
            },
        }
        let _ = change.applied.send(());
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
