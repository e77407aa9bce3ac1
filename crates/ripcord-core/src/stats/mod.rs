//! Anytime-valid statistics, written here (no statistics crate).
//!
//! Every test in this module is a nonnegative supermartingale under its null
//! hypothesis (an *e-process*), so by Ville's inequality the probability that
//! it *ever* reaches `1/α` is at most `α`, however often it is looked at.
//! That is what lets the engine evaluate on every event without inflating
//! false alarms. See `docs/statistics.md` for the formulas and references.

pub mod bound;
pub mod cluster;
pub mod cusum;
pub mod drift;
pub mod fairness;
pub mod paired;
pub mod quantile;
pub mod ratio;
pub mod score;
pub mod srm;
pub mod strata;

/// Multipliers of the tolerated effect that the mixtures average over: a
/// regression between 1.25× and 10× the tolerated level is detected close to
/// as fast as by a test that knew its size.
pub const EFFECT_GRID: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0];

/// `ln(mean(exp(x_i)))`, computed without overflow.
pub fn log_mean_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = xs.iter().map(|x| (x - max).exp()).sum();
    max + (sum / xs.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mean_exp_matches_the_direct_formula() {
        let xs = [0.0, 1.0, -2.0];
        let direct = ((0f64).exp() + 1f64.exp() + (-2f64).exp()) / 3.0;
        assert!((log_mean_exp(&xs) - direct.ln()).abs() < 1e-12);
        assert_eq!(log_mean_exp(&[1000.0, 1000.0]), 1000.0);
    }
}
