//! The detection harness: one simulated release, driven through the real
//! engine, and the same stream given to the peer rules of [`crate::peers`].
//!
//! Rate streams are generated as per-bucket counts (Poisson volume that
//! follows a [`Shape`], a binomial split at the candidate's share, binomial
//! flags), which mean exactly what the same outputs one line each would
//! mean and cost a thousandth as much to replay; scores and latencies are
//! one event per output, because their statistics read every value.
//! Volume bursts (3× for 10 minutes, twice a day) and late delivery (a share
//! of every bucket arrives up to `max_late` after it was generated) are on
//! unless turned off, so that every figure is measured under them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Binomial, Distribution, LogNormal, Poisson};
use ripcord_core::engine::{Engine, EngineOptions, ShareSource};
use ripcord_core::policy::load_policy;
use ripcord_core::{Decision, DecisionKind, Dur, Event, Release, Time};

use crate::peers::{Detector, Second};
use crate::traffic::Shape;

/// The criterion kinds the benchmark exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A rate against the baseline (`max_ratio: 1`).
    RateRatio,
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
    /// A rate after promotion, against its level at promotion (CUSUM).
    Change,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::RateRatio,
        Kind::RateAbsolute,
        Kind::Score,
        Kind::Latency,
        Kind::Drift,
        Kind::Fairness,
        Kind::Change,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RateRatio => "rate vs baseline (max_ratio 1)",
            Kind::RateAbsolute => "rate vs absolute ceiling",
            Kind::Score => "score mean vs baseline (max_decrease 0.02)",
            Kind::Latency => "latency p95 vs baseline (max_ratio 1.15)",
            Kind::Drift => "topic drift vs baseline (max_js 0.05)",
            Kind::Fairness => "fairness across locales (max_ratio 1.5)",
            Kind::Change => "change after promotion (CUSUM)",
        }
    }

    /// Whether the stream is per-bucket counts (and peers can watch it).
    pub fn is_rate(self) -> bool {
        matches!(self, Kind::RateRatio | Kind::RateAbsolute | Kind::Change)
    }
}

/// One simulated release.
#[derive(Clone, Debug)]
pub struct Case {
    pub kind: Kind,
    /// Baseline flag rate (rates, fairness, change).
    pub base_rate: f64,
    pub share: f64,
    /// What happens to the candidate from `change_at`: a rate multiplier
    /// (rates, fairness: in one locale, change), a latency multiplier, a
    /// score shift, or the share of the topic mix moved to one topic.
    /// `None` is an A/A release.
    pub effect: Option<f64>,
    pub change_at: Dur,
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
}

