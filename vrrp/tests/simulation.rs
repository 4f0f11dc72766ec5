//! Several VRRP routers wired through a simulated LAN on a virtual clock, with crashes,
//! packet loss and partitions. Nothing sleeps: time jumps from one event to the next, so
//! takeover times are asserted exactly.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hafront_vrrp::{
    Action, Advert, Auth, GarpConfig, InstanceConfig, Machine, Password, Reason, State, Version,
};

/// A bound on simulation steps, so a livelock fails the test instead of hanging it.
const MAX_STEPS: usize = 1_000_000;

fn address(node: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, node as u8 + 1))
}

fn config(node: usize, priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: Duration::from_secs(1),
        virtual_addresses: vec!["198.51.100.10/24".parse().unwrap()],
        primary_address: address(node),
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth: Auth::None,
        garp: GarpConfig::default(),
    }
}

/// Seconds as a duration, exact for the binary fractions used here.
fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// What a node did, with the virtual time since the simulation began.
#[derive(Debug, Clone)]
struct Logged {
    at: Duration,
    action: Action,
}

struct Node {
    machine: Machine,
    running: bool,
    holds_vips: bool,
    log: Vec<Logged>,
}

struct InFlight {
    deliver_at: Instant,
    from: usize,
    to: usize,
    advert: Advert,
}

struct Lan {
    epoch: Instant,
    now: Instant,
    nodes: Vec<Node>,
    in_flight: Vec<InFlight>,
    /// Directed links that drop everything.
    cut: HashSet<(usize, usize)>,
    loss_percent: u64,
    rng_state: u64,
}

