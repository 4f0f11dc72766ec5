//! VRRP under hostile traffic: a third host on the bridge floods valid adverts (TTL 255,
//! good checksums) as fast as it can for 10 s while two hafront nodes share two VIPs, one
//! with VRRPv3 at 100 ms and one with VRRPv2 at 1 s.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hafront_netns_tests::{
    Hafront, Lab, VIP, enter_namespace, skip_unless_root, vrrp_section, wait_until,
};
use hafront_vrrp::machine::{MISMATCH_PEERS, REPLIES_PER_INTERVAL};
use hafront_vrrp::{Advert, Auth, Centiseconds, ChecksumForm, Version};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeVal;
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// The v3 instance's advert interval and VRID (the lab's VIP).
const INTERVAL: Duration = Duration::from_millis(100);
const VRID: u8 = 51;

/// The v2 instance: its advert interval, VRID and VIP.
const V2_INTERVAL: Duration = Duration::from_secs(1);
const V2_VRID: u8 = 52;
const V2_VIP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 101);

/// The node that floods (it runs no hafront).
const FLOODER: usize = 3;

/// How long the flood lasts at most, and how many packets it sends at most.
const FLOOD_FOR: Duration = Duration::from_secs(10);
const FLOOD_MAX_PACKETS: u64 = 10_000_000;

/// Spoofed sources of the wrong address list: 10.213.0.10 to 10.213.0.109.
const SPOOFED: u8 = 100;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const PROTOCOL_VRRP: i32 = 112;

/// An IPv4 packet (TTL 255, protocol 112, to the VRRP group) carrying an advert of
/// `version` (at the lab's interval for that version).
fn forged(
    version: Version,
    src: Ipv4Addr,
    vrid: u8,
    priority: u8,
    addresses: &[Ipv4Addr],
) -> Vec<u8> {
    let interval = match version {
        Version::V2 => V2_INTERVAL,
        Version::V3 => INTERVAL,
    };
    let advert = Advert {
        version,
        vrid,
        priority,
        interval: Centiseconds(u16::try_from(interval.as_millis() / 10).expect("interval")),
        auth: Auth::None,
        addresses: addresses.iter().copied().map(IpAddr::V4).collect(),
    };
    let message = advert
        .emit(src.into(), GROUP.into(), ChecksumForm::PseudoHeader)
        .expect("a valid advert");
    let total = u16::try_from(20 + message.len()).expect("small packet");
    // The kernel fills in the identification and the header checksum (IP_HDRINCL).
    let mut packet = vec![0x45, 0];
    packet.extend(total.to_be_bytes());
    packet.extend([0, 0, 0, 0, 255, 112, 0, 0]);
    packet.extend(src.octets());
    packet.extend(GROUP.octets());
    packet.extend(message);
    packet
}

/// The three kinds in turn, for both instances: their VRID at priority 1 from the
/// flooder; their VRID with a wrong address list from [`SPOOFED`] sources; other VRIDs.
fn flood_packets() -> Vec<Vec<u8>> {
    let own = Lab::address(FLOODER);
    let wrong = [Ipv4Addr::new(10, 213, 0, 200)];
    (0..SPOOFED)
        .flat_map(|i| {
            let spoofed = Ipv4Addr::new(10, 213, 0, 10 + i);
            [
                forged(Version::V3, own, VRID, 1, &[VIP]),
                forged(Version::V3, spoofed, VRID, 100, &wrong),
                forged(Version::V3, own, 1 + i % 50, 100, &wrong),
                forged(Version::V2, own, V2_VRID, 1, &[V2_VIP]),
                forged(Version::V2, spoofed, V2_VRID, 100, &wrong),
                forged(Version::V2, own, 100 + i, 100, &wrong),
            ]
        })
        .collect()
}

/// Both instances' configuration at `priority`.
fn config(priority: u8) -> String {
    format!(
        "{}    v2:\n      interface: eth0\n      vrid: {V2_VRID}\n      version: 2\n      priority: {priority}\n      advert_interval: 1s\n      virtual_addresses: [{V2_VIP}/24]\n",
        vrrp_section(3, priority, "100ms", "")
    )
}

/// Floods from `namespace` until [`FLOOD_FOR`] passed or [`FLOOD_MAX_PACKETS`] went out;
/// returns the packets sent and for how long.
fn flood(namespace: String) -> JoinHandle<(u64, Duration)> {
    std::thread::spawn(move || {
        enter_namespace(&namespace);
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTOCOL_VRRP)))
            .expect("raw socket");
        socket.set_header_included_v4(true).expect("IP_HDRINCL");
        socket.bind_device(Some(b"eth0")).expect("bind to eth0");
        let packets = flood_packets();
        let destination = SocketAddr::from((GROUP, 0)).into();
        let start = Instant::now();
        let mut sent = 0;
        'flood: while sent < FLOOD_MAX_PACKETS {
            for packet in &packets {
                // A full queue (ENOBUFS) just means the link is saturated.
                if socket.send_to(packet, &destination).is_ok() {
                    sent += 1;
                }
            }
            if start.elapsed() >= FLOOD_FOR {
                break 'flood;
            }
        }
        (sent, start.elapsed())
    })
}

