//! The JSON Schema of the policy format (draft 2020-12), written by hand to
//! mirror `load.rs` exactly: the loader walks YAML by hand to report every
//! problem, so there is no serde type to derive it from. A test checks that
//! every field the loader accepts appears here.

use serde_json::{Value, json};

pub fn schema() -> Value {
    let duration = json!({"type": "string", "pattern": "^([0-9.]+(ms|s|m|h|d))+$|^0$",
        "description": "A duration such as 30s, 10m, 1h30m"});
    let rate = json!({"anyOf": [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "string", "pattern": "^[0-9.]+(%|/[0-9.]+[kM]?)$"}],
        "description": "A rate: 0.0003, 0.5% or 3/10k"});
    let confidence = json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1});
    let share = json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1});
    let off =
        json!({"enum": ["off", false], "description": "Switch off a preset's entry of this name"});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ripcord policy",
        "description": "Rollback criteria, triggers and rollout plan for one service",
        "type": "object",
        "additionalProperties": false,
        "required": ["service"],
        "properties": {
            "service": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "scenario": {"enum": ["conversational-agent", "image-generator", "data-augmentation"],
                "description": "A preset supplying default signals, criteria and triggers"},
            "signals": {"type": "object", "additionalProperties": {"anyOf": [off.clone(), {
                "type": "object", "additionalProperties": false,
                "required": ["category", "kind"],
                "properties": {
                    "category": {"enum": ["user_experience", "quality", "safety", "operational", "data", "fairness"]},
                    "kind": {"enum": ["rate", "score", "latency", "category"]},
                    "numerator": {"type": "string", "description": "Event value field counting flagged outputs (default: the signal's name)"},
                    "denominator": {"type": "string", "description": "Event value field counting what the rate is per (default: outputs)"},
                    "field": {"type": "string", "description": "Event value field of a score or latency, or segment attribute of a category (default: the signal's name)"},
                    "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                    "direction": {"enum": ["higher_is_worse", "lower_is_worse"]},
                    "unit": {"type": "string"},
                    "description": {"type": "string"}
                }}]}},
            "criteria": {"type": "object", "additionalProperties": {"anyOf": [off.clone(), {
                "type": "object", "additionalProperties": false,
                "required": ["signal"],
                "properties": {
                    "signal": {"type": "string"},
                    "absolute": {"anyOf": [rate.clone(), {"type": "number"}]},
                    "max_ratio": {"type": "number", "minimum": 1},
                    "max_increase": {"type": "number", "minimum": 0},
                    "max_decrease": {"type": "number", "minimum": 0},
                    "max_difference": {"type": "number", "minimum": 0},
                    "max_psi": {"type": "number", "exclusiveMinimum": 0},
                    "max_js": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "across": {"type": "string", "description": "Fairness: the segment key whose values are compared"},
                    "reference": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0},
                        "description": "Drift: a stored profile of category shares (default: the baseline)"},
                    "quantile": confidence.clone(),
                    "confidence": confidence.clone(),
                    "min_samples": {"type": "integer", "minimum": 0},
                    "window": duration.clone(),
                    "for": duration.clone(),
                    "clear_for": duration.clone(),
                    "on_no_data": {"enum": ["hold", "inconclusive", "breach"]},
                    "where": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                    "per": {"enum": ["output", "unit"]},
                    "description": {"type": "string"}
                }}]}},
            "triggers": {"type": "object", "additionalProperties": {"anyOf": [off, {
                "type": "object", "additionalProperties": false,
                "required": ["when", "action"],
                "properties": {
                    "when": {"$ref": "#/$defs/condition"},
                    "severity": {"enum": ["critical", "major", "minor"]},
                    "action": {"anyOf": [
                        {"enum": ["notify", "pause", "pause_and_investigate", "rollback"]},
                        {"type": "object", "additionalProperties": false, "required": ["rollback"],
                         "properties": {"rollback": {"type": "object", "additionalProperties": false,
                            "required": ["stages"],
                            "properties": {"stages": {"type": "array", "minItems": 1, "items": {
                                "type": "object", "additionalProperties": false, "required": ["move_back"],
                                "properties": {"move_back": share.clone(), "verify_for": duration.clone()}}}}}}}]},
                    "approval": {"anyOf": [{"const": "none"}, {
                        "type": "object", "additionalProperties": false,
                        "required": ["role", "within", "on_timeout"],
                        "properties": {"role": {"type": "string"}, "within": duration.clone(),
                            "on_timeout": {"enum": ["proceed", "hold"]}}}]},
                    "description": {"type": "string"}
                }}]}},
            "rollout": {"type": "object", "additionalProperties": false, "properties": {
                "steps": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": false, "required": ["share"],
                    "properties": {"share": share, "hold": duration.clone()}}},
                "promotion": {"enum": ["automatic", "manual"]},
                "watch_after_promotion": duration.clone(),
                "false_alarm_every": duration
            }},
            "srm": {"anyOf": [{"enum": ["off", false]}, {
                "type": "object", "additionalProperties": false, "properties": {
                    "confidence": confidence, "min_samples": {"type": "integer", "minimum": 0},
                    "count": {"enum": ["units", "outputs"],
                        "description": "units (each once, when first seen) or outputs (pre-aggregated streams)"}}}]}
        },
        "$defs": {
            "condition": {"anyOf": [
                {"type": "string", "description": "A criterion's name"},
                {"type": "object", "additionalProperties": false, "required": ["all"],
                 "properties": {"all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}}},
                {"type": "object", "additionalProperties": false, "required": ["any"],
                 "properties": {"any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}}},
                {"type": "object", "additionalProperties": false, "required": ["at_least", "of"],
                 "properties": {"at_least": {"type": "integer", "minimum": 1},
                    "of": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}}}
            ]}
        }
    })
}
