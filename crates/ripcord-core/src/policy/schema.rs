//! The JSON Schema of the policy format (draft 2020-12), written by hand to
//! mirror `load.rs` exactly: the loader walks YAML by hand to report every
//! problem, so there is no serde type to derive it from. A test checks that
//! every field the loader accepts appears here.

use serde_json::{Value, json};

use super::governance::{ActionName, CheckKind};

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
    let role = json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]*$",
        "description": "A role of the server's configuration"});
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
                        "properties": {"role": role.clone(), "within": duration.clone(),
                            "on_timeout": {"enum": ["proceed", "hold"]},
                            "quorum": {"type": "integer", "minimum": 1,
                                "description": "Distinct approvers needed (default 1)"}}}]},
                    "description": {"type": "string"}
                }}]}},
            "rollout": {"type": "object", "additionalProperties": false, "properties": {
                "steps": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": false, "required": ["share"],
                    "properties": {"share": share, "hold": duration.clone()}}},
                "promotion": {"enum": ["automatic", "manual"]},
                "watch_after_promotion": duration.clone(),
                "false_alarm_every": duration,
                "holdback": {"type": "number", "minimum": 0, "maximum": 0.5,
                    "description": "Share of units kept on the baseline while watching after promotion (default 0.02 when a criterion compares with the baseline; 0 switches those criteria to CUSUM)"}
            }},
            "srm": {"anyOf": [{"enum": ["off", false]}, {
                "type": "object", "additionalProperties": false, "properties": {
                    "confidence": confidence, "min_samples": {"type": "integer", "minimum": 0},
                    "count": {"enum": ["units", "outputs"],
                        "description": "units (each once, when first seen) or outputs (pre-aggregated streams)"}}}]},
            "rights": rights(&role, &duration),
            "incidents": incidents(&duration),
            "playbooks": playbooks(&role, &duration),
            "templates": templates(),
            "evidence": evidence(),
            "after_rollback": after_rollback(&duration),
            "sources": sources()
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

/// `rights:` decision rights per person-requested action.
fn rights(role: &Value, duration: &Value) -> Value {
    let right = json!({"type": "object", "additionalProperties": false,
        "required": ["roles", "within", "on_timeout"],
        "properties": {
            "roles": {"type": "array", "minItems": 1, "items": role},
            "quorum": {"type": "integer", "minimum": 1, "description": "Distinct approvers needed (default 1)"},
            "separation": {"type": "boolean", "description": "The requester cannot approve (default true)"},
            "within": duration, "on_timeout": {"enum": ["proceed", "hold"]}}});
    let properties: serde_json::Map<String, Value> = ActionName::ALL
        .iter()
        .map(|a| (a.as_str().to_string(), right.clone()))
        .collect();
    json!({"type": "object", "additionalProperties": false, "properties": properties,
        "description": "Who may approve each person-requested action"})
}

fn channels() -> Value {
    json!({"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
        "description": "Channel names of the server's configuration"})
}

/// `incidents:` acknowledgement deadlines, escalation, status updates.
fn incidents(duration: &Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "ack": {"type": "object", "additionalProperties": false, "properties": {
            "critical": duration, "major": duration, "minor": duration}},
        "escalation": {"type": "array", "items": {
            "type": "object", "additionalProperties": false, "required": ["after", "channels"],
            "properties": {"after": duration, "channels": channels(),
                "template": {"type": "string", "minLength": 1}}}},
        "status_every": duration}})
}

