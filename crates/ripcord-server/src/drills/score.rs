//! A drill's scorecard: one line per thing the team had to get right —
//! detection, acknowledgement, each playbook step, communications, the
//! rollback and the data's integrity — each passed or failed against what
//! was expected, with the figures it was judged on.

use ripcord_core::policy::Policy;
use ripcord_core::policy::governance::{CheckKind, StepKind};
use ripcord_core::{Dur, Time};
use ripcord_govern::record::{Incident, StepState};
use ripcord_govern::words::{EntryKind, StepKindName, StepStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Drill, DrillRecord};
use crate::checks;
use crate::error::ApiError;
use crate::hub::{Hub, ReleaseView};
use ripcord_core::engine::Phase;

/// How long after the rollback the baseline is verified when the playbook
/// has no verify step of its own.
const VERIFY_HOLD: Dur = Dur::from_mins(1);

/// One line of the scorecard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// `detection`, `acknowledgement`, `step <name>`, `communications`,
    /// `rollback`, `integrity`.
    pub name: String,
    pub pass: bool,
    pub expected: String,
    pub got: String,
    pub evidence: Value,
}

/// What a drill is scored on.
pub struct Facts<'a> {
    pub drill: &'a Drill,
    pub record: &'a DrillRecord,
    pub incident: Option<&'a Incident>,
    /// The drill's release, as it stands.
    pub view: Option<&'a ReleaseView>,
    pub policy: &'a Policy,
    pub started: Time,
    pub now: Time,
}

pub async fn score(hub: &Hub, f: &Facts<'_>) -> Result<Vec<Line>, ApiError> {
    let mut lines = vec![detection(f), acknowledgement(f)];
    if let Some(inc) = f.incident {
        lines.extend(inc.steps.iter().map(|s| step(inc, s)));
    }
    lines.push(communications(f));
    // One run of the checks reads the release's journal once for both lines.
    let kinds = [
        CheckKind::EventsKept,
        CheckKind::BaselineAssigned,
        CheckKind::StoreIntegrity,
    ];
    let mut checked = checks::run(hub, f.view, &kinds).await?;
    let assigned = checked.remove(1);
    lines.push(rollback(hub, f, assigned).await);
    lines.push(integrity(checked));
    Ok(lines)
}

fn at(text: &str) -> Option<Time> {
    Time::parse_rfc3339(text)
}

/// `+3m12s` from the drill's start.
fn offset(f: &Facts<'_>, t: Time) -> String {
    format!("+{}", t - f.started)
}

fn line(name: &str, pass: bool, expected: String, got: String, evidence: Value) -> Line {
    Line {
        name: name.to_string(),
        pass,
        expected,
        got,
        evidence,
    }
}

fn detection(f: &Facts<'_>) -> Line {
    let regression = f.record.regression_at.as_deref().and_then(at);
    let expected = match (regression, f.drill.detect_within) {
        (Some(r), Some(d)) => format!(
            "an incident within {d} of the regression starting (at {})",
            offset(f, r)
        ),
        (Some(r), None) => format!(
            "an incident after the regression starts (at {}), before the drill ends",
            offset(f, r)
        ),
        (None, _) => "an incident before the drill ends".to_string(),
    };
    let Some(inc) = f.incident else {
        let got = format!("no incident opened by {}", offset(f, f.now));
        return line(
            "detection",
            false,
            expected,
            got,
            json!({"regression_at": f.record.regression_at}),
        );
    };
    let detected = at(&inc.detected_at).unwrap_or(f.now);
    let since = detected - regression.unwrap_or(f.started);
    let in_time = f.drill.detect_within.is_none_or(|d| since <= d);
    let pass = since >= Dur::ZERO && in_time;
    let trigger = inc.trigger.as_ref().map(|t| t.name.clone());
    let got = if since < Dur::ZERO {
        format!(
            "{} opened at {}, {} before the regression started: a false alarm",
            inc.id,
            offset(f, detected),
            Dur(-since.0)
        )
    } else {
        format!(
            "{} detected at {}, {since} after the regression, by trigger {}",
            inc.id,
            offset(f, detected),
            trigger.as_deref().unwrap_or("(declared)")
        )
    };
    let evidence = json!({
        "incident": inc.id,
        "trigger": trigger,
        "regression_at": f.record.regression_at,
        "detected_at": inc.detected_at,
        "opened_at": inc.opened_at,
        "detection_ms": since.0,
        "signals": inc.signals,
    });
    line("detection", pass, expected, got, evidence)
}

