//! A population of users for the detection harness: heavy-tailed activity,
//! an optional per-user flag propensity, and sticky hash assignment with
//! the published bucket formula.
//!
//! Real traffic is not split at exactly the assigned share: a few users
//! produce most outputs, and whether they happen to hash onto the
//! candidate moves its share of outputs far from the share of units (2% to
//! 15% of outputs at 5% of units). Count streams read the population
//! through its weight fractions, recomputed only when the share changes;
//! per-unit streams draw which user produced each output.

use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};

use crate::assign;

/// How the users of a simulated service differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Users {
    pub count: usize,
    /// σ of the lognormal activity weights (0: all users alike; 2: a few
    /// users produce most outputs).
    pub activity_sigma: f64,
    /// σ of a fixed lognormal multiplier of each user's flag rate,
    /// normalised to mean 1 over outputs (0: no heterogeneity).
    pub propensity_sigma: f64,
}

impl Users {
    pub const HEAVY: Users = Users {
        count: 2_000,
        activity_sigma: 2.0,
        propensity_sigma: 0.0,
    };
}

/// What the two versions' users look like at one share.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Split {
    /// The candidate's share of outputs (of activity weight).
    pub candidate_fraction: f64,
    /// The output-weighted mean propensity of each version's users
    /// (candidate, baseline); 1 when the version has no users.
    pub propensity: [f64; 2],
}

pub struct Population {
    names: Vec<String>,
    buckets: Vec<u64>,
    weights: Vec<f64>,
    propensity: Vec<f64>,
    /// Running sums of the weights, to draw a user per output.
    cumulative: Vec<f64>,
    share: Option<f64>,
    split: Split,
}

impl Population {
    pub fn new(users: Users, rng: &mut StdRng) -> Population {
        let count = users.count.max(1);
        let names: Vec<String> = (0..count).map(|i| format!("u-{i}")).collect();
        let buckets = names.iter().map(|n| assign::bucket("bench", n)).collect();
        let weights = lognormal_draws(rng, count, users.activity_sigma);
        let mut propensity = lognormal_draws(rng, count, users.propensity_sigma);
        // Mean 1 over outputs, so the service's flag rate is the case's base rate.
        let total: f64 = weights.iter().sum();
        let mean: f64 = weights
            .iter()
            .zip(&propensity)
            .map(|(w, p)| w * p)
            .sum::<f64>()
            / total;
        for p in &mut propensity {
            *p /= mean;
        }
        let cumulative = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        Population {
            names,
            buckets,
            weights,
            propensity,
            cumulative,
            share: None,
            split: Split::default(),
        }
    }

    /// Whether user `i` is on the candidate at `share`.
    pub fn on_candidate(&self, i: usize, share: f64) -> bool {
        (self.buckets[i] as f64) < share * 10_000.0
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn propensity(&self, i: usize) -> f64 {
        self.propensity[i]
    }

    /// The split at `share`, recomputed only when the share changed.
    pub fn split(&mut self, share: f64) -> Split {
        if self.share != Some(share) {
            self.split = self.compute(share);
            self.share = Some(share);
        }
        self.split
    }

    fn compute(&self, share: f64) -> Split {
        let mut weight = [0.0; 2];
        let mut flagged = [0.0; 2];
        for i in 0..self.weights.len() {
            let v = usize::from(!self.on_candidate(i, share));
            weight[v] += self.weights[i];
            flagged[v] += self.weights[i] * self.propensity[i];
        }
        let total = weight[0] + weight[1];
        let mean = |v: usize| {
            if weight[v] > 0.0 {
                flagged[v] / weight[v]
            } else {
                1.0
            }
        };
        Split {
            candidate_fraction: if total > 0.0 { weight[0] / total } else { 0.0 },
            propensity: [mean(0), mean(1)],
        }
    }

    /// The user who produced one output, drawn by activity.
    pub fn draw(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.weights.len() - 1)
    }
}

fn lognormal_draws(rng: &mut StdRng, count: usize, sigma: f64) -> Vec<f64> {
    match LogNormal::new(0.0, sigma) {
        Ok(d) if sigma > 0.0 => (0..count).map(|_| d.sample(rng)).collect(),
        _ => vec![1.0; count],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn heavy_users_move_the_realised_share_far_from_the_assigned_one() {
        let shares: Vec<f64> = (0..40)
            .map(|seed| {
                let mut rng = StdRng::seed_from_u64(seed);
                Population::new(Users::HEAVY, &mut rng)
                    .split(0.05)
                    .candidate_fraction
            })
            .collect();
        let low = shares.iter().copied().fold(f64::INFINITY, f64::min);
        let high = shares.iter().copied().fold(0.0, f64::max);
        assert!(low < 0.03 && high > 0.08, "{low}..{high}");
    }

    #[test]
    fn raising_the_share_keeps_candidate_users_on_the_candidate() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut p = Population::new(Users::HEAVY, &mut rng);
        let low = p.split(0.05).candidate_fraction;
        let high = p.split(0.25).candidate_fraction;
        assert!(high >= low);
        for i in 0..Users::HEAVY.count {
            assert!(!p.on_candidate(i, 0.05) || p.on_candidate(i, 0.25));
        }
    }
}
