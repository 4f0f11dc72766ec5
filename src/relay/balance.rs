//! Server choice for a new client: pure policy logic over a snapshot of the
//! pool, so every rule is unit-tested without sockets.
//!
//! Rules shared by all policies:
//! - only *eligible* servers are considered (up, with the relay's role if it
//!   has one, not already tried for this client) and a weight of 0 drains a
//!   server (no new clients, like HAProxy);
//! - backup servers are considered only when no eligible non-backup server
//!   remains.

use hafront_config::Policy;

/// What the balancer needs to know about one server of the pool at pick time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Whether the server may take this client (up, right role, not tried yet).
    pub eligible: bool,
    /// Used only while no eligible non-backup server remains.
    pub backup: bool,
    /// Relative share of clients; 0 means no new clients.
    pub weight: u32,
    /// Connections this relay currently has open (or opening) to the server.
    pub active: u64,
}

impl Candidate {
    fn usable(&self) -> bool {
        self.eligible && self.weight > 0
    }
}

/// Per-pool balancing state: one instance per pool view, indexed like it.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Smooth weighted round-robin "current weight" of each server (nginx's algorithm).
    current: Vec<i64>,
    /// Where the least-connections scan starts, so ties rotate over servers.
    next_start: usize,
}

impl Balancer {
    /// A fresh balancer for a pool of `pool_len` servers.
    pub fn new(policy: Policy, pool_len: usize) -> Self {
        Balancer {
            policy,
            current: vec![0; pool_len],
            next_start: 0,
        }
    }

    /// Picks the index of the server for the next client, or `None` when no
    /// server is usable. `candidates` is indexed like the pool this balancer
    /// was made for.
    pub fn pick(&mut self, candidates: &[Candidate]) -> Option<usize> {
        debug_assert_eq!(candidates.len(), self.current.len());
        let use_backups = !candidates.iter().any(|c| c.usable() && !c.backup);
        let in_tier = |c: &Candidate| c.usable() && c.backup == use_backups;
        match self.policy {
            Policy::First => candidates.iter().position(in_tier),
            Policy::RoundRobin => self.smooth_weighted_round_robin(candidates, in_tier),
            Policy::LeastConnections => self.least_connections(candidates, in_tier),
        }
    }

    /// nginx's smooth weighted round-robin: every pick adds each server's
    /// weight to its current value, takes the largest and subtracts the total
    /// from it. Weights 5:1:1 give a a b a c a a, not a a a a a b c.
    fn smooth_weighted_round_robin(
        &mut self,
        candidates: &[Candidate],
        in_tier: impl Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (index, candidate) in candidates.iter().enumerate() {
            if !in_tier(candidate) {
                continue;
            }
            let weight = i64::from(candidate.weight);
            self.current[index] += weight;
            total += weight;
            if best.is_none_or(|b| self.current[index] > self.current[b]) {
                best = Some(index);
            }
        }
        let chosen = best?;
        self.current[chosen] -= total;
        Some(chosen)
    }

    /// The server with the fewest active connections per unit of weight;
    /// ties go to the first one found scanning from after the last pick.
    fn least_connections(
        &mut self,
        candidates: &[Candidate],
        in_tier: impl Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        let len = candidates.len();
        let mut best: Option<usize> = None;
        for offset in 0..len {
            let index = (self.next_start + offset) % len;
            let candidate = &candidates[index];
            if !in_tier(candidate) {
                continue;
            }
            // active/weight < best.active/best.weight, without division.
            let fewer = |b: &Candidate| {
                u128::from(candidate.active) * u128::from(b.weight)
                    < u128::from(b.active) * u128::from(candidate.weight)
            };
            if best.is_none_or(|b| fewer(&candidates[b])) {
                best = Some(index);
            }
        }
        let chosen = best?;
        self.next_start = (chosen + 1) % len;
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(weight: u32) -> Candidate {
        Candidate {
            eligible: true,
            backup: false,
            weight,
            active: 0,
        }
    }

    fn backup(weight: u32) -> Candidate {
        Candidate {
            backup: true,
            ..up(weight)
        }
    }

    fn down(candidate: Candidate) -> Candidate {
        Candidate {
            eligible: false,
            ..candidate
        }
    }

    fn picks(balancer: &mut Balancer, candidates: &[Candidate], count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| balancer.pick(candidates).expect("a usable server"))
            .collect()
    }

