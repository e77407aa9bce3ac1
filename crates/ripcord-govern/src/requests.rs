//! Approval requests in the machine: opening one, votes against the quorum
//! with separation of duties, and how requests end — settled when the
//! engine leaves its approval wait, superseded by a trigger's rollback,
//! expired when their window closes.

use ripcord_core::Decision;
use ripcord_core::engine::Command;
use ripcord_core::policy::OnTimeout;
use ripcord_core::policy::governance::Right;
use ripcord_core::time::Dur;
use serde_json::json;

use crate::command::{Person, Refusal};
use crate::effects::Effects;
use crate::machine::{ENGINE, Governance, Setting, save_incident, save_request};
use crate::record::{ActionWord, EntryKind, Request, RequestState, Vote};
use crate::timer::{Due, TimerChange};

/// What a new request asks for, and who may approve it.
pub struct NewRequest {
    pub action: ActionWord,
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

/// Pending requests one person's token may have on one service: a client
/// cannot fill the approvers' queue or the timer table.
pub const MAX_PENDING_PER_PRINCIPAL: usize = 16;

/// A person's action that the policy gives decision rights, from a
/// playbook step (`step`: incident and step name) or not.
pub struct ApprovalAsk<'a> {
    pub right: &'a Right,
    pub reason: Option<String>,
    pub by: Person<'a>,
    pub step: Option<(String, String)>,
}

/// The request that answers an [`ApprovalAsk`].
pub struct Asked {
    pub request: Request,
    /// The same action was already waiting: asking again is not a new
    /// request.
    pub existing: bool,
}

impl Governance {
    /// Opens a request for a person's action under its decision right —
    /// unless the same action on the current release, from the same step,
    /// is already pending (whoever asked), which is the answer then. A
    /// token with [`MAX_PENDING_PER_PRINCIPAL`] pending requests is
    /// refused.
    pub fn ask_approval(
        &mut self,
        s: &Setting,
        ask: ApprovalAsk,
        fx: &mut Effects,
    ) -> Result<Asked, Refusal> {
        let action = ActionWord::from(ask.right.action);
        if let Some(same) = self.pending_same(s, action, ask.step.as_ref()) {
            return Ok(Asked {
                request: same.clone(),
                existing: true,
            });
        }
        let by = ask.by;
        let mine = self
            .requests
            .iter()
            .filter(|r| r.state == RequestState::Pending && r.requested_by == by.name)
            .count();
        if mine >= MAX_PENDING_PER_PRINCIPAL {
            return Err(Refusal::Conflict(format!(
                "\"{}\" already has {mine} pending requests on \"{}\" (at most \
                 {MAX_PENDING_PER_PRINCIPAL}); wait until they are decided or expire",
                by.name, s.service
            )));
        }
        let right = ask.right;
        let n = NewRequest {
            action,
            trigger: None,
            incident: self.incident_of(s, ask.step.as_ref()),
            requested_by: by.name.to_string(),
            reason: ask.reason,
            roles: right.roles.clone(),
            quorum: right.quorum,
            separation: right.separation,
            within: right.within,
            on_timeout: right.on_timeout,
        };
        let mut req = self.new_request(s, n);
        req.step = ask.step.map(|(_, step)| step);
        req.requested_by_person = Some(by.person.to_string());
        fx.timers.push(TimerChange::set(
            &req.id,
            Due::Request,
            s.now + right.within,
        ));
        self.log_request(s, &req, "approval requested", fx);
        save_request(fx, &req, s.now, by.name, "request.open");
        self.requests.push(req.clone());
        Ok(Asked {
            request: req,
            existing: false,
        })
    }

