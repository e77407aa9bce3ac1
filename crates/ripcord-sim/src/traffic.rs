//! Realistic synthetic traffic: a daily cycle (or a real traffic shape), a
//! population of users of whom some are much busier than others, locales
//! with different base rates, per-scenario signals, regressions, spikes,
//! gaps and late events. Deterministic for a seed.
//!
//! Drivers call [`Generator::next`] with the candidate's share in force, so
//! a closed-loop driver (policy tests, later drills) sees the traffic react
//! to the engine's ramps and rollbacks exactly as live traffic would.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal};
use ripcord_core::policy::Scenario;
use ripcord_core::{Dur, Event, Time};

use crate::assign::is_candidate;
use crate::spec::{Effect, Gap, Regression, Spike};

/// How traffic volume varies over time, as a multiplier with mean ≈ 1.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A daily cycle: lowest around 03:00 UTC, highest around 15:00, from
    /// 0.4× to 1.6× the mean.
    Diurnal,
    /// A recorded series (e.g. the NYC taxi or Twitter volume series),
    /// stretched over the simulated duration and scaled to mean 1.
    Series(Vec<f64>),
}

impl Shape {
    /// Reads a `timestamp,value` CSV (header optional) into a shape.
    pub fn from_csv(text: &str) -> Result<Shape, String> {
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some((_, value)) = line.rsplit_once(',') else {
                continue;
            };
            match value.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => values.push(v),
                Ok(_) => return Err(format!("line {}: value must be ≥ 0", i + 1)),
                Err(_) if i == 0 => {}
                Err(_) => return Err(format!("line {}: {value:?} is not a number", i + 1)),
            }
        }
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        if values.is_empty() || mean <= 0.0 {
            return Err("no traffic values".into());
        }
        Ok(Shape::Series(
            values.into_iter().map(|v| v / mean).collect(),
        ))
    }

    /// The volume multiplier at `t`, `fraction` of the way through the period.
    pub fn at(&self, t: Time, fraction: f64) -> f64 {
        match self {
            Shape::Diurnal => {
                let day = (t.0.rem_euclid(86_400_000)) as f64 / 86_400_000.0;
                1.0 + 0.6 * (2.0 * std::f64::consts::PI * (day - 0.375)).sin()
            }
            Shape::Series(v) => {
                let i = ((fraction * v.len() as f64) as usize).min(v.len() - 1);
                v[i]
            }
        }
    }

    fn max(&self) -> f64 {
        match self {
            Shape::Diurnal => 1.6,
            Shape::Series(v) => v.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// Everything a simulated release is made of.
#[derive(Clone, Debug)]
pub struct TrafficSpec {
    pub scenario: Scenario,
    pub service: String,
    pub baseline: String,
    pub candidate: String,
    pub start: Time,
    pub duration: Dur,
    /// Mean events per second.
    pub rate: f64,
    pub seed: u64,
    pub shape: Shape,
    /// Users; a few are far busier than the rest.
    pub units: u32,
    pub regressions: Vec<Regression>,
    pub spikes: Vec<Spike>,
    pub gaps: Vec<Gap>,
    /// Share of events delivered late, by up to `max_late`.
    pub late_share: f64,
    pub max_late: Dur,
    /// Segment mix: (locale, share of users, multiplier of flag rates).
    pub locales: Vec<(String, f64, f64)>,
    /// Base rates that replace the scenario's, by signal field (both versions).
    pub base_rates: Vec<(String, f64)>,
}

impl TrafficSpec {
    /// A spec with realistic defaults for a scenario.
    pub fn new(scenario: Scenario, seed: u64) -> TrafficSpec {
        TrafficSpec {
            scenario,
            service: default_service(scenario).to_string(),
            baseline: "v12".into(),
            candidate: "v13".into(),
            start: Time(1_795_168_800_000), // 2026-11-20T10:00:00Z
            duration: Dur::from_mins(120),
            rate: 50.0,
            seed,
            shape: Shape::Diurnal,
            units: 20_000,
            regressions: Vec::new(),
            spikes: Vec::new(),
            gaps: Vec::new(),
            late_share: 0.02,
            max_late: Dur::from_secs(20),
            locales: LOCALES
                .iter()
                .map(|(name, share, m)| (name.to_string(), *share, *m))
                .collect(),
            base_rates: Vec::new(),
        }
    }

    /// Sets the segment mix by locale weights (normalised); known locales
    /// keep their rate multipliers, new ones get 1.
    pub fn set_locale_mix(&mut self, weights: &[(String, f64)]) -> Result<(), String> {
        let total: f64 = weights.iter().map(|(_, w)| *w).sum();
        let valid = |w: f64| w.is_finite() && w >= 0.0;
        if weights.is_empty()
            || !valid(total)
            || total == 0.0
            || weights.iter().any(|(_, w)| !valid(*w))
        {
            return Err("locale weights must be ≥ 0 and not all 0".into());
        }
        self.locales = weights
            .iter()
            .map(|(name, w)| {
                let m = LOCALES
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map_or(1.0, |l| l.2);
                (name.clone(), w / total, m)
            })
            .collect();
        Ok(())
    }
}

/// The service names of the example policies.
pub fn default_service(s: Scenario) -> &'static str {
    match s {
        Scenario::ConversationalAgent => "support-bot",
        Scenario::ImageGenerator => "studio-images",
        Scenario::DataAugmentation => "augment-v",
    }
}

/// Where and when an output is generated, for the effects that apply to it.
struct Moment<'a> {
    offset: Dur,
    candidate: bool,
    locale: &'a str,
}

