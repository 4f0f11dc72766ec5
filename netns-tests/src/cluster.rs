//! A MariaDB cluster for failover tests: a primary (n1) and two replicas (n2, n3) in GTID
//! replication, semi-synchronous, and a front node (n4) whose hafront relays clients to the
//! primary and runs the pool's failover. The client writes from the switch namespace through
//! the front's relay.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::etcd::EtcdCluster;
use crate::mariadb::{
    ADMIN_PASSWORD, CHECK_PASSWORD, CHECK_USER, LabMariaDb, MYSQL_PORT, REPLICATION_PASSWORD,
};
use crate::story::{ScenarioLock, Writer, write_secret};
use crate::{Hafront, Lab, hafront_binary, ip, wait_until};

/// The front node.
pub const FRONT: usize = 4;
/// Database nodes: n1 starts as the primary.
pub const DATABASES: [usize; 3] = [1, 2, 3];
/// The etcd members of [`Cluster::start_with_quorum`].
pub const ETCD_NODES: [usize; 3] = [5, 6, 7];
/// How long a whole failover, switchover or rejoin may take in a test.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The cluster; everything is stopped and removed on drop.
pub struct Cluster {
    /// hafront on the front node.
    pub front: Option<Hafront>,
    /// MariaDB on n1, n2 and n3 (index 0 is n1).
    pub servers: Vec<LabMariaDb>,
    body: String,
    /// With a quorum: the etcd members on n5, n6 and n7.
    pub etcd: Option<EtcdCluster>,
    // Last: the namespaces go after everything running in them.
    /// The namespaces.
    pub lab: Lab,
    _turn: ScenarioLock,
}

impl Cluster {
    /// Builds the lab and the replicating servers, then starts the front's hafront with
    /// `failover_extra` (keys of the failover block, each on its own line, indented by 6
    /// spaces) and waits until its relay reaches the primary.
    pub fn start(test: &str, failover_extra: &str) -> Cluster {
        Cluster::start_with(test, failover_extra, false)
    }

    /// [`Cluster::start`] with a three-member etcd cluster on n5–n7 and a `quorum` section
    /// (TTL 2 s) in the front's configuration: its failover acts only while it holds the
    /// key `failover/db`.
    pub fn start_with_quorum(test: &str, failover_extra: &str) -> Cluster {
        Cluster::start_with(test, failover_extra, true)
    }

    fn start_with(test: &str, failover_extra: &str, quorum: bool) -> Cluster {
        let turn = ScenarioLock::acquire();
        let lab = Lab::new(test, if quorum { 7 } else { 4 });
        let etcd = quorum.then(|| EtcdCluster::start(&lab, &ETCD_NODES));
        let starts: Vec<_> = DATABASES
            .iter()
            .map(|&number| {
                let namespace = lab.node(number).to_owned();
                std::thread::spawn(move || LabMariaDb::start(&namespace, number as u32, "0.0.0.0"))
            })
            .collect();
        let servers: Vec<LabMariaDb> = starts
            .into_iter()
            .map(|start| start.join().expect("MariaDB start"))
            .collect();
        servers[0].create_schema();
        for replica in &servers[1..] {
            replica.replicate_from(&Lab::address(1).to_string(), MYSQL_PORT);
        }
        servers[0].enable_semi_sync_primary();
        assert!(
            wait_until(Duration::from_secs(10), || servers[0].semi_sync_clients()
                == 2),
            "the replicas never acknowledged semi-synchronously"
        );
        servers[0].query("SET GLOBAL read_only = OFF");
        let dir = lab.dir();
        let check_password = dir.join("check.pass");
        let admin_password = dir.join("admin.pass");
        let replication_password = dir.join("repl.pass");
        write_secret(&check_password, CHECK_PASSWORD.as_bytes());
        write_secret(&admin_password, ADMIN_PASSWORD.as_bytes());
        write_secret(&replication_password, REPLICATION_PASSWORD.as_bytes());
        let servers_yaml: String = DATABASES
            .iter()
            .map(|&n| {
                format!(
                    "      - {{ name: n{n}, address: {}:{MYSQL_PORT} }}\n",
                    Lab::address(n)
                )
            })
            .collect();
        let body = format!(
            "checks:
  db:
    kind: mysql
    interval: 200ms
    timeout: 150ms
    rise: 1
    fall: 2
    role: true
    user: {CHECK_USER}
    password: {{ file: {check} }}
pools:
  db:
    check: db
    servers:
{servers_yaml}    failover:
      user: hafront_admin
      password: {{ file: {admin} }}
      replication_user: repl
      replication_password: {{ file: {replication} }}
{failover_extra}relays:
  write:
    listen: [{front}:{MYSQL_PORT}]
    pool: db
    policy: first
    role: primary
    on_server_down: close
    connect_timeout: 300ms
",
            check = check_password.display(),
            admin = admin_password.display(),
            replication = replication_password.display(),
            front = Lab::address(FRONT),
        );
        let body = match &etcd {
            Some(etcd) => format!(
                "{body}quorum:\n  endpoints: [{}]\n  ttl: 2s\n",
                etcd.endpoints().join(", ")
            ),
            None => body,
        };
        let mut cluster = Cluster {
            front: None,
            servers,
            body,
            etcd,
            lab,
            _turn: turn,
        };
        cluster.start_front();
        assert!(
            wait_until(SETTLE, || cluster.status()["replication"]["db"]["primary"]
                == "n1"),
            "the front never followed n1 as the primary; log:\n{}",
            cluster.front_log()
        );
        cluster
    }

