//! The failover coordinator of one pool: a task that follows the pool's health and this
//! node's VRRP standing, fails over when the primary dies (confirmed by its replicas),
//! fences and rejoins former primaries, and runs switchovers and acknowledgements on
//! request. One step at a time, so two actions on a pool never interleave.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use hafront_config::Role;
use hafront_health::{HealthEvent, ServerHealth, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::decide::{self, Contender};
use crate::event::{FailoverEvent, Step};
use crate::gtid::GtidPosition;
use crate::journal::{self, Journal, Record};
use crate::mariadb::{Credentials, ER_GTID_NOT_IN_BINLOG, Observation, Session};

mod co_located;
mod failover;
mod rejoin;
mod switchover;
mod topology;

/// How often the servers are looked at while nothing happens (topology for status, lags,
/// former primaries coming back).
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Requests queued for a coordinator before callers wait.
const COMMAND_BACKLOG: usize = 8;

/// How long a co-located switchover waits, beyond `catch_up_timeout`, for the node that
/// took the VIP over to promote its server.
const HANDOVER_GRACE: Duration = Duration::from_secs(5);

/// How long a rejoining server may take to connect to its new primary.
const REJOIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Receives every step (alerts, notify scripts, logs, metrics).
pub type EventSink = Arc<dyn Fn(FailoverEvent) + Send + Sync>;

/// One server of the pool.
#[derive(Clone)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Where it listens (also what replicas are pointed at).
    pub address: SocketAddr,
    /// Its live health, which relays read.
    pub health: Arc<ServerHealth>,
    /// Whether it may be promoted.
    pub promotable: bool,
}

/// Everything a coordinator needs, secrets read.
#[derive(Clone)]
pub struct Settings {
    /// The pool.
    pub pool: String,
    /// Its servers, in pool order.
    pub members: Vec<Member>,
    /// The administrative login.
    pub admin: Credentials,
    /// The login a rejoining server replicates with.
    pub replication: Credentials,
    /// The pool's failover block.
    pub config: hafront_config::Failover,
    /// Where the journal lives.
    pub state_dir: PathBuf,
    /// Limit for a login (the pool's check timeout: a dead server costs no more).
    pub connect_timeout: Duration,
    /// Limit for one statement.
    pub timeout: Duration,
    /// Co-located: hands this node's VRRP master role over (a switchover asked here).
    pub handover: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// An operator's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Hand the primary role to `to` (default: the best replica).
    Switchover {
        /// The server to promote.
        to: Option<String>,
    },
    /// Acknowledge the last failover, ending its block window.
    Acknowledge,
}

/// The pool's replication as failover last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The primary failover follows.
    pub primary: Option<String>,
    /// Whether this node acts on the pool now.
    pub acting: bool,
    /// Until when automatic failover is blocked (seconds since the epoch).
    pub blocked_until: Option<u64>,
    /// The last automatic failover.
    pub last_failover: Option<Record>,
    /// Each server.
    pub servers: Vec<ServerReplication>,
    /// Steps taken since the daemon started, by [`Step::as_str`].
    #[serde(default)]
    pub steps: BTreeMap<String, u64>,
}

/// One server's replication state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerReplication {
    /// Server name.
    pub name: String,
    /// Whether hafront's administrative login worked.
    pub reachable: bool,
    /// `read_only`.
    pub read_only: Option<bool>,
    /// The server it replicates from (its name when in the pool, else host:port).
    pub replicates_from: Option<String>,
    /// `Slave_IO_Running` and `Slave_SQL_Running`.
    pub threads: Option<(String, String)>,
    /// `Seconds_Behind_Master`.
    pub lag_seconds: Option<u64>,
    /// `@@gtid_current_pos`.
    pub gtid_position: Option<String>,
    /// Fenced out of the write path by failover.
    pub fenced: bool,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// A running coordinator.
pub struct Coordinator {
    requests: mpsc::Sender<(Request, oneshot::Sender<Result<String, String>>)>,
    topology: watch::Receiver<Topology>,
    task: JoinHandle<()>,
}

