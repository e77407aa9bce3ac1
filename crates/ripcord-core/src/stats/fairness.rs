//! Fairness disparity: does the candidate treat segments (locales, user
//! tiers) differently enough to matter?
//!
//! Each segment gets its own anytime-valid two-sided interval: for rates the
//! inverted binomial mixture of [`super::bound`], for scores the betting
//! sequence of [`super::score`]. Segments are not known in advance, so the
//! k-th segment to appear gets the budget `α/(k(k+1))`; the budgets sum to
//! `α`, so with probability ≥ 1 − α every interval holds at every time
//! (a union bound). The disparity is *significant* when two segments'
//! intervals are apart by more than the bound: `lower_s / upper_t > ratio`
//! or `lower_s − upper_t > difference`. If every interval holds and the true
//! disparity is within the bound, that cannot happen.

use super::bound::confidence_bound;
use super::score::MeanSequence;
use crate::policy::Direction;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Segment {
    Rate { flagged: f64, total: f64 },
    Score(MeanSequence),
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Disparity {
    /// `Some((min, max))` for scores, `None` for rates.
    score_range: Option<(f64, f64)>,
    segments: Vec<Segment>,
}

/// How far apart two segments may be.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Gap {
    Ratio(f64),
    Difference(f64),
}

impl Disparity {
    pub fn for_rates() -> Disparity {
        Disparity {
            score_range: None,
            segments: Vec::new(),
        }
    }

    pub fn for_scores(min: f64, max: f64) -> Disparity {
        Disparity {
            score_range: Some((min, max)),
            segments: Vec::new(),
        }
    }

    /// Adds `n` observations with numerator `x` (flags, or a score when `n` = 1).
    pub fn add(&mut self, segment: usize, n: f64, x: f64) {
        while self.segments.len() <= segment {
            self.segments.push(match self.score_range {
                Some((min, max)) => Segment::Score(MeanSequence::new(min, max)),
                None => Segment::Rate {
                    flagged: 0.0,
                    total: 0.0,
                },
            });
        }
        match &mut self.segments[segment] {
            Segment::Rate { flagged, total } => {
                *flagged += x;
                *total += n;
            }
            Segment::Score(s) => s.add(x),
        }
    }

    /// Each segment's interval, at its share of `alpha`.
    pub fn intervals(&self, alpha: f64) -> Vec<Option<(f64, f64)>> {
        self.segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let k = (i + 1) as f64;
                interval(s, alpha / (k * (k + 1.0)))
            })
            .collect()
    }

    /// Whether two segments are certainly further apart than `gap`.
    pub fn significant(&self, alpha: f64, gap: Gap) -> bool {
        self.separation(alpha, gap).is_some_and(|s| match gap {
            Gap::Ratio(r) => s > r,
            Gap::Difference(d) => s > d,
        })
    }

    /// How far apart the intervals certainly are: the highest lower end over
    /// the lowest upper end (ratio), or their difference. `None` with fewer
    /// than two segments.
    pub fn separation(&self, alpha: f64, gap: Gap) -> Option<f64> {
        let intervals: Vec<(f64, f64)> = self.intervals(alpha).into_iter().flatten().collect();
        if intervals.len() < 2 {
            return None;
        }
        let highest_low = intervals
            .iter()
            .map(|i| i.0)
            .fold(f64::NEG_INFINITY, f64::max);
        let lowest_high = intervals.iter().map(|i| i.1).fold(f64::INFINITY, f64::min);
        Some(match gap {
            Gap::Ratio(_) if lowest_high <= 0.0 => {
                if highest_low > 0.0 {
                    f64::INFINITY
                } else {
                    1.0
                }
            }
            Gap::Ratio(_) => highest_low / lowest_high,
            Gap::Difference(_) => highest_low - lowest_high,
        })
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}

fn interval(segment: &Segment, alpha: f64) -> Option<(f64, f64)> {
    match segment {
        Segment::Rate { flagged, total } => (*total > 0.0).then(|| {
            (
                confidence_bound(*flagged, *total, alpha / 2.0, Direction::HigherIsWorse),
                confidence_bound(*flagged, *total, alpha / 2.0, Direction::LowerIsWorse),
            )
        }),
        Segment::Score(s) => s.interval(alpha),
    }
}

/// The disparity of point estimates: (largest / smallest, largest − smallest)
/// over the segments with data.
pub fn spread(estimates: &[f64]) -> Option<(f64, f64)> {
    if estimates.len() < 2 {
        return None;
    }
    let max = estimates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = estimates.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = if min > 0.0 {
        max / min
    } else if max > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    Some((ratio, max - min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_segments_are_not_a_disparity_and_a_tripled_one_is() {
        let mut d = Disparity::for_rates();
        for seg in 0..3 {
            d.add(seg, 20_000.0, 200.0);
        }
        assert!(!d.significant(0.05, Gap::Ratio(1.5)));
        d.add(3, 20_000.0, 600.0);
        assert!(d.significant(0.05, Gap::Ratio(1.5)));
        assert!(d.significant(0.05, Gap::Difference(0.01)));
        assert!(!d.significant(0.05, Gap::Difference(0.03)));
    }

    #[test]
    fn later_segments_get_smaller_budgets() {
        let mut d = Disparity::for_rates();
        d.add(0, 1000.0, 10.0);
        d.add(1, 1000.0, 10.0);
        let i = d.intervals(0.05);
        let width = |x: Option<(f64, f64)>| x.map_or(0.0, |(lo, hi)| hi - lo);
        assert!(width(i[1]) > width(i[0]));
    }

    #[test]
    fn spread_is_ratio_and_difference() {
        assert_eq!(spread(&[0.01, 0.02, 0.04]), Some((4.0, 0.03)));
        assert_eq!(spread(&[0.5]), None);
    }
}
