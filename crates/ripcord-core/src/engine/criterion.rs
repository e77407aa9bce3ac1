//! One criterion at run time: its statistical test, its sliding window, and
//! the `for` / `clear_for` timers that turn "breaching now" into a sustained
//! breach or a clearance.
//!
//! A criterion is *breaching* at an instant when (1) one of its anytime-valid
//! tests has rejected "the candidate is within the bound", (2) the point
//! estimate over the sliding window is still beyond the bound, and (3) both
//! compared versions have `min_samples`. (1) is what keeps noise from ever
//! firing it; (2) is what lets it clear once the problem is gone, because a
//! test that never forgets would stay rejected. It is *breached* once it has
//! been breaching for `for`, and cleared once it has not been breaching for
//! `clear_for`.
//!
//! A single test started at the release would be slow to see a regression
//! that begins hours in: the healthy hours dilute it. So a fresh test starts
//! every `window` (an *epoch*), and the k-th gets the error budget
//! `α·6/(π²k²)`; the budgets sum to α, so by the union bound the chance that
//! any of them ever rejects a good candidate stays ≤ α. Only the first and
//! the most recent epochs are kept; dropping a test can only make false
//! alarms rarer.
//!
//! The kinds of criteria differ only in their test and their window
//! statistic: rates (absolute, or against the baseline), bounded scores
//! (betting confidence sequences), latency quantiles (sketches, and the
//! share of candidate values above a threshold), category drift (PSI or
//! Jensen–Shannon distance, with a test of "same distribution") and
//! fairness (segments of the candidate against each other). After
//! promotion, criteria relative to the baseline switch to a CUSUM against
//! the candidate's level at promotion.

use super::units::UnitSet;
use std::cell::Cell;

use super::window::{Keyed, Ring, Sketch, Tally, Window};
use crate::decision::{Evidence, Part, Samples};
use crate::policy::{Bound, Criterion, Direction, OnNoData, Per, Signal, SignalKind};
use crate::stats::bound::{BoundTest, confidence_bound};
use crate::stats::cluster::{Cells, Dispersion};
use crate::stats::cusum::Cusum;
use crate::stats::drift::{self, DriftModel, DriftTest, UNLISTED_SHARE};
use crate::stats::fairness::{self, Disparity, Gap};
use crate::stats::log_mean_exp;
use crate::stats::paired::PairedTest;
use crate::stats::quantile::upper_level;
use crate::stats::ratio::{RatioModel, RatioTest};
use crate::stats::score::MeanSequence;
use crate::stats::strata::{Categories, Strata, Stratum};
use crate::time::{Dur, Time};

/// One observation as a criterion counts it: `n` towards the denominator,
/// `x` towards the numerator (flags, the score value, or the raw latency
/// when `n` is 1), and `key`, the category or segment index for drift and
/// fairness criteria.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub n: f64,
    pub x: f64,
    pub key: usize,
}

impl Sample {
    pub fn new(n: f64, x: f64) -> Sample {
        Sample { n, x, key: 0 }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Test {
    /// Rate, or latency exceedance, against an absolute bound.
    Bound(BoundTest),
    /// Rate ratio against the baseline.
    Ratio(RatioTest),
    /// Mean score against an absolute bound.
    ScoreAbsolute { candidate: MeanSequence },
    /// Mean score difference against the baseline: decided by the paired
    /// betting e-process; the two sequences give the interval shown.
    ScoreRelative {
        paired: Box<PairedTest>,
        candidate: MeanSequence,
        baseline: MeanSequence,
    },
    /// Category distribution against the baseline or a stored profile.
    Drift(DriftTest),
    /// The candidate's segments against each other.
    Fairness(Disparity),
}

/// What changed when a criterion was evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transition {
    /// The test rejected and the window agrees, for `for`.
    Breached,
    /// `on_no_data: breach` and no data in the window, for `for`: a verdict
    /// of its own, never reported as statistical evidence.
    NoData,
    Cleared,
}

/// Why a criterion is breaching at an instant, if it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Breaching {
    No,
    Evidence,
    NoData,
}

/// Most categories or segments a criterion tells apart; later ones are
/// counted together as `(other)`, so a field with unbounded values cannot
/// grow memory without limit.
const MAX_KEYS: usize = 64;
const OTHER: &str = "(other)";

/// Latency criteria: sketches of both versions, and the exceedance
/// threshold the test counts against.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Latency {
    quantile: f64,
    /// `Some(r)` for "candidate p_q ≤ r × baseline p_q".
    ratio: Option<f64>,
    candidate: Sketch,
    baseline: Sketch,
    window: Ring<Sketch>,
    /// Values above this count as exceedances: the absolute limit, or `r`
    /// times the baseline quantile's upper confidence bound.
    threshold: f64,
}

/// A comparison with the baseline, conditioned stratum by stratum on what
/// each version really served (see [`crate::stats::strata`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Comparison {
    Rates {
        model: RatioModel,
        strata: Strata<Cells>,
        /// How much persistent users make the score vary beyond what
        /// independent outputs would (see [`crate::stats::cluster`]).
        dispersion: Dispersion,
    },
    Categories {
        model: DriftModel,
        strata: Strata<Categories>,
    },
}

/// Relative criteria after promotion: CUSUM against the level at promotion.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct AfterPromotion {
    level: f64,
    cusum: Cusum,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CriterionState {
    pub spec: Criterion,
    pub signal: String,
    pub direction: Direction,
    score_range: Option<(f64, f64)>,
    latency: Option<Latency>,
    /// Comparisons with the baseline: the realised counts of both versions
    /// by stratum of generation time, and what every epoch's test shares.
    comparison: Option<Comparison>,
    alpha: f64,
    /// The part of `alpha` the epochs share (half of it for relative
    /// latency, whose other half covers the baseline's quantile bound).
    test_alpha: f64,
    /// A fresh test, cloned at each restart; also tells the kind of test.
    template: Test,
    epochs: Vec<Epoch>,
    restarts: u32,
    next_restart: Time,
    started: Time,
    window: Window,
    candidate: Tally,
    baseline: Tally,
    candidate_squares: f64,
    /// Category or segment names, by key; with their counts per version.
    keys: Vec<String>,
    keyed_window: Ring<Keyed>,
    keyed_candidate: Keyed,
    keyed_baseline: Keyed,
    after_promotion: Option<AfterPromotion>,
    /// The last window estimate and the second it was computed in.
    window_cache: Cell<(i64, i64, Option<f64>)>,
    significance_cache: Cell<(i64, bool)>,
    units_flagged: UnitSet,
    /// The window condition's last value, for `on_no_data: hold`.
    recent: bool,
    breaching_since: Option<Time>,
    clear_since: Option<Time>,
    pub breached: bool,
}

