//! The decision record: one decision in the documented NDJSON shape, shared
//! by replay output and the live server's decision log.

use crate::decision::{Decision, Evidence, Part, Samples};
use crate::policy::Severity;
use serde::Serialize;

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
                evidence: d.explanation.evidence.iter().map(evidence).collect(),
            },
        }
    }
}

fn evidence(e: &Evidence) -> EvidenceRecord<'_> {
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
    // Serialising plain structs of strings and finite numbers cannot fail.
    serde_json::to_string(&DecisionRecord::from(d)).unwrap_or_default()
}
