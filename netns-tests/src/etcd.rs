//! A three-member etcd cluster (Debian's `etcd-server`) on lab nodes, each member in its own
//! namespace with its data in the test's temporary directory, and quorum claimants
//! (`hafront-quorum-claimant`) on other nodes. Members are stopped by PID on drop.
//!
//! etcd runs with a 50 ms heartbeat and a 500 ms election timeout: a new leader within a
//! second of losing one, and a minimum lease TTL of 1 s (etcd's is 1.5 election timeouts,
//! rounded up).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Lab, NodeProcess, ip, skip, wait_until};

/// Where Debian installs etcd.
pub const ETCD: &str = "/usr/bin/etcd";
/// Where Debian installs etcdctl.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// The client port of every member.
pub const CLIENT_PORT: u16 = 2379;
/// The peer port of every member.
pub const PEER_PORT: u16 = 2380;
/// How long a started cluster may take to elect a leader and answer.
const SETTLE: Duration = Duration::from_secs(20);

/// Whether etcd is installed; skips (see [`skip`]) otherwise. Returns true to skip.
pub fn skip_unless_etcd(test: &str) -> bool {
    !(Path::new(ETCD).exists() && Path::new(ETCDCTL).exists())
        && skip(
            test,
            "etcd is not installed (Debian packages etcd-server and etcd-client)",
        )
}

/// etcd members on lab nodes; killed on drop.
pub struct EtcdCluster {
    namespaces: Vec<String>,
    nodes: Vec<usize>,
    members: Vec<Option<NodeProcess>>,
}

impl EtcdCluster {
    /// Starts one member on each of `nodes` of `lab` and waits until the cluster answers.
    pub fn start(lab: &Lab, nodes: &[usize]) -> EtcdCluster {
        EtcdCluster::start_timed(lab, nodes, 50, 500)
    }

    /// [`EtcdCluster::start`] with etcd's own heartbeat interval and election timeout (in
    /// milliseconds; etcd's defaults are 100 and 1000, which make its minimum lease TTL 2 s).
    pub fn start_timed(lab: &Lab, nodes: &[usize], heartbeat: u32, election: u32) -> EtcdCluster {
        let initial_cluster = nodes
            .iter()
            .map(|&n| format!("e{n}=http://{}:{PEER_PORT}", Lab::address(n)))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            namespaces: nodes.iter().map(|&n| lab.node(n).to_owned()).collect(),
            nodes: nodes.to_vec(),
            members: Vec::new(),
        };
        for &number in nodes {
            let address = Lab::address(number);
            let dir = lab.dir().join(format!("etcd-n{number}"));
            std::fs::create_dir_all(&dir).expect("etcd directory");
            let client_url = format!("http://{address}:{CLIENT_PORT}");
            let peer_url = format!("http://{address}:{PEER_PORT}");
            let args = [
                "--name".to_owned(),
                format!("e{number}"),
                "--data-dir".to_owned(),
                dir.join("data").display().to_string(),
                "--listen-client-urls".to_owned(),
                client_url.clone(),
                "--advertise-client-urls".to_owned(),
                client_url,
                "--listen-peer-urls".to_owned(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".to_owned(),
                peer_url,
                "--initial-cluster".to_owned(),
                initial_cluster.clone(),
                "--initial-cluster-state".to_owned(),
                "new".to_owned(),
                "--initial-cluster-token".to_owned(),
                lab.switch().to_owned(),
                "--heartbeat-interval".to_owned(),
                heartbeat.to_string(),
                "--election-timeout".to_owned(),
                election.to_string(),
                "--logger".to_owned(),
                "zap".to_owned(),
                "--log-level".to_owned(),
                "warn".to_owned(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cluster.members.push(Some(NodeProcess::spawn(
                lab.node(number),
                Path::new(ETCD),
                &args,
                dir.join("etcd.log"),
            )));
        }
        assert!(
            wait_until(SETTLE, || cluster.healthy()),
            "the etcd cluster never became healthy; logs:\n{}",
            cluster.logs()
        );
        cluster
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|&n| format!("http://{}:{CLIENT_PORT}", Lab::address(n)))
            .collect()
    }

    /// Whether every running member answers and the cluster has a leader.
    pub fn healthy(&self) -> bool {
        let endpoints: Vec<String> = self
            .running_indices()
            .map(|index| self.endpoints()[index].clone())
            .collect();
        !endpoints.is_empty()
            && self
                .etcdctl(&["endpoint", "health", "--endpoints", &endpoints.join(",")])
                .is_some()
    }

    /// The lab node of the current leader, as the running members report it.
    pub fn leader(&self) -> Option<usize> {
        let status = self.etcdctl(&["endpoint", "status", "--write-out", "json"])?;
        let status: serde_json::Value = serde_json::from_str(&status).ok()?;
        let endpoint = status.as_array()?.iter().find_map(|member| {
            let fields = &member["Status"];
            (fields["header"]["member_id"] == fields["leader"])
                .then(|| member["Endpoint"].as_str())?
        })?;
        let index = self.endpoints().iter().position(|url| url == endpoint)?;
        Some(self.nodes[index])
    }

    /// The value of `key`, read through any running member (`None` when absent or etcd
    /// does not answer).
    pub fn get(&self, key: &str) -> Option<String> {
        let value = self.etcdctl(&["get", "--print-value-only", key])?;
        let value = value.trim_end();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Runs etcdctl inside a running member's namespace against every endpoint; its output
    /// on success.
    fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let index = self.running_indices().next()?;
        let endpoints = self.endpoints().join(",");
        let output = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[index], ETCDCTL])
            .args(["--endpoints", &endpoints, "--command-timeout", "2s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn running_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, member)| member.is_some())
            .map(|(index, _)| index)
    }

    /// SIGKILLs the member on lab node `number`.
    pub fn kill(&mut self, number: usize) {
        let index = self
            .nodes
            .iter()
            .position(|&n| n == number)
            .expect("an etcd node");
        if let Some(mut member) = self.members[index].take() {
            member.stop_with(Signal::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Every member's log.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .zip(&self.nodes)
            .filter_map(|(member, n)| {
                member
                    .as_ref()
                    .map(|m| format!("--- e{n} ---\n{}", m.log()))
            })
            .collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        // NodeProcess stops each by PID (SIGTERM, then SIGKILL).
        self.members.clear();
    }
}

/// Cuts lab node `from` off from the addresses of `nodes` (blackhole routes in its
/// namespace: its packets to them are dropped, its links stay up).
pub fn block(lab: &Lab, from: usize, nodes: &[usize]) {
    for &n in nodes {
        let target = format!("{}/32", Lab::address(n));
        ip(&["-n", lab.node(from), "route", "add", "blackhole", &target]);
    }
}

/// Ends [`block`].
pub fn unblock(lab: &Lab, from: usize, nodes: &[usize]) {
    for &n in nodes {
        let target = format!("{}/32", Lab::address(n));
        ip(&["-n", lab.node(from), "route", "del", "blackhole", &target]);
    }
}

/// The monotonic clock (`CLOCK_MONOTONIC`, shared by every namespace) in nanoseconds: the
/// claimants log with it, so instants from different processes compare.
pub fn monotonic_nanos() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("read the monotonic clock");
    let nanos = i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec());
    u64::try_from(nanos).expect("a positive monotonic clock")
}

/// One state change a claimant logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    /// When it saw it ([`monotonic_nanos`]).
    pub at: u64,
    /// `held`, `heldby`, `free` or `unreachable`.
    pub state: String,
    /// For `held`: the deadline ([`monotonic_nanos`]); for `heldby`: the holder.
    pub detail: String,
}

