//! Governance in the policy: who may decide what (decision rights), how an
//! incident is acknowledged and escalated, its playbooks, communication
//! templates and what the evidence bundle keeps.

use crate::policy::{OnTimeout, Severity};
use crate::time::Dur;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Governance {
    /// Decision rights for person-requested actions.
    pub rights: Vec<Right>,
    pub incidents: IncidentRules,
    pub playbooks: Vec<Playbook>,
    /// Overrides of, and additions to, the built-in templates.
    pub templates: Vec<TemplateDef>,
    pub evidence: EvidenceRules,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionName {
    Promote,
    Rollback,
    ReRelease,
    Pause,
    Resume,
}

impl ActionName {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Promote => "promote",
            ActionName::Rollback => "rollback",
            ActionName::ReRelease => "re_release",
            ActionName::Pause => "pause",
            ActionName::Resume => "resume",
        }
    }

    pub fn parse(name: &str) -> Option<ActionName> {
        [
            ActionName::Promote,
            ActionName::Rollback,
            ActionName::ReRelease,
            ActionName::Pause,
            ActionName::Resume,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// Who may approve a person-requested action, and how many of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Right {
    pub action: ActionName,
    pub roles: Vec<String>,
    pub quorum: u32,
    /// The requester cannot approve their own request.
    pub separation: bool,
    pub within: Dur,
    pub on_timeout: OnTimeout,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct IncidentRules {
    pub ack: AckDeadlines,
    /// Level 0 is notified when the incident opens; level n after its
    /// `after` without an acknowledgement.
    pub escalation: Vec<EscalationLevel>,
    /// A status update is due this often while the incident is open; a
    /// missed one escalates.
    pub status_every: Option<Dur>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AckDeadlines {
    pub critical: Dur,
    pub major: Dur,
    pub minor: Dur,
}

impl Default for AckDeadlines {
    fn default() -> Self {
        AckDeadlines {
            critical: Dur::from_secs(5 * 60),
            major: Dur::from_secs(15 * 60),
            minor: Dur::from_secs(60 * 60),
        }
    }
}

impl AckDeadlines {
    pub fn for_severity(&self, severity: Severity) -> Dur {
        match severity {
            Severity::Critical => self.critical,
            Severity::Major => self.major,
            Severity::Minor => self.minor,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EscalationLevel {
    pub after: Dur,
    pub channels: Vec<String>,
    pub template: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Playbook {
    pub name: String,
    /// Empty: every trigger.
    pub triggers: Vec<String>,
    pub steps: Vec<PlaybookStep>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlaybookStep {
    pub name: String,
    /// The role that owns the step.
    pub owner: String,
    /// Due this long after the incident opens.
    pub within: Dur,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Manual,
    Action {
        action: ActionName,
    },
    Communicate {
        template: String,
        channels: Vec<String>,
    },
    Check {
        checks: Vec<CheckKind>,
    },
    Verify {
        hold: Dur,
    },
}

impl StepKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Manual => "manual",
            StepKind::Action { .. } => "action",
            StepKind::Communicate { .. } => "communicate",
            StepKind::Check { .. } => "check",
            StepKind::Verify { .. } => "verify",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// No acknowledged event was lost across the rollback.
    EventsKept,
    /// Every unit is now assigned the baseline.
    BaselineAssigned,
    /// The store's file and audit chain are sound.
    StoreIntegrity,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::EventsKept => "events_kept",
            CheckKind::BaselineAssigned => "baseline_assigned",
            CheckKind::StoreIntegrity => "store_integrity",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TemplateDef {
    pub name: String,
    pub audience: Audience,
    pub subject: Option<String>,
    pub body: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Oncall,
    Stakeholders,
    StatusPage,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceRules {
    /// Raw events kept per release in the evidence reservoir.
    pub sample: usize,
    /// Dotted field paths removed from sampled events.
    pub drop: Vec<String>,
    /// Dotted field paths replaced by the SHA-256 of their value.
    pub hash: Vec<String>,
}

impl Default for EvidenceRules {
    fn default() -> Self {
        EvidenceRules {
            sample: 200,
            drop: Vec::new(),
            hash: Vec::new(),
        }
    }
}

impl Governance {
    pub fn right(&self, action: ActionName) -> Option<&Right> {
        self.rights.iter().find(|r| r.action == action)
    }

    /// Playbooks that apply when `trigger` fires.
    pub fn playbooks_for<'a>(&'a self, trigger: &'a str) -> impl Iterator<Item = &'a Playbook> {
        self.playbooks
            .iter()
            .filter(move |p| p.triggers.is_empty() || p.triggers.iter().any(|t| t == trigger))
    }

    pub fn template(&self, name: &str) -> Option<&TemplateDef> {
        self.templates.iter().find(|t| t.name == name)
    }
}
