//! Sample-ratio mismatch: is the observed split of outputs between the
//! versions the one that was assigned?
//!
//! Each output is the candidate's with probability `π` (the share in force)
//! when assignment works. The test mixes likelihood ratios of alternatives
//! whose candidate *odds* are off by a factor `ρ` in either direction, so it
//! stays exact while `π` changes during a ramp (a sequential multinomial test
//! in the spirit of Lindon & Malek 2022). It only looks for gross
//! mismatches (ρ ≥ 1.25 or ≤ 0.8): those mean broken data, not bad luck.

use super::log_mean_exp;

const ODDS: [f64; 6] = [0.5, 2.0 / 3.0, 0.8, 1.25, 1.5, 2.0];
const G: usize = ODDS.len();

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SrmTest {
    log_lr: [f64; G],
    cached_share: f64,
    candidate_step: [f64; G],
    baseline_step: [f64; G],
    candidate: f64,
    baseline: f64,
    /// Expected candidate outputs under the assigned shares.
    expected: f64,
}

impl Default for SrmTest {
    fn default() -> Self {
        SrmTest {
            log_lr: [0.0; G],
            cached_share: f64::NAN,
            candidate_step: [0.0; G],
            baseline_step: [0.0; G],
            candidate: 0.0,
            baseline: 0.0,
            expected: 0.0,
        }
    }
}

impl SrmTest {
    /// Adds `count` outputs of one version at assigned candidate share `share`.
    pub fn add(&mut self, share: f64, from_candidate: bool, count: f64) {
        if !(share > 0.0 && share < 1.0) || count <= 0.0 {
            return;
        }
        if share != self.cached_share {
            for (j, rho) in ODDS.iter().enumerate() {
                let p1 = share * rho / (share * rho + 1.0 - share);
                self.candidate_step[j] = (p1 / share).ln();
                self.baseline_step[j] = ((1.0 - p1) / (1.0 - share)).ln();
            }
            self.cached_share = share;
        }
        let steps = if from_candidate {
            self.candidate += count;
            &self.candidate_step
        } else {
            self.baseline += count;
            &self.baseline_step
        };
        for (l, s) in self.log_lr.iter_mut().zip(steps) {
            *l += count * s;
        }
        self.expected += count * share;
    }

    pub fn log_e_value(&self) -> f64 {
        log_mean_exp(&self.log_lr)
    }

    /// Observed candidate outputs, baseline outputs, and the candidate
    /// outputs the assigned shares predict.
    pub fn counts(&self) -> (f64, f64, f64) {
        (self.candidate, self.baseline, self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assigned_split_is_not_a_mismatch() {
        let mut t = SrmTest::default();
        t.add(0.05, true, 500.0);
        t.add(0.05, false, 9500.0);
        assert!(t.log_e_value() < 0.0);
    }

    #[test]
    fn a_candidate_getting_four_times_its_share_is_a_mismatch() {
        let mut t = SrmTest::default();
        t.add(0.05, true, 2000.0);
        t.add(0.05, false, 8000.0);
        assert!(t.log_e_value() > (1000.0f64).ln());
    }
}
