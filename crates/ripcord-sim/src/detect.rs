//! The detection harness: one simulated release, driven through the real
//! engine, and the same stream given to the peer rules of [`crate::peers`].
//!
//! Rate streams are generated as per-bucket counts (Poisson volume that
//! follows a [`Shape`], a binomial split, binomial flags), which mean
//! exactly what the same outputs one line each would mean and cost a
//! thousandth as much to replay; scores and latencies are one event per
//! output, because their statistics read every value; per-unit criteria get
//! one event per active user and bucket, because they count units.
//! Volume bursts (3× for 10 minutes, twice a day) and late delivery (a share
//! of every bucket arrives up to `max_late` after it was generated, stamped
//! with its generation time) are on unless turned off, so that every figure
//! is measured under them.
//!
//! A [`Condition`] replaces the idealised split (outputs at exactly the
//! assigned share) with what real traffic does to a test: heavy-tailed,
//! hash-assigned users, ramps that follow the engine's share and fall
//! again, late labels while the share moves, feedback denominators and
//! baselines that move over the day.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Binomial, Distribution, LogNormal, Poisson};
use ripcord_core::engine::{Engine, EngineOptions, ReleaseState, ShareSource};
use ripcord_core::policy::load_policy;
use ripcord_core::{Decision, DecisionKind, Dur, Event, Release, Time};

mod population;

pub use population::{Population, Split, Users};

use crate::peers::{Detector, Second};
use crate::traffic::Shape;

/// The criterion kinds the benchmark exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A rate against the baseline (`max_ratio: 1`).
    RateRatio,
    /// A rate against the baseline as the presets write it (`max_ratio:
    /// 1.2`, `window: 10m`, `for: 1m`).
    RatePreset,
    /// `thumbs_down` per `feedback` against the baseline (`max_ratio: 1`):
    /// a denominator that is not outputs.
    RateFeedback,
    /// A rate against the baseline counted per unit (`per: unit`).
    RateUnit,
    /// A rate against an absolute ceiling at the baseline's true rate.
    RateAbsolute,
    /// A bounded score's mean against the baseline (`max_decrease: 0.02`).
    Score,
    /// Latency p95 against the baseline's (`max_ratio: 1.15`).
    Latency,
    /// Topic mix against the baseline (`max_js: 0.05`).
    Drift,
    /// A rate across locales (`max_ratio: 1.5`, largest/smallest).
    Fairness,
    /// A rate watched after an automatic promotion: against the held-back
    /// baseline (the policy's default holdback), or with `holdback: 0` by
    /// CUSUM against its level at promotion.
    Change,
    /// The same, counted per unit.
    ChangeUnit,
    /// The same, `thumbs_down` per `feedback`.
    ChangeFeedback,
}

impl Kind {
    /// The kinds of the idealised benchmark.
    pub const ALL: [Kind; 7] = [
        Kind::RateRatio,
        Kind::RateAbsolute,
        Kind::Score,
        Kind::Latency,
        Kind::Drift,
        Kind::Fairness,
        Kind::Change,
    ];

    /// Every kind, for the realistic conditions.
    pub const REALISTIC: [Kind; 12] = [
        Kind::RateRatio,
        Kind::RatePreset,
        Kind::RateFeedback,
        Kind::RateUnit,
        Kind::RateAbsolute,
        Kind::Score,
        Kind::Latency,
        Kind::Drift,
        Kind::Fairness,
        Kind::Change,
        Kind::ChangeUnit,
        Kind::ChangeFeedback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RateRatio => "rate vs baseline (max_ratio 1)",
            Kind::RatePreset => "rate vs baseline (max_ratio 1.2, preset)",
            Kind::RateFeedback => "thumbs_down per feedback vs baseline (max_ratio 1)",
            Kind::RateUnit => "rate vs baseline per unit (max_ratio 1)",
            Kind::RateAbsolute => "rate vs absolute ceiling",
            Kind::Score => "score mean vs baseline (max_decrease 0.02)",
            Kind::Latency => "latency p95 vs baseline (max_ratio 1.15)",
            Kind::Drift => "topic drift vs baseline (max_js 0.05)",
            Kind::Fairness => "fairness across locales (max_ratio 1.5)",
            Kind::Change => "rate after promotion (max_ratio 1.25)",
            Kind::ChangeUnit => "rate after promotion, per unit",
            Kind::ChangeFeedback => "rate after promotion, per feedback",
        }
    }

    /// Whether the stream is counts of outputs and flags.
    pub fn is_rate(self) -> bool {
        matches!(
            self,
            Kind::RateRatio
                | Kind::RatePreset
                | Kind::RateFeedback
                | Kind::RateUnit
                | Kind::RateAbsolute
                | Kind::Change
                | Kind::ChangeUnit
                | Kind::ChangeFeedback
        )
    }

    /// Whether the criterion watches on after an automatic promotion.
    pub fn is_change(self) -> bool {
        matches!(self, Kind::Change | Kind::ChangeUnit | Kind::ChangeFeedback)
    }

    /// Whether events must carry real unit ids (`per: unit`).
    pub fn is_per_unit(self) -> bool {
        matches!(self, Kind::RateUnit | Kind::ChangeUnit)
    }

    /// Whether the denominator is `feedback` rather than outputs.
    pub fn is_feedback(self) -> bool {
        matches!(self, Kind::RateFeedback | Kind::ChangeFeedback)
    }
}

