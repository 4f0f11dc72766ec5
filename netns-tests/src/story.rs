//! The whole story of issue 7, shared by `demo/run.sh` (narrated, through the `hafront-demo`
//! binary) and `tests/story.rs` / `tests/reliability.rs` (asserted): a MariaDB pair in
//! semi-synchronous replication with hafront co-located on both hosts (the VIP on the
//! writable primary), a client writing sequence numbers through the VIP, a local SMTP sink;
//! and a two-node front tier relaying to the pair, one server behind an encrypted link.
//!
//! The hafront configurations and the event-log hook are the demo's own files in `demo/`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::etcd::EtcdCluster;
use crate::mariadb::{
    ADMIN_PASSWORD, APP_PASSWORD, APP_USER, CHECK_PASSWORD, LabMariaDb, MYSQL_PORT,
    REPLICATION_PASSWORD,
};
use crate::{Hafront, Lab, NodeProcess, Service, VIP, VipLog, VipWatch, wait_until};

/// The advert interval of every scenario (VRRPv3, centiseconds).
pub const ADVERT_INTERVAL: Duration = Duration::from_millis(100);
/// The switch's address: the client, the SMTP sink and the uplink service live there.
pub const SWITCH: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 254);
/// The SMTP sink's port on [`SWITCH`].
pub const SMTP_PORT: u16 = 2525;
/// The uplink service's port on [`SWITCH`] (what the database nodes track).
pub const UPLINK_PORT: u16 = 7001;
/// How long a started pair may take to elect and promote its first primary.
const SETTLE: Duration = Duration::from_secs(10);

/// The checkout's `demo/` directory (configuration templates, event hook, SMTP sink).
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("demo")
}

/// Prints the steps of a scenario in plain words, or nothing (tests).
#[derive(Debug, Clone, Copy)]
pub struct Narrator {
    enabled: bool,
    started: Instant,
}

impl Narrator {
    /// A narrator that prints when `enabled`.
    pub fn new(enabled: bool) -> Narrator {
        Narrator {
            enabled,
            started: Instant::now(),
        }
    }

    /// Tells one step, prefixed with the seconds since the start.
    pub fn say(&self, text: &str) {
        if self.enabled {
            println!("[{:6.2}s] {text}", self.started.elapsed().as_secs_f64());
        }
    }
}

/// Converts monotonic instants to wall-clock times (the event hook logs Unix time).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    /// Pairs now's instant and wall-clock time.
    pub fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `at` as wall-clock time.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall - (self.instant - at),
        }
    }
}

/// Fills the `@NAME@` fields of a template in `demo/`.
pub fn render(template: &str, fields: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(demo_dir().join(template))
        .unwrap_or_else(|error| panic!("demo/{template}: {error}"));
    for (name, value) in fields {
        text = text.replace(&format!("@{name}@"), value);
    }
    let unfilled = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find(|line| {
            line.split('@').skip(1).step_by(2).any(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
        });
    assert!(
        unfilled.is_none(),
        "unfilled field in demo/{template}: {unfilled:?}"
    );
    text
}

/// Held while a scenario runs: scenarios with MariaDB pairs take turns, even across test
/// processes (nextest), so their failover timings do not measure each other's CPU load.
pub struct ScenarioLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl ScenarioLock {
    /// Waits for the other scenarios to finish.
    pub fn acquire() -> ScenarioLock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("hafront-netns-scenario.lock"))
            .expect("open the scenario lock file");
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .expect("lock the scenario lock file");
        ScenarioLock { _lock: lock }
    }
}

/// Writes a secret file only its owner can read (created so, never readable by others).
pub(crate) fn write_secret(path: &Path, contents: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .expect("create secret file");
    std::io::Write::write_all(&mut file, contents).expect("write secret");
}

/// `demo/smtp-sink.py` in the switch namespace: every mail becomes a file.
pub struct SmtpSink {
    process: Option<NodeProcess>,
    namespace: String,
    dir: PathBuf,
}

impl SmtpSink {
    /// Starts the sink in `namespace` on [`SWITCH`]:[`SMTP_PORT`], storing mails in `dir`.
    pub fn start(namespace: &str, dir: PathBuf) -> SmtpSink {
        std::fs::create_dir_all(&dir).expect("mail directory");
        let mut sink = SmtpSink {
            process: None,
            namespace: namespace.to_owned(),
            dir,
        };
        sink.resume();
        sink
    }

