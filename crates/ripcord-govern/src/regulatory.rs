//! Regulatory incident reports in the machine: the classes an incident may
//! fall in (each with its reporting deadline counted from when the
//! organisation became aware), classifying an incident, the deadline's
//! reminders and escalation, and the filings (initial, updates, final)
//! that meet it. The report documents themselves are assembled by the
//! driver, which reads the store; the machine checks their order and
//! records them on the incident.

use ripcord_core::{Dur, Time};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::command::{Person, Refusal};
use crate::effects::Effects;
use crate::machine::{ENGINE, Governance, Setting, escalate, notify, save_incident};
use crate::record::{EntryKind, Incident};
use crate::timer::{Due, TimerChange};
use crate::words::{NotifyKind, ReportStage};

/// Store document kind of a filed regulatory report.
pub const REGULATORY_REPORT: &str = "regulatory_report";
/// A class table has at most this many classes.
pub const MAX_CLASSES: usize = 32;
/// An incident keeps at most this many filed reports.
pub const MAX_REPORTS: usize = 64;
/// Reminders before the deadline, in percent of the period; the deadline
/// itself is 100.
pub const REMINDERS: [u32; 2] = [50, 90];
const DAY: i64 = 86_400_000;

/// One regulatory class: its name, what it covers and the reporting
/// period counted from awareness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegulatoryClass {
    pub name: String,
    pub description: String,
    pub deadline: Dur,
}

/// The classes an organisation reports under (`regulatory.classes` in
/// `ripcord.yaml`); the default is the EU AI Act's Article 73.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegulatoryClasses {
    pub framework: String,
    classes: Vec<RegulatoryClass>,
}

impl Default for RegulatoryClasses {
    /// EU AI Act, Article 73: 2 days for a widespread infringement or a
    /// serious and irreversible disruption of critical infrastructure
    /// (73(3)), 10 days where a person died (73(4)), 15 days for any other
    /// serious incident (73(2)).
    fn default() -> RegulatoryClasses {
        let class = |name: &str, days: i64, description: &str| RegulatoryClass {
            name: name.into(),
            description: description.into(),
            deadline: Dur(days * DAY),
        };
        RegulatoryClasses {
            framework: "EU AI Act Article 73".into(),
            classes: vec![
                class(
                    "widespread_infringement",
                    2,
                    "widespread infringement (Art. 3(61)) — Art. 73(3)",
                ),
                class(
                    "critical_infrastructure",
                    2,
                    "serious and irreversible disruption of the management or operation of critical infrastructure — Art. 73(3)",
                ),
                class("death", 10, "the death of a person — Art. 73(4)"),
                class(
                    "serious_incident",
                    15,
                    "any other serious incident (Art. 3(49)) — Art. 73(2)",
                ),
            ],
        }
    }
}

impl RegulatoryClasses {
    /// A class table; each problem names its field
    /// (`regulatory.classes.<name>.deadline`).
    pub fn new(
        framework: String,
        classes: Vec<RegulatoryClass>,
    ) -> Result<RegulatoryClasses, String> {
        if framework.trim().is_empty() || framework.len() > 200 {
            return Err("regulatory.framework: must be 1 to 200 characters".into());
        }
        if classes.is_empty() || classes.len() > MAX_CLASSES {
            return Err(format!(
                "regulatory.classes: must have 1 to {MAX_CLASSES} classes, got {}",
                classes.len()
            ));
        }
        for (i, c) in classes.iter().enumerate() {
            check_class(c)?;
            if classes[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("regulatory.classes.{}: given twice", c.name));
            }
        }
        Ok(RegulatoryClasses { framework, classes })
    }

    pub fn get(&self, name: &str) -> Option<&RegulatoryClass> {
        self.classes.iter().find(|c| c.name == name)
    }

    pub fn classes(&self) -> &[RegulatoryClass] {
        &self.classes
    }

    /// The class `name`, or a refusal that lists the known ones.
    pub fn class(&self, name: &str) -> Result<&RegulatoryClass, Refusal> {
        self.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
            Refusal::BadRequest(format!(
                "class: \"{name}\" is not one of {} ({})",
                names.join(", "),
                self.framework
            ))
        })
    }
}

