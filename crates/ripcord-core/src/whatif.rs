//! What-if: an incident's event stream, and the streams of recent releases
//! that had no incident, replayed through the real [`Engine`] under
//! alternative bounds and `for` durations of the criterion that decided.
//!
//! For each variant it reports how soon the deciding trigger would have
//! fired on the incident (from the release start, and against the real
//! detection) and on how many of the other streams it would have fired
//! (false alarms). It is a starting point for the next policy version, not
//! a verdict: the other streams are only as representative as the last N
//! days were.
//!
//! Recorded files replay open loop ([`ShareSource::Recorded`]), as in
//! `ripcord replay`: the recorded traffic is what it was, whatever a variant
//! would have done. A server's journal holds no release lines for its ramps,
//! so its streams replay closed loop ([`ShareSource::Engine`]) from the
//! release start, with the journal's ticks, as recovery replays them; the
//! ramps are time-based, so up to a variant's firing they match the live
//! ones.

use crate::DecisionKind;
use crate::engine::{Engine, EngineOptions, ShareSource};
use crate::ndjson::{Line, parse_line};
use crate::policy::{Bound, Condition, Policy};
use crate::time::{Dur, Time};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WhatIfError {
    #[error("stream {stream}, line {line}: {message}")]
    Line {
        stream: String,
        line: usize,
        message: String,
    },
    #[error("criterion {0:?} is not in the policy")]
    UnknownCriterion(String),
    #[error("trigger {0:?} is not in the policy")]
    UnknownTrigger(String),
    #[error("trigger {trigger:?} does not depend on criterion {criterion:?}")]
    Unrelated { trigger: String, criterion: String },
    #[error("bound {value}: {why}")]
    BadBound { value: f64, why: &'static str },
}

/// One input of a recorded stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Item<'a> {
    /// An event, a release declaration or a blank line.
    Line(Line<'a>),
    /// A clock tick (a server journal's `tick` entry).
    Tick(Time),
}

/// One release's recorded stream, parsed once and replayed per variant.
#[derive(Clone, Debug)]
pub struct Stream<'a> {
    pub name: String,
    items: Vec<Item<'a>>,
}

impl<'a> Stream<'a> {
    /// A stream of inputs already parsed (e.g. from a server's journal:
    /// the release declared at its start, then its events and ticks).
    pub fn new(name: &str, items: Vec<Item<'a>>) -> Stream<'a> {
        Stream {
            name: name.into(),
            items,
        }
    }

    /// Parses NDJSON lines (events and release declarations); an invalid
    /// line is an error naming the stream and the 1-based line.
    pub fn parse(name: &str, lines: &'a [String]) -> Result<Stream<'a>, WhatIfError> {
        let parsed = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                parse_line(l.as_bytes())
                    .map(Item::Line)
                    .map_err(|e| WhatIfError::Line {
                        stream: name.into(),
                        line: i + 1,
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stream::new(name, parsed))
    }

    /// The inputs, in order.
    pub fn items(&self) -> &[Item<'a>] {
        &self.items
    }

    /// When the release started: its first declaration, else its first event.
    pub fn start(&self) -> Option<Time> {
        self.items.iter().find_map(|l| match l {
            Item::Line(Line::Release(r)) => Some(r.ts),
            Item::Line(Line::Event(e)) => Some(e.ts),
            Item::Line(Line::Blank) | Item::Tick(_) => None,
        })
    }
}

/// The question: which criterion and trigger, which alternatives, which
/// streams.
#[derive(Clone, Debug)]
pub struct Question<'q, 'a> {
    pub policy: &'q Policy,
    /// The criterion whose bound and `for` vary.
    pub criterion: &'q str,
    /// The trigger whose firing counts as detection.
    pub trigger: &'q str,
    /// Alternative bound values (the bound keeps its kind); the current
    /// value is added if missing.
    pub bounds: Vec<f64>,
    /// Alternative `for` durations; the current one is added if missing.
    pub sustains: Vec<Dur>,
    pub incident: &'q Stream<'a>,
    /// When the trigger really fired; `None` takes the current policy's
    /// replayed detection.
    pub detected_at: Option<Time>,
    /// Recent releases without a real incident.
    pub others: &'q [Stream<'a>],
    /// As `ripcord replay --lateness` (or the server's option).
    pub lateness: Dur,
    /// `Recorded` for recorded files with release lines, `Engine` for a
    /// server's journal.
    pub share_source: ShareSource,
}

/// One variant's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub bound: f64,
    pub sustain: Dur,
    /// The policy as it is.
    pub current: bool,
    /// Time from the release start to the trigger firing on the incident
    /// stream; `None` when it never fires.
    pub detection: Option<Dur>,
    /// Milliseconds after (positive) or before (negative) the real
    /// detection.
    pub vs_actual_ms: Option<i64>,
    /// Other streams on which the trigger fires.
    pub false_alarms: usize,
}

/// The what-if table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub criterion: String,
    pub trigger: String,
    /// The bound's kind as the policy writes it (`max_ratio`, `absolute`, …).
    pub bound_kind: &'static str,
    /// How many other streams were replayed.
    pub others: usize,
    /// Bounds ascending, then `for` ascending.
    pub rows: Vec<Row>,
}