/// A v3 advert seen on the bridge: when this thread read it, and when the kernel received
/// it (wall clock, unaffected by this thread's scheduling).
type Seen = (Instant, Duration);

/// Records the v3 adverts from `source` that pass on the bridge (a kernel filter drops the
/// rest of the flood before it reaches this thread) until `stop`.
fn observe(namespace: String, source: Ipv4Addr, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Seen>> {
    std::thread::spawn(move || {
        enter_namespace(&namespace);
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTOCOL_VRRP)))
            .expect("raw socket");
        // Accept when the IPv4 source (offset 12) is `source` and the VRRP version and type
        // (offset 20) are 3 and 1; drop the rest.
        let filter = [
            SockFilter::new(0x20, 0, 0, 12),
            SockFilter::new(0x15, 0, 3, u32::from(source)),
            SockFilter::new(0x30, 0, 0, 20),
            SockFilter::new(0x15, 0, 1, 0x31),
            SockFilter::new(0x06, 0, 0, 0xffff),
            SockFilter::new(0x06, 0, 0, 0),
        ];
        socket.attach_filter(&filter).expect("attach the filter");
        socket
            .join_multicast_v4(&GROUP, &Ipv4Addr::new(10, 213, 0, 254))
            .expect("join the VRRP group");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        setsockopt(&socket, sockopt::ReceiveTimestamp, &true).expect("SO_TIMESTAMP");
        let mut seen = Vec::new();
        let mut buffer = [0u8; 1500];
        let mut control = nix::cmsg_space!(TimeVal);
        while !stop.load(Ordering::Relaxed) {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let Ok(message) = recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestamp(time) => Some(
                        Duration::from_secs(time.tv_sec().unsigned_abs())
                            + Duration::from_micros(time.tv_usec().unsigned_abs()),
                    ),
                    _ => None,
                })
            });
            seen.push((Instant::now(), stamp.expect("a receive timestamp")));
        }
        seen
    })
}

/// `hafront status --json` of `instance` on `node`.
fn instance_status(node: &Hafront, instance: &str) -> serde_json::Value {
    node.status()["vrrp"]
        .as_array()
        .and_then(|instances| instances.iter().find(|i| i["name"] == instance).cloned())
        .unwrap_or_default()
}

/// Adverts sent by each instance (v3, v2) of `node`.
fn adverts_sent(node: &Hafront) -> [u64; 2] {
    ["vip", "v2"].map(|instance| {
        instance_status(node, instance)["adverts_sent"]
            .as_u64()
            .expect("adverts_sent in hafront status --json")
    })
}

fn log_lines(node: &Hafront) -> usize {
    node.log().lines().count()
}

