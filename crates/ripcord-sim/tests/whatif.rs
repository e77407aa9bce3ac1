//! The what-if table on simulated streams with a fixed seed: an incident
//! (moderation failures ×3 from 20 minutes) and four releases without an
//! incident, two of them carrying a ×1.7 drift that nobody opened an
//! incident for (the current bound, 1.2, catches one of them within the
//! hour with `for: 1m`; 1.5 and 2.0 tolerate both). A tighter bound or
//! a shorter `for` detects no later and alarms no less often; the exact
//! figures are pinned for these seeds.

use ripcord_core::Dur;
use ripcord_core::engine::ShareSource;
use ripcord_core::ndjson::{Line, parse_line};
use ripcord_core::policy::{Scenario, load_policy};
use ripcord_core::whatif::{Item, Question, Stream, WhatIfError, what_if};
use ripcord_sim::generate_to;
use ripcord_sim::spec::Regression;
use ripcord_sim::traffic::TrafficSpec;

const POLICY: &str = "
service: support-bot
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel:
    signal: moderation_fail
    max_ratio: 1.2
    min_samples: 500
    window: 5m
    for: 1m
triggers:
  safety_regression:
    when: moderation_rel
    severity: critical
    action: {rollback: {stages: [{move_back: 1.0, verify_for: 1m}]}}
rollout:
  steps:
    - {share: 0.25, hold: 10h}
";

