//! Issue 7 end to end, as `demo/run.sh` shows it but asserted: the co-located MariaDB pair
//! fails over on a primary crash, and the two-node front tier relays through a front failure.

use std::time::{Duration, Instant};

use hafront_netns_tests::story::MysqlPair;
use hafront_netns_tests::story::{ADVERT_INTERVAL, Narrator, front_failure, primary_crash};
use hafront_netns_tests::{Lab, hafront_binary, skip_unless_root, wait_until};

/// Client-visible outage allowed after the primary crashes: detection (2 failed checks,
/// 200 ms apart, 150 ms timeout: at most ~550 ms), FAULT and takeover (the resign advert
/// plus the skew time, a few advert intervals at most), promotion (~100 ms of SQL) and the
/// client's reconnect, with room for a loaded 2-core machine.
const OUTAGE_BOUND: Duration = Duration::from_millis(2500);

#[test]
fn primary_crash_fails_over_without_losing_an_acknowledged_write() {
    if skip_unless_root("primary_crash_fails_over_without_losing_an_acknowledged_write") {
        return;
    }
    let report = primary_crash(Narrator::new(false));
    eprintln!(
        "primary crash (advert interval {ADVERT_INTERVAL:?}):\n{}",
        report.timeline()
    );
    assert!(
        report.outage < OUTAGE_BOUND,
        "outage {:?} over {OUTAGE_BOUND:?}",
        report.outage
    );
    assert!(
        report.acked > 200,
        "too few writes to mean anything: {}",
        report.acked
    );
    assert_eq!(report.lost, Vec::<u64>::new(), "acknowledged writes lost");
    assert!(
        report.new_primary_writable,
        "n2 is not writable after the failover"
    );
    assert!(
        report.old_primary_read_only,
        "n1 rejoined writable: no fencing"
    );
    assert_eq!(
        report.duplicate_vip,
        Duration::ZERO,
        "both nodes held the VIP"
    );
    for (node, (notified, mailed)) in &report.mails {
        assert!(!notified.is_empty(), "{node} was never notified");
        assert_eq!(
            notified,
            mailed,
            "{node}: one mail per transition; mails:\n{}",
            report.mail_texts.join("\n----\n")
        );
    }
    let (n1_notified, _) = &report.mails["n1"];
    assert!(
        n1_notified.contains(&"FAULT".to_owned()),
        "n1 never went FAULT: {n1_notified:?}"
    );
    let (n2_notified, _) = &report.mails["n2"];
    assert!(
        n2_notified.ends_with(&["MASTER".to_owned()]),
        "n2 did not end MASTER: {n2_notified:?}"
    );
}

/// Outage allowed when front-1 dies: front-2's master down interval (3 adverts plus skew,
/// ~360 ms), the client's statement timeout on the dead connection (300 ms) and a reconnect.
const FRONT_OUTAGE_BOUND: Duration = Duration::from_millis(1500);

#[test]
fn front_tier_relays_through_a_front_failure_and_an_encrypted_link() {
    if skip_unless_root("front_tier_relays_through_a_front_failure_and_an_encrypted_link") {
        return;
    }
    let report = front_failure(Narrator::new(false));
    eprintln!("front failure: {report:?}");
    assert!(
        report.outage < FRONT_OUTAGE_BOUND,
        "outage {:?} over {FRONT_OUTAGE_BOUND:?}",
        report.outage
    );
    assert!(report.acked >= 200, "too few writes: {}", report.acked);
    assert_eq!(report.lost, Vec::<u64>::new(), "acknowledged writes lost");
    assert_eq!(report.replicated, report.acked, "the replica missed writes");
    let served = |server| report.reads.get(&Some(server)).copied().unwrap_or(0);
    assert!(served(1) > 5, "db-a served no reads: {:?}", report.reads);
    assert!(
        served(2) > 5,
        "db-b (encrypted link) served no reads: {:?}",
        report.reads
    );
    assert_eq!(
        report.duplicate_vip,
        Duration::ZERO,
        "both fronts held the VIP"
    );
}

#[test]
fn co_located_switchover_hands_the_primary_and_the_vip_over_without_a_lost_write() {
    if skip_unless_root("co_located_switchover") {
        return;
    }
    let mut pair = MysqlPair::start("coswitch", Narrator::new(false));
    let client = pair.client();
    assert!(
        client.wait_for_acks(100, Duration::from_secs(10)),
        "the client cannot write through the VIP"
    );
    let config = pair.hafront(1).config().to_owned();
    let started = Instant::now();
    let output = std::process::Command::new(hafront_binary())
        .args(["switchover", "db", "--to", "db-b", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront switchover");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("switched over from db-a to db-b"),
        "{said}{}\nn1 log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        pair.hafront(1).log()
    );
    // The VIP follows at once: n1 resigns (priority 0), n2 takes over after its skew time.
    assert!(
        wait_until(Duration::from_secs(2), || pair.lab.vip_holders() == [2]),
        "the VIP did not move to n2: {:?}",
        pair.lab.vip_holders()
    );
    let vip_moved = started.elapsed();
    assert!(pair.servers[1].writable(), "n2 is not writable");
    assert!(!pair.servers[0].writable(), "n1 is still writable");
    assert!(
        wait_until(Duration::from_secs(10), || pair.servers[0]
            .query("SHOW SLAVE STATUS\\G")
            .contains("Master_Host: 10.213.0.2")),
        "n1 does not replicate from n2"
    );
    assert!(
        client.wait_for_acks(100, Duration::from_secs(10)),
        "writes did not resume on n2"
    );
    // n1 stays backup: it never takes the VIP back.
    let n1 = pair.hafronts[0].as_ref().expect("n1 runs");
    assert!(
        n1.wait_backup_hearing(Lab::address(2), 5, Duration::from_secs(5)),
        "n1 is not backup under n2: {}",
        n1.status()
    );
    assert_eq!(pair.lab.vip_holders(), [2]);
    let writes = client.finish();
    let lost = writes.lost(&pair.servers[1].ids());
    eprintln!(
        "co-located switchover: VIP on n2 {} ms after the command, write outage {} ms, {} acknowledged, {} lost",
        vip_moved.as_millis(),
        writes.longest_outage_after(started).as_millis(),
        writes.acked().len(),
        lost.len()
    );
    assert_eq!(lost, Vec::<u64>::new(), "acknowledged writes lost");
}
