//! The statistical guarantees, checked by simulation with fixed seeds.
//!
//! Tolerances: with 1,000 runs a false-breach rate estimate has a standard
//! error of at most sqrt(0.05 · 0.95 / 1000) ≈ 0.007, so "≤ α" is checked
//! as "≤ α + 0.02" (about three standard errors).

use ripcord_core::engine::ShareSource;
use ripcord_core::policy::{Bound, Rollout, RolloutStep};
use ripcord_core::{DecisionKind, Dur};

use crate::support::*;

const RUNS: u64 = 1000;
const TOLERANCE: f64 = 0.02;

/// Watches `RUNS` releases whose candidate is exactly as good as the
/// tolerated level for six hours each and counts those where the criterion
/// ever breached. Shares cycle through 1%, 5%, 20% and 50%, and every
/// fourth run ramps 5% → 25% → 50% to show the test survives share changes.
fn false_breach_rate(bound: Bound, p: f64) -> f64 {
    let mut breached = 0;
    for seed in 0..RUNS {
        let mut policy = relative_policy(1.0);
        policy.criteria[0].bound = bound;
        let share = [0.01, 0.05, 0.2, 0.5][(seed % 4) as usize];
        if seed % 4 == 3 {
            policy.rollout = Rollout {
                steps: [0.05, 0.25, 0.5]
                    .iter()
                    .map(|s| RolloutStep {
                        share: *s,
                        hold: Dur::from_mins(120),
                    })
                    .collect(),
                ..policy.rollout
            };
        }
        let share = if seed % 4 == 3 { 0.05 } else { share };
        let mut e = engine(policy, ShareSource::Engine);
        let mut out = Vec::new();
        declare(&mut e, T0, share, &mut out);
        let mut traffic = Traffic::new(seed, 20.0, p, 1.0);
        out.extend(run(&mut e, &mut traffic, "moderation_fail", 6 * 3600, 10));
        if out
            .iter()
            .any(|d| d.kind == DecisionKind::CriterionBreached)
        {
            breached += 1;
        }
    }
    breached as f64 / RUNS as f64
}

#[test]
fn a_candidate_as_good_as_the_baseline_is_rarely_flagged_worse() {
    let rate = false_breach_rate(Bound::MaxRatio(1.0), 0.01);
    eprintln!("relative A/A: {RUNS} runs, false-breach rate {rate}");
    assert!(rate <= 0.05 + TOLERANCE, "false-breach rate {rate}");
}

#[test]
fn a_candidate_exactly_at_an_absolute_bound_is_rarely_flagged_over_it() {
    let rate = false_breach_rate(Bound::Absolute(0.01), 0.01);
    eprintln!("absolute A/A: {RUNS} runs, false-breach rate {rate}");
    assert!(rate <= 0.05 + TOLERANCE, "false-breach rate {rate}");
}

/// Minutes from release start to the first rollback stage, or None.
fn detection_minutes(seed: u64, share: f64, p: f64, ratio: f64, hours: i64) -> Option<f64> {
    let mut e = engine(relative_policy(1.0), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, share, &mut out);
    let mut traffic = Traffic::new(seed, 50.0, p, ratio);
    out.extend(run(
        &mut e,
        &mut traffic,
        "moderation_fail",
        hours * 3600,
        1,
    ));
    out.iter()
        .find(|d| d.action == Some(ripcord_core::ActionKind::RollbackStage))
        .map(|d| (d.at - T0).as_secs_f64() / 60.0)
}

#[test]
fn three_times_the_hallucination_rate_at_five_percent_is_rolled_back() {
    // 50 outputs/s, 5 hallucinations per 10k on the baseline, 15 on the
    // candidate at 5% share: about 13 candidate flags an hour instead of 4.5.
    let mut detected = 0;
    let mut minutes = Vec::new();
    for seed in 0..20 {
        if let Some(m) = detection_minutes(seed, 0.05, 5e-4, 3.0, 6) {
            detected += 1;
            minutes.push(m);
        }
    }
    assert_eq!(detected, 20, "detected {detected} of 20");
    minutes.sort_by(f64::total_cmp);
    let median = minutes[10];
    eprintln!("3x at 5%: detection minutes {minutes:?}");
    assert!(median < 180.0, "median detection {median} min");
}

#[test]
fn a_doubled_moderation_failure_rate_is_caught_within_minutes() {
    // 0.5% baseline, 1% candidate, 5% share of 50 outputs/s.
    for seed in 0..10 {
        let m = detection_minutes(seed, 0.05, 5e-3, 2.0, 3).expect("detected");
        assert!(m < 90.0, "seed {seed}: {m} min");
    }
}
