//! People's commands on an incident — acknowledge, post a status update,
//! mitigate, resolve, sign off the review — and why one is refused.

use ripcord_core::policy::units::parse_duration;
use serde_json::json;

use crate::effects::Effects;
use crate::machine::{Setting, cancel_paging, close_timers, notify, notify_level};
use crate::record::{ActionItem, EntryKind, Incident, IncidentState, Review};
use crate::timer::{Due, TimerChange};
use crate::words::NotifyKind;

/// Roles that close safety and fairness incidents.
const SAFETY_ROLES: &[&str] = &["safety_lead", "admin"];

/// Who gives a command: the token's name, its role and the person it
/// belongs to (separation of duties compares persons).
#[derive(Clone, Copy, Debug)]
pub struct Person<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub person: &'a str,
}

/// Why a command was refused; the driver maps each to its status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The command itself is malformed.
    BadRequest(String),
    /// The person may not do this.
    Forbidden(String),
    /// What the command names does not exist.
    NotFound(String),
    /// The document is not in a state that allows it.
    Conflict(String),
}

/// What a person asks of an incident.
#[derive(Clone, Debug)]
pub enum IncidentCommand {
    Acknowledge {
        note: Option<String>,
    },
    Status {
        message: String,
        /// A duration as written (`30m`); the policy's `status_every`
        /// when absent.
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
}

/// Applies `command` to the incident and returns the audit action it is
/// recorded under. On refusal nothing in `fx` is to be written.
pub fn on_command(
    s: &Setting,
    inc: &mut Incident,
    command: IncidentCommand,
    by: Person,
    fx: &mut Effects,
) -> Result<&'static str, Refusal> {
    let now = s.now;
    match command {
        IncidentCommand::Acknowledge { note } => {
            acknowledge(s, inc, note, by, fx)?;
            Ok("incident.acknowledge")
        }
        IncidentCommand::Status {
            message,
            next_update_in,
            channels,
            template,
        } => {
            let route = (channels, template);
            status_update(s, inc, by, (message, next_update_in), route, fx)?;
            Ok("incident.status")
        }
        IncidentCommand::Mitigate { note } => {
            inc.transition(IncidentState::Mitigated, now, by.name, &note)
                .map_err(Refusal::Conflict)?;
            Ok("incident.mitigate")
        }
        IncidentCommand::Resolve { note } => {
            owner_check(inc, by, "resolve")?;
            inc.transition(IncidentState::Resolved, now, by.name, &note)
                .map_err(Refusal::Conflict)?;
            close_timers(s, inc, fx);
            for level in 0..=inc.escalation_level {
                notify_level(s, inc, level, NotifyKind::Resolve, fx);
            }
            Ok("incident.resolve")
        }
        IncidentCommand::Review {
            summary,
            action_items,
        } => {
            owner_check(inc, by, "review")?;
            let why = "post-incident review signed off";
            inc.transition(IncidentState::Reviewed, now, by.name, why)
                .map_err(Refusal::Conflict)?;
            inc.review = Some(Review {
                signed_off_by: by.name.to_string(),
                role: by.role.to_string(),
                at: now.to_rfc3339(),
                summary,
                action_items,
            });
            Ok("incident.review")
        }
    }
}

/// Paging stops; each level paged so far hears that someone has it
/// (PagerDuty marks the alert acknowledged).
fn acknowledge(
    s: &Setting,
    inc: &mut Incident,
    note: Option<String>,
    by: Person,
    fx: &mut Effects,
) -> Result<(), Refusal> {
    if inc.acknowledged_at.is_some() {
        return Err(Refusal::Conflict(format!(
            "incident {} was already acknowledged by {}",
            inc.id,
            inc.acknowledged_by.as_deref().unwrap_or("someone")
        )));
    }
    inc.acknowledged_at = Some(s.now.to_rfc3339());
    inc.acknowledged_by = Some(by.name.to_string());
    inc.note(
        s.now,
        EntryKind::Acknowledgement,
        by.name,
        format!("acknowledged by {} ({})", by.name, by.role),
        json!({"note": note}),
    );
    cancel_paging(s, inc, fx);
    for level in 0..=inc.escalation_level {
        notify_level(s, inc, level, NotifyKind::Acknowledge, fx);
    }
    Ok(())
}

/// Posts a status update to the first escalation level's channels (or the
/// ones named) and moves the next one's deadline.
fn status_update(
    s: &Setting,
    inc: &mut Incident,
    by: Person,
    (message, next_update_in): (String, Option<String>),
    (channels, template): (Option<Vec<String>>, Option<String>),
    fx: &mut Effects,
) -> Result<(), Refusal> {
    if !inc.is_active() {
        return Err(Refusal::Conflict(format!(
            "incident {} is {}; status updates are for open or mitigated incidents",
            inc.id, inc.state
        )));
    }
    let rules = &s.policy.governance.incidents;
    let every = match next_update_in {
        Some(text) => Some(
            parse_duration(&text)
                .map_err(|e| Refusal::BadRequest(format!("next_update_in: {e}")))?,
        ),
        None => rules.status_every,
    };
    inc.next_update_by = every.map(|d| (s.now + d).to_rfc3339());
    if let Some(d) = every {
        fx.timers
            .push(TimerChange::set(&inc.id, Due::Status, s.now + d));
    }
    inc.note(
        s.now,
        EntryKind::StatusUpdate,
        by.name,
        message.clone(),
        json!({"next_update_by": inc.next_update_by}),
    );
    let channels = channels.unwrap_or_else(|| {
        let first = rules.escalation.first();
        first.map(|l| l.channels.clone()).unwrap_or_default()
    });
    let template = template.unwrap_or_else(|| "stakeholders".into());
    let route = (channels.as_slice(), template.as_str());
    notify(s, inc, route, NotifyKind::Update, Some(&message), fx);
    Ok(())
}

/// Safety and fairness incidents are closed by a safety lead.
fn owner_check(inc: &Incident, by: Person, what: &str) -> Result<(), Refusal> {
    if inc.needs_safety_lead() && !SAFETY_ROLES.contains(&by.role) {
        let categories: Vec<&str> = inc.categories.iter().map(|c| c.as_str()).collect();
        return Err(Refusal::Forbidden(format!(
            "incident {} concerns {}; only a safety_lead may {what} it ({} has role {})",
            inc.id,
            categories.join(" and "),
            by.name,
            by.role
        )));
    }
    Ok(())
}
