//! Failover decisions that need no server: which replica to promote, and whether a former
//! primary may rejoin. Kept free of I/O so every rule is unit-tested.

use std::fmt;

use crate::gtid::{self, GtidPosition};

/// How far a replica received its primary's binary log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// `Gtid_IO_Pos`, for a replica using GTID.
    Gtid(GtidPosition),
    /// `Master_Log_File` and `Read_Master_Log_Pos`, for one that does not: the coordinates
    /// of one primary, comparable between its replicas.
    Binlog {
        /// The primary's binary log file (names sort in order).
        file: String,
        /// The position read in it.
        position: u64,
    },
}

impl Received {
    /// Whether a replica here received everything a replica at `other` did. GTID and file
    /// coordinates do not compare.
    pub fn covers(&self, other: &Received) -> bool {
        match (self, other) {
            (Received::Gtid(own), Received::Gtid(other)) => own.covers(other),
            (
                Received::Binlog { file, position },
                Received::Binlog {
                    file: other_file,
                    position: other_position,
                },
            ) => (file, position) >= (other_file, other_position),
            _ => false,
        }
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Received::Gtid(position) => position.fmt(f),
            Received::Binlog { file, position } => write!(f, "{file}:{position}"),
        }
    }
}

/// A replica that lost the primary, as failover ranks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender<'a> {
    /// Server name.
    pub name: &'a str,
    /// What it received.
    pub received: &'a Received,
    /// Whether the configuration lets it be promoted.
    pub promotable: bool,
}

/// The replica to promote: one that received everything any other received (so nothing
/// acknowledged is lost), the first such in pool order among those that may be promoted.
/// `Err` says, in words, why none can be.
pub fn choose<'a>(contenders: &[Contender<'a>]) -> Result<&'a str, String> {
    let most_advanced: Vec<&Contender> = contenders
        .iter()
        .filter(|c| {
            contenders
                .iter()
                .all(|other| c.received.covers(other.received))
        })
        .collect();
    if most_advanced.is_empty() {
        let positions: Vec<String> = contenders
            .iter()
            .map(|c| format!("{} at {}", c.name, c.received))
            .collect();
        return Err(format!(
            "no replica received everything the others did ({}): promoting any would lose \
             transactions",
            positions.join(", ")
        ));
    }
    match most_advanced.iter().find(|c| c.promotable) {
        Some(chosen) => Ok(chosen.name),
        None => Err(format!(
            "the most advanced replica {} (at {}) is not a failover candidate, and promoting \
             another would lose transactions",
            most_advanced[0].name, most_advanced[0].received
        )),
    }
}

/// Whether a former primary whose binary log reaches `own` may replicate from a server
/// promoted at `promoted_at`: only if it holds no transaction beyond that point (an errant
/// transaction the new primary never got). `Err` names the errant GTIDs.
pub fn may_rejoin(own: &GtidPosition, promoted_at: &GtidPosition) -> Result<(), String> {
    let errant = own.ahead_of(promoted_at);
    if errant.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "it has transactions the new primary never received (up to {}; the new primary \
             was promoted at {promoted_at})",
            gtid::list(&errant)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(text: &str) -> GtidPosition {
        text.parse().unwrap()
    }

    fn gtid(text: &str) -> Received {
        Received::Gtid(position(text))
    }

    fn binlog(file: &str, position: u64) -> Received {
        Received::Binlog {
            file: file.to_owned(),
            position,
        }
    }

    /// Contenders named a, b, c... at `positions`, promotable as given.
    fn contenders<'a>(positions: &'a [(Received, bool)]) -> Vec<Contender<'a>> {
        const NAMES: [&str; 3] = ["a", "b", "c"];
        positions
            .iter()
            .zip(NAMES)
            .map(|((received, promotable), name)| Contender {
                name,
                received,
                promotable: *promotable,
            })
            .collect()
    }

    #[test]
    fn the_most_advanced_candidate_wins_and_ties_go_by_pool_order() {
        let positions = [
            (gtid("0-1-10"), true),
            (gtid("0-1-12"), true),
            (gtid("0-1-12"), true),
        ];
        assert_eq!(choose(&contenders(&positions)), Ok("b"));
    }

    #[test]
    fn a_behind_candidate_is_never_promoted_over_a_more_advanced_replica() {
        let positions = [(gtid("0-1-10"), true), (gtid("0-1-12"), false)];
        let refusal = choose(&contenders(&positions)).unwrap_err();
        assert!(
            refusal.contains("b (at 0-1-12) is not a failover candidate"),
            "{refusal}"
        );
    }

    #[test]
    fn diverged_replicas_are_not_promoted() {
        let positions = [(gtid("0-1-10,1-2-3"), true), (gtid("0-1-12"), true)];
        let refusal = choose(&contenders(&positions)).unwrap_err();
        assert!(
            refusal.contains("no replica received everything"),
            "{refusal}"
        );
    }

    #[test]
    fn without_gtid_the_binlog_coordinates_rank_and_mixed_replicas_do_not_compare() {
        let positions = [
            (binlog("binlog.000007", 900), true),
            (binlog("binlog.000008", 120), true),
            (binlog("binlog.000007", 4000), true),
        ];
        assert_eq!(choose(&contenders(&positions)), Ok("b"));
        let mixed = [(gtid("0-1-10"), true), (binlog("binlog.000008", 120), true)];
        let refusal = choose(&contenders(&mixed)).unwrap_err();
        assert!(refusal.contains("b at binlog.000008:120"), "{refusal}");
    }

    #[test]
    fn a_former_primary_rejoins_only_without_errant_transactions() {
        assert_eq!(
            may_rejoin(&position("0-1-100"), &position("0-1-100")),
            Ok(())
        );
        assert_eq!(
            may_rejoin(&position("0-1-90"), &position("0-1-100")),
            Ok(())
        );
        let errant = may_rejoin(&position("0-1-101"), &position("0-1-100")).unwrap_err();
        assert!(errant.contains("up to 0-1-101"), "{errant}");
    }
}
