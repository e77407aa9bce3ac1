//! Threshold review: the what-if generalised from one incident to a
//! service's last releases and to every criterion.
//!
//! Each release's recorded stream is replayed through the real [`Engine`]
//! once per step of a grid of bounds (every criterion's bound scaled by the
//! same factor in one replay). The replayed policy keeps its criteria and
//! drops its triggers: a criterion's first breach is then the moment it
//! would have asked for action, whatever the other criteria did (a trigger
//! that rolled back on another criterion would otherwise end the evidence).
//! Criteria are independent of each other in the engine, so varying them
//! together gives, for each, the same breaches as varying it alone.
//!
//! A release is labelled by how it ended: rolled back is a known
//! regression, promoted is known good. A breach on a known regression is a
//! detection; a breach on a known-good release is a false alarm.

use crate::DecisionKind;
use crate::engine::{Engine, EngineOptions, ShareSource};
use crate::ndjson::Line;
use crate::policy::{Bound, Policy};
use crate::time::{Dur, Time};
use crate::whatif::{Item, Stream, bound_kind, check_bound, with_value};

/// How a reviewed release ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Promoted: a breach on it is a false alarm.
    Good,
    /// Rolled back: a known regression, a breach on it a detection.
    Bad,
    /// Neither (still running, superseded): replayed, not counted.
    Unknown,
}

/// One release to replay.
#[derive(Clone, Debug)]
pub struct Labelled<'a> {
    pub stream: Stream<'a>,
    pub outcome: Outcome,
}

/// Factors applied to each bound (to the excess over 1 for a ratio).
pub const FACTORS: [f64; 6] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0];

/// What to review.
#[derive(Clone, Debug)]
pub struct Input<'q, 'a> {
    pub policy: &'q Policy,
    /// Oldest first; the caller keeps it to the last N.
    pub releases: &'q [Labelled<'a>],
    pub lateness: Dur,
    pub share_source: ShareSource,
    /// Inputs replayed per release at most; the rest are not read (the
    /// release is marked `truncated`).
    pub max_items: usize,
}

/// One release's closest approach to the current bound of a criterion.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approach {
    pub release: String,
    pub outcome: Outcome,
    /// The largest e-value over its rejection threshold seen (1 or more
    /// is a rejection); `None` when the criterion never had data.
    pub peak_evidence: Option<f64>,
    /// The estimate and the bound (in the estimate's units) at that peak.
    pub estimate: Option<f64>,
    pub limit: Option<f64>,
    /// Milliseconds from the release start to the first breach, if any.
    pub breached_after_ms: Option<i64>,
}

/// One alternative bound's outcome over the reviewed releases.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundRow {
    pub bound: f64,
    pub current: bool,
    /// Per reviewed release (in input order): milliseconds from its start
    /// to the criterion's first breach, `None` when it never breached.
    pub breaches: Vec<Option<i64>>,
    /// Breaches on known-good releases.
    pub false_alarms: usize,
    /// Breaches on known regressions.
    pub detections: usize,
    /// Sum of the detection times (ms) of the regressions it detected.
    pub detection_ms_total: i64,
    /// The slowest of those detections (ms).
    pub detection_ms_max: Option<i64>,
}

/// A proposed change of one criterion's bound.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suggestion {
    pub from: f64,
    pub to: f64,
    /// The expected effect in words, with the numbers of both rows.
    pub effect: String,
}

/// The review of one criterion.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CriterionReview {
    pub criterion: String,
    pub bound_kind: String,
    pub current: f64,
    /// Ascending by bound.
    pub rows: Vec<BoundRow>,
    pub approaches: Vec<Approach>,
    pub suggestion: Option<Suggestion>,
}

/// The whole review.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Review {
    /// Release names in input order, with their outcome.
    pub releases: Vec<(String, Outcome)>,
    pub good: usize,
    pub bad: usize,
    /// Releases whose replay stopped at `max_items`.
    pub truncated: Vec<String>,
    pub criteria: Vec<CriterionReview>,
}

/// How often (engine time) the current bound's replay reads the criteria
/// for their closest approach.
const READ_EVERY: Dur = Dur::from_secs(60);

/// The grid of bounds for one criterion: the current value scaled by each
/// of [`FACTORS`], kept to what the loader accepts, ascending, deduplicated.
/// Index `i` of the returned pairs is the factor's index, so one replay can
/// vary every criterion at once.
pub fn grid(bound: Bound) -> Vec<Option<f64>> {
    let b = bound.value();
    FACTORS
        .iter()
        .map(|f| {
            let v = match bound {
                Bound::MaxRatio(r) => 1.0 + (r - 1.0) * f,
                _ => b * f,
            };
            let v = (v * 10_000.0).round() / 10_000.0;
            let v = if *f == 1.0 { b } else { v };
            check_bound(bound, v).ok().map(|()| v)
        })
        .collect()
}

