//! Change detection after promotion: once the candidate serves everyone
//! there is no baseline left to compare with, so the question becomes "has
//! the signal moved away from its level at promotion?".
//!
//! Page's CUSUM accumulates the log-likelihood ratio of "shifted" against
//! "at the promotion level" and resets at zero: `S = max(0, S + llr)`; it
//! alarms when `S ≥ h`. Among all detectors with the same mean time between
//! false alarms it has the smallest worst-case delay (Lorden 1971; Moustakides
//! 1986). Lorden's bound `h = ln(ARL)` guarantees the mean run length under
//! no change is at least `ARL` but is conservative by the factor `1/I₀`,
//! which for rare events is in the thousands; we use Siegmund's
//! approximation `ARL ≈ (e^h − h − 1)/I₀` instead, solved for `h`, and the
//! detection benchmark measures the run lengths it gives.
//!
//! `ARL` is counted in samples (outputs for rates, scores for scores); the
//! engine converts the policy's `false_alarm_every` with the traffic rate it
//! saw before promotion.

/// How far past the tolerated shift the extra arms look: a CUSUM tuned for
/// a small shift is slow to see a large one, so one arm runs per multiple.
pub const SHIFT_MULTIPLES: [f64; 4] = [1.0, 1.6, 2.5, 4.0];