    /// The pending request for the same action on the current release from
    /// the same playbook step (or none).
    fn pending_same(
        &self,
        s: &Setting,
        action: ActionWord,
        step: Option<&(String, String)>,
    ) -> Option<&Request> {
        let release = s.release.map(|r| r.id.as_str())?;
        let step = step.map(|(_, name)| name.as_str());
        self.requests.iter().find(|r| {
            r.state == RequestState::Pending
                && r.trigger.is_none()
                && r.release == release
                && r.action == action
                && r.step.as_deref() == step
        })
    }

    /// The incident a person's request belongs to: the step's, else the
    /// current release's active incident.
    fn incident_of(&self, s: &Setting, step: Option<&(String, String)>) -> Option<String> {
        if let Some((incident, _)) = step {
            return Some(incident.clone());
        }
        let release = s.release.map(|r| r.id.clone());
        self.incidents
            .iter()
            .find(|i| i.is_active() && i.release == release)
            .map(|i| i.id.clone())
    }

    /// A new pending request on the current release (not yet kept: the
    /// caller completes it and pushes it to `requests`).
    pub fn new_request(&mut self, s: &Setting, n: NewRequest) -> Request {
        self.requests_made += 1;
        Request {
            id: format!("req-{}-{}", s.service, self.requests_made),
            service: s.service.to_string(),
            release: s.release.map_or(String::new(), |r| r.id.clone()),
            action: n.action,
            trigger: n.trigger,
            incident: n.incident,
            requested_by: n.requested_by,
            requested_by_person: None,
            requested_at: s.now.to_rfc3339(),
            reason: n.reason,
            roles: n.roles,
            quorum: n.quorum.max(1),
            separation: n.separation,
            deadline: (s.now + n.within).to_rfc3339(),
            on_timeout: n.on_timeout,
            state: RequestState::Pending,
            outcome: None,
            votes: Vec::new(),
            step: None,
        }
    }