/// The world an A/A release runs in, beyond the criterion: who the users
/// are, how the share moves, when labels arrive and what drifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The idealised world: outputs split binomially at the assigned share.
    Ideal,
    /// 2,000 heavy-tailed users, hash-assigned and sticky, at 5% of units.
    HeavyUsers,
    /// Heavy users whose flag rates differ by a fixed lognormal (σ 0.5) factor.
    Propensity,
    /// Heavy users, 5% → 25% → 50% (30 min each) → automatic promotion,
    /// the split following the engine's share.
    Ramp,
    /// The ramp, with the share turned down to 20% then 5% by redeclaring
    /// the release before the promotion.
    RiseAndFall,
    /// The rise and fall with a third of events up to 10 min late.
    LateLabels,
    /// The ramp with base rate, latency, score and topic mix moving over
    /// the day for both versions; after the promotion the policy's default
    /// holdback keeps the relative tests comparing the versions.
    NonStationary,
    /// The moving baselines with `holdback: 0`: after the promotion the
    /// relative criteria have no baseline left and switch to CUSUM, which
    /// assumes the rate stays at its level. Outside the guarantee; reported
    /// to show why the holdback is the default.
    NonStationaryNoHoldback,
}

impl Condition {
    pub const REALISTIC: [Condition; 7] = [
        Condition::HeavyUsers,
        Condition::Propensity,
        Condition::Ramp,
        Condition::RiseAndFall,
        Condition::LateLabels,
        Condition::NonStationary,
        Condition::NonStationaryNoHoldback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Ideal => "idealised split",
            Condition::HeavyUsers => "heavy users, 5% of units",
            Condition::Propensity => "heavy users with per-user flag propensity",
            Condition::Ramp => "ramp 5→25→50%→promote",
            Condition::RiseAndFall => "ramp with the share falling",
            Condition::LateLabels => "share rising and falling, 33% late ≤ 10 min",
            Condition::NonStationary => "ramp, baselines moving over the day",
            Condition::NonStationaryNoHoldback => {
                "ramp, baselines moving over the day, `holdback: 0` (CUSUM, no guarantee)"
            }
        }
    }

    /// Sets `case`'s world for this condition; the kind, seed, volume and
    /// duration before the promotion stay the caller's.
    pub fn apply(self, case: &mut Case) {
        if self == Condition::Ideal {
            return;
        }
        case.users = Some(Users {
            propensity_sigma: if self == Condition::Propensity {
                0.5
            } else {
                0.0
            },
            ..Users::HEAVY
        });
        case.share = 0.05;
        case.holdback = None;
        if matches!(self, Condition::HeavyUsers | Condition::Propensity) {
            return;
        }
        let half_hour = Dur::from_mins(30);
        case.steps = vec![(0.05, half_hour), (0.25, half_hour), (0.5, half_hour)];
        if matches!(self, Condition::RiseAndFall | Condition::LateLabels) {
            // Promotion at 2 h 30: the last step held 90 min, turned down meanwhile.
            case.steps[2].1 = Dur::from_mins(90);
            case.declared = vec![(Dur::from_mins(90), 0.2), (Dur::from_mins(120), 0.05)];
        }
        if self == Condition::LateLabels {
            case.late_share = 0.33;
            case.max_late = Dur::from_mins(10);
        }
        case.drifting = matches!(
            self,
            Condition::NonStationary | Condition::NonStationaryNoHoldback
        );
        if self == Condition::NonStationaryNoHoldback {
            case.holdback = Some(0.0);
        }
    }
}