/// Locales: (name, share of users, multiplier of flag rates). Languages the
/// model handles less well fail more often, on both versions.
const LOCALES: [(&str, f64, f64); 4] = [
    ("en", 0.5, 1.0),
    ("de", 0.25, 1.3),
    ("fr", 0.15, 1.1),
    ("ja", 0.1, 0.8),
];

pub struct Generator {
    spec: TrafficSpec,
    rng: StdRng,
    /// The next on-time event's instant (ms), or past the end.
    next_at: i64,
    /// The same, unrounded: at high rates arrivals are closer than a millisecond.
    clock: f64,
    end: i64,
    /// Late events waiting for their delivery time: (deliver at, sequence).
    late: BTreeMap<(i64, u64), Event<'static>>,
    seq: u64,
    latency: LogNormal<f64>,
    score: Beta<f64>,
}

impl Generator {
    pub fn new(spec: TrafficSpec) -> Generator {
        let end = (spec.start + spec.duration).0;
        let (median, sigma) = match spec.scenario {
            Scenario::ImageGenerator => (6000.0f64, 0.35),
            _ => (800.0, 0.45),
        };
        let (a, b) = match spec.scenario {
            Scenario::ConversationalAgent => (8.0, 2.0),
            Scenario::ImageGenerator => (7.0, 3.0),
            Scenario::DataAugmentation => (18.0, 2.0),
        };
        let mut g = Generator {
            next_at: spec.start.0,
            clock: spec.start.0 as f64,
            end,
            late: BTreeMap::new(),
            seq: 0,
            latency: LogNormal::new(median.ln(), sigma).expect("constant parameters"),
            score: Beta::new(a, b).expect("constant parameters"),
            rng: StdRng::seed_from_u64(spec.seed),
            spec,
        };
        g.advance();
        g
    }

    pub fn spec(&self) -> &TrafficSpec {
        &self.spec
    }

