//! Series: each running release's criteria, read from its engine at a
//! fixed cadence of the hub's clock and stored as one point per instant,
//! for the dashboard's charts.
//!
//! A point carries the engine's own figures ([`Reading`]: the evidence
//! decisions explain themselves with, the verdict, the bound as a number),
//! never a second computation. Points are recorded live only — by the
//! tick, and once more when a release settles so that its chart ends at
//! the decision — never by recovery's replay; a point recorded twice at
//! one instant is an upsert of its `(release, at_ms)` key.
//!
//! A release's series is bounded ([`SeriesOptions::max`] points). A
//! release that runs for weeks (or one left running on purpose) would
//! otherwise grow its series without end, so its cadence doubles each
//! time the whole release at the current cadence would no longer fit,
//! and the store drops every other old point when the bound is passed
//! (`Batch::series_max`). Together they keep the chart covering the whole
//! release at one even resolution, rather than dropping its start (which
//! the decisions refer to) or freezing its end (which the dashboard
//! watches). The cadence follows the release's age, not a stored count,
//! so a restart resumes it without reading the series back.

use ripcord_core::engine::{Phase, Reading, Verdict};
use ripcord_core::{Dur, Time};
use ripcord_store::SeriesPoint;
use serde::Serialize;

use super::ReleaseView;

/// The cadence of a new release's points.
pub const SERIES_EVERY: Dur = Dur::from_secs(60);

/// At most this many points per release: a week at one a minute.
pub const SERIES_MAX: i64 = 10_080;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesOptions {
    /// The cadence while the release is young.
    pub every: Dur,
    /// Points per release.
    pub max: i64,
}

impl Default for SeriesOptions {
    fn default() -> Self {
        SeriesOptions {
            every: SERIES_EVERY,
            max: SERIES_MAX,
        }
    }
}

impl SeriesOptions {
    /// The cadence for a release of `age`: `every`, doubled until the
    /// whole release at that cadence fits in `max` points.
    pub fn every_at(&self, age: Dur) -> Dur {
        let mut every = self.every.max(Dur(1));
        while age.0 >= every.0.saturating_mul(self.max.max(1)) && every.0 < i64::MAX / 2 {
            every = Dur(every.0 * 2);
        }
        every
    }
}

/// When a service's next point is due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cadence {
    /// `None` after a restart: the next point comes at the next instant of
    /// the release's grid, as it would have without the restart.
    next_at: Option<Time>,
}

impl Cadence {
    /// A new release: its first point at its first tick, so that its
    /// chart starts where it did.
    pub fn starting(at: Time) -> Cadence {
        Cadence { next_at: Some(at) }
    }

    /// Whether a point is due at `now` for a release started at `start`;
    /// moves the cadence on to the next instant of the release's grid
    /// (multiples of its cadence from its start, so that points do not
    /// drift with the ticks' lateness).
    pub fn due(&mut self, options: &SeriesOptions, start: Time, now: Time) -> bool {
        let age = Dur((now - start).0.max(0));
        let every = options.every_at(age);
        let next = Time(
            start
                .0
                .saturating_add((age.0 / every.0 + 1).saturating_mul(every.0)),
        );
        let due = self.next_at.is_some_and(|at| now >= at);
        if due || self.next_at.is_none() {
            self.next_at = Some(next);
        }
        due
    }
}

/// When the release began: its record's creation.
pub fn started(view: &ReleaseView, fallback: Time) -> Time {
    Time::parse_rfc3339(&view.created_at).unwrap_or(fallback)
}

/// The cadence of release `view`'s points: at `now` while it runs, and
/// when it settled (its record's last update) once it has.
pub fn cadence(options: &SeriesOptions, view: &ReleaseView, now: Time) -> Dur {
    let start = started(view, now);
    let end = match view.state {
        Phase::RolledBack | Phase::Promoted => Time::parse_rfc3339(&view.updated_at).unwrap_or(now),
        _ => now,
    };
    options.every_at(Dur((end - start).0.max(0)))
}