/// One simulated release.
#[derive(Clone, Debug)]
pub struct Case {
    pub kind: Kind,
    /// Baseline flag rate (rates, fairness, change); of feedback for the
    /// feedback kinds.
    pub base_rate: f64,
    pub share: f64,
    /// What happens to the candidate from `change_at`: a rate multiplier
    /// (rates, fairness: in one locale, change), a latency multiplier, a
    /// score shift, or the share of the topic mix moved to one topic.
    /// `None` is an A/A release.
    pub effect: Option<f64>,
    pub change_at: Dur,
    /// The whole run; with `steps`, kinds other than the change kinds stop
    /// at the promotion.
    pub duration: Dur,
    /// Mean outputs per second, both versions together.
    pub outputs_per_s: f64,
    pub shape: Shape,
    /// Width of the count buckets of rate streams.
    pub bucket: Dur,
    pub late_share: f64,
    pub max_late: Dur,
    pub bursts: bool,
    pub false_alarm_every: Dur,
    pub confidence: f64,
    pub seed: u64,
    /// A population of users instead of an idealised split.
    pub users: Option<Users>,
    /// Rollout steps (share, hold) ending in an automatic promotion; empty:
    /// one step at `share` (promoted after [`RAMP`] for the change kinds).
    pub steps: Vec<(f64, Dur)>,
    /// Shares the harness declares itself (an operator turning it down).
    pub declared: Vec<(Dur, f64)>,
    /// Base rate, latency, score and topic mix move over the day.
    pub drifting: bool,
    /// Share of units kept on the baseline after the promotion; `None`:
    /// the policy's default. Idealised cases set 0, so that the change kinds
    /// measure CUSUM in the stationary world it assumes.
    pub holdback: Option<f64>,
    /// The rate criterion's `min_samples`; `None`: the policy's default.
    pub min_samples: Option<u64>,
}

impl Case {
    pub fn new(kind: Kind, seed: u64) -> Case {
        Case {
            kind,
            base_rate: if kind.is_feedback() {
                FEEDBACK_FLAG_RATE
            } else {
                0.01
            },
            share: 0.5,
            effect: None,
            change_at: Dur::ZERO,
            duration: Dur::from_mins(6 * 60),
            outputs_per_s: 20.0,
            shape: Shape::Diurnal,
            bucket: Dur::from_secs(1),
            late_share: 0.05,
            max_late: Dur::from_mins(5),
            bursts: true,
            false_alarm_every: Dur::from_mins(30 * 24 * 60),
            confidence: 0.95,
            seed,
            users: None,
            steps: Vec::new(),
            declared: Vec::new(),
            drifting: false,
            holdback: Some(0.0),
            min_samples: None,
        }
    }

    /// How long the release ramps before its automatic promotion.
    pub fn ramp_length(&self) -> Dur {
        if self.steps.is_empty() {
            RAMP
        } else {
            Dur(self.steps.iter().map(|s| s.1.0).sum())
        }
    }

    /// Whether the split follows the engine's share and a population.
    fn closed_loop(&self) -> bool {
        self.users.is_some() || !self.steps.is_empty() || !self.declared.is_empty()
    }
}

/// What happened in one release.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// When the first trigger fired, from the start of the release.
    pub fired_at: Option<Dur>,
    /// Outputs of both versions, and of the candidate, generated between
    /// `change_at` and the trigger (or the end).
    pub outputs: f64,
    pub candidate_outputs: f64,
    /// Peer rules, each with when it first fired.
    pub peers: Vec<PeerOutcome>,
    /// When the release was promoted (change cases).
    pub promoted_at: Option<Dur>,
    pub events: u64,
    /// How long the release was watched (to the trigger, the promotion of
    /// a kind that stops there, or the end).
    pub watched: Dur,
}

/// When a peer rule first fired on the same stream.
#[derive(Clone, Debug, Default)]
pub struct PeerOutcome {
    pub name: String,
    pub fired_at: Option<Dur>,
    /// Outputs of both versions generated between `change_at` and its firing.
    pub outputs: f64,
}

impl Outcome {
    /// Fired at or after the change (a detection), in time since the change.
    pub fn delay(&self, case: &Case) -> Option<Dur> {
        let at = self.fired_at?;
        (at >= case.change_at).then(|| Dur(at.0 - case.change_at.0))
    }
}

const START: Time = Time(1_767_225_600_000); // 2026-01-01T00:00:00Z
const DAY_MS: f64 = 86_400_000.0;
const LOCALES: [(&str, f64); 3] = [("en", 0.6), ("de", 0.25), ("ja", 0.15)];
const TOPICS: [f64; 6] = [0.3, 0.25, 0.2, 0.12, 0.08, 0.05];
/// How long a change case ramps before the automatic promotion.
pub const RAMP: Dur = Dur::from_mins(120);
/// Share of outputs that carry `feedback: 1`.
pub const FEEDBACK_SHARE: f64 = 0.1;
/// `thumbs_down` per feedback.
pub const FEEDBACK_FLAG_RATE: f64 = 0.08;

/// The policy a case runs under, in the policy language.
pub fn policy_text(case: &Case) -> String {
    let (signal, criterion) = criterion_text(case);
    format!(
        "service: bench\nsignals:\n  {signal}\ncriteria:\n  watched: {criterion}\n\
         triggers:\n  revert: {{when: watched, severity: critical, action: rollback}}\n\
         rollout: {}\nsrm: off\n",
        rollout_text(case)
    )
}