impl Coordinator {
    /// Starts coordinating `settings.pool`, following `health` and, when the pool's
    /// failover names a VRRP instance, whether this node is its master (`master`; a closed
    /// channel counts as not master).
    pub fn start(
        settings: Settings,
        health: broadcast::Receiver<HealthEvent>,
        master: Option<watch::Receiver<bool>>,
        events: EventSink,
    ) -> Coordinator {
        let (requests, requests_rx) = mpsc::channel(COMMAND_BACKLOG);
        let (topology_tx, topology) = watch::channel(Topology::default());
        let state = State::new(settings, master, events, topology_tx);
        let task = tokio::spawn(state.run(health, requests_rx));
        Coordinator {
            requests,
            topology,
            task,
        }
    }

    /// A handle that sends requests to this coordinator from any task.
    pub fn requester(&self) -> Requester {
        Requester(self.requests.clone())
    }

    /// The replication topology as last seen.
    pub fn topology(&self) -> Topology {
        self.topology.borrow().clone()
    }
}

/// Sends operators' requests to a coordinator.
#[derive(Clone)]
pub struct Requester(mpsc::Sender<(Request, oneshot::Sender<Result<String, String>>)>);

impl Requester {
    /// Runs `request` and returns what was done, or why not.
    pub async fn request(&self, request: Request) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send((request, reply))
            .await
            .map_err(|_| "the failover coordinator stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the failover coordinator stopped".to_owned())?
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The coordinator task's state.
struct State {
    settings: Settings,
    /// Whether this node is master of the VRRP instance failover follows (`None`: no VRRP).
    master: Option<watch::Receiver<bool>>,
    /// The VRRP instance's state can no longer be known: act no more.
    master_gone: bool,
    events: EventSink,
    topology: watch::Sender<Topology>,
    journal: Journal,
    journal_path: PathBuf,
    primary: Option<usize>,
    /// The primary whose failure was already handled (one attempt per failure).
    handled_failure: Option<usize>,
    /// A failover waiting for the replicas to confirm the primary's death: (primary, only),
    /// asked again at every refresh while the primary stays down, without new alerts.
    unconfirmed: Option<(usize, Option<usize>)>,
    /// Fenced servers whose rejoin was tried since they last came up.
    rejoin_tried: HashSet<usize>,
    /// `Seconds_Behind_Master` of each replica at the last refresh.
    lags: BTreeMap<usize, Option<u64>>,
    /// Warned about two writable servers (once per episode).
    warned_split: bool,
    /// Servers whose grants for the failover's user were checked.
    grants_checked: HashSet<usize>,
    /// The primary waits for replicas' acknowledgements: a promoted server does too.
    semi_sync: bool,
    /// A server was promoted without semi-synchronous waits because no replica was left
    /// to acknowledge (every commit would have waited): turned on once one replicates.
    semi_sync_deferred: bool,
    /// Steps taken since start, by name.
    steps: std::sync::Mutex<BTreeMap<String, u64>>,
    /// A step happened since the topology was last published.
    stale: std::sync::atomic::AtomicBool,
}

/// A server's observation, or why it could not be made.
type Looked = Result<Observation, String>;

impl State {
    fn new(
        settings: Settings,
        master: Option<watch::Receiver<bool>>,
        events: EventSink,
        topology: watch::Sender<Topology>,
    ) -> State {
        let journal_path = Journal::path(&settings.state_dir, &settings.pool);
        let journal = Journal::load(&journal_path).unwrap_or_else(|problem| {
            error!(pool = %settings.pool, "failover journal unreadable, starting empty: {problem}");
            Journal::default()
        });
        for member in &settings.members {
            member
                .health
                .set_fenced(journal.fenced.contains(&member.name));
        }
        State {
            settings,
            master,
            master_gone: false,
            events,
            topology,
            journal,
            journal_path,
            primary: None,
            handled_failure: None,
            unconfirmed: None,
            rejoin_tried: HashSet::new(),
            lags: BTreeMap::new(),
            warned_split: false,
            grants_checked: HashSet::new(),
            semi_sync: false,
            semi_sync_deferred: false,
            stale: std::sync::atomic::AtomicBool::new(false),
            steps: std::sync::Mutex::default(),
        }
    }

