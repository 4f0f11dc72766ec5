//! hafront and Debian's keepalived in the same virtual router (VRID 51), VRRPv3 with 100 ms
//! adverts and VRRPv2 with 1 s adverts and a password: each one master with the other as
//! backup, failover both ways, and never two masters once elected.

use std::time::{Duration, Instant};

use hafront_netns_tests::{
    Hafront, KEEPALIVED, Keepalived, Lab, skip_unless_root, vrrp_section, wait_until,
};

/// One protocol setup both implementations share.
struct Setup {
    version: u8,
    /// hafront's form of the interval.
    interval: &'static str,
    /// keepalived's form.
    advert_int: &'static str,
    auth_pass: Option<&'static str>,
}

const V3: Setup = Setup {
    version: 3,
    interval: "100ms",
    advert_int: "0.1",
    auth_pass: None,
};

const V2: Setup = Setup {
    version: 2,
    interval: "1s",
    advert_int: "1",
    auth_pass: Some("s3cret"),
};

impl Setup {
    /// Time for a takeover after the master disappears: three intervals plus skew, margin.
    fn takeover(&self) -> Duration {
        if self.version == 2 {
            Duration::from_secs(6)
        } else {
            Duration::from_secs(2)
        }
    }

    fn hafront(&self, lab: &Lab, number: usize, priority: u8) -> Hafront {
        let extra = self
            .auth_pass
            .map(|pass| format!("      auth_pass: {{value: {pass}}}\n"))
            .unwrap_or_default();
        Hafront::start(
            lab,
            number,
            &vrrp_section(self.version, priority, self.interval, &extra),
        )
    }

    fn keepalived(&self, lab: &Lab, number: usize, priority: u8) -> Keepalived {
        Keepalived::start(
            lab,
            number,
            self.version,
            priority,
            self.advert_int,
            self.auth_pass,
        )
    }
}

fn keepalived_missing(test: &str) -> bool {
    !std::path::Path::new(KEEPALIVED).exists()
        && hafront_netns_tests::skip(test, &format!("{KEEPALIVED} is not installed"))
}

/// Holds `holders` steadily for `period` (polled every 10 ms): no second master appears.
fn steady(lab: &Lab, holders: &[usize], period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert_eq!(lab.vip_holders(), holders, "the VIP moved or doubled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// hafront (priority 200) on n1 masters keepalived (100) on n2; keepalived takes over when
/// hafront stops gracefully and when it is killed, and hafront preempts back on restart.
fn hafront_master(setup: &Setup, test: &str) {
    let lab = Lab::new(test, 2);
    let mut keepalived = setup.keepalived(&lab, 2, 100);
    let mut hafront = setup.hafront(&lab, 1, 200);
    assert!(
        wait_until(setup.takeover(), || lab.vip_holders() == [1]),
        "hafront never became the only master: {:?}",
        lab.vip_holders()
    );
    steady(&lab, &[1], Duration::from_millis(1500));

    hafront.terminate();
    assert!(
        wait_until(setup.takeover(), || lab.vip_holders() == [2]),
        "keepalived did not take over from a stopped hafront"
    );

    let mut hafront = setup.hafront(&lab, 1, 200);
    assert!(
        wait_until(setup.takeover(), || lab.vip_holders() == [1]),
        "hafront did not preempt keepalived: {:?}",
        lab.vip_holders()
    );
    steady(&lab, &[1], Duration::from_millis(1500));

    hafront.kill();
    assert!(
        wait_until(setup.takeover(), || lab.has_vip(2)),
        "keepalived did not take over from a killed hafront"
    );
    assert!(
        keepalived.process().running(),
        "keepalived exited:\n{}",
        keepalived.process().log()
    );
}

/// keepalived (priority 200) on n1 masters hafront (100) on n2; hafront takes over when
/// keepalived stops, and backs off when a new keepalived preempts.
fn keepalived_master(setup: &Setup, test: &str) {
    let lab = Lab::new(test, 2);
    let hafront = setup.hafront(&lab, 2, 100);
    let mut keepalived = setup.keepalived(&lab, 1, 200);
    assert!(
        wait_until(setup.takeover() * 2, || lab.vip_holders() == [1]),
        "keepalived never became the only master: {:?}\n{}",
        lab.vip_holders(),
        hafront.log()
    );
    steady(&lab, &[1], Duration::from_millis(1500));

    keepalived.terminate();
    assert!(
        wait_until(setup.takeover(), || lab.vip_holders() == [2]),
        "hafront did not take over from a stopped keepalived"
    );
    drop(keepalived);

    let _keepalived = setup.keepalived(&lab, 1, 200);
    assert!(
        wait_until(setup.takeover() * 2, || lab.vip_holders() == [1]),
        "keepalived did not preempt hafront: {:?}",
        lab.vip_holders()
    );
    steady(&lab, &[1], Duration::from_millis(1500));
    assert!(
        hafront.log().contains("higher_priority_advert"),
        "hafront backed off for keepalived:\n{}",
        hafront.log()
    );
}

#[test]
fn v3_hafront_master_keepalived_backup() {
    let test = "v3_hafront_master_keepalived_backup";
    if skip_unless_root(test) || keepalived_missing(test) {
        return;
    }
    hafront_master(&V3, "ka3h");
}

#[test]
fn v3_keepalived_master_hafront_backup() {
    let test = "v3_keepalived_master_hafront_backup";
    if skip_unless_root(test) || keepalived_missing(test) {
        return;
    }
    keepalived_master(&V3, "ka3k");
}

#[test]
fn v2_hafront_master_keepalived_backup() {
    let test = "v2_hafront_master_keepalived_backup";
    if skip_unless_root(test) || keepalived_missing(test) {
        return;
    }
    hafront_master(&V2, "ka2h");
}

#[test]
fn v2_keepalived_master_hafront_backup() {
    let test = "v2_keepalived_master_hafront_backup";
    if skip_unless_root(test) || keepalived_missing(test) {
        return;
    }
    keepalived_master(&V2, "ka2k");
}
