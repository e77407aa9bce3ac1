//! Input and topic drift: is the candidate's distribution over a categorical
//! field (topic, language, prompt-length bucket, tool used) the reference's?
//!
//! Two figures say *how far* it moved: the population stability index
//! `PSI = Σ (p_c − q_c) ln(p_c/q_c)` (rule of thumb: < 0.1 stable, > 0.25
//! shifted) and the Jensen–Shannon distance, the square root of the
//! base-2 JS divergence, in `[0, 1]`. Both are computed on counts with half
//! a count added to each category, so a category that one side never saw
//! does not make them infinite. Neither says whether the move is beyond
//! chance, so a criterion also needs one of the anytime-valid tests below to
//! reject "same distribution".
//!
//! - Against the baseline: stratum by stratum ([`super::strata`]), given
//!   how many events each version had and how many fell in each category,
//!   the candidate's events are a draw without replacement from the
//!   stratum's events when both versions see the same distribution (a
//!   multivariate hypergeometric), whatever the share and the split. The
//!   test draws them one at a time in an order fixed by the stratum's
//!   bucket alone, and bets on each draw with odds learnt from earlier
//!   strata (which categories the candidate over-uses); the product of
//!   `Q(draw)/P0(draw)` is an e-process, see [`DriftModel`].
//! - Against a stored profile `q`: each candidate event's category is
//!   scored by the predictable plug-in `p̂(c)/q(c)`, with `p̂` the
//!   Krichevsky–Trofimov-style estimate from the earlier events (a prior of
//!   `q` with weight `PRIOR`); the product is the Dirichlet-multinomial
//!   mixture likelihood ratio, an e-process under `q`.

use super::strata::{Categories, Stratum, whole};
use crate::splitmix::SplitMix64;

/// Pseudo-count added to every category when computing PSI and JS.
const SMOOTHING: f64 = 0.5;
/// Weight of the reference profile in the plug-in estimate.
const PRIOR: f64 = 10.0;
/// Reference share given to a category the profile does not list.
pub const UNLISTED_SHARE: f64 = 1e-4;

/// `PSI(p ‖ q)` on counts, smoothed.
pub fn psi(p_counts: &[f64], q_counts: &[f64]) -> f64 {
    contributions(p_counts, q_counts).iter().sum()
}

/// Each category's term of the PSI, for explanations.
pub fn contributions(p_counts: &[f64], q_counts: &[f64]) -> Vec<f64> {
    let (p, q) = (
        smoothed(p_counts, q_counts.len()),
        smoothed(q_counts, p_counts.len()),
    );
    p.iter()
        .zip(&q)
        .map(|(a, b)| (a - b) * (a / b).ln())
        .collect()
}

/// Jensen–Shannon distance (base 2) on counts, smoothed.
pub fn js_distance(p_counts: &[f64], q_counts: &[f64]) -> f64 {
    let (p, q) = (
        smoothed(p_counts, q_counts.len()),
        smoothed(q_counts, p_counts.len()),
    );
    let kl_to_mid = |a: &[f64]| -> f64 {
        a.iter()
            .zip(p.iter().zip(&q))
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, (pi, qi))| x * (x / ((pi + qi) / 2.0)).log2())
            .sum()
    };
    ((kl_to_mid(&p) + kl_to_mid(&q)) / 2.0).max(0.0).sqrt()
}

/// Shares with half a count added to each of `max(len, other_len)` categories.
fn smoothed(counts: &[f64], other_len: usize) -> Vec<f64> {
    let k = counts.len().max(other_len);
    let total: f64 = counts.iter().sum::<f64>() + SMOOTHING * k as f64;
    (0..k)
        .map(|i| (counts.get(i).copied().unwrap_or(0.0) + SMOOTHING) / total)
        .collect()
}

/// The e-process of "same distribution as the reference".
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum DriftTest {
    VsBaseline {
        log_lr: f64,
    },
    VsProfile {
        /// Reference shares by category index.
        reference: Vec<f64>,
        counts: Vec<f64>,
        total: f64,
        log_lr: f64,
    },
}

