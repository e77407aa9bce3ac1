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
use ripcord_core::policy::governance::{ActionName, StepKind};
use ripcord_core::policy::{Action, Approval, Category, OnTimeout, Policy, Severity};
use ripcord_core::time::Dur;
use ripcord_core::{ActionKind, Decision, DecisionKind, Time};
use ripcord_govern::machine;
use ripcord_govern::{
    DocChange, Due, Effects, Metric, Refusal, ReleaseFacts, Setting, TimerChange as MachineTimer,
};
use ripcord_store::{Batch, Doc, Timer, TimerChange};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::{ENGINE, ReleaseView, State, audit};
use crate::incident::{
    EntryKind, INCIDENT, Incident, IncidentKind, IncidentState, REQUEST, Request, RequestState,
    TriggerFacts, Vote,
};
use crate::notify::NotifyKind;
use crate::notify_bridge::Bridge;

/// What governance needs besides the state.
pub struct Ctx<'a> {
    pub now: Time,
    pub service: &'a str,
    /// `http://host:port`, for links in notifications.
    pub link_base: &'a str,
    pub channels: &'a std::collections::BTreeMap<String, crate::notify::ChannelConfig>,
}

/// Writes the machine's effects into the batch: the one place where
/// governance documents and timer bodies are serialised for the store.
pub fn apply(service: &str, now: Time, fx: Effects, batch: &mut Batch) {
    for doc in fx.docs {
        batch.docs.push(store_doc(doc, now));
    }
    for change in fx.timers {
        batch.timers.push(store_timer(service, change));
    }
    for a in fx.audit {
        batch
            .audit
            .push(audit(a.at, &a.actor, &a.action, &a.subject, a.detail));
    }
    for m in fx.metrics {
        match m {
            Metric::IncidentOpened { kind, severity } => {
                crate::metrics::incident_opened(kind.as_str(), severity.as_str());
            }
            Metric::IncidentEscalated { kind } => crate::metrics::incident_escalated(kind.as_str()),
        }
    }
}

fn store_doc(doc: DocChange, now: Time) -> Doc {
    let (kind, id, service, created, body) = match doc {
        DocChange::Incident(inc) => (
            INCIDENT,
            inc.id.clone(),
            inc.service.clone(),
            inc.opened_at.clone(),
            serde_json::to_value(&inc),
        ),
        DocChange::Request(req) => (
            REQUEST,
            req.id.clone(),
            req.service.clone(),
            req.requested_at.clone(),
            serde_json::to_value(&req),
        ),
    };
    Doc {
        kind: kind.into(),
        id,
        service,
        created_ms: Time::parse_rfc3339(&created).map_or(now.0, |t| t.0),
        body: body.unwrap_or(Value::Null),
    }
}

fn store_timer(service: &str, change: MachineTimer) -> TimerChange {
    match change {
        MachineTimer::Set { body, at } => TimerChange::Set(Timer {
            id: body.due.id(&body.subject),
            service: service.to_string(),
            due_ms: at.0,
            body: serde_json::to_value(&body).unwrap_or(Value::Null),
        }),
        MachineTimer::Cancel { id } => TimerChange::Cancel(id),
    }
}

/// Runs `f` against the machine's setting for this service — its policy,
/// current release and the notification bridge — and writes what it did
/// into the batch.
pub fn drive<R>(
    ctx: &Ctx,
    (policy, current): (&Policy, Option<&ReleaseView>),
    batch: &mut Batch,
    f: impl FnOnce(&Setting, &mut Effects) -> R,
) -> R {
    let bridge = Bridge::new(ctx.channels, policy, ctx.now);
    let release = current.map(|c| ReleaseFacts {
        id: c.id.clone(),
        baseline: c.baseline.clone(),
        candidate: c.candidate.clone(),
        share: c.share,
    });
    let setting = Setting {
        now: ctx.now,
        service: ctx.service,
        policy,
        release: release.as_ref(),
        link_base: ctx.link_base,
        messenger: &bridge,
    };
    let mut fx = Effects::default();
    let answer = f(&setting, &mut fx);
    apply(ctx.service, ctx.now, fx, batch);
    batch.outbox.extend(bridge.into_queued());
    answer
}

