//! The typed vocabulary of governance documents: each state and kind has
//! one spelling, the one stored documents and API answers use.

use std::fmt;

use ripcord_core::engine::Command;
use ripcord_core::policy::Action;
use ripcord_core::policy::governance::{ActionName, StepKind};
use serde::{Deserialize, Serialize};

/// An enum of plain words: serialised, shown and parsed as the word.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            pub fn parse(word: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == word)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// `open → mitigated → resolved → reviewed`.
    IncidentState {
        Open = "open",
        Mitigated = "mitigated",
        Resolved = "resolved",
        Reviewed = "reviewed",
    }
}

impl IncidentState {
    /// The state an incident may move to from this one.
    pub fn next(self) -> Option<IncidentState> {
        match self {
            IncidentState::Open => Some(IncidentState::Mitigated),
            IncidentState::Mitigated => Some(IncidentState::Resolved),
            IncidentState::Resolved => Some(IncidentState::Reviewed),
            IncidentState::Reviewed => None,
        }
    }

    /// Open and mitigated incidents are still being worked on.
    pub fn is_active(self) -> bool {
        matches!(self, IncidentState::Open | IncidentState::Mitigated)
    }
}

words! {
    /// A real incident, or a drill (a rehearsal kept out of the real
    /// figures).
    IncidentKind {
        Real = "real",
        Drill = "drill",
    }
}

words! {
    /// What one line of an incident's timeline is about.
    EntryKind {
        Signal = "signal",
        Decision = "decision",
        State = "state",
        Acknowledgement = "acknowledgement",
        Approval = "approval",
        Action = "action",
        Notification = "notification",
        Escalation = "escalation",
        StatusUpdate = "status_update",
        Playbook = "playbook",
        Evidence = "evidence",
        Policy = "policy",
        Regulatory = "regulatory",
    }
}

words! {
    /// A regulatory report's stage: the initial report that meets the
    /// deadline, updates, and the final one.
    ReportStage {
        Initial = "initial",
        Update = "update",
        Final = "final",
    }
}

words! {
    /// A playbook step's progress; `requested` is an action step waiting
    /// for its approvals.
    StepStatus {
        Pending = "pending",
        Overdue = "overdue",
        Done = "done",
        Failed = "failed",
        Requested = "requested",
    }
}

words! {
    /// An approval request's progress.
    RequestState {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        Expired = "expired",
        Superseded = "superseded",
    }
}

words! {
    /// What happened to the incident that a notification announces.
    NotifyKind {
        Open = "open",
        Escalate = "escalate",
        Update = "update",
        Acknowledge = "acknowledge",
        Resolve = "resolve",
    }
}

words! {
    /// An action as requests, votes and trigger facts name it: a person's
    /// release action, or what a trigger does (`none` for a declared
    /// incident, which no trigger opened).
    ActionWord {
        Promote = "promote",
        Rollback = "rollback",
        ReRelease = "re_release",
        Pause = "pause",
        Resume = "resume",
        PauseAndInvestigate = "pause_and_investigate",
        Notify = "notify",
        NoAction = "none",
    }
}

impl ActionWord {
    /// What a trigger does, as its facts and its approval request say.
    pub fn of_trigger(action: &Action) -> ActionWord {
        match action {
            Action::Notify => ActionWord::Notify,
            Action::Pause => ActionWord::Pause,
            Action::PauseAndInvestigate => ActionWord::PauseAndInvestigate,
            Action::Rollback { .. } => ActionWord::Rollback,
        }
    }

    /// The engine command that carries out a person's action; trigger-only
    /// words have none.
    pub fn command(self) -> Option<Command> {
        ActionName::ALL
            .into_iter()
            .find(|&a| ActionWord::from(a) == self)
            .map(ActionName::command)
    }
}

impl From<ActionName> for ActionWord {
    fn from(action: ActionName) -> ActionWord {
        match action {
            ActionName::Promote => ActionWord::Promote,
            ActionName::Rollback => ActionWord::Rollback,
            ActionName::ReRelease => ActionWord::ReRelease,
            ActionName::Pause => ActionWord::Pause,
            ActionName::Resume => ActionWord::Resume,
        }
    }
}

words! {
    /// A playbook step's kind, as the policy's `kind:` names it.
    StepKindName {
        Manual = "manual",
        Action = "action",
        Communicate = "communicate",
        Check = "check",
        Verify = "verify",
    }
}

impl StepKindName {
    pub fn of(kind: &StepKind) -> StepKindName {
        match kind {
            StepKind::Manual => StepKindName::Manual,
            StepKind::Action { .. } => StepKindName::Action,
            StepKind::Communicate { .. } => StepKindName::Communicate,
            StepKind::Check { .. } => StepKindName::Check,
            StepKind::Verify { .. } => StepKindName::Verify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_round_trips_through_json_and_parse() {
        for s in IncidentState::ALL {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::json!(s.as_str()));
            assert_eq!(IncidentState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            serde_json::to_value(EntryKind::StatusUpdate).unwrap(),
            "status_update"
        );
        assert_eq!(StepStatus::parse("nope"), None);
    }

    #[test]
    fn every_policy_action_has_its_word_and_command() {
        for a in ActionName::ALL {
            let word = ActionWord::from(a);
            assert_eq!(word.as_str(), a.as_str());
            let command = word.command().map(|c| c.name());
            assert_eq!(command, Some(a.as_str()));
        }
        assert_eq!(ActionWord::PauseAndInvestigate.command(), None);
    }
}
