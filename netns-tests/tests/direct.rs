//! The direct-routing director (`hafront-direct`) on a real segment: a client (the switch
//! namespace, 10.213.0.254), a director (node 1, the VIP on its `eth0`) and two Redis
//! servers (nodes 2 and 3, the VIP on `lo`, `arp_ignore=1`, `arp_announce=2`,
//! `rp_filter=0`, `redis-server` on the VIP and on their own address). The test thread
//! enters the director's namespace and drives the crate; clients run in threads that enter
//! the switch namespace. Each server answers `GET whoami` with its own name.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use hafront_direct::{Backend, Director, Hook, Service};
use hafront_netns_tests::{
    Lab, NODE_INTERFACE, NodeProcess, VIP, enter_namespace, in_namespace, ip, run_in, skip,
    skip_unless_root, take_the_vip_on_lo, wait_until,
};

const DIRECTOR: usize = 1;
const SERVER_A: usize = 2;
const SERVER_B: usize = 3;
const PORT: u16 = 6379;
const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Connect and reply timeout of one client request on the bridge.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

const SERVICE: Service = Service {
    address: VIP,
    port: PORT,
};

/// The lab with the servers running; the calling thread is in the director's namespace.
struct Topology {
    // Declared first: the servers stop before their namespaces go.
    _servers: Vec<NodeProcess>,
    lab: Lab,
}

impl Topology {
    /// `None` when the test cannot run here (and may skip).
    fn start(test: &str) -> Option<Topology> {
        Topology::start_with(test, false)
    }

    /// With `director_serves`, the director runs a Redis on the VIP too (co-located).
    fn start_with(test: &str, director_serves: bool) -> Option<Topology> {
        if skip_unless_root(test) {
            return None;
        }
        if !Path::new(REDIS_SERVER).exists() {
            skip(
                test,
                "redis-server is missing (apt-get install redis-server)",
            );
            return None;
        }
        let lab = Lab::new(test, 3);
        ip(&[
            "-n",
            lab.node(DIRECTOR),
            "address",
            "add",
            &format!("{VIP}/24"),
            "dev",
            NODE_INTERFACE,
        ]);
        let mut servers = Vec::new();
        let numbers: &[usize] = if director_serves {
            &[DIRECTOR, SERVER_A, SERVER_B]
        } else {
            &[SERVER_A, SERVER_B]
        };
        for &number in numbers {
            let namespace = lab.node(number);
            if number != DIRECTOR {
                take_the_vip_on_lo(namespace);
            }
            let dir = lab.dir().join(format!("redis-n{number}"));
            std::fs::create_dir_all(&dir).expect("Redis directory");
            let own = Lab::address(number).to_string();
            let vip = VIP.to_string();
            let port = PORT.to_string();
            servers.push(NodeProcess::spawn(
                namespace,
                Path::new(REDIS_SERVER),
                &[
                    "--port",
                    &port,
                    "--bind",
                    &vip,
                    &own,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                    "--dir",
                    dir.to_str().expect("UTF-8 path"),
                ],
                dir.join("redis.log"),
            ));
        }
        let switch = lab.switch().to_owned();
        let numbers = numbers.to_vec();
        in_namespace(&switch, move || {
            for number in numbers {
                let server = SocketAddr::from((Lab::address(number), PORT));
                assert!(
                    wait_until(Duration::from_secs(10), || request(server, &["PING"])
                        .is_ok_and(|reply| reply == "PONG")),
                    "redis-server on node {number} does not answer"
                );
                assert_eq!(
                    request(server, &["SET", "whoami", &name(number)]).expect("SET whoami"),
                    "OK"
                );
            }
        });
        enter_namespace(lab.node(DIRECTOR));
        Some(Topology {
            _servers: servers,
            lab,
        })
    }

