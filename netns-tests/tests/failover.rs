//! Two and three hafront nodes on a bridge: failover on a link cut, graceful stop, kill -9,
//! preemption, nopreempt, partition and heal, and a tracked check failing.

use std::time::{Duration, Instant};

use hafront_netns_tests::{Hafront, Lab, skip_unless_root, vrrp_section, wait_until};

/// Advert interval of these tests: fast failover, short tests.
const INTERVAL: &str = "100ms";

/// [`INTERVAL`] as a duration.
const ADVERT: Duration = Duration::from_millis(100);

/// What a bound on a measured time allows beyond the protocol's figure: scheduling on a
/// loaded host, and the probes' and pollers' own periods.
const MARGIN: Duration = Duration::from_millis(500);

/// Time for a started lab to elect its master (startup down timer plus margin).
const SETTLE: Duration = Duration::from_secs(3);

/// RFC 5798's skew time of a backup of `priority`.
fn skew(priority: u8) -> Duration {
    ADVERT * (256 - u32::from(priority)) / 256
}

/// RFC 5798's master down interval of a backup of `priority`: how long it waits after
/// the last advert before taking over.
fn master_down(priority: u8) -> Duration {
    3 * ADVERT + skew(priority)
}

fn node(lab: &Lab, number: usize, priority: u8, extra: &str) -> Hafront {
    Hafront::start(lab, number, &vrrp_section(3, priority, INTERVAL, extra))
}

#[test]
fn link_cut_moves_the_vip_and_heal_preempts_back() {
    if skip_unless_root("link_cut_moves_the_vip_and_heal_preempts_back") {
        return;
    }
    let lab = Lab::new("cut", 2);
    let _services = [lab.service(1), lab.service(2)];
    let _n1 = node(&lab, 1, 200, "");
    let _n2 = node(&lab, 2, 100, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let probe = lab.probe();
    std::thread::sleep(Duration::from_millis(300));

    let cut = Instant::now();
    lab.cut(1);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [2]),
        "n2 did not take over, or n1 kept the VIP without carrier: {:?}",
        lab.vip_holders()
    );
    std::thread::sleep(Duration::from_millis(500));
    let healed = Instant::now();
    lab.heal(1);
    // n1 leaves FAULT as backup, hears n2's lower priority and preempts.
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [1]),
        "n2 kept the VIP after heal: {:?}",
        lab.vip_holders()
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = probe.finish();

    let takeover = log
        .first_answer_from("n2", cut)
        .expect("n2 answered after the cut");
    assert!(
        takeover - cut < master_down(100) + MARGIN,
        "failover took {:?}",
        takeover - cut
    );
    let back = log
        .first_answer_from("n1", healed)
        .expect("n1 answered after the heal");
    assert!(
        back - healed < Duration::from_secs(1),
        "failback took {:?}",
        back - healed
    );
    assert_eq!(
        log.answerers_after(back),
        ["n1"],
        "only n1 answers once it is back"
    );
}

