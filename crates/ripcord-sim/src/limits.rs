//! Closed-form lower bounds on detection delay, in outputs, for a Bernoulli
//! rate that jumps from `p0` to `p1`: what no detector can beat.
//!
//! The benchmark reports these next to measured delays so a reader can see
//! how far each rule is from the information-theoretic floor.

/// Kullback–Leibler divergence KL(Bern(p) ‖ Bern(q)) in nats: the engine's
/// own, so the limits and the CUSUM thresholds use one definition.
pub use ripcord_core::stats::cusum::kl_bernoulli;

/// Wald's approximation of the expected number of outputs (both versions
/// together) an SPRT needs to accept H1 when H1 is true:
///
/// E[N] ≈ [(1−β)·ln((1−β)/α) + β·ln(β/(1−α))] / D*,
/// D* = π·KL(p₁‖p̄) + (1−π)·KL(p₀‖p̄), p̄ = π·p₁ + (1−π)·p₀.
///
/// `p_cand` = p₁, `p_base` = p₀, `share` = π (the candidate's share of
/// outputs). H0 is "both versions at the pooled rate p̄", which is what a
/// comparison that does not know p₀ in advance must rule out; D* is then the
/// per-output information, and by Wald's identity no α/β-test has a smaller
/// expected sample size (up to overshoot).
pub fn wald_expected_outputs(p_cand: f64, p_base: f64, share: f64, alpha: f64, beta: f64) -> f64 {
    let pooled = share * p_cand + (1.0 - share) * p_base;
    let info = share * kl_bernoulli(p_cand, pooled) + (1.0 - share) * kl_bernoulli(p_base, pooled);
    let numerator = (1.0 - beta) * ((1.0 - beta) / alpha).ln() + beta * (beta / (1.0 - alpha)).ln();
    numerator / info
}

/// Asymptotic worst-case delay, in post-change outputs, of Page's CUSUM
/// tuned for an average run length `arl_outputs` between false alarms:
/// (ln(ARL·I₀) − 1) / I₁ with I₀ = KL(p₀‖p₁), I₁ = KL(p₁‖p₀).
///
/// The −1 and the I₀ term are the second-order correction to Lorden's
/// bound (Siegmund's approximation of the threshold for a given ARL).
pub fn cusum_delay_outputs(p0: f64, p1: f64, arl_outputs: f64) -> f64 {
    let i0 = kl_bernoulli(p0, p1);
    let i1 = kl_bernoulli(p1, p0);
    ((arl_outputs * i0).ln() - 1.0) / i1
}

/// Lorden's first-order lower bound: any change detector whose false
/// alarms are at least `arl_outputs` apart needs ≈ ln(ARL)/I₁ outputs after
/// the change, I₁ = KL(p₁‖p₀).
pub fn lorden_delay_outputs(p0: f64, p1: f64, arl_outputs: f64) -> f64 {
    arl_outputs.ln() / kl_bernoulli(p1, p0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn kl_matches_a_hand_computed_case() {
        // KL(0.5‖0.25) = 0.5·ln(2) + 0.5·ln(0.5/0.75) = 0.5·ln(4/3) = 0.1438410…
        assert!(close(kl_bernoulli(0.5, 0.25), 0.143_841_036, 1e-8));
        assert_eq!(kl_bernoulli(0.3, 0.3), 0.0);
        // 0·ln 0 = 0: KL(0‖q) = ln(1/(1−q)).
        assert!(close(kl_bernoulli(0.0, 0.5), 2f64.ln(), 1e-12));
        assert!(kl_bernoulli(0.5, 0.0).is_infinite());
    }

    #[test]
    fn wald_expected_outputs_matches_a_hand_computed_case() {
        // π = 0.5, p₁ = 0.5, p₀ = 0.25 → p̄ = 0.375.
        // KL(0.5‖0.375) = 0.5·ln(16/15) = 0.0322693
        // KL(0.25‖0.375) = 0.25·ln(2/3) + 0.75·ln(1.2) = 0.0353749
        // D* = 0.0338221; numerator at α = β = 0.05 = 0.9·ln(19) = 2.6499951
        // E[N] = 2.6499951 / 0.0338221 = 78.351
        let n = wald_expected_outputs(0.5, 0.25, 0.5, 0.05, 0.05);
        assert!(close(n, 78.351, 1e-4), "{n}");
    }

    #[test]
    fn cusum_and_lorden_delays_match_hand_computed_cases() {
        // p₀ = 0.25, p₁ = 0.5: I₁ = KL(0.5‖0.25) = 0.1438410,
        // I₀ = KL(0.25‖0.5) = 0.25·ln(0.5) + 0.75·ln(1.5) = 0.1308120.
        // CUSUM, ARL 1000: (ln(130.812) − 1)/0.1438410 = 26.9309
        // Lorden: ln(1000)/0.1438410 = 48.0235
        assert!(close(cusum_delay_outputs(0.25, 0.5, 1000.0), 26.9309, 1e-4));
        assert!(close(
            lorden_delay_outputs(0.25, 0.5, 1000.0),
            48.0235,
            1e-4
        ));
    }

    #[test]
    fn a_larger_regression_is_found_sooner() {
        let small = wald_expected_outputs(0.02, 0.01, 0.5, 0.05, 0.05);
        let large = wald_expected_outputs(0.05, 0.01, 0.5, 0.05, 0.05);
        assert!(large < small / 5.0, "{large} vs {small}");
    }
}
