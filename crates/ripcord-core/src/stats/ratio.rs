//! Candidate versus baseline on a rate: "moderation failures no more than
//! 1.2× the baseline's".
//!
//! Only flagged events are looked at. With the candidate serving share `π` of
//! the denominator and its rate `r` times the baseline's, a flagged event is
//! the candidate's with probability `q(r) = πr / (πr + 1 − π)`. The test of
//! `H0: r ≤ r0` multiplies, per flagged event, the likelihood ratio of
//! `q(r1)` against `q(r0)` and averages over a grid of alternatives
//! `r1 = m·r0`. For any `r ≤ r0` each factor has expectation ≤ 1 whatever
//! `π` is at that moment, so the mixture stays a supermartingale while the
//! share ramps, and traffic swings that hit both versions cancel out
//! (Lindon & Malek 2022 use the same conditioning for counts).

use super::{EFFECT_GRID, log_mean_exp};
use crate::policy::Direction;

const G: usize = EFFECT_GRID.len();

#[derive(Clone, Debug)]
pub struct RatioTest {
    direction: Direction,
    r0: f64,
    /// Flag counts by share (rounded to 0.1%), to invert the test into a
    /// confidence bound for explanations; shares change rarely, so it is short.
    by_share: Vec<(f64, f64, f64)>,
    alternatives: [f64; G],
    log_lr: [f64; G],
    /// Per-alternative increments for the share they were computed at.
    cached_share: f64,
    candidate_step: [f64; G],
    baseline_step: [f64; G],
}

impl RatioTest {
    /// `max_ratio` ≥ 1 is the tolerated candidate/baseline ratio; for "lower
    /// is worse" the tolerated ratio is `1/max_ratio` and the alternatives lie
    /// below it.
    pub fn new(max_ratio: f64, direction: Direction) -> RatioTest {
        let r0 = match direction {
            Direction::HigherIsWorse => max_ratio,
            Direction::LowerIsWorse => 1.0 / max_ratio,
        };
        let mut alternatives = [0.0; G];
        for (a, m) in alternatives.iter_mut().zip(EFFECT_GRID) {
            *a = match direction {
                Direction::HigherIsWorse => r0 * m,
                Direction::LowerIsWorse => r0 / m,
            };
        }
        RatioTest {
            direction,
            r0,
            by_share: Vec::new(),
            alternatives,
            log_lr: [0.0; G],
            cached_share: f64::NAN,
            candidate_step: [0.0; G],
            baseline_step: [0.0; G],
        }
    }

    /// The tolerated ratio under the null.
    pub fn tolerated(&self) -> f64 {
        self.r0
    }

    /// Adds `count` flagged events of one version, at candidate share `share`
    /// (in (0, 1)).
    pub fn add_flagged(&mut self, share: f64, from_candidate: bool, count: f64) {
        if !(share > 0.0 && share < 1.0) || count <= 0.0 {
            return;
        }
        if share != self.cached_share {
            self.recompute_steps(share);
        }
        let steps = if from_candidate {
            &self.candidate_step
        } else {
            &self.baseline_step
        };
        for (l, s) in self.log_lr.iter_mut().zip(steps) {
            *l += count * s;
        }
        let key = (share * 1000.0).round() / 1000.0;
        let entry = match self.by_share.iter_mut().find(|(s, _, _)| *s == key) {
            Some(e) => e,
            None => {
                self.by_share.push((key, 0.0, 0.0));
                let last = self.by_share.len() - 1;
                &mut self.by_share[last]
            }
        };
        if from_candidate {
            entry.1 += count;
        } else {
            entry.2 += count;
        }
    }