/// Replays every release under every grid step and tabulates.
pub fn review(input: &Input<'_, '_>) -> Review {
    let policy = input.policy;
    let grids: Vec<Vec<Option<f64>>> = policy.criteria.iter().map(|c| grid(c.bound)).collect();
    let options = EngineOptions {
        lateness: input.lateness,
        share_source: input.share_source,
        ..EngineOptions::default()
    };
    let n = policy.criteria.len();
    // breaches[step][criterion][release]
    let mut breaches = vec![vec![Vec::new(); n]; FACTORS.len()];
    let mut approaches: Vec<Vec<Approach>> = vec![Vec::new(); n];
    let mut truncated = Vec::new();
    for (step, factor) in FACTORS.iter().enumerate() {
        let mut variant = policy.clone();
        variant.triggers.clear();
        for (i, c) in variant.criteria.iter_mut().enumerate() {
            if let Some(v) = grids[i][step] {
                c.bound = with_value(c.bound, v);
            }
        }
        let current = *factor == 1.0;
        for r in input.releases {
            let run = replay(&variant, &options, &r.stream, input.max_items, current);
            for (i, b) in run.first_breach.iter().enumerate() {
                breaches[step][i].push(*b);
            }
            if current {
                if run.truncated {
                    truncated.push(r.stream.name.clone());
                }
                for (i, peak) in run.peaks.into_iter().enumerate() {
                    approaches[i].push(Approach {
                        release: r.stream.name.clone(),
                        outcome: r.outcome,
                        peak_evidence: peak.map(|p| p.0),
                        estimate: peak.and_then(|p| p.1),
                        limit: peak.and_then(|p| p.2),
                        breached_after_ms: run.first_breach[i],
                    });
                }
            }
        }
    }
    let outcomes: Vec<Outcome> = input.releases.iter().map(|r| r.outcome).collect();
    let criteria = policy
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut rows: Vec<BoundRow> = grids[i]
                .iter()
                .enumerate()
                .filter_map(|(step, v)| {
                    let b = (*v)?;
                    Some(row(b, FACTORS[step] == 1.0, &breaches[step][i], &outcomes))
                })
                .collect();
            rows.sort_by(|a, b| a.bound.total_cmp(&b.bound));
            rows.dedup_by(|a, b| a.bound == b.bound && !a.current);
            let suggestion = suggest(&c.name, &rows, input.releases.len());
            CriterionReview {
                criterion: c.name.clone(),
                bound_kind: bound_kind(c.bound).into(),
                current: c.bound.value(),
                rows,
                approaches: std::mem::take(&mut approaches[i]),
                suggestion,
            }
        })
        .collect();
    Review {
        releases: input
            .releases
            .iter()
            .map(|r| (r.stream.name.clone(), r.outcome))
            .collect(),
        good: outcomes.iter().filter(|o| **o == Outcome::Good).count(),
        bad: outcomes.iter().filter(|o| **o == Outcome::Bad).count(),
        truncated,
        criteria,
    }
}

fn row(bound: f64, current: bool, breaches: &[Option<i64>], outcomes: &[Outcome]) -> BoundRow {
    let on = |o: Outcome| {
        breaches
            .iter()
            .zip(outcomes)
            .filter(move |(b, x)| b.is_some() && **x == o)
            .filter_map(|(b, _)| *b)
    };
    BoundRow {
        bound,
        current,
        breaches: breaches.to_vec(),
        false_alarms: on(Outcome::Good).count(),
        detections: on(Outcome::Bad).count(),
        detection_ms_total: on(Outcome::Bad).sum(),
        detection_ms_max: on(Outcome::Bad).max(),
    }
}

/// The best row: fewest false alarms, then most detections, then the
/// fastest detection, then the closest to the current bound. A change is
/// proposed only when it is strictly better than the current row on the
/// first three.
fn suggest(criterion: &str, rows: &[BoundRow], releases: usize) -> Option<Suggestion> {
    let current = rows.iter().find(|r| r.current)?;
    let key = |r: &BoundRow| {
        (
            r.false_alarms,
            usize::MAX - r.detections,
            r.detection_ms_total,
        )
    };
    let best = rows.iter().min_by(|a, b| {
        key(a).cmp(&key(b)).then_with(|| {
            (a.bound - current.bound)
                .abs()
                .total_cmp(&(b.bound - current.bound).abs())
        })
    })?;
    if best.current || key(best) >= key(current) {
        return None;
    }
    Some(Suggestion {
        from: current.bound,
        to: best.bound,
        effect: effect(criterion, current, best, releases),
    })
}

fn effect(criterion: &str, now: &BoundRow, then: &BoundRow, releases: usize) -> String {
    let ms = |v: Option<i64>| v.map_or("—".to_string(), |m| Dur(m).to_string());
    let mut s = format!(
        "{criterion}: bound {} → {}. Over the last {releases} releases: false alarms {} → {}; \
         known regressions detected {} → {}",
        now.bound, then.bound, now.false_alarms, then.false_alarms, now.detections, then.detections,
    );
    if then.detections > 0 {
        s.push_str(&format!(
            "; slowest detection {} → {}",
            ms(now.detection_ms_max),
            ms(then.detection_ms_max)
        ));
        if then.detections == now.detections && then.detection_ms_total < now.detection_ms_total {
            let sooner =
                (now.detection_ms_total - then.detection_ms_total) / then.detections as i64;
            s.push_str(&format!(", {} sooner on average", Dur(sooner)));
        }
    }
    s.push('.');
    s
}