    /// Stops the sink (mail servers go down too).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Starts the stopped sink again.
    pub fn resume(&mut self) {
        let listen = format!("{SWITCH}:{SMTP_PORT}");
        let script = demo_dir().join("smtp-sink.py");
        let dir = self.dir.to_str().expect("UTF-8 path").to_owned();
        let process = NodeProcess::spawn(
            &self.namespace,
            Path::new("/usr/bin/python3"),
            &[
                script.to_str().expect("UTF-8 path"),
                "--listen",
                &listen,
                "--dir",
                &dir,
            ],
            self.dir.join(format!("sink-{}.log", unix_now())),
        );
        assert!(
            wait_until(Duration::from_secs(10), || process
                .log()
                .contains("listening")),
            "SMTP sink did not start:\n{}",
            process.log()
        );
        self.process = Some(process);
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect()
    }
}

fn unix_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// The VRRP transitions (`OLD -> NEW`) listed in the mails from node `node`, in order.
pub fn mailed_transitions(mails: &[String], node: &str) -> Vec<String> {
    let sender = format!("hafront@{node}.example.com");
    mails
        .iter()
        .filter(|mail| {
            mail.lines()
                .any(|line| line.starts_with("From:") && line.contains(&sender))
        })
        .flat_map(|mail| {
            // The body lists every event once; the subject repeats the headline.
            let body = mail.split_once("\n\n").map_or("", |(_, body)| body);
            body.lines()
                .filter_map(|line| line.split_once("VRRP instance vip ").map(|(_, rest)| rest))
                .map(|rest| rest.split(" (").next().unwrap_or(rest).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One line of the event hooks' shared log.
#[derive(Debug, Clone)]
pub struct NodeEvent {
    /// When it was logged.
    pub at: SystemTime,
    /// The node (`n1`, ...).
    pub node: String,
    /// What happened (`notified MASTER`, `promoted: read_only=OFF`, ...).
    pub what: String,
}

/// Reads the event hooks' log.
pub fn node_events(path: &Path) -> Vec<NodeEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            let seconds: f64 = fields.next()?.parse().ok()?;
            Some(NodeEvent {
                at: UNIX_EPOCH + Duration::from_secs_f64(seconds),
                node: fields.next()?.to_owned(),
                what: fields.next()?.to_owned(),
            })
        })
        .collect()
}

/// The states node `node` was notified of, in order.
pub fn notified_states(events: &[NodeEvent], node: &str) -> Vec<String> {
    notified(events, node).map(|(state, _)| state).collect()
}

/// The states node `node` was notified of that deserve a mail: all but starting as backup.
pub fn mail_worthy_states(events: &[NodeEvent], node: &str) -> Vec<String> {
    notified(events, node)
        .filter(|(state, old)| !(state == "BACKUP" && old == "INIT"))
        .map(|(state, _)| state)
        .collect()
}

/// (new state, old state) of each VRRP notification of `node`.
fn notified<'a>(
    events: &'a [NodeEvent],
    node: &'a str,
) -> impl Iterator<Item = (String, String)> + 'a {
    events
        .iter()
        .filter(move |event| event.node == node)
        .filter_map(|event| {
            let rest = event.what.strip_prefix("notified ")?;
            let (state, old) = rest.split_once(" from ").unwrap_or((rest, ""));
            Some((state.to_owned(), old.to_owned()))
        })
}

/// One write the client tried.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it started.
    pub at: Instant,
    /// The sequence number written.
    pub id: u64,
    /// Whether the server acknowledged it (and the read after it saw it).
    pub acked: bool,
}

/// A client in a namespace that INSERTs sequence numbers through an address, reads each
/// back, and remembers which ones were acknowledged.
pub struct Writer {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    thread: Option<JoinHandle<()>>,
}

/// Longest wait for a statement: a dead server must not stall the client for longer than
/// the failover it measures.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest wait for a connection (login included, slower on a loaded machine).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between writes.
const WRITE_INTERVAL: Duration = Duration::from_millis(5);