fn criterion_text(case: &Case) -> (&'static str, String) {
    const FAIL: &str = "fail: {category: safety, kind: rate}";
    const THUMBS: &str =
        "thumbs_down: {category: user_experience, kind: rate, denominator: feedback}";
    let c = case.confidence;
    let rate = |signal: &str, rest: &str| {
        format!("{{signal: {signal}, {rest}, window: 30m, confidence: {c}}}")
    };
    match case.kind {
        Kind::RateRatio => match case.min_samples {
            Some(n) => (
                FAIL,
                rate("fail", &format!("max_ratio: 1, min_samples: {n}")),
            ),
            None => (FAIL, rate("fail", "max_ratio: 1")),
        },
        Kind::RatePreset => (
            FAIL,
            format!("{{signal: fail, max_ratio: 1.2, window: 10m, for: 1m, confidence: {c}}}"),
        ),
        Kind::RateFeedback => (THUMBS, rate("thumbs_down", "max_ratio: 1")),
        Kind::RateUnit => (FAIL, rate("fail", "max_ratio: 1, per: unit")),
        Kind::RateAbsolute => (
            FAIL,
            rate("fail", &format!("absolute: {}", absolute_ceiling(case))),
        ),
        Kind::Change => (FAIL, rate("fail", "max_ratio: 1.25")),
        Kind::ChangeUnit => (FAIL, rate("fail", "max_ratio: 1.25, per: unit")),
        Kind::ChangeFeedback => (THUMBS, rate("thumbs_down", "max_ratio: 1.25")),
        Kind::Score => (
            "utility: {category: quality, kind: score, range: [0, 1]}",
            rate("utility", "max_decrease: 0.02"),
        ),
        Kind::Latency => (
            "latency_ms: {category: operational, kind: latency}",
            rate("latency_ms", "quantile: 0.95, max_ratio: 1.15"),
        ),
        Kind::Drift => (
            "topic: {category: data, kind: category}",
            rate("topic", "max_js: 0.05"),
        ),
        Kind::Fairness => (
            "fail: {category: fairness, kind: rate}",
            format!(
                "{{signal: fail, across: locale, max_ratio: 1.5, window: 60m, confidence: {c}}}"
            ),
        ),
    }
}

/// The candidate's highest true rate: the base rate, at the top of the
/// day's swing when baselines move. A ceiling any lower would make a
/// rollback correct, not false.
pub fn absolute_ceiling(case: &Case) -> f64 {
    if case.drifting {
        case.base_rate * (1.0 + RATE_SWING)
    } else {
        case.base_rate
    }
}

fn rollout_text(case: &Case) -> String {
    let holdback = case
        .holdback
        .map_or(String::new(), |h| format!(", holdback: {h}"));
    let watch = format!(
        "watch_after_promotion: 1000d, false_alarm_every: {}{holdback}",
        case.false_alarm_every
    );
    if !case.steps.is_empty() {
        let steps: Vec<String> = case
            .steps
            .iter()
            .map(|(share, hold)| format!("{{share: {share}, hold: {}m}}", hold.0 / 60_000))
            .collect();
        let watch = if case.kind.is_change() {
            format!(", {watch}")
        } else {
            String::new()
        };
        format!(
            "{{steps: [{}], promotion: automatic{watch}}}",
            steps.join(", ")
        )
    } else if case.kind.is_change() {
        format!(
            "{{steps: [{{share: {}, hold: {}m}}], promotion: automatic, {watch}}}",
            case.share,
            RAMP.0 / 60_000
        )
    } else {
        format!(
            "{{steps: [{{share: {}, hold: 1000d}}], promotion: manual}}",
            case.share
        )
    }
}

/// Runs one case through the engine (and, for rate kinds, the peers).
pub fn run(case: &Case, peers: &mut [Box<dyn Detector + Send>]) -> Result<Outcome, String> {
    let policy = load_policy(&policy_text(case), "bench.yaml").map_err(|e| e.to_string())?;
    let options = EngineOptions {
        lateness: case.max_late + case.bucket + Dur::from_secs(1),
        share_source: ShareSource::Engine,
        ..EngineOptions::default()
    };
    let mut rng = StdRng::seed_from_u64(case.seed);
    // Per-unit criteria need unit ids, so they always have a population.
    let users = case.users.or(case.kind.is_per_unit().then_some(Users {
        activity_sigma: 0.0,
        ..Users::HEAVY
    }));
    let population = users.map(|u| Population::new(u, &mut rng));
    let mut sim = Sim {
        case,
        rng,
        engine: Engine::new(policy, options),
        population,
        late: BTreeMap::new(),
        seq: 0,
        out: Vec::new(),
        outcome: Outcome::default(),
        peers,
        burst_starts: Vec::new(),
        since_change: 0.0,
        next_declared: 0,
        world: World::STEADY,
    };
    sim.start();
    sim.run();
    Ok(sim.outcome)
}

