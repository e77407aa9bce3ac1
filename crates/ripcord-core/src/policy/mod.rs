//! The policy language: what a team declares about a service's releases.
//!
//! Two layers, as in ripgrep's `lowargs` → `hiargs`: [`yaml`] parses the
//! text into a tree of nodes that keep their line and column, and [`load`]
//! lowers that tree into the validated types of this module, reporting
//! *every* problem at once. The engine only
//! ever receives a validated [`Policy`]; its constructors are the loader.
//!
//! Invariants a validated policy keeps (the engine relies on them):
//! - every criterion's `signal` indexes `signals`; every trigger condition's
//!   criterion indexes `criteria`;
//! - `at_least.k` is between 1 and the length of its list;
//! - shares are in (0, 1]; rollout step shares strictly increase; rollback
//!   stage fractions strictly increase and the last one is 1;
//! - confidences are in (0, 1); bounds are finite; score ranges have min < max.

pub mod diagnostic;
pub mod edit;
pub mod governance;
pub mod load;
pub mod scenario;
mod schema;
pub mod units;
pub mod yaml;

use crate::time::Dur;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use governance::Governance;
pub use load::{load_policy, policy_json_schema};
pub use scenario::Scenario;

/// A validated policy for one service.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    pub service: String,
    pub scenario: Option<Scenario>,
    pub signals: Vec<Signal>,
    pub criteria: Vec<Criterion>,
    pub triggers: Vec<Trigger>,
    pub rollout: Rollout,
    pub srm: SrmCheck,
    /// Decision rights, incident rules, playbooks, templates, evidence.
    pub governance: Governance,
    /// How telemetry from elsewhere (OTLP) maps onto the signals.
    #[serde(default)]
    pub sources: Sources,
}

/// `sources:` of a policy.
#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Sources {
    pub otlp: OtlpSources,
    /// Counters read from a Prometheus server, if the policy names one.
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
}

/// `sources.prometheus`: per-version counters read from a Prometheus
/// server's HTTP API every `step`, their increases becoming pre-aggregated
/// events (counts, never ratios, so that the statistics stay exact).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrometheusSource {
    /// The server's base address (`http://prometheus:9090`, no trailing
    /// slash); `/api/v1/query` is appended.
    pub url: String,
    /// How often the counters are read: each read's increases are one
    /// event per version.
    pub step: Dur,
    /// The label whose value names the version.
    pub version_label: String,
    /// Which event field each counter feeds, in policy order.
    pub counters: Vec<PrometheusCounter>,
}

impl PrometheusSource {
    pub const DEFAULT_STEP: Dur = Dur(30_000);
    pub const MIN_STEP: Dur = Dur(1_000);
    pub const MAX_STEP: Dur = Dur(3_600_000);
    pub const DEFAULT_VERSION_LABEL: &str = "version";
}

/// One counter: an instant-vector selector (a metric name and label
/// matchers, nothing computed) and the event field it feeds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrometheusCounter {
    pub field: String,
    pub selector: String,
    /// The denominator field this counter's increases travel with: itself
    /// for a denominator, the denominator of its (first) rate for a
    /// numerator. A numerator's increases wait until its denominator has
    /// a fresh sample, so that no flag arrives without its outputs.
    pub denominator: String,
}

/// How OpenTelemetry spans and log records become events.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OtlpSources {
    /// Attributes naming the version, first found wins (on the item, then
    /// its resource).
    pub version: Vec<String>,
    /// Attributes naming the unit, first found wins (else the trace id).
    pub unit: Vec<String>,
    /// (segment key, attribute) pairs.
    pub segment: Vec<(String, String)>,
    /// Evaluations (`gen_ai.evaluation.name`) and the signals they feed;
    /// an evaluation not listed feeds the signal of its own name.
    pub evaluations: Vec<OtlpEvaluation>,
}

impl Default for OtlpSources {
    fn default() -> OtlpSources {
        OtlpSources {
            version: vec!["service.version".into()],
            unit: ["user.id", "session.id", "gen_ai.conversation.id"]
                .map(String::from)
                .to_vec(),
            segment: Vec::new(),
            evaluations: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OtlpEvaluation {
    pub name: String,
    pub signal: String,
    /// For a rate: the labels that flag (empty: the default set).
    pub flag: Vec<String>,
}

/// Serialised in snake case (`user_experience`), as governance documents
/// store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    UserExperience,
    Quality,
    Safety,
    Operational,
    Data,
    Fairness,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::UserExperience => "user_experience",
            Category::Quality => "quality",
            Category::Safety => "safety",
            Category::Operational => "operational",
            Category::Data => "data",
            Category::Fairness => "fairness",
        }
    }
}

