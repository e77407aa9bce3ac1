//! Decision rights on the live service: a person's action that the policy
//! says needs approval becomes a request; votes are counted against the
//! quorum with separation of duties; an approved request runs its command
//! through the same engine path as any other.

use ripcord_core::engine::Command;
use ripcord_core::policy::governance::ActionName;
use ripcord_store::Batch;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::govern;
use crate::hub::{ENGINE, Hub, Service, State};
use ripcord_core::policy::OnTimeout;
use ripcord_govern::machine::save_request;
use ripcord_govern::record::{Request, RequestState};
use ripcord_govern::requests::{action_command, command_for_engine};
use ripcord_govern::{Due, NewRequest, Person, TimerChange};

/// Pending requests one principal may have on one service.
pub const MAX_PENDING_PER_PRINCIPAL: usize = 16;

/// The pending request for the same action on the current release from
/// the same playbook step (or none), if there is one.
fn pending_same(
    state: &State,
    action: ActionName,
    step: Option<&(String, String)>,
) -> Option<Request> {
    let release = state.current.as_ref().map(|c| c.id.as_str())?;
    let step = step.map(|(_, s)| s.as_str());
    state
        .gov
        .requests
        .iter()
        .find(|r| {
            r.state == RequestState::Pending
                && r.trigger.is_none()
                && r.release == release
                && r.action == action.as_str()
                && r.step.as_deref() == step
        })
        .cloned()
}

pub fn action_of(command: &Command) -> Option<ActionName> {
    Some(match command {
        Command::Promote => ActionName::Promote,
        Command::Rollback => ActionName::Rollback,
        Command::ReRelease => ActionName::ReRelease,
        Command::Pause => ActionName::Pause,
        Command::Resume => ActionName::Resume,
        Command::Approve | Command::Reject => return None,
    })
}

impl Hub {
    /// Runs `command` now, or — when the policy gives the action decision
    /// rights — opens a request for approval. `step` names the playbook
    /// step that asked, if any.
    pub fn act(
        &self,
        service: &Service,
        state: &mut State,
        command: Command,
        reason: Option<String>,
        principal: &Principal,
        step: Option<(String, String)>,
    ) -> Result<(Value, Batch), ApiError> {
        let right = action_of(&command).and_then(|a| state.policy.governance.right(a).cloned());
        let Some(right) = right else {
            return self.apply_command(
                service,
                state,
                command,
                reason,
                &principal.name,
                Batch::default(),
            );
        };
        if state.engine.is_none() {
            return Err(ApiError::conflict(format!(
                "service \"{}\" has no release to {}",
                service.name,
                command.name()
            )));
        }
        if let Some(same) = pending_same(state, right.action, step.as_ref()) {
            // Asking again is not a new request: one pending request per
            // release, action and step, whoever asks.
            let answer = json!({
                "action": command.name(),
                "release": state.current,
                "changed": false,
                "request": same,
                "existing": true,
            });
            return Ok((answer, Batch::default()));
        }
        let mine = state
            .gov
            .requests
            .iter()
            .filter(|r| r.state == RequestState::Pending && r.requested_by == principal.name)
            .count();
        if mine >= MAX_PENDING_PER_PRINCIPAL {
            return Err(ApiError::conflict(format!(
                "\"{}\" already has {mine} pending requests on \"{}\" (at most \
                 {MAX_PENDING_PER_PRINCIPAL}); wait until they are decided or expire",
                principal.name, service.name
            )));
        }
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let incident = step.as_ref().map(|(i, _)| i.clone()).or_else(|| {
            let release = state.current.as_ref().map(|c| c.id.clone());
            state
                .gov
                .incidents
                .iter()
                .find(|i| i.is_active() && i.release == release)
                .map(|i| i.id.clone())
        });
        let n = NewRequest {
            action: right.action.as_str().into(),
            trigger: None,
            incident,
            requested_by: principal.name.clone(),
            reason,
            roles: right.roles.clone(),
            quorum: right.quorum,
            separation: right.separation,
            within: right.within,
            on_timeout: right.on_timeout,
        };
        let mut batch = Batch::default();
        let req = govern::drive_gov(&ctx, state, &mut batch, |g, s, fx| {
            let mut req = g.new_request(s, n);
            req.step = step.map(|(_, s)| s);
            req.requested_by_person = Some(principal.person.clone());
            let deadline = now + right.within;
            fx.timers
                .push(TimerChange::set(&req.id, Due::Request, deadline));
            g.log_request(s, &req, "approval requested", fx);
            save_request(fx, &req, now, &principal.name, "request.open");
            g.requests.push(req.clone());
            req
        });
        let answer = json!({
            "action": command.name(),
            "release": state.current,
            "changed": false,
            "request": req,
        });
        Ok((answer, batch))
    }