impl DriftTest {
    pub fn vs_baseline() -> DriftTest {
        DriftTest::VsBaseline { log_lr: 0.0 }
    }

    /// `reference` holds the profile's share for each known category index.
    pub fn vs_profile(reference: Vec<f64>) -> DriftTest {
        DriftTest::VsProfile {
            counts: vec![0.0; reference.len()],
            reference,
            total: 0.0,
            log_lr: 0.0,
        }
    }

    /// A closed stratum's log likelihood ratio (tests against the baseline).
    pub fn add_stratum(&mut self, increment: f64) {
        if let DriftTest::VsBaseline { log_lr } = self {
            *log_lr += increment;
        }
    }

    /// `count` events of `category` from one version (tests against a
    /// profile; the baseline's are counted by stratum).
    pub fn add(&mut self, category: usize, candidate: bool, count: f64) {
        match self {
            DriftTest::VsBaseline { .. } => {}
            DriftTest::VsProfile {
                reference,
                counts,
                total,
                log_lr,
            } => {
                if !candidate {
                    return;
                }
                if reference.len() <= category {
                    reference.resize(category + 1, UNLISTED_SHARE);
                    counts.resize(category + 1, 0.0);
                }
                // A pre-aggregated count is the same events one after
                // another: Π_j (a + j)/(T + j) = Γ(a+c)Γ(T)/(Γ(a)Γ(T+c)).
                let q = reference[category];
                let c = count.max(0.0);
                let a = counts[category] + PRIOR * q;
                let t = *total + PRIOR;
                *log_lr +=
                    ln_gamma(a + c) - ln_gamma(a) - ln_gamma(t + c) + ln_gamma(t) - c * q.ln();
                counts[category] += c;
                *total += c;
            }
        }
    }

    pub fn log_e_value(&self) -> f64 {
        match self {
            DriftTest::VsBaseline { log_lr } => *log_lr,
            DriftTest::VsProfile { log_lr, .. } => *log_lr,
        }
    }
}

/// Most draws one stratum bets on; stopping a product of fair bets at a
/// fixed point keeps it fair.
const MAX_DRAWS: usize = 256;
/// Odds the bets may give a category, either way.
const MAX_ODDS: f64 = 20.0;

/// The side of the baseline comparison that every epoch shares: what the
/// earlier strata say about which categories the candidate over-uses.
///
/// For one stratum with `t_k` events in category `k`, of which the
/// candidate's are `n_c`, draw the candidate's events one at a time from the
/// urn of the stratum's events. Under "same distribution" each draw is
/// uniform over what is left in the urn: category `k` with probability
/// `r_k / R`. The bet gives it `ω_k r_k / Σ ω_j r_j` instead, with odds
/// `ω` fixed before the stratum closed, and multiplies the ratio of the two.
/// Drawn in an order that does not depend on the data (shuffled by the
/// stratum's bucket number), the sequence of draws is exactly the uniform
/// one under the null, so each factor has expectation 1 and the product is
/// a martingale. When the baseline has fewer events, its side is drawn with
/// odds `1/ω`.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DriftModel {
    /// Candidate and baseline counts by category, fading with a time
    /// constant of the criterion's window so that a late shift is learnt.
    candidate: Vec<f64>,
    baseline: Vec<f64>,
    last_bucket: Option<i64>,
    /// Buckets per window: the fading's time constant.
    memory: f64,
}

impl DriftModel {
    pub fn new(buckets_per_window: f64) -> DriftModel {
        DriftModel {
            memory: buckets_per_window.max(1.0),
            ..DriftModel::default()
        }
    }

