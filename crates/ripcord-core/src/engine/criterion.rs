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

use std::collections::HashSet;

use super::window::{Tally, Window};
use crate::decision::{Evidence, Samples};
use crate::policy::{Bound, Criterion, Direction, OnNoData, Per, SignalKind};
use crate::stats::bound::{BoundTest, confidence_bound};
use crate::stats::ratio::RatioTest;
use crate::stats::score::MeanSequence;
use crate::time::{Dur, Time};

/// One observation as a criterion counts it: `n` towards the denominator,
/// `x` towards the numerator (flags, or the score value when `n` is 1).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub n: f64,
    pub x: f64,
}

#[derive(Clone, Debug)]
enum Test {
    /// Rate, or latency exceedance, against an absolute bound.
    Bound(BoundTest),
    /// Rate ratio against the baseline.
    Ratio(RatioTest),
    /// Mean score against an absolute bound.
    ScoreAbsolute { candidate: MeanSequence },
    /// Mean score difference against the baseline.
    ScoreRelative {
        candidate: MeanSequence,
        baseline: MeanSequence,
    },
}

/// What changed when a criterion was evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Breached,
    Cleared,
}

#[derive(Clone, Debug)]
pub struct CriterionState {
    pub spec: Criterion,
    pub signal: String,
    pub direction: Direction,
    /// Latency threshold: values above it count as exceedances.
    exceedance_over: Option<f64>,
    /// Whether the ratio test may use the assigned share (outputs or units)
    /// or must use the observed split of its own denominator.
    denominator_follows_share: bool,
    alpha: f64,
    /// A fresh test, cloned at each restart; also tells the kind of test.
    template: Test,
    epochs: Vec<Epoch>,
    restarts: u32,
    next_restart: Time,
    window: Window,
    candidate: Tally,
    baseline: Tally,
    units_seen: HashSet<u64>,
    units_flagged: HashSet<u64>,
    /// The window condition's last value, for `on_no_data: hold`.
    recent: bool,
    breaching_since: Option<Time>,
    clear_since: Option<Time>,
    pub breached: bool,
}

impl CriterionState {
    /// `alpha` is this criterion's share of the error budget.
    pub fn new(
        spec: &Criterion,
        signal: &crate::policy::Signal,
        alpha: f64,
        start: Time,
    ) -> CriterionState {
        let direction = signal.direction;
        let tuned_for = spec.min_samples.max(500) as f64;
        let (test, exceedance_over) = match (&signal.kind, spec.bound) {
            (SignalKind::Latency { .. }, Bound::Absolute(limit)) => {
                let q = spec.quantile.unwrap_or(0.95);
                (
                    Test::Bound(BoundTest::new(1.0 - q, Direction::HigherIsWorse)),
                    Some(limit),
                )
            }
            (SignalKind::Score { min, max, .. }, Bound::Absolute(_)) => (
                Test::ScoreAbsolute {
                    candidate: MeanSequence::new(max - min, tuned_for),
                },
                None,
            ),
            (SignalKind::Score { min, max, .. }, _) => (
                Test::ScoreRelative {
                    candidate: MeanSequence::new(max - min, tuned_for),
                    baseline: MeanSequence::new(max - min, tuned_for),
                },
                None,
            ),
            (_, Bound::MaxRatio(r)) => (Test::Ratio(RatioTest::new(r, direction)), None),
            (_, Bound::Absolute(p0)) => (Test::Bound(BoundTest::new(p0, direction)), None),
            // The loader only lets rates take absolute or max_ratio bounds.
            (_, Bound::MaxIncrease(_) | Bound::MaxDecrease(_)) => {
                (Test::Ratio(RatioTest::new(1.0, direction)), None)
            }
        };
        let denominator_follows_share = spec.per == Per::Unit
            || matches!(&signal.kind, SignalKind::Rate { denominator, .. } if denominator == "outputs");
        CriterionState {
            spec: spec.clone(),
            signal: signal.name.clone(),
            direction,
            exceedance_over,
            denominator_follows_share,
            alpha,
            epochs: vec![Epoch {
                alpha: epoch_alpha(alpha, 1),
                test: test.clone(),
            }],
            template: test,
            restarts: 1,
            next_restart: start + restart_every(spec.window),
            window: Window::new(spec.window),
            candidate: Tally::default(),
            baseline: Tally::default(),
            units_seen: HashSet::new(),
            units_flagged: HashSet::new(),
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
        )
    }

