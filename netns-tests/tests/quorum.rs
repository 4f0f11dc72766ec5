//! The `hafront-quorum` crate against a real three-member etcd cluster (n1–n3, each member in
//! its own namespace) with two claimants (n4, n5) on the same bridge: one holder at a time,
//! an immediate handover on release, self-fencing by deadline when the holder is cut off
//! from etcd, no change when one member dies, and Unreachable when all are gone.
//!
//! Claimants log with the system-wide monotonic clock, so the order of what two processes
//! saw is asserted directly.

use std::time::Duration;

use hafront_netns_tests::etcd::{Claimant, EtcdCluster, block, monotonic_nanos, skip_unless_etcd};
use hafront_netns_tests::story::ScenarioLock;
use hafront_netns_tests::{Lab, skip_unless_root, wait_until};

/// The lease TTL of every claimant.
const TTL: Duration = Duration::from_secs(2);
/// The key both claimants want.
const KEY: &str = "vrrp/vip";
/// How long a claimant may take to connect, get a lease and settle.
const SETTLE: Duration = Duration::from_secs(10);
/// A handover through a release: a watch event and one transaction.
const HANDOVER: Duration = Duration::from_millis(500);

struct Setup {
    a: Claimant,
    b: Claimant,
    etcd: EtcdCluster,
    lab: Lab,
    _turn: ScenarioLock,
}

/// etcd on n1–n3, claimant `a` on n4 holding the key, `b` on n5 wanting it too.
fn setup(test: &str) -> Setup {
    let turn = ScenarioLock::acquire();
    let lab = Lab::new(test, 5);
    let etcd = EtcdCluster::start(&lab, &[1, 2, 3]);
    let endpoints = etcd.endpoints();
    let mut a = Claimant::start(&lab, 4, "a", KEY, "2s", &endpoints);
    a.send("want");
    assert!(
        wait_until(SETTLE, || a.is("held")),
        "a never took the free key; log:\n{}\netcd:\n{}",
        a.log(),
        etcd.logs()
    );
    let mut b = Claimant::start(&lab, 5, "b", KEY, "2s", &endpoints);
    b.send("want");
    assert!(
        wait_until(SETTLE, || b
            .state()
            .is_some_and(|e| e.state == "heldby" && e.detail == "a")),
        "b never saw a as the holder; log:\n{}",
        b.log()
    );
    assert!(a.is("held"), "a lost the key to b; log:\n{}", a.log());
    assert_eq!(etcd.get("/hafront/vrrp/vip").as_deref(), Some("a"));
    Setup {
        a,
        b,
        etcd,
        lab,
        _turn: turn,
    }
}

fn skip(test: &str) -> bool {
    skip_unless_root(test) || skip_unless_etcd(test)
}

fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

#[test]
fn one_holder_at_a_time_and_a_release_hands_over_at_once() {
    if skip("one_holder_at_a_time_and_a_release_hands_over_at_once") {
        return;
    }
    let mut s = setup("qhand");

    // a gives the key up: b takes it at once, no TTL wait.
    let asked = monotonic_nanos();
    s.a.send("unwant");
    assert!(
        wait_until(HANDOVER, || s.b.is("held")),
        "b did not take the key within {HANDOVER:?} of a giving it up; a:\n{}\nb:\n{}",
        s.a.log(),
        s.b.log()
    );
    let a_free =
        s.a.first("heldby", asked)
            .or_else(|| s.a.first("free", asked));
    let b_held = s.b.first("held", asked).expect("b held");
    let a_left =
        s.a.events()
            .into_iter()
            .find(|e| e.at >= asked && e.state != "held");
    assert!(a_left.is_some(), "a never left held; log:\n{}", s.a.log());
    assert!(
        a_left.as_ref().unwrap().at <= b_held.at,
        "b held before a left; a: {a_left:?} {a_free:?}, b: {b_held:?}"
    );
    assert_eq!(s.etcd.get("/hafront/vrrp/vip").as_deref(), Some("b"));

    // a wants it back: b keeps it. b's daemon stops gracefully: its lease is revoked, a
    // takes the key at once.
    s.a.send("want");
    assert!(
        wait_until(SETTLE, || s
            .a
            .state()
            .is_some_and(|e| e.state == "heldby" && e.detail == "b")),
        "a never saw b as the holder; log:\n{}",
        s.a.log()
    );
    let released = monotonic_nanos();
    s.b.send("release");
    assert!(
        s.b.wait_for_exit(Duration::from_secs(2)),
        "b did not exit after release"
    );
    assert!(
        wait_until(HANDOVER, || s.a.is("held")),
        "a did not take the key within {HANDOVER:?} of b's release; a:\n{}\nb:\n{}",
        s.a.log(),
        s.b.log()
    );
    let a_held = s.a.first("held", released).expect("a held");
    eprintln!(
        "handover after a release: {:.1} ms",
        millis(a_held.at - released)
    );
    assert_eq!(s.etcd.get("/hafront/vrrp/vip").as_deref(), Some("a"));
}