    /// Runs `work` in the client's namespace.
    fn client<R: Send + 'static>(&self, work: impl FnOnce() -> R + Send + 'static) -> R {
        in_namespace(self.lab.switch(), work)
    }

    /// A director on `hook` forwarding the VIP's service to `backends`.
    fn forwarding(&self, hook: Hook, backends: &[Backend]) -> Director {
        let mut director = Director::load(NODE_INTERFACE, hook).expect("load the director");
        director
            .set_service(SERVICE, backends)
            .expect("set the service");
        director.attach().expect("attach");
        director
    }

    /// Server `number` as a director backend, its MAC resolved by the crate.
    fn backend(&self, number: usize, weight: u32) -> Backend {
        let address = Lab::address(number);
        let mac = hafront_direct::resolve_mac(NODE_INTERFACE, address)
            .expect("read the neighbour table")
            .unwrap_or_else(|| panic!("{address} does not answer ARP"));
        Backend {
            name: name(number),
            address,
            mac,
            weight,
            local: false,
        }
    }
}

fn name(number: usize) -> String {
    format!("server-{number}")
}

/// A Redis connection speaking just enough RESP for the tests.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(server: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&server, REQUEST_TIMEOUT)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `command` and reads a simple, error, integer or bulk reply as text.
    fn call(&mut self, command: &[&str]) -> std::io::Result<String> {
        let mut encoded = format!("*{}\r\n", command.len());
        for part in command {
            encoded.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        self.reader.get_mut().write_all(encoded.as_bytes())?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        let Some(length) = line.strip_prefix('$') else {
            return Ok(line.trim_start_matches(['+', ':']).to_owned());
        };
        let length: usize = length
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad bulk length {line}")))?;
        let mut body = vec![0; length + 2];
        self.reader.read_exact(&mut body)?;
        body.truncate(length);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Four bytes of IP options on every packet of `socket`: three no-ops and an end of list.
fn set_ip_options(socket: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let options: [u8; 4] = [1, 1, 1, 0];
    // SAFETY: the pointer and length describe `options`, valid for the call.
    let result = unsafe {
        nix::libc::setsockopt(
            socket.as_raw_fd(),
            nix::libc::IPPROTO_IP,
            nix::libc::IP_OPTIONS,
            options.as_ptr().cast(),
            options.len() as nix::libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One command on a fresh connection.
fn request(server: SocketAddr, command: &[&str]) -> std::io::Result<String> {
    Client::connect(server)?.call(command)
}

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, PORT))
}

/// `connections` fresh connections through the VIP, each asking who answers.
fn who_answers(connections: usize) -> Vec<String> {
    (0..connections)
        .map(|_| request(vip(), &["GET", "whoami"]).expect("a request through the VIP"))
        .collect()
}

fn count(answers: &[String], number: usize) -> usize {
    answers
        .iter()
        .filter(|answer| **answer == name(number))
        .count()
}

/// Connections server `number` accepted so far (counting the one asking).
fn connections_received(number: usize) -> u64 {
    let info = request(
        SocketAddr::from((Lab::address(number), PORT)),
        &["INFO", "stats"],
    )
    .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("total_connections_received in INFO stats")
}

fn spreads_clients_by_weight(test: &str, hook: Hook) {
    let Some(topology) = Topology::start(test) else {
        return;
    };
    assert_spreads_by_weight(&topology, hook);
}

/// A director on `hook` sends 400 new clients 3:1 to servers A and B, and counts them.
fn assert_spreads_by_weight(topology: &Topology, hook: Hook) {
    let networks = hafront_direct::interface_networks(NODE_INTERFACE).expect("networks");
    assert!(
        networks
            .iter()
            .any(|network| network.contains(&Lab::address(SERVER_A))),
        "{networks:?} should hold the servers' subnet"
    );
    let director = topology.forwarding(
        hook,
        &[topology.backend(SERVER_A, 3), topology.backend(SERVER_B, 1)],
    );
    assert_eq!(director.hook(), hook);

    const CONNECTIONS: usize = 400;
    let answers = topology.client(|| who_answers(CONNECTIONS));
    let (a, b) = (count(&answers, SERVER_A), count(&answers, SERVER_B));
    assert_eq!(a + b, CONNECTIONS, "{answers:?}");
    // 3:1 by weight: 300 expected on A, binomial sd 8.7; 0.65..0.85 is over 5 sd either way.
    let share = a as f64 / CONNECTIONS as f64;
    assert!((0.65..=0.85).contains(&share), "A took {a}, B {b}");

    let counters = director.counters().expect("counters");
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0].service, SERVICE);
    let by_name = |number: usize| {
        counters[0]
            .backends
            .iter()
            .find(|backend| backend.name == name(number))
            .expect("a server's counters")
            .clone()
    };
    for (number, seen) in [(SERVER_A, a), (SERVER_B, b)] {
        let backend = by_name(number);
        // Every connection is a new 4-tuple: one new flow each, and at least SYN, ACK,
        // request and FIN from the client.
        assert_eq!(backend.flows, seen as u64, "{backend:?}");
        assert!(backend.packets >= 4 * seen as u64, "{backend:?}");
        assert!(backend.bytes >= 54 * backend.packets, "{backend:?}");
    }
    assert_eq!(counters[0].unmatched_packets, 0);
}