fn acknowledgement(f: &Facts<'_>) -> Line {
    let Some(inc) = f.incident else {
        let got = "no incident to acknowledge".to_string();
        return line(
            "acknowledgement",
            false,
            "acknowledged by its deadline".into(),
            got,
            Value::Null,
        );
    };
    let opened = at(&inc.opened_at).unwrap_or(f.started);
    let deadline = inc.ack_by.as_deref().and_then(at);
    let expected = match deadline {
        Some(d) => format!("acknowledged within {} of the page", d - opened),
        None => "acknowledged (the policy sets no deadline)".to_string(),
    };
    let acked = inc.acknowledged_at.as_deref().and_then(at);
    let pass = acked.is_some_and(|a| deadline.is_none_or(|d| a <= d));
    let got = match acked {
        Some(a) => format!(
            "acknowledged {} after the page by {}",
            a - opened,
            inc.acknowledged_by.as_deref().unwrap_or("?")
        ),
        None => "not acknowledged".to_string(),
    };
    let evidence = json!({
        "incident": inc.id,
        "opened_at": inc.opened_at,
        "ack_by": inc.ack_by,
        "acknowledged_at": inc.acknowledged_at,
        "acknowledged_by": inc.acknowledged_by,
        "escalation_level": inc.escalation_level,
    });
    line("acknowledgement", pass, expected, got, evidence)
}

fn step(inc: &Incident, s: &StepState) -> Line {
    let opened = at(&inc.opened_at);
    let due = at(&s.due_at);
    let expected = match (opened, due) {
        (Some(o), Some(d)) => format!(
            "{} step done within {} of the page (by {}), owner {}",
            s.kind.as_str(),
            d - o,
            s.due_at,
            s.owner
        ),
        _ => format!(
            "{} step done by {}, owner {}",
            s.kind.as_str(),
            s.due_at,
            s.owner
        ),
    };
    let done = s.done_at.as_deref().and_then(at);
    let on_time = match (done, due) {
        (Some(d), Some(by)) => d <= by,
        _ => false,
    };
    let pass = s.status == StepStatus::Done && on_time;
    let got = match (s.status, done, opened) {
        (StepStatus::Done | StepStatus::Failed, Some(d), Some(o)) => {
            let late = due
                .filter(|by| d > *by)
                .map(|by| format!(", {} late", d - by));
            format!(
                "{} {} after the page by {}{}",
                s.status.as_str(),
                d - o,
                s.done_by.as_deref().unwrap_or("?"),
                late.unwrap_or_default()
            )
        }
        (status, _, _) => format!("{} at the end of the drill", status.as_str()),
    };
    let evidence = json!({
        "playbook": s.playbook,
        "kind": s.kind,
        "owner": s.owner,
        "due_at": s.due_at,
        "status": s.status,
        "done_at": s.done_at,
        "done_by": s.done_by,
        "note": s.note,
        "result": s.result,
    });
    line(&format!("step {}", s.name), pass, expected, got, evidence)
}