/// One-sided CUSUMs for several shift sizes on one stream: it alarms when
/// any arm does. Each arm gets `ARL × arms` so that false alarms, which add
/// up across arms, still come no more often than once per `ARL`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cusum {
    arms: Vec<Arm>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Arm {
    model: Model,
    threshold: f64,
    statistic: f64,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Model {
    /// Flags among outputs: level `p0`, shifted `p1`.
    Bernoulli { flag: f64, clear: f64, i0: f64 },
    /// Scores with variance `sigma2`: level `mu0`, shifted by `delta`.
    Normal { mu0: f64, delta: f64, sigma2: f64 },
}

impl Cusum {
    /// CUSUMs for a rate moving from `p0` by `ratio` (above 1: up; below:
    /// down) and by the larger [`SHIFT_MULTIPLES`] of it, with a mean run
    /// length of `arl` samples under no change.
    pub fn bernoulli(p0: f64, ratio: f64, arl: f64) -> Cusum {
        let p0 = p0.clamp(1e-9, 1.0 - 1e-9);
        let models = SHIFT_MULTIPLES.iter().map(|m| {
            let r = if ratio >= 1.0 { ratio * m } else { ratio / m };
            let p1 = (p0 * r).clamp(1e-9, 1.0 - 1e-9);
            Model::Bernoulli {
                flag: (p1 / p0).ln(),
                clear: ((1.0 - p1) / (1.0 - p0)).ln(),
                i0: kl_bernoulli(p0, p1),
            }
        });
        Cusum::with(models.collect(), arl)
    }

    /// CUSUMs for a mean score moving from `mu0` by `delta` (signed) and
    /// its multiples, for scores with variance `sigma2`.
    pub fn normal(mu0: f64, delta: f64, sigma2: f64, arl: f64) -> Cusum {
        let sigma2 = sigma2.max(1e-12);
        let models = SHIFT_MULTIPLES.iter().map(|m| Model::Normal {
            mu0,
            delta: delta * m,
            sigma2,
        });
        Cusum::with(models.collect(), arl)
    }

    fn with(models: Vec<Model>, arl: f64) -> Cusum {
        let per_arm = arl.max(1.0) * models.len() as f64;
        let arms = models
            .into_iter()
            .map(|model| Arm {
                threshold: siegmund_threshold(per_arm, model.i0()),
                model,
                statistic: 0.0,
            })
            .collect();
        Cusum { arms }
    }

    /// Adds `n` outputs with `x` flagged (rates), or one score `x` (`n` = 1).
    pub fn add(&mut self, n: f64, x: f64) {
        for arm in &mut self.arms {
            let llr = match arm.model {
                Model::Bernoulli { flag, clear, .. } => x * flag + (n - x).max(0.0) * clear,
                Model::Normal { mu0, delta, sigma2 } => delta / sigma2 * (x - mu0 - delta / 2.0),
            };
            arm.statistic = (arm.statistic + llr).max(0.0);
        }
    }

    pub fn alarmed(&self) -> bool {
        self.arms.iter().any(|a| a.statistic >= a.threshold)
    }

    /// The arm nearest to (or furthest past) its threshold.
    fn leading(&self) -> Option<&Arm> {
        self.arms
            .iter()
            .max_by(|a, b| (a.statistic / a.threshold).total_cmp(&(b.statistic / b.threshold)))
    }

    pub fn statistic(&self) -> f64 {
        self.leading().map_or(0.0, |a| a.statistic)
    }

    pub fn threshold(&self) -> f64 {
        self.leading().map_or(f64::INFINITY, |a| a.threshold)
    }
}

impl Model {
    fn i0(&self) -> f64 {
        match *self {
            Model::Bernoulli { i0, .. } => i0,
            Model::Normal { delta, sigma2, .. } => delta * delta / (2.0 * sigma2),
        }
    }
}

/// `KL(Bernoulli(p) ‖ Bernoulli(q))` in nats, with `0·ln 0 = 0`, so `p` may
/// be 0 or 1; `q` outside (0, 1) gives +∞ where it matters.
pub fn kl_bernoulli(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| {
        if a <= 0.0 {
            0.0
        } else if b <= 0.0 {
            f64::INFINITY
        } else {
            a * (a / b).ln()
        }
    };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// Solves `(e^h − h − 1)/I₀ = arl` for `h` (Siegmund's approximation of
/// CUSUM's run length under no change), by Newton's method from above.
fn siegmund_threshold(arl: f64, i0: f64) -> f64 {
    let target = arl * i0.max(1e-300);
    let mut h = (target + 1.0).ln().max(1e-6) + 1.0;
    for _ in 0..60 {
        let f = h.exp() - h - 1.0 - target;
        let slope = h.exp() - 1.0;
        if slope <= 0.0 {
            break;
        }
        let next = h - f / slope;
        if (next - h).abs() < 1e-12 {
            return next.max(0.0);
        }
        h = next;
    }
    h.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_solves_siegmunds_equation() {
        let h = siegmund_threshold(10_000.0, 0.01);
        assert!(((h.exp() - h - 1.0) / 0.01 - 10_000.0).abs() < 1e-6, "{h}");
        // Well above ln(ARL·I₀) for small targets, close to it for large ones.
        assert!(h > (100f64).ln());
    }

    #[test]
    fn a_doubled_rate_alarms_and_the_level_does_not_drift_up() {
        let mut c = Cusum::bernoulli(0.01, 2.0, 1e6);
        // At the promotion level the statistic keeps returning to zero.
        for i in 0..100_000 {
            c.add(1.0, if i % 100 == 0 { 1.0 } else { 0.0 });
        }
        assert!(!c.alarmed(), "{}", c.statistic());
        let mut n = 0;
        while !c.alarmed() {
            c.add(1.0, if n % 50 == 0 { 1.0 } else { 0.0 });
            n += 1;
        }
        // Near (ln(ARL·I₀) − 1)/I₁ ≈ 2.2k outputs for this pair, plus the
        // price of watching four shift sizes at once.
        assert!((1_000..5_000).contains(&n), "{n}");
    }

    #[test]
    fn an_aggregated_bucket_counts_like_its_outputs() {
        let mut a = Cusum::bernoulli(0.01, 3.0, 1e5);
        let mut b = a.clone();
        a.add(100.0, 4.0);
        for i in 0..100 {
            b.add(1.0, if i < 4 { 1.0 } else { 0.0 });
        }
        assert!((a.statistic() - b.statistic()).abs() < 1e-9);
    }

    #[test]
    fn a_score_drop_alarms() {
        let mut c = Cusum::normal(0.8, -0.05, 0.01, 1e6);
        let mut n = 0;
        while !c.alarmed() && n < 100_000 {
            c.add(1.0, if n % 2 == 0 { 0.65 } else { 0.85 });
            n += 1;
        }
        assert!(c.alarmed() && n < 2_000, "{n}");
    }

    #[test]
    fn kl_is_zero_for_equal_rates_and_positive_otherwise() {
        assert_eq!(kl_bernoulli(0.2, 0.2), 0.0);
        assert!(kl_bernoulli(0.01, 0.02) > 0.0);
    }
}
