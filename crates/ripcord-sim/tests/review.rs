//! The threshold review over 20 simulated releases, one of which carries a
//! regression (moderation failures ×3 from 5 minutes, which the current
//! bound, 2.0, let through and people rolled back): the review proposes a
//! tighter bound, and that bound's numbers (which releases
//! breach, when, false alarms, detections) are those of replaying the same
//! releases through the engine directly with the policy file edited to the
//! proposed bound.

use ripcord_core::engine::{Engine, EngineOptions, ShareSource};
use ripcord_core::ndjson::{Line, parse_line};
use ripcord_core::policy::{Scenario, load_policy};
use ripcord_core::review::{Input, Labelled, Outcome, review};
use ripcord_core::whatif::Stream;
use ripcord_core::{DecisionKind, Dur};
use ripcord_sim::generate_to;
use ripcord_sim::spec::Regression;
use ripcord_sim::traffic::TrafficSpec;

const POLICY: &str = "
service: support-bot
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
  error: {category: quality, kind: rate, denominator: outputs}
criteria:
  moderation_rel:
    signal: moderation_fail
    max_ratio: 2.0
    min_samples: 300
    window: 5m
    for: 1m
  errors:
    signal: error
    absolute: 2%
    window: 5m
    for: 1m
triggers:
  safety_regression:
    when: moderation_rel
    severity: critical
    action: {rollback: {stages: [{move_back: 1.0, verify_for: 1m}]}}
  degraded:
    when: errors
    severity: major
    action: pause
rollout:
  steps:
    - {share: 0.5, hold: 10h}
";

const REGRESSED: usize = 13;

fn lines(seed: u64, regression: Option<&str>) -> Vec<String> {
    let spec = TrafficSpec {
        duration: Dur::from_mins(15),
        rate: 20.0,
        regressions: regression
            .map(|r| vec![Regression::parse(r).unwrap()])
            .unwrap_or_default(),
        ..TrafficSpec::new(Scenario::ConversationalAgent, seed)
    };
    let mut out = Vec::new();
    generate_to(spec, 0.5, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The first breach of `criterion`, in ms from the stream's start, replaying
/// with the policy as loaded (its triggers included).
fn first_breach(policy_yaml: &str, criterion: &str, stream: &[String]) -> Option<i64> {
    let policy = load_policy(policy_yaml, "policy.yaml").unwrap();
    let options = EngineOptions {
        lateness: Dur::from_secs(30),
        share_source: ShareSource::Recorded,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(policy, options);
    let mut out = Vec::new();
    let mut start = None;
    for l in stream {
        match parse_line(l.as_bytes()).unwrap() {
            Line::Release(r) => {
                start.get_or_insert(r.ts);
                engine.declare(&r, &mut out)
            }
            Line::Event(e) => _ = engine.observe(&e, &mut out),
            Line::Blank => {}
        }
    }
    let now = engine.now();
    engine.tick(now, &mut out);
    out.iter()
        .find(|d| {
            d.kind == DecisionKind::CriterionBreached && d.criterion.as_deref() == Some(criterion)
        })
        .map(|d| (d.at - start.unwrap()).0)
}

#[test]
fn a_review_of_twenty_releases_proposes_a_bound_its_replay_confirms() {
    let policy = load_policy(POLICY, "policy.yaml").unwrap();
    let all: Vec<Vec<String>> = (0..20)
        .map(|i| {
            let regression = (i == REGRESSED).then_some("moderation_fail x3 from 5m");
            lines(500 + i as u64, regression)
        })
        .collect();
    let releases: Vec<Labelled> = all
        .iter()
        .enumerate()
        .map(|(i, l)| Labelled {
            stream: Stream::parse(&format!("support-bot-{}", i + 1), l).unwrap(),
            outcome: if i == REGRESSED {
                Outcome::Bad
            } else {
                Outcome::Good
            },
        })
        .collect();
    let r = review(&Input {
        policy: &policy,
        releases: &releases,
        lateness: Dur::from_secs(30),
        share_source: ShareSource::Recorded,
        max_items: 1_000_000,
    });
    assert_eq!((r.good, r.bad, r.releases.len()), (19, 1, 20));
    assert!(r.truncated.is_empty());
    let moderation = &r.criteria[0];
    assert_eq!(moderation.criterion, "moderation_rel");
    assert_eq!(moderation.bound_kind, "max_ratio");
    let bounds: Vec<f64> = moderation.rows.iter().map(|r| r.bound).collect();
    assert_eq!(bounds, [1.5, 1.75, 2.0, 2.25, 2.5, 3.0]);
    for row in &moderation.rows {
        println!("{row:?}");
    }
    let s = moderation.suggestion.as_ref().expect("a proposed bound");
    println!("{}", s.effect);
    assert_eq!(s.from, 2.0);
    assert!(
        s.to < 2.0,
        "the regression is caught sooner by a tighter bound"
    );

    // The proposed bound, written into the policy file and replayed.
    let edited = POLICY.replace("max_ratio: 2.0", &format!("max_ratio: {}", s.to));
    let proposed = moderation.rows.iter().find(|r| r.bound == s.to).unwrap();
    let current = moderation.rows.iter().find(|r| r.current).unwrap();
    let direct: Vec<Option<i64>> = all
        .iter()
        .map(|l| first_breach(&edited, "moderation_rel", l))
        .collect();
    assert_eq!(proposed.breaches, direct);
    let false_alarms = (0..20)
        .filter(|i| *i != REGRESSED && direct[*i].is_some())
        .count();
    assert_eq!(proposed.false_alarms, false_alarms);
    assert_eq!(proposed.false_alarms, 0);
    assert_eq!(proposed.detections, 1);
    assert_eq!(proposed.detection_ms_max, direct[REGRESSED]);
    let now: Vec<Option<i64>> = all
        .iter()
        .map(|l| first_breach(POLICY, "moderation_rel", l))
        .collect();
    assert_eq!(current.breaches, now);
    // The current bound let the regression through (people rolled it back):
    // the proposal is what would have caught it.
    assert_eq!(now[REGRESSED], None);
    assert_eq!((current.false_alarms, current.detections), (0, 0));
    assert!(direct[REGRESSED].is_some());

    // Each release's closest approach to the current bound: the regression
    // crossed it, the others stayed below.
    let approaches = &moderation.approaches;
    assert_eq!(approaches.len(), 20);
    assert_eq!(approaches[REGRESSED].outcome, Outcome::Bad);
    assert_eq!(approaches[REGRESSED].breached_after_ms, None);
    let peak = |i: usize| approaches[i].peak_evidence.unwrap();
    assert!(peak(REGRESSED) < 1.0, "it never crossed the current bound");
    for (i, a) in approaches.iter().enumerate() {
        if i != REGRESSED {
            assert!(peak(i) < peak(REGRESSED), "{a:?}");
            assert_eq!(a.outcome, Outcome::Good);
            assert!(a.limit.is_some() && a.estimate.is_some(), "{a:?}");
        }
    }
}
