//! What the engine's decisions do to governance: a fired trigger opens the
//! release's incident (or joins the open one), criteria news and actions go
//! on its timeline, a completed rollback mitigates it, a trigger's approval
//! wait becomes a request that is settled when the engine moves on.

use ripcord_core::decision;
use ripcord_core::policy::{Approval, Category, Severity};
use ripcord_core::record::EvidenceRecord;
use ripcord_core::{ActionKind, Decision, DecisionKind, Time};
use serde_json::{Value, json};

use crate::command::Person;
use crate::effects::{AuditRecord, Effects, Metric};
use crate::machine::{ENGINE, Governance, Setting, notify_level, save_incident, schedule};
use crate::record::{ActionWord, EntryKind, Incident, IncidentKind, IncidentState, TriggerFacts};
use crate::requests::NewRequest;
use crate::words::NotifyKind;

/// An evidence bundle frozen for an incident, ready to store under its
/// content address.
pub struct Sealed {
    pub address: String,
    pub bytes: Vec<u8>,
    /// Events in the bundle's sample, and decisions in it.
    pub events: usize,
    pub decisions: usize,
}

/// Freezes the current release's evidence bundle. The driver holds the raw
/// material (the event sample, the policy text, provenance, decision
/// lines); freezing it is pure.
pub trait Evidence {
    fn freeze(&self, policy_version: i64, at: Time) -> Option<Sealed>;
}

impl Governance {
    /// Reacts to the engine's decisions for one input. `records` holds
    /// each decision's record as JSON, which the timeline keeps; `actor` is
    /// who caused the input; `waiting` whether the engine still waits for
    /// an approval afterwards.
    pub fn on_decisions(
        &mut self,
        s: &Setting,
        (decisions, records): (&[Decision], &[Value]),
        actor: &str,
        waiting: bool,
    ) -> Effects {
        let mut fx = Effects::default();
        for (d, record) in decisions.iter().zip(records) {
            match d.kind {
                DecisionKind::TriggerFired => self.open_or_join(s, d, record, &mut fx),
                DecisionKind::ApprovalRequested => self.trigger_request(s, d, &mut fx),
                DecisionKind::CriterionBreached
                | DecisionKind::CriterionNoData
                | DecisionKind::CriterionCleared => self.log_decision(s, d, record, &mut fx),
                DecisionKind::Action => self.on_action(s, (d, record), actor, &mut fx),
            }
        }
        self.settle_trigger_requests(s, waiting, decisions, &mut fx);
        fx
    }

    /// Opens an incident by hand: a drill, or a real one people declare.
    pub fn declare(
        &mut self,
        s: &Setting,
        (kind, severity, title): (IncidentKind, Severity, String),
        by: Person,
    ) -> (Incident, Effects) {
        let mut fx = Effects::default();
        let id = self.next_incident_id(s.service);
        let mut inc = Incident {
            kind,
            release: s.release.map(|r| r.id.clone()),
            policy_version: s.policy_version,
            severity,
            title,
            ..Incident::opened(id, s.service, s.now)
        };
        inc.note(
            s.now,
            EntryKind::State,
            by.name,
            format!("incident declared ({kind}) by {}", by.name),
            Value::Null,
        );
        self.start(s, &mut inc, &mut fx);
        save_incident(&mut fx, &inc, s.now, by.name, "incident.declare");
        (inc, fx)
    }

    /// A new incident's evidence, timers and first page.
    fn start(&mut self, s: &Setting, inc: &mut Incident, fx: &mut Effects) {
        freeze_evidence(s, inc, fx);
        schedule(s, inc, fx);
        notify_level(s, inc, 0, NotifyKind::Open, fx);
        self.incidents.push(inc.clone());
        fx.metrics.push(Metric::IncidentOpened {
            kind: inc.kind,
            severity: inc.severity,
        });
    }

    /// The active real incident of the current release.
    /// The release's active incident of the release's kind: a drill
    /// release's triggers and actions go to its drill incident, a real
    /// release's never to a drill someone declared during it.
    fn current_incident(&mut self, s: &Setting) -> Option<&mut Incident> {
        let release = s.release.map(|r| r.id.as_str())?;
        let kind = if s.drill {
            IncidentKind::Drill
        } else {
            IncidentKind::Real
        };
        self.incidents
            .iter_mut()
            .find(|i| i.is_active() && i.kind == kind && i.release.as_deref() == Some(release))
    }

    fn log_decision(&mut self, s: &Setting, d: &Decision, record: &Value, fx: &mut Effects) {
        let Some(inc) = self.current_incident(s) else {
            return;
        };
        let summary = d.explanation.summary.clone();
        inc.note(d.at, EntryKind::Signal, ENGINE, summary, record.clone());
        save_incident(fx, inc, s.now, ENGINE, "incident.timeline");
    }

    fn open_or_join(&mut self, s: &Setting, d: &Decision, record: &Value, fx: &mut Effects) {
        let trigger = d.trigger.clone().unwrap_or_default();
        if let Some(inc) = self.current_incident(s) {
            if !inc.triggers.contains(&trigger) {
                inc.triggers.push(trigger);
            }
            // A more severe trigger raises the incident's severity.
            if let Some(severity) = d.severity
                && severity > inc.severity
            {
                inc.severity = severity;
            }
            let summary = d.explanation.summary.clone();
            inc.note(d.at, EntryKind::Signal, ENGINE, summary, record.clone());
            save_incident(fx, inc, s.now, ENGINE, "incident.join");
            return;
        }
        let mut inc = self.new_incident(s, (d, record), &trigger);
        self.start(s, &mut inc, fx);
        save_incident(fx, &inc, s.now, ENGINE, "incident.open");
    }

