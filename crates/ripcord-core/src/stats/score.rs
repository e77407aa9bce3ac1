//! Bounded scores (utility, prompt adherence): anytime-valid confidence
//! sequences for the mean.
//!
//! A score in `[min, max]` is sub-Gaussian with `σ = (max − min)/2`
//! (Hoeffding). Robbins' normal-mixture boundary then gives, for every
//! `n` at once, `|mean − μ| < sqrt((nσ² + ρ) · ln((nσ² + ρ)/(ρ α²))) / n`
//! with probability ≥ 1 − α (Howard, Ramdas, McAuliffe & Sekhon 2021, eq. 14).
//! `ρ` sets where the boundary is tightest; we tune it to the criterion's
//! `min_samples`. Comparisons with the baseline split `α` between the two
//! versions' sequences (a union bound), which stays valid however the share
//! changes. Tighter, variance-adaptive sequences (betting) come later.

/// Running mean with its confidence sequence.
#[derive(Clone, Debug)]
pub struct MeanSequence {
    n: f64,
    sum: f64,
    sigma2: f64,
    rho: f64,
}

impl MeanSequence {
    /// `range` is the score's span (`max − min`); `tuned_for` the sample size
    /// where the boundary should be tightest.
    pub fn new(range: f64, tuned_for: f64) -> MeanSequence {
        let sigma2 = (range / 2.0).powi(2);
        MeanSequence {
            n: 0.0,
            sum: 0.0,
            sigma2,
            rho: sigma2 * tuned_for.max(10.0),
        }
    }

    pub fn add(&mut self, value: f64) {
        self.n += 1.0;
        self.sum += value;
    }

    pub fn n(&self) -> f64 {
        self.n
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// The confidence interval at level `1 − alpha`, valid at every `n` at once.
    pub fn interval(&self, alpha: f64) -> Option<(f64, f64)> {
        let mean = self.mean()?;
        let v = self.n * self.sigma2 + self.rho;
        let radius = (v * (v / (self.rho * alpha * alpha)).ln()).sqrt() / self.n;
        Some((mean - radius, mean + radius))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_contains_the_mean_and_shrinks_with_data() {
        let mut s = MeanSequence::new(1.0, 100.0);
        for i in 0..100 {
            s.add(if i % 2 == 0 { 0.7 } else { 0.9 });
        }
        let (lo, hi) = s.interval(0.05).unwrap();
        assert!(lo < 0.8 && hi > 0.8);
        let wide = hi - lo;
        for i in 0..10_000 {
            s.add(if i % 2 == 0 { 0.7 } else { 0.9 });
        }
        let (lo, hi) = s.interval(0.05).unwrap();
        assert!(hi - lo < wide / 5.0, "{} vs {}", hi - lo, wide);
    }

    #[test]
    fn no_data_has_no_interval() {
        assert_eq!(MeanSequence::new(1.0, 100.0).interval(0.05), None);
    }
}