/// A criterion's closest approach: the evidence over its threshold, the
/// estimate and the bound then.
type Peak = Option<(f64, Option<f64>, Option<f64>)>;

/// What one replay found, per criterion.
struct Run {
    first_breach: Vec<Option<i64>>,
    /// (peak evidence ratio, estimate, limit) — read only on the current
    /// bound's replay.
    peaks: Vec<Peak>,
    truncated: bool,
}

fn replay(
    policy: &Policy,
    options: &EngineOptions,
    stream: &Stream<'_>,
    max_items: usize,
    read: bool,
) -> Run {
    let n = policy.criteria.len();
    let mut run = Run {
        first_breach: vec![None; n],
        peaks: vec![None; n],
        truncated: stream.items().len() > max_items,
    };
    let Some(start) = stream.start() else {
        return run;
    };
    let mut engine = Engine::new(policy.clone(), options.clone());
    let mut out = Vec::new();
    let mut next_read = Time(i64::MIN);
    for item in stream.items().iter().take(max_items) {
        match item {
            Item::Line(Line::Release(r)) => engine.declare(r, &mut out),
            Item::Line(Line::Event(e)) => _ = engine.observe(e, &mut out),
            Item::Line(Line::Blank) => {}
            Item::Tick(t) => engine.tick(*t, &mut out),
        }
        note_breaches(policy, &out, start, &mut run.first_breach);
        out.clear();
        if read && engine.now() >= next_read {
            read_peaks(&engine, &mut run.peaks);
            next_read = engine.now() + READ_EVERY;
        }
    }
    let now = engine.now();
    engine.tick(now, &mut out);
    note_breaches(policy, &out, start, &mut run.first_breach);
    if read {
        read_peaks(&engine, &mut run.peaks);
    }
    run
}

fn note_breaches(policy: &Policy, out: &[crate::Decision], start: Time, first: &mut [Option<i64>]) {
    for d in out {
        if d.kind != DecisionKind::CriterionBreached {
            continue;
        }
        let i = d
            .criterion
            .as_deref()
            .and_then(|c| policy.criterion_index(c));
        if let Some(slot) = i.and_then(|i| first.get_mut(i)) {
            slot.get_or_insert((d.at - start).0);
        }
    }
}

fn read_peaks(engine: &Engine, peaks: &mut [Peak]) {
    for (slot, r) in peaks.iter_mut().zip(engine.readings()) {
        let e = &r.evidence;
        if e.candidate.n <= 0.0 || e.threshold <= 0.0 || !e.statistic.is_finite() {
            continue;
        }
        let ratio = e.statistic / e.threshold;
        if slot.is_none_or(|(p, _, _)| ratio > p) {
            *slot = Some((ratio, e.estimate, r.limit));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(bound: f64, current: bool, fa: usize, det: usize, total: i64) -> BoundRow {
        BoundRow {
            bound,
            current,
            breaches: Vec::new(),
            false_alarms: fa,
            detections: det,
            detection_ms_total: total,
            detection_ms_max: (det > 0).then_some(total),
        }
    }

    #[test]
    fn the_grid_scales_a_ratio_by_its_excess_and_keeps_the_current_value() {
        assert_eq!(
            grid(Bound::MaxRatio(1.5)),
            [
                Some(1.25),
                Some(1.375),
                Some(1.5),
                Some(1.625),
                Some(1.75),
                Some(2.0)
            ]
        );
        assert_eq!(
            grid(Bound::MaxJs(0.6))[5],
            None,
            "1.2 is past max_js's range"
        );
    }

    #[test]
    fn the_suggestion_is_the_fastest_clean_detecting_bound() {
        let rows = [
            row_of(1.1, false, 2, 1, 60_000),
            row_of(1.25, false, 0, 1, 120_000),
            row_of(1.5, true, 0, 1, 300_000),
            row_of(2.0, false, 0, 0, 0),
        ];
        let s = suggest("c", &rows, 20).expect("a change");
        assert_eq!((s.from, s.to), (1.5, 1.25));
        assert_eq!(
            s.effect,
            "c: bound 1.5 → 1.25. Over the last 20 releases: false alarms 0 → 0; known \
             regressions detected 1 → 1; slowest detection 5m → 2m, 3m sooner on average."
        );
    }

    #[test]
    fn a_false_alarming_bound_is_loosened_and_a_clean_one_kept() {
        let rows = [row_of(1.2, true, 3, 0, 0), row_of(1.4, false, 0, 0, 0)];
        assert_eq!(suggest("c", &rows, 5).map(|s| s.to), Some(1.4));
        let rows = [row_of(1.2, true, 0, 0, 0), row_of(1.4, false, 0, 0, 0)];
        assert_eq!(suggest("c", &rows, 5), None);
    }
}