/// How far the day has moved both versions' baselines (1 and 0 when they
/// do not move).
#[derive(Clone, Copy, Debug)]
struct World {
    rate: f64,
    latency: f64,
    score_shift: f64,
    /// Positions the topic mix has rotated by (fractional).
    topic_rotation: f64,
}

impl World {
    const STEADY: World = World {
        rate: 1.0,
        latency: 1.0,
        score_shift: 0.0,
        topic_rotation: 0.0,
    };
}

/// Base rate ×(1 ± 0.5) over the day.
const RATE_SWING: f64 = 0.5;

/// Flag counts of one version in one bucket: `n` counts towards the
/// criterion's denominator (outputs, or feedback), `outputs` are outputs.
#[derive(Clone, Copy, Debug)]
struct Tally {
    outputs: u64,
    n: u64,
    x: u64,
}

struct Sim<'a> {
    case: &'a Case,
    rng: StdRng,
    engine: Engine,
    population: Option<Population>,
    /// Late events by delivery time.
    late: BTreeMap<(i64, u64), Event<'static>>,
    seq: u64,
    out: Vec<Decision>,
    outcome: Outcome,
    peers: &'a mut [Box<dyn Detector + Send>],
    burst_starts: Vec<Dur>,
    /// Outputs generated since the change, whoever has fired.
    since_change: f64,
    next_declared: usize,
    world: World,
}

