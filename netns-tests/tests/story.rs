//! Issue 7 end to end, as `demo/run.sh` shows it but asserted: the co-located MariaDB pair
//! fails over on a primary crash, and the two-node front tier relays through a front failure.

use std::time::Duration;

use hafront_netns_tests::skip_unless_root;
use hafront_netns_tests::story::{ADVERT_INTERVAL, Narrator, front_failure, primary_crash};

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
