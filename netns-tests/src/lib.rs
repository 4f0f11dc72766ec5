//! A lab for multi-node tests of the real `hafront` binary: network namespaces joined by a
//! bridge in a "switch" namespace (10.213.0.0/24, no route out), a tiny TCP service on every
//! node, a client in the switch namespace that probes the VIP every 10 ms, and a watcher
//! that polls every node's addresses every 10 ms. Every namespace, process and thread is
//! removed on every exit path (Drop guards, panics included).
//!
//! Needs root; tests call [`skip_unless_root`] first. The binary is `target/debug/hafront`
//! next to the test executable, or `$HAFRONT_BIN`; build it first (`cargo build -p hafront`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The virtual address every test moves around.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 100);

/// Port of the node service the probe connects to.
pub const SERVICE_PORT: u16 = 7000;

/// How often the probe connects and the watcher reads the addresses.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Interface name of every node on the bridge.
pub const NODE_INTERFACE: &str = "eth0";

/// Set by `test.sh` (the README's test command, and so CI): a test that cannot run fails
/// instead of skipping.
pub const REQUIRE_EVERY_TEST: &str = "HAFRONT_REQUIRE_EVERY_TEST";

/// Skips `test` for `why`, saying so; under [`REQUIRE_EVERY_TEST`] the skip is a failure.
/// Returns true (the caller returns).
pub fn skip(test: &str, why: &str) -> bool {
    assert!(
        std::env::var_os(REQUIRE_EVERY_TEST).is_none(),
        "{test} cannot run: {why} ({REQUIRE_EVERY_TEST} is set, so this is a failure)"
    );
    eprintln!("skipping {test}: {why}");
    true
}