impl Writer {
    /// Starts writing to `demo.seq` at `target` from `namespace`.
    pub fn start(namespace: &str, target: SocketAddr) -> Writer {
        let path = PathBuf::from("/run/netns").join(namespace);
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (stopping, log) = (Arc::clone(&stop), Arc::clone(&attempts));
        let thread = std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).expect("open namespace");
            nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            runtime.block_on(write_loop(target, stopping, log));
        });
        Writer {
            stop,
            attempts,
            thread: Some(thread),
        }
    }

    /// How many writes were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.attempts
            .lock()
            .expect("attempts")
            .iter()
            .filter(|a| a.acked)
            .count()
    }

    /// Waits up to `within` for `count` more acknowledged writes; returns whether they came.
    pub fn wait_for_acks(&self, count: usize, within: Duration) -> bool {
        let target = self.acked() + count;
        wait_until(within, || self.acked() >= target)
    }

    /// Stops writing and returns every attempt.
    pub fn finish(mut self) -> WriteLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client thread");
        }
        let attempts = std::mem::take(&mut *self.attempts.lock().expect("attempts"));
        WriteLog { attempts }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn write_loop(target: SocketAddr, stop: Arc<AtomicBool>, attempts: Arc<Mutex<Vec<Attempt>>>) {
    let opts = OptsBuilder::default()
        .ip_or_hostname(target.ip().to_string())
        .tcp_port(target.port())
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        .db_name(Some("demo"))
        .prefer_socket(false);
    let mut conn: Option<Conn> = None;
    let mut id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        let at = Instant::now();
        let acked = write_one(&opts, &mut conn, id).await;
        if !acked {
            conn = None;
        }
        attempts
            .lock()
            .expect("attempts")
            .push(Attempt { at, id, acked });
        tokio::time::sleep(WRITE_INTERVAL).await;
    }
}

/// Writes `id` and reads it back; a connection that failed is dropped by the caller.
async fn write_one(opts: &OptsBuilder, conn: &mut Option<Conn>, id: u64) -> bool {
    if conn.is_none() {
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts.clone())).await {
            Ok(Ok(fresh)) => *conn = Some(fresh),
            _ => return false,
        }
    }
    let Some(connection) = conn.as_mut() else {
        return false;
    };
    let write = connection.exec_drop("INSERT INTO seq (id) VALUES (?)", (id,));
    if !matches!(
        tokio::time::timeout(CLIENT_TIMEOUT, write).await,
        Ok(Ok(()))
    ) {
        return false;
    }
    let read = connection.exec_first::<u64, _, _>("SELECT id FROM seq WHERE id = ?", (id,));
    matches!(tokio::time::timeout(CLIENT_TIMEOUT, read).await, Ok(Ok(Some(read))) if read == id)
}

/// What a [`Writer`] did.
#[derive(Debug, Clone)]
pub struct WriteLog {
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl WriteLog {
    /// The acknowledged sequence numbers.
    pub fn acked(&self) -> Vec<u64> {
        self.attempts
            .iter()
            .filter(|a| a.acked)
            .map(|a| a.id)
            .collect()
    }

    /// Acknowledged numbers missing from `stored` (the new primary's rows).
    pub fn lost(&self, stored: &[u64]) -> Vec<u64> {
        self.acked()
            .into_iter()
            .filter(|id| stored.binary_search(id).is_err())
            .collect()
    }

    /// The longest time without an acknowledged write after `from`: from the last ack
    /// before a gap (or `from`) to the next ack.
    pub fn longest_outage_after(&self, from: Instant) -> Duration {
        let mut last = from;
        let mut longest = Duration::ZERO;
        for attempt in self.attempts.iter().filter(|a| a.at >= from && a.acked) {
            longest = longest.max(attempt.at - last);
            last = attempt.at;
        }
        longest
    }

    /// The first acknowledged write at or after `from`.
    pub fn first_ack_after(&self, from: Instant) -> Option<Instant> {
        self.attempts
            .iter()
            .find(|a| a.at >= from && a.acked)
            .map(|a| a.at)
    }

    /// The last acknowledged write before `until`.
    pub fn last_ack_before(&self, until: Instant) -> Option<Instant> {
        self.attempts
            .iter()
            .rev()
            .find(|a| a.at < until && a.acked)
            .map(|a| a.at)
    }
}

/// The co-located pair: n1 (primary, priority 150) and n2 (replica, priority 100), each a
/// MariaDB with hafront beside it; the client, SMTP sink and uplink service on the switch.
pub struct MysqlPair {
    /// hafront on n1 and n2 (`None` once killed by a scenario).
    pub hafronts: [Option<Hafront>; 2],
    /// The MariaDB servers of n1 and n2.
    pub servers: [LabMariaDb; 2],
    /// The SMTP sink.
    pub smtp: SmtpSink,
    /// The event hooks' log.
    pub events: PathBuf,
    /// Pairs instants with the event log's wall-clock times.
    pub clock: Clock,
    narrator: Narrator,
    bodies: [String; 2],
    _uplink: Service,
    /// With a quorum: the etcd members on n3, n4 and n5.
    pub etcd: Option<EtcdCluster>,
    // Last: the namespaces go after everything running in them.
    /// The namespaces.
    pub lab: Lab,
    _turn: ScenarioLock,
}

/// The lab nodes of the etcd members of [`MysqlPair::start_with_quorum`].
pub const ETCD_NODES: [usize; 3] = [3, 4, 5];

impl MysqlPair {
    /// Builds the lab, the replicating pair and both hafront daemons; returns once n1 holds
    /// the VIP, is writable, and n2 is its backup.
    pub fn start(test: &str, narrator: Narrator) -> MysqlPair {
        MysqlPair::start_with(test, narrator, false)
    }

