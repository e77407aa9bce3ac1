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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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

#[derive(Clone, Debug)]
pub struct Window {
    width: i64,
    /// Bucket number held by each slot (`ts / width`), or `i64::MIN`.
    ids: [i64; SLOTS],
    candidate: [Tally; SLOTS],
    baseline: [Tally; SLOTS],
}

impl Window {
    pub fn new(length: Dur) -> Window {
        Window {
            width: (length.0 / SLOTS as i64).max(1),
            ids: [i64::MIN; SLOTS],
            candidate: [Tally::default(); SLOTS],
            baseline: [Tally::default(); SLOTS],
        }
    }

    /// Adds to the bucket of `ts`; ignored when `ts` is older than the ring.
    pub fn add(&mut self, ts: Time, candidate: bool, n: f64, sum: f64) {
        let id = ts.0.div_euclid(self.width);
        let slot = id.rem_euclid(SLOTS as i64) as usize;
        if self.ids[slot] != id {
            if self.ids[slot] > id {
                return;
            }
            self.ids[slot] = id;
            self.candidate[slot] = Tally::default();
            self.baseline[slot] = Tally::default();
        }
        let tally = if candidate {
            &mut self.candidate[slot]
        } else {
            &mut self.baseline[slot]
        };
        tally.add(n, sum);
    }

    /// Totals (candidate, baseline) of the buckets within the window ending at `now`.
    pub fn totals(&self, now: Time) -> (Tally, Tally) {
        let newest = now.0.div_euclid(self.width);
        let oldest = newest - SLOTS as i64 + 1;
        let mut c = Tally::default();
        let mut b = Tally::default();
        for slot in 0..SLOTS {
            let id = self.ids[slot];
            if id >= oldest && id <= newest {
                c.add(self.candidate[slot].n, self.candidate[slot].sum);
                b.add(self.baseline[slot].n, self.baseline[slot].sum);
            }
        }
        (c, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
