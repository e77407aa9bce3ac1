//! An anytime-valid upper confidence level for a quantile.
//!
//! To bound a version's true `q`-quantile `B_q` from above we read its
//! empirical quantile at a level `ℓ_n ≥ q`. That is an upper bound as long
//! as the share `p̂_n` of the first `n` values at or below `B_q` stays at
//! most `ℓ_n`. For i.i.d. values with a continuous distribution the
//! indicators `X_i = 1{value_i ≤ B_q}` are Bernoulli(`q`), so `ℓ_n` is an
//! upper confidence sequence for a Bernoulli mean whose variance is known:
//!
//! `P( ∃ n: p̂_n > ℓ_n ) ≤ α`.
//!
//! **Method.** The increments `X_i − q` lie in `[−q, 1 − q]` and are
//! *sub-Bernoulli* with `g = q`, `h = 1 − q` (Howard, Ramdas, McAuliffe &
//! Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
//! sequences", Ann. Statist., §2). For upward deviations (`λ ≥ 0`) and
//! `g ≥ h`, i.e. `q ≥ 1/2`, the sub-Bernoulli cumulant is at most the
//! Gaussian one, so `exp(λ S_n − λ² V_n / 2)` with `S_n = Σ (X_i − q)` and
//! the *deterministic* variance process `V_n = q(1 − q)·n` is a
//! supermartingale for every `λ ≥ 0`. Mixing `λ` over a half-normal with
//! precision `ρ` gives an e-process at least
//! `sqrt(ρ / (V_n + ρ)) · exp(S_n² / (2 (V_n + ρ)))` when `S_n ≥ 0`
//! (the half-normal's `2Φ(·) ≥ 1`), so by Ville's inequality
//!
//! `S_n < sqrt( (V_n + ρ) · ln( (V_n + ρ) / (ρ α²) ) )` for all `n`,
//!
//! with probability at least `1 − α`. Dividing by `n` gives the radius. Below
//! `q = 1/2` the upward tail of a centred Bernoulli is heavier than the
//! Gaussian with variance `q(1 − q)`, so the variance proxy falls back to
//! Hoeffding's `1/4`, which holds for any `[0, 1]` variable.
//!
//! Compared with the proxy `1/4` everywhere, the known variance
//! `0.95 · 0.05 = 0.0475` makes the p95 radius about `sqrt(0.25/0.0475) ≈ 2.3`
//! times narrower at every `n`.
//!
//! **Assumptions.** The values are i.i.d. (no drift within the sequence) and
//! their distribution has no atom at `B_q` (with an atom the share at or
//! below `B_q` is at least `q`, and the level is then only approximately
//! right). The tuning `ρ` is fixed in advance, independent of the data.

/// Where the boundary is tightest, in samples: the mixture's precision is
/// `ρ = σ² · TUNING_SAMPLES`. Any fixed value keeps the guarantee.
const TUNING_SAMPLES: f64 = 500.0;

/// The anytime-valid upper level `ℓ_n ≥ q` for the share of the first `n`
/// i.i.d. values at or below their true `q`-quantile, at error `alpha`.
///
/// Returns `1.0` (no bound: every share is at most 1) when `n` is too small
/// for the radius to fit below 1, and for arguments outside their domain
/// (`n ≤ 0`, `q` or `alpha` not strictly inside `(0, 1)`, NaN).
pub fn upper_level(n: f64, q: f64, alpha: f64) -> f64 {
    let valid = n > 0.0 && q > 0.0 && q < 1.0 && alpha > 0.0 && alpha < 1.0;
    if !valid {
        return 1.0;
    }
    (q + radius(n, variance_proxy(q), alpha)).min(1.0)
}

/// The upward variance proxy of a centred Bernoulli(`q`): its variance when
/// `q ≥ 1/2`, Hoeffding's `1/4` otherwise.
fn variance_proxy(q: f64) -> f64 {
    if q >= 0.5 { q * (1.0 - q) } else { 0.25 }
}