#[test]
fn graceful_stop_hands_over_within_a_skew_time() {
    if skip_unless_root("graceful_stop_hands_over_within_a_skew_time") {
        return;
    }
    let lab = Lab::new("stop", 2);
    let _services = [lab.service(1), lab.service(2)];
    let mut n1 = node(&lab, 1, 200, "");
    let _n2 = node(&lab, 2, 150, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let probe = lab.probe();
    let watch = lab.watch_vip();
    std::thread::sleep(Duration::from_millis(300));

    let stopped = Instant::now();
    n1.terminate();
    assert!(
        wait_until(Duration::from_secs(1), || lab.vip_holders() == [2]),
        "n2 did not take over"
    );
    std::thread::sleep(Duration::from_millis(200));
    let answers = probe.finish();
    let vips = watch.finish();

    // The resign advert makes n2 master after its skew time ((256 - 150) / 256 x 100 ms).
    let gap = answers.longest_gap_after(stopped - Duration::from_millis(100));
    eprintln!("graceful stop: longest gap without an answer {gap:?}");
    // A skew time plus one interval: well under a master down interval.
    assert!(
        gap < skew(150) + ADVERT,
        "clients saw no answer for {gap:?}"
    );
    assert_eq!(
        vips.longest_duplicate_after(stopped),
        Duration::ZERO,
        "both nodes held the VIP"
    );
    assert!(
        n1.log().contains("VRRP instance changed state"),
        "transitions are logged:\n{}",
        n1.log()
    );
}

#[test]
fn kill_9_leaves_a_duplicate_vip_for_at_most_1_5_s() {
    if skip_unless_root("kill_9_leaves_a_duplicate_vip_for_at_most_1_5_s") {
        return;
    }
    let lab = Lab::new("kill", 2);
    let _services = [lab.service(1), lab.service(2)];
    let mut n1 = node(&lab, 1, 200, "");
    let _n2 = node(&lab, 2, 150, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let probe = lab.probe();
    let watch = lab.watch_vip();
    std::thread::sleep(Duration::from_millis(300));

    let killed = Instant::now();
    n1.kill();
    assert!(
        wait_until(Duration::from_secs(3), || lab.vip_holders() == [2]),
        "n1's VIP did not expire: {:?}",
        lab.vip_holders()
    );
    std::thread::sleep(Duration::from_millis(100));
    let answers = probe.finish();
    let vips = watch.finish();

    let duplicate = vips.longest_duplicate_after(killed);
    let expired = vips.released_by(1, killed).expect("n1's VIP went away") - killed;
    let takeover = answers
        .first_answer_from("n2", killed)
        .expect("n2 answered")
        - killed;
    eprintln!(
        "kill -9: n2 answered after {takeover:?}, n1's VIP expired after {expired:?}, duplicate for {duplicate:?}"
    );
    // The VIP's lifetime at 100 ms adverts is 1 s.
    assert!(
        duplicate <= Duration::from_secs(1) + MARGIN,
        "duplicate VIP for {duplicate:?}"
    );
    assert!(
        takeover < master_down(100) + MARGIN,
        "n2 took {takeover:?} to answer"
    );
}

#[test]
fn release_removes_the_vip_a_killed_daemon_left() {
    if skip_unless_root("release_removes_the_vip_a_killed_daemon_left") {
        return;
    }
    let lab = Lab::new("release", 1);
    let mut n1 = node(&lab, 1, 200, "");
    assert!(
        wait_until(SETTLE, || lab.has_vip(1)),
        "n1 never became master"
    );
    n1.kill();
    assert!(
        lab.has_vip(1),
        "the VIP outlives the killed daemon for a moment"
    );
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", lab.node(1)])
        .arg(hafront_netns_tests::hafront_binary())
        .args(["release", "-c"])
        .arg(n1.config())
        .output()
        .expect("run hafront release");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "release failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("vip: removed 10.213.0.100"),
        "release reports what it removed: {stdout}"
    );
    assert!(!lab.has_vip(1), "the VIP is still there after release");
}

#[test]
fn nopreempt_keeps_the_running_master() {
    if skip_unless_root("nopreempt_keeps_the_running_master") {
        return;
    }
    let lab = Lab::new("nopreempt", 2);
    let _services = [lab.service(1), lab.service(2)];
    let mut n2 = node(&lab, 2, 100, "      preempt: false\n");
    assert!(
        wait_until(SETTLE, || lab.has_vip(2)),
        "n2 never became master"
    );
    let n1 = node(&lab, 1, 200, "      preempt: false\n");
    // Ten adverts of n2 heard by n1 (a second, past its startup down timer of
    // 3 x 100 ms + skew): it stays backup.
    assert!(
        n1.wait_backup_hearing(Lab::address(2), 10, SETTLE),
        "n1 never settled as backup under n2: {}",
        n1.status()
    );
    assert_eq!(
        lab.vip_holders(),
        [2],
        "n1 preempted despite preempt: false"
    );
    n2.terminate();
    assert!(
        wait_until(Duration::from_secs(1), || lab.vip_holders() == [1]),
        "n1 did not take over from the stopped master"
    );
}

#[test]
fn partition_of_three_heals_to_one_master() {
    if skip_unless_root("partition_of_three_heals_to_one_master") {
        return;
    }
    let lab = Lab::new("partition", 3);
    let _services = [lab.service(1), lab.service(2), lab.service(3)];
    let _n1 = node(&lab, 1, 200, "");
    let n2 = node(&lab, 2, 150, "");
    let n3 = node(&lab, 3, 100, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let probe = lab.probe();

    lab.partition(1);
    // n1 alone keeps the VIP on its island; n2 wins among the others, n3 stays backup.
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [1, 2]),
        "no master on the majority side: {:?}",
        lab.vip_holders()
    );
    assert!(
        n3.wait_backup_hearing(Lab::address(2), 5, SETTLE),
        "n3 is not backup under n2: {}",
        n3.status()
    );
    assert_eq!(lab.vip_holders(), [1, 2], "n3 must stay backup under n2");
    let healed = Instant::now();
    lab.rejoin(1);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [1]),
        "two masters after the heal: {:?}",
        lab.vip_holders()
    );
    for backup in [&n2, &n3] {
        assert!(
            backup.wait_backup_hearing(Lab::address(1), 5, SETTLE),
            "not backup under n1 after the heal: {}",
            backup.status()
        );
    }
    assert_eq!(
        lab.vip_holders(),
        [1],
        "the VIP moved again after the heal settled"
    );
    let log = probe.finish();
    let back = log
        .first_answer_from("n1", healed)
        .expect("n1 answered after the heal");
    assert_eq!(
        log.answerers_after(back),
        ["n1"],
        "clients reach only n1 once healed"
    );
}

