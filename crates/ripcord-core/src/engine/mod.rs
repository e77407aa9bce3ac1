//! The engine: the only place decisions are made.
//!
//! Live serving, replay, policy tests, drills and benchmarks all drive this
//! type (DESIGN.md invariant 1). It takes a validated policy, events, release
//! declarations, commands and clock ticks, and appends decisions to a
//! caller-supplied buffer. It never reads a clock: the latest event time or
//! tick is "now".

mod criterion;
mod reading;
mod release;
mod units;
mod window;

pub use reading::{Reading, Verdict};
pub use release::{Engine, SNAPSHOT_VERSION, SnapshotError, pct, state_name};

pub use crate::limits::EventLimits;
use crate::time::Dur;

/// Where the candidate's share in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ShareSource {
    /// Closed loop (live serving, policy tests): the engine's own ramp and
    /// rollback actions change who gets the candidate.
    #[default]
    Engine,
    /// Open loop (replay of recorded traffic): the share in force is the one
    /// the stream's release lines declare; the engine's actions are what it
    /// *would* have done and do not change the recorded traffic.
    Recorded,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineOptions {
    /// Events may arrive this much older than the newest one seen.
    pub lateness: Dur,
    pub share_source: ShareSource,
    /// What one event may claim; every number the engine adds is clamped
    /// to these (the server also refuses events outside them).
    pub limits: EventLimits,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lateness: Dur::from_secs(30),
            share_source: ShareSource::Engine,
            limits: EventLimits::default(),
        }
    }
}

/// A request to start a release.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseSpec {
    pub baseline: String,
    pub candidate: String,
}

/// A person's (or an API client's) request to act on the release.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    Promote,
    Pause,
    Resume,
    Rollback,
    ReRelease,
    Approve,
    Reject,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Promote,
        Command::Pause,
        Command::Resume,
        Command::Rollback,
        Command::ReRelease,
        Command::Approve,
        Command::Reject,
    ];

    /// The command's one spelling: in the API's `action` field, the journal
    /// and the permission table.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Promote => "promote",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Rollback => "rollback",
            Command::ReRelease => "re_release",
            Command::Approve => "approve",
            Command::Reject => "reject",
        }
    }

    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The verb in sentences ("cannot re-release a release that is …").
    pub fn verb(&self) -> &'static str {
        match self {
            Command::ReRelease => "re-release",
            c => c.name(),
        }
    }
}

/// Why an event was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rejection {
    /// The event is for another service than the policy's.
    OtherService,
    /// No release is declared yet.
    NoRelease,
    /// The version is neither the release's baseline nor its candidate.
    UnknownVersion,
    /// Older than the newest event seen minus the allowed lateness.
    TooLate,
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    #[error("no release has been declared")]
    NoRelease,
    #[error("cannot {command} a release that is {state}")]
    NotAllowed {
        command: &'static str,
        state: String,
    },
}

/// Where a release is in its life.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ReleaseState {
    /// At rollout step `step` (0-based), holding until its hold time passes.
    Ramping {
        step: usize,
    },
    /// The last step's hold is over; waiting for someone to promote.
    Holding,
    /// Frozen until someone resumes (or rolls back). `reason` says why.
    Paused {
        reason: String,
    },
    /// A trigger fired whose action needs a role's approval.
    AwaitingApproval {
        trigger: String,
    },
    /// Rollback stage `stage` (0-based) done; verifying before the next.
    RollingBack {
        stage: usize,
    },
    RolledBack,
    /// Promoted; criteria still apply until the watch period ends.
    Watching,
    Promoted,
}

/// A release state without its details: what the API, the metrics and
/// policy tests name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Ramping,
    Holding,
    Paused,
    AwaitingApproval,
    RollingBack,
    RolledBack,
    Watching,
    Promoted,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Ramping,
        Phase::Holding,
        Phase::Paused,
        Phase::AwaitingApproval,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Watching,
        Phase::Promoted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ramping => "ramping",
            Phase::Holding => "holding",
            Phase::Paused => "paused",
            Phase::AwaitingApproval => "awaiting_approval",
            Phase::RollingBack => "rolling_back",
            Phase::RolledBack => "rolled_back",
            Phase::Watching => "watching",
            Phase::Promoted => "promoted",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReleaseState {
    pub fn phase(&self) -> Phase {
        match self {
            ReleaseState::Ramping { .. } => Phase::Ramping,
            ReleaseState::Holding => Phase::Holding,
            ReleaseState::Paused { .. } => Phase::Paused,
            ReleaseState::AwaitingApproval { .. } => Phase::AwaitingApproval,
            ReleaseState::RollingBack { .. } => Phase::RollingBack,
            ReleaseState::RolledBack => Phase::RolledBack,
            ReleaseState::Watching => Phase::Watching,
            ReleaseState::Promoted => Phase::Promoted,
        }
    }
}

/// The sample-ratio check as it stands: what a dashboard's health column
/// shows before (and after) the check halts a release.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SrmReading {
    /// Candidate units (or outputs) seen.
    pub candidate: f64,
    pub baseline: f64,
    /// The candidate units the assigned shares predict.
    pub expected: f64,
    /// The anytime-valid e-value against "the split is as assigned".
    pub e_value: f64,
    /// The e-value at which the check halts the release.
    pub threshold: f64,
    /// Whether the check has halted the release.
    pub fired: bool,
}

/// A snapshot of the release, for drivers and reports.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseStatus {
    /// `service:baseline->candidate#generation`.
    pub id: String,
    pub baseline: String,
    pub candidate: String,
    pub state: ReleaseState,
    /// The candidate's share of units as the engine has decided it.
    pub share: f64,
    /// The share the statistics assume is in force (see [`ShareSource`]).
    pub share_in_force: f64,
    /// 1 for the first release, +1 per re-release.
    pub generation: u32,
}
