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
//! - Against the baseline: given an event's category, it is the
//!   candidate's with probability `π` (the candidate's share of all outputs)
//!   when both versions see the same distribution. Each category runs the
//!   odds-multiplier mixture of [`super::srm`]; their product is an
//!   e-process because each event moves only its own category's factor.
//! - Against a stored profile `q`: each candidate event's category is
//!   scored by the predictable plug-in `p̂(c)/q(c)`, with `p̂` the
//!   Krichevsky–Trofimov-style estimate from the earlier events (a prior of
//!   `q` with weight `PRIOR`); the product is the Dirichlet-multinomial
//!   mixture likelihood ratio, an e-process under `q`.

use super::srm::SrmTest;

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
#[derive(Clone, Debug)]
pub enum DriftTest {
    VsBaseline {
        per_category: Vec<SrmTest>,
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
        DriftTest::VsBaseline {
            per_category: Vec::new(),
        }
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

    /// `count` events of `category` from one version; `share` is the
    /// candidate's share of outputs when they happened.
    pub fn add(&mut self, category: usize, candidate: bool, share: f64, count: f64) {
        match self {
            DriftTest::VsBaseline { per_category } => {
                if per_category.len() <= category {
                    per_category.resize_with(category + 1, SrmTest::default);
                }
                per_category[category].add(share, candidate, count);
            }
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
            DriftTest::VsBaseline { per_category } => {
                per_category.iter().map(SrmTest::log_e_value).sum()
            }
            DriftTest::VsProfile { log_lr, .. } => *log_lr,
        }
    }
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
        bucket.add(1, true, 1.0, 40.0);
        for _ in 0..40 {
            single.add(1, true, 1.0, 1.0);
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

    #[test]
    fn a_shifted_topic_mix_is_rejected_against_the_baseline() {
        let mut t = DriftTest::vs_baseline();
        // Candidate (half the traffic) asks about topic 1 three times as often.
        for i in 0..4_000 {
            let candidate = i % 2 == 0;
            let category = if candidate {
                usize::from(i % 8 < 6)
            } else {
                usize::from(i % 8 < 2)
            };
            t.add(category, candidate, 0.5, 1.0);
        }
        assert!(
            t.log_e_value() > (1.0f64 / 0.001).ln(),
            "{}",
            t.log_e_value()
        );
    }

    #[test]
    fn the_profile_test_stays_low_on_the_profile_and_rejects_a_shift() {
        let mut same = DriftTest::vs_profile(vec![0.5, 0.5]);
        let mut moved = DriftTest::vs_profile(vec![0.5, 0.5]);
        for i in 0..2_000 {
            same.add(i % 2, true, 1.0, 1.0);
            moved.add(usize::from(i % 10 < 8), true, 1.0, 1.0);
        }
        assert!(same.log_e_value() < 0.0, "{}", same.log_e_value());
        assert!(moved.log_e_value() > 20.0, "{}", moved.log_e_value());
    }
}
