//! Decisions: what the engine concluded, when, and why.
//!
//! Every decision explains itself (DESIGN.md invariant 3): the criteria, the
//! statistic, the bound, the confidence, the sample sizes and the window.

use crate::policy::Severity;
use crate::time::{Dur, Time};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    CriterionBreached,
    /// A criterion with `on_no_data: breach` found no data in its window:
    /// it counts for triggers, but it is not evidence of a regression.
    CriterionNoData,
    CriterionCleared,
    TriggerFired,
    ApprovalRequested,
    Action,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::CriterionBreached => "criterion_breached",
            DecisionKind::CriterionNoData => "criterion_no_data",
            DecisionKind::CriterionCleared => "criterion_cleared",
            DecisionKind::TriggerFired => "trigger_fired",
            DecisionKind::ApprovalRequested => "approval_requested",
            DecisionKind::Action => "action",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Ramp,
    Pause,
    PauseAndInvestigate,
    Resume,
    RollbackStage,
    RollbackComplete,
    Promote,
    WatchComplete,
    ReRelease,
    Notify,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Ramp => "ramp",
            ActionKind::Pause => "pause",
            ActionKind::PauseAndInvestigate => "pause_and_investigate",
            ActionKind::Resume => "resume",
            ActionKind::RollbackStage => "rollback_stage",
            ActionKind::RollbackComplete => "rollback_complete",
            ActionKind::Promote => "promote",
            ActionKind::WatchComplete => "watch_complete",
            ActionKind::ReRelease => "re_release",
            ActionKind::Notify => "notify",
        }
    }
}

/// One decision of the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub at: Time,
    pub kind: DecisionKind,
    pub service: String,
    /// The release this decision belongs to (`service:baseline->candidate#n`).
    pub release: String,
    pub criterion: Option<String>,
    pub trigger: Option<String>,
    pub severity: Option<Severity>,
    pub action: Option<ActionKind>,
    /// The candidate's share after the action.
    pub share: Option<f64>,
    pub idempotency_key: Option<String>,
    pub explanation: Explanation,
}

/// Why a decision was taken.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Explanation {
    /// One readable sentence.
    pub summary: String,
    /// The evidence of every criterion involved.
    pub evidence: Vec<Evidence>,
}

/// The state of one statistical test at the moment of a decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// Criterion name, or `sample_ratio` for the SRM check.
    pub criterion: String,
    pub signal: String,
    /// The method, e.g. `flagged-event mixture likelihood ratio`.
    pub test: &'static str,
    /// The bound in words, e.g. `candidate ≤ 1.2 × baseline`.
    pub bound: String,
    /// The anytime-valid e-value (the mixture martingale).
    pub statistic: f64,
    /// The e-value at which the test rejects: K/α.
    pub threshold: f64,
    pub confidence: f64,
    /// Point estimate over the whole test (e.g. the rate ratio, or the rate).
    pub estimate: Option<f64>,
    /// Anytime-valid confidence interval for `estimate`, where computed.
    pub interval: Option<(f64, f64)>,
    /// Point estimate over the sliding window.
    pub window_estimate: Option<f64>,
    pub window: Dur,
    /// Samples since the test started.
    pub candidate: Samples,
    pub baseline: Option<Samples>,
    /// Samples in the sliding window.
    pub window_candidate: Samples,
    pub window_baseline: Option<Samples>,
    /// How long the criterion has been breached (for `for`).
    pub breached_for: Dur,
    /// For drift and fairness: the categories or segments behind the
    /// figure, the most telling first.
    pub breakdown: Vec<Part>,
}

/// One category (drift) or segment (fairness) of a criterion's evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub name: String,
    /// The candidate's share of events (drift) or the segment's rate or
    /// mean score over the window (fairness).
    pub value: f64,
    /// The reference's share (drift).
    pub reference: Option<f64>,
    /// This category's term of the PSI (drift).
    pub contribution: Option<f64>,
    /// The segment's anytime-valid interval (fairness).
    pub interval: Option<(f64, f64)>,
    /// Events behind `value`.
    pub n: f64,
}

/// Sample sizes: the denominator and the numerator (flagged count, or sum of
/// values for scores).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Samples {
    pub n: f64,
    pub sum: f64,
}
