//! Deterministic, sticky assignment of units to versions.
//!
//! `bucket = first 8 bytes of SHA-256(salt ":" unit), big-endian u64, mod 10000`;
//! a unit gets the candidate when `bucket < share · 10000`. Any language can
//! reproduce it, and raising the share only ever adds units to the candidate.

use sha2::{Digest, Sha256};

/// The unit's bucket in `[0, 10000)`.
pub fn bucket(salt: &str, unit: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(unit.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 10_000
}

/// Whether the unit is on the candidate at this share.
pub fn is_candidate(salt: &str, unit: &str, share: f64) -> bool {
    (bucket(salt, unit) as f64) < share * 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_formula_matches_an_independent_computation() {
        // python3 -c 'import hashlib; d=hashlib.sha256(b"support-bot:u-81").digest(); print(int.from_bytes(d[:8],"big") % 10000)'
        assert_eq!(bucket("support-bot", "u-81"), 2575);
    }

    #[test]
    fn buckets_are_uniform() {
        // 100k units into 10 deciles: chi-square with 9 degrees of freedom;
        // 27.9 is its 0.999 quantile.
        let mut counts = [0f64; 10];
        for i in 0..100_000 {
            counts[(bucket("svc", &format!("user-{i}")) / 1000) as usize] += 1.0;
        }
        let chi2: f64 = counts
            .iter()
            .map(|c| (c - 10_000.0).powi(2) / 10_000.0)
            .sum();
        assert!(chi2 < 27.9, "chi-square {chi2}");
    }

    proptest! {
        #[test]
        fn ramping_up_only_adds_units(unit in "\\PC{1,20}", a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(bucket("svc", &unit) < 10_000);
            if is_candidate("svc", &unit, low) {
                prop_assert!(is_candidate("svc", &unit, high));
            }
        }
    }
}
