//! People's side of incidents on the live service: acknowledge, post a
//! status update, mitigate, resolve, review, run playbook steps, declare an
//! incident or a drill — and the timer worker that escalates what nobody
//! answered in time.

use std::sync::Arc;

use ripcord_core::policy::governance::StepKind;
use ripcord_core::policy::units::parse_duration;
use ripcord_store::Batch;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::checks;
use crate::error::ApiError;
use crate::govern::{self, Due};
use crate::hub::{ENGINE, Hub, Service, State};
use crate::incident::{
    ActionItem, INCIDENT, Incident, MITIGATED, RESOLVED, REVIEWED, Review, parse_severity,
};
use crate::writer::Durable;

/// Roles that close safety and fairness incidents.
const SAFETY_ROLES: &[&str] = &["safety_lead", "admin"];

/// What a person asks of an incident.
pub enum Ask {
    Acknowledge {
        note: Option<String>,
    },
    Status {
        message: String,
        next_update_in: Option<String>,
        channels: Option<Vec<String>>,
        template: Option<String>,
    },
    Mitigate {
        note: String,
    },
    Resolve {
        note: String,
    },
    Review {
        summary: String,
        action_items: Vec<ActionItem>,
    },
    Step {
        name: String,
        note: Option<String>,
    },
}

impl Hub {
    /// The incident as stored, with its service.
    async fn stored_incident(&self, id: &str) -> Result<(Arc<Service>, Incident), ApiError> {
        let inc = self.incident(id).await?;
        Ok((self.known(&inc.service)?, inc))
    }

