//! Helpers: policies built in code (so these tests do not depend on the YAML
//! loader) and per-second bucketed traffic, which means exactly what the same
//! outputs one line each would mean.

use std::borrow::Cow;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ripcord_core::engine::{Engine, EngineOptions, ShareSource};
use ripcord_core::policy::*;
use ripcord_core::{Decision, Dur, Event, Release, Time};

pub const T0: Time = Time(1_795_000_000_000);

pub fn rate_signal(name: &str) -> Signal {
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

pub fn criterion(name: &str, signal: usize, bound: Bound) -> Criterion {
    Criterion {
        name: name.into(),
        signal,
        bound,
        quantile: None,
        confidence: 0.95,
        min_samples: 100,
        window: Dur::from_mins(10),
        sustain: Dur::ZERO,
        clear_for: Dur::from_mins(10),
        on_no_data: OnNoData::Hold,
        scope: Vec::new(),
        per: Per::Output,
        across: None,
        reference: None,
    }
}

pub fn rollback_trigger(name: &str, criterion: usize, stages: &[(f64, i64)]) -> Trigger {
    Trigger {
        name: name.into(),
        when: Condition::Criterion(criterion),
        severity: Severity::Critical,
        action: Action::Rollback {
            stages: stages
                .iter()
                .map(|(f, mins)| RollbackStage {
                    fraction: *f,
                    verify_for: Dur::from_mins(*mins),
                })
                .collect(),
        },
        approval: Approval::None,
    }
}

/// One rate signal `moderation_fail`, one relative criterion (≤ `max_ratio`
/// × baseline) and a two-stage rollback; a single 5% step held for `hold`.
pub fn relative_policy(max_ratio: f64) -> Policy {
    Policy {
        service: "support-bot".into(),
        scenario: None,
        signals: vec![rate_signal("moderation_fail")],
        criteria: vec![criterion("moderation_rel", 0, Bound::MaxRatio(max_ratio))],
        triggers: vec![rollback_trigger("safety", 0, &[(0.5, 2), (1.0, 2)])],
        rollout: Rollout {
            steps: vec![RolloutStep {
                share: 0.05,
                hold: Dur::from_mins(100_000),
            }],
            watch_after_promotion: Dur::from_mins(60),
            false_alarm_every: Dur::from_mins(30 * 24 * 60),
            holdback: 0.0,
            promotion: Promotion::Automatic,
        },
        // These tests send per-second buckets, not single outputs.
        srm: SrmCheck {
            count: SrmCount::Outputs,
            ..SrmCheck::default()
        },
        governance: Governance::default(),
        sources: Default::default(),
    }
}

/// Traffic of one run: per second, a bucket event per version.
pub struct Traffic {
    pub rng: StdRng,
    /// Outputs per second, both versions together.
    pub rate: f64,
    /// Baseline flag probability per output.
    pub p: f64,
    /// Candidate flag probability = p × ratio.
    pub ratio: f64,
}

impl Traffic {
    pub fn new(seed: u64, rate: f64, p: f64, ratio: f64) -> Traffic {
        Traffic {
            rng: StdRng::seed_from_u64(seed),
            rate,
            p,
            ratio,
        }
    }

    /// Draws one second of traffic at candidate share `share`; returns
    /// (candidate outputs, candidate flags, baseline outputs, baseline flags).
    pub fn second(&mut self, share: f64) -> (f64, f64, f64, f64) {
        let c_n = poisson(&mut self.rng, self.rate * share);
        let b_n = poisson(&mut self.rng, self.rate * (1.0 - share));
        let c_x = binomial(&mut self.rng, c_n, (self.p * self.ratio).min(1.0));
        let b_x = binomial(&mut self.rng, b_n, self.p);
        (c_n as f64, c_x as f64, b_n as f64, b_x as f64)
    }
}

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    // Knuth for small means, normal approximation above; good enough for traffic.
    if mean < 30.0 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= rng.random::<f64>();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    let z: f64 = normal(rng);
    (mean + z * mean.sqrt()).round().max(0.0) as u64
}

fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n as f64 * p < 30.0 {
        (0..n).filter(|_| rng.random::<f64>() < p).count() as u64
    } else {
        let mean = n as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        (mean + normal(rng) * sd).round().clamp(0.0, n as f64) as u64
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub fn engine(policy: Policy, source: ShareSource) -> Engine {
    Engine::new(
        policy,
        EngineOptions {
            lateness: Dur::from_secs(30),
            share_source: source,
            ..EngineOptions::default()
        },
    )
}

pub fn declare(engine: &mut Engine, at: Time, share: f64, out: &mut Vec<Decision>) {
    engine.declare(
        &Release {
            ts: at,
            service: "support-bot".into(),
            baseline: "v12".into(),
            candidate: "v13".into(),
            share,
        },
        out,
    );
}

pub fn bucket(
    ts: Time,
    version: &'static str,
    outputs: f64,
    field: &'static str,
    flagged: f64,
) -> Event<'static> {
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(version),
        unit: Cow::Borrowed("bucket"),
        segment: Vec::new(),
        values: vec![
            (Cow::Borrowed("outputs"), outputs),
            (Cow::Borrowed(field), flagged),
        ],
    }
}

/// Runs `seconds` of traffic through the engine in buckets of `step`
/// seconds, closed loop (the engine's share in force decides the split);
/// returns every decision.
pub fn run(
    engine: &mut Engine,
    traffic: &mut Traffic,
    field: &'static str,
    seconds: i64,
    step: i64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    let per_second = traffic.rate;
    traffic.rate = per_second * step as f64;
    for s in (step..=seconds).step_by(step as usize) {
        let ts = T0 + Dur::from_secs(s);
        let share = engine.status().map_or(0.0, |st| st.share_in_force);
        let (c_n, c_x, b_n, b_x) = traffic.second(share);
        if c_n > 0.0 {
            let _ = engine.observe(&bucket(ts, "v13", c_n, field, c_x), &mut out);
        }
        if b_n > 0.0 {
            let _ = engine.observe(&bucket(ts, "v12", b_n, field, b_x), &mut out);
        }
        engine.tick(ts, &mut out);
    }
    traffic.rate = per_second;
    out
}

pub fn kinds(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| match d.action {
            Some(a) => format!("{}:{}", d.kind.as_str(), a.as_str()),
            None => d.kind.as_str().to_string(),
        })
        .collect()
}

/// One score signal `utility` (lower is worse) and one criterion on it.
pub fn score_policy(bound: Bound) -> Policy {
    let mut p = relative_policy(1.0);
    p.srm.enabled = false;
    p.signals = vec![Signal {
        name: "utility".into(),
        category: Category::Quality,
        kind: SignalKind::Score {
            field: "utility".into(),
            min: 0.0,
            max: 1.0,
        },
        direction: Direction::LowerIsWorse,
        unit: None,
    }];
    p.criteria[0] = criterion("utility", 0, bound);
    p
}
