//! Policy tests, like `promtool test rules`: synthetic traffic per test, the
//! real engine driven closed loop, and the decisions expected within time
//! windows — and those that must not happen.
//!
//! ```yaml
//! policy: policy.yaml
//! tests:
//!   - name: a sustained regression rolls back in stages
//!     seed: 7
//!     duration: 2h
//!     rate: 50/s
//!     regressions: ["moderation_fail x3 from 40m"]
//!     expect:
//!       - {action: rollback_stage, within: [40m, 1h]}
//!       - {action: rollback_complete, before: 1h15m, share: 0}
//!     expect_not:
//!       - {action: promote}
//!     final_state: rolled_back
//! ```

use std::path::{Path, PathBuf};

use ripcord_core::engine::{Engine, EngineOptions, ShareSource, state_name};
use ripcord_core::policy::units::parse_duration;
use ripcord_core::policy::{Policy, Scenario};
use ripcord_core::{Decision, Dur, Release, Time};
use serde::Deserialize;

use crate::spec::{Gap, Regression, Spike, rate_per_second};
use crate::traffic::{Generator, Shape, TrafficSpec};

/// A test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The policy under test, relative to the test file.
    pub policy: PathBuf,
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Traffic model; default: the policy's scenario.
    #[serde(default)]
    pub scenario: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_duration")]
    pub duration: String,
    /// Mean events per second, e.g. `50/s`.
    #[serde(default = "default_rate")]
    pub rate: String,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub candidate: Option<String>,
    /// Segment mix by locale, e.g. `{en: 0.5, de: 0.5}` (weights).
    #[serde(default)]
    pub locales: Option<std::collections::BTreeMap<String, f64>>,
    /// Base rates replacing the scenario's, by signal field, e.g.
    /// `{moderation_fail: 0.01}` (both versions).
    #[serde(default)]
    pub base_rates: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    pub regressions: Vec<String>,
    #[serde(default)]
    pub spikes: Vec<String>,
    #[serde(default)]
    pub gaps: Vec<String>,
    /// A `timestamp,value` CSV whose shape the traffic follows.
    #[serde(default)]
    pub traffic_shape: Option<PathBuf>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    #[serde(default)]
    pub expect_not: Vec<Expectation>,
    #[serde(default)]
    pub final_state: Option<String>,
}

fn default_seed() -> u64 {
    1
}
fn default_duration() -> String {
    "2h".into()
}
fn default_rate() -> String {
    "50/s".into()
}

/// A decision pattern: every given field must match; times are offsets from
/// the start of the test.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub criterion: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    /// The candidate's share after the action.
    #[serde(default)]
    pub share: Option<f64>,
    /// `[from, to]`, inclusive.
    #[serde(default)]
    pub within: Option<[String; 2]>,
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The outcome of one test.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub failures: Vec<String>,
    pub decisions: Vec<Decision>,
    pub start: Time,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Parses a test file (`origin` names it in messages).
pub fn parse_test_file(text: &str, origin: &str) -> Result<TestFile, TestFileError> {
    serde_saphyr::from_str(text).map_err(|e| TestFileError::Invalid {
        file: origin.to_string(),
        message: e.to_string(),
    })
}

/// Where the policy of a test file is.
pub fn policy_path(test_file: &Path, file: &TestFile) -> PathBuf {
    test_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(&file.policy)
}

/// A time window in offsets from the start.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    from: Dur,
    to: Dur,
}

impl Expectation {
    fn span(&self) -> Result<Span, String> {
        let d = |s: &str| parse_duration(s);
        let mut span = Span {
            from: Dur(i64::MIN),
            to: Dur(i64::MAX),
        };
        if let Some([a, b]) = &self.within {
            span.from = d(a)?;
            span.to = d(b)?;
        }
        if let Some(b) = &self.before {
            span.to = span.to.min(d(b)?);
        }
        if let Some(a) = &self.after {
            span.from = span.from.max(d(a)?);
        }
        Ok(span)
    }

    /// Whether `d` matches every given field except the time.
    fn matches_kind(&self, d: &Decision) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.kind, Some(d.kind.as_str()))
            && eq(&self.action, d.action.map(|a| a.as_str()))
            && eq(&self.criterion, d.criterion.as_deref())
            && eq(&self.trigger, d.trigger.as_deref())
            && eq(&self.severity, d.severity.map(|s| s.as_str()))
            && self
                .share
                .is_none_or(|s| d.share.is_some_and(|got| (got - s).abs() < 1e-9))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in [
            ("kind", &self.kind),
            ("action", &self.action),
            ("criterion", &self.criterion),
            ("trigger", &self.trigger),
            ("severity", &self.severity),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name} {v}"));
            }
        }
        if let Some(s) = self.share {
            parts.push(format!("share {s}"));
        }
        if let Some([a, b]) = &self.within {
            parts.push(format!("within {a}–{b}"));
        }
        if let Some(b) = &self.before {
            parts.push(format!("before {b}"));
        }
        if let Some(a) = &self.after {
            parts.push(format!("after {a}"));
        }
        parts.join(", ")
    }
}