#[test]
fn generic_xdp_spreads_clients_over_servers_by_weight_and_counts_them() {
    spreads_clients_by_weight("dr-xdp", Hook::XdpGeneric);
}

#[test]
fn tc_spreads_clients_over_servers_by_weight_and_counts_them() {
    spreads_clients_by_weight("dr-tc", Hook::Tc);
}

/// Native XDP on a veth (a container's interface): the kernel hands `XDP_TX` frames on only
/// to a peer that runs XDP itself, and an XDP frame keeps no note of a checksum left to the
/// NIC. Alone it forwards nothing; with an `XDP_PASS` program on the switch port and a
/// client that computes its checksums (as a physical NIC does), the driver hook forwards.
#[test]
fn native_xdp_on_a_veth_forwards_once_its_peer_runs_xdp() {
    let Some(topology) = Topology::start("dr-native") else {
        return;
    };
    let switch = topology.lab.switch().to_owned();
    for tool in ["/usr/sbin/ethtool", "/usr/bin/clang"] {
        if !Path::new(tool).exists() {
            skip(
                "dr-native",
                &format!("{tool} is missing (apt-get install ethtool clang)"),
            );
            return;
        }
    }
    run_in(&switch, &["ethtool", "-K", "br0", "tx", "off"]);
    let director = topology.forwarding(Hook::XdpNative, &[topology.backend(SERVER_A, 1)]);
    assert!(
        topology
            .client(|| request(vip(), &["GET", "whoami"]))
            .is_err(),
        "native XDP on a veth forwarded without XDP on its peer"
    );
    drop(director);

    let program = topology.lab.dir().join("pass.c");
    std::fs::write(
        &program,
        "__attribute__((section(\"xdp\"), used)) int pass(void *context) { return 2; }\n\
         __attribute__((section(\"license\"), used)) char license_text[] = \"GPL\";\n",
    )
    .expect("write the pass program");
    let object = program.with_extension("o");
    let built = std::process::Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&program)
        .arg("-o")
        .arg(&object)
        .status()
        .expect("run clang");
    assert!(built.success(), "clang could not build the pass program");
    let object = object.to_str().expect("UTF-8 path");
    ip(&[
        "-n", &switch, "link", "set", "dev", "p1", "xdpdrv", "obj", object, "sec", "xdp",
    ]);
    assert_spreads_by_weight(&topology, Hook::XdpNative);
}