    /// [`MysqlPair::start`] with a three-member etcd cluster on n3–n5 and a `quorum`
    /// section (TTL 2 s) in both nodes' configurations.
    pub fn start_with_quorum(test: &str, narrator: Narrator) -> MysqlPair {
        MysqlPair::start_with(test, narrator, true)
    }

    fn start_with(test: &str, narrator: Narrator, quorum: bool) -> MysqlPair {
        let turn = ScenarioLock::acquire();
        let lab = Lab::new(test, if quorum { 5 } else { 2 });
        let etcd = quorum.then(|| EtcdCluster::start(&lab, &ETCD_NODES));
        let quorum_section = etcd
            .as_ref()
            .map(|etcd| {
                format!(
                    "quorum:\n  endpoints: [{}]\n  ttl: 2s\n",
                    etcd.endpoints().join(", ")
                )
            })
            .unwrap_or_default();
        let uplink = Service::start(
            lab.switch(),
            SocketAddr::from((SWITCH, UPLINK_PORT)),
            "ok".into(),
        );
        let smtp = SmtpSink::start(lab.switch(), lab.dir().join("mail"));
        narrator.say(&format!("SMTP sink listening on {SWITCH}:{SMTP_PORT}"));

        narrator.say("starting MariaDB on db-host n1 (10.213.0.1) and n2 (10.213.0.2), both read_only=1 from their options");
        let (n1, n2) = (lab.node(1).to_owned(), lab.node(2).to_owned());
        let primary = std::thread::spawn(move || LabMariaDb::start(&n1, 1, "0.0.0.0"));
        let replica = LabMariaDb::start(&n2, 2, "0.0.0.0");
        let primary = primary.join().expect("MariaDB n1");
        primary.create_schema();
        replica.replicate_from(&Lab::address(1).to_string(), MYSQL_PORT);
        primary.enable_semi_sync_primary();
        assert!(
            wait_until(Duration::from_secs(10), || primary.semi_sync_clients() == 1),
            "the replica never acknowledged semi-synchronously"
        );
        narrator.say("n2 replicates from n1 semi-synchronously (AFTER_SYNC): a commit is acknowledged only once n2 has it");

        let password_file = lab.dir().join("mysql-check.pass");
        write_secret(&password_file, CHECK_PASSWORD.as_bytes());
        let admin_file = lab.dir().join("admin.pass");
        write_secret(&admin_file, ADMIN_PASSWORD.as_bytes());
        let replication_file = lab.dir().join("repl.pass");
        write_secret(&replication_file, REPLICATION_PASSWORD.as_bytes());
        let events = lab.dir().join("events.log");
        // hafront refuses to run a script that a user other than root could
        // change: run a copy owned by root, whoever owns the checkout.
        let hook = lab.dir().join("log-event.sh");
        std::fs::copy(demo_dir().join("log-event.sh"), &hook).expect("copy the event hook");
        let body = |number: usize, priority: u8, peer_weight: u8| {
            let name = |n: usize| if n == 1 { "db-a" } else { "db-b" }.to_owned();
            render(
                "db-node.yaml",
                &[
                    ("CHECK_PASSWORD_FILE", password_file.display().to_string()),
                    ("ADMIN_PASSWORD_FILE", admin_file.display().to_string()),
                    (
                        "REPLICATION_PASSWORD_FILE",
                        replication_file.display().to_string(),
                    ),
                    ("ADDRESS_A", Lab::address(1).to_string()),
                    ("ADDRESS_B", Lab::address(2).to_string()),
                    ("LOCAL", name(number)),
                    ("PEER", name(3 - number)),
                    ("GATEWAY", format!("{SWITCH}:{UPLINK_PORT}")),
                    ("PRIORITY", priority.to_string()),
                    ("PEER_WEIGHT", peer_weight.to_string()),
                    (
                        "ADVERT_INTERVAL",
                        format!("{}ms", ADVERT_INTERVAL.as_millis()),
                    ),
                    ("VIP", VIP.to_string()),
                    ("NOTIFY", hook.display().to_string()),
                    ("EVENT_LOG", events.display().to_string()),
                    ("SMTP_HOST", SWITCH.to_string()),
                    ("SMTP_PORT", SMTP_PORT.to_string()),
                    ("NODE", format!("n{number}")),
                ],
            )
        };
        let bodies = [
            body(1, 150, 120) + &quorum_section,
            body(2, 100, 10) + &quorum_section,
        ];
        let mut pair = MysqlPair {
            hafronts: [None, None],
            servers: [primary, replica],
            smtp,
            events,
            clock: Clock::now(),
            narrator,
            bodies,
            _uplink: uplink,
            etcd,
            lab,
            _turn: turn,
        };
        narrator.say("starting hafront on n1 (priority 150): it takes the VIP and, master of the pool's replication source, makes n1 writable");
        pair.start_hafront(1);
        assert!(
            wait_until(SETTLE, || pair.lab.vip_holders() == [1]
                && pair.servers[0].writable()),
            "n1 never became the writable master; events:\n{}",
            std::fs::read_to_string(&pair.events).unwrap_or_default()
        );
        narrator.say("starting hafront on n2 (priority 100): backup, its server stays read-only");
        pair.start_hafront(2);
        assert!(
            wait_until(SETTLE, || notified_states(&node_events(&pair.events), "n2")
                .contains(&"BACKUP".to_owned())),
            "n2 never became backup"
        );
        pair
    }

