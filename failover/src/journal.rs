//! What failover remembers across restarts, per pool, in `state_dir`: the last automatic
//! failover (for the block window and its acknowledgement, and the position the new primary
//! was promoted at, which tells a clean old primary from one with errant transactions) and
//! the servers it fenced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A pool's failover memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The last automatic failover.
    #[serde(default)]
    pub last_failover: Option<Record>,
    /// Servers fenced out of the write path: a former primary waiting to rejoin, or one
    /// that must be re-cloned.
    #[serde(default)]
    pub fenced: BTreeSet<String>,
    /// The position each promoted server was promoted at: a former primary rejoins it only
    /// if its own binary log does not go beyond.
    #[serde(default)]
    pub promotions: Vec<Promotion>,
}

/// One automatic failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the new primary was promoted (seconds since the epoch).
    pub at: u64,
    /// The primary that died.
    pub old_primary: String,
    /// The replica promoted.
    pub new_primary: String,
    /// Whether an operator acknowledged it.
    pub acknowledged: bool,
}

/// A promotion, by failover or switchover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The server promoted.
    pub server: String,
    /// Its `gtid_current_pos` when promoted.
    pub position: String,
}

/// Promotions remembered per pool (the newest count).
const PROMOTIONS_KEPT: usize = 16;

impl Journal {
    /// The journal file of `pool` under `state_dir`.
    pub fn path(state_dir: &Path, pool: &str) -> PathBuf {
        state_dir.join(format!("failover-{pool}.json"))
    }

    /// Reads the journal; a missing file is an empty journal, an unreadable one an error.
    pub fn load(path: &Path) -> Result<Journal, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| format!("{}: {error}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// Writes the journal atomically (a crash leaves the old or the new one).
    pub fn store(&self, path: &Path) -> Result<(), String> {
        let temporary = path.with_extension("json.new");
        let text = serde_json::to_vec_pretty(self).map_err(|error| error.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        }
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Until when automatic failover is blocked after the last one, if it is now.
    pub fn blocked_until(&self, block: Duration, now: SystemTime) -> Option<SystemTime> {
        let record = self.last_failover.as_ref().filter(|r| !r.acknowledged)?;
        let until = UNIX_EPOCH + Duration::from_secs(record.at) + block;
        (until > now).then_some(until)
    }

    /// Remembers a promotion of `server` at `position`.
    pub fn promoted(&mut self, server: &str, position: String) {
        self.promotions
            .retain(|promotion| promotion.server != server);
        self.promotions.push(Promotion {
            server: server.to_owned(),
            position,
        });
        let excess = self.promotions.len().saturating_sub(PROMOTIONS_KEPT);
        self.promotions.drain(..excess);
    }

    /// The position `server` was last promoted at.
    pub fn promotion_of(&self, server: &str) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .find(|promotion| promotion.server == server)
            .map(|promotion| promotion.position.as_str())
    }
}

/// Seconds since the epoch.
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_window_ends_by_time_or_acknowledgement() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut journal = Journal {
            last_failover: Some(Record {
                at: unix_seconds(at),
                old_primary: "a".into(),
                new_primary: "b".into(),
                acknowledged: false,
            }),
            ..Journal::default()
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(
            journal.blocked_until(hour, at + Duration::from_secs(10)),
            Some(at + hour)
        );
        assert_eq!(journal.blocked_until(hour, at + hour), None);
        journal.last_failover.as_mut().unwrap().acknowledged = true;
        assert_eq!(journal.blocked_until(hour, at), None);
    }

    #[test]
    fn stores_and_loads_back_and_keeps_the_newest_promotions() {
        let dir = std::env::temp_dir().join(format!("hafront-journal-{}", std::process::id()));
        let path = Journal::path(&dir, "db");
        assert_eq!(Journal::load(&path).unwrap(), Journal::default());
        let mut journal = Journal::default();
        for n in 0..20 {
            journal.promoted(&format!("s{}", n % 3), format!("0-1-{n}"));
        }
        journal.fenced.insert("s1".into());
        journal.store(&path).unwrap();
        let loaded = Journal::load(&path).unwrap();
        assert_eq!(loaded, journal);
        assert_eq!(loaded.promotion_of("s1"), Some("0-1-19"));
        assert_eq!(loaded.promotions.len(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