#[test]
fn a_holder_cut_off_from_etcd_lets_go_at_its_deadline_before_the_other_takes_the_key() {
    if skip("a_holder_cut_off_from_etcd_lets_go_at_its_deadline_before_the_other_takes_the_key") {
        return;
    }
    let s = setup("qcut");

    let cut = monotonic_nanos();
    // a reaches none of the etcd members (b still does).
    block(&s.lab, 4, &[1, 2, 3]);
    assert!(
        wait_until(TTL * 3, || s.b.is("held")),
        "b never took the key after a was cut off; a:\n{}\nb:\n{}",
        s.a.log(),
        s.b.log()
    );
    let a_events = s.a.events();
    let last_until: u64 = a_events
        .iter()
        .filter(|e| e.state == "held")
        .map(|e| e.detail.parse().expect("deadline"))
        .max()
        .expect("a held");
    let a_left =
        s.a.first("unreachable", cut)
            .unwrap_or_else(|| panic!("a never left held after the cut; log:\n{}", s.a.log()));
    let b_held = s.b.first("held", cut).expect("b held");
    eprintln!(
        "a cut off: left held {:.1} ms after the cut ({:.1} ms after its deadline), b held {:.1} ms after the cut",
        millis(a_left.at - cut),
        (a_left.at as f64 - last_until as f64) / 1e6,
        millis(b_held.at - cut)
    );
    // Self-fencing by deadline: a let go by its own timer at its deadline (a few ms of
    // scheduling to notice), and before b could take the key.
    assert!(
        a_left.at <= last_until + 20_000_000,
        "a left held {:.1} ms after its deadline",
        (a_left.at - last_until) as f64 / 1e6
    );
    assert!(
        a_left.at < b_held.at,
        "b held the key ({}) before a let go ({})",
        b_held.at,
        a_left.at
    );
    // No renewal after the cut: the deadline was at most TTL after the cut.
    assert!(last_until <= cut + TTL.as_nanos() as u64);
}

#[test]
fn one_etcd_member_killed_the_holder_keeps_the_key() {
    if skip("one_etcd_member_killed_the_holder_keeps_the_key") {
        return;
    }
    let mut s = setup("qkill1");
    // A follower: losing the leader costs an election (up to two election timeouts, 1 s
    // here) during which no keep-alive succeeds, which a 2 s TTL cannot always cover (see
    // docs/quorum.md).
    let leader = s.etcd.leader().expect("an etcd leader");
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&n| n != leader)
        .expect("a follower");
    let killed = monotonic_nanos();
    s.etcd.kill(follower);
    // Three TTLs: several keep-alives must have gone to the surviving members.
    std::thread::sleep(TTL * 3);
    assert!(s.a.is("held"), "a lost the key; log:\n{}", s.a.log());
    assert!(
        s.a.events()
            .iter()
            .all(|e| e.at < killed || e.state == "held"),
        "a left held after one member died; log:\n{}",
        s.a.log()
    );
    assert!(
        s.b.events()
            .iter()
            .all(|e| e.at < killed || e.state == "heldby"),
        "b's view changed after one member died; log:\n{}",
        s.b.log()
    );
}

#[test]
fn all_etcd_members_gone_every_claim_is_unreachable() {
    if skip("all_etcd_members_gone_every_claim_is_unreachable") {
        return;
    }
    let mut s = setup("qkillall");
    let killed = monotonic_nanos();
    for member in [1, 2, 3] {
        s.etcd.kill(member);
    }
    assert!(
        wait_until(TTL * 2, || s.a.is("unreachable") && s.b.is("unreachable")),
        "not both unreachable; a:\n{}\nb:\n{}",
        s.a.log(),
        s.b.log()
    );
    let a_left = s.a.first("unreachable", killed).expect("a unreachable");
    assert!(
        a_left.at <= killed + TTL.as_nanos() as u64,
        "a held the key {:.1} ms after etcd died",
        millis(a_left.at - killed)
    );
}

#[test]
fn check_connect_reports_a_ttl_etcd_would_raise() {
    if skip("check_connect_reports_a_ttl_etcd_would_raise") {
        return;
    }
    let _turn = ScenarioLock::acquire();
    let lab = Lab::new("qcheck", 4);
    // etcd's default timing: its minimum lease TTL is 1.5 election timeouts, 2 s.
    let etcd = EtcdCluster::start_timed(&lab, &[1, 2, 3], 100, 1000);
    let config = lab.dir().join("hafront.yaml");
    let check = |ttl: &str| {
        std::fs::write(
            &config,
            format!(
                "quorum:\n  endpoints: [{}]\n  ttl: {ttl}\n",
                etcd.endpoints().join(", ")
            ),
        )
        .expect("write the configuration");
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", lab.node(4)])
            .arg(hafront_netns_tests::hafront_binary())
            .args(["check", "--connect", "-c"])
            .arg(&config)
            .output()
            .expect("run hafront check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, text) = check("1s");
    assert!(!ok, "{text}");
    assert!(
        text.contains(":3:8: quorum.ttl: etcd grants 2s for the 1s asked"),
        "{text}"
    );
    let (ok, text) = check("2s");
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "OK");
}
