//! Criterion semantics: segment scope, missing data, hysteresis, scores and
//! latency quantiles.

use std::borrow::Cow;

use ripcord_core::engine::{Engine, ShareSource};
use ripcord_core::policy::*;
use ripcord_core::{Decision, DecisionKind, Dur, Event, Time};

use crate::support::*;

fn event(
    ts: Time,
    version: &'static str,
    locale: &'static str,
    values: Vec<(&'static str, f64)>,
) -> Event<'static> {
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(version),
        unit: Cow::Borrowed("u"),
        segment: vec![(Cow::Borrowed("locale"), Cow::Borrowed(locale))],
        values: values
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    }
}

fn breaches(out: &[Decision]) -> Vec<(String, i64)> {
    out.iter()
        .filter(|d| {
            matches!(
                d.kind,
                DecisionKind::CriterionBreached
                    | DecisionKind::CriterionNoData
                    | DecisionKind::CriterionCleared
            )
        })
        .map(|d| (d.kind.as_str().to_string(), (d.at - T0).0 / 1000))
        .collect()
}

/// A 50/50 release where the candidate fails 10% of German outputs and 1% of
/// the others, the baseline 1% everywhere. 20 outputs a second per locale
/// and version.
fn run_locales(e: &mut Engine, seconds: i64) -> Vec<Decision> {
    let mut out = Vec::new();
    declare(e, T0, 0.5, &mut out);
    for s in 1..=seconds {
        let ts = T0 + Dur::from_secs(s);
        for locale in ["de", "en"] {
            // 1% is one flag in 20 outputs every 5 s; 10% is 2 flags a second.
            let one_percent = if s % 5 == 0 { 1.0 } else { 0.0 };
            let candidate = if locale == "de" { 2.0 } else { one_percent };
            let cand = event(
                ts,
                "v13",
                locale,
                vec![("outputs", 20.0), ("moderation_fail", candidate)],
            );
            let base = event(
                ts,
                "v12",
                locale,
                vec![("outputs", 20.0), ("moderation_fail", one_percent)],
            );
            let _ = e.observe(&cand, &mut out);
            let _ = e.observe(&base, &mut out);
        }
    }
    out
}

#[test]
fn a_criterion_scoped_to_a_segment_only_sees_that_segment() {
    let mut p = relative_policy(1.5);
    p.srm.enabled = false;
    p.criteria.push(Criterion {
        scope: vec![("locale".into(), "en".into())],
        ..criterion("moderation_en", 0, Bound::MaxRatio(1.5))
    });
    p.criteria[0].scope = vec![("locale".into(), "de".into())];
    p.criteria[0].name = "moderation_de".into();
    let mut e = engine(p, ShareSource::Engine);
    let out = run_locales(&mut e, 1800);
    let breached: Vec<_> = out
        .iter()
        .filter(|d| d.kind == DecisionKind::CriterionBreached)
        .filter_map(|d| d.criterion.clone())
        .collect();
    assert_eq!(breached, vec!["moderation_de"]);
}

/// An absolute-bound policy fed a bad minute and then silence or good data.
fn absolute_policy(on_no_data: OnNoData) -> Policy {
    let mut p = relative_policy(1.0);
    p.srm.enabled = false;
    p.criteria[0].bound = Bound::Absolute(0.01);
    p.criteria[0].window = Dur::from_mins(1);
    p.criteria[0].clear_for = Dur::from_mins(2);
    p.criteria[0].on_no_data = on_no_data;
    // Notify only, so the release keeps running and we can watch clearing.
    p.triggers[0].action = Action::Notify;
    p
}

fn bad_then(e: &mut Engine, after: impl Fn(i64) -> Option<f64>) -> Vec<Decision> {
    let mut out = Vec::new();
    declare(e, T0, 0.5, &mut out);
    for s in 1..=900 {
        let ts = T0 + Dur::from_secs(s);
        let flagged = if s <= 300 { Some(2.0) } else { after(s) };
        if let Some(x) = flagged {
            let _ = e.observe(
                &event(
                    ts,
                    "v13",
                    "en",
                    vec![("outputs", 20.0), ("moderation_fail", x)],
                ),
                &mut out,
            );
        }
        e.tick(ts, &mut out);
    }
    out
}