/// Which way a signal gets worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    HigherIsWorse,
    LowerIsWorse,
}

/// How a signal is measured from event `values`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SignalKind {
    /// `sum(numerator) / sum(denominator)`; both are names of event value fields.
    Rate {
        numerator: String,
        denominator: String,
    },
    /// A bounded score, one value per event, in `[min, max]`.
    Score { field: String, min: f64, max: f64 },
    /// A distribution such as latency; one value per event.
    Latency { field: String },
    /// A categorical attribute of the event's segment (topic, language,
    /// prompt-length bucket, tool used), compared as a distribution.
    Category { field: String },
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    pub name: String,
    pub category: Category,
    pub kind: SignalKind,
    pub direction: Direction,
    pub unit: Option<String>,
}

/// The bound a criterion tests. Which variants a signal kind accepts is
/// checked by the loader: rates take `Absolute` and `MaxRatio`; scores take
/// `Absolute`, `MaxIncrease` and `MaxDecrease`; latency takes `Absolute`
/// and `MaxRatio` on a quantile; categories take `MaxPsi` and `MaxJs`.
/// Criteria `across` a segment key (fairness) take `MaxRatio` and
/// `MaxDifference`, comparing the segments with each other.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Bound {
    /// The rate (or mean score, or latency quantile) must stay on the good
    /// side of this value.
    Absolute(f64),
    /// candidate / baseline must stay on the good side of this ratio
    /// (≤ ratio when higher is worse, ≥ 1/ratio when lower is worse).
    MaxRatio(f64),
    /// candidate − baseline ≤ this (scores).
    MaxIncrease(f64),
    /// baseline − candidate ≤ this (scores).
    MaxDecrease(f64),
    /// Largest segment − smallest segment ≤ this (fairness).
    MaxDifference(f64),
    /// Population stability index of the candidate's categories against the
    /// reference ≤ this.
    MaxPsi(f64),
    /// Jensen–Shannon distance (base 2, in [0, 1]) ≤ this.
    MaxJs(f64),
}

impl Bound {
    pub fn value(self) -> f64 {
        match self {
            Bound::Absolute(b)
            | Bound::MaxRatio(b)
            | Bound::MaxIncrease(b)
            | Bound::MaxDecrease(b)
            | Bound::MaxDifference(b)
            | Bound::MaxPsi(b)
            | Bound::MaxJs(b) => b,
        }
    }
}

/// What a window with no data means for a criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum OnNoData {
    /// Keep the previous state.
    #[default]
    Hold,
    /// Treat as not breached.
    Inconclusive,
    /// Treat as breached (for signals whose silence is itself a failure).
    Breach,
}

/// What one observation counts as, for rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Per {
    /// Every output counts (`sum(numerator)/sum(denominator)`).
    #[default]
    Output,
    /// A unit counts once: flagged when it saw at least one flagged output.
    Unit,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Criterion {
    pub name: String,
    /// Index into [`Policy::signals`].
    pub signal: usize,
    pub bound: Bound,
    /// For latency signals: the quantile the bound is about (e.g. 0.95).
    pub quantile: Option<f64>,
    /// In (0, 1); default 0.95.
    pub confidence: f64,
    /// Minimum denominator (outputs, units or values) on each compared
    /// version before the criterion may breach.
    pub min_samples: u64,
    /// The sliding window of recent data the criterion reports and checks.
    pub window: Dur,
    /// How long the criterion must stay breached to count (`for`).
    pub sustain: Dur,
    /// How long it must stay clear before a breach is cleared.
    pub clear_for: Dur,
    pub on_no_data: OnNoData,
    /// Segment scope: every `(key, value)` must match the event's segment.
    pub scope: Vec<(String, String)>,
    pub per: Per,
    /// Fairness: the segment key whose values are compared with each other.
    pub across: Option<String>,
    /// Drift: the stored reference profile (category, share); `None`
    /// compares with the baseline.
    pub reference: Option<Vec<(String, f64)>>,
}

