//! Sliding windows of sufficient statistics, in a ring of time buckets.
//!
//! A window of length `W` keeps `SLOTS` buckets of `W/SLOTS` each; the
//! window total is the sum of the buckets whose start lies within `W` of
//! "now". Late events land in their own bucket as long as it is still in the
//! ring, so the window means "data generated in the last W", not "data
//! received in the last W".

use crate::time::{Dur, Time};

const SLOTS: usize = 60;

/// Counts for one version: the denominator and the numerator (flagged
/// count, or sum of values).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub n: f64,
    pub sum: f64,
}

impl Tally {
    pub fn add(&mut self, n: f64, sum: f64) {
        self.n += n;
        self.sum += sum;
    }
}

/// What a window bucket holds: anything that merges, so that a window's
/// total is the merge of its buckets.
pub trait Bucket: Clone + Default {
    fn merge(&mut self, other: &Self);
}

impl Bucket for Tally {
    fn merge(&mut self, other: &Self) {
        self.add(other.n, other.sum);
    }
}

/// Tallies by key (category or segment index).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Keyed(pub Vec<Tally>);

impl Keyed {
    pub fn add(&mut self, key: usize, n: f64, sum: f64) {
        if self.0.len() <= key {
            self.0.resize(key + 1, Tally::default());
        }
        self.0[key].add(n, sum);
    }
}

impl Bucket for Keyed {
    fn merge(&mut self, other: &Self) {
        for (k, t) in other.0.iter().enumerate() {
            self.add(k, t.n, t.sum);
        }
    }
}

/// A latency sketch (DDSketch, 1% relative accuracy): mergeable, so the
/// window quantile is exact up to the sketch's accuracy.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Sketch(pub sketches_ddsketch::DDSketch);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch({} values)", self.0.count())
    }
}

impl Sketch {
    /// The sketch's relative accuracy: a reported quantile is within 1% of
    /// a value whose rank is the requested one.
    pub const ACCURACY: f64 = 0.01;

    pub fn add(&mut self, v: f64) {
        self.0.add(v);
    }

    pub fn count(&self) -> usize {
        self.0.count()
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }
}

impl Bucket for Sketch {
    fn merge(&mut self, other: &Self) {
        // Both use the default configuration, so merging cannot fail.
        let _ = self.0.merge(&other.0);
    }
}

/// A ring of `SLOTS` time buckets per version.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Ring<T> {
    width: i64,
    /// Bucket number held by each slot (`ts / width`), or `i64::MIN`.
    ids: Vec<i64>,
    candidate: Vec<T>,
    baseline: Vec<T>,
}

/// The common window: counts and sums.
pub type Window = Ring<Tally>;

impl<T: Bucket> Ring<T> {
    pub fn new(length: Dur) -> Ring<T> {
        Ring {
            width: (length.0 / SLOTS as i64).max(1),
            ids: vec![i64::MIN; SLOTS],
            candidate: vec![T::default(); SLOTS],
            baseline: vec![T::default(); SLOTS],
        }
    }

    /// The bucket of `ts` for one version; `None` when `ts` is older than the ring.
    pub fn bucket(&mut self, ts: Time, candidate: bool) -> Option<&mut T> {
        let id = ts.0.div_euclid(self.width);
        let slot = id.rem_euclid(SLOTS as i64) as usize;
        if self.ids[slot] != id {
            if self.ids[slot] > id {
                return None;
            }
            self.ids[slot] = id;
            self.candidate[slot] = T::default();
            self.baseline[slot] = T::default();
        }
        Some(if candidate {
            &mut self.candidate[slot]
        } else {
            &mut self.baseline[slot]
        })
    }

    /// Totals (candidate, baseline) of the buckets within the window ending at `now`.
    pub fn totals(&self, now: Time) -> (T, T) {
        self.totals_since(now, Time(i64::MIN))
    }

    /// Totals of the buckets within the window ending at `now` that start
    /// no earlier than the bucket of `since`.
    pub fn totals_since(&self, now: Time, since: Time) -> (T, T) {
        let newest = now.0.div_euclid(self.width);
        let oldest = (newest - SLOTS as i64 + 1).max(since.0.div_euclid(self.width));
        let mut c = T::default();
        let mut b = T::default();
        for slot in 0..SLOTS {
            let id = self.ids[slot];
            if id >= oldest && id <= newest {
                c.merge(&self.candidate[slot]);
                b.merge(&self.baseline[slot]);
            }
        }
        (c, b)
    }
}