    pub async fn incident(&self, id: &str) -> Result<Incident, ApiError> {
        let doc = self
            .store
            .doc(INCIDENT, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("incident \"{id}\" does not exist")))?;
        serde_json::from_value(doc.body)
            .map_err(|e| ApiError::unavailable(format!("incident {id} is unreadable: {e}")))
    }

    /// Applies a person's request to an incident and returns it as stored.
    pub async fn incident_ask(
        &self,
        id: &str,
        ask: Ask,
        principal: &Principal,
    ) -> Result<(Incident, Durable), ApiError> {
        let (service, stored) = self.stored_incident(id).await?;
        principal.require_service(&service.name)?;
        let mut state = service.state.lock().await;
        let mut inc = active_or(&state, stored);
        let now = self.now();
        let mut batch = Batch::default();
        let base = inc.timeline.len();
        let action = self
            .apply_ask(&service, &mut state, &mut inc, ask, principal, &mut batch)
            .await?;
        let ctx = self.ctx(&service.name, now);
        // A step may have changed the incident through the engine (an
        // action step's rollback mitigates it); take that newer copy.
        if let Some(newer) = state.incidents.iter().find(|i| i.id == id)
            && newer.timeline.len() > base
        {
            let mut merged = newer.clone();
            merged.steps = inc.steps.clone();
            merged.acknowledged_at = inc.acknowledged_at.clone();
            merged.acknowledged_by = inc.acknowledged_by.clone();
            merged.timeline.extend(inc.timeline.drain(base..));
            inc = merged;
        }
        store_active(&mut state, &inc);
        govern::save_incident(&mut batch, &inc, ctx.now, &principal.name, action);
        let durable = self.writer.submit(batch).await;
        Ok((inc, durable))
    }

    async fn apply_ask(
        &self,
        service: &Service,
        state: &mut State,
        inc: &mut Incident,
        ask: Ask,
        p: &Principal,
        batch: &mut Batch,
    ) -> Result<&'static str, ApiError> {
        let ctx = self.ctx(&service.name, self.now());
        let now = ctx.now;
        match ask {
            Ask::Acknowledge { note } => {
                if inc.acknowledged_at.is_some() {
                    return Err(ApiError::conflict(format!(
                        "incident {} was already acknowledged by {}",
                        inc.id,
                        inc.acknowledged_by.as_deref().unwrap_or("someone")
                    )));
                }
                inc.acknowledged_at = Some(now.to_rfc3339());
                inc.acknowledged_by = Some(p.name.clone());
                inc.note(
                    now,
                    "acknowledgement",
                    &p.name,
                    format!("acknowledged by {} ({})", p.name, p.role),
                    json!({"note": note}),
                );
                govern::cancel_paging(state, inc, batch);
                // Paging stops: PagerDuty marks the alert acknowledged.
                for level in 0..=inc.escalation_level {
                    govern::notify_level(&ctx, state, inc, level, "acknowledge", batch);
                }
                Ok("incident.acknowledge")
            }
            Ask::Status {
                message,
                next_update_in,
                channels,
                template,
            } => {
                self.status_update(
                    &ctx,
                    state,
                    inc,
                    p,
                    message,
                    next_update_in,
                    (channels, template),
                    batch,
                )?;
                Ok("incident.status")
            }
            Ask::Mitigate { note } => {
                inc.transition(MITIGATED, now, &p.name, &note)
                    .map_err(ApiError::conflict)?;
                Ok("incident.mitigate")
            }
            Ask::Resolve { note } => {
                owner_check(inc, p, "resolve")?;
                inc.transition(RESOLVED, now, &p.name, &note)
                    .map_err(ApiError::conflict)?;
                close_timers(state, inc, batch);
                for level in 0..=inc.escalation_level {
                    govern::notify_level(&ctx, state, inc, level, "resolve", batch);
                }
                Ok("incident.resolve")
            }
            Ask::Review {
                summary,
                action_items,
            } => {
                owner_check(inc, p, "review")?;
                inc.transition(REVIEWED, now, &p.name, "post-incident review signed off")
                    .map_err(ApiError::conflict)?;
                inc.review = Some(Review {
                    signed_off_by: p.name.clone(),
                    role: p.role.clone(),
                    at: now.to_rfc3339(),
                    summary,
                    action_items,
                });
                Ok("incident.review")
            }
            Ask::Step { name, note } => {
                self.run_step(service, state, inc, &name, note, p, batch)
                    .await?;
                Ok("incident.step")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn status_update(
        &self,
        ctx: &govern::Ctx,
        state: &State,
        inc: &mut Incident,
        p: &Principal,
        message: String,
        next_update_in: Option<String>,
        route: (Option<Vec<String>>, Option<String>),
        batch: &mut Batch,
    ) -> Result<(), ApiError> {
        if !inc.is_active() {
            return Err(ApiError::conflict(format!(
                "incident {} is {}; status updates are for open or mitigated incidents",
                inc.id, inc.state
            )));
        }
        let every = match next_update_in {
            Some(text) => Some(
                parse_duration(&text)
                    .map_err(|e| ApiError::bad_request(format!("next_update_in: {e}")))?,
            ),
            None => state.policy.governance.incidents.status_every,
        };
        inc.next_update_by = every.map(|d| (ctx.now + d).to_rfc3339());
        if let Some(d) = every {
            govern::set_timer(batch, ctx.service, &inc.id, Due::Status, ctx.now + d);
        }
        inc.note(
            ctx.now,
            "status_update",
            &p.name,
            message.clone(),
            json!({"next_update_by": inc.next_update_by}),
        );
        let (channels, template) = route;
        let channels = channels.unwrap_or_else(|| {
            let levels = &state.policy.governance.incidents.escalation;
            levels
                .first()
                .map(|l| l.channels.clone())
                .unwrap_or_default()
        });
        let template = template.unwrap_or_else(|| "stakeholders".into());
        govern::notify(
            ctx,
            state,
            inc,
            &channels,
            &template,
            "update",
            Some(&message),
            batch,
        );
        Ok(())
    }

    /// Opens an incident by hand: a drill, or a real one people declare.
    pub async fn declare(
        &self,
        service: &Service,
        kind: &str,
        severity: &str,
        title: String,
        principal: &Principal,
    ) -> Result<(Incident, Durable), ApiError> {
        let sev = parse_severity(severity).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity: \"{severity}\" is not one of minor, major, critical"
            ))
        })?;
        if !matches!(kind, "real" | "drill") {
            return Err(ApiError::bad_request(format!(
                "kind: \"{kind}\" is not one of real, drill"
            )));
        }
        let mut state = service.state.lock().await;
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let id = govern::next_incident_id(&mut state, &service.name);
        let mut inc = Incident {
            kind: kind.into(),
            release: state.current.as_ref().map(|c| c.id.clone()),
            policy_version: state.policy_version,
            severity: sev.as_str().into(),
            title,
            ..Incident::opened(id, &service.name, now)
        };
        inc.note(
            now,
            "state",
            &principal.name,
            format!("incident declared ({kind}) by {}", principal.name),
            Value::Null,
        );
        let mut batch = Batch::default();
        govern::freeze_evidence(&ctx, &state, &mut inc, &mut batch);
        govern::schedule(&ctx, &state, &mut inc, &mut batch);
        govern::notify_level(&ctx, &state, &mut inc, 0, "open", &mut batch);
        state.incidents.push(inc.clone());
        crate::metrics::incident_opened(&inc.kind, &inc.severity);
        govern::save_incident(&mut batch, &inc, now, &principal.name, "incident.declare");
        let durable = self.writer.submit(batch).await;
        Ok((inc, durable))
    }

    /// Fires every timer that is due.
    pub async fn run_timers(&self) {
        let now = self.now();
        let due = match self.store.due_timers(now.0, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("reading timers: {e}");
                return;
            }
        };
        for timer in due {
            let Some(service) = self.service(&timer.service) else {
                continue;
            };
            let mut state = service.state.lock().await;
            let mut batch = Batch::default();
            batch
                .timers
                .push(ripcord_store::TimerChange::Cancel(timer.id.clone()));
            if let Some((subject, due)) = govern::parse_due(&timer.body) {
                self.fire(&service, &mut state, &subject, due, &mut batch);
            }
            let durable = self.writer.submit(batch).await;
            drop(state);
            let _ = durable.await;
        }
    }

    fn fire(
        &self,
        service: &Service,
        state: &mut State,
        subject: &str,
        due: Due,
        batch: &mut Batch,
    ) {
        if due == Due::Request {
            match self.expire_request(service, state, subject) {
                Ok(b) => merge(batch, b),
                Err(e) => tracing::warn!("request {subject}: {}", e.message),
            }
            return;
        }
        let Some(mut inc) = state.incidents.iter().find(|i| i.id == subject).cloned() else {
            return;
        };
        let ctx = self.ctx(&service.name, self.now());
        let acked = inc.acknowledged_at.is_some();
        match due {
            Due::Ack if !acked => {
                let why = format!("not acknowledged within the {} deadline", inc.severity);
                govern::escalate(&ctx, state, &mut inc, &why, batch);
            }
            Due::Escalate(level) if !acked && level > inc.escalation_level => {
                govern::escalate_to(&ctx, state, &mut inc, level, "not acknowledged", batch);
            }
            Due::Status if inc.is_active() => {
                let why = format!(
                    "status update missed (was due by {})",
                    inc.next_update_by.clone().unwrap_or_default()
                );
                govern::escalate(&ctx, state, &mut inc, &why, batch);
                if let Some(every) = state.policy.governance.incidents.status_every {
                    inc.next_update_by = Some((ctx.now + every).to_rfc3339());
                    govern::set_timer(batch, ctx.service, &inc.id, Due::Status, ctx.now + every);
                }
            }
            Due::Step(name) => {
                let Some(step) = inc.steps.iter_mut().find(|s| {
                    s.name == name && matches!(s.status.as_str(), "pending" | "requested")
                }) else {
                    return;
                };
                step.status = "overdue".into();
                let why = format!("playbook step {name} is overdue (owner {})", step.owner);
                govern::escalate(&ctx, state, &mut inc, &why, batch);
            }
            _ => return,
        }
        store_active(state, &inc);
        govern::save_incident(batch, &inc, ctx.now, ENGINE, "incident.timer");
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        service: &Service,
        state: &mut State,
        inc: &mut Incident,
        name: &str,
        note: Option<String>,
        p: &Principal,
        batch: &mut Batch,
    ) -> Result<(), ApiError> {
        let Some(step) = inc.steps.iter().find(|s| s.name == name).cloned() else {
            let names: Vec<&str> = inc.steps.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::not_found(format!(
                "incident {} has no playbook step \"{name}\" (steps: {})",
                inc.id,
                names.join(", ")
            )));
        };
        if matches!(step.status.as_str(), "done" | "requested") {
            return Err(ApiError::conflict(format!(
                "step {name} is already {}",
                step.status
            )));
        }
        if p.role != step.owner && p.role != "admin" {
            return Err(ApiError::forbidden(format!(
                "step {name} is owned by role {}; {} has role {}",
                step.owner, p.name, p.role
            )));
        }
        let kind = govern::step_kind(&state.policy, inc, name).ok_or_else(|| {
            ApiError::conflict(format!("step {name} is no longer in the policy's playbook"))
        })?;
        let ctx = self.ctx(&service.name, self.now());
        let (status, result) = match kind {
            StepKind::Manual => ("done", Value::Null),
            StepKind::Action { action } => {
                let command = govern::command_of(action);
                let asked = Some((inc.id.clone(), name.to_string()));
                let (answer, b) = self.act(service, state, command, note.clone(), p, asked)?;
                merge(batch, b);
                let requested = answer.get("request").is_some();
                (if requested { "requested" } else { "done" }, answer)
            }
            StepKind::Communicate { template, channels } => {
                let message = note.clone();
                govern::notify(
                    &ctx,
                    state,
                    inc,
                    &channels,
                    &template,
                    "update",
                    message.as_deref(),
                    batch,
                );
                ("done", json!({"channels": channels, "template": template}))
            }
            StepKind::Check { checks } => {
                let view = state.current.clone();
                let report = checks::run(self, view.as_ref(), &checks).await?;
                let ok = report.iter().all(|c| c["ok"] == json!(true));
                (if ok { "done" } else { "failed" }, Value::Array(report))
            }
            StepKind::Verify { hold } => {
                let (policy, view) = (state.policy.clone(), state.current.clone());
                let target = (&policy, view.as_ref());
                let report = checks::verify(self, target, inc, hold, ctx.now).await?;
                let ok = report["ok"] == json!(true);
                (if ok { "done" } else { "failed" }, report)
            }
        };
        let Some(s) = inc.steps.iter_mut().find(|s| s.name == name) else {
            return Ok(());
        };
        s.status = status.into();
        s.note = note;
        s.result = result;
        if status != "requested" {
            s.done_at = Some(ctx.now.to_rfc3339());
            s.done_by = Some(p.name.clone());
            govern::cancel_timer(batch, &inc.id, Due::Step(name.to_string()));
        }
        let summary = format!("step {name} ({}) {status} by {}", step.kind, p.name);
        let detail = json!({"step": name, "status": status, "due_at": step.due_at});
        inc.note(ctx.now, "playbook", &p.name, summary, detail);
        Ok(())
    }

    /// Refuses a citation of an incident that does not exist or belongs to
    /// another service, before the policy is stored.
    pub async fn citable(&self, id: &str, service: &str) -> Result<(), ApiError> {
        let inc = self.incident(id).await.map_err(|_| {
            ApiError::unprocessable(
                format!("answers: incident \"{id}\" does not exist"),
                json!([{"path": "answers", "message": "no such incident"}]),
            )
        })?;
        if inc.service != service {
            return Err(ApiError::unprocessable(
                format!(
                    "answers: incident {id} is about \"{}\", not \"{service}\"",
                    inc.service
                ),
                json!([{"path": "answers", "message": "another service's incident"}]),
            ));
        }
        Ok(())
    }

    /// Records that policy `version` answers incident `id`.
    pub async fn cite(&self, id: &str, version: i64, p: &Principal) -> Result<Durable, ApiError> {
        let (service, stored) = self.stored_incident(id).await?;
        let mut state = service.state.lock().await;
        let mut inc = active_or(&state, stored);
        let now = self.now();
        inc.policy_changes.push(version);
        inc.note(
            now,
            "policy",
            &p.name,
            format!("policy version {version} answers this incident"),
            json!({"policy_version": version}),
        );
        store_active(&mut state, &inc);
        let mut batch = Batch::default();
        govern::save_incident(&mut batch, &inc, now, &p.name, "incident.policy_change");
        Ok(self.writer.submit(batch).await)
    }

    /// Incidents, oldest first, filtered.
    pub async fn incidents(
        &self,
        service: Option<&str>,
        state: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<Incident>, ApiError> {
        let docs = self.store.docs(INCIDENT, service).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value::<Incident>(d.body).ok())
            .filter(|i| state.is_none_or(|s| i.state == s))
            .filter(|i| kind.is_none_or(|k| i.kind == k))
            .collect())
    }
}