impl CriterionState {
    /// `alpha` is this criterion's share of the error budget.
    pub fn new(spec: &Criterion, signal: &Signal, alpha: f64, start: Time) -> CriterionState {
        let direction = signal.direction;
        let score_range = match signal.kind {
            SignalKind::Score { min, max, .. } => Some((min, max)),
            _ => None,
        };
        let mut keys = Vec::new();
        let (test, latency) = match (&signal.kind, spec.bound) {
            (_, _) if spec.across.is_some() => {
                let d = match score_range {
                    Some((min, max)) => Disparity::for_scores(min, max),
                    None => Disparity::for_rates(),
                };
                (Test::Fairness(d), None)
            }
            (SignalKind::Category { .. }, _) => {
                let test = match &spec.reference {
                    Some(profile) => {
                        keys = profile.iter().map(|(k, _)| k.clone()).collect();
                        DriftTest::vs_profile(profile.iter().map(|(_, s)| *s).collect())
                    }
                    None => DriftTest::vs_baseline(),
                };
                (Test::Drift(test), None)
            }
            (SignalKind::Latency { .. }, bound) => {
                let q = spec.quantile.unwrap_or(0.95);
                let (ratio, threshold) = match bound {
                    Bound::MaxRatio(r) => (Some(r), f64::INFINITY),
                    b => (None, b.value()),
                };
                let latency = Latency {
                    quantile: q,
                    ratio,
                    candidate: Sketch::default(),
                    baseline: Sketch::default(),
                    window: Ring::new(spec.window),
                    threshold,
                };
                let test = Test::Bound(BoundTest::new(1.0 - q, Direction::HigherIsWorse));
                (test, Some(latency))
            }
            (SignalKind::Score { min, max, .. }, Bound::Absolute(_)) => (
                Test::ScoreAbsolute {
                    candidate: MeanSequence::new(*min, *max),
                },
                None,
            ),
            (SignalKind::Score { min, max, .. }, bound) => (
                Test::ScoreRelative {
                    paired: Box::new(PairedTest::new(
                        *min,
                        *max,
                        bound.value(),
                        score_worse(bound),
                    )),
                    candidate: MeanSequence::new(*min, *max),
                    baseline: MeanSequence::new(*min, *max),
                },
                None,
            ),
            (_, Bound::Absolute(p0)) => (Test::Bound(BoundTest::new(p0, direction)), None),
            // The loader only lets rates take absolute or max_ratio bounds.
            (_, _) => (Test::Ratio(RatioTest::default()), None),
        };
        // A relative latency test spends half its budget on the baseline's
        // quantile bound and half on the candidate's exceedances.
        let test_alpha = if latency.as_ref().is_some_and(|l| l.ratio.is_some()) {
            alpha / 2.0
        } else {
            alpha
        };
        let comparison = comparison_of(&test, spec, direction);
        CriterionState {
            spec: spec.clone(),
            signal: signal.name.clone(),
            direction,
            score_range,
            latency,
            comparison,
            alpha,
            test_alpha,
            epochs: vec![Epoch {
                start,
                alpha: epoch_alpha(test_alpha, 1),
                test: test.clone(),
            }],
            template: test,
            restarts: 1,
            next_restart: start + restart_every(spec.window),
            started: start,
            window: Window::new(spec.window),
            candidate: Tally::default(),
            baseline: Tally::default(),
            candidate_squares: 0.0,
            keys,
            keyed_window: Ring::new(spec.window),
            keyed_candidate: Keyed::default(),
            keyed_baseline: Keyed::default(),
            after_promotion: None,
            window_cache: Cell::new((i64::MIN, i64::MIN, None)),
            significance_cache: Cell::new((i64::MIN, false)),
            units_flagged: UnitSet::default(),
            recent: false,
            breaching_since: None,
            clear_since: None,
            breached: false,
        }
    }

    pub fn per_unit(&self) -> bool {
        self.spec.per == Per::Unit
    }

    pub fn is_score(&self) -> bool {
        matches!(
            self.template,
            Test::ScoreAbsolute { .. } | Test::ScoreRelative { .. }
        ) || matches!(&self.template, Test::Fairness(_)) && self.score_range.is_some()
    }

    /// Whether the criterion reads every event rather than only flagged
    /// ones, so that the per-second pass must re-evaluate it.
    pub fn reads_every_event(&self) -> bool {
        self.is_score()
            || self.latency.is_some()
            || matches!(self.template, Test::Drift(_) | Test::Fairness(_))
    }

    /// The segment attribute that keys this criterion's samples: the
    /// category field (drift) or the `across` key (fairness).
    pub fn key_field<'s>(&'s self, signal: &'s Signal) -> Option<&'s str> {
        match (&signal.kind, &self.spec.across) {
            (_, Some(across)) => Some(across),
            (SignalKind::Category { field }, None) => Some(field),
            _ => None,
        }
    }

    /// The index of a category or segment value, interning new ones.
    pub fn key_of(&mut self, value: &str) -> usize {
        if let Some(i) = self.keys.iter().position(|k| k == value) {
            return i;
        }
        if self.keys.len() + 1 < MAX_KEYS {
            self.keys.push(value.to_string());
            return self.keys.len() - 1;
        }
        match self.keys.iter().position(|k| k == OTHER) {
            Some(i) => i,
            None => {
                self.keys.push(OTHER.to_string());
                self.keys.len() - 1
            }
        }
    }

    /// Per-unit counting: a unit counts once in the numerator, at its first
    /// flag, and its outputs count in the denominator until then, so the
    /// rate is "first flags per output of units not yet flagged". A busy or
    /// hostile unit weighs one flag, however many it causes; its activity
    /// is in the denominator, so the test stays exact whoever is busy.
    pub fn unit_sample(&mut self, unit: u64, sample: Sample) -> Option<Sample> {
        if self.units_flagged.contains(unit) {
            return None;
        }
        let x = if sample.x > 0.0 {
            self.units_flagged.insert(unit);
            1.0
        } else {
            0.0
        };
        Some(Sample { x, ..sample })
    }

