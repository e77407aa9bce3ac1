//! Incidents and approval requests: the records governance keeps, their
//! validated state transitions and the facts templates are rendered with.
//! Their serialised form is the stored document and the API answer.

use ripcord_core::Time;
use ripcord_core::policy::{Category, OnTimeout, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::regulatory::Regulatory;
pub use crate::words::{
    ActionWord, EntryKind, IncidentKind, IncidentState, RequestState, StepKindName, StepStatus,
};

/// Store document kinds.
pub const INCIDENT: &str = "incident";
pub const REQUEST: &str = "request";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Incident {
    pub id: String,
    pub kind: IncidentKind,
    pub service: String,
    /// The release record's id (`service-n`), when a release is involved.
    pub release: Option<String>,
    pub policy_version: i64,
    pub severity: Severity,
    pub state: IncidentState,
    pub title: String,
    pub trigger: Option<TriggerFacts>,
    /// Every trigger that fired into this incident, in order.
    pub triggers: Vec<String>,
    /// Categories of the deciding signals; `safety` and `fairness` make the
    /// incident a safety lead's to close.
    pub categories: Vec<Category>,
    /// The evidence of the decision that opened the incident.
    pub signals: Vec<Value>,
    pub detected_at: String,
    pub opened_at: String,
    /// The acknowledgement deadline.
    #[serde(default)]
    pub ack_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
    pub reviewed_at: Option<String>,
    pub escalation_level: u32,
    pub next_update_by: Option<String>,
    /// The content address of the evidence bundle frozen at open.
    pub evidence: Option<String>,
    pub steps: Vec<StepState>,
    pub approvals: Vec<Vote>,
    pub review: Option<Review>,
    /// Policy versions that cite this incident as the one they answer.
    #[serde(default)]
    pub policy_changes: Vec<i64>,
    /// The regulatory class, awareness, reporting deadline and filed
    /// reports, once someone classified the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regulatory: Option<Regulatory>,
    pub timeline: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TriggerFacts {
    pub name: String,
    pub severity: Severity,
    pub action: ActionWord,
}

/// The current release as templates see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    pub id: String,
    pub baseline: String,
    pub candidate: String,
    pub share: f64,
    /// The policy version the release runs under (not one of the facts;
    /// 0 when read back).
    #[serde(skip)]
    pub policy_version: i64,
}

/// What a post-incident report is written from: the incident record as
/// stored (and as `GET /v1/incidents/{id}` answers it) and the release it
/// concerns, if any. `ripcord report` builds it from the store or reads it
/// from a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentReport {
    pub incident: Incident,
    #[serde(default)]
    pub release: Option<ReleaseFacts>,
}