#[test]
fn failing_tracked_check_moves_the_vip_and_notifies() {
    if skip_unless_root("failing_tracked_check_moves_the_vip_and_notifies") {
        return;
    }
    let lab = Lab::new("track", 2);
    // A notify script that appends one line per VRRP event.
    let events = lab.dir().join("events");
    let script = lab.dir().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$HAFRONT_EVENT\" = vrrp ] || exit 0\necho \"$HAFRONT_NODE $HAFRONT_INSTANCE $HAFRONT_OLD $HAFRONT_NEW $HAFRONT_PRIORITY $HAFRONT_REASON\" >> {}\n",
            events.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _services = [lab.service(1), lab.service(2)];
    let local = |number| {
        hafront_netns_tests::Service::start(
            lab.node(number),
            "127.0.0.1:9000".parse().unwrap(),
            "ok".to_owned(),
        )
    };
    let checked_1 = local(1);
    let _checked_2 = local(2);
    let body = |priority| {
        format!(
            "notify:\n  - command: [{script}]\n    instance: vip\nchecks:\n  local-tcp:\n    kind: tcp\n    interval: 100ms\n    timeout: 100ms\n    rise: 1\n    fall: 1\npools:\n  local:\n    check: local-tcp\n    servers:\n      - name: svc\n        address: 127.0.0.1:9000\n{vrrp}",
            script = script.display(),
            vrrp = vrrp_section(
                3,
                priority,
                INTERVAL,
                "      track:\n        - server: local/svc\n"
            )
        )
    };
    let n1 = Hafront::start(&lab, 1, &body(200));
    let _n2 = Hafront::start(&lab, 2, &body(150));
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );

    let stopped = Instant::now();
    drop(checked_1);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [2]),
        "n1 kept the VIP with its check down: {:?}",
        lab.vip_holders()
    );
    eprintln!(
        "tracked check down: VIP on n2 alone after {:?}",
        stopped.elapsed()
    );
    assert!(
        n1.log().contains("fault_raised: server local/svc down"),
        "the fault names the tracked server:\n{}",
        n1.log()
    );
    // n1's startup depends on whether its check passed before VRRP started; it ends with
    // these. Each node's script runs on its own, so only each node's order is fixed.
    let n1_ends_with = [
        "n1 vip BACKUP MASTER 200 master_down",
        "n1 vip MASTER FAULT 200 fault_raised: server local/svc down",
    ];
    let n2_saw = "n2 vip BACKUP MASTER 150 master_resigned";
    assert!(
        wait_until(Duration::from_secs(2), || {
            std::fs::read_to_string(&events).is_ok_and(|text| {
                let n1: Vec<&str> = text
                    .lines()
                    .filter(|line| line.starts_with("n1 "))
                    .collect();
                n1.ends_with(&n1_ends_with) && text.lines().any(|line| line == n2_saw)
            })
        }),
        "notify script saw: {:?}\n{}",
        std::fs::read_to_string(&events),
        n1.log()
    );
}