    fn new_incident(
        &mut self,
        s: &Setting,
        (d, record): (&Decision, &Value),
        name: &str,
    ) -> Incident {
        let id = self.next_incident_id(s.service);
        let trigger = s.policy.triggers.iter().find(|t| t.name == name);
        let evidence = &d.explanation.evidence;
        let severity = d.severity.unwrap_or(Severity::Major);
        let mut inc = Incident {
            kind: if s.drill {
                IncidentKind::Drill
            } else {
                IncidentKind::Real
            },
            release: s.release.map(|r| r.id.clone()),
            policy_version: s.release.map_or(s.policy_version, |r| r.policy_version),
            severity,
            title: format!("{name} ({}) on {}", severity.as_str(), s.service),
            trigger: trigger.map(|t| TriggerFacts {
                name: t.name.clone(),
                severity: t.severity,
                action: ActionWord::of_trigger(&t.action),
            }),
            triggers: vec![name.to_string()],
            categories: categories(s, evidence),
            signals: evidence
                .iter()
                .map(|e| EvidenceRecord::from(e).to_value())
                .collect(),
            detected_at: d.at.to_rfc3339(),
            ..Incident::opened(id, s.service, s.now)
        };
        let summary = d.explanation.summary.clone();
        inc.note(d.at, EntryKind::Signal, ENGINE, summary, record.clone());
        let opened = format!("incident opened ({})", inc.kind);
        inc.note(s.now, EntryKind::State, ENGINE, opened, Value::Null);
        inc
    }

    fn on_action(
        &mut self,
        s: &Setting,
        (d, record): (&Decision, &Value),
        actor: &str,
        fx: &mut Effects,
    ) {
        let summary = d.explanation.summary.clone();
        let rolled_back = matches!(
            d.action,
            Some(ActionKind::RollbackStage | ActionKind::RollbackComplete)
        );
        if rolled_back && d.trigger.is_some() {
            self.supersede_requests(s, ActionWord::Rollback, &summary, fx);
        }
        let Some(inc) = self.current_incident(s) else {
            return;
        };
        let who = if d.trigger.is_some() { ENGINE } else { actor };
        inc.note(d.at, EntryKind::Action, who, summary, record.clone());
        let complete = d.action == Some(ActionKind::RollbackComplete);
        if complete && inc.state == IncidentState::Open {
            let why = "the rollback is complete";
            let _ = inc.transition(IncidentState::Mitigated, d.at, who, why);
        }
        save_incident(fx, inc, s.now, who, "incident.timeline");
    }

    /// A trigger's approval request: the engine froze the rollout until
    /// enough approvers agree or the window ends. The engine keeps the
    /// window itself; the request mirrors it.
    fn trigger_request(&mut self, s: &Setting, d: &Decision, fx: &mut Effects) {
        let Some(trigger) = d
            .trigger
            .as_ref()
            .and_then(|t| s.policy.triggers.iter().find(|x| &x.name == t))
        else {
            return;
        };
        let Approval::Role {
            role,
            within,
            on_timeout,
            quorum,
        } = &trigger.approval
        else {
            return;
        };
        let incident = self.current_incident(s).map(|i| i.id.clone());
        let n = NewRequest {
            action: ActionWord::of_trigger(&trigger.action),
            trigger: Some(trigger.name.clone()),
            incident,
            requested_by: ENGINE.into(),
            reason: Some(d.explanation.summary.clone()),
            roles: vec![role.clone()],
            quorum: *quorum,
            separation: true,
            within: *within,
            on_timeout: *on_timeout,
        };
        let req = self.new_request(s, n);
        self.log_request(s, &req, "approval requested", fx);
        self.requests.push(req.clone());
        crate::machine::save_request(fx, &req, s.now, ENGINE, "request.open");
    }
}

/// Freezes the incident's evidence bundle and records its address; the
/// bundle is stored in the same batch as the incident.
fn freeze_evidence(s: &Setting, inc: &mut Incident, fx: &mut Effects) {
    let Some(sealed) = s.evidence.freeze(inc.policy_version, s.now) else {
        return;
    };
    let detail = json!({
        "address": sealed.address,
        "events": sealed.events,
        "decisions": sealed.decisions,
    });
    inc.note(
        s.now,
        EntryKind::Evidence,
        ENGINE,
        format!("evidence bundle frozen: sha256:{}", sealed.address),
        detail.clone(),
    );
    inc.evidence = Some(sealed.address.clone());
    fx.audit.push(AuditRecord {
        at: s.now,
        actor: ENGINE.into(),
        action: "evidence.freeze".into(),
        subject: inc.id.clone(),
        detail,
    });
    fx.blobs.push((sealed.address, sealed.bytes));
}

/// The categories of the deciding signals, by name, once each.
fn categories(s: &Setting, evidence: &[decision::Evidence]) -> Vec<Category> {
    let mut categories: Vec<Category> = evidence
        .iter()
        .filter_map(|e| s.policy.signals.iter().find(|x| x.name == e.signal))
        .map(|x| x.category)
        .collect();
    // By name, as the stored documents have always listed them.
    categories.sort_by_key(|c| c.as_str());
    categories.dedup();
    categories
}
