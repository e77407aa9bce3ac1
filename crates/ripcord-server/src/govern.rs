//! Governance on the live service: incidents opened by fired triggers,
//! their timelines, acknowledgement deadlines and escalation on durable
//! timers, playbook steps, and approval requests with quorum and
//! separation of duties.
//!
//! Everything here changes a service's [`State`] under its lock and writes
//! the change — documents, timers, audit records, deliveries — in one
//! [`Batch`], like the engine's own inputs. Recovery does not replay any of
//! it: incidents, requests and timers are read back from the store.

use ripcord_core::engine::{Command, ReleaseState};
use ripcord_core::evidence::{FreezeInput, Redaction, freeze};
use ripcord_core::policy::governance::{ActionName, EscalationLevel, StepKind};
use ripcord_core::policy::{Action, Approval, Category, OnTimeout, Policy};
use ripcord_core::time::Dur;
use ripcord_core::{ActionKind, Decision, DecisionKind, Time};
use ripcord_store::{Batch, Doc, Timer, TimerChange};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::{ENGINE, State, audit};
use crate::incident::{
    INCIDENT, Incident, MITIGATED, OPEN, REQUEST, Request, StepState, TriggerFacts, Vote,
};

/// What governance needs besides the state.
pub struct Ctx<'a> {
    pub now: Time,
    pub service: &'a str,
    /// `http://host:port`, for links in notifications.
    pub link_base: &'a str,
    pub channels: &'a std::collections::BTreeMap<String, crate::notify::ChannelConfig>,
}

/// A timer's purpose, kept in its body.
#[derive(Debug, PartialEq)]
pub enum Due {
    Ack,
    Escalate(u32),
    Status,
    Step(String),
    Request,
}

pub fn timer_body(subject: &str, due: &Due) -> Value {
    match due {
        Due::Ack => json!({"subject": subject, "due": "ack"}),
        Due::Escalate(level) => json!({"subject": subject, "due": "escalate", "level": level}),
        Due::Status => json!({"subject": subject, "due": "status"}),
        Due::Step(name) => json!({"subject": subject, "due": "step", "step": name}),
        Due::Request => json!({"subject": subject, "due": "request"}),
    }
}

pub fn parse_due(body: &Value) -> Option<(String, Due)> {
    let subject = body.get("subject")?.as_str()?.to_string();
    let due = match body.get("due")?.as_str()? {
        "ack" => Due::Ack,
        "escalate" => Due::Escalate(body.get("level")?.as_u64()? as u32),
        "status" => Due::Status,
        "step" => Due::Step(body.get("step")?.as_str()?.to_string()),
        "request" => Due::Request,
        _ => return None,
    };
    Some((subject, due))
}

fn timer_id(subject: &str, due: &Due) -> String {
    match due {
        Due::Ack => format!("{subject}/ack"),
        Due::Escalate(level) => format!("{subject}/escalate/{level}"),
        Due::Status => format!("{subject}/status"),
        Due::Step(name) => format!("{subject}/step/{name}"),
        Due::Request => format!("{subject}/deadline"),
    }
}

pub fn set_timer(batch: &mut Batch, service: &str, subject: &str, due: Due, at: Time) {
    batch.timers.push(TimerChange::Set(Timer {
        id: timer_id(subject, &due),
        service: service.to_string(),
        due_ms: at.0,
        body: timer_body(subject, &due),
    }));
}

pub fn cancel_timer(batch: &mut Batch, subject: &str, due: Due) {
    batch
        .timers
        .push(TimerChange::Cancel(timer_id(subject, &due)));
}

/// Stores the incident and its audit record.
pub fn save_incident(batch: &mut Batch, inc: &Incident, at: Time, actor: &str, action: &str) {
    let created_ms = Time::parse_rfc3339(&inc.opened_at).map_or(at.0, |t| t.0);
    batch.docs.push(Doc {
        kind: INCIDENT.into(),
        id: inc.id.clone(),
        service: inc.service.clone(),
        created_ms,
        body: serde_json::to_value(inc).unwrap_or(Value::Null),
    });
    let detail = json!({
        "state": inc.state,
        "kind": inc.kind,
        "severity": inc.severity,
        "last": inc.timeline.last(),
    });
    batch.audit.push(audit(at, actor, action, &inc.id, detail));
}