#[test]
fn a_flood_of_valid_adverts_changes_nothing_and_gets_a_bounded_answer() {
    if skip_unless_root("a_flood_of_valid_adverts_changes_nothing_and_gets_a_bounded_answer") {
        return;
    }
    let lab = Lab::new("flood", 3);
    // The flooder reaches the group on its link (no route leaves the namespace).
    hafront_netns_tests::ip(&[
        "-n",
        lab.node(FLOODER),
        "route",
        "add",
        "224.0.0.0/4",
        "dev",
        "eth0",
    ]);
    let _services = [lab.service(1), lab.service(2)];
    let n1 = Hafront::start(&lab, 1, &config(200));
    let n2 = Hafront::start(&lab, 2, &config(100));
    let states = || {
        [&n1, &n2].map(|node| {
            ["vip", "v2"].map(|instance| instance_status(node, instance)["state"].clone())
        })
    };
    // The v2 instance elects after 3 x 1 s + skew.
    assert!(
        wait_until(Duration::from_secs(6), || lab.vip_holders() == [1]
            && states() == [["master", "master"], ["backup", "backup"]]),
        "n1 never became the only master: {:?}",
        states()
    );
    let (sent_before, lines_before) = (adverts_sent(&n1), [log_lines(&n1), log_lines(&n2)]);
    let rss_before = [n1.rss_kib(), n2.rss_kib()].map(|rss| rss.expect("running"));
    let stop = Arc::new(AtomicBool::new(false));
    let observer = observe(lab.switch().to_owned(), Lab::address(1), Arc::clone(&stop));
    let probe = lab.probe();
    let watch = lab.watch_vip();

    // A quiet second first: the gaps between adverts without the flood, for comparison.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (packets, lasted) = flood(lab.node(FLOODER).to_owned())
        .join()
        .expect("flood thread");
    let sent_after = adverts_sent(&n1);
    let sent = [0, 1].map(|i| sent_after[i] - sent_before[i]);
    let measured = started.elapsed();
    std::thread::sleep(3 * INTERVAL);
    stop.store(true, Ordering::Relaxed);
    let seen = observer.join().expect("observer thread");
    let answers = probe.finish();
    let vips = watch.finish();
    let rss_after = [n1.rss_kib(), n2.rss_kib()].map(|rss| rss.expect("running"));
    let lines = [
        log_lines(&n1) - lines_before[0],
        log_lines(&n2) - lines_before[1],
    ];
    let status = instance_status(&n1, "vip");
    let longest_gap = |during: &dyn Fn(Instant, Instant) -> bool| {
        seen.windows(2)
            .filter(|pair| during(pair[0].0, pair[1].0))
            .map(|pair| pair[1].1.saturating_sub(pair[0].1))
            .max()
    };
    let longest_advert_gap =
        longest_gap(&|first, next| first >= started && next <= started + lasted)
            .expect("adverts observed during the flood");
    let quiet_gap = longest_gap(&|_, next| next < started).unwrap_or_default();
    let client_gap = answers.longest_gap_after(started);
    eprintln!(
        "flood: {packets} adverts in {lasted:?} ({:.0}/s); n1 sent {sent:?} adverts (v3, v2) in {measured:?}, \
         {} observed, longest gap {longest_advert_gap:?} (quiet: {quiet_gap:?}); log lines {lines:?}; RSS KiB {rss_before:?} -> {rss_after:?}; \
         client gap {client_gap:?}; n1 dropped {}",
        packets as f64 / lasted.as_secs_f64(),
        seen.len(),
        status["dropped"]
    );

    assert!(packets > 100_000, "the flood sent only {packets} packets");
    assert_eq!(lab.vip_holders(), [1], "n1 lost the VIP or n2 took it");
    assert_eq!(
        states(),
        [["master", "master"], ["backup", "backup"]],
        "states after the flood"
    );
    assert_eq!(
        vips.longest_duplicate_after(started),
        Duration::ZERO,
        "both nodes held the VIP"
    );
    for ((node, name), before) in [(&n1, "n1"), (&n2, "n2")].into_iter().zip(lines_before) {
        let log = node.log();
        let during: Vec<&str> = log.lines().skip(before).collect();
        assert!(
            !during
                .iter()
                .any(|line| line.contains("VRRP instance changed state")),
            "{name} changed state during the flood:\n{}",
            during.join("\n")
        );
    }
    // Its own rate, plus at most REPLIES_PER_INTERVAL answers per interval.
    for ((sent, interval), version) in sent.into_iter().zip([INTERVAL, V2_INTERVAL]).zip([3, 2]) {
        let intervals = measured.as_millis() / interval.as_millis() + 1;
        let bound = (u128::from(REPLIES_PER_INTERVAL) + 1) * intervals;
        assert!(
            u128::from(sent) <= bound,
            "v{version}: n1 sent {sent} adverts in {measured:?}, bound {bound}"
        );
        assert!(
            u128::from(sent) >= (intervals - 1) * 9 / 10,
            "v{version}: n1 sent {sent} adverts in {measured:?}: timers starved"
        );
    }
    assert!(
        longest_advert_gap < INTERVAL + INTERVAL / 2,
        "n1's adverts paused for {longest_advert_gap:?}"
    );
    // The VIP checks above are the precise ones; a client connecting across the flooded
    // bridge of a busy host may wait a while, but a takeover would show as seconds.
    assert!(
        client_gap < Duration::from_secs(1),
        "clients saw no answer for {client_gap:?}"
    );
    for (before, after) in rss_before.iter().zip(&rss_after) {
        assert!(
            after.saturating_sub(*before) < 8 * 1024,
            "memory grew from {before} to {after} KiB"
        );
    }
    for (count, name) in lines.iter().zip(["n1", "n2"]) {
        assert!(*count < 150, "{name} logged {count} lines during the flood");
    }
    // The mismatch is reported, not drowned: once per spoofed peer at most, and summed up.
    let log = n1.log();
    let reports = log
        .matches("peer advertises another virtual address list")
        .count();
    assert!(
        (2..=2 * MISMATCH_PEERS).contains(&reports),
        "{reports} mismatch reports"
    );
    assert!(
        log.contains("VRRP adverts dropped in the last 10s"),
        "no drop summary:\n{log}"
    );
}