impl Lan {
    fn new(configs: Vec<InstanceConfig>) -> Lan {
        let epoch = Instant::now();
        Lan {
            epoch,
            now: epoch,
            nodes: configs
                .into_iter()
                .map(|config| Node {
                    machine: Machine::new(config).expect("valid config"),
                    running: false,
                    holds_vips: false,
                    log: Vec::new(),
                })
                .collect(),
            in_flight: Vec::new(),
            cut: HashSet::new(),
            loss_percent: 0,
            rng_state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    fn start(&mut self, node: usize) {
        self.nodes[node].running = true;
        self.nodes[node].machine.start(self.now);
        self.drain(node);
    }

    fn start_all(&mut self) {
        for node in 0..self.nodes.len() {
            self.start(node);
        }
    }

    /// The node stops dead (SIGKILL, power loss): it sends nothing more.
    fn crash(&mut self, node: usize) {
        self.nodes[node].running = false;
    }

    fn shutdown(&mut self, node: usize) {
        self.nodes[node].machine.shutdown(self.now);
        self.drain(node);
        self.nodes[node].running = false;
    }

    fn set_fault(&mut self, node: usize, fault: bool) {
        self.nodes[node].machine.set_fault(self.now, fault);
        self.drain(node);
    }

    fn set_priority(&mut self, node: usize, priority: u8) {
        self.nodes[node].machine.set_priority(self.now, priority);
        self.drain(node);
    }

    /// Cuts (or heals) both directions between every node of `side` and every other node.
    fn partition(&mut self, side: &[usize], cut: bool) {
        for &inside in side {
            for outside in (0..self.nodes.len()).filter(|node| !side.contains(node)) {
                for link in [(inside, outside), (outside, inside)] {
                    if cut {
                        self.cut.insert(link);
                    } else {
                        self.cut.remove(&link);
                    }
                }
            }
        }
    }

    fn lost(&mut self) -> bool {
        // xorshift64: deterministic loss, the same on every run.
        self.rng_state ^= self.rng_state << 13;
        self.rng_state ^= self.rng_state >> 7;
        self.rng_state ^= self.rng_state << 17;
        self.rng_state % 100 < self.loss_percent
    }

    /// Carries out a node's pending actions.
    fn drain(&mut self, node: usize) {
        while let Some(action) = self.nodes[node].machine.poll_action() {
            match &action {
                Action::SendAdvert(advert) => {
                    for to in (0..self.nodes.len()).filter(|&to| to != node) {
                        if !self.cut.contains(&(node, to)) && !self.lost() {
                            self.in_flight.push(InFlight {
                                deliver_at: self.now,
                                from: node,
                                to,
                                advert: advert.clone(),
                            });
                        }
                    }
                }
                Action::AddVips => self.nodes[node].holds_vips = true,
                Action::RemoveVips => self.nodes[node].holds_vips = false,
                Action::SendGratuitous
                | Action::Transition { .. }
                | Action::WantMastership(_)
                | Action::AddressMismatch { .. } => {}
            }
            let at = self.elapsed();
            self.nodes[node].log.push(Logged { at, action });
        }
        let machine = &self.nodes[node].machine;
        assert_eq!(
            self.nodes[node].holds_vips,
            machine.state() == State::Master,
            "node {node} holds the VIPs exactly while master"
        );
    }

    /// Runs every event up to and including `until` (since the epoch).
    fn run_until(&mut self, until: Duration) {
        let until = self.epoch + until;
        for _ in 0..MAX_STEPS {
            let next_delivery = self.in_flight.iter().map(|packet| packet.deliver_at).min();
            let next_timeout = self
                .nodes
                .iter()
                .filter(|node| node.running)
                .filter_map(|node| node.machine.poll_timeout())
                .min();
            let next = match (next_delivery, next_timeout) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(next) => next,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = next;
            // Packets first: a driver drains its socket before handling a timer.
            while let Some(index) = self.in_flight.iter().position(|p| p.deliver_at <= self.now) {
                let packet = self.in_flight.remove(index);
                if self.nodes[packet.to].running {
                    let src = address(packet.from);
                    // Drops are counted by the driver; the scenarios assert on actions.
                    let _ =
                        self.nodes[packet.to]
                            .machine
                            .handle_advert(self.now, src, &packet.advert);
                    self.drain(packet.to);
                }
            }
            for node in 0..self.nodes.len() {
                let due = self.nodes[node]
                    .machine
                    .poll_timeout()
                    .is_some_and(|at| at <= self.now);
                if self.nodes[node].running && due {
                    self.nodes[node].machine.handle_timeout(self.now);
                    self.drain(node);
                }
            }
            if self.in_flight.is_empty() && next_timeout.is_none() {
                break;
            }
        }
        assert!(self.now <= until, "simulation ran past its end");
        self.now = until;
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&node| {
                self.nodes[node].running && self.nodes[node].machine.state() == State::Master
            })
            .collect()
    }

    /// When `node` entered `state`, with the reason, in order.
    fn entered(&self, node: usize, state: State) -> Vec<(Duration, Reason)> {
        self.nodes[node]
            .log
            .iter()
            .filter_map(|entry| match entry.action {
                Action::Transition { new, reason, .. } if new == state => Some((entry.at, reason)),
                _ => None,
            })
            .collect()
    }

    /// Adverts `node` sent, as (time, priority).
    fn adverts(&self, node: usize) -> Vec<(Duration, u8)> {
        self.nodes[node]
            .log
            .iter()
            .filter_map(|entry| match &entry.action {
                Action::SendAdvert(advert) => Some((entry.at, advert.priority)),
                _ => None,
            })
            .collect()
    }

    fn gratuitous_after(&self, node: usize, after: Duration) -> usize {
        self.nodes[node]
            .log
            .iter()
            .filter(|entry| entry.at >= after && entry.action == Action::SendGratuitous)
            .count()
    }

    fn mismatch_reports(&self, node: usize) -> Vec<(Duration, IpAddr)> {
        self.nodes[node]
            .log
            .iter()
            .filter_map(|entry| match entry.action {
                Action::AddressMismatch { peer, .. } => Some((entry.at, peer)),
                _ => None,
            })
            .collect()
    }
}

/// Skew time of VRRPv3 at `priority` with a 1 s master advert interval.
fn skew(priority: u8) -> Duration {
    secs((256 - u32::from(priority)) as f64 / 256.0)
}

/// Master down interval of VRRPv3 at `priority` with a 1 s master advert interval.
fn down(priority: u8) -> Duration {
    secs(3.0) + skew(priority)
}

#[test]
fn highest_priority_wins_the_election() {
    let mut lan = Lan::new(vec![config(0, 100), config(1, 200), config(2, 150)]);
    lan.start_all();
    lan.run_until(secs(30.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(down(200), Reason::MasterDown)]
    );
    assert!(lan.entered(0, State::Master).is_empty());
    assert!(lan.entered(2, State::Master).is_empty());
    // Announced 3 times, 100 ms apart, on becoming master.
    assert_eq!(lan.gratuitous_after(1, Duration::ZERO), 3);
}

#[test]
fn the_address_owner_takes_over_at_once() {
    let mut lan = Lan::new(vec![config(0, 100), config(1, 255)]);
    lan.start(0);
    lan.run_until(secs(10.0));
    assert_eq!(lan.masters(), vec![0]);
    lan.start(1);
    lan.run_until(secs(20.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(secs(10.0), Reason::AddressOwner)]
    );
    assert_eq!(
        lan.entered(0, State::Backup).last(),
        Some(&(secs(10.0), Reason::HigherPriorityAdvert))
    );
}

#[test]
fn master_crash_is_taken_over_after_the_master_down_interval() {
    let mut lan = Lan::new(vec![config(0, 200), config(1, 150), config(2, 100)]);
    lan.start_all();
    lan.run_until(secs(10.5));
    assert_eq!(lan.masters(), vec![0]);
    let last_advert = lan.adverts(0).last().unwrap().0;
    lan.crash(0);
    lan.run_until(secs(30.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(last_advert + down(150), Reason::MasterDown)]
    );
    assert!(
        lan.entered(2, State::Master).is_empty(),
        "the next best backup wins alone"
    );
}

#[test]
fn graceful_shutdown_is_taken_over_after_skew_time() {
    let mut lan = Lan::new(vec![config(0, 200), config(1, 150), config(2, 100)]);
    lan.start_all();
    lan.run_until(secs(10.5));
    lan.shutdown(0);
    assert_eq!(
        lan.adverts(0).last(),
        Some(&(secs(10.5), 0)),
        "resigned with priority 0"
    );
    assert!(!lan.nodes[0].holds_vips);
    lan.run_until(secs(30.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(secs(10.5) + skew(150), Reason::MasterResigned)]
    );
    assert!(lan.entered(2, State::Master).is_empty());
}

#[test]
fn a_higher_priority_router_joining_preempts() {
    let mut lan = Lan::new(vec![config(0, 100), config(1, 150), config(2, 200)]);
    lan.start(0);
    lan.start(1);
    lan.run_until(secs(10.25));
    assert_eq!(lan.masters(), vec![1]);
    lan.start(2);
    lan.run_until(secs(30.0));
    assert_eq!(lan.masters(), vec![2]);
    // It discards the lower-priority adverts and times out like a lost master.
    let takeover = secs(10.25) + down(200);
    assert_eq!(
        lan.entered(2, State::Master),
        vec![(takeover, Reason::MasterDown)]
    );
    assert_eq!(
        lan.entered(1, State::Backup).last(),
        Some(&(takeover, Reason::HigherPriorityAdvert))
    );
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut lan = Lan::new(vec![
        config(0, 150),
        InstanceConfig {
            preempt: false,
            ..config(1, 200)
        },
    ]);
    lan.start(0);
    lan.run_until(secs(10.0));
    lan.start(1);
    lan.run_until(secs(60.0));
    assert_eq!(lan.masters(), vec![0]);
    assert!(lan.entered(1, State::Master).is_empty());
}

#[test]
fn preempt_delay_postpones_preemption() {
    let delayed = InstanceConfig {
        preempt_delay: secs(5.0),
        ..config(1, 200)
    };
    let mut lan = Lan::new(vec![config(0, 150), delayed]);
    lan.start(0);
    lan.run_until(secs(10.25));
    lan.start(1);
    lan.run_until(secs(40.0));
    assert_eq!(lan.masters(), vec![1]);
    // Adverts are accepted until the delay ends, discarded from then on.
    let last_accepted = lan
        .adverts(0)
        .into_iter()
        .map(|(at, _)| at)
        .filter(|&at| at < secs(15.25))
        .max()
        .unwrap();
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(last_accepted + down(200), Reason::MasterDown)]
    );
}