    /// Notes a request's news on its incident's timeline.
    pub fn log_request(&mut self, s: &Setting, req: &Request, what: &str, fx: &mut Effects) {
        let Some(inc) = req
            .incident
            .as_ref()
            .and_then(|id| self.incidents.iter_mut().find(|i| &i.id == id))
        else {
            return;
        };
        inc.note(
            s.now,
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
        save_incident(fx, inc, s.now, ENGINE, "incident.timeline");
    }

    /// Trigger requests end when the engine leaves its approval wait
    /// (`waiting` is false): by our own approve/reject, by a critical
    /// trigger overriding the wait, or by the window running out.
    pub fn settle_trigger_requests(
        &mut self,
        s: &Setting,
        waiting: bool,
        decisions: &[Decision],
        fx: &mut Effects,
    ) {
        if waiting {
            return;
        }
        let said = |needle: &str| {
            decisions
                .iter()
                .find(|d| d.explanation.summary.contains(needle))
                .map(|d| d.explanation.summary.clone())
        };
        let (overridden, timed_out) = (
            said("overrides the pending approval"),
            said("no approval by"),
        );
        let mut settled = Vec::new();
        for req in self
            .requests
            .iter_mut()
            .filter(|r| r.trigger.is_some() && r.state == RequestState::Pending)
        {
            let (to, why) = match (&overridden, &timed_out) {
                (Some(n), _) => (RequestState::Superseded, n.clone()),
                (None, Some(n)) => (RequestState::Expired, n.clone()),
                (None, None) => (RequestState::Superseded, "the release moved on".to_string()),
            };
            req.state = to;
            req.outcome = Some(why);
            settled.push(req.clone());
        }
        for req in settled {
            self.log_request(s, &req, req.state.as_str(), fx);
            save_request(fx, &req, s.now, ENGINE, "request.settle");
        }
        self.requests.retain(|r| r.state == RequestState::Pending);
    }

    /// A critical trigger's rollback supersedes people's pending requests
    /// for the same action, and the record says so.
    pub fn supersede_requests(
        &mut self,
        s: &Setting,
        action: ActionWord,
        why: &str,
        fx: &mut Effects,
    ) {
        let mut settled = Vec::new();
        for req in self.requests.iter_mut().filter(|r| {
            r.trigger.is_none() && r.state == RequestState::Pending && r.action == action
        }) {
            req.state = RequestState::Superseded;
            req.outcome = Some(format!("overridden while waiting for approval: {why}"));
            fx.timers.push(TimerChange::cancel(&req.id, &Due::Request));
            settled.push(req.clone());
        }
        for req in settled {
            self.log_request(s, &req, "superseded", fx);
            save_request(fx, &req, s.now, ENGINE, "request.settle");
        }
        self.requests.retain(|r| r.state == RequestState::Pending);
    }

    /// Closes the window of a person's request `id`: it expires, and its
    /// outcome says whether the action proceeds (the caller runs it) or is
    /// dropped. `None` when there is no such pending request, or when it is
    /// a trigger's (the engine keeps those windows itself).
    pub fn expire(&mut self, s: &Setting, id: &str, fx: &mut Effects) -> Option<Request> {
        let index = self.requests.iter().position(|r| r.id == id)?;
        let mut req = self.requests[index].clone();
        if req.trigger.is_some() {
            return None;
        }
        let what = match req.on_timeout {
            OnTimeout::Proceed => "proceeds",
            OnTimeout::Hold => "is dropped",
        };
        req.state = RequestState::Expired;
        req.outcome = Some(format!(
            "no quorum by {}; the action {what} as the policy says",
            req.deadline
        ));
        self.requests[index] = req.clone();
        self.log_request(s, &req, "expired", fx);
        Some(req)
    }

    /// An action step whose request ran is done.
    pub fn finish_step(&mut self, s: &Setting, req: &Request, actor: &str, fx: &mut Effects) {
        let (Some(step), Some(incident)) = (&req.step, &req.incident) else {
            return;
        };
        let Some(inc) = self.incidents.iter_mut().find(|i| &i.id == incident) else {
            return;
        };
        if let Some(st) = inc.steps.iter_mut().find(|x| &x.name == step) {
            st.status = crate::record::StepStatus::Done;
            st.done_at = Some(s.now.to_rfc3339());
            st.done_by = Some(actor.to_string());
            st.note = req.outcome.clone();
        }
        let due = Due::Step { step: step.clone() };
        fx.timers.push(TimerChange::cancel(&inc.id, &due));
        inc.note(
            s.now,
            EntryKind::Playbook,
            actor,
            format!("step {step} done: {} ran", req.action),
            json!({"request": req.id}),
        );
        save_incident(fx, inc, s.now, actor, "incident.step");
    }
}

/// Records `by`'s vote on the request; a rejection decides it, and so does
/// the approval that reaches the quorum.
pub fn vote(
    s: &Setting,
    req: &mut Request,
    by: Person,
    approve: bool,
    note: Option<String>,
) -> Result<Vote, Refusal> {
    if let Some(why) = req.refuses(by.name, by.person, by.role) {
        return Err(if why.contains("already") {
            Refusal::Conflict(why)
        } else {
            Refusal::Forbidden(why)
        });
    }
    let v = Vote {
        request: req.id.clone(),
        action: req.action,
        by: by.name.into(),
        person: Some(by.person.into()),
        role: by.role.into(),
        approve,
        at: s.now.to_rfc3339(),
        note,
    };
    req.votes.push(v.clone());
    if !approve {
        req.state = RequestState::Rejected;
        req.outcome = Some(format!("rejected by {}", by.name));
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

/// What a decided request feeds the engine: a trigger's approval or
/// rejection, or a person's approved action.
pub fn command_for_engine(req: &Request) -> Option<Command> {
    match (req.trigger.is_some(), req.state) {
        (true, RequestState::Approved) => Some(Command::Approve),
        (true, RequestState::Rejected) => Some(Command::Reject),
        (false, RequestState::Approved) => req.action.command(),
        _ => None,
    }
}
