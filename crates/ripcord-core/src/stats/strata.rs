//! Strata: the evidence of a comparison, cut into short spans of generation
//! time, each holding both versions' realised counts.
//!
//! A test against the baseline that assumes the candidate serves its
//! *assigned* share is wrong whenever the realised split differs: a few busy
//! users hashed onto one side, a ramp step, late labels, a denominator other
//! than outputs. Conditioning instead on what each version really served in
//! a short span (a *stratum*) makes the split a given rather than a
//! parameter: within a stratum the flags' split between the versions only
//! depends on the versions' rates, whatever the share did and however the
//! users fell.
//!
//! A stratum is the data generated in one bucket of `width`. When the
//! engine's clock passes the bucket's end, the stratum closes if it holds
//! both versions (rates close it sooner, once both versions hold enough of
//! the denominator, and the rest of the bucket starts a new stratum); one that lacks a version says nothing about a comparison
//! and its counts join the next bucket's (at most [`MAX_CARRY`] times).
//! Late events land in the bucket of their own timestamp: one that is
//! already closed collects them in a new stratum, which closes as soon as
//! it holds both versions, and is dropped unused if it never does within
//! [`MAX_CARRY`] buckets. So a late label is compared with labels of
//! outputs generated when its own output was, never with those of the
//! moment it arrived. Which events make a stratum depends only on
//! timestamps, arrival order and versions, never on the values the tests
//! read, which is what keeps the tests built on them exact; dropping a
//! stratum before a test has read it can only make that test more careful.

use std::collections::BTreeMap;

use crate::time::{Dur, Time};

/// How many buckets a one-sided fragment is carried forward before it is
/// dropped (dropping data a test has not used can only lower its e-value's
/// chance to grow, never break it).
pub const MAX_CARRY: u32 = 60;
/// Counts are whole numbers of outputs and flags; anything larger is a
/// sender's mistake, capped before it reaches a sum.
const MAX_COUNT: f64 = 1e12;
/// Most open strata kept; late events for older buckets start no stratum.
const MAX_OPEN: usize = 1024;

/// What a stratum holds for one version: counts that merge, and how much
/// of the comparison's denominator they are.
pub trait Part: Clone + Default {
    fn merge(&mut self, other: &Self);
    fn mass(&self) -> f64;
}

/// A rate's counts: the denominator `n` and the flags `x`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub n: f64,
    pub x: f64,
}

impl Counts {
    pub fn add(&mut self, n: f64, x: f64) {
        self.n += n;
        self.x += x;
    }
}

impl Part for Counts {
    fn merge(&mut self, other: &Self) {
        self.add(other.n, other.x);
    }
    fn mass(&self) -> f64 {
        self.n
    }
}

/// Events by category index.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Categories(pub Vec<f64>);

impl Categories {
    pub fn add(&mut self, category: usize, n: f64) {
        if self.0.len() <= category {
            self.0.resize(category + 1, 0.0);
        }
        self.0[category] += n;
    }
}

impl Part for Categories {
    fn merge(&mut self, other: &Self) {
        for (k, n) in other.0.iter().enumerate() {
            self.add(k, *n);
        }
    }
    fn mass(&self) -> f64 {
        self.0.iter().sum()
    }
}

/// What an open stratum holds.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Open<T> {
    candidate: T,
    baseline: T,
    /// Buckets this fragment has been carried through.
    carried: u32,
}

impl<T: Part> Open<T> {
    fn both(&self) -> bool {
        self.candidate.mass() > 0.0 && self.baseline.mass() > 0.0
    }

    /// Whether the stratum may close before its bucket ends: a late one as
    /// soon as it holds both versions, an on-time one once both hold
    /// `full_mass`.
    fn is_ready(&self, late: bool, full_mass: f64) -> bool {
        if late {
            self.both()
        } else {
            self.candidate.mass() >= full_mass && self.baseline.mass() >= full_mass
        }
    }
}

