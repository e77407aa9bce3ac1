//! Decision rights on the live service, driven: a person's action that the
//! policy says needs approval becomes a request and a vote is counted (both
//! decided by the governance machine); an approved request runs its
//! command through the same engine path as any other.

use ripcord_core::engine::Command;
use ripcord_core::policy::governance::ActionName;
use ripcord_store::Batch;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::answer::{CommandAnswer, Requested, Voted};
use crate::hub::govern;
use crate::hub::{ENGINE, Hub, Service, State, no_release};
use ripcord_core::policy::OnTimeout;
use ripcord_govern::record::{Request, RequestState};
use ripcord_govern::requests::command_for_engine;
use ripcord_govern::{ApprovalAsk, Due};

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
    ) -> Result<(CommandAnswer, Batch), ApiError> {
        let right =
            ActionName::of(&command).and_then(|a| state.policy.governance.right(a).cloned());
        let Some(right) = right else {
            let actor = &principal.name;
            let (ran, batch) =
                self.apply_command(service, state, command, reason, actor, Batch::default())?;
            return Ok((CommandAnswer::Ran(ran), batch));
        };
        if state.engine.is_none() {
            return Err(no_release(&service.name, &command));
        }
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let ask = ApprovalAsk {
            right: &right,
            reason,
            by: principal.person(),
            step,
        };
        let mut batch = Batch::default();
        let asked = govern::drive_gov(&ctx, state, &mut batch, |g, s, fx| {
            g.ask_approval(s, ask, fx)
        })
        .map_err(govern::refusal)?;
        let answer = Requested {
            action: command.name(),
            changed: false,
            existing: asked.existing,
            release: state.current.clone(),
            request: asked.request,
        };
        Ok((CommandAnswer::Requested(answer), batch))
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
    ) -> Result<(Voted, Batch), ApiError> {
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
        let by = principal.person();
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
        let (mut changed, mut decisions) = (false, None);
        if req.state != RequestState::Pending {
            govern::cancel_timer(&mut batch, &req.id, Due::Request);
            if let Some(command) = command_for_engine(&req) {
                let actor = &principal.name;
                let reason = req.outcome.clone();
                let extra = std::mem::take(&mut batch);
                let (ran, b) = self.apply_command(service, state, command, reason, actor, extra)?;
                batch = b;
                (changed, decisions) = (true, Some(ran.decisions));
                self.finish_step(&ctx, state, &req, actor, &mut batch);
            }
        }
        govern::save_request(&mut batch, &req, now, &principal.name, "request.vote");
        state
            .gov
            .requests
            .retain(|r| r.state == RequestState::Pending);
        let voted = Voted {
            action: None,
            changed,
            decisions,
            release: state.current.clone(),
            request: req,
            vote,
        };
        Ok((voted, batch))
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
        if proceed && let Some(command) = req.action.command() {
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