#[test]
fn a_local_server_is_served_by_the_directors_own_stack() {
    let Some(topology) = Topology::start_with("dr-local", true) else {
        return;
    };
    let local = Backend {
        name: name(DIRECTOR),
        address: Lab::address(DIRECTOR),
        // Never used: a local server's packets go up this host's stack.
        mac: [0; 6],
        weight: 1,
        local: true,
    };
    let director = topology.forwarding(Hook::XdpGeneric, &[local, topology.backend(SERVER_A, 1)]);
    let answers = topology.client(|| who_answers(200));
    let (here, there) = (count(&answers, DIRECTOR), count(&answers, SERVER_A));
    assert_eq!(here + there, 200, "{answers:?}");
    // 1:1; 200 connections: sd 7, so 60..140 is over 5 sd either way.
    assert!(
        (60..=140).contains(&here),
        "director {here}, server {there}"
    );
    let counters = director.counters().expect("counters");
    assert_eq!(counters[0].backends[0].flows, here as u64, "{counters:?}");
}

/// Connections through the VIP kept open in the client's namespace.
struct KeptConnections {
    asks: std::sync::mpsc::Sender<()>,
    answers: std::sync::mpsc::Receiver<Vec<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeptConnections {
    /// Opens `count` connections from `namespace`.
    fn open(namespace: &str, count: usize) -> KeptConnections {
        let (asks, asked) = std::sync::mpsc::channel::<()>();
        let (answering, answers) = std::sync::mpsc::channel();
        let namespace = namespace.to_owned();
        let thread = std::thread::spawn(move || {
            enter_namespace(&namespace);
            let mut clients: Vec<Client> = (0..count)
                .map(|_| Client::connect(vip()).expect("connect through the VIP"))
                .collect();
            while asked.recv().is_ok() {
                let who = clients
                    .iter_mut()
                    .map(|client| {
                        client
                            .call(&["GET", "whoami"])
                            .unwrap_or_else(|error| format!("failed: {error}"))
                    })
                    .collect();
                if answering.send(who).is_err() {
                    return;
                }
            }
        });
        KeptConnections {
            asks,
            answers,
            thread: Some(thread),
        }
    }

    /// Who answers on each connection now.
    fn who(&self) -> Vec<String> {
        self.asks.send(()).expect("ask the kept connections");
        self.answers
            .recv_timeout(Duration::from_secs(10))
            .expect("the kept connections answer")
    }
}

impl Drop for KeptConnections {
    fn drop(&mut self) {
        let (asks, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.asks, asks));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn established_flows_stay_when_servers_come_and_go_and_a_removed_one_gets_no_new_flows() {
    let Some(topology) = Topology::start("dr-flows") else {
        return;
    };
    let mut director = Director::load(NODE_INTERFACE, Hook::Auto).expect("load the director");
    // On a veth, Auto means generic XDP.
    assert_eq!(director.hook(), Hook::XdpGeneric);
    let a = topology.backend(SERVER_A, 1);
    let b = topology.backend(SERVER_B, 1);
    director
        .set_service(SERVICE, std::slice::from_ref(&a))
        .expect("set the service");
    director.attach().expect("attach");
    director.attach().expect("attach is idempotent");
    let all_on_a = vec![name(SERVER_A); 8];
    let kept = KeptConnections::open(topology.lab.switch(), all_on_a.len());
    assert_eq!(kept.who(), all_on_a);

    // B joins: half of the table moves to it, but established flows stay pinned (without
    // the flow table each kept connection would move with probability 1/2).
    director
        .set_service(SERVICE, &[a.clone(), b.clone()])
        .expect("B joins");
    assert_eq!(
        kept.who(),
        all_on_a,
        "established flows moved when B joined"
    );
    let fresh = topology.client(|| who_answers(60));
    assert!(
        count(&fresh, SERVER_B) > 0 && count(&fresh, SERVER_A) > 0,
        "{fresh:?}"
    );

    // B leaves: A's flows stay, B gets no new connection.
    let before = topology.client(|| connections_received(SERVER_B));
    director
        .set_service(SERVICE, std::slice::from_ref(&a))
        .expect("remove B");
    assert_eq!(kept.who(), all_on_a, "flows to A broke when B left");
    let fresh = topology.client(|| who_answers(50));
    assert_eq!(count(&fresh, SERVER_A), 50, "{fresh:?}");
    let after = topology.client(|| connections_received(SERVER_B));
    // The only connection B accepted since is the INFO that asked.
    assert_eq!(after, before + 1, "B got new connections after its removal");
    let counters = director.counters().expect("counters");
    assert_eq!(counters[0].backends.len(), 1);
    assert!(counters[0].backends[0].flows >= 50 + 8, "{counters:?}");
    drop(kept);

    // No servers at all: the VIP's packets go up the director's stack (nothing listens
    // there: refused) and are counted as unmatched.
    director.set_service(SERVICE, &[]).expect("no servers");
    let refused = topology.client(|| request(vip(), &["PING"]).map_err(|error| error.kind()));
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));
    let counters = director.counters().expect("counters");
    assert!(counters[0].unmatched_packets > 0, "{counters:?}");
}