/// `hafront status --json` of `daemon`: its one VRRP instance.
fn instance_status(daemon: &Hafront) -> serde_json::Value {
    let status = daemon.status();
    assert!(!status.is_null(), "status failed:\n{}", daemon.log());
    status["vrrp"][0].clone()
}

#[test]
fn status_interface_tracking_weight_and_reload() {
    if skip_unless_root("status_interface_tracking_weight_and_reload") {
        return;
    }
    let lab = Lab::new("status", 2);
    // n1's "uplink" is a veth whose far end the test takes down: the uplink loses carrier.
    let link = |args: &[&str]| {
        let mut full = vec!["-n", lab.node(1), "link"];
        full.extend_from_slice(args);
        hafront_netns_tests::ip(&full);
    };
    link(&["add", "uplink", "type", "veth", "peer", "name", "far"]);
    link(&["set", "uplink", "up"]);
    link(&["set", "far", "up"]);
    let n1 = node(
        &lab,
        1,
        200,
        "      track:\n        - interface: uplink\n          weight: 150\n",
    );
    let n2 = node(&lab, 2, 100, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    std::thread::sleep(Duration::from_millis(300));
    let master = instance_status(&n1);
    assert_eq!(master["name"], "vip");
    assert_eq!(master["state"], "master");
    assert_eq!(master["effective_priority"], 200);
    assert_eq!(master["master"], "10.213.0.1");
    assert!(master["adverts_sent"].as_u64().unwrap() > 0, "{master}");
    let backup = instance_status(&n2);
    assert_eq!(backup["state"], "backup");
    assert_eq!(backup["master"], "10.213.0.1");
    assert!(backup["adverts_received"].as_u64().unwrap() > 0, "{backup}");

    // The uplink's loss costs n1 150: at 50 it yields to n2 (100), which preempts once its
    // down timer (3 x 100 ms + skew) runs out. Netlink reports the carrier loss at once
    // (the periodic re-read is only every second).
    let lost = Instant::now();
    link(&["set", "far", "down"]);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [2]),
        "n2 did not preempt n1 at its lowered priority: {:?}",
        lab.vip_holders()
    );
    assert!(
        // Its next advert at the lowered priority, then n2's master down interval.
        lost.elapsed() < ADVERT + master_down(100) + MARGIN,
        "the carrier loss took {:?} to move the VIP",
        lost.elapsed()
    );
    let lowered = instance_status(&n1);
    assert_eq!(lowered["effective_priority"], 50);
    assert_eq!(lowered["state"], "backup");
    assert_eq!(lowered["master"], "10.213.0.2");
    link(&["set", "far", "up"]);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [1]),
        "n1 did not take the VIP back with its uplink"
    );

    // A reload that raises n2's priority restarts its instance, which then preempts n1.
    let config = std::fs::read_to_string(n2.config()).unwrap();
    std::fs::write(
        n2.config(),
        config.replace("priority: 100", "priority: 250"),
    )
    .unwrap();
    n2.reload();
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [2]),
        "n2 did not preempt after its priority was raised: {:?}",
        lab.vip_holders()
    );
    assert_eq!(instance_status(&n2)["priority"], 250);
}

#[test]
fn own_link_down_is_a_fault() {
    if skip_unless_root("own_link_down_is_a_fault") {
        return;
    }
    let lab = Lab::new("ownlink", 2);
    let n1 = node(&lab, 1, 200, "");
    let _n2 = node(&lab, 2, 100, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    hafront_netns_tests::ip(&["-n", lab.node(1), "link", "set", "eth0", "down"]);
    assert!(
        wait_until(Duration::from_secs(2), || lab.vip_holders() == [2]),
        "n1 kept the VIP with its link down: {:?}",
        lab.vip_holders()
    );
    assert_eq!(instance_status(&n1)["state"], "fault");
    hafront_netns_tests::ip(&["-n", lab.node(1), "link", "set", "eth0", "up"]);
    // Back as backup, then n1 (200) preempts n2 (100).
    assert!(
        wait_until(Duration::from_secs(3), || lab.vip_holders() == [1]),
        "n1 did not take the VIP back with its link: {:?}",
        lab.vip_holders()
    );
    assert!(
        n1.log().contains("fault_raised: interface eth0 down"),
        "the fault names the link:\n{}",
        n1.log()
    );
}

#[test]
fn unicast_peers_elect_and_fail_over() {
    if skip_unless_root("unicast_peers_elect_and_fail_over") {
        return;
    }
    let lab = Lab::new("unicast", 2);
    let peer = |number| format!("      unicast_peers: [{}]\n", Lab::address(number));
    let mut n1 = node(&lab, 1, 200, &peer(2));
    let n2 = node(&lab, 2, 100, &peer(1));
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master over unicast"
    );
    assert!(
        wait_until(SETTLE, || instance_status(&n2)["adverts_received"]
            .as_u64()
            .is_some_and(|received| received > 0)),
        "n2 heard no unicast advert"
    );
    n1.terminate();
    assert!(
        wait_until(Duration::from_secs(1), || lab.vip_holders() == [2]),
        "n2 did not take over from the stopped master"
    );
}