#[test]
fn equal_priority_is_broken_by_the_higher_address() {
    let mut lan = Lan::new(vec![config(0, 100), config(1, 100)]);
    lan.start_all();
    lan.run_until(secs(30.0));
    // Both time out together and both become master; the lower address steps down.
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(0, State::Master),
        vec![(down(100), Reason::MasterDown)]
    );
    assert_eq!(
        lan.entered(0, State::Backup).last(),
        Some(&(down(100), Reason::HigherPriorityAdvert))
    );
}

#[test]
fn a_healed_partition_converges_within_one_interval_and_reannounces() {
    // Healing at different phases of the advert timers: either side may hear the other first.
    for heal_offset in [0.0, 0.1, 0.3, 0.5, 0.7, 0.9] {
        let mut lan = Lan::new(vec![config(0, 150), config(1, 100)]);
        lan.start_all();
        lan.run_until(secs(10.0));
        lan.partition(&[1], true);
        lan.run_until(secs(20.0));
        assert_eq!(lan.masters(), vec![0, 1], "split brain while partitioned");
        let heal = secs(20.0 + heal_offset);
        lan.run_until(heal);
        lan.partition(&[1], false);
        lan.run_until(heal + secs(1.0));
        assert_eq!(
            lan.masters(),
            vec![0],
            "one master within an interval (heal {heal_offset})"
        );
        assert!(
            lan.gratuitous_after(0, heal) >= 3,
            "the survivor re-announces the addresses after the heal (heal {heal_offset})"
        );
        lan.run_until(heal + secs(30.0));
        assert_eq!(lan.masters(), vec![0]);
    }
}