    /// Records `principal`'s vote on request `id`; a decided request runs
    /// (or drops) its action in the same batch.
    pub fn decide(
        &self,
        service: &Service,
        state: &mut State,
        id: &str,
        principal: &Principal,
        approve: bool,
        note: Option<String>,
    ) -> Result<(Value, Batch), ApiError> {
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let index = state
            .gov
            .requests
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| ApiError::conflict(format!("request {id} is not pending")))?;
        let mut req = state.gov.requests[index].clone();
        let mut batch = Batch::default();
        let by = Person {
            name: &principal.name,
            role: &principal.role,
            person: &principal.person,
        };
        let vote = govern::drive_gov(&ctx, state, &mut batch, |_, s, _| {
            ripcord_govern::vote(s, &mut req, by, approve, note)
        })
        .map_err(govern::refusal)?;
        // The request's new state is in place before its command runs, so
        // the engine's decisions do not settle it a second time.
        state.gov.requests[index] = req.clone();
        if let Some(inc) = req
            .incident
            .as_ref()
            .and_then(|i| state.gov.incidents.iter_mut().find(|x| &x.id == i))
        {
            inc.approvals.push(vote.clone());
        }
        let what = if approve { "approved" } else { "rejected" };
        let news = format!("{} {what}", principal.name);
        govern::drive_gov(&ctx, state, &mut batch, |g, s, fx| {
            g.log_request(s, &req, &news, fx);
        });
        let mut answer = json!({"request": req, "vote": vote, "changed": false});
        if req.state != RequestState::Pending {
            govern::cancel_timer(&mut batch, &req.id, Due::Request);
            if let Some(command) = command_for_engine(&req) {
                let actor = &principal.name;
                let reason = req.outcome.clone();
                let extra = std::mem::take(&mut batch);
                let (ran, b) = self.apply_command(service, state, command, reason, actor, extra)?;
                batch = b;
                answer["changed"] = json!(true);
                answer["release"] = ran["release"].clone();
                answer["decisions"] = ran["decisions"].clone();
                self.finish_step(&ctx, state, &req, actor, &mut batch);
            }
        }
        govern::save_request(&mut batch, &req, now, &principal.name, "request.vote");
        state
            .gov
            .requests
            .retain(|r| r.state == RequestState::Pending);
        answer["release"] = json!(state.current);
        Ok((answer, batch))
    }

    /// An action step whose request ran is done.
    fn finish_step(
        &self,
        ctx: &govern::Ctx,
        state: &mut State,
        req: &Request,
        actor: &str,
        batch: &mut Batch,
    ) {
        govern::drive_gov(ctx, state, batch, |g, s, fx| {
            g.finish_step(s, req, actor, fx);
        });
    }

    /// A request whose window closed: `proceed` runs the action, `hold`
    /// drops it.
    pub fn expire_request(
        &self,
        service: &Service,
        state: &mut State,
        id: &str,
    ) -> Result<Batch, ApiError> {
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let mut batch = Batch::default();
        let expired = govern::drive_gov(&ctx, state, &mut batch, |g, s, fx| g.expire(s, id, fx));
        let Some(mut req) = expired else {
            return Ok(batch);
        };
        let proceed = req.on_timeout == OnTimeout::Proceed;
        if proceed && let Some(command) = action_command(&req.action) {
            let reason = req.outcome.clone();
            let extra = std::mem::take(&mut batch);
            match self.apply_command(service, state, command, reason, ENGINE, extra) {
                Ok((_, b)) => batch = b,
                Err(e) => {
                    req.outcome = Some(format!(
                        "{}; but it could not run: {}",
                        req.deadline, e.message
                    ));
                }
            }
            self.finish_step(&ctx, state, &req, ENGINE, &mut batch);
        }
        govern::save_request(&mut batch, &req, now, ENGINE, "request.expire");
        state
            .gov
            .requests
            .retain(|r| r.state == RequestState::Pending);
        Ok(batch)
    }
}