impl Criterion {
    /// Whether the criterion compares the candidate with the baseline (and
    /// so needs baseline traffic to say anything): ratios, increases and
    /// decreases of one signal, and drift without a stored profile.
    pub fn compares_with_baseline(&self) -> bool {
        if self.across.is_some() {
            return false;
        }
        match self.bound {
            Bound::MaxRatio(_) | Bound::MaxIncrease(_) | Bound::MaxDecrease(_) => true,
            Bound::MaxJs(_) | Bound::MaxPsi(_) => self.reference.is_none(),
            Bound::Absolute(_) | Bound::MaxDifference(_) => false,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        [Severity::Minor, Severity::Major, Severity::Critical]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A composite of criteria.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Index into [`Policy::criteria`].
    Criterion(usize),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    AtLeast {
        k: usize,
        of: Vec<Condition>,
    },
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackStage {
    /// Cumulative fraction of the candidate's units moved back to the
    /// baseline once this stage is done; the last stage is 1.
    pub fraction: f64,
    /// How long to watch the moved units before the next stage.
    pub verify_for: Dur,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    Notify,
    Pause,
    PauseAndInvestigate,
    Rollback { stages: Vec<RollbackStage> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Proceed,
    Hold,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Approval {
    None,
    Role {
        role: String,
        within: Dur,
        on_timeout: OnTimeout,
        /// Distinct approvers needed; at least 1.
        quorum: u32,
    },
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trigger {
    pub name: String,
    pub when: Condition,
    pub severity: Severity,
    pub action: Action,
    pub approval: Approval,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RolloutStep {
    /// Candidate share in (0, 1].
    pub share: f64,
    /// How long to hold at this share before the next step.
    pub hold: Dur,
}

impl RolloutStep {
    /// How long a step holds when neither the policy nor a release
    /// start's override says.
    pub const DEFAULT_HOLD: Dur = Dur::from_mins(30);

    /// The one rule for a step's share, whether the step comes from a
    /// policy file or from a release start's override: in (0, 1], and
    /// above the previous step's. `None` when it holds; else what is wrong.
    pub fn share_problem(previous: Option<f64>, share: f64) -> Option<String> {
        if !(share > 0.0 && share <= 1.0) {
            return Some(format!("must be in (0, 1], got {share}"));
        }
        match previous {
            Some(prev) if share <= prev => Some(format!(
                "shares must increase from step to step ({prev} then {share})"
            )),
            _ => None,
        }
    }
}

/// The holdback when the policy does not say: enough units to keep every
/// comparison with the baseline valid while the promoted release is
/// watched, few enough that the promotion is one in all but name.
pub const DEFAULT_HOLDBACK: f64 = 0.02;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    pub steps: Vec<RolloutStep>,
    /// After promotion, criteria still apply for this long.
    pub watch_after_promotion: Dur,
    /// After promotion, relative criteria watch for a change from the level
    /// at promotion, with this mean time between false alarms.
    pub false_alarm_every: Dur,
    /// Share of units kept on the baseline while watching after promotion
    /// (default [`DEFAULT_HOLDBACK`] when a criterion compares with the
    /// baseline, else 0). With a holdback the relative criteria keep comparing the
    /// versions, which stays valid when the rates move by themselves over
    /// the day; without one they switch to CUSUM, which cannot tell such a
    /// move from a regression.
    pub holdback: f64,
    pub promotion: Promotion,
}

/// What happens when the last step's hold ends without a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Promotion {
    /// Promote by itself.
    #[default]
    Automatic,
    /// Hold at the last step until someone promotes.
    Manual,
}

/// Sample-ratio-mismatch check: halts the release when the observed split
/// of outputs departs from the assigned share beyond chance.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SrmCheck {
    pub enabled: bool,
    /// Default 0.999: SRM halts a release, so it must almost never fire on noise.
    pub confidence: f64,
    /// Counted assignments on both versions before the check may fire.
    pub min_samples: u64,
    pub count: SrmCount,
}

/// What the SRM check counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SrmCount {
    /// Each unit once, when first seen: robust to busy users (per-output events).
    #[default]
    Units,
    /// Outputs: for pre-aggregated buckets, which already mix many units.
    Outputs,
}

impl Default for SrmCheck {
    fn default() -> Self {
        SrmCheck {
            enabled: true,
            confidence: 0.999,
            min_samples: 1000,
            count: SrmCount::Units,
        }
    }
}

impl Policy {
    pub fn signal_of(&self, criterion: &Criterion) -> &Signal {
        &self.signals[criterion.signal]
    }

    pub fn criterion_index(&self, name: &str) -> Option<usize> {
        self.criteria.iter().position(|c| c.name == name)
    }
}
