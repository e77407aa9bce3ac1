//! Engine throughput without parsing: how many events a second `observe`
//! takes for a conversational-agent-like policy. Prints its figures.
//!
//! `cargo bench -p ripcord-core --bench engine` (set `RIPCORD_BENCH_EVENTS`
//! to change the count; default 2,000,000).

use std::borrow::Cow;
use std::time::Instant;

use ripcord_core::engine::{Engine, EngineOptions, ShareSource};
use ripcord_core::policy::*;
use ripcord_core::{Dur, Event, Release, Time};

fn rate(name: &str) -> Signal {
    Signal {
        name: name.into(),
        category: Category::Safety,
        kind: SignalKind::Rate {
            numerator: name.into(),
            denominator: "outputs".into(),
        },
        direction: Direction::HigherIsWorse,
        unit: None,
    }
}

fn criterion(name: &str, signal: usize, bound: Bound) -> Criterion {
    Criterion {
        name: name.into(),
        signal,
        bound,
        quantile: None,
        confidence: 0.95,
        min_samples: 100,
        window: Dur::from_mins(10),
        sustain: Dur::from_mins(2),
        clear_for: Dur::from_mins(10),
        on_no_data: OnNoData::Hold,
        scope: Vec::new(),
        per: Per::Output,
        across: None,
        reference: None,
    }
}

fn policy() -> Policy {
    let mut signals = vec![
        rate("hallucination"),
        rate("moderation_fail"),
        rate("error"),
    ];
    signals.push(Signal {
        name: "latency_ms".into(),
        category: Category::Operational,
        kind: SignalKind::Latency {
            field: "latency_ms".into(),
        },
        direction: Direction::HigherIsWorse,
        unit: None,
    });
    signals.push(Signal {
        name: "utility".into(),
        category: Category::Quality,
        kind: SignalKind::Score {
            field: "utility".into(),
            min: 0.0,
            max: 1.0,
        },
        direction: Direction::LowerIsWorse,
        unit: None,
    });
    let criteria = vec![
        criterion("hallucination_rel", 0, Bound::MaxRatio(1.25)),
        criterion("moderation_rel", 1, Bound::MaxRatio(1.2)),
        criterion("error_abs", 2, Bound::Absolute(0.02)),
        Criterion {
            quantile: Some(0.95),
            ..criterion("latency_p95", 3, Bound::Absolute(2500.0))
        },
        criterion("utility_floor", 4, Bound::Absolute(0.6)),
    ];
    Policy {
        service: "support-bot".into(),
        scenario: None,
        signals,
        criteria,
        triggers: vec![Trigger {
            name: "any".into(),
            when: Condition::Any((0..5).map(Condition::Criterion).collect()),
            severity: Severity::Critical,
            action: Action::Notify,
            approval: Approval::None,
        }],
        rollout: Rollout {
            steps: vec![RolloutStep {
                share: 0.1,
                hold: Dur::from_mins(1_000_000),
            }],
            watch_after_promotion: Dur::ZERO,
            false_alarm_every: Dur::from_mins(30 * 24 * 60),
            holdback: 0.0,
            promotion: Promotion::Manual,
        },
        srm: SrmCheck::default(),
        governance: Governance::default(),
        sources: Default::default(),
    }
}

fn main() {
    let n: usize = std::env::var("RIPCORD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let t0 = Time(1_795_000_000_000);
    let units: Vec<String> = (0..5000).map(|i| format!("u-{i}")).collect();
    let events: Vec<Event<'_>> = (0..n)
        .map(|i| {
            let candidate = i % 10 == 0;
            Event {
                ts: t0 + Dur((i / 50) as i64 * 1000 + (i % 50) as i64 * 20),
                service: Cow::Borrowed("support-bot"),
                version: Cow::Borrowed(if candidate { "v13" } else { "v12" }),
                unit: Cow::Borrowed(units[i % units.len()].as_str()),
                segment: vec![(Cow::Borrowed("locale"), Cow::Borrowed("en"))],
                values: vec![
                    (Cow::Borrowed("outputs"), 1.0),
                    (Cow::Borrowed("hallucination"), (i % 2000 == 7) as u8 as f64),
                    (
                        Cow::Borrowed("moderation_fail"),
                        (i % 200 == 3) as u8 as f64,
                    ),
                    (Cow::Borrowed("error"), (i % 300 == 5) as u8 as f64),
                    (Cow::Borrowed("latency_ms"), 600.0 + (i % 97) as f64 * 10.0),
                    (Cow::Borrowed("utility"), 0.6 + (i % 7) as f64 * 0.05),
                ],
            }
        })
        .collect();
    let mut engine = Engine::new(
        policy(),
        EngineOptions {
            lateness: Dur::from_secs(30),
            share_source: ShareSource::Recorded,
            ..EngineOptions::default()
        },
    );
    let mut out = Vec::new();
    engine.declare(
        &Release {
            ts: t0,
            service: "support-bot".into(),
            baseline: "v12".into(),
            candidate: "v13".into(),
            share: 0.1,
        },
        &mut out,
    );
    let start = Instant::now();
    let mut accepted = 0usize;
    for e in &events {
        if engine.observe(e, &mut out).is_ok() {
            accepted += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "engine.observe: {n} events ({accepted} accepted, {} decisions) in {secs:.3} s = {:.0} events/s",
        out.len(),
        n as f64 / secs
    );
}
