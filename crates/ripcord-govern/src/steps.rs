//! Playbook steps in the machine: who may run a step, and what running it
//! does to the incident. Manual and communicate steps are the machine's
//! own; the work of action, check and verify steps is the driver's (an
//! action goes through the engine and its decision rights, checks read the
//! store) and comes back as a [`StepOutcome`].

use ripcord_core::policy::governance::StepKind;
use serde_json::{Value, json};

use crate::command::{Person, Refusal};
use crate::effects::Effects;
use crate::machine::{Setting, notify};
use crate::record::{EntryKind, Incident, StepStatus};
use crate::timer::{Due, TimerChange};
use crate::words::NotifyKind;

/// A person running a playbook step, with their note.
pub struct StepRun<'a> {
    pub name: &'a str,
    pub note: Option<String>,
    pub by: Person<'a>,
}

/// What the driver found doing an action, check or verify step.
pub struct StepOutcome {
    pub status: StepStatus,
    /// The action's answer, the checks' report, the verification.
    pub result: Value,
}

impl StepOutcome {
    /// A check or verification: done when it passed, failed otherwise.
    pub fn checked(ok: bool, result: Value) -> StepOutcome {
        let status = if ok {
            StepStatus::Done
        } else {
            StepStatus::Failed
        };
        StepOutcome { status, result }
    }
}

/// The policy's definition of the step `run` names, if its owner may run
/// it now: the step exists, is not done or waiting for approvals, belongs
/// to the person's role (or they are an admin), and the policy in force
/// still has it.
pub fn step_to_run(s: &Setting, inc: &Incident, run: &StepRun) -> Result<StepKind, Refusal> {
    let name = run.name;
    let Some(step) = inc.steps.iter().find(|x| x.name == name) else {
        let names: Vec<&str> = inc.steps.iter().map(|x| x.name.as_str()).collect();
        return Err(Refusal::NotFound(format!(
            "incident {} has no playbook step \"{name}\" (steps: {})",
            inc.id,
            names.join(", ")
        )));
    };
    if matches!(step.status, StepStatus::Done | StepStatus::Requested) {
        return Err(Refusal::Conflict(format!(
            "step {name} is already {}",
            step.status
        )));
    }
    let by = run.by;
    if by.role != step.owner && by.role != "admin" {
        return Err(Refusal::Forbidden(format!(
            "step {name} is owned by role {}; {} has role {}",
            step.owner, by.name, by.role
        )));
    }
    s.policy
        .governance
        .playbooks
        .iter()
        .find(|p| p.name == step.playbook)
        .and_then(|p| p.steps.iter().find(|x| x.name == name))
        .map(|x| x.kind.clone())
        .ok_or_else(|| {
            Refusal::Conflict(format!("step {name} is no longer in the policy's playbook"))
        })
}

/// Records the step `run` of kind `kind` on the incident: a manual step is
/// done; a communicate step sends its template to its channels with the
/// note as the message; the others take the driver's `outcome` (a missing
/// one fails the step). A finished step's due timer is cancelled; one
/// waiting for approvals keeps it.
pub fn complete_step(
    s: &Setting,
    inc: &mut Incident,
    (run, kind): (StepRun, &StepKind),
    outcome: Option<StepOutcome>,
    fx: &mut Effects,
) {
    let name = run.name;
    let done = match (kind, outcome) {
        (StepKind::Manual, _) => StepOutcome {
            status: StepStatus::Done,
            result: Value::Null,
        },
        (StepKind::Communicate { template, channels }, _) => {
            let route = (channels.as_slice(), template.as_str());
            notify(s, inc, route, NotifyKind::Update, run.note.as_deref(), fx);
            StepOutcome {
                status: StepStatus::Done,
                result: json!({"channels": channels, "template": template}),
            }
        }
        (_, Some(outcome)) => outcome,
        (_, None) => StepOutcome::checked(false, json!({"error": "the step's work did not run"})),
    };
    let Some(step) = inc.steps.iter_mut().find(|x| x.name == name) else {
        return;
    };
    step.status = done.status;
    step.note = run.note;
    step.result = done.result;
    if done.status != StepStatus::Requested {
        step.done_at = Some(s.now.to_rfc3339());
        step.done_by = Some(run.by.name.to_string());
        let due = Due::Step {
            step: name.to_string(),
        };
        fx.timers.push(TimerChange::cancel(&inc.id, &due));
    }
    let summary = format!(
        "step {name} ({}) {} by {}",
        step.kind, done.status, run.by.name
    );
    let detail = json!({"step": name, "status": done.status, "due_at": step.due_at});
    inc.note(s.now, EntryKind::Playbook, run.by.name, summary, detail);
}

/// Records that policy `version` answers the incident.
pub fn cite(s: &Setting, inc: &mut Incident, version: i64, by: &str, fx: &mut Effects) {
    inc.policy_changes.push(version);
    inc.note(
        s.now,
        EntryKind::Policy,
        by,
        format!("policy version {version} answers this incident"),
        json!({"policy_version": version}),
    );
    crate::machine::save_incident(fx, inc, s.now, by, "incident.policy_change");
}
