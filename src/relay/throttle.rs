//! A limit on repeated warnings: at most one per interval, with the number
//! held back since the previous one.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lets through at most one warning per `interval` and counts the others.
pub(crate) struct Throttle {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the last warning was let through.
    last: Option<Instant>,
    /// Warnings held back since then.
    suppressed: u64,
}

impl Throttle {
    /// A throttle letting one warning through per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            state: Mutex::default(),
        }
    }

    /// Whether a warning occurring at `now` may be logged: if so, the number
    /// held back since the previous one; if not, none (and it is counted).
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_with_the_count_of_those_held_back() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        assert_eq!(throttle.admit(at(0)), Some(0), "the first passes");
        assert_eq!(throttle.admit(at(1)), None);
        assert_eq!(throttle.admit(at(9)), None);
        assert_eq!(throttle.admit(at(10)), Some(2), "two were held back");
        assert_eq!(throttle.admit(at(15)), None);
        assert_eq!(throttle.admit(at(30)), Some(1));
        assert_eq!(
            throttle.admit(at(41)),
            Some(0),
            "a quiet interval: none held back"
        );
    }
}