    /// Counts one sample of one version, generated at `ts` and seen when
    /// the engine's clock reads `now`, from a unit in `cluster` if it has one (see
    /// [`crate::stats::cluster`]). Returns whether it brought new evidence
    /// that could breach: a flag, or a stratum that closed holding flags.
    pub fn observe(
        &mut self,
        ts: Time,
        now: Time,
        candidate: bool,
        cluster: Option<u16>,
        s: Sample,
    ) -> bool {
        let s = self.latency_exceedance(ts, candidate, s);
        self.window.add(ts, candidate, s.n, s.x);
        let tally = if candidate {
            &mut self.candidate
        } else {
            &mut self.baseline
        };
        tally.add(s.n, s.x);
        if candidate {
            self.candidate_squares += s.x * s.x;
        }
        self.count_key(ts, candidate, s);
        if let Some(after) = &mut self.after_promotion
            && candidate
        {
            after.cusum.add(s.n, s.x);
        }
        self.restart_if_due(now);
        let mut evidence = self.close_strata(now);
        match &mut self.comparison {
            Some(Comparison::Rates { strata, .. }) => {
                strata.add(ts, candidate, |c| c.add(cluster, s.n, s.x));
            }
            Some(Comparison::Categories { strata, .. }) => {
                strata.add(ts, candidate, |c| c.add(s.key, s.n));
            }
            None => {
                for epoch in &mut self.epochs {
                    epoch.test.add(candidate, s);
                }
            }
        }
        // The sample may have filled its stratum.
        evidence |= self.close_strata(now);
        s.x > 0.0 || evidence
    }

    /// Feeds every epoch the strata that closed by `now`; whether one of
    /// them gave the tests new evidence (a rate stratum with flags, any
    /// drift stratum).
    fn close_strata(&mut self, now: Time) -> bool {
        let epochs = &mut self.epochs;
        let mut evidence = false;
        match &mut self.comparison {
            Some(Comparison::Rates {
                model,
                strata,
                dispersion,
            }) => strata.close_due(now, |st| {
                let counts = Stratum {
                    bucket: st.bucket,
                    candidate: st.candidate.total,
                    baseline: st.baseline.total,
                };
                dispersion.add(&st.candidate, &st.baseline);
                if let Some(inc) = model.increment(&counts) {
                    evidence = true;
                    for e in epochs.iter_mut() {
                        if let Test::Ratio(t) = &mut e.test {
                            t.add(&inc);
                        }
                    }
                }
            }),
            Some(Comparison::Categories { model, strata }) => strata.close_due(now, |st| {
                let inc = model.increment(&st);
                evidence = true;
                for e in epochs.iter_mut() {
                    if let Test::Drift(t) = &mut e.test {
                        t.add_stratum(inc);
                    }
                }
            }),
            None => {}
        }
        evidence
    }

    /// Latency values go into the sketches and become exceedance samples.
    fn latency_exceedance(&mut self, ts: Time, candidate: bool, s: Sample) -> Sample {
        let Some(l) = &mut self.latency else {
            return s;
        };
        if let Some(bucket) = l.window.bucket(ts, candidate) {
            bucket.add(s.x);
        }
        if candidate {
            l.candidate.add(s.x);
        } else {
            l.baseline.add(s.x);
            if l.ratio.is_some() {
                // Baseline values set the threshold; they count towards
                // `min_samples` but are never exceedances.
                return Sample {
                    n: 1.0,
                    x: 0.0,
                    ..s
                };
            }
        }
        let over = if s.x > l.threshold { 1.0 } else { 0.0 };
        Sample {
            n: 1.0,
            x: over,
            ..s
        }
    }

    fn count_key(&mut self, ts: Time, candidate: bool, s: Sample) {
        if !matches!(self.template, Test::Drift(_) | Test::Fairness(_)) {
            return;
        }
        let (x, n) = (s.x, s.n);
        if let Some(b) = self.keyed_window.bucket(ts, candidate) {
            b.add(s.key, n, x);
        }
        let all = if candidate {
            &mut self.keyed_candidate
        } else {
            &mut self.keyed_baseline
        };
        all.add(s.key, n, x);
    }

    /// The release was promoted: relative criteria now watch for a change
    /// from the candidate's level so far, with a mean time between false
    /// alarms of `false_alarm_every`.
    pub fn promote(&mut self, now: Time, false_alarm_every: Dur) {
        let elapsed = (now - self.started).0.max(1000) as f64 / 1000.0;
        let per_second = (self.candidate.n + self.baseline.n) / elapsed;
        let arl = (false_alarm_every.0 as f64 / 1000.0 * per_second).max(1.0);
        let c = self.candidate;
        let after = match (&self.template, self.spec.bound) {
            (Test::Ratio(_), Bound::MaxRatio(r)) => {
                let level = promoted_level(c, self.baseline, self.direction);
                let shift = r.max(1.25);
                let ratio = match self.direction {
                    Direction::HigherIsWorse => shift,
                    Direction::LowerIsWorse => 1.0 / shift,
                };
                Some(AfterPromotion {
                    level,
                    cusum: Cusum::bernoulli(level, ratio, arl),
                })
            }
            (Test::ScoreRelative { .. }, bound) if c.n >= 2.0 => {
                let (min, max) = self.score_range.unwrap_or((0.0, 1.0));
                let level = c.sum / c.n;
                let variance = (self.candidate_squares / c.n - level * level).max(1e-6);
                // A zero tolerance still needs a shift to look for: 1% of the range.
                let d = bound.value().max((max - min) / 100.0);
                let delta = match bound {
                    Bound::MaxIncrease(_) => d,
                    _ => -d,
                };
                Some(AfterPromotion {
                    level,
                    cusum: Cusum::normal(level, delta, variance, arl),
                })
            }
            _ => None,
        };
        if after.is_some() {
            self.after_promotion = after;
            self.breaching_since = None;
        }
    }

    /// Starts a new epoch every `window`, keeping the first and the latest.
    fn restart_if_due(&mut self, now: Time) {
        if now < self.next_restart {
            return;
        }
        let every = restart_every(self.spec.window);
        // After a gap, the epochs that would have started in it count as
        // spent: their budget is not reused.
        let missed = (now - self.next_restart).0 / every.0;
        self.restarts += 1 + missed as u32;
        self.next_restart = self.next_restart + Dur(every.0 * (missed + 1));
        self.epochs.push(Epoch {
            start: now,
            alpha: epoch_alpha(self.test_alpha, self.restarts),
            test: self.template.clone(),
        });
        if self.epochs.len() > KEPT_EPOCHS {
            self.epochs.remove(1);
        }
    }