#[test]
fn a_breach_clears_only_after_clear_for_of_good_data() {
    let mut e = engine(absolute_policy(OnNoData::Hold), ShareSource::Engine);
    let out = bad_then(&mut e, |_| Some(0.0));
    let got = breaches(&out);
    assert_eq!(got[0].0, "criterion_breached");
    assert!(got[0].1 < 300);
    // Good data from 301 s; the 1-minute window turns good once the bad
    // buckets have left it, and the criterion clears 2 minutes after that.
    assert_eq!(got[1].0, "criterion_cleared");
    assert!(
        (300 + 120..=300 + 60 + 120 + 2).contains(&got[1].1),
        "{got:?}"
    );
    assert_eq!(got.len(), 2);
}

#[test]
fn missing_data_holds_by_default_and_can_be_inconclusive() {
    let mut hold = engine(absolute_policy(OnNoData::Hold), ShareSource::Engine);
    let got = breaches(&bad_then(&mut hold, |_| None));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "criterion_breached");

    let mut inconclusive = engine(absolute_policy(OnNoData::Inconclusive), ShareSource::Engine);
    let got = breaches(&bad_then(&mut inconclusive, |_| None));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, "criterion_cleared");
}

#[test]
fn silence_is_its_own_verdict_never_a_statistical_breach() {
    let mut p = absolute_policy(OnNoData::Breach);
    p.criteria[0].min_samples = 0;
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    e.tick(T0 + Dur::from_secs(5), &mut out);
    assert_eq!(breaches(&out), vec![("criterion_no_data".to_string(), 5)]);
    let no_data = out
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionNoData)
        .expect("a no-data verdict");
    let summary = &no_data.explanation.summary;
    assert!(summary.contains("has no data in its window"), "{summary}");
    // The trigger still acts on it: the user asked for silence to count.
    assert!(out.iter().any(|d| d.kind == DecisionKind::TriggerFired));
}

fn utility_run(p: Policy, candidate_mean: f64) -> Vec<Decision> {
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    for i in 0..20_000i64 {
        let ts = T0 + Dur(i * 100);
        // Versions alternate; each version's values alternate mean ± 0.1.
        let wiggle = if (i / 2) % 2 == 0 { 0.1 } else { -0.1 };
        let (version, mean) = if i % 2 == 0 {
            ("v13", candidate_mean)
        } else {
            ("v12", 0.8)
        };
        let _ = e.observe(
            &event(ts, version, "en", vec![("utility", mean + wiggle)]),
            &mut out,
        );
    }
    e.tick(T0 + Dur::from_mins(40), &mut out);
    out
}

#[test]
fn a_utility_drop_below_an_absolute_floor_breaches_and_a_healthy_one_does_not() {
    let bad = utility_run(score_policy(Bound::Absolute(0.7)), 0.6);
    let breach = bad
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("breached");
    let ev = &breach.explanation.evidence[0];
    assert_eq!(ev.bound, "utility ≥ 0.7");
    assert!(ev.interval.unwrap().1 < 0.7);
    let good = utility_run(score_policy(Bound::Absolute(0.7)), 0.8);
    assert!(
        good.iter()
            .all(|d| d.kind != DecisionKind::CriterionBreached)
    );
}

#[test]
fn a_utility_drop_against_the_baseline_is_measured_as_a_difference() {
    let bad = utility_run(score_policy(Bound::MaxDecrease(0.05)), 0.6);
    let breach = bad
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("breached");
    assert_eq!(
        breach.explanation.evidence[0].bound,
        "baseline − candidate ≤ 0.05"
    );
    let ok = utility_run(score_policy(Bound::MaxDecrease(0.05)), 0.79);
    assert!(ok.iter().all(|d| d.kind != DecisionKind::CriterionBreached));
}