/// The half-normal mixture boundary for `S_n / n` with variance process
/// `sigma2 · n`.
fn radius(n: f64, sigma2: f64, alpha: f64) -> f64 {
    let rho = sigma2 * TUNING_SAMPLES;
    let v = sigma2 * n + rho;
    (v * (v / (rho * alpha * alpha)).ln()).sqrt() / n
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    #[test]
    fn the_level_is_above_q_and_shrinks_towards_it() {
        let mut last = 1.0;
        for n in [100.0, 1_000.0, 10_000.0, 100_000.0, 1e7] {
            let l = upper_level(n, 0.95, 0.025);
            assert!(l > 0.95 && l <= last, "n = {n}: {l}");
            last = l;
        }
        assert!(last < 0.951, "{last}");
    }

    #[test]
    fn too_few_values_or_bad_arguments_give_no_bound() {
        assert_eq!(upper_level(10.0, 0.95, 0.025), 1.0);
        assert_eq!(upper_level(0.0, 0.95, 0.025), 1.0);
        assert_eq!(upper_level(-5.0, 0.95, 0.025), 1.0);
        assert_eq!(upper_level(1e4, 1.0, 0.025), 1.0);
        assert_eq!(upper_level(1e4, 0.95, 0.0), 1.0);
        assert_eq!(upper_level(f64::NAN, 0.95, 0.025), 1.0);
        assert_eq!(upper_level(1e4, f64::NAN, 0.025), 1.0);
    }

    /// The fact the method rests on: for `q ≥ 1/2` and `λ ≥ 0`,
    /// `ln E exp(λ (X − q)) ≤ λ² q (1 − q) / 2`.
    #[test]
    fn the_gaussian_cumulant_dominates_above_the_median() {
        for q in [0.5, 0.6, 0.9, 0.95, 0.99, 0.999] {
            for i in 0..=400 {
                let lambda = f64::from(i) * 0.25;
                let cumulant =
                    (q * (lambda * (1.0 - q)).exp() + (1.0 - q) * (-lambda * q).exp()).ln();
                let gaussian = lambda * lambda * variance_proxy(q) / 2.0;
                assert!(cumulant <= gaussian + 1e-12, "q = {q}, λ = {lambda}");
            }
        }
    }

    #[test]
    fn below_the_median_the_proxy_is_hoeffdings() {
        let low = upper_level(2_000.0, 0.2, 0.05) - 0.2;
        let median = upper_level(2_000.0, 0.5, 0.05) - 0.5;
        assert!((low - median).abs() < 1e-12, "{low} vs {median}");
    }

    /// The radius the engine uses today (`bernoulli_radius` in
    /// `engine/criterion.rs`): Robbins' normal mixture with the variance
    /// bound 1/4, tuned at 500 samples.
    fn quarter_variance_radius(n: f64, alpha: f64) -> f64 {
        let rho = 0.25 * 500.0;
        let v = n * 0.25 + rho;
        (v * (v / (rho * alpha * alpha)).ln()).sqrt() / n
    }

    #[test]
    fn the_p95_radius_is_well_below_the_quarter_variance_one() {
        let known = upper_level(2_000.0, 0.95, 0.025) - 0.95;
        let quarter = quarter_variance_radius(2_000.0, 0.025);
        eprintln!("n = 2000, q = 0.95, α = 0.025: radius {known:.5} vs {quarter:.5}");
        assert!(known < quarter / 2.0, "{known} vs {quarter}");
    }

    /// Whether the share of Bernoulli(`q`) successes ever exceeds the level
    /// within `draws` draws.
    fn ever_crosses(rng: &mut StdRng, q: f64, alpha: f64, draws: u32) -> bool {
        let mut successes = 0.0;
        (1..=draws).any(|n| {
            successes += f64::from(u8::from(rng.random::<f64>() < q));
            let n = f64::from(n);
            successes / n > upper_level(n, q, alpha)
        })
    }

    /// 1,000 runs of 20,000 draws per case: the crossing rate's standard
    /// error is at most sqrt(α(1 − α)/1000) ≤ 0.007, so "≤ α" is checked as
    /// "≤ α + 0.02".
    #[test]
    fn the_level_is_crossed_at_most_alpha_of_the_time() {
        const RUNS: u32 = 1_000;
        let mut rng = StdRng::seed_from_u64(95);
        for (q, alpha) in [(0.95, 0.025), (0.99, 0.05), (0.5, 0.05), (0.2, 0.05)] {
            let crossed = (0..RUNS)
                .filter(|_| ever_crosses(&mut rng, q, alpha, 20_000))
                .count();
            let rate = f64::from(crossed as u32) / f64::from(RUNS);
            eprintln!("q = {q}, α = {alpha}: crossing rate {rate}");
            assert!(rate <= alpha + 0.02, "q = {q}: {rate}");
        }
    }
}