/// `hafront-quorum-claimant` on a lab node: one quorum session and one claim, driven by
/// commands on its standard input, logging every state change.
pub struct Claimant {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    name: String,
}

impl Claimant {
    /// Starts a claimant named `name` for `key` on lab node `number`, with lease `ttl`
    /// (humantime, e.g. `2s`), against `endpoints`.
    pub fn start(
        lab: &Lab,
        number: usize,
        name: &str,
        key: &str,
        ttl: &str,
        endpoints: &[String],
    ) -> Claimant {
        let log = lab.dir().join(format!("claimant-{name}.log"));
        let output = std::fs::File::create(&log).expect("create the claimant log");
        let mut child = Command::new("ip")
            .args(["netns", "exec", lab.node(number)])
            .arg(claimant_binary())
            .args(["--node", name, "--key", key, "--ttl", ttl, "--endpoints"])
            .arg(endpoints.join(","))
            .stdin(Stdio::piped())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("start the claimant");
        let stdin = child.stdin.take();
        Claimant {
            child,
            stdin,
            log,
            name: name.to_owned(),
        }
    }

    /// Sends a command: `want`, `unwant` or `release` (revoke the lease and exit).
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("claimant input open");
        writeln!(stdin, "{command}").expect("send a claimant command");
        stdin.flush().expect("flush claimant input");
    }

    /// Every state change logged so far.
    pub fn events(&self) -> Vec<ClaimEvent> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut words = line.splitn(4, ' ');
                (words.next()? == "claim").then_some(())?;
                let at = words.next()?.parse().ok()?;
                let state = words.next()?.to_owned();
                let detail = words.next().unwrap_or_default().to_owned();
                Some(ClaimEvent { at, state, detail })
            })
            .collect()
    }

    /// The last state logged (`None` before the first).
    pub fn state(&self) -> Option<ClaimEvent> {
        self.events().pop()
    }

    /// Whether the last state logged is `state`.
    pub fn is(&self, state: &str) -> bool {
        self.state().is_some_and(|event| event.state == state)
    }

    /// The first event with `state` logged at or after `from` ([`monotonic_nanos`]).
    pub fn first(&self, state: &str, from: u64) -> Option<ClaimEvent> {
        self.events()
            .into_iter()
            .find(|event| event.state == state && event.at >= from)
    }

    /// Everything it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `within` for it to exit; whether it did.
    pub fn wait_for_exit(&mut self, within: Duration) -> bool {
        wait_until(within, || matches!(self.child.try_wait(), Ok(Some(_))))
    }

    /// SIGKILLs it (a crash: its lease is left to expire).
    pub fn kill(&mut self) {
        let _ = kill(
            Pid::from_raw(i32::try_from(self.child.id()).expect("pid")),
            Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Claimant {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
        if std::thread::panicking() {
            eprintln!("--- claimant {} log ---\n{}", self.name, self.log());
        }
    }
}

/// The claimant binary next to the test executable (`cargo build -p hafront-netns-tests`
/// builds it).
fn claimant_binary() -> PathBuf {
    let executable = std::env::current_exe().expect("test executable path");
    let binary = executable
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("hafront-quorum-claimant");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p hafront-netns-tests` first",
        binary.display()
    );
    binary
}