/// A closed stratum with both versions present.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stratum<T> {
    /// The generation-time bucket of the stratum.
    pub bucket: i64,
    pub candidate: T,
    pub baseline: T,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Strata<T> {
    width: i64,
    /// A stratum closes before its bucket ends once each version holds this
    /// much of the denominator (never, when infinite).
    full_mass: f64,
    /// The bucket of the engine's clock at the last [`Strata::close_due`].
    current: i64,
    open: BTreeMap<i64, Open<T>>,
    /// Strata that may close before their bucket ends: late ones that now
    /// hold both versions, and full ones (see [`Strata::closing_early_at`]).
    ready: Vec<i64>,
}

impl<T: Part> Strata<T> {
    pub fn new(width: Dur) -> Strata<T> {
        Strata {
            width: width.0.max(1),
            full_mass: f64::INFINITY,
            current: i64::MIN,
            open: BTreeMap::new(),
            ready: Vec::new(),
        }
    }

    /// Strata that also close as soon as each version holds `mass` of the
    /// denominator, before their bucket ends: evidence then counts within
    /// a fraction of a second at high traffic instead of at the bucket's
    /// end. The rule reads only denominators, never what the tests read,
    /// so the tests stay exact. Rates use it; drift does not, because a
    /// heavy user's consecutive events share a topic and a stratum of a
    /// few events is not exchangeable between the versions.
    pub fn closing_early_at(mut self, mass: f64) -> Strata<T> {
        self.full_mass = mass;
        self
    }

    /// Adds to the stratum of `ts`'s bucket for one version. Ignored when
    /// the bucket is older than [`MAX_CARRY`] buckets or too many strata are
    /// open already.
    pub fn add(&mut self, ts: Time, candidate: bool, add: impl FnOnce(&mut T)) {
        let id = ts.0.div_euclid(self.width);
        let late = id < self.current;
        if late && id < self.current.saturating_sub(i64::from(MAX_CARRY)) {
            return;
        }
        if !self.open.contains_key(&id) && self.open.len() >= MAX_OPEN {
            return;
        }
        let open = self.open.entry(id).or_default();
        let full_mass = self.full_mass;
        let was_ready = open.is_ready(late, full_mass);
        add(if candidate {
            &mut open.candidate
        } else {
            &mut open.baseline
        });
        if !was_ready && open.is_ready(late, full_mass) {
            self.ready.push(id);
        }
    }

