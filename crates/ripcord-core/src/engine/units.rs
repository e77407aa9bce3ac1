//! A bounded set of units: what the per-unit counts remember about the
//! users they have seen, in fixed memory however many users a release has.
//!
//! It is a Bloom filter of 2^24 bits (2 MiB, allocated at the first
//! insert, so a criterion that never counts per unit pays nothing) probed
//! at 8 places. "Not seen" is always right; "seen" is wrong with the
//! filter's false-positive rate — about 5 in 10,000 after a million
//! distinct units, a quarter after four million, nine in ten after ten. A false "seen"
//! drops a unit from what it would have counted: a new unit is not added
//! to the SRM check, a unit's first flag is not counted by a per-unit
//! criterion (nor its outputs, which no longer count towards it). Which
//! units are dropped depends on the unit id's hash under salts of this
//! module alone, not on the version the unit was assigned (the assignment
//! hashes the unit with SHA-256, unrelated), so the dropping thins both
//! versions alike: the tests stay valid and lose power as the filter
//! fills. `docs/statistics.md` states this assumption and what it costs.

use serde::{Deserialize, Serialize};

/// Bits in the filter: 2^24 (2 MiB).
const BITS: u64 = 1 << 24;
const WORDS: usize = (BITS / 64) as usize;
/// Probes per unit: near-optimal for a million units in 2^24 bits.
const PROBES: u64 = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSet {
    /// Empty until the first insert.
    words: Vec<u64>,
}

impl UnitSet {
    /// Whether `unit` may have been inserted (never false for one that
    /// was).
    pub fn contains(&self, unit: u64) -> bool {
        !self.words.is_empty() && probes(unit).all(|bit| self.get(bit))
    }

    /// Inserts `unit`; `true` when it was not in the set before (as far as
    /// the filter can tell: `false` for a false positive too).
    pub fn insert(&mut self, unit: u64) -> bool {
        if self.words.is_empty() {
            self.words = vec![0; WORDS];
        }
        let mut new = false;
        for bit in probes(unit) {
            let (word, mask) = place(bit);
            new |= self.words[word] & mask == 0;
            self.words[word] |= mask;
        }
        new
    }

    pub fn clear(&mut self) {
        self.words = Vec::new();
    }

    fn get(&self, bit: u64) -> bool {
        let (word, mask) = place(bit);
        self.words.get(word).is_some_and(|w| w & mask != 0)
    }
}

fn place(bit: u64) -> (usize, u64) {
    ((bit / 64) as usize, 1 << (bit % 64))
}

/// The unit's probe positions (double hashing of two salted mixes).
fn probes(unit: u64) -> impl Iterator<Item = u64> {
    let a = mix(unit ^ 0x5851_F42D_4C95_7F2D);
    let b = mix(unit ^ 0x1405_7B7E_F767_814F) | 1;
    (0..PROBES).map(move |i| a.wrapping_add(i.wrapping_mul(b)) % BITS)
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_unit_is_always_seen_and_a_new_one_rarely() {
        let mut set = UnitSet::default();
        assert!(!set.contains(7));
        assert!(set.insert(7));
        assert!(!set.insert(7));
        assert!(set.contains(7));
        for u in 0..1_000_000u64 {
            set.insert(u.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        let false_seen = (0..100_000u64)
            .filter(|u| set.contains(u.wrapping_mul(31) ^ 0xDEAD_BEEF_0000_0000))
            .count();
        // Expected about 5 in 10,000 at a million units.
        assert!(false_seen < 200, "{false_seen} of 100,000 falsely seen");
        assert_eq!(set.words.len() * 8, 2 << 20, "2 MiB, whatever the count");
    }

    #[test]
    fn a_set_that_never_counted_takes_no_memory_and_clears_to_nothing() {
        let mut set = UnitSet::default();
        assert!(set.words.is_empty());
        set.insert(1);
        set.clear();
        assert_eq!(set, UnitSet::default());
    }
}