    /// Starts (or restarts) hafront on node `number`.
    pub fn start_hafront(&mut self, number: usize) {
        self.hafronts[number - 1] =
            Some(Hafront::start(&self.lab, number, &self.bodies[number - 1]));
    }

    /// The hafront daemon on node `number`.
    pub fn hafront(&mut self, number: usize) -> &mut Hafront {
        self.hafronts[number - 1].as_mut().expect("hafront running")
    }

    /// Starts the client in the switch namespace, writing through the VIP.
    pub fn client(&self) -> Writer {
        Writer::start(self.lab.switch(), SocketAddr::from((VIP, MYSQL_PORT)))
    }

    /// Starts watching who holds the VIP.
    pub fn watch(&self) -> VipWatch {
        self.lab.watch_vip()
    }

    /// The event hooks' events so far.
    pub fn node_events(&self) -> Vec<NodeEvent> {
        node_events(&self.events)
    }

    /// The first event of `node` whose text starts with `what`, at or after `from`.
    pub fn event_after(&self, node: &str, what: &str, from: Instant) -> Option<SystemTime> {
        let from = self.clock.wall(from);
        self.node_events()
            .into_iter()
            .find(|event| event.node == node && event.at >= from && event.what.starts_with(what))
            .map(|event| event.at)
    }

    /// Waits until every mail-worthy VRRP transition notified so far (all but starting as
    /// backup) was mailed exactly once, for both nodes; returns the notified and mailed
    /// transitions per node.
    pub fn wait_for_mails(&self, within: Duration) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
        let compare = || {
            let events = self.node_events();
            let mails = self.smtp.mails();
            ["n1", "n2"]
                .into_iter()
                .map(|node| {
                    let notified = mail_worthy_states(&events, node);
                    let mailed: Vec<String> = mailed_transitions(&mails, node)
                        .iter()
                        .filter_map(|transition| transition.split(" -> ").nth(1).map(str::to_owned))
                        .collect();
                    (node.to_owned(), (notified, mailed))
                })
                .collect::<BTreeMap<_, _>>()
        };
        wait_until(within, || {
            compare()
                .values()
                .all(|(notified, mailed)| notified == mailed)
        });
        compare()
    }

    /// Tells a step of the story.
    pub fn say(&self, text: &str) {
        self.narrator.say(text);
    }
}

/// What the failover of the co-located pair measured.
#[derive(Debug, Clone)]
pub struct FailoverReport {
    /// Fault to n1's FAULT notification.
    pub detection: Option<Duration>,
    /// Fault to the VIP on n2.
    pub vip_moved: Option<Duration>,
    /// Fault to n2's promotion.
    pub promoted: Option<Duration>,
    /// Fault to the first acknowledged write on n2.
    pub first_write: Option<Duration>,
    /// The client's longest time without an acknowledged write.
    pub outage: Duration,
    /// Writes acknowledged over the whole run.
    pub acked: usize,
    /// Acknowledged writes missing on the new primary.
    pub lost: Vec<u64>,
    /// Longest time both nodes held the VIP after the pair was up.
    pub duplicate_vip: Duration,
    /// Whether n2 accepts writes at the end.
    pub new_primary_writable: bool,
    /// Whether n1 is read-only after rejoining.
    pub old_primary_read_only: bool,
    /// Notified and mailed VRRP transitions per node.
    pub mails: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// The mails as received, oldest first.
    pub mail_texts: Vec<String>,
    /// Every change of the VIP's holders: milliseconds from the fault (negative: before)
    /// and the nodes holding it.
    pub vip_changes: Vec<(i64, Vec<usize>)>,
}