    /// Re-evaluates at `now`; returns a transition when the criterion
    /// becomes breached or cleared.
    pub fn evaluate(&mut self, now: Time) -> Option<Transition> {
        self.restart_if_due(now);
        self.close_strata(now);
        self.update_latency_threshold();
        let breaching = self.breaching_now(now);
        if breaching != Breaching::No {
            let since = *self.breaching_since.get_or_insert(now);
            self.clear_since = None;
            if !self.breached && now - since >= self.spec.sustain {
                self.breached = true;
                return Some(match breaching {
                    Breaching::NoData => Transition::NoData,
                    _ => Transition::Breached,
                });
            }
        } else {
            self.breaching_since = None;
            if self.breached {
                let since = *self.clear_since.get_or_insert(now);
                if now - since >= self.spec.clear_for {
                    self.breached = false;
                    self.clear_since = None;
                    return Some(Transition::Cleared);
                }
            }
        }
        None
    }

    /// For relative latency: the exceedance threshold is `r` times an upper
    /// confidence bound of the baseline's quantile, which holds at every
    /// time with probability ≥ 1 − α/2. The threshold only changes here,
    /// between events, so each candidate value is judged against a
    /// threshold fixed before it arrived, as the test requires.
    fn update_latency_threshold(&mut self) {
        let alpha = self.alpha / 2.0;
        let Some(l) = &mut self.latency else {
            return;
        };
        let Some(r) = l.ratio else {
            return;
        };
        if self.after_promotion.is_some() {
            return;
        }
        let n = l.baseline.count() as f64;
        let level = upper_level(n, l.quantile, alpha);
        l.threshold = if n == 0.0 || level >= 1.0 {
            f64::INFINITY
        } else {
            l.baseline
                .quantile(level)
                .map_or(f64::INFINITY, |v| r * v * (1.0 + 2.0 * Sketch::ACCURACY))
        };
    }

    /// Whether it was breaching at its last evaluation (its `for` timer runs).
    pub fn breaching(&self) -> bool {
        self.breaching_since.is_some()
    }

    /// Whether it is breached but was not breaching at its last evaluation
    /// (its `clear_for` timer runs).
    pub fn clearing(&self) -> bool {
        self.breached && self.clear_since.is_some()
    }

    /// The bound as a number in the units of [`Evidence::estimate`] and
    /// [`Evidence::window_estimate`], so that a chart can draw it against
    /// them: the tolerated ratio for rate ratios (`1/max_ratio` when lower is
    /// worse, as the test reads it), `−d` for a score's `max_decrease` (the
    /// estimate is candidate − baseline), the policy's number otherwise.
    /// After promotion the estimate is against the level at promotion and
    /// the same number applies: it is what the window check compares with
    /// before promotion, and the bound the policy states.
    pub fn limit(&self) -> Option<f64> {
        let limit = match (&self.template, self.spec.bound) {
            _ if self.latency.is_some() => self.bound_value(),
            (Test::Ratio(_), _) => self.tolerated_ratio(),
            (_, Bound::MaxDecrease(d)) => -d,
            (_, bound) => bound.value(),
        };
        limit.is_finite().then_some(limit)
    }

    /// Whether the criterion is breaching (or has breached) and must be
    /// looked at on every event, not only on flags and ticks.
    pub fn is_active(&self) -> bool {
        self.breached || self.breaching_since.is_some()
    }

    fn breaching_now(&mut self, now: Time) -> Breaching {
        let verdict = |evidence: bool| {
            if evidence {
                Breaching::Evidence
            } else {
                Breaching::No
            }
        };
        // A CUSUM forgets by itself (it falls back to zero once the signal
        // is back at its level), so it needs no window to clear; waiting
        // for the window would only delay it.
        if let Some(after) = &self.after_promotion {
            return verdict(self.has_min_samples() && after.cusum.alarmed());
        }
        // Fairness intervals are bisections, and in a healthy release the
        // segments' spread rarely passes the bound: read the window first.
        // Every other test is cheap and the window (a merge of its buckets)
        // is not: without evidence nothing can breach, so the window is not
        // read, and `hold` keeps its answer from when it last was.
        if matches!(self.template, Test::Fairness(_)) {
            let Some(recent) = self.read_window(now) else {
                return Breaching::NoData;
            };
            return verdict(recent && self.has_min_samples() && self.significant(now));
        }
        let evidence = self.has_min_samples() && self.significant(now);
        if !evidence && self.spec.on_no_data != OnNoData::Breach {
            return Breaching::No;
        }
        let Some(recent) = self.read_window(now) else {
            return Breaching::NoData;
        };
        verdict(recent && evidence)
    }

    /// Whether the window is still beyond the bound; with no data in it,
    /// what `on_no_data` says (`None`: breach).
    fn read_window(&mut self, now: Time) -> Option<bool> {
        let recent = match self.window_beyond_bound(now) {
            Some(beyond) => beyond,
            None => match self.spec.on_no_data {
                OnNoData::Hold => self.recent,
                OnNoData::Inconclusive => false,
                OnNoData::Breach => return None,
            },
        };
        self.recent = recent;
        Some(recent)
    }

    fn has_min_samples(&self) -> bool {
        let min = self.spec.min_samples as f64;
        match &self.template {
            Test::Fairness(_) => {
                let big = |t: &&Tally| t.n >= min;
                self.keyed_candidate.0.iter().filter(big).count() >= 2
            }
            _ => {
                let compares = self.is_relative() && self.after_promotion.is_none();
                self.candidate.n >= min && (!compares || self.baseline.n >= min)
            }
        }
    }

    fn is_relative(&self) -> bool {
        matches!(
            self.template,
            Test::Ratio(_) | Test::ScoreRelative { .. } | Test::Drift(DriftTest::VsBaseline { .. })
        ) || self.latency.as_ref().is_some_and(|l| l.ratio.is_some())
    }

