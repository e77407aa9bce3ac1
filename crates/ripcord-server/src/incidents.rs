//! People's side of incidents on the live service: each command is loaded,
//! checked against the principal's services and handed to the governance
//! machine (`ripcord_govern::on_command`, `Governance::declare`,
//! `steps::cite`). A playbook step is the machine's to allow and record
//! (`steps::step_to_run`, `steps::complete_step`); its work is done here
//! when it needs the store (checks, verification) or the engine (an
//! action). Also the timer worker, which hands due timers to the machine.

use std::sync::Arc;

use ripcord_core::policy::governance::StepKind;
use ripcord_store::Batch;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::checks;
use crate::error::ApiError;
use crate::hub::answer::CommandAnswer;
use crate::hub::govern;
use crate::hub::{Hub, Service, State};
use crate::writer::Durable;
use ripcord_core::engine::{Command, Phase};
use ripcord_core::policy::Severity;
use ripcord_govern::record::{INCIDENT, Incident, IncidentKind, StepStatus};
use ripcord_govern::steps::{cite, complete_step, step_to_run};
use ripcord_govern::{Due, IncidentCommand, StepOutcome, StepRun, TimerBody, on_command};

/// What a person asks of an incident: one of the machine's commands, or
/// a playbook step (its checks read the store, so the server runs it).
pub enum Ask {
    Command(IncidentCommand),
    Step { name: String, note: Option<String> },
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
        govern::read_doc(doc)
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
        if let Some(newer) = state.gov.incidents.iter().find(|i| i.id == id)
            && newer.timeline.len() > base
        {
            let mut merged = newer.clone();
            merged.steps = inc.steps.clone();
            merged.acknowledged_at = inc.acknowledged_at.clone();
            merged.acknowledged_by = inc.acknowledged_by.clone();
            merged.timeline.extend(inc.timeline.drain(base..));
            inc = merged;
        }
        state.gov.store_active(&inc);
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
        let command = match ask {
            Ask::Step { name, note } => {
                let run = StepRun {
                    name: &name,
                    note,
                    by: p.person(),
                };
                self.run_step((service, state), inc, (run, p), batch)
                    .await?;
                return Ok("incident.step");
            }
            Ask::Command(command) => command,
        };
        let ctx = self.ctx(&service.name, self.now());
        let by = p.person();
        govern::drive(&ctx, govern::on(state), batch, |s, fx| {
            on_command(s, inc, command, by, fx)
        })
        .map_err(govern::refusal)
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
        let sev = Severity::parse(severity).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity: \"{severity}\" is not one of minor, major, critical"
            ))
        })?;
        let Some(kind) = IncidentKind::parse(kind) else {
            return Err(ApiError::bad_request(format!(
                "kind: \"{kind}\" is not one of real, drill"
            )));
        };
        let mut state = service.state.lock().await;
        let ctx = self.ctx(&service.name, self.now());
        let by = principal.person();
        let mut batch = Batch::default();
        let inc = govern::drive_gov(&ctx, &mut state, &mut batch, |g, s, fx| {
            let (inc, done) = g.declare(s, (kind, sev, title), by);
            fx.extend(done);
            inc
        });
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
            match serde_json::from_value::<TimerBody>(timer.body) {
                Ok(TimerBody {
                    subject,
                    due: Due::Report { percent },
                }) => {
                    let due = (subject.as_str(), percent);
                    self.report_timer(&service, &mut state, due, &mut batch)
                        .await;
                }
                Ok(body) => self.fire(&service, &mut state, body, &mut batch),
                Err(e) => tracing::warn!("timer {} has an unreadable body: {e}", timer.id),
            }
            let durable = self.writer.submit(batch).await;
            drop(state);
            let _ = durable.await;
        }
    }

    fn fire(&self, service: &Service, state: &mut State, timer: TimerBody, batch: &mut Batch) {
        if timer.due == Due::Request {
            match self.expire_request(service, state, &timer.subject) {
                Ok(b) => merge(batch, b),
                Err(e) => tracing::warn!("request {}: {}", timer.subject, e.message),
            }
            return;
        }
        let ctx = self.ctx(&service.name, self.now());
        govern::drive_gov(&ctx, state, batch, |g, s, fx| {
            fx.extend(g.on_timer(s, &timer));
        });
    }

    /// Runs a playbook step: the machine says whether the person may and
    /// records it; an action step goes through the decision rights and the
    /// engine, check and verify steps read the store.
    async fn run_step(
        &self,
        (service, state): (&Service, &mut State),
        inc: &mut Incident,
        (run, p): (StepRun<'_>, &Principal),
        batch: &mut Batch,
    ) -> Result<(), ApiError> {
        let ctx = self.ctx(&service.name, self.now());
        let kind = govern::drive(&ctx, govern::on(state), batch, |s, _| {
            step_to_run(s, inc, &run)
        })
        .map_err(govern::refusal)?;
        let outcome = match &kind {
            StepKind::Manual | StepKind::Communicate { .. } => None,
            StepKind::Action { action } if in_effect(action.command(), state) => {
                // The engine (a trigger) or someone else already did it: the
                // step's purpose holds, and refusing it would leave the
                // playbook unfinishable.
                let phase = state.current.as_ref().map(|c| c.state);
                let result =
                    json!({"already": phase, "note": "the release was already in this state"});
                Some(StepOutcome {
                    status: StepStatus::Done,
                    result,
                })
            }
            StepKind::Action { action } => {
                let command = action.command();
                let asked = Some((inc.id.clone(), run.name.to_string()));
                let (answer, b) = self.act(service, state, command, run.note.clone(), p, asked)?;
                merge(batch, b);
                let status = match answer {
                    CommandAnswer::Requested(_) => StepStatus::Requested,
                    CommandAnswer::Ran(_) | CommandAnswer::Voted(_) => StepStatus::Done,
                };
                let result = serde_json::to_value(&answer)
                    .map_err(|e| ApiError::unserialisable("the step's answer", e))?;
                Some(StepOutcome { status, result })
            }
            StepKind::Check { checks } => {
                let view = state.current.clone();
                let report = checks::run(self, view.as_ref(), checks).await?;
                let ok = report.iter().all(|c| c["ok"] == json!(true));
                Some(StepOutcome::checked(ok, Value::Array(report)))
            }
            StepKind::Verify { hold } => {
                let (policy, view) = (state.policy.clone(), state.current.clone());
                let target = (&policy, view.as_ref());
                let report = checks::verify(self, target, inc, *hold, ctx.now).await?;
                let ok = report["ok"] == json!(true);
                Some(StepOutcome::checked(ok, report))
            }
        };
        govern::drive(&ctx, govern::on(state), batch, |s, fx| {
            complete_step(s, inc, (run, &kind), outcome, fx);
        });
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
        let ctx = self.ctx(&service.name, self.now());
        let mut batch = Batch::default();
        govern::drive(&ctx, govern::on(&state), &mut batch, |s, fx| {
            cite(s, &mut inc, version, &p.name, fx);
        });
        state.gov.store_active(&inc);
        Ok(self.writer.submit(batch).await)
    }

    /// Incidents, oldest first, filtered.
    pub async fn incidents(
        &self,
        service: Option<&str>,
        state: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<Incident>, ApiError> {
        let all: Vec<Incident> = govern::read_docs(&*self.store, INCIDENT, service).await?;
        Ok(all
            .into_iter()
            .filter(|i| state.is_none_or(|s| i.state.as_str() == s))
            .filter(|i| kind.is_none_or(|k| i.kind.as_str() == k))
            .collect())
    }
}

/// Whether `command`'s effect already holds for the current release: a
/// rollback of a release rolling or rolled back, a pause of a paused one, a
/// promotion of a promoted or watched one.
fn in_effect(command: Command, state: &State) -> bool {
    let Some(phase) = state.current.as_ref().map(|c| c.state) else {
        return false;
    };
    matches!(
        (command, phase),
        (Command::Rollback, Phase::RollingBack | Phase::RolledBack)
            | (Command::Pause, Phase::Paused)
            | (Command::Promote, Phase::Watching | Phase::Promoted)
    )
}

/// The state's copy of an active incident (it may be newer than the
/// store's), else the stored one.
pub(crate) fn active_or(state: &State, stored: Incident) -> Incident {
    match state.gov.incidents.iter().find(|i| i.id == stored.id) {
        Some(active) => active.clone(),
        None => stored,
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