fn stream(seed: u64, regression: Option<&str>) -> Vec<String> {
    let spec = TrafficSpec {
        duration: Dur::from_mins(60),
        rate: 40.0,
        regressions: regression
            .map(|r| vec![Regression::parse(r).unwrap()])
            .unwrap_or_default(),
        ..TrafficSpec::new(Scenario::ConversationalAgent, seed)
    };
    let mut out = Vec::new();
    generate_to(spec, 0.25, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tighter_bounds_detect_sooner_and_alarm_more_often() {
    let policy = load_policy(POLICY, "policy.yaml").unwrap();
    let incident_lines = stream(11, Some("moderation_fail x3 from 20m"));
    let other_lines = [
        stream(21, None),
        stream(22, None),
        stream(23, Some("moderation_fail x1.7 from 10m")),
        stream(24, Some("moderation_fail x1.7 from 10m")),
    ];
    let incident = Stream::parse("incident", &incident_lines).unwrap();
    let others: Vec<Stream> = other_lines
        .iter()
        .enumerate()
        .map(|(i, l)| Stream::parse(&format!("release-{i}"), l).unwrap())
        .collect();
    let start = incident.start().unwrap();
    let question = Question {
        policy: &policy,
        criterion: "moderation_rel",
        trigger: "safety_regression",
        bounds: vec![1.1, 1.5, 2.0],
        sustains: vec![Dur::ZERO, Dur::from_mins(5)],
        incident: &incident,
        // The live engine fired 25 minutes in.
        detected_at: Some(start + Dur::from_mins(25)),
        others: &others,
        lateness: Dur::from_secs(30),
        share_source: ShareSource::Recorded,
    };
    let table = what_if(&question).unwrap();
    println!("{}", table.to_markdown());
    assert_eq!(table.bound_kind, "max_ratio");
    assert_eq!(table.others, 4);
    let grid: Vec<(f64, Dur, bool)> = table
        .rows
        .iter()
        .map(|r| (r.bound, r.sustain, r.current))
        .collect();
    assert_eq!(grid.len(), 12);
    assert_eq!(grid[3], (1.2, Dur::ZERO, false));
    assert_eq!(grid[4], (1.2, Dur::from_mins(1), true));
    assert_eq!(table.rows.iter().filter(|r| r.current).count(), 1);

    // Monotone in both directions, over the whole grid.
    let at = |b: usize, s: usize| &table.rows[b * 3 + s];
    let never = Dur(i64::MAX);
    for b in 0..4 {
        for s in 0..3 {
            let here = at(b, s);
            for (b2, s2) in [(b + 1, s), (b, s + 1)] {
                if b2 < 4 && s2 < 3 {
                    let looser = at(b2, s2);
                    assert!(here.detection.unwrap_or(never) <= looser.detection.unwrap_or(never));
                    assert!(here.false_alarms >= looser.false_alarms);
                }
            }
        }
    }
    let vs_start: Vec<Option<i64>> = table
        .rows
        .iter()
        .map(|r| r.detection.map(|d| d.0))
        .collect();
    let alarms: Vec<usize> = table.rows.iter().map(|r| r.false_alarms).collect();
    #[rustfmt::skip]
    let expected = [
        1_486_601, 1_777_939, 2_017_996, // 1.1: 0s, 1m, 5m
        1_801_581, 1_861_596, 2_101_608, // 1.2
        1_979_803, 2_053_902, 2_293_962, // 1.5
        2_498_331, 2_558_376, 3_078_838, // 2.0
    ];
    assert_eq!(vs_start, expected.map(Some));
    assert_eq!(alarms, [2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Against the live detection at 25m: only 1.1 without `for` is sooner.
    assert_eq!(at(0, 0).vs_actual_ms, Some(1_486_601 - 1_500_000));
    assert_eq!(at(1, 1).vs_actual_ms, Some(1_861_596 - 1_500_000));
    let markdown = table.to_markdown();
    assert!(markdown.starts_with("| max_ratio | for | detects after release start |"));
    assert!(markdown.contains("| 1.2 | 1m | 31m1.596s | +6m1.596s | 0 | ← current policy |\n"));
    assert!(markdown.contains("| 1.1 | 0s | 24m46.601s | −13.399s | 2 |  |\n"));
}

#[test]
fn questions_the_policy_cannot_answer_are_refused() {
    let policy = load_policy(POLICY, "policy.yaml").unwrap();
    let lines = vec![r#"{"ts":"2026-11-20T10:00:00Z","service":"support-bot"}"#.to_string()];
    let err = Stream::parse("incident", &lines).unwrap_err();
    assert!(
        matches!(&err, WhatIfError::Line { stream, line: 1, .. } if stream == "incident"),
        "{err}"
    );
    let incident = Stream::parse("incident", &[]).unwrap();
    let ask = |criterion, trigger, bounds: Vec<f64>| {
        what_if(&Question {
            policy: &policy,
            criterion,
            trigger,
            bounds,
            sustains: vec![],
            incident: &incident,
            detected_at: None,
            others: &[],
            lateness: Dur::from_secs(30),
            share_source: ShareSource::Recorded,
        })
    };
    assert_eq!(
        ask("nope", "safety_regression", vec![]).unwrap_err(),
        WhatIfError::UnknownCriterion("nope".into())
    );
    assert_eq!(
        ask("moderation_rel", "nope", vec![]).unwrap_err(),
        WhatIfError::UnknownTrigger("nope".into())
    );
    assert!(matches!(
        ask("moderation_rel", "safety_regression", vec![0.5]).unwrap_err(),
        WhatIfError::BadBound { value: 0.5, .. }
    ));
    // An empty stream never fires: one row, the current policy, "never".
    let table = ask("moderation_rel", "safety_regression", vec![]).unwrap();
    assert_eq!(table.rows.len(), 1);
    assert_eq!(
        (table.rows[0].detection, table.rows[0].vs_actual_ms),
        (None, None)
    );
    assert!(
        table
            .to_markdown()
            .contains("| 1.2 | 1m | never | — | 0 | ← current policy |")
    );
}

/// A server journal has no ramp lines: its stream replays closed loop, the
/// release declared at the start, with the journal's ticks between events.
#[test]
fn journal_streams_replay_closed_loop_with_their_ticks() {
    let policy = load_policy(POLICY, "policy.yaml").unwrap();
    let lines = stream(11, Some("moderation_fail x3 from 20m"));
    let mut items = Vec::new();
    let mut next_tick = None;
    for l in &lines {
        let line = parse_line(l.as_bytes()).unwrap();
        let ts = match &line {
            Line::Event(e) => Some(e.ts),
            _ => None,
        };
        if let (Some(ts), Some(tick)) = (ts, next_tick)
            && ts >= tick
        {
            items.push(Item::Tick(tick));
            next_tick = Some(tick + Dur::from_secs(1));
        }
        if next_tick.is_none() {
            next_tick = ts.map(|t| t + Dur::from_secs(1));
        }
        items.push(Item::Line(line));
    }
    let incident = Stream::new("incident", items);
    let table = what_if(&Question {
        policy: &policy,
        criterion: "moderation_rel",
        trigger: "safety_regression",
        bounds: vec![],
        sustains: vec![],
        incident: &incident,
        detected_at: None,
        others: &[],
        lateness: Dur::from_secs(30),
        share_source: ShareSource::Engine,
    })
    .unwrap();
    assert_eq!(table.rows.len(), 1);
    // The same instant as the open-loop replay of the same lines: with one
    // 25% step the engine's share is the recorded one, and at 40 events/s
    // the ticks between events end no `for` sooner.
    assert_eq!(table.rows[0].detection, Some(Dur(1_861_596)));
    // Without a real detection, the current policy's own is the reference.
    assert_eq!(table.rows[0].vs_actual_ms, Some(0));
}