    async fn run(
        mut self,
        mut health: broadcast::Receiver<HealthEvent>,
        mut requests: mpsc::Receiver<(Request, oneshot::Sender<Result<String, String>>)>,
    ) {
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = health.recv() => match event {
                    Ok(event) if event.pool != self.settings.pool => continue,
                    Ok(event) => {
                        if event.new != Status::Up {
                            self.forget_rejoin_attempt(&event.server);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = refresh.tick() => self.refresh().await,
                changed = changed(&mut self.master), if !self.master_gone => if !changed {
                    self.master_gone = true;
                },
                Some((request, reply)) = requests.recv() => {
                    let answer = self.serve(request).await;
                    let _ = reply.send(answer);
                }
            }
            self.react().await;
            if self.stale.swap(false, std::sync::atomic::Ordering::Relaxed) {
                self.refresh().await;
            }
        }
    }

    fn forget_rejoin_attempt(&mut self, server: &str) {
        if let Some(index) = self.index(server) {
            self.rejoin_tried.remove(&index);
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.settings.members.iter().position(|m| m.name == name)
    }

    fn member(&self, index: usize) -> &Member {
        &self.settings.members[index]
    }

    fn name(&self, index: usize) -> &str {
        &self.settings.members[index].name
    }

    fn local(&self) -> Option<usize> {
        self.index(self.settings.config.local.as_deref()?)
    }

    /// Whether this node acts on the pool now: always without VRRP, else while master.
    fn acting(&self) -> bool {
        match &self.master {
            None => true,
            Some(_) if self.master_gone => false,
            Some(master) => *master.borrow(),
        }
    }

    fn emit(&self, step: Step, server: Option<usize>, detail: impl Into<String>) {
        let event = FailoverEvent {
            at: SystemTime::now(),
            pool: self.settings.pool.clone(),
            step,
            server: server.map(|index| self.name(index).to_owned()),
            detail: detail.into(),
        };
        if step.needs_attention() {
            warn!("{event}");
        } else {
            info!("{event}");
        }
        *self
            .steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(step.as_str().to_owned())
            .or_default() += 1;
        (self.events)(event);
        self.stale.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn save_journal(&self) {
        if let Err(problem) = self.journal.store(&self.journal_path) {
            error!(pool = %self.settings.pool, "cannot write the failover journal: {problem}");
        }
    }

    fn set_fenced(&mut self, index: usize, fenced: bool) {
        self.member(index).health.set_fenced(fenced);
        let name = self.name(index).to_owned();
        let changed = if fenced {
            self.journal.fenced.insert(name)
        } else {
            self.journal.fenced.remove(&name)
        };
        if changed {
            self.save_journal();
        }
    }

    async fn open(&self, index: usize) -> Result<Session, String> {
        Session::open(
            self.member(index).address,
            &self.settings.admin,
            self.settings.connect_timeout,
            self.settings.timeout,
        )
        .await
    }

    async fn look(&self, index: usize) -> Looked {
        let started = Instant::now();
        let looked = async {
            let mut session = self.open(index).await?;
            let observation = session.observe().await;
            session.close().await;
            observation
        }
        .await;
        debug!(pool = %self.settings.pool, server = %self.name(index), took = ?started.elapsed(), ok = looked.is_ok(), "looked at server");
        looked
    }

    /// Looks at every server at once.
    async fn look_at_all(&self) -> Vec<Looked> {
        let looks = (0..self.settings.members.len()).map(|index| self.look(index));
        join_all(looks).await
    }
}

/// Waits for a change of `master`; pends forever without one. False once its sender is gone.
async fn changed(master: &mut Option<watch::Receiver<bool>>) -> bool {
    match master {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
