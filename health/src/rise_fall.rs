//! The rise/fall debouncer: turns a stream of probe results into status
//! changes. Pure logic, no I/O, so every edge is unit-tested.

use hafront_config::Role;

use crate::state::Status;

/// One probe's verdict as the debouncer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The probe passed; the role it saw, if the check asks for one.
    Pass(Option<Role>),
    /// The probe failed.
    Fail,
}

/// A change decided by [`RiseFall::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Status before the change.
    pub old: Status,
    /// Status after the change (equal to `old` for a role change while up).
    pub new: Status,
    /// Role after the change (`None` while down or when the check reports none).
    pub role: Option<Role>,
}

/// Rise/fall state of one server.
///
/// The first result decides at once, so a fresh daemon neither waits
/// `rise` intervals before sending clients to a healthy server nor sends
/// them to a dead one. After that, `rise` consecutive successes bring a down
/// server up and `fall` consecutive failures bring an up server down. A role
/// change while up takes effect immediately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    status: Status,
    role: Option<Role>,
    streak: u32,
}

impl RiseFall {
    /// A server not probed yet. `rise` and `fall` below 1 count as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self::resume(rise, fall, Status::Unknown, None)
    }

    /// Continues from a known status and role, with no streak under way
    /// (used when a reload keeps a server but changes its check thresholds).
    pub fn resume(rise: u32, fall: u32, status: Status, role: Option<Role>) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            status,
            role: if status == Status::Up { role } else { None },
            streak: 0,
        }
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Current role (only ever set while up).
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Feeds one probe verdict; returns the transition it causes, if any.
    pub fn observe(&mut self, verdict: Verdict) -> Option<Transition> {
        let old = self.status;
        match (self.status, verdict) {
            (Status::Unknown, Verdict::Pass(role)) => self.enter(Status::Up, role),
            (Status::Unknown, Verdict::Fail) => self.enter(Status::Down, None),
            (Status::Up, Verdict::Pass(role)) => {
                self.streak = 0;
                if role == self.role {
                    return None;
                }
                self.role = role;
            }
            (Status::Up, Verdict::Fail) => {
                self.streak += 1;
                if self.streak < self.fall {
                    return None;
                }
                self.enter(Status::Down, None);
            }
            (Status::Down, Verdict::Pass(role)) => {
                self.streak += 1;
                if self.streak < self.rise {
                    return None;
                }
                self.enter(Status::Up, role);
            }
            (Status::Down, Verdict::Fail) => {
                self.streak = 0;
                return None;
            }
        }
        Some(Transition {
            old,
            new: self.status,
            role: self.role,
        })
    }

    fn enter(&mut self, status: Status, role: Option<Role>) {
        self.status = status;
        self.role = role;
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: Verdict = Verdict::Pass(None);
    const FAIL: Verdict = Verdict::Fail;

    fn transition(old: Status, new: Status, role: Option<Role>) -> Option<Transition> {
        Some(Transition { old, new, role })
    }

    #[test]
    fn first_success_brings_server_up_at_once() {
        let mut state = RiseFall::new(3, 3);
        assert_eq!(state.status(), Status::Unknown);
        assert_eq!(
            state.observe(Verdict::Pass(Some(Role::Primary))),
            transition(Status::Unknown, Status::Up, Some(Role::Primary))
        );
        assert_eq!(state.status(), Status::Up);
        assert_eq!(state.role(), Some(Role::Primary));
    }

    #[test]
    fn first_failure_brings_server_down_at_once() {
        let mut state = RiseFall::new(3, 3);
        assert_eq!(
            state.observe(FAIL),
            transition(Status::Unknown, Status::Down, None)
        );
        assert_eq!(state.status(), Status::Down);
    }

    #[test]
    fn up_server_goes_down_only_after_fall_consecutive_failures() {
        let mut state = RiseFall::new(2, 3);
        state.observe(PASS);
        assert_eq!(state.observe(FAIL), None);
        assert_eq!(state.observe(FAIL), None);
        assert_eq!(state.status(), Status::Up);
        assert_eq!(
            state.observe(FAIL),
            transition(Status::Up, Status::Down, None)
        );
        assert_eq!(state.observe(FAIL), None, "already down: no repeat event");
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut state = RiseFall::new(2, 3);
        state.observe(PASS);
        for _ in 0..5 {
            assert_eq!(state.observe(FAIL), None);
            assert_eq!(state.observe(FAIL), None);
            assert_eq!(state.observe(PASS), None);
        }
        assert_eq!(state.status(), Status::Up);
    }

    #[test]
    fn down_server_comes_up_only_after_rise_consecutive_successes() {
        let mut state = RiseFall::new(3, 1);
        state.observe(FAIL);
        assert_eq!(state.observe(PASS), None);
        assert_eq!(state.observe(PASS), None);
        assert_eq!(
            state.observe(Verdict::Pass(Some(Role::Replica))),
            transition(Status::Down, Status::Up, Some(Role::Replica))
        );
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Replica))), None);
    }

    #[test]
    fn a_failure_resets_the_success_streak() {
        let mut state = RiseFall::new(2, 1);
        state.observe(FAIL);
        for _ in 0..5 {
            assert_eq!(state.observe(PASS), None);
            assert_eq!(state.observe(FAIL), None);
        }
        assert_eq!(state.status(), Status::Down);
        assert_eq!(state.observe(PASS), None);
        assert!(state.observe(PASS).is_some());
    }

    #[test]
    fn role_change_while_up_is_an_immediate_event() {
        let mut state = RiseFall::new(2, 2);
        state.observe(Verdict::Pass(Some(Role::Replica)));
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Replica))), None);
        assert_eq!(
            state.observe(Verdict::Pass(Some(Role::Primary))),
            transition(Status::Up, Status::Up, Some(Role::Primary))
        );
        assert_eq!(state.role(), Some(Role::Primary));
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Primary))), None);
    }

    #[test]
    fn failures_below_fall_keep_the_known_role() {
        let mut state = RiseFall::new(1, 3);
        state.observe(Verdict::Pass(Some(Role::Primary)));
        state.observe(FAIL);
        assert_eq!(state.role(), Some(Role::Primary));
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Primary))), None);
    }

    #[test]
    fn down_clears_the_role_and_rise_takes_the_latest_one() {
        let mut state = RiseFall::new(2, 1);
        state.observe(Verdict::Pass(Some(Role::Primary)));
        state.observe(FAIL);
        assert_eq!(state.role(), None);
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Primary))), None);
        assert_eq!(
            state.observe(Verdict::Pass(Some(Role::Replica))),
            transition(Status::Down, Status::Up, Some(Role::Replica))
        );
    }

    #[test]
    fn zero_thresholds_behave_as_one() {
        let mut state = RiseFall::new(0, 0);
        state.observe(PASS);
        assert_eq!(
            state.observe(FAIL),
            transition(Status::Up, Status::Down, None)
        );
        assert_eq!(
            state.observe(PASS),
            transition(Status::Down, Status::Up, None)
        );
    }

    #[test]
    fn resume_keeps_status_without_a_streak() {
        let mut state = RiseFall::resume(2, 2, Status::Up, Some(Role::Primary));
        assert_eq!(state.observe(Verdict::Pass(Some(Role::Primary))), None);
        assert_eq!(state.observe(FAIL), None);
        assert!(state.observe(FAIL).is_some());

        let down = RiseFall::resume(2, 2, Status::Down, Some(Role::Primary));
        assert_eq!(down.role(), None, "a down server has no role");
    }

    #[test]
    fn flapping_every_other_probe_never_changes_status_with_thresholds_above_one() {
        let mut state = RiseFall::new(2, 2);
        state.observe(PASS);
        for round in 0..100 {
            let result = if round % 2 == 0 { FAIL } else { PASS };
            assert_eq!(state.observe(result), None);
        }
        assert_eq!(state.status(), Status::Up);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn verdicts() -> impl Strategy<Value = Vec<Verdict>> {
            let verdict = prop_oneof![
                3 => Just(Verdict::Fail),
                3 => Just(Verdict::Pass(None)),
                1 => Just(Verdict::Pass(Some(Role::Primary))),
                1 => Just(Verdict::Pass(Some(Role::Replica))),
            ];
            proptest::collection::vec(verdict, 1..200)
        }

        proptest! {
            /// Every change is backed by exactly the streak the thresholds
            /// ask for, and nothing else ever changes the status.
            #[test]
            fn changes_follow_rise_and_fall(rise in 1u32..5, fall in 1u32..5, seq in verdicts()) {
                let mut state = RiseFall::new(rise, fall);
                let (mut passes, mut fails) = (0u32, 0u32);
                for (index, verdict) in seq.iter().copied().enumerate() {
                    let before = state.status();
                    let role_before = state.role();
                    match verdict {
                        Verdict::Pass(_) => { passes += 1; fails = 0; }
                        Verdict::Fail => { fails += 1; passes = 0; }
                    }
                    let transition = state.observe(verdict);
                    if let Some(transition) = transition {
                        prop_assert_eq!(
                            (transition.old, transition.new, transition.role),
                            (before, state.status(), state.role())
                        );
                    }
                    match (before, state.status()) {
                        (Status::Unknown, after) => {
                            prop_assert_eq!(index, 0);
                            let expected = if passes > 0 { Status::Up } else { Status::Down };
                            prop_assert_eq!(after, expected);
                            prop_assert!(transition.is_some());
                        }
                        (Status::Up, Status::Down) => prop_assert_eq!(fails, fall),
                        (Status::Down, Status::Up) => prop_assert_eq!(passes, rise),
                        (Status::Up, Status::Up) => {
                            // Only a role change is news while up.
                            let role_changed = matches!(verdict, Verdict::Pass(role) if role != role_before);
                            prop_assert_eq!(transition.is_some(), role_changed);
                            prop_assert!(fails < fall);
                        }
                        (Status::Down, Status::Down) => {
                            prop_assert!(transition.is_none());
                            prop_assert!(passes < rise);
                        }
                        (_, Status::Unknown) => prop_assert!(false, "back to unknown"),
                    }
                    if let Verdict::Pass(role) = verdict {
                        if state.status() == Status::Up {
                            prop_assert_eq!(state.role(), role);
                        }
                    }
                    if state.status() == Status::Down {
                        prop_assert_eq!(state.role(), None);
                    }
                }
            }
        }
    }
}