impl FailoverReport {
    /// The timeline as printable lines.
    pub fn timeline(&self) -> String {
        let ms = |at: Option<Duration>| {
            at.map_or("never".to_owned(), |at| format!("+{} ms", at.as_millis()))
        };
        format!(
            "  fault (n1's MariaDB killed)          +0 ms\n\
             \x20 detected by hafront on n1 (FAULT)    {}\n\
             \x20 VIP on n2                            {}\n\
             \x20 n2 promoted (read_only=OFF)          {}\n\
             \x20 first acknowledged write on n2       {}\n\
             \x20 client-visible outage                {} ms\n\
             \x20 acknowledged writes                  {}\n\
             \x20 acknowledged writes lost             {}\n\
             \x20 longest duplicate VIP                {} ms",
            ms(self.detection),
            ms(self.vip_moved),
            ms(self.promoted),
            ms(self.first_write),
            self.outage.as_millis(),
            self.acked,
            self.lost.len(),
            self.duplicate_vip.as_millis(),
        )
    }
}

/// Scenario 1: the primary's MariaDB dies under a writing client; hafront on n2 takes the
/// VIP, promotes n2 once it applied its relay log; n1 comes back read-only.
pub fn primary_crash(narrator: Narrator) -> FailoverReport {
    let mut pair = MysqlPair::start("story", narrator);
    let watch = pair.watch();
    let since = Instant::now();
    pair.say("the client (on the switch, 10.213.0.254) writes sequence numbers through the VIP 10.213.0.100:3306 and reads each back");
    let client = pair.client();
    assert!(
        client.wait_for_acks(100, Duration::from_secs(10)),
        "the client cannot write through the VIP"
    );
    pair.say(&format!("{} writes acknowledged so far", client.acked()));

    pair.say("killing n1's MariaDB (SIGKILL)");
    let fault = Instant::now();
    pair.servers[0].kill();
    let took_over = wait_until(Duration::from_secs(10), || {
        pair.event_after("n2", "failover_promoted", fault).is_some()
    });
    assert!(
        took_over,
        "n2 was not promoted; events:\n{}",
        std::fs::read_to_string(&pair.events).unwrap_or_default()
    );
    pair.say("hafront on n1 saw its server down and went FAULT; n2 took the VIP; its hafront confirmed that n2 lost n1 too, let n2 apply its relay log, stopped replication and set read_only=OFF");
    assert!(
        client.wait_for_acks(100, Duration::from_secs(10)),
        "the client cannot write after the failover"
    );
    pair.say(&format!(
        "the client writes again: {} writes acknowledged so far",
        client.acked()
    ));

    pair.say("restarting n1's MariaDB: it comes back read-only (read_only=1 in its options), fenced, and hafront on n1 makes it a replica of n2");
    pair.servers[0].restart();
    let rejoined = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || pair
            .event_after("n1", "notified BACKUP", rejoined)
            .is_some()),
        "n1 did not become backup after its server came back"
    );
    assert!(
        client.wait_for_acks(50, Duration::from_secs(10)),
        "writes stopped after n1 rejoined"
    );
    let writes = client.finish();
    let vips = watch.finish();
    pair.say("waiting for the alert mails");
    let mails = pair.wait_for_mails(Duration::from_secs(30));

    let stored = pair.servers[1].ids();
    let after =
        |at: Option<SystemTime>| at.and_then(|at| at.duration_since(pair.clock.wall(fault)).ok());
    let vip_moved = vips
        .polls
        .iter()
        .find(|poll| poll.at >= fault && poll.nodes == [2])
        .map(|poll| poll.at - fault);
    FailoverReport {
        detection: after(pair.event_after("n1", "notified FAULT", fault)),
        vip_moved,
        promoted: after(pair.event_after("n2", "failover_promoted", fault)),
        first_write: writes.first_ack_after(fault).map(|at| at - fault),
        outage: writes.longest_outage_after(since),
        acked: writes.acked().len(),
        lost: writes.lost(&stored),
        duplicate_vip: vips.longest_duplicate_after(since),
        new_primary_writable: pair.servers[1].writable(),
        old_primary_read_only: !pair.servers[0].writable(),
        mails,
        mail_texts: pair.smtp.mails(),
        vip_changes: holder_changes(&vips, fault),
    }
}