/// Replays every variant and tabulates the outcomes.
pub fn what_if(q: &Question<'_, '_>) -> Result<Table, WhatIfError> {
    let index = q
        .policy
        .criterion_index(q.criterion)
        .ok_or_else(|| WhatIfError::UnknownCriterion(q.criterion.into()))?;
    let trigger = q
        .policy
        .triggers
        .iter()
        .find(|t| t.name == q.trigger)
        .ok_or_else(|| WhatIfError::UnknownTrigger(q.trigger.into()))?;
    if !uses(&trigger.when, index) {
        return Err(WhatIfError::Unrelated {
            trigger: q.trigger.into(),
            criterion: q.criterion.into(),
        });
    }
    let current = &q.policy.criteria[index];
    let bounds = with_current(&q.bounds, current.bound.value(), |a, b| a.total_cmp(b));
    for b in &bounds {
        check_bound(current.bound, *b)?;
    }
    let sustains = with_current(&q.sustains, current.sustain, Ord::cmp);
    let start = q.incident.start();
    let mut rows = Vec::with_capacity(bounds.len() * sustains.len());
    for &bound in &bounds {
        for &sustain in &sustains {
            let mut policy = q.policy.clone();
            policy.criteria[index].bound = with_value(current.bound, bound);
            policy.criteria[index].sustain = sustain;
            let options = EngineOptions {
                lateness: q.lateness,
                share_source: q.share_source,
                ..EngineOptions::default()
            };
            let fired = first_firing(&policy, &options, q.incident, q.trigger);
            let false_alarms = q
                .others
                .iter()
                .filter(|s| first_firing(&policy, &options, s, q.trigger).is_some())
                .count();
            rows.push(Row {
                bound,
                sustain,
                current: bound == current.bound.value() && sustain == current.sustain,
                detection: fired.zip(start).map(|(f, s)| f - s),
                vs_actual_ms: None,
                false_alarms,
            });
        }
    }
    let actual = q.detected_at.or_else(|| {
        let row = rows.iter().find(|r| r.current)?;
        Some(start? + row.detection?)
    });
    if let (Some(actual), Some(start)) = (actual, start) {
        for row in &mut rows {
            row.vs_actual_ms = row.detection.map(|d| (start + d).0 - actual.0);
        }
    }
    Ok(Table {
        criterion: q.criterion.into(),
        trigger: q.trigger.into(),
        bound_kind: bound_kind(current.bound),
        others: q.others.len(),
        rows,
    })
}

/// Whether a trigger's condition mentions the criterion.
fn uses(c: &Condition, index: usize) -> bool {
    match c {
        Condition::Criterion(i) => *i == index,
        Condition::All(v) | Condition::Any(v) | Condition::AtLeast { of: v, .. } => {
            v.iter().any(|c| uses(c, index))
        }
    }
}

/// The values with the current one added, sorted, without duplicates.
fn with_current<T: Copy + PartialEq>(
    values: &[T],
    current: T,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    let mut all: Vec<T> = values.to_vec();
    all.push(current);
    all.sort_by(&order);
    all.dedup();
    all
}

/// The loader's rules for bound values, so no variant is a policy the
/// loader would refuse.
pub(crate) fn check_bound(kind: Bound, value: f64) -> Result<(), WhatIfError> {
    let bad = |why| Err(WhatIfError::BadBound { value, why });
    if !value.is_finite() {
        return bad("must be a finite number");
    }
    match kind {
        Bound::MaxRatio(_) if value < 1.0 => bad("a max_ratio must be at least 1"),
        Bound::MaxJs(_) if !(0.0..=1.0).contains(&value) => bad("max_js is in [0, 1]"),
        Bound::MaxPsi(_) | Bound::MaxIncrease(_) | Bound::MaxDecrease(_) if value < 0.0 => {
            bad("must not be negative")
        }
        _ => Ok(()),
    }
}