    /// The epochs' e-values combined: `Σ_k (α_k/α)·E_k`, for rates
    /// discounted by the design effect. The weights sum to
    /// at most 1 (epochs not yet started or dropped count 0, which only
    /// lowers the sum), so the sum is itself an e-process and reaching `1/α`
    /// is a level-α test. It is never below any epoch's `(α_k/α)·E_k`, so
    /// it rejects whenever "any epoch over its own threshold" would, and
    /// earlier when several epochs each hold part of the evidence.
    fn combined_e_value(&self) -> f64 {
        let logs: Vec<f64> = self
            .epochs
            .iter()
            .map(|e| (e.alpha / self.alpha).ln() + e.test.log_e_value().unwrap_or(0.0))
            .collect();
        // Summed in log space; shown capped, so an overwhelming e-value reads
        // as a very large number rather than infinity.
        let log_sum = log_mean_exp(&logs) + (logs.len() as f64).ln();
        let log_sum = if log_sum > 0.0 {
            log_sum / self.design_effect()
        } else {
            log_sum
        };
        log_sum.exp().min(f64::MAX)
    }

    /// For rates against the baseline, by how much persistent users make the
    /// evidence vary beyond what independent outputs would; 1 otherwise.
    /// Evidence in nats is divided by it.
    fn design_effect(&self) -> f64 {
        match &self.comparison {
            Some(Comparison::Rates { dispersion, .. }) => dispersion.factor(),
            _ => 1.0,
        }
    }

    fn threshold_exact(&self) -> f64 {
        1.0 / self.alpha
    }

    /// `1/α`, rounded to six decimals so that 3 criteria at 95% read 60,
    /// not 59.99999999999999.
    fn threshold(&self) -> f64 {
        (1e6 / self.alpha).round() / 1e6
    }

    /// Whether one of the epochs' anytime-valid tests rejects "within the
    /// bound" (or, after promotion, the CUSUM has alarmed).
    fn significant(&self, now: Time) -> bool {
        if let Some(after) = &self.after_promotion {
            return after.cusum.alarmed();
        }
        // Fairness intervals are found by bisection, and disparities build
        // up over hours: every five seconds is enough.
        let second = now.0.div_euclid(5000);
        let costly = matches!(self.template, Test::Fairness(_));
        let (at, cached) = self.significance_cache.get();
        if costly && at == second {
            return cached;
        }
        let significant = if self.template.log_e_value().is_some() {
            self.combined_e_value() >= self.threshold_exact()
        } else {
            self.epochs
                .iter()
                .any(|e| e.test.rejects(e.alpha, self.direction, self.spec.bound))
        };
        self.significance_cache.set((second, significant));
        significant
    }

    /// The window's point estimate compared with the bound; `None` when the
    /// window has no data to say anything.
    fn window_beyond_bound(&self, now: Time) -> Option<bool> {
        let estimate = self.window_estimate(now)?;
        let worse = |a: f64, b: f64| match self.direction {
            Direction::HigherIsWorse => a > b,
            Direction::LowerIsWorse => a < b,
        };
        Some(match (&self.template, self.spec.bound) {
            _ if self.latency.is_some() => estimate > self.bound_value(),
            (Test::Bound(t), _) => worse(estimate, t.bound()),
            (Test::Ratio(_), _) => worse(estimate, self.tolerated_ratio()),
            (Test::ScoreAbsolute { .. }, Bound::Absolute(bound)) => worse(estimate, bound),
            (_, Bound::MaxIncrease(d)) => estimate > d,
            (_, Bound::MaxDecrease(d)) => -estimate > d,
            (_, b) => estimate > b.value(),
        })
    }

    /// The rate ratio a comparison tolerates (`1/max_ratio` when lower is worse).
    fn tolerated_ratio(&self) -> f64 {
        match &self.comparison {
            Some(Comparison::Rates { model, .. }) => model.tolerated(),
            _ => self.bound_value(),
        }
    }

    fn bound_value(&self) -> f64 {
        self.spec.bound.value()
    }

    /// The window's statistic in the bound's own terms, over the part of
    /// the window since the epoch that holds most of the evidence started:
    /// a regression that began after the window's start is judged on its
    /// own data, not diluted by the healthy minutes before it (it still
    /// clears once the window slides past it). With no data there, the
    /// whole window. Sketch and keyed windows cost a merge of every bucket,
    /// so their figure is computed at most once per bucket width (a
    /// sixtieth of the window, at least a second): within a bucket only its
    /// newest values change.
    fn window_estimate(&self, now: Time) -> Option<f64> {
        let costly =
            self.latency.is_some() || matches!(self.template, Test::Drift(_) | Test::Fairness(_));
        let width = (self.spec.window.0 / 60).max(1000);
        let slot = now.0.div_euclid(width);
        let since = self.evidence_start();
        let (at, cached_since, cached) = self.window_cache.get();
        if costly && at == slot && cached_since == since.0 {
            return cached;
        }
        let estimate = self
            .compute_window_estimate(now, since)
            .or_else(|| self.compute_window_estimate(now, Time(i64::MIN)));
        self.window_cache.set((slot, since.0, estimate));
        estimate
    }

    /// When the epoch with the largest share of the combined e-value
    /// started; the beginning of time for tests without e-values.
    fn evidence_start(&self) -> Time {
        if self.after_promotion.is_some() || self.template.log_e_value().is_none() {
            return Time(i64::MIN);
        }
        self.best_epoch().start
    }

    fn compute_window_estimate(&self, now: Time, since: Time) -> Option<f64> {
        match (&self.template, &self.latency) {
            (_, Some(l)) => {
                let (c, b) = l.window.totals_since(now, since);
                latency_estimate(l, &c, &b)
            }
            (Test::Drift(_) | Test::Fairness(_), _) => {
                let (c, b) = self.keyed_window.totals_since(now, since);
                self.keyed_estimate(&c, &b)
            }
            _ => {
                let (c, b) = self.window.totals_since(now, since);
                self.point_estimate(c, b)
            }
        }
    }

    /// The whole test's statistic in the bound's own terms.
    fn overall_estimate(&self) -> Option<f64> {
        match (&self.template, &self.latency) {
            (_, Some(l)) => latency_estimate(l, &l.candidate, &l.baseline),
            (Test::Drift(_) | Test::Fairness(_), _) => {
                self.keyed_estimate(&self.keyed_candidate, &self.keyed_baseline)
            }
            _ => self.point_estimate(self.candidate, self.baseline),
        }
    }

