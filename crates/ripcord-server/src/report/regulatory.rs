//! The regulatory incident report (EU AI Act Article 73 by default): who
//! provides the system and which system it is, the versions involved with
//! their provenance, what happened and when (occurrence and awareness),
//! who was affected and how, the causal analysis, the corrective actions
//! (the rollback and its verification among them) and the evidence
//! bundle's address. Assembled from the incident, its release's
//! decisions, the versions registry and the server's `regulatory:`
//! configuration, plus what people write; written as JSON (the stored
//! document) and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use ripcord_core::Time;
use ripcord_govern::record::{Incident, StepKindName};
use ripcord_govern::regulatory::{REGULATORY_REPORT, Regulatory};
use ripcord_govern::{IncidentReport, RegulatoryClasses, ReportStage};
use ripcord_store::{Store, VersionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::deciding_signals;
use super::source::{release_decisions, with_release};

/// `regulatory:` in `ripcord.yaml`: the class table, and who the provider
/// is and what each service is called in its registrations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regulation {
    pub classes: RegulatoryClasses,
    pub provider: Provider,
    /// Per service: the system's name and registration.
    pub systems: BTreeMap<String, SystemId>,
}

/// The provider of the AI system (Article 73(1)): the organisation that
/// reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub address: String,
    pub contact: String,
}

/// How a service is known to the regulator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SystemId {
    pub name: String,
    /// The EU database registration (Article 71), or another register's id.
    pub registration: String,
}

/// What people write into a report; what they leave out is drawn from
/// the record where it can be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Narrative {
    #[serde(default)]
    pub description: Option<String>,
    /// When the incident occurred, if before ripcord detected it (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub affected: Option<u64>,
    #[serde(default)]
    pub harm: Option<String>,
    #[serde(default)]
    pub causal_analysis: Option<String>,
    /// Corrective actions besides the rollback.
    #[serde(default)]
    pub corrective_actions: Vec<String>,
}

/// Longest narrative text, and most corrective actions, one report takes.
pub const MAX_TEXT: usize = 20_000;
pub const MAX_ACTIONS: usize = 50;

impl Narrative {
    /// Refuses text beyond the caps and a malformed `occurred_at`, naming
    /// the field.
    pub fn check(&self) -> Result<(), String> {
        let texts = [
            ("description", &self.description),
            ("harm", &self.harm),
            ("causal_analysis", &self.causal_analysis),
        ];
        for (name, text) in texts {
            if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
                return Err(format!("{name}: at most {MAX_TEXT} characters"));
            }
        }
        if self.corrective_actions.len() > MAX_ACTIONS {
            return Err(format!("corrective_actions: at most {MAX_ACTIONS} items"));
        }
        if let Some(i) = self
            .corrective_actions
            .iter()
            .position(|a| a.len() > MAX_TEXT)
        {
            return Err(format!(
                "corrective_actions[{i}]: at most {MAX_TEXT} characters"
            ));
        }
        if let Some(at) = &self.occurred_at
            && ripcord_core::Time::parse_rfc3339(at).is_none()
        {
            return Err(format!("occurred_at: \"{at}\" is not an RFC 3339 time"));
        }
        Ok(())
    }
}

/// The report, as stored and as `--format regulatory` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegulatoryReport {
    /// `<incident>/report-<n>`; `<incident>/draft` before one is filed.
    pub id: String,
    pub incident: String,
    /// `None` for a draft.
    pub stage: Option<ReportStage>,
    pub filed_at: Option<String>,
    pub filed_by: Option<String>,
    /// The ids of the reports filed before this one.
    pub follows: Vec<String>,
    pub framework: String,
    pub provider: Provider,
    pub system: System,
    pub versions: Vec<VersionFacts>,
    pub classification: Classification,
    pub description: String,
    pub dates: Dates,
    pub affected: Affected,
    pub causal_analysis: String,
    pub corrective_actions: CorrectiveActions,
    pub evidence: EvidenceRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub service: String,
    pub name: String,
    pub registration: String,
    pub release: Option<String>,
    pub policy_version: i64,
    /// `real` or `drill`.
    pub incident_kind: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionFacts {
    /// `baseline` or `candidate`.
    pub role: String,
    pub version: String,
    pub registered_at: Option<String>,
    /// The provenance document as registered (model id, data, commit…).
    pub provenance: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub class: Option<String>,
    pub description: Option<String>,
    pub deadline_days: Option<f64>,
    pub due_at: Option<String>,
    pub reported_at: Option<String>,
    pub deadline_met: Option<bool>,
    pub severity: String,
    pub categories: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dates {
    pub occurred_at: String,
    pub detected_at: String,
    pub opened_at: String,
    pub aware_at: Option<String>,
    pub classified_at: Option<String>,
    pub acknowledged_at: Option<String>,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    pub persons: Option<u64>,
    pub harm: Option<String>,
    /// The highest share of traffic the candidate served in the release.
    pub exposed_share: Option<f64>,
    /// Events (outputs or requests) the candidate served in the release.
    pub candidate_events: Option<u64>,
}

/// How far the candidate reached, from the release record.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exposure {
    pub peak_share: f64,
    pub candidate_events: u64,
}

