//! Candidate versus baseline on a rate: "moderation failures no more than
//! 1.2× the baseline's".
//!
//! The test conditions, stratum by stratum ([`super::strata`]), on what each
//! version really served and on how many flags the stratum holds in all.
//! With `n_c` candidate and `n_b` baseline outputs, each flagged
//! independently at its version's rate, the candidate's share `x` of the
//! stratum's `t` flags follows Fisher's noncentral hypergeometric
//! distribution in the odds ratio `ψ` of the two rates:
//!
//! ```text
//! P(x) = C(n_c, x) C(n_b, t − x) ψ^x / Σ_y C(n_c, y) C(n_b, t − y) ψ^y
//! ```
//!
//! whatever the baseline's rate is and whatever the share was. The test of
//! `H0: ψ ≤ ψ0` multiplies, per stratum, the likelihood ratio of `ψ1`
//! against `ψ0` and averages over a grid of alternatives `ψ1 = m·ψ0`.
//! The family has a monotone likelihood ratio in `x`, so for any `ψ ≤ ψ0`
//! each factor has expectation ≤ 1 given the past: the product is an
//! e-process under the whole composite null, whatever the share path, the
//! realised split (busy users hashed onto one side), the traffic's swings
//! (they hit both versions within a stratum) and the labels' delays.
//!
//! The policy bounds the *rate* ratio `r0`; the odds ratio it allows is
//! `ψ0 = r0 (1 − p_b)/(1 − r0 p_b)` at the baseline's rate `p_b`, taken from
//! the strata already closed (predictable). At `max_ratio: 1` this is exactly
//! `ψ0 = 1`; for rare flags `ψ0 ≈ r0`.

use super::strata::{Counts, Stratum, whole};
use super::{EFFECT_GRID, log_mean_exp, log_mixture};
use crate::policy::Direction;

const G: usize = EFFECT_GRID.len();

/// Most terms of the hypergeometric support summed per stratum; a bigger
/// stratum (tens of thousands of flags in one bucket) is scaled down to this
/// size, which can only lose evidence.
const MAX_SUPPORT: f64 = 20_000.0;

/// What a rate comparison tests, shared by a criterion's epochs: the
/// tolerated rate ratio, the alternatives, and the baseline's rate so far
/// that converts them into odds ratios.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RatioModel {
    direction: Direction,
    r0: f64,
    /// The baseline's counts in the strata closed so far.
    baseline: Counts,
}

/// One stratum's contribution to every alternative's log likelihood ratio.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Increment {
    pub log_lr: [f64; G],
    /// The candidate's realised share of the stratum's denominator, and the
    /// flags of each version (for the confidence bound).
    pub share: f64,
    pub candidate_flags: f64,
    pub baseline_flags: f64,
}

impl RatioModel {
    /// `max_ratio` ≥ 1 is the tolerated candidate/baseline rate ratio; for
    /// "lower is worse" the tolerated ratio is `1/max_ratio` and the
    /// alternatives lie below it.
    pub fn new(max_ratio: f64, direction: Direction) -> RatioModel {
        let r0 = match direction {
            Direction::HigherIsWorse => max_ratio,
            Direction::LowerIsWorse => 1.0 / max_ratio,
        };
        RatioModel {
            direction,
            r0,
            baseline: Counts::default(),
        }
    }

    /// The tolerated rate ratio under the null.
    pub fn tolerated(&self) -> f64 {
        self.r0
    }

    /// The stratum's log likelihood ratios; `None` when it holds no flags
    /// (such a stratum says nothing about the odds ratio).
    pub fn increment(&mut self, s: &Stratum<Counts>) -> Option<Increment> {
        let psi0 = odds_ratio(self.r0, self.baseline_rate());
        let (nc, nb) = (whole(s.candidate.n), whole(s.baseline.n));
        let (xc, xb) = (whole(s.candidate.x).min(nc), whole(s.baseline.x).min(nb));
        self.baseline.add(nb, xb);
        if xc + xb == 0.0 || nc == 0.0 || nb == 0.0 {
            return None;
        }
        let mut log_lr = [0.0; G];
        let alternatives = alternatives(psi0, self.direction);
        let (nc_s, nb_s, t_s, xc_s) = scaled(nc, nb, xc + xb, xc);
        let mut log_psis = [psi0.ln(); G + 1];
        for (l, a) in log_psis[1..].iter_mut().zip(&alternatives) {
            *l = a.ln();
        }
        let norms = log_norms(nc_s, nb_s, t_s, &log_psis);
        for (j, l) in log_lr.iter_mut().enumerate() {
            *l = xc_s * (log_psis[j + 1] - log_psis[0]) - (norms[j + 1] - norms[0]);
        }
        Some(Increment {
            log_lr,
            share: nc / (nc + nb),
            candidate_flags: xc,
            baseline_flags: xb,
        })
    }