    /// Closes the strata that are due at `now` and hands each one, oldest
    /// bucket first, to `close`.
    pub fn close_due(&mut self, now: Time, mut close: impl FnMut(Stratum<T>)) {
        let current = now.0.div_euclid(self.width);
        if current > self.current {
            self.close_ended(current, &mut close);
            self.current = current;
        }
        self.ready.sort_unstable();
        for id in std::mem::take(&mut self.ready) {
            if let Some(open) = self.open.remove(&id) {
                close(stratum(id, open));
            }
        }
        let horizon = self.current.saturating_sub(i64::from(MAX_CARRY));
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            entry.remove();
        }
    }

    /// The buckets that ended since the last call: closed when they hold
    /// both versions, else carried into the bucket now current.
    fn close_ended(&mut self, current: i64, close: &mut impl FnMut(Stratum<T>)) {
        let ended: Vec<i64> = self
            .open
            .range(self.current.max(i64::MIN + 1)..current)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            let Some(open) = self.open.remove(&id) else {
                continue;
            };
            if open.both() {
                close(stratum(id, open));
            } else if open.carried < MAX_CARRY {
                let next = self.open.entry(current).or_default();
                next.candidate.merge(&open.candidate);
                next.baseline.merge(&open.baseline);
                next.carried = next.carried.max(open.carried + 1);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// A count as a whole number in `[0, 1e12]`; anything else (NaN, infinite,
/// negative) counts as nothing.
pub fn whole(v: f64) -> f64 {
    if v.is_finite() {
        v.round().clamp(0.0, MAX_COUNT)
    } else {
        0.0
    }
}

fn stratum<T>(bucket: i64, open: Open<T>) -> Stratum<T> {
    Stratum {
        bucket,
        candidate: open.candidate,
        baseline: open.baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(s: &mut Strata<Counts>, now: i64) -> Vec<(i64, f64, f64, f64, f64)> {
        let mut out = Vec::new();
        s.close_due(Time(now), |st| {
            out.push((
                st.bucket,
                st.candidate.n,
                st.candidate.x,
                st.baseline.n,
                st.baseline.x,
            ))
        });
        out
    }

    fn add(s: &mut Strata<Counts>, ts: i64, candidate: bool, n: f64, x: f64) {
        s.add(Time(ts), candidate, |c| c.add(n, x));
    }

    #[test]
    fn a_bucket_closes_when_time_passes_its_end() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(10));
        assert!(closed(&mut s, 0).is_empty());
        add(&mut s, 1_000, true, 3.0, 1.0);
        add(&mut s, 9_000, false, 5.0, 0.0);
        assert!(closed(&mut s, 9_999).is_empty());
        assert_eq!(closed(&mut s, 10_000), vec![(0, 3.0, 1.0, 5.0, 0.0)]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_stratum_closes_early_once_both_versions_hold_enough() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(10)).closing_early_at(3.0);
        assert!(closed(&mut s, 0).is_empty());
        add(&mut s, 1_000, true, 1.0, 1.0);
        add(&mut s, 1_100, false, 5.0, 0.0);
        assert!(closed(&mut s, 1_100).is_empty());
        add(&mut s, 1_200, true, 2.0, 0.0);
        assert_eq!(closed(&mut s, 1_200), vec![(0, 3.0, 1.0, 5.0, 0.0)]);
        // What comes next in the same bucket starts a stratum of its own.
        add(&mut s, 1_300, true, 1.0, 0.0);
        add(&mut s, 1_400, false, 1.0, 1.0);
        assert_eq!(closed(&mut s, 10_000), vec![(0, 1.0, 0.0, 1.0, 1.0)]);
    }

    #[test]
    fn without_early_closing_a_full_stratum_waits_for_its_bucket_to_end() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(10));
        assert!(closed(&mut s, 0).is_empty());
        add(&mut s, 1_000, true, 50.0, 1.0);
        add(&mut s, 1_100, false, 50.0, 0.0);
        assert!(closed(&mut s, 9_999).is_empty());
        assert_eq!(closed(&mut s, 10_000), vec![(0, 50.0, 1.0, 50.0, 0.0)]);
    }

    #[test]
    fn a_one_sided_bucket_joins_the_next() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(10));
        assert!(closed(&mut s, 0).is_empty());
        add(&mut s, 1_000, true, 1.0, 1.0);
        assert!(closed(&mut s, 10_000).is_empty());
        add(&mut s, 12_000, false, 4.0, 0.0);
        assert_eq!(closed(&mut s, 20_000), vec![(1, 1.0, 1.0, 4.0, 0.0)]);
    }

    #[test]
    fn late_events_form_strata_of_their_own_generation_time() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(10));
        assert!(closed(&mut s, 0).is_empty());
        add(&mut s, 1_000, true, 1.0, 0.0);
        add(&mut s, 2_000, false, 1.0, 0.0);
        assert_eq!(closed(&mut s, 30_000).len(), 1);
        // Arriving at 30 s, generated at 3 s: compared with each other, not
        // with what is generated now.
        add(&mut s, 3_000, true, 2.0, 2.0);
        add(&mut s, 31_000, false, 7.0, 0.0);
        assert!(closed(&mut s, 31_000).is_empty());
        add(&mut s, 3_500, false, 2.0, 0.0);
        assert_eq!(closed(&mut s, 31_000), vec![(0, 2.0, 2.0, 2.0, 0.0)]);
    }

    #[test]
    fn a_late_fragment_without_a_partner_is_dropped_at_the_horizon() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(1));
        assert!(closed(&mut s, 10_000).is_empty());
        add(&mut s, 5_000, true, 1.0, 1.0);
        let end = (i64::from(MAX_CARRY) + 6) * 1000;
        assert!(closed(&mut s, end).is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn on_time_fragments_are_carried_at_most_max_carry_times() {
        let mut s = Strata::<Counts>::new(Dur::from_secs(1));
        let mut t = 0;
        assert!(closed(&mut s, t).is_empty());
        add(&mut s, t, true, 1.0, 1.0);
        while t < i64::from(MAX_CARRY + 5) * 1000 {
            t += 1000;
            assert!(closed(&mut s, t).is_empty());
        }
        assert!(s.is_empty());
    }
}