pub fn set_timer(batch: &mut Batch, service: &str, subject: &str, due: Due, at: Time) {
    let change = MachineTimer::set(subject, due, at);
    batch.timers.push(store_timer(service, change));
}

pub fn cancel_timer(batch: &mut Batch, subject: &str, due: Due) {
    batch.timers.push(TimerChange::Cancel(due.id(subject)));
}

/// The API's answer to a refused command.
pub fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::BadRequest(m) => ApiError::bad_request(m),
        Refusal::Forbidden(m) => ApiError::forbidden(m),
        Refusal::NotFound(m) => ApiError::not_found(m),
        Refusal::Conflict(m) => ApiError::conflict(m),
    }
}

/// Stores the incident and its audit record.
pub fn save_incident(batch: &mut Batch, inc: &Incident, at: Time, actor: &str, action: &str) {
    let mut fx = Effects::default();
    machine::save_incident(&mut fx, inc, at, actor, action);
    apply(&inc.service, at, fx, batch);
}

pub fn save_request(batch: &mut Batch, req: &Request, at: Time, actor: &str, action: &str) {
    let mut fx = Effects::default();
    machine::save_request(&mut fx, req, at, actor, action);
    apply(&req.service, at, fx, batch);
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
    state.gov.incidents.iter_mut().find(|i| {
        i.is_active() && i.kind == IncidentKind::Real && i.release.as_deref() == Some(&release)
    })
}