pub(crate) fn with_value(kind: Bound, v: f64) -> Bound {
    match kind {
        Bound::Absolute(_) => Bound::Absolute(v),
        Bound::MaxRatio(_) => Bound::MaxRatio(v),
        Bound::MaxIncrease(_) => Bound::MaxIncrease(v),
        Bound::MaxDecrease(_) => Bound::MaxDecrease(v),
        Bound::MaxDifference(_) => Bound::MaxDifference(v),
        Bound::MaxPsi(_) => Bound::MaxPsi(v),
        Bound::MaxJs(_) => Bound::MaxJs(v),
    }
}

pub(crate) fn bound_kind(b: Bound) -> &'static str {
    match b {
        Bound::Absolute(_) => "absolute",
        Bound::MaxRatio(_) => "max_ratio",
        Bound::MaxIncrease(_) => "max_increase",
        Bound::MaxDecrease(_) => "max_decrease",
        Bound::MaxDifference(_) => "max_difference",
        Bound::MaxPsi(_) => "max_psi",
        Bound::MaxJs(_) => "max_js",
    }
}

/// When the trigger first fires replaying the stream, if it does.
fn first_firing(
    policy: &Policy,
    options: &EngineOptions,
    stream: &Stream<'_>,
    trigger: &str,
) -> Option<Time> {
    let mut engine = Engine::new(policy.clone(), options.clone());
    let mut out = Vec::new();
    let fired = |out: &[crate::Decision]| {
        out.iter()
            .find(|d| d.kind == DecisionKind::TriggerFired && d.trigger.as_deref() == Some(trigger))
            .map(|d| d.at)
    };
    for item in &stream.items {
        match item {
            Item::Line(Line::Release(r)) => engine.declare(r, &mut out),
            // Rejected events (another service, too late) are not counted,
            // exactly as in replay.
            Item::Line(Line::Event(e)) => _ = engine.observe(e, &mut out),
            Item::Line(Line::Blank) => {}
            Item::Tick(t) => engine.tick(*t, &mut out),
        }
        if let Some(at) = fired(&out) {
            return Some(at);
        }
        out.clear();
    }
    let now = engine.now();
    engine.tick(now, &mut out);
    fired(&out)
}

impl Table {
    /// The table as markdown, the current policy's row marked.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "| {} | for | detects after release start | vs actual detection | false alarms (of {}) | |\n\
             |---:|---:|---:|---:|---:|---|\n",
            self.bound_kind, self.others
        );
        for r in &self.rows {
            let detection = r.detection.map_or("never".into(), |d| d.to_string());
            let vs = r.vs_actual_ms.map_or("—".into(), signed);
            let mark = if r.current { "← current policy" } else { "" };
            out.push_str(&format!(
                "| {} | {} | {detection} | {vs} | {} | {mark} |\n",
                r.bound, r.sustain, r.false_alarms
            ));
        }
        out
    }
}

/// `+1m30s`, `−20s`, `same`.
pub fn signed(ms: i64) -> String {
    match ms.signum() {
        0 => "same".into(),
        1 => format!("+{}", Dur(ms)),
        _ => format!("−{}", Dur(-ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_differences_read_naturally() {
        assert_eq!(signed(0), "same");
        assert_eq!(signed(90_000), "+1m30s");
        assert_eq!(signed(-20_000), "−20s");
    }

    #[test]
    fn the_current_values_join_the_grid_once_in_order() {
        assert_eq!(
            with_current(&[2.0, 1.1, 1.5], 1.2, |a: &f64, b: &f64| a.total_cmp(b)),
            [1.1, 1.2, 1.5, 2.0]
        );
        assert_eq!(
            with_current(&[Dur(5), Dur(1)], Dur(5), Ord::cmp),
            [Dur(1), Dur(5)]
        );
        assert!(check_bound(Bound::MaxRatio(1.2), 0.9).is_err());
        assert!(check_bound(Bound::Absolute(0.1), f64::NAN).is_err());
        assert!(check_bound(Bound::Absolute(0.1), 0.2).is_ok());
    }
}