/// Safety and fairness incidents are closed by a safety lead.
fn owner_check(inc: &Incident, p: &Principal, what: &str) -> Result<(), ApiError> {
    if inc.needs_safety_lead() && !SAFETY_ROLES.contains(&p.role.as_str()) {
        return Err(ApiError::forbidden(format!(
            "incident {} concerns {}; only a safety_lead may {what} it ({} has role {})",
            inc.id,
            inc.categories.join(" and "),
            p.name,
            p.role
        )));
    }
    Ok(())
}

/// The state's copy of an active incident (it may be newer than the
/// store's), else the stored one.
fn active_or(state: &State, stored: Incident) -> Incident {
    match state.incidents.iter().find(|i| i.id == stored.id) {
        Some(active) => active.clone(),
        None => stored,
    }
}

/// Keeps the state's list of active incidents in step with `inc`.
fn store_active(state: &mut State, inc: &Incident) {
    state.incidents.retain(|i| i.id != inc.id);
    if inc.is_active() {
        state.incidents.push(inc.clone());
    }
}

/// A resolved incident has no timers left.
fn close_timers(state: &State, inc: &Incident, batch: &mut Batch) {
    govern::cancel_paging(state, inc, batch);
    govern::cancel_timer(batch, &inc.id, Due::Status);
    for s in &inc.steps {
        govern::cancel_timer(batch, &inc.id, Due::Step(s.name.clone()));
    }
}

pub fn merge(into: &mut Batch, from: Batch) {
    into.journal.extend(from.journal);
    into.decisions.extend(from.decisions);
    into.outbox.extend(from.outbox);
    into.releases.extend(from.releases);
    into.answers.extend(from.answers);
    into.audit.extend(from.audit);
    into.docs.extend(from.docs);
    into.timers.extend(from.timers);
}