    /// Starts (or restarts) hafront on the front node.
    pub fn start_front(&mut self) {
        self.front = None;
        self.front = Some(Hafront::start(&self.lab, FRONT, &self.body));
    }

    /// The MariaDB server of database node `number`.
    pub fn server(&self, number: usize) -> &LabMariaDb {
        &self.servers[number - 1]
    }

    /// The MariaDB server of database node `number`, to kill or freeze.
    pub fn server_mut(&mut self, number: usize) -> &mut LabMariaDb {
        &mut self.servers[number - 1]
    }

    /// A client writing sequence numbers through the front's relay.
    pub fn writer(&self) -> Writer {
        Writer::start(
            self.lab.switch(),
            SocketAddr::from((Lab::address(FRONT), MYSQL_PORT)),
        )
    }

    /// What the front's hafront logged so far.
    pub fn front_log(&self) -> String {
        self.front.as_ref().map(Hafront::log).unwrap_or_default()
    }

    /// Waits until the front logged a failover step line containing every one of `words`;
    /// returns whether it did within `within`.
    pub fn wait_for_log(&self, words: &[&str], within: Duration) -> bool {
        wait_until(within, || {
            self.front_log()
                .lines()
                .any(|line| words.iter().all(|word| line.contains(word)))
        })
    }

    /// Runs the `hafront` command line against the front's daemon with `args`; returns
    /// whether it succeeded and what it printed.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        self.run_cli(Command::new(hafront_binary()), args)
    }

    /// Runs the `hafront` command line inside the front's namespace (to reach the servers)
    /// with `args` and the front's configuration; returns whether it succeeded and what it
    /// printed.
    pub fn cli_in_front(&self, args: &[&str]) -> (bool, String) {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.lab.node(FRONT)])
            .arg(hafront_binary());
        self.run_cli(command, args)
    }

    fn run_cli(&self, mut command: Command, args: &[&str]) -> (bool, String) {
        let front = self.front.as_ref().expect("front running");
        let output = command
            .args(args)
            .args(["-c", front.config().to_str().expect("UTF-8 path")])
            .output()
            .expect("run hafront");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// `hafront status --json` of the front.
    pub fn status(&self) -> serde_json::Value {
        let (ok, text) = self.cli(&["status", "--json"]);
        if !ok {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// The node a server replicates from, by its `Master_Host` (`None` when it replicates
    /// from nothing), and whether both threads run.
    pub fn replication_of(&self, number: usize) -> Option<(usize, bool)> {
        let status = self.server(number).try_query("SHOW SLAVE STATUS\\G").ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.trim().strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        let host: Ipv4Addr = field("Master_Host")?.parse().ok()?;
        let node = DATABASES
            .iter()
            .copied()
            .find(|&n| Lab::address(n) == host)?;
        let running = field("Slave_IO_Running").as_deref() == Some("Yes")
            && field("Slave_SQL_Running").as_deref() == Some("Yes");
        Some((node, running))
    }

    /// Blocks the front's traffic to node `number` only (a one-way cut between the front
    /// and that server; the servers still see each other).
    pub fn cut_front_from(&self, number: usize) {
        let target = format!("{}/32", Lab::address(number));
        ip(&[
            "-n",
            self.lab.node(FRONT),
            "route",
            "add",
            "blackhole",
            &target,
        ]);
    }

    /// Ends [`Cluster::cut_front_from`].
    pub fn reconnect_front_to(&self, number: usize) {
        let target = format!("{}/32", Lab::address(number));
        ip(&[
            "-n",
            self.lab.node(FRONT),
            "route",
            "del",
            "blackhole",
            &target,
        ]);
    }

    /// Waits until `number` is the only writable server and the others replicate from it
    /// with both threads running.
    pub fn wait_for_topology(&self, primary: usize, replicas: &[usize]) -> bool {
        wait_until(SETTLE, || self.has_topology(primary, replicas))
    }

    /// Waits until one of `candidates` is the primary with the other candidates its
    /// replicas, and returns it: for faults after which either replica may be the most
    /// advanced (a primary frozen mid-write sends its last event to one replica first).
    pub fn wait_for_promotion_of_either(&self, candidates: &[usize]) -> Option<usize> {
        let mut promoted = None;
        wait_until(SETTLE, || {
            promoted = candidates.iter().copied().find(|&primary| {
                let replicas: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&n| n != primary)
                    .collect();
                self.has_topology(primary, &replicas)
            });
            promoted.is_some()
        });
        promoted
    }

    /// Whether `primary` is writable and each of `replicas` replicates from it with both
    /// threads running.
    fn has_topology(&self, primary: usize, replicas: &[usize]) -> bool {
        self.server(primary)
            .try_query("SELECT @@global.read_only")
            .as_deref()
            == Ok("0")
            && replicas
                .iter()
                .all(|&n| self.replication_of(n) == Some((primary, true)))
    }

    /// Waits until every id in `ids` is stored on node `number`.
    pub fn wait_for_rows(&self, number: usize, ids: &[u64]) -> bool {
        wait_until(SETTLE, || {
            let stored = self
                .server(number)
                .try_query("SELECT id FROM demo.seq ORDER BY id");
            let stored: Vec<u64> = stored
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.parse().ok())
                .collect();
            ids.iter().all(|id| stored.binary_search(id).is_ok())
        })
    }

    /// The state directory of the front's hafront.
    pub fn front_state(&self) -> PathBuf {
        self.lab
            .dir()
            .join(format!("hafront-n{FRONT}"))
            .join("state")
    }
}