/// The polls where the VIP's holders changed, as milliseconds from `origin` and holders.
pub fn holder_changes(vips: &VipLog, origin: Instant) -> Vec<(i64, Vec<usize>)> {
    let mut changes: Vec<(i64, Vec<usize>)> = Vec::new();
    for poll in &vips.polls {
        if changes.last().is_none_or(|(_, nodes)| *nodes != poll.nodes) {
            let millis = match poll.at.checked_duration_since(origin) {
                Some(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
                None => -i64::try_from((origin - poll.at).as_millis()).unwrap_or(i64::MAX),
            };
            changes.push((millis, poll.nodes.clone()));
        }
    }
    changes
}

/// A client that opens a new connection through `target` for every read and records which
/// server (`@@server_id`) answered: a round-robin relay shows in the spread.
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Option<u32>>>>,
}

impl Reader {
    /// Starts reading through `target` from `namespace`.
    pub fn start(namespace: &str, target: SocketAddr) -> Reader {
        let path = PathBuf::from("/run/netns").join(namespace);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).expect("open namespace");
            nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            runtime.block_on(read_loop(target, stopping))
        });
        Reader {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops reading; returns how many reads each server answered (`None`: failed reads).
    pub fn finish(mut self) -> BTreeMap<Option<u32>, usize> {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self
            .thread
            .take()
            .expect("reader running")
            .join()
            .expect("reader thread");
        let mut spread = BTreeMap::new();
        for answer in answers {
            *spread.entry(answer).or_insert(0) += 1;
        }
        spread
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn read_loop(target: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Option<u32>> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(target.ip().to_string())
        .tcp_port(target.port())
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        .prefer_socket(false);
    let mut answers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let read = async {
            let mut conn = Conn::new(opts.clone()).await.ok()?;
            let server = conn
                .query_first::<u32, _>("SELECT @@server_id")
                .await
                .ok()?;
            conn.disconnect().await.ok();
            server
        };
        answers.push(
            tokio::time::timeout(CLIENT_TIMEOUT, read)
                .await
                .ok()
                .flatten(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answers
}

/// What the front tier's failover measured.
#[derive(Debug, Clone)]
pub struct FrontReport {
    /// Reads answered per `@@server_id` (1: db-a, 2: db-b over the encrypted link; `None`:
    /// failed reads).
    pub reads: BTreeMap<Option<u32>, usize>,
    /// The client's longest time without an acknowledged write after front-1 died.
    pub outage: Duration,
    /// Writes acknowledged.
    pub acked: usize,
    /// Acknowledged writes missing on the primary.
    pub lost: Vec<u64>,
    /// Acknowledged writes that reached the replica (all, once it caught up).
    pub replicated: usize,
    /// Longest time both fronts held the VIP before front-1 was cut off (after, its copy is
    /// on an island no client reaches).
    pub duplicate_vip: Duration,
}

/// Scenario 2: two front nodes (n3 priority 150, n4 priority 100) share the VIP and relay
/// writes to the writable server (db-a on n1) and reads round-robin over db-a and db-b; db-b
/// (n2) is in a "remote data centre" reached only through spiped links (its MariaDB listens
/// on loopback). front-1 loses its link under a writing client; front-2 takes over.
pub fn front_failure(narrator: Narrator) -> FrontReport {
    let _turn = ScenarioLock::acquire();
    let lab = Lab::new("front", 4);
    narrator.say("starting MariaDB db-a on n1 (primary) and db-b on n2, the remote data centre (loopback only)");
    let n1 = lab.node(1).to_owned();
    let primary = std::thread::spawn(move || LabMariaDb::start(&n1, 1, "0.0.0.0"));
    let replica = LabMariaDb::start(lab.node(2), 2, "127.0.0.1");
    let primary = primary.join().expect("MariaDB n1");
    primary.create_schema();
    replica.replicate_from(&Lab::address(1).to_string(), MYSQL_PORT);
    primary.query("SET GLOBAL read_only = OFF");

    let password_file = lab.dir().join("mysql-check.pass");
    write_secret(&password_file, CHECK_PASSWORD.as_bytes());
    let key_file = lab.dir().join("link.key");
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut key))
        .expect("random key");
    write_secret(&key_file, &key);
    let fields = |priority: u8| {
        vec![
            ("CHECK_PASSWORD_FILE", password_file.display().to_string()),
            ("DB_A", Lab::address(1).to_string()),
            ("DB_B", Lab::address(2).to_string()),
            ("KEY_FILE", key_file.display().to_string()),
            ("PRIORITY", priority.to_string()),
            (
                "ADVERT_INTERVAL",
                format!("{}ms", ADVERT_INTERVAL.as_millis()),
            ),
            ("VIP", VIP.to_string()),
        ]
    };
    narrator.say("starting hafront on n2: spiped-decrypt relay 10.213.0.2:8306 -> its MariaDB");
    let _remote_dc = Hafront::start(&lab, 2, &render("remote-dc.yaml", &fields(0)));
    narrator.say("starting front-1 (n3, priority 150) and front-2 (n4, priority 100): VIP 10.213.0.100, writes on :3306 (primary only), reads on :3307 (round-robin), db-b through a spiped-encrypt relay");
    let front_1 = Hafront::start(&lab, 3, &render("front-node.yaml", &fields(150)));
    let _front_2 = Hafront::start(&lab, 4, &render("front-node.yaml", &fields(100)));
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [3]),
        "front-1 never became the only master: {:?}\n{}",
        lab.vip_holders(),
        front_1.log()
    );

    let watch = lab.watch_vip();
    let since = Instant::now();
    let writer = Writer::start(lab.switch(), SocketAddr::from((VIP, MYSQL_PORT)));
    let reader = Reader::start(lab.switch(), SocketAddr::from((VIP, MYSQL_PORT + 1)));
    narrator.say("the client writes through VIP:3306 and reads through VIP:3307");
    assert!(
        writer.wait_for_acks(100, Duration::from_secs(15)),
        "no writes through the front tier:\n{}",
        front_1.log()
    );
    narrator.say("cutting front-1's link (as a dead machine)");
    let fault = Instant::now();
    lab.cut(3);
    assert!(
        wait_until(Duration::from_secs(5), || lab.has_vip(4)),
        "front-2 did not take over"
    );
    narrator.say("front-2 took the VIP and relays the same way");
    assert!(
        writer.wait_for_acks(100, Duration::from_secs(10)),
        "no writes after front-2 took over"
    );
    let writes = writer.finish();
    let reads = reader.finish();
    let vips = watch.finish();
    narrator.say(&format!(
        "reads answered per server_id (1: db-a, 2: db-b over spiped): {reads:?}"
    ));

    let stored = primary.ids();
    let acked = writes.acked();
    let last = acked.last().copied().unwrap_or(0);
    wait_until(Duration::from_secs(10), || {
        replica.ids().last().copied() >= Some(last)
    });
    let replica_ids = replica.ids();
    FrontReport {
        reads,
        outage: writes.longest_outage_after(fault),
        acked: acked.len(),
        lost: writes.lost(&stored),
        replicated: acked
            .iter()
            .filter(|id| replica_ids.binary_search(id).is_ok())
            .count(),
        duplicate_vip: duplicate_before(&vips, since, fault),
    }
}