/// The point of release `view` at `at`, from its engine's readings.
pub fn point(view: &ReleaseView, readings: &[Reading], at: Time) -> SeriesPoint {
    let body = Body {
        at: at.to_rfc3339(),
        criteria: readings.iter().map(Figures::of).collect(),
    };
    SeriesPoint {
        release: view.id.clone(),
        service: view.service.clone(),
        at_ms: at.0,
        body: ripcord_core::json::value(&body),
    }
}

/// A point's stored body (and the API's).
#[derive(Serialize)]
struct Body {
    at: String,
    criteria: Vec<Figures>,
}

/// One criterion in a point. Numbers JSON cannot carry (NaN, ±∞: a
/// one-sided interval's open end, a ratio over a zero baseline) are null.
#[derive(Serialize)]
struct Figures {
    criterion: String,
    signal: String,
    verdict: &'static str,
    estimate: Option<f64>,
    interval: Option<[Option<f64>; 2]>,
    window_estimate: Option<f64>,
    candidate_rate: Option<f64>,
    baseline_rate: Option<f64>,
    candidate_n: Option<f64>,
    baseline_n: Option<f64>,
    statistic: Option<f64>,
    threshold: Option<f64>,
    limit: Option<f64>,
    bound: String,
}

impl Figures {
    fn of(r: &Reading) -> Figures {
        let e = &r.evidence;
        let rate = |n: f64, sum: f64| finite(sum / n);
        Figures {
            criterion: e.criterion.clone(),
            signal: e.signal.clone(),
            verdict: Verdict::as_str(r.verdict),
            estimate: e.estimate.and_then(finite),
            interval: e.interval.map(|(lo, hi)| [finite(lo), finite(hi)]),
            window_estimate: e.window_estimate.and_then(finite),
            candidate_rate: rate(e.window_candidate.n, e.window_candidate.sum),
            baseline_rate: e.window_baseline.and_then(|b| rate(b.n, b.sum)),
            candidate_n: finite(e.window_candidate.n),
            baseline_n: e.window_baseline.and_then(|b| finite(b.n)),
            statistic: finite(e.statistic),
            threshold: finite(e.threshold),
            limit: r.limit.and_then(finite),
            bound: e.bound.clone(),
        }
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Dur = Dur::from_mins(60);

    #[test]
    fn the_cadence_doubles_each_time_the_release_would_not_fit() {
        let o = SeriesOptions {
            every: Dur::from_secs(60),
            max: 60,
        };
        assert_eq!(o.every_at(Dur::ZERO), Dur::from_secs(60));
        assert_eq!(o.every_at(Dur(HOUR.0 - 1)), Dur::from_secs(60));
        assert_eq!(o.every_at(HOUR), Dur::from_secs(120));
        assert_eq!(o.every_at(Dur(2 * HOUR.0)), Dur::from_secs(240));
        assert_eq!(o.every_at(Dur(3 * HOUR.0)), Dur::from_secs(240));
        assert_eq!(o.every_at(Dur(i64::MAX)).0, 60_000 << 47);
    }

    #[test]
    fn points_fall_on_the_releases_grid_whenever_the_ticks_come() {
        let o = SeriesOptions::default();
        let start = Time(1_000_000);
        let mut fresh = Cadence::starting(start);
        let at = |s: i64| Time(start.0 + s * 1000);
        let due: Vec<i64> = [0, 1, 59, 61, 119, 125, 179, 180]
            .into_iter()
            .filter(|s| fresh.due(&o, start, at(*s)))
            .collect();
        assert_eq!(due, [0, 61, 125, 180]);
        // After a restart, the next point waits for the grid's next instant.
        let mut restarted = Cadence::default();
        let due: Vec<i64> = [130, 150, 181]
            .into_iter()
            .filter(|s| restarted.due(&o, start, at(*s)))
            .collect();
        assert_eq!(due, [181]);
    }
}
