//! Bounded scores (utility, prompt adherence): anytime-valid confidence
//! sequences for the mean, by betting.
//!
//! Scores are rescaled to `[0, 1]`. For a candidate mean `m`, a gambler who
//! bets the fraction `λ_i` on "the next score is above `m`" holds the capital
//! `K_t(m) = Π (1 + λ_i (x_i − m))`; when the true mean is `m` this is a
//! nonnegative martingale, so by Ville's inequality it exceeds `1/α` with
//! probability at most `α`, at any time. The values of `m` where it has not
//! are a confidence sequence (Waudby-Smith & Ramdas 2024, "Estimating means
//! of bounded random variables by betting", JRSSB).
//!
//! Keeping `K_t(m)` for every `m` would cost a grid per event. We use the
//! paper's closed-form lower bound on the log-capital (its Theorem 2, the
//! predictable plug-in empirical-Bernstein sequence, PrPl-EB):
//!
//! `Σ λ_i (x_i − m) − Σ v_i ψ_E(λ_i)`, with `v_i = 4 (x_i − μ̂_{i−1})²` and
//! `ψ_E(λ) = (−ln(1 − λ) − λ)/4`,
//!
//! which is linear in `m`, so the sequence is four running sums:
//! `Σλx/Σλ ± (ln(2/α) + Σ vψ)/Σλ`. Unlike a Hoeffding bound it adapts to the
//! observed variance: a utility score that sits between 0.7 and 0.9 gets an
//! interval several times narrower than its `[0, 1]` range alone would allow.
//! The bets are predictable (they use only earlier scores), so the sequence
//! stays valid whatever the candidate's share does.

/// Where the bets are tuned: `ln(2/α)` at this α. Any predictable bet keeps
/// the guarantee; this only sets where the interval is tightest.
const TUNING_ALPHA: f64 = 0.05;
/// The largest fraction ever bet (the paper's `c`).
const MAX_BET: f64 = 0.5;

/// Running mean with its betting confidence sequence.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MeanSequence {
    min: f64,
    range: f64,
    n: f64,
    sum: f64,
    /// Plug-in mean and variance of the rescaled scores seen so far.
    sum01: f64,
    sum_sq_dev: f64,
    /// Σλ, Σλx, Σvψ(λ), on the `[0, 1]` scale.
    bets: f64,
    bets_x: f64,
    penalty: f64,
    /// The current bet and its ψ: recomputed every `REBET` scores after the
    /// first ones (any bet fixed before a score arrives keeps the
    /// guarantee; recomputing it less often only saves logarithms).
    lambda: f64,
    psi_lambda: f64,
}

/// How many scores share one bet once the sequence is under way.
const REBET: f64 = 16.0;

impl MeanSequence {
    /// A sequence for scores in `[min, max]`.
    pub fn new(min: f64, max: f64) -> MeanSequence {
        MeanSequence {
            min,
            range: (max - min).max(f64::MIN_POSITIVE),
            n: 0.0,
            sum: 0.0,
            sum01: 0.0,
            sum_sq_dev: 0.0,
            bets: 0.0,
            bets_x: 0.0,
            penalty: 0.0,
            lambda: 0.0,
            psi_lambda: 0.0,
        }
    }

    /// Adds a score; values outside the range are clamped into it.
    pub fn add(&mut self, value: f64) {
        let x = ((value - self.min) / self.range).clamp(0.0, 1.0);
        let t = self.n + 1.0;
        let mean_before = (0.5 + self.sum01) / t;
        if t <= REBET || t % REBET == 0.0 {
            let var_before = (0.25 + self.sum_sq_dev) / t;
            self.lambda = ((2.0 * (2.0 / TUNING_ALPHA).ln()) / (var_before * t * (1.0 + t).ln()))
                .sqrt()
                .min(MAX_BET);
            self.psi_lambda = psi(self.lambda);
        }
        let lambda = self.lambda;
        let v = 4.0 * (x - mean_before).powi(2);
        self.bets += lambda;
        self.bets_x += lambda * x;
        self.penalty += v * self.psi_lambda;
        self.n = t;
        self.sum += value.clamp(self.min, self.min + self.range);
        self.sum01 += x;
        let mean_after = (0.5 + self.sum01) / (t + 1.0);
        self.sum_sq_dev += (x - mean_after).powi(2);
    }

    pub fn n(&self) -> f64 {
        self.n
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// The two-sided interval at level `1 − alpha`, valid at every `n` at once.
    pub fn interval(&self, alpha: f64) -> Option<(f64, f64)> {
        if self.n == 0.0 || self.bets <= 0.0 {
            return None;
        }
        let centre = self.bets_x / self.bets;
        let radius = ((2.0 / alpha).ln() + self.penalty) / self.bets;
        let lo = (centre - radius).max(0.0);
        let hi = (centre + radius).min(1.0);
        Some((self.min + lo * self.range, self.min + hi * self.range))
    }
}

/// `ψ_E(λ) = (−ln(1 − λ) − λ)/4`.
fn psi(lambda: f64) -> f64 {
    (-(-lambda).ln_1p() - lambda) / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_contains_the_mean_and_shrinks_with_data() {
        let mut s = MeanSequence::new(0.0, 1.0);
        for i in 0..100 {
            s.add(if i % 2 == 0 { 0.7 } else { 0.9 });
        }
        let (lo, hi) = s.interval(0.05).unwrap();
        assert!(lo < 0.8 && hi > 0.8, "({lo}, {hi})");
        let wide = hi - lo;
        for i in 0..10_000 {
            s.add(if i % 2 == 0 { 0.7 } else { 0.9 });
        }
        let (lo, hi) = s.interval(0.05).unwrap();
        assert!(lo < 0.8 && hi > 0.8, "({lo}, {hi})");
        assert!(hi - lo < wide / 5.0, "{} vs {}", hi - lo, wide);
    }

    #[test]
    fn low_variance_scores_get_a_narrower_interval_than_hoeffding() {
        let mut s = MeanSequence::new(0.0, 1.0);
        for i in 0..2_000 {
            s.add(if i % 2 == 0 { 0.78 } else { 0.82 });
        }
        let (lo, hi) = s.interval(0.05).unwrap();
        // Hoeffding's fixed-n radius at n = 2000 alone is sqrt(ln(2/α)/(2n)) ≈ 0.030.
        assert!(hi - lo < 0.03, "({lo}, {hi})");
    }

    #[test]
    fn scores_are_rescaled_and_clamped_to_their_range() {
        let mut s = MeanSequence::new(1.0, 5.0);
        s.add(9.0);
        s.add(3.0);
        assert_eq!(s.mean(), Some(4.0));
        let (lo, hi) = s.interval(0.05).unwrap();
        assert!((1.0..=5.0).contains(&lo) && (1.0..=5.0).contains(&hi));
    }

    #[test]
    fn no_data_has_no_interval() {
        assert_eq!(MeanSequence::new(0.0, 1.0).interval(0.05), None);
    }
}