/// The longest stretch with the VIP on two nodes between `from` and `until`.
fn duplicate_before(vips: &VipLog, from: Instant, until: Instant) -> Duration {
    let polls = VipLog {
        polls: vips
            .polls
            .iter()
            .filter(|poll| poll.at < until)
            .cloned()
            .collect(),
    };
    polls.longest_duplicate_after(from)
}

impl MysqlPair {
    /// Partitions n1 from n2 (bridge port isolation): both still reach the switch, where the
    /// client is, but not each other. `false` heals.
    pub fn partition(&self, on: bool) {
        let state = if on { "on" } else { "off" };
        for port in ["p1", "p2"] {
            crate::ip(&[
                "-n",
                self.lab.switch(),
                "link",
                "set",
                "dev",
                port,
                "type",
                "bridge_slave",
                "isolated",
                state,
            ]);
        }
    }
}

/// The longest time two nodes held the VIP while both were connected to the client's
/// segment: a node's copy while it is cut off (`isolated`: node, from, until) is invisible
/// to clients and not counted.
pub fn split_brain(
    vips: &VipLog,
    from: Instant,
    isolated: &[(usize, Instant, Instant)],
) -> Duration {
    let reachable = VipLog {
        polls: vips
            .polls
            .iter()
            .filter(|poll| poll.at >= from)
            .map(|poll| crate::Holders {
                at: poll.at,
                nodes: poll
                    .nodes
                    .iter()
                    .copied()
                    .filter(|&node| {
                        !isolated.iter().any(|&(cut, start, end)| {
                            cut == node && poll.at >= start && poll.at <= end
                        })
                    })
                    .collect(),
            })
            .collect(),
    };
    reachable.longest_duplicate_after(from)
}