    fn baseline_rate(&self) -> f64 {
        (self.baseline.x + 0.5) / (self.baseline.n + 1.0)
    }
}

/// One epoch's test: the running log likelihood ratios.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RatioTest {
    log_lr: [f64; G],
    /// Flags by the stratum's realised share (rounded to 0.1%), to invert the
    /// test into a confidence bound for explanations.
    by_share: Vec<(f64, f64, f64)>,
}

impl RatioTest {
    pub fn add(&mut self, inc: &Increment) {
        for (l, d) in self.log_lr.iter_mut().zip(&inc.log_lr) {
            *l += d;
        }
        let key = (inc.share * 1000.0).round() / 1000.0;
        match self.by_share.iter_mut().find(|(s, _, _)| *s == key) {
            Some(e) => {
                e.1 += inc.candidate_flags;
                e.2 += inc.baseline_flags;
            }
            None => self
                .by_share
                .push((key, inc.candidate_flags, inc.baseline_flags)),
        }
    }

    /// `ln` of the e-value.
    pub fn log_e_value(&self) -> f64 {
        log_mixture(&self.log_lr)
    }

    /// The confidence bound of the rate ratio on the bad side (lower bound
    /// when higher is worse): the edge of the tolerated ratios that the
    /// flags reject at level `alpha`, with each flag split at its stratum's
    /// realised share (the rare-flag form of the test). For explanations;
    /// decisions use the exact test.
    pub fn confidence_bound(&self, alpha: f64, direction: Direction) -> f64 {
        let threshold = (1.0 / alpha).ln();
        let rejects = |r0: f64| {
            let alts = alternatives(r0, direction);
            let mut logs = [0.0; G];
            for (share, c, b) in &self.by_share {
                let q0 = q(*share, r0);
                for (l, r1) in logs.iter_mut().zip(&alts) {
                    let q1 = q(*share, *r1);
                    *l += c * (q1 / q0).ln() + b * ((1.0 - q1) / (1.0 - q0)).ln();
                }
            }
            log_mixture(&logs) >= threshold
        };
        let (mut lo, mut hi) = ((1e-3f64).ln(), (1e3f64).ln());
        for _ in 0..50 {
            let mid = (lo + hi) / 2.0;
            match (direction, rejects(mid.exp())) {
                (Direction::HigherIsWorse, true) | (Direction::LowerIsWorse, false) => lo = mid,
                _ => hi = mid,
            }
        }
        match direction {
            Direction::HigherIsWorse => lo.exp(),
            Direction::LowerIsWorse => hi.exp(),
        }
    }
}

/// The alternatives of the mixture around the null value `v0`.
fn alternatives(v0: f64, direction: Direction) -> [f64; G] {
    let mut a = [0.0; G];
    for (a, m) in a.iter_mut().zip(EFFECT_GRID) {
        *a = match direction {
            Direction::HigherIsWorse => v0 * m,
            Direction::LowerIsWorse => v0 / m,
        };
    }
    a
}

/// The odds ratio of two rates whose ratio is `r`, the lower being `p`.
fn odds_ratio(r: f64, p: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let rp = (r * p).min(0.99);
    r * (1.0 - p) / (1.0 - rp)
}

/// Probability that a flag is the candidate's at realised share `share`
/// and rate ratio `ratio`, when flags are rare.
fn q(share: f64, ratio: f64) -> f64 {
    share * ratio / (share * ratio + 1.0 - share)
}

/// The stratum `(n_c, n_b, t, x_c)`, scaled down when its support would be
/// larger than [`MAX_SUPPORT`].
fn scaled(nc: f64, nb: f64, t: f64, xc: f64) -> (f64, f64, f64, f64) {
    let support = nc.min(t) - (t - nb).max(0.0) + 1.0;
    if support <= MAX_SUPPORT {
        return (nc, nb, t, xc);
    }
    let f = MAX_SUPPORT / support;
    let (nc, nb) = ((nc * f).round().max(1.0), (nb * f).round().max(1.0));
    let t = (t * f).round().clamp(1.0, nc + nb);
    let xc = (xc * f).round().clamp((t - nb).max(0.0), nc.min(t));
    (nc, nb, t, xc)
}