#[test]
fn a_latency_quantile_bound_is_a_bound_on_the_share_of_slow_requests() {
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
        ..criterion("latency_p95", 0, Bound::Absolute(2000.0))
    };
    let run_with = |slow_every: i64| {
        let mut e = engine(p.clone(), ShareSource::Engine);
        let mut out = Vec::new();
        declare(&mut e, T0, 0.5, &mut out);
        for i in 0..20_000i64 {
            let ts = T0 + Dur(i * 100);
            let latency = if i % slow_every == 0 { 2500.0 } else { 800.0 };
            let _ = e.observe(
                &event(ts, "v13", "en", vec![("latency_ms", latency)]),
                &mut out,
            );
        }
        out
    };
    // One request in 5 above 2 s: p95 is 2.5 s.
    let slow = run_with(5);
    let breach = slow
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("breached");
    assert_eq!(
        breach.explanation.evidence[0].bound,
        "p95 ≤ 2000 (share above 2000 ≤ 0.05)"
    );
    // One in 50: p95 is 800 ms.
    assert!(
        run_with(50)
            .iter()
            .all(|d| d.kind != DecisionKind::CriterionBreached)
    );
}

/// Loads a policy for `support-bot` from its criteria and triggers.
fn policy_from(yaml: &str) -> Policy {
    let text = format!(
        "service: support-bot\n{yaml}\nrollout: {{steps: [{{share: 0.5, hold: 100d}}], promotion: manual}}\nsrm: off\n"
    );
    load_policy(&text, "test.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn tagged(
    ts: Time,
    version: &'static str,
    key: &'static str,
    value: &'static str,
    n: f64,
    x: f64,
) -> Event<'static> {
    let mut e = event(ts, version, "en", vec![("outputs", n), ("fail", x)]);
    e.segment = vec![(Cow::Borrowed(key), Cow::Borrowed(value))];
    e
}

#[test]
fn a_drift_breach_names_the_categories_that_moved() {
    let policy = policy_from(
        "signals:\n  topic: {category: data, kind: category}\n\
         criteria:\n  topics: {signal: topic, max_js: 0.1, window: 10m}\n\
         triggers:\n  moved: {when: topics, severity: minor, action: notify}",
    );
    let mut e = engine(policy, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    // Baseline: billing 60%, shipping 40%; the candidate asks about
    // shipping 80% of the time.
    for s in 0..600 {
        let ts = T0 + Dur::from_secs(s);
        for (version, billing, shipping) in [("v12", 6.0, 4.0), ("v13", 2.0, 8.0)] {
            e.observe(
                &tagged(ts, version, "topic", "billing", billing, 0.0),
                &mut out,
            )
            .unwrap();
            e.observe(
                &tagged(ts, version, "topic", "shipping", shipping, 0.0),
                &mut out,
            )
            .unwrap();
        }
    }
    let breach = out
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("the topic mix moved far beyond chance");
    let evidence = &breach.explanation.evidence[0];
    assert_eq!(
        evidence.bound,
        "Jensen–Shannon distance of topic vs the baseline ≤ 0.1"
    );
    let names: Vec<&str> = evidence.breakdown.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["billing", "shipping"]);
    let billing = &evidence.breakdown[0];
    assert!((billing.value - 0.2).abs() < 0.02 && (billing.reference.unwrap() - 0.6).abs() < 0.02);
    assert!(
        breach
            .explanation
            .summary
            .contains("by category: billing 20% vs 60%"),
        "{}",
        breach.explanation.summary
    );
}