#[test]
fn lossy_network_recovers_to_the_best_master() {
    let mut lan = Lan::new(vec![config(0, 200), config(1, 150), config(2, 100)]);
    lan.loss_percent = 40;
    lan.start_all();
    lan.run_until(secs(300.0));
    let spurious = lan.entered(1, State::Master).len() + lan.entered(2, State::Master).len();
    assert!(
        spurious > 0,
        "40% loss makes backups take over now and then"
    );
    lan.loss_percent = 0;
    lan.run_until(secs(301.0));
    assert_eq!(lan.masters(), vec![0]);
    lan.run_until(secs(400.0));
    assert_eq!(lan.masters(), vec![0]);
}

#[test]
fn address_list_mismatch_is_reported_once_per_peer() {
    let other_vips = InstanceConfig {
        virtual_addresses: vec!["198.51.100.99/24".parse().unwrap()],
        ..config(1, 100)
    };
    let mut lan = Lan::new(vec![config(0, 150), other_vips]);
    lan.start_all();
    lan.run_until(secs(60.0));
    // The mismatched adverts are dropped: both claim the VIPs, and both say why, once.
    assert_eq!(lan.masters(), vec![0, 1]);
    assert_eq!(lan.mismatch_reports(1), vec![(down(150), address(0))]);
    assert_eq!(lan.mismatch_reports(0).len(), 1);
    assert_eq!(lan.mismatch_reports(0)[0].1, address(1));
}

#[test]
fn v2_timers_use_whole_seconds_and_an_unscaled_skew() {
    let v2 = |node, priority| InstanceConfig {
        version: Version::V2,
        advert_interval: secs(2.0),
        auth: Auth::Password(Password::new(b"s3cret").unwrap()),
        ..config(node, priority)
    };
    let mut lan = Lan::new(vec![v2(0, 200), v2(1, 100)]);
    lan.start_all();
    lan.run_until(secs(20.0));
    assert_eq!(lan.masters(), vec![0]);
    let last_advert = lan.adverts(0).last().unwrap().0;
    lan.crash(0);
    lan.run_until(secs(40.0));
    // 3 x 2 s + (256 - 100) / 256 s: the v2 skew is not scaled by the interval.
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(
            last_advert + secs(6.0) + secs(156.0 / 256.0),
            Reason::MasterDown
        )]
    );
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    let fast = InstanceConfig {
        advert_interval: Duration::from_millis(100),
        ..config(0, 200)
    };
    let mut lan = Lan::new(vec![fast, config(1, 100)]);
    lan.start(0);
    lan.run_until(secs(5.0));
    lan.start(1);
    lan.run_until(secs(10.05));
    assert_eq!(
        lan.nodes[1].machine.master_adver_interval(),
        Duration::from_millis(100)
    );
    let last_advert = lan.adverts(0).last().unwrap().0;
    lan.crash(0);
    lan.run_until(secs(20.0));
    // 3 x 100 ms + 156 x 100 ms / 256 = 360.9375 ms.
    let expected = last_advert + Duration::from_micros(360_937) + Duration::from_nanos(500);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(expected, Reason::MasterDown)]
    );
}

#[test]
fn tracked_fault_resigns_and_the_backup_takes_over_after_skew_time() {
    let mut lan = Lan::new(vec![config(0, 200), config(1, 100)]);
    lan.start_all();
    lan.run_until(secs(10.5));
    lan.set_fault(0, true);
    assert_eq!(lan.nodes[0].machine.state(), State::Fault);
    assert_eq!(lan.adverts(0).last(), Some(&(secs(10.5), 0)));
    lan.run_until(secs(20.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(secs(10.5) + skew(100), Reason::MasterResigned)]
    );
    // The fault clears: back to backup, then it preempts after the master down interval.
    lan.set_fault(0, false);
    lan.run_until(secs(40.0));
    assert_eq!(lan.masters(), vec![0]);
    assert_eq!(
        lan.entered(0, State::Backup).last(),
        Some(&(secs(20.0), Reason::FaultCleared))
    );
    assert_eq!(
        lan.entered(0, State::Master).last().unwrap().0,
        secs(20.0) + down(200)
    );
}

#[test]
fn lowered_priority_lets_a_better_backup_preempt() {
    let mut lan = Lan::new(vec![config(0, 200), config(1, 150)]);
    lan.start_all();
    lan.run_until(secs(10.5));
    lan.set_priority(0, 100);
    assert_eq!(
        lan.adverts(0).last(),
        Some(&(secs(10.5), 100)),
        "announced at once"
    );
    lan.run_until(secs(30.0));
    assert_eq!(lan.masters(), vec![1]);
    let last_high = lan
        .adverts(0)
        .into_iter()
        .rfind(|&(_, priority)| priority == 200)
        .unwrap()
        .0;
    assert_eq!(
        lan.entered(1, State::Master),
        vec![(last_high + down(150), Reason::MasterDown)]
    );
}