    /// The stratum's log likelihood ratio; then learns from it.
    pub fn increment(&mut self, s: &Stratum<Categories>) -> f64 {
        let k = s.candidate.0.len().max(s.baseline.0.len());
        let odds = self.odds(k);
        let c: Vec<f64> = (0..k).map(|i| category(&s.candidate, i)).collect();
        let b: Vec<f64> = (0..k).map(|i| category(&s.baseline, i)).collect();
        let (nc, nb): (f64, f64) = (c.iter().sum(), b.iter().sum());
        let log_lr = if nc <= nb {
            bet_on_draws(&c, &b, &odds, s.bucket)
        } else {
            let inverse: Vec<f64> = odds.iter().map(|o| 1.0 / o).collect();
            bet_on_draws(&b, &c, &inverse, s.bucket)
        };
        self.learn(s.bucket, &c, &b);
        log_lr
    }

    /// `ω_k`: the candidate's share of category `k` over the baseline's,
    /// each with a pseudo-count of one per category.
    fn odds(&self, k: usize) -> Vec<f64> {
        let k_all = k.max(self.candidate.len());
        let ct: f64 = self.candidate.iter().sum::<f64>() + k_all as f64;
        let bt: f64 = self.baseline.iter().sum::<f64>() + k_all as f64;
        (0..k)
            .map(|i| {
                let p = (self.candidate.get(i).copied().unwrap_or(0.0) + 1.0) / ct;
                let q = (self.baseline.get(i).copied().unwrap_or(0.0) + 1.0) / bt;
                (p / q).clamp(1.0 / MAX_ODDS, MAX_ODDS)
            })
            .collect()
    }

    fn learn(&mut self, bucket: i64, c: &[f64], b: &[f64]) {
        let elapsed = self.last_bucket.map_or(0, |last| (bucket - last).max(0));
        let fade = (-(elapsed as f64) / self.memory).exp();
        self.last_bucket = Some(bucket);
        for (all, new) in [(&mut self.candidate, c), (&mut self.baseline, b)] {
            if all.len() < new.len() {
                all.resize(new.len(), 0.0);
            }
            for (a, n) in all
                .iter_mut()
                .zip(new.iter().chain(std::iter::repeat(&0.0)))
            {
                *a = *a * fade + n;
            }
        }
    }
}

/// `ln Π Q(draw)/P0(draw)` for drawing the `drawn` side's events out of the
/// urn of both sides' events, in a random order seeded by `bucket`.
fn bet_on_draws(drawn: &[f64], other: &[f64], odds: &[f64], bucket: i64) -> f64 {
    let mut unseen = drawn.to_vec();
    let mut unseen_total: f64 = unseen.iter().sum();
    let mut total: f64 = drawn.iter().sum::<f64>() + other.iter().sum::<f64>();
    let mut weighted: f64 = drawn
        .iter()
        .zip(other)
        .zip(odds)
        .map(|((a, b), w)| (a + b) * w)
        .sum();
    let mut rng = Draws(SplitMix64(bucket as u64 ^ 0x5EED_D81F_7C3A_2B19));
    let mut log_lr = 0.0;
    for _ in 0..MAX_DRAWS {
        if unseen_total < 1.0 || weighted <= 0.0 {
            break;
        }
        let k = rng.pick(&unseen, unseen_total);
        log_lr += (odds[k] * total / weighted).ln();
        unseen[k] -= 1.0;
        unseen_total -= 1.0;
        total -= 1.0;
        weighted -= odds[k];
    }
    log_lr
}

/// Draws from a multiset given by its counts, in a fixed pseudo-random
/// order: the same stratum always draws alike, and the order owes nothing
/// to the data.
struct Draws(SplitMix64);

impl Draws {
    /// An index drawn with probability `weights[i] / total`: one uniform
    /// draw from a multiset given by its counts.
    fn pick(&mut self, weights: &[f64], total: f64) -> usize {
        let u = (self.0.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return i;
            }
        }
        weights.iter().rposition(|w| *w >= 1.0).unwrap_or(0)
    }
}