/// `ln Σ_y C(n_c, y) C(n_b, t − y) ψ^y` for each `ln ψ` in `log_psis`, up
/// to a constant shared by all of them (only differences are used): the
/// first term is taken as 1 and the terms are averaged, not summed. The
/// terms follow from each other by a ratio, so no factorial is computed.
fn log_norms(nc: f64, nb: f64, t: f64, log_psis: &[f64]) -> Vec<f64> {
    let lo = (t - nb).max(0.0);
    let hi = nc.min(t);
    let mut terms = Vec::with_capacity((hi - lo + 1.0) as usize);
    let mut a = 0.0;
    let mut y = lo;
    while y <= hi {
        terms.push((y, a));
        a += ((nc - y) / (y + 1.0)).ln() + ((t - y) / (nb - t + y + 1.0)).ln();
        y += 1.0;
    }
    // A mean instead of a sum shifts every norm by the same ln(terms),
    // which the differences cancel.
    log_psis
        .iter()
        .map(|lp| {
            let logs: Vec<f64> = terms.iter().map(|(y, a)| a + y * lp).collect();
            log_mean_exp(&logs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stratum(nc: f64, xc: f64, nb: f64, xb: f64) -> Stratum<Counts> {
        Stratum {
            bucket: 0,
            candidate: Counts { n: nc, x: xc },
            baseline: Counts { n: nb, x: xb },
        }
    }

    fn e_value(model: &mut RatioModel, strata: &[Stratum<Counts>]) -> f64 {
        let mut t = RatioTest::default();
        for s in strata {
            if let Some(inc) = model.increment(s) {
                t.add(&inc);
            }
        }
        t.log_e_value()
    }

    #[test]
    fn the_hypergeometric_norms_match_the_direct_sum() {
        // n_c = 3, n_b = 4, t = 3: Σ_y C(3,y) C(4,3−y) ψ^y at ψ = 2.
        let direct: f64 = [(0, 4.0), (1, 18.0), (2, 12.0), (3, 1.0)]
            .iter()
            .map(|(y, c)| c * 2f64.powi(*y))
            .sum();
        let base = 4.0; // the y = 0 term, which the recurrence sets to 1
        let norms = log_norms(3.0, 4.0, 3.0, &[2f64.ln()]);
        // A mean over the four terms of the support, not their sum.
        assert!((norms[0] - (direct / base / 4.0).ln()).abs() < 1e-12);
    }

    #[test]
    fn flags_in_proportion_to_what_each_version_served_are_no_evidence() {
        let mut m = RatioModel::new(1.0, Direction::HigherIsWorse);
        // The candidate served 10% and got 10% of the flags.
        let strata: Vec<_> = (0..10).map(|_| stratum(100.0, 1.0, 900.0, 9.0)).collect();
        assert!(e_value(&mut m, &strata) < 0.0);
    }

    #[test]
    fn the_realised_split_not_the_assigned_share_sets_the_expectation() {
        // Assigned 5%, but a busy user put 15% of the outputs on the
        // candidate, which gets 15% of the flags: no evidence at all.
        let mut m = RatioModel::new(1.2, Direction::HigherIsWorse);
        let strata: Vec<_> = (0..50).map(|_| stratum(150.0, 3.0, 850.0, 17.0)).collect();
        assert!(e_value(&mut m, &strata) < 0.0);
    }

    #[test]
    fn three_times_the_rate_is_strong_evidence() {
        let mut m = RatioModel::new(1.0, Direction::HigherIsWorse);
        let strata: Vec<_> = (0..20).map(|_| stratum(50.0, 3.0, 950.0, 19.0)).collect();
        // 60 candidate flags where 20 were expected.
        assert!(e_value(&mut m, &strata) > 20f64.ln());
    }

    #[test]
    fn a_stratum_without_flags_or_without_a_version_says_nothing() {
        let mut m = RatioModel::new(1.0, Direction::HigherIsWorse);
        assert!(m.increment(&stratum(10.0, 0.0, 10.0, 0.0)).is_none());
        assert!(m.increment(&stratum(10.0, 2.0, 0.0, 0.0)).is_none());
    }

    #[test]
    fn the_tolerated_rate_ratio_becomes_the_odds_ratio_at_the_baseline_rate() {
        assert_eq!(odds_ratio(1.0, 0.3), 1.0);
        // r = 1.2 at p = 0.2: odds (0.24/0.76)/(0.2/0.8) = 1.263…
        assert!((odds_ratio(1.2, 0.2) - 0.24 / 0.76 / 0.25).abs() < 1e-12);
    }

    #[test]
    fn a_huge_stratum_is_scaled_not_summed_term_by_term() {
        let mut m = RatioModel::new(1.0, Direction::HigherIsWorse);
        let inc = m.increment(&stratum(1e9, 2e8, 1e9, 1e8));
        assert!(inc.is_some_and(|i| i.log_lr.iter().all(|l| l.is_finite())));
    }

    #[test]
    fn the_confidence_bound_lies_below_the_observed_ratio_and_above_one() {
        let mut m = RatioModel::new(1.0, Direction::HigherIsWorse);
        let mut t = RatioTest::default();
        for _ in 0..10 {
            // Observed ratio (6/50) / (14/950) ≈ 8.1.
            if let Some(inc) = m.increment(&stratum(50.0, 6.0, 950.0, 14.0)) {
                t.add(&inc);
            }
        }
        let lcb = t.confidence_bound(0.05, Direction::HigherIsWorse);
        assert!(lcb > 3.0 && lcb < 8.1, "{lcb}");
    }
}
