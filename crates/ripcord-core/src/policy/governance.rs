//! Governance: who may decide what, how incidents are acknowledged and
//! escalated, the playbooks people follow, the templates they send, and what
//! evidence is kept.
//!
//! These are validated types like the rest of [`super`]: the loader
//! (`load/governance.rs`) is their constructor. The engine does not read
//! them; the server does (approvals, incidents, notifications, evidence).
//! Channel and role names are plain strings here because both are defined in
//! the server's configuration, which the policy does not see.

use super::{OnTimeout, Severity};
use crate::engine::Command;
use crate::time::Dur;

/// The governance sections of a policy; [`Default`] when it has none.
#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Governance {
    /// Decision rights for person-requested actions.
    pub rights: Vec<Right>,
    pub incidents: IncidentRules,
    pub playbooks: Vec<Playbook>,
    /// Overrides of and additions to the built-in templates.
    pub templates: Vec<TemplateDef>,
    pub evidence: EvidenceRules,
    /// What happens to a rolled-back candidate's data.
    #[serde(default)]
    pub after_rollback: AfterRollback,
}

impl Governance {
    /// The decision right for `action`, if the policy declares one.
    pub fn right(&self, action: ActionName) -> Option<&Right> {
        self.rights.iter().find(|r| r.action == action)
    }

    /// The playbooks that apply when `trigger` fires, in policy order. A
    /// playbook without `triggers` applies to every trigger.
    pub fn playbooks_for<'a>(&'a self, trigger: &'a str) -> impl Iterator<Item = &'a Playbook> {
        self.playbooks
            .iter()
            .filter(move |p| p.triggers.is_empty() || p.triggers.iter().any(|t| t == trigger))
    }

    /// The policy's own template of this name (a built-in one is not here).
    pub fn template(&self, name: &str) -> Option<&TemplateDef> {
        self.templates.iter().find(|t| t.name == name)
    }
}

/// The templates every server has, which a policy may name without
/// declaring (and may override under the same name).
pub const BUILTIN_TEMPLATES: &[&str] = &["oncall", "stakeholders", "status_page"];

/// An action a person requests (and others may have to approve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ActionName {
    Promote,
    Rollback,
    ReRelease,
    Pause,
    Resume,
}

impl ActionName {
    pub const ALL: [ActionName; 5] = [
        ActionName::Promote,
        ActionName::Rollback,
        ActionName::ReRelease,
        ActionName::Pause,
        ActionName::Resume,
    ];

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
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The engine command that carries the action out.
    pub fn command(self) -> Command {
        match self {
            ActionName::Promote => Command::Promote,
            ActionName::Rollback => Command::Rollback,
            ActionName::ReRelease => Command::ReRelease,
            ActionName::Pause => Command::Pause,
            ActionName::Resume => Command::Resume,
        }
    }

    /// The action a command carries out; approving and rejecting are votes,
    /// not actions.
    pub fn of(command: &Command) -> Option<ActionName> {
        Self::ALL.into_iter().find(|a| a.command() == *command)
    }
}

/// Who may approve an action, how many must, and what a silent window means.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Right {
    pub action: ActionName,
    /// Roles whose members may approve; any one of them counts.
    pub roles: Vec<String>,
    /// Distinct approvers needed; at least 1.
    pub quorum: u32,
    /// Separation of duties: the requester's approval does not count.
    pub separation: bool,
    /// How long the approvals may take, from the request.
    pub within: Dur,
    pub on_timeout: OnTimeout,
}

#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct IncidentRules {
    pub ack: AckDeadlines,
    /// Level 0 is notified when the incident opens; level n once `after`
    /// has passed without an acknowledgement. `after` never decreases.
    pub escalation: Vec<EscalationLevel>,
    /// While open, a status update is due this often; a missed one escalates.
    pub status_every: Option<Dur>,
}

/// How long an incident of each severity may stay unacknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AckDeadlines {
    pub critical: Dur,
    pub major: Dur,
    pub minor: Dur,
}

