//! Direct routing (`forward: direct_routing`) end to end, with the real `hafront` binary in
//! lab namespaces: the director is the VRRP master, servers have the VIP on `lo`, clients
//! in the switch namespace reach the VIP and servers answer them directly.
//!
//! - Clients spread over the servers by weight, and a down server gets no new flows; a
//!   reload moves the relay to tc, another to `policy: first`.
//! - A VRRP FAULT detaches the program; the return to MASTER attaches it again.
//! - Real Redis: connections pinned to a server survive the removal of another server and
//!   its return (the flow table, not only Maglev's small disruption).
//! - Real MariaDB: queries through the VIP, the server sees the client's own address, and
//!   with `role: primary` the flows follow the writable server when the roles swap.
//! - Co-located pair: each node is director and server; VRRP failover and preemption move
//!   the program (a master turned backup detaches while it runs on),
//!   hafront itself puts the VIP on `lo` and keeps ARP for it quiet on the backup; a
//!   daemon killed with -9 leaves no program on its interface, and its restart as backup
//!   attaches none.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use hafront_netns_tests::mariadb::{
    APP_PASSWORD, APP_USER, CHECK_PASSWORD, CHECK_USER, LabMariaDb, MYSQL_PORT,
};
use hafront_netns_tests::{
    Hafront, Lab, NODE_INTERFACE, NodeProcess, SERVICE_PORT, VIP, in_namespace, skip_unless_root,
    take_the_vip_on_lo, vrrp_section, wait_until,
};

/// The Redis port on every server.
const REDIS_PORT: u16 = 6379;
/// Time for VRRP to elect, checks to rise and the program to attach.
const SETTLE: Duration = Duration::from_secs(10);

