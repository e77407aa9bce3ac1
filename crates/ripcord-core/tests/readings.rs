//! Readings: each criterion's verdict and its bound in the estimate's
//! units, read from an engine driven by events.

use std::borrow::Cow;

use ripcord_core::engine::{Engine, Phase, Reading, ShareSource, Verdict};
use ripcord_core::policy::*;
use ripcord_core::{Decision, Dur, Event, Time};

use crate::support::*;

fn event(ts: Time, version: &'static str, values: &[(&'static str, f64)]) -> Event<'static> {
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(version),
        unit: Cow::Borrowed("u"),
        segment: Vec::new(),
        values: values
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), *v))
            .collect(),
    }
}

fn segmented(
    ts: Time,
    version: &'static str,
    key: &'static str,
    value: &'static str,
    n: f64,
    x: f64,
) -> Event<'static> {
    let mut e = event(ts, version, &[("outputs", n), ("fail", x)]);
    e.segment = vec![(Cow::Borrowed(key), Cow::Borrowed(value))];
    e
}

fn only(e: &Engine) -> Reading {
    let mut readings = e.readings();
    assert_eq!(readings.len(), 1);
    readings.remove(0)
}

fn started(policy: Policy) -> (Engine, Vec<Decision>) {
    let mut e = engine(policy, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    (e, out)
}

/// Loads a policy for `support-bot` from its signals, criteria and triggers.
fn policy_from(yaml: &str) -> Policy {
    let text = format!(
        "service: support-bot\n{yaml}\nrollout: {{steps: [{{share: 0.5, hold: 100d}}], promotion: manual}}\nsrm: off\n"
    );
    load_policy(&text, "test.yaml").unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn an_engine_without_a_release_has_no_readings() {
    let e = engine(relative_policy(1.5), ShareSource::Engine);
    assert_eq!(e.readings(), Vec::new());
}

#[test]
fn verdicts_follow_the_criterion_from_no_data_through_breach_to_clearing() {
    let mut p = relative_policy(1.0);
    p.srm.enabled = false;
    p.criteria[0].bound = Bound::Absolute(0.01);
    p.criteria[0].window = Dur::from_mins(1);
    p.criteria[0].sustain = Dur::from_mins(1);
    p.criteria[0].clear_for = Dur::from_mins(2);
    // Notify only, so the release keeps running through the breach.
    p.triggers[0].action = Action::Notify;
    let (mut e, mut out) = started(p);
    // Seconds of good data, bad data (10%), good data again, then silence.
    let flags = |s: i64| match s {
        1..=30 => Some(0.0),
        31..=330 => Some(2.0),
        331..=630 => Some(0.0),
        _ => None,
    };
    let mut changes: Vec<(i64, Verdict)> = vec![(0, only(&e).verdict)];
    for s in 1..=900 {
        let ts = T0 + Dur::from_secs(s);
        if let Some(x) = flags(s) {
            e.observe(
                &event(ts, "v13", &[("outputs", 20.0), ("moderation_fail", x)]),
                &mut out,
            )
            .unwrap();
        }
        e.tick(ts, &mut out);
        let verdict = only(&e).verdict;
        if changes.last().is_some_and(|(_, v)| *v != verdict) {
            changes.push((s, verdict));
        }
    }
    let verdicts: Vec<Verdict> = changes.iter().map(|(_, v)| *v).collect();
    use Verdict::*;
    assert_eq!(
        verdicts,
        [NoData, Ok, Watching, Breached, Watching, Ok, NoData],
        "{changes:?}"
    );
    // Watching for exactly `for` (1 min) before the breach, and for exactly
    // `clear_for` (2 min) before it is clear again.
    assert_eq!(changes[3].0 - changes[2].0, 60);
    assert_eq!(changes[5].0 - changes[4].0, 120);
    // Clearing starts when the 1-minute window's rate is back to 1%: at
    // second t it holds 390 − t bad seconds (2 flags in 20 each) of 1,200
    // outputs, so 12 flags at t = 384.
    assert_eq!(changes[4].0, 384);
    // No data once the window holds no candidate sample: the last came at
    // 630 s.
    assert_eq!(changes[6].0, 630 + 60);
}

#[test]
fn an_absolute_rate_reads_against_its_rate() {
    let mut p = relative_policy(1.0);
    p.srm.enabled = false;
    p.criteria[0].bound = Bound::Absolute(0.01);
    let (mut e, mut out) = started(p);
    let before = only(&e);
    assert_eq!(
        (before.verdict, before.limit, before.evidence.estimate),
        (Verdict::NoData, Some(0.01), None)
    );
    for s in 1..=10 {
        let x = if s % 2 == 0 { 1.0 } else { 0.0 };
        e.observe(
            &event(
                T0 + Dur::from_secs(s),
                "v13",
                &[("outputs", 20.0), ("moderation_fail", x)],
            ),
            &mut out,
        )
        .unwrap();
    }
    let r = only(&e);
    assert_eq!(r.verdict, Verdict::Ok);
    assert_eq!(r.limit, Some(0.01));
    // 5 flags in 200 outputs.
    assert_eq!(r.evidence.estimate, Some(0.025));
    assert_eq!(r.evidence.window_estimate, Some(0.025));
    assert_eq!(
        (
            r.evidence.window_candidate.n,
            r.evidence.window_candidate.sum
        ),
        (200.0, 5.0)
    );
    assert_eq!(r.evidence.window_baseline, None);
}

fn relative_rate_reading(direction: Direction) -> Reading {
    let mut p = relative_policy(1.5);
    p.srm.enabled = false;
    p.signals[0].direction = direction;
    let (mut e, mut out) = started(p);
    for s in 1..=10 {
        let ts = T0 + Dur::from_secs(s);
        e.observe(
            &event(ts, "v13", &[("outputs", 20.0), ("moderation_fail", 2.0)]),
            &mut out,
        )
        .unwrap();
        e.observe(
            &event(ts, "v12", &[("outputs", 20.0), ("moderation_fail", 1.0)]),
            &mut out,
        )
        .unwrap();
    }
    only(&e)
}

#[test]
fn a_rate_ratio_reads_against_the_tolerated_ratio() {
    let worse_higher = relative_rate_reading(Direction::HigherIsWorse);
    assert_eq!(worse_higher.limit, Some(1.5));
    // 20 flags in 200 outputs against 10 in 200.
    assert_eq!(worse_higher.evidence.estimate, Some(2.0));
    assert_eq!(
        worse_higher.evidence.window_baseline.map(|b| (b.n, b.sum)),
        Some((200.0, 10.0))
    );
    // Lower is worse: the candidate may not fall below baseline / 1.5.
    let worse_lower = relative_rate_reading(Direction::LowerIsWorse);
    assert_eq!(worse_lower.limit, Some(1.0 / 1.5));
    assert_eq!(worse_lower.evidence.estimate, Some(2.0));
}

fn score_reading(bound: Bound) -> Reading {
    let p = score_policy(bound);
    let (mut e, mut out) = started(p);
    for i in 1..=200 {
        let ts = T0 + Dur(i * 100);
        e.observe(&event(ts, "v13", &[("utility", 0.5)]), &mut out)
            .unwrap();
        e.observe(&event(ts, "v12", &[("utility", 0.75)]), &mut out)
            .unwrap();
    }
    only(&e)
}

#[test]
fn a_score_reads_as_a_mean_or_as_a_difference_with_the_baseline() {
    let floor = score_reading(Bound::Absolute(0.7));
    assert_eq!(
        (floor.limit, floor.evidence.estimate),
        (Some(0.7), Some(0.5))
    );
    // The estimate is candidate − baseline: a decrease is a negative limit.
    let decrease = score_reading(Bound::MaxDecrease(0.05));
    assert_eq!(
        (decrease.limit, decrease.evidence.estimate),
        (Some(-0.05), Some(-0.25))
    );
    let increase = score_reading(Bound::MaxIncrease(0.1));
    assert_eq!(
        (increase.limit, increase.evidence.estimate),
        (Some(0.1), Some(-0.25))
    );
}

fn latency_reading(bound: Bound) -> Reading {
    let mut p = relative_policy(1.0);
    p.srm.enabled = false;
    p.signals = vec![Signal {
        name: "latency_ms".into(),
        category: Category::Operational,
        kind: SignalKind::Latency {
            field: "latency_ms".into(),
        },
        direction: Direction::HigherIsWorse,
        unit: Some("ms".into()),
    }];
    p.criteria[0] = Criterion {
        quantile: Some(0.95),
        ..criterion("latency_p95", 0, bound)
    };
    let (mut e, mut out) = started(p);
    for i in 1..=200 {
        let ts = T0 + Dur(i * 100);
        e.observe(&event(ts, "v13", &[("latency_ms", 800.0)]), &mut out)
            .unwrap();
        e.observe(&event(ts, "v12", &[("latency_ms", 800.0)]), &mut out)
            .unwrap();
    }
    only(&e)
}

#[test]
fn a_latency_quantile_reads_in_its_unit_or_as_a_ratio() {
    let absolute = latency_reading(Bound::Absolute(2000.0));
    assert_eq!(absolute.limit, Some(2000.0));
    let p95 = absolute.evidence.estimate.unwrap_or(f64::NAN);
    // The sketch's quantile, within its 1% relative accuracy.
    assert!((p95 - 800.0).abs() <= 8.0, "{p95}");
    let ratio = latency_reading(Bound::MaxRatio(1.5));
    assert_eq!(
        (ratio.limit, ratio.evidence.estimate),
        (Some(1.5), Some(1.0))
    );
}

#[test]
fn drift_reads_against_its_distance_bound() {
    let policy = policy_from(
        "signals:\n  topic: {category: data, kind: category}\n\
         criteria:\n  topics: {signal: topic, max_psi: 0.2, window: 10m}\n\
         triggers:\n  moved: {when: topics, severity: minor, action: notify}",
    );
    let (mut e, mut out) = started(policy);
    for s in 1..=60 {
        let ts = T0 + Dur::from_secs(s);
        for version in ["v12", "v13"] {
            e.observe(
                &segmented(ts, version, "topic", "billing", 6.0, 0.0),
                &mut out,
            )
            .unwrap();
            e.observe(
                &segmented(ts, version, "topic", "shipping", 4.0, 0.0),
                &mut out,
            )
            .unwrap();
        }
    }
    let r = only(&e);
    assert_eq!(
        (r.verdict, r.limit, r.evidence.estimate),
        (Verdict::Ok, Some(0.2), Some(0.0))
    );
}

#[test]
fn fairness_reads_against_the_largest_gap_between_segments() {
    let read = |bound: &str| {
        let policy = policy_from(&format!(
            "signals:\n  fail: {{category: fairness, kind: rate}}\n\
             criteria:\n  fair: {{signal: fail, across: locale, {bound}, window: 30m, min_samples: 10}}\n\
             triggers:\n  unfair: {{when: fair, severity: major, action: notify}}"
        ));
        let (mut e, mut out) = started(policy);
        for s in 1..=10 {
            let ts = T0 + Dur::from_secs(s);
            e.observe(&segmented(ts, "v13", "locale", "de", 8.0, 2.0), &mut out)
                .unwrap();
            e.observe(&segmented(ts, "v13", "locale", "en", 8.0, 1.0), &mut out)
                .unwrap();
        }
        only(&e)
    };
    // 25% against 12.5%.
    let difference = read("max_difference: 0.2");
    assert_eq!(
        (difference.limit, difference.evidence.estimate),
        (Some(0.2), Some(0.125))
    );
    let ratio = read("max_ratio: 3");
    assert_eq!(
        (ratio.limit, ratio.evidence.estimate),
        (Some(3.0), Some(2.0))
    );
}

#[test]
fn after_promotion_a_rate_ratio_reads_against_its_level_with_the_same_limit() {
    let text = "service: support-bot
signals:
  fail: {category: safety, kind: rate}
criteria:
  fail_rel: {signal: fail, max_ratio: 1.25}
triggers:
  revert: {when: fail_rel, severity: critical, action: rollback}
rollout: {steps: [{share: 0.5, hold: 10m}], watch_after_promotion: 7d, false_alarm_every: 30d, holdback: 0}
srm: off
";
    let policy = load_policy(text, "test.yaml").unwrap_or_else(|d| panic!("{d}"));
    let (mut e, mut out) = started(policy);
    for s in 1..=900 {
        let ts = T0 + Dur::from_secs(s);
        let flag = if s % 10 == 0 { 1.0 } else { 0.0 };
        e.observe(&segmented(ts, "v13", "locale", "en", 10.0, flag), &mut out)
            .unwrap();
        if e.status().is_some_and(|st| st.share < 1.0) {
            e.observe(&segmented(ts, "v12", "locale", "en", 10.0, flag), &mut out)
                .unwrap();
        }
    }
    assert_eq!(e.status().map(|s| s.state.phase()), Some(Phase::Watching));
    let r = only(&e);
    assert_eq!(r.verdict, Verdict::Ok);
    assert_eq!(r.limit, Some(1.25));
    assert!(r.evidence.test.starts_with("CUSUM"), "{}", r.evidence.test);
    assert_eq!(r.evidence.interval, None);
    assert_eq!(r.evidence.baseline, None);
}

#[test]
fn verdicts_spell_as_the_api_does() {
    let words: Vec<&str> = [
        Verdict::Ok,
        Verdict::Watching,
        Verdict::Breached,
        Verdict::NoData,
    ]
    .into_iter()
    .map(Verdict::as_str)
    .collect();
    assert_eq!(words, ["ok", "watching", "breached", "no_data"]);
}