    /// PSI or JS distance (drift), or the segments' ratio or difference
    /// (fairness).
    fn keyed_estimate(&self, c: &Keyed, b: &Keyed) -> Option<f64> {
        match self.spec.bound {
            Bound::MaxPsi(_) | Bound::MaxJs(_) => {
                let (p, q) = self.drift_counts(c, b)?;
                Some(match self.spec.bound {
                    Bound::MaxPsi(_) => drift::psi(&p, &q),
                    _ => drift::js_distance(&p, &q),
                })
            }
            bound => {
                let means = segment_means(c, self.spec.min_samples as f64 / 10.0);
                let (ratio, difference) = fairness::spread(&means)?;
                Some(match bound {
                    Bound::MaxDifference(_) => difference,
                    _ => ratio,
                })
            }
        }
    }

    /// Candidate counts and reference counts (the baseline's, or the stored
    /// profile scaled to the candidate's total), by category.
    fn drift_counts(&self, c: &Keyed, b: &Keyed) -> Option<(Vec<f64>, Vec<f64>)> {
        let p: Vec<f64> = c.0.iter().map(|t| t.n).collect();
        let total: f64 = p.iter().sum();
        let q: Vec<f64> = match &self.spec.reference {
            Some(profile) => (0..self.keys.len().max(p.len()))
                .map(|i| total * profile.get(i).map_or(UNLISTED_SHARE, |(_, s)| *s))
                .collect(),
            None => b.0.iter().map(|t| t.n).collect(),
        };
        (total > 0.0 && q.iter().sum::<f64>() > 0.0).then_some((p, q))
    }

    /// The statistic in the bound's own terms: a rate, a rate ratio, a mean,
    /// or a mean difference (candidate − baseline); after promotion, the
    /// candidate against its level at promotion.
    fn point_estimate(&self, c: Tally, b: Tally) -> Option<f64> {
        let rate = |t: Tally| (t.n > 0.0).then(|| t.sum / t.n);
        if let Some(after) = &self.after_promotion {
            let r = rate(c)?;
            return Some(match self.template {
                Test::Ratio(_) => r / after.level,
                _ => r - after.level,
            });
        }
        match &self.template {
            Test::Ratio(_) => {
                let (cr, br) = (rate(c)?, rate(b)?);
                if c.sum == 0.0 && b.sum == 0.0 {
                    None
                } else if br == 0.0 {
                    Some(f64::INFINITY)
                } else {
                    Some(cr / br)
                }
            }
            Test::ScoreRelative { .. } => Some(rate(c)? - rate(b)?),
            _ => rate(c),
        }
    }

    /// The state of the test, for explanations.
    pub fn evidence(&self, now: Time) -> Evidence {
        let (wc, wb) = self.window.totals(now);
        let relative = self.is_relative() && self.after_promotion.is_none();
        let (statistic, threshold, interval) = self.statistic_and_interval();
        Evidence {
            criterion: self.spec.name.clone(),
            signal: self.signal.clone(),
            test: self.method(),
            bound: self.bound_text(),
            statistic,
            threshold,
            confidence: self.spec.confidence,
            estimate: self.overall_estimate(),
            interval,
            window_estimate: self.window_estimate(now),
            window: self.spec.window,
            candidate: samples(self.candidate),
            baseline: relative.then(|| samples(self.baseline)),
            window_candidate: samples(wc),
            window_baseline: relative.then(|| samples(wb)),
            breached_for: self.breaching_since.map_or(Dur::ZERO, |s| now - s),
            breakdown: self.breakdown(now),
        }
    }

