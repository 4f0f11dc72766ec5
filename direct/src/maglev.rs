//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016), weighted. Sans-IO: a pure function from named, weighted
//! backends to a lookup table.
//!
//! Each backend has a preference list of table slots (a permutation of the table derived
//! from its name alone); backends take turns claiming their next free preferred slot until
//! the table is full. A backend of weight `w` takes `w / max_weight` turns per round, so
//! its share of the table is its share of the total weight. Because preferences depend
//! only on names, removing one backend mostly frees only its own slots; and because the
//! hash is fixed (not seeded per process), two directors given the same backends build the
//! same table, so a new VRRP master sends a flow where the old one did.

/// The entry of a table slot when no backend has a positive weight.
pub const EMPTY: u32 = u32::MAX;

/// Builds a lookup table of `size` entries (use a prime well above 100 times the number of
/// backends). Each entry is an index into `backends` (the input order), or [`EMPTY`] for
/// every entry when no backend has a positive weight. Backends of weight 0 get no entry.
/// The result depends on the names and weights, not on the order of `backends`; names are
/// expected to be unique.
pub fn table(backends: &[(&str, u32)], size: usize) -> Vec<u32> {
    let mut entries = vec![EMPTY; size];
    // Sorted by name so the input order does not matter.
    let mut order: Vec<usize> = (0..backends.len())
        .filter(|&index| backends[index].1 > 0)
        .collect();
    order.sort_by(|&a, &b| backends[a].0.cmp(backends[b].0).then(a.cmp(&b)));
    let Some(max_weight) = order.iter().map(|&index| backends[index].1).max() else {
        return entries;
    };
    if size == 0 {
        return entries;
    }
    let mut preferences: Vec<Preferences> = order
        .iter()
        .map(|&index| Preferences::new(backends[index].0, size))
        .collect();
    let mut credit = vec![0u64; order.len()];
    let mut filled = 0;
    // Every turn fills one slot (a permutation always finds a free one while the table is
    // not full), and each round gives the heaviest backend at least one turn.
    while filled < size {
        for (position, &index) in order.iter().enumerate() {
            credit[position] += u64::from(backends[index].1);
            while credit[position] >= u64::from(max_weight) && filled < size {
                credit[position] -= u64::from(max_weight);
                let slot = preferences[position].next_free(&entries);
                entries[slot] = u32::try_from(index).unwrap_or(EMPTY);
                filled += 1;
            }
        }
    }
    entries
}

/// One backend's walk through its preference permutation: slot `(offset + j * skip) % size`
/// for j = 0, 1, ...
struct Preferences {
    next: usize,
    skip: usize,
    size: usize,
}

impl Preferences {
    fn new(name: &str, size: usize) -> Preferences {
        let offset = (hash(name, 0x4d61_676c_6576_0001) % size as u64) as usize;
        let mut skip = if size > 1 {
            (hash(name, 0x4d61_676c_6576_0002) % (size as u64 - 1)) as usize + 1
        } else {
            1
        };
        // With a prime size every skip is coprime; for any other size, step to one that is,
        // so the walk still visits every slot (1 always is).
        while gcd(skip, size) != 1 {
            skip -= 1;
        }
        Preferences {
            next: offset,
            skip,
            size,
        }
    }

