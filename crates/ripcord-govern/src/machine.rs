//! The governance machine of one service: its active incidents and pending
//! requests, and what happens to them when a timer fires. Every method
//! takes the time and the service's setting as input and returns
//! [`Effects`]; nothing here reads a clock or a store.

use ripcord_core::Time;
use ripcord_core::policy::Policy;
use ripcord_core::policy::governance::EscalationLevel;
use serde_json::{Value, json};

use crate::decisions::Evidence;
use crate::effects::{AuditRecord, DocChange, Effects, Messenger, Metric, Notification};
use crate::record::{
    EntryKind, Incident, ReleaseFacts, Request, RequestState, StepKindName, StepState, StepStatus,
};
use crate::timer::{Due, TimerBody, TimerChange};
use crate::words::NotifyKind;

/// Who the machine's own changes are by.
pub const ENGINE: &str = "engine";

/// A service's governance: active incidents and pending requests, and how
/// many of each it ever made (for their ids).
#[derive(Debug, Default)]
pub struct Governance {
    /// Open and mitigated incidents.
    pub incidents: Vec<Incident>,
    /// Approval requests still pending.
    pub requests: Vec<Request>,
    pub incidents_opened: usize,
    pub requests_made: usize,
}

/// What the machine reads besides its own state: the time, the policy in
/// force, the current release and where messages go.
pub struct Setting<'a> {
    pub now: Time,
    pub service: &'a str,
    pub policy: &'a Policy,
    /// The version of the policy in force.
    pub policy_version: i64,
    pub release: Option<&'a ReleaseFacts>,
    /// The current release is a drill: its incidents are drills too.
    pub drill: bool,
    pub evidence: &'a dyn Evidence,
    /// `http://host:port`, for links in notifications.
    pub link_base: &'a str,
    pub messenger: &'a dyn Messenger,
}

impl Governance {
    /// Starts from the stored documents: every incident and request the
    /// service has, of which the active ones are kept.
    pub fn from_stored(incidents: Vec<Incident>, requests: Vec<Request>) -> Governance {
        Governance {
            incidents_opened: incidents.len(),
            requests_made: requests.len(),
            incidents: incidents.into_iter().filter(|i| i.is_active()).collect(),
            requests: requests
                .into_iter()
                .filter(|r| r.state == RequestState::Pending)
                .collect(),
        }
    }

    /// The id of the service's next incident (`inc-<service>-<n>`).
    pub fn next_incident_id(&mut self, service: &str) -> String {
        self.incidents_opened += 1;
        format!("inc-{service}-{}", self.incidents_opened)
    }

    /// Keeps the list of active incidents in step with `inc`.
    pub fn store_active(&mut self, inc: &Incident) {
        self.incidents.retain(|i| i.id != inc.id);
        if inc.is_active() {
            self.incidents.push(inc.clone());
        }
    }

    /// An incident timer fired: a missed acknowledgement or status update
    /// escalates, a due escalation level pages, an overdue playbook step
    /// escalates. Request windows are the driver's: closing one may run a
    /// release command.
    pub fn on_timer(&mut self, s: &Setting, timer: &TimerBody) -> Effects {
        let mut fx = Effects::default();
        let Some(mut inc) = self
            .incidents
            .iter()
            .find(|i| i.id == timer.subject)
            .cloned()
        else {
            return fx;
        };
        let acked = inc.acknowledged_at.is_some();
        match &timer.due {
            Due::Ack if !acked => {
                let why = format!(
                    "not acknowledged within the {} deadline",
                    inc.severity.as_str()
                );
                escalate(s, &mut inc, &why, &mut fx);
            }
            Due::Escalate { level } if !acked && *level > inc.escalation_level => {
                escalate_to(s, &mut inc, *level, "not acknowledged", &mut fx);
            }
            Due::Status if inc.is_active() => missed_status(s, &mut inc, &mut fx),
            Due::Step { step } => {
                let Some(state) = inc.steps.iter_mut().find(|x| {
                    &x.name == step
                        && matches!(x.status, StepStatus::Pending | StepStatus::Requested)
                }) else {
                    return fx;
                };
                state.status = StepStatus::Overdue;
                let why = format!("playbook step {step} is overdue (owner {})", state.owner);
                escalate(s, &mut inc, &why, &mut fx);
            }
            _ => return fx,
        }
        self.store_active(&inc);
        save_incident(&mut fx, &inc, s.now, ENGINE, "incident.timer");
        fx
    }
}