    /// The anytime-valid confidence bound of the rate ratio on the bad side
    /// (lower bound when higher is worse): the edge of the tolerated ratios
    /// the data reject at level `alpha`. For explanations only.
    pub fn confidence_bound(&self, alpha: f64) -> f64 {
        let threshold = (1.0 / alpha).ln();
        let rejects = |r0: f64| {
            let mut t = RatioTest::new(1.0, self.direction);
            t.set_tolerated(r0);
            for (share, c, b) in &self.by_share {
                t.add_flagged(*share, true, *c);
                t.add_flagged(*share, false, *b);
            }
            t.log_e_value() >= threshold
        };
        let (mut lo, mut hi) = ((1e-3f64).ln(), (1e3f64).ln());
        for _ in 0..50 {
            let mid = (lo + hi) / 2.0;
            match (self.direction, rejects(mid.exp())) {
                (Direction::HigherIsWorse, true) | (Direction::LowerIsWorse, false) => lo = mid,
                _ => hi = mid,
            }
        }
        match self.direction {
            Direction::HigherIsWorse => lo.exp(),
            Direction::LowerIsWorse => hi.exp(),
        }
    }

    fn set_tolerated(&mut self, r0: f64) {
        self.r0 = r0;
        for (a, m) in self.alternatives.iter_mut().zip(EFFECT_GRID) {
            *a = match self.direction {
                Direction::HigherIsWorse => r0 * m,
                Direction::LowerIsWorse => r0 / m,
            };
        }
        self.cached_share = f64::NAN;
    }

    fn recompute_steps(&mut self, share: f64) {
        let q0 = q(share, self.r0);
        for (j, r1) in self.alternatives.iter().enumerate() {
            let q1 = q(share, *r1);
            self.candidate_step[j] = (q1 / q0).ln();
            self.baseline_step[j] = ((1.0 - q1) / (1.0 - q0)).ln();
        }
        self.cached_share = share;
    }

    /// `ln` of the e-value.
    pub fn log_e_value(&self) -> f64 {
        log_mean_exp(&self.log_lr)
    }
}

/// Probability that a flagged event is the candidate's.
fn q(share: f64, ratio: f64) -> f64 {
    share * ratio / (share * ratio + 1.0 - share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_proportion_to_the_share_are_no_evidence_of_a_regression() {
        let mut t = RatioTest::new(1.0, Direction::HigherIsWorse);
        // 10% share, 10 candidate flags out of 100: exactly the null.
        t.add_flagged(0.1, true, 10.0);
        t.add_flagged(0.1, false, 90.0);
        assert!(t.log_e_value() < 0.0);
    }

    #[test]
    fn three_times_the_flags_at_five_percent_is_strong_evidence() {
        let mut t = RatioTest::new(1.0, Direction::HigherIsWorse);
        // Rate ratio 3 at share 5%: q = 0.136; 27 of 200 flags.
        t.add_flagged(0.05, true, 27.0);
        t.add_flagged(0.05, false, 173.0);
        assert!(t.log_e_value() > (20.0f64).ln(), "{}", t.log_e_value());
    }

    #[test]
    fn the_confidence_bound_lies_below_the_observed_ratio_and_above_one() {
        let mut t = RatioTest::new(1.0, Direction::HigherIsWorse);
        // Observed ratio: (60/0.05) / (140/0.95) ≈ 8.1.
        t.add_flagged(0.05, true, 60.0);
        t.add_flagged(0.05, false, 140.0);
        let lcb = t.confidence_bound(0.05);
        assert!(lcb > 3.0 && lcb < 8.1, "{lcb}");
    }

    #[test]
    fn a_share_change_between_flags_keeps_the_per_share_step() {
        let mut a = RatioTest::new(1.2, Direction::HigherIsWorse);
        a.add_flagged(0.05, true, 1.0);
        a.add_flagged(0.5, true, 1.0);
        let mut b = RatioTest::new(1.2, Direction::HigherIsWorse);
        b.add_flagged(0.5, true, 1.0);
        b.add_flagged(0.05, true, 1.0);
        assert!((a.log_e_value() - b.log_e_value()).abs() < 1e-12);
    }
}
