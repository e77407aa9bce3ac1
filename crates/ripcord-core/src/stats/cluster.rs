//! Users, not outputs, are what the rollout assigns: the design effect of a
//! rate comparison.
//!
//! The rate test against the baseline ([`super::ratio`]) is exact when,
//! given the version, outputs are flagged independently. Real users differ:
//! some ask for what gets moderated all day long. Hash assignment puts a
//! handful of such busy users on the candidate, and then the candidate's
//! *users* fail more often than the baseline's, whatever the version does.
//! The exact test finds that true difference between two groups of users
//! given enough outputs, and with a few heavy users "enough" is an hour.
//!
//! The remedy is the standard one for cluster-randomised designs: measure
//! how much more the test's score varies than independent outputs would
//! make it vary, and discount the evidence by that factor. The score of a
//! stratum is the candidate's flags minus what the null expects; split by
//! unit, each unit's part over all strata is a sum `G_u`. Independent
//! outputs make the `G_u` of different strata cancel out; a unit with its
//! own propensity makes them add up. The design effect
//!
//! ```text
//! φ = Σ_u G_u² / Σ_strata Var_model(score)
//! ```
//!
//! is about 1 for independent outputs and grows with the share of the score
//! that persistent users carry. The decision divides the log e-value by
//! `max(1, φ)`: a quasi-likelihood correction (McCullagh & Nelder,
//! *Generalized Linear Models*, ch. 9), valid as the number of units grows
//! rather than exactly. Residuals are taken around the fitted model (a
//! common rate ratio, each stratum at its own level), so a real regression
//! does not inflate `φ` and slow its own detection.
//!
//! Units are hashed into [`CLUSTERS`] clusters per version: merging units
//! at random leaves the estimate unbiased and keeps memory fixed, however
//! many distinct users a release sees.

use std::collections::{BTreeMap, HashMap};

use super::strata::{Counts, Part, whole};
use crate::splitmix::SplitMix64;

/// Clusters per version. Far more than the effective number of units that
/// matter when a few users dominate, few enough to keep memory fixed.
pub const CLUSTERS: u64 = 4096;

/// Below this model variance (in flags²) `φ` is too noisy to act on.
const MIN_VARIANCE: f64 = 8.0;

/// The cluster of a unit (hashed, so neighbouring ids spread out).
pub fn cluster_of(unit: u64) -> u16 {
    (SplitMix64(unit).next() % CLUSTERS) as u16
}

/// A rate's counts in one stratum and version, in all and by cluster.
/// Counts without a unit are in the total only: nothing says they are not
/// independent.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cells {
    pub total: Counts,
    /// Ordered, so that the design effect's sums are added in the same
    /// order on every run and a replay is byte-identical.
    by_cluster: BTreeMap<u16, Counts>,
}

impl Cells {
    pub fn add(&mut self, cluster: Option<u16>, n: f64, x: f64) {
        self.total.add(n, x);
        if let Some(cluster) = cluster {
            self.by_cluster.entry(cluster).or_default().add(n, x);
        }
    }
}

impl Part for Cells {
    fn merge(&mut self, other: &Self) {
        self.total.merge(&other.total);
        for (k, c) in &other.by_cluster {
            self.by_cluster.entry(*k).or_default().merge(c);
        }
    }
    fn mass(&self) -> f64 {
        self.total.n
    }
}

/// The running design effect of one comparison.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Dispersion {
    /// `G_u` by cluster and version (`cluster << 1 | candidate`).
    sums: HashMap<u32, f64>,
    /// `Σ G_u²`, kept up to date as the sums change.
    squares: f64,
    /// What `Σ G_u²` would be with independent outputs.
    model: f64,
    /// Mantel–Haenszel sums for the common rate ratio the residuals are
    /// taken around.
    ratio_num: f64,
    ratio_den: f64,
}

impl Dispersion {
    /// Adds one closed stratum.
    pub fn add(&mut self, candidate: &Cells, baseline: &Cells) {
        let (nc, nb) = (whole(candidate.total.n), whole(baseline.total.n));
        let (xc, xb) = (
            whole(candidate.total.x).min(nc),
            whole(baseline.total.x).min(nb),
        );
        let total = nc + nb;
        if nc == 0.0 || nb == 0.0 || xc + xb == 0.0 {
            return;
        }
        // The fitted model: the candidate's rate is `θ` times the
        // baseline's, whose level is the stratum's own. Residuals around it
        // have mean zero whether or not the candidate is worse, so a real
        // regression does not pass for a design effect.
        let theta = self.ratio();
        let pb = ((xc + xb) / (nb + theta * nc)).min(1.0);
        let pc = (theta * pb).min(1.0);
        // The weights of the score `x_c − E[x_c | t]`.
        let pi = theta * nc / (nb + theta * nc);
        self.add_version(candidate, 1.0 - pi, pc, 1);
        self.add_version(baseline, pi, pb, 0);
        self.ratio_num += xc * nb / total;
        self.ratio_den += xb * nc / total;
    }