    pub fn is_latency(&self) -> bool {
        self.exceedance_over.is_some()
    }

    /// Turns a raw value into this criterion's sample for latency signals.
    pub fn latency_sample(&self, value: f64) -> Sample {
        let over = self.exceedance_over.unwrap_or(f64::INFINITY);
        Sample {
            n: 1.0,
            x: if value > over { 1.0 } else { 0.0 },
        }
    }

    /// Per-unit counting: a unit counts once in the denominator and once in
    /// the numerator, the first time it is seen and the first time flagged.
    pub fn unit_sample(&mut self, unit: u64, sample: Sample) -> Option<Sample> {
        let n = if self.units_seen.insert(unit) {
            1.0
        } else {
            0.0
        };
        let x = if sample.x > 0.0 && self.units_flagged.insert(unit) {
            1.0
        } else {
            0.0
        };
        (n > 0.0 || x > 0.0).then_some(Sample { n, x })
    }

    /// Counts one sample of one version at the assigned share `share`.
    pub fn observe(&mut self, ts: Time, candidate: bool, share: f64, s: Sample) {
        self.window.add(ts, candidate, s.n, s.x);
        let tally = if candidate {
            &mut self.candidate
        } else {
            &mut self.baseline
        };
        tally.add(s.n, s.x);
        self.restart_if_due(ts);
        let pi = match self.template {
            Test::Ratio(_) if s.x > 0.0 && !self.denominator_follows_share => {
                observed_share(&self.window, ts, share)
            }
            _ => share,
        };
        for epoch in &mut self.epochs {
            epoch.test.add(candidate, pi, s);
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
            alpha: epoch_alpha(self.alpha, self.restarts),
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
        let breaching = self.breaching_now(now);
        if breaching {
            let since = *self.breaching_since.get_or_insert(now);
            self.clear_since = None;
            if !self.breached && now - since >= self.spec.sustain {
                self.breached = true;
                return Some(Transition::Breached);
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

    /// Whether the criterion is breaching (or has breached) and must be
    /// looked at on every event, not only on flags and ticks.
    pub fn is_active(&self) -> bool {
        self.breached || self.breaching_since.is_some()
    }

    fn breaching_now(&mut self, now: Time) -> bool {
        let recent = match self.window_beyond_bound(now) {
            Some(beyond) => beyond,
            None => match self.spec.on_no_data {
                OnNoData::Hold => self.recent,
                OnNoData::Inconclusive => false,
                OnNoData::Breach => return true,
            },
        };
        self.recent = recent;
        recent && self.has_min_samples() && self.significant()
    }

    fn has_min_samples(&self) -> bool {
        let min = self.spec.min_samples as f64;
        self.candidate.n >= min && (!self.is_relative() || self.baseline.n >= min)
    }

    fn is_relative(&self) -> bool {
        matches!(self.template, Test::Ratio(_) | Test::ScoreRelative { .. })
    }

    /// `1/α`, rounded to six decimals so that 3 criteria at 95% read 60,
    /// not 59.99999999999999.
    fn threshold(&self) -> f64 {
        (1e6 / self.alpha).round() / 1e6
    }

    /// Whether one of the epochs' anytime-valid tests rejects "within the bound".
    fn significant(&self) -> bool {
        self.epochs
            .iter()
            .any(|e| e.test.rejects(e.alpha, self.direction, self.spec.bound))
    }

    fn bound_value(&self) -> f64 {
        match self.spec.bound {
            Bound::Absolute(b) | Bound::MaxRatio(b) | Bound::MaxIncrease(b) => b,
            Bound::MaxDecrease(b) => b,
        }
    }

    /// The window's point estimate compared with the bound; `None` when the
    /// window has no data to say anything.
    fn window_beyond_bound(&self, now: Time) -> Option<bool> {
        let (c, b) = self.window.totals(now);
        let estimate = self.point_estimate(c, b)?;
        Some(match (&self.template, self.spec.bound) {
            (Test::Bound(t), _) => match self.direction {
                Direction::HigherIsWorse => estimate > t.bound(),
                Direction::LowerIsWorse => estimate < t.bound(),
            },
            (Test::Ratio(t), _) => match self.direction {
                Direction::HigherIsWorse => estimate > t.tolerated(),
                Direction::LowerIsWorse => estimate < t.tolerated(),
            },
            (Test::ScoreAbsolute { .. }, Bound::Absolute(bound)) => match self.direction {
                Direction::HigherIsWorse => estimate > bound,
                Direction::LowerIsWorse => estimate < bound,
            },
            (_, Bound::MaxIncrease(d)) => estimate > d,
            (_, Bound::MaxDecrease(d)) => -estimate > d,
            _ => false,
        })
    }

    /// The statistic in the bound's own terms: a rate, an exceedance share,
    /// a rate ratio, a mean, or a mean difference (candidate − baseline).
    fn point_estimate(&self, c: Tally, b: Tally) -> Option<f64> {
        let rate = |t: Tally| (t.n > 0.0).then(|| t.sum / t.n);
        match &self.template {
            Test::Bound(_) | Test::ScoreAbsolute { .. } => rate(c),
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
        }
    }

    /// The state of the test, for explanations.
    pub fn evidence(&self, now: Time) -> Evidence {
        let (wc, wb) = self.window.totals(now);
        let relative = self.is_relative();
        let (statistic, threshold, interval) = self.statistic_and_interval();
        Evidence {
            criterion: self.spec.name.clone(),
            signal: self.signal.clone(),
            test: self.method(),
            bound: self.bound_text(),
            statistic,
            threshold,
            confidence: self.spec.confidence,
            estimate: self.point_estimate(self.candidate, self.baseline),
            interval,
            window_estimate: self.point_estimate(wc, wb),
            window: self.spec.window,
            candidate: samples(self.candidate),
            baseline: relative.then(|| samples(self.baseline)),
            window_candidate: samples(wc),
            window_baseline: relative.then(|| samples(wb)),
            breached_for: self.breaching_since.map_or(Dur::ZERO, |s| now - s),
        }
    }

    /// The epoch whose test is closest to (or furthest past) rejecting.
    fn best_epoch(&self) -> &Epoch {
        let normalized = |e: &Epoch| match &e.test {
            Test::Bound(t) => t.log_e_value() + (e.alpha / self.alpha).ln(),
            Test::Ratio(t) => t.log_e_value() + (e.alpha / self.alpha).ln(),
            _ => 0.0,
        };
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
    /// decided), or for scores the edge of the confidence interval.
    fn statistic_and_interval(&self) -> (f64, f64, Option<(f64, f64)>) {
        let epoch = self.best_epoch();
        let scale = epoch.alpha / self.alpha;
        match &epoch.test {
            Test::Bound(t) => {
                let cb = confidence_bound(t.flagged(), t.total(), epoch.alpha, self.direction);
                let interval = match self.direction {
                    Direction::HigherIsWorse => (cb, 1.0),
                    Direction::LowerIsWorse => (0.0, cb),
                };
                (
                    t.log_e_value().exp() * scale,
                    self.threshold(),
                    (t.total() > 0.0).then_some(interval),
                )
            }
            Test::Ratio(t) => {
                let cb = t.confidence_bound(epoch.alpha);
                let interval = match self.direction {
                    Direction::HigherIsWorse => (cb, f64::INFINITY),
                    Direction::LowerIsWorse => (0.0, cb),
                };
                let any_flags = self.candidate.sum + self.baseline.sum > 0.0;
                (
                    t.log_e_value().exp() * scale,
                    self.threshold(),
                    any_flags.then_some(interval),
                )
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
                let edge = interval.map_or(f64::NAN, |(lo, hi)| match self.spec.bound {
                    Bound::MaxDecrease(_) => -hi,
                    _ => lo,
                });
                (edge, self.bound_value(), interval)
            }
        }
    }

    fn method(&self) -> &'static str {
        match &self.template {
            Test::Bound(_) if self.is_latency() => {
                "exceedance share vs 1 − quantile, binomial mixture likelihood ratio"
            }
            Test::Bound(_) => "binomial mixture likelihood ratio (anytime-valid)",
            Test::Ratio(_) => "flagged-event mixture likelihood ratio (anytime-valid)",
            Test::ScoreAbsolute { .. } => "normal-mixture confidence sequence (Hoeffding)",
            Test::ScoreRelative { .. } => {
                "difference of normal-mixture confidence sequences (Hoeffding)"
            }
        }
    }

    fn bound_text(&self) -> String {
        let worse = match self.direction {
            Direction::HigherIsWorse => "≤",
            Direction::LowerIsWorse => "≥",
        };
        match (self.spec.bound, self.exceedance_over) {
            (Bound::Absolute(limit), Some(_)) => format!(
                "p{} ≤ {limit} (share above {limit} ≤ {})",
                fmt_quantile(self.spec.quantile.unwrap_or(0.95)),
                round(1.0 - self.spec.quantile.unwrap_or(0.95))
            ),
            (Bound::Absolute(b), None) => format!("{} {worse} {b}", self.signal),
            (Bound::MaxRatio(r), _) => match self.direction {
                Direction::HigherIsWorse => format!("candidate ≤ {r} × baseline"),
                Direction::LowerIsWorse => format!("candidate ≥ baseline / {r}"),
            },
            (Bound::MaxIncrease(d), _) => format!("candidate − baseline ≤ {d}"),
            (Bound::MaxDecrease(d), _) => format!("baseline − candidate ≤ {d}"),
        }
    }
}

/// How many epochs are kept: the first, and the latest ones.
const KEPT_EPOCHS: usize = 7;

/// One test of a criterion, started at a restart, with its error budget.
#[derive(Clone, Debug)]
struct Epoch {
    alpha: f64,
    test: Test,
}

/// The k-th epoch's budget (k from 1): `α·6/(π²k²)`, which sums to α.
fn epoch_alpha(alpha: f64, k: u32) -> f64 {
    alpha * 6.0 / (std::f64::consts::PI.powi(2) * f64::from(k).powi(2))
}

/// Epochs start every window, but not more often than once a minute.
fn restart_every(window: Dur) -> Dur {
    window.max(Dur::from_mins(1))
}

impl Test {
    fn add(&mut self, candidate: bool, share: f64, s: Sample) {
        match self {
            Test::Bound(t) => {
                if candidate {
                    t.add(s.x, s.n);
                }
            }
            Test::Ratio(t) => {
                if s.x > 0.0 {
                    t.add_flagged(share, candidate, s.x);
                }
            }
            Test::ScoreAbsolute { candidate: c } => {
                if candidate {
                    c.add(s.x);
                }
            }
            Test::ScoreRelative {
                candidate: c,
                baseline: b,
            } => {
                if candidate {
                    c.add(s.x)
                } else {
                    b.add(s.x)
                }
            }
        }
    }

    /// Whether this test, at error budget `alpha`, rejects "within `bound`".
    fn rejects(&self, alpha: f64, direction: Direction, bound: Bound) -> bool {
        match (self, bound) {
            (Test::Bound(t), _) => t.log_e_value() >= (1.0 / alpha).ln(),
            (Test::Ratio(t), _) => t.log_e_value() >= (1.0 / alpha).ln(),
            (Test::ScoreAbsolute { candidate }, Bound::Absolute(b)) => {
                match (candidate.interval(alpha), direction) {
                    (Some((lo, _)), Direction::HigherIsWorse) => lo > b,
                    (Some((_, hi)), Direction::LowerIsWorse) => hi < b,
                    (None, _) => false,
                }
            }
            (Test::ScoreRelative { .. }, Bound::MaxIncrease(d)) => self
                .difference_interval(alpha)
                .is_some_and(|(lo, _)| lo > d),
            (Test::ScoreRelative { .. }, Bound::MaxDecrease(d)) => self
                .difference_interval(alpha)
                .is_some_and(|(_, hi)| -hi > d),
            _ => false,
        }
    }

    /// Interval for candidate − baseline, splitting `alpha` between the two.
    fn difference_interval(&self, alpha: f64) -> Option<(f64, f64)> {
        let Test::ScoreRelative {
            candidate,
            baseline,
        } = self
        else {
            return None;
        };
        let (clo, chi) = candidate.interval(alpha / 2.0)?;
        let (blo, bhi) = baseline.interval(alpha / 2.0)?;
        Some((clo - bhi, chi - blo))
    }
}

/// The candidate's observed share of this criterion's denominator in the
/// window, when both versions have enough of it; else the assigned share.
fn observed_share(window: &Window, now: Time, assigned: f64) -> f64 {
    let (c, b) = window.totals(now);
    if c.n >= 20.0 && b.n >= 20.0 {
        c.n / (c.n + b.n)
    } else {
        assigned
    }
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
