//! Absolute bound on a rate: "at most 3 hallucinations per 10,000 outputs".
//!
//! The test of `H0: p ≤ p0` is a mixture, over a grid of alternatives
//! `p1 = m·p0`, of binomial likelihood ratios
//! `Π (p1/p0)^x ((1−p1)/(1−p0))^(1−x)`. For any true `p ≤ p0` each factor has
//! expectation ≤ 1, so the mixture is a supermartingale under the whole
//! composite null and Ville's inequality bounds the chance that it ever
//! reaches `1/α` by `α`. Equivalently: an anytime-valid lower confidence
//! bound of the rate exceeds `p0`. A pre-aggregated line (`x` flagged of `n`)
//! multiplies in the same factor `n` times, so it means exactly what `n`
//! single lines mean. For "lower is worse" the grid is `p1 = p0/m`.

use super::{EFFECT_GRID, log_mixture};
use crate::policy::Direction;

const G: usize = EFFECT_GRID.len();

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BoundTest {
    p0: f64,
    /// `ln(p1/p0)` per alternative.
    flagged_step: [f64; G],
    /// `ln((1−p1)/(1−p0))` per alternative.
    clean_step: [f64; G],
    flagged: f64,
    total: f64,
}

impl BoundTest {
    /// `p0` in (0, 1).
    pub fn new(p0: f64, direction: Direction) -> BoundTest {
        let mut flagged_step = [0.0; G];
        let mut clean_step = [0.0; G];
        for (j, m) in EFFECT_GRID.iter().enumerate() {
            let p1 = alternative(p0, *m, direction);
            flagged_step[j] = (p1 / p0).ln();
            clean_step[j] = ((1.0 - p1) / (1.0 - p0)).ln();
        }
        BoundTest {
            p0,
            flagged_step,
            clean_step,
            flagged: 0.0,
            total: 0.0,
        }
    }

    /// Adds `flagged` of `total` observations.
    pub fn add(&mut self, flagged: f64, total: f64) {
        self.flagged += flagged;
        self.total += total;
    }

    pub fn bound(&self) -> f64 {
        self.p0
    }

    pub fn flagged(&self) -> f64 {
        self.flagged
    }

    pub fn total(&self) -> f64 {
        self.total
    }

    /// `ln` of the e-value.
    pub fn log_e_value(&self) -> f64 {
        let clean = (self.total - self.flagged).max(0.0);
        let mut logs = [0.0; G];
        for (j, l) in logs.iter_mut().enumerate() {
            *l = self.flagged * self.flagged_step[j] + clean * self.clean_step[j];
        }
        log_mixture(&logs)
    }
}

/// The alternative rate for multiplier `m`, kept inside (0, 1).
fn alternative(p0: f64, m: f64, direction: Direction) -> f64 {
    match direction {
        Direction::HigherIsWorse => (p0 * m).min((1.0 + p0) / 2.0),
        Direction::LowerIsWorse => p0 / m,
    }
}

/// The anytime-valid confidence bound on the bad side: the smallest `p0`
/// (higher is worse) that the data do not yet reject at level `alpha`, found
/// by bisection. Used to explain decisions, not to make them.
pub fn confidence_bound(flagged: f64, total: f64, alpha: f64, direction: Direction) -> f64 {
    let threshold = (1.0 / alpha).ln();
    let rejects = |p0: f64| {
        let mut t = BoundTest::new(p0, direction);
        t.add(flagged, total);
        t.log_e_value() >= threshold
    };
    // Bisect on ln(p0): rates span many orders of magnitude.
    let (mut lo, mut hi) = ((1e-12f64).ln(), (1.0f64 - 1e-9).ln());
    // 32 halvings of a span of ln(1e12) ≈ 27.6 leave a relative error of 1e-8.
    for _ in 0..32 {
        let mid = (lo + hi) / 2.0;
        let rejected = rejects(mid.exp());
        // Higher is worse: the rejected bounds are the small ones, so the
        // confidence bound is the edge between rejected (below) and not.
        match (direction, rejected) {
            (Direction::HigherIsWorse, true) | (Direction::LowerIsWorse, false) => lo = mid,
            _ => hi = mid,
        }
    }
    match direction {
        Direction::HigherIsWorse => lo.exp(),
        Direction::LowerIsWorse => hi.exp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_is_no_evidence() {
        let t = BoundTest::new(0.001, Direction::HigherIsWorse);
        assert_eq!(t.log_e_value(), 0.0);
    }

    #[test]
    fn a_pre_aggregated_bucket_means_the_same_as_its_single_lines() {
        let mut batch = BoundTest::new(0.01, Direction::HigherIsWorse);
        batch.add(3.0, 100.0);
        let mut single = BoundTest::new(0.01, Direction::HigherIsWorse);
        for i in 0..100 {
            single.add(if i < 3 { 1.0 } else { 0.0 }, 1.0);
        }
        assert!((batch.log_e_value() - single.log_e_value()).abs() < 1e-9);
    }

    #[test]
    fn a_rate_ten_times_the_bound_is_rejected_and_the_bound_is_not() {
        let mut bad = BoundTest::new(0.001, Direction::HigherIsWorse);
        bad.add(20.0, 2000.0);
        assert!(bad.log_e_value() > (1.0f64 / 0.05).ln());
        let mut ok = BoundTest::new(0.001, Direction::HigherIsWorse);
        ok.add(2.0, 2000.0);
        assert!(ok.log_e_value() < 0.0);
    }

    #[test]
    fn the_lower_confidence_bound_sits_below_the_estimate() {
        let lcb = confidence_bound(20.0, 2000.0, 0.05, Direction::HigherIsWorse);
        assert!(lcb > 0.001 && lcb < 0.01, "{lcb}");
    }
}