    /// The categories (drift) or segments (fairness) behind the figure.
    fn breakdown(&self, now: Time) -> Vec<Part> {
        let (c, b) = self.keyed_window.totals(now);
        let name = |i: usize| self.keys.get(i).cloned().unwrap_or_default();
        match &self.template {
            Test::Drift(_) => {
                let Some((p, q)) = self.drift_counts(&c, &b) else {
                    return Vec::new();
                };
                let (pt, qt) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
                let terms = drift::contributions(&p, &q);
                let mut parts: Vec<Part> = terms
                    .iter()
                    .enumerate()
                    .map(|(i, term)| Part {
                        name: name(i),
                        value: p.get(i).map_or(0.0, |x| x / pt),
                        reference: Some(q.get(i).map_or(0.0, |x| x / qt)),
                        contribution: Some(*term),
                        interval: None,
                        n: p.get(i).copied().unwrap_or(0.0),
                    })
                    .collect();
                parts.sort_by(|a, b| {
                    b.contribution
                        .partial_cmp(&a.contribution)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                parts.truncate(5);
                parts
            }
            Test::Fairness(_) => {
                let alpha = self.best_epoch().alpha;
                let intervals = match &self.best_epoch().test {
                    Test::Fairness(d) => d.intervals(alpha),
                    _ => Vec::new(),
                };
                let mut parts: Vec<Part> =
                    c.0.iter()
                        .enumerate()
                        .filter(|(_, t)| t.n > 0.0)
                        .map(|(i, t)| Part {
                            name: name(i),
                            value: t.sum / t.n,
                            reference: None,
                            contribution: None,
                            interval: intervals.get(i).copied().flatten(),
                            n: t.n,
                        })
                        .collect();
                parts.sort_by(|a, b| b.value.total_cmp(&a.value));
                parts
            }
            _ => Vec::new(),
        }
    }

    /// The epoch whose test is closest to (or furthest past) rejecting.
    fn best_epoch(&self) -> &Epoch {
        let normalized =
            |e: &Epoch| e.test.log_e_value().unwrap_or(0.0) + (e.alpha / self.alpha).ln();
        self.epochs
            .iter()
            .reduce(|best, e| {
                if normalized(e) > normalized(best) {
                    e
                } else {
                    best
                }
            })
            .unwrap_or(&self.epochs[0])
    }

    /// The statistic shown against the threshold: an e-value scaled to the
    /// criterion's whole budget (so the threshold reads `1/α` whichever epoch
    /// decided), for scores the edge of the confidence interval, after
    /// promotion the CUSUM statistic.
    fn statistic_and_interval(&self) -> (f64, f64, Option<(f64, f64)>) {
        if let Some(after) = &self.after_promotion {
            return (after.cusum.statistic(), after.cusum.threshold(), None);
        }
        let epoch = self.best_epoch();
        match &epoch.test {
            Test::Bound(t) => {
                let cb = confidence_bound(t.flagged(), t.total(), epoch.alpha, self.direction);
                let interval = match self.direction {
                    Direction::HigherIsWorse => (cb, 1.0),
                    Direction::LowerIsWorse => (0.0, cb),
                };
                let interval = (t.total() > 0.0 && self.latency.is_none()).then_some(interval);
                (self.combined_e_value(), self.threshold(), interval)
            }
            Test::Ratio(t) => {
                let cb = t.confidence_bound(epoch.alpha, self.direction);
                let interval = match self.direction {
                    Direction::HigherIsWorse => (cb, f64::INFINITY),
                    Direction::LowerIsWorse => (0.0, cb),
                };
                let any_flags = self.candidate.sum + self.baseline.sum > 0.0;
                (
                    self.combined_e_value(),
                    self.threshold(),
                    any_flags.then_some(interval),
                )
            }
            Test::Drift(_) => (self.combined_e_value(), self.threshold(), None),
            Test::Fairness(d) => {
                let separation = d
                    .separation(epoch.alpha, gap_of(self.spec.bound))
                    .unwrap_or(f64::NAN);
                (separation, self.bound_value(), None)
            }
            Test::ScoreAbsolute { candidate } => {
                let interval = candidate.interval(epoch.alpha);
                let edge = interval.map_or(f64::NAN, |(lo, hi)| match self.direction {
                    Direction::HigherIsWorse => lo,
                    Direction::LowerIsWorse => hi,
                });
                (edge, self.bound_value(), interval)
            }
            Test::ScoreRelative { .. } => {
                let interval = epoch.test.difference_interval(epoch.alpha);
                (self.combined_e_value(), self.threshold(), interval)
            }
        }
    }

    fn method(&self) -> &'static str {
        if self.after_promotion.is_some() {
            return "CUSUM against the level at promotion (mean time between false alarms from the policy)";
        }
        match &self.template {
            Test::Bound(_) if self.latency.as_ref().is_some_and(|l| l.ratio.is_some()) => {
                "exceedances of r × the baseline quantile's upper confidence bound vs 1 − quantile, binomial mixture likelihood ratio"
            }
            Test::Bound(_) if self.latency.is_some() => {
                "exceedance share vs 1 − quantile, binomial mixture likelihood ratio"
            }
            Test::Bound(_) => "binomial mixture likelihood ratio (anytime-valid)",
            Test::Ratio(_) => {
                "flags split per stratum of realised counts, noncentral hypergeometric mixture likelihood ratio (anytime-valid)"
            }
            Test::ScoreAbsolute { .. } => "betting confidence sequence (empirical Bernstein)",
            Test::ScoreRelative { .. } => {
                "one-sided paired betting e-process (aGRAPA) on candidate − baseline"
            }
            Test::Drift(DriftTest::VsBaseline { .. }) => {
                "per-stratum draws of the candidate's categories, betting against the baseline's (anytime-valid)"
            }
            Test::Drift(DriftTest::VsProfile { .. }) => {
                "Dirichlet-multinomial mixture likelihood ratio against the reference profile (anytime-valid)"
            }
            Test::Fairness(_) => {
                "per-segment anytime-valid intervals, α/(k(k+1)) for the k-th segment"
            }
        }
    }

    fn bound_text(&self) -> String {
        let worse = match self.direction {
            Direction::HigherIsWorse => "≤",
            Direction::LowerIsWorse => "≥",
        };
        let across = self.spec.across.as_deref().unwrap_or("segment");
        match (self.spec.bound, &self.latency) {
            (Bound::Absolute(limit), Some(l)) => format!(
                "p{} ≤ {limit} (share above {limit} ≤ {})",
                fmt_quantile(l.quantile),
                round(1.0 - l.quantile)
            ),
            (Bound::MaxRatio(r), Some(l)) => format!(
                "candidate p{q} ≤ {r} × baseline p{q}",
                q = fmt_quantile(l.quantile)
            ),
            (Bound::MaxRatio(r), None) if self.spec.across.is_some() => {
                format!("largest / smallest {} across {across} ≤ {r}", self.signal)
            }
            (Bound::MaxDifference(d), _) => {
                format!("largest − smallest {} across {across} ≤ {d}", self.signal)
            }
            (Bound::Absolute(b), None) => format!("{} {worse} {b}", self.signal),
            (Bound::MaxRatio(r), None) => match self.direction {
                Direction::HigherIsWorse => format!("candidate ≤ {r} × baseline"),
                Direction::LowerIsWorse => format!("candidate ≥ baseline / {r}"),
            },
            (Bound::MaxIncrease(d), _) => format!("candidate − baseline ≤ {d}"),
            (Bound::MaxDecrease(d), _) => format!("baseline − candidate ≤ {d}"),
            (Bound::MaxPsi(b), _) => {
                format!("PSI of {} vs {} ≤ {b}", self.signal, self.reference_name())
            }
            (Bound::MaxJs(b), _) => format!(
                "Jensen–Shannon distance of {} vs {} ≤ {b}",
                self.signal,
                self.reference_name()
            ),
        }
    }

    fn reference_name(&self) -> &'static str {
        if self.spec.reference.is_some() {
            "the reference profile"
        } else {
            "the baseline"
        }
    }
}

/// The quantile (absolute) or quantile ratio (relative) of two sketches.
fn latency_estimate(l: &Latency, c: &Sketch, b: &Sketch) -> Option<f64> {
    let cq = c.quantile(l.quantile)?;
    match l.ratio {
        None => Some(cq),
        Some(_) => {
            let bq = b.quantile(l.quantile)?;
            (bq > 0.0).then(|| cq / bq)
        }
    }
}

/// The rate a relative criterion watches after promotion: the candidate's
/// over the ramp or both versions' together, whichever is worse (after
/// promotion the candidate serves every user, and the baseline's users may
/// fail more often than the candidate's happened to), moved two standard
/// errors further to the bad side so that an estimate that came out lucky
/// does not turn noise into alarms. Half a flag of prior keeps a clean
/// history from meaning "0".
fn promoted_level(candidate: Tally, baseline: Tally, direction: Direction) -> f64 {
    let estimate = |t: Tally| {
        let p = (t.sum + 0.5) / (t.n + 1.0);
        let se = (p * (1.0 - p) / (t.n + 1.0)).sqrt();
        match direction {
            Direction::HigherIsWorse => (p + 2.0 * se).min(1.0),
            Direction::LowerIsWorse => (p - 2.0 * se).max(p / 10.0),
        }
    };
    let mut pooled = candidate;
    pooled.add(baseline.n, baseline.sum);
    let (c, all) = (estimate(candidate), estimate(pooled));
    match direction {
        Direction::HigherIsWorse => c.max(all),
        Direction::LowerIsWorse => c.min(all),
    }
}