fn missed_status(s: &Setting, inc: &mut Incident, fx: &mut Effects) {
    let why = format!(
        "status update missed (was due by {})",
        inc.next_update_by.clone().unwrap_or_default()
    );
    escalate(s, inc, &why, fx);
    if let Some(every) = s.policy.governance.incidents.status_every {
        inc.next_update_by = Some((s.now + every).to_rfc3339());
        fx.timers
            .push(TimerChange::set(&inc.id, Due::Status, s.now + every));
    }
}

/// Stores the incident as it now is, with its audit record.
pub fn save_incident(fx: &mut Effects, inc: &Incident, at: Time, actor: &str, action: &str) {
    fx.docs.push(DocChange::Incident(Box::new(inc.clone())));
    let detail = json!({
        "state": inc.state,
        "kind": inc.kind,
        "severity": inc.severity,
        "last": inc.timeline.last(),
    });
    fx.audit.push(AuditRecord {
        at,
        actor: actor.into(),
        action: action.into(),
        subject: inc.id.clone(),
        detail,
    });
}

/// Stores the request as it now is, with its audit record.
pub fn save_request(fx: &mut Effects, req: &Request, at: Time, actor: &str, action: &str) {
    fx.docs.push(DocChange::Request(Box::new(req.clone())));
    let detail = json!({"state": req.state, "action": req.action, "votes": req.votes, "outcome": req.outcome});
    fx.audit.push(AuditRecord {
        at,
        actor: actor.into(),
        action: action.into(),
        subject: req.id.clone(),
        detail,
    });
}

/// The acknowledgement deadline, the escalation levels, the status-update
/// timer and the playbook steps of a new incident.
pub fn schedule(s: &Setting, inc: &mut Incident, fx: &mut Effects) {
    let rules = &s.policy.governance.incidents;
    let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(s.now);
    let ack = rules.ack.for_severity(inc.severity);
    inc.ack_by = Some((opened + ack).to_rfc3339());
    fx.timers
        .push(TimerChange::set(&inc.id, Due::Ack, opened + ack));
    for (level, l) in rules.escalation.iter().enumerate().skip(1) {
        let due = Due::Escalate {
            level: level as u32,
        };
        fx.timers
            .push(TimerChange::set(&inc.id, due, opened + l.after));
    }
    if let Some(every) = rules.status_every {
        let next = opened + every;
        inc.next_update_by = Some(next.to_rfc3339());
        fx.timers.push(TimerChange::set(&inc.id, Due::Status, next));
    }
    schedule_steps(s, inc, opened, fx);
    inc.note(
        s.now,
        EntryKind::Escalation,
        ENGINE,
        format!(
            "acknowledgement due by {} ({} incident)",
            (opened + ack).to_rfc3339(),
            inc.severity.as_str()
        ),
        Value::Null,
    );
}

/// The steps of the playbooks for the incident's first trigger, each with
/// its due time.
fn schedule_steps(s: &Setting, inc: &mut Incident, opened: Time, fx: &mut Effects) {
    let trigger = inc.triggers.first().cloned().unwrap_or_default();
    for playbook in s.policy.governance.playbooks_for(&trigger) {
        for step in &playbook.steps {
            let due = opened + step.within;
            inc.steps.push(StepState {
                playbook: playbook.name.clone(),
                name: step.name.clone(),
                kind: StepKindName::of(&step.kind),
                owner: step.owner.clone(),
                due_at: due.to_rfc3339(),
                status: StepStatus::Pending,
                done_at: None,
                done_by: None,
                note: None,
                result: Value::Null,
            });
            let step_due = Due::Step {
                step: step.name.clone(),
            };
            fx.timers.push(TimerChange::set(&inc.id, step_due, due));
            inc.note(
                s.now,
                EntryKind::Playbook,
                ENGINE,
                format!(
                    "step {} ({}, owner {}) due by {}",
                    step.name,
                    step.kind.as_str(),
                    step.owner,
                    due.to_rfc3339()
                ),
                Value::Null,
            );
        }
    }
}