/// Table swaps are atomic for traffic in flight: while clients keep asking on established
/// connections and open new ones, the servers' weights change 40 times and no request fails,
/// no established one lands on another server, and every new one finds a server. A server that leaves takes its flows with it: their next packet re-picks
/// the remaining server, which knows no such connection and resets it (as with LVS).
#[test]
fn weight_changes_under_traffic_move_no_request_and_a_departed_servers_flows_are_reset() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some(topology) = Topology::start("dr-swap") else {
        return;
    };
    let weighted = |a: u32, b: u32| [topology.backend(SERVER_A, a), topology.backend(SERVER_B, b)];
    let mut director = topology.forwarding(Hook::XdpGeneric, &weighted(1, 1));

    const CONNECTIONS: usize = 16;
    let stop = Arc::new(AtomicBool::new(false));
    let asking = {
        let stop = Arc::clone(&stop);
        let switch = topology.lab.switch().to_owned();
        std::thread::spawn(move || {
            enter_namespace(&switch);
            let mut clients: Vec<Client> = (0..CONNECTIONS)
                .map(|_| Client::connect(vip()).expect("connect through the VIP"))
                .collect();
            let first: Vec<String> = clients
                .iter_mut()
                .map(|client| client.call(&["GET", "whoami"]).expect("first answer"))
                .collect();
            let servers = [name(SERVER_A), name(SERVER_B)];
            let (mut answered, mut fresh, mut wrong) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for (client, owner) in clients.iter_mut().zip(&first) {
                    match client.call(&["GET", "whoami"]) {
                        Ok(who) if who == *owner => answered += 1,
                        other => wrong.push(format!("{owner}: {other:?}")),
                    }
                }
                match request(vip(), &["GET", "whoami"]) {
                    Ok(who) if servers.contains(&who) => fresh += 1,
                    other => wrong.push(format!("new connection: {other:?}")),
                }
            }
            (clients, first, answered, fresh, wrong)
        })
    };
    for round in 0..40u32 {
        director
            .set_service(SERVICE, &weighted(1 + round % 7, 1 + round % 5))
            .expect("new weights");
        std::thread::sleep(Duration::from_millis(25));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut clients, first, answered, fresh, wrong) = asking.join().expect("the asking clients");
    assert!(wrong.is_empty(), "requests failed or moved: {wrong:?}");
    assert!(
        answered >= 10 * CONNECTIONS as u64 && fresh >= 10,
        "only {answered} requests and {fresh} new connections while the tables were swapped"
    );
    let on_b = count(&first, SERVER_B);
    assert!(
        on_b > 0 && on_b < CONNECTIONS,
        "one server got every flow: {first:?}"
    );

    director
        .set_service(SERVICE, &[topology.backend(SERVER_A, 1)])
        .expect("B leaves");
    let switch = topology.lab.switch().to_owned();
    let after = in_namespace(&switch, move || {
        clients
            .iter_mut()
            .map(|client| client.call(&["GET", "whoami"]).map_err(|e| e.kind()))
            .collect::<Vec<_>>()
    });
    for (owner, answer) in first.iter().zip(&after) {
        if *owner == name(SERVER_A) {
            assert_eq!(answer.as_deref(), Ok(owner.as_str()), "{after:?}");
        } else {
            assert_eq!(
                answer.as_deref(),
                Err(&std::io::ErrorKind::ConnectionReset),
                "a flow of the departed server was not reset: {after:?}"
            );
        }
    }
}