impl Exposure {
    /// From a release record as stored: the largest share among its
    /// moves and its current one, and its candidate event count.
    pub fn of_release(body: &Value) -> Exposure {
        let moves = body["moves"].as_array().into_iter().flatten();
        let shares = moves.flat_map(|m| [m["from"].as_f64(), m["to"].as_f64()]);
        let peak_share = shares
            .chain([body["share"].as_f64()])
            .flatten()
            .fold(0.0, f64::max);
        Exposure {
            peak_share,
            candidate_events: body["events"]["candidate"].as_u64().unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrectiveActions {
    pub rollback: Option<Rollback>,
    /// The rollback's verification: the engine's hold at the baseline and
    /// the playbook's verify and check steps.
    pub verification: Vec<Verification>,
    /// What people did or will do besides (the report's and the review's).
    pub other: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    pub started_at: String,
    pub completed_at: Option<String>,
    /// Each rollback decision: when, what, the share after it and why.
    pub steps: Vec<RollbackStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackStep {
    pub at: String,
    pub action: String,
    pub share: Option<f64>,
    pub summary: String,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// `engine` (the rollback's verify hold) or the playbook step's name.
    pub by: String,
    pub kind: String,
    pub status: String,
    pub at: Option<String>,
    pub result: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// The SHA-256 address of the bundle frozen when the incident opened.
    pub address: Option<String>,
    /// How to get it as a verified archive.
    pub export: String,
}

/// What a report is assembled from besides the narrative.
pub struct Sources<'a> {
    pub doc: &'a IncidentReport,
    pub decisions: &'a [String],
    pub versions: &'a [VersionRecord],
    pub exposure: Option<Exposure>,
    pub regulation: &'a Regulation,
}

/// What [`sources`] reads from the store.
pub struct Gathered {
    pub doc: IncidentReport,
    pub decisions: Vec<String>,
    pub versions: Vec<VersionRecord>,
    pub exposure: Option<Exposure>,
}

impl Gathered {
    pub fn sources<'a>(&'a self, regulation: &'a Regulation) -> Sources<'a> {
        Sources {
            doc: &self.doc,
            decisions: &self.decisions,
            versions: &self.versions,
            exposure: self.exposure,
            regulation,
        }
    }
}

/// Who filed the report, when, as which stage and number.
pub struct Filing {
    pub stage: ReportStage,
    pub number: usize,
    pub at: String,
    pub by: String,
}

/// What a report of `incident` is assembled from in the store: its
/// release, the release's decisions and both versions' provenance.
pub async fn sources(store: &dyn Store, incident: Incident) -> anyhow::Result<Gathered> {
    let doc = with_release(store, incident).await?;
    let decisions = release_decisions(store, &doc).await?;
    let mut versions = Vec::new();
    let mut exposure = None;
    if let Some(r) = &doc.release {
        for v in [&r.baseline, &r.candidate] {
            if let Some(rec) = store.version(&doc.incident.service, v).await? {
                versions.push(rec);
            }
        }
        exposure = store
            .release(&r.id)
            .await?
            .map(|rec| Exposure::of_release(&rec.body));
    }
    Ok(Gathered {
        doc,
        decisions,
        versions,
        exposure,
    })
}

/// The reports filed for `incident`, oldest first.
pub async fn filed(store: &dyn Store, inc: &Incident) -> anyhow::Result<Vec<RegulatoryReport>> {
    let Some(reg) = &inc.regulatory else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for f in &reg.reports {
        let doc = store
            .doc(REGULATORY_REPORT, &f.id)
            .await?
            .with_context(|| format!("regulatory report {} is not in the store", f.id))?;
        let report = serde_json::from_value(doc.body)
            .with_context(|| format!("regulatory report {} as stored", f.id))?;
        out.push(report);
    }
    Ok(out)
}

/// Assembles the report; a draft when `filing` is `None`.
pub fn build(src: &Sources, narrative: &Narrative, filing: Option<Filing>) -> RegulatoryReport {
    let inc = &src.doc.incident;
    let reg = inc.regulatory.as_ref();
    let release = src.doc.release.as_ref();
    let system_id = src.regulation.systems.get(&inc.service);
    let id = match &filing {
        Some(f) => format!("{}/report-{}", inc.id, f.number),
        None => format!("{}/draft", inc.id),
    };
    let follows = reg
        .map(|r| r.reports.iter().map(|f| f.id.clone()).collect())
        .unwrap_or_default();
    RegulatoryReport {
        id,
        incident: inc.id.clone(),
        stage: filing.as_ref().map(|f| f.stage),
        filed_at: filing.as_ref().map(|f| f.at.clone()),
        filed_by: filing.as_ref().map(|f| f.by.clone()),
        follows,
        framework: reg.map_or_else(
            || src.regulation.classes.framework.clone(),
            |r| r.framework.clone(),
        ),
        provider: src.regulation.provider.clone(),
        system: System {
            service: inc.service.clone(),
            name: system_id.map_or_else(|| inc.service.clone(), |s| s.name.clone()),
            registration: system_id
                .map(|s| s.registration.clone())
                .unwrap_or_default(),
            release: inc.release.clone(),
            policy_version: inc.policy_version,
            incident_kind: inc.kind.as_str().into(),
        },
        versions: versions(src),
        classification: classification(inc, reg, filing.as_ref()),
        description: narrative
            .description
            .clone()
            .unwrap_or_else(|| describe(src.doc)),
        dates: dates(inc, reg, narrative),
        affected: Affected {
            persons: narrative.affected.or(reg.and_then(|r| r.affected)),
            harm: narrative
                .harm
                .clone()
                .or_else(|| reg.and_then(|r| r.harm.clone())),
            exposed_share: src
                .exposure
                .map(|e| e.peak_share)
                .or(release.map(|r| r.share)),
            candidate_events: src.exposure.map(|e| e.candidate_events),
        },
        causal_analysis: narrative
            .causal_analysis
            .clone()
            .unwrap_or_else(|| causes(src.doc)),
        corrective_actions: corrective(inc, src.decisions, narrative),
        evidence: EvidenceRef {
            address: inc.evidence.clone(),
            export: format!("ripcord evidence export {}", inc.id),
        },
    }
}

fn versions(src: &Sources) -> Vec<VersionFacts> {
    let Some(r) = &src.doc.release else {
        return Vec::new();
    };
    [("baseline", &r.baseline), ("candidate", &r.candidate)]
        .into_iter()
        .map(|(role, v)| {
            let rec = src.versions.iter().find(|x| &x.version == v);
            VersionFacts {
                role: role.into(),
                version: v.clone(),
                registered_at: rec.map(|x| x.registered_at.clone()),
                provenance: rec.map_or(Value::Null, |x| x.provenance.clone()),
            }
        })
        .collect()
}

/// The class and deadline; a filing that is the first report meets the
/// deadline (or misses it) by its own time.
fn classification(
    inc: &Incident,
    reg: Option<&Regulatory>,
    filing: Option<&Filing>,
) -> Classification {
    let first = reg.is_some_and(|r| r.reported_at.is_none());
    let (reported_at, deadline_met) = match (reg, filing) {
        (Some(r), Some(f)) if first => {
            let met = match (Time::parse_rfc3339(&f.at), Time::parse_rfc3339(&r.due_at)) {
                (Some(at), Some(due)) => Some(at <= due),
                _ => None,
            };
            (Some(f.at.clone()), met)
        }
        _ => (
            reg.and_then(|r| r.reported_at.clone()),
            reg.and_then(|r| r.deadline_met),
        ),
    };
    Classification {
        class: reg.map(|r| r.class.clone()),
        description: reg.map(|r| r.class_description.clone()),
        deadline_days: reg.map(|r| r.deadline_ms as f64 / 86_400_000.0),
        due_at: reg.map(|r| r.due_at.clone()),
        reported_at,
        deadline_met,
        severity: inc.severity.as_str().into(),
        categories: inc.categories.iter().map(|c| c.as_str().into()).collect(),
    }
}

fn dates(inc: &Incident, reg: Option<&Regulatory>, n: &Narrative) -> Dates {
    Dates {
        occurred_at: n
            .occurred_at
            .clone()
            .unwrap_or_else(|| inc.detected_at.clone()),
        detected_at: inc.detected_at.clone(),
        opened_at: inc.opened_at.clone(),
        aware_at: reg.map(|r| r.aware_at.clone()),
        classified_at: reg.map(|r| r.classified_at.clone()),
        acknowledged_at: inc.acknowledged_at.clone(),
        mitigated_at: inc.mitigated_at.clone(),
        resolved_at: inc.resolved_at.clone(),
    }
}

/// The record's own account: the title, the trigger and the release.
fn describe(doc: &IncidentReport) -> String {
    let inc = &doc.incident;
    let t = inc.trigger_facts();
    let mut out = format!(
        "{} ({} {} incident of {}): trigger {} ({}) → {}.",
        inc.title,
        inc.severity.as_str(),
        inc.kind,
        inc.service,
        t.name,
        t.severity.as_str(),
        t.action
    );
    if let Some(r) = &doc.release {
        let _ = write!(
            out,
            " Release {}: {} → {}, the candidate at {:.1}% of traffic.",
            r.id,
            r.baseline,
            r.candidate,
            r.share * 100.0
        );
    }
    out
}

/// The deciding signals as evidence of cause, until people write theirs.
fn causes(doc: &IncidentReport) -> String {
    let signals = deciding_signals(doc).unwrap_or_default();
    if signals.is_empty() {
        return "No deciding signal was recorded; the causal analysis is to be written.".into();
    }
    let lines: Vec<String> = signals
        .iter()
        .map(|s| {
            let estimate = s
                .estimate
                .or(s.window_estimate)
                .map_or_else(|| "n/a".to_string(), |e| format!("{e:.4}"));
            format!(
                "criterion {} on signal {}: estimate {estimate} against bound {} (confidence {:.0}%)",
                s.criterion,
                s.signal,
                s.bound,
                s.confidence * 100.0
            )
        })
        .collect();
    format!(
        "Detected by ripcord's sequential test on the candidate's outputs: {}. The root cause is to be confirmed by the review.",
        lines.join("; ")
    )
}

fn corrective(inc: &Incident, decisions: &[String], n: &Narrative) -> CorrectiveActions {
    let steps: Vec<RollbackStep> = decisions
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| {
            d["kind"] == "action"
                && matches!(
                    d["action"].as_str(),
                    Some("rollback_stage" | "rollback_complete")
                )
        })
        .map(|d| RollbackStep {
            at: d["at"].as_str().unwrap_or_default().into(),
            action: d["action"].as_str().unwrap_or_default().into(),
            share: d["share"].as_f64(),
            summary: d["explanation"]["summary"]
                .as_str()
                .unwrap_or_default()
                .into(),
            idempotency_key: d["idempotency_key"].as_str().map(str::to_string),
        })
        .collect();
    let completed = steps
        .iter()
        .find(|s| s.action == "rollback_complete")
        .map(|s| s.at.clone());
    let mut verification = Vec::new();
    if let Some(done) = steps.iter().find(|s| s.action == "rollback_complete") {
        verification.push(Verification {
            by: "engine".into(),
            kind: "rollback_hold".into(),
            status: "done".into(),
            at: Some(done.at.clone()),
            result: Value::String(done.summary.clone()),
        });
    }
    for s in &inc.steps {
        if matches!(s.kind, StepKindName::Verify | StepKindName::Check) {
            verification.push(Verification {
                by: s.name.clone(),
                kind: s.kind.as_str().into(),
                status: s.status.as_str().into(),
                at: s.done_at.clone(),
                result: s.result.clone(),
            });
        }
    }
    let mut other = n.corrective_actions.clone();
    if let Some(review) = &inc.review {
        other.extend(
            review
                .action_items
                .iter()
                .map(|a| format!("{} (owner {})", a.text, a.owner)),
        );
    }
    CorrectiveActions {
        rollback: steps.first().map(|first| Rollback {
            started_at: first.at.clone(),
            completed_at: completed,
            steps: steps.clone(),
        }),
        verification,
        other,
    }
}

/// The report as markdown: every field, in the order a regulator reads.
pub fn markdown(r: &RegulatoryReport) -> String {
    let mut md = String::new();
    let stage = r.stage.map_or("draft", |s| s.as_str());
    let _ = writeln!(
        md,
        "# Regulatory incident report: {} ({stage})\n",
        r.incident
    );
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let rows = |md: &mut String, rows: &[(&str, String)]| {
        md.push_str("| field | value |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {} |", cell(v));
        }
        md.push('\n');
    };
    rows(
        &mut md,
        &[
            ("report", r.id.clone()),
            ("framework", r.framework.clone()),
            ("stage", stage.into()),
            (
                "filed",
                format!("{} by {}", or(&r.filed_at), or(&r.filed_by)),
            ),
            ("follows", r.follows.join(", ")),
        ],
    );
    md.push_str("## Provider and system\n\n");
    rows(
        &mut md,
        &[
            ("provider", r.provider.name.clone()),
            ("address", r.provider.address.clone()),
            ("contact", r.provider.contact.clone()),
            ("system", r.system.name.clone()),
            ("registration", r.system.registration.clone()),
            ("service", r.system.service.clone()),
            ("release", or(&r.system.release)),
            ("policy version", r.system.policy_version.to_string()),
            ("incident kind", r.system.incident_kind.clone()),
        ],
    );
    md.push_str("## Versions\n\n| role | version | registered | provenance |\n|---|---|---|---|\n");
    for v in &r.versions {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            v.role,
            v.version,
            or(&v.registered_at),
            cell(&v.provenance.to_string())
        );
    }
    let c = &r.classification;
    md.push_str("\n## Classification and deadline\n\n");
    rows(
        &mut md,
        &[
            ("class", or(&c.class)),
            ("meaning", or(&c.description)),
            (
                "period",
                c.deadline_days
                    .map_or_else(|| "—".into(), |d| format!("{d} days from awareness")),
            ),
            ("due", or(&c.due_at)),
            ("first reported", or(&c.reported_at)),
            (
                "deadline met",
                c.deadline_met.map_or_else(|| "—".into(), |m| m.to_string()),
            ),
            ("severity", c.severity.clone()),
            ("categories", c.categories.join(", ")),
        ],
    );
    let _ = writeln!(md, "## Description\n\n{}\n", r.description);
    let d = &r.dates;
    md.push_str("## Dates\n\n");
    rows(
        &mut md,
        &[
            ("occurred", d.occurred_at.clone()),
            ("detected", d.detected_at.clone()),
            ("opened", d.opened_at.clone()),
            ("aware", or(&d.aware_at)),
            ("classified", or(&d.classified_at)),
            ("acknowledged", or(&d.acknowledged_at)),
            ("mitigated", or(&d.mitigated_at)),
            ("resolved", or(&d.resolved_at)),
        ],
    );
    md.push_str("## Affected people and harm\n\n");
    rows(
        &mut md,
        &[
            (
                "persons affected",
                r.affected
                    .persons
                    .map_or_else(|| "unknown".into(), |n| n.to_string()),
            ),
            ("harm", or(&r.affected.harm)),
            (
                "candidate events served",
                r.affected
                    .candidate_events
                    .map_or_else(|| "—".into(), |n| n.to_string()),
            ),
            (
                "share of traffic exposed (peak)",
                r.affected
                    .exposed_share
                    .map_or_else(|| "—".into(), |s| format!("{:.1}%", s * 100.0)),
            ),
        ],
    );
    let _ = writeln!(md, "## Causal analysis\n\n{}\n", r.causal_analysis);
    corrective_md(&mut md, &r.corrective_actions);
    md.push_str("## Evidence\n\n");
    let _ = writeln!(
        md,
        "Bundle `{}`; `{}` writes it as a verified archive.",
        or(&r.evidence.address),
        r.evidence.export
    );
    md
}