impl Window {
    /// Adds to the bucket of `ts`; ignored when `ts` is older than the ring.
    pub fn add(&mut self, ts: Time, candidate: bool, n: f64, sum: f64) {
        if let Some(t) = self.bucket(ts, candidate) {
            t.add(n, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A window's total is the sum of what was added within it, however
        /// the values fall into buckets.
        #[test]
        fn window_totals_equal_the_union_of_their_buckets(
            adds in prop::collection::vec((0i64..1_200_000, any::<bool>(), 0u32..50, 0u32..5), 1..200)
        ) {
            let length = Dur::from_mins(10);
            let now = Time(1_200_000);
            let mut w = Window::new(length);
            let mut adds = adds;
            adds.sort_by_key(|a| a.0);
            let (mut c, mut b) = (Tally::default(), Tally::default());
            for (ts, candidate, n, x) in &adds {
                w.add(Time(*ts), *candidate, f64::from(*n), f64::from(*x));
                // Buckets are 10 s wide; the window holds the 60 up to the one of `now`.
                if *ts >= 610_000 {
                    let t = if *candidate { &mut c } else { &mut b };
                    t.add(f64::from(*n), f64::from(*x));
                }
            }
            prop_assert_eq!(w.totals(now), (c, b));
        }

        /// Merged sketches answer exactly as one sketch of all the values.
        #[test]
        fn merged_sketches_equal_the_sketch_of_the_union(
            parts in prop::collection::vec(prop::collection::vec(1.0f64..100_000.0, 0..50), 1..8),
            q in 0.0f64..1.0,
        ) {
            let mut merged = Sketch::default();
            let mut union = Sketch::default();
            for part in &parts {
                let mut s = Sketch::default();
                for v in part {
                    s.add(*v);
                    union.add(*v);
                }
                merged.merge(&s);
            }
            prop_assert_eq!(merged.count(), union.count());
            prop_assert_eq!(merged.quantile(q), union.quantile(q));
        }

        /// Per-key tallies merge key by key.
        #[test]
        fn keyed_buckets_merge_key_by_key(
            adds in prop::collection::vec((0usize..6, 0u32..20, any::<bool>()), 0..100)
        ) {
            let (mut left, mut right, mut all) = (Keyed::default(), Keyed::default(), Keyed::default());
            for (key, n, first) in &adds {
                let part = if *first { &mut left } else { &mut right };
                part.add(*key, f64::from(*n), 1.0);
                all.add(*key, f64::from(*n), 1.0);
            }
            left.merge(&right);
            left.0.resize(all.0.len().max(left.0.len()), Tally::default());
            all.0.resize(left.0.len(), Tally::default());
            prop_assert_eq!(left, all);
        }
    }

    #[test]
    fn data_leaves_the_window_after_its_length() {
        let mut w = Window::new(Dur::from_mins(10));
        w.add(Time(0), true, 1.0, 1.0);
        w.add(Time(60_000), false, 2.0, 0.0);
        assert_eq!(w.totals(Time(60_000)).0, Tally { n: 1.0, sum: 1.0 });
        assert_eq!(w.totals(Time(600_000)).0, Tally::default());
        assert_eq!(w.totals(Time(600_000)).1, Tally { n: 2.0, sum: 0.0 });
        assert_eq!(w.totals(Time(660_000)).1, Tally::default());
    }

    #[test]
    fn a_late_event_counts_in_its_own_bucket() {
        let mut w = Window::new(Dur::from_mins(1));
        w.add(Time(59_000), true, 1.0, 0.0);
        w.add(Time(30_000), true, 1.0, 1.0);
        assert_eq!(w.totals(Time(59_000)).0, Tally { n: 2.0, sum: 1.0 });
        // Older than the ring: dropped from the window (the cumulative test still counts it).
        w.add(Time(-10_000), true, 5.0, 5.0);
        assert_eq!(w.totals(Time(59_000)).0, Tally { n: 2.0, sum: 1.0 });
    }
}
