//! The policy language: every example and preset loads; every kind of
//! mistake is reported, all at once, with its place.

use proptest::prelude::*;
use ripcord_core::Dur;
use ripcord_core::policy::*;

fn example(name: &str) -> String {
    let path = format!(
        "{}/../../examples/{name}/policy.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn problems(source: &str) -> Vec<(usize, usize, String)> {
    match load_policy(source, "p.yaml") {
        Ok(_) => Vec::new(),
        Err(d) => d
            .items
            .into_iter()
            .map(|i| (i.line, i.column, i.message))
            .collect(),
    }
}

#[test]
fn the_example_policies_load() {
    for name in [
        "conversational-agent",
        "image-generator",
        "data-augmentation",
        "otlp",
        "prometheus",
    ] {
        let text = example(name);
        if let Err(d) = load_policy(&text, name) {
            panic!("{d}");
        }
    }
}

#[test]
fn rollout_steps_rise_and_hold_30m_unless_told() {
    let text = |steps: &str| {
        format!(
            "service: x\nsignals:\n  e: {{category: quality, kind: rate, denominator: outputs}}\n\
             criteria:\n  c: {{signal: e, absolute: 0.1}}\n\
             triggers:\n  t: {{when: c, action: pause}}\nrollout:\n  steps: {steps}\n"
        )
    };
    let p = load_policy(&text("[{share: 0.1}, {share: 0.5, hold: 1h}]"), "p.yaml")
        .unwrap_or_else(|d| panic!("{d}"));
    let steps: Vec<(f64, i64)> = p
        .rollout
        .steps
        .iter()
        .map(|s| (s.share, s.hold.0))
        .collect();
    assert_eq!(steps, [(0.1, 1_800_000), (0.5, 3_600_000)]);
    assert_eq!(
        problems(&text("[{share: 0.5}, {share: 0.2}]")),
        [(
            9,
            33,
            "shares must increase from step to step (0.5 then 0.2)".to_string()
        )]
    );
}

#[test]
fn every_preset_loads_on_its_own() {
    for s in Scenario::ALL {
        let text = format!("service: x\nscenario: {}\n", s.name());
        let p = load_policy(&text, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
        assert!(p.signals.len() >= 4 && !p.criteria.is_empty() && !p.triggers.is_empty());
    }
}

/// Whether `criterion` is baseline-relative for its signal: a ratio for
/// rates and latency quantiles, a difference on the worse side for scores;
/// on the whole traffic (no `where`, not `across` segments).
fn compares_with_the_baseline(signal: &Signal, c: &Criterion) -> bool {
    let whole = c.scope.is_empty() && c.across.is_none();
    let relative = match (&signal.kind, c.bound) {
        (SignalKind::Rate { .. }, Bound::MaxRatio(_)) => true,
        (SignalKind::Latency { .. }, Bound::MaxRatio(_)) => c.quantile.is_some(),
        (SignalKind::Score { .. }, Bound::MaxDecrease(_)) => {
            signal.direction == Direction::LowerIsWorse
        }
        (SignalKind::Score { .. }, Bound::MaxIncrease(_)) => {
            signal.direction == Direction::HigherIsWorse
        }
        _ => false,
    };
    whole && relative
}

fn uses(condition: &Condition, criterion: usize) -> bool {
    match condition {
        Condition::Criterion(i) => *i == criterion,
        Condition::All(cs) | Condition::Any(cs) | Condition::AtLeast { of: cs, .. } => {
            cs.iter().any(|c| uses(c, criterion))
        }
    }
}

/// Panics unless, for each rate, score and latency signal of `p`, a
/// trigger acts on a baseline-relative criterion about it.
fn assert_acts_on_baseline_comparisons(name: &str, p: &Policy) {
    for (i, signal) in p.signals.iter().enumerate() {
        if matches!(signal.kind, SignalKind::Category { .. }) {
            continue;
        }
        let acted_on = p.criteria.iter().enumerate().any(|(k, c)| {
            c.signal == i
                && compares_with_the_baseline(signal, c)
                && p.triggers.iter().any(|t| uses(&t.when, k))
        });
        assert!(
            acted_on,
            "{name}: no trigger acts on a baseline-relative criterion for `{}`",
            signal.name
        );
    }
}

#[test]
fn every_preset_and_example_compares_each_rate_score_and_latency_with_the_baseline() {
    for s in Scenario::ALL {
        let text = format!("service: x\nscenario: {}\n", s.name());
        let p = load_policy(&text, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
        assert_acts_on_baseline_comparisons(s.name(), &p);
        let p = load_policy(&example(s.name()), s.name()).unwrap_or_else(|d| panic!("{d}"));
        assert_acts_on_baseline_comparisons(&format!("examples/{}", s.name()), &p);
    }
}

#[test]
fn the_conversational_agent_example_says_what_it_means() {
    let p = load_policy(&example("conversational-agent"), "policy.yaml").unwrap();
    assert_eq!(p.service, "support-bot");
    assert_eq!(p.scenario, Some(Scenario::ConversationalAgent));
    let names: Vec<_> = p.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hallucination",
            "moderation_fail",
            "thumbs_down",
            "utility",
            "latency_ms",
            "error"
        ]
    );
    let moderation = &p.criteria[p.criterion_index("moderation_rel").unwrap()];
    assert_eq!(moderation.bound, Bound::MaxRatio(1.2));
    assert_eq!(moderation.min_samples, 500);
    assert_eq!(moderation.window, Dur::from_mins(5));
    assert_eq!(moderation.sustain, Dur::from_mins(1));
    assert_eq!(moderation.clear_for, Dur::from_mins(10));
    let thumbs = &p.criteria[p.criterion_index("thumbs_down_rel").unwrap()];
    assert_eq!(thumbs.per, Per::Unit);
    let safety = p
        .triggers
        .iter()
        .find(|t| t.name == "safety_regression")
        .unwrap();
    assert_eq!(safety.severity, Severity::Critical);
    assert_eq!(
        safety.action,
        Action::Rollback {
            stages: vec![
                RollbackStage {
                    fraction: 0.5,
                    verify_for: Dur::from_mins(2)
                },
                RollbackStage {
                    fraction: 1.0,
                    verify_for: Dur::from_mins(2)
                },
            ]
        }
    );
    let degraded = p
        .triggers
        .iter()
        .find(|t| t.name == "degraded_service")
        .unwrap();
    assert_eq!(
        degraded.approval,
        Approval::Role {
            role: "release_manager".into(),
            within: Dur::from_mins(15),
            on_timeout: OnTimeout::Proceed,
            quorum: 1,
        }
    );
    assert!(matches!(degraded.when, Condition::AtLeast { k: 2, .. }));
    assert_eq!(p.rollout.steps.len(), 3);
    assert_eq!(p.rollout.watch_after_promotion, Dur::from_mins(120));
}

#[test]
fn switching_off_a_criterion_a_preset_trigger_uses_says_what_to_do() {
    let src = "service: s\nscenario: conversational-agent\ncriteria:\n  utility_floor: off\n";
    let err = load_policy(src, "p.yaml").unwrap_err().to_string();
    assert_eq!(
        err,
        "p.yaml: error: unknown criterion `utility_floor` (in the scenario preset)\n  = at: triggers.quality_regression.when.of\n  = help: a trigger of the scenario preset uses it: switch that trigger off (`name: off`) or override it\n"
    );
}

#[test]
fn rate_sugar_means_the_same_rate() {
    for (text, rate) in [("3/10k", 0.0003), ("0.5%", 0.005), ("0.0003", 0.0003)] {
        let src = format!(
            "service: s\nsignals:\n  h: {{category: quality, kind: rate}}\ncriteria:\n  c: {{signal: h, absolute: {text}}}\n"
        );
        let p = load_policy(&src, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(p.criteria[0].bound, Bound::Absolute(rate));
    }
}

#[test]
fn a_policy_can_override_and_switch_off_preset_entries() {
    let src = "service: s\nscenario: conversational-agent\ncriteria:\n  moderation_rel: {signal: moderation_fail, max_ratio: 1.1}\n  utility_floor: off\ntriggers:\n  quality_regression: off\n";
    let p = load_policy(src, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    let m = &p.criteria[p.criterion_index("moderation_rel").unwrap()];
    assert_eq!(m.bound, Bound::MaxRatio(1.1));
    assert_eq!(
        m.window,
        Dur::from_mins(10),
        "the override replaces the whole entry"
    );
    assert!(p.criterion_index("utility_floor").is_none());
    assert!(p.triggers.iter().all(|t| t.name != "quality_regression"));
}

const BROKEN: &str = "\
service: support-bot
signals:
  hallucination: {category: quality, kind: rate, denominator: outputs}
  moderation_fail: {category: safty, kind: rate}
criteria:
  halluc_abs: {signal: hallucination, absolute: 3/10q}
  moderation: {signal: moderation_fails, max_ratio: 1.2, windw: 10m}
  late: {signal: hallucination, max_ratio: 1.2, for: 5 minutes, confidence: 1.5}
triggers:
  t1:
    when: {at_least: 3, of: [halluc_abs, moderation]}
    action: rollback
  t2:
    when: {any: [halluc_ab]}
    action: {rollback: {stages: [{move_back: 0.5}, {move_back: 0.4}]}}
rollout:
  steps: [{share: 0.05}, {share: 1.5}]
";

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    assert_eq!(
        problems(BROKEN),
        vec![
            (4, 31, "unknown value `safty`".to_string()),
            (6, 49, "invalid rate \"3/10q\": use a fraction (0.0003), a percentage (0.5%) or count/base (3/10k, 1/1M)".to_string()),
            (7, 24, "unknown signal `moderation_fails`".to_string()),
            (7, 58, "unknown field `windw`".to_string()),
            (8, 54, "invalid duration \"5 minutes\": use e.g. 30s, 10m, 1h30m, 500ms".to_string()),
            (8, 77, "must be between 0 and 1 (e.g. 0.95), got 1.5".to_string()),
            (11, 22, "at_least 3 of 2: must be between 1 and the length of `of`".to_string()),
            (14, 18, "unknown criterion `halluc_ab`".to_string()),
            (15, 52, "move_back must grow from stage to stage (0.5 then 0.4)".to_string()),
            (17, 34, "must be in (0, 1], got 1.5".to_string()),
        ]
    );
}

#[test]
fn the_report_shows_the_line_a_caret_and_a_suggestion() {
    let err = load_policy(BROKEN, "policy.yaml").unwrap_err().to_string();
    assert!(
        err.contains(
            "policy.yaml:7:58: error: unknown field `windw`\n  |\n7 |   moderation: {signal: moderation_fails, max_ratio: 1.2, windw: 10m}\n  |                                                          ^\n  = at: criteria.moderation\n  = help: did you mean `window`?\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("= help: did you mean `hallucination`?")
            || err.contains("did you mean `moderation_fail`?"),
        "{err}"
    );
    assert!(err.contains("= help: did you mean `safety`?"), "{err}");
    assert!(err.contains("= help: did you mean `halluc_abs`?"), "{err}");
}

#[test]
fn the_new_criterion_kinds_load_and_misplaced_bounds_are_named() {
    let src = "service: s
signals:
  lat: {category: operational, kind: latency}
  topic: {category: data, kind: category}
  fail: {category: safety, kind: rate}
criteria:
  p95: {signal: lat, quantile: 0.95, max_ratio: 1.15}
  topics: {signal: topic, max_psi: 0.2, reference: {billing: 3, shipping: 1}}
  fair: {signal: fail, across: locale, max_ratio: 1.5}
rollout: {false_alarm_every: 7d}
";
    let p = load_policy(src, "p.yaml").unwrap();
    assert_eq!(p.criteria[0].bound, Bound::MaxRatio(1.15));
    assert_eq!(
        p.criteria[1].reference,
        Some(vec![
            ("billing".to_string(), 0.75),
            ("shipping".to_string(), 0.25)
        ])
    );
    assert_eq!(p.criteria[2].across.as_deref(), Some("locale"));
    assert_eq!(p.rollout.false_alarm_every, Dur::from_mins(7 * 24 * 60));

    let wrong = "service: s
signals:
  topic: {category: data, kind: category}
  fail: {category: safety, kind: rate}
criteria:
  a: {signal: topic, max_ratio: 2}
  b: {signal: fail, across: locale, absolute: 0.1}
  c: {signal: fail, max_ratio: 2, reference: {x: 1}}
  d: {signal: topic, max_js: 1.5}
  e: {signal: topic, across: locale, max_js: 0.1}
";
    assert_eq!(
        problems(wrong),
        vec![
            (
                6,
                33,
                "`max_ratio` does not apply to this signal's kind".to_string()
            ),
            (
                7,
                47,
                "`absolute` does not apply to a criterion `across` segments".to_string()
            ),
            (
                8,
                46,
                "`reference` only applies to category signals".to_string()
            ),
            (9, 30, "must be below 1, got 1.5".to_string()),
            (
                10,
                6,
                "`across` applies to rate and score signals".to_string()
            ),
        ]
    );
}

#[test]
fn broken_yaml_is_reported_with_its_place() {
    let found = problems("service: x\ncriteria: {a: [1, 2}\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].2.starts_with("invalid YAML"), "{found:?}");
    assert_eq!(found[0].0, 2);
}

#[test]
fn a_billion_laughs_is_refused_not_expanded() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    src.push_str("service: x\n");
    let found = problems(&src);
    assert!(!found.is_empty());
}

#[test]
fn the_schema_names_every_field_the_loader_accepts() {
    let schema = policy_json_schema().to_string();
    for field in [
        "service",
        "scenario",
        "signals",
        "criteria",
        "triggers",
        "rollout",
        "srm",
        "category",
        "kind",
        "numerator",
        "denominator",
        "range",
        "direction",
        "absolute",
        "max_ratio",
        "max_increase",
        "max_decrease",
        "quantile",
        "confidence",
        "min_samples",
        "window",
        "\"for\"",
        "clear_for",
        "on_no_data",
        "where",
        "per",
        "when",
        "at_least",
        "severity",
        "action",
        "move_back",
        "verify_for",
        "approval",
        "on_timeout",
        "steps",
        "hold",
        "promotion",
        "watch_after_promotion",
        "quorum",
        "rights",
        "roles",
        "separation",
        "incidents",
        "ack",
        "escalation",
        "after",
        "channels",
        "template",
        "status_every",
        "playbooks",
        "owner",
        "checks",
        "templates",
        "audience",
        "subject",
        "body",
        "evidence",
        "sample",
        "redact",
        "drop",
        "hash",
        "after_rollback",
        "raw_events",
        "keep",
        "while_incident_open",
        "until_reviewed",
        "export",
        "\"to\"",
        "what",
        "decisions",
    ] {
        assert!(schema.contains(field), "schema lacks {field}");
    }
}

fn validate_against_schema(yaml: &str) -> Result<(), String> {
    let schema = policy_json_schema();
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn the_schema_is_valid_and_accepts_every_example_and_preset() {
    assert!(jsonschema::meta::is_valid(&policy_json_schema()));
    for name in [
        "conversational-agent",
        "image-generator",
        "data-augmentation",
        "otlp",
        "prometheus",
    ] {
        validate_against_schema(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for s in Scenario::ALL {
        let text = format!("service: x\nscenario: {}\n{}", s.name(), s.preset_yaml());
        validate_against_schema(&text).unwrap_or_else(|e| panic!("{}: {e}", s.name()));
    }
}

#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    for bad in [
        "service: x\ncriteria:\n  c: {signal: s, max_ratio: 1.2, windw: 10m}\n",
        "service: x\nrollout: {steps: [{share: 1.5}]}\n",
        "service: x\ntriggers:\n  t: {when: c, action: explode}\n",
        "servise: x\n",
        "service: x\nrights:\n  rollback: {roles: [rm], quorom: 2, within: 1m, on_timeout: hold}\n",
        "service: x\nrights:\n  rollback: {roles: [rm], quorum: 0, within: 1m, on_timeout: hold}\n",
        "service: x\nrights:\n  explode: {roles: [rm], within: 1m, on_timeout: hold}\n",
        "service: x\nplaybooks:\n  p: {steps: [{name: a, kind: check, owner: op, within: 1m, checks: [vibes]}]}\n",
        "service: x\ntemplates:\n  t: {audience: everyone, body: hi}\n",
        "service: x\nevidence: {redact: {drop: [\"a..b\"]}}\n",
    ] {
        assert!(
            validate_against_schema(bad).is_err(),
            "schema accepted {bad:?}"
        );
        assert!(
            load_policy(bad, "p.yaml").is_err(),
            "loader accepted {bad:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn no_text_makes_the_loader_panic(text in "\\PC{0,200}") {
        let _ = load_policy(&text, "p.yaml");
    }

    #[test]
    fn no_mutation_of_an_example_makes_the_loader_panic(
        edits in proptest::collection::vec((0usize..2000, "[ -~\n]"), 1..5)
    ) {
        let mut text: Vec<char> = BROKEN.chars().chain(example("conversational-agent").chars()).collect();
        for (at, s) in edits {
            let at = at % text.len();
            text[at] = s.chars().next().unwrap_or(' ');
        }
        let text: String = text.into_iter().collect();
        let _ = load_policy(&text, "p.yaml");
    }
}

/// The YAML blocks of a document that are whole policies (start with `service:`).
fn policies_in(doc: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(format!("{}/../../{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.starts_with("service:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_policies_in_the_readme_and_the_reference_are_valid() {
    let mut checked = 0;
    for doc in ["README.md", "docs/policy.md"] {
        for block in policies_in(doc) {
            if let Err(d) = load_policy(&block, doc) {
                panic!("{d}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn a_holdback_is_a_small_share_of_units_named_with_its_place_when_wrong() {
    let holdback = |text: &str| load_policy(text, "p.yaml").unwrap().rollout.holdback;
    let ok = "service: s\nscenario: conversational-agent\nrollout: {holdback: 0.05}\n";
    assert_eq!(holdback(ok), 0.05);
    // The preset compares with the baseline: 2% stay on it after promotion.
    let default = "service: s\nscenario: conversational-agent\n";
    assert_eq!(holdback(default), 0.02);
    let opt_out = "service: s\nscenario: conversational-agent\nrollout: {holdback: 0}\n";
    assert_eq!(holdback(opt_out), 0.0);
    let unwatched =
        "service: s\nscenario: conversational-agent\nrollout: {watch_after_promotion: 0s}\n";
    assert_eq!(holdback(unwatched), 0.0);
    // Absolute bounds only: nothing to compare with, nothing held back.
    let absolute = "service: s\nsignals:\n  fail: {category: safety, kind: rate}\n\
        criteria:\n  c: {signal: fail, absolute: 0.01}\n";
    assert_eq!(holdback(absolute), 0.0);
    let wrong = "service: s\nscenario: conversational-agent\nrollout: {holdback: 0.7}\n";
    assert_eq!(
        problems(wrong),
        vec![(
            3,
            21,
            "must be a share of units in [0, 0.5] (e.g. 0.02), got 0.7".to_string()
        )]
    );
}

#[test]
fn otlp_sources_load_and_their_mistakes_are_placed() {
    let base = "service: s\nsignals:\n  hallucination: {category: safety, kind: rate, denominator: judged}\n  utility: {category: quality, kind: score, range: [0, 1]}\n  latency_ms: {category: operational, kind: latency}\ncriteria:\n  h: {signal: hallucination, max_ratio: 1.2}\ntriggers:\n  t: {when: h, severity: critical, action: pause}\n";
    let good = format!(
        "{base}sources:\n  otlp:\n    version: [gen_ai.request.model, service.version]\n    unit: user.id\n    segment: {{locale: user.locale}}\n    evaluations:\n      groundedness: {{signal: hallucination, flag: [ungrounded]}}\n      relevance: {{signal: utility}}\n"
    );
    let p = load_policy(&good, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    let o = &p.sources.otlp;
    assert_eq!(o.version, ["gen_ai.request.model", "service.version"]);
    assert_eq!(o.unit, ["user.id"]);
    assert_eq!(
        o.segment,
        [("locale".to_string(), "user.locale".to_string())]
    );
    assert_eq!(o.evaluations.len(), 2);
    assert_eq!(o.evaluations[0].flag, ["ungrounded"]);
    // Without `sources`, the conventional defaults.
    let plain = load_policy(base, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(plain.sources.otlp.version, ["service.version"]);
    let bad = format!(
        "{base}sources:\n  otlp:\n    versoin: x\n    evaluations:\n      g: {{signal: halucination}}\n      l: {{signal: latency_ms}}\n"
    );
    assert_eq!(
        problems(&bad),
        [
            (12, 5, "unknown field `versoin`".to_string()),
            (14, 19, "unknown signal `halucination`".to_string()),
            (
                15,
                19,
                "signal `latency_ms` is neither a rate nor a score".to_string()
            ),
        ]
    );
}

#[test]
fn prometheus_sources_load_and_their_mistakes_are_placed() {
    let base = "service: s\nsrm: {count: outputs}\nsignals:\n  hallucination: {category: safety, kind: rate}\n  error: {category: operational, kind: rate}\n  utility: {category: quality, kind: score, range: [0, 1]}\ncriteria:\n  h: {signal: hallucination, max_ratio: 1.2}\ntriggers:\n  t: {when: h, severity: critical, action: pause}\n";
    let good = format!(
        "{base}sources:\n  prometheus:\n    url: http://127.0.0.1:9090/\n    step: 15s\n    version_label: model_version\n    counters:\n      outputs: genai_outputs_total{{job=\"chat\"}}\n      hallucination: genai_hallucinations_total{{job=\"chat\"}}\n"
    );
    let p = load_policy(&good, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    let s = p.sources.prometheus.as_ref().expect("a prometheus source");
    assert_eq!(s.url, "http://127.0.0.1:9090");
    assert_eq!(s.step, ripcord_core::Dur(15_000));
    assert_eq!(s.version_label, "model_version");
    let counters: Vec<(&str, &str, &str)> = s
        .counters
        .iter()
        .map(|c| {
            (
                c.field.as_str(),
                c.selector.as_str(),
                c.denominator.as_str(),
            )
        })
        .collect();
    assert_eq!(
        counters,
        [
            ("outputs", "genai_outputs_total{job=\"chat\"}", "outputs"),
            (
                "hallucination",
                "genai_hallucinations_total{job=\"chat\"}",
                "outputs"
            ),
        ]
    );
    // The defaults: a 30 s step and the `version` label; none without the section.
    let short = format!(
        "{base}sources:\n  prometheus:\n    url: https://prom.example\n    counters: {{outputs: o_total, error: e_total}}\n"
    );
    let p = load_policy(&short, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    let s = p.sources.prometheus.as_ref().expect("a prometheus source");
    assert_eq!(
        (s.step, s.version_label.as_str()),
        (ripcord_core::Dur(30_000), "version")
    );
    assert_eq!(
        load_policy(base, "p.yaml").map(|p| p.sources.prometheus),
        Ok(None)
    );

    let bad = format!(
        "{base}sources:\n  prometheus:\n    url: prometheus:9090\n    step: 100ms\n    version_label: model-version\n    counters:\n      hallucinations: h_total\n      error: rate(e_total[5m])\n      utility: u_total\n"
    );
    assert_eq!(
        problems(&bad),
        [
            (13, 10, "\"prometheus:9090\" must start with http:// or https://".to_string()),
            (14, 11, "must be between 1s and 1h".to_string()),
            (
                15,
                20,
                "\"model-version\" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                    .to_string()
            ),
            (
                17,
                7,
                "`hallucinations` is neither the numerator nor the denominator of a rate signal"
                    .to_string()
            ),
            (
                18,
                14,
                "`rate(e_total[5m])` is not a counter selector: unexpected `(` (functions, ranges and operators are not taken)"
                    .to_string()
            ),
            (
                19,
                7,
                "`utility` is neither the numerator nor the denominator of a rate signal"
                    .to_string()
            ),
        ]
    );
    // A numerator needs its denominator's counter; counters carry no units.
    let lonely = format!(
        "{}sources:\n  prometheus:\n    url: http://p:9090\n    counters: {{hallucination: h_total}}\n",
        base.replace("srm: {count: outputs}\n", "")
    );
    assert_eq!(
        problems(&lonely),
        [
            (
                12,
                5,
                "counters carry no units, so the sample-ratio check cannot count units".to_string()
            ),
            (
                13,
                16,
                "`hallucination` counts flags over `outputs`, which has no counter here"
                    .to_string()
            ),
        ]
    );
}