    /// The next event in delivery order, its unit assigned at `share`;
    /// `None` once the simulated period is over.
    pub fn next(&mut self, share: f64) -> Option<Event<'static>> {
        loop {
            let due_late = self.late.keys().next().copied();
            match due_late {
                Some(key) if key.0 <= self.next_at || self.next_at >= self.end => {
                    return self.late.remove(&key);
                }
                _ if self.next_at >= self.end => return None,
                _ => {}
            }
            let at = Time(self.next_at);
            self.advance();
            let event = self.event(at, share);
            if self.rng.random::<f64>() < self.spec.late_share {
                let delay = self.rng.random_range(1000..=self.spec.max_late.0.max(1000));
                self.seq += 1;
                self.late.insert((at.0 + delay, self.seq), event);
                continue;
            }
            return Some(event);
        }
    }

    /// Moves `next_at` to the next arrival of a Poisson process whose rate
    /// follows the shape (by thinning), skipping gaps.
    fn advance(&mut self) {
        let peak = self.spec.rate * self.spec.shape.max();
        if peak <= 0.0 {
            self.next_at = self.end;
            return;
        }
        let span = (self.end - self.spec.start.0).max(1) as f64;
        loop {
            let wait = -(1.0 - self.rng.random::<f64>()).ln() / peak;
            self.clock += wait * 1000.0;
            self.next_at = self.clock as i64;
            if self.next_at >= self.end {
                return;
            }
            let t = Time(self.next_at);
            let fraction = (self.next_at - self.spec.start.0) as f64 / span;
            let offset = t - self.spec.start;
            let in_gap = self.spec.gaps.iter().any(|g| g.covers(offset));
            let keep = self.spec.rate * self.spec.shape.at(t, fraction) / peak;
            if !in_gap && self.rng.random::<f64>() < keep {
                return;
            }
        }
    }

    fn event(&mut self, at: Time, share: f64) -> Event<'static> {
        // Busy users: squaring a uniform draw puts most requests on a few ids.
        let u: f64 = self.rng.random();
        let index = ((u * u) * f64::from(self.spec.units)) as u32;
        let unit = format!("u-{index}");
        let (locale, multiplier) = self.locale_of(index);
        let candidate = is_candidate(&self.spec.service, &unit, share);
        let offset = at - self.spec.start;
        let moment = Moment {
            offset,
            candidate,
            locale: &locale,
        };
        let values = self.values(&moment, multiplier);
        let version = if candidate {
            &self.spec.candidate
        } else {
            &self.spec.baseline
        };
        Event {
            ts: at,
            service: Cow::Owned(self.spec.service.clone()),
            version: Cow::Owned(version.clone()),
            unit: Cow::Owned(unit),
            segment: vec![(Cow::Borrowed("locale"), Cow::Owned(locale))],
            values,
        }
    }

    fn values(&mut self, at: &Moment<'_>, m: f64) -> Vec<(Cow<'static, str>, f64)> {
        let mut out = vec![(Cow::Borrowed("outputs"), 1.0)];
        match self.spec.scenario {
            Scenario::ConversationalAgent => {
                self.flag(&mut out, "hallucination", 5e-4 * m, at);
                self.flag(&mut out, "moderation_fail", 5e-3 * m, at);
                self.flag(&mut out, "error", 3e-3, at);
                self.measure(&mut out, "latency_ms", at);
                self.grade(&mut out, "utility", at);
                // About one answer in ten gets a thumbs up or down.
                if self.rng.random::<f64>() < 0.1 {
                    out.push((Cow::Borrowed("feedback"), 1.0));
                    self.flag(&mut out, "thumbs_down", 0.08 * m, at);
                }
            }
            Scenario::ImageGenerator => {
                self.flag(&mut out, "unsafe_image", 1e-3 * m, at);
                self.flag(&mut out, "regenerate", 0.12, at);
                self.grade(&mut out, "prompt_adherence", at);
                self.measure(&mut out, "generation_latency_ms", at);
            }
            Scenario::DataAugmentation => {
                self.flag(&mut out, "schema_invalid", 0.01 * m, at);
                self.flag(&mut out, "duplicate", 0.02, at);
                self.flag(&mut out, "pii_leak", 2e-6, at);
                self.grade(&mut out, "label_accuracy", at);
            }
        }
        out
    }

    /// The regressions' and spikes' effects on `field` now, for this version.
    fn effects(&self, field: &str, at: &Moment<'_>) -> (f64, f64) {
        let lasting = self
            .spec
            .regressions
            .iter()
            .filter(|r| r.field == field && r.active(at.offset, at.candidate, at.locale))
            .map(|r| r.effect);
        let bursts = self
            .spec
            .spikes
            .iter()
            .filter(|s| s.field == field && s.active(at.offset, at.candidate))
            .map(|s| s.effect);
        lasting
            .chain(bursts)
            .fold((1.0, 0.0), |(times, plus), e| match e {
                Effect::Times(f) => (times * f, plus),
                Effect::Plus(p) => (times, plus + p),
            })
    }

    /// A user's locale is fixed by their id, so it never changes between requests.
    fn locale_of(&self, index: u32) -> (String, f64) {
        let x = f64::from(index.wrapping_mul(2_654_435_761) % 10_000) / 10_000.0;
        let mut acc = 0.0;
        for (name, share, m) in &self.spec.locales {
            acc += share;
            if x < acc {
                return (name.clone(), *m);
            }
        }
        self.spec
            .locales
            .last()
            .map_or(("en".to_string(), 1.0), |(n, _, m)| (n.clone(), *m))
    }

    fn flag(
        &mut self,
        out: &mut Vec<(Cow<'static, str>, f64)>,
        field: &'static str,
        p: f64,
        at: &Moment<'_>,
    ) {
        let p = self
            .spec
            .base_rates
            .iter()
            .find(|(f, _)| f == field)
            .map_or(p, |(_, rate)| *rate);
        let (times, plus) = self.effects(field, at);
        let p = (p * times + plus).clamp(0.0, 1.0);
        let flagged = self.rng.random::<f64>() < p;
        out.push((Cow::Borrowed(field), if flagged { 1.0 } else { 0.0 }));
    }

    fn measure(
        &mut self,
        out: &mut Vec<(Cow<'static, str>, f64)>,
        field: &'static str,
        at: &Moment<'_>,
    ) {
        let (times, plus) = self.effects(field, at);
        let v = self.latency.sample(&mut self.rng) * times + plus;
        out.push((Cow::Borrowed(field), (v.max(1.0) * 10.0).round() / 10.0));
    }

    fn grade(
        &mut self,
        out: &mut Vec<(Cow<'static, str>, f64)>,
        field: &'static str,
        at: &Moment<'_>,
    ) {
        let (times, plus) = self.effects(field, at);
        let v = (self.score.sample(&mut self.rng) * times + plus).clamp(0.0, 1.0);
        out.push((Cow::Borrowed(field), (v * 1000.0).round() / 1000.0));
    }
}