/// Runs one test against a policy; `base` resolves relative paths.
pub fn run_test(policy: &Policy, case: &TestCase, base: &Path) -> Outcome {
    let mut outcome = Outcome {
        name: case.name.clone(),
        failures: Vec::new(),
        decisions: Vec::new(),
        start: Time(0),
    };
    let spec = match traffic_of(policy, case, base) {
        Ok(s) => s,
        Err(e) => {
            outcome.failures.push(format!("invalid test: {e}"));
            return outcome;
        }
    };
    outcome.start = spec.start;
    let (decisions, engine) = drive(policy, spec);
    outcome.failures = check(case, &decisions, &engine, outcome.start);
    outcome.decisions = decisions;
    outcome
}

fn traffic_of(policy: &Policy, case: &TestCase, base: &Path) -> Result<TrafficSpec, String> {
    let scenario = match &case.scenario {
        Some(name) => Scenario::parse(name).ok_or_else(|| format!("unknown scenario {name:?}"))?,
        None => policy
            .scenario
            .ok_or("the policy has no scenario: give the test a `scenario` for its traffic")?,
    };
    let mut spec = TrafficSpec::new(scenario, case.seed);
    spec.service = policy.service.clone();
    spec.duration = parse_duration(&case.duration)?;
    spec.rate = rate_per_second(&case.rate)?;
    if let Some(b) = &case.baseline {
        spec.baseline = b.clone();
    }
    if let Some(c) = &case.candidate {
        spec.candidate = c.clone();
    }
    if let Some(mix) = &case.locales {
        let weights: Vec<(String, f64)> = mix.iter().map(|(k, v)| (k.clone(), *v)).collect();
        spec.set_locale_mix(&weights)?;
    }
    for (field, rate) in &case.base_rates {
        if !(0.0..=1.0).contains(rate) {
            return Err(format!("base_rates.{field}: must be in [0, 1], got {rate}"));
        }
        spec.base_rates.push((field.clone(), *rate));
    }
    let err = |e: crate::spec::SpecError| e.to_string();
    spec.regressions = case
        .regressions
        .iter()
        .map(|r| Regression::parse(r).map_err(err))
        .collect::<Result<_, _>>()?;
    spec.spikes = case
        .spikes
        .iter()
        .map(|s| Spike::parse(s).map_err(err))
        .collect::<Result<_, _>>()?;
    spec.gaps = case
        .gaps
        .iter()
        .map(|g| Gap::parse(g).map_err(err))
        .collect::<Result<_, _>>()?;
    if let Some(path) = &case.traffic_shape {
        let path = base.join(path);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        spec.shape = Shape::from_csv(&text)?;
    }
    for e in case.expect.iter().chain(&case.expect_not) {
        e.span()?;
    }
    Ok(spec)
}

/// Closed loop: every event is assigned at the engine's current share, and
/// the clock ticks every second, gaps included.
fn drive(policy: &Policy, spec: TrafficSpec) -> (Vec<Decision>, Engine) {
    let mut engine = Engine::new(
        policy.clone(),
        EngineOptions {
            share_source: ShareSource::Engine,
            ..EngineOptions::default()
        },
    );
    let mut decisions = Vec::new();
    let first_share = policy.rollout.steps.first().map_or(0.05, |s| s.share);
    engine.declare(
        &Release {
            ts: spec.start,
            service: spec.service.clone(),
            baseline: spec.baseline.clone(),
            candidate: spec.candidate.clone(),
            share: first_share,
        },
        &mut decisions,
    );
    let end = spec.start + spec.duration;
    let mut next_tick = spec.start + Dur::from_secs(1);
    let mut generator = Generator::new(spec);
    loop {
        let share = engine.status().map_or(first_share, |s| s.share_in_force);
        let Some(ev) = generator.next(share) else {
            break;
        };
        while next_tick <= ev.ts {
            engine.tick(next_tick, &mut decisions);
            next_tick = next_tick + Dur::from_secs(1);
        }
        let _ = engine.observe(&ev, &mut decisions);
    }
    while next_tick <= end {
        engine.tick(next_tick, &mut decisions);
        next_tick = next_tick + Dur::from_secs(1);
    }
    (decisions, engine)
}

