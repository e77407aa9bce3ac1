//! The decision record: one decision in the documented NDJSON shape, shared
//! by replay output and the live server's decision log.

use crate::decision::{Decision, Evidence, Part, Samples};
use crate::policy::Severity;
use serde::Serialize;
use serde_json::Value;

/// One decision, in exactly the documented replay NDJSON shape: `at`,
/// `kind`, `service`, `trigger`, `severity`, `action`, `share`,
/// `idempotency_key`, `explanation`; fields that do not apply are left out.
/// The release and the criterion a decision concerns travel in the
/// explanation.
#[derive(Serialize)]
pub struct DecisionRecord<'a> {
    pub at: String,
    pub kind: &'static str,
    pub service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
    pub explanation: ExplanationRecord<'a>,
}

#[derive(Serialize)]
pub struct ExplanationRecord<'a> {
    pub summary: &'a str,
    pub release: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criterion: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceRecord<'a>>,
}

#[derive(Serialize)]
pub struct EvidenceRecord<'a> {
    pub criterion: &'a str,
    pub signal: &'a str,
    pub test: &'static str,
    pub bound: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    pub threshold: f64,
    pub confidence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// `[low, high]`; a one-sided bound has `null` on its open side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[Option<f64>; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_estimate: Option<f64>,
    pub window: String,
    pub samples: SampleRecord,
    pub window_samples: SampleRecord,
    pub breached_for: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<PartRecord<'a>>,
}

/// A category (drift) or segment (fairness) behind a criterion's figure.
#[derive(Serialize)]
pub struct PartRecord<'a> {
    pub name: &'a str,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[Option<f64>; 2]>,
    pub n: f64,
}

#[derive(Serialize)]
pub struct SampleRecord {
    pub candidate: Count,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Count>,
}

#[derive(Serialize)]
pub struct Count {
    pub n: f64,
    pub flagged_or_sum: f64,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn count(s: Samples) -> Count {
    Count {
        n: s.n,
        flagged_or_sum: s.sum,
    }
}

impl<'a> DecisionRecord<'a> {
    pub fn from(d: &'a Decision) -> DecisionRecord<'a> {
        DecisionRecord {
            at: d.at.to_rfc3339(),
            kind: d.kind.as_str(),
            service: &d.service,
            trigger: d.trigger.as_deref(),
            severity: d.severity.map(Severity::as_str),
            action: d.action.map(|a| a.as_str()),
            share: d.share,
            idempotency_key: d.idempotency_key.as_deref(),
            explanation: ExplanationRecord {
                summary: &d.explanation.summary,
                release: &d.release,
                criterion: d.criterion.as_deref(),
                evidence: d
                    .explanation
                    .evidence
                    .iter()
                    .map(EvidenceRecord::from)
                    .collect(),
            },
        }
    }

    /// The record as one NDJSON line, without the newline.
    pub fn to_line(&self) -> String {
        crate::json::line(self)
    }

    /// The record as a JSON value, the same as its line parsed, for those
    /// who keep it inside a document of their own (the audit log, webhook
    /// payloads, incident timelines) without printing and parsing it.
    pub fn to_value(&self) -> Value {
        crate::json::value(self)
    }
}

impl<'a> EvidenceRecord<'a> {
    pub fn from(e: &'a Evidence) -> EvidenceRecord<'a> {
        EvidenceRecord {
            criterion: &e.criterion,
            signal: &e.signal,
            test: e.test,
            bound: &e.bound,
            statistic: finite(e.statistic),
            threshold: e.threshold,
            confidence: e.confidence,
            estimate: e.estimate.and_then(finite),
            interval: e.interval.map(|(lo, hi)| [finite(lo), finite(hi)]),
            window_estimate: e.window_estimate.and_then(finite),
            window: e.window.to_string(),
            samples: SampleRecord {
                candidate: count(e.candidate),
                baseline: e.baseline.map(count),
            },
            window_samples: SampleRecord {
                candidate: count(e.window_candidate),
                baseline: e.window_baseline.map(count),
            },
            breached_for: e.breached_for.to_string(),
            breakdown: e.breakdown.iter().map(part).collect(),
        }
    }

    /// The record as a JSON value, as it stands in a decision's record.
    pub fn to_value(&self) -> Value {
        crate::json::value(self)
    }
}

fn part(p: &Part) -> PartRecord<'_> {
    PartRecord {
        name: &p.name,
        value: p.value,
        reference: p.reference.and_then(finite),
        contribution: p.contribution.and_then(finite),
        interval: p.interval.map(|(lo, hi)| [finite(lo), finite(hi)]),
        n: p.n,
    }
}

/// The decision as one NDJSON line, without the newline.
pub fn decision_to_line(d: &Decision) -> String {
    DecisionRecord::from(d).to_line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{DecisionKind, Explanation};
    use crate::time::{Dur, Time};

    fn decision() -> Decision {
        let samples = Samples { n: 50.0, sum: 17.0 };
        let evidence = Evidence {
            criterion: "moderation_rel".into(),
            signal: "moderation_fail".into(),
            test: "a test",
            bound: "candidate ≤ 1.2 × baseline".into(),
            statistic: 99.6204941820939,
            threshold: 20.0,
            confidence: 0.95,
            estimate: Some(f64::INFINITY),
            interval: Some((1.7879192639353774, f64::INFINITY)),
            window_estimate: Some(0.1 + 0.2),
            window: Dur::from_secs(30),
            candidate: samples,
            baseline: Some(Samples::default()),
            window_candidate: samples,
            window_baseline: None,
            breached_for: Dur(0),
            breakdown: vec![Part {
                name: "de".into(),
                value: 1.0 / 3.0,
                reference: Some(0.25),
                contribution: None,
                interval: Some((f64::NAN, 0.5)),
                n: 12.0,
            }],
        };
        Decision {
            at: Time(1_767_225_600_000),
            kind: DecisionKind::CriterionBreached,
            service: "svc".into(),
            release: "svc:v1->v2#1".into(),
            criterion: Some("moderation_rel".into()),
            trigger: None,
            severity: None,
            action: None,
            share: Some(0.5),
            idempotency_key: None,
            explanation: Explanation {
                summary: "moderation_rel breached".into(),
                evidence: vec![evidence],
            },
        }
    }

    /// The value the server stores beside the line is the line parsed:
    /// same keys, same numbers, non-finite ones `null` in both.
    #[test]
    fn a_records_value_is_its_line_parsed() {
        let d = decision();
        let record = DecisionRecord::from(&d);
        let line = record.to_line();
        assert!(
            line.starts_with(r#"{"at":"2026-01-01T00:00:00.000Z","kind":"criterion_breached""#)
        );
        let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(record.to_value(), parsed);
        let evidence = EvidenceRecord::from(&d.explanation.evidence[0]).to_value();
        assert_eq!(parsed["explanation"]["evidence"][0], evidence);
        assert_eq!(
            evidence["interval"],
            serde_json::json!([1.7879192639353774, null])
        );
        assert_eq!(decision_to_line(&d), line);
    }
}