/// Which way a score bound against the baseline looks.
fn score_worse(bound: Bound) -> Direction {
    match bound {
        Bound::MaxIncrease(_) => Direction::HigherIsWorse,
        _ => Direction::LowerIsWorse,
    }
}

/// A fairness bound as the gap two segments may not exceed.
fn gap_of(bound: Bound) -> Gap {
    match bound {
        Bound::MaxDifference(d) => Gap::Difference(d),
        b => Gap::Ratio(b.value()),
    }
}

/// Rates or mean scores of the segments with at least `min` samples.
fn segment_means(c: &Keyed, min: f64) -> Vec<f64> {
    c.0.iter()
        .filter(|t| t.n > 0.0 && t.n >= min)
        .map(|t| t.sum / t.n)
        .collect()
}

/// How many epochs are kept: the first, and the latest ones.
const KEPT_EPOCHS: usize = 7;

/// One test of a criterion, started at a restart, with its error budget.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Epoch {
    start: Time,
    alpha: f64,
    test: Test,
}

/// The k-th epoch's budget (k from 1): `α·6/(π²k²)`, which sums to α. The
/// first epoch gets `6/π² ≈ 61%`. Giving it more (70%, 80%, 90%) saves
/// `ln(share/0.61)` nats on a regression present from the start, but every
/// later epoch's budget shrinks with it, and a regression that starts after
/// a few windows is decided by one of those: on a doubling 30 minutes in
/// (60 seeds) the mean delay went from 9.6 minutes (half of α first) to
/// 10.1 (70%) and 11.3 (80%), and with 5-minute windows a regression
/// 20 minutes in was caught a minute later at 70%.
fn epoch_alpha(alpha: f64, k: u32) -> f64 {
    alpha * 6.0 / (std::f64::consts::PI.powi(2) * f64::from(k.max(1)).powi(2))
}

/// Epochs start every window, but not more often than once a minute.
fn restart_every(window: Dur) -> Dur {
    window.max(Dur::from_mins(1))
}

impl Test {
    fn add(&mut self, candidate: bool, s: Sample) {
        match self {
            Test::Bound(t) => {
                if candidate {
                    t.add(s.x, s.n);
                }
            }
            // Fed by strata.
            Test::Ratio(_) => {}
            Test::ScoreAbsolute { candidate: c } => {
                if candidate {
                    c.add(s.x);
                }
            }
            Test::ScoreRelative {
                paired,
                candidate: c,
                baseline: b,
            } => {
                paired.add(candidate, s.x);
                if candidate { c.add(s.x) } else { b.add(s.x) }
            }
            Test::Drift(t) => t.add(s.key, candidate, s.n),
            Test::Fairness(d) => {
                if candidate {
                    d.add(s.key, s.n, s.x);
                }
            }
        }
    }

    /// `ln` of the e-value, for the tests that have one.
    fn log_e_value(&self) -> Option<f64> {
        match self {
            Test::Bound(t) => Some(t.log_e_value()),
            Test::Ratio(t) => Some(t.log_e_value()),
            Test::Drift(t) => Some(t.log_e_value()),
            Test::ScoreRelative { paired, .. } => Some(paired.log_e_value()),
            _ => None,
        }
    }

    /// Whether this test, at error budget `alpha`, rejects "within `bound`".
    fn rejects(&self, alpha: f64, direction: Direction, bound: Bound) -> bool {
        match (self, bound) {
            (Test::Bound(_) | Test::Ratio(_) | Test::Drift(_) | Test::ScoreRelative { .. }, _) => {
                self.log_e_value().unwrap_or(0.0) >= (1.0 / alpha).ln()
            }
            (Test::Fairness(d), b) => d.significant(alpha, gap_of(b)),
            (Test::ScoreAbsolute { candidate }, Bound::Absolute(b)) => {
                match (candidate.interval(alpha), direction) {
                    (Some((lo, _)), Direction::HigherIsWorse) => lo > b,
                    (Some((_, hi)), Direction::LowerIsWorse) => hi < b,
                    (None, _) => false,
                }
            }
            _ => false,
        }
    }

    /// Interval for candidate − baseline, splitting `alpha` between the two.
    fn difference_interval(&self, alpha: f64) -> Option<(f64, f64)> {
        let Test::ScoreRelative {
            candidate,
            baseline,
            ..
        } = self
        else {
            return None;
        };
        let (clo, chi) = candidate.interval(alpha / 2.0)?;
        let (blo, bhi) = baseline.interval(alpha / 2.0)?;
        Some((clo - bhi, chi - blo))
    }
}

/// The stratified comparison a test against the baseline reads.
fn comparison_of(test: &Test, spec: &Criterion, direction: Direction) -> Option<Comparison> {
    let width = stratum_width(spec.window);
    match test {
        Test::Ratio(_) => Some(Comparison::Rates {
            model: RatioModel::new(spec.bound.value().max(1.0), direction),
            strata: Strata::new(width).closing_early_at(FULL_STRATUM),
            dispersion: Dispersion::default(),
        }),
        Test::Drift(DriftTest::VsBaseline { .. }) => Some(Comparison::Categories {
            model: DriftModel::new(spec.window.0 as f64 / width.0 as f64),
            strata: Strata::new(width),
        }),
        _ => None,
    }
}

/// A rate's stratum closes once each version holds this much of the
/// denominator, before its bucket ends: at hundreds of outputs a second
/// evidence then counts within a fraction of a second, where waiting for
/// the bucket's end cost up to 10 s (3.4× Wald's bound on the largest
/// effects). The design effect reads the same strata, so persistent users
/// are discounted whatever their size.
const FULL_STRATUM: f64 = 20.0;

/// Strata are a sixtieth of the window, between 1 and 10 seconds: short
/// enough that rates and shares barely move within one, long enough that
/// both versions usually appear in it.
fn stratum_width(window: Dur) -> Dur {
    Dur((window.0 / 60).clamp(1_000, 10_000))
}

fn samples(t: Tally) -> Samples {
    Samples { n: t.n, sum: t.sum }
}

fn fmt_quantile(q: f64) -> String {
    round(q * 100.0).to_string()
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