#[test]
fn a_reload_of_priority_preemption_and_garp_keeps_the_master_and_its_vip() {
    if skip_unless_root("a_reload_of_priority_preemption_and_garp_keeps_the_master_and_its_vip") {
        return;
    }
    let lab = Lab::new("relive", 2);
    let n1 = node(&lab, 1, 200, "");
    let n2 = node(&lab, 2, 100, "");
    assert!(
        wait_until(SETTLE, || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let since = n1.status()["vrrp"][0]["since"].clone();
    let watch = lab.watch_vip();
    let from = Instant::now();
    n1.reload_with(|config| {
        config.replace("priority: 200", "priority: 150").replace(
            "advert_interval:",
            "preempt: false\n      preempt_delay: 2s\n      garp: { repeat: 1, refresh: 5s }\n      advert_interval:",
        )
    });
    assert!(
        wait_until(
            Duration::from_secs(5),
            || n1.status()["vrrp"][0]["effective_priority"] == 150
        ),
        "the new priority was not applied: {}",
        n1.status()
    );
    // n2 keeps hearing n1 as its master after the change.
    assert!(
        n2.wait_backup_hearing(Lab::address(1), 5, SETTLE),
        "n2 is not backup under n1: {}",
        n2.status()
    );
    let vips = watch.finish();
    let status = n1.status();
    assert_eq!(status["vrrp"][0]["state"], "master", "{status}");
    assert_eq!(
        status["vrrp"][0]["since"], since,
        "the instance restarted: {status}"
    );
    assert_eq!(vips.released_by(1, from), None, "n1 gave the VIP up");
    assert!(
        vips.polls.iter().all(|poll| poll.nodes == [1]),
        "the VIP moved"
    );
    let log = n1.log();
    assert!(log.contains("applied live"), "{log}");
    assert!(!log.contains("restarting it"), "{log}");
}

#[test]
fn kill_9_with_one_second_v2_adverts_leaves_no_moment_without_the_vip() {
    if skip_unless_root("kill_9_with_one_second_v2_adverts_leaves_no_moment_without_the_vip") {
        return;
    }
    let lab = Lab::new("kill2", 2);
    let mut n1 = Hafront::start(&lab, 1, &vrrp_section(2, 200, "1s", ""));
    let _n2 = Hafront::start(&lab, 2, &vrrp_section(2, 100, "1s", ""));
    assert!(
        wait_until(Duration::from_secs(6), || lab.vip_holders() == [1]),
        "n1 never became the only master"
    );
    let watch = lab.watch_vip();
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    n1.kill();
    // The backup takes over after 3 x 1 s + (256 - 100) / 256 s; n1's VIP outlives that.
    assert!(
        wait_until(Duration::from_secs(10), || lab.vip_holders() == [2]),
        "n2 never held the VIP alone: {:?}",
        lab.vip_holders()
    );
    let vips = watch.finish();
    let nobody = vips
        .polls
        .iter()
        .filter(|poll| poll.at >= killed && poll.nodes.is_empty())
        .count();
    let duplicate = vips.longest_duplicate_after(killed);
    eprintln!(
        "kill -9 with 1 s v2 adverts: {nobody} polls without the VIP, duplicate for {duplicate:?}"
    );
    assert_eq!(nobody, 0, "a moment without the VIP after the kill");
    assert!(
        duplicate <= Duration::from_secs(2) + MARGIN,
        "duplicate VIP for {duplicate:?} (at most one second plus one interval, plus polling)"
    );
}
