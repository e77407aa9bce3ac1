//! Presets for the three seed scenarios: default signals, criteria and
//! triggers, written in the policy language itself and merged under the
//! policy's own entries (which replace a default of the same name, or switch
//! it off with `name: off`).
//!
//! Every preset compares the candidate with its baseline on each rate,
//! score and latency signal it declares (`max_ratio`, `max_decrease` /
//! `max_increase`, `quantile` with `max_ratio`), and a trigger acts on that
//! comparison, so a candidate clearly worse than the baseline on any of
//! them is caught without the policy adding anything; absolute floors and
//! ceilings come on top. `tests/policy.rs` checks it.

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scenario {
    ConversationalAgent,
    ImageGenerator,
    DataAugmentation,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::ConversationalAgent,
        Scenario::ImageGenerator,
        Scenario::DataAugmentation,
    ];

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::ConversationalAgent => "conversational-agent",
            Scenario::ImageGenerator => "image-generator",
            Scenario::DataAugmentation => "data-augmentation",
        }
    }

    /// The preset, in the policy language.
    pub fn preset_yaml(self) -> &'static str {
        match self {
            Scenario::ConversationalAgent => CONVERSATIONAL_AGENT,
            Scenario::ImageGenerator => IMAGE_GENERATOR,
            Scenario::DataAugmentation => DATA_AUGMENTATION,
        }
    }
}

const CONVERSATIONAL_AGENT: &str = r#"
signals:
  hallucination: {category: quality, kind: rate, denominator: outputs, unit: per 10k outputs}
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
  thumbs_down: {category: user_experience, kind: rate, denominator: feedback}
  utility: {category: quality, kind: score, range: [0, 1], direction: lower_is_worse}
  latency_ms: {category: operational, kind: latency, unit: ms}
  error: {category: operational, kind: rate, denominator: outputs}
criteria:
  hallucination_rel: {signal: hallucination, max_ratio: 1.25, window: 30m, for: 2m}
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, window: 10m, for: 1m}
  thumbs_down_rel: {signal: thumbs_down, max_ratio: 1.3, per: unit, window: 30m, for: 5m}
  utility_floor: {signal: utility, absolute: 0.6, window: 10m, for: 5m}
  utility_drop: {signal: utility, max_decrease: 0.03, window: 30m, for: 5m}
  latency_p95: {signal: latency_ms, quantile: 0.95, absolute: 2500, window: 5m, for: 2m}
  latency_p95_rel: {signal: latency_ms, quantile: 0.95, max_ratio: 1.2, window: 10m, for: 5m}
  error_rate: {signal: error, absolute: 2%, window: 5m, for: 1m}
  error_rel: {signal: error, max_ratio: 1.5, window: 10m, for: 2m}
triggers:
  safety_regression:
    when: {any: [moderation_rel, hallucination_rel]}
    severity: critical
    action: {rollback: {stages: [{move_back: 0.5, verify_for: 2m}, {move_back: 1.0, verify_for: 2m}]}}
  quality_regression:
    when: {at_least: 2, of: [thumbs_down_rel, utility_floor, error_rate, latency_p95]}
    severity: major
    action: pause
  worse_than_baseline:
    when: {any: [utility_drop, latency_p95_rel, error_rel]}
    severity: major
    action: pause
"#;

const IMAGE_GENERATOR: &str = r#"
signals:
  unsafe_image: {category: safety, kind: rate, denominator: outputs}
  prompt_adherence: {category: quality, kind: score, range: [0, 1], direction: lower_is_worse}
  regenerate: {category: user_experience, kind: rate, denominator: outputs}
  generation_latency_ms: {category: operational, kind: latency, unit: ms}
criteria:
  unsafe_image_rel: {signal: unsafe_image, max_ratio: 1.2, window: 10m, for: 1m}
  unsafe_image_abs: {signal: unsafe_image, absolute: 1/1k, window: 30m, for: 2m}
  prompt_adherence_drop: {signal: prompt_adherence, max_decrease: 0.05, window: 10m, for: 5m}
  regenerate_rel: {signal: regenerate, max_ratio: 1.25, per: unit, window: 15m, for: 5m}
  generation_latency_p95: {signal: generation_latency_ms, quantile: 0.95, absolute: 12000, window: 5m, for: 2m}
  generation_latency_rel: {signal: generation_latency_ms, quantile: 0.95, max_ratio: 1.2, window: 10m, for: 5m}
triggers:
  unsafe_images:
    when: {any: [unsafe_image_rel, unsafe_image_abs]}
    severity: critical
    action: {rollback: {stages: [{move_back: 0.5, verify_for: 2m}, {move_back: 1.0, verify_for: 2m}]}}
  worse_images:
    when: {any: [prompt_adherence_drop, regenerate_rel]}
    severity: major
    action: pause
  slow_generation:
    when: generation_latency_p95
    severity: minor
    action: notify
  slower_than_baseline:
    when: generation_latency_rel
    severity: major
    action: pause
"#;

const DATA_AUGMENTATION: &str = r#"
signals:
  schema_invalid: {category: quality, kind: rate, denominator: outputs}
  duplicate: {category: data, kind: rate, denominator: outputs}
  label_accuracy: {category: data, kind: score, range: [0, 1], direction: lower_is_worse, unit: accuracy on the golden set}
  pii_leak: {category: safety, kind: rate, denominator: outputs}
criteria:
  schema_invalid_rel: {signal: schema_invalid, max_ratio: 1.5, window: 10m, for: 2m}
  duplicate_abs: {signal: duplicate, absolute: 5%, window: 10m, for: 5m}
  duplicate_rel: {signal: duplicate, max_ratio: 1.5, window: 10m, for: 5m}
  label_accuracy_drop: {signal: label_accuracy, max_decrease: 0.03, window: 30m, for: 5m}
  pii_leak_abs: {signal: pii_leak, absolute: 1/100k, window: 1h, for: 0s}
  pii_leak_rel: {signal: pii_leak, max_ratio: 1.2, window: 1h, for: 0s}
triggers:
  pii_leak:
    when: {any: [pii_leak_abs, pii_leak_rel]}
    severity: critical
    action: rollback
  bad_data:
    when: {any: [schema_invalid_rel, label_accuracy_drop]}
    severity: major
    action: {rollback: {stages: [{move_back: 0.5, verify_for: 5m}, {move_back: 1.0, verify_for: 5m}]}}
  duplicates:
    when: duplicate_abs
    severity: minor
    action: notify
  more_duplicates:
    when: duplicate_rel
    severity: major
    action: pause
"#;
