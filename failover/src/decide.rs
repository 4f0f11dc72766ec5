//! Failover decisions that need no server: which replica to promote, and whether a former
//! primary may rejoin. Kept free of I/O so every rule is unit-tested.

use crate::gtid::{self, GtidPosition};

/// A replica that lost the primary, as failover ranks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender<'a> {
    /// Server name.
    pub name: &'a str,
    /// What it received (`Gtid_IO_Pos`).
    pub received: &'a GtidPosition,
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

    #[test]
    fn the_most_advanced_candidate_wins_and_ties_go_by_pool_order() {
        let (a, b, c) = (position("0-1-10"), position("0-1-12"), position("0-1-12"));
        let contenders = [
            Contender {
                name: "a",
                received: &a,
                promotable: true,
            },
            Contender {
                name: "b",
                received: &b,
                promotable: true,
            },
            Contender {
                name: "c",
                received: &c,
                promotable: true,
            },
        ];
        assert_eq!(choose(&contenders), Ok("b"));
    }

    #[test]
    fn a_behind_candidate_is_never_promoted_over_a_more_advanced_replica() {
        let (a, b) = (position("0-1-10"), position("0-1-12"));
        let contenders = [
            Contender {
                name: "a",
                received: &a,
                promotable: true,
            },
            Contender {
                name: "b",
                received: &b,
                promotable: false,
            },
        ];
        let refusal = choose(&contenders).unwrap_err();
        assert!(
            refusal.contains("b (at 0-1-12) is not a failover candidate"),
            "{refusal}"
        );
    }

    #[test]
    fn diverged_replicas_are_not_promoted() {
        let (a, b) = (position("0-1-10,1-2-3"), position("0-1-12"));
        let contenders = [
            Contender {
                name: "a",
                received: &a,
                promotable: true,
            },
            Contender {
                name: "b",
                received: &b,
                promotable: true,
            },
        ];
        assert!(
            choose(&contenders)
                .unwrap_err()
                .contains("no replica received everything")
        );
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