#[test]
fn a_fairness_breach_names_every_segment_with_its_figure() {
    let policy = policy_from(
        "signals:\n  fail: {category: fairness, kind: rate}\n\
         criteria:\n  fair: {signal: fail, across: locale, max_ratio: 1.5, window: 30m}\n\
         triggers:\n  unfair: {when: fair, severity: major, action: pause_and_investigate}",
    );
    let mut e = engine(policy, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    // The candidate fails 4% of German outputs and 1% of English ones.
    for s in 0..1800 {
        let ts = T0 + Dur::from_secs(s);
        let (de_flags, en_flags) = if s % 5 == 0 { (2.0, 0.0) } else { (0.0, 0.0) };
        let en = if s % 10 == 0 { 1.0 } else { en_flags };
        e.observe(&tagged(ts, "v13", "locale", "de", 10.0, de_flags), &mut out)
            .unwrap();
        e.observe(&tagged(ts, "v13", "locale", "en", 10.0, en), &mut out)
            .unwrap();
        e.observe(&tagged(ts, "v12", "locale", "de", 10.0, 0.0), &mut out)
            .unwrap();
    }
    let fired = out
        .iter()
        .find(|d| d.kind == DecisionKind::TriggerFired)
        .expect("a 4× disparity over 18,000 outputs per locale is beyond chance");
    assert_eq!(fired.trigger.as_deref(), Some("unfair"));
    let evidence = &fired.explanation.evidence[0];
    assert_eq!(
        evidence.bound,
        "largest / smallest fail across locale ≤ 1.5"
    );
    let segments: Vec<(&str, f64)> = evidence
        .breakdown
        .iter()
        .map(|p| (p.name.as_str(), (p.value * 1000.0).round() / 1000.0))
        .collect();
    assert_eq!(segments, [("de", 0.04), ("en", 0.01)]);
    assert!(evidence.breakdown.iter().all(|p| p.interval.is_some()));
    // The statistic is how far apart the segments' intervals certainly are.
    assert_eq!(evidence.threshold, 1.5);
    assert!(evidence.statistic > 1.5, "{}", evidence.statistic);
    assert!(
        out.iter()
            .any(|d| d.action == Some(ripcord_core::ActionKind::PauseAndInvestigate))
    );
}

#[test]
fn after_promotion_a_relative_criterion_watches_for_a_change_from_its_level() {
    let text = "service: support-bot
signals:
  fail: {category: safety, kind: rate}
criteria:
  fail_rel: {signal: fail, max_ratio: 1.25}
triggers:
  revert: {when: fail_rel, severity: critical, action: rollback}
rollout: {steps: [{share: 0.5, hold: 1h}], watch_after_promotion: 7d, false_alarm_every: 30d, holdback: 0}
srm: off
";
    // `holdback: 0` opts out of the default holdback, so the promoted
    // candidate is watched against its own level (CUSUM).
    let policy = load_policy(text, "test.yaml").unwrap_or_else(|d| panic!("{d}"));
    let mut e = engine(policy, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    // 1% on both versions for the hour of the ramp, then 3% on the
    // promoted candidate from 90 minutes in.
    let mut promoted_at = None;
    for s in 0..4 * 3600 {
        let ts = T0 + Dur::from_secs(s);
        let share = e.status().map_or(0.5, |st| st.share);
        if share >= 1.0 && promoted_at.is_none() {
            promoted_at = Some(s);
        }
        let flags = |every: i64| if s % every == 0 { 1.0 } else { 0.0 };
        if share < 1.0 {
            e.observe(
                &tagged(ts, "v12", "locale", "en", 10.0, flags(10)),
                &mut out,
            )
            .unwrap();
        }
        let rate_every = if s >= 5400 { 3 } else { 10 };
        e.observe(
            &tagged(ts, "v13", "locale", "en", 10.0, flags(rate_every)),
            &mut out,
        )
        .unwrap();
        if out.iter().any(|d| d.kind == DecisionKind::TriggerFired) {
            break;
        }
    }
    // Promoted by the first event at 1 h; seen in the share from the next second.
    assert_eq!(promoted_at, Some(3601));
    let fired = out
        .iter()
        .find(|d| d.kind == DecisionKind::TriggerFired)
        .expect("a tripled rate after promotion is a change");
    let after_change = (fired.at - T0).0 / 1000 - 5400;
    assert!(
        (0..600).contains(&after_change),
        "{after_change} s after the change"
    );
    let evidence = &fired.explanation.evidence[0];
    assert!(evidence.test.starts_with("CUSUM"), "{}", evidence.test);
    assert!(evidence.statistic >= evidence.threshold);
    assert_eq!(evidence.baseline, None);
}