impl Sim<'_> {
    fn start(&mut self) {
        let share = self.case.steps.first().map_or(self.case.share, |s| s.0);
        self.declare(START, share);
        let days = (self.case.duration.0 as f64 / DAY_MS).ceil() as i64;
        for _ in 0..(2 * days.max(1)) {
            let at = self.rng.random_range(0..self.case.duration.0.max(1));
            self.burst_starts.push(Dur(at));
        }
        self.outcome.peers = self
            .peers
            .iter()
            .map(|p| PeerOutcome {
                name: p.name(),
                ..PeerOutcome::default()
            })
            .collect();
    }

    fn declare(&mut self, ts: Time, share: f64) {
        let release = Release {
            ts,
            service: "bench".into(),
            baseline: "v1".into(),
            candidate: "v2".into(),
            share,
        };
        self.engine.declare(&release, &mut self.out);
    }

    fn run(&mut self) {
        let step = self.case.bucket.0.max(1);
        let mut t = 0;
        while t < self.case.duration.0 {
            let offset = Dur(t);
            let ts = START + offset;
            self.deliver_late(ts);
            self.declare_due(offset, ts);
            self.world = self.world_at(offset);
            let share = self.share();
            let changed = self.case.effect.is_some() && offset >= self.case.change_at;
            let volume = self.volume(offset, step);
            let (n_c, n_b) = if self.per_user_events() {
                self.per_unit(ts, volume, share, changed)
            } else {
                let (n_c, n_b) = self.split(volume, share);
                self.generate(ts, n_c, n_b, changed, t / 1000);
                (n_c, n_b)
            };
            self.count_since_change(changed, n_c, n_b);
            self.outcome.watched = offset + Dur(step);
            self.note_promotion(offset);
            if self.fired(offset) || self.stops_at_promotion() {
                break;
            }
            t += step;
        }
    }

    /// Whether events come per user: for `per: unit` criteria, and for
    /// rates when users have their own propensity, whose outputs are then
    /// not independent (the engine sees who produced them).
    fn per_user_events(&self) -> bool {
        let propensity = self.case.users.is_some_and(|u| u.propensity_sigma > 0.0);
        self.case.kind.is_per_unit() || propensity && self.case.kind.is_rate()
    }

    /// The candidate's share of units now. Idealised cases follow the
    /// policy's plan, not a rollback: peers still watching must see the
    /// stream unchanged. Closed-loop cases follow the engine.
    fn share(&self) -> f64 {
        if !self.case.closed_loop() {
            return match self.outcome.promoted_at {
                Some(_) => 1.0,
                None => self.case.share,
            };
        }
        self.engine.status().map_or(self.case.share, |s| s.share)
    }

    /// Redeclares the release at the shares the case turns it down to.
    fn declare_due(&mut self, offset: Dur, ts: Time) {
        while let Some(&(at, share)) = self.case.declared.get(self.next_declared) {
            if at > offset {
                break;
            }
            self.next_declared += 1;
            if self.outcome.promoted_at.is_none() {
                self.declare(ts, share);
            }
        }
    }

    fn world_at(&self, offset: Dur) -> World {
        if !self.case.drifting {
            return World::STEADY;
        }
        // Each run starts at its own time of day.
        let phase = (self.case.seed % 97) as f64 / 97.0 + offset.0 as f64 / DAY_MS;
        let angle = std::f64::consts::TAU * phase;
        World {
            rate: 1.0 + RATE_SWING * angle.sin(),
            latency: 1.0 + 0.3 * (angle + 1.0).sin(),
            score_shift: 0.05 * (angle + 2.0).sin(),
            topic_rotation: TOPICS.len() as f64 * phase.fract(),
        }
    }

    fn count_since_change(&mut self, changed: bool, n_c: u64, n_b: u64) {
        if !changed {
            return;
        }
        self.since_change += (n_c + n_b) as f64;
        if self.outcome.fired_at.is_none() {
            self.outcome.outputs += (n_c + n_b) as f64;
            self.outcome.candidate_outputs += n_c as f64;
        }
    }

    fn note_promotion(&mut self, offset: Dur) {
        if self.outcome.promoted_at.is_none()
            && self.outcome.fired_at.is_none()
            && self
                .engine
                .status()
                .is_some_and(|s| matches!(s.state, ReleaseState::Watching | ReleaseState::Promoted))
        {
            self.outcome.promoted_at = Some(offset);
        }
    }

    /// Kinds judged before promotion stop there when a ramp promotes.
    fn stops_at_promotion(&self) -> bool {
        self.outcome.promoted_at.is_some()
            && !self.case.kind.is_change()
            && !self.case.steps.is_empty()
    }

    /// Whether a trigger fired; records when.
    fn fired(&mut self, offset: Dur) -> bool {
        let fired = self
            .out
            .iter()
            .any(|d| d.kind == DecisionKind::TriggerFired);
        self.out.clear();
        if fired && self.outcome.fired_at.is_none() {
            self.outcome.fired_at = Some(offset);
        }
        // Peers keep watching until they fire, so they are judged on the same stream.
        let peers_done = self.outcome.peers.iter().all(|p| p.fired_at.is_some());
        self.outcome.fired_at.is_some() && peers_done
    }

    fn volume(&mut self, offset: Dur, step: i64) -> u64 {
        let fraction = offset.0 as f64 / self.case.duration.0.max(1) as f64;
        let mut mean = self.case.outputs_per_s * step as f64 / 1000.0
            * self.case.shape.at(START + offset, fraction);
        let burst = Dur::from_mins(10);
        if self.case.bursts
            && self
                .burst_starts
                .iter()
                .any(|b| offset >= *b && offset < *b + burst)
        {
            mean *= 3.0;
        }
        poisson(&mut self.rng, mean)
    }

    /// Splits a bucket's outputs: at the share itself in the idealised
    /// world, at the candidate users' share of activity with a population.
    fn split(&mut self, volume: u64, share: f64) -> (u64, u64) {
        let fraction = match &mut self.population {
            Some(p) => p.split(share).candidate_fraction,
            None => share,
        };
        let c = binomial(&mut self.rng, volume, fraction);
        (c, volume - c)
    }

    /// Each version's flag rate multiplier: its users' mean propensity and
    /// the time of day (candidate, baseline).
    fn multipliers(&mut self, share: f64) -> [f64; 2] {
        let propensity = match &mut self.population {
            Some(p) => p.split(share).propensity,
            None => [1.0, 1.0],
        };
        propensity.map(|m| m * self.world.rate)
    }

    fn generate(&mut self, ts: Time, n_c: u64, n_b: u64, changed: bool, second: i64) {
        let effect = self.case.effect.filter(|_| changed);
        let share = self.share();
        let [m_c, m_b] = self.multipliers(share);
        match self.case.kind {
            Kind::Fairness => self.fairness(ts, n_c, n_b, effect, [m_c, m_b]),
            Kind::Drift => self.topics(ts, n_c, n_b, effect),
            Kind::Score => self.each(ts, n_c, n_b, effect, Self::score),
            Kind::Latency => self.each(ts, n_c, n_b, effect, Self::latency),
            _ => {
                let p = self.case.base_rate;
                let pc = p * m_c * effect.unwrap_or(1.0);
                let cand = self.tally(n_c, pc);
                let base = self.tally(n_b, p * m_b);
                self.feed_peers(second, &cand, &base);
                self.counts(ts, "v2", "en", None, cand);
                self.counts(ts, "v1", "en", None, base);
            }
        }
    }

    /// Flags among `outputs` at rate `p`: of the outputs, or of the share
    /// of them that carries feedback.
    fn tally(&mut self, outputs: u64, p: f64) -> Tally {
        let n = if self.case.kind.is_feedback() {
            binomial(&mut self.rng, outputs, FEEDBACK_SHARE)
        } else {
            outputs
        };
        let x = binomial(&mut self.rng, n, p.min(1.0));
        Tally { outputs, n, x }
    }

    /// One bucket of per-unit events: each output drawn from a user by
    /// activity, one event per active user and version.
    fn per_unit(&mut self, ts: Time, volume: u64, share: f64, changed: bool) -> (u64, u64) {
        let Some(population) = self.population.take() else {
            return (0, 0);
        };
        let mut drawn: Vec<usize> = (0..volume)
            .map(|_| population.draw(&mut self.rng))
            .collect();
        drawn.sort_unstable();
        let effect = self.case.effect.filter(|_| changed).unwrap_or(1.0);
        let mut counts = (0, 0);
        for run in drawn.chunk_by(|a, b| a == b) {
            let user = run[0];
            let candidate = population.on_candidate(user, share);
            let mut p = self.case.base_rate * population.propensity(user) * self.world.rate;
            if candidate {
                p *= effect;
                counts.0 += run.len() as u64;
            } else {
                counts.1 += run.len() as u64;
            }
            let tally = self.tally(run.len() as u64, p);
            let version = if candidate { "v2" } else { "v1" };
            let unit = Cow::Owned(population.name(user).to_string());
            self.counts(ts, version, "en", Some(unit), tally);
        }
        self.population = Some(population);
        counts
    }

    fn feed_peers(&mut self, second: i64, cand: &Tally, base: &Tally) {
        if self.peers.is_empty() {
            return;
        }
        let s = Second {
            t: second.max(0) as u64,
            cand_n: cand.n,
            cand_x: cand.x,
            base_n: base.n,
            base_x: base.x,
        };
        let offset = Dur::from_secs(second);
        for (peer, result) in self.peers.iter_mut().zip(&mut self.outcome.peers) {
            if result.fired_at.is_none() && peer.observe(&s) {
                result.fired_at = Some(offset);
                result.outputs = self.since_change;
            }
        }
    }

    /// One bucket of one version in one locale, part of it delivered late.
    /// With a feedback denominator the labels come late, not the outputs.
    fn counts(
        &mut self,
        ts: Time,
        version: &'static str,
        locale: &'static str,
        unit: Option<Cow<'static, str>>,
        t: Tally,
    ) {
        if t.outputs == 0 {
            return;
        }
        // A bucket of many users' outputs has no unit of its own.
        let unit = unit.unwrap_or(Cow::Borrowed(""));
        let late_n = binomial(&mut self.rng, t.n, self.case.late_share);
        let late_x = hypergeometric_split(&mut self.rng, t.n, t.x, late_n);
        let late_outputs = if self.case.kind.is_feedback() {
            0
        } else {
            late_n
        };
        let on_time = Tally {
            outputs: t.outputs - late_outputs,
            n: t.n - late_n,
            x: t.x - late_x,
        };
        let values = self.values(on_time);
        self.send(event(ts, version, locale, None, unit.clone(), values));
        if late_n > 0 {
            let late = Tally {
                outputs: late_outputs,
                n: late_n,
                x: late_x,
            };
            let values = self.values(late);
            self.defer(ts, event(ts, version, locale, None, unit, values));
        }
    }

    fn values(&self, t: Tally) -> Vec<(Cow<'static, str>, f64)> {
        if self.case.kind.is_feedback() {
            vec![
                (Cow::Borrowed("outputs"), t.outputs as f64),
                (Cow::Borrowed("feedback"), t.n as f64),
                (Cow::Borrowed("thumbs_down"), t.x as f64),
            ]
        } else {
            vec![
                (Cow::Borrowed("outputs"), t.n as f64),
                (Cow::Borrowed("fail"), t.x as f64),
            ]
        }
    }

    fn fairness(&mut self, ts: Time, n_c: u64, n_b: u64, effect: Option<f64>, m: [f64; 2]) {
        let mut left = (n_c, n_b);
        for (i, (locale, weight)) in LOCALES.iter().enumerate() {
            let rest: f64 = LOCALES[i..].iter().map(|l| l.1).sum();
            let p_split = (weight / rest).min(1.0);
            let c = binomial(&mut self.rng, left.0, p_split);
            let b = binomial(&mut self.rng, left.1, p_split);
            left = (left.0 - c, left.1 - b);
            let p = self.case.base_rate;
            let pc = match effect {
                Some(e) if *locale == "de" => p * m[0] * e,
                _ => p * m[0],
            };
            let cand = self.tally(c, pc);
            let base = self.tally(b, p * m[1]);
            self.counts(ts, "v2", locale, None, cand);
            self.counts(ts, "v1", locale, None, base);
        }
    }

    /// Both versions' topic mix at this time of day: the day rotates it
    /// from one topic's weight to the next.
    fn mix(&self) -> Vec<f64> {
        let r = self.world.topic_rotation;
        let (k, f) = (r.floor() as usize, r.fract());
        let n = TOPICS.len();
        (0..n)
            .map(|i| TOPICS[(i + k) % n] * (1.0 - f) + TOPICS[(i + k + 1) % n] * f)
            .collect()
    }

    fn topics(&mut self, ts: Time, n_c: u64, n_b: u64, effect: Option<f64>) {
        // The candidate moves `effect` of its mix to the last topic.
        let moved = effect.unwrap_or(0.0).clamp(0.0, 1.0);
        let mix_b = self.mix();
        let last = mix_b.len() - 1;
        let mix_c: Vec<f64> = mix_b
            .iter()
            .enumerate()
            .map(|(i, p)| p * (1.0 - moved) + if i == last { moved } else { 0.0 })
            .collect();
        for (version, n, mix) in [("v2", n_c, mix_c), ("v1", n_b, mix_b)] {
            let mut left = n;
            let mut rest = 1.0;
            for (i, p) in mix.iter().enumerate() {
                let k = if i == last {
                    left
                } else {
                    binomial(&mut self.rng, left, (p / rest).min(1.0))
                };
                left -= k;
                rest -= p;
                if k > 0 {
                    let values = vec![
                        (Cow::Borrowed("outputs"), k as f64),
                        (Cow::Borrowed("fail"), 0.0),
                    ];
                    let bucket = Cow::Borrowed("bucket");
                    let e = event(ts, version, "en", Some(TOPIC_NAMES[i]), bucket, values);
                    self.send(e);
                }
            }
        }
    }

    /// Per-output events carrying one value each.
    fn each(
        &mut self,
        ts: Time,
        n_c: u64,
        n_b: u64,
        effect: Option<f64>,
        value: fn(&mut Self, Option<f64>) -> (&'static str, f64),
    ) {
        let step = self.case.bucket.0.max(1);
        for (version, n, e) in [("v2", n_c, effect), ("v1", n_b, None)] {
            for _ in 0..n {
                let at = ts + Dur(self.rng.random_range(0..step));
                let (field, v) = value(self, e);
                let values = vec![(Cow::Borrowed(field), v)];
                let ev = event(at, version, "en", None, Cow::Borrowed("bucket"), values);
                if self.rng.random::<f64>() < self.case.late_share {
                    self.defer(at, ev);
                } else {
                    self.send(ev);
                }
            }
        }
    }

    fn score(&mut self, shift: Option<f64>) -> (&'static str, f64) {
        let beta = Beta::new(8.0, 2.0).map_or(0.8, |b| b.sample(&mut self.rng));
        let v = beta + shift.unwrap_or(0.0) + self.world.score_shift;
        ("utility", v.clamp(0.0, 1.0))
    }

    fn latency(&mut self, times: Option<f64>) -> (&'static str, f64) {
        let v = LogNormal::new(800f64.ln(), 0.45).map_or(800.0, |d| d.sample(&mut self.rng));
        ("latency_ms", v * times.unwrap_or(1.0) * self.world.latency)
    }

    fn defer(&mut self, generated: Time, e: Event<'static>) {
        let delay = self
            .rng
            .random_range(1_000..=self.case.max_late.0.max(1_000));
        self.seq += 1;
        self.late.insert((generated.0 + delay, self.seq), e);
    }

    fn deliver_late(&mut self, now: Time) {
        while let Some(entry) = self.late.first_entry() {
            if entry.key().0 > now.0 {
                break;
            }
            let e = entry.remove();
            self.send(e);
        }
    }

    fn send(&mut self, e: Event<'static>) {
        self.outcome.events += 1;
        // Rejections (e.g. after a rollback) are part of the story, not errors.
        let _ = self.engine.observe(&e, &mut self.out);
    }
}