fn log_decision(ctx: &Ctx, state: &mut State, d: &Decision, record: &Value, batch: &mut Batch) {
    let Some(inc) = current_incident(state) else {
        return;
    };
    let summary = d.explanation.summary.clone();
    inc.note(d.at, EntryKind::Signal, ENGINE, summary, record.clone());
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
            && s > inc.severity
        {
            inc.severity = s;
        }
        inc.note(
            d.at,
            EntryKind::Signal,
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
    notify_level(ctx, state, &mut inc, 0, NotifyKind::Open, batch);
    state.gov.incidents.push(inc.clone());
    crate::metrics::incident_opened(inc.kind.as_str(), inc.severity.as_str());
    save_incident(batch, &inc, ctx.now, ENGINE, "incident.open");
}

/// The id of the service's next incident (`inc-<service>-<n>`).
pub fn next_incident_id(state: &mut State, service: &str) -> String {
    state.gov.next_incident_id(service)
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
    let mut categories: Vec<Category> = signals
        .iter()
        .filter_map(|e| e["signal"].as_str())
        .filter_map(|s| policy.signals.iter().find(|x| x.name == s))
        .map(|s| s.category)
        .collect();
    // By name, as the stored documents have always listed them.
    categories.sort_by_key(|c| c.as_str());
    categories.dedup();
    let severity = d.severity.unwrap_or(Severity::Major);
    let release = state.current.as_ref();
    let mut inc = Incident {
        kind: if state.drill {
            IncidentKind::Drill
        } else {
            IncidentKind::Real
        },
        release: release.map(|r| r.id.clone()),
        policy_version: release.map_or(state.policy_version, |r| r.policy_version),
        severity,
        title: format!("{trigger_name} ({}) on {}", severity.as_str(), ctx.service),
        trigger: trigger.map(|t| TriggerFacts {
            name: t.name.clone(),
            severity: t.severity,
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
        EntryKind::Signal,
        ENGINE,
        d.explanation.summary.clone(),
        record.clone(),
    );
    inc.note(
        ctx.now,
        EntryKind::State,
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
        EntryKind::Evidence,
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
    let on = (&state.policy, state.current.as_ref());
    drive(ctx, on, batch, |s, fx| machine::schedule(s, inc, fx));
}

/// Notifies one escalation level's channels.
pub fn notify_level(
    ctx: &Ctx,
    state: &State,
    inc: &mut Incident,
    level: u32,
    event: NotifyKind,
    batch: &mut Batch,
) {
    let on = (&state.policy, state.current.as_ref());
    drive(ctx, on, batch, |s, fx| {
        machine::notify_level(s, inc, level, event, fx);
    });
}

/// Renders `template` with the incident's facts for each channel and
/// queues the deliveries; the timeline records each.
pub fn notify(
    ctx: &Ctx,
    state: &State,
    inc: &mut Incident,
    route: (&[String], &str),
    event: NotifyKind,
    message: Option<&str>,
    batch: &mut Batch,
) {
    let on = (&state.policy, state.current.as_ref());
    drive(ctx, on, batch, |s, fx| {
        machine::notify(s, inc, route, event, message, fx);
    });
}

/// Stops the paging of an incident.
pub fn cancel_paging(ctx: &Ctx, state: &State, inc: &Incident, batch: &mut Batch) {
    let on = (&state.policy, state.current.as_ref());
    drive(ctx, on, batch, |s, fx| machine::cancel_paging(s, inc, fx));
}

/// A resolved incident has no timers left.
pub fn close_timers(ctx: &Ctx, state: &State, inc: &Incident, batch: &mut Batch) {
    let on = (&state.policy, state.current.as_ref());
    drive(ctx, on, batch, |s, fx| machine::close_timers(s, inc, fx));
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
    inc.note(d.at, EntryKind::Action, who, summary, record.clone());
    if complete && inc.state == IncidentState::Open {
        let _ = inc.transition(
            IncidentState::Mitigated,
            d.at,
            who,
            "the rollback is complete",
        );
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
    state.gov.requests.push(req.clone());
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
    state.gov.requests_made += 1;
    Request {
        id: format!("req-{}-{}", ctx.service, state.gov.requests_made),
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
        on_timeout: n.on_timeout,
        state: RequestState::Pending,
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
        .and_then(|id| state.gov.incidents.iter_mut().find(|i| &i.id == id))
    else {
        return;
    };
    inc.note(
        ctx.now,
        EntryKind::Approval,
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
        .gov
        .requests
        .iter_mut()
        .filter(|r| r.trigger.is_some() && r.state == RequestState::Pending)
    {
        let (to, why) = match (&override_note, &timed_out) {
            (Some(n), _) => (RequestState::Superseded, n.clone()),
            (None, Some(n)) => (RequestState::Expired, n.clone()),
            (None, None) => (RequestState::Superseded, "the release moved on".to_string()),
        };
        req.state = to;
        req.outcome = Some(why);
        settled.push(req.clone());
    }
    for req in settled {
        log_request(ctx, state, &req, req.state.as_str(), batch);
        save_request(batch, &req, ctx.now, ENGINE, "request.settle");
    }
    state
        .gov
        .requests
        .retain(|r| r.state == RequestState::Pending);
}

/// A critical trigger's rollback supersedes people's pending requests for
/// the same release, and the record says so.
fn supersede_requests(ctx: &Ctx, state: &mut State, action: &str, why: &str, batch: &mut Batch) {
    let mut settled = Vec::new();
    for req in
        state.gov.requests.iter_mut().filter(|r| {
            r.trigger.is_none() && r.state == RequestState::Pending && r.action == action
        })
    {
        req.state = RequestState::Superseded;
        req.outcome = Some(format!("overridden while waiting for approval: {why}"));
        cancel_timer(batch, &req.id, Due::Request);
        settled.push(req.clone());
    }
    for req in settled {
        log_request(ctx, state, &req, "superseded", batch);
        save_request(batch, &req, ctx.now, ENGINE, "request.settle");
    }
    state
        .gov
        .requests
        .retain(|r| r.state == RequestState::Pending);
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
        req.state = RequestState::Rejected;
        req.outcome = Some(format!("rejected by {by}"));
    } else if req.approvals() >= req.quorum as usize {
        req.state = RequestState::Approved;
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