fn read_sysctl(namespace: &str, key: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", namespace, "sysctl", "-n", key])
        .output()
        .expect("run sysctl");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The hafront configuration of a director: one VRRP instance for the VIP, a tcp check,
/// a pool of `servers` (`(node, weight)`) on `port`, a direct-routing relay to it.
fn director_config(priority: u8, port: u16, servers: &[(usize, u32)], check: &str) -> String {
    let mut pool = String::new();
    for (number, weight) in servers {
        pool.push_str(&format!(
            "      - name: n{number}\n        address: {}:{port}\n        weight: {weight}\n",
            Lab::address(*number)
        ));
    }
    format!(
        "checks:\n  up:\n{check}pools:\n  svc:\n    check: up\n    servers:\n{pool}relays:\n  dr:\n    listen: [{VIP}:{port}]\n    pool: svc\n    forward: direct_routing\n{vrrp}",
        vrrp = vrrp_section(3, priority, "100ms", "")
    )
}

const TCP_CHECK: &str =
    "    kind: tcp\n    interval: 100ms\n    timeout: 100ms\n    rise: 1\n    fall: 2\n";

/// Connects `count` times to the VIP's node service from the switch and returns who
/// answered each time (`n2`, ...; `refused`/`timeout` for failures).
fn answers(lab: &Lab, count: usize) -> Vec<String> {
    in_namespace(lab.switch(), move || {
        (0..count)
            .map(|_| {
                let target = SocketAddr::from((VIP, SERVICE_PORT));
                match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                    Ok(mut stream) => {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut reply = String::new();
                        match stream.read_to_string(&mut reply) {
                            Ok(_) => reply.trim().to_owned(),
                            Err(_) => "timeout".to_owned(),
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::TimedOut => "timeout".to_owned(),
                    Err(_) => "refused".to_owned(),
                }
            })
            .collect()
    })
}

fn count(answers: &[String], who: &str) -> usize {
    answers.iter().filter(|answer| *answer == who).count()
}

/// The direct-routing relay `dr` in a daemon's status.
fn direct_status(hafront: &Hafront) -> serde_json::Value {
    let status = hafront.status();
    status["direct"]
        .as_array()
        .and_then(|relays| relays.iter().find(|relay| relay["name"] == "dr").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Whether `hafront` has the relay's services live with exactly `servers` taking flows.
fn forwarding_to(hafront: &Hafront, servers: &[&str]) -> bool {
    let relay = direct_status(hafront);
    if relay["attached"] != true {
        return false;
    }
    let mut names: Vec<String> = relay["servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .filter(|server| server["forwarding"] == true)
                .filter_map(|server| server["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names == servers
}

/// `ip -d link show` of node `number`'s interface (an XDP program shows as `prog/xdp`).
fn link_details(lab: &Lab, number: usize) -> String {
    let link = Command::new("ip")
        .args([
            "-n",
            lab.node(number),
            "-d",
            "link",
            "show",
            "dev",
            NODE_INTERFACE,
        ])
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&link.stdout).into_owned()
}

/// Whether node `number`'s interface has an XDP program or a tc classifier on it.
fn has_program(lab: &Lab, number: usize) -> bool {
    let link = link_details(lab, number);
    let tc = Command::new("tc")
        .args([
            "-n",
            lab.node(number),
            "filter",
            "show",
            "dev",
            NODE_INTERFACE,
            "ingress",
        ])
        .output()
        .expect("run tc");
    let tc = String::from_utf8_lossy(&tc.stdout);
    link.contains("prog/xdp") || link.contains(" xdp") || tc.contains("bpf")
}

#[test]
fn clients_spread_by_weight_and_a_down_server_gets_no_new_flows() {
    if skip_unless_root("clients_spread_by_weight_and_a_down_server_gets_no_new_flows") {
        return;
    }
    let lab = Lab::new("drspread", 3);
    take_the_vip_on_lo(lab.node(2));
    take_the_vip_on_lo(lab.node(3));
    let mut service2 = Some(lab.service(2));
    let mut service3 = Some(lab.service(3));
    let director = Hafront::start(
        &lab,
        1,
        &director_config(150, SERVICE_PORT, &[(2, 3), (3, 1)], TCP_CHECK),
    );
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2", "n3"])),
        "the director never forwarded to n2 and n3: {}\n{}",
        director_status_text(&director),
        director.log()
    );

    let spread = answers(&lab, 400);
    let (n2, n3) = (count(&spread, "n2"), count(&spread, "n3"));
    assert_eq!(n2 + n3, 400, "some clients were not served: {spread:?}");
    // Weights 3:1 over hashed flows: n2 should take about 75 %.
    let share = n2 as f64 / 400.0;
    assert!(
        (0.62..=0.88).contains(&share),
        "n2 took {n2} of 400 clients ({share:.2}), n3 {n3}; weights are 3:1"
    );
    let relay = direct_status(&director);
    let flows: u64 = relay["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|server| server["flows"].as_u64())
        .sum();
    assert!(
        flows >= 400,
        "the counters show {flows} flows for 400 clients: {relay}"
    );
    let packets = relay["servers"][0]["packets"].as_u64().unwrap_or(0);
    assert!(packets > 0, "no packets counted: {relay}");
    let text = director_status_text(&director);
    assert!(
        text.contains("DIRECT ROUTING")
            && text.contains("forwarding on eth0")
            && text.contains("xdp_generic")
            && text
                .lines()
                .filter(|line| line.trim_start().starts_with("dr "))
                .count()
                == 2,
        "hafront status does not show the relay's two servers forwarding:\n{text}"
    );

    // n3's service stops: once its check says so it gets no new flow.
    drop(service3.take());
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2"])),
        "n3 still takes flows after its service stopped: {}",
        director_status_text(&director)
    );
    let after = answers(&lab, 100);
    assert_eq!(
        count(&after, "n2"),
        100,
        "a client went elsewhere than n2: {after:?}"
    );

    // Back up: it takes new flows again.
    service3 = Some(lab.service(3));
    assert!(wait_until(SETTLE, || forwarding_to(
        &director,
        &["n2", "n3"]
    )));
    let again = answers(&lab, 200);
    assert!(
        count(&again, "n3") > 10,
        "n3 took no flows after it came back: {again:?}"
    );

    assert_eq!(direct_status(&director)["hook"], "xdp_generic");

    // A reload that moves the relay to the tc hook restarts it on a new program: it
    // forwards again, through tc, and the XDP program is gone.
    director.reload_with(|config| {
        config.replace(
            "forward: direct_routing\n",
            "forward: direct_routing\n    hook: tc\n",
        )
    });
    assert!(
        wait_until(SETTLE, || direct_status(&director)["hook"] == "tc"
            && forwarding_to(&director, &["n2", "n3"])),
        "not forwarding through tc after the reload: {}\n{}",
        director_status_text(&director),
        director.log()
    );
    assert!(
        !link_details(&lab, 1).contains("prog/xdp"),
        "the XDP program stayed after the move to tc"
    );
    let through_tc = answers(&lab, 100);
    assert_eq!(
        count(&through_tc, "n2") + count(&through_tc, "n3"),
        100,
        "clients lost through tc: {through_tc:?}"
    );

    // `policy: first`: every new flow to the first server in pool order, then to the next
    // one when it goes down.
    director.reload_with(|config| {
        config.replace("    pool: svc\n", "    pool: svc\n    policy: first\n")
    });
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2"])),
        "policy first does not forward to n2 alone: {}",
        director_status_text(&director)
    );
    let to_first = answers(&lab, 50);
    assert_eq!(count(&to_first, "n2"), 50, "{to_first:?}");
    drop(service2.take());
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n3"])),
        "policy first did not move to n3 when n2 went down: {}",
        director_status_text(&director)
    );
    let to_next = answers(&lab, 50);
    assert_eq!(count(&to_next, "n3"), 50, "{to_next:?}");
    drop(service3);
}

/// A VRRP FAULT (here: the tracked pool has no server up) takes the relay's services out
/// and detaches the program along with the VIP; back to MASTER, it attaches again.
#[test]
fn a_fault_detaches_the_program_and_the_return_to_master_attaches_it() {
    if skip_unless_root("a_fault_detaches_the_program_and_the_return_to_master_attaches_it") {
        return;
    }
    let lab = Lab::new("drfault", 2);
    take_the_vip_on_lo(lab.node(2));
    let mut service = Some(lab.service(2));
    let config = director_config(150, SERVICE_PORT, &[(2, 1)], TCP_CHECK)
        + "      track:\n        - pool: svc\n";
    let director = Hafront::start(&lab, 1, &config);
    let forwarding = || forwarding_to(&director, &["n2"]) && has_program(&lab, 1);
    assert!(
        wait_until(SETTLE, forwarding),
        "the director never forwarded to n2: {}\n{}",
        director_status_text(&director),
        director.log()
    );
    assert_eq!(count(&answers(&lab, 20), "n2"), 20);

    drop(service.take());
    assert!(
        wait_until(SETTLE, || !has_program(&lab, 1) && !lab.has_vip(1)),
        "the program or the VIP stayed after the instance went to FAULT: {}\n{}",
        director_status_text(&director),
        director.log()
    );
    assert!(director.log().contains("FAULT"), "{}", director.log());
    assert_eq!(direct_status(&director)["attached"], false);

    service = Some(lab.service(2));
    assert!(
        wait_until(SETTLE, forwarding),
        "not forwarding again after the return to MASTER: {}\n{}",
        director_status_text(&director),
        director.log()
    );
    assert_eq!(count(&answers(&lab, 20), "n2"), 20);
    drop(service);
}

fn director_status_text(hafront: &Hafront) -> String {
    let output = Command::new(hafront_netns_tests::hafront_binary())
        .args(["status", "-c"])
        .arg(hafront.config())
        .output()
        .expect("run hafront status");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Redis server on node `number`, listening on every address (the VIP on `lo` too), its
/// key `node` set to `n<number>`.
fn start_redis(lab: &Lab, number: usize) -> NodeProcess {
    let dir = lab.dir().join(format!("redis-n{number}"));
    std::fs::create_dir_all(&dir).expect("redis directory");
    let process = NodeProcess::spawn(
        lab.node(number),
        std::path::Path::new("/usr/bin/redis-server"),
        &[
            "--port",
            &REDIS_PORT.to_string(),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().expect("UTF-8 path"),
        ],
        dir.join("redis.log"),
    );
    let address = SocketAddr::from((Lab::address(number), REDIS_PORT));
    let name = format!("n{number}");
    let set = in_namespace(lab.switch(), move || {
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&address, Duration::from_millis(200))
                .ok()
                .and_then(|stream| {
                    let mut client = Redis::new(stream);
                    client.command(&["SET", "node", &name])
                })
                .is_some_and(|reply| reply == "OK")
        })
    });
    assert!(set, "redis on n{number} did not start:\n{}", process.log());
    process
}

/// A minimal RESP client: commands as arrays, replies of one line or one bulk string.
struct Redis {
    reader: BufReader<TcpStream>,
}

impl Redis {
    fn new(stream: TcpStream) -> Redis {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        Redis {
            reader: BufReader::new(stream),
        }
    }

    fn connect_vip() -> Option<Redis> {
        let target = SocketAddr::from((VIP, REDIS_PORT));
        TcpStream::connect_timeout(&target, Duration::from_secs(1))
            .ok()
            .map(Redis::new)
    }

    /// Sends `args`; the reply's text, `None` when the connection failed.
    fn command(&mut self, args: &[&str]) -> Option<String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.reader.get_mut().write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        match line.as_bytes().first()? {
            b'+' | b'-' | b':' => Some(line[1..].to_owned()),
            b'$' => {
                let length: usize = line[1..].parse().ok()?;
                let mut bulk = vec![0; length + 2];
                self.reader.read_exact(&mut bulk).ok()?;
                bulk.truncate(length);
                String::from_utf8(bulk).ok()
            }
            _ => None,
        }
    }
}