fn check(case: &TestCase, decisions: &[Decision], engine: &Engine, start: Time) -> Vec<String> {
    let mut failures = Vec::new();
    let offset = |d: &Decision| d.at - start;
    for e in &case.expect {
        let Ok(span) = e.span() else { continue };
        let hit = decisions
            .iter()
            .any(|d| e.matches_kind(d) && (span.from..=span.to).contains(&offset(d)));
        if !hit {
            let near: Vec<String> = decisions
                .iter()
                .filter(|d| e.matches_kind(d))
                .take(3)
                .map(|d| format!("+{}", offset(d)))
                .collect();
            let seen = if near.is_empty() {
                "none happened".to_string()
            } else {
                format!("it happened at {} instead", near.join(", "))
            };
            failures.push(format!("expected {}: {seen}", e.describe()));
        }
    }
    for e in &case.expect_not {
        let Ok(span) = e.span() else { continue };
        if let Some(d) = decisions
            .iter()
            .find(|d| e.matches_kind(d) && (span.from..=span.to).contains(&offset(d)))
        {
            failures.push(format!(
                "must not happen: {}; it happened at +{}: {}",
                e.describe(),
                offset(d),
                d.explanation.summary
            ));
        }
    }
    if let Some(want) = &case.final_state {
        let got = engine.status().map_or("none", |s| state_name(&s.state));
        if got != want {
            failures.push(format!("expected final state {want}, got {got}"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::decision::Explanation;
    use ripcord_core::{ActionKind, DecisionKind};

    fn decision(secs: i64, action: ActionKind, share: f64) -> Decision {
        Decision {
            at: Time(secs * 1000),
            kind: DecisionKind::Action,
            service: "s".into(),
            release: "r".into(),
            criterion: None,
            trigger: None,
            severity: None,
            action: Some(action),
            share: Some(share),
            idempotency_key: None,
            explanation: Explanation {
                summary: format!("{} happened", action.as_str()),
                evidence: Vec::new(),
            },
        }
    }

    fn case(expect: Vec<Expectation>, expect_not: Vec<Expectation>) -> TestCase {
        let yaml = "name: t\n";
        let mut c: TestCase = serde_saphyr::from_str(yaml).unwrap();
        c.expect = expect;
        c.expect_not = expect_not;
        c
    }

    fn engine() -> Engine {
        let p =
            ripcord_core::policy::load_policy("service: s\nscenario: conversational-agent\n", "p")
                .unwrap();
        Engine::new(p, EngineOptions::default())
    }

    fn rollback_within(a: &str, b: &str) -> Expectation {
        Expectation {
            action: Some("rollback_stage".into()),
            within: Some([a.into(), b.into()]),
            ..Expectation::default()
        }
    }

    #[test]
    fn an_expected_decision_inside_its_window_passes() {
        let ds = [decision(2700, ActionKind::RollbackStage, 0.025)];
        let c = case(vec![rollback_within("40m", "50m")], vec![]);
        assert_eq!(check(&c, &ds, &engine(), Time(0)), Vec::<String>::new());
    }

    #[test]
    fn an_expected_decision_outside_its_window_says_when_it_happened() {
        let ds = [decision(4320, ActionKind::RollbackStage, 0.025)];
        let c = case(vec![rollback_within("40m", "50m")], vec![]);
        assert_eq!(
            check(&c, &ds, &engine(), Time(0)),
            vec!["expected action rollback_stage, within 40m–50m: it happened at +1h12m instead"]
        );
        let none = check(&c, &[], &engine(), Time(0));
        assert_eq!(
            none,
            vec!["expected action rollback_stage, within 40m–50m: none happened"]
        );
    }

    #[test]
    fn a_forbidden_decision_is_reported_with_its_time_and_reason() {
        let ds = [decision(1860, ActionKind::RollbackStage, 0.025)];
        let forbid = Expectation {
            action: Some("rollback_stage".into()),
            ..Expectation::default()
        };
        let c = case(vec![], vec![forbid]);
        assert_eq!(
            check(&c, &ds, &engine(), Time(0)),
            vec![
                "must not happen: action rollback_stage; it happened at +31m: rollback_stage happened"
            ]
        );
    }

    #[test]
    fn shares_and_final_states_are_checked() {
        let ds = [decision(100, ActionKind::RollbackComplete, 0.0)];
        let mut c = case(
            vec![Expectation {
                action: Some("rollback_complete".into()),
                share: Some(0.5),
                ..Expectation::default()
            }],
            vec![],
        );
        c.final_state = Some("rolled_back".into());
        assert_eq!(
            check(&c, &ds, &engine(), Time(0)),
            vec![
                "expected action rollback_complete, share 0.5: none happened",
                "expected final state rolled_back, got none",
            ]
        );
    }

    #[test]
    fn unknown_fields_in_a_test_file_are_errors_with_a_place() {
        let e = parse_test_file(
            "policy: p.yaml\ntests:\n  - name: t\n    expekt: []\n",
            "t.yaml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("t.yaml: "), "{text}");
        assert!(text.contains("expekt"), "{text}");
        assert!(text.contains("line 4"), "{text}");
    }
}