/// Notifies one escalation level's channels.
pub fn notify_level(
    s: &Setting,
    inc: &mut Incident,
    level: u32,
    kind: NotifyKind,
    fx: &mut Effects,
) {
    let Some(l) = escalation_levels(s).get(level as usize) else {
        return;
    };
    let template = l.template.clone().unwrap_or_else(|| "oncall".into());
    notify(s, inc, (&l.channels, &template), kind, None, fx);
}

/// Renders `template` with the incident's facts for each channel and
/// queues the deliveries; the timeline records each, or why it failed.
pub fn notify(
    s: &Setting,
    inc: &mut Incident,
    (channels, template): (&[String], &str),
    kind: NotifyKind,
    message: Option<&str>,
    fx: &mut Effects,
) {
    let release = s
        .release
        .filter(|r| Some(&r.id) == inc.release.as_ref())
        .map(ripcord_core::json::value);
    let link = format!("{}/v1/incidents/{}", s.link_base, inc.id);
    let facts = inc.facts(release, message, &link);
    for channel in channels {
        let n = Notification {
            incident: inc.id.clone(),
            channel: channel.clone(),
            template: template.to_string(),
            kind,
            facts: facts.clone(),
        };
        let summary = match s.messenger.queue(&n) {
            Ok(()) => {
                fx.notifications.push(n);
                format!("{kind} notification to {channel} ({template})")
            }
            Err(e) => format!("{kind} notification to {channel} failed: {e}"),
        };
        inc.note(
            s.now,
            EntryKind::Notification,
            ENGINE,
            summary,
            json!({"channel": channel, "template": template, "event": kind}),
        );
    }
}

fn escalation_levels<'a>(s: &Setting<'a>) -> &'a [EscalationLevel] {
    &s.policy.governance.incidents.escalation
}

/// Moves the incident one escalation level up and notifies that level; at
/// the last level, notifies it again.
pub fn escalate(s: &Setting, inc: &mut Incident, why: &str, fx: &mut Effects) {
    let levels = escalation_levels(s).len() as u32;
    if levels == 0 {
        inc.note(
            s.now,
            EntryKind::Escalation,
            ENGINE,
            format!("{why}; the policy has no escalation levels"),
            Value::Null,
        );
        return;
    }
    let next = (inc.escalation_level + 1).min(levels - 1);
    escalate_to(s, inc, next, why, fx);
}

/// Pages escalation `level` (again, when the incident is already there)
/// and says why on the timeline.
pub fn escalate_to(s: &Setting, inc: &mut Incident, level: u32, why: &str, fx: &mut Effects) {
    let summary = if level == inc.escalation_level {
        format!("{why}; already at the last level {level}, notified again")
    } else {
        format!("{why}; escalated to level {level}")
    };
    inc.escalation_level = level;
    fx.metrics
        .push(Metric::IncidentEscalated { kind: inc.kind });
    inc.note(
        s.now,
        EntryKind::Escalation,
        ENGINE,
        summary,
        json!({"level": level}),
    );
    notify_level(s, inc, level, NotifyKind::Escalate, fx);
}

/// Stops the paging of an incident: its acknowledgement deadline and the
/// escalation levels still to come.
pub fn cancel_paging(s: &Setting, inc: &Incident, fx: &mut Effects) {
    fx.timers.push(TimerChange::cancel(&inc.id, &Due::Ack));
    for level in 1..escalation_levels(s).len() {
        let due = Due::Escalate {
            level: level as u32,
        };
        fx.timers.push(TimerChange::cancel(&inc.id, &due));
    }
}

/// A resolved incident has no timers left.
pub fn close_timers(s: &Setting, inc: &Incident, fx: &mut Effects) {
    cancel_paging(s, inc, fx);
    fx.timers.push(TimerChange::cancel(&inc.id, &Due::Status));
    for step in &inc.steps {
        let due = Due::Step {
            step: step.name.clone(),
        };
        fx.timers.push(TimerChange::cancel(&inc.id, &due));
    }
}