/// `playbooks:` ordered steps per trigger.
fn playbooks(role: &Value, duration: &Value) -> Value {
    let checks: Vec<&str> = CheckKind::ALL.iter().map(|c| c.as_str()).collect();
    let actions: Vec<&str> = ActionName::ALL.iter().map(|a| a.as_str()).collect();
    let step = json!({"type": "object", "additionalProperties": false,
        "required": ["name", "kind", "owner", "within"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "kind": {"enum": ["manual", "action", "communicate", "check", "verify"]},
            "owner": role, "within": duration,
            "action": {"enum": actions},
            "template": {"type": "string", "minLength": 1},
            "channels": channels(),
            "checks": {"type": "array", "minItems": 1, "items": {"enum": checks}},
            "hold": duration,
            "description": {"type": "string"}}});
    json!({"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": false, "required": ["steps"],
        "properties": {
            "triggers": {"type": "array", "minItems": 1, "items": {"type": "string"},
                "description": "Triggers the playbook applies to (default: every trigger)"},
            "steps": {"type": "array", "minItems": 1, "items": step},
            "description": {"type": "string"}}}})
}

/// `templates:` Jinja templates per audience.
fn templates() -> Value {
    json!({"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": false, "required": ["audience", "body"],
        "properties": {
            "audience": {"enum": ["oncall", "stakeholders", "status_page"]},
            "subject": {"type": "string"},
            "body": {"type": "string", "minLength": 1, "description": "Jinja (minijinja) source"},
            "description": {"type": "string"}}}})
}

/// `evidence:` what an incident's evidence bundle keeps of the raw events.
fn evidence() -> Value {
    let paths = json!({"type": "array", "items": {"type": "string", "pattern": "^[^.]+(\\.[^.]+)*$"},
        "description": "Dotted field paths in the raw event, e.g. segment.user"});
    json!({"type": "object", "additionalProperties": false, "properties": {
        "sample": {"type": "integer", "minimum": 0, "maximum": 100000},
        "redact": {"type": "object", "additionalProperties": false, "properties": {
            "drop": paths.clone(), "hash": paths}}}})
}

/// `after_rollback:` the data rules of a release that rolled back.
fn after_rollback(duration: &Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "raw_events": {"type": "object", "additionalProperties": false, "required": ["keep"],
            "properties": {"keep": duration},
            "description": "how long the rolled-back candidate's raw events stay after the rollback, then purged"},
        "evidence": {"type": "object", "additionalProperties": false, "required": ["hold"],
            "properties": {"hold": {"enum": ["none", "while_incident_open", "until_reviewed", "while_open_or_reported"]}},
            "description": "how long the evidence of the release's incidents is held"},
        "export": {"type": "array", "maxItems": 10, "items": {"type": "object", "additionalProperties": false,
            "required": ["to", "what", "channel"], "properties": {
                "to": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]*$", "description": "the team or system that receives it"},
                "what": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"enum": ["evidence", "decisions"]}},
                "channel": {"type": "string", "minLength": 1, "description": "a webhook channel of the server's configuration"}}},
            "description": "what is sent to whom once the release has rolled back"}}})
}

/// `sources:`: how OTLP telemetry and Prometheus counters map onto the
/// signals.
fn sources() -> Value {
    let names = json!({"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]});
    json!({"type": "object", "additionalProperties": false, "properties": {
        "otlp": {"type": "object", "additionalProperties": false, "properties": {
            "version": names, "unit": names,
            "segment": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                "description": "segment key: the attribute that gives it"},
            "evaluations": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": false, "required": ["signal"],
                "properties": {"signal": {"type": "string"}, "flag": names}},
                "description": "gen_ai.evaluation.name: the signal it feeds (and, for a rate, the labels that flag)"}
        }},
        "prometheus": {"type": "object", "additionalProperties": false, "required": ["url", "counters"],
            "properties": {
                "url": {"type": "string", "pattern": "^https?://[^/\\s?#]", "description": "the Prometheus server's base address"},
                "step": {"type": "string", "pattern": "^([0-9.]+(ms|s|m|h|d))+$"},
                "version_label": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                "counters": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "string", "minLength": 1},
                    "description": "event field (a rate's numerator or denominator): the counter's selector, e.g. genai_outputs_total{job=\"chat\"}"}
            }}
    }})
}