/// One line of an incident's timeline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub at: String,
    pub kind: EntryKind,
    /// A principal's name, or `engine`.
    pub actor: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// A playbook step as the incident tracks it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepState {
    pub playbook: String,
    pub name: String,
    pub kind: StepKindName,
    pub owner: String,
    pub due_at: String,
    pub status: StepStatus,
    pub done_at: Option<String>,
    pub done_by: Option<String>,
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Vote {
    pub request: String,
    pub action: ActionWord,
    pub by: String,
    /// The person whose token voted (votes stored before persons existed
    /// count the token's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    pub role: String,
    pub approve: bool,
    pub at: String,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Review {
    pub signed_off_by: String,
    pub role: String,
    pub at: String,
    pub summary: String,
    pub action_items: Vec<ActionItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionItem {
    pub text: String,
    pub owner: String,
    /// RFC 3339 date or time.
    #[serde(default)]
    pub due: Option<String>,
}

/// A release action waiting for approvals: asked for by a trigger (the
/// engine froze the rollout) or by a person under the policy's decision
/// rights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub id: String,
    pub service: String,
    pub release: String,
    pub action: ActionWord,
    /// The trigger that asked, for trigger approvals.
    pub trigger: Option<String>,
    pub incident: Option<String>,
    pub requested_by: String,
    /// The person whose token asked, for separation of duties; `None` for
    /// the engine's requests and requests stored before persons existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_person: Option<String>,
    pub requested_at: String,
    pub reason: Option<String>,
    /// Roles that may approve.
    pub roles: Vec<String>,
    pub quorum: u32,
    /// The requester may not approve.
    pub separation: bool,
    pub deadline: String,
    pub on_timeout: OnTimeout,
    pub state: RequestState,
    pub outcome: Option<String>,
    pub votes: Vec<Vote>,
    /// The playbook step that asked, if any.
    #[serde(default)]
    pub step: Option<String>,
}

impl Incident {
    /// A new open incident of `service`, detected and opened at `at`, with
    /// nothing acknowledged, scheduled or recorded yet. Callers fill in
    /// what they know (kind, severity, title, trigger, release, signals).
    pub fn opened(id: String, service: &str, at: Time) -> Incident {
        Incident {
            id,
            kind: IncidentKind::Real,
            service: service.to_string(),
            release: None,
            policy_version: 0,
            severity: Severity::Major,
            state: IncidentState::Open,
            title: String::new(),
            trigger: None,
            triggers: Vec::new(),
            categories: Vec::new(),
            signals: Vec::new(),
            detected_at: at.to_rfc3339(),
            opened_at: at.to_rfc3339(),
            ack_by: None,
            acknowledged_at: None,
            acknowledged_by: None,
            mitigated_at: None,
            resolved_at: None,
            reviewed_at: None,
            escalation_level: 0,
            next_update_by: None,
            evidence: None,
            steps: Vec::new(),
            approvals: Vec::new(),
            review: None,
            policy_changes: Vec::new(),
            regulatory: None,
            timeline: Vec::new(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }

    /// Safety and fairness incidents belong to the safety lead.
    pub fn needs_safety_lead(&self) -> bool {
        self.categories
            .iter()
            .any(|c| matches!(c, Category::Safety | Category::Fairness))
    }

    pub fn note(&mut self, at: Time, kind: EntryKind, actor: &str, summary: String, detail: Value) {
        self.timeline.push(Entry {
            at: at.to_rfc3339(),
            kind,
            actor: actor.into(),
            summary,
            detail,
        });
    }

    /// Moves the incident to `to`, if that is the next state, and stamps
    /// the transition's time.
    pub fn transition(
        &mut self,
        to: IncidentState,
        at: Time,
        actor: &str,
        why: &str,
    ) -> Result<(), String> {
        if self.state.next() != Some(to) {
            return Err(format!(
                "incident {} is {}; it can move only to {}",
                self.id,
                self.state,
                self.state
                    .next()
                    .map_or("nothing (it is reviewed)", IncidentState::as_str)
            ));
        }
        let stamp = Some(at.to_rfc3339());
        match to {
            IncidentState::Mitigated => self.mitigated_at = stamp,
            IncidentState::Resolved => {
                self.resolved_at = stamp;
                self.next_update_by = None;
            }
            _ => self.reviewed_at = stamp,
        }
        let from = std::mem::replace(&mut self.state, to);
        self.note(
            at,
            EntryKind::State,
            actor,
            format!("{from} → {to}: {why}"),
            json!({"from": from, "to": to}),
        );
        Ok(())
    }

    /// The trigger that opened the incident. A declared incident (or
    /// drill) has none: it is named by its title.
    pub fn trigger_facts(&self) -> TriggerFacts {
        self.trigger.clone().unwrap_or_else(|| TriggerFacts {
            name: format!("declared: {}", self.title),
            severity: self.severity,
            action: ActionWord::NoAction,
        })
    }

    /// The facts templates are rendered with (`docs/notifications.md`).
    pub fn facts(&self, release: Option<Value>, message: Option<&str>, link: &str) -> Value {
        json!({
            "incident": {
                "id": self.id,
                "kind": self.kind,
                "severity": self.severity,
                "state": self.state,
                "title": self.title,
                "opened_at": self.opened_at,
                "ack_by": self.ack_by,
                "acknowledged_at": self.acknowledged_at,
                "acknowledged_by": self.acknowledged_by,
                "mitigated_at": self.mitigated_at,
                "resolved_at": self.resolved_at,
                "next_update_by": self.next_update_by,
                "escalation_level": self.escalation_level,
            },
            "service": self.service,
            "release": release.unwrap_or(Value::Null),
            "trigger": self.trigger_facts(),
            "signals": self.signals,
            "message": message,
            "link": link,
            "regulatory": self.regulatory.as_ref().map(|r| json!({
                "class": r.class,
                "framework": r.framework,
                "aware_at": r.aware_at,
                "due_at": r.due_at,
                "reported_at": r.reported_at,
            })),
        })
    }
}

impl Request {
    pub fn approvals(&self) -> usize {
        self.votes.iter().filter(|v| v.approve).count()
    }

    /// Why `by` (the token of `person`, in `role`) may not vote on this
    /// request, if they may not. Separation of duties and "one vote each"
    /// count persons: one person's second token is the same approver.
    pub fn refuses(&self, by: &str, person: &str, role: &str) -> Option<String> {
        if self.state != RequestState::Pending {
            return Some(format!("request {} is already {}", self.id, self.state));
        }
        if !self.roles.iter().any(|r| r == role) {
            return Some(format!(
                "approving {} needs role {}; {by} has role {role}",
                self.action,
                self.roles.join(" or ")
            ));
        }
        let requester = self
            .requested_by_person
            .as_deref()
            .unwrap_or(&self.requested_by);
        // Named by token, and by person where the two differ.
        let who = if by == person {
            by.to_string()
        } else {
            format!("{person} (token {by})")
        };
        if self.separation && requester == person {
            return Some(format!(
                "separation of duties: {who} requested this {} and cannot approve it",
                self.action
            ));
        }
        if self
            .votes
            .iter()
            .any(|v| v.person.as_deref().unwrap_or(&v.by) == person)
        {
            return Some(format!("{who} has already voted on request {}", self.id));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        Incident {
            severity: Severity::Critical,
            categories: vec![Category::Safety],
            ..Incident::opened("inc-svc-1".into(), "svc", Time(1_000))
        }
    }

    #[test]
    fn states_move_only_forward_one_at_a_time() {
        let mut i = incident();
        let at = Time(1_000);
        assert_eq!(
            i.transition(IncidentState::Resolved, at, "ann", "x")
                .unwrap_err(),
            "incident inc-svc-1 is open; it can move only to mitigated"
        );
        i.transition(IncidentState::Mitigated, at, "engine", "rolled back")
            .unwrap();
        i.transition(IncidentState::Resolved, at, "ann", "fixed")
            .unwrap();
        i.transition(IncidentState::Reviewed, at, "bo", "signed off")
            .unwrap();
        assert_eq!(
            i.transition(IncidentState::Open, at, "ann", "x")
                .unwrap_err(),
            "incident inc-svc-1 is reviewed; it can move only to nothing (it is reviewed)"
        );
        let states: Vec<&str> = i.timeline.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(
            states,
            [
                "open → mitigated: rolled back",
                "mitigated → resolved: fixed",
                "resolved → reviewed: signed off"
            ]
        );
        assert!(i.needs_safety_lead());
    }
}