#[test]
fn after_detach_the_vip_port_reaches_the_director_itself() {
    let Some(topology) = Topology::start("dr-detach") else {
        return;
    };
    let mut director = Director::load(NODE_INTERFACE, Hook::XdpGeneric).expect("load");
    director
        .set_service(SERVICE, &[topology.backend(SERVER_A, 1)])
        .expect("set the service");
    assert!(!director.is_attached());
    director.attach().expect("attach");
    assert!(director.is_attached());
    let ours = hafront_direct::attached_programs(NODE_INTERFACE).expect("programs");
    assert!(
        ours.iter().any(|program| program.name == "hafront_xdp"),
        "{ours:?}"
    );
    assert_eq!(
        topology
            .client(|| request(vip(), &["GET", "whoami"]))
            .expect("through the VIP"),
        name(SERVER_A)
    );
    // Another port of the VIP is not a service: it reaches the director's own listener.
    let _own_service = topology.lab.service(DIRECTOR);
    let answer = topology.client(|| {
        let mut stream = TcpStream::connect_timeout(
            &SocketAddr::from((VIP, hafront_netns_tests::SERVICE_PORT)),
            REQUEST_TIMEOUT,
        )?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map(|_| answer)
    });
    assert_eq!(answer.expect("the director's own service"), "n1");
    // A client whose packets carry IP options (the TCP header further in) is forwarded.
    let through = topology.client(|| {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        set_ip_options(&socket)?;
        socket.connect_timeout(&vip().into(), REQUEST_TIMEOUT)?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        Client {
            reader: BufReader::new(stream),
        }
        .call(&["GET", "whoami"])
    });
    assert_eq!(through.expect("a request with IP options"), name(SERVER_A));

    director.detach().expect("detach");
    director.detach().expect("detach is idempotent");
    assert!(!director.is_attached());
    assert_eq!(
        hafront_direct::attached_programs(NODE_INTERFACE).expect("programs"),
        []
    );
    let refused = topology.client(|| request(vip(), &["PING"]).map_err(|error| error.kind()));
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));

    // Attached again, it forwards again; dropped, it detaches.
    director.attach().expect("attach again");
    assert_eq!(
        topology
            .client(|| request(vip(), &["GET", "whoami"]))
            .expect("through the VIP"),
        name(SERVER_A)
    );
    drop(director);
    assert_eq!(
        hafront_direct::attached_programs(NODE_INTERFACE).expect("programs"),
        []
    );
}