    /// The next slot in this backend's preference order that is still free. The table must
    /// have a free slot.
    fn next_free(&mut self, entries: &[u32]) -> usize {
        loop {
            let slot = self.next;
            self.next = (self.next + self.skip) % self.size;
            if entries[slot] == EMPTY {
                return slot;
            }
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// FNV-1a over the name, from `seed`, then splitmix64's finaliser: fixed across processes,
/// machines and releases (the table must be reproducible on another director).
fn hash(name: &str, seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The director's table size.
    const SIZE: usize = crate::TABLE_SIZE;

    fn owned(backends: &[(String, u32)]) -> Vec<(&str, u32)> {
        backends
            .iter()
            .map(|(name, weight)| (name.as_str(), *weight))
            .collect()
    }

    fn backends(weights: &[u32]) -> Vec<(String, u32)> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| (format!("db-{index}"), weight))
            .collect()
    }

    fn shares(entries: &[u32], count: usize) -> Vec<usize> {
        let mut shares = vec![0; count];
        for &entry in entries {
            shares[entry as usize] += 1;
        }
        shares
    }

    #[test]
    fn no_positive_weight_leaves_the_table_empty() {
        assert!(table(&[], SIZE).iter().all(|&entry| entry == EMPTY));
        assert!(
            table(&[("a", 0), ("b", 0)], SIZE)
                .iter()
                .all(|&entry| entry == EMPTY)
        );
    }

    #[test]
    fn a_non_prime_size_still_fills_every_slot() {
        let entries = table(&[("a", 1), ("b", 2), ("c", 3)], 1000);
        assert!(entries.iter().all(|&entry| entry != EMPTY));
    }

    #[test]
    fn the_table_is_fixed_for_given_names_and_weights() {
        // Another director (or a later release) must build the same table: a new master
        // sends established flows where the old one did. A change of hash shows up here.
        let entries = table(&[("db-a", 1), ("db-b", 1), ("db-c", 2)], SIZE);
        let checksum = entries.iter().fold(0u64, |sum, &entry| {
            sum.wrapping_mul(31).wrapping_add(u64::from(entry))
        });
        assert_eq!(shares(&entries, 3), vec![4095, 4095, 8191]);
        assert_eq!(checksum, 4_726_661_904_018_083_629);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_slot_goes_to_a_backend_in_proportion_to_its_weight(
            weights in prop::collection::vec(1u32..=10, 1..=64)
        ) {
            let backends = backends(&weights);
            let entries = table(&owned(&backends), SIZE);
            prop_assert!(entries.iter().all(|&entry| (entry as usize) < weights.len()));
            let total: u32 = weights.iter().sum();
            for (index, count) in shares(&entries, weights.len()).into_iter().enumerate() {
                let expected = SIZE as f64 * f64::from(weights[index]) / f64::from(total);
                // Within 3 % of its weighted share, or one slot for tiny shares.
                prop_assert!(
                    (count as f64 - expected).abs() <= (expected * 0.03).max(1.0),
                    "backend {index} (weight {}) has {count} slots, expected {expected:.1}",
                    weights[index]
                );
            }
        }

        #[test]
        fn the_order_of_the_backends_does_not_matter(
            weights in prop::collection::vec(0u32..=5, 1..=20),
            rotation in 0usize..20,
        ) {
            let backends = backends(&weights);
            let entries = table(&owned(&backends), SIZE);
            let mut rotated = backends.clone();
            let by = rotation % rotated.len();
            rotated.rotate_left(by);
            let rotated_entries = table(&owned(&rotated), SIZE);
            for (slot, (&entry, &rotated_entry)) in entries.iter().zip(&rotated_entries).enumerate() {
                let name = (entry != EMPTY).then(|| &backends[entry as usize].0);
                let rotated_name = (rotated_entry != EMPTY).then(|| &rotated[rotated_entry as usize].0);
                prop_assert_eq!(name, rotated_name, "slot {}", slot);
            }
        }

        #[test]
        fn removing_a_backend_moves_its_slots_and_few_others(
            weights in prop::collection::vec(1u32..=4, 2..=64),
            removed in 0usize..64,
        ) {
            let before_backends = backends(&weights);
            let removed = removed % weights.len();
            let before = table(&owned(&before_backends), SIZE);
            let mut after_backends = before_backends.clone();
            after_backends.remove(removed);
            let after = table(&owned(&after_backends), SIZE);
            let mut moved_others = 0;
            for (&was, &now) in before.iter().zip(&after) {
                let name_was = &before_backends[was as usize].0;
                let name_now = &after_backends[now as usize].0;
                if was as usize == removed {
                    prop_assert_ne!(name_now, name_was);
                } else if name_was != name_now {
                    moved_others += 1;
                }
            }
            // Maglev trades a little disruption for balance: besides the removed backend's
            // own slots, about as many again change hands among the others (measured: at
            // most 1.13x its share over these cases); bound it at 1.5x plus 0.3 % of the table.
            let total: u32 = weights.iter().sum();
            let removed_share = f64::from(weights[removed]) / f64::from(total);
            prop_assert!(
                (moved_others as f64) <= SIZE as f64 * (1.5 * removed_share + 0.003),
                "{moved_others} of {SIZE} slots of other backends moved (removed share {removed_share:.3})"
            );
        }
    }
}