/// One class's problem, if it has one, naming its field.
pub fn check_class(c: &RegulatoryClass) -> Result<(), String> {
    let ok_name = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
    if !ok_name {
        return Err(format!(
            "regulatory.classes.{}: a class name is 1 to 64 of a-z, 0-9, _ and -",
            c.name
        ));
    }
    if c.deadline < Dur(3_600_000) || c.deadline > Dur(366 * DAY) {
        return Err(format!(
            "regulatory.classes.{}.deadline: must be between 1h and 366d",
            c.name
        ));
    }
    if c.description.len() > 500 {
        return Err(format!(
            "regulatory.classes.{}.description: at most 500 characters",
            c.name
        ));
    }
    Ok(())
}

/// What an incident records once classified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regulatory {
    pub framework: String,
    pub class: String,
    pub class_description: String,
    /// The reporting period, in milliseconds, counted from `aware_at`.
    pub deadline_ms: i64,
    /// When the organisation became aware of the incident.
    pub aware_at: String,
    /// The reporting deadline: `aware_at` + the class's period.
    pub due_at: String,
    pub classified_at: String,
    pub classified_by: String,
    /// How many people are affected, as far as known.
    #[serde(default)]
    pub affected: Option<u64>,
    /// The harm done, as far as known.
    #[serde(default)]
    pub harm: Option<String>,
    /// When the first report was filed; that meets the deadline.
    #[serde(default)]
    pub reported_at: Option<String>,
    /// Whether the first report came by the deadline.
    #[serde(default)]
    pub deadline_met: Option<bool>,
    /// Every report filed, in order.
    #[serde(default)]
    pub reports: Vec<Filed>,
}

/// One filed report, as the incident lists it; the report itself is a
/// document of kind [`REGULATORY_REPORT`] with id `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Filed {
    pub id: String,
    pub stage: ReportStage,
    pub filed_at: String,
    pub filed_by: String,
    /// SHA-256 of the report's canonical JSON, as audited.
    pub sha256: String,
}

/// A person classifies the incident.
pub struct Classify<'a> {
    pub class: &'a RegulatoryClass,
    pub framework: &'a str,
    /// Defaults to what was recorded before, else the incident's opening.
    pub aware_at: Option<Time>,
    pub affected: Option<u64>,
    pub harm: Option<String>,
}

/// Records the class and awareness on the incident and schedules the
/// deadline's reminders and escalation (unless a report already met it).
pub fn classify(
    s: &Setting,
    inc: &mut Incident,
    c: Classify,
    by: Person,
    fx: &mut Effects,
) -> Result<(), Refusal> {
    let previous = inc.regulatory.take();
    let restore = |inc: &mut Incident, r: Refusal| {
        inc.regulatory.clone_from(&previous);
        Err(r)
    };
    if previous
        .as_ref()
        .is_some_and(|r| r.reports.iter().any(|f| f.stage == ReportStage::Final))
    {
        let why = format!("incident {} has its final regulatory report", inc.id);
        return restore(inc, Refusal::Conflict(why));
    }
    let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(s.now);
    let before = previous
        .as_ref()
        .and_then(|r| Time::parse_rfc3339(&r.aware_at));
    let aware = c.aware_at.or(before).unwrap_or(opened);
    if aware > s.now {
        let why = format!("aware_at: {} is in the future", aware.to_rfc3339());
        return restore(inc, Refusal::BadRequest(why));
    }
    if let Some(h) = &c.harm
        && h.len() > 10_000
    {
        return restore(
            inc,
            Refusal::BadRequest("harm: at most 10000 characters".into()),
        );
    }
    let due = aware + c.class.deadline;
    let kept = previous.clone();
    let mut reg = Regulatory {
        framework: c.framework.to_string(),
        class: c.class.name.clone(),
        class_description: c.class.description.clone(),
        deadline_ms: c.class.deadline.0,
        aware_at: aware.to_rfc3339(),
        due_at: due.to_rfc3339(),
        classified_at: s.now.to_rfc3339(),
        classified_by: by.name.to_string(),
        affected: c.affected.or(kept.as_ref().and_then(|r| r.affected)),
        harm: c.harm.or(kept.as_ref().and_then(|r| r.harm.clone())),
        reported_at: None,
        deadline_met: None,
        reports: Vec::new(),
    };
    if let Some(k) = kept {
        reg.reported_at = k.reported_at;
        reg.deadline_met = k.deadline_met;
        reg.reports = k.reports;
    }
    let reported = reg.reported_at.is_some();
    if !reported {
        schedule(s, &inc.id, aware, c.class.deadline, fx);
    }
    let summary = format!(
        "classified {} under {} by {}: aware at {}, report due by {}{}",
        reg.class,
        reg.framework,
        by.name,
        reg.aware_at,
        reg.due_at,
        if reported { " (already reported)" } else { "" }
    );
    let detail = json!({"class": reg.class, "aware_at": reg.aware_at, "due_at": reg.due_at,
                        "affected": reg.affected, "harm": reg.harm});
    inc.regulatory = Some(reg);
    inc.note(s.now, EntryKind::Regulatory, by.name, summary, detail);
    Ok(())
}