/// How many of the `held` connections answer `GET node` from `node`.
fn answering_from(held: &mut [(String, Redis)], node: &str) -> usize {
    held.iter_mut()
        .filter_map(|(_, client)| client.command(&["GET", "node"]))
        .filter(|answer| answer == node)
        .count()
}

/// Of `count` new connections through the VIP, how many reach `node`.
fn new_connections_to(count: usize, node: &str) -> usize {
    (0..count)
        .filter_map(|_| Redis::connect_vip()?.command(&["GET", "node"]))
        .filter(|answer| answer == node)
        .count()
}

#[test]
fn redis_connections_stay_on_their_server_when_another_leaves_and_returns() {
    if skip_unless_root("redis_connections_stay_on_their_server_when_another_leaves_and_returns") {
        return;
    }
    let lab = Lab::new("drredis", 3);
    take_the_vip_on_lo(lab.node(2));
    take_the_vip_on_lo(lab.node(3));
    let _redis2 = start_redis(&lab, 2);
    let mut redis3 = Some(start_redis(&lab, 3));
    let director = Hafront::start(
        &lab,
        1,
        &director_config(150, REDIS_PORT, &[(2, 1), (3, 1)], TCP_CHECK),
    );
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2", "n3"])),
        "the director never forwarded to n2 and n3:\n{}",
        director.log()
    );

    // Hold 60 connections: each knows its server; about half are on n2.
    let held = in_namespace(lab.switch(), || {
        let mut held = Vec::new();
        for _ in 0..60 {
            let mut client = Redis::connect_vip().expect("connect to the VIP");
            let node = client
                .command(&["GET", "node"])
                .expect("GET through the VIP");
            held.push((node, client));
        }
        held
    });
    let on_n2 = held.iter().filter(|(node, _)| node == "n2").count();
    assert!(
        (10..=50).contains(&on_n2),
        "{on_n2} of 60 connections on n2: not spread"
    );

    // n3 goes down: n2's connections keep working, on n2.
    drop(redis3.take());
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2"])),
        "n3 still takes flows after redis stopped:\n{}",
        director.log()
    );
    let (held, survivors) = in_namespace(lab.switch(), move || {
        let mut held = held;
        held.retain(|(node, _)| node == "n2");
        let survivors = answering_from(&mut held, "n2");
        (held, survivors)
    });
    assert_eq!(survivors, on_n2, "connections on n2 broke when n3 left");

    // n3 returns, taking part of the hash space back: every connection on n2 stays there
    // (without the flow table, about half would be sent to n3 and reset).
    let _redis3 = start_redis(&lab, 3);
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2", "n3"])),
        "n3 never came back:\n{}",
        director.log()
    );
    let (held_after_return, survivors, fresh_on_n3) = in_namespace(lab.switch(), move || {
        let mut held = held;
        let survivors = answering_from(&mut held, "n2");
        (held, survivors, new_connections_to(40, "n3"))
    });
    assert_eq!(
        survivors, on_n2,
        "connections pinned to n2 were moved when n3 returned"
    );
    assert!(
        fresh_on_n3 > 5,
        "only {fresh_on_n3} of 40 new connections on n3"
    );

    // A reload that changes the weights (not the relay) keeps the program attached and
    // every pinned connection on its server; new flows follow the new weights.
    let held = held_after_return;
    director.reload_with(|config| config.replacen("weight: 1", "weight: 9", 1));
    assert!(
        forwarding_to(&director, &["n2", "n3"]),
        "not forwarding after the reload"
    );
    let (survivors, fresh_on_n2) = in_namespace(lab.switch(), move || {
        let mut held = held;
        (
            answering_from(&mut held, "n2"),
            new_connections_to(100, "n2"),
        )
    });
    assert_eq!(survivors, on_n2, "a reload moved pinned connections");
    assert!(
        fresh_on_n2 >= 75,
        "n2, now weight 9 against 1, took {fresh_on_n2} of 100 new connections"
    );
}