    fn shares(picked: &[usize], pool_len: usize) -> Vec<usize> {
        let mut counts = vec![0; pool_len];
        for &index in picked {
            counts[index] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_equal_weights_alternate() {
        let pool = [up(1), up(1), up(1)];
        let mut balancer = Balancer::new(Policy::RoundRobin, pool.len());
        assert_eq!(picks(&mut balancer, &pool, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn round_robin_is_smooth_and_weighted() {
        let pool = [up(5), up(1), up(1)];
        let mut balancer = Balancer::new(Policy::RoundRobin, pool.len());
        assert_eq!(picks(&mut balancer, &pool, 7), [0, 0, 1, 0, 2, 0, 0]);
        let picked = picks(&mut balancer, &pool, 700);
        assert_eq!(shares(&picked, 3), [500, 100, 100]);
    }

    #[test]
    fn round_robin_skips_ineligible_and_drained_servers() {
        let pool = [up(1), down(up(1)), up(0), up(1)];
        let mut balancer = Balancer::new(Policy::RoundRobin, pool.len());
        assert_eq!(shares(&picks(&mut balancer, &pool, 10), 4), [5, 0, 0, 5]);
    }

    #[test]
    fn backups_only_when_no_primary_server_is_usable() {
        for policy in [Policy::RoundRobin, Policy::LeastConnections, Policy::First] {
            let mut balancer = Balancer::new(policy, 3);
            let all_up = [backup(1), up(1), backup(1)];
            assert_eq!(shares(&picks(&mut balancer, &all_up, 4), 3), [0, 4, 0]);
            let main_down = [backup(1), down(up(1)), backup(1)];
            let picked = picks(&mut balancer, &main_down, 4);
            assert!(picked.iter().all(|&i| i == 0 || i == 2), "{policy:?}");
            let main_drained = [backup(1), up(0), backup(1)];
            assert_ne!(balancer.pick(&main_drained), Some(1), "{policy:?}");
        }
    }

    #[test]
    fn nothing_usable_picks_nothing() {
        for policy in [Policy::RoundRobin, Policy::LeastConnections, Policy::First] {
            let mut balancer = Balancer::new(policy, 3);
            assert_eq!(balancer.pick(&[down(up(1)), down(backup(1)), up(0)]), None);
            assert_eq!(Balancer::new(policy, 0).pick(&[]), None);
        }
    }

    #[test]
    fn first_takes_pool_order() {
        let mut balancer = Balancer::new(Policy::First, 3);
        assert_eq!(balancer.pick(&[up(1), up(1), up(1)]), Some(0));
        assert_eq!(balancer.pick(&[up(1), up(1), up(1)]), Some(0));
        assert_eq!(balancer.pick(&[down(up(1)), up(1), up(1)]), Some(1));
        assert_eq!(balancer.pick(&[backup(1), down(up(1)), up(1)]), Some(2));
    }

    #[test]
    fn least_connections_weighs_active_by_weight() {
        let mut balancer = Balancer::new(Policy::LeastConnections, 3);
        let with_active = |weight, active| Candidate {
            active,
            ..up(weight)
        };
        // 4/1 vs 5/2 vs 3/1: server 1 has the fewest per weight.
        let pool = [with_active(1, 4), with_active(2, 5), with_active(1, 3)];
        assert_eq!(balancer.pick(&pool), Some(1));
        // 2/1 vs 6/2 (= 3): server 0.
        let pool = [with_active(1, 2), with_active(2, 6), with_active(1, 3)];
        assert_eq!(balancer.pick(&pool), Some(0));
    }

    #[test]
    fn least_connections_rotates_ties() {
        let pool = [up(1), up(1), up(1)];
        let mut balancer = Balancer::new(Policy::LeastConnections, pool.len());
        assert_eq!(picks(&mut balancer, &pool, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_connections_fills_the_emptiest_server() {
        let mut active = [0u64, 0, 0];
        let mut balancer = Balancer::new(Policy::LeastConnections, active.len());
        active[0] = 10;
        for _ in 0..20 {
            let pool: Vec<Candidate> = active
                .iter()
                .map(|&a| Candidate { active: a, ..up(1) })
                .collect();
            let chosen = balancer.pick(&pool).expect("a usable server");
            active[chosen] += 1;
        }
        assert_eq!(active, [10, 10, 10]);
    }
}
