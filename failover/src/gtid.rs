//! MariaDB GTID positions: one `domain-server_id-sequence` per replication domain, as
//! `@@gtid_current_pos` or `Gtid_IO_Pos` print them (`0-1-100,1-2-7`).

use std::collections::BTreeMap;
use std::fmt;

/// One GTID: the last transaction of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that wrote the transaction.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub sequence: u64,
}

/// A GTID position: the last GTID of each domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidPosition(BTreeMap<u32, Gtid>);

/// A position that is not a comma-separated list of `domain-server-sequence`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GTID position: {0:?} (expected domain-server-sequence, comma-separated)")]
pub struct ParseGtidError(String);

impl std::str::FromStr for GtidPosition {
    type Err = ParseGtidError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseGtidError(text.to_owned());
        let mut position = BTreeMap::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let mut parts = item.split('-');
            let mut next = || parts.next().ok_or_else(error);
            let gtid = Gtid {
                domain: next()?.parse().map_err(|_| error())?,
                server_id: next()?.parse().map_err(|_| error())?,
                sequence: next()?.parse().map_err(|_| error())?,
            };
            if parts.next().is_some() || position.insert(gtid.domain, gtid).is_some() {
                return Err(error());
            }
        }
        Ok(GtidPosition(position))
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, gtid) in self.0.values().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}-{}-{}", gtid.domain, gtid.server_id, gtid.sequence)?;
        }
        Ok(())
    }
}

impl GtidPosition {
    /// Whether no domain has a transaction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sequence reached in `domain` (0 when none).
    pub fn sequence(&self, domain: u32) -> u64 {
        self.0.get(&domain).map_or(0, |gtid| gtid.sequence)
    }

    /// Whether this position has reached `other` in every domain: a server here has every
    /// transaction of a server at `other`, provided both descend from one history (which
    /// `gtid_strict_mode` and the promotion record make checkable).
    pub fn covers(&self, other: &GtidPosition) -> bool {
        other
            .0
            .values()
            .all(|gtid| self.sequence(gtid.domain) >= gtid.sequence)
    }

    /// The domains in which this position is ahead of `other`, as the GTIDs reached here:
    /// transactions `other` does not have.
    pub fn ahead_of(&self, other: &GtidPosition) -> Vec<Gtid> {
        self.0
            .values()
            .filter(|gtid| gtid.sequence > other.sequence(gtid.domain))
            .copied()
            .collect()
    }

    /// Transactions in all domains together: a rank for positions neither of which covers
    /// the other.
    pub fn total(&self) -> u64 {
        self.0.values().map(|gtid| gtid.sequence).sum()
    }
}

/// Formats GTIDs as a position list.
pub fn list(gtids: &[Gtid]) -> String {
    GtidPosition(gtids.iter().map(|gtid| (gtid.domain, *gtid)).collect()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn position(text: &str) -> GtidPosition {
        text.parse().unwrap()
    }

    #[test]
    fn parses_what_mariadb_prints() {
        assert!(position("").is_empty());
        let two = position("0-1-100,1-2-7");
        assert_eq!(two.sequence(0), 100);
        assert_eq!(two.sequence(1), 7);
        assert_eq!(two.sequence(5), 0);
        assert_eq!(two.to_string(), "0-1-100,1-2-7");
        for bad in ["0-1", "0-1-2-3", "a-1-2", "0-1-2,0-1-3", "0--2"] {
            assert!(bad.parse::<GtidPosition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn covers_needs_every_domain_reached() {
        assert!(position("0-1-100").covers(&position("0-1-99")));
        assert!(position("0-2-100").covers(&position("0-1-100")));
        assert!(!position("0-1-100").covers(&position("0-1-101")));
        assert!(!position("0-1-100").covers(&position("0-1-50,1-3-1")));
        assert!(position("0-1-1").covers(&position("")));
        assert_eq!(
            list(&position("0-1-9,1-1-4").ahead_of(&position("0-1-9,1-2-3"))),
            "1-1-4"
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(entries in proptest::collection::btree_map(0u32..5, (1u32..10, 0u64..1000), 0..4)) {
            let position = GtidPosition(entries.into_iter().map(|(domain, (server_id, sequence))| {
                (domain, Gtid { domain, server_id, sequence })
            }).collect());
            prop_assert_eq!(position.to_string().parse::<GtidPosition>().unwrap(), position);
        }

        #[test]
        fn covers_is_reflexive_and_ahead_of_is_its_negation(a in "[0-2]-1-[0-9]{1,3}", b in "[0-2]-1-[0-9]{1,3}") {
            let (a, b) = (position(&a), position(&b));
            prop_assert!(a.covers(&a));
            prop_assert_eq!(b.covers(&a), a.ahead_of(&b).is_empty());
        }
    }
}