pub fn save_request(batch: &mut Batch, req: &Request, at: Time, actor: &str, action: &str) {
    let created_ms = Time::parse_rfc3339(&req.requested_at).map_or(at.0, |t| t.0);
    batch.docs.push(Doc {
        kind: REQUEST.into(),
        id: req.id.clone(),
        service: req.service.clone(),
        created_ms,
        body: serde_json::to_value(req).unwrap_or(Value::Null),
    });
    let detail = json!({"state": req.state, "action": req.action, "votes": req.votes, "outcome": req.outcome});
    batch.audit.push(audit(at, actor, action, &req.id, detail));
}

pub fn category_name(c: Category) -> &'static str {
    match c {
        Category::UserExperience => "user_experience",
        Category::Quality => "quality",
        Category::Safety => "safety",
        Category::Operational => "operational",
        Category::Data => "data",
        Category::Fairness => "fairness",
    }
}

fn action_word(action: &Action) -> &'static str {
    match action {
        Action::Notify => "notify",
        Action::Pause => "pause",
        Action::PauseAndInvestigate => "pause_and_investigate",
        Action::Rollback { .. } => "rollback",
    }
}

/// The evidence records of a decision's record (its stored line, parsed).
fn evidence_of(record: &Value) -> Vec<Value> {
    record["explanation"]["evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Reacts to the engine's decisions for one live input.
/// `decisions` comes with each decision's record (its stored line,
/// parsed), which the timeline keeps.
pub fn on_decisions(
    ctx: &Ctx,
    state: &mut State,
    (decisions, records): (&[Decision], &[Value]),
    actor: &str,
    batch: &mut Batch,
) {
    for (d, record) in decisions.iter().zip(records) {
        match d.kind {
            DecisionKind::TriggerFired => open_or_join(ctx, state, d, record, batch),
            DecisionKind::ApprovalRequested => trigger_request(ctx, state, d, batch),
            DecisionKind::CriterionBreached
            | DecisionKind::CriterionNoData
            | DecisionKind::CriterionCleared => log_decision(ctx, state, d, record, batch),
            DecisionKind::Action => on_action(ctx, state, (d, record), actor, batch),
        }
    }
    settle_trigger_requests(ctx, state, decisions, batch);
}

/// The active real incident of the current release.
fn current_incident(state: &mut State) -> Option<&mut Incident> {
    let release = state.current.as_ref().map(|c| c.id.clone())?;
    state
        .incidents
        .iter_mut()
        .find(|i| i.is_active() && i.kind == "real" && i.release.as_deref() == Some(&release))
}

fn log_decision(ctx: &Ctx, state: &mut State, d: &Decision, record: &Value, batch: &mut Batch) {
    let Some(inc) = current_incident(state) else {
        return;
    };
    let summary = d.explanation.summary.clone();
    inc.note(d.at, "signal", ENGINE, summary, record.clone());
    let inc = inc.clone();
    save_incident(batch, &inc, ctx.now, ENGINE, "incident.timeline");
}

fn open_or_join(ctx: &Ctx, state: &mut State, d: &Decision, record: &Value, batch: &mut Batch) {
    let trigger_name = d.trigger.clone().unwrap_or_default();
    if let Some(inc) = current_incident(state) {
        if !inc.triggers.contains(&trigger_name) {
            inc.triggers.push(trigger_name.clone());
        }
        // A more severe trigger raises the incident's severity.
        if let Some(s) = d.severity
            && s > inc.severity()
        {
            inc.severity = s.as_str().to_string();
        }
        inc.note(
            d.at,
            "signal",
            ENGINE,
            d.explanation.summary.clone(),
            record.clone(),
        );
        let inc = inc.clone();
        save_incident(batch, &inc, ctx.now, ENGINE, "incident.join");
        return;
    }
    let mut inc = new_incident(ctx, state, (d, record), &trigger_name);
    freeze_evidence(ctx, state, &mut inc, batch);
    schedule(ctx, state, &mut inc, batch);
    notify_level(ctx, state, &mut inc, 0, "open", batch);
    state.incidents.push(inc.clone());
    crate::metrics::incident_opened(&inc.kind, &inc.severity);
    save_incident(batch, &inc, ctx.now, ENGINE, "incident.open");
}

/// The id of the service's next incident (`inc-<service>-<n>`).
pub fn next_incident_id(state: &mut State, service: &str) -> String {
    state.incidents_opened += 1;
    format!("inc-{service}-{}", state.incidents_opened)
}

fn new_incident(
    ctx: &Ctx,
    state: &mut State,
    (d, record): (&Decision, &Value),
    trigger_name: &str,
) -> Incident {
    let id = next_incident_id(state, ctx.service);
    let policy = &state.policy;
    let trigger = policy.triggers.iter().find(|t| t.name == trigger_name);
    let signals = evidence_of(record);
    let mut categories: Vec<String> = signals
        .iter()
        .filter_map(|e| e["signal"].as_str())
        .filter_map(|s| policy.signals.iter().find(|x| x.name == s))
        .map(|s| category_name(s.category).to_string())
        .collect();
    categories.sort();
    categories.dedup();
    let severity = d.severity.map_or("major", |s| s.as_str()).to_string();
    let release = state.current.as_ref();
    let mut inc = Incident {
        kind: if state.drill { "drill" } else { "real" }.into(),
        release: release.map(|r| r.id.clone()),
        policy_version: release.map_or(state.policy_version, |r| r.policy_version),
        severity: severity.clone(),
        title: format!("{trigger_name} ({severity}) on {}", ctx.service),
        trigger: trigger.map(|t| TriggerFacts {
            name: t.name.clone(),
            severity: t.severity.as_str().into(),
            action: action_word(&t.action).into(),
        }),
        triggers: vec![trigger_name.to_string()],
        categories,
        signals,
        detected_at: d.at.to_rfc3339(),
        ..Incident::opened(id, ctx.service, ctx.now)
    };
    inc.note(
        d.at,
        "signal",
        ENGINE,
        d.explanation.summary.clone(),
        record.clone(),
    );
    inc.note(
        ctx.now,
        "state",
        ENGINE,
        format!("incident opened ({})", inc.kind),
        Value::Null,
    );
    inc
}

/// Freezes the incident's evidence bundle — policy, release, provenance,
/// decisions, window statistics and the redacted event sample — as a
/// content-addressed blob in the same batch, and records its address.
pub fn freeze_evidence(ctx: &Ctx, state: &State, inc: &mut Incident, batch: &mut Batch) {
    let Some(sample) = state.evidence.sample.as_ref() else {
        return;
    };
    let rules = &state.policy.governance.evidence;
    let redaction = Redaction {
        drop: rules.drop.clone(),
        hash: rules.hash.clone(),
    };
    let frozen = freeze(FreezeInput {
        service: ctx.service,
        policy_version: inc.policy_version,
        policy_yaml: &state.evidence.policy_yaml,
        release: serde_json::to_value(&state.current).unwrap_or(Value::Null),
        provenance: state.evidence.provenance.clone(),
        decisions: state.evidence.decisions.clone(),
        sample,
        redaction: &redaction,
        frozen_at: ctx.now,
    });
    let detail = json!({
        "address": frozen.address,
        "events": frozen.bundle.events.len(),
        "decisions": state.evidence.decisions.len(),
    });
    inc.note(
        ctx.now,
        "evidence",
        ENGINE,
        format!("evidence bundle frozen: sha256:{}", frozen.address),
        detail.clone(),
    );
    inc.evidence = Some(frozen.address.clone());
    batch
        .audit
        .push(audit(ctx.now, ENGINE, "evidence.freeze", &inc.id, detail));
    batch.blobs.push((frozen.address, frozen.bytes));
}

/// The acknowledgement deadline, the escalation levels, the status-update
/// timer and the playbook steps of a new incident.
pub fn schedule(ctx: &Ctx, state: &State, inc: &mut Incident, batch: &mut Batch) {
    let rules = &state.policy.governance.incidents;
    let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(ctx.now);
    let ack = rules.ack.for_severity(inc.severity());
    inc.ack_by = Some((opened + ack).to_rfc3339());
    set_timer(batch, ctx.service, &inc.id, Due::Ack, opened + ack);
    for (level, l) in rules.escalation.iter().enumerate().skip(1) {
        set_timer(
            batch,
            ctx.service,
            &inc.id,
            Due::Escalate(level as u32),
            opened + l.after,
        );
    }
    if let Some(every) = rules.status_every {
        let next = opened + every;
        inc.next_update_by = Some(next.to_rfc3339());
        set_timer(batch, ctx.service, &inc.id, Due::Status, next);
    }
    let trigger = inc.triggers.first().cloned().unwrap_or_default();
    for playbook in state.policy.governance.playbooks_for(&trigger) {
        for step in &playbook.steps {
            let due = opened + step.within;
            inc.steps.push(StepState {
                playbook: playbook.name.clone(),
                name: step.name.clone(),
                kind: step.kind.as_str().into(),
                owner: step.owner.clone(),
                due_at: due.to_rfc3339(),
                status: "pending".into(),
                done_at: None,
                done_by: None,
                note: None,
                result: Value::Null,
            });
            set_timer(
                batch,
                ctx.service,
                &inc.id,
                Due::Step(step.name.clone()),
                due,
            );
            inc.note(
                ctx.now,
                "playbook",
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
    inc.note(
        ctx.now,
        "escalation",
        ENGINE,
        format!(
            "acknowledgement due by {} ({} incident)",
            (opened + ack).to_rfc3339(),
            inc.severity
        ),
        Value::Null,
    );
}

/// Notifies one escalation level's channels.
pub fn notify_level(
    ctx: &Ctx,
    state: &State,
    inc: &mut Incident,
    level: u32,
    event: &str,
    batch: &mut Batch,
) {
    let Some(l) = state
        .policy
        .governance
        .incidents
        .escalation
        .get(level as usize)
    else {
        return;
    };
    let template = l.template.clone().unwrap_or_else(|| "oncall".into());
    notify(ctx, state, inc, &l.channels, &template, event, None, batch);
}

/// Renders `template` with the incident's facts for each channel and
/// queues the deliveries; the timeline records each.
#[allow(clippy::too_many_arguments)]
pub fn notify(
    ctx: &Ctx,
    state: &State,
    inc: &mut Incident,
    channels: &[String],
    template: &str,
    event: &str,
    message: Option<&str>,
    batch: &mut Batch,
) {
    let release = state
        .current
        .as_ref()
        .filter(|c| Some(&c.id) == inc.release.as_ref())
        .map(|c| json!({"id": c.id, "baseline": c.baseline, "candidate": c.candidate, "share": c.share}));
    let link = format!("{}/v1/incidents/{}", ctx.link_base, inc.id);
    let facts = inc.facts(release, message, &link);
    for channel in channels {
        let summary = match crate::notify_bridge::queue(
            state, channel, template, event, &facts, ctx, batch,
        ) {
            Ok(()) => format!("{event} notification to {channel} ({template})"),
            Err(e) => format!("{event} notification to {channel} failed: {e}"),
        };
        inc.note(
            ctx.now,
            "notification",
            ENGINE,
            summary,
            json!({"channel": channel, "template": template, "event": event}),
        );
    }
}

fn escalation_levels(state: &State) -> &[EscalationLevel] {
    &state.policy.governance.incidents.escalation
}

/// Moves the incident one escalation level up and notifies that level; at
/// the last level, notifies it again.
pub fn escalate(ctx: &Ctx, state: &State, inc: &mut Incident, why: &str, batch: &mut Batch) {
    let levels = escalation_levels(state).len() as u32;
    if levels == 0 {
        inc.note(
            ctx.now,
            "escalation",
            ENGINE,
            format!("{why}; the policy has no escalation levels"),
            Value::Null,
        );
        return;
    }
    let next = (inc.escalation_level + 1).min(levels - 1);
    escalate_to(ctx, state, inc, next, why, batch);
}

/// Pages escalation `level` (again, when the incident is already there)
/// and says why on the timeline.
pub fn escalate_to(
    ctx: &Ctx,
    state: &State,
    inc: &mut Incident,
    level: u32,
    why: &str,
    batch: &mut Batch,
) {
    let summary = if level == inc.escalation_level {
        format!("{why}; already at the last level {level}, notified again")
    } else {
        format!("{why}; escalated to level {level}")
    };
    inc.escalation_level = level;
    crate::metrics::incident_escalated(&inc.kind);
    inc.note(
        ctx.now,
        "escalation",
        ENGINE,
        summary,
        json!({"level": level}),
    );
    notify_level(ctx, state, inc, level, "escalate", batch);
}

/// Stops the paging of an incident: its acknowledgement deadline and the
/// escalation levels still to come.
pub fn cancel_paging(state: &State, inc: &Incident, batch: &mut Batch) {
    cancel_timer(batch, &inc.id, Due::Ack);
    let levels = escalation_levels(state).len();
    for level in 1..levels {
        cancel_timer(batch, &inc.id, Due::Escalate(level as u32));
    }
}

fn on_action(
    ctx: &Ctx,
    state: &mut State,
    (d, record): (&Decision, &Value),
    actor: &str,
    batch: &mut Batch,
) {
    let summary = d.explanation.summary.clone();
    let complete = d.action == Some(ActionKind::RollbackComplete);
    let rolled_back = matches!(
        d.action,
        Some(ActionKind::RollbackStage | ActionKind::RollbackComplete)
    );
    if rolled_back && d.trigger.is_some() {
        supersede_requests(ctx, state, "rollback", &summary, batch);
    }
    let Some(inc) = current_incident(state) else {
        return;
    };
    let who = if d.trigger.is_some() { ENGINE } else { actor };
    inc.note(d.at, "action", who, summary, record.clone());
    if complete && inc.state == OPEN {
        let _ = inc.transition(MITIGATED, d.at, who, "the rollback is complete");
    }
    let inc = inc.clone();
    save_incident(batch, &inc, ctx.now, who, "incident.timeline");
}

/// A trigger's approval request: the engine froze the rollout until
/// enough approvers agree or the window ends.
fn trigger_request(ctx: &Ctx, state: &mut State, d: &Decision, batch: &mut Batch) {
    let Some(trigger) = d
        .trigger
        .as_ref()
        .and_then(|t| state.policy.triggers.iter().find(|x| &x.name == t))
        .cloned()
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
    let action = action_word(&trigger.action).to_string();
    let incident = current_incident(state).map(|i| i.id.clone());
    let req = new_request(
        ctx,
        state,
        NewRequest {
            action,
            trigger: Some(trigger.name.clone()),
            incident,
            requested_by: ENGINE.into(),
            reason: Some(d.explanation.summary.clone()),
            roles: vec![role.clone()],
            quorum: *quorum,
            separation: true,
            within: *within,
            on_timeout: *on_timeout,
        },
    );
    // The engine keeps the window itself; the request mirrors it.
    log_request(ctx, state, &req, "approval requested", batch);
    state.requests.push(req.clone());
    save_request(batch, &req, ctx.now, ENGINE, "request.open");
}

pub struct NewRequest {
    pub action: String,
    pub trigger: Option<String>,
    pub incident: Option<String>,
    pub requested_by: String,
    pub reason: Option<String>,
    pub roles: Vec<String>,
    pub quorum: u32,
    pub separation: bool,
    pub within: Dur,
    pub on_timeout: OnTimeout,
}

pub fn new_request(ctx: &Ctx, state: &mut State, n: NewRequest) -> Request {
    state.requests_made += 1;
    Request {
        id: format!("req-{}-{}", ctx.service, state.requests_made),
        service: ctx.service.to_string(),
        release: state
            .current
            .as_ref()
            .map_or(String::new(), |c| c.id.clone()),
        action: n.action,
        trigger: n.trigger,
        incident: n.incident,
        requested_by: n.requested_by,
        requested_by_person: None,
        requested_at: ctx.now.to_rfc3339(),
        reason: n.reason,
        roles: n.roles,
        quorum: n.quorum.max(1),
        separation: n.separation,
        deadline: (ctx.now + n.within).to_rfc3339(),
        on_timeout: match n.on_timeout {
            OnTimeout::Proceed => "proceed",
            OnTimeout::Hold => "hold",
        }
        .into(),
        state: "pending".into(),
        outcome: None,
        votes: Vec::new(),
        step: None,
    }
}

/// Notes a request's news on its incident's timeline.
pub fn log_request(ctx: &Ctx, state: &mut State, req: &Request, what: &str, batch: &mut Batch) {
    let Some(inc) = req
        .incident
        .as_ref()
        .and_then(|id| state.incidents.iter_mut().find(|i| &i.id == id))
    else {
        return;
    };
    inc.note(
        ctx.now,
        "approval",
        &req.requested_by,
        format!(
            "{what}: {} ({} of {} approvals by {}, deadline {})",
            req.action,
            req.approvals(),
            req.quorum,
            req.roles.join(" or "),
            req.deadline
        ),
        json!({"request": req.id, "state": req.state}),
    );
    let inc = inc.clone();
    save_incident(batch, &inc, ctx.now, ENGINE, "incident.timeline");
}

/// Trigger requests end when the engine leaves its approval wait: by our
/// own approve/reject, by a critical trigger overriding the wait, or by the
/// window running out.
fn settle_trigger_requests(
    ctx: &Ctx,
    state: &mut State,
    decisions: &[Decision],
    batch: &mut Batch,
) {
    let waiting = state
        .engine
        .as_ref()
        .and_then(|e| e.status())
        .is_some_and(|s| matches!(s.state, ReleaseState::AwaitingApproval { .. }));
    if waiting {
        return;
    }
    let override_note = decisions
        .iter()
        .find(|d| {
            d.explanation
                .summary
                .contains("overrides the pending approval")
        })
        .map(|d| d.explanation.summary.clone());
    let timed_out = decisions
        .iter()
        .find(|d| d.explanation.summary.contains("no approval by"))
        .map(|d| d.explanation.summary.clone());
    let mut settled = Vec::new();
    for req in state
        .requests
        .iter_mut()
        .filter(|r| r.trigger.is_some() && r.state == "pending")
    {
        let (to, why) = match (&override_note, &timed_out) {
            (Some(n), _) => ("superseded", n.clone()),
            (None, Some(n)) => ("expired", n.clone()),
            (None, None) => ("superseded", "the release moved on".to_string()),
        };
        req.state = to.into();
        req.outcome = Some(why);
        settled.push(req.clone());
    }
    for req in settled {
        log_request(ctx, state, &req, &req.state.clone(), batch);
        save_request(batch, &req, ctx.now, ENGINE, "request.settle");
    }
    state.requests.retain(|r| r.state == "pending");
}

/// A critical trigger's rollback supersedes people's pending requests for
/// the same release, and the record says so.
fn supersede_requests(ctx: &Ctx, state: &mut State, action: &str, why: &str, batch: &mut Batch) {
    let mut settled = Vec::new();
    for req in state
        .requests
        .iter_mut()
        .filter(|r| r.trigger.is_none() && r.state == "pending" && r.action == action)
    {
        req.state = "superseded".into();
        req.outcome = Some(format!("overridden while waiting for approval: {why}"));
        cancel_timer(batch, &req.id, Due::Request);
        settled.push(req.clone());
    }
    for req in settled {
        log_request(ctx, state, &req, "superseded", batch);
        save_request(batch, &req, ctx.now, ENGINE, "request.settle");
    }
    state.requests.retain(|r| r.state == "pending");
}

pub fn command_of(action: ActionName) -> Command {
    match action {
        ActionName::Promote => Command::Promote,
        ActionName::Rollback => Command::Rollback,
        ActionName::ReRelease => Command::ReRelease,
        ActionName::Pause => Command::Pause,
        ActionName::Resume => Command::Resume,
    }
}

/// Records a vote. Returns whether the request is now decided.
pub fn vote(
    ctx: &Ctx,
    req: &mut Request,
    by: &Principal,
    approve: bool,
    note: Option<String>,
) -> Result<Vote, ApiError> {
    let (role, person) = (by.role.as_str(), by.person.as_str());
    let by = by.name.as_str();
    if let Some(why) = req.refuses(by, person, role) {
        return Err(if why.contains("already") {
            ApiError::conflict(why)
        } else {
            ApiError::forbidden(why)
        });
    }
    let v = Vote {
        request: req.id.clone(),
        action: req.action.clone(),
        by: by.into(),
        person: Some(person.into()),
        role: role.into(),
        approve,
        at: ctx.now.to_rfc3339(),
        note,
    };
    req.votes.push(v.clone());
    if !approve {
        req.state = "rejected".into();
        req.outcome = Some(format!("rejected by {by}"));
    } else if req.approvals() >= req.quorum as usize {
        req.state = "approved".into();
        let names: Vec<&str> = req
            .votes
            .iter()
            .filter(|v| v.approve)
            .map(|v| v.by.as_str())
            .collect();
        req.outcome = Some(format!("approved by {}", names.join(", ")));
    }
    Ok(v)
}

/// The policy a new incident's step kind refers to, by step name.
pub fn step_kind(policy: &Policy, inc: &Incident, name: &str) -> Option<StepKind> {
    let state = inc.steps.iter().find(|s| s.name == name)?;
    policy
        .governance
        .playbooks
        .iter()
        .find(|p| p.name == state.playbook)?
        .steps
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.kind.clone())
}