impl Case {
    pub fn new(kind: Kind, seed: u64) -> Case {
        Case {
            kind,
            base_rate: 0.01,
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
        }
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
const LOCALES: [(&str, f64); 3] = [("en", 0.6), ("de", 0.25), ("ja", 0.15)];
const TOPICS: [f64; 6] = [0.3, 0.25, 0.2, 0.12, 0.08, 0.05];
/// How long a change case ramps before the automatic promotion.
pub const RAMP: Dur = Dur::from_mins(120);

/// The policy a case runs under, in the policy language.
pub fn policy_text(case: &Case) -> String {
    let c = case.confidence;
    let (signal, criterion) = match case.kind {
        Kind::RateRatio => (
            "fail: {category: safety, kind: rate}",
            format!("{{signal: fail, max_ratio: 1, window: 30m, confidence: {c}}}"),
        ),
        Kind::RateAbsolute => (
            "fail: {category: safety, kind: rate}",
            format!(
                "{{signal: fail, absolute: {}, window: 30m, confidence: {c}}}",
                case.base_rate
            ),
        ),
        Kind::Change => (
            "fail: {category: safety, kind: rate}",
            format!("{{signal: fail, max_ratio: 1.25, window: 30m, confidence: {c}}}"),
        ),
        Kind::Score => (
            "utility: {category: quality, kind: score, range: [0, 1]}",
            format!("{{signal: utility, max_decrease: 0.02, window: 30m, confidence: {c}}}"),
        ),
        Kind::Latency => (
            "latency_ms: {category: operational, kind: latency}",
            format!(
                "{{signal: latency_ms, quantile: 0.95, max_ratio: 1.15, window: 30m, confidence: {c}}}"
            ),
        ),
        Kind::Drift => (
            "topic: {category: data, kind: category}",
            format!("{{signal: topic, max_js: 0.05, window: 30m, confidence: {c}}}"),
        ),
        Kind::Fairness => (
            "fail: {category: fairness, kind: rate}",
            format!(
                "{{signal: fail, across: locale, max_ratio: 1.5, window: 60m, confidence: {c}}}"
            ),
        ),
    };
    let rollout = if case.kind == Kind::Change {
        format!(
            "{{steps: [{{share: {}, hold: {}}}], promotion: automatic, watch_after_promotion: 1000d, false_alarm_every: {}}}",
            case.share, RAMP, case.false_alarm_every
        )
    } else {
        format!(
            "{{steps: [{{share: {}, hold: 1000d}}], promotion: manual}}",
            case.share
        )
    };
    format!(
        "service: bench\nsignals:\n  {signal}\ncriteria:\n  watched: {criterion}\n\
         triggers:\n  revert: {{when: watched, severity: critical, action: rollback}}\n\
         rollout: {rollout}\nsrm: off\n"
    )
}

/// Runs one case through the engine (and, for rate kinds, the peers).
pub fn run(case: &Case, peers: &mut [Box<dyn Detector + Send>]) -> Result<Outcome, String> {
    let policy = load_policy(&policy_text(case), "bench.yaml").map_err(|e| e.to_string())?;
    let options = EngineOptions {
        lateness: case.max_late + case.bucket + Dur::from_secs(1),
        share_source: ShareSource::Engine,
    };
    let mut sim = Sim {
        case,
        rng: StdRng::seed_from_u64(case.seed),
        engine: Engine::new(policy, options),
        late: BTreeMap::new(),
        seq: 0,
        out: Vec::new(),
        outcome: Outcome::default(),
        peers,
        burst_starts: Vec::new(),
        since_change: 0.0,
    };
    sim.start();
    sim.run()?;
    Ok(sim.outcome)
}

struct Sim<'a> {
    case: &'a Case,
    rng: StdRng,
    engine: Engine,
    /// Late events by delivery time.
    late: BTreeMap<(i64, u64), Event<'static>>,
    seq: u64,
    out: Vec<Decision>,
    outcome: Outcome,
    peers: &'a mut [Box<dyn Detector + Send>],
    burst_starts: Vec<Dur>,
    /// Outputs generated since the change, whoever has fired.
    since_change: f64,
}

impl Sim<'_> {
    fn start(&mut self) {
        let release = Release {
            ts: START,
            service: "bench".into(),
            baseline: "v1".into(),
            candidate: "v2".into(),
            share: self.case.share,
        };
        self.engine.declare(&release, &mut self.out);
        let days = (self.case.duration.0 as f64 / 86_400_000.0).ceil() as i64;
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

    fn run(&mut self) -> Result<(), String> {
        let step = self.case.bucket.0.max(1);
        let mut t = 0;
        while t < self.case.duration.0 {
            let offset = Dur(t);
            let ts = START + offset;
            self.deliver_late(ts);
            // The split follows the policy's plan (and the promotion), not a
            // rollback: peers still watching must see the stream unchanged.
            let share = match self.outcome.promoted_at {
                Some(_) => 1.0,
                None => self.case.share,
            };
            let volume = self.volume(offset, step);
            let (n_c, n_b) = self.split(volume, share);
            let changed = self.case.effect.is_some() && offset >= self.case.change_at;
            if changed {
                self.since_change += (n_c + n_b) as f64;
            }
            if changed && self.outcome.fired_at.is_none() {
                self.outcome.outputs += (n_c + n_b) as f64;
                self.outcome.candidate_outputs += n_c as f64;
            }
            self.generate(ts, n_c, n_b, changed, t / 1000);
            self.note_promotion(offset);
            if self.fired(offset) {
                break;
            }
            t += step;
        }
        Ok(())
    }

    fn note_promotion(&mut self, offset: Dur) {
        if self.outcome.promoted_at.is_none()
            && self.outcome.fired_at.is_none()
            && self.engine.status().is_some_and(|s| s.share >= 1.0)
        {
            self.outcome.promoted_at = Some(offset);
        }
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

    fn split(&mut self, volume: u64, share: f64) -> (u64, u64) {
        let c = binomial(&mut self.rng, volume, share);
        (c, volume - c)
    }

    fn generate(&mut self, ts: Time, n_c: u64, n_b: u64, changed: bool, second: i64) {
        let effect = self.case.effect.filter(|_| changed);
        match self.case.kind {
            Kind::RateRatio | Kind::RateAbsolute | Kind::Change => {
                let p = self.case.base_rate;
                let pc = effect.map_or(p, |m| (p * m).min(1.0));
                let x_c = binomial(&mut self.rng, n_c, pc);
                let x_b = binomial(&mut self.rng, n_b, p);
                self.feed_peers(second, n_c, x_c, n_b, x_b);
                self.counts(ts, "v2", "en", n_c, x_c);
                self.counts(ts, "v1", "en", n_b, x_b);
            }
            Kind::Fairness => self.fairness(ts, n_c, n_b, effect),
            Kind::Drift => self.topics(ts, n_c, n_b, effect),
            Kind::Score => self.each(ts, n_c, n_b, effect, Self::score),
            Kind::Latency => self.each(ts, n_c, n_b, effect, Self::latency),
        }
    }

    fn feed_peers(&mut self, second: i64, cand_n: u64, cand_x: u64, base_n: u64, base_x: u64) {
        let s = Second {
            t: second.max(0) as u64,
            cand_n,
            cand_x,
            base_n,
            base_x,
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
    fn counts(&mut self, ts: Time, version: &'static str, locale: &'static str, n: u64, x: u64) {
        if n == 0 {
            return;
        }
        let late_n = binomial(&mut self.rng, n, self.case.late_share);
        let late_x = hypergeometric_split(&mut self.rng, n, x, late_n);
        let on_time = event(ts, version, locale, None, n - late_n, x - late_x);
        self.send(on_time);
        if late_n > 0 {
            let late = event(ts, version, locale, None, late_n, late_x);
            self.defer(ts, late);
        }
    }

    fn fairness(&mut self, ts: Time, n_c: u64, n_b: u64, effect: Option<f64>) {
        let mut left = (n_c, n_b);
        for (i, (locale, weight)) in LOCALES.iter().enumerate() {
            let rest: f64 = LOCALES[i..].iter().map(|l| l.1).sum();
            let p_split = (weight / rest).min(1.0);
            let c = binomial(&mut self.rng, left.0, p_split);
            let b = binomial(&mut self.rng, left.1, p_split);
            left = (left.0 - c, left.1 - b);
            let p = self.case.base_rate;
            let pc = match effect {
                Some(m) if *locale == "de" => (p * m).min(1.0),
                _ => p,
            };
            let x_c = binomial(&mut self.rng, c, pc);
            let x_b = binomial(&mut self.rng, b, p);
            self.counts(ts, "v2", locale, c, x_c);
            self.counts(ts, "v1", locale, b, x_b);
        }
    }

    fn topics(&mut self, ts: Time, n_c: u64, n_b: u64, effect: Option<f64>) {
        // The candidate moves `effect` of its mix to the smallest topic.
        let moved = effect.unwrap_or(0.0).clamp(0.0, 1.0);
        let mix_c: Vec<f64> = TOPICS
            .iter()
            .enumerate()
            .map(|(i, p)| p * (1.0 - moved) + if i == TOPICS.len() - 1 { moved } else { 0.0 })
            .collect();
        for (version, n, mix) in [("v2", n_c, mix_c), ("v1", n_b, TOPICS.to_vec())] {
            let mut left = n;
            let mut rest = 1.0;
            for (i, p) in mix.iter().enumerate() {
                let k = if i + 1 == mix.len() {
                    left
                } else {
                    binomial(&mut self.rng, left, (p / rest).min(1.0))
                };
                left -= k;
                rest -= p;
                if k > 0 {
                    let e = event(ts, version, "en", Some(TOPIC_NAMES[i]), k, 0);
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
                let mut ev = event(at, version, "en", None, 1, 0);
                ev.values = vec![(Cow::Borrowed(field), v)];
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
        ("utility", (beta + shift.unwrap_or(0.0)).clamp(0.0, 1.0))
    }

    fn latency(&mut self, times: Option<f64>) -> (&'static str, f64) {
        let v = LogNormal::new(800f64.ln(), 0.45).map_or(800.0, |d| d.sample(&mut self.rng));
        ("latency_ms", v * times.unwrap_or(1.0))
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
    n: u64,
    x: u64,
) -> Event<'static> {
    let mut segment = vec![(Cow::Borrowed("locale"), Cow::Borrowed(locale))];
    if let Some(t) = topic {
        segment.push((Cow::Borrowed("topic"), Cow::Borrowed(t)));
    }
    Event {
        ts,
        service: Cow::Borrowed("bench"),
        version: Cow::Borrowed(version),
        unit: Cow::Borrowed("bucket"),
        segment,
        values: vec![
            (Cow::Borrowed("outputs"), n as f64),
            (Cow::Borrowed("fail"), x as f64),
        ],
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