const TOPIC_NAMES: [&str; 6] = [
    "billing",
    "shipping",
    "returns",
    "account",
    "technical",
    "legal",
];

fn event(
    ts: Time,
    version: &'static str,
    locale: &'static str,
    topic: Option<&'static str>,
    unit: Cow<'static, str>,
    values: Vec<(Cow<'static, str>, f64)>,
) -> Event<'static> {
    let mut segment = vec![(Cow::Borrowed("locale"), Cow::Borrowed(locale))];
    if let Some(t) = topic {
        segment.push((Cow::Borrowed("topic"), Cow::Borrowed(t)));
    }
    Event {
        ts,
        service: Cow::Borrowed("bench"),
        version: Cow::Borrowed(version),
        unit,
        segment,
        values,
    }
}

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |d| d.sample(rng) as u64)
}

fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    Binomial::new(n, p.min(1.0)).map_or(0, |d| d.sample(rng))
}

/// How many of `x` flagged among `n` fall into a random subset of `k`.
fn hypergeometric_split(rng: &mut StdRng, n: u64, x: u64, k: u64) -> u64 {
    if x == 0 || k == 0 {
        return 0;
    }
    // Draw the subset one flagged output at a time: each is in it with the
    // chance of the remaining places over the remaining outputs.
    let (mut places, mut outputs, mut hits) = (k, n, 0);
    for _ in 0..x {
        if rng.random_range(0..outputs) < places {
            hits += 1;
            places -= 1;
        }
        outputs -= 1;
        if places == 0 || outputs == 0 {
            break;
        }
    }
    hits
}