/// Pages and messages: every notification of the incident was queued to
/// its channel's durable outbox (none failed to render or queue), and no
/// status update was missed.
fn communications(f: &Facts<'_>) -> Line {
    let expected =
        "the page went out, no notification failed and no status update was missed".to_string();
    let Some(inc) = f.incident else {
        return line(
            "communications",
            false,
            expected,
            "no incident".into(),
            Value::Null,
        );
    };
    let sent: Vec<&Value> = inc
        .timeline
        .iter()
        .filter(|e| e.kind == EntryKind::Notification)
        .map(|e| &e.detail)
        .collect();
    let failed = inc
        .timeline
        .iter()
        .filter(|e| e.kind == EntryKind::Notification && e.summary.contains("failed"))
        .count();
    let missed = inc
        .timeline
        .iter()
        .filter(|e| e.summary.contains("status update missed"))
        .count();
    let updates = inc
        .timeline
        .iter()
        .filter(|e| e.kind == EntryKind::StatusUpdate)
        .count();
    let pass = !sent.is_empty() && failed == 0 && missed == 0;
    let got = format!(
        "{} notification(s), {failed} failed; {updates} status update(s), {missed} missed",
        sent.len()
    );
    let evidence = json!({"notifications": sent, "failed": failed, "status_updates": updates, "missed_updates": missed});
    line("communications", pass, expected, got, evidence)
}

/// `assigned`: the `baseline_assigned` check's result.
async fn rollback(hub: &Hub, f: &Facts<'_>, assigned: Value) -> Line {
    let expected = "the candidate rolled back, every simulated user served the baseline, and the \
                    baseline within the policy's absolute bounds after the rollback"
        .to_string();
    let Some(view) = f.view else {
        let got = "the drill's release is no longer the service's".to_string();
        return line("rollback", false, expected, got, Value::Null);
    };
    let verified = verification(hub, f, view).await;
    let rolled_back = view.state == Phase::RolledBack;
    let pass = rolled_back && assigned["ok"] == json!(true) && verified["ok"] == json!(true);
    let units = &assigned["detail"];
    let got = format!(
        "release {} ({} of traffic on the candidate); {} of {} users on the candidate; verification {}",
        view.state,
        view.share,
        units["units_on_candidate"],
        units["units_checked"],
        match &verified["error"] {
            Value::String(e) => format!("not done: {e}"),
            _ if verified["ok"] == json!(true) => "passed".to_string(),
            _ => "failed".to_string(),
        }
    );
    let evidence = json!({"release": view.id, "state": view.state, "share": view.share, "moves": view.moves, "baseline_assigned": assigned, "verify": verified});
    line("rollback", pass, expected, got, evidence)
}

/// The playbook's own verify step's result when it ran, else the same
/// verification over [`VERIFY_HOLD`] (or the step's hold) now.
async fn verification(hub: &Hub, f: &Facts<'_>, view: &ReleaseView) -> Value {
    let Some(inc) = f.incident else {
        return json!({"ok": false, "error": "no incident"});
    };
    let ran = inc
        .steps
        .iter()
        .find(|s| s.kind == StepKindName::Verify && s.status != StepStatus::Pending);
    if let Some(s) = ran {
        return s.result.clone();
    }
    let hold = f
        .policy
        .governance
        .playbooks
        .iter()
        .flat_map(|p| &p.steps)
        .find_map(|s| match s.kind {
            StepKind::Verify { hold } => Some(hold),
            _ => None,
        })
        .unwrap_or(VERIFY_HOLD);
    match checks::verify(hub, (f.policy, Some(view)), inc, hold, f.now).await {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "error": e.message}),
    }
}

/// `results`: the `events_kept` and `store_integrity` checks' results.
fn integrity(results: Vec<Value>) -> Line {
    let pass = results.iter().all(|r| r["ok"] == json!(true));
    let failing: Vec<&str> = results
        .iter()
        .filter(|r| r["ok"] != json!(true))
        .filter_map(|r| r["check"].as_str())
        .collect();
    let got = if failing.is_empty() {
        "every acknowledged event journaled; the store and the audit chain sound".to_string()
    } else {
        format!("failed: {}", failing.join(", "))
    };
    let expected = "every acknowledged event in the journal; the store's integrity check and the audit chain pass".to_string();
    line("integrity", pass, expected, got, json!(results))
}