/// Whether the tests can run; skips (see [`skip`]) otherwise.
pub fn skip_unless_root(test: &str) -> bool {
    !nix::unistd::geteuid().is_root()
        && skip(
            test,
            "network namespaces need root (run the netns tests as root)",
        )
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command` in network namespace `namespace`, panicking with its stderr on failure.
pub fn run_in(namespace: &str, command: &[&str]) {
    let output = Command::new("ip")
        .args(["netns", "exec", namespace])
        .args(command)
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} in {namespace}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes `namespace` a direct-routing server: the VIP on `lo` as a /32, never answered for
/// in ARP (`arp_ignore=1`, `arp_announce=2`), and no reverse-path filter.
pub fn take_the_vip_on_lo(namespace: &str) {
    ip(&[
        "-n",
        namespace,
        "address",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    run_in(
        namespace,
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.eth0.rp_filter=0",
        ],
    );
}

/// Polls `condition` every 10 ms until it holds or `within` passed; returns whether it held.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn namespace_path(namespace: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(namespace)
}

/// Moves the calling thread into the lab namespace `namespace` (for a test's own sockets).
pub fn enter_namespace(namespace: &str) {
    enter(&namespace_path(namespace));
}

/// Runs `work` on a thread inside the lab namespace `namespace` (the test's own sockets)
/// and returns its result; a panic there is the caller's.
pub fn in_namespace<T: Send + 'static>(
    namespace: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let namespace = namespace.to_owned();
    std::thread::spawn(move || {
        enter_namespace(&namespace);
        work()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) {
    let file = File::open(path).expect("open namespace");
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter namespace");
}

/// Namespaces `hft-<test>-<pid>-sw` (a bridge `br0` with 10.213.0.254/24, the client's
/// side) and `hft-<test>-<pid>-nI` (node I: `eth0` with 10.213.0.I/24, wired to port `pI`
/// of the bridge). Deleted on drop.
pub struct Lab {
    switch: String,
    nodes: Vec<String>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Builds the lab with `nodes` nodes (numbered from 1).
    pub fn new(test: &str, nodes: usize) -> Lab {
        let prefix = format!("hft-{test}-{}", std::process::id());
        let mut lab = Lab {
            switch: format!("{prefix}-sw"),
            nodes: Vec::new(),
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        ip(&["netns", "add", &lab.switch]);
        let switch = lab.switch.clone();
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &switch,
            "address",
            "add",
            "10.213.0.254/24",
            "dev",
            "br0",
        ]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for number in 1..=nodes {
            let node = format!("{prefix}-n{number}");
            // Registered before it exists, so a failure below still deletes it.
            lab.nodes.push(node.clone());
            ip(&["netns", "add", &node]);
            let port = format!("p{number}");
            ip(&[
                "-n",
                &switch,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                NODE_INTERFACE,
                "netns",
                &node,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &port, "up"]);
            let address = format!("{}/24", Lab::address(number));
            ip(&[
                "-n",
                &node,
                "address",
                "add",
                &address,
                "dev",
                NODE_INTERFACE,
            ]);
            ip(&["-n", &node, "link", "set", NODE_INTERFACE, "up"]);
            ip(&["-n", &node, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Node `number`'s own address.
    pub fn address(number: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 0, u8::try_from(number).expect("node number"))
    }

    /// Node `number`'s namespace.
    pub fn node(&self, number: usize) -> &str {
        &self.nodes[number - 1]
    }

    /// The switch namespace (where the client probes from).
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// The test's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Cuts node `number`'s link: its switch port goes down, so the node's interface loses
    /// carrier (a pulled cable or a dead switch port).
    pub fn cut(&self, number: usize) {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("p{number}"),
            "down",
        ]);
    }

    /// Partitions node `number` from the others: its port leaves the bridge while both
    /// ends keep their link up (a switch that stops forwarding).
    pub fn partition(&self, number: usize) {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("p{number}"),
            "nomaster",
        ]);
    }

    /// Isolates node `number`'s switch port: the bridge forwards nothing between two
    /// isolated ports, so isolating two nodes cuts them from each other (multicast
    /// included) while both still reach the switch and every other node.
    pub fn isolate(&self, number: usize) {
        let port = format!("p{number}");
        let output = Command::new("bridge")
            .args([
                "-n",
                &self.switch,
                "link",
                "set",
                "dev",
                &port,
                "isolated",
                "on",
            ])
            .output()
            .expect("run bridge");
        assert!(
            output.status.success(),
            "bridge link set dev {port} isolated on: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Ends [`Lab::partition`] of node `number`.
    pub fn rejoin(&self, number: usize) {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("p{number}"),
            "master",
            "br0",
        ]);
    }

    /// Reconnects node `number` after [`Lab::cut`].
    pub fn heal(&self, number: usize) {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("p{number}"),
            "up",
        ]);
    }

    /// Whether node `number` has the VIP on its interface.
    pub fn has_vip(&self, number: usize) -> bool {
        has_vip(self.node(number))
    }

    /// The nodes (numbered from 1) that have the VIP now.
    pub fn vip_holders(&self) -> Vec<usize> {
        (1..=self.nodes.len())
            .filter(|&number| self.has_vip(number))
            .collect()
    }

    /// Starts the node service of node `number`: answers every connection on
    /// [`SERVICE_PORT`] with `n<number>`.
    pub fn service(&self, number: usize) -> Service {
        Service::start(
            self.node(number),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, SERVICE_PORT)),
            format!("n{number}"),
        )
    }

    /// Starts probing the VIP's service from the switch namespace.
    pub fn probe(&self) -> Probe {
        Probe::start(self.switch(), SocketAddr::from((VIP, SERVICE_PORT)))
    }

    /// Starts polling every node's addresses for the VIP.
    pub fn watch_vip(&self) -> VipWatch {
        VipWatch::start(self.nodes.clone())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for namespace in self.nodes.iter().chain([&self.switch]) {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn has_vip(namespace: &str) -> bool {
    let output = Command::new("ip")
        .args([
            "-n",
            namespace,
            "-o",
            "-4",
            "address",
            "show",
            "dev",
            NODE_INTERFACE,
        ])
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&output.stdout).contains(&format!(" {VIP}/"))
}

/// A TCP server in a namespace that writes a fixed reply to every client and closes.
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Service {
    /// Listens on `address` inside `namespace`.
    pub fn start(namespace: &str, address: SocketAddr, reply: String) -> Service {
        let path = namespace_path(namespace);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            enter(&path);
            let listener = TcpListener::bind(address).expect("bind the node service");
            listener.set_nonblocking(true).expect("non-blocking");
            let _ = ready_tx.send(());
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("node service listening");
        Service {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One probe: when it started and which node answered (`None`: no answer).
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the connection attempt started.
    pub at: Instant,
    /// The answering node's reply, if any.
    pub answer: Option<String>,
}

/// Connects to a service every [`POLL_INTERVAL`] and records who answered.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

/// How long one probe waits for the connection and the reply: on a local bridge an answer
/// takes well under a millisecond, and a short wait keeps the gaps measured tight.
const PROBE_TIMEOUT: Duration = Duration::from_millis(10);

impl Probe {
    /// Starts probing `target` from `namespace`.
    pub fn start(namespace: &str, target: SocketAddr) -> Probe {
        let path = namespace_path(namespace);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            enter(&path);
            let mut samples = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answer = ask(target);
                samples.push(Sample { at, answer });
                if let Some(rest) = POLL_INTERVAL.checked_sub(at.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            samples
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops probing and returns the samples.
    pub fn finish(mut self) -> ProbeLog {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .take()
            .expect("probe running")
            .join()
            .expect("probe thread");
        ProbeLog { samples }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ask(target: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    (!reply.is_empty()).then_some(reply)
}

/// What a probe saw.
#[derive(Debug, Clone)]
pub struct ProbeLog {
    /// Every attempt, in order.
    pub samples: Vec<Sample>,
}

impl ProbeLog {
    /// The longest time without an answer after `from`: from the last answer before a gap
    /// (or `from`) to the next answer.
    pub fn longest_gap_after(&self, from: Instant) -> Duration {
        let mut last = from;
        let mut longest = Duration::ZERO;
        for sample in self.samples.iter().filter(|sample| sample.at >= from) {
            if sample.answer.is_some() {
                longest = longest.max(sample.at - last);
                last = sample.at;
            }
        }
        longest
    }

    /// When `node` (`n1`, ...) first answered after `from`.
    pub fn first_answer_from(&self, node: &str, from: Instant) -> Option<Instant> {
        self.samples
            .iter()
            .find(|sample| sample.at >= from && sample.answer.as_deref() == Some(node))
            .map(|sample| sample.at)
    }

    /// The nodes that answered after `from`, in order of first answer.
    pub fn answerers_after(&self, from: Instant) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for answer in self
            .samples
            .iter()
            .filter(|sample| sample.at >= from)
            .filter_map(|sample| sample.answer.as_ref())
        {
            if !nodes.contains(answer) {
                nodes.push(answer.clone());
            }
        }
        nodes
    }
}

/// Reads every node's addresses every [`POLL_INTERVAL`] and records who has the VIP.
pub struct VipWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Holders>>>,
}

/// Which nodes (numbered from 1) held the VIP at one poll.
#[derive(Debug, Clone)]
pub struct Holders {
    /// When the poll finished.
    pub at: Instant,
    /// The nodes with the VIP.
    pub nodes: Vec<usize>,
}

impl VipWatch {
    fn start(namespaces: Vec<String>) -> VipWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut polls = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let nodes = namespaces
                    .iter()
                    .enumerate()
                    .filter(|(_, namespace)| has_vip(namespace))
                    .map(|(index, _)| index + 1)
                    .collect();
                polls.push(Holders {
                    at: Instant::now(),
                    nodes,
                });
                if let Some(rest) = POLL_INTERVAL.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            polls
        });
        VipWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching and returns the polls.
    pub fn finish(mut self) -> VipLog {
        self.stop.store(true, Ordering::Relaxed);
        let polls = self
            .thread
            .take()
            .expect("watch running")
            .join()
            .expect("watch thread");
        VipLog { polls }
    }
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a [`VipWatch`] saw.
#[derive(Debug, Clone)]
pub struct VipLog {
    /// Every poll, in order.
    pub polls: Vec<Holders>,
}

impl VipLog {
    /// The longest stretch with the VIP on more than one node after `from` (from the first
    /// poll that saw two holders to the first that saw at most one).
    pub fn longest_duplicate_after(&self, from: Instant) -> Duration {
        let mut longest = Duration::ZERO;
        let mut since = None;
        for poll in self.polls.iter().filter(|poll| poll.at >= from) {
            match (poll.nodes.len() > 1, since) {
                (true, None) => since = Some(poll.at),
                (false, Some(start)) => {
                    longest = longest.max(poll.at - start);
                    since = None;
                }
                _ => {}
            }
        }
        if let (Some(start), Some(last)) = (since, self.polls.last()) {
            longest = longest.max(last.at - start);
        }
        longest
    }

    /// When node `number` stopped holding the VIP for good after `from`: the first poll
    /// after its last holding one (or the first poll after `from` if it never held it).
    pub fn released_by(&self, number: usize, from: Instant) -> Option<Instant> {
        let polls: Vec<&Holders> = self.polls.iter().filter(|poll| poll.at >= from).collect();
        let next = match polls.iter().rposition(|poll| poll.nodes.contains(&number)) {
            Some(index) => polls.get(index + 1),
            None => polls.first(),
        };
        next.map(|poll| poll.at)
    }
}

/// The `hafront` binary under test.
pub fn hafront_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HAFRONT_BIN") {
        return PathBuf::from(path);
    }
    // target/debug/deps/<test> -> target/debug/hafront
    let executable = std::env::current_exe().expect("test executable path");
    let binary = executable
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("hafront");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p hafront` first (or set HAFRONT_BIN)",
        binary.display()
    );
    binary
}