    fn add_version(&mut self, cells: &Cells, weight: f64, rate: f64, version: u32) {
        let mut clustered = 0.0;
        for (cluster, c) in &cells.by_cluster {
            let a = whole(c.n);
            clustered += a;
            let residual = weight * (whole(c.x).min(a) - a * rate);
            let g = self
                .sums
                .entry(u32::from(*cluster) << 1 | version)
                .or_insert(0.0);
            self.squares += (*g + residual).powi(2) - g.powi(2);
            *g += residual;
        }
        let variance = |n: f64| weight * weight * n * rate * (1.0 - rate);
        self.model += variance(whole(cells.total.n));
        // Outputs without a unit vary as the model says, by assumption.
        self.squares += variance((whole(cells.total.n) - clustered).max(0.0));
    }

    /// The common rate ratio so far, kept within [1/10, 10].
    fn ratio(&self) -> f64 {
        ((self.ratio_num + 0.5) / (self.ratio_den + 0.5)).clamp(0.1, 10.0)
    }

    /// `max(1, φ)`: how much the evidence is discounted.
    pub fn factor(&self) -> f64 {
        if self.model < MIN_VARIANCE {
            return 1.0;
        }
        (self.squares.max(0.0) / self.model).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Strata where each user (alternately on either version) makes
    /// `outputs` outputs, flagged at 5% times the user's own propensity.
    fn factor_for(propensity: &[f64], outputs: f64, strata: usize, seed: u64) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = Dispersion::default();
        for _ in 0..strata {
            let mut cells = [Cells::default(), Cells::default()];
            for (u, p) in propensity.iter().enumerate() {
                let flags = (0..outputs as usize)
                    .filter(|_| rng.random::<f64>() < 0.05 * p)
                    .count() as f64;
                cells[u % 2].add(Some(cluster_of(u as u64)), outputs, flags);
            }
            d.add(&cells[1], &cells[0]);
        }
        d.factor()
    }

    #[test]
    fn independent_outputs_have_no_design_effect() {
        // φ estimated from 400 users varies by about ±7%.
        let alike = vec![1.0; 400];
        for seed in 1..=5 {
            let f = factor_for(&alike, 2.0, 200, seed);
            assert!(f < 1.2, "seed {seed}: {f}");
        }
    }

    #[test]
    fn users_with_their_own_propensity_are_discounted() {
        let differ: Vec<f64> = (0..40)
            .map(|u| if u % 5 == 0 { 4.0 } else { 0.25 })
            .collect();
        let f = factor_for(&differ, 10.0, 400, 1);
        assert!(f > 5.0, "{f}");
        let f = factor_for(&differ, 2.0, 200, 1);
        assert!(f > 2.0, "{f}");
    }

    #[test]
    fn outputs_without_units_have_no_design_effect() {
        let mut d = Dispersion::default();
        for i in 0..500 {
            let mut c = Cells::default();
            let mut b = Cells::default();
            c.add(None, 50.0, f64::from(i % 7));
            b.add(None, 950.0, f64::from(i % 13));
            d.add(&c, &b);
        }
        assert_eq!(d.factor(), 1.0);
    }

    #[test]
    fn a_real_regression_is_not_taken_for_a_design_effect() {
        // Independent outputs, the candidate failing 3× as often: the
        // residuals are taken around the fitted ratio, not the null's.
        let mut rng = StdRng::seed_from_u64(7);
        let mut d = Dispersion::default();
        for _ in 0..2000 {
            let mut c = Cells::default();
            let mut b = Cells::default();
            for u in 0..20u64 {
                let flag = |rng: &mut StdRng, p: f64| f64::from(u8::from(rng.random::<f64>() < p));
                let x = flag(&mut rng, 0.06);
                c.add(Some(cluster_of(u)), 1.0, x);
                let x = flag(&mut rng, 0.02);
                b.add(Some(cluster_of(1000 + u)), 1.0, x);
            }
            d.add(&c, &b);
        }
        let f = d.factor();
        assert!(f < 1.15, "{f}");
    }
}