/// The `@@server_id` of the server a new connection through the VIP reaches, checking
/// that the server saw the client's own address (direct routing does not proxy).
fn server_through_vip(lab: &Lab) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", lab.switch(), "mariadb", "--protocol=TCP"])
        .args(["-h", &VIP.to_string(), "-P", &MYSQL_PORT.to_string()])
        .args(["-u", APP_USER, &format!("-p{APP_PASSWORD}")])
        .args(["-N", "-B", "-e", "SELECT @@server_id, USER()"])
        .output()
        .expect("run mariadb");
    assert!(
        output.status.success(),
        "query through the VIP failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut fields = text.split_whitespace();
    let server = fields.next().unwrap_or_default().to_owned();
    assert!(
        fields.next().unwrap_or_default().ends_with("@10.213.0.254"),
        "the server saw another address than the client's: {text}"
    );
    server
}

#[test]
fn mariadb_behind_direct_routing_sees_the_clients_own_address_and_follows_the_primary() {
    if skip_unless_root(
        "mariadb_behind_direct_routing_sees_the_clients_own_address_and_follows_the_primary",
    ) {
        return;
    }
    let lab = Lab::new("drmaria", 3);
    take_the_vip_on_lo(lab.node(2));
    take_the_vip_on_lo(lab.node(3));
    let db2 = LabMariaDb::start(lab.node(2), 2, "0.0.0.0");
    let db3 = LabMariaDb::start(lab.node(3), 3, "0.0.0.0");
    db2.create_schema();
    db3.create_schema();
    let mut director = Hafront::start(
        &lab,
        1,
        &director_config(150, MYSQL_PORT, &[(2, 1), (3, 1)], TCP_CHECK),
    );
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2", "n3"])),
        "the director never forwarded to n2 and n3:\n{}",
        director.log()
    );
    // Queries through the VIP from the switch, each on a new connection.
    let servers: std::collections::BTreeSet<String> =
        (0..20).map(|_| server_through_vip(&lab)).collect();
    assert_eq!(
        servers.into_iter().collect::<Vec<_>>(),
        ["2", "3"],
        "20 connections did not reach both servers"
    );

    // `role: primary` with a role-aware check: only the writable server gets flows, and
    // they follow it when the roles swap.
    director.terminate();
    db2.query("SET GLOBAL read_only = OFF");
    db3.query("SET GLOBAL read_only = ON");
    let password = lab.dir().join("check.pass");
    std::fs::write(&password, CHECK_PASSWORD).expect("write the check password");
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod the check password");
    let mysql_check = format!(
        "    kind: mysql\n    interval: 100ms\n    timeout: 100ms\n    rise: 1\n    fall: 1\n    role: true\n    user: {CHECK_USER}\n    password: {{ file: {} }}\n",
        password.display()
    );
    let config = director_config(150, MYSQL_PORT, &[(2, 1), (3, 1)], &mysql_check).replace(
        "forward: direct_routing\n",
        "forward: direct_routing\n    role: primary\n",
    );
    let director = Hafront::start(&lab, 1, &config);
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n2"])),
        "the director did not forward to the primary n2 alone: {}\n{}",
        director_status_text(&director),
        director.log()
    );
    assert!((0..10).all(|_| server_through_vip(&lab) == "2"));
    db2.query("SET GLOBAL read_only = ON");
    db3.query("SET GLOBAL read_only = OFF");
    assert!(
        wait_until(SETTLE, || forwarding_to(&director, &["n3"])),
        "the flows did not follow the primary to n3: {}",
        director_status_text(&director)
    );
    assert!((0..10).all(|_| server_through_vip(&lab) == "3"));
    drop((db2, db3));
}