/// A process started with `ip netns exec` (which execs it, so its pid is the program's),
/// logging into a file; SIGKILLed on drop if still running.
pub struct NodeProcess {
    child: Child,
    log: PathBuf,
    name: String,
}

impl NodeProcess {
    /// Runs `program` with `args` in `namespace`; output goes to `log`.
    pub fn spawn(namespace: &str, program: &Path, args: &[&str], log: PathBuf) -> NodeProcess {
        let output = File::create(&log).expect("create the log file");
        let child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("start the node process");
        NodeProcess {
            child,
            log,
            name: format!("{} in {namespace}", program.display()),
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory in KiB (`VmRSS`), `None` once it has ended.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("signal the node process");
    }

    /// Sends `signal` and waits up to `within` for the exit.
    pub fn stop_with(&mut self, signal: Signal, within: Duration) -> ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the node process") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?} of {signal}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.running() {
            // SIGTERM first so keepalived stops its children; SIGKILL after a grace period.
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && self.running() {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.running() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// An hafront daemon on one lab node.
pub struct Hafront {
    process: NodeProcess,
    config: PathBuf,
}

impl Hafront {
    /// Writes `body` (every section except `global`) as node `number`'s configuration,
    /// with its own state directory, control socket and log level, and starts the daemon.
    pub fn start(lab: &Lab, number: usize, body: &str) -> Hafront {
        let dir = lab.dir().join(format!("hafront-n{number}"));
        std::fs::create_dir_all(dir.join("state")).expect("state directory");
        let config = dir.join("hafront.yaml");
        let text = format!(
            "global:\n  node: n{number}\n  state_dir: {state}\n  control_socket: {socket}\n  log:\n    level: info,hafront_vrrp=debug,hafront_failover=debug\n{body}",
            state = dir.join("state").display(),
            socket = dir.join("control.sock").display(),
        );
        std::fs::write(&config, text).expect("write the configuration");
        let process = NodeProcess::spawn(
            lab.node(number),
            &hafront_binary(),
            &["run", "-c", config.to_str().expect("UTF-8 path")],
            dir.join("hafront.log"),
        );
        Hafront { process, config }
    }

    /// The configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// `hafront reload` of this daemon (through its control socket), panicking with what
    /// it printed unless the new configuration was applied.
    pub fn reload(&self) {
        let output = Command::new(hafront_binary())
            .args(["reload", "-c"])
            .arg(&self.config)
            .output()
            .expect("run hafront reload");
        assert!(
            output.status.success(),
            "reload failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Rewrites the configuration file with `edit` (which must change it), then
    /// [`Hafront::reload`]s.
    pub fn reload_with(&self, edit: impl FnOnce(&str) -> String) {
        let before = std::fs::read_to_string(&self.config).expect("read the configuration");
        let after = edit(&before);
        assert_ne!(before, after, "the edit changed nothing");
        std::fs::write(&self.config, after).expect("write the configuration");
        self.reload();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        let status = self
            .process
            .stop_with(Signal::SIGTERM, Duration::from_secs(5));
        assert!(
            status.success(),
            "hafront exited with {status:?}; log:\n{}",
            self.process.log()
        );
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(&mut self) {
        let status = self
            .process
            .stop_with(Signal::SIGKILL, Duration::from_secs(5));
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    }

    /// What the daemon logged.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The daemon's resident memory in KiB, `None` once it has ended.
    pub fn rss_kib(&self) -> Option<u64> {
        self.process.rss_kib()
    }

    /// `hafront status --json` of this daemon (through its control socket), `Null` when it
    /// does not answer.
    pub fn status(&self) -> serde_json::Value {
        let output = Command::new(hafront_binary())
            .args(["status", "--json", "-c"])
            .arg(&self.config)
            .output()
            .expect("run hafront status");
        if !output.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }
}

impl Hafront {
    /// Waits (at most `within`) until this daemon's first VRRP instance is BACKUP under
    /// `master` and has accepted `count` adverts more than when called: the event that
    /// proves it heard the master long enough to have acted on what it heard (preempted,
    /// say) had it been going to.
    pub fn wait_backup_hearing(&self, master: Ipv4Addr, count: u64, within: Duration) -> bool {
        let received = |status: &serde_json::Value| status["vrrp"][0]["adverts_received"].as_u64();
        let start = received(&self.status()).unwrap_or(0);
        wait_until(within, || {
            let status = self.status();
            let instance = &status["vrrp"][0];
            instance["state"] == "backup"
                && instance["master"] == master.to_string()
                && received(&status).is_some_and(|now| now >= start + count)
        })
    }
}

/// The VRRP section of an hafront configuration for the lab's VIP on `eth0`, with extra
/// instance keys (indented by 6 spaces) in `extra`.
pub fn vrrp_section(version: u8, priority: u8, interval: &str, extra: &str) -> String {
    format!(
        "vrrp:\n  instances:\n    vip:\n      interface: {NODE_INTERFACE}\n      vrid: 51\n      version: {version}\n      priority: {priority}\n      advert_interval: {interval}\n      virtual_addresses: [{VIP}/24]\n{extra}"
    )
}

/// keepalived on one lab node, in the foreground with its own pid files.
pub struct Keepalived {
    process: NodeProcess,
}

/// Where Debian installs keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

impl Keepalived {
    /// Runs keepalived (VRRP only) on node `number` with one instance for the lab's VIP.
    /// `auth_pass` is for v2 only.
    pub fn start(
        lab: &Lab,
        number: usize,
        version: u8,
        priority: u8,
        interval: &str,
        auth_pass: Option<&str>,
    ) -> Keepalived {
        let dir = lab.dir().join(format!("keepalived-n{number}"));
        std::fs::create_dir_all(&dir).expect("keepalived directory");
        let authentication = auth_pass
            .map(|pass| format!("    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}\n"))
            .unwrap_or_default();
        let config = format!(
            "global_defs {{\n    router_id n{number}\n    vrrp_version {version}\n    vrrp_garp_master_delay 0\n    vrrp_garp_master_repeat 3\n    vrrp_garp_interval 0.1\n    script_user root\n    enable_script_security\n}}\n\
             vrrp_instance vip {{\n    state BACKUP\n    interface {NODE_INTERFACE}\n    virtual_router_id 51\n    priority {priority}\n    advert_int {interval}\n{authentication}    virtual_ipaddress {{\n        {VIP}/24 dev {NODE_INTERFACE}\n    }}\n}}\n"
        );
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, config).expect("write keepalived.conf");
        let pid = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
        let process = NodeProcess::spawn(
            lab.node(number),
            Path::new(KEEPALIVED),
            &[
                "--dont-fork",
                "--log-console",
                "--vrrp",
                "--use-file",
                path.to_str().expect("UTF-8 path"),
                "--pid",
                &pid("keepalived.pid"),
                "--vrrp_pid",
                &pid("vrrp.pid"),
                "--checkers_pid",
                &pid("checkers.pid"),
            ],
            dir.join("keepalived.log"),
        );
        Keepalived { process }
    }

    /// The keepalived process.
    pub fn process(&mut self) -> &mut NodeProcess {
        &mut self.process
    }

    /// SIGTERM (keepalived resigns with priority 0), then waits for the exit.
    pub fn terminate(&mut self) {
        self.process
            .stop_with(Signal::SIGTERM, Duration::from_secs(5));
    }
}

pub mod cluster;
pub mod etcd;
pub mod mariadb;
pub mod story;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_a_failure_when_every_test_is_required() {
        // SAFETY: nextest runs each test in its own process; nothing else reads the
        // environment here.
        unsafe { std::env::set_var(REQUIRE_EVERY_TEST, "1") };
        let skipped = std::panic::catch_unwind(|| skip("a test", "a peer program is missing"));
        let message = skipped.expect_err("the skip must fail");
        let message = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            message.contains("a test cannot run: a peer program is missing"),
            "{message}"
        );
    }
}