/// Reminders at [`REMINDERS`] of the period and the deadline itself; a
/// reminder already past is not set (the deadline always is, so an
/// overdue classification escalates at once).
fn schedule(s: &Setting, subject: &str, aware: Time, period: Dur, fx: &mut Effects) {
    for percent in REMINDERS {
        let at = aware + Dur(period.0 / 100 * i64::from(percent));
        let due = Due::Report { percent };
        if at > s.now {
            fx.timers.push(TimerChange::set(subject, due, at));
        } else {
            fx.timers.push(TimerChange::cancel(subject, &due));
        }
    }
    let deadline = Due::Report { percent: 100 };
    fx.timers
        .push(TimerChange::set(subject, deadline, aware + period));
}

fn cancel(subject: &str, fx: &mut Effects) {
    for percent in REMINDERS.into_iter().chain([100]) {
        fx.timers
            .push(TimerChange::cancel(subject, &Due::Report { percent }));
    }
}

/// A reporting timer fired: before the deadline a reminder to the current
/// escalation level, at the deadline an escalation. Nothing once a report
/// has been filed. Returns whether the incident changed.
pub fn on_due(s: &Setting, inc: &mut Incident, percent: u32, fx: &mut Effects) -> bool {
    let Some(reg) = inc.regulatory.clone() else {
        return false;
    };
    if reg.reported_at.is_some() {
        return false;
    }
    let marks = json!({"class": reg.class, "framework": reg.framework, "due_at": reg.due_at,
                       "percent": percent});
    if percent >= 100 {
        let why = format!(
            "the {} regulatory report ({}) was due by {} and none is filed",
            reg.class, reg.framework, reg.due_at
        );
        inc.note(s.now, EntryKind::Regulatory, ENGINE, why.clone(), marks);
        escalate(s, inc, &why, fx);
    } else {
        let message = format!(
            "reminder: {percent}% of the reporting period has passed; the {} regulatory report ({}) is due by {}",
            reg.class, reg.framework, reg.due_at
        );
        inc.note(s.now, EntryKind::Regulatory, ENGINE, message.clone(), marks);
        let levels = &s.policy.governance.incidents.escalation;
        if let Some(level) = levels.get(inc.escalation_level as usize) {
            let template = level.template.clone().unwrap_or_else(|| "oncall".into());
            let route = (level.channels.as_slice(), template.as_str());
            notify(s, inc, route, NotifyKind::Update, Some(&message), fx);
        }
    }
    save_incident(fx, inc, s.now, ENGINE, "incident.regulatory_deadline");
    true
}

impl Governance {
    /// A reporting timer fired for `inc`, which the driver read from the
    /// active incidents or, once resolved, from the store: a reporting
    /// obligation outlives the incident's resolution.
    pub fn on_report_timer(&mut self, s: &Setting, mut inc: Incident, percent: u32) -> Effects {
        let mut fx = Effects::default();
        if on_due(s, &mut inc, percent, &mut fx) {
            self.store_active(&inc);
        }
        fx
    }
}