fn corrective_md(md: &mut String, a: &CorrectiveActions) {
    md.push_str("## Corrective actions\n\n");
    match &a.rollback {
        Some(r) => {
            let _ = writeln!(
                md,
                "Rollback started {}, completed {}.\n\n| at | action | share | why |\n|---|---|---|---|",
                r.started_at,
                r.completed_at.as_deref().unwrap_or("—")
            );
            for s in &r.steps {
                let share = s.share.map_or_else(|| "—".into(), |x| format!("{x}"));
                let _ = writeln!(
                    md,
                    "| {} | {} | {share} | {} |",
                    s.at,
                    s.action,
                    cell(&s.summary)
                );
            }
            md.push('\n');
        }
        None => md.push_str("No rollback.\n\n"),
    }
    md.push_str("Verification:\n\n");
    if a.verification.is_empty() {
        md.push_str("- none recorded\n");
    }
    for v in &a.verification {
        let _ = writeln!(
            md,
            "- {} ({}): {} at {}",
            v.by,
            v.kind,
            v.status,
            v.at.as_deref().unwrap_or("—")
        );
    }
    md.push_str("\nOther actions:\n\n");
    if a.other.is_empty() {
        md.push_str("- none\n");
    }
    for o in &a.other {
        let _ = writeln!(md, "- {o}");
    }
    md.push('\n');
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
