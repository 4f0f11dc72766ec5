//! The Linux driver on real interfaces: two network namespaces joined by a veth pair
//! (10.213.0.0/24), one driver (or keepalived) in each. Needs root; skipped otherwise.
//! Every namespace, thread and process a test creates is removed on every exit path.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hafront_vrrp::linux::{Control, Driver, DriverConfig, Event};
use hafront_vrrp::{
    Auth, ChecksumForm, DropReason, GarpConfig, InstanceConfig, Reason, State, Version,
};
use tokio::sync::{mpsc, oneshot};

const VIP: &str = "10.213.0.100";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two namespaces `a` and `b`, `veth0` (10.213.0.1) in `a` wired to `veth1` (10.213.0.2)
/// in `b`; deleted on drop.
struct Lan {
    a: String,
    b: String,
}

impl Lan {
    fn new(test: &str) -> Lan {
        let pid = std::process::id();
        let lan = Lan {
            a: format!("vrrp-{test}-{pid}-a"),
            b: format!("vrrp-{test}-{pid}-b"),
        };
        // The guard exists before the first namespace, so a failure below still cleans up.
        ip(&["netns", "add", &lan.a]);
        ip(&["netns", "add", &lan.b]);
        ip(&[
            "-n", &lan.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
            &lan.b,
        ]);
        for (namespace, interface, address) in [
            (&lan.a, "veth0", "10.213.0.1/24"),
            (&lan.b, "veth1", "10.213.0.2/24"),
        ] {
            ip(&["-n", namespace, "address", "add", address, "dev", interface]);
            ip(&["-n", namespace, "link", "set", interface, "up"]);
            ip(&["-n", namespace, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// Whether `address` is on `interface` in `namespace`, and its valid lifetime.
    fn address_on(namespace: &str, interface: &str, address: &str) -> Option<String> {
        let output = Command::new("ip")
            .args(["-n", namespace, "-o", "address", "show", "dev", interface])
            .output()
            .expect("run ip");
        let listing = String::from_utf8_lossy(&output.stdout).into_owned();
        listing
            .lines()
            .find(|line| line.contains(&format!(" {address}/")))
            .map(|line| {
                line.split("valid_lft")
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
    }

    fn vip_on_a(&self) -> Option<String> {
        Lan::address_on(&self.a, "veth0", VIP)
    }

    fn vip_on_b(&self) -> Option<String> {
        Lan::address_on(&self.b, "veth1", VIP)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for namespace in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

fn instance(primary: &str, priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: Duration::from_millis(200),
        virtual_addresses: vec![format!("{VIP}/24").parse().unwrap()],
        primary_address: primary.parse().unwrap(),
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth: Auth::None,
        garp: GarpConfig::default(),
    }
}

fn driver_config(interface: &str, instance: InstanceConfig) -> DriverConfig {
    DriverConfig {
        interface: interface.to_owned(),
        vip_lifetime: DriverConfig::default_vip_lifetime(instance.advert_interval),
        mastership_gate: false,
        instance,
        unicast_peers: Vec::new(),
        checksum: ChecksumForm::PseudoHeader,
    }
}

/// A driver running on its own thread inside a namespace.
struct Node {
    control: mpsc::Sender<Control>,
    kill: Option<oneshot::Sender<()>>,
    events: mpsc::Receiver<Event>,
    drops: Option<std::sync::mpsc::Receiver<std::sync::Arc<hafront_vrrp::linux::DropCounters>>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn spawn(namespace: &str, config: DriverConfig) -> Node {
        let (control, control_rx) = mpsc::channel(8);
        let (kill, kill_rx) = oneshot::channel();
        let (events_tx, events) = mpsc::channel(hafront_vrrp::linux::EVENT_BACKLOG);
        let (drops_tx, drops) = std::sync::mpsc::channel();
        let netns = PathBuf::from("/run/netns").join(namespace);
        let thread = std::thread::spawn(move || {
            let file = File::open(&netns).expect("open namespace");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let driver = Driver::new(config, events_tx).await.expect("driver starts");
                let _ = drops_tx.send(driver.drop_counters());
                tokio::select! {
                    result = driver.run(control_rx) => result.expect("driver runs"),
                    // Dropping the running driver skips the shutdown: like SIGKILL.
                    _ = kill_rx => {}
                }
            });
        });
        Node {
            control,
            kill: Some(kill),
            events,
            drops: Some(drops),
            thread: Some(thread),
        }
    }

    fn drop_counters(&mut self) -> std::sync::Arc<hafront_vrrp::linux::DropCounters> {
        self.drops
            .take()
            .expect("asked once")
            .recv_timeout(Duration::from_secs(5))
            .expect("driver started")
    }

    /// Waits for a transition into `state`, returning its reason and when it was seen.
    fn wait_for(&mut self, state: State, within: Duration) -> (Reason, Instant) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.events.try_recv() {
                Ok(Event::Transition { new, reason, .. }) if new == state => {
                    return (reason, Instant::now());
                }
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    panic!("driver stopped before {state}")
                }
            }
        }
        panic!("no transition to {state} within {within:?}");
    }

    fn shutdown(mut self) {
        self.control
            .blocking_send(Control::Shutdown)
            .expect("driver running");
        self.thread.take().unwrap().join().expect("driver thread");
    }

    fn kill(mut self) {
        let _ = self.kill.take().unwrap().send(());
        self.thread.take().unwrap().join().expect("driver thread");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `condition` every 20 ms until `within` has passed.
fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Skips the calling test for `why`; under `HAFRONT_REQUIRE_EVERY_TEST` (set by `test.sh`)
/// the skip is a failure.
fn skip(why: &str) {
    assert!(
        std::env::var_os("HAFRONT_REQUIRE_EVERY_TEST").is_none(),
        "cannot run: {why} (HAFRONT_REQUIRE_EVERY_TEST is set, so this is a failure)"
    );
    eprintln!("skipped: {why}");
}

macro_rules! require_root {
    () => {
        if !is_root() {
            skip("needs root to create network namespaces and raw sockets");
            return;
        }
    };
}

#[test]
fn killed_master_is_taken_over_and_its_vip_expires() {
    require_root!();
    let lan = Lan::new("kill");
    // A VIP left behind by an earlier run is removed at start.
    ip(&[
        "-n",
        &lan.b,
        "address",
        "add",
        &format!("{VIP}/24"),
        "dev",
        "veth1",
    ]);
    let mut a = Node::spawn(&lan.a, driver_config("veth0", instance("10.213.0.1", 200)));
    let mut b = Node::spawn(&lan.b, driver_config("veth1", instance("10.213.0.2", 100)));
    let drops_b = b.drop_counters();
    assert_eq!(
        a.wait_for(State::Backup, Duration::from_secs(5)).0,
        Reason::Startup
    );
    b.wait_for(State::Backup, Duration::from_secs(5));
    assert!(lan.vip_on_b().is_none(), "leftover VIP removed");
    assert_eq!(
        a.wait_for(State::Master, Duration::from_secs(5)).0,
        Reason::MasterDown
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_a()
        .is_some()));
    // Renewed lifetime, not permanent.
    let lifetime = lan.vip_on_a().unwrap();
    assert!(
        !lifetime.starts_with("forever"),
        "VIP lifetime is finite: {lifetime}"
    );
    // B hears A's adverts: it stays backup for a while.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        b.events.try_recv().is_err(),
        "B stays backup while A advertises"
    );
    assert!(lan.vip_on_b().is_none());
    assert_eq!(drops_b.get(DropReason::Checksum), 0);
    assert_eq!(drops_b.get(DropReason::HopLimit), 0);

    let killed = Instant::now();
    a.kill();
    let (reason, took_over) = b.wait_for(State::Master, Duration::from_secs(3));
    assert_eq!(reason, Reason::MasterDown);
    // 3 x 200 ms + skew 122 ms, measured from the last advert before the kill.
    let elapsed = took_over - killed;
    assert!(
        elapsed <= Duration::from_millis(1200),
        "takeover after {elapsed:?}"
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_b()
        .is_some()));
    assert!(
        eventually(Duration::from_secs(4), || lan.vip_on_a().is_none()),
        "the killed master's VIP expires"
    );
    b.shutdown();
    assert!(lan.vip_on_b().is_none(), "shutdown withdraws the VIP");
}

#[test]
fn graceful_shutdown_hands_over_after_skew_time() {
    require_root!();
    let lan = Lan::new("stop");
    let mut a = Node::spawn(&lan.a, driver_config("veth0", instance("10.213.0.1", 200)));
    a.wait_for(State::Master, Duration::from_secs(5));
    let mut b = Node::spawn(&lan.b, driver_config("veth1", instance("10.213.0.2", 100)));
    b.wait_for(State::Backup, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let stopped = Instant::now();
    a.shutdown();
    assert!(
        lan.vip_on_a().is_none(),
        "withdrawn before the driver returns"
    );
    let (reason, took_over) = b.wait_for(State::Master, Duration::from_secs(2));
    assert_eq!(reason, Reason::MasterResigned);
    // Skew time at priority 100 with a 200 ms interval: 122 ms.
    assert!(
        took_over - stopped < Duration::from_millis(500),
        "{:?}",
        took_over - stopped
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_b()
        .is_some()));
}

#[test]
fn fault_from_tracking_moves_the_vip() {
    require_root!();
    let lan = Lan::new("fault");
    let mut a = Node::spawn(&lan.a, driver_config("veth0", instance("10.213.0.1", 200)));
    a.wait_for(State::Master, Duration::from_secs(5));
    let mut b = Node::spawn(&lan.b, driver_config("veth1", instance("10.213.0.2", 100)));
    b.wait_for(State::Backup, Duration::from_secs(5));
    a.control.blocking_send(Control::SetFault(true)).unwrap();
    assert_eq!(
        a.wait_for(State::Fault, Duration::from_secs(1)).0,
        Reason::FaultRaised
    );
    assert_eq!(
        b.wait_for(State::Master, Duration::from_secs(1)).0,
        Reason::MasterResigned
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_b()
        .is_some()
        && lan.vip_on_a().is_none()));
    a.control.blocking_send(Control::SetFault(false)).unwrap();
    a.wait_for(State::Master, Duration::from_secs(3));
    assert_eq!(
        b.wait_for(State::Backup, Duration::from_secs(1)).0,
        Reason::HigherPriorityAdvert
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_a()
        .is_some()
        && lan.vip_on_b().is_none()));
}