/// A category's count as a whole number of events.
fn category(counts: &Categories, i: usize) -> f64 {
    counts.0.get(i).copied().map_or(0.0, whole)
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9; relative error < 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(101.0) - (1..=100).map(|k| (k as f64).ln()).sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn a_bucket_counts_like_its_events_one_by_one() {
        let mut bucket = DriftTest::vs_profile(vec![0.7, 0.3]);
        let mut single = bucket.clone();
        bucket.add(1, true, 40.0);
        for _ in 0..40 {
            single.add(1, true, 1.0);
        }
        assert!((bucket.log_e_value() - single.log_e_value()).abs() < 1e-9);
    }

    #[test]
    fn identical_distributions_have_zero_distance() {
        let p = [30.0, 50.0, 20.0];
        assert!(psi(&p, &p).abs() < 1e-12);
        assert!(js_distance(&p, &p).abs() < 1e-6);
    }

    #[test]
    fn psi_matches_the_textbook_formula() {
        // Shares 0.5/0.5 against 0.25/0.75 on large counts: smoothing is negligible.
        let psi = psi(&[5e6, 5e6], &[2.5e6, 7.5e6]);
        let exact = 0.25 * (2f64).ln() + (-0.25) * (0.5f64 / 0.75).ln();
        assert!((psi - exact).abs() < 1e-5, "{psi} vs {exact}");
    }

    #[test]
    fn disjoint_distributions_are_at_distance_one() {
        let d = js_distance(&[1e9, 0.0], &[0.0, 1e9]);
        assert!((d - 1.0).abs() < 1e-3, "{d}");
    }

    fn stratum(bucket: i64, c: &[f64], b: &[f64]) -> Stratum<Categories> {
        Stratum {
            bucket,
            candidate: Categories(c.to_vec()),
            baseline: Categories(b.to_vec()),
        }
    }

    #[test]
    fn a_shifted_topic_mix_is_rejected_against_the_baseline() {
        let mut model = DriftModel::new(60.0);
        let mut t = DriftTest::vs_baseline();
        // The candidate asks about topic 1 three times as often, at 10% of
        // the traffic one stratum and 40% the next.
        for i in 0..200 {
            let s = if i % 2 == 0 {
                stratum(i, &[1.0, 3.0], &[27.0, 9.0])
            } else {
                stratum(i, &[4.0, 12.0], &[18.0, 6.0])
            };
            t.add_stratum(model.increment(&s));
        }
        assert!(
            t.log_e_value() > (1.0f64 / 0.001).ln(),
            "{}",
            t.log_e_value()
        );
    }

    #[test]
    fn the_same_mix_at_any_split_is_no_evidence() {
        let mut model = DriftModel::new(60.0);
        let mut t = DriftTest::vs_baseline();
        for i in 0..200 {
            let s = if i % 2 == 0 {
                stratum(i, &[3.0, 1.0], &[27.0, 9.0])
            } else {
                stratum(i, &[12.0, 4.0], &[18.0, 6.0])
            };
            t.add_stratum(model.increment(&s));
        }
        assert!(t.log_e_value() < 1.0, "{}", t.log_e_value());
    }

    #[test]
    fn draws_follow_the_counts() {
        let mut rng = Draws(SplitMix64(7));
        let mut hits = [0u32; 3];
        for _ in 0..30_000 {
            hits[rng.pick(&[1.0, 0.0, 2.0], 3.0)] += 1;
        }
        assert_eq!(hits[1], 0);
        assert!((9_500..10_500).contains(&hits[0]), "{hits:?}");
    }

    #[test]
    fn the_profile_test_stays_low_on_the_profile_and_rejects_a_shift() {
        let mut same = DriftTest::vs_profile(vec![0.5, 0.5]);
        let mut moved = DriftTest::vs_profile(vec![0.5, 0.5]);
        for i in 0..2_000 {
            same.add(i % 2, true, 1.0);
            moved.add(usize::from(i % 10 < 8), true, 1.0);
        }
        assert!(same.log_e_value() < 0.0, "{}", same.log_e_value());
        assert!(moved.log_e_value() > 20.0, "{}", moved.log_e_value());
    }
}