#[test]
fn colocated_directors_fail_over_and_a_killed_daemon_leaves_no_program() {
    if skip_unless_root("colocated_directors_fail_over_and_a_killed_daemon_leaves_no_program") {
        return;
    }
    let lab = Lab::new("drpair", 3);
    // n1 and n2 are directors and servers (hafront prepares them); n3 only a server.
    take_the_vip_on_lo(lab.node(3));
    let _services: Vec<_> = (1..=3).map(|number| lab.service(number)).collect();
    let config =
        |priority| director_config(priority, SERVICE_PORT, &[(1, 1), (2, 1), (3, 1)], TCP_CHECK);
    let mut n1 = Hafront::start(&lab, 1, &config(150));
    let mut n2 = Hafront::start(&lab, 2, &config(100));
    let all = ["n1", "n2", "n3"];
    assert!(
        wait_until(SETTLE, || forwarding_to(&n1, &all)),
        "n1 never forwarded to every server: {}\n{}",
        director_status_text(&n1),
        n1.log()
    );
    // The backup runs no program, and hafront set it up as a server.
    assert!(direct_status(&n2)["attached"] == false);
    assert!(!has_program(&lab, 2), "the backup has a program attached");
    for number in [1, 2] {
        assert_eq!(
            read_sysctl(lab.node(number), "net.ipv4.conf.eth0.arp_ignore"),
            "1"
        );
        assert_eq!(
            read_sysctl(lab.node(number), "net.ipv4.conf.eth0.arp_announce"),
            "2"
        );
    }
    let spread = answers(&lab, 150);
    for who in all {
        assert!(
            count(&spread, who) > 15,
            "{who} got too few clients: {spread:?}"
        );
    }

    // n1 stops: n2 becomes master and forwards to all three, n1 now a plain server.
    n1.terminate();
    assert!(
        !has_program(&lab, 1),
        "n1 left its program after a clean stop"
    );
    assert!(
        wait_until(SETTLE, || forwarding_to(&n2, &all)),
        "n2 never took over: {}\n{}",
        director_status_text(&n2),
        n2.log()
    );
    let spread = answers(&lab, 150);
    for who in all {
        assert!(
            count(&spread, who) > 15,
            "after failover {who} got too few: {spread:?}"
        );
    }

    // n1 returns and preempts: n2 goes back to BACKUP and detaches while it runs on.
    let mut n1 = Hafront::start(&lab, 1, &config(150));
    assert!(
        wait_until(SETTLE, || forwarding_to(&n1, &all)),
        "n1 did not take over again:\n{}",
        n1.log()
    );
    assert!(
        wait_until(SETTLE, || direct_status(&n2)["attached"] == false
            && !has_program(&lab, 2)),
        "n2 still forwards as backup: {}",
        director_status_text(&n2)
    );
    // n1 stops again: n2 is master again.
    n1.terminate();
    assert!(
        wait_until(SETTLE, || forwarding_to(&n2, &all)),
        "n2 never took over the second time:\n{}",
        n2.log()
    );

    // n2 is killed with -9: its program goes with it.
    n2.kill();
    assert!(
        wait_until(Duration::from_secs(2), || !has_program(&lab, 2)),
        "a program stayed on n2's interface after kill -9"
    );
    // n1 comes back as master; n2 restarts as backup and attaches nothing.
    let n1 = Hafront::start(&lab, 1, &config(150));
    assert!(
        wait_until(SETTLE, || forwarding_to(&n1, &all)),
        "{}",
        n1.log()
    );
    let n2 = Hafront::start(&lab, 2, &config(100));
    assert!(
        wait_until(SETTLE, || direct_status(&n2)["name"] == "dr"
            && n2.wait_backup_hearing(
                Lab::address(1),
                3,
                Duration::from_secs(3)
            )),
        "n2 did not settle as backup:\n{}",
        n2.log()
    );
    assert!(
        !has_program(&lab, 2),
        "the restarted backup attached a program"
    );
    let spread = answers(&lab, 90);
    assert_eq!(
        count(&spread, "n1") + count(&spread, "n2") + count(&spread, "n3"),
        90,
        "clients lost after the restarts: {spread:?}"
    );
}
