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

mod monotone {
    //! More evidence of harm never lowers a breach statistic.

    use proptest::prelude::*;
    use ripcord_core::policy::Direction;
    use ripcord_core::stats::bound::BoundTest;
    use ripcord_core::stats::cusum::Cusum;
    use ripcord_core::stats::fairness::{Disparity, Gap};
    use ripcord_core::stats::ratio::{RatioModel, RatioTest};
    use ripcord_core::stats::strata::{Counts, Stratum};

    proptest! {
        #[test]
        fn more_flags_of_the_same_outputs_never_lower_the_rate_test(
            total in 1u32..100_000, flagged in 0u32..1_000, extra in 1u32..100, p0 in 1e-5f64..0.2,
        ) {
            let total = f64::from(total.max(flagged + extra));
            let mut fewer = BoundTest::new(p0, Direction::HigherIsWorse);
            let mut more = fewer.clone();
            fewer.add(f64::from(flagged), total);
            more.add(f64::from(flagged + extra), total);
            prop_assert!(more.log_e_value() >= fewer.log_e_value());
        }

        #[test]
        fn a_flag_moved_to_the_candidate_never_lowers_the_ratio_test(
            history in prop::collection::vec((1u32..500, 1u32..500, 0u32..5, 0u32..5), 0..100),
            nc in 1u32..500, nb in 1u32..500, xc in 0u32..5, xb in 1u32..5, r in 1.0f64..3.0,
        ) {
            let stratum = |nc: u32, nb: u32, xc: u32, xb: u32| Stratum {
                bucket: 0,
                candidate: Counts { n: f64::from(nc), x: f64::from(xc.min(nc)) },
                baseline: Counts { n: f64::from(nb), x: f64::from(xb.min(nb)) },
            };
            let mut model = RatioModel::new(r, Direction::HigherIsWorse);
            let mut t = RatioTest::default();
            for (nc, nb, xc, xb) in &history {
                if let Some(inc) = model.increment(&stratum(*nc, *nb, *xc, *xb)) {
                    t.add(&inc);
                }
            }
            let (nc, nb) = (nc.max(xc + 1), nb.max(xb));
            let (mut as_is, mut moved) = (t.clone(), t);
            if let Some(inc) = model.clone().increment(&stratum(nc, nb, xc, xb)) {
                as_is.add(&inc);
            }
            if let Some(inc) = model.increment(&stratum(nc, nb, xc + 1, xb - 1)) {
                moved.add(&inc);
            }
            prop_assert!(moved.log_e_value() >= as_is.log_e_value() - 1e-9);
        }

        #[test]
        fn another_flag_never_lowers_an_upward_cusum(
            history in prop::collection::vec((1u32..100, 0u32..5), 0..200), p0 in 1e-4f64..0.1,
        ) {
            let mut c = Cusum::bernoulli(p0, 1.5, 1e6);
            for (n, x) in &history {
                c.add(f64::from(*n), f64::from((*x).min(*n)));
            }
            let mut flagged = c.clone();
            flagged.add(1.0, 1.0);
            c.add(1.0, 0.0);
            prop_assert!(flagged.statistic() >= c.statistic() || flagged.alarmed());
        }

        #[test]
        fn more_flags_in_the_worst_segment_never_hide_a_disparity(
            base in 1u32..50, worst in 50u32..400, extra in 0u32..100,
        ) {
            let mut d = Disparity::for_rates();
            d.add(0, 10_000.0, f64::from(base));
            d.add(1, 10_000.0, f64::from(worst));
            let before = d.significant(0.05, Gap::Ratio(1.5));
            d.add(1, 0.0, f64::from(extra));
            prop_assert!(!before || d.significant(0.05, Gap::Ratio(1.5)));
        }
    }
}