#[test]
fn unicast_peers_elect_without_multicast() {
    require_root!();
    let lan = Lan::new("ucast");
    let unicast = |interface: &str, primary: &str, peer: &str, priority| DriverConfig {
        unicast_peers: vec![peer.parse::<IpAddr>().unwrap()],
        ..driver_config(interface, instance(primary, priority))
    };
    let mut a = Node::spawn(&lan.a, unicast("veth0", "10.213.0.1", "10.213.0.2", 100));
    let mut b = Node::spawn(&lan.b, unicast("veth1", "10.213.0.2", "10.213.0.1", 200));
    b.wait_for(State::Master, Duration::from_secs(5));
    a.wait_for(State::Backup, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        a.events.try_recv().is_err(),
        "A stays backup, hearing B by unicast"
    );
    assert!(lan.vip_on_b().is_some() && lan.vip_on_a().is_none());
}

/// keepalived in a namespace, killed by PID on drop.
struct Keepalived {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Keepalived {
    fn spawn(namespace: &str, config: &str) -> Keepalived {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        std::fs::write(path("keepalived.conf"), config).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", namespace, "/usr/sbin/keepalived"])
            .args([
                "--dont-fork",
                "--log-console",
                "--vrrp",
                "--use-file",
                &path("keepalived.conf"),
            ])
            .args([
                "--pid",
                &path("keepalived.pid"),
                "--vrrp_pid",
                &path("vrrp.pid"),
            ])
            .args(["--checkers_pid", &path("checkers.pid")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start keepalived");
        Keepalived { child, _dir: dir }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // `ip netns exec` execs keepalived, so this PID is keepalived's parent process;
        // its VRRP child exits with it.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn interoperates_with_keepalived() {
    require_root!();
    if !std::path::Path::new("/usr/sbin/keepalived").exists() {
        skip("keepalived is not installed");
        return;
    }
    let lan = Lan::new("ka");
    let config = format!(
        "global_defs {{\n  router_id hafront_test\n  vrrp_version 3\n}}\n\
         vrrp_instance test {{\n  state BACKUP\n  interface veth1\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 0.2\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    );
    let _keepalived = Keepalived::spawn(&lan.b, &config);
    // keepalived becomes master alone first.
    assert!(
        eventually(Duration::from_secs(10), || lan.vip_on_b().is_some()),
        "keepalived takes the VIP"
    );
    let mut a = Node::spawn(&lan.a, driver_config("veth0", instance("10.213.0.1", 200)));
    let drops = a.drop_counters();
    // We hear keepalived's lower-priority adverts, preempt, and keepalived yields.
    assert_eq!(
        a.wait_for(State::Master, Duration::from_secs(5)).0,
        Reason::MasterDown
    );
    assert!(
        eventually(Duration::from_secs(3), || lan.vip_on_b().is_none()
            && lan.vip_on_a().is_some()),
        "keepalived yields to the higher priority"
    );
    for reason in DropReason::ALL {
        assert_eq!(
            drops.get(reason),
            0,
            "no keepalived advert dropped for {}",
            reason.as_str()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        a.events.try_recv().is_err(),
        "keepalived accepts our adverts and stays backup"
    );
    a.shutdown();
    assert!(
        eventually(Duration::from_secs(2), || lan.vip_on_b().is_some()),
        "keepalived takes over after our priority 0 advert"
    );
}

/// The hardware address of `interface` in `namespace`.
fn mac_of(namespace: &str, interface: &str) -> [u8; 6] {
    let output = Command::new("ip")
        .args(["-n", namespace, "-o", "link", "show", "dev", interface])
        .output()
        .expect("run ip");
    let listing = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = listing
        .split("link/ether ")
        .nth(1)
        .expect("an Ethernet link");
    let mut mac = [0; 6];
    for (byte, hex) in mac.iter_mut().zip(text[..17].split(':')) {
        *byte = u8::from_str_radix(hex, 16).expect("hex");
    }
    mac
}

/// Collects ARP frames arriving in `namespace` for `within`, on a thread of its own.
fn capture_arp(namespace: &str, within: Duration) -> JoinHandle<Vec<Vec<u8>>> {
    let netns = PathBuf::from("/run/netns").join(namespace);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let file = File::open(&netns).expect("open namespace");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter namespace");
        // Packet sockets take the EtherType in network byte order.
        let protocol = socket2::Protocol::from(i32::from(0x0806u16.to_be()));
        let socket =
            socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(protocol))
                .expect("packet socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + within;
        let mut frames = Vec::new();
        let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); 1514];
        while Instant::now() < deadline {
            if let Ok(length) = socket.recv(&mut buffer) {
                // SAFETY: recv initialised the first `length` bytes.
                frames.push(
                    buffer[..length]
                        .iter()
                        .map(|byte| unsafe { byte.assume_init() })
                        .collect(),
                );
            }
        }
        frames
    });
    ready
        .recv_timeout(Duration::from_secs(5))
        .expect("capture ready");
    thread
}

#[test]
fn becoming_master_announces_the_vip() {
    require_root!();
    let lan = Lan::new("garp");
    let capture = capture_arp(&lan.b, Duration::from_secs(3));
    let mut a = Node::spawn(&lan.a, driver_config("veth0", instance("10.213.0.1", 200)));
    a.wait_for(State::Master, Duration::from_secs(3));
    let mac = mac_of(&lan.a, "veth0");
    let vip: [u8; 4] = VIP.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let announcements = capture
        .join()
        .expect("capture thread")
        .into_iter()
        .filter(|frame| {
            frame.len() >= 42 && frame[6..12] == mac && frame[28..32] == vip && frame[38..42] == vip
        })
        .count();
    assert_eq!(
        announcements, 3,
        "three gratuitous ARPs for the VIP from A's MAC"
    );
}

#[test]
fn primary_address_skips_vips() {
    require_root!();
    let lan = Lan::new("prim");
    ip(&[
        "-n",
        &lan.a,
        "address",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "veth0",
    ]);
    ip(&[
        "-n",
        &lan.a,
        "address",
        "add",
        "fe80::1/64",
        "dev",
        "veth0",
        "nodad",
    ]);
    let netns = PathBuf::from("/run/netns").join(&lan.a);
    let found = std::thread::spawn(move || {
        let file = File::open(&netns).expect("open namespace");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter namespace");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let vips = [format!("{VIP}/32").parse().unwrap()];
        runtime.block_on(async {
            (
                hafront_vrrp::linux::primary_address("veth0", false, &vips)
                    .await
                    .unwrap(),
                hafront_vrrp::linux::primary_address("veth0", true, &vips)
                    .await
                    .unwrap(),
                hafront_vrrp::linux::primary_address("nonexistent0", false, &vips)
                    .await
                    .is_err(),
            )
        })
    })
    .join()
    .unwrap();
    assert_eq!(found.0, "10.213.0.1".parse::<IpAddr>().unwrap());
    assert!(matches!(found.1, IpAddr::V6(v6) if v6.is_unicast_link_local()));
    assert!(found.2, "unknown interface is an error");
}

#[test]
fn interoperates_with_keepalived_v2_password_as_backup() {
    require_root!();
    if !std::path::Path::new("/usr/sbin/keepalived").exists() {
        skip("keepalived is not installed");
        return;
    }
    let lan = Lan::new("ka2");
    let config = format!(
        "global_defs {{\n  router_id hafront_test\n  vrrp_version 2\n}}\n\
         vrrp_instance test {{\n  state MASTER\n  interface veth1\n  virtual_router_id 51\n  \
         priority 200\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    \
         auth_pass s3cret\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    );
    let mut keepalived = Some(Keepalived::spawn(&lan.b, &config));
    assert!(
        eventually(Duration::from_secs(10), || lan.vip_on_b().is_some()),
        "keepalived takes the VIP"
    );
    let v2 = InstanceConfig {
        version: Version::V2,
        advert_interval: Duration::from_secs(1),
        auth: Auth::Password(hafront_vrrp::Password::new(b"s3cret").unwrap()),
        ..instance("10.213.0.1", 100)
    };
    let mut a = Node::spawn(&lan.a, driver_config("veth0", v2));
    let drops = a.drop_counters();
    a.wait_for(State::Backup, Duration::from_secs(5));
    // Longer than the master down interval (3.61 s): keepalived's adverts keep us backup.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        a.events.try_recv().is_err(),
        "stays backup while keepalived advertises"
    );
    for reason in DropReason::ALL {
        assert_eq!(
            drops.get(reason),
            0,
            "no keepalived advert dropped for {}",
            reason.as_str()
        );
    }
    let stopped = Instant::now();
    drop(keepalived.take());
    // keepalived resigns with priority 0 on SIGTERM: takeover after skew time (0.61 s).
    let (reason, took_over) = a.wait_for(State::Master, Duration::from_secs(5));
    assert_eq!(reason, Reason::MasterResigned);
    assert!(
        took_over - stopped < Duration::from_secs(2),
        "{:?}",
        took_over - stopped
    );
    assert!(eventually(Duration::from_secs(1), || lan
        .vip_on_a()
        .is_some()));
}