impl Default for AckDeadlines {
    fn default() -> Self {
        AckDeadlines {
            critical: Dur::from_mins(5),
            major: Dur::from_mins(15),
            minor: Dur::from_mins(60),
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

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EscalationLevel {
    /// From incident open.
    pub after: Dur,
    /// Names of channels in the server configuration.
    pub channels: Vec<String>,
    /// `None`: the server's default for the audience (on-call).
    pub template: Option<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Playbook {
    pub name: String,
    /// Names of the policy's triggers; empty means every trigger.
    pub triggers: Vec<String>,
    /// In order; names are unique within the playbook.
    pub steps: Vec<PlaybookStep>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlaybookStep {
    pub name: String,
    /// The role responsible for the step.
    pub owner: String,
    /// Due this long after the incident opens.
    pub within: Dur,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StepKind {
    /// A person marks it done, with a note.
    Manual,
    /// A release action, requested under the action's decision right.
    Action { action: ActionName },
    /// Send a template to channels.
    Communicate {
        template: String,
        channels: Vec<String>,
    },
    /// Data-integrity checks run by the server.
    Check { checks: Vec<CheckKind> },
    /// The baseline's criteria must hold for `hold` after the rollback.
    Verify { hold: Dur },
}

impl StepKind {
    /// The name used in the policy (`kind: ...`).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CheckKind {
    /// No acknowledged event was lost across the rollback.
    EventsKept,
    /// Every unit is now assigned the baseline.
    BaselineAssigned,
    /// The store's own integrity check (and the audit chain) pass.
    StoreIntegrity,
}

impl CheckKind {
    pub const ALL: [CheckKind; 3] = [
        CheckKind::EventsKept,
        CheckKind::BaselineAssigned,
        CheckKind::StoreIntegrity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::EventsKept => "events_kept",
            CheckKind::BaselineAssigned => "baseline_assigned",
            CheckKind::StoreIntegrity => "store_integrity",
        }
    }
}

/// A communication template; `subject` and `body` are Jinja (minijinja)
/// source, checked for syntax by the loader and rendered by the server.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TemplateDef {
    pub name: String,
    pub audience: Audience,
    pub subject: Option<String>,
    pub body: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Audience {
    Oncall,
    Stakeholders,
    StatusPage,
}

impl Audience {
    pub const ALL: [Audience; 3] = [
        Audience::Oncall,
        Audience::Stakeholders,
        Audience::StatusPage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Oncall => "oncall",
            Audience::Stakeholders => "stakeholders",
            Audience::StatusPage => "status_page",
        }
    }
}

/// What an evidence bundle keeps of the raw events.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceRules {
    /// Size of the reservoir sample of raw events.
    pub sample: usize,
    /// Dotted field paths in the raw event JSON to remove, e.g. `prompt`.
    pub drop: Vec<String>,
    /// Dotted field paths to replace by their SHA-256, e.g. `segment.user`.
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

/// `after_rollback:` the data rules of a release that rolled back: how
/// long the candidate's raw events (with its outputs) stay for the
/// investigation before they are purged, and how long the evidence of the
/// release's incidents is held. [`Default`] (no section): no rule, the
/// retention classes alone apply.
#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct AfterRollback {
    /// From the rollback; `None`: the candidate's raw events are not
    /// purged early.
    pub raw_events_keep: Option<Dur>,
    pub evidence_hold: EvidenceHold,
    /// What is sent to whom once the release has rolled back.
    #[serde(default)]
    pub exports: Vec<Export>,
}

/// One export of a rolled-back release's data: `what` to the team `to`,
/// through a notification channel of the server (a signed webhook).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Export {
    /// Who receives it (a team or system, as the policy names it).
    pub to: String,
    /// In policy order, each at most once.
    pub what: Vec<ExportPart>,
    /// A channel name of the server's configuration.
    pub channel: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportPart {
    /// The evidence bundles of the release's incidents.
    Evidence,
    /// The release's decision records.
    Decisions,
}

impl ExportPart {
    pub const ALL: [ExportPart; 2] = [ExportPart::Evidence, ExportPart::Decisions];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportPart::Evidence => "evidence",
            ExportPart::Decisions => "decisions",
        }
    }
}

impl AfterRollback {
    /// The longest `keep` a policy may give: ten years.
    pub const MAX_KEEP: Dur = Dur(3650 * 86_400_000);
    /// The most exports a policy may list.
    pub const MAX_EXPORTS: usize = 10;

    /// Whether a rollback under this policy leaves a data rule to run.
    pub fn is_set(&self) -> bool {
        self.raw_events_keep.is_some()
            || self.evidence_hold != EvidenceHold::None
            || !self.exports.is_empty()
    }
}

/// How long the evidence of a rolled-back release's incidents (their
/// bundles and audit records, and the candidate's raw events still due
/// for purging) is held against every deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceHold {
    /// Retention and the data rule alone decide.
    #[default]
    None,
    /// While one of the release's incidents is open or mitigated.
    WhileIncidentOpen,
    /// Until every incident of the release has its post-incident review
    /// signed off (the report is written).
    UntilReviewed,
    /// While one of the release's incidents is open or mitigated, or is
    /// classified for regulatory reporting and its final report is not
    /// filed yet.
    WhileOpenOrReported,
}

impl EvidenceHold {
    pub const ALL: [EvidenceHold; 4] = [
        EvidenceHold::None,
        EvidenceHold::WhileIncidentOpen,
        EvidenceHold::UntilReviewed,
        EvidenceHold::WhileOpenOrReported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceHold::None => "none",
            EvidenceHold::WhileIncidentOpen => "while_incident_open",
            EvidenceHold::UntilReviewed => "until_reviewed",
            EvidenceHold::WhileOpenOrReported => "while_open_or_reported",
        }
    }
}
