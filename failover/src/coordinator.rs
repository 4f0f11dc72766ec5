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

    /// Observes the pool: the topology for status, replica lags, and the primary.
    async fn refresh(&mut self) {
        let looked = self.look_at_all().await;
        // Writable servers relays could send writes to; the primary is the one of them that
        // replicates from nothing.
        let writable: Vec<usize> = (0..looked.len())
            .filter(|&index| {
                looked[index].as_ref().is_ok_and(|o| !o.read_only)
                    && !self.member(index).health.is_fenced()
            })
            .collect();
        let sources: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|&index| looked[index].as_ref().is_ok_and(|o| o.replica.is_none()))
            .collect();
        if let [only] = sources.as_slice()
            && self.primary != Some(*only)
        {
            info!(pool = %self.settings.pool, primary = %self.name(*only), "failover follows this primary");
            self.primary = Some(*only);
            self.handled_failure = None;
        }
        // Co-located, VRRP decides which server is the primary; each node fences its own.
        let front_tier = self.settings.config.local.is_none();
        match self.primary.filter(|primary| writable.contains(primary)) {
            // The one failover follows stays; any other leaves the write path (fenced: made
            // read-only and rejoined by the acting node).
            Some(primary) if front_tier => {
                for &other in writable.iter().filter(|&&index| index != primary) {
                    self.set_fenced(other, true);
                    self.rejoin_tried.remove(&other);
                    self.emit(
                        Step::Fenced,
                        Some(other),
                        format!(
                            "writable beside the primary {}: out of the write path, made \
                             read-only and rejoined by the acting node",
                            self.name(primary)
                        ),
                    );
                }
            }
            _ if writable.len() > 1 && !self.warned_split => {
                let names: Vec<&str> = writable.iter().map(|&i| self.name(i)).collect();
                self.emit(
                    Step::Problem,
                    None,
                    format!(
                        "{} servers are writable ({}): hafront changes nothing here; make all but \
                         one read-only",
                        names.len(),
                        names.join(", ")
                    ),
                );
                self.warned_split = true;
            }
            _ => {}
        }
        if writable.len() <= 1 {
            self.warned_split = false;
        }
        if let Some(primary) = self.primary
            && let Ok(observation) = &looked[primary]
        {
            if self.semi_sync_deferred && self.has_replica(primary, &looked) {
                self.resume_semi_sync(primary).await;
            } else if !self.semi_sync_deferred {
                self.semi_sync = observation.semi_sync_primary;
            }
        }
        let reachable: Vec<usize> = (0..looked.len()).filter(|&i| looked[i].is_ok()).collect();
        for index in reachable {
            if self.grants_checked.insert(index) {
                self.check_grants(index).await;
            }
        }
        for (index, look) in looked.iter().enumerate() {
            if let Ok(observation) = look {
                let lag = observation.replica.as_ref().and_then(|r| r.seconds_behind);
                self.lags.insert(index, lag);
            }
        }
        self.publish(&looked);
    }

    /// Says once per server when the failover's user lacks a privilege a step needs.
    async fn check_grants(&self, index: usize) {
        let missing = async {
            let mut session = self.open(index).await?;
            let missing = session.missing_privileges().await;
            session.close().await;
            missing
        }
        .await;
        match missing {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => self.emit(
                Step::Problem,
                Some(index),
                format!(
                    "user {} lacks {}: failover steps on this server will fail; run GRANT {} \
                     ON *.* TO the user",
                    self.settings.admin.user,
                    missing.join(", "),
                    missing.join(", ")
                ),
            ),
            Err(problem) => {
                warn!(pool = %self.settings.pool, server = %self.name(index), "cannot read the failover user's grants: {problem}")
            }
        }
    }

    /// Whether a server replicates from `primary` and receives.
    fn has_replica(&self, primary: usize, looked: &[Looked]) -> bool {
        let address = self.member(primary).address;
        looked.iter().flatten().any(|o| {
            o.replica
                .as_ref()
                .is_some_and(|r| r.replicates_from(address) && r.receiving())
        })
    }

    /// Turns semi-synchronous waits on at `primary` now that a replica acknowledges.
    async fn resume_semi_sync(&mut self, primary: usize) {
        let resumed = async {
            let mut session = self.open(primary).await?;
            session
                .execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
                .await?;
            session.close().await;
            Ok::<_, String>(())
        }
        .await;
        match resumed {
            Ok(()) => {
                self.semi_sync_deferred = false;
                info!(pool = %self.settings.pool, primary = %self.name(primary), "a replica follows the primary again: semi-synchronous replication on");
            }
            Err(problem) => {
                warn!(pool = %self.settings.pool, "cannot turn semi-synchronous replication on: {problem}")
            }
        }
    }

    fn publish(&self, looked: &[Looked]) {
        let servers = looked
            .iter()
            .enumerate()
            .map(|(index, look)| {
                let member = self.member(index);
                let mut view = ServerReplication {
                    name: member.name.clone(),
                    fenced: member.health.is_fenced(),
                    ..ServerReplication::default()
                };
                match look {
                    Ok(observation) => {
                        view.reachable = true;
                        view.read_only = Some(observation.read_only);
                        view.gtid_position = Some(observation.current_pos.to_string());
                        if let Some(replica) = &observation.replica {
                            view.replicates_from = Some(
                                self.settings
                                    .members
                                    .iter()
                                    .find(|m| replica.replicates_from(m.address))
                                    .map(|m| m.name.clone())
                                    .unwrap_or_else(|| {
                                        format!("{}:{}", replica.master_host, replica.master_port)
                                    }),
                            );
                            view.threads =
                                Some((replica.io_running.clone(), replica.sql_running.clone()));
                            view.lag_seconds = replica.seconds_behind;
                        }
                    }
                    Err(problem) => view.error = Some(problem.clone()),
                }
                view
            })
            .collect();
        let block = self.settings.config.block;
        self.topology.send_replace(Topology {
            primary: self.primary.map(|p| self.name(p).to_owned()),
            acting: self.acting(),
            blocked_until: self
                .journal
                .blocked_until(block, SystemTime::now())
                .map(journal::unix_seconds),
            last_failover: self.journal.last_failover.clone(),
            servers,
            steps: self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        });
    }

    /// Acts on what changed: a dead primary, a fenced server back, a VRRP transition.
    async fn react(&mut self) {
        if self.settings.config.local.is_some() {
            return self.react_co_located().await;
        }
        if !self.acting() {
            return;
        }
        if let Some(primary) = self.primary {
            let down = self.member(primary).health.status() == Status::Down;
            if down && self.handled_failure != Some(primary) {
                self.handled_failure = Some(primary);
                self.fail_over(primary, None).await;
            } else if down && self.unconfirmed == Some((primary, None)) {
                self.fail_over(primary, None).await;
            } else if !down && self.handled_failure == Some(primary) {
                // It answers again and nothing was changed: a new failure counts anew.
                self.handled_failure = None;
                self.unconfirmed = None;
            }
        }
        self.rejoin_fenced().await;
    }

    /// Co-located: MASTER makes the local server the primary, anything else fences it.
    async fn react_co_located(&mut self) {
        let Some(local) = self.local() else { return };
        if !self.acting() {
            self.handled_failure = None;
            if self.primary == Some(local) || !self.member(local).health.is_fenced() {
                self.fence_local(local).await;
            }
            return self.rejoin_fenced().await;
        }
        // A takeover that could not happen yet (replicas still hearing the primary, or the
        // local server not fit to take over) is tried again at every refresh.
        let again = self
            .unconfirmed
            .is_some_and(|(primary, only)| only == Some(local) && self.primary == Some(primary));
        if !again && (self.primary == Some(local) || self.handled_failure == Some(local)) {
            return;
        }
        self.handled_failure = Some(local);
        let own = self.look(local).await;
        if own.is_ok_and(|o| !o.read_only && o.replica.is_none())
            && !self.member(local).health.is_fenced()
        {
            self.primary = Some(local);
            self.unconfirmed = None;
            return;
        }
        let Some(primary) = self.primary else {
            let looked = self.look_at_all().await;
            return self.bootstrap(local, &looked).await;
        };
        // Decided by what answers, not by the health check (which a loaded host can fail):
        // a primary that answers is handed over as planned, nothing lost; one that does not
        // is failed over once its replicas confirm it.
        let looked = self.look_at_all().await;
        if looked[primary].is_err() {
            return self.fail_over(primary, Some(local)).await;
        }
        match self.switchover_target(primary, Some(local), &looked) {
            Ok(_) => {
                self.unconfirmed = None;
                let _ = self.switch_over(Some(local)).await;
            }
            Err(why) => {
                if !again {
                    self.emit(
                        Step::Refused,
                        Some(local),
                        format!(
                            "this node is VRRP master but {} cannot take over from {} yet: \
                             {why}; trying again every second",
                            self.name(local),
                            self.name(primary)
                        ),
                    );
                }
                self.unconfirmed = Some((primary, Some(local)));
            }
        }
    }

    /// No primary yet and this node is master: the local server becomes the primary if it
    /// is the one the others replicate from and nothing is writable (the pool as set up).
    async fn bootstrap(&mut self, local: usize, looked: &[Looked]) {
        let address = self.member(local).address;
        let source = looked.iter().enumerate().any(|(index, look)| {
            index != local
                && look.as_ref().is_ok_and(|o| {
                    o.replica
                        .as_ref()
                        .is_some_and(|r| r.replicates_from(address))
                })
        });
        let others_writable = looked
            .iter()
            .enumerate()
            .any(|(index, look)| index != local && look.as_ref().is_ok_and(|o| !o.read_only));
        let own = looked[local].as_ref().ok();
        if !source || others_writable || own.is_none_or(|o| o.replica.is_some()) {
            return self.emit(
                Step::Refused,
                Some(local),
                "this node became VRRP master but the local server is not the replication \
                 source of the pool (or another server is writable): it stays read-only",
            );
        }
        let promoted = async {
            let mut session = self.open(local).await?;
            session.execute("SET GLOBAL read_only = OFF").await?;
            session.close().await;
            Ok::<_, String>(())
        }
        .await;
        match promoted {
            Ok(()) => {
                self.primary = Some(local);
                self.member(local).health.set_role(Some(Role::Primary));
                self.emit(
                    Step::Promoted,
                    Some(local),
                    "the replication source of the pool, read-only at start, is writable now \
                     that this node is VRRP master",
                );
            }
            Err(problem) => self.emit(Step::Problem, Some(local), format!("promoting: {problem}")),
        }
    }

    /// Fences the local server when this node is not VRRP master (co-located).
    async fn fence_local(&mut self, local: usize) {
        let Ok(mut session) = self.open(local).await else {
            // Down: it restarts read-only from its options; fenced until it rejoins.
            self.set_fenced(local, true);
            return;
        };
        let observation = session.observe().await;
        if let Ok(observation) = &observation
            && observation.read_only
        {
            session.close().await;
            if self.primary == Some(local) {
                self.primary = None;
            }
            return;
        }
        self.set_fenced(local, true);
        match session.fence(Duration::ZERO).await {
            Ok(ended) => self.emit(
                Step::Fenced,
                Some(local),
                format!("this node is no VRRP master: read_only=ON, {ended} client sessions ended"),
            ),
            Err(problem) => self.emit(Step::Problem, Some(local), format!("fencing: {problem}")),
        }
        session.close().await;
        if self.primary == Some(local) {
            self.primary = None;
        }
    }

    /// The automatic failover of `primary`: confirmed by its replicas, the most advanced
    /// one (or `only`, co-located) promoted after applying what it received, the others
    /// re-pointed, the old primary fenced out of the write path.
    async fn fail_over(&mut self, primary: usize, only: Option<usize>) {
        let started = Instant::now();
        let config = self.settings.config.clone();
        // Asking again while the replicas still hear it: no new alert until something changes.
        let again = self.unconfirmed == Some((primary, only));
        if !again {
            self.emit(
                Step::Started,
                Some(primary),
                "primary down by its health check; asking its replicas",
            );
        }
        if let Some(until) = self.journal.blocked_until(config.block, SystemTime::now()) {
            let last = self.journal.last_failover.clone();
            self.emit(
                Step::Refused,
                Some(primary),
                format!(
                    "automatic failover is blocked until {} after the failover of {} to {}; \
                     acknowledge it with `hafront failover ack {}` to allow another",
                    humantime::format_rfc3339_seconds(until),
                    last.as_ref().map_or("?", |r| r.old_primary.as_str()),
                    last.as_ref().map_or("?", |r| r.new_primary.as_str()),
                    self.settings.pool
                ),
            );
            return;
        }
        let replicas = match self.confirm(primary).await {
            Ok(replicas) => {
                self.unconfirmed = None;
                replicas
            }
            Err(reason) => {
                // It may still die for everyone: asked again at every refresh while down.
                self.unconfirmed = Some((primary, only));
                if !again {
                    self.emit(
                        Step::Refused,
                        Some(primary),
                        format!("{reason}; asking again every second while it stays down"),
                    );
                }
                return;
            }
        };
        let names: Vec<&str> = replicas.iter().map(|(i, _)| self.name(*i)).collect();
        self.emit(
            Step::Confirmed,
            Some(primary),
            format!(
                "unreachable, and its replicas lost it too ({}) after {} ms",
                names.join(", "),
                started.elapsed().as_millis()
            ),
        );
        // Receive nothing more, all at once (each may wait on the gone primary): a primary
        // coming back cannot feed them meanwhile.
        let mut replicas = replicas;
        let stops = join_all(
            replicas
                .iter_mut()
                .map(|(index, session)| async move { (*index, session.stop_receiver().await) }),
        )
        .await;
        let mut failed = Vec::new();
        for (index, stopped) in stops {
            if let Err(problem) = stopped {
                self.emit(
                    Step::Problem,
                    Some(index),
                    format!("stopping the receiver: {problem}"),
                );
                failed.push(index);
            }
        }
        let mut sessions: Vec<(usize, Session)> = replicas
            .into_iter()
            .filter(|(index, _)| !failed.contains(index))
            .collect();
        match self
            .promote_best(primary, &mut sessions, only, started)
            .await
        {
            Ok(promoted) => {
                self.journal.last_failover = Some(Record {
                    at: journal::unix_seconds(SystemTime::now()),
                    old_primary: self.name(primary).to_owned(),
                    new_primary: self.name(promoted).to_owned(),
                    acknowledged: false,
                });
                self.set_fenced(primary, true);
                self.save_journal();
                for (index, session) in &mut sessions {
                    if *index != promoted {
                        self.repoint(*index, session, promoted).await;
                    }
                }
                self.emit(
                    Step::Fenced,
                    Some(primary),
                    "kept out of the write path while unreachable; it is fenced and rejoined \
                     when it returns",
                );
            }
            Err(refusal) => {
                for (_, session) in &mut sessions {
                    let _ = session.start_receiver().await;
                }
                self.emit(Step::Refused, Some(primary), refusal);
            }
        }
        for (_, session) in sessions {
            session.close().await;
        }
    }

    /// The primary is dead when hafront cannot log in to it and every reachable replica of
    /// it has stopped hearing from it (receiver down, or no event nor heartbeat for a few
    /// heartbeat periods). Returns sessions with those replicas.
    async fn confirm(&self, primary: usize) -> Result<Vec<(usize, Session)>, String> {
        let config = &self.settings.config;
        // A live primary heartbeats its replicas every period: one that heard nothing for
        // two and a half periods lost it. The second look happens then, and the primary's
        // login gets until then too.
        let second_look = Instant::now() + (config.heartbeat * 5 / 2).min(config.confirm_timeout);
        let address = self.member(primary).address;
        let primary_login = Session::open(
            address,
            &self.settings.admin,
            config.confirm_timeout,
            self.settings.timeout,
        );
        let first_looks = join_all(
            (0..self.settings.members.len())
                .filter(|&index| index != primary)
                .map(|index| async move {
                    let mut session = self.open(index).await.ok()?;
                    let observation = session.observe().await.ok()?;
                    let replica = observation.replica.filter(|r| r.replicates_from(address))?;
                    Some((index, session, replica))
                }),
        );
        let (login, first_looks) = tokio::join!(
            tokio::time::timeout_at(second_look.into(), primary_login),
            first_looks
        );
        if let Ok(Ok(session)) = login {
            session.close().await;
            return Err(
                "hafront's administrative login to the primary works: its health check \
                        failed but the server answers; no failover"
                    .to_owned(),
            );
        }
        let mut replicas: Vec<(usize, Session, _)> = first_looks.into_iter().flatten().collect();
        if replicas.is_empty() {
            return Err(format!(
                "no replica of {} could be reached to confirm that it is dead; no failover",
                self.name(primary)
            ));
        }
        // Those still connected must show silence for a few heartbeats.
        if replicas.iter().any(|(_, _, replica)| replica.receiving()) {
            tokio::time::sleep_until(second_look.into()).await;
        }
        let mut hearing = Vec::new();
        for (index, session, first) in &mut replicas {
            if !first.receiving() {
                continue;
            }
            match session.observe().await {
                Ok(Observation {
                    replica: Some(now), ..
                }) if now.heard_since(first) => {
                    hearing.push(self.name(*index).to_owned());
                }
                _ => {}
            }
        }
        if !hearing.is_empty() {
            for (_, session, _) in replicas {
                session.close().await;
            }
            return Err(format!(
                "its replicas still receive from it ({}): only hafront lost it; no failover",
                hearing.join(", ")
            ));
        }
        Ok(replicas.into_iter().map(|(i, s, _)| (i, s)).collect())
    }

    /// Picks the replica that received the most, lets it apply its relay log (bounded),
    /// and promotes it. `only` restricts the choice (co-located: the local server).
    async fn promote_best(
        &mut self,
        primary: usize,
        sessions: &mut [(usize, Session)],
        only: Option<usize>,
        started: Instant,
    ) -> Result<usize, String> {
        let config = self.settings.config.clone();
        let mut received = Vec::new();
        let others = sessions.len() > 1;
        let mut unfit = Vec::new();
        for (index, session) in sessions.iter_mut() {
            match session.observe().await {
                Ok(Observation {
                    replica: Some(replica),
                    log_slave_updates,
                    ..
                }) => {
                    if others && !log_slave_updates {
                        // Its binary log lacks what it replicated: the others could not
                        // follow it.
                        unfit.push(*index);
                    }
                    received.push((*index, replica.received(), replica.seconds_behind));
                }
                Ok(_) => {}
                Err(problem) => self.emit(
                    Step::Problem,
                    Some(*index),
                    format!("reading its position: {problem}"),
                ),
            }
        }
        let contenders: Vec<Contender> = received
            .iter()
            .map(|(index, position, _)| Contender {
                name: self.name(*index),
                received: position,
                promotable: self.member(*index).promotable
                    && only.is_none_or(|o| o == *index)
                    && !unfit.contains(index),
            })
            .collect();
        let chosen = decide::choose(&contenders).map_err(|refusal| {
            if unfit.is_empty() {
                return refusal;
            }
            let names: Vec<&str> = unfit.iter().map(|&i| self.name(i)).collect();
            format!(
                "{refusal} ({} cannot serve the other replicas: log_slave_updates is off)",
                names.join(", ")
            )
        })?;
        let chosen = chosen.to_owned();
        let chosen = self.index(&chosen).expect("a member");
        let (_, position, lag_now) = received
            .iter()
            .find(|(index, _, _)| *index == chosen)
            .expect("chosen among them");
        let position = position.clone();
        // The lag seen before the failure: once the receiver stops MariaDB reports none.
        let lag = self.lags.get(&chosen).copied().flatten().or(*lag_now);
        if let Some(lag) = lag.filter(|&lag| Duration::from_secs(lag) > config.max_lag) {
            return Err(format!(
                "{} is the most advanced replica but lagged {lag}s behind the primary, more \
                 than max_lag {}: not promoted, clients get errors until an operator decides",
                self.name(chosen),
                humantime::format_duration(config.max_lag)
            ));
        }
        // Semi-synchronous only with a replica left to acknowledge; else every commit
        // would wait (rpl_semi_sync_master_timeout) until one rejoins.
        let semi_sync = self.semi_sync && sessions.len() > 1;
        let session = &mut sessions
            .iter_mut()
            .find(|(index, _)| *index == chosen)
            .expect("chosen among them")
            .1;
        if !session
            .wait_applied(&position, config.catch_up_timeout)
            .await?
        {
            return Err(format!(
                "{} did not apply the relay log it received (up to {position}) within {}: not \
                 promoted, clients get errors until an operator decides",
                self.name(chosen),
                humantime::format_duration(config.catch_up_timeout)
            ));
        }
        session
            .promote(semi_sync)
            .await
            .map_err(|problem| format!("promoting {} failed: {problem}", self.name(chosen)))?;
        let promoted_at = session.observe().await.map(|o| o.current_pos)?;
        let name = self.name(chosen).to_owned();
        self.semi_sync_deferred = self.semi_sync && !semi_sync;
        self.journal.promoted(&name, promoted_at.to_string());
        self.member(chosen).health.set_role(Some(Role::Primary));
        self.set_fenced(chosen, false);
        self.primary = Some(chosen);
        self.handled_failure = None;
        self.emit(
            Step::Promoted,
            Some(chosen),
            format!(
                "new primary of {} at {promoted_at}, {} ms after the failover started",
                self.name(primary),
                started.elapsed().as_millis()
            ),
        );
        Ok(chosen)
    }

    async fn repoint(&self, index: usize, session: &mut Session, primary: usize) {
        let config = &self.settings.config;
        let address = self.member(primary).address;
        match session
            .replicate_from(address, config.heartbeat, None, false)
            .await
        {
            Ok(()) => self.emit(
                Step::Repointed,
                Some(index),
                format!(
                    "replicates from {} ({address}) with GTID",
                    self.name(primary)
                ),
            ),
            Err(problem) => self.emit(
                Step::Problem,
                Some(index),
                format!(
                    "could not be re-pointed to {}: {problem}",
                    self.name(primary)
                ),
            ),
        }
    }

    /// Fenced servers that answer again are made read-only and, with `auto_rejoin`,
    /// replicas of the primary when they hold nothing it lacks.
    async fn rejoin_fenced(&mut self) {
        let Some(primary) = self.primary else { return };
        let fenced: Vec<usize> = (0..self.settings.members.len())
            .filter(|&index| {
                index != primary
                    && self.member(index).health.is_fenced()
                    && !self.rejoin_tried.contains(&index)
                    && self
                        .settings
                        .config
                        .local
                        .as_deref()
                        .is_none_or(|l| l == self.name(index))
            })
            .collect();
        for index in fenced {
            let Ok(mut session) = self.open(index).await else {
                continue;
            };
            self.rejoin_tried.insert(index);
            if let Err(problem) = self.rejoin(index, &mut session, primary).await {
                self.emit(Step::Refused, Some(index), problem);
            }
            session.close().await;
        }
    }

    async fn rejoin(
        &mut self,
        index: usize,
        session: &mut Session,
        primary: usize,
    ) -> Result<(), String> {
        let config = self.settings.config.clone();
        let observation = session.observe().await?;
        if !observation.read_only || observation.replica.is_none() {
            let ended = session.fence(Duration::ZERO).await?;
            self.emit(
                Step::Fenced,
                Some(index),
                format!("former primary back: read_only=ON, {ended} client sessions ended"),
            );
        }
        if !config.auto_rejoin {
            return Err(format!(
                "stays read-only and out of the write path: auto_rejoin is off; make it a \
                 replica of {} by hand, then `hafront enable`",
                self.name(primary)
            ));
        }
        let address = self.member(primary).address;
        if observation
            .replica
            .as_ref()
            .is_some_and(|r| r.replicates_from(address) && r.receiving())
        {
            self.member(index).health.set_role(Some(Role::Replica));
            self.set_fenced(index, false);
            return Ok(());
        }
        let promoted_at: GtidPosition = match self.journal.promotion_of(self.name(primary)) {
            Some(position) => position.parse().map_err(|e| format!("journal: {e}"))?,
            None => observation.binlog_pos.clone(),
        };
        decide::may_rejoin(&observation.binlog_pos, &promoted_at).map_err(|why| {
            format!(
                "not rejoined: {why}. It stays read-only and out of the write path; re-clone \
                 it from {}",
                self.name(primary)
            )
        })?;
        session
            .replicate_from(
                address,
                config.heartbeat,
                Some(&self.settings.replication),
                true,
            )
            .await?;
        let deadline = Instant::now() + REJOIN_CONNECT_TIMEOUT;
        loop {
            let replica = session.observe().await?.replica;
            match replica {
                Some(r) if r.receiving() => break,
                Some(r) if r.last_io_errno == ER_GTID_NOT_IN_BINLOG => {
                    let _ = session.stop_replication().await;
                    return Err(format!(
                        "not rejoined: {} refuses its position ({}). It stays read-only and \
                         out of the write path; re-clone it",
                        self.name(primary),
                        r.last_io_error
                    ));
                }
                _ if Instant::now() >= deadline => {
                    return Err(format!(
                        "replication from {} did not connect within {}s",
                        self.name(primary),
                        REJOIN_CONNECT_TIMEOUT.as_secs()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // Read-only now: no relay may take it for a primary before its next check says so.
        self.member(index).health.set_role(Some(Role::Replica));
        self.set_fenced(index, false);
        self.emit(
            Step::Rejoined,
            Some(index),
            format!(
                "replicates from {} with GTID, read-only",
                self.name(primary)
            ),
        );
        Ok(())
    }

    async fn serve(&mut self, request: Request) -> Result<String, String> {
        match request {
            Request::Acknowledge => {
                let Some(record) = self.journal.last_failover.as_mut() else {
                    return Ok("no failover to acknowledge".to_owned());
                };
                if record.acknowledged {
                    return Ok("the last failover was already acknowledged".to_owned());
                }
                record.acknowledged = true;
                // A failure refused inside the window is acted on now.
                self.handled_failure = None;
                let text = format!(
                    "failover of {} to {} acknowledged: automatic failover is armed again",
                    record.old_primary, record.new_primary
                );
                self.save_journal();
                self.emit(Step::Acknowledged, None, text.clone());
                Ok(text)
            }
            Request::Switchover { to } => {
                if !self.acting() {
                    return Err(format!(
                        "this node does not act on pool {}: VRRP instance {} is not MASTER here",
                        self.settings.pool,
                        self.settings.config.vrrp.as_deref().unwrap_or("?")
                    ));
                }
                let to = match to {
                    Some(name) => Some(self.index(&name).ok_or_else(|| {
                        format!("pool {} has no server {name:?}", self.settings.pool)
                    })?),
                    None => None,
                };
                if self.local().is_some() {
                    self.hand_over(to).await
                } else {
                    self.switch_over(to).await
                }
            }
        }
    }

    /// The server a switchover from `primary` promotes: `to`, or the replica with the least
    /// lag; it must replicate from `primary`, both threads running, within `max_lag`.
    fn switchover_target(
        &self,
        primary: usize,
        to: Option<usize>,
        looked: &[Looked],
    ) -> Result<usize, String> {
        let address = self.member(primary).address;
        let max_lag = self.settings.config.max_lag;
        let eligible = |index: usize| -> Result<u64, String> {
            let name = self.name(index);
            if index == primary {
                return Err(format!("{name} is the primary already"));
            }
            if !self.member(index).promotable {
                return Err(format!("{name} is not a failover candidate"));
            }
            let replica = looked[index]
                .as_ref()
                .map_err(|e| format!("{name} cannot be reached: {e}"))?
                .replica
                .as_ref()
                .filter(|r| r.replicates_from(address))
                .ok_or_else(|| format!("{name} does not replicate from {}", self.name(primary)))?;
            if !replica.receiving() || replica.sql_running != "Yes" {
                return Err(format!("{name}'s replication is not running"));
            }
            let lag = replica.seconds_behind.unwrap_or(u64::MAX);
            if Duration::from_secs(lag) > max_lag {
                return Err(format!("{name} lags {lag}s, more than max_lag"));
            }
            Ok(lag)
        };
        match to {
            Some(target) => eligible(target).map(|_| target),
            None => (0..self.settings.members.len())
                .filter_map(|index| eligible(index).ok().map(|lag| (lag, index)))
                .min()
                .map(|(_, index)| index)
                .ok_or_else(|| "no replica is fit to take over".to_owned()),
        }
    }

    /// Co-located switchover: this node hands the VIP over; the target's node, master then,
    /// takes the primary role over as a planned switchover (this node fences its server as
    /// backup). Answers once the target is writable.
    async fn hand_over(&mut self, to: Option<usize>) -> Result<String, String> {
        let started = Instant::now();
        let local = self.local().expect("co-located");
        if self.primary != Some(local) {
            return Err(format!(
                "the primary is not this node's server {}: run the switchover on the node \
                 that holds the primary",
                self.name(local)
            ));
        }
        let looked = self.look_at_all().await;
        let target = self.switchover_target(local, to, &looked)?;
        let handover = self
            .settings
            .handover
            .clone()
            .ok_or("co-located failover without a VRRP instance to hand over")?;
        self.emit(
            Step::SwitchoverStarted,
            Some(target),
            format!(
                "planned switchover from {} to {}: handing the VIP over; the node that takes it \
                 promotes its server",
                self.name(local),
                self.name(target)
            ),
        );
        self.handled_failure = Some(local);
        handover();
        let deadline = started + self.settings.config.catch_up_timeout + HANDOVER_GRACE;
        loop {
            if let Ok(observation) = self.look(target).await
                && !observation.read_only
                && observation.replica.is_none()
            {
                return Ok(format!(
                    "switched over from {} to {} in {} ms (the VIP moved with it)",
                    self.name(local),
                    self.name(target),
                    started.elapsed().as_millis()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the VIP was handed over but {} is not writable after {} s: see the other \
                     node's log",
                    self.name(target),
                    started.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The planned switchover: the primary made read-only (its writes finish or end, bounded),
    /// the target reaches the primary's position, is promoted, and the old primary and the
    /// other replicas replicate from it. Undone if the target cannot catch up.
    async fn switch_over(&mut self, to: Option<usize>) -> Result<String, String> {
        let started = Instant::now();
        let config = self.settings.config.clone();
        let primary = self
            .primary
            .ok_or_else(|| "no primary is known in this pool".to_owned())?;
        let looked = self.look_at_all().await;
        let target = self.switchover_target(primary, to, &looked)?;
        self.emit(
            Step::SwitchoverStarted,
            Some(target),
            format!(
                "planned switchover from {} to {}",
                self.name(primary),
                self.name(target)
            ),
        );
        let mut old = self.open(primary).await?;
        let mut new = self.open(target).await?;
        // No new client reaches the old primary through hafront from here on.
        self.member(primary).health.set_fenced(true);
        let fenced = async {
            let ended = old.fence(config.write_drain).await?;
            let readers = old.end_client_sessions().await?;
            let position = old.observe().await?.binlog_pos;
            Ok::<_, String>((ended + readers, position))
        }
        .await;
        let undo = async |old: &mut Session, why: String| {
            let _ = old.execute("SET GLOBAL read_only = OFF").await;
            why
        };
        let (ended, position) = match fenced {
            Ok(done) => done,
            Err(problem) => {
                let why = undo(&mut old, format!("switchover abandoned: {problem}")).await;
                self.member(primary).health.set_fenced(false);
                self.emit(Step::Refused, Some(target), why.clone());
                return Err(why);
            }
        };
        match new.wait_for(&position, config.catch_up_timeout).await {
            Ok(true) => {}
            other => {
                let why = format!(
                    "switchover abandoned: {} did not reach {position} within {}{}; {} is \
                     writable again",
                    self.name(target),
                    humantime::format_duration(config.catch_up_timeout),
                    other.err().map(|e| format!(" ({e})")).unwrap_or_default(),
                    self.name(primary)
                );
                let why = undo(&mut old, why).await;
                self.member(primary).health.set_fenced(false);
                self.emit(Step::Refused, Some(target), why.clone());
                return Err(why);
            }
        }
        let semi_sync = looked[primary]
            .as_ref()
            .map_or(self.semi_sync, |o| o.semi_sync_primary);
        new.promote(semi_sync)
            .await
            .map_err(|problem| format!("promoting {}: {problem}", self.name(target)))?;
        self.member(target).health.set_role(Some(Role::Primary));
        let name = self.name(target).to_owned();
        self.journal.promoted(&name, position.to_string());
        self.save_journal();
        self.primary = Some(target);
        self.handled_failure = None;
        self.emit(
            Step::Promoted,
            Some(target),
            format!(
                "writable at {position}, {} ms into the switchover ({ended} sessions ended on {})",
                started.elapsed().as_millis(),
                self.name(primary)
            ),
        );
        let others: Vec<usize> = (0..self.settings.members.len())
            .filter(|&index| index != primary && index != target && looked[index].is_ok())
            .collect();
        for index in others {
            if let Ok(mut session) = self.open(index).await {
                self.repoint(index, &mut session, target).await;
                session.close().await;
            }
        }
        let target_address = self.member(target).address;
        match old
            .replicate_from(
                target_address,
                config.heartbeat,
                Some(&self.settings.replication),
                true,
            )
            .await
        {
            Ok(()) => {
                self.member(primary).health.set_role(Some(Role::Replica));
                self.member(primary).health.set_fenced(false);
                self.emit(
                    Step::Repointed,
                    Some(primary),
                    format!("former primary replicates from {}", self.name(target)),
                );
            }
            Err(problem) => {
                self.set_fenced(primary, true);
                self.emit(
                    Step::Problem,
                    Some(primary),
                    format!("former primary stays read-only, not replicating: {problem}"),
                );
            }
        }
        old.close().await;
        new.close().await;
        let text = format!(
            "switched over from {} to {} in {} ms",
            self.name(primary),
            self.name(target),
            started.elapsed().as_millis()
        );
        self.emit(Step::SwitchedOver, Some(target), text.clone());
        Ok(text)
    }
}

/// Waits for a change of `master`; pends forever without one. False once its sender is gone.
async fn changed(master: &mut Option<watch::Receiver<bool>>) -> bool {
    match master {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