/// Checks that a report of `stage` may be filed now: the incident is
/// classified, an update or a final report follows an initial one (a
/// final one may also come first, complete), nothing follows the final
/// one, and the incident has room.
pub fn may_file(inc: &Incident, stage: ReportStage) -> Result<usize, Refusal> {
    let Some(reg) = &inc.regulatory else {
        return Err(Refusal::Conflict(format!(
            "incident {} has no regulatory class; classify it first (POST /v1/incidents/{}/classify)",
            inc.id, inc.id
        )));
    };
    let has = |st: ReportStage| reg.reports.iter().any(|f| f.stage == st);
    if has(ReportStage::Final) {
        return Err(Refusal::Conflict(format!(
            "incident {} already has its final regulatory report",
            inc.id
        )));
    }
    if stage == ReportStage::Initial && has(ReportStage::Initial) {
        return Err(Refusal::Conflict(format!(
            "incident {} already has an initial regulatory report; file an update or the final one",
            inc.id
        )));
    }
    if stage == ReportStage::Update && !has(ReportStage::Initial) {
        return Err(Refusal::Conflict(format!(
            "incident {} has no initial regulatory report to update",
            inc.id
        )));
    }
    if reg.reports.len() >= MAX_REPORTS {
        return Err(Refusal::Conflict(format!(
            "incident {} has {MAX_REPORTS} regulatory reports, the most it keeps",
            inc.id
        )));
    }
    Ok(reg.reports.len() + 1)
}

/// Records a filed report on the incident: the first one meets the
/// deadline (its timers are cancelled), and the timeline says which.
pub fn file(
    s: &Setting,
    inc: &mut Incident,
    filed: Filed,
    fx: &mut Effects,
) -> Result<(), Refusal> {
    may_file(inc, filed.stage)?;
    let Some(reg) = inc.regulatory.as_mut() else {
        return Ok(());
    };
    let mut summary = format!(
        "{} regulatory report {} filed by {}",
        filed.stage, filed.id, filed.filed_by
    );
    if reg.reported_at.is_none() {
        let due = Time::parse_rfc3339(&reg.due_at).unwrap_or(s.now);
        let met = s.now <= due;
        reg.reported_at = Some(s.now.to_rfc3339());
        reg.deadline_met = Some(met);
        let verdict = if met { "met" } else { "missed" };
        summary.push_str(&format!("; the deadline {} was {verdict}", reg.due_at));
        cancel(&inc.id, fx);
    }
    let detail = json!({"report": filed.id, "stage": filed.stage, "sha256": filed.sha256});
    let by = filed.filed_by.clone();
    reg.reports.push(filed);
    inc.note(s.now, EntryKind::Regulatory, &by, summary, detail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_classes_are_article_73s_two_ten_and_fifteen_days() {
        let t = RegulatoryClasses::default();
        let days = |name: &str| t.get(name).map(|c| c.deadline.0 / DAY);
        assert_eq!(days("widespread_infringement"), Some(2));
        assert_eq!(days("critical_infrastructure"), Some(2));
        assert_eq!(days("death"), Some(10));
        assert_eq!(days("serious_incident"), Some(15));
        assert_eq!(t.classes().len(), 4);
        for c in t.classes() {
            assert_eq!(c.deadline.0 % DAY, 0, "{}", c.name);
        }
    }

    #[test]
    fn a_bad_class_table_names_the_field() {
        let class = |name: &str, ms: i64| RegulatoryClass {
            name: name.into(),
            description: String::new(),
            deadline: Dur(ms),
        };
        let err = |classes| RegulatoryClasses::new("X".into(), classes).unwrap_err();
        assert_eq!(
            err(vec![class("a", 60_000)]),
            "regulatory.classes.a.deadline: must be between 1h and 366d"
        );
        assert_eq!(
            err(vec![class("A b", DAY)]),
            "regulatory.classes.A b: a class name is 1 to 64 of a-z, 0-9, _ and -"
        );
        assert_eq!(
            err(vec![class("a", DAY), class("a", DAY)]),
            "regulatory.classes.a: given twice"
        );
        assert_eq!(
            err(vec![]),
            "regulatory.classes: must have 1 to 32 classes, got 0"
        );
        assert!(RegulatoryClasses::new("X".into(), vec![class("a", DAY)]).is_ok());
    }
}
