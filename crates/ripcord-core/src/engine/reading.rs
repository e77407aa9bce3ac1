//! Readings: each criterion's figures and verdict at the engine's "now",
//! for dashboards and series.
//!
//! They are the engine's own figures (the same [`Evidence`] decisions
//! carry), never a second computation, so a chart cannot disagree with
//! the decision it explains.

use super::Engine;
use super::criterion::CriterionState;
use crate::decision::Evidence;

/// Where a criterion stands, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within its bound, or not yet shown beyond it.
    Ok,
    /// Breaching but not yet for its `for` duration, or breached and
    /// clearing (not breaching, `clear_for` not yet over): either way
    /// the next minutes decide.
    Watching,
    Breached,
    /// No candidate sample in the window.
    NoData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Watching => "watching",
            Verdict::Breached => "breached",
            Verdict::NoData => "no_data",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One criterion at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub verdict: Verdict,
    /// The bound in the units of `evidence.estimate` and
    /// `evidence.interval` (see `CriterionState::limit`).
    pub limit: Option<f64>,
    pub evidence: Evidence,
}

impl Engine {
    /// One reading per criterion, in policy order, of the current release
    /// (running or settled: a settled release's criteria keep their last
    /// figures); empty before the first release.
    pub fn readings(&self) -> Vec<Reading> {
        let now = self.now();
        self.criteria()
            .iter()
            .map(|c| {
                let evidence = c.evidence(now);
                Reading {
                    verdict: verdict_of(c, &evidence),
                    limit: c.limit(),
                    evidence,
                }
            })
            .collect()
    }
}

fn verdict_of(c: &CriterionState, evidence: &Evidence) -> Verdict {
    if c.clearing() || !c.breached && c.breaching() {
        Verdict::Watching
    } else if c.breached {
        Verdict::Breached
    } else if evidence.window_candidate.n <= 0.0 {
        Verdict::NoData
    } else {
        Verdict::Ok
    }
}
