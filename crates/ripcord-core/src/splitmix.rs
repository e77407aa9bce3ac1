//! SplitMix64: a small, fast pseudo-random sequence fully determined by its
//! seed. Used where the engine needs an order or a sample that owes nothing
//! to the data and is the same on every run (evidence reservoirs, the drift
//! test's draw order); it needs no cryptographic strength.

/// SplitMix64: small, fast, and fully determined by its seed. Sampling
/// needs no cryptographic strength, only a fixed sequence.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` for `n > 0`, without modulo bias (Lemire's
    /// multiply-and-reject).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}
