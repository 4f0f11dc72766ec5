//! When a relay starts and stops refusing clients at its connection limit,
//! judged from its `refused_limit` counter so the accept path stays untouched.
//! One alert per episode, not one per refused client.

use std::time::{Duration, Instant};

/// How long a relay must go without a refusal before a new refusal counts as
/// a new episode (and alerts again).
pub const QUIET_PERIOD: Duration = Duration::from_secs(60);

/// A change in a relay's saturation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saturation {
    /// The relay refused clients at its limit after a quiet period.
    Started,
    /// No refusal for [`QUIET_PERIOD`].
    Ended,
}

/// Follows one relay's limit refusals over successive observations.
#[derive(Debug, Clone)]
pub struct SaturationWatch {
    refused: u64,
    last_refusal: Option<Instant>,
}

impl SaturationWatch {
    /// Starts from the relay's current refusal count, so refusals from before
    /// (for example before a reload) do not alert again.
    pub fn new(refused_limit: u64) -> Self {
        SaturationWatch {
            refused: refused_limit,
            last_refusal: None,
        }
    }

    /// Takes the relay's `refused_limit` counter at `now`; tells when an
    /// episode starts or ends.
    pub fn observe(&mut self, refused_limit: u64, now: Instant) -> Option<Saturation> {
        let refusing = refused_limit > self.refused;
        self.refused = refused_limit;
        match (refusing, self.last_refusal) {
            (true, None) => {
                self.last_refusal = Some(now);
                Some(Saturation::Started)
            }
            (true, Some(_)) => {
                self.last_refusal = Some(now);
                None
            }
            (false, Some(last)) if now.duration_since(last) >= QUIET_PERIOD => {
                self.last_refusal = None;
                Some(Saturation::Ended)
            }
            (false, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_start_per_episode_and_an_end_after_the_quiet_period() {
        let t0 = Instant::now();
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        let mut watch = SaturationWatch::new(7);
        assert_eq!(watch.observe(7, at(1)), None, "old refusals do not count");
        assert_eq!(watch.observe(9, at(2)), Some(Saturation::Started));
        assert_eq!(watch.observe(50, at(3)), None, "still the same episode");
        assert_eq!(watch.observe(50, at(40)), None);
        assert_eq!(
            watch.observe(51, at(62)),
            None,
            "a refusal restarts the quiet period"
        );
        assert_eq!(watch.observe(51, at(121)), None);
        assert_eq!(watch.observe(51, at(122)), Some(Saturation::Ended));
        assert_eq!(watch.observe(51, at(500)), None);
        assert_eq!(watch.observe(52, at(501)), Some(Saturation::Started));
    }
}
