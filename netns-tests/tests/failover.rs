//! Two and three hafront nodes on a bridge: failover on a link cut, graceful stop, kill -9,
//! preemption, nopreempt, partition and heal, and a tracked check failing.

use std::time::{Duration, Instant};

use hafront_netns_tests::{Hafront, Lab, skip_unless_root, vrrp_section, wait_until};

/// Advert interval of these tests: fast failover, short tests.
const INTERVAL: &str = "100ms";

/// Time for a started lab to elect its master (startup down timer plus margin).
const SETTLE: Duration = Duration::from_secs(3);

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
    assert!(wait_until(SETTLE, || lab.vip_holders() == [1]), "n1 never became the only master");
    let probe = lab.probe();
    std::thread::sleep(Duration::from_millis(300));

    let cut = Instant::now();
    lab.cut(1);
    assert!(wait_until(Duration::from_secs(2), || lab.has_vip(2)), "n2 did not take over");
    std::thread::sleep(Duration::from_millis(500));
    let healed = Instant::now();
    lab.heal(1);
    // n1 (higher priority, preempt) wins the contested election and n2 backs off.
    assert!(wait_until(Duration::from_secs(2), || lab.vip_holders() == [1]), "n2 kept the VIP after heal: {:?}", lab.vip_holders());
    std::thread::sleep(Duration::from_millis(500));
    let log = probe.finish();

    let takeover = log.first_answer_from("n2", cut).expect("n2 answered after the cut");
    assert!(takeover - cut < Duration::from_millis(800), "failover took {:?}", takeover - cut);
    let back = log.first_answer_from("n1", healed).expect("n1 answered after the heal");
    assert!(back - healed < Duration::from_secs(1), "failback took {:?}", back - healed);
    assert_eq!(log.answerers_after(back), ["n1"], "only n1 answers once it is back");
}