#[test]
fn a_director_killed_with_sigkill_leaves_nothing_forwarding_and_a_new_one_attaches() {
    let Some(topology) = Topology::start("dr-kill") else {
        return;
    };
    let holder = Path::new(env!("CARGO_BIN_EXE_hafront-direct-holder"));
    for (hook, program) in [("xdp", "hafront_xdp"), ("tc", "hafront_tc")] {
        let service = format!("{VIP}:{PORT}");
        let server = format!("a={}", Lab::address(SERVER_A));
        let mut process = NodeProcess::spawn(
            topology.lab.node(DIRECTOR),
            holder,
            &[NODE_INTERFACE, hook, &service, &server],
            topology.lab.dir().join(format!("holder-{hook}.log")),
        );
        assert!(
            wait_until(Duration::from_secs(10), || process
                .log()
                .contains("attached")),
            "the holder did not attach at {hook}: {}",
            process.log()
        );
        let programs = hafront_direct::attached_programs(NODE_INTERFACE).expect("programs");
        assert!(
            programs.iter().any(|attached| attached.name == program),
            "{hook}: {programs:?}"
        );
        assert_eq!(
            topology
                .client(|| request(vip(), &["GET", "whoami"]))
                .expect("through the VIP"),
            name(SERVER_A)
        );

        process.stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
        assert!(
            wait_until(Duration::from_secs(5), || {
                hafront_direct::attached_programs(NODE_INTERFACE)
                    .is_ok_and(|programs| programs.is_empty())
            }),
            "a program stayed on {NODE_INTERFACE} after kill -9 of the {hook} holder: {:?}",
            hafront_direct::attached_programs(NODE_INTERFACE)
        );
        let refused = topology.client(|| request(vip(), &["PING"]).map_err(|error| error.kind()));
        assert_eq!(
            refused,
            Err(std::io::ErrorKind::ConnectionRefused),
            "still forwarding after kill -9 of the {hook} holder"
        );
    }

    let _director = topology.forwarding(Hook::XdpGeneric, &[topology.backend(SERVER_B, 1)]);
    assert_eq!(
        topology
            .client(|| request(vip(), &["GET", "whoami"]))
            .expect("through the VIP"),
        name(SERVER_B)
    );
}

#[test]
fn load_removes_a_program_of_ours_left_attached_through_netlink() {
    let Some(topology) = Topology::start("dr-left") else {
        return;
    };
    // What a crashed daemon leaves when its kernel has no bpf_link for XDP: a netlink
    // attachment that outlives the process (here made by iproute2 from our object).
    let object = topology.lab.dir().join("director.o");
    std::fs::write(&object, hafront_direct::program_object()).expect("write the object");
    let object = object.to_str().expect("UTF-8 path");
    ip(&[
        "-n",
        topology.lab.node(DIRECTOR),
        "link",
        "set",
        "dev",
        NODE_INTERFACE,
        "xdpgeneric",
        "obj",
        object,
        "sec",
        "xdp",
    ]);
    let programs = hafront_direct::attached_programs(NODE_INTERFACE).expect("programs");
    assert!(
        programs.iter().any(|program| program.name == "hafront_xdp"),
        "{programs:?}"
    );

    let mut director = Director::load(NODE_INTERFACE, Hook::XdpGeneric).expect("load");
    assert_eq!(
        hafront_direct::attached_programs(NODE_INTERFACE).expect("programs"),
        []
    );
    director
        .set_service(SERVICE, &[topology.backend(SERVER_A, 1)])
        .expect("set the service");
    director.attach().expect("attach");
    assert_eq!(
        topology
            .client(|| request(vip(), &["GET", "whoami"]))
            .expect("through the VIP"),
        name(SERVER_A)
    );
}

#[test]
fn resolve_mac_reads_the_neighbour_table_and_provokes_arp() {
    let Some(_topology) = Topology::start("dr-arp") else {
        return;
    };
    let own_mac = |number: usize| {
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", _topology.lab.node(number), "cat"])
            .arg(format!("/sys/class/net/{NODE_INTERFACE}/address"))
            .output()
            .expect("read the MAC");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let text = |mac: [u8; 6]| {
        mac.iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    // Nothing was sent to B from the director yet: the first call has to ask by ARP.
    let b = hafront_direct::resolve_mac(NODE_INTERFACE, Lab::address(SERVER_B))
        .expect("resolve")
        .expect("B answers ARP");
    assert_eq!(text(b), own_mac(SERVER_B));
    // Nobody has this address.
    let nobody = Ipv4Addr::new(10, 213, 0, 77);
    assert_eq!(
        hafront_direct::resolve_mac(NODE_INTERFACE, nobody).expect("resolve"),
        None
    );
    assert!(matches!(
        hafront_direct::resolve_mac("no-such-if", nobody),
        Err(hafront_direct::DirectError::NoInterface { .. })
    ));
}
